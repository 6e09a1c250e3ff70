/* check_stall.c - the database stalled (FerretDB SIGSTOPped) while readers
 * and graders use the real stack (issue 11):
 *
 *   - a finished job and a finished run are read in a loop while the
 *     database is stopped and continued again and again: every answer is the
 *     full answer taken before, or a 503; never a 200 built from part of it;
 *   - heartbeat 2 s, 4 graders holding jobs and heartbeating, the database
 *     stopped 6 s: no job re-queued, no result refused; a grader that really
 *     died during the stall is declared dead within 3 intervals (plus the
 *     API's own reconnect and slack for a loaded machine) of the database
 *     coming back.
 *
 * Bounded: about 25 s and 30 s, plus the stack's start. */
#include <check.h>
#include <signal.h>
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

#define HEARTBEAT 2 /* s */
#define STALL_CONFIG                                                           \
  "claim_grace = 3\n"                                                          \
  "db_timeout_ms = 1000\n"

static pid_t ferretdb_pid(void) {
  pid_t pgid = bw_fault_stack_pgid(bw_test_stack_data_dir(bw_itest_stack())),
        pid = -1;
  ck_assert_msg(pgid > 0, "the stack's process group is not found");
  ck_assert_int_eq(bw_fault_group_find(pgid, "ferretdb", &pid, 1), 1);
  return pid;
}

/* A stopped FerretDB would outlive a failed test and hang the stack's
 * shutdown: a watchdog continues it after `seconds` + 10 in any case. */
static pid_t stop_db(pid_t db, int seconds) {
  pid_t watchdog;
  fflush(NULL);
  watchdog = fork();
  if (watchdog == 0) {
    sleep((unsigned)seconds + 10);
    kill(db, SIGCONT);
    _exit(0);
  }
  ck_assert_int_eq(kill(db, SIGSTOP), 0);
  return watchdog;
}

static void cont_db(pid_t db, pid_t watchdog) {
  ck_assert_int_eq(kill(db, SIGCONT), 0);
  kill(watchdog, SIGKILL);
  waitpid(watchdog, NULL, 0);
}

/* After a stall each FastCGI worker waits out its driver's reconnect
 * cooldown: wait until every worker answers a read again (a 404; 12 in a
 * row, so that each of the 4 workers did). */
/* Waits until the API has answered for 6 s without a break.  A worker whose
 * driver failed during a stall fails at once for up to 5 s after (libmongoc's
 * single-threaded cooldown), and nginx may not route a probe to that worker:
 * 6 s of answers means every worker's cooldown has run out. */
static void wait_api_up(const bw_test_client_t *c) {
  const char *path = "/api/v1/grading_job/000000000000000000000000";
  double since = -1;
  for (double end = bw_test_now() + 40; bw_test_now() < end;
       bw_test_sleep_ms(100)) {
    if (bw_test_http_call(c, "GET", path, NULL, NULL) != 404)
      since = -1;
    else if (since < 0)
      since = bw_test_now();
    else if (bw_test_now() - since >= 6)
      return;
  }
  ck_abort_msg("the API did not answer for 6 s in a row within 40 s");
}

/* Takes every job of the run (one at a time) and reports it with output. */
static void finish_run(bw_test_client_t *c, const char *run_id) {
  bw_test_http_resp_t r;
  char job[25];
  const char *result = "{\"success\": true, \"info\": [{\"exit_code\": 0, "
                       "\"stdout\": \"ok\"}], \"logs\": {\"stdout\": \"all\"}}";
  char path[128];
  for (int taken = 0; taken < 10; taken++) {
    long status = bw_itest_poll_until_job(c, 10, &r, job);
    bw_test_http_resp_cleanup(&r);
    if (status == 498)
      break;
    ck_assert_int_eq(status, 200);
    snprintf(path, sizeof path, "/api/v1/grading_job/%s", job);
    ck_assert_int_eq(bw_test_http_call(c, "POST", path, result, NULL), 200);
  }
  for (double end = bw_test_now() + 30; bw_test_now() < end;
       bw_test_sleep_ms(200)) {
    bw_test_http_run_status(c, run_id, &r);
    bool done = r.status == 200 &&
                strcmp(bw_test_json_str(bw_test_http_data(&r), "state"),
                       "succeeded") == 0;
    bw_test_http_resp_cleanup(&r);
    if (done)
      return;
  }
  ck_abort_msg("run %s did not succeed", run_id);
}

/* GET path: its status, and its data (caller puts) when 200. */
static long read_data(const bw_test_client_t *c, const char *path,
                      json_object **data) {
  bw_test_http_resp_t r;
  long status = bw_test_http_call(c, "GET", path, NULL, &r);
  *data = status == 200 ? json_object_get(bw_test_http_data(&r)) : NULL;
  if (status == 503)
    ck_assert_str_eq(bw_test_http_jsend_status(&r), "error");
  bw_test_http_resp_cleanup(&r);
  return status;
}

static pid_t stopper_db;

static void stopper_orphaned(int sig) {
  (void)sig;
  kill(stopper_db, SIGCONT);
  _exit(0);
}

START_TEST(reads_during_a_stall_are_the_full_answer_or_503) {
  bw_test_client_t c;
  char run_id[25], job_path[96], run_path[96];
  json_object *job_full, *run_full, *got;
  char *config = bw_itest_run_config(3, "{\"image\": \"x\"}", false, true);
  int ok = 0, unavailable = 0;
  pid_t db = ferretdb_pid(), stopper;

  bw_itest_client(&c);
  wait_api_up(&c);
  ck_assert_int_eq(bw_test_http_register(&c, "reader", NULL), 200);
  ck_assert_int_eq(bw_test_http_create_and_start(&c, config, run_id), 200);
  free(config);
  finish_run(&c, run_id);
  snprintf(run_path, sizeof run_path, "/api/v1/grading_run/%s", run_id);
  ck_assert_int_eq(read_data(&c, run_path, &run_full), 200);
  snprintf(job_path, sizeof job_path, "/api/v1/grading_job/%s",
           bw_test_json_str(
               json_object_array_get_idx(bw_test_json_get(run_full, "jobs"), 0),
               "job_id"));
  ck_assert_int_eq(read_data(&c, job_path, &job_full), 200);
  ck_assert_ptr_nonnull(bw_test_json_get(job_full, "info"));

  /* The stopper: 10 stalls of 1.2-2.7 s (over db_timeout_ms), 0.1-0.6 s
   * apart: each stop may land between two steps of a read.  If the test dies
   * first, the stopper continues the database and ends. */
  fflush(NULL);
  stopper_db = db;
  stopper = fork();
  if (stopper == 0) {
    signal(SIGUSR1, stopper_orphaned);
    prctl(PR_SET_PDEATHSIG, SIGUSR1);
    srand((unsigned)getpid());
    for (int i = 0; i < 10; i++) {
      kill(db, SIGSTOP);
      usleep((useconds_t)(1200 + rand() % 1500) * 1000);
      kill(db, SIGCONT);
      usleep((useconds_t)(100 + rand() % 500) * 1000);
    }
    _exit(0);
  }
  for (int alive = 1; alive;) {
    alive = waitpid(stopper, NULL, WNOHANG) == 0;
    for (int k = 0; k < 2; k++) {
      json_object *full = k ? run_full : job_full;
      long status = read_data(&c, k ? run_path : job_path, &got);
      ck_assert_msg(status == 200 || status == 503, "%s: status %ld",
                    k ? "run" : "job", status);
      if (status == 200) {
        ck_assert_msg(bw_test_json_equal(got, full),
                      "a 200 during a stall differs from the full answer:\n"
                      "%s\nexpected\n%s",
                      json_object_to_json_string(got),
                      json_object_to_json_string(full));
        ok++;
      } else {
        unavailable++;
      }
      json_object_put(got);
    }
  }
  kill(db, SIGCONT);
  fprintf(stderr, "stall reads: %d full answers, %d 503s\n", ok, unavailable);
  ck_assert_int_gt(ok, 0);
  ck_assert_int_gt(unavailable, 0);
  json_object_put(job_full);
  json_object_put(run_full);
}
END_TEST

/* ---- heartbeats through a stall ----------------------------------------- */

static char flag_dir[256];

static bool flag_set(const char *name) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", flag_dir, name);
  return access(path, F_OK) == 0;
}

static void flag_raise(const char *name) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", flag_dir, name);
  ck_assert_int_eq(bw_test_write_file(path, "1"), 0);
}

/* A grader child: registers, takes one job, writes its id to `out_fd`, then
 * heartbeats every interval (retrying every 0.2 s while the API answers
 * 5xx) until flag `stop` is raised.  `report`: then reports the job and
 * exits 0 on 200, 1 otherwise; else it exits without a word (it died). */
static void grader_child(const char *stop, bool report, int out_fd) {
  bw_test_client_t c;
  bw_test_http_resp_t r;
  char job[25];
  double next = 0;

  memset(&r, 0, sizeof r);
  bw_itest_client(&c);
  /* Always 24 bytes to the parent, which reads one id per child.  A
   * worker may still wait out its reconnect after the previous test's
   * stalls: 5xx are retried. */
  memcpy(job, "no job: poll or register", 25);
  for (double end = bw_test_now() + 20; bw_test_now() < end;
       bw_test_sleep_ms(100)) {
    if (c.worker_id[0] == '\0' &&
        bw_test_http_register(&c, "stall", NULL) != 200)
      continue;
    long status = bw_test_http_poll(&c, &r, job);
    bw_test_http_resp_cleanup(&r);
    if (status == 200)
      break;
    memcpy(job, "no job: poll or register", 25);
  }
  if (write(out_fd, job, 24) != 24 || !bw_test_is_oid(job))
    _exit(2);
  while (!flag_set(stop)) {
    if (bw_test_now() >= next)
      next = bw_test_http_heartbeat(&c) == 200 ? bw_test_now() + HEARTBEAT
                                               : bw_test_now() + 0.2;
    bw_test_sleep_ms(50);
  }
  if (!report)
    _exit(0);
  for (double end = bw_test_now() + 10;; bw_test_sleep_ms(200)) {
    long status = bw_test_http_report(&c, job, true, NULL);
    if (status < 500 || bw_test_now() > end)
      _exit(status == 200 ? 0 : 1);
  }
}

static json_object *job_view(const bw_test_client_t *c, const char *job) {
  char path[160];
  json_object *data = NULL;
  snprintf(path, sizeof path, "/api/v1/grading_job/%s", job);
  return read_data(c, path, &data) == 200 ? data : NULL;
}

START_TEST(a_stall_costs_live_graders_nothing_and_hides_no_death) {
  enum { LIVE = 4 };
  bw_test_client_t c;
  char run_id[25], jobs[LIVE + 1][25];
  char *config = bw_itest_run_config(
      LIVE + 1, "{\"image\": \"x\", \"timeout\": 120}", false, false);
  int fds[2], status;
  pid_t pids[LIVE + 1], db = ferretdb_pid(), watchdog;
  double back, requeued_after = -1;

  snprintf(flag_dir, sizeof flag_dir, "%s/stall-flags",
           bw_test_stack_data_dir(bw_itest_stack()));
  bw_test_remove_tree(flag_dir);
  ck_assert_int_eq(mkdir(flag_dir, 0700), 0);
  bw_itest_client(&c);
  wait_api_up(&c);
  ck_assert_int_eq(bw_test_http_create_and_start(&c, config, run_id), 200);
  free(config);
  ck_assert_int_eq(pipe(fds), 0);
  fflush(NULL);
  for (int i = 0; i <= LIVE; i++) {
    pids[i] = fork();
    if (pids[i] == 0)
      grader_child(i < LIVE ? "report" : "die", i < LIVE, fds[1]);
    ck_assert_int_eq(read(fds[0], jobs[i], 24), 24);
    jobs[i][24] = '\0';
    ck_assert_msg(bw_test_is_oid(jobs[i]), "grader %d: %s", i, jobs[i]);
  }

  /* Let a heartbeat or two through, then the last grader dies and the
   * database stops for 6 s (3 intervals) at once. */
  bw_test_sleep_ms(2500);
  flag_raise("die");
  waitpid(pids[LIVE], NULL, 0);
  watchdog = stop_db(db, 6);
  bw_test_sleep_ms(6000);
  cont_db(db, watchdog);
  back = bw_test_now();

  /* The dead grader's job is re-queued within 3 intervals of the return,
   * plus 8 s: the reaper counts 2 intervals from the first heartbeat the
   * API records after the stall (reap.h, bw_reap_watch_t), and the FastCGI
   * workers' reconnect takes 1-4 s on a loaded machine.  The live graders
   * keep heartbeating. */
  while (bw_test_now() < back + 3 * HEARTBEAT + 8) {
    json_object *v = job_view(&c, jobs[LIVE]);
    bool again = v && strcmp(bw_test_json_str(v, "state"), "running") != 0;
    json_object_put(v);
    if (again) {
      requeued_after = bw_test_now() - back;
      break;
    }
    bw_test_sleep_ms(200);
  }
  /* Past any deadline a stall could have moved: 3 intervals after the
   * return, the live graders report. */
  while (bw_test_now() < back + 3 * HEARTBEAT + 2)
    bw_test_sleep_ms(100);
  flag_raise("report");
  for (int i = 0; i < LIVE; i++) {
    waitpid(pids[i], &status, 0);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "live grader %d: its result was refused (status %d)", i,
                  status);
  }
  fprintf(stderr,
          "stall heartbeats: dead grader's job re-queued %.1f s after "
          "the database came back\n",
          requeued_after);
  ck_assert_msg(requeued_after >= 0,
                "the dead grader's job was not re-queued within %d s of the "
                "database's return",
                3 * HEARTBEAT + 8);
  for (int i = 0; i < LIVE; i++) {
    json_object *v = job_view(&c, jobs[i]);
    ck_assert_ptr_nonnull(v);
    ck_assert_str_eq(bw_test_json_str(v, "state"), "succeeded");
    ck_assert_int_eq(bw_test_json_int(v, "attempts"), 1);
    json_object_put(v);
  }
  close(fds[0]);
  close(fds[1]);
  bw_test_remove_tree(flag_dir);
}
END_TEST

static Suite *stall_suite(void) {
  Suite *s = suite_create("stall");
  TCase *tc = bw_itest_tcase(s, "stall", 120, true);
  tcase_add_test(tc, reads_during_a_stall_are_the_full_answer_or_503);
  tcase_add_test(tc, a_stall_costs_live_graders_nothing_and_hides_no_death);
  return s;
}

int main(void) {
  bw_test_stack_opts_t opts = {.label = "stall",
                               .heartbeat = HEARTBEAT,
                               .workers = 4,
                               .config_text = STALL_CONFIG};
  return bw_itest_main(stall_suite(), &opts);
}
