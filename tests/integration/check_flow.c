/* check_flow.c - how runs move through their phases, against the real stack:
 * pre -> students -> post order, what a failure does at each phase, many
 * graders draining one run at once (every job handed out exactly once, the
 * post job once), and a dead grader's job going back to the queue.
 *
 * The dead-grader tests run on a second stack with a 1 s heartbeat (started
 * by an unchecked fixture), so the reaper inside it declares a silent grader
 * dead within seconds. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/http.h"
#include "../lib/itest.h"
#include "../lib/stack.h"

#define DRAIN_STUDENTS 500
#define DRAIN_WORKERS 8
#define DRAIN_LIMIT_S 300
#define BURST_STUDENTS 16
#define START_RACERS 8

/* ---- helpers ------------------------------------------------------------ */

static void new_worker(bw_test_client_t *c) {
  bw_itest_client(c);
  ck_assert_int_eq(bw_test_http_register(c, NULL, NULL), 200);
  ck_assert_msg(bw_test_is_oid(c->worker_id), "worker_id \"%s\"", c->worker_id);
}

/* A run config: pre and post pipelines when asked, n students. */
static char *run_config(int n, bool pre, bool post) {
  return bw_itest_run_config(n, "{\"image\": \"s\"}", pre, post);
}

static void start_run(const bw_test_client_t *c, int n, bool pre, bool post,
                      char run_id[25]) {
  char *config = run_config(n, pre, post);
  long status = bw_test_http_create_and_start(c, config, run_id);
  free(config);
  ck_assert_int_eq(status, 200);
}

/* The type ("pre", "student", "post") of a job, as the client read shows. */
static void job_type(const bw_test_client_t *c, const char *job_id,
                     char type[16]) {
  bw_test_http_resp_t r;
  bw_test_http_get_job(c, job_id, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  const char *t = bw_test_json_str(bw_test_http_data(&r), "type");
  snprintf(type, 16, "%s", t ? t : "?");
  bw_test_http_resp_cleanup(&r);
}

/* Polls one job, which must be of `type`. */
static void take(const bw_test_client_t *c, const char *type, char job_id[25]) {
  bw_test_http_resp_t r;
  long status = bw_itest_poll_until_job(c, 5, &r, job_id);
  ck_assert_msg(status == 200, "expected a %s job, poll got %ld %s", type,
                status, BW_BODY(&r));
  bool roster = bw_test_json_get(bw_test_http_data(&r), "students") != NULL;
  bw_test_http_resp_cleanup(&r);
  char got[16];
  job_type(c, job_id, got);
  ck_assert_msg(strcmp(got, type) == 0, "expected a %s job, got a %s job", type,
                got);
  ck_assert_msg(roster == (strcmp(type, "student") != 0),
                "a %s job %s the roster", type, roster ? "carries" : "lacks");
}

static void report(const bw_test_client_t *c, const char *job_id,
                   bool success) {
  bw_test_http_resp_t r;
  bw_test_http_report(c, job_id, success, &r);
  BW_ASSERT_STATUS(&r, 200);
  bw_test_http_resp_cleanup(&r);
}

/* Nothing to hand out, and it stays so for a moment (a late queueing would
 * show up within that). */
static void assert_queue_stays_empty(const bw_test_client_t *c,
                                     const char *why) {
  for (int i = 0; i < 5; i++) {
    bw_test_http_resp_t r;
    long status = bw_test_http_poll(c, &r, NULL);
    ck_assert_msg(status == 498, "%s, but poll got %ld %s", why, status,
                  BW_BODY(&r));
    bw_test_http_resp_cleanup(&r);
    bw_test_sleep_ms(100);
  }
}

/* The run status; *run is borrowed from r. */
static json_object *run_status(const bw_test_client_t *c, const char *run_id,
                               bw_test_http_resp_t *r) {
  bw_test_http_run_status(c, run_id, r);
  BW_ASSERT_SUCCESS(r, 200);
  return bw_test_http_data(r);
}

static void assert_run_end(const bw_test_client_t *c, const char *run_id,
                           const char *state, bool success) {
  bw_test_http_resp_t r;
  json_object *run = run_status(c, run_id, &r);
  const char *got = bw_test_json_str(run, "state");
  ck_assert_msg(got && strcmp(got, state) == 0, "run is %s, expected %s: %s",
                got ? got : "(none)", state, r.body);
  json_object *s = bw_test_json_get(run, "success");
  ck_assert_msg(s && json_object_is_type(s, json_type_boolean) &&
                    json_object_get_boolean(s) == success,
                "run success should be %s: %s", success ? "true" : "false",
                r.body);
  bw_test_http_resp_cleanup(&r);
}

static long long run_count(const bw_test_client_t *c, const char *run_id,
                           const char *state) {
  bw_test_http_resp_t r;
  json_object *run = run_status(c, run_id, &r);
  long long n = bw_test_json_int(bw_test_json_get(run, "counts"), state);
  bw_test_http_resp_cleanup(&r);
  return n;
}

static void job_field(const bw_test_client_t *c, const char *job_id,
                      const char *key, char *out, size_t cap) {
  bw_test_http_resp_t r;
  bw_test_http_get_job(c, job_id, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  json_object *v = bw_test_json_get(bw_test_http_data(&r), key);
  snprintf(out, cap, "%s",
           !v ? "(absent)"
           : json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : json_object_to_json_string(v));
  bw_test_http_resp_cleanup(&r);
}

static void assert_job(const bw_test_client_t *c, const char *job_id,
                       const char *key, const char *expected) {
  char got[512];
  job_field(c, job_id, key, got, sizeof got);
  ck_assert_msg(strcmp(got, expected) == 0, "job %s: %s is %s, expected %s",
                job_id, key, got, expected);
}

/* ---- phase order -------------------------------------------------------- */

START_TEST(test_students_wait_for_pre_and_post_waits_for_every_student) {
  bw_test_client_t w;
  new_worker(&w);
  char run_id[25], pre[25], s[3][25], post[25];
  start_run(&w, 3, true, true, run_id);

  take(&w, "pre", pre);
  assert_queue_stays_empty(&w, "students are queued before pre finished");
  report(&w, pre, true);

  for (int i = 0; i < 3; i++)
    take(&w, "student", s[i]);
  assert_queue_stays_empty(&w, "something beyond the 3 students is queued");
  report(&w, s[0], true);
  report(&w, s[1], true);
  assert_queue_stays_empty(&w, "post is queued before the last student");
  bw_test_http_resp_t r;
  json_object *run = run_status(&w, run_id, &r);
  ck_assert_str_eq(bw_test_json_str(run, "state"), "students");
  bw_test_http_resp_cleanup(&r);

  report(&w, s[2], true);
  take(&w, "post", post);
  assert_queue_stays_empty(&w, "post was queued twice");
  run = run_status(&w, run_id, &r);
  ck_assert_str_eq(bw_test_json_str(run, "state"), "post_processing");
  bw_test_http_resp_cleanup(&r);

  report(&w, post, true);
  assert_run_end(&w, run_id, "succeeded", true);
  ck_assert_int_eq(run_count(&w, run_id, "succeeded"), 5);
}
END_TEST

START_TEST(test_pre_failure_fails_the_run_and_queues_no_student) {
  bw_test_client_t w;
  new_worker(&w);
  char run_id[25], pre[25];
  start_run(&w, 4, true, true, run_id);
  take(&w, "pre", pre);
  report(&w, pre, false);
  assert_queue_stays_empty(&w, "a student was queued after pre failed");
  assert_run_end(&w, run_id, "failed", false);
  ck_assert_int_eq(run_count(&w, run_id, "failed"), 1);
  ck_assert_int_eq(run_count(&w, run_id, "created"), 5);
  ck_assert_int_eq(run_count(&w, run_id, "queued"), 0);
  ck_assert_int_eq(bw_test_db_count(bw_itest_stack(), "queue"), 0);
}
END_TEST

START_TEST(test_student_failure_does_not_fail_the_run) {
  bw_test_client_t w;
  new_worker(&w);
  char run_id[25], s[3][25], post[25];
  start_run(&w, 3, false, true, run_id);
  for (int i = 0; i < 3; i++)
    take(&w, "student", s[i]);
  report(&w, s[0], false);
  report(&w, s[1], true);
  report(&w, s[2], false);
  take(&w, "post", post);
  report(&w, post, true);
  assert_run_end(&w, run_id, "succeeded", true);
  ck_assert_int_eq(run_count(&w, run_id, "failed"), 2);
  ck_assert_int_eq(run_count(&w, run_id, "succeeded"), 2);
}
END_TEST

START_TEST(test_run_success_is_the_post_job_success) {
  bw_test_client_t w;
  new_worker(&w);
  char run_id[25], job[25];
  start_run(&w, 2, false, true, run_id);
  for (int i = 0; i < 2; i++) {
    take(&w, "student", job);
    report(&w, job, true);
  }
  take(&w, "post", job);
  report(&w, job, false);
  assert_run_end(&w, run_id, "failed", false);
  assert_queue_stays_empty(&w, "a finished run queued more");
}
END_TEST

START_TEST(test_run_without_pre_or_post_succeeds_when_students_end) {
  bw_test_client_t w;
  new_worker(&w);
  char run_id[25], job[25];
  start_run(&w, 3, false, false, run_id);
  for (int i = 0; i < 3; i++) {
    take(&w, "student", job);
    bw_test_http_resp_t r;
    json_object *run = run_status(&w, run_id, &r);
    ck_assert_str_eq(bw_test_json_str(run, "state"), "students");
    bw_test_http_resp_cleanup(&r);
    report(&w, job, false); /* even all students failing */
  }
  assert_queue_stays_empty(&w, "a run without post queued more");
  assert_run_end(&w, run_id, "succeeded", true);
}
END_TEST

START_TEST(test_run_with_pre_only_ends_after_the_students) {
  bw_test_client_t w;
  new_worker(&w);
  char run_id[25], job[25];
  start_run(&w, 2, true, false, run_id);
  take(&w, "pre", job);
  report(&w, job, true);
  for (int i = 0; i < 2; i++) {
    take(&w, "student", job);
    report(&w, job, true);
  }
  assert_queue_stays_empty(&w, "a run without post queued more");
  assert_run_end(&w, run_id, "succeeded", true);
}
END_TEST

START_TEST(test_run_with_post_only_queues_students_at_start) {
  bw_test_client_t w;
  new_worker(&w);
  char run_id[25], job[25];
  start_run(&w, 1, false, true, run_id);
  take(&w, "student", job);
  report(&w, job, true);
  take(&w, "post", job);
  report(&w, job, true);
  assert_run_end(&w, run_id, "succeeded", true);
}
END_TEST

START_TEST(test_created_run_hands_out_nothing_until_started) {
  bw_test_client_t w;
  new_worker(&w);
  char *config = run_config(2, true, true);
  char run_id[25];
  ck_assert_int_eq(bw_test_http_create_run(&w, config, run_id), 200);
  free(config);
  assert_queue_stays_empty(&w, "a run that was not started queued a job");
  ck_assert_int_eq(bw_test_http_start_run(&w, run_id), 200);
  char job[25];
  take(&w, "pre", job);
}
END_TEST

/* ---- many graders at once ----------------------------------------------- */

/* What one drainer process does; it exits 0 when the run finished, or the
 * code of what went wrong (the parent prints it).  No Check calls here: this
 * runs in a child of the test process. */
enum {
  DRAIN_OK = 0,
  DRAIN_REGISTER = 2,
  DRAIN_REPORT = 3,
  DRAIN_POLL = 4,
  DRAIN_TIMEOUT = 5,
  DRAIN_HEARTBEAT = 6
};

static int drain(const char *run_id, int out_fd) {
  bw_test_client_t c;
  bw_test_client_init(&c, bw_test_stack_url(bw_itest_stack()),
                      bw_test_stack_token(bw_itest_stack()));
  int heartbeat = 0;
  if (bw_test_http_register(&c, NULL, &heartbeat) != 200)
    return DRAIN_REGISTER;
  double beat_every = heartbeat > 0 ? heartbeat / 3.0 : 1.0;
  double last_beat = bw_test_now(), deadline = last_beat + DRAIN_LIMIT_S;
  while (bw_test_now() < deadline) {
    if (bw_test_now() - last_beat >= beat_every) {
      if (bw_test_http_heartbeat(&c) != 200)
        return DRAIN_HEARTBEAT;
      last_beat = bw_test_now();
    }
    bw_test_http_resp_t r;
    char job_id[25];
    /* Long polls in flight: exactly-once must hold with them too. */
    long status = bw_test_http_poll_wait(&c, 1, &r, job_id);
    bool roster = bw_test_json_get(bw_test_http_data(&r), "students") != NULL;
    bw_test_http_resp_cleanup(&r);
    if (status == 200) {
      char line[32]; /* < PIPE_BUF: one write is one line */
      int n =
          snprintf(line, sizeof line, "%s %c\n", job_id, roster ? 'P' : 'S');
      if (write(out_fd, line, (size_t)n) != n)
        return DRAIN_POLL;
      if (bw_test_http_report(&c, job_id, true, NULL) != 200)
        return DRAIN_REPORT;
    } else if (status == 498) {
      bw_test_http_run_status(&c, run_id, &r);
      const char *state = bw_test_json_str(bw_test_http_data(&r), "state");
      bool finished = state && (strcmp(state, "succeeded") == 0 ||
                                strcmp(state, "failed") == 0);
      bw_test_http_resp_cleanup(&r);
      if (finished)
        return DRAIN_OK;
      bw_test_sleep_ms(50);
    } else {
      fprintf(stderr, "drainer %d: poll got %ld\n", (int)getpid(), status);
      return DRAIN_POLL;
    }
  }
  return DRAIN_TIMEOUT;
}

typedef struct handout {
  char job_id[25];
  char kind; /* 'S' student, 'P' pre/post (carries the roster) */
} handout_t;

/* Reads "<job id> <kind>" lines until every writer closed the pipe. */
static size_t read_handouts(int fd, handout_t *out, size_t cap) {
  char buf[8192];
  size_t len = 0, n = 0;
  for (;;) {
    ssize_t got = read(fd, buf + len, sizeof buf - len);
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0)
      break;
    len += (size_t)got;
    char *line = buf, *nl;
    while ((nl = memchr(line, '\n', len - (size_t)(line - buf)))) {
      if (n < cap && nl - line == 26) {
        memcpy(out[n].job_id, line, 24);
        out[n].job_id[24] = '\0';
        out[n].kind = line[25];
      }
      n++;
      line = nl + 1;
    }
    len -= (size_t)(line - buf);
    memmove(buf, line, len);
  }
  return n;
}

static int by_job_id(const void *a, const void *b) {
  return strcmp(((const handout_t *)a)->job_id, ((const handout_t *)b)->job_id);
}

/* Forks `workers` drainers; returns the hand-outs they saw, sorted. */
static size_t run_drainers(const char *run_id, int workers, handout_t *out,
                           size_t cap) {
  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  pid_t pids[64];
  fflush(NULL);
  for (int i = 0; i < workers; i++) {
    pids[i] = fork();
    ck_assert_int_ge(pids[i], 0);
    if (pids[i] == 0) {
      close(fds[0]);
      _exit(drain(run_id, fds[1]));
    }
  }
  close(fds[1]);
  size_t n = read_handouts(fds[0], out, cap);
  close(fds[0]);
  for (int i = 0; i < workers; i++) {
    int status;
    ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == DRAIN_OK,
                  "drainer %d ended with %d (2 register, 3 report, 4 poll, "
                  "5 timeout, 6 heartbeat)",
                  i, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  }
  ck_assert_msg(n <= cap, "%zu hand-outs, more than the %zu jobs", n, cap);
  qsort(out, n, sizeof *out, by_job_id);
  return n;
}

START_TEST(test_concurrent_drain_hands_out_every_job_exactly_once) {
  bw_test_client_t c;
  bw_itest_client(&c);
  char run_id[25];
  double t0 = bw_test_now();
  start_run(&c, DRAIN_STUDENTS, false, true, run_id);
  double t1 = bw_test_now();

  size_t cap = DRAIN_STUDENTS * 2 + 8;
  handout_t *got = calloc(cap, sizeof *got);
  ck_assert_ptr_nonnull(got);
  size_t n = run_drainers(run_id, DRAIN_WORKERS, got, cap);
  double t2 = bw_test_now();
  fprintf(stderr,
          "drain: %d students, %d graders: create+start %.2f s, drain %.2f s "
          "(%.0f jobs/s)\n",
          DRAIN_STUDENTS, DRAIN_WORKERS, t1 - t0, t2 - t1, n / (t2 - t1));

  size_t students = 0, posts = 0;
  for (size_t i = 0; i < n; i++) {
    ck_assert_msg(i == 0 || strcmp(got[i].job_id, got[i - 1].job_id) != 0,
                  "job %s was handed out twice", got[i].job_id);
    if (got[i].kind == 'S')
      students++;
    else
      posts++;
  }
  ck_assert_uint_eq(students, DRAIN_STUDENTS);
  ck_assert_uint_eq(posts, 1);

  /* Every job of the run was among the hand-outs, each at its first try. */
  bw_test_http_resp_t r;
  json_object *run = run_status(&c, run_id, &r);
  ck_assert_str_eq(bw_test_json_str(run, "state"), "succeeded");
  json_object *counts = bw_test_json_get(run, "counts");
  ck_assert_int_eq(bw_test_json_int(counts, "succeeded"), DRAIN_STUDENTS + 1);
  ck_assert_int_eq(bw_test_json_int(counts, "failed"), 0);
  ck_assert_int_eq(bw_test_json_int(counts, "queued"), 0);
  ck_assert_int_eq(bw_test_json_int(counts, "running"), 0);
  json_object *jobs = bw_test_json_get(run, "jobs");
  ck_assert_uint_eq(json_object_array_length(jobs), DRAIN_STUDENTS + 1);
  for (size_t i = 0; i < json_object_array_length(jobs); i++) {
    json_object *job = json_object_array_get_idx(jobs, i);
    handout_t key;
    snprintf(key.job_id, sizeof key.job_id, "%s",
             bw_test_json_str(job, "job_id"));
    handout_t *h = bsearch(&key, got, n, sizeof *got, by_job_id);
    ck_assert_msg(h != NULL, "job %s was never handed out", key.job_id);
    const char *type = bw_test_json_str(job, "type");
    ck_assert_msg(h->kind == (strcmp(type, "post") == 0 ? 'P' : 'S'),
                  "job %s is a %s job", key.job_id, type);
    ck_assert_int_eq(bw_test_json_int(job, "attempts"), 1);
  }
  bw_test_http_resp_cleanup(&r);
  free(got);

  bw_test_client_t w;
  new_worker(&w);
  assert_queue_stays_empty(&w, "jobs are left after the drain");
}
END_TEST

/* Children of the burst tests: wait for `go` to close, then do their part. */
static void wait_for_go(int go_fd) {
  char byte;
  while (read(go_fd, &byte, 1) < 0 && errno == EINTR) {
  }
}

/* Each child takes one student job, says so, and reports it when the
 * parent closes `go`: the last results of a run arrive together. */
static int burst_child(int ready_fd, int go_fd) {
  bw_test_client_t c;
  bw_test_client_init(&c, bw_test_stack_url(bw_itest_stack()),
                      bw_test_stack_token(bw_itest_stack()));
  if (bw_test_http_register(&c, NULL, NULL) != 200)
    return 2;
  bw_test_http_resp_t r;
  char job_id[25];
  long status = bw_itest_poll_until_job(&c, 30, &r, job_id);
  bw_test_http_resp_cleanup(&r);
  if (status != 200)
    return 4;
  if (write(ready_fd, "r", 1) != 1)
    return 4;
  wait_for_go(go_fd);
  return bw_test_http_report(&c, job_id, true, NULL) == 200 ? 0 : 3;
}

static void wait_children(pid_t *pids, int n, const char *what) {
  for (int i = 0; i < n; i++) {
    int status;
    ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "%s child %d ended with %d", what, i,
                  WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  }
}

START_TEST(test_simultaneous_last_results_queue_post_once) {
  bw_test_client_t c;
  bw_itest_client(&c);
  char run_id[25];
  start_run(&c, BURST_STUDENTS, false, true, run_id);
  int ready[2], go[2];
  ck_assert_int_eq(pipe(ready), 0);
  ck_assert_int_eq(pipe(go), 0);
  pid_t pids[BURST_STUDENTS];
  fflush(NULL);
  for (int i = 0; i < BURST_STUDENTS; i++) {
    pids[i] = fork();
    ck_assert_int_ge(pids[i], 0);
    if (pids[i] == 0) {
      close(ready[0]);
      close(go[1]);
      _exit(burst_child(ready[1], go[0]));
    }
  }
  close(ready[1]);
  close(go[0]);
  char buf[BURST_STUDENTS];
  size_t got = 0;
  ssize_t n;
  while (got < BURST_STUDENTS &&
         (n = read(ready[0], buf, sizeof buf - got)) > 0)
    got += (size_t)n;
  close(go[1]); /* all report now */
  close(ready[0]);
  ck_assert_uint_eq(got, BURST_STUDENTS);
  wait_children(pids, BURST_STUDENTS, "burst");

  bw_test_client_t w;
  new_worker(&w);
  char post[25];
  take(&w, "post", post);
  assert_queue_stays_empty(&w, "the post job was queued twice");
  report(&w, post, true);
  assert_run_end(&w, run_id, "succeeded", true);
  ck_assert_int_eq(run_count(&w, run_id, "succeeded"), BURST_STUDENTS + 1);
}
END_TEST

START_TEST(test_concurrent_starts_start_the_run_once) {
  bw_test_client_t c;
  bw_itest_client(&c);
  char *config = run_config(20, false, false);
  char run_id[25];
  ck_assert_int_eq(bw_test_http_create_run(&c, config, run_id), 200);
  free(config);

  int go[2], results[2];
  ck_assert_int_eq(pipe(go), 0);
  ck_assert_int_eq(pipe(results), 0);
  pid_t pids[START_RACERS];
  fflush(NULL);
  for (int i = 0; i < START_RACERS; i++) {
    pids[i] = fork();
    ck_assert_int_ge(pids[i], 0);
    if (pids[i] == 0) {
      close(go[1]);
      close(results[0]);
      wait_for_go(go[0]);
      long status = bw_test_http_start_run(&c, run_id);
      char code = status == 200 ? 'o' : status == 400 ? 'a' : 'x';
      _exit(write(results[1], &code, 1) == 1 ? 0 : 1);
    }
  }
  close(go[0]);
  close(results[1]);
  close(go[1]);
  int ok = 0, already = 0, other = 0;
  char code;
  while (read(results[0], &code, 1) == 1) {
    if (code == 'o')
      ok++;
    else if (code == 'a')
      already++;
    else
      other++;
  }
  close(results[0]);
  wait_children(pids, START_RACERS, "start");
  ck_assert_msg(ok == 1 && already == START_RACERS - 1 && other == 0,
                "%d starts got 200, %d got 400, %d something else", ok, already,
                other);

  bw_test_client_t w;
  new_worker(&w);
  for (int i = 0; i < 20; i++) {
    char job[25];
    take(&w, "student", job);
    report(&w, job, true);
  }
  assert_queue_stays_empty(&w, "students were queued more than once");
  assert_run_end(&w, run_id, "succeeded", true);
}
END_TEST

/* ---- dead graders (stack with a 1 s heartbeat) -------------------------- */

#define DEAD_HEARTBEAT 1
#define REQUEUE_LIMIT_S 6.0 /* 2 intervals + reaper period + slack */

static void dead_stack_start(void) {
  bw_test_stack_opts_t opts = {
      .label = "flow-hb1", .heartbeat = DEAD_HEARTBEAT, .workers = 2};
  bw_itest_push_stack(&opts);
}

/* `live` heartbeats and polls until it gets a job; returns the seconds it
 * took, or a negative number when none came within `limit`. */
static double poll_alive_until_job(const bw_test_client_t *live, double limit,
                                   char job_id[25]) {
  double t0 = bw_test_now();
  while (bw_test_now() - t0 < limit) {
    ck_assert_int_eq(bw_test_http_heartbeat(live), 200);
    bw_test_http_resp_t r;
    long status = bw_test_http_poll(live, &r, job_id);
    bw_test_http_resp_cleanup(&r);
    if (status == 200)
      return bw_test_now() - t0;
    ck_assert_int_eq(status, 498);
    bw_test_sleep_ms(200);
  }
  return -1;
}

START_TEST(test_dead_grader_job_goes_to_a_live_grader) {
  bw_test_client_t a, b;
  new_worker(&a);
  new_worker(&b);
  char run_id[25], job[25], again[25];
  start_run(&a, 1, false, false, run_id);
  take(&a, "student", job); /* and A falls silent */

  double took = poll_alive_until_job(&b, REQUEUE_LIMIT_S + 4, again);
  fprintf(stderr, "dead grader: job re-queued to B after %.1f s\n", took);
  ck_assert_msg(took >= 0, "B got no job within %.0f s", REQUEUE_LIMIT_S + 4);
  ck_assert_msg(took <= REQUEUE_LIMIT_S, "B got the job only after %.1f s",
                took);
  ck_assert_msg(took >= 2 * DEAD_HEARTBEAT - 0.5,
                "A was declared dead after %.1f s, before 2 heartbeat "
                "intervals without a heartbeat",
                took);
  ck_assert_str_eq(again, job);
  assert_job(&b, job, "attempts", "2");
  assert_job(&b, job, "state", "running");
  assert_job(&b, job, "worker_id", b.worker_id);

  bw_test_http_resp_t r;
  bw_test_http_report(&a, job, true, &r); /* A comes back, too late */
  BW_ASSERT_FAIL(&r, 409, "");
  bw_test_http_resp_cleanup(&r);
  ck_assert_int_eq(bw_test_http_heartbeat(&a), 200);
  ck_assert_int_eq(bw_test_http_poll(&a, NULL, NULL), 498);

  report(&b, job, true);
  assert_job(&b, job, "state", "succeeded");
  assert_job(&b, job, "attempts", "2");
  assert_job(&b, job, "worker_id", b.worker_id);
  json_object *run = run_status(&b, run_id, &r);
  json_object *only =
      json_object_array_get_idx(bw_test_json_get(run, "jobs"), 0);
  ck_assert_int_eq(bw_test_json_int(only, "attempts"), 2);
  bw_test_http_resp_cleanup(&r);
  assert_run_end(&b, run_id, "succeeded", true);
}
END_TEST

START_TEST(test_heartbeating_grader_keeps_its_job) {
  bw_test_client_t a, b;
  new_worker(&a);
  new_worker(&b);
  char run_id[25], job[25];
  start_run(&a, 1, false, false, run_id);
  take(&a, "student", job);
  double t0 = bw_test_now();
  while (bw_test_now() - t0 < 4.5) {
    ck_assert_int_eq(bw_test_http_heartbeat(&a), 200);
    ck_assert_int_eq(bw_test_http_heartbeat(&b), 200);
    ck_assert_int_eq(bw_test_http_poll(&b, NULL, NULL), 498);
    bw_test_sleep_ms(250);
  }
  report(&a, job, true);
  assert_job(&a, job, "attempts", "1");
  assert_run_end(&a, run_id, "succeeded", true);
}
END_TEST

START_TEST(test_job_fails_after_max_attempts_of_dead_graders) {
  bw_test_client_t c;
  bw_itest_client(&c);
  char run_id[25], job[25] = "";
  start_run(&c, 1, false, false, run_id);
  for (int attempt = 1; attempt <= 3; attempt++) {
    bw_test_client_t w; /* takes the job and dies */
    new_worker(&w);
    char got[25];
    double took = poll_alive_until_job(&w, REQUEUE_LIMIT_S + 4, got);
    ck_assert_msg(took >= 0, "attempt %d was never handed out", attempt);
    if (attempt == 1)
      snprintf(job, sizeof job, "%s", got);
    ck_assert_str_eq(got, job);
    char n[8];
    snprintf(n, sizeof n, "%d", attempt);
    assert_job(&c, job, "attempts", n);
  }
  char state[64] = "";
  double t0 = bw_test_now();
  while (bw_test_now() - t0 < REQUEUE_LIMIT_S + 4) {
    job_field(&c, job, "state", state, sizeof state);
    if (strcmp(state, "failed") == 0)
      break;
    bw_test_sleep_ms(250);
  }
  ck_assert_msg(strcmp(state, "failed") == 0,
                "after 3 dead graders the job is %s", state);
  char reason[512];
  job_field(&c, job, "reason", reason, sizeof reason);
  ck_assert_msg(strstr(reason, "attempt") != NULL,
                "the failure reason \"%s\" does not say attempts ran out",
                reason);
  assert_job(&c, job, "success", "false");
  assert_job(&c, job, "attempts", "3");
  bw_test_client_t w;
  new_worker(&w);
  assert_queue_stays_empty(&w, "a job out of attempts was queued again");
  assert_run_end(&c, run_id, "succeeded", true); /* a student failure */
}
END_TEST

/* ---- suite -------------------------------------------------------------- */

static Suite *flow_suite(void) {
  Suite *s = suite_create("flow");
  TCase *tc = bw_itest_tcase(s, "order", 120, true);
  tcase_add_test(tc,
                 test_students_wait_for_pre_and_post_waits_for_every_student);
  tcase_add_test(tc, test_pre_failure_fails_the_run_and_queues_no_student);
  tcase_add_test(tc, test_student_failure_does_not_fail_the_run);
  tcase_add_test(tc, test_run_success_is_the_post_job_success);
  tcase_add_test(tc, test_run_without_pre_or_post_succeeds_when_students_end);
  tcase_add_test(tc, test_run_with_pre_only_ends_after_the_students);
  tcase_add_test(tc, test_run_with_post_only_queues_students_at_start);
  tcase_add_test(tc, test_created_run_hands_out_nothing_until_started);

  tc = bw_itest_tcase(s, "concurrency", DRAIN_LIMIT_S + 60, true);
  tcase_add_test(tc, test_concurrent_drain_hands_out_every_job_exactly_once);
  tcase_add_test(tc, test_simultaneous_last_results_queue_post_once);
  tcase_add_test(tc, test_concurrent_starts_start_the_run_once);

  tc = bw_itest_tcase(s, "dead_grader", 120, true);
  tcase_add_unchecked_fixture(tc, dead_stack_start, bw_itest_pop_stack);
  tcase_add_test(tc, test_dead_grader_job_goes_to_a_live_grader);
  tcase_add_test(tc, test_heartbeating_grader_keeps_its_job);
  tcase_add_test(tc, test_job_fails_after_max_attempts_of_dead_graders);
  return s;
}

int main(void) {
  bw_test_stack_opts_t opts = {.label = "flow", .workers = 4};
  return bw_itest_main(flow_suite(), &opts);
}
