/* check_staff.c - course staff's endpoints against the real stack (nginx,
 * the FastCGI pool, FerretDB): cancel, retry, the lists of runs, graders and
 * the queue; and the exactly-once rules under races: a cancel racing
 * results, pollers and the reaper; a retry racing a late result and other
 * retries. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/itest.h"
#include "config.h"
#include "db.h"
#include "reap.h"

#define STAGE "{\"image\": \"grader\"}"

static bw_test_client_t staff(void) {
  bw_test_client_t c;
  bw_itest_client(&c);
  return c;
}

static bw_test_client_t grader(void) {
  bw_test_client_t c = staff();
  ck_assert_int_eq(bw_test_http_register(&c, "grader-a", NULL), 200);
  return c;
}

static void start_run(const bw_test_client_t *c, int students, bool post,
                      char run_id[25]) {
  char *config = bw_itest_run_config(students, STAGE, false, post);
  ck_assert_int_eq(bw_test_http_create_and_start(c, config, run_id), 200);
  free(config);
}

static long staff_post(const bw_test_client_t *c, const char *what,
                       const char *run_id, const char *query,
                       bw_test_http_resp_t *resp) {
  char path[160];
  snprintf(path, sizeof path, "/api/v1/grading_run_%s/%s%s", what, run_id,
           query ? query : "");
  if (resp != NULL)
    bw_test_http_resp_cleanup(resp); /* it may be a reused one */
  return bw_test_http_call(c, "POST", path, NULL, resp);
}

/* The run's status: its state and the count of jobs in `state`. */
static const char *run_state(const bw_test_client_t *c, const char *run_id,
                             char out[32], const char *count_of, int *count) {
  bw_test_http_resp_t r = {0};
  json_object *data;
  bw_test_http_resp_cleanup(&r);
  bw_test_http_run_status(c, run_id, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  data = bw_test_http_data(&r);
  bson_strncpy(out, bw_test_json_str(data, "state"), 32);
  if (count_of != NULL)
    *count = (int)bw_test_json_int(bw_test_json_get(data, "counts"), count_of);
  bw_test_http_resp_cleanup(&r);
  return out;
}

static int poll_all(const bw_test_client_t *c, char ids[][25], int max) {
  bw_test_http_resp_t r = {0};
  int n = 0;
  while (n < max && bw_test_http_poll(c, &r, ids[n]) == 200) {
    bw_test_http_resp_cleanup(&r);
    n++;
  }
  bw_test_http_resp_cleanup(&r);
  return n;
}

static void report_all(const bw_test_client_t *c, char ids[][25], int n,
                       bool success) {
  for (int i = 0; i < n; i++) {
    bw_test_http_resp_t r = {0};
    bw_test_http_resp_cleanup(&r);
    bw_test_http_report(c, ids[i], success, &r);
    BW_ASSERT_SUCCESS(&r, 200);
    bw_test_http_resp_cleanup(&r);
  }
}

/* Polls until `state` or `seconds` pass. */
static bool wait_state(const bw_test_client_t *c, const char *run_id,
                       const char *state, double seconds) {
  double deadline = bw_test_now() + seconds;
  char now[32];
  while (strcmp(run_state(c, run_id, now, NULL, NULL), state) != 0) {
    if (bw_test_now() > deadline)
      return false;
    bw_test_sleep_ms(50);
  }
  return true;
}

/* ---- cancel ------------------------------------------------------------- */

START_TEST(cancel_drops_queued_keeps_running) {
  bw_test_client_t c = staff(), g = grader();
  bw_test_http_resp_t r = {0};
  char run[25], job[1][25], state[32];
  int n;

  start_run(&c, 3, true, run);
  ck_assert_int_eq(poll_all(&g, job, 1), 1);
  staff_post(&c, "cancel", run, NULL, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  bw_test_http_resp_cleanup(&r);
  ck_assert_str_eq(run_state(&c, run, state, "cancelled", &n), "cancelled");
  ck_assert_int_eq(n, 3); /* 2 queued students and the post job */
  run_state(&c, run, state, "running", &n);
  ck_assert_int_eq(n, 1);
  /* Nothing more is handed out. */
  bw_test_http_resp_cleanup(&r);
  ck_assert_int_eq(bw_test_http_poll(&g, &r, NULL), 498);
  bw_test_http_resp_cleanup(&r);
  /* The running job's late result is accepted; the run stays cancelled
   * and post-processing does not run. */
  report_all(&g, job, 1, true);
  ck_assert_str_eq(run_state(&c, run, state, "succeeded", &n), "cancelled");
  ck_assert_int_eq(n, 1);
  bw_test_http_resp_cleanup(&r);
  ck_assert_int_eq(bw_test_http_poll(&g, &r, NULL), 498);
  bw_test_http_resp_cleanup(&r);
  /* A second cancel, an unknown run, a bad id. */
  staff_post(&c, "cancel", run, NULL, &r);
  BW_ASSERT_FAIL(&r, 409, "already cancelled");
  staff_post(&c, "cancel", "0123456789abcdef01234567", NULL, &r);
  BW_ASSERT_FAIL(&r, 404, "not found");
  staff_post(&c, "cancel", "nope", NULL, &r);
  BW_ASSERT_FAIL(&r, 400, "grading_run_id");
  /* A cancelled run cannot be retried. */
  staff_post(&c, "retry", run, NULL, &r);
  BW_ASSERT_FAIL(&r, 409, "cancelled");
  bw_test_http_resp_cleanup(&r);
}
END_TEST

START_TEST(cancel_finished_or_unstarted) {
  bw_test_client_t c = staff(), g = grader();
  bw_test_http_resp_t r = {0};
  char run[25], jobs[2][25], state[32], *config;

  start_run(&c, 2, false, run);
  ck_assert_int_eq(poll_all(&g, jobs, 2), 2);
  report_all(&g, jobs, 2, true);
  ck_assert(wait_state(&c, run, "succeeded", 10));
  staff_post(&c, "cancel", run, NULL, &r);
  BW_ASSERT_FAIL(&r, 409, "already finished (succeeded)");
  /* Created, never started: cancelled, and it can no longer start. */
  config = bw_itest_run_config(2, STAGE, false, false);
  ck_assert_int_eq(bw_test_http_create_run(&c, config, run), 200);
  free(config);
  staff_post(&c, "cancel", run, NULL, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  bw_test_http_start_run(&c, run);
  ck_assert_str_eq(run_state(&c, run, state, NULL, NULL), "cancelled");
  bw_test_http_resp_cleanup(&r);
  ck_assert_int_eq(bw_test_http_poll(&g, &r, NULL), 498);
  bw_test_http_resp_cleanup(&r);
}
END_TEST

/* ---- retry -------------------------------------------------------------- */

START_TEST(retry_failed_then_post_again) {
  bw_test_client_t c = staff(), g = grader();
  bw_test_http_resp_t r = {0};
  char run[25], jobs[4][25], again[4][25], state[32];
  int n;

  start_run(&c, 3, true, run);
  ck_assert_int_eq(poll_all(&g, jobs, 3), 3);
  staff_post(&c, "retry", run, NULL, &r);
  BW_ASSERT_FAIL(&r, 409, "only a finished run");
  report_all(&g, jobs, 2, false);
  report_all(&g, jobs + 2, 1, true);
  ck_assert_int_eq(poll_all(&g, jobs + 3, 1), 1); /* post */
  report_all(&g, jobs + 3, 1, true);
  ck_assert(wait_state(&c, run, "succeeded", 10));

  staff_post(&c, "retry", run, NULL, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  ck_assert_int_eq(bw_test_json_int(bw_test_http_data(&r), "retried"), 2);
  ck_assert_int_eq(bw_test_json_int(bw_test_http_data(&r), "round"), 1);
  ck_assert_str_eq(run_state(&c, run, state, "queued", &n), "students");
  ck_assert_int_eq(n, 2);
  run_state(&c, run, state, "failed", &n);
  ck_assert_int_eq(n, 0);
  /* The failed ones come back, as their second attempt. */
  ck_assert_int_eq(poll_all(&g, again, 4), 2);
  for (int i = 0; i < 2; i++) {
    bw_test_http_resp_cleanup(&r);
    bw_test_http_get_job(&c, again[i], &r);
    ck_assert_int_eq(bw_test_json_int(bw_test_http_data(&r), "attempts"), 2);
    ck_assert_str_eq(bw_test_json_str(bw_test_http_data(&r), "state"),
                     "running");
    ck_assert(strcmp(again[i], jobs[2]) != 0);
  }
  report_all(&g, again, 2, true);
  /* Post-processing runs again, once. */
  ck_assert_int_eq(poll_all(&g, again, 4), 1);
  ck_assert_str_eq(again[0], jobs[3]);
  report_all(&g, again, 1, true);
  ck_assert(wait_state(&c, run, "succeeded", 10));
  run_state(&c, run, state, "succeeded", &n);
  ck_assert_int_eq(n, 4);
  bw_test_http_resp_cleanup(&r);
  ck_assert_int_eq(bw_test_http_poll(&g, &r, NULL), 498);
  staff_post(&c, "retry", run, NULL, &r);
  BW_ASSERT_FAIL(&r, 409, "no failed jobs");
  staff_post(&c, "retry", run, "?jobs=some", &r);
  BW_ASSERT_FAIL(&r, 400, "jobs");
  /* ?jobs=all re-grades everyone. */
  staff_post(&c, "retry", run, "?jobs=all", &r);
  BW_ASSERT_SUCCESS(&r, 200);
  ck_assert_int_eq(bw_test_json_int(bw_test_http_data(&r), "retried"), 3);
  ck_assert_int_eq(poll_all(&g, again, 4), 3);
  bw_test_http_resp_cleanup(&r);
}
END_TEST

/* A grader long-polling an empty queue gets a retried job when the retry
 * queues it (the push bumps the queue signal: common/qsignal.h), not at its
 * wait's end.  The host also rescans every 5 s whatever the signal says, so
 * the bound is under that, and generous for a loaded machine. */
START_TEST(retry_wakes_a_waiting_poll) {
  bw_test_client_t c = staff(), g = grader();
  bw_test_http_resp_t r = {0};
  char run[25], jobs[1][25];
  double t0;
  int status;
  pid_t child;

  start_run(&c, 1, false, run);
  ck_assert_int_eq(poll_all(&g, jobs, 1), 1);
  report_all(&g, jobs, 1, false);
  ck_assert(wait_state(&c, run, "succeeded", 10)); /* its student failed */
  child = fork();
  ck_assert_int_ge(child, 0);
  if (child == 0) /* waits up to 15 s for a job */
    _exit(bw_test_http_poll_wait(&g, 15, NULL, NULL) == 200 ? 0 : 1);
  bw_test_sleep_ms(1000); /* parked by now, or it polls into the retry */
  t0 = bw_test_now();
  staff_post(&c, "retry", run, NULL, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  ck_assert_int_eq(waitpid(child, &status, 0), child);
  ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                "the waiting poll got no job");
  ck_assert_msg(bw_test_now() - t0 < 4.0, "woken %.2f s after the retry",
                bw_test_now() - t0);
  bw_test_http_resp_cleanup(&r);
}
END_TEST

/* ---- races -------------------------------------------------------------- */

/* A reaper pass in a child, as a cron reaper would run it. */
static void child_reap(void) {
  bw_config_t cfg = bw_itest_config();
  bw_db_t *db = NULL;
  bw_error_t error;
  bw_reap_stats_t stats;
  if (bw_db_open(&db, &cfg, &error) < 0)
    _exit(2);
  for (int i = 0; i < 3; i++)
    bw_reap_once(db, &cfg, &stats, &error);
  bw_db_close(db);
  _exit(0);
}

static int wait_children(int n) {
  int bad = 0, status;
  for (int i = 0; i < n; i++)
    if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
      bad++;
  return bad;
}

/* 12 students + post: 6 handed out, 6 waiting.  At once: the 6 results,
 * 3 pollers, a cancel and a reaper.  Whatever the order: every poller's job
 * is a different one and its result is accepted; the run ends cancelled;
 * post-processing is never handed out; nothing is left waiting. */
START_TEST(cancel_races_results_pollers_reaper) {
  bw_test_client_t c = staff(), g = grader();
  char run[25], held[6][25], state[32];
  int pipes[3][2], n, got = 0;
  char taken[16][25];

  start_run(&c, 12, true, run);
  ck_assert_int_eq(poll_all(&g, held, 6), 6);
  for (int i = 0; i < 6; i++)
    if (fork() == 0) {
      bw_test_http_resp_t r = {0};
      _exit(bw_test_http_report(&g, held[i], true, &r) == 200 ? 0 : 1);
    }
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(pipe(pipes[i]), 0);
    if (fork() == 0) {
      bw_test_http_resp_t r = {0};
      char id[25];
      close(pipes[i][0]);
      while (bw_test_http_poll(&g, &r, id) == 200) {
        if (write(pipes[i][1], id, 25) != 25)
          _exit(3);
        bw_test_http_resp_cleanup(&r);
      }
      _exit(0);
    }
    close(pipes[i][1]);
  }
  if (fork() == 0) {
    bw_test_http_resp_t r = {0};
    _exit(staff_post(&c, "cancel", run, NULL, &r) == 200 ? 0 : 1);
  }
  if (fork() == 0)
    child_reap();
  for (int i = 0; i < 3; i++) {
    while (got < 16 && read(pipes[i][0], taken[got], 25) == 25)
      got++;
    close(pipes[i][0]);
  }
  ck_assert_int_eq(wait_children(11), 0);
  /* No job twice; none of them the post job (it was never queued). */
  for (int i = 0; i < got; i++)
    for (int k = i + 1; k < got; k++)
      ck_assert_str_ne(taken[i], taken[k]);
  ck_assert_int_le(got, 6);
  report_all(&g, taken, got, true);
  ck_assert_str_eq(run_state(&c, run, state, "succeeded", &n), "cancelled");
  ck_assert_int_eq(n, 6 + got);
  run_state(&c, run, state, "cancelled", &n);
  ck_assert_int_eq(n, 12 + 1 - 6 - got);
  run_state(&c, run, state, "running", &n);
  ck_assert_int_eq(n, 0);
  {
    bw_test_http_resp_t r = {0};
    bw_test_http_resp_cleanup(&r);
    ck_assert_int_eq(bw_test_http_poll(&g, &r, NULL), 498);
    bw_test_http_resp_cleanup(&r);
    bw_test_http_call(&c, "GET", "/api/v1/queue", NULL, &r);
    BW_ASSERT_SUCCESS(&r, 200);
    ck_assert_int_eq(bw_test_json_int(bw_test_http_data(&r), "waiting"), 0);
    bw_test_http_resp_cleanup(&r);
  }
}
END_TEST

/* The run failed; at once: 4 retries and the grader re-sending its 4 failed
 * results (a late copy).  Exactly one retry wins; every resend is a 200;
 * the 4 jobs come back once each; post-processing runs once more. */
START_TEST(retry_races_late_results_and_retries) {
  bw_test_client_t c = staff(), g = grader();
  bw_test_http_resp_t r = {0};
  char run[25], jobs[5][25], again[6][25], state[32];
  int won = 0, status, n;

  start_run(&c, 4, true, run);
  ck_assert_int_eq(poll_all(&g, jobs, 4), 4);
  report_all(&g, jobs, 4, false);
  ck_assert_int_eq(poll_all(&g, jobs + 4, 1), 1);
  report_all(&g, jobs + 4, 1, false);
  ck_assert(wait_state(&c, run, "failed", 10));

  for (int i = 0; i < 4; i++)
    if (fork() == 0) {
      long s = staff_post(&c, "retry", run, NULL, &r);
      _exit(s == 200 ? 0 : s == 409 ? 1 : 2);
    }
  for (int i = 0; i < 4; i++)
    if (fork() == 0)
      _exit(bw_test_http_report(&g, jobs[i], false, &r) == 200 ? 10 : 11);
  for (int i = 0; i < 8; i++) {
    ck_assert_int_ge(wait(&status), 0);
    ck_assert(WIFEXITED(status));
    ck_assert_msg(WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 1 ||
                      WEXITSTATUS(status) == 10,
                  "exit %d", WEXITSTATUS(status));
    won += WEXITSTATUS(status) == 0;
  }
  ck_assert_int_eq(won, 1);
  ck_assert_str_eq(run_state(&c, run, state, "queued", &n), "students");
  ck_assert_int_eq(n, 4);
  ck_assert_int_eq(poll_all(&g, again, 6), 4);
  report_all(&g, again, 4, true);
  ck_assert_int_eq(poll_all(&g, again, 6), 1);
  ck_assert_str_eq(again[0], jobs[4]);
  report_all(&g, again, 1, true);
  ck_assert(wait_state(&c, run, "succeeded", 10));
  bw_test_http_resp_cleanup(&r);
  ck_assert_int_eq(bw_test_http_poll(&g, &r, NULL), 498);
  bw_test_http_resp_cleanup(&r);
}
END_TEST

/* ---- lists -------------------------------------------------------------- */

START_TEST(lists_runs_workers_queue) {
  bw_test_client_t c = staff(), g = grader();
  bw_test_http_resp_t r = {0};
  char runs[3][25], job[1][25];
  json_object *data, *list, *w;

  for (int i = 0; i < 3; i++)
    start_run(&c, 2, false, runs[i]);
  staff_post(&c, "cancel", runs[0], NULL, &r);
  ck_assert_int_eq(poll_all(&g, job, 1), 1);

  bw_test_http_resp_cleanup(&r);
  bw_test_http_call(&c, "GET", "/api/v1/grading_runs?limit=2&counts=1", NULL,
                    &r);
  BW_ASSERT_SUCCESS(&r, 200);
  data = bw_test_http_data(&r);
  list = bw_test_json_get(data, "runs");
  ck_assert_int_eq(bw_test_json_int(data, "total"), 3);
  ck_assert_int_eq((int)json_object_array_length(list), 2);
  /* Newest first. */
  ck_assert_str_eq(
      bw_test_json_str(json_object_array_get_idx(list, 0), "grading_run_id"),
      runs[2]);
  ck_assert_int_eq(
      bw_test_json_int(
          bw_test_json_get(json_object_array_get_idx(list, 1), "counts"),
          "queued") +
          bw_test_json_int(
              bw_test_json_get(json_object_array_get_idx(list, 1), "counts"),
              "running"),
      2);
  bw_test_http_resp_cleanup(&r);
  bw_test_http_call(&c, "GET", "/api/v1/grading_runs?state=cancelled", NULL,
                    &r);
  BW_ASSERT_SUCCESS(&r, 200);
  list = bw_test_json_get(bw_test_http_data(&r), "runs");
  ck_assert_int_eq((int)json_object_array_length(list), 1);
  ck_assert_str_eq(
      bw_test_json_str(json_object_array_get_idx(list, 0), "grading_run_id"),
      runs[0]);
  bw_test_http_resp_cleanup(&r);
  bw_test_http_call(&c, "GET", "/api/v1/grading_runs?state=done", NULL, &r);
  BW_ASSERT_FAIL(&r, 400, "state");
  bw_test_http_resp_cleanup(&r);
  bw_test_http_call(&c, "GET", "/api/v1/grading_runs?limit=0", NULL, &r);
  BW_ASSERT_FAIL(&r, 400, "limit");
  bw_test_http_resp_cleanup(&r);
  bw_test_http_call(&c, "GET", "/api/v1/grading_runs?offset=x", NULL, &r);
  BW_ASSERT_FAIL(&r, 400, "offset");

  bw_test_http_resp_cleanup(&r);
  bw_test_http_call(&c, "GET", "/api/v1/workers", NULL, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  list = bw_test_json_get(bw_test_http_data(&r), "workers");
  ck_assert_int_eq((int)json_object_array_length(list), 1);
  w = json_object_array_get_idx(list, 0);
  ck_assert_str_eq(bw_test_json_str(w, "hostname"), "grader-a");
  ck_assert_str_eq(bw_test_json_str(w, "worker_id"), g.worker_id);
  ck_assert(json_object_get_boolean(bw_test_json_get(w, "alive")));
  ck_assert_int_eq((int)json_object_array_length(bw_test_json_get(w, "jobs")),
                   1);
  ck_assert_int_eq(bw_test_json_int(w, "jobs_done"), 0);
  report_all(&g, job, 1, true);
  bw_test_http_resp_cleanup(&r);
  bw_test_http_call(&c, "GET", "/api/v1/workers", NULL, &r);
  w = json_object_array_get_idx(
      bw_test_json_get(bw_test_http_data(&r), "workers"), 0);
  ck_assert_int_eq(bw_test_json_int(w, "jobs_done"), 1);

  bw_test_http_resp_cleanup(&r);
  bw_test_http_call(&c, "GET", "/api/v1/queue", NULL, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  data = bw_test_http_data(&r);
  ck_assert_int_eq(bw_test_json_int(data, "waiting"), 3);
  ck_assert_int_eq(
      (int)json_object_array_length(bw_test_json_get(data, "runs")), 2);
  ck_assert(json_object_get_double(bw_test_json_get(data, "oldest_wait_s")) >=
            0);
  /* Every staff endpoint wants the token. */
  {
    bw_test_client_t anon = c;
    anon.token[0] = '\0';
    ck_assert_int_eq(
        bw_test_http_call(&anon, "GET", "/api/v1/queue", NULL, NULL), 401);
  }
  bw_test_http_resp_cleanup(&r);
}
END_TEST

/* ---- metrics ------------------------------------------------------------ */

/* The value of the sample line starting with `series` (-1 when absent). */
static double sample(const char *text, const char *series) {
  const char *p = text;
  size_t n = strlen(series);
  while (p && *p) {
    if (strncmp(p, series, n) == 0 && p[n] == ' ')
      return atof(p + n + 1);
    p = strchr(p, '\n');
    p = p ? p + 1 : NULL;
  }
  return -1;
}

START_TEST(metrics_in_prometheus_text) {
  bw_test_client_t c = staff(), g = grader(), bearer = c;
  bw_test_http_resp_t r = {0};
  char run[25], jobs[3][25];
  double requests;

  start_run(&c, 3, false, run);
  ck_assert_int_eq(poll_all(&g, jobs, 1), 1);
  report_all(&g, jobs, 1, true);
  bw_test_http_call(&c, "GET", "/api/v1/queue", NULL, NULL);
  snprintf(bearer.token, sizeof bearer.token, "Bearer %.200s", c.token);
  bw_test_http_resp_cleanup(&r);
  bw_test_http_call(&bearer, "GET", "/metrics", NULL, &r);
  BW_ASSERT_STATUS(&r, 200);
  ck_assert_msg(strncmp(r.content_type, "text/plain; version=0.0.4", 25) == 0,
                "Content-Type %s", r.content_type);
  ck_assert_double_eq(sample(r.body, "broadway_jobs_queued"), 2);
  ck_assert_double_eq(sample(r.body, "broadway_jobs_running"), 0);
  ck_assert_double_eq(sample(r.body, "broadway_handouts_total"), 1);
  ck_assert_double_eq(sample(r.body, "broadway_results_total"), 1);
  ck_assert_double_eq(sample(r.body, "broadway_graders{state=\"alive\"}"), 1);
  ck_assert(sample(r.body, "broadway_queue_oldest_wait_seconds") >= 0);
  requests = sample(r.body, "broadway_http_requests_total{route=\"GET "
                            "/api/v1/queue\",code=\"200\"}");
  ck_assert_msg(requests >= 1, "no count for GET /api/v1/queue: %s", r.body);
  ck_assert(sample(r.body, "broadway_http_request_duration_seconds_count{"
                           "route=\"GET /api/v1/queue\"}") >= 1);
  ck_assert(sample(r.body, "broadway_http_request_duration_seconds_bucket{"
                           "route=\"POST /api/v1/grading_run/{id}\",le="
                           "\"+Inf\"}") >= 1);
  /* Counted across the pool: whichever worker answers, the count grows. */
  for (int i = 0; i < 8; i++)
    bw_test_http_call(&c, "GET", "/api/v1/queue", NULL, NULL);
  bw_test_http_resp_cleanup(&r);
  bw_test_http_call(&c, "GET", "/metrics", NULL, &r);
  ck_assert_double_eq(sample(r.body, "broadway_http_requests_total{route="
                                     "\"GET /api/v1/queue\",code=\"200\"}"),
                      requests + 8);
  {
    bw_test_client_t anon = c;
    anon.token[0] = '\0';
    ck_assert_int_eq(bw_test_http_call(&anon, "GET", "/metrics", NULL, NULL),
                     401);
  }
  bw_test_http_resp_cleanup(&r);
}
END_TEST

static Suite *staff_suite(void) {
  Suite *s = suite_create("staff");
  TCase *tc = bw_itest_tcase(s, "cancel", 60, true);
  tcase_add_test(tc, cancel_drops_queued_keeps_running);
  tcase_add_test(tc, cancel_finished_or_unstarted);
  tc = bw_itest_tcase(s, "retry", 60, true);
  tcase_add_test(tc, retry_failed_then_post_again);
  tcase_add_test(tc, retry_wakes_a_waiting_poll);
  tc = bw_itest_tcase(s, "races", 120, true);
  tcase_add_loop_test(tc, cancel_races_results_pollers_reaper, 0, 3);
  tcase_add_loop_test(tc, retry_races_late_results_and_retries, 0, 3);
  tc = bw_itest_tcase(s, "lists", 60, true);
  tcase_add_test(tc, lists_runs_workers_queue);
  tcase_add_test(tc, metrics_in_prometheus_text);
  return s;
}

int main(void) {
  bw_test_stack_opts_t opts = {.label = "staff"};
  return bw_itest_main(staff_suite(), &opts);
}
