#include "worker_loop.h"

#include <errno.h>
#include <malloc.h>
#include <fcgiapp.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "log.h"
#include "request.h"
#include "router.h"

static volatile sig_atomic_t worker_stopping;

static void worker_on_stop(int signo) {
  (void)signo;
  worker_stopping = 1;
}

/* Installs the stop handler and blocks the stop signals; *waiting gets the
 * mask to use while waiting for a connection (nothing blocked). */
static void worker_signals(sigset_t *waiting) {
  static const int stops[] = {SIGTERM, SIGINT, SIGHUP};
  struct sigaction sa;
  sigset_t blocked;

  memset(&sa, 0, sizeof sa);
  sa.sa_handler = worker_on_stop;
  sigemptyset(&sa.sa_mask);
  sigemptyset(&blocked);
  for (size_t i = 0; i < sizeof stops / sizeof stops[0]; i++) {
    sigaction(stops[i], &sa, NULL);
    sigaddset(&blocked, stops[i]);
  }
  signal(SIGCHLD, SIG_DFL);
  signal(SIGPIPE, SIG_IGN); /* nginx hanging up is an EPIPE, not a death */
  sigprocmask(SIG_SETMASK, &blocked, NULL);
  sigemptyset(waiting);
}

/* For the access log: request text may hold any byte, log lines may not. */
static void log_safe(char *out, size_t size, const char *text) {
  size_t i = 0;
  for (; i + 1 < size && text[i] != '\0'; i++) {
    unsigned char c = (unsigned char)text[i];
    out[i] = c < 0x20 || c >= 0x7f || c == '"' ? '?' : (char)c;
  }
  out[i] = '\0';
}

/* Bodies over this many bytes are followed by a malloc_trim(). */
#define WORKER_TRIM_AFTER (64 * 1024)

static long elapsed_ms(const struct timespec *start) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (long)(now.tv_sec - start->tv_sec) * 1000 +
         (now.tv_nsec - start->tv_nsec) / 1000000;
}

static void worker_serve(FCGX_Request *fcgx, const bw_config_t *cfg,
                         bw_db_t *db) {
  char method[16], path[BW_REQUEST_PATH_MAX];
  struct timespec start;
  bw_request_t req;
  bool big;

  clock_gettime(CLOCK_MONOTONIC, &start);
  bw_request_init(&req, fcgx);
  bw_router_dispatch(cfg, db, &req);
  big = req.body_len > WORKER_TRIM_AFTER;
  bw_request_cleanup(&req, cfg->max_body);
  /* Copied out first: req.method lives in libfcgi's params, which
   * FCGX_Finish_r frees.  The reply goes out before we spend time logging. */
  log_safe(method, sizeof method, req.method);
  log_safe(path, sizeof path, req.path_too_long ? "(too long)" : req.path);
  FCGX_Finish_r(fcgx);
  bw_log_info("%s %s %d %ldms", method, path, req.status, elapsed_ms(&start));
  /* A large body (a run of thousands of students) grows the heap by tens of
   * MB that glibc would keep: give it back, so a worker's memory stays flat
   * however large the runs it has served. */
  if (big)
    malloc_trim(0);
}

/* Sleeps until the listening socket is readable or a stop signal came in.
 * Returns 1 when there may be a connection to accept, 0 to look at the stop
 * flag again, -1 when polling itself fails. */
static int worker_wait(int listen_fd, const sigset_t *waiting) {
  struct pollfd pfd = {.fd = listen_fd, .events = POLLIN};
  int n;

  if (worker_stopping)
    return 0;
  n = ppoll(&pfd, 1, NULL, waiting);
  if (n < 0 && errno != EINTR) {
    bw_log_error("poll: %s", strerror(errno));
    return -1;
  }
  return n > 0 && !worker_stopping ? 1 : 0;
}

/* Accepts one connection.  The listening socket is non-blocking and shared
 * by all workers, so losing the race for a connection is EAGAIN: normal.
 * Returns 1 with a request, 0 for "wait again", -1 when the socket is
 * unusable. */
static int worker_accept(FCGX_Request *fcgx) {
  int rc = FCGX_Accept_r(fcgx);

  if (rc >= 0)
    return 1;
  switch (-rc) {
  case EAGAIN:
  case EINTR:
  case ECONNABORTED:
    return 0;
  case EMFILE:
  case ENFILE:
  case ENOBUFS:
  case ENOMEM:
    bw_log_warn("accept: %s; pausing", strerror(-rc));
    usleep(100 * 1000);
    return 0;
  default:
    bw_log_error("accept: %s", rc == -9999 ? "failed" : strerror(-rc));
    return -1;
  }
}

int bw_fcgi_worker_run(int listen_fd, const bw_config_t *cfg, pid_t parent) {
  FCGX_Request fcgx;
  bw_error_t error;
  sigset_t waiting;
  bw_db_t *db;
  int status = 0;

  worker_signals(&waiting);
  /* A worker outliving its parent would serve on with nobody to stop it. */
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != parent)
    return 0;
  if (bw_db_open(&db, cfg, &error) < 0) {
    bw_log_error("database: %s", error.message);
    mongoc_cleanup(); /* bw_db_open ran mongoc_init() before failing */
    return 1;
  }
  FCGX_InitRequest(&fcgx, listen_fd, 0);
  while (!worker_stopping) {
    int got = worker_wait(listen_fd, &waiting);
    if (got > 0)
      got = worker_accept(&fcgx);
    if (got < 0) {
      status = 1;
      break;
    }
    if (got == 0)
      continue;
    worker_serve(&fcgx, cfg, db);
  }
  FCGX_Free(&fcgx, 1);
  bw_db_close(db);
  mongoc_cleanup();
  return status;
}
