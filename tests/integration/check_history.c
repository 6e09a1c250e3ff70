/* check_history.c - what a course with a long history sees (issue 9):
 * paging and the summary form of GET grading_run/{id}, and retention:
 * what a job reads like after keep_output removed its stage output, and
 * that nothing is removed without keep_output.  Against the real stack
 * over HTTP; the retention pass is the reaper's own code
 * (bw_reap_repair), run here with keep_output set.  Bounded: ~20 s. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "db.h"
#include "../lib/itest.h"
#include "reap.h"
#include "run.h"

#define STAGE "{\"image\":\"bbox:1\"}"

static const char result_with_output[] =
    "{\"success\":true,\"info\":[{\"image\":\"bbox:1\",\"exit_code\":0,"
    "\"stdout\":\"all tests passed\\n\",\"stderr\":\"warning\\n\"}],"
    "\"logs\":{\"stdout\":\"the whole log\\n\",\"stderr\":\"\"}}";

/* A started run of `students` students (no pre/post): its id. */
static void started_run(bw_test_client_t *c, int students, char run_id[25]) {
  char *config = bw_itest_run_config(students, STAGE, false, false);
  ck_assert_int_eq(bw_test_http_create_and_start(c, config, run_id), 200);
  free(config);
}

static json_object *get_status(bw_test_client_t *c, const char *run_id,
                               const char *query, bw_test_http_resp_t *r) {
  char path[160];
  snprintf(path, sizeof path, "/api/v1/grading_run/%s%s", run_id, query);
  bw_test_http_call(c, "GET", path, NULL, r);
  BW_ASSERT_SUCCESS(r, 200);
  return bw_test_http_data(r);
}

static int jobs_len(json_object *status) {
  json_object *jobs = bw_test_json_get(status, "jobs");
  return jobs ? (int)json_object_array_length(jobs) : -1;
}

START_TEST(small_run_status_is_the_seeds_response) {
  bw_test_client_t c;
  bw_test_http_resp_t r;
  char run_id[25];
  bw_itest_client(&c);
  started_run(&c, 5, run_id);
  json_object *status = get_status(&c, run_id, "", &r);
  ck_assert_int_eq(jobs_len(status), 5);
  ck_assert_msg(!bw_test_json_get(status, "jobs_page"),
                "a whole run needs no page: %s", r.body);
  bw_test_http_resp_cleanup(&r);
}
END_TEST

START_TEST(status_pages_in_roster_order_and_counts_the_whole_run) {
  bw_test_client_t c;
  bw_test_http_resp_t r;
  char run_id[25];
  bw_itest_client(&c);
  started_run(&c, 5, run_id);

  json_object *status = get_status(&c, run_id, "?offset=1&limit=2", &r);
  ck_assert_int_eq(jobs_len(status), 2);
  json_object *jobs = bw_test_json_get(status, "jobs");
  ck_assert_int_eq(bw_test_json_int(json_object_array_get_idx(jobs, 0), "index"),
                   1);
  ck_assert_int_eq(bw_test_json_int(json_object_array_get_idx(jobs, 1), "index"),
                   2);
  json_object *page = bw_test_json_get(status, "jobs_page");
  ck_assert_msg(page != NULL, "no jobs_page: %s", r.body);
  ck_assert_int_eq(bw_test_json_int(page, "offset"), 1);
  ck_assert_int_eq(bw_test_json_int(page, "limit"), 2);
  ck_assert_int_eq(bw_test_json_int(page, "total"), 5);
  ck_assert_int_eq(bw_test_json_int(page, "next_offset"), 3);
  ck_assert_int_eq(bw_test_json_int(bw_test_json_get(status, "counts"), "queued"),
                   5);
  bw_test_http_resp_cleanup(&r);

  status = get_status(&c, run_id, "?offset=4&limit=2", &r);
  ck_assert_int_eq(jobs_len(status), 1);
  ck_assert(!bw_test_json_get(bw_test_json_get(status, "jobs_page"),
                              "next_offset"));
  bw_test_http_resp_cleanup(&r);

  status = get_status(&c, run_id, "?offset=10", &r);
  ck_assert_int_eq(jobs_len(status), 0);
  ck_assert_int_eq(bw_test_json_int(bw_test_json_get(status, "jobs_page"),
                                    "total"),
                   5);
  bw_test_http_resp_cleanup(&r);
}
END_TEST

START_TEST(summary_has_counts_and_no_jobs) {
  bw_test_client_t c;
  bw_test_http_resp_t r;
  char run_id[25];
  bw_itest_client(&c);
  started_run(&c, 3, run_id);
  json_object *status = get_status(&c, run_id, "?summary=1", &r);
  ck_assert_msg(!bw_test_json_get(status, "jobs"), "jobs in %s", r.body);
  ck_assert_str_eq(bw_test_json_str(status, "state"), "students");
  ck_assert_int_eq(bw_test_json_int(bw_test_json_get(status, "counts"), "queued"),
                   3);
  ck_assert_int_eq(bw_test_json_int(bw_test_json_get(status, "jobs_page"),
                                    "total"),
                   3);
  bw_test_http_resp_cleanup(&r);
}
END_TEST

START_TEST(bad_paging_is_400_naming_the_parameter) {
  static const char *const bad[][2] = {
      {"?offset=-1", "offset"},     {"?offset=x", "offset"},
      {"?offset=", "offset"},       {"?limit=0", "limit"},
      {"?limit=1001", "limit"},     {"?limit=2.5", "limit"},
      {"?summary=maybe", "summary"}};
  bw_test_client_t c;
  char run_id[25], path[160];
  bw_itest_client(&c);
  started_run(&c, 1, run_id);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    bw_test_http_resp_t r;
    snprintf(path, sizeof path, "/api/v1/grading_run/%s%s", run_id, bad[i][0]);
    bw_test_http_call(&c, "GET", path, NULL, &r);
    BW_ASSERT_FAIL(&r, 400, bad[i][1]);
    bw_test_http_resp_cleanup(&r);
  }
}
END_TEST

START_TEST(a_large_run_lists_its_first_page_by_default) {
  bw_test_client_t c;
  bw_test_http_resp_t r;
  char run_id[25];
  bw_itest_client(&c);
  started_run(&c, BW_RUN_PAGE_MAX + 1, run_id);
  json_object *status = get_status(&c, run_id, "", &r);
  ck_assert_int_eq(jobs_len(status), BW_RUN_PAGE_MAX);
  json_object *page = bw_test_json_get(status, "jobs_page");
  ck_assert_int_eq(bw_test_json_int(page, "total"), BW_RUN_PAGE_MAX + 1);
  ck_assert_int_eq(bw_test_json_int(page, "next_offset"), BW_RUN_PAGE_MAX);
  bw_test_http_resp_cleanup(&r);

  status = get_status(&c, run_id, "?offset=1000", &r);
  ck_assert_int_eq(jobs_len(status), 1);
  ck_assert_int_eq(
      bw_test_json_int(
          json_object_array_get_idx(bw_test_json_get(status, "jobs"), 0),
          "index"),
      BW_RUN_PAGE_MAX);
  bw_test_http_resp_cleanup(&r);
}
END_TEST

/* ---- retention ---------------------------------------------------------- */

/* A run of one student, graded with stage output: the job's id. */
static void graded_job(bw_test_client_t *c, char job_id[25]) {
  char run_id[25], path[160];
  bw_test_http_resp_t r;
  ck_assert_int_eq(bw_test_http_register(c, "history", NULL), 200);
  started_run(c, 1, run_id);
  ck_assert_int_eq(bw_itest_poll_until_job(c, 10, NULL, job_id), 200);
  snprintf(path, sizeof path, "/api/v1/grading_job/%s", job_id);
  bw_test_http_call(c, "POST", path, result_with_output, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  bw_test_http_resp_cleanup(&r);
}

/* One retention pass as the reaper makes it, with keep_output seconds. */
static int reaper_pass(int keep_output) {
  bw_config_t cfg = bw_itest_config();
  bw_db_t *db = NULL;
  bw_error_t error;
  bw_reap_stats_t stats = {0};
  cfg.keep_output = keep_output;
  ck_assert_int_eq(bw_db_open(&db, &cfg, &error), 0);
  ck_assert_int_eq(bw_reap_repair(db, &cfg, &stats, &error), 0);
  bw_db_close(db);
  return stats.pruned;
}

START_TEST(without_keep_output_nothing_is_pruned) {
  bw_test_client_t c;
  bw_test_http_resp_t r;
  char job_id[25];
  bw_itest_client(&c);
  graded_job(&c, job_id);
  bw_test_sleep_ms(1100);
  ck_assert_int_eq(reaper_pass(0), 0);
  bw_test_http_get_job(&c, job_id, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  ck_assert_msg(bw_test_json_get(bw_test_http_data(&r), "logs") &&
                    strstr(r.body, "all tests passed"),
                "output gone without keep_output: %s", r.body);
  bw_test_http_resp_cleanup(&r);
}
END_TEST

START_TEST(a_pruned_job_keeps_its_state_and_result_but_not_its_output) {
  bw_test_client_t c;
  bw_test_http_resp_t r;
  char job_id[25];
  int pruned = 0;
  bw_itest_client(&c);
  graded_job(&c, job_id);
  /* keep_output = 1 s: once the result is older, a pass prunes it (a
   * fresh cursor starts BW_RETAIN_FIRST_DAYS back and each pass looks
   * BW_RETAIN_DAYS ahead, so it takes a dozen passes to reach today). */
  double deadline = bw_test_now() + 30;
  while (pruned == 0 && bw_test_now() < deadline) {
    bw_test_sleep_ms(100);
    pruned = reaper_pass(1);
  }
  ck_assert_int_eq(pruned, 1);

  bw_test_http_get_job(&c, job_id, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  json_object *job = bw_test_http_data(&r);
  ck_assert_str_eq(bw_test_json_str(job, "state"), "succeeded");
  ck_assert(json_object_get_boolean(bw_test_json_get(job, "success")));
  ck_assert_msg(bw_test_json_get(job, "output_pruned_at"),
                "no output_pruned_at: %s", r.body);
  ck_assert_msg(!bw_test_json_get(job, "logs"), "logs kept: %s", r.body);
  json_object *stage =
      json_object_array_get_idx(bw_test_json_get(job, "info"), 0);
  ck_assert_msg(stage != NULL, "info gone: %s", r.body);
  ck_assert_int_eq(bw_test_json_int(stage, "exit_code"), 0);
  ck_assert_str_eq(bw_test_json_str(stage, "image"), "bbox:1");
  ck_assert(!bw_test_json_get(stage, "stdout"));
  ck_assert(!bw_test_json_get(stage, "stderr"));
  bw_test_http_resp_cleanup(&r);

  /* Pruned once: a second pass finds nothing left to do. */
  ck_assert_int_eq(reaper_pass(1), 0);
}
END_TEST

static Suite *history_suite(void) {
  Suite *s = suite_create("history");
  TCase *tc = bw_itest_tcase(s, "paging", 120, true);
  tcase_add_test(tc, small_run_status_is_the_seeds_response);
  tcase_add_test(tc, status_pages_in_roster_order_and_counts_the_whole_run);
  tcase_add_test(tc, summary_has_counts_and_no_jobs);
  tcase_add_test(tc, bad_paging_is_400_naming_the_parameter);
  tcase_add_test(tc, a_large_run_lists_its_first_page_by_default);
  tc = bw_itest_tcase(s, "retention", 120, true);
  tcase_add_test(tc, without_keep_output_nothing_is_pruned);
  tcase_add_test(tc, a_pruned_job_keeps_its_state_and_result_but_not_its_output);
  return s;
}

int main(void) {
  bw_test_stack_opts_t opts = {.label = "history"};
  return bw_itest_main(history_suite(), &opts);
}
