#include "worker_loop.h"

#include <errno.h>
#include <malloc.h>
#include <fcgiapp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "beats.h"
#include "db.h"
#include "log.h"
#include "longpoll.h"
#include "request.h"
#include "router.h"
#include "stream.h"

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

/* Bodies over this many bytes are followed by a malloc_trim(). */
#define WORKER_TRIM_AFTER (64 * 1024)

/* Serves one request.  Returns true when a long poll took it over (the
 * FCGX_Request then belongs to longpoll.c). */
static bool worker_serve(FCGX_Request *fcgx, const bw_config_t *cfg,
                         const bw_courses_t *courses, bw_db_t *db) {
  struct timespec start;
  bw_request_t req;
  bool big;

  clock_gettime(CLOCK_MONOTONIC, &start);
  bw_request_init(&req, fcgx);
  bw_router_dispatch(cfg, courses, db, &req);
  if (req.parked)
    return true;
  big = req.body_len > WORKER_TRIM_AFTER;
  bw_request_finish(&req, cfg->max_body, &start);
  /* A large body (a run of thousands of students) grows the heap by tens of
   * MB that glibc would keep: give it back, so a worker's memory stays flat
   * however large the runs it has served. */
  if (big)
    malloc_trim(0);
  return false;
}

/* Room for the listening socket and every parked long poll. */
#define WORKER_POLLFDS 1024

/* The sooner of two timeouts in ms (-1: none). */
static int worker_sooner(int a, int b) {
  return a < 0 ? b : b < 0 ? a : a < b ? a : b;
}

/* Sleeps until the listening socket is readable, a parked long poll's or
 * stream's connection hangs up, a tick is due, a write of heartbeats is due
 * (beats.h), or a stop signal came in; then runs the long polls', the
 * streams' and the heartbeats' ticks.  Returns 1 when there may be a
 * connection to accept, 0 to look at the stop flag again, -1 when polling
 * itself fails. */
static int worker_wait(int listen_fd, const bw_config_t *cfg, bw_db_t *db,
                       const sigset_t *waiting) {
  static struct pollfd fds[WORKER_POLLFDS];
  int timeout = worker_sooner(
      worker_sooner(bw_longpoll_timeout_ms(), bw_stream_timeout_ms()),
      bw_beats_timeout_ms(cfg));
  int n, parked, streams;
  struct timespec ts = {timeout / 1000, (timeout % 1000) * 1000000L};

  if (worker_stopping)
    return 0;
  fds[0] = (struct pollfd){.fd = listen_fd, .events = POLLIN};
  parked = bw_longpoll_pollfds(fds + 1, WORKER_POLLFDS - 1);
  streams = bw_stream_pollfds(fds + 1 + parked, WORKER_POLLFDS - 1 - parked);
  n = ppoll(fds, (nfds_t)(parked + streams) + 1, timeout < 0 ? NULL : &ts,
            waiting);
  if (n < 0 && errno != EINTR) {
    bw_log_error("poll: %s", strerror(errno));
    return -1;
  }
  if (n < 0)
    return 0;
  bw_longpoll_tick(fds + 1, parked);
  bw_stream_tick(fds + 1 + parked, streams);
  bw_beats_tick(db, cfg);
  return (fds[0].revents & POLLIN) != 0 && !worker_stopping ? 1 : 0;
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

/* A fresh FCGX_Request on the heap: a parked one keeps its address (its
 * streams point back at it). */
static FCGX_Request *worker_new_request(int listen_fd) {
  FCGX_Request *fcgx = malloc(sizeof *fcgx);
  if (fcgx != NULL)
    FCGX_InitRequest(fcgx, listen_fd, 0);
  return fcgx;
}

int bw_fcgi_worker_run(int listen_fd, const bw_config_t *cfg,
                       const bw_courses_t *courses, pid_t parent) {
  FCGX_Request *fcgx;
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
  bw_longpoll_start(cfg, db);
  fcgx = worker_new_request(listen_fd);
  while (!worker_stopping && fcgx != NULL) {
    int got = worker_wait(listen_fd, cfg, db, &waiting);
    if (got > 0)
      got = worker_accept(fcgx);
    if (got < 0) {
      status = 1;
      break;
    }
    if (got == 0)
      continue;
    if (worker_serve(fcgx, cfg, courses, db))
      fcgx = worker_new_request(listen_fd);
  }
  if (fcgx == NULL) {
    bw_log_error("worker: out of memory");
    status = 1;
  }
  bw_stream_stop();
  bw_longpoll_stop();
  bw_beats_flush(db, cfg); /* what it answered, before it goes */
  if (fcgx != NULL)
    FCGX_Free(fcgx, 1);
  free(fcgx);
  bw_db_close(db);
  mongoc_cleanup();
  return status;
}
