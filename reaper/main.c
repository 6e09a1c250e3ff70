/* broadway-reaper - declares dead the graders that stopped heartbeating and
 * puts their jobs back in the queue (common/reap.h does the work).
 *
 *   broadway-reaper [-c CONFIG] [--once]          one pass (the default)
 *   broadway-reaper [-c CONFIG] --loop SECONDS    a pass every SECONDS
 *
 * Exit status of a pass: 0 done, 1 bad config, 2 bad usage, 3 the
 * database is unreachable, 4 the database answers but the pass failed (slow:
 * a call took over reaper_timeout_ms, or a command failed).  It logs where
 * the pool logs (log_file) and runs as its user (when started as root).
 *
 * Production: broadway-reaper.timer (every 30 s), or from cron:
 *
 *   * * * * * /usr/local/bin/broadway-reaper --once
 *
 * Why cron and --once there: nothing has to stay up for the reaper to keep
 * working (a crashed or OOM-killed loop would silently stop re-queueing),
 * each pass opens a fresh database connection, and a failed pass is a
 * non-zero exit cron reports.  Any number of reapers may run at once, so an
 * overlapping cron pass is harmless.  A minute is the finest cron can do: a
 * dead grader's jobs then wait at most 2 heartbeat intervals plus a minute.
 * When that is too slow (short heartbeats, as in `make run` and the tests),
 * run `--loop N` with N at most half the heartbeat: a grader that stopped
 * is then noticed within 3 intervals.  scripts/broadway-run does that.  A
 * --loop reaper also watches the database (bw_reap_watch_t): time it was
 * away does not count against graders, whose heartbeats could not be
 * recorded then; a --once pass cannot tell and trusts the heartbeats. */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "daemon.h"
#include "db.h"
#include "log.h"
#include "reap.h"
#include "version.h"

enum { EXIT_CONFIG = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3, EXIT_SLOW = 4 };

typedef struct args {
  const char *config; /* NULL: no file */
  int loop_seconds;   /* 0: one pass */
} args_t;

static void usage(FILE *out) {
  fprintf(out, "usage: broadway-reaper [-c CONFIG] [--once | --loop SECONDS]\n"
               "Declares dead the graders that stopped heartbeating and puts "
               "their jobs back\nin the queue; repairs what crashed processes "
               "left behind.\n"
               "  -c CONFIG        the config file (default ./broadway.conf if "
               "present,\n"
               "                   else " BW_SYSTEM_CONFIG ")\n"
               "  --once           one pass (the default)\n"
               "  --loop SECONDS   a pass every SECONDS until SIGTERM\n"
               "  --version, --help\n"
               "Exit status: 0 done, 1 bad config, 2 bad usage, 3 database "
               "unreachable,\n4 database slow or failing.  See "
               "broadway-reaper(8).\n");
}

/* Returns 0, 1 for "exit 0 (help)", -1 for a usage error. */
static int parse_args(int argc, char **argv, args_t *args) {
  memset(args, 0, sizeof *args);
  args->config = bw_config_default_path();
  for (int i = 1; i < argc; i++) {
    char *end;
    if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
      args->config = argv[++i];
    } else if (strcmp(argv[i], "--once") == 0) {
      args->loop_seconds = 0;
    } else if (strcmp(argv[i], "--loop") == 0 && i + 1 < argc) {
      long n = strtol(argv[++i], &end, 10);
      if (*end != '\0' || n < 1 || n > 86400) {
        fprintf(stderr, "broadway-reaper: --loop wants 1..86400 seconds\n");
        return -1;
      }
      args->loop_seconds = (int)n;
    } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      usage(stdout);
      return 1;
    } else if (strcmp(argv[i], "--version") == 0) {
      printf("broadway-reaper %s\n", BW_VERSION);
      return 1;
    } else {
      usage(stderr);
      return -1;
    }
  }
  return 0;
}

/* A pass failed: was the database away, or there but too slow for one of
 * the pass's calls?  A ping tells (server selection fails within
 * db_timeout_ms when nothing answers).  Returns the exit status. */
static int reap_failure(bw_db_t *db, const bw_config_t *cfg,
                        const bw_error_t *why) {
  bw_error_t ping = {.code = 0, .message = ""};

  if (bw_db_ping(db, &ping) < 0) {
    bw_log_error("pass failed: database unreachable (%s)", why->message);
    return EXIT_UNREACHABLE;
  }
  bw_log_error("pass failed: the database answers but is slow or failing "
               "(a call over reaper_timeout_ms = %d?): %s",
               cfg->reaper_timeout_ms, why->message);
  return EXIT_SLOW;
}

/* One pass; logs what it did when it did anything.  `repair` adds the
 * scans for what crashed processes left behind (bw_reap_repair), which cost
 * more than the dead-grader check and are not needed every tick.  `watch`
 * (a --loop reaper's, else NULL) learns whether the database answered.
 * Returns 0 or the exit status of a failure. */
static int reap_pass(bw_db_t *db, const bw_config_t *cfg,
                     bw_reap_watch_t *watch, bool repair) {
  bw_reap_stats_t stats = {0};
  bw_error_t error = {.code = 0, .message = ""};
  int rc = bw_reap_dead(db, cfg, watch, &stats, &error);

  if (rc == 0 && repair)
    rc = bw_reap_repair(db, cfg, &stats, &error);
  if (watch != NULL)
    bw_reap_watch_pass(watch, cfg, rc == 0);
  if (rc < 0)
    return reap_failure(db, cfg, &error);
  /* Dead graders stay dead (and counted) pass after pass: worth a line only
   * when this pass did something about them. */
  if (stats.requeued || stats.failed || stats.repaired || stats.pruned ||
      stats.lanes)
    bw_log_info("dead graders %d, jobs re-queued %d, failed %d, repaired %d, "
                "results pruned %d, lanes opened for strays %d",
                stats.dead_workers, stats.requeued, stats.failed,
                stats.repaired, stats.pruned, stats.lanes);
  if (stats.deferred)
    bw_log_info("graders past their heartbeat deadline %d: not declared dead "
                "yet, the database has been up for less than 2 intervals",
                stats.deferred);
  return 0;
}

/* Signals are taken synchronously (blocked, then sigtimedwait), so a stop
 * never interrupts a pass half-way: it ends the sleep between passes. */
static void block_stop_signals(sigset_t *set) {
  static const int stops[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1};

  sigemptyset(set);
  for (size_t i = 0; i < sizeof stops / sizeof stops[0]; i++) {
    signal(stops[i], SIG_DFL); /* bash starts background jobs ignoring INT */
    sigaddset(set, stops[i]);
  }
  sigprocmask(SIG_BLOCK, set, NULL);
}

static void reap_loop(bw_db_t *db, const bw_config_t *cfg, int seconds) {
  struct timespec interval = {.tv_sec = seconds, .tv_nsec = 0};
  int repair_every = cfg->claim_grace / 2 > seconds ? cfg->claim_grace / 2 : 1;
  time_t last_repair = 0;
  bw_reap_watch_t watch = {.every_ms = seconds * 1000LL};
  sigset_t stops;

  block_stop_signals(&stops);
  bw_log_info("reaping every %d s, repairing every %d s", seconds,
              repair_every > seconds ? repair_every : seconds);
  for (;;) {
    int sig;
    bool repair = time(NULL) - last_repair >= repair_every;
    if (repair)
      last_repair = time(NULL);
    reap_pass(db, cfg, &watch, repair); /* a failed pass: retried next tick */
    sig = sigtimedwait(&stops, NULL, &interval);
    if (sig == SIGUSR1) { /* logrotate moved log_file */
      bw_error_t error;
      if (bw_daemon_log(cfg, &error) < 0)
        bw_log_error("%s", error.message);
      continue;
    }
    if (sig > 0) {
      bw_log_info("%s: stopping", strsignal(sig));
      return;
    }
  }
}

int main(int argc, char **argv) {
  static bw_config_t cfg;
  bw_error_t error = {.code = 0, .message = ""};
  bw_db_t *db = NULL;
  args_t args;
  int rc;

  bw_log_init("reaper");
  rc = parse_args(argc, argv, &args);
  if (rc != 0)
    return rc > 0 ? 0 : EXIT_USAGE;
  if (bw_config_load(&cfg, args.config, &error) < 0 ||
      bw_daemon_log(&cfg, &error) < 0 || bw_daemon_drop(&cfg, &error) < 0) {
    bw_log_error("config: %s", error.message);
    return EXIT_CONFIG;
  }
  /* Its scans are longer than any request's: a slow database is not a
   * down one (server selection keeps db_timeout_ms). */
  cfg.socket_timeout_ms = cfg.reaper_timeout_ms;
  if (bw_db_open(&db, &cfg, &error) < 0) {
    bw_log_error("config: %s", error.message);
    mongoc_cleanup(); /* bw_db_open ran mongoc_init() before failing */
    return EXIT_CONFIG;
  }
  rc = 0;
  if (args.loop_seconds > 0)
    reap_loop(db, &cfg, args.loop_seconds);
  else
    rc = reap_pass(db, &cfg, NULL, true);
  bw_db_close(db);
  mongoc_cleanup();
  return rc;
}
