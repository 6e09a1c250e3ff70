/* load.c - the HTTP side of the benchmark: simulated graders and clients
 * against a running stack (nginx -> FastCGI -> FerretDB).
 *
 *   bw-load e2e      --graders G --jobs N [--max-seconds T]
 *                                           G graders drain one run of N
 *                                           (or stop after T seconds)
 *   bw-load create   --students S --reps R  time POST grading_run + start
 *   bw-load pollwait --waiting W --polls K  single polls with W waiting
 *   bw-load fairness --graders G --jobs N --students S
 *                                           hand-outs until a small run queued
 *                                           behind a big one is out
 *   bw-load pairs    --graders G --seconds D --path P [--rate R]
 *                                           GET+POST pairs on P (baselines),
 *                                           flat out or R pairs/s in all
 *
 * The stack is named by BENCH_URL (http://host:port) and BENCH_TOKEN (kept
 * out of argv, where `ps` would show it).  Figures go to stdout as RESULT
 * lines (bench.h); run-bench collects them.
 *
 * A grader here does what broadway-grader does minus the container:
 * register, heartbeat at the interval the service returned, poll, and
 * report a result at once.  Each thread owns one curl handle, so each
 * grader keeps one keep-alive connection. */
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench.h"
#include "client.h"

#define QUEUE_EMPTY 498
#define MAX_ERRORS 50

static const char result_body[] =
    "{\"success\":true,\"info\":[{\"stage\":0,\"exit_code\":0}],"
    "\"logs\":{\"stdout\":\"ok\\n\",\"stderr\":\"\"}}";

typedef struct options {
  const char *url, *token, *path, *label;
  int graders, jobs, students, reps, waiting, polls;
  double seconds, max_seconds;
  double rate; /* pairs: GET+POST pairs per second, all clients; 0: flat out */
} options_t;

/* ---- shared ---------------------------------------------------------- */

/* The run's state from GET grading_run/{id}, to check the drain finished
 * it (the post-run check of e2e, outside the timed part). */
static void run_state(bench_client_t *c, const char *run_id, char *state,
                      size_t size) {
  char path[128];
  snprintf(path, sizeof path, "/api/v1/grading_run/%s", run_id);
  snprintf(state, size, "unknown");
  if (bench_client_request(c, "GET", path, NULL, 0) == 200)
    bench_client_find_string(c, "state", state, size);
}

/* ---- e2e: G graders drain one run ------------------------------------ */

typedef struct e2e {
  const options_t *opt;
  pthread_barrier_t go;
  atomic_int done;   /* results accepted */
  atomic_int failed; /* graders that gave up */
  _Atomic double t_end;
  double deadline; /* --max-seconds: stop here even if jobs remain */
} e2e_t;

typedef struct grader {
  pthread_t thread;
  int index;
  e2e_t *e2e;
  bench_samples_t poll, empty, result;
  long heartbeats, errors, conflicts;
} grader_t;

static void grader_heartbeat(grader_t *g, bench_client_t *c) {
  if (bench_client_request(c, "POST", "/api/v1/heartbeat", "", 0) == 200)
    g->heartbeats++;
  else
    g->errors++;
}

/* One poll and, when it got a job, its result.  Returns 1 when a job was
 * done, 0 when the queue was empty, -1 on an unexpected answer. */
static int grader_step(grader_t *g, bench_client_t *c) {
  char job_id[25], path[128];
  double t = bw_test_now();
  long status = bench_client_request(c, "GET", "/api/v1/grading_job?wait=0", NULL, 0);
  double polled = bw_test_now();

  if (status == QUEUE_EMPTY) {
    bench_samples_add(&g->empty, polled - t);
    return 0;
  }
  if (status != 200 || !bench_client_find_string(c, "job_id", job_id, 25)) {
    fprintf(stderr, "bw-load: grader %d poll: HTTP %ld %s\n", g->index, status,
            c->error);
    return -1;
  }
  bench_samples_add(&g->poll, polled - t);
  snprintf(path, sizeof path, "/api/v1/grading_job/%s", job_id);
  status = bench_client_request(c, "POST", path, result_body,
                                sizeof result_body - 1);
  bench_samples_add(&g->result, bw_test_now() - polled);
  if (status == 409) {
    g->conflicts++; /* the job went to someone else: a bug, counted */
    return -1;
  }
  if (status != 200) {
    fprintf(stderr, "bw-load: grader %d result: HTTP %ld %s\n", g->index,
            status, c->error);
    return -1;
  }
  if (atomic_fetch_add(&g->e2e->done, 1) + 1 == g->e2e->opt->jobs)
    atomic_store(&g->e2e->t_end, bw_test_now());
  return 1;
}

static void *grader_main(void *arg) {
  grader_t *g = arg;
  const options_t *opt = g->e2e->opt;
  bench_client_t c;
  char host[32];
  int heartbeat = 10;
  long status = 0;

  snprintf(host, sizeof host, "bench-%d", g->index);
  if (bench_client_init(&c, opt->url, opt->token) == 0)
    status = bench_client_register(&c, host, &heartbeat);
  if (status != 200) {
    fprintf(stderr, "bw-load: grader %d: register: HTTP %ld %s\n", g->index,
            status, c.error);
    atomic_fetch_add(&g->e2e->failed, 1);
  }
  pthread_barrier_wait(&g->e2e->go);
  double next_beat = bw_test_now() + heartbeat;
  long backoff = 0;
  while (status == 200 && atomic_load(&g->e2e->done) < opt->jobs &&
         bw_test_now() < g->e2e->deadline) {
    if (bw_test_now() >= next_beat) {
      grader_heartbeat(g, &c);
      next_beat += heartbeat;
    }
    int rc = grader_step(g, &c);
    if (rc < 0 && ++g->errors > MAX_ERRORS) {
      atomic_fetch_add(&g->e2e->failed, 1);
      break;
    }
    if (rc == 0) /* the rest is held by others: wait for them to finish */
      bw_test_sleep_ms(backoff);
    backoff = rc == 0 ? bench_backoff_next(backoff) : 0;
  }
  bench_client_cleanup(&c);
  return NULL;
}

/* CPU (user + system) used so far, to tell the load generator's share of
 * the machine from the service's. */
static double cpu_seconds(int who) {
  struct rusage ru;
  getrusage(who, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void e2e_report(grader_t *g, int n, double seconds, int done) {
  bench_samples_t poll, empty, result;
  long heartbeats = 0, errors = 0, conflicts = 0;

  bench_samples_init(&poll);
  bench_samples_init(&empty);
  bench_samples_init(&result);
  for (int i = 0; i < n; i++) {
    bench_samples_merge(&poll, &g[i].poll);
    bench_samples_merge(&empty, &g[i].empty);
    bench_samples_merge(&result, &g[i].result);
    heartbeats += g[i].heartbeats;
    errors += g[i].errors;
    conflicts += g[i].conflicts;
  }
  bench_result("e2e_graders", "%d", n);
  bench_result("e2e_jobs", "%d", done);
  bench_result("e2e_seconds", "%.3f", seconds);
  bench_result("e2e_jobs_per_s", "%.1f", seconds > 0 ? done / seconds : 0);
  bench_result_latency("e2e_poll", &poll);
  bench_result_latency("e2e_result", &result);
  bench_result("e2e_empty_polls", "%zu", empty.n);
  bench_result("e2e_heartbeats", "%ld", heartbeats);
  bench_result("e2e_errors", "%ld", errors);
  bench_result("e2e_conflicts", "%ld", conflicts);
  bench_result("e2e_client_cpu_s", "%.3f", cpu_seconds(RUSAGE_SELF));
  bench_samples_cleanup(&poll);
  bench_samples_cleanup(&empty);
  bench_samples_cleanup(&result);
}

static int cmd_e2e(const options_t *opt) {
  bench_client_t c;
  char run_id[25], state[32];
  double create_s, start_s;
  e2e_t e2e = {.opt = opt};
  grader_t *g = calloc((size_t)opt->graders, sizeof *g);
  int rc = 1;

  if (!g || bench_client_init(&c, opt->url, opt->token) < 0)
    return 1;
  if (bench_client_create_run(&c, opt->jobs, run_id, &create_s) < 0 ||
      bench_client_start_run(&c, run_id, &start_s) < 0)
    goto out;
  pthread_barrier_init(&e2e.go, NULL, (unsigned)opt->graders + 1);
  for (int i = 0; i < opt->graders; i++) {
    g[i].index = i;
    g[i].e2e = &e2e;
    bench_samples_init(&g[i].poll);
    bench_samples_init(&g[i].empty);
    bench_samples_init(&g[i].result);
    pthread_create(&g[i].thread, NULL, grader_main, &g[i]);
  }
  /* Written before the barrier releases the graders that read it. */
  e2e.deadline = bw_test_now() + opt->max_seconds;
  pthread_barrier_wait(&e2e.go); /* every grader registered */
  double t0 = bw_test_now();
  for (int i = 0; i < opt->graders; i++)
    pthread_join(g[i].thread, NULL);
  pthread_barrier_destroy(&e2e.go);
  int done = atomic_load(&e2e.done);
  double t_end = atomic_load(&e2e.t_end);
  e2e_report(g, opt->graders, (t_end > 0 ? t_end : bw_test_now()) - t0, done);
  run_state(&c, run_id, state, sizeof state);
  bench_result("e2e_run_state", "%s", state);
  /* Stopped by --max-seconds: the rate stands, the run is unfinished. */
  bench_result("e2e_capped", "%d", done < opt->jobs);
  rc = atomic_load(&e2e.failed) == 0 ? 0 : 1;
  for (int i = 0; i < opt->graders; i++) {
    bench_samples_cleanup(&g[i].poll);
    bench_samples_cleanup(&g[i].empty);
    bench_samples_cleanup(&g[i].result);
  }
out:
  bench_client_cleanup(&c);
  free(g);
  return rc;
}

/* ---- create: the cost of submitting and starting a run --------------- */

static int cmd_create(const options_t *opt) {
  bench_client_t c;
  bench_samples_t create, start, total;
  char run_id[25], key[64];
  int rc = 0;

  if (bench_client_init(&c, opt->url, opt->token) < 0)
    return 1;
  bench_samples_init(&create);
  bench_samples_init(&start);
  bench_samples_init(&total);
  for (int r = 0; r < opt->reps && rc == 0; r++) {
    double cs, ss;
    rc = bench_client_create_run(&c, opt->students, run_id, &cs);
    if (rc == 0)
      rc = bench_client_start_run(&c, run_id, &ss);
    if (rc == 0) {
      bench_samples_add(&create, cs);
      bench_samples_add(&start, ss);
      bench_samples_add(&total, cs + ss);
    }
  }
  if (rc == 0) {
    snprintf(key, sizeof key, "create_%d_create_ms", opt->students);
    bench_result(key, "%.1f", bench_samples_pct(&create, 50) * 1e3);
    snprintf(key, sizeof key, "create_%d_start_ms", opt->students);
    bench_result(key, "%.1f", bench_samples_pct(&start, 50) * 1e3);
    snprintf(key, sizeof key, "create_%d_total_ms", opt->students);
    bench_result(key, "%.1f", bench_samples_pct(&total, 50) * 1e3);
    snprintf(key, sizeof key, "create_%d_reps", opt->students);
    bench_result(key, "%d", opt->reps);
  }
  bench_samples_cleanup(&create);
  bench_samples_cleanup(&start);
  bench_samples_cleanup(&total);
  bench_client_cleanup(&c);
  return rc ? 1 : 0;
}

/* ---- pollwait: one grader's poll with W jobs waiting ----------------- */

/* Queues W + warm-up + K jobs, then takes K single polls (each hands out
 * one job, which is left running), so W or more are waiting at each. */
static int cmd_pollwait(const options_t *opt) {
  enum { WARMUP = 3 };
  bench_client_t c;
  bench_samples_t poll;
  char run_id[25], key[64];
  double cs, ss;
  int rc = 1;

  if (bench_client_init(&c, opt->url, opt->token) < 0)
    return 1;
  bench_samples_init(&poll);
  if (bench_client_register(&c, "bench-pollwait", NULL) != 200 ||
      bench_client_create_run(&c, opt->waiting + WARMUP + opt->polls, run_id, &cs) < 0 ||
      bench_client_start_run(&c, run_id, &ss) < 0)
    goto out;
  for (int i = 0; i < WARMUP + opt->polls; i++) {
    double t = bw_test_now();
    long status =
        bench_client_request(&c, "GET", "/api/v1/grading_job", NULL, 0);
    double dt = bw_test_now() - t;
    if (status != 200) {
      fprintf(stderr, "bw-load: pollwait: HTTP %ld %s\n", status, c.error);
      goto out;
    }
    if (i >= WARMUP)
      bench_samples_add(&poll, dt);
  }
  snprintf(key, sizeof key, "pollwait_%d", opt->waiting);
  bench_result_latency(key, &poll);
  rc = 0;
out:
  bench_samples_cleanup(&poll);
  bench_client_cleanup(&c);
  return rc;
}

/* ---- pairs: GET+POST pairs, the HTTP baseline ------------------------ */

typedef struct pairs {
  const options_t *opt;
  pthread_barrier_t go;
  double deadline;
} pairs_t;

typedef struct pair_client {
  pthread_t thread;
  pairs_t *pairs;
  bench_samples_t get, post;
  long done, errors;
} pair_client_t;

static void *pair_main(void *arg) {
  pair_client_t *p = arg;
  const options_t *opt = p->pairs->opt;
  bench_client_t c;
  int ok = bench_client_init(&c, opt->url, opt->token) == 0;

  /* Every request carries a worker_id, like a grader's. */
  if (ok) {
    ok = bench_client_set_worker(&c, "000000000000000000000000") == 0 &&
         bench_client_request(&c, "GET", opt->path, NULL, 0) > 0;
  }
  pthread_barrier_wait(&p->pairs->go);
  pthread_barrier_wait(&p->pairs->go);
  /* --rate: each client sends its share of pairs at even intervals. */
  double interval = opt->rate > 0 ? opt->graders / opt->rate : 0;
  double next = bw_test_now();
  while (ok && bw_test_now() < p->pairs->deadline) {
    if (interval > 0) {
      double wait = next - bw_test_now();
      next += interval;
      if (wait > 0)
        bw_test_sleep_ms((long)(wait * 1e3));
    }
    double t = bw_test_now();
    long a = bench_client_request(&c, "GET", opt->path, NULL, 0);
    double mid = bw_test_now();
    long b = bench_client_request(&c, "POST", opt->path, result_body,
                                  sizeof result_body - 1);
    bench_samples_add(&p->get, mid - t);
    bench_samples_add(&p->post, bw_test_now() - mid);
    if (a == 0 || b == 0)
      p->errors++;
    else
      p->done++;
  }
  bench_client_cleanup(&c);
  return NULL;
}

static void pairs_report(const char *label, int clients, double seconds,
                         long done, long errors, bench_samples_t *get,
                         bench_samples_t *post) {
  char key[96];
  snprintf(key, sizeof key, "%s_clients", label);
  bench_result(key, "%d", clients);
  snprintf(key, sizeof key, "%s_seconds", label);
  bench_result(key, "%.3f", seconds);
  snprintf(key, sizeof key, "%s_pairs", label);
  bench_result(key, "%ld", done);
  snprintf(key, sizeof key, "%s_per_s", label);
  bench_result(key, "%.1f", done / seconds);
  snprintf(key, sizeof key, "%s_requests_per_s", label);
  bench_result(key, "%.1f", 2 * done / seconds);
  snprintf(key, sizeof key, "%s_get", label);
  bench_result_latency(key, get);
  snprintf(key, sizeof key, "%s_post", label);
  bench_result_latency(key, post);
  snprintf(key, sizeof key, "%s_errors", label);
  bench_result(key, "%ld", errors);
}

static int cmd_pairs(const options_t *opt) {
  pairs_t pairs = {.opt = opt};
  pair_client_t *p = calloc((size_t)opt->graders, sizeof *p);
  bench_samples_t get, post;
  long done = 0, errors = 0;

  if (!p)
    return 1;
  bench_samples_init(&get);
  bench_samples_init(&post);
  pthread_barrier_init(&pairs.go, NULL, (unsigned)opt->graders + 1);
  for (int i = 0; i < opt->graders; i++) {
    p[i].pairs = &pairs;
    bench_samples_init(&p[i].get);
    bench_samples_init(&p[i].post);
    pthread_create(&p[i].thread, NULL, pair_main, &p[i]);
  }
  /* Twice: every client connected, then the deadline is written before
   * the second barrier releases the readers. */
  pthread_barrier_wait(&pairs.go);
  double t0 = bw_test_now();
  pairs.deadline = t0 + opt->seconds;
  pthread_barrier_wait(&pairs.go);
  for (int i = 0; i < opt->graders; i++) {
    pthread_join(p[i].thread, NULL);
    bench_samples_merge(&get, &p[i].get);
    bench_samples_merge(&post, &p[i].post);
    done += p[i].done;
    errors += p[i].errors;
    bench_samples_cleanup(&p[i].get);
    bench_samples_cleanup(&p[i].post);
  }
  double seconds = bw_test_now() - t0;
  pthread_barrier_destroy(&pairs.go);
  pairs_report(opt->label, opt->graders, seconds, done, errors, &get, &post);
  bench_samples_cleanup(&get);
  bench_samples_cleanup(&post);
  free(p);
  return errors == 0 && done > 0 ? 0 : 1;
}

/* ---- fairness: a small run queued behind a big one ------------------- */

/* G graders drain a --jobs run; once they are under way a --students run
 * is queued.  Counts the hand-outs (every grader's, in the order the
 * service answered them) from just before the small run was queued to its
 * last job's hand-out.  Issue 14's bound: 5 x active runs + G. */
typedef struct fairness {
  const options_t *opt;
  pthread_barrier_t go;
  atomic_long handouts;    /* every hand-out so far */
  atomic_long small_last;  /* the hand-out number of the small run's last */
  atomic_int small_out;    /* the small run's jobs handed out */
  atomic_int failed;
  char small_id[25];       /* set before the small run is started */
  atomic_bool small_known;
  _Atomic double deadline;
} fairness_t;

typedef struct fair_grader {
  pthread_t thread;
  int index;
  fairness_t *f;
} fair_grader_t;

/* One poll and its result: 1 job, 0 empty, -1 error. */
static int fair_step(fair_grader_t *g, bench_client_t *c) {
  fairness_t *f = g->f;
  char job_id[25], path[128];
  long status = bench_client_request(c, "GET", "/api/v1/grading_job?wait=0",
                                     NULL, 0);
  if (status == QUEUE_EMPTY)
    return 0;
  if (status != 200 || !bench_client_find_string(c, "job_id", job_id, 25))
    return -1;
  long n = atomic_fetch_add(&f->handouts, 1) + 1;
  /* The run id is in the job's env (GRADING_RUN_ID). */
  if (atomic_load(&f->small_known) && strstr(c->body, f->small_id) != NULL) {
    long last = atomic_load(&f->small_last);
    while (n > last && !atomic_compare_exchange_weak(&f->small_last, &last, n))
      ;
    atomic_fetch_add(&f->small_out, 1);
  }
  snprintf(path, sizeof path, "/api/v1/grading_job/%s", job_id);
  status = bench_client_request(c, "POST", path, result_body,
                                sizeof result_body - 1);
  return status == 200 ? 1 : -1;
}

static void *fair_grader_main(void *arg) {
  fair_grader_t *g = arg;
  fairness_t *f = g->f;
  bench_client_t c;
  char host[32];
  long status = 0, errors = 0;

  snprintf(host, sizeof host, "bench-fair-%d", g->index);
  if (bench_client_init(&c, f->opt->url, f->opt->token) == 0)
    status = bench_client_register(&c, host, NULL);
  if (status != 200)
    atomic_fetch_add(&f->failed, 1);
  pthread_barrier_wait(&f->go);
  while (status == 200 && atomic_load(&f->small_out) < f->opt->students &&
         bw_test_now() < f->deadline) {
    int rc = fair_step(g, &c);
    if (rc < 0 && ++errors > MAX_ERRORS) {
      fprintf(stderr, "bw-load: fairness grader %d: HTTP errors\n", g->index);
      atomic_fetch_add(&f->failed, 1);
      break;
    }
    if (rc == 0)
      bw_test_sleep_ms(5);
  }
  bench_client_cleanup(&c);
  return NULL;
}

static int cmd_fairness(const options_t *opt) {
  enum { UNDER_WAY = 50 }; /* hand-outs of the big run before the small */
  bench_client_t c;
  char big_id[25];
  double cs, ss;
  fairness_t f = {.opt = opt};
  fair_grader_t *g = calloc((size_t)opt->graders, sizeof *g);
  long mark, sent;
  int rc = 1;

  if (!g || bench_client_init(&c, opt->url, opt->token) < 0)
    return 1;
  if (bench_client_create_run(&c, opt->jobs, big_id, &cs) < 0 ||
      bench_client_start_run(&c, big_id, &ss) < 0 ||
      bench_client_create_run(&c, opt->students, f.small_id, &cs) < 0)
    goto out;
  atomic_store(&f.small_known, true);
  f.deadline = bw_test_now() + opt->max_seconds;
  pthread_barrier_init(&f.go, NULL, (unsigned)opt->graders + 1);
  for (int i = 0; i < opt->graders; i++) {
    g[i].index = i;
    g[i].f = &f;
    pthread_create(&g[i].thread, NULL, fair_grader_main, &g[i]);
  }
  pthread_barrier_wait(&f.go);
  while (atomic_load(&f.handouts) < UNDER_WAY && bw_test_now() < f.deadline)
    bw_test_sleep_ms(2);
  /* The run is queued somewhere inside the start request: counted from
   * its answer (queued by the API's word), and, as an upper bound, from
   * just before it was sent (hand-outs during the request count too). */
  sent = atomic_load(&f.handouts);
  if (bench_client_start_run(&c, f.small_id, &ss) < 0)
    atomic_store(&f.deadline, 0); /* the graders stop */
  mark = atomic_load(&f.handouts);
  for (int i = 0; i < opt->graders; i++)
    pthread_join(g[i].thread, NULL);
  pthread_barrier_destroy(&f.go);
  int out = atomic_load(&f.small_out);
  char key[64];
  /* Keyed by G: the phase runs with several. */
#define FAIR_RESULT(name, fmt, value)                                          \
  (snprintf(key, sizeof key, "fairness_g%d_%s", opt->graders, name),           \
   bench_result(key, fmt, value))
  FAIR_RESULT("big_jobs", "%d", opt->jobs);
  FAIR_RESULT("small_jobs", "%d", opt->students);
  FAIR_RESULT("small_out", "%d", out);
  long last = atomic_load(&f.small_last);
  FAIR_RESULT("handouts_before", "%ld", sent);
  FAIR_RESULT("handouts_during_start", "%ld", mark - sent);
  FAIR_RESULT("start_ms", "%.1f", ss * 1e3);
  FAIR_RESULT("handouts", "%ld",
              out < opt->students ? -1L : last > mark ? last - mark : 0L);
  FAIR_RESULT("handouts_from_sent", "%ld",
              out < opt->students ? -1L : last - sent);
  /* 2 active runs: the big one and the small one. */
  FAIR_RESULT("bound", "%d", opt->students * 2 + opt->graders);
#undef FAIR_RESULT
  rc = atomic_load(&f.failed) == 0 && out == opt->students ? 0 : 1;
out:
  bench_client_cleanup(&c);
  free(g);
  return rc;
}

/* ---- main ------------------------------------------------------------ */

static void usage(void) {
  fprintf(stderr,
          "usage: BENCH_URL=http://h:p BENCH_TOKEN=t bw-load COMMAND [opts]\n"
          "  e2e      --graders G --jobs N [--max-seconds T]\n"
          "  create   --students S [--reps R]\n"
          "  pollwait --waiting W [--polls K]\n"
          "  fairness --graders G --jobs N --students S [--max-seconds T]\n"
          "  pairs    --graders G --seconds D [--path P] [--label L] "
          "[--rate R]\n");
}

static int parse_options(int argc, char **argv, options_t *opt) {
  static const struct option longopts[] = {
      {"graders", required_argument, NULL, 'g'},
      {"jobs", required_argument, NULL, 'j'},
      {"students", required_argument, NULL, 's'},
      {"reps", required_argument, NULL, 'r'},
      {"waiting", required_argument, NULL, 'w'},
      {"polls", required_argument, NULL, 'k'},
      {"seconds", required_argument, NULL, 'd'},
      {"path", required_argument, NULL, 'p'},
      {"label", required_argument, NULL, 'l'},
      {"max-seconds", required_argument, NULL, 'm'},
      {"rate", required_argument, NULL, 'R'},
      {NULL, 0, NULL, 0}};
  int ch;

  *opt = (options_t){.graders = 16,
                     .jobs = 2000,
                     .students = 100,
                     .reps = 1,
                     .waiting = 100,
                     .polls = 50,
                     .seconds = 5,
                     .max_seconds = 1e9,
                     .path = "/api/v1/grading_job",
                     .label = "pairs"};
  opt->url = getenv("BENCH_URL");
  opt->token = getenv("BENCH_TOKEN");
  while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (ch) {
    case 'g':
      opt->graders = atoi(optarg);
      break;
    case 'j':
      opt->jobs = atoi(optarg);
      break;
    case 's':
      opt->students = atoi(optarg);
      break;
    case 'r':
      opt->reps = atoi(optarg);
      break;
    case 'w':
      opt->waiting = atoi(optarg);
      break;
    case 'k':
      opt->polls = atoi(optarg);
      break;
    case 'd':
      opt->seconds = atof(optarg);
      break;
    case 'p':
      opt->path = optarg;
      break;
    case 'l':
      opt->label = optarg;
      break;
    case 'm':
      opt->max_seconds = atof(optarg);
      break;
    case 'R':
      opt->rate = atof(optarg);
      break;
    default:
      return -1;
    }
  }
  if (!opt->url || !opt->token || opt->graders < 1 || opt->jobs < 1 ||
      opt->students < 1 || opt->reps < 1 || opt->waiting < 0 ||
      opt->polls < 1 || opt->seconds <= 0 || opt->max_seconds <= 0)
    return -1;
  return 0;
}

int main(int argc, char **argv) {
  options_t opt;
  const char *cmd = argc > 1 ? argv[1] : "";
  int rc;

  if (parse_options(argc - 1, argv + 1, &opt) < 0) {
    usage();
    return 2;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  if (strcmp(cmd, "e2e") == 0)
    rc = cmd_e2e(&opt);
  else if (strcmp(cmd, "create") == 0)
    rc = cmd_create(&opt);
  else if (strcmp(cmd, "pollwait") == 0)
    rc = cmd_pollwait(&opt);
  else if (strcmp(cmd, "pairs") == 0)
    rc = cmd_pairs(&opt);
  else if (strcmp(cmd, "fairness") == 0)
    rc = cmd_fairness(&opt);
  else {
    usage();
    rc = 2;
  }
  curl_global_cleanup();
  return rc;
}
