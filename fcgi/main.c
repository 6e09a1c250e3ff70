/* broadway-fcgi - the Broadway API as a FastCGI program behind nginx.
 *
 *   broadway-fcgi [-c CONFIG]                  serve (parent + workers)
 *   broadway-fcgi [-c CONFIG] --apply-schema DIR
 *                 create collections and indexes from DIR/<name>.json,
 *                 waiting up to 30 s for the database to come up; exit 0/1
 *   broadway-fcgi [-c CONFIG] --print-config   the effective settings that
 *                 scripts/broadway-run needs, as key=value lines (no token)
 *
 * CONFIG defaults to ./broadway.conf when that file exists; BROADWAY_*
 * environment variables override it (see common/config.h). */
#include <errno.h>
#include <fcgiapp.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "db.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "router.h"

#define DEFAULT_CONFIG "broadway.conf"
#define SCHEMA_WAIT_S 30
#define LISTEN_BACKLOG 1024

typedef enum { MODE_SERVE, MODE_APPLY_SCHEMA, MODE_PRINT_CONFIG } run_mode_t;

typedef struct args {
  const char *config; /* NULL: no file */
  const char *schema_dir;
  run_mode_t mode;
} args_t;

static void usage(FILE *out) {
  fprintf(out, "usage: broadway-fcgi [-c CONFIG] [--apply-schema DIR | "
               "--print-config]\n");
}

/* Returns 0, 1 for "exit 0 (help)", -1 for a usage error. */
static int parse_args(int argc, char **argv, args_t *args) {
  memset(args, 0, sizeof *args);
  if (access(DEFAULT_CONFIG, F_OK) == 0)
    args->config = DEFAULT_CONFIG;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
      args->config = argv[++i];
    } else if (strcmp(argv[i], "--apply-schema") == 0 && i + 1 < argc) {
      args->mode = MODE_APPLY_SCHEMA;
      args->schema_dir = argv[++i];
    } else if (strcmp(argv[i], "--print-config") == 0) {
      args->mode = MODE_PRINT_CONFIG;
    } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      usage(stdout);
      return 1;
    } else {
      usage(stderr);
      return -1;
    }
  }
  return 0;
}

static void sleep_ms(long ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

/* At start-up the database may still be coming up: retry connection
 * failures (with a fresh client each time, so no driver back-off delays the
 * next try) until SCHEMA_WAIT_S have passed; a bad schema file fails at
 * once. */
static int apply_schema(const bw_config_t *cfg, const char *dir) {
  time_t deadline = time(NULL) + SCHEMA_WAIT_S;
  bw_error_t error = {.code = 0, .message = ""};
  bool warned = false;
  int rc;

  for (;;) {
    bw_db_t *db = NULL;
    rc = bw_db_open(&db, cfg, &error);
    if (rc == 0) {
      rc = bw_db_apply_schema(db, dir, &error);
      bw_db_close(db);
    }
    if (rc == 0 || rc != BW_EDB || time(NULL) >= deadline)
      break;
    if (!warned)
      bw_log_info("waiting for the database: %s", error.message);
    warned = true;
    sleep_ms(500);
  }
  mongoc_cleanup();
  if (rc < 0) {
    bw_log_error("schema: %s", error.message);
    return 1;
  }
  bw_log_info("schema applied from %s", dir);
  return 0;
}

static int print_config(const bw_config_t *cfg) {
  printf("data_dir=%s\n", cfg->data_dir);
  printf("socket_path=%s\n", cfg->socket_path);
  printf("listen_host=%s\n", cfg->listen_host);
  printf("port=%d\n", cfg->port);
  printf("max_body=%zu\n", cfg->max_body);
  printf("heartbeat=%d\n", cfg->heartbeat);
  printf("workers=%d\n", cfg->workers);
  printf("db_name=%s\n", cfg->db_name);
  return fflush(stdout) == 0 ? 0 : 1;
}

/* Is a server already accepting on this socket?  (A file left behind by a
 * killed server refuses connections; that one we may replace.) */
static bool socket_in_use(const char *path) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  bool in_use;

  if (fd < 0)
    return false;
  memcpy(sa.sun_path, path, strlen(path) + 1);
  in_use = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
  close(fd);
  return in_use;
}

/* The socket directory is private (0700): nginx's workers run as our user
 * and are the only other party that may connect. */
static int make_private_dir(const char *socket_path) {
  char copy[BW_PATH_MAX];
  const char *dir;

  snprintf(copy, sizeof copy, "%s", socket_path);
  dir = dirname(copy);
  if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
    bw_log_error("socket_path: cannot create %s: %s", dir, strerror(errno));
    return -1;
  }
  return 0;
}

/* Opens the FastCGI socket: 0600, non-blocking (the workers poll it and race
 * to accept; the loser gets EAGAIN instead of blocking). */
static int open_listen_socket(const char *path) {
  struct sockaddr_un sa;
  mode_t old_mask;
  int fd;

  if (strlen(path) >= sizeof sa.sun_path || strchr(path, ':') != NULL) {
    /* libfcgi reads "host:port" as TCP */
    bw_log_error("socket_path: must be under %zu bytes and contain no ':': "
                 "%s",
                 sizeof sa.sun_path, path);
    return -1;
  }
  if (make_private_dir(path) < 0)
    return -1;
  if (socket_in_use(path)) {
    bw_log_error("another server is already listening on %s", path);
    return -1;
  }
  if (unlink(path) < 0 && errno != ENOENT) {
    bw_log_error("cannot remove stale %s: %s", path, strerror(errno));
    return -1;
  }
  old_mask = umask(077);
  fd = FCGX_OpenSocket(path, LISTEN_BACKLOG);
  umask(old_mask);
  if (fd < 0) {
    bw_log_error("cannot listen on %s", path);
    return -1;
  }
  chmod(path, 0600);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  return fd;
}

static int serve(const bw_config_t *cfg) {
  int fd, rc;

  if (cfg->token[0] == '\0') {
    bw_log_error("no token: set BROADWAY_TOKEN or write %s/token",
                 cfg->data_dir);
    return 1;
  }
  /* Before FCGX_Init, which installs its own handlers only where ours are
   * missing: a hung-up nginx must be an EPIPE, and SIGUSR1 must not leave a
   * worker unable to accept. */
  signal(SIGPIPE, SIG_IGN);
  signal(SIGUSR1, SIG_IGN);
  if (FCGX_Init() != 0) {
    bw_log_error("FCGX_Init failed");
    return 1;
  }
  fd = open_listen_socket(cfg->socket_path);
  if (fd < 0)
    return 1;
  /* Shared by the whole pool: mapped before the workers are forked. */
  if (bw_metrics_init(bw_router_route_count()) < 0)
    bw_log_warn("metrics: no shared memory: request counts are off");
  rc = bw_fcgi_pool_run(fd, cfg);
  close(fd);
  unlink(cfg->socket_path);
  return rc;
}

int main(int argc, char **argv) {
  static bw_config_t cfg;
  bw_error_t error = {.code = 0, .message = ""};
  args_t args;
  int rc;

  bw_log_init("fcgi");
  rc = parse_args(argc, argv, &args);
  if (rc != 0)
    return rc > 0 ? 0 : 2;
  if (bw_config_load(&cfg, args.config, &error) < 0) {
    bw_log_error("config: %s", error.message);
    return 1;
  }
  switch (args.mode) {
  case MODE_APPLY_SCHEMA:
    return apply_schema(&cfg, args.schema_dir);
  case MODE_PRINT_CONFIG:
    return print_config(&cfg);
  default:
    return serve(&cfg);
  }
}
