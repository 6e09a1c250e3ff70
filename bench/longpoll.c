/* bw-longpoll - what graders waiting on an empty queue cost (make bench,
 * phase longpoll; docs/BENCHMARKS.md).
 *
 *   bw-longpoll --graders 200 --idle-seconds 30 --reads 200 --handouts 40
 *               --pgid P [--pgid P2] [--enqueue-url URL2 [--only-remote]]
 *               [--no-heartbeats] [--only-idle] [--prefix P]
 *
 * G simulated graders register and long-poll GET /api/v1/grading_job (the
 * service's poll_wait; a 498 is polled again at once).  As the real grader,
 * they heartbeat from another thread at the interval registration returned
 * (one thread sends all G graders' heartbeats, spread over the interval).
 * Once all wait, it measures, in this order:
 *   1. idle: the CPU the processes of the given process groups (the stack:
 *      nginx, FastCGI, reaper, FerretDB) use while nothing is queued, as a
 *      share of one core;
 *   2. GET of a run's status (a 100-student run) one after another while
 *      they wait: latency;
 *   3. queue to hand-out: K one-student runs, one at a time, started
 *      through BENCH_URL (this API host) and, with --enqueue-url, through a
 *      second API host on the same database; the time from sending the
 *      start to a waiting grader holding the job.
 * Prints RESULT lines; exits without waiting for the graders' last polls. */
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "client.h"

#define MAX_PGIDS BENCH_MAX_PGIDS

typedef struct options {
  const char *url, *token, *enqueue_url;
  int graders, reads, handouts;
  bool heartbeats; /* --no-heartbeats: to tell their cost from waiting's */
  bool only_remote; /* --only-remote: just the hand-outs via --enqueue-url */
  bool only_idle;   /* --only-idle: just the CPU while they wait */
  const char *prefix; /* --prefix P: before every RESULT key */
  double idle_seconds;
  long pgids[MAX_PGIDS];
  int n_pgids;
} options_t;

static const char result_body[] =
    "{\"success\":true,\"results\":[{\"exitCode\":0}],"
    "\"logs\":{\"stdout\":\"ok\",\"stderr\":\"\"}}";

typedef struct shared {
  const options_t *opt;
  pthread_barrier_t go;
  atomic_int registered_failures;
  atomic_int polls_in_flight; /* graders inside a poll right now */
  atomic_int got;             /* jobs handed out */
  _Atomic double t_queued;    /* when the current job's start was sent */
  _Atomic double latency;     /* of the last hand-out */
  atomic_long errors;
} shared_t;

typedef struct grader {
  pthread_t thread;
  int index;
  shared_t *sh;
  char worker_id[25]; /* once registered */
  int heartbeat;      /* seconds, as registration said */
} grader_t;

static void grader_take(shared_t *sh, bench_client_t *c, double t_recv) {
  char job_id[25], path[128];

  atomic_store(&sh->latency, t_recv - atomic_load(&sh->t_queued));
  if (!bench_client_find_string(c, "job_id", job_id, sizeof job_id)) {
    atomic_fetch_add(&sh->errors, 1);
    return;
  }
  snprintf(path, sizeof path, "/api/v1/grading_job/%s", job_id);
  if (bench_client_request(c, "POST", path, result_body,
                           sizeof result_body - 1) != 200)
    atomic_fetch_add(&sh->errors, 1);
  atomic_fetch_add(&sh->got, 1);
}

static void *grader_main(void *arg) {
  grader_t *g = arg;
  shared_t *sh = g->sh;
  bench_client_t c;
  char host[32];
  int heartbeat = 10;
  long status = 0;

  snprintf(host, sizeof host, "longpoll-%d", g->index);
  if (bench_client_init(&c, sh->opt->url, sh->opt->token) == 0)
    status = bench_client_register(&c, host, &heartbeat);
  if (status != 200)
    atomic_fetch_add(&sh->registered_failures, 1);
  snprintf(g->worker_id, sizeof g->worker_id, "%s", c.worker_id);
  g->heartbeat = heartbeat;
  pthread_barrier_wait(&sh->go);
  while (status == 200) {
    atomic_fetch_add(&sh->polls_in_flight, 1);
    long polled = bench_client_request(&c, "GET", "/api/v1/grading_job", NULL,
                                       0);
    double t_recv = bw_test_now();
    atomic_fetch_sub(&sh->polls_in_flight, 1);
    if (polled == 200)
      grader_take(sh, &c, t_recv);
    else if (polled != 498) {
      atomic_fetch_add(&sh->errors, 1);
      bw_test_sleep_ms(100);
    }
  }
  bench_client_cleanup(&c);
  return NULL;
}

/* Every grader's heartbeat, each at its interval, spread evenly: what G
 * graders' heartbeat threads send.  One client per grader (its worker_id
 * header), all on this thread. */
typedef struct beats {
  pthread_t thread;
  grader_t *g;
  int n;
} beats_t;

static void *beats_main(void *arg) {
  beats_t *b = arg;
  bench_client_t *c = calloc((size_t)b->n, sizeof *c);
  int interval_ms = b->g[0].heartbeat > 0 ? b->g[0].heartbeat * 1000 : 10000;

  for (int i = 0; c != NULL && i < b->n; i++)
    if (bench_client_init(&c[i], b->g[i].sh->opt->url,
                          b->g[i].sh->opt->token) < 0 ||
        bench_client_set_worker(&c[i], b->g[i].worker_id) < 0)
      return NULL;
  for (int i = 0; c != NULL; i = (i + 1) % b->n) {
    if (bench_client_request(&c[i], "POST", "/api/v1/heartbeat", "", 0) !=
        200)
      atomic_fetch_add(&b->g[i].sh->errors, 1);
    bw_test_sleep_ms(interval_ms / b->n);
  }
  return NULL;
}

/* Waits until all G graders are inside a poll (or `seconds` passed). */
static bool all_waiting(shared_t *sh, double seconds) {
  double deadline = bw_test_now() + seconds;
  while (atomic_load(&sh->polls_in_flight) < sh->opt->graders) {
    if (bw_test_now() > deadline)
      return false;
    bw_test_sleep_ms(50);
  }
  return true;
}

static void measure_idle(shared_t *sh) {
  long hz = sysconf(_SC_CLK_TCK);
  long long before = bench_groups_cpu_ticks(sh->opt->pgids, sh->opt->n_pgids);
  double t0 = bw_test_now(), seconds;

  bw_test_sleep_ms((long)(sh->opt->idle_seconds * 1000));
  seconds = bw_test_now() - t0;
  bench_result("longpoll_idle_seconds", "%.1f", seconds);
  bench_result("longpoll_idle_cpu_pct", "%.2f",
               (double)(bench_groups_cpu_ticks(sh->opt->pgids, sh->opt->n_pgids) -
                           before) * 100.0 /
                   (double)hz / seconds);
}

static int measure_status(shared_t *sh, bench_client_t *c) {
  bench_samples_t reads;
  char run_id[25], path[128];
  double unused;

  if (bench_client_create_run(c, 100, run_id, &unused) < 0)
    return -1;
  snprintf(path, sizeof path, "/api/v1/grading_run/%s", run_id);
  bench_samples_init(&reads);
  for (int i = 0; i < sh->opt->reads; i++) {
    double t = bw_test_now();
    if (bench_client_request(c, "GET", path, NULL, 0) != 200)
      atomic_fetch_add(&sh->errors, 1);
    bench_samples_add(&reads, bw_test_now() - t);
    bw_test_sleep_ms(20);
  }
  bench_result_latency("longpoll_status", &reads);
  bench_samples_cleanup(&reads);
  return 0;
}

/* K jobs queued one at a time through `c`'s API host. */
static int measure_handouts(shared_t *sh, bench_client_t *c, const char *key) {
  bench_samples_t lat;
  int rc = 0;

  bench_samples_init(&lat);
  for (int i = 0; i < sh->opt->handouts && rc == 0; i++) {
    char run_id[25];
    double unused, deadline;
    int got = atomic_load(&sh->got);
    /* Every grader back in a poll, so the job meets waiting graders. */
    all_waiting(sh, 30);
    if (bench_client_create_run(c, 1, run_id, &unused) < 0)
      return -1;
    atomic_store(&sh->t_queued, bw_test_now());
    rc = bench_client_start_run(c, run_id, &unused);
    deadline = bw_test_now() + 10;
    while (rc == 0 && atomic_load(&sh->got) == got) {
      if (bw_test_now() > deadline) {
        fprintf(stderr, "bw-longpoll: job %d not handed out in 10 s\n", i);
        rc = -1;
      }
      bw_test_sleep_ms(1);
    }
    if (rc == 0)
      bench_samples_add(&lat, atomic_load(&sh->latency));
    bw_test_sleep_ms(100);
  }
  if (rc == 0)
    bench_result_latency(key, &lat);
  bench_samples_cleanup(&lat);
  return rc;
}

static int parse_options(int argc, char **argv, options_t *opt) {
  static const struct option longopts[] = {
      {"graders", required_argument, NULL, 'g'},
      {"idle-seconds", required_argument, NULL, 'i'},
      {"reads", required_argument, NULL, 'r'},
      {"handouts", required_argument, NULL, 'k'},
      {"pgid", required_argument, NULL, 'p'},
      {"enqueue-url", required_argument, NULL, 'e'},
      {"no-heartbeats", no_argument, NULL, 'n'},
      {"only-remote", no_argument, NULL, 'o'},
      {"only-idle", no_argument, NULL, 'I'},
      {"prefix", required_argument, NULL, 'P'},
      {NULL, 0, NULL, 0}};
  int ch;

  *opt = (options_t){.graders = 200, .reads = 200, .handouts = 40,
                     .idle_seconds = 30, .heartbeats = true};
  opt->url = getenv("BENCH_URL");
  opt->token = getenv("BENCH_TOKEN");
  while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    if (ch == 'g')
      opt->graders = atoi(optarg);
    else if (ch == 'i')
      opt->idle_seconds = atof(optarg);
    else if (ch == 'r')
      opt->reads = atoi(optarg);
    else if (ch == 'k')
      opt->handouts = atoi(optarg);
    else if (ch == 'p' && opt->n_pgids < MAX_PGIDS)
      opt->pgids[opt->n_pgids++] = atol(optarg);
    else if (ch == 'e')
      opt->enqueue_url = optarg;
    else if (ch == 'n')
      opt->heartbeats = false;
    else if (ch == 'o')
      opt->only_remote = true;
    else if (ch == 'I')
      opt->only_idle = true;
    else if (ch == 'P')
      opt->prefix = optarg;
    else
      return -1;
  }
  return opt->url && opt->token && opt->graders > 0 && opt->n_pgids > 0 &&
                 opt->idle_seconds > 0 && opt->reads > 0 && opt->handouts > 0
             ? 0
             : -1;
}

int main(int argc, char **argv) {
  options_t opt;
  shared_t sh = {.opt = &opt};
  bench_client_t c, remote;
  grader_t *g;
  int rc = 0;

  if (parse_options(argc, argv, &opt) < 0) {
    fprintf(stderr, "usage: BENCH_URL=.. BENCH_TOKEN=.. bw-longpoll --pgid P "
                    "[--graders G] [--idle-seconds S] [--reads K] "
                    "[--handouts K] [--enqueue-url URL]\n");
    return 2;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  g = calloc((size_t)opt.graders, sizeof *g);
  if (g == NULL || bench_client_init(&c, opt.url, opt.token) < 0)
    return 1;
  pthread_barrier_init(&sh.go, NULL, (unsigned)opt.graders + 1);
  for (int i = 0; i < opt.graders; i++) {
    g[i] = (grader_t){.index = i, .sh = &sh};
    pthread_create(&g[i].thread, NULL, grader_main, &g[i]);
  }
  pthread_barrier_wait(&sh.go);
  if (opt.prefix != NULL)
    bench_result_prefix(opt.prefix);
  bench_result("longpoll_graders", "%d", opt.graders);
  beats_t beats = {.g = g, .n = opt.graders};
  if (opt.heartbeats)
    pthread_create(&beats.thread, NULL, beats_main, &beats);
  if (atomic_load(&sh.registered_failures) > 0 || !all_waiting(&sh, 30)) {
    fprintf(stderr, "bw-longpoll: the graders are not all waiting\n");
    return 1;
  }
  bw_test_sleep_ms(2000); /* the first polls' scans are over */
  if (!opt.only_remote)
    measure_idle(&sh);
  if (!opt.only_remote && !opt.only_idle &&
      (measure_status(&sh, &c) < 0 ||
       measure_handouts(&sh, &c, "longpoll_handout") < 0))
    rc = 1;
  if (rc == 0 && opt.enqueue_url != NULL) {
    if (bench_client_init(&remote, opt.enqueue_url, opt.token) < 0 ||
        measure_handouts(&sh, &remote, "longpoll_handout_remote") < 0)
      rc = 1;
  }
  bench_result("longpoll_errors", "%ld", atomic_load(&sh.errors));
  /* The graders are still in their polls: exit without joining them. */
  fflush(stdout);
  _exit(rc);
}
