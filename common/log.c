#include "log.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *log_program = "broadway";
static int log_min_level = BW_LOG_INFO;

void bw_log_init(const char *program) {
  const char *level = getenv("BROADWAY_LOG");
  log_program = program;
  if (level == NULL)
    return;
  if (strcmp(level, "debug") == 0)
    log_min_level = BW_LOG_DEBUG;
  else if (strcmp(level, "warn") == 0)
    log_min_level = BW_LOG_WARN;
  else if (strcmp(level, "error") == 0)
    log_min_level = BW_LOG_ERROR;
}

void bw_log(int level, const char *fmt, ...) {
  static const char *names[] = {"debug", "info", "warn", "error"};
  char when[32], line[2048];
  struct tm tm;
  time_t now = time(NULL);
  va_list ap;
  int n;

  if (level < log_min_level)
    return;
  gmtime_r(&now, &tm);
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  n = snprintf(line, sizeof line, "%s %s[%d] %s: ", when, log_program,
               (int)getpid(), names[level]);
  va_start(ap, fmt);
  vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
  va_end(ap);
  /* One write per line so lines from many processes do not interleave. */
  fprintf(stderr, "%s\n", line);
}

int bw_log_open_file(const char *path) {
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

  if (fd < 0)
    return -1;
  if (fd != STDERR_FILENO) {
    if (dup2(fd, STDERR_FILENO) < 0) {
      close(fd);
      return -1;
    }
    close(fd);
  }
  return 0;
}
