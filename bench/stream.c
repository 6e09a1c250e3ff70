/* bw-stream - what waiting Server-Sent Events streams cost, and how soon
 * their events arrive (make bench, phase stream; docs/BENCHMARKS.md).
 *
 *   bw-stream --streams 200 --idle-seconds 30 --events 20 --pgid P
 *             --course C --course-token T
 *
 * Needs BENCH_URL, BENCH_TOKEN (the stack, whose courses file has course
 * C with admin token T) and BROADWAY_DATA or BROADWAY_CONFIG (its
 * database, for the moves made "through another host" below).
 *
 *   1. the CPU the stack's process groups use with nothing waiting, as a
 *      share of one core (the floor: FerretDB, PostgreSQL, the reaper);
 *   2. a Gen 3 run of S + 2K students of course C (grading_config and
 *      grading_run over HTTP, as broadway-on-demand), one stream open on
 *      each job through nginx (raw sockets, one thread, a course token);
 *      once every stream has its first event: the stack's CPU while they
 *      wait;
 *   3. K times, a 2019 grader (its HTTP routes, this API host) takes a job
 *      and sends its result; then K times the same through common/ from
 *      this process (bw_job_poll, bw_job_report: another API host on the
 *      same database, seen through the host's read of the signals every
 *      100 ms while only streams wait).  The time from each call's start
 *      (the poll, the result sent: the event may arrive before the call's
 *      reply) to STARTED, and to FINISHED, arriving on that job's stream.
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
#include "validate.h"
#include "worker.h"

typedef struct options {
  const char *url, *token, *course, *course_token;
  int streams, events;
  double idle_seconds;
  long pgids[BENCH_MAX_PGIDS];
  int n_pgids;
  bool only_idle; /* --only-idle: no floor, no events */
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
               opt->course, s->job, port, opt->course_token);
  return write(s->fd, head, (size_t)n) == n ? 0 : -1;
}

/* ---- the jobs ---------------------------------------------------------- */

#define BENCH_GCONFIG                                                          \
  "{\"student_pipeline\": [{\"image\": \"bench/grade:1\", "                  \
  "\"entrypoint\": [\"/bin/grade\"], \"timeout\": 30}]}"

/* A Gen 3 run of n_streams students of the course, over HTTP; its jobs'
 * ids into streams[]. */
static int jobs_make(const options_t *opt) {
  bench_client_t admin;
  char path[256], *body;
  size_t len = 0, cap = (size_t)n_streams * 32 + 64;
  json_object *status = NULL, *jobs;
  int n = 0, rc = -1;

  snprintf(path, sizeof path, "Bearer %s", opt->course_token);
  if (bench_client_init(&admin, opt->url, path) < 0 ||
      (body = malloc(cap)) == NULL)
    return -1;
  len = (size_t)snprintf(body, cap, "{\"students_env\": [");
  for (int i = 0; i < n_streams; i++)
    len += (size_t)snprintf(body + len, cap - len, "%s{\"STUDENT_ID\": \"s%d\"}",
                            i ? ", " : "", i);
  snprintf(body + len, cap - len, "]}");
  snprintf(path, sizeof path, "/api/v1/grading_config/%s/mp1", opt->course);
  if (bench_client_request(&admin, "POST", path, BENCH_GCONFIG,
                           sizeof BENCH_GCONFIG - 1) != 200)
    goto out;
  snprintf(path, sizeof path, "/api/v1/grading_run/%s/mp1", opt->course);
  if (bench_client_request(&admin, "POST", path, body, strlen(body)) != 200)
    goto out;
  snprintf(path, sizeof path, "/api/v1/grading_run_status/%s/", opt->course);
  len = strlen(path);
  if (!bench_client_find_string(&admin, "grading_run_id", path + len, 25) ||
      bench_client_request(&admin, "GET", path, NULL, 0) != 200)
    goto out;
  status = json_tokener_parse(admin.body);
  jobs = json_object_object_get(json_object_object_get(status, "data"),
                                "student_jobs_state");
  json_object_object_foreach(jobs, id, state) {
    (void)state;
    if (n < n_streams)
      snprintf(streams[n++].job, sizeof streams[0].job, "%s", id);
  }
  rc = n == n_streams ? 0 : -1;
out:
  if (rc < 0)
    fprintf(stderr, "bw-stream: making the run: %s %s\n", admin.error,
            admin.body ? admin.body : "");
  json_object_put(status);
  free(body);
  bench_client_cleanup(&admin);
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

/* One move of a job, through this host's routes or through common/. */
typedef struct mover {
  bench_client_t grader; /* a 2019 grader, cluster token */
  bw_db_t *db;
  bw_config_t cfg;
  bson_oid_t worker; /* its id, for the moves through common/ */
} mover_t;

static int mover_init(mover_t *m, const options_t *opt, bw_db_t *db) {
  static const char hello[] = "{\"hostname\": \"bench\"}";
  char auth[300];
  bw_error_t error;

  m->db = db;
  snprintf(auth, sizeof auth, "Bearer %s", opt->token);
  if (bw_config_load(&m->cfg, getenv("BROADWAY_CONFIG"), &error) < 0 ||
      bench_client_init(&m->grader, opt->url, auth) < 0 ||
      bench_client_request(&m->grader, "POST", "/api/v1/worker/bench-stream",
                           hello, sizeof hello - 1) != 200 ||
      bw_worker_find_gen3(db, "bench-stream", &m->worker, &error) < 0)
    return -1;
  return 0;
}

/* A job handed out: its id into job. */
static int mover_take(mover_t *m, bool remote, char job[25]) {
  json_object *payload = NULL;
  bw_error_t error;
  bool ok;

  if (!remote)
    return bench_client_request(&m->grader, "GET",
                                "/api/v1/grading_job/bench-stream", NULL,
                                0) == 200 &&
                   bench_client_find_string(&m->grader, "grading_job_id", job,
                                            25)
               ? 0
               : -1;
  if (bw_job_poll(m->db, &m->cfg, &m->worker, BW_GEN_3, &payload, &error) < 0)
    return -1;
  ok = json_object_get_string(json_object_object_get(payload,
                                                     "grading_job_id")) != NULL;
  if (ok)
    snprintf(job, 25, "%s",
             json_object_get_string(
                 json_object_object_get(payload, "grading_job_id")));
  json_object_put(payload);
  return ok ? 0 : -1;
}

static int mover_finish(mover_t *m, bool remote, const char *job) {
  json_object *body, *result = NULL;
  const char *job_id = NULL;
  bson_oid_t oid;
  bw_error_t error;
  char text[256];
  int rc;

  snprintf(text, sizeof text,
           "{\"grading_job_id\": \"%s\", \"success\": true, \"results\": "
           "[{\"success\": true}], \"logs\": {\"stdout\": \"\", "
           "\"stderr\": \"\"}}",
           job);
  if (!remote)
    return bench_client_request(&m->grader, "POST",
                                "/api/v1/grading_job/bench-stream", text,
                                strlen(text)) == 200
               ? 0
               : -1;
  body = json_tokener_parse(text);
  rc = bw_validate_gen3_result(body, &m->cfg, &job_id, &result, &error);
  if (rc == 0 && !bw_db_oid_parse(job, &oid))
    rc = -1;
  if (rc == 0)
    rc = bw_job_report(m->db, &m->cfg, &oid, &m->worker, result, &error);
  if (rc < 0)
    fprintf(stderr, "bw-stream: result of %s: %s\n", job, error.message);
  json_object_put(result);
  json_object_put(body);
  return rc;
}

/* K jobs taken and finished, each timed to its events. */
static int measure_events(const options_t *opt, mover_t *m, bool remote) {
  bench_samples_t started, finished;
  char key[64];
  int rc = 0;

  bench_samples_init(&started);
  bench_samples_init(&finished);
  for (int k = 0; k < opt->events && rc == 0; k++) {
    char job[25];
    double t0, lat;
    int i = -1;

    /* A live grader: the reaper re-queues the jobs of a silent one. */
    if (bench_client_request(&m->grader, "POST", "/api/v1/heartbeat/bench-stream",
                             "", 0) != 200)
      atomic_fetch_add(&errors, 1);
    /* From the request: the event may come before its reply does. */
    t0 = bw_test_now();
    rc = mover_take(m, remote, job);
    if (rc == 0)
      i = stream_of(job);
    if (i < 0 || (lat = wait_flag(&streams[i].started, &streams[i].t_started,
                                  t0)) < 0) {
      fprintf(stderr, "bw-stream: no STARTED\n");
      rc = -1;
      break;
    }
    bench_samples_add(&started, lat);
    t0 = bw_test_now();
    rc = mover_finish(m, remote, job);
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
    snprintf(key, sizeof key, "stream_started%s", remote ? "_remote" : "");
    bench_result_latency(key, &started);
    snprintf(key, sizeof key, "stream_finished%s", remote ? "_remote" : "");
    bench_result_latency(key, &finished);
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
      {"course", required_argument, NULL, 'c'},
      {"course-token", required_argument, NULL, 't'},
      {"only-idle", no_argument, NULL, 'I'},
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
    else if (ch == 'c')
      opt->course = optarg;
    else if (ch == 't')
      opt->course_token = optarg;
    else if (ch == 'I')
      opt->only_idle = true;
    else
      return -1;
  }
  return opt->url && opt->token && opt->course && opt->course_token &&
                 opt->streams > 0 && opt->events > 0 &&
                 opt->n_pgids > 0 && opt->idle_seconds > 0
             ? 0
             : -1;
}

int main(int argc, char **argv) {
  options_t opt;
  bw_config_t cfg;
  bw_error_t error;
  bw_db_t *db = NULL;
  pthread_t reader;
  int port;

  if (parse_options(argc, argv, &opt) < 0 ||
      sscanf(opt.url, "http://127.0.0.1:%d", &port) != 1) {
    fprintf(stderr, "usage: BENCH_URL=http://127.0.0.1:PORT BENCH_TOKEN=.. "
                    "bw-stream --pgid P --course C --course-token T "
                    "[--streams N] [--idle-seconds S] [--events K]\n");
    return 2;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  if (bw_config_load(&cfg, getenv("BROADWAY_CONFIG"), &error) < 0 ||
      bw_db_open(&db, &cfg, &error) < 0) {
    fprintf(stderr, "bw-stream: %s\n", error.message);
    return 1;
  }
  bench_result("stream_streams", "%d", opt.streams);
  if (!opt.only_idle)
    measure_cpu(&opt, "stream_floor");

  n_streams = opt.streams + 2 * opt.events;
  streams = calloc((size_t)n_streams, sizeof *streams);
  if (streams == NULL || jobs_make(&opt) < 0)
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
  mover_t mover;
  int rc = opt.only_idle ? 0
           : mover_init(&mover, &opt, db) < 0 ||
                   measure_events(&opt, &mover, false) < 0 ||
                   measure_events(&opt, &mover, true) < 0
               ? 1
               : 0;
  bench_result("stream_errors", "%ld", atomic_load(&errors));
  fflush(stdout);
  _exit(rc); /* the streams are still open: exit without closing them */
}
