/* bw-stream - what waiting Server-Sent Events streams cost, and how soon
 * their events arrive (make bench, phase stream; docs/BENCHMARKS.md).
 *
 *   bw-stream --streams 200 --idle-seconds 30 --events 20 --pgid P
 *
 * Needs BENCH_URL, BENCH_TOKEN (the stack) and BROADWAY_DATA or
 * BROADWAY_CONFIG (its database: the jobs are moved through common/, as
 * another API host would move them).
 *
 *   1. the CPU the stack's process groups use with nothing waiting, as a
 *      share of one core (the floor: FerretDB, PostgreSQL, the reaper);
 *   2. S + K Gen 3 jobs of one course waiting in the queue (a run made
 *      over HTTP, its hand-outs pushed with gen 3 and a course), one
 *      stream open on each through nginx (raw sockets, one thread); once
 *      every stream has its first event: the stack's CPU while they wait;
 *   3. K times: a grader takes a job (bw_job_poll), then its result
 *      (bw_job_report); the time from each call's return (the change is
 *      stored and signalled) to STARTED, and to FINISHED, arriving on that
 *      job's stream.  The change comes from outside the stream's API host,
 *      so it reaches the stream through the host's read of the signals
 *      (every 50 ms).
 * Prints RESULT lines. */
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "client.h"
#include "config.h"
#include "db.h"
#include "job.h"
#include "queue.h"
#include "worker.h"

#define COURSE "bench"

typedef struct options {
  const char *url, *token;
  int streams, events;
  double idle_seconds;
  long pgids[BENCH_MAX_PGIDS];
  int n_pgids;
} options_t;

typedef struct stream {
  int fd;
  char job[25];
  char tail[256]; /* the last bytes read: enough to find an event */
  _Atomic bool first, started, finished;
  _Atomic double t_started, t_finished;
} stream_t;

static stream_t *streams;
static int n_streams;
static atomic_long errors;

/* ---- the streams' reader ----------------------------------------------- */

/* Notes the events in what came (an event never spans two reads: each is
 * one flush, one chunk; tail keeps a little of the last read anyway). */
static void stream_saw(stream_t *s, const char *buf, size_t n) {
  char text[4096 + sizeof s->tail];
  size_t t = strlen(s->tail);
  double now = bw_test_now();

  memcpy(text, s->tail, t);
  memcpy(text + t, buf, n);
  text[t + n] = '\0';
  if (strstr(text, "event: status_update") || strstr(text, "\r\n:\n\n"))
    atomic_store(&s->first, true);
  if (!atomic_load(&s->started) && strstr(text, "\"STARTED\"")) {
    atomic_store(&s->t_started, now);
    atomic_store(&s->started, true);
  }
  if (!atomic_load(&s->finished) && strstr(text, "\"FINISHED\"")) {
    atomic_store(&s->t_finished, now);
    atomic_store(&s->finished, true);
  }
  size_t keep = t + n < sizeof s->tail - 1 ? t + n : sizeof s->tail - 1;
  memcpy(s->tail, text + t + n - keep, keep);
  s->tail[keep] = '\0';
}

static void *reader_main(void *arg) {
  struct pollfd *fds = calloc((size_t)n_streams, sizeof *fds);
  char buf[4096];

  (void)arg;
  for (;;) {
    int open = 0;
    for (int i = 0; i < n_streams; i++) {
      fds[i] = (struct pollfd){.fd = streams[i].fd, .events = POLLIN};
      open += streams[i].fd >= 0;
    }
    if (open == 0 || poll(fds, (nfds_t)n_streams, 1000) < 0)
      bw_test_sleep_ms(100);
    for (int i = 0; i < n_streams; i++) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      ssize_t got = read(streams[i].fd, buf, sizeof buf);
      if (got > 0) {
        stream_saw(&streams[i], buf, (size_t)got);
      } else {
        close(streams[i].fd);
        streams[i].fd = -1; /* the reply ended (after FINISHED) */
      }
    }
  }
  return NULL;
}

static int stream_open(stream_t *s, const options_t *opt, int port) {
  char head[512];
  int n;

  s->fd = bw_test_connect_local(port);
  if (s->fd < 0)
    return -1;
  n = snprintf(head, sizeof head,
               "GET /api/v1/stream/%s/%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
               "Accept: text/event-stream\r\nAuthorization: Bearer %s\r\n\r\n",
               COURSE, s->job, port, opt->token);
  return write(s->fd, head, (size_t)n) == n ? 0 : -1;
}

/* ---- the jobs ---------------------------------------------------------- */

typedef struct jobs_ctx {
  int n;
} jobs_ctx_t;

static void jobs_visit(const bson_t *doc, void *arg) {
  jobs_ctx_t *ctx = arg;
  if (ctx->n < n_streams && bw_db_get_oid_hex(doc, "_id", streams[ctx->n].job))
    ctx->n++;
}

/* A run of n_streams students (over HTTP), its jobs queued as Gen 3 jobs
 * of COURSE. */
static int jobs_make(bw_db_t *db, bench_client_t *c) {
  bson_t filter = BSON_INITIALIZER;
  bw_queue_batch_t *batch;
  jobs_ctx_t ctx = {0};
  bw_error_t error;
  bson_oid_t run;
  char run_id[25];
  double unused;
  int rc;

  if (bench_client_create_run(c, n_streams, run_id, &unused) < 0 ||
      !bw_db_oid_parse(run_id, &run))
    return -1;
  BSON_APPEND_OID(&filter, "run_id", &run);
  rc = bw_db_each(bw_db_coll(db, BW_COLL_JOBS), &filter, NULL, jobs_visit,
                  &ctx, &error);
  bson_destroy(&filter);
  if (rc < 0 || ctx.n != n_streams) {
    fprintf(stderr, "bw-stream: %d of %d jobs found\n", ctx.n, n_streams);
    return -1;
  }
  batch = bw_queue_batch_alloc(db);
  for (int i = 0; i < n_streams; i++) {
    bw_handout_t h = {.attempt = 1, .student_count = n_streams, .index = i,
                      .gen = BW_GEN_3};
    bw_db_oid_parse(streams[i].job, &h.job_id);
    h.run_id = run;
    snprintf(h.type, sizeof h.type, "student");
    snprintf(h.course, sizeof h.course, COURSE);
    /* The student's env, as bench_config_alloc's roster has it. */
    bson_t student = BSON_INITIALIZER;
    char netid[16];
    snprintf(netid, sizeof netid, "s%06d", i);
    BSON_APPEND_UTF8(&student, "NETID", netid);
    bw_queue_batch_add(batch, &h, &student);
    bson_destroy(&student);
  }
  rc = bw_queue_batch_push(batch, &error);
  bw_queue_batch_free(batch);
  if (rc < 0)
    fprintf(stderr, "bw-stream: push: %s\n", error.message);
  return rc;
}

/* ---- measurements ------------------------------------------------------ */

static void measure_cpu(const options_t *opt, const char *key) {
  long hz = sysconf(_SC_CLK_TCK);
  long long before = bench_groups_cpu_ticks(opt->pgids, opt->n_pgids);
  double t0 = bw_test_now(), seconds;
  char name[64];

  bw_test_sleep_ms((long)(opt->idle_seconds * 1000));
  seconds = bw_test_now() - t0;
  snprintf(name, sizeof name, "%s_cpu_pct", key);
  bench_result(name, "%.2f",
               (double)(bench_groups_cpu_ticks(opt->pgids, opt->n_pgids) -
                        before) *
                   100.0 / (double)hz / seconds);
}

static int stream_of(const char *job) {
  for (int i = 0; i < n_streams; i++)
    if (strcmp(streams[i].job, job) == 0)
      return i;
  return -1;
}

/* Waits until *flag (10 s at most); the latency from t0, or -1. */
static double wait_flag(_Atomic bool *flag, _Atomic double *when, double t0) {
  double deadline = bw_test_now() + 10;
  while (!atomic_load(flag)) {
    if (bw_test_now() > deadline)
      return -1;
    bw_test_sleep_ms(1);
  }
  return atomic_load(when) - t0;
}

static int measure_events(const options_t *opt, bw_db_t *db) {
  bench_samples_t started, finished;
  bw_config_t cfg;
  bw_error_t error;
  char worker_id[25];
  bson_oid_t worker;
  int rc = 0;

  if (bw_config_load(&cfg, getenv("BROADWAY_CONFIG"), &error) < 0 ||
      bw_worker_register(db, "bench-stream", worker_id, &error) < 0 ||
      !bw_db_oid_parse(worker_id, &worker))
    return -1;
  bench_samples_init(&started);
  bench_samples_init(&finished);
  for (int k = 0; k < opt->events && rc == 0; k++) {
    json_object *payload = NULL, *result;
    bson_oid_t job;
    double t0, lat;
    int i;

    rc = bw_job_poll(db, &cfg, &worker, BW_GEN_3, &payload, &error);
    t0 = bw_test_now();
    i = rc == 0 ? stream_of(json_object_get_string(
                      json_object_object_get(payload, "job_id")))
                : -1;
    json_object_put(payload);
    if (i < 0 || (lat = wait_flag(&streams[i].started, &streams[i].t_started,
                                  t0)) < 0) {
      fprintf(stderr, "bw-stream: no STARTED (%s)\n", error.message);
      rc = -1;
      break;
    }
    bench_samples_add(&started, lat);
    result = json_tokener_parse("{\"success\":true,\"info\":[]}");
    bw_db_oid_parse(streams[i].job, &job);
    rc = bw_job_report(db, &cfg, &job, &worker, result, &error);
    t0 = bw_test_now();
    json_object_put(result);
    if (rc < 0 || (lat = wait_flag(&streams[i].finished,
                                   &streams[i].t_finished, t0)) < 0) {
      fprintf(stderr, "bw-stream: no FINISHED\n");
      rc = -1;
      break;
    }
    bench_samples_add(&finished, lat);
    bw_test_sleep_ms(200);
  }
  if (rc == 0) {
    bench_result_latency("stream_started", &started);
    bench_result_latency("stream_finished", &finished);
  }
  bench_samples_cleanup(&started);
  bench_samples_cleanup(&finished);
  return rc;
}

static int parse_options(int argc, char **argv, options_t *opt) {
  static const struct option longopts[] = {
      {"streams", required_argument, NULL, 's'},
      {"idle-seconds", required_argument, NULL, 'i'},
      {"events", required_argument, NULL, 'k'},
      {"pgid", required_argument, NULL, 'p'},
      {NULL, 0, NULL, 0}};
  int ch;

  *opt = (options_t){.streams = 200, .events = 20, .idle_seconds = 30};
  opt->url = getenv("BENCH_URL");
  opt->token = getenv("BENCH_TOKEN");
  while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    if (ch == 's')
      opt->streams = atoi(optarg);
    else if (ch == 'i')
      opt->idle_seconds = atof(optarg);
    else if (ch == 'k')
      opt->events = atoi(optarg);
    else if (ch == 'p' && opt->n_pgids < BENCH_MAX_PGIDS)
      opt->pgids[opt->n_pgids++] = atol(optarg);
    else
      return -1;
  }
  return opt->url && opt->token && opt->streams > 0 && opt->events > 0 &&
                 opt->n_pgids > 0 && opt->idle_seconds > 0
             ? 0
             : -1;
}

int main(int argc, char **argv) {
  options_t opt;
  bench_client_t c;
  bw_config_t cfg;
  bw_error_t error;
  bw_db_t *db = NULL;
  pthread_t reader;
  int port;

  if (parse_options(argc, argv, &opt) < 0 ||
      sscanf(opt.url, "http://127.0.0.1:%d", &port) != 1) {
    fprintf(stderr, "usage: BENCH_URL=http://127.0.0.1:PORT BENCH_TOKEN=.. "
                    "bw-stream --pgid P [--streams N] [--idle-seconds S] "
                    "[--events K]\n");
    return 2;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  if (bw_config_load(&cfg, getenv("BROADWAY_CONFIG"), &error) < 0 ||
      bw_db_open(&db, &cfg, &error) < 0) {
    fprintf(stderr, "bw-stream: %s\n", error.message);
    return 1;
  }
  if (bench_client_init(&c, opt.url, opt.token) < 0)
    return 1;
  bench_result("stream_streams", "%d", opt.streams);
  measure_cpu(&opt, "stream_floor");

  n_streams = opt.streams + opt.events;
  streams = calloc((size_t)n_streams, sizeof *streams);
  if (streams == NULL || jobs_make(db, &c) < 0)
    return 1;
  double t_connect = bw_test_now();
  for (int i = 0; i < n_streams; i++)
    if (stream_open(&streams[i], &opt, port) < 0) {
      fprintf(stderr, "bw-stream: stream %d: cannot connect\n", i);
      return 1;
    }
  double t_open = t_connect, deadline = t_open + 60;
  pthread_create(&reader, NULL, reader_main, NULL);
  for (int i = 0; i < n_streams; i++)
    while (!atomic_load(&streams[i].first)) {
      if (bw_test_now() > deadline) {
        fprintf(stderr, "bw-stream: stream %d: no first event\n", i);
        return 1;
      }
      bw_test_sleep_ms(10);
    }
  bench_result("stream_first_events_s", "%.2f", bw_test_now() - t_open);
  bw_test_sleep_ms(2000);
  measure_cpu(&opt, "stream_idle");
  int rc = measure_events(&opt, db) < 0 ? 1 : 0;
  bench_result("stream_errors", "%ld", atomic_load(&errors));
  fflush(stdout);
  _exit(rc); /* the streams are still open: exit without closing them */
}
