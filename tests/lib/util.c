/* util.c - see util.h. */
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

double bw_test_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void bw_test_sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
  }
}

/* From /dev/urandom (rand() as a fallback keeps tests running on a machine
 * without it; tokens and names only have to differ between stacks). */
void bw_test_random_hex(char *out, size_t digits) {
  unsigned char buf[64];
  size_t n = (digits + 1) / 2;
  if (n > sizeof buf)
    n = sizeof buf;
  FILE *f = fopen("/dev/urandom", "rb");
  if (!f || fread(buf, 1, n, f) != n) {
    srand((unsigned)(time(NULL) ^ getpid()));
    for (size_t i = 0; i < n; i++)
      buf[i] = (unsigned char)rand();
  }
  if (f)
    fclose(f);
  for (size_t i = 0; i < digits && i / 2 < n; i++)
    out[i] = "0123456789abcdef"[(buf[i / 2] >> ((i % 2) ? 0 : 4)) & 0xf];
  out[digits] = '\0';
}

void bw_test_percent_encode(const char *in, char *out, size_t cap) {
  size_t o = 0;
  for (const unsigned char *p = (const unsigned char *)in; *p && o + 4 < cap;
       p++) {
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
        (*p >= '0' && *p <= '9') || strchr("-._~", *p))
      out[o++] = (char)*p;
    else
      o += (size_t)snprintf(out + o, cap - o, "%%%02X", *p);
  }
  out[o] = '\0';
}

void bw_test_socket_uri(const char *sock, char *out, size_t cap) {
  char encoded[PATH_MAX * 3];
  bw_test_percent_encode(sock, encoded, sizeof encoded);
  snprintf(out, cap, "mongodb://%s/?serverSelectionTimeoutMS=10000", encoded);
}

int bw_test_write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f)
    return -1;
  int rc = fputs(text, f) < 0 ? -1 : 0;
  return fclose(f) == 0 ? rc : -1;
}

char *bw_test_read_file(const char *path, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  size_t n = 0, cap = 0;
  char *buf = NULL, chunk[8192];
  ssize_t got;
  int rc = 0;
  while (rc == 0 && (got = read(fd, chunk, sizeof chunk)) > 0)
    rc = bw_test_buf_append(&buf, &n, &cap, chunk, (size_t)got);
  close(fd);
  if (rc == 0 && !buf)
    rc = bw_test_buf_append(&buf, &n, &cap, "", 0); /* an empty file */
  if (rc != 0) {
    free(buf);
    return NULL;
  }
  if (len)
    *len = n;
  return buf;
}

static int remove_entry(const char *path, const struct stat *sb, int flag,
                        struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  remove(path);
  return 0;
}

void bw_test_remove_tree(const char *dir) {
  nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static bool port_is_free(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return false;
  struct sockaddr_in addr = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0;
  close(fd);
  return ok;
}

int bw_test_free_port(int first, int last, bool (*taken)(int port)) {
  unsigned span = (unsigned)(last - first + 1);
  unsigned offset = ((unsigned)getpid() * 7919u + (unsigned)time(NULL)) % span;
  for (unsigned i = 0; i < span; i++) {
    int port = first + (int)((offset + i) % span);
    if ((!taken || !taken(port)) && port_is_free(port))
      return port;
  }
  return -1;
}

static bool find_script_above(const char *start, char out[PATH_MAX]) {
  char dir[PATH_MAX];
  if (!start || !realpath(start, dir))
    return false;
  for (;;) {
    snprintf(out, PATH_MAX, "%.*s/scripts/broadway-run", PATH_MAX - 30, dir);
    if (access(out, X_OK) == 0)
      return true;
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
      return false;
    *slash = '\0';
  }
}

bool bw_test_find_run_script(char out[PATH_MAX]) {
  const char *explicit_path = getenv("BROADWAY_RUN");
  if (explicit_path && *explicit_path) {
    snprintf(out, PATH_MAX, "%s", explicit_path);
    return access(out, X_OK) == 0;
  }
  return find_script_above(getenv("BROADWAY_BIN"), out) ||
         find_script_above(".", out);
}

void bw_test_set_env_int(const char *name, int value) {
  char buf[32];
  snprintf(buf, sizeof buf, "%d", value);
  setenv(name, buf, 1);
}

void bw_test_redirect_output(const char *log_path) {
  int null = open("/dev/null", O_RDONLY);
  int log = log_path ? open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644)
                     : open("/dev/null", O_WRONLY);
  if (null < 0 || log < 0)
    _exit(126);
  dup2(null, STDIN_FILENO);
  dup2(log, STDOUT_FILENO);
  dup2(log, STDERR_FILENO);
  for (int fd = 3; fd < 1024; fd++)
    close(fd);
}

int bw_test_buf_append(char **data, size_t *len, size_t *cap, const char *src,
                       size_t n) {
  if (*len + n + 1 > *cap) {
    size_t bigger_cap = *cap ? *cap : 4096;
    while (bigger_cap < *len + n + 1)
      bigger_cap *= 2;
    char *bigger = realloc(*data, bigger_cap);
    if (!bigger)
      return -1;
    *data = bigger;
    *cap = bigger_cap;
  }
  memcpy(*data + *len, src, n);
  *len += n;
  (*data)[*len] = '\0';
  return 0;
}

int bw_test_connect_local(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in addr = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

void bw_test_event(int fd, const char *fmt, ...) {
  char line[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line - 1, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  if ((size_t)n > sizeof line - 2)
    n = (int)sizeof line - 2;
  line[n++] = '\n';
  if (write(fd, line, (size_t)n) != n)
    _exit(90);
}
