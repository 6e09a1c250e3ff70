/* broadway-fcgi - the Broadway API as a FastCGI program behind nginx.
 *
 *   broadway-fcgi [-c CONFIG]                  serve (parent + workers)
 *   broadway-fcgi [-c CONFIG] --apply-schema DIR
 *                 create collections and indexes from DIR/<name>.json,
 *                 waiting up to 30 s for the database to come up; exit 0/1
 *   broadway-fcgi [-c CONFIG] --print-config   the effective settings that
 *                 scripts/broadway-run needs, as key=value lines (no token)
 *
 * CONFIG defaults to ./broadway.conf when that file exists, else to
 * /etc/broadway/broadway.conf when that one does; BROADWAY_* environment
 * variables override it (see common/config.h).  Signals: see pool.h. */
#include <fcgiapp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "beats.h"
#include "config.h"
#include "course.h"
#include "daemon.h"
#include "db.h"
#include "lane.h"
#include "listen.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "router.h"
#include "version.h"

#define SCHEMA_WAIT_S 30

typedef enum { MODE_SERVE, MODE_APPLY_SCHEMA, MODE_PRINT_CONFIG } run_mode_t;

typedef struct args {
  const char *config; /* NULL: no file */
  const char *schema_dir;
  run_mode_t mode;
} args_t;

static void usage(FILE *out) {
  fprintf(out,
          "usage: broadway-fcgi [-c CONFIG] [--apply-schema DIR | "
          "--print-config]\n"
          "The Broadway API as a pool of FastCGI processes behind nginx or "
          "Apache.\n"
          "  -c CONFIG        the config file (default ./broadway.conf if "
          "present,\n"
          "                   else " BW_SYSTEM_CONFIG ")\n"
          "  --apply-schema DIR  create collections and indexes, then exit\n"
          "  --print-config   the effective settings as key=value, then exit\n"
          "  --version, --help\n"
          "Signals: TERM stop gracefully, HUP reload the config, USR1 reopen "
          "log_file.\n"
          "See broadway-fcgi(8) and docs/DEPLOY.md.\n");
}

/* Returns 0, 1 for "exit 0 (help)", -1 for a usage error. */
static int parse_args(int argc, char **argv, args_t *args) {
  memset(args, 0, sizeof *args);
  args->config = bw_config_default_path();
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
    } else if (strcmp(argv[i], "--version") == 0) {
      printf("broadway-fcgi %s\n", BW_VERSION);
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
  printf("listen=%s\n", cfg->listen);
  printf("log_file=%s\n", cfg->log_file);
  printf("listen_host=%s\n", cfg->listen_host);
  printf("port=%d\n", cfg->port);
  printf("max_body=%zu\n", cfg->max_body);
  printf("heartbeat=%d\n", cfg->heartbeat);
  printf("workers=%d\n", cfg->workers);
  printf("db_name=%s\n", cfg->db_name);
  return fflush(stdout) == 0 ? 0 : 1;
}

/* The config as the pool needs it: what bw_config_load checks, and what a
 * worker would otherwise find out only after the fork, restarting forever. */
static int load_config(bw_config_t *cfg, const char *path, bw_error_t *error) {
  int rc = bw_config_load(cfg, path, error);

  if (rc == 0)
    rc = bw_db_check_uri(cfg, error);
  if (rc == 0 && cfg->token[0] == '\0')
    rc = bw_error_set(error, BW_EINVAL,
                      "token: none; set BROADWAY_TOKEN or write %s/token",
                      cfg->data_dir);
  return rc;
}

/* Everything that can fail for a reason the operator must fix fails here,
 * before any worker starts, naming the key. */
static int serve(const bw_config_t *cfg, const char *config_path) {
  bw_error_t error = {.code = 0, .message = ""};
  bw_courses_t *courses = NULL;
  bw_listen_t listener;
  int rc;

  if (bw_daemon_log(cfg, &error) < 0 ||
      bw_daemon_make_data_dir(cfg, &error) < 0) {
    bw_log_error("config: %s", error.message);
    return 1;
  }
  /* Read by the parent (as root, if it starts as root), here and on
   * SIGHUP; the workers use the parent's copy. */
  if (bw_courses_load(cfg->courses_file, &courses, &error) < 0) {
    bw_log_error("courses_file: %s", error.message);
    return 1;
  }
  if (cfg->courses_file[0] != '\0')
    bw_log_info("courses: %zu from %s", bw_courses_count(courses),
                cfg->courses_file);
  /* Before FCGX_Init, which installs its own handlers only where ours are
   * missing: a hung-up nginx must be an EPIPE, and SIGUSR1 must not leave a
   * worker unable to accept (the pool takes SIGUSR1 for itself). */
  signal(SIGPIPE, SIG_IGN);
  signal(SIGUSR1, SIG_IGN);
  if (FCGX_Init() != 0) {
    bw_log_error("FCGX_Init failed");
    bw_courses_free(courses);
    return 1;
  }
  if (bw_listen_open(&listener, cfg, &error) < 0) {
    bw_log_error("config: %s", error.message);
    bw_courses_free(courses);
    return 1;
  }
  if (bw_daemon_drop(cfg, &error) < 0 ||
      bw_daemon_check_data_dir(cfg, &error) < 0) {
    bw_log_error("config: %s", error.message);
    bw_listen_close(&listener);
    bw_courses_free(courses);
    return 1;
  }
  /* Shared by the whole pool: mapped before the workers are forked. */
  if (bw_metrics_init(bw_router_route_count()) < 0)
    bw_log_warn("metrics: no shared memory: request counts are off");
  /* Fair share: the pool takes turns as one (common/lane.h). */
  if (bw_lane_share_turns() < 0)
    bw_log_warn("lanes: no shared memory: each worker takes its own turns");
  if (bw_beats_init() < 0)
    bw_log_warn("heartbeats: no shared memory: each one is written alone");
  rc = bw_fcgi_pool_run(listener.fd, listener.name, cfg, courses, load_config,
                        config_path);
  bw_listen_close(&listener);
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
  rc = args.mode == MODE_SERVE ? load_config(&cfg, args.config, &error)
                               : bw_config_load(&cfg, args.config, &error);
  if (rc < 0) {
    bw_log_error("config: %s", error.message);
    return 1;
  }
  switch (args.mode) {
  case MODE_APPLY_SCHEMA:
    return apply_schema(&cfg, args.schema_dir);
  case MODE_PRINT_CONFIG:
    return print_config(&cfg);
  default:
    return serve(&cfg, args.config);
  }
}
