/* check_ondemand.c - the 2019 API's course side against the real stack
 * (nginx, the FastCGI pool, FerretDB), issue 14:
 *   - broadway-on-demand's calls replayed in its order (PROTOCOL-LATER.md
 *     §3.4): config post/get, run create, the run's status read at once for
 *     its first student job, the job's log once a 2019 grader (its routes)
 *     finished it, the run's env, the worker list; and its status page's
 *     calls with a query token, preflight included;
 *   - isolation: on every course route, another course's token gets exactly
 *     the answer of an unknown id; a query token is refused on admin routes;
 *     no token, a bad format, the cluster token: 401;
 *   - CORS on every reply, seed-era routes included;
 *   - the courses file: a good one swaps in on SIGHUP, a bad one keeps the
 *     old (and is logged naming its line), a bad one at start is refused.
 * About 10 s here (5 s unloaded). */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/fault.h"
#include "../lib/itest.h"

#define ADMIN "Bearer adm-241"
#define VIEWER "Bearer view-241"
#define OTHER "Bearer adm-225"
#define COURSES                                                                \
  "{\n"                                                                        \
  "  \"cs241\": {\"tokens\": [\"adm-241\"], \"query_tokens\": [\"view-241\"]},\n" \
  "  \"cs225\": [\"adm-225\"]\n"                                               \
  "}\n"
#define UNKNOWN_ID "5f0000000000000000000000"

#define CONFIG                                                                 \
  "{\"student_pipeline\": [{\"image\": \"grader:1\", \"env\": {\"A\": \"s\"}, " \
  "\"entrypoint\": [\"/bin/grade\"], \"timeout\": 60, \"networking\": false}], " \
  "\"env\": {\"COURSE\": \"cs241\"}}"
#define STUDENTS                                                               \
  "{\"students_env\": [{\"STUDENT_ID\": \"alice\", \"DUE_DATE\": "             \
  "\"2019-10-01 23:59\"}, {\"STUDENT_ID\": \"bob\", \"DUE_DATE\": "            \
  "\"2019-10-01 23:59\"}]}"

static char courses_path[] = "/tmp/itest-courses-XXXXXX";

static bw_test_client_t as(const char *authorization) {
  bw_test_client_t c;
  bw_test_client_init(&c, bw_test_stack_url(bw_itest_stack()),
                      authorization != NULL ? authorization : "");
  return c;
}

/* A 2019 grader (its routes: g3-model's), with the cluster token. */
static bw_test_client_t grader3(void) {
  char auth[300];
  snprintf(auth, sizeof auth, "Bearer %s",
           bw_test_stack_token(bw_itest_stack()));
  return as(auth);
}

static long call(const bw_test_client_t *c, const char *method,
                 const char *path, const char *body, bw_test_http_resp_t *r) {
  bw_test_http_resp_cleanup(r);
  return bw_test_http_call(c, method, path, body, r);
}

static void header(const bw_test_http_resp_t *r, const char *name,
                   const char *want) {
  char value[256];
  ck_assert_msg(bw_test_http_header(r, name, value, sizeof value),
                "no %s header (HTTP %ld)", name, r->status);
  ck_assert_msg(strcmp(value, want) == 0, "%s: \"%s\", not \"%s\"", name,
                value, want);
}

/* config posted, a run of alice and bob created; the run id and its first
 * student job id (read at once, as broadway-on-demand does). */
static void make_run(char run_id[25], char job_id[25]) {
  bw_test_client_t admin = as(ADMIN);
  bw_test_http_resp_t r = {0};
  json_object *jobs;
  char path[128];

  ck_assert_int_eq(call(&admin, "POST", "/api/v1/grading_config/cs241/mp1",
                        CONFIG, &r),
                   200);
  call(&admin, "POST", "/api/v1/grading_run/cs241/mp1", STUDENTS, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  snprintf(run_id, 25, "%s",
           bw_test_json_str(bw_test_http_data(&r), "grading_run_id"));
  ck_assert_msg(bw_test_is_oid(run_id), "grading_run_id: %s", BW_BODY(&r));
  snprintf(path, sizeof path, "/api/v1/grading_run_status/cs241/%s", run_id);
  call(&admin, "GET", path, NULL, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  jobs = bw_test_json_get(bw_test_http_data(&r), "student_jobs_state");
  ck_assert_msg(jobs != NULL && json_object_object_length(jobs) == 2, "%s",
                BW_BODY(&r));
  json_object_object_foreach(jobs, id, state) {
    ck_assert_msg(strstr(json_object_get_string(state), "scheduled") != NULL,
                  "job state %s", json_object_get_string(state));
    snprintf(job_id, 25, "%s", id);
    break;
  }
  bw_test_http_resp_cleanup(&r);
}

/* The student job of run_id still waiting ("scheduled"). */
static void waiting_job(const char *run_id, char job_id[25]) {
  bw_test_client_t admin = as(ADMIN);
  bw_test_http_resp_t r = {0};
  char path[128];

  job_id[0] = '\0';
  snprintf(path, sizeof path, "/api/v1/grading_run_status/cs241/%s", run_id);
  call(&admin, "GET", path, NULL, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  json_object_object_foreach(
      bw_test_json_get(bw_test_http_data(&r), "student_jobs_state"), id, st) {
    if (strstr(json_object_get_string(st), "scheduled") != NULL)
      snprintf(job_id, 25, "%s", id);
  }
  ck_assert_msg(job_id[0] != '\0', "no waiting job: %s", BW_BODY(&r));
  bw_test_http_resp_cleanup(&r);
}

/* A 2019 grader takes one job and reports it with `stdout_text`; returns
 * the job it got in job_id. */
static void grade_one(const char *name, const char *stdout_text,
                      char job_id[25]) {
  bw_test_client_t g = grader3();
  bw_test_http_resp_t r = {0};
  char path[128], body[512];

  snprintf(path, sizeof path, "/api/v1/worker/%s", name);
  call(&g, "POST", path, "{\"hostname\": \"grader-host\"}", &r);
  BW_ASSERT_SUCCESS(&r, 200);
  snprintf(path, sizeof path, "/api/v1/grading_job/%s", name);
  call(&g, "GET", path, NULL, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  snprintf(job_id, 25, "%s",
           bw_test_json_str(bw_test_http_data(&r), "grading_job_id"));
  snprintf(body, sizeof body,
           "{\"grading_job_id\": \"%s\", \"success\": true, \"results\": "
           "[{\"success\": true}], \"logs\": {\"stdout\": \"%s\", "
           "\"stderr\": \"e\"}}",
           job_id, stdout_text);
  call(&g, "POST", path, body, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  bw_test_http_resp_cleanup(&r);
}

/* ---- broadway-on-demand, server side then browser side ----------------- */

START_TEST(test_ondemand_replay) {
  bw_test_client_t admin = as(ADMIN), viewer = as(VIEWER);
  bw_test_http_resp_t r = {0};
  char run_id[25], job_id[25], done_job[25], path[160];
  json_object *data, *expected = json_tokener_parse(CONFIG), *env;

  make_run(run_id, job_id);

  /* GET the config: the four keys, absent ones null, the rest as posted. */
  call(&admin, "GET", "/api/v1/grading_config/cs241/mp1", NULL, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  data = bw_test_http_data(&r);
  ck_assert_int_eq(json_object_object_length(data), 4);
  ck_assert(bw_test_json_equal(bw_test_json_get(data, "student_pipeline"),
                               bw_test_json_get(expected, "student_pipeline")));
  ck_assert(bw_test_json_equal(bw_test_json_get(data, "env"),
                               bw_test_json_get(expected, "env")));
  ck_assert(json_object_object_get_ex(data, "pre_processing_pipeline", NULL));
  ck_assert_ptr_null(bw_test_json_get(data, "pre_processing_pipeline"));
  json_object_put(expected);

  /* The log of a job not finished yet: the original's 400 (sic). */
  snprintf(path, sizeof path, "/api/v1/grading_job_log/cs241/%s", job_id);
  call(&admin, "GET", path, NULL, &r);
  BW_ASSERT_FAIL(&r, 400,
                 "grading job with the given IDnot found or has not finished");

  /* The run's env: each variable as the list of its values. */
  snprintf(path, sizeof path, "/api/v1/grading_run_env/cs241/%s", run_id);
  call(&admin, "GET", path, NULL, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  env = bw_test_json_get(bw_test_json_get(bw_test_http_data(&r), "student_env"),
                         job_id);
  ck_assert_msg(env != NULL, "no env for %s: %s", job_id, BW_BODY(&r));
  ck_assert_msg(json_object_is_type(bw_test_json_get(env, "STUDENT_ID"),
                                    json_type_array),
                "%s", BW_BODY(&r));

  /* Browser side: preflight, then status and position with the query
   * token, each reply readable cross-origin. */
  snprintf(path, sizeof path, "/api/v1/grading_run_status/cs241/%s", run_id);
  {
    bw_test_client_t browser = as(NULL);
    call(&browser, "OPTIONS", path, NULL, &r);
    ck_assert_int_eq(r.status, 204);
    ck_assert_uint_eq(r.body_len, 0);
    header(&r, "Access-Control-Allow-Origin", "*");
    header(&r, "Access-Control-Allow-Headers", "Authorization");
  }
  call(&viewer, "GET", path, NULL, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  header(&r, "Access-Control-Allow-Origin", "*");
  ck_assert_msg(strstr(bw_test_json_str(bw_test_http_data(&r), "state"),
                       "scheduled") != NULL,
                "%s", BW_BODY(&r));
  snprintf(path, sizeof path, "/api/v1/queue/cs241/%s/position", job_id);
  call(&viewer, "GET", path, NULL, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  header(&r, "Access-Control-Allow-Origin", "*");
  ck_assert_int_ge(bw_test_json_int(bw_test_http_data(&r), "position"), 0);
  ck_assert_int_le(bw_test_json_int(bw_test_http_data(&r), "position"), 1);
  call(&admin, "GET", "/api/v1/queue/cs241/length", NULL, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  ck_assert_int_eq(bw_test_json_int(bw_test_http_data(&r), "length"), 2);

  /* A 2019 grader finishes one job: its log, and the worker list. */
  grade_one("w-ondemand", "graded-ok", done_job);
  snprintf(path, sizeof path, "/api/v1/grading_job_log/cs241/%s", done_job);
  call(&admin, "GET", path, NULL, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  ck_assert_str_eq(bw_test_json_str(bw_test_http_data(&r), "stdout"),
                   "graded-ok");
  ck_assert_str_eq(bw_test_json_str(bw_test_http_data(&r), "stderr"), "e");
  snprintf(path, sizeof path, "/api/v1/queue/cs241/%s/position", done_job);
  call(&viewer, "GET", path, NULL, &r);
  BW_ASSERT_FAIL(&r, 400, "");
  call(&admin, "GET", "/api/v1/queue/cs241/length", NULL, &r);
  ck_assert_int_eq(bw_test_json_int(bw_test_http_data(&r), "length"), 1);
  call(&admin, "GET", "/api/v1/worker/cs241/all", NULL, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  ck_assert_msg(strstr(BW_BODY(&r), "\"hostname\":\"grader-host\"") != NULL,
                "%s", BW_BODY(&r));
  call(&admin, "GET", "/api/v1/worker/cs241/alive/now", NULL, &r);
  BW_ASSERT_FAIL(&r, 404, "scope alive/now has not been implemented yet");
  bw_test_http_resp_cleanup(&r);
}
END_TEST

/* The original's answers to what broadway-on-demand may get wrong. */
START_TEST(test_ondemand_errors) {
  bw_test_client_t admin = as(ADMIN);
  bw_test_http_resp_t r = {0};
  static const char *const bad_ids[] = {"temp", "weird", UNKNOWN_ID};

  /* Schema failures: 400 with data a string naming the field. */
  call(&admin, "POST", "/api/v1/grading_config/cs241/mp1",
       "{\"student_pipeline\": [{\"image\": 3}]}", &r);
  BW_ASSERT_STATUS(&r, 400);
  ck_assert_str_eq(bw_test_http_jsend_status(&r), "fail");
  ck_assert_msg(json_object_is_type(bw_test_http_data(&r), json_type_string),
                "%s", BW_BODY(&r));
  ck_assert_msg(strstr(json_object_get_string(bw_test_http_data(&r)),
                       "student_pipeline[0].image") != NULL,
                "%s", BW_BODY(&r));
  call(&admin, "POST", "/api/v1/grading_config/cs241/mp1", "{\"env\": {}}",
       &r);
  ck_assert_str_eq(json_object_get_string(bw_test_http_data(&r)),
                   "student_pipeline: missing");
  call(&admin, "POST", "/api/v1/grading_config/cs241/mp1", "{not json", &r);
  BW_ASSERT_STATUS(&r, 400);
  ck_assert(json_object_is_type(bw_test_http_data(&r), json_type_string));
  /* Nothing was stored by those. */
  call(&admin, "GET", "/api/v1/grading_config/cs241/mp1", NULL, &r);
  BW_ASSERT_FAIL(&r, 400, "assignment configuration not found");
  call(&admin, "POST", "/api/v1/grading_run/cs241/mp1", STUDENTS, &r);
  BW_ASSERT_FAIL(&r, 400, "assignment configuration not found");
  call(&admin, "POST", "/api/v1/grading_config/cs241/mp1", CONFIG, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  call(&admin, "POST", "/api/v1/grading_run/cs241/mp1",
       "{\"students_env\": [{}], \"extra\": 1}", &r);
  BW_ASSERT_STATUS(&r, 400);
  ck_assert_str_eq(json_object_get_string(bw_test_http_data(&r)),
                   "extra: unknown key");
  call(&admin, "POST", "/api/v1/grading_run/cs241/mp1",
       "{\"students_env\": [{}], \"pre_processing_env\": {}}", &r);
  BW_ASSERT_FAIL(&r, 400,
                 "pre-processing runtime environment provided, but "
                 "nopre-processing stage was associated with this assignment");
  for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
    char path[128];
    snprintf(path, sizeof path, "/api/v1/grading_run_status/cs241/%s",
             bad_ids[i]);
    call(&admin, "GET", path, NULL, &r);
    BW_ASSERT_FAIL(&r, 400, "grading run with the given ID not found");
    snprintf(path, sizeof path, "/api/v1/grading_job_log/cs241/%s", bad_ids[i]);
    call(&admin, "GET", path, NULL, &r);
    BW_ASSERT_FAIL(&r, 400, "grading job with the given IDnot found");
  }
  ck_assert_int_eq(bw_test_db_count(bw_itest_stack(), "runs"), 0);
  bw_test_http_resp_cleanup(&r);
}
END_TEST

/* ---- isolation ----------------------------------------------------------- */

/* GET `path_fmt` with the unknown id and with `id`, both as cs225 on its
 * own path: the same status and the same bytes. */
static void same_as_unknown(const char *path_fmt, const char *id) {
  bw_test_client_t other = as(OTHER);
  bw_test_http_resp_t known = {0}, unknown = {0};
  char path[160];

  snprintf(path, sizeof path, path_fmt, "cs225", id);
  call(&other, "GET", path, NULL, &known);
  snprintf(path, sizeof path, path_fmt, "cs225", UNKNOWN_ID);
  call(&other, "GET", path, NULL, &unknown);
  ck_assert_msg(known.status == 400 && unknown.status == 400,
                "%s: %ld %s / %ld %s", path_fmt, known.status, BW_BODY(&known),
                unknown.status, BW_BODY(&unknown));
  ck_assert_msg(strcmp(BW_BODY(&known), BW_BODY(&unknown)) == 0,
                "%s: another course's id reads \"%s\", an unknown one \"%s\"",
                path_fmt, BW_BODY(&known), BW_BODY(&unknown));
  bw_test_http_resp_cleanup(&known);
  bw_test_http_resp_cleanup(&unknown);
}

START_TEST(test_isolation_ids) {
  bw_test_client_t other = as(OTHER);
  bw_test_http_resp_t r = {0}, none = {0};
  char run_id[25], job_id[25], done_job[25];

  make_run(run_id, job_id);
  grade_one("w-iso", "secret-output", done_job);
  waiting_job(run_id, job_id);
  same_as_unknown("/api/v1/grading_run_status/%s/%s", run_id);
  same_as_unknown("/api/v1/grading_run_env/%s/%s", run_id);
  same_as_unknown("/api/v1/grading_job_log/%s/%s", done_job);
  same_as_unknown("/api/v1/queue/%s/%s/position", job_id);
  /* ... while cs241 reads them all. */
  {
    bw_test_client_t admin = as(ADMIN), viewer = as(VIEWER);
    char path[128];
    snprintf(path, sizeof path, "/api/v1/queue/cs241/%s/position", job_id);
    call(&viewer, "GET", path, NULL, &r);
    BW_ASSERT_SUCCESS(&r, 200);
    snprintf(path, sizeof path, "/api/v1/grading_job_log/cs241/%s", done_job);
    call(&admin, "GET", path, NULL, &r);
    BW_ASSERT_SUCCESS(&r, 200);
  }
  /* Configs: cs225 has no mp1, though cs241 has. */
  call(&other, "GET", "/api/v1/grading_config/cs225/mp1", NULL, &r);
  call(&other, "GET", "/api/v1/grading_config/cs225/never", NULL, &none);
  ck_assert_int_eq(r.status, 400);
  ck_assert_str_eq(BW_BODY(&r), BW_BODY(&none));
  call(&other, "POST", "/api/v1/grading_run/cs225/mp1", STUDENTS, &r);
  BW_ASSERT_FAIL(&r, 400, "assignment configuration not found");
  /* Queue length: cs225 has nothing queued. */
  call(&other, "GET", "/api/v1/queue/cs225/length", NULL, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  ck_assert_int_eq(bw_test_json_int(bw_test_http_data(&r), "length"), 0);
  /* No course's route ever printed a token or another course's output. */
  ck_assert(!bw_test_stack_logs_contain(bw_itest_stack(), "adm-241"));
  ck_assert(!bw_test_stack_logs_contain(bw_itest_stack(), "view-241"));
  bw_test_http_resp_cleanup(&r);
  bw_test_http_resp_cleanup(&none);
}
END_TEST

/* Every course route of cs241, admin (A) or member (M). */
static const struct {
  const char *method, *path;
  bool member;
} course_routes[] = {
    {"POST", "/api/v1/grading_config/cs241/mp1", false},
    {"GET", "/api/v1/grading_config/cs241/mp1", false},
    {"POST", "/api/v1/grading_run/cs241/mp1", false},
    {"GET", "/api/v1/grading_run_status/cs241/" UNKNOWN_ID, true},
    {"GET", "/api/v1/grading_run_env/cs241/" UNKNOWN_ID, false},
    {"GET", "/api/v1/grading_job_log/cs241/" UNKNOWN_ID, false},
    {"GET", "/api/v1/worker/cs241/all", false},
    {"GET", "/api/v1/queue/cs241/length", false},
    {"GET", "/api/v1/queue/cs241/" UNKNOWN_ID "/position", true},
};

static void expect_401(const char *authorization, const char *message,
                       size_t i) {
  bw_test_client_t c = as(authorization);
  bw_test_http_resp_t r = {0};
  call(&c, course_routes[i].method, course_routes[i].path, "{}", &r);
  ck_assert_msg(r.status == 401 &&
                    strcmp(bw_test_http_message(&r), message) == 0,
                "%s %s with \"%s\": %ld %s (wanted 401 %s)",
                course_routes[i].method, course_routes[i].path,
                authorization ? authorization : "(none)", r.status,
                BW_BODY(&r), message);
  header(&r, "Access-Control-Allow-Origin", "*");
  bw_test_http_resp_cleanup(&r);
}

START_TEST(test_isolation_tokens) {
  char cluster[300];
  snprintf(cluster, sizeof cluster, "Bearer %s",
           bw_test_stack_token(bw_itest_stack()));
  for (size_t i = 0; i < sizeof course_routes / sizeof course_routes[0]; i++) {
    expect_401(NULL, "invalid token format", i);
    expect_401("adm-241", "invalid token format", i);
    expect_401("Bearer  adm-241", "invalid token format", i);
    expect_401("bearer adm-241", "invalid token format", i);
    expect_401(OTHER, "invalid token", i);
    expect_401(cluster, "invalid token", i);
    expect_401(bw_test_stack_token(bw_itest_stack()), "invalid token format",
               i);
    if (!course_routes[i].member)
      expect_401(VIEWER, "invalid token", i);
  }
  /* An unknown course, and one whose id could never be in the file. */
  {
    bw_test_client_t c = as(ADMIN);
    bw_test_http_resp_t r = {0};
    call(&c, "GET", "/api/v1/grading_config/cs999/mp1", NULL, &r);
    BW_ASSERT_FAIL(&r, 401, "course not found");
    call(&c, "GET",
         "/api/v1/queue/a-course-id-longer-than-sixty-three-characters-is-"
         "never-in-the-file/length",
         NULL, &r);
    BW_ASSERT_FAIL(&r, 401, "course not found");
    /* A course token is not the cluster token on seed-era routes. */
    call(&c, "GET", "/api/v1/queue", NULL, &r);
    BW_ASSERT_FAIL(&r, 401, "");
    bw_test_http_resp_cleanup(&r);
  }
  ck_assert_int_eq(bw_test_db_count(bw_itest_stack(), "gconfigs"), 0);
}
END_TEST

/* CORS on the seed's replies too, and preflights on any known path. */
START_TEST(test_cors_everywhere) {
  bw_test_client_t seed;
  bw_test_client_t none = as(NULL);
  bw_test_http_resp_t r = {0};

  bw_itest_client(&seed);
  call(&seed, "GET", "/api/v1/queue", NULL, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  header(&r, "Access-Control-Allow-Origin", "*");
  call(&none, "GET", "/api/v1/queue", NULL, &r);
  ck_assert_int_eq(r.status, 401);
  header(&r, "Access-Control-Allow-Origin", "*");
  call(&none, "OPTIONS", "/api/v1/grading_run", NULL, &r);
  ck_assert_int_eq(r.status, 204);
  header(&r, "Access-Control-Allow-Headers", "Authorization");
  call(&none, "OPTIONS", "/api/v1/queue/cs241/length", NULL, &r);
  ck_assert_int_eq(r.status, 204);
  /* Not a route: no preflight answer (and no token: 401). */
  call(&none, "OPTIONS", "/api/v1/nothing-here", NULL, &r);
  ck_assert_int_eq(r.status, 401);
  bw_test_http_resp_cleanup(&r);
}
END_TEST

/* ---- the courses file --------------------------------------------------- */

static void sighup_pool(void) {
  pid_t pgid = bw_fault_stack_pgid(bw_test_stack_data_dir(bw_itest_stack()));
  pid_t parent = pgid > 0 ? bw_fault_fcgi_parent(pgid) : -1;
  ck_assert_msg(parent > 0, "no FastCGI parent");
  ck_assert_int_eq(kill(parent, SIGHUP), 0);
}

/* Polls GET queue/<course>/length with `authorization` until it answers
 * `status` (30 s at most, for a loaded machine). */
static void wait_for_status(const char *authorization, const char *course,
                            long status) {
  bw_test_client_t c = as(authorization);
  char path[128];
  double deadline = bw_test_now() + 30;
  long got = 0;

  snprintf(path, sizeof path, "/api/v1/queue/%s/length", course);
  while (bw_test_now() < deadline) {
    got = bw_test_http_call(&c, "GET", path, NULL, NULL);
    if (got == status)
      return;
    usleep(100 * 1000);
  }
  ck_abort_msg("%s with %s: still %ld after 30 s, wanted %ld", path,
               authorization, got, status);
}

START_TEST(test_courses_reload) {
  /* Under `make valgrind` the pool's parent is valgrind's process, which
   * bw_fault_fcgi_parent cannot tell from its workers. */
  if (getenv("BROADWAY_FCGI_WRAPPER") != NULL) {
    fprintf(stderr, "check_ondemand: reload test skipped under a wrapper\n");
    return;
  }
  /* A good file swaps in: cs241's token changes, a course appears. */
  ck_assert_int_eq(
      bw_test_write_file(courses_path, "{\"cs241\": [\"adm-241-new\"],\n"
                                       " \"cs374\": [\"adm-374\"]}\n"),
      0);
  sighup_pool();
  wait_for_status("Bearer adm-374", "cs374", 200);
  wait_for_status("Bearer adm-241-new", "cs241", 200);
  wait_for_status(ADMIN, "cs241", 401);
  wait_for_status(OTHER, "cs225", 401);

  /* A bad file keeps the running one, and the log says where it is bad. */
  ck_assert_int_eq(bw_test_write_file(courses_path,
                                      "{\"cs241\": [\"adm-241\"],\n"
                                      " \"cs225\": \"adm-225\"}\n"),
                   0);
  sighup_pool();
  {
    double deadline = bw_test_now() + 30;
    while (!bw_test_stack_logs_contain(bw_itest_stack(), ":2: cs225:") &&
           bw_test_now() < deadline)
      usleep(100 * 1000);
  }
  ck_assert(bw_test_stack_logs_contain(bw_itest_stack(), ":2: cs225:"));
  ck_assert(bw_test_stack_logs_contain(bw_itest_stack(),
                                       "keeping the running configuration"));
  wait_for_status("Bearer adm-374", "cs374", 200);
  wait_for_status("Bearer adm-241-new", "cs241", 200);
  wait_for_status(ADMIN, "cs241", 401);
  ck_assert(!bw_test_stack_logs_contain(bw_itest_stack(), "adm-241-new"));

  /* Back to the file the other tests use. */
  ck_assert_int_eq(bw_test_write_file(courses_path, COURSES), 0);
  sighup_pool();
  wait_for_status(ADMIN, "cs241", 200);
  wait_for_status("Bearer adm-374", "cs374", 401);
}
END_TEST

/* broadway-fcgi refuses to start on a bad courses file, naming it. */
START_TEST(test_courses_bad_at_start) {
  char dir[] = "/tmp/itest-courses-start-XXXXXX", bad[300], log[300],
       env_courses[400], env_data[400];
  char fcgi[512];
  size_t len = 0;
  char *text;

  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(bad, sizeof bad, "%s/courses.json", dir);
  snprintf(log, sizeof log, "%s/fcgi.log", dir);
  ck_assert_int_eq(bw_test_write_file(bad, "{\n  \"cs241\": [\"t\"],\n"
                                           "  \"cs 225\": [\"u\"]\n}\n"),
                   0);
  snprintf(fcgi, sizeof fcgi, "%s/broadway-fcgi", bw_fault_bin_dir());
  snprintf(env_courses, sizeof env_courses, "BROADWAY_COURSES=%s", bad);
  snprintf(env_data, sizeof env_data, "BROADWAY_DATA=%s/data", dir);
  {
    char *const argv[] = {fcgi, "-c", "", NULL};
    char *const env[] = {env_courses, env_data, "BROADWAY_TOKEN=t0k3n-x",
                         NULL};
    ck_assert_int_eq(bw_fault_run(argv, env, log), 1);
  }
  text = bw_test_read_file(log, &len);
  ck_assert_ptr_nonnull(text);
  ck_assert_msg(strstr(text, bad) != NULL &&
                    strstr(text, ":3: cs 225: a course id") != NULL,
                "log: %s", text);
  free(text);
  unlink(bad);
  unlink(log);
  {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
  }
}
END_TEST

static Suite *ondemand_suite(void) {
  Suite *s = suite_create("ondemand");
  TCase *bod = bw_itest_tcase(s, "ondemand", 120, true);
  TCase *iso = bw_itest_tcase(s, "isolation", 120, true);
  TCase *file = bw_itest_tcase(s, "courses_file", 180, true);

  tcase_add_test(bod, test_ondemand_replay);
  tcase_add_test(bod, test_ondemand_errors);
  tcase_add_test(iso, test_isolation_ids);
  tcase_add_test(iso, test_isolation_tokens);
  tcase_add_test(iso, test_cors_everywhere);
  tcase_add_test(file, test_courses_reload);
  tcase_add_test(file, test_courses_bad_at_start);
  return s;
}

int main(void) {
  char config[512];
  int fd = mkstemp(courses_path), rc;
  bw_test_stack_opts_t opts = {.label = "ondemand", .config_text = config};

  if (fd < 0 || write(fd, COURSES, strlen(COURSES)) != (ssize_t)strlen(COURSES))
    return 1;
  close(fd);
  snprintf(config, sizeof config, "courses_file = %s\n", courses_path);
  rc = bw_itest_main(ondemand_suite(), &opts);
  unlink(courses_path);
  return rc;
}
