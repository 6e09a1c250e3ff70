/* check_faults.c - faults injected for real into a running stack, while
 * graders (forked processes speaking HTTP through nginx) poll and report:
 *
 *   - kill -9 of FastCGI workers in the middle of requests;
 *   - a poll whose reply never reaches its grader;
 *   - kill -9 of a grader holding jobs;
 *   - the database stopped (SIGSTOP) under load, then continued; and an
 *     external FerretDB killed -9 under load, then started again;
 *   - kill -9 of the whole stack (its process group), then broadway-run
 *     again on the same data dir;
 *   - several broadway-reaper --once at once, racing a dead grader's late
 *     results.
 *
 * After each, the run must complete with every job's result accepted
 * exactly once, no job handed to more graders than it had attempts, and
 * nothing left in the queue.
 *
 * Graders log what happened to them, one line per event, to a shared file
 * opened O_APPEND (lines are written whole):
 *   W <worker>        registered
 *   G <job>           received the job from a poll
 *   A <job>           its result was accepted (200)
 *   C <job>           its result was refused with 409
 *   X <job> <status>  its result got another final status
 *   P <status> <ms> <jsend status> <path>   a probe request (DB tests) */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/fault.h"
#include "../lib/http.h"
#include "../lib/itest.h"
#include "../lib/stack.h"

#define HEARTBEAT 1   /* s: the main stack's heartbeat interval */
#define CLAIM_GRACE 3 /* s: orphan claims are re-queued after this */
/* s: the student stage's timeout.  A hand-out is re-queued once held past
 * its stages' timeouts plus claim_grace (a poll reply that never arrived). */
#define STAGE_TIMEOUT 5
#define DB_TIMEOUT_MS 1000 /* the main stack's db_timeout_ms */
#define FAULT_CONFIG                                                           \
  "claim_grace = 3\n"                                                          \
  "db_timeout_ms = 1000\n"
#define MAX_GRADERS 8
#define MAX_JOBS 512
#define RUN_LIMIT_S 90 /* a faulted run must finish within this */

/* A request during a database outage must be answered within this: one
 * database call times out after db_timeout_ms; a request makes at most one
 * more (server selection after the failure) before it gives up. */
#define OUTAGE_REPLY_LIMIT_S (3.0 * DB_TIMEOUT_MS / 1000.0 + 1.0)

/* ---- the event log ------------------------------------------------------ */

typedef struct event_log {
  char path[64];
} event_log_t;

static void event_log_init(event_log_t *log) {
  snprintf(log->path, sizeof log->path, "/tmp/fault-events-XXXXXX");
  int fd = mkstemp(log->path);
  ck_assert_msg(fd >= 0, "mkstemp: %s", strerror(errno));
  close(fd);
}

typedef struct tally {
  char job[25];
  int got, accepted, conflicts, other;
} tally_t;

typedef struct tallies {
  tally_t jobs[MAX_JOBS];
  int n;
  int workers;
} tallies_t;

static tally_t *tally_of(tallies_t *t, const char *job) {
  for (int i = 0; i < t->n; i++)
    if (strcmp(t->jobs[i].job, job) == 0)
      return &t->jobs[i];
  ck_assert_int_lt(t->n, MAX_JOBS);
  tally_t *x = &t->jobs[t->n++];
  memset(x, 0, sizeof *x);
  snprintf(x->job, sizeof x->job, "%s", job);
  return x;
}

static void tallies_read(const event_log_t *log, tallies_t *t) {
  FILE *f = fopen(log->path, "r");
  char line[256], kind, id[64];
  memset(t, 0, sizeof *t);
  ck_assert_ptr_nonnull(f);
  while (fgets(line, sizeof line, f)) {
    if (sscanf(line, "%c %63s", &kind, id) != 2)
      continue;
    if (kind == 'W')
      t->workers++;
    else if (kind == 'G')
      tally_of(t, id)->got++;
    else if (kind == 'A')
      tally_of(t, id)->accepted++;
    else if (kind == 'C')
      tally_of(t, id)->conflicts++;
    else if (kind == 'X')
      tally_of(t, id)->other++;
  }
  fclose(f);
}

/* ---- graders ------------------------------------------------------------ */

typedef struct grader_opts {
  int hold_ms;     /* time "grading" each job */
  double limit_s;  /* the grader exits after this long in any case */
  int stop_after;  /* >0: stop polling after this many jobs and only
                      heartbeat (a grader that holds its jobs) */
  bool no_reports; /* with stop_after: never report */
  bool heartbeats; /* heartbeat every 200 ms */
} grader_opts_t;

static bool transient(long status) {
  return status == 0 || status == 502 || status == 503 || status == 504;
}

/* Reports `job` until a final answer; logs it. */
static void grader_report(const bw_test_client_t *c, int fd, const char *job,
                          double deadline) {
  for (;;) {
    long status = bw_test_http_report(c, job, true, NULL);
    if (status == 200) {
      bw_test_event(fd, "A %s", job);
      return;
    }
    if (status == 409) {
      bw_test_event(fd, "C %s", job);
      return;
    }
    if (!transient(status) || bw_test_now() > deadline) {
      bw_test_event(fd, "X %s %ld", job, status);
      return;
    }
    bw_test_http_heartbeat(c);
    bw_test_sleep_ms(50);
  }
}

/* A forked helper (grader, prober) must not outlive the test process,
 * which a failed assertion ends at once. */
static void die_with_parent(void) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
}

/* Graders stop when asked (SIGTERM), but only between jobs: a result being
 * reported is reported to the end, so the log says how it ended. */
static volatile sig_atomic_t grader_stopping;

static void grader_on_term(int sig) {
  (void)sig;
  grader_stopping = 1;
}

/* Failed connections are expected while the stack is down: the http
 * helpers would print each one. */
static void quiet_stderr(void) {
  int null = open("/dev/null", O_WRONLY);
  if (null >= 0) {
    dup2(null, STDERR_FILENO);
    close(null);
  }
}

/* A forked grader: never returns.  No ck_assert here: it is not the test. */
static void grader_main(const char *url, const char *token,
                        const event_log_t *log, const grader_opts_t *o) {
  bw_test_client_t c;
  double deadline = bw_test_now() + o->limit_s, last_beat = 0;
  int fd = open(log->path, O_WRONLY | O_APPEND), taken = 0;
  if (fd < 0)
    _exit(91);
  die_with_parent();
  signal(SIGTERM, grader_on_term);
  quiet_stderr();
  bw_test_client_init(&c, url, token);
  while (bw_test_http_register(&c, "fault", NULL) != 200) {
    if (bw_test_now() > deadline || grader_stopping)
      _exit(92);
    bw_test_sleep_ms(100);
  }
  bw_test_event(fd, "W %s", c.worker_id);
  while (bw_test_now() < deadline && !grader_stopping) {
    if (o->heartbeats && bw_test_now() - last_beat > 0.2) {
      bw_test_http_heartbeat(&c);
      last_beat = bw_test_now();
    }
    if (o->stop_after > 0 && taken >= o->stop_after) {
      bw_test_sleep_ms(100);
      continue;
    }
    char job[25];
    /* Long polls: killed workers may hold waiting polls of these graders. */
    long status = bw_test_http_poll_wait(&c, 1, NULL, job);
    if (status != 200) {
      bw_test_sleep_ms(status == 498 ? 50 : 20);
      continue;
    }
    taken++;
    bw_test_event(fd, "G %s", job);
    if (o->no_reports)
      continue;
    if (o->hold_ms > 0)
      bw_test_sleep_ms(o->hold_ms);
    grader_report(&c, fd, job, deadline);
  }
  _exit(0);
}

static pid_t grader_spawn(const char *url, const char *token,
                          const event_log_t *log, const grader_opts_t *o) {
  fflush(NULL);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0)
    grader_main(url, token, log, o);
  return pid;
}

/* Asks the graders to stop, gives them 10 s to finish what they report,
 * then kills what is left. */
static void graders_stop(pid_t *pids, int n) {
  for (int i = 0; i < n; i++)
    if (pids[i] > 0)
      kill(pids[i], SIGTERM);
  double deadline = bw_test_now() + 10;
  for (int i = 0; i < n; i++) {
    while (pids[i] > 0 && waitpid(pids[i], NULL, WNOHANG) == 0 &&
           bw_test_now() < deadline)
      bw_test_sleep_ms(20);
    if (pids[i] > 0 && kill(pids[i], SIGKILL) == 0)
      waitpid(pids[i], NULL, 0);
  }
}

/* ---- runs --------------------------------------------------------------- */

static char *run_config(int students, bool post) {
  char stage[128];
  snprintf(
      stage, sizeof stage,
      "{\"image\": \"g\", \"timeout\": %d, \"env\": {\"WHO\": \"$NETID\"}}",
      STAGE_TIMEOUT);
  return bw_itest_run_config(students, stage, false, post);
}

static void started_run(const bw_test_client_t *c, int students, bool post,
                        char run_id[25]) {
  char *config = run_config(students, post);
  ck_assert_int_eq(bw_test_http_create_and_start(c, config, run_id), 200);
  free(config);
}

/* The run's status; NULL (and resp cleaned) when it could not be read. */
static json_object *run_status(const bw_test_client_t *c, const char *run_id,
                               bw_test_http_resp_t *resp) {
  if (bw_test_http_run_status(c, run_id, resp) != 200) {
    bw_test_http_resp_cleanup(resp);
    return NULL;
  }
  return bw_test_http_data(resp);
}

/* Waits until the run is finished; its final state, or "" on timeout. */
static const char *wait_run_end(const bw_test_client_t *c, const char *run_id,
                                double seconds) {
  static char state[32];
  double deadline = bw_test_now() + seconds;
  state[0] = '\0';
  while (bw_test_now() < deadline) {
    bw_test_http_resp_t r;
    json_object *run = run_status(c, run_id, &r);
    const char *s = run ? bw_test_json_str(run, "state") : NULL;
    if (s && (strcmp(s, "succeeded") == 0 || strcmp(s, "failed") == 0)) {
      snprintf(state, sizeof state, "%s", s);
      bw_test_http_resp_cleanup(&r);
      return state;
    }
    bw_test_http_resp_cleanup(&r);
    bw_test_sleep_ms(250);
  }
  return state;
}

/* Lists the jobs of a run that did not succeed, for a failure message. */
static void describe_unfinished(const bw_test_client_t *c, const char *run_id,
                                char *out, size_t cap) {
  bw_test_http_resp_t r;
  size_t len = 0;
  out[0] = '\0';
  json_object *run = run_status(c, run_id, &r);
  json_object *jobs = bw_test_json_get(run, "jobs");
  for (size_t i = 0; jobs && i < json_object_array_length(jobs); i++) {
    json_object *j = json_object_array_get_idx(jobs, i);
    const char *state = bw_test_json_str(j, "state");
    if (state && strcmp(state, "succeeded") == 0)
      continue;
    const char *worker = bw_test_json_str(j, "worker_id");
    len += (size_t)snprintf(
        out + len, len < cap ? cap - len : 0,
        " [job %s %s attempts %lld worker %s]", bw_test_json_str(j, "job_id"),
        state, bw_test_json_int(j, "attempts"), worker ? worker : "-");
    if (len >= cap)
      break;
  }
  bw_test_http_resp_cleanup(&r);
}

static void assert_run_succeeded(const bw_test_client_t *c, const char *run_id,
                                 double seconds) {
  const char *state = wait_run_end(c, run_id, seconds);
  if (strcmp(state, "succeeded") != 0) {
    char jobs[4096];
    describe_unfinished(c, run_id, jobs, sizeof jobs);
    ck_abort_msg("run %s is \"%s\" after %.0f s; unfinished:%s", run_id, state,
                 seconds, jobs);
  }
}

/* Exactly-once, checked against the run's final status: every job
 * succeeded, its result was accepted exactly once, and no job went to more
 * graders than it had attempts. */
static void assert_each_job_done_once(const bw_test_client_t *c,
                                      const char *run_id, tallies_t *t,
                                      int expected_jobs) {
  bw_test_http_resp_t r;
  /* Just after an outage a worker may still answer 503 for a moment (it
   * holds off for a second after failing to reach the database). */
  json_object *run = run_status(c, run_id, &r);
  for (double t0 = bw_test_now(); !run && bw_test_now() - t0 < 5;) {
    bw_test_sleep_ms(200);
    run = run_status(c, run_id, &r);
  }
  ck_assert_msg(run != NULL, "no run status");
  json_object *jobs = bw_test_json_get(run, "jobs");
  ck_assert_int_eq((int)json_object_array_length(jobs), expected_jobs);
  ck_assert_int_eq(
      bw_test_json_int(bw_test_json_get(run, "counts"), "succeeded"),
      expected_jobs);
  for (size_t i = 0; i < json_object_array_length(jobs); i++) {
    json_object *j = json_object_array_get_idx(jobs, i);
    const char *id = bw_test_json_str(j, "job_id");
    long long attempts = bw_test_json_int(j, "attempts");
    tally_t *x = tally_of(t, id);
    ck_assert_msg(strcmp(bw_test_json_str(j, "state"), "succeeded") == 0,
                  "job %s is %s", id, bw_test_json_str(j, "state"));
    ck_assert_msg(x->accepted == 1,
                  "job %s: %d results accepted (received %d times, %lld "
                  "attempts)",
                  id, x->accepted, x->got, attempts);
    ck_assert_msg(x->got <= attempts,
                  "job %s handed to graders %d times in %lld attempts", id,
                  x->got, attempts);
    ck_assert_msg(x->other == 0, "job %s: %d reports got neither 200 nor 409",
                  id, x->other);
  }
  bw_test_http_resp_cleanup(&r);
}

/* Nothing waits in the queue: a fresh grader finds it empty.  (Through the
 * API: the collections behind the queue are the server's business.) */
static void assert_queue_empty(const char *base, const char *tok) {
  bw_test_client_t c;
  bw_test_client_init(&c, base, tok);
  ck_assert_int_eq(bw_test_http_register(&c, "check", NULL), 200);
  bw_test_http_resp_t r;
  bw_test_http_poll(&c, &r, NULL);
  ck_assert_msg(r.status == 498, "the queue is not empty: %ld %s", r.status,
                BW_BODY(&r));
  bw_test_http_resp_cleanup(&r);
}

/* How every run under faults ends: the run succeeds, the graders stop, and
 * by their event log each of its `jobs` jobs was done exactly once; with a
 * `base`, a fresh grader of that API then finds the queue empty.  Removes
 * the log. */
static void assert_run_done_once(const bw_test_client_t *c, const char *run_id,
                                 pid_t *pids, int graders,
                                 const event_log_t *log, int jobs,
                                 const char *base, const char *tok) {
  assert_run_succeeded(c, run_id, RUN_LIMIT_S);
  graders_stop(pids, graders);
  tallies_t *t = calloc(1, sizeof *t);
  tallies_read(log, t);
  assert_each_job_done_once(c, run_id, t, jobs);
  if (base != NULL)
    assert_queue_empty(base, tok);
  free(t);
  unlink(log->path);
}

static pid_t stack_pgid(void) {
  pid_t pgid = bw_fault_stack_pgid(bw_test_stack_data_dir(bw_itest_stack()));
  ck_assert_msg(pgid > 0, "the stack's process group is not found");
  return pgid;
}

static const char *url(void) {
  return bw_test_stack_url(bw_itest_stack());
}

static const char *token(void) {
  return bw_test_stack_token(bw_itest_stack());
}

/* ---- kill -9 of FastCGI workers ----------------------------------------- */

#ifndef WORKER_KILLS
#define WORKER_KILLS 8
#endif
#ifndef KILL_PAUSE_MS
#define KILL_PAUSE_MS 150
#endif

static bool pid_in(pid_t pid, const pid_t *pids, int n) {
  for (int i = 0; i < n; i++)
    if (pids[i] == pid)
      return true;
  return false;
}

/* Waits until the pool is back to `size` workers, `killed` not among them;
 * returns the seconds it took, or -1. */
static double wait_respawn(pid_t pgid, pid_t killed, int size) {
  double t0 = bw_test_now();
  while (bw_test_now() - t0 < 10) {
    pid_t now[32];
    int n = bw_fault_fcgi_workers(pgid, now, 32);
    if (n == size && !pid_in(killed, now, n < 32 ? n : 32))
      return bw_test_now() - t0;
    bw_test_sleep_ms(20);
  }
  return -1;
}

/* SIGKILLs the pool's worker number `pick` (modulo the workers it has now)
 * and waits until the pool is back to `size`; returns the seconds that took. */
static double kill_worker(pid_t pgid, int pick, int size) {
  pid_t workers[32];
  int n = bw_fault_fcgi_workers(pgid, workers, 32);
  ck_assert_int_gt(n, 0);
  pid_t victim = workers[pick % (n < 32 ? n : 32)];
  ck_assert_int_eq(kill(victim, SIGKILL), 0);
  double took = wait_respawn(pgid, victim, size);
  ck_assert_msg(took >= 0, "worker %d was not replaced within 10 s",
                (int)victim);
  return took;
}

START_TEST(test_fcgi_worker_kill9_is_respawned_and_nothing_is_lost) {
  const int students = 80, graders = 4;
  bw_test_client_t c;
  event_log_t log;
  pid_t pids[MAX_GRADERS], workers[32];
  char run_id[25];
  grader_opts_t o = {.hold_ms = 60, .limit_s = 120, .heartbeats = true};

  bw_itest_client(&c);
  event_log_init(&log);
  pid_t pgid = stack_pgid(), parent = bw_fault_fcgi_parent(pgid);
  int size = bw_fault_fcgi_workers(pgid, workers, 32);
  ck_assert_int_ge(size, 2);
  started_run(&c, students, true, run_id);
  for (int i = 0; i < graders; i++)
    pids[i] = grader_spawn(url(), token(), &log, &o);

  double slowest = 0;
  for (int k = 0; k < WORKER_KILLS; k++) {
    bw_test_sleep_ms(KILL_PAUSE_MS + 40 * (k % 4));
    double took = kill_worker(pgid, k * 7, size);
    slowest = took > slowest ? took : slowest;
  }
  fprintf(stderr, "faults: %d workers killed, slowest respawn %.2f s\n",
          WORKER_KILLS, slowest);
  ck_assert_int_eq(bw_fault_fcgi_parent(pgid), parent);

  assert_run_done_once(&c, run_id, pids, graders, &log, students + 1, url(),
                       token());
}
END_TEST

/* Graders wait in long polls on an empty queue, so the FastCGI workers
 * hold their parked requests; workers are killed with those polls in
 * flight, before and while a run is queued and drained.  The waiting
 * graders get a 502 and poll again; no job is lost or handed out twice. */
START_TEST(test_fcgi_worker_kill9_with_waiting_polls_loses_nothing) {
  const int students = 60, graders = 8;
  bw_test_client_t c;
  event_log_t log;
  pid_t pids[MAX_GRADERS], workers[32];
  char run_id[25];
  grader_opts_t o = {.hold_ms = 30, .limit_s = 120, .heartbeats = true};

  bw_itest_client(&c);
  event_log_init(&log);
  pid_t pgid = stack_pgid();
  int size = bw_fault_fcgi_workers(pgid, workers, 32);
  ck_assert_int_ge(size, 2);
  for (int i = 0; i < graders; i++)
    pids[i] = grader_spawn(url(), token(), &log, &o);
  bw_test_sleep_ms(1500); /* registered, and waiting on the empty queue */
  for (int k = 0; k < 2; k++) {
    kill_worker(pgid, k, size);
    bw_test_sleep_ms(300);
  }
  started_run(&c, students, true, run_id);
  for (int k = 0; k < 3; k++) {
    bw_test_sleep_ms(KILL_PAUSE_MS);
    kill_worker(pgid, k * 5, size);
  }
  assert_run_done_once(&c, run_id, pids, graders, &log, students + 1, url(),
                       token());
}
END_TEST

/* ---- a poll whose reply never arrives ---------------------------------- */

/* Sends a poll for `worker` on a raw connection, waits until the server
 * has surely handled it, and hangs up without reading the reply: what a
 * grader whose HTTP client timed out (or whose connection dropped, or
 * whose FastCGI worker was killed after recording) experiences. */
static void poll_and_hang_up(const char *worker) {
  int fd = bw_test_connect_local(bw_test_stack_port(bw_itest_stack()));
  ck_assert_int_ge(fd, 0);
  char request[512];
  int n = snprintf(request, sizeof request,
                   "GET /api/v1/grading_job HTTP/1.1\r\nHost: x\r\n"
                   "Authorization: %s\r\nworker_id: %s\r\n"
                   "Connection: close\r\n\r\n",
                   token(), worker);
  ck_assert_int_eq(write(fd, request, (size_t)n), n);
  bw_test_sleep_ms(1000);
  close(fd);
}

START_TEST(test_lost_poll_reply_job_is_handed_out_again) {
  bw_test_client_t a, b, c;
  char run_id[25], job[25] = "";
  bw_itest_client(&a);
  bw_itest_client(&b);
  bw_itest_client(&c);
  ck_assert_int_eq(bw_test_http_register(&a, "a", NULL), 200);
  ck_assert_int_eq(bw_test_http_register(&b, "b", NULL), 200);
  started_run(&c, 1, false, run_id);
  poll_and_hang_up(a.worker_id);

  /* The hand-out was recorded for A, which never saw it. */
  bw_test_http_resp_t r;
  json_object *run = run_status(&c, run_id, &r);
  json_object *only =
      json_object_array_get_idx(bw_test_json_get(run, "jobs"), 0);
  ck_assert_str_eq(bw_test_json_str(only, "state"), "running");
  ck_assert_str_eq(bw_test_json_str(only, "worker_id"), a.worker_id);
  bw_test_http_resp_cleanup(&r);

  /* A and B stay alive and keep asking: one of them must get it again
   * once the hand-out is overdue (its stage's timeout plus claim_grace:
   * nothing a grader does can take longer) and the reaper has looked. */
  double limit = STAGE_TIMEOUT + 1 + CLAIM_GRACE + 3 * HEARTBEAT + 2,
         t0 = bw_test_now();
  const bw_test_client_t *got = NULL;
  while (!got && bw_test_now() - t0 < limit) {
    const bw_test_client_t *graders[] = {&a, &b};
    for (int i = 0; i < 2 && !got; i++) {
      ck_assert_int_eq(bw_test_http_heartbeat(graders[i]), 200);
      long status = bw_test_http_poll(graders[i], NULL, job);
      if (status == 200)
        got = graders[i];
      else
        ck_assert_int_eq(status, 498);
    }
    bw_test_sleep_ms(200);
  }
  ck_assert_msg(got != NULL,
                "the job whose poll reply was lost is still held by a live "
                "grader that never received it, %.0f s later",
                bw_test_now() - t0);
  fprintf(stderr,
          "faults: lost poll reply: job handed out again after %.1f s\n",
          bw_test_now() - t0);
  ck_assert_int_eq(bw_test_http_report(got, job, true, NULL), 200);
  assert_run_succeeded(&c, run_id, 10);
}
END_TEST

/* ---- kill -9 of a grader holding jobs ----------------------------------- */

/* Waits until the log shows `n` G lines; copies the job ids and the
 * worker. */
static void wait_held_jobs(const event_log_t *log, int n, char jobs[][25],
                           char worker[25]) {
  double deadline = bw_test_now() + 20;
  for (;;) {
    FILE *f = fopen(log->path, "r");
    char line[256], kind, id[64];
    int got = 0;
    worker[0] = '\0';
    while (f && fgets(line, sizeof line, f))
      if (sscanf(line, "%c %63s", &kind, id) == 2) {
        if (kind == 'W')
          snprintf(worker, 25, "%.24s", id);
        else if (kind == 'G' && got < n)
          snprintf(jobs[got++], 25, "%.24s", id);
      }
    if (f)
      fclose(f);
    if (got == n && worker[0])
      return;
    ck_assert_msg(bw_test_now() < deadline, "the grader took %d of %d jobs",
                  got, n);
    bw_test_sleep_ms(50);
  }
}

static int index_of(char jobs[][25], int n, const char *job) {
  for (int i = 0; i < n; i++)
    if (strcmp(jobs[i], job) == 0)
      return i;
  return -1;
}

START_TEST(test_grader_kill9_its_jobs_go_to_another_within_3_heartbeats) {
  const int students = 6, held = 2;
  bw_test_client_t b, a;
  event_log_t log;
  char run_id[25], jobs[2][25], worker_a[25];
  double got_at[2] = {-1, -1};
  grader_opts_t o = {.limit_s = 60,
                     .stop_after = held,
                     .no_reports = true,
                     .heartbeats = true};

  bw_itest_client(&b);
  ck_assert_int_eq(bw_test_http_register(&b, "b", NULL), 200);
  event_log_init(&log);
  started_run(&b, students, false, run_id);
  pid_t pid = grader_spawn(url(), token(), &log, &o);
  wait_held_jobs(&log, held, jobs, worker_a);
  bw_test_sleep_ms(300); /* A heartbeats while it holds them */
  ck_assert_int_eq(kill(pid, SIGKILL), 0);
  double t0 = bw_test_now();
  waitpid(pid, NULL, 0);

  /* B heartbeats, drains and keeps A's jobs aside until both came. */
  int others = 0;
  while ((got_at[0] < 0 || got_at[1] < 0) && bw_test_now() - t0 < 15) {
    char job[25];
    ck_assert_int_eq(bw_test_http_heartbeat(&b), 200);
    long status = bw_test_http_poll(&b, NULL, job);
    if (status == 200 && index_of(jobs, held, job) >= 0) {
      got_at[index_of(jobs, held, job)] = bw_test_now() - t0;
    } else if (status == 200) {
      ck_assert_int_eq(bw_test_http_report(&b, job, true, NULL), 200);
      others++;
    } else {
      ck_assert_int_eq(status, 498);
      bw_test_sleep_ms(50);
    }
  }
  fprintf(stderr,
          "faults: grader killed; its jobs handed to another after %.2f s "
          "and %.2f s (limit %d s)\n",
          got_at[0], got_at[1], 3 * HEARTBEAT);
  for (int i = 0; i < held; i++) {
    ck_assert_msg(got_at[i] >= 0, "job %s never came back", jobs[i]);
    ck_assert_msg(got_at[i] <= 3.0 * HEARTBEAT + 0.5,
                  "job %s came back after %.2f s, over 3 heartbeats", jobs[i],
                  got_at[i]);
  }

  /* A's late results: 409, and nothing changes. */
  bw_test_client_init(&a, url(), token());
  snprintf(a.worker_id, sizeof a.worker_id, "%s", worker_a);
  for (int i = 0; i < held; i++) {
    bw_test_http_resp_t r;
    bw_test_http_report(&a, jobs[i], true, &r);
    BW_ASSERT_FAIL(&r, 409, "");
    bw_test_http_resp_cleanup(&r);
  }
  for (int i = 0; i < held; i++)
    ck_assert_int_eq(bw_test_http_report(&b, jobs[i], true, NULL), 200);
  while (others < students - held) {
    char job[25];
    ck_assert_int_eq(bw_itest_poll_until_job(&b, 10, NULL, job), 200);
    ck_assert_int_lt(index_of(jobs, held, job), 0);
    ck_assert_int_eq(bw_test_http_report(&b, job, true, NULL), 200);
    others++;
  }
  ck_assert_int_eq(bw_test_http_poll(&b, NULL, NULL), 498);
  assert_run_succeeded(&b, run_id, 10);

  bw_test_http_resp_t r;
  json_object *run = run_status(&b, run_id, &r);
  json_object *list = bw_test_json_get(run, "jobs");
  for (size_t i = 0; i < json_object_array_length(list); i++) {
    json_object *j = json_object_array_get_idx(list, i);
    bool was_held = index_of(jobs, held, bw_test_json_str(j, "job_id")) >= 0;
    ck_assert_int_eq(bw_test_json_int(j, "attempts"), was_held ? 2 : 1);
    ck_assert_str_eq(bw_test_json_str(j, "worker_id"), b.worker_id);
  }
  bw_test_http_resp_cleanup(&r);
  assert_queue_empty(url(), token());
  unlink(log.path);
}
END_TEST

/* ---- the database stops under load -------------------------------------- */

/* A forked client that keeps calling endpoints that need the database and
 * logs each answer with its latency. */
static void prober_main(const char *base, const char *tok,
                        const event_log_t *log, const char *run_id,
                        double seconds) {
  bw_test_client_t c;
  int fd = open(log->path, O_WRONLY | O_APPEND);
  if (fd < 0)
    _exit(91);
  die_with_parent();
  quiet_stderr();
  bw_test_client_init(&c, base, tok);
  char run_path[64];
  snprintf(run_path, sizeof run_path, "/api/v1/grading_run/%s", run_id);
  const char *small_run = "{\"students\":[{\"A\":\"1\"}],"
                          "\"student_pipeline\":[{\"image\":\"g\"}]}";
  struct {
    const char *method, *path, *body;
  } calls[] = {{"GET", "/api/v1/worker_register", NULL},
               {"GET", run_path, NULL},
               {"POST", "/api/v1/grading_run", small_run},
               {"GET", "/api/v1/grading_job/0123456789abcdef01234567", NULL}};
  double deadline = bw_test_now() + seconds;
  for (int i = 0; bw_test_now() < deadline; i++) {
    bw_test_http_resp_t r;
    int k = i % 4;
    double t0 = bw_test_now();
    bw_test_http_call(&c, calls[k].method, calls[k].path, calls[k].body, &r);
    int ms = (int)((bw_test_now() - t0) * 1000);
    const char *js = bw_test_http_jsend_status(&r);
    long long code = bw_test_json_int(r.json, "code");
    bw_test_event(fd, "P %ld %d %s %lld %s", r.status, ms, js[0] ? js : "-",
                  code, calls[k].path);
    bw_test_http_resp_cleanup(&r);
    bw_test_sleep_ms(30);
  }
  _exit(0);
}

typedef struct probe_stats {
  int total, ok, unavailable, bad_envelope, unexpected;
  int max_ms;
  char first_bad[256];
} probe_stats_t;

/* Reads the P lines: every answer must be a success, a 404 for the unknown
 * job, or a 503 JSend error with code 503, within OUTAGE_REPLY_LIMIT_S. */
static void probe_stats_read(const event_log_t *log, probe_stats_t *s) {
  FILE *f = fopen(log->path, "r");
  char line[256], js[32], path[128];
  long status;
  int ms;
  long long code;
  memset(s, 0, sizeof *s);
  ck_assert_ptr_nonnull(f);
  while (fgets(line, sizeof line, f)) {
    if (sscanf(line, "P %ld %d %31s %lld %127s", &status, &ms, js, &code,
               path) != 5)
      continue;
    s->total++;
    s->max_ms = ms > s->max_ms ? ms : s->max_ms;
    bool fine = false;
    if (status == 200 || status == 404) {
      s->ok++;
      fine = true;
    } else if (status == 503) {
      s->unavailable++;
      fine = strcmp(js, "error") == 0 && code == 503;
      if (!fine)
        s->bad_envelope++;
    } else {
      s->unexpected++;
    }
    if (!fine && !s->first_bad[0])
      snprintf(s->first_bad, sizeof s->first_bad, "%s", line);
  }
  fclose(f);
}

/* Answers in time, as a JSend 503 or success, never anything else. */
static void assert_outage_answers(const event_log_t *log) {
  probe_stats_t s;
  probe_stats_read(log, &s);
  fprintf(stderr,
          "faults: database outage: %d probes, %d answered, %d x 503, slowest "
          "%d ms (limit %.0f ms)\n",
          s.total, s.ok, s.unavailable, s.max_ms, OUTAGE_REPLY_LIMIT_S * 1000);
  ck_assert_msg(s.unavailable > 0, "no 503 while the database was down");
  ck_assert_msg(s.unexpected == 0 && s.bad_envelope == 0,
                "%d unexpected statuses, %d 503s without a JSend error; "
                "first: %s",
                s.unexpected, s.bad_envelope, s.first_bad);
  ck_assert_msg(s.max_ms <= OUTAGE_REPLY_LIMIT_S * 1000,
                "a request took %d ms during the outage", s.max_ms);
}

/* While the database is down: malformed ids and worker ids are refused
 * with 400, not 503, which shows they are checked before any query.  No
 * ck_assert here (the database must come back whatever happens): returns
 * "" or what went wrong. */
static const char *ids_checked_without_db(void) {
  static char problem[512];
  bw_test_client_t c;
  bw_test_http_resp_t r;
  problem[0] = '\0';
  bw_test_client_init(&c, url(), token());
  double t0 = bw_test_now();
  bw_test_http_call(&c, "GET", "/api/v1/grading_run/nothex", NULL, &r);
  if (r.status != 400 || !strstr(bw_test_http_message(&r), "grading_run_id"))
    snprintf(problem, sizeof problem, "malformed run id: %ld %s", r.status,
             BW_BODY(&r));
  bw_test_http_resp_cleanup(&r);
  snprintf(c.worker_id, sizeof c.worker_id, "not-a-worker");
  bw_test_http_call(&c, "GET", "/api/v1/grading_job", NULL, &r);
  if (!problem[0] &&
      (r.status != 400 || !strstr(bw_test_http_message(&r), "worker_id")))
    snprintf(problem, sizeof problem, "malformed worker id: %ld %s", r.status,
             BW_BODY(&r));
  bw_test_http_resp_cleanup(&r);
  /* they may wait for a worker that is itself waiting on the database */
  if (!problem[0] && bw_test_now() - t0 > 2 * OUTAGE_REPLY_LIMIT_S)
    snprintf(problem, sizeof problem,
             "malformed ids took %.2f s with the database down",
             bw_test_now() - t0);
  return problem;
}

/* Polls register until it answers 200 again; returns the seconds. */
static double wait_recovered(double limit) {
  bw_test_client_t c;
  bw_test_client_init(&c, url(), token());
  double t0 = bw_test_now();
  while (bw_test_now() - t0 < limit) {
    if (bw_test_http_register(&c, NULL, NULL) == 200)
      return bw_test_now() - t0;
    bw_test_sleep_ms(100);
  }
  return -1;
}

typedef void (*outage_fn)(void *ctx, bool down);

/* A run drained by graders while probers call the API; `outage` takes the
 * database down after 1 s and brings it back after 4 s. */
static void run_through_outage(outage_fn outage, void *ctx) {
  const int students = 30, graders = 3, probers = 2;
  bw_test_client_t c;
  event_log_t log;
  pid_t pids[MAX_GRADERS];
  char run_id[25];
  grader_opts_t o = {.hold_ms = 100, .limit_s = 120, .heartbeats = true};

  bw_itest_client(&c);
  event_log_init(&log);
  started_run(&c, students, true, run_id);
  pid_t pgid = stack_pgid(), before[32], after[32];
  int n_before = bw_fault_fcgi_workers(pgid, before, 32);

  for (int i = 0; i < graders; i++)
    pids[i] = grader_spawn(url(), token(), &log, &o);
  for (int i = 0; i < probers; i++) {
    fflush(NULL);
    pids[graders + i] = fork();
    if (pids[graders + i] == 0)
      prober_main(url(), token(), &log, run_id, 7);
  }
  bw_test_sleep_ms(1000);
  outage(ctx, true);
  bw_test_sleep_ms(500);
  const char *ids_problem = ids_checked_without_db();
  bw_test_sleep_ms(3500);
  outage(ctx, false);
  ck_assert_msg(ids_problem[0] == '\0', "%s", ids_problem);
  for (int i = graders; i < graders + probers; i++)
    waitpid(pids[i], NULL, 0);
  double recovered = wait_recovered(30);
  fprintf(stderr, "faults: API answered 200 again %.2f s after the database\n",
          recovered);
  ck_assert_msg(recovered >= 0, "the API did not recover within 30 s");
  assert_outage_answers(&log);

  /* never crashed: the same FastCGI workers serve before and after */
  int n_after = bw_fault_fcgi_workers(pgid, after, 32);
  ck_assert_int_eq(n_after, n_before);
  for (int i = 0; i < n_before && i < 32; i++)
    ck_assert_msg(pid_in(before[i], after, n_after),
                  "FastCGI worker %d died during the outage", (int)before[i]);

  assert_run_done_once(&c, run_id, pids, graders, &log, students + 1, NULL,
                       NULL);
}

/* A stopped FerretDB would outlive a failed test and hang the stack's
 * shutdown: a watchdog process continues it after 20 s in any case. */
static void sigstop_ferretdb(void *ctx, bool down) {
  static pid_t watchdog;
  pid_t *ferretdb = ctx;
  if (down) {
    fflush(NULL);
    watchdog = fork();
    if (watchdog == 0) {
      sleep(20);
      kill(*ferretdb, SIGCONT);
      _exit(0);
    }
  } else if (watchdog > 0) {
    kill(watchdog, SIGKILL);
    waitpid(watchdog, NULL, 0);
  }
  ck_assert_int_eq(kill(*ferretdb, down ? SIGSTOP : SIGCONT), 0);
}

START_TEST(test_db_stopped_under_load_503_then_recovers) {
  pid_t ferretdb;
  ck_assert_int_eq(bw_fault_group_find(stack_pgid(), "ferretdb", &ferretdb, 1),
                   1);
  run_through_outage(sigstop_ferretdb, &ferretdb);
}
END_TEST

/* The same with a FerretDB killed -9 and started again on the same socket
 * and data (an external one: the run script stops the stack when its own
 * FerretDB dies). */
static bw_fault_ferretdb_t *external_db;

static void external_db_stack_start(void) {
  external_db = bw_fault_ferretdb_start();
  if (external_db)
    setenv("BROADWAY_MONGO_URI", bw_fault_ferretdb_uri(external_db), 1);
  bw_test_stack_opts_t opts = {.label = "faults-extdb",
                               .heartbeat = HEARTBEAT,
                               .workers = 4,
                               .config_text = FAULT_CONFIG};
  bw_itest_push_stack(&opts);
  unsetenv("BROADWAY_MONGO_URI");
}

static void external_db_stack_stop(void) {
  bw_itest_pop_stack();
  bw_fault_ferretdb_stop(external_db);
  external_db = NULL;
}

static void kill9_ferretdb(void *ctx, bool down) {
  bw_fault_ferretdb_t *f = ctx;
  if (down)
    bw_fault_ferretdb_kill9(f);
  else
    ck_assert_int_eq(bw_fault_ferretdb_restart(f), 0);
}

START_TEST(test_db_killed_under_load_503_then_recovers) {
  ck_assert_msg(external_db != NULL, "the external FerretDB did not start");
  run_through_outage(kill9_ferretdb, external_db);
}
END_TEST

/* ---- kill -9 of the whole stack ----------------------------------------- */

static bw_fault_stack_t *killable;

static void killable_stack_start(void) {
  bw_fault_stack_opts_t opts = {
      .label = "kill9", .workers = 4, .config_text = "claim_grace = 3\n"};
  killable = bw_fault_stack_start(&opts);
}

static void killable_stack_stop(void) {
  bw_fault_stack_stop(killable, false);
  killable = NULL;
}

static void assert_finished_job(const bw_test_client_t *c, const char *job) {
  bw_test_http_resp_t r;
  bw_test_http_get_job(c, job, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  json_object *data = bw_test_http_data(&r);
  ck_assert_str_eq(bw_test_json_str(data, "state"), "succeeded");
  ck_assert_msg(bw_test_result_stages(data) == 1,
                "job %s lost its result: %s", job, BW_BODY(&r));
  bw_test_http_resp_cleanup(&r);
}

START_TEST(test_whole_stack_kill9_then_restart_loses_nothing) {
  const int students = 40, finished = 10, held = 3, graders = 2;
  ck_assert_msg(killable != NULL, "the killable stack did not start");
  const char *base = bw_fault_stack_url(killable);
  const char *tok = bw_fault_stack_token(killable);
  const char *data = bw_fault_stack_data_dir(killable);
  bw_test_client_t g;
  event_log_t log;
  char run_id[25], done[10][25], kept[3][25];
  pid_t pids[MAX_GRADERS];
  grader_opts_t o = {.hold_ms = 30, .limit_s = 150, .heartbeats = true};

  event_log_init(&log);
  int fd = open(log.path, O_WRONLY | O_APPEND);
  bw_test_client_init(&g, base, tok);
  ck_assert_int_eq(bw_test_http_register(&g, "g", NULL), 200);
  bw_test_event(fd, "W %s", g.worker_id);
  started_run(&g, students, true, run_id);
  for (int i = 0; i < finished + held; i++) {
    char *job = i < finished ? done[i] : kept[i - finished];
    ck_assert_int_eq(bw_test_http_poll(&g, NULL, job), 200);
    bw_test_event(fd, "G %s", job);
    if (i < finished) {
      ck_assert_int_eq(bw_test_http_report(&g, job, true, NULL), 200);
      bw_test_event(fd, "A %s", job);
    }
  }
  for (int i = 0; i < graders; i++)
    pids[i] = grader_spawn(base, tok, &log, &o);
  bw_test_sleep_ms(700); /* they are mid-request when it dies */

  pid_t pgid = bw_fault_stack_pgid_of(killable);
  ck_assert_int_eq(bw_fault_stack_kill9(killable), 0);
  pid_t left[16];
  int n_left = bw_fault_data_dir_users(data, left, 16);
  ck_assert_msg(n_left == 0,
                "%d processes of the stack outlived the kill of group %d "
                "(first: %d)",
                n_left, (int)pgid, n_left ? (int)left[0] : 0);
  double t0 = bw_test_now();
  ck_assert_msg(bw_fault_stack_restart(killable) == 0,
                "broadway-run did not come up again on %s", data);
  fprintf(stderr, "faults: stack restarted on the same data in %.1f s\n",
          bw_test_now() - t0);

  for (int i = 0; i < finished; i++)
    assert_finished_job(&g, done[i]);
  ck_assert_int_eq(bw_test_http_heartbeat(&g), 200);
  for (int i = 0; i < held; i++) {
    ck_assert_int_eq(bw_test_http_report(&g, kept[i], true, NULL), 200);
    bw_test_event(fd, "A %s", kept[i]);
  }
  close(fd);

  assert_run_done_once(&g, run_id, pids, graders, &log, students + 1, base,
                       tok);
}
END_TEST

/* ---- reapers racing each other and a late result ------------------------ */

#define RACING_REAPERS 4

/* Children that wait on `gate` (a pipe) and then all go at once. */
static pid_t spawn_gated(const int gate[2], void (*fn)(void *), void *arg) {
  fflush(NULL);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    char byte;
    die_with_parent();
    close(gate[1]); /* or the gate never opens: EOF needs every writer gone */
    while (read(gate[0], &byte, 1) < 0 && errno == EINTR) {
    }
    fn(arg);
    _exit(0);
  }
  return pid;
}

static void run_reaper(void *arg) {
  (void)arg;
  char exe[1024], conf[1024], mongo[8192], db[128], data[1100];
  snprintf(exe, sizeof exe, "%s/broadway-reaper", bw_fault_bin_dir());
  snprintf(conf, sizeof conf, "%s/test.conf",
           bw_test_stack_data_dir(bw_itest_stack()));
  snprintf(mongo, sizeof mongo, "BROADWAY_MONGO_URI=%s",
           bw_test_stack_mongo_uri(bw_itest_stack()));
  snprintf(db, sizeof db, "BROADWAY_DB=%s",
           bw_test_stack_db_name(bw_itest_stack()));
  snprintf(data, sizeof data, "BROADWAY_DATA=%s",
           bw_test_stack_data_dir(bw_itest_stack()));
  char *argv[] = {exe, "-c", conf, "--once", NULL};
  char *env[] = {mongo, db, data, "BROADWAY_HEARTBEAT=1", NULL};
  _exit(bw_fault_run(argv, env, NULL) == 0 ? 0 : 1);
}

typedef struct late_report {
  const bw_test_client_t *dead;
  const char *job;
} late_report_t;

static void send_late_report(void *arg) {
  late_report_t *l = arg;
  long status = bw_test_http_report(l->dead, l->job, true, NULL);
  _exit(status == 200 ? 20 : status == 409 ? 29 : 1);
}

START_TEST(test_reapers_race_each_other_and_late_results) {
  const int students = 8, held = 4;
  bw_test_client_t a, b;
  char run_id[25], jobs[4][25];
  pid_t pids[RACING_REAPERS + 4];
  late_report_t late[4];
  int gate[2];

  bw_itest_client(&a);
  bw_itest_client(&b);
  ck_assert_int_eq(bw_test_http_register(&a, "a", NULL), 200);
  ck_assert_int_eq(bw_test_http_register(&b, "b", NULL), 200);
  started_run(&a, students, false, run_id);
  for (int i = 0; i < held; i++)
    ck_assert_int_eq(bw_test_http_poll(&a, NULL, jobs[i]), 200);
  ck_assert_int_eq(bw_test_http_heartbeat(&a), 200);
  double last_beat = bw_test_now();

  /* A falls silent; just as it passes 2 intervals, everyone goes. */
  ck_assert_int_eq(pipe(gate), 0);
  for (int i = 0; i < RACING_REAPERS; i++)
    pids[i] = spawn_gated(gate, run_reaper, NULL);
  for (int i = 0; i < held; i++) {
    late[i] = (late_report_t){&a, jobs[i]};
    pids[RACING_REAPERS + i] = spawn_gated(gate, send_late_report, &late[i]);
  }
  close(gate[0]);
  while (bw_test_now() - last_beat < 2.0 * HEARTBEAT + 0.05) {
    bw_test_http_heartbeat(&b);
    bw_test_sleep_ms(10);
  }
  close(gate[1]);

  int accepted = 0, refused = 0;
  bool was_accepted[4];
  for (int i = 0; i < RACING_REAPERS + held; i++) {
    int status;
    ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
    ck_assert(WIFEXITED(status));
    int rc = WEXITSTATUS(status);
    if (i < RACING_REAPERS) {
      ck_assert_msg(rc == 0, "broadway-reaper --once failed");
      continue;
    }
    ck_assert_msg(rc == 20 || rc == 29, "a late result got neither 200 nor "
                                        "409");
    was_accepted[i - RACING_REAPERS] = rc == 20;
    accepted += rc == 20;
    refused += rc == 29;
  }
  fprintf(stderr, "faults: reaper race: %d late results accepted, %d refused\n",
          accepted, refused);
  bw_test_sleep_ms(1500); /* the stack's own reaper has had its turn too */

  /* B gets exactly the refused ones again, once each, and the rest. */
  int drained = 0;
  char job[25];
  while (bw_test_http_heartbeat(&b) == 200 &&
         bw_test_http_poll(&b, NULL, job) == 200) {
    int k = index_of(jobs, held, job);
    ck_assert_msg(k < 0 || !was_accepted[k],
                  "job %s was handed out again after its result was accepted",
                  job);
    ck_assert_int_eq(bw_test_http_report(&b, job, true, NULL), 200);
    drained++;
  }
  ck_assert_int_eq(drained, students - held + refused);
  assert_run_succeeded(&b, run_id, 10);
  bw_test_http_resp_t r;
  json_object *run = run_status(&b, run_id, &r);
  json_object *list = bw_test_json_get(run, "jobs");
  for (size_t i = 0; i < json_object_array_length(list); i++) {
    json_object *j = json_object_array_get_idx(list, i);
    int k = index_of(jobs, held, bw_test_json_str(j, "job_id"));
    long long expected = k >= 0 && !was_accepted[k] ? 2 : 1;
    ck_assert_int_eq(bw_test_json_int(j, "attempts"), expected);
  }
  bw_test_http_resp_cleanup(&r);
  assert_queue_empty(url(), token());
}
END_TEST

/* ---- heartbeats kept in the pool's memory (fcgi/beats.h) ---------------- */

/* Job `job`'s attempts, read through client c. */
static long long job_attempts(const bw_test_client_t *c, const char *job) {
  bw_test_http_resp_t r;
  long long n;
  ck_assert_int_eq(bw_test_http_get_job(c, job, &r), 200);
  n = bw_test_json_int(bw_test_http_data(&r), "attempts");
  bw_test_http_resp_cleanup(&r);
  return n;
}

/* Whether /api/v1/workers lists `worker` as alive. */
static bool worker_alive(const bw_test_client_t *c, const char *worker) {
  bw_test_http_resp_t r;
  json_object *list;
  bool alive = false;
  ck_assert_int_eq(bw_test_http_call(c, "GET", "/api/v1/workers", NULL, &r),
                   200);
  list = bw_test_json_get(bw_test_http_data(&r), "workers");
  for (size_t i = 0; i < json_object_array_length(list); i++) {
    json_object *w = json_object_array_get_idx(list, i);
    if (strcmp(bw_test_json_str(w, "worker_id"), worker) == 0)
      alive = json_object_get_boolean(bw_test_json_get(w, "alive"));
  }
  bw_test_http_resp_cleanup(&r);
  return alive;
}

/* The grader's document as the database holds it: its last_heartbeat (ms),
 * and how many `beats` entries name it. */
static void worker_in_db(const char *worker, int64_t *stored, int *entries) {
  const bw_test_stack_t *st = bw_itest_stack();
  mongoc_client_t *client = bw_test_db_connect(bw_test_stack_mongo_uri(st));
  mongoc_database_t *db =
      mongoc_client_get_database(client, bw_test_stack_db_name(st));
  mongoc_collection_t *workers = mongoc_database_get_collection(db, "workers"),
                      *beats = mongoc_database_get_collection(db, "beats");
  bson_oid_t oid;
  bson_t filter = BSON_INITIALIZER;
  const bson_t *doc;
  bson_iter_t it;
  mongoc_cursor_t *cur;

  bson_oid_init_from_string(&oid, worker);
  BSON_APPEND_OID(&filter, "_id", &oid);
  cur = mongoc_collection_find_with_opts(workers, &filter, NULL, NULL);
  *stored = 0;
  if (mongoc_cursor_next(cur, &doc) &&
      bson_iter_init_find(&it, doc, "last_heartbeat"))
    *stored = bson_iter_date_time(&it);
  mongoc_cursor_destroy(cur);
  bson_reinit(&filter);
  BSON_APPEND_OID(&filter, "beats.w", &oid);
  *entries = (int)mongoc_collection_count_documents(beats, &filter, NULL, NULL,
                                                    NULL, NULL);
  bson_destroy(&filter);
  mongoc_collection_destroy(workers);
  mongoc_collection_destroy(beats);
  mongoc_database_destroy(db);
  mongoc_client_destroy(client);
}

/* A started run of one student whose stage may take 10 minutes: its
 * hand-out outlives these tests, so only a death re-queues it. */
static void started_long_run(const bw_test_client_t *c, char run_id[25]) {
  char *config = bw_itest_run_config(1, "{\"image\": \"g\", \"timeout\": 600}",
                                     false, false);
  ck_assert_int_eq(bw_test_http_create_and_start(c, config, run_id), 200);
  free(config);
}

/* A grader whose heartbeats reach only the pool's memory and its writes to
 * `beats` (its document is not written per heartbeat) keeps its job and is
 * listed alive; once it stops, its job is re-queued no sooner than 2
 * intervals after its last heartbeat was answered and within a write
 * (heartbeat/5) and a reaper pass (heartbeat/2) of that, plus slack. */
START_TEST(test_beats_in_memory_keep_a_grader_alive_until_it_stops) {
  bw_test_client_t a, b;
  char run_id[25], job[25], again[25];
  int64_t stored_before, stored_after;
  int entries;
  double last_ok = 0, took;

  bw_itest_client(&a);
  bw_itest_client(&b);
  ck_assert_int_eq(bw_test_http_register(&a, "mem", NULL), 200);
  ck_assert_int_eq(bw_test_http_register(&b, "other", NULL), 200);
  started_long_run(&a, run_id);
  ck_assert_int_eq(bw_test_http_poll(&a, NULL, job), 200);
  worker_in_db(a.worker_id, &stored_before, &entries);
  for (double t0 = bw_test_now(); bw_test_now() - t0 < 5 * HEARTBEAT;) {
    ck_assert_int_eq(bw_test_http_heartbeat(&a), 200);
    last_ok = bw_test_now();
    bw_test_sleep_ms(HEARTBEAT * 1000);
    ck_assert_msg(worker_alive(&b, a.worker_id), "the heartbeating grader "
                                                 "is listed dead");
  }
  ck_assert_int_eq(job_attempts(&b, job), 1);
  worker_in_db(a.worker_id, &stored_after, &entries);
  ck_assert_msg(entries >= 4, "%d beats entries name the grader", entries);
  ck_assert_msg(stored_after == stored_before,
                "workers.last_heartbeat was written per heartbeat");

  /* It stops: B polls until it gets the job. */
  took = -1;
  for (double t0 = bw_test_now(); bw_test_now() - t0 < 10 * HEARTBEAT;) {
    long status = bw_test_http_poll_wait(&b, 0, NULL, again);
    if (status == 200) {
      took = bw_test_now() - last_ok;
      break;
    }
    ck_assert_int_eq(status, 498);
    bw_test_sleep_ms(50);
  }
  fprintf(stderr, "beats: job re-queued %.2f s after the last heartbeat\n",
          took);
  ck_assert_msg(took > 0, "the silent grader's job was never re-queued");
  ck_assert_str_eq(again, job);
  ck_assert_msg(took >= 2 * HEARTBEAT,
                "declared dead %.2f s after its last heartbeat, before 2 "
                "intervals",
                took);
  ck_assert_msg(took <= 2 * HEARTBEAT + 3.0,
                "declared dead only %.2f s after its last heartbeat", took);
  ck_assert_msg(!worker_alive(&b, a.worker_id), "the silent grader is listed "
                                                "alive");
  ck_assert_int_eq(bw_test_http_report(&b, job, true, NULL), 200);
  /* Its last heartbeat is moved into its document once it stopped (its
   * `last_seen` after `beats` is pruned): at least 4 intervals later than
   * its registration. */
  for (double t0 = bw_test_now(); bw_test_now() - t0 < 10 * HEARTBEAT;) {
    worker_in_db(a.worker_id, &stored_after, &entries);
    if (stored_after >= stored_before + 4000LL * HEARTBEAT)
      break;
    bw_test_sleep_ms(100);
  }
  ck_assert_msg(stored_after >= stored_before + 4000LL * HEARTBEAT,
                "workers.last_heartbeat not moved on to the last heartbeat: "
                "%lld ms after registration",
                (long long)(stored_after - stored_before));
}
END_TEST

/* An id that was never registered gets 401 on every grader route, however
 * many heartbeats of registered graders the pool holds. */
START_TEST(test_beats_unregistered_worker_gets_401) {
  bw_test_client_t ok, bad;
  bw_itest_client(&ok);
  bw_itest_client(&bad);
  ck_assert_int_eq(bw_test_http_register(&ok, "ok", NULL), 200);
  /* A well-formed id no registration makes (its time is in 2106). */
  snprintf(bad.worker_id, sizeof bad.worker_id, "ffffffff0123456789abcdef");
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(bw_test_http_heartbeat(&ok), 200);
    ck_assert_int_eq(bw_test_http_heartbeat(&bad), 401);
    ck_assert_int_eq(bw_test_http_poll_wait(&bad, 0, NULL, NULL), 401);
  }
}
END_TEST

/* The reaper forgets a grader (its document is deleted, as
 * reap_forget_workers does): the pool, which trusted its id, confirms what
 * it trusts once per interval, so the grader gets 401 within about an
 * interval and registers again. */
START_TEST(test_beats_forgotten_worker_gets_401_within_an_interval) {
  const bw_test_stack_t *st = bw_itest_stack();
  bw_test_client_t c;
  bson_oid_t oid;
  bson_t filter = BSON_INITIALIZER;
  double t0, took = -1;

  bw_itest_client(&c);
  ck_assert_int_eq(bw_test_http_register(&c, "forgotten", NULL), 200);
  for (int i = 0; i < 3; i++) { /* trusted now */
    ck_assert_int_eq(bw_test_http_heartbeat(&c), 200);
    bw_test_sleep_ms(300);
  }
  mongoc_client_t *client = bw_test_db_connect(bw_test_stack_mongo_uri(st));
  mongoc_collection_t *workers = mongoc_client_get_collection(
      client, bw_test_stack_db_name(st), "workers");
  bson_oid_init_from_string(&oid, c.worker_id);
  BSON_APPEND_OID(&filter, "_id", &oid);
  ck_assert(mongoc_collection_delete_one(workers, &filter, NULL, NULL, NULL));
  bson_destroy(&filter);
  mongoc_collection_destroy(workers);
  mongoc_client_destroy(client);
  for (t0 = bw_test_now(); bw_test_now() - t0 < 5 * HEARTBEAT;) {
    long status = bw_test_http_heartbeat(&c);
    if (status == 401) {
      took = bw_test_now() - t0;
      break;
    }
    ck_assert_int_eq(status, 200);
    bw_test_sleep_ms(100);
  }
  fprintf(stderr, "beats: a forgotten grader got 401 after %.2f s\n", took);
  ck_assert_msg(took >= 0, "a forgotten grader still got 200 after %d s",
                5 * HEARTBEAT);
  ck_assert_int_eq(bw_test_http_poll_wait(&c, 0, NULL, NULL), 401);
}
END_TEST

/* A second API host on the same database, whose whole stack (nginx, pool,
 * reaper) is killed -9 right after it answered a heartbeat: the heartbeat
 * is lost with its memory.  The grader goes on heartbeating through the
 * first host, an interval later: it must not be declared dead (the
 * reaper waits for every host that wrote recently; worker.h,
 * bw_worker_beats_settled).  Three rounds: each loses one heartbeat 2
 * intervals before the next one is written. */
START_TEST(test_beats_host_kill9_between_writes_no_false_death) {
  const bw_test_stack_t *st = bw_itest_stack();
  bw_fault_stack_opts_t opts = {.label = "beats-b",
                                .heartbeat = HEARTBEAT,
                                .workers = 2,
                                .config_text = FAULT_CONFIG,
                                .mongo_uri = bw_test_stack_mongo_uri(st)};
  bw_fault_stack_t *host_b;
  bw_test_client_t a, b;
  char run_id[25], job[25];

  setenv("BROADWAY_DB", bw_test_stack_db_name(st), 1);
  host_b = bw_fault_stack_start(&opts);
  unsetenv("BROADWAY_DB");
  ck_assert_msg(host_b != NULL, "the second API host did not start");
  bw_itest_client(&a);
  ck_assert_int_eq(bw_test_http_register(&a, "two-hosts", NULL), 200);
  bw_test_client_init(&b, bw_fault_stack_url(host_b),
                      bw_fault_stack_token(host_b));
  snprintf(b.worker_id, sizeof b.worker_id, "%s", a.worker_id);
  started_long_run(&a, run_id);
  ck_assert_int_eq(bw_test_http_poll(&a, NULL, job), 200);

  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 3; i++) { /* through B, as a balancer would */
      ck_assert_int_eq(bw_test_http_heartbeat(&b), 200);
      bw_test_sleep_ms(HEARTBEAT * 1000);
    }
    ck_assert_int_eq(bw_test_http_heartbeat(&b), 200);
    ck_assert_int_eq(bw_fault_stack_kill9(host_b), 0); /* within 100 ms */
    for (double t0 = bw_test_now(); bw_test_now() - t0 < 4 * HEARTBEAT;) {
      bw_test_sleep_ms(HEARTBEAT * 1000);
      ck_assert_int_eq(bw_test_http_heartbeat(&a), 200);
      ck_assert_msg(job_attempts(&a, job) == 1,
                    "round %d: the grader was declared dead after host B "
                    "was killed",
                    round);
    }
    ck_assert_msg(worker_alive(&a, a.worker_id), "round %d: listed dead",
                  round);
    /* B takes seconds to come back: the grader beats through A meanwhile. */
    pid_t beater = fork();
    ck_assert_int_ge(beater, 0);
    if (beater == 0) {
      die_with_parent();
      for (;;) {
        bw_test_sleep_ms(HEARTBEAT * 1000);
        bw_test_http_heartbeat(&a);
      }
    }
    int restarted = bw_fault_stack_restart(host_b);
    kill(beater, SIGKILL);
    waitpid(beater, NULL, 0);
    ck_assert_int_eq(restarted, 0);
    ck_assert_int_eq(bw_test_http_heartbeat(&a), 200);
  }
  ck_assert_int_eq(bw_test_http_report(&a, job, true, NULL), 200);
  bw_fault_stack_stop(host_b, false);
}
END_TEST

/* ---- suite -------------------------------------------------------------- */

static Suite *faults_suite(void) {
  Suite *s = suite_create("faults");
  TCase *tc = bw_itest_tcase(s, "main-stack", 300, true);
  tcase_add_test(tc, test_fcgi_worker_kill9_is_respawned_and_nothing_is_lost);
  tcase_add_test(tc, test_fcgi_worker_kill9_with_waiting_polls_loses_nothing);
  tcase_add_test(tc, test_lost_poll_reply_job_is_handed_out_again);
  tcase_add_test(tc,
                 test_grader_kill9_its_jobs_go_to_another_within_3_heartbeats);
  tcase_add_test(tc, test_reapers_race_each_other_and_late_results);
  tcase_add_test(tc, test_db_stopped_under_load_503_then_recovers);

  tc = bw_itest_tcase(s, "external-db", 300, true);
  tcase_add_unchecked_fixture(tc, external_db_stack_start,
                              external_db_stack_stop);
  tcase_add_test(tc, test_db_killed_under_load_503_then_recovers);

  tc = bw_itest_tcase(s, "beats", 300, true);
  tcase_add_test(tc, test_beats_in_memory_keep_a_grader_alive_until_it_stops);
  tcase_add_test(tc, test_beats_unregistered_worker_gets_401);
  tcase_add_test(tc, test_beats_forgotten_worker_gets_401_within_an_interval);
  tcase_add_test(tc, test_beats_host_kill9_between_writes_no_false_death);

  tc = bw_itest_tcase(s, "whole-stack", 300, false);
  tcase_add_unchecked_fixture(tc, killable_stack_start, killable_stack_stop);
  tcase_add_test(tc, test_whole_stack_kill9_then_restart_loses_nothing);
  return s;
}

int main(void) {
  bw_test_stack_opts_t opts = {.label = "faults",
                               .heartbeat = HEARTBEAT,
                               .workers = 4,
                               .config_text = FAULT_CONFIG};
  return bw_itest_main(faults_suite(), &opts);
}
