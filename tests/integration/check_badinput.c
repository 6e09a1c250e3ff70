/* check_badinput.c - hostile and broken requests through nginx against the
 * real stack, and the security promises of issue 3.
 *
 * Every rejected request must get a 400 (413 for an oversized body) with a
 * JSend fail whose message names the offending field, and must change
 * nothing at all in the database: a fingerprint of every document of every
 * collection is taken before and compared after.  The stack runs with small
 * limits (BADINPUT_CONFIG) so each one can be crossed cheaply.
 *
 * Nothing a client sends may become a MongoDB operator or path: keys that
 * start with '$' or contain '.' are sent in every place a body can carry a
 * key (top level, students, the global env, stage envs and stage keys of
 * every pipeline, nested values, a result's info and logs, the wrapped
 * result form), and ids in every place an id can go (paths, worker_id). */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/fault.h"
#include "../lib/http.h"
#include "../lib/itest.h"
#include "../lib/stack.h"

#define MAX_BODY 65536
#define BADINPUT_CONFIG                                                        \
  "max_body = 65536\n"                                                         \
  "max_students = 5\n"                                                         \
  "max_stages = 3\n"                                                           \
  "max_env = 4\n"                                                              \
  "max_env_name = 32\n"                                                        \
  "max_env_value = 64\n"                                                       \
  "max_string = 64\n"                                                          \
  "max_timeout = 3600\n"                                                       \
  "max_info_bytes = 1024\n"                                                    \
  "max_logs_bytes = 1024\n"                                                    \
  "max_depth = 8\n"

#define STUDENT "{\"NETID\": \"a\"}"
#define STAGE "{\"image\": \"g\"}"
#define UNKNOWN_OID "0123456789abcdef01234567"
/* Wrong on purpose, and distinctive, so that a log holding it is found. */
#define WRONG_TOKEN "wrong-token-4f1d9c2a7e"

/* ---- sending and checking ----------------------------------------------- */

typedef struct fingerprint {
  char text[4096];
} fingerprint_t;

static void fingerprint(fingerprint_t *f) {
  bw_test_stack_t *s = bw_itest_stack();
  ck_assert_int_eq(bw_fault_db_fingerprint(bw_test_stack_mongo_uri(s),
                                           bw_test_stack_db_name(s), f->text,
                                           sizeof f->text),
                   0);
}

static void assert_unchanged(const fingerprint_t *before, const char *what) {
  fingerprint_t after;
  fingerprint(&after);
  ck_assert_msg(strcmp(before->text, after.text) == 0,
                "%s changed the database:\n before %s\n after  %s", what,
                before->text, after.text);
}

/* Sends a raw request (body of `len` bytes, NUL bytes allowed). */
static long send_raw(const char *method, const char *path, const char *body,
                     size_t len, const char *worker_id,
                     bw_test_http_resp_t *r) {
  char url[2048];
  snprintf(url, sizeof url, "%s%s", bw_test_stack_url(bw_itest_stack()), path);
  bw_test_http_req_t req = {.method = method,
                            .url = url,
                            .authorization =
                                bw_test_stack_token(bw_itest_stack()),
                            .worker_id = worker_id,
                            .body = body,
                            .body_len = len};
  return bw_test_http_send(&req, r);
}

/* The request must be refused with `status` and a JSend fail naming
 * `needle`, and must change nothing. */
static void expect_refused_len(int status, const char *method, const char *path,
                               const char *body, size_t len,
                               const char *worker_id, const char *needle) {
  fingerprint_t before;
  bw_test_http_resp_t r;
  fingerprint(&before);
  send_raw(method, path, body, len, worker_id, &r);
  ck_assert_msg(r.status == status, "%s %s %.300s: expected %d, got %ld: %s",
                method, path, body ? body : "", status, r.status, BW_BODY(&r));
  BW_ASSERT_FAIL(&r, status, needle);
  bw_test_http_resp_cleanup(&r);
  assert_unchanged(&before, body ? body : path);
}

static void expect_400(const char *method, const char *path, const char *body,
                       const char *worker_id, const char *needle) {
  expect_refused_len(400, method, path, body, body ? strlen(body) : 0,
                     worker_id, needle);
}

static void bad_run(const char *config, const char *needle) {
  expect_400("POST", "/api/v1/grading_run", config, NULL, needle);
}

static void bad_run_len(const char *config, size_t len, const char *needle) {
  expect_refused_len(400, "POST", "/api/v1/grading_run", config, len, NULL,
                     needle);
}

/* A run config with `students` and `extra` members spliced in. */
static char *run_with(const char *students, const char *extra) {
  size_t cap = strlen(students) + strlen(extra) + 128;
  char *text = malloc(cap);
  ck_assert_ptr_nonnull(text);
  snprintf(text, cap,
           "{\"students\": [%s], \"student_pipeline\": [" STAGE "]%s%s}",
           students, extra[0] ? ", " : "", extra);
  return text;
}

static void bad_run_parts(const char *students, const char *extra,
                          const char *needle) {
  char *config = run_with(students, extra);
  bad_run(config, needle);
  free(config);
}

/* A string of n copies of c. */
static char *repeat(char c, size_t n) {
  char *s = malloc(n + 1);
  ck_assert_ptr_nonnull(s);
  memset(s, c, n);
  s[n] = '\0';
  return s;
}

/* A registered grader holding one job of a started one-student run. */
static void holder(bw_test_client_t *c, char job[25]) {
  char run_id[25];
  bw_itest_client(c);
  ck_assert_int_eq(bw_test_http_register(c, "h", NULL), 200);
  char *config = run_with(STUDENT, "");
  ck_assert_int_eq(bw_test_http_create_and_start(c, config, run_id), 200);
  free(config);
  ck_assert_int_eq(bw_test_http_poll(c, NULL, job), 200);
}

static void bad_result(const bw_test_client_t *c, const char *job,
                       const char *body, const char *needle) {
  char path[128];
  snprintf(path, sizeof path, "/api/v1/grading_job/%s", job);
  expect_400("POST", path, body, c->worker_id, needle);
}

/* After the bad results, the holder's job still takes a good one. */
static void assert_job_still_held(const bw_test_client_t *c, const char *job) {
  bw_test_http_resp_t r;
  bw_test_http_get_job(c, job, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  ck_assert_str_eq(bw_test_json_str(bw_test_http_data(&r), "state"), "running");
  bw_test_http_resp_cleanup(&r);
  ck_assert_int_eq(bw_test_http_report(c, job, true, NULL), 200);
}

/* ---- keys that could become operators or paths -------------------------- */

START_TEST(test_dollar_keys_rejected_everywhere_in_a_run) {
  bad_run("{\"$where\": \"1\", \"students\": [" STUDENT
          "], \"student_pipeline\": [" STAGE "]}",
          "$where");
  bad_run_parts("{\"$gt\": \"a\"}", "", "students[0].$gt");
  bad_run_parts(STUDENT ", {\"NETID\": \"b\", \"$ne\": \"c\"}", "",
                "students[1].$ne");
  bad_run_parts("{\"A\": {\"$gt\": \"\"}}", "", "$gt");
  bad_run_parts(STUDENT, "\"env\": {\"$set\": \"x\"}", "env.$set");
  bad_run("{\"students\": [" STUDENT "], \"student_pipeline\": [{\"image\": "
          "\"g\", \"env\": {\"$x\": \"y\"}}]}",
          "student_pipeline[0].env.$x");
  bad_run("{\"students\": [" STUDENT "], \"student_pipeline\": [{\"image\": "
          "\"g\", \"$inc\": {\"n\": 1}}]}",
          "student_pipeline[0].$inc");
  bad_run_parts(STUDENT,
                "\"pre_processing_pipeline\": [{\"image\": \"p\", \"env\": "
                "{\"$unset\": \"\"}}]",
                "pre_processing_pipeline[0].env.$unset");
  bad_run_parts(STUDENT,
                "\"post_processing_pipeline\": [{\"image\": \"p\", "
                "\"$rename\": 1}]",
                "post_processing_pipeline[0].$rename");
  bad_run("{\"students\": [" STUDENT "], \"student_pipeline\": [{\"image\": "
          "\"g\", \"entry_point\": [{\"$gt\": 1}]}]}",
          "$gt");
}
END_TEST

START_TEST(test_dotted_keys_rejected_everywhere_in_a_run) {
  bad_run("{\"a.b\": 1, \"students\": [" STUDENT "], \"student_pipeline\": "
          "[" STAGE "]}",
          "a.b");
  bad_run_parts("{\"NET.ID\": \"a\"}", "", "students[0].NET.ID");
  bad_run_parts(STUDENT, "\"env\": {\"x.y\": \"z\"}", "x.y");
  bad_run("{\"students\": [" STUDENT "], \"student_pipeline\": [{\"image\": "
          "\"g\", \"env\": {\"A.B\": \"y\"}}]}",
          "A.B");
  bad_run_parts(STUDENT,
                "\"post_processing_pipeline\": [{\"image\": \"p\", \"env\": "
                "{\".\": \"\"}}]",
                "'.'");
  bad_run_parts("{\"A\": {\"b\": {\"c.d\": 1}}}", "", "c.d");
}
END_TEST

START_TEST(test_operator_and_dotted_keys_rejected_in_results) {
  bw_test_client_t c;
  char job[25];
  holder(&c, job);
  bad_result(&c, job, "{\"success\": true, \"info\": [{\"$set\": {\"a\": 1}}]}",
             "info[0].$set");
  bad_result(&c, job,
             "{\"success\": true, \"info\": [{}, {\"x\": [{\"$ne\": 1}]}]}",
             "$ne");
  bad_result(&c, job, "{\"success\": true, \"info\": [{\"a.b\": 1}]}", "a.b");
  bad_result(&c, job,
             "{\"success\": true, \"info\": [], \"logs\": {\"$x\": \"y\"}}",
             "logs.$x");
  bad_result(&c, job,
             "{\"success\": true, \"info\": [], \"logs\": {\"std.out\": \"\"}}",
             "std.out");
  bad_result(&c, job, "{\"$set\": {\"state\": \"succeeded\"}}", "$set");
  bad_result(&c, job,
             "{\"status\": \"ok\", \"data\": {\"success\": true, \"info\": "
             "[{\"k\": {\"$where\": \"1\"}}]}}",
             "$where");
  bad_result(&c, job,
             "{\"status\": \"ok\", \"data\": {\"success\": true, \"$inc\": 1, "
             "\"info\": []}}",
             "data.$inc");
  assert_job_still_held(&c, job);
}
END_TEST

/* ---- encodings ---------------------------------------------------------- */

START_TEST(test_invalid_utf8_rejected) {
  static const char *const bad[] = {
      "\xc3\x28",         /* bad continuation */
      "\xc0\xaf",         /* overlong '/' */
      "\xed\xa0\x80",     /* UTF-16 surrogate */
      "\xf4\x90\x80\x80", /* above U+10FFFF */
      "\xe2\x82",         /* truncated */
      "\xff",
  };
  char config[256];
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    snprintf(config, sizeof config,
             "{\"students\": [{\"NETID\": \"a%sb\"}], \"student_pipeline\": "
             "[" STAGE "]}",
             bad[i]);
    bad_run(config, "UTF-8");
    snprintf(config, sizeof config,
             "{\"students\": [{\"N%s\": \"a\"}], \"student_pipeline\": "
             "[" STAGE "]}",
             bad[i]);
    bad_run(config, "UTF-8");
  }
  /* escaped lone surrogates have no UTF-8 form either */
  bad_run_parts("{\"NETID\": \"\\ud800\"}", "", "body");
  bad_run_parts("{\"NETID\": \"\\udc00x\"}", "", "body");
  bw_test_client_t c;
  char job[25];
  holder(&c, job);
  bad_result(&c, job, "{\"success\": true, \"info\": [{\"k\": \"\xc3\x28\"}]}",
             "UTF-8");
  assert_job_still_held(&c, job);
}
END_TEST

START_TEST(test_nul_bytes_rejected_raw_and_escaped) {
  static const char raw_value[] =
      "{\"students\": [{\"NETID\": \"a\0b\"}], \"student_pipeline\": "
      "[" STAGE "]}";
  bad_run_len(raw_value, sizeof raw_value - 1, "NUL");
  static const char raw_key[] =
      "{\"students\": [{\"NE\0TID\": \"a\"}], \"student_pipeline\": "
      "[" STAGE "]}";
  bad_run_len(raw_key, sizeof raw_key - 1, "NUL");
  static const char raw_after[] =
      "{\"students\": [" STUDENT "], \"student_pipeline\": [" STAGE "]}\0";
  bad_run_len(raw_after, sizeof raw_after - 1, "NUL");
  bad_run_parts("{\"NETID\": \"a\\u0000b\"}", "", "NUL");
  bad_run_parts("{\"NETID\\u0000\": \"a\"}", "", "NUL");
  bad_run_parts(STUDENT, "\"env\": {\"A\": \"\\u0000\"}", "NUL");
  bad_run("{\"students\": [" STUDENT "], \"student_pipeline\": [{\"image\": "
          "\"g\\u0000--privileged\"}]}",
          "NUL");
  bw_test_client_t c;
  char job[25];
  holder(&c, job);
  bad_result(&c, job,
             "{\"success\": true, \"info\": [], \"logs\": {\"stdout\": "
             "\"x\\u0000y\"}}",
             "NUL");
  static const char raw_result[] = "{\"success\": true, \"info\": [{\"\0\": "
                                   "1}]}";
  char path[128];
  snprintf(path, sizeof path, "/api/v1/grading_job/%s", job);
  expect_refused_len(400, "POST", path, raw_result, sizeof raw_result - 1,
                     c.worker_id, "NUL");
  assert_job_still_held(&c, job);
}
END_TEST

START_TEST(test_malformed_json_rejected) {
  static const char *const bad[] = {
      "",
      "   ",
      "{",
      "{\"students\": [" STUDENT "], \"student_pipeline\": [" STAGE "]",
      "{'students': []}",
      "{\"students\": [" STUDENT "], \"student_pipeline\": [" STAGE "],}",
      "{\"students\": NaN}",
      "{\"students\": Infinity}",
      "{\"students\": [" STUDENT "] /* c */, \"student_pipeline\": []}",
      "{\"students\": [" STUDENT "], \"student_pipeline\": [" STAGE "]} x",
      "{\"students\": [" STUDENT "], \"student_pipeline\": [" STAGE "]}{}",
      "\xef\xbb\xbf{\"students\": []}", /* a BOM */
      "[]",
      "\"students\"",
      "42",
      "null",
      "{\"students\": [\"\\x41\"]}",
      "{\"students\": [\"\t\"]}", /* raw control character */
      "{\"students\": 01}",
      "{\"students\": -}",
      "{\"students\": tru}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    bad_run(bad[i], "body");
}
END_TEST

/* ---- types, numbers, nesting -------------------------------------------- */

START_TEST(test_wrong_types_rejected_naming_the_field) {
  bad_run_parts("{\"NETID\": {\"x\": \"y\"}}", "", "students[0].NETID");
  bad_run_parts("{\"NETID\": [\"a\"]}", "", "students[0].NETID");
  bad_run_parts("{\"NETID\": null}", "", "students[0].NETID");
  bad_run_parts("\"a\"", "", "students[0]");
  bad_run_parts(STUDENT, "\"env\": [\"A=1\"]", "env");
  bad_run_parts(STUDENT, "\"env\": {\"A\": {}}", "env.A");
  bad_run("{\"students\": [" STUDENT "], \"student_pipeline\": [{\"image\": "
          "\"g\", \"env\": {\"A\": 1}}]}",
          "student_pipeline[0].env.A");
  bad_run("{\"students\": [" STUDENT "], \"student_pipeline\": [{\"image\": "
          "\"g\", \"entry_point\": [\"sh\", 1]}]}",
          "student_pipeline[0].entry_point[1]");
  bad_run("{\"students\": [" STUDENT "], \"student_pipeline\": [{\"image\": "
          "[\"g\"]}]}",
          "student_pipeline[0].image");
  bad_run("{\"students\": [" STUDENT "], \"student_pipeline\": [{\"image\": "
          "\"g\", \"enable_networking\": 1}]}",
          "student_pipeline[0].enable_networking");
  bad_run("{\"students\": [" STUDENT "], \"student_pipeline\": [{\"image\": "
          "\"g\", \"host_name\": false}]}",
          "student_pipeline[0].host_name");
  bad_run_parts(STUDENT, "\"pre_processing_pipeline\": {\"image\": \"p\"}",
                "pre_processing_pipeline");
  bad_run_parts(STUDENT, "\"post_processing_pipeline\": [\"p\"]",
                "post_processing_pipeline[0]");

  bw_test_client_t c;
  char job[25];
  holder(&c, job);
  bad_result(&c, job, "{\"success\": 1, \"info\": []}", "success");
  bad_result(&c, job, "{\"success\": \"true\", \"info\": []}", "success");
  bad_result(&c, job, "{\"success\": true, \"info\": {}}", "info");
  bad_result(&c, job, "{\"success\": true, \"info\": [\"x\"]}", "info[0]");
  bad_result(&c, job, "{\"success\": true, \"info\": [], \"logs\": \"x\"}",
             "logs");
  bad_result(&c, job,
             "{\"success\": true, \"info\": [], \"logs\": {\"stdout\": 1}}",
             "logs.stdout");
  bad_result(&c, job,
             "{\"success\": true, \"info\": [], \"logs\": {\"other\": \"\"}}",
             "logs.other");
  bad_result(&c, job, "{\"success\": true}", "info");
  bad_result(&c, job, "{\"status\": 1, \"data\": {}}", "status");
  bad_result(&c, job, "{\"status\": \"ok\", \"data\": []}", "data");
  assert_job_still_held(&c, job);
}
END_TEST

START_TEST(test_huge_and_bad_numbers_rejected) {
  bad_run_parts("{\"N\": 1e400}", "", "number out of range");
  bad_run_parts("{\"N\": -1e400}", "", "number out of range");
  bad_run_parts("{\"N\": 123456789012345678901234567890}", "",
                "number out of range");
  static const char *const timeouts[] = {"0",     "-1",     "-0.0", "3601",
                                         "1e308", "\"30\"", "null", "true"};
  char config[256];
  for (size_t i = 0; i < sizeof timeouts / sizeof timeouts[0]; i++) {
    snprintf(config, sizeof config,
             "{\"students\": [" STUDENT "], \"student_pipeline\": [{\"image\": "
             "\"g\", \"timeout\": %s}]}",
             timeouts[i]);
    bad_run(config, "student_pipeline[0].timeout");
  }
  /* a number's text is held to the env value limit like a string */
  char *digits = repeat('1', 100);
  char students[256];
  snprintf(students, sizeof students, "{\"N\": 0.%s}", digits);
  bad_run_parts(students, "", "students[0].N");
  free(digits);
}
END_TEST

/* nested [[[...]]] `depth` deep inside a student value */
static char *nested(int depth) {
  size_t cap = (size_t)depth * 2 + 128;
  char *text = malloc(cap);
  ck_assert_ptr_nonnull(text);
  size_t len = (size_t)snprintf(text, cap, "{\"students\": [{\"A\": ");
  for (int i = 0; i < depth; i++)
    text[len++] = '[';
  for (int i = 0; i < depth; i++)
    text[len++] = ']';
  snprintf(text + len, cap - len, "}], \"student_pipeline\": [" STAGE "]}");
  return text;
}

START_TEST(test_deep_nesting_rejected) {
  char *nine = nested(6); /* + object, array, object = 9 > 8 */
  bad_run(nine, "nesting");
  free(nine);
  char *deep = nested(30000); /* no stack to blow */
  bad_run(deep, "nesting");
  free(deep);
  bw_test_client_t c;
  char job[25];
  holder(&c, job);
  bad_result(&c, job,
             "{\"success\": true, \"info\": [{\"a\": {\"b\": {\"c\": {\"d\": "
             "{\"e\": {\"f\": {\"g\": 1}}}}}}}]}",
             "nesting");
  assert_job_still_held(&c, job);
}
END_TEST

/* ---- configured limits -------------------------------------------------- */

START_TEST(test_counts_over_the_configured_limits_rejected) {
  bad_run_parts(STUDENT "," STUDENT "," STUDENT "," STUDENT "," STUDENT
                        "," STUDENT,
                "", "students");
  bad_run("{\"students\": [" STUDENT "], \"student_pipeline\": [" STAGE
          "," STAGE "," STAGE "," STAGE "]}",
          "student_pipeline");
  bad_run_parts(STUDENT,
                "\"pre_processing_pipeline\": [" STAGE "," STAGE "," STAGE
                "," STAGE "]",
                "pre_processing_pipeline");
  bad_run_parts(STUDENT,
                "\"post_processing_pipeline\": [" STAGE "," STAGE "," STAGE
                "," STAGE "]",
                "post_processing_pipeline");
  const char *five = "{\"A\": \"1\", \"B\": \"1\", \"C\": \"1\", \"D\": "
                     "\"1\", \"E\": \"1\"}";
  bad_run_parts(five, "", "students[0]");
  char extra[256];
  snprintf(extra, sizeof extra, "\"env\": %s", five);
  bad_run_parts(STUDENT, extra, "env");
  char config[512];
  snprintf(config, sizeof config,
           "{\"students\": [" STUDENT "], \"student_pipeline\": [{\"image\": "
           "\"g\", \"env\": %s}]}",
           five);
  bad_run(config, "student_pipeline[0].env");
}
END_TEST

START_TEST(test_lengths_over_the_configured_limits_rejected) {
  char *long_value = repeat('v', 65), *long_name = repeat('N', 33);
  char *long_string = repeat('s', 65), *half = repeat('h', 40);
  char part[512];
  snprintf(part, sizeof part, "{\"A\": \"%s\"}", long_value);
  bad_run_parts(part, "", "students[0].A");
  snprintf(part, sizeof part, "{\"%s\": \"a\"}", long_name);
  bad_run_parts(part, "", "students[0]");
  snprintf(part, sizeof part, "\"env\": {\"G\": \"%s\"}", long_value);
  bad_run_parts(STUDENT, part, "env.G");
  char config[1024];
  snprintf(config, sizeof config,
           "{\"students\": [" STUDENT "], \"student_pipeline\": [{\"image\": "
           "\"%s\"}]}",
           long_string);
  bad_run(config, "student_pipeline[0].image");
  snprintf(config, sizeof config,
           "{\"students\": [" STUDENT "], \"student_pipeline\": [{\"image\": "
           "\"g\", \"entry_point\": [\"%s\"]}]}",
           long_string);
  bad_run(config, "student_pipeline[0].entry_point[0]");
  snprintf(config, sizeof config,
           "{\"students\": [" STUDENT "], \"student_pipeline\": [{\"image\": "
           "\"g\", \"host_name\": \"%s\"}]}",
           long_string);
  bad_run(config, "student_pipeline[0].host_name");
  /* each value fits, but the expansion would not */
  snprintf(config, sizeof config,
           "{\"students\": [{\"A\": \"%s\"}], \"student_pipeline\": "
           "[{\"image\": \"g\", \"env\": {\"X\": \"$A${A}\"}}]}",
           half);
  bad_run(config, "student_pipeline[0].env.X");
  free(long_value);
  free(long_name);
  free(long_string);
  free(half);
}
END_TEST

START_TEST(test_info_and_logs_over_their_caps_rejected) {
  bw_test_client_t c;
  char job[25], body[4096];
  char *big = repeat('i', 1100);
  holder(&c, job);
  snprintf(body, sizeof body,
           "{\"success\": true, \"info\": [{\"out\": \"%s\"}]}", big);
  bad_result(&c, job, body, "info");
  snprintf(body, sizeof body,
           "{\"success\": true, \"info\": [], \"logs\": {\"stdout\": \"%s\"}}",
           big);
  bad_result(&c, job, body, "logs");
  snprintf(body, sizeof body,
           "{\"status\": \"ok\", \"data\": {\"success\": true, \"info\": [], "
           "\"logs\": {\"stderr\": \"%s\"}}}",
           big);
  bad_result(&c, job, body, "logs");
  free(big);
  assert_job_still_held(&c, job);
}
END_TEST

/* 413 from nginx for a body over max_body, sized or chunked. */
static void expect_413(const char *path, const char *worker_id, bool chunked) {
  size_t len = MAX_BODY + 4096;
  char *body = repeat(' ', len);
  memcpy(body, "{\"students\": \"", 14);
  char url[512];
  snprintf(url, sizeof url, "%s%s", bw_test_stack_url(bw_itest_stack()), path);
  bw_test_http_req_t req = {.method = "POST",
                            .url = url,
                            .authorization =
                                bw_test_stack_token(bw_itest_stack()),
                            .worker_id = worker_id,
                            .body = body,
                            .body_len = len,
                            .chunked = chunked};
  fingerprint_t before;
  fingerprint(&before);
  bw_test_http_resp_t r;
  bw_test_http_send(&req, &r);
  BW_ASSERT_FAIL(&r, 413, "body");
  bw_test_http_resp_cleanup(&r);
  assert_unchanged(&before, "an oversized body");
  free(body);
}

START_TEST(test_oversize_body_413) {
  expect_413("/api/v1/grading_run", NULL, false);
  expect_413("/api/v1/grading_run", NULL, true);
  bw_test_client_t c;
  char job[25], path[128];
  holder(&c, job);
  snprintf(path, sizeof path, "/api/v1/grading_job/%s", job);
  expect_413(path, c.worker_id, false);
  expect_413(path, c.worker_id, true);
  assert_job_still_held(&c, job);
}
END_TEST

/* ---- ids ---------------------------------------------------------------- */

static const char *const bad_ids[] = {
    "0123456789abcdef0123456",   /* 23 */
    "0123456789abcdef012345678", /* 25 */
    "0123456789abcdef0123456g",
    "%24where",
    "%7B%22%24gt%22%3A%22%22%7D", /* {"$gt":""} */
    "0123456789abcdef01234567%20",
    "-1",
    "ObjectId(%220123456789abcdef01234567%22)",
};

START_TEST(test_malformed_path_ids_rejected_before_any_query) {
  bw_test_client_t c;
  char job[25], path[256];
  holder(&c, job);
  for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
    snprintf(path, sizeof path, "/api/v1/grading_run/%s", bad_ids[i]);
    expect_400("POST", path, NULL, NULL, "grading_run_id");
    expect_400("GET", path, NULL, NULL, "grading_run_id");
    snprintf(path, sizeof path, "/api/v1/grading_job/%s", bad_ids[i]);
    expect_400("GET", path, NULL, NULL, "job_id");
    expect_400("POST", path, "{\"success\": true, \"info\": []}", c.worker_id,
               "job_id");
  }
  /* a NUL in the path: nginx itself refuses it (400, any message) */
  expect_refused_len(400, "GET",
                     "/api/v1/grading_run/0123456789abcdef01234567"
                     "%00",
                     NULL, 0, NULL, "");
  expect_refused_len(400, "GET", "/api/v1/grading_job/%00", NULL, 0, NULL, "");
  assert_job_still_held(&c, job);
}
END_TEST

static const char *const bad_worker_ids[] = {
    "0123456789abcdef0123456",  "0123456789abcdef012345678",
    "0123456789abcdef0123456z", "$where",
    "{\"$gt\": \"\"}",          "0123456789abcdef01234567 x",
    "../0123456789abcdef01234",
};

/* Every grader call checks its worker id: malformed 400, unknown 401. */
START_TEST(test_worker_id_checked_on_every_grader_call) {
  bw_test_client_t c;
  char job[25], report[128];
  holder(&c, job);
  snprintf(report, sizeof report, "/api/v1/grading_job/%s", job);
  const char *ok = "{\"success\": true, \"info\": []}";
  struct {
    const char *method, *path, *body;
  } calls[] = {{"GET", "/api/v1/grading_job", NULL},
               {"POST", report, ok},
               {"POST", "/api/v1/heartbeat", NULL}};
  for (size_t k = 0; k < 3; k++) {
    expect_400(calls[k].method, calls[k].path, calls[k].body, NULL,
               "worker_id");
    for (size_t i = 0; i < sizeof bad_worker_ids / sizeof bad_worker_ids[0];
         i++)
      expect_400(calls[k].method, calls[k].path, calls[k].body,
                 bad_worker_ids[i], "worker_id");
    expect_refused_len(401, calls[k].method, calls[k].path, calls[k].body,
                       calls[k].body ? strlen(calls[k].body) : 0, UNKNOWN_OID,
                       "worker_id");
  }
  /* a registered grader that does not hold the job */
  bw_test_client_t other;
  bw_itest_client(&other);
  ck_assert_int_eq(bw_test_http_register(&other, "o", NULL), 200);
  expect_refused_len(409, "POST", report, ok, strlen(ok), other.worker_id, "");
  assert_job_still_held(&c, job);
}
END_TEST

START_TEST(test_hostname_query_cannot_inject) {
  static const char *const bad[] = {
      "?hostname=%24where", "?hostname=a%00b",
      "?hostname=a%2Fb",    "?hostname=%7B%22%24gt%22%3A1%7D",
      "?hostname=",
  };
  char path[256];
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    snprintf(path, sizeof path, "/api/v1/worker_register%s", bad[i]);
    expect_400("GET", path, NULL, NULL, "hostname");
  }
}
END_TEST

/* ---- security ----------------------------------------------------------- */

static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *text = malloc((size_t)n + 1);
  ck_assert_ptr_nonnull(text);
  size_t got = fread(text, 1, (size_t)n, f);
  text[got] = '\0';
  fclose(f);
  return text;
}

/* Lines of `text` holding `needle`, except the run script's ready line
 * (which prints the token to the operator's terminal by design). */
static int lines_with(const char *text, const char *needle, char *first,
                      size_t cap) {
  int n = 0;
  for (const char *line = text; line && *line;) {
    const char *end = strchr(line, '\n');
    size_t len = end ? (size_t)(end - line) : strlen(line);
    char *copy = strndup(line, len);
    if (strstr(copy, needle) && !strstr(copy, "broadway: ready on ")) {
      if (n++ == 0)
        snprintf(first, cap, "%s", copy);
    }
    free(copy);
    line = end ? end + 1 : NULL;
  }
  return n;
}

static void assert_not_in_file(const char *path, const char *secret,
                               const char *what) {
  char *text = read_file(path), first[512] = "";
  if (!text)
    return;
  int n = lines_with(text, secret, first, sizeof first);
  free(text);
  ck_assert_msg(n == 0, "%s found in %s (%d lines), e.g.: %s", what, path, n,
                first);
}

START_TEST(test_tokens_never_logged) {
  bw_test_stack_t *s = bw_itest_stack();
  const char *token = bw_test_stack_token(s);
  char url[512], bearer[300];
  snprintf(url, sizeof url, "%s/api/v1/worker_register?hostname=x",
           bw_test_stack_url(s));
  snprintf(bearer, sizeof bearer, "Bearer %s", WRONG_TOKEN);
  const char *auths[] = {token, WRONG_TOKEN, bearer, NULL};
  for (int i = 0; i < 4; i++) {
    bw_test_http_req_t req = {
        .method = "GET", .url = url, .authorization = auths[i]};
    bw_test_http_resp_t r;
    bw_test_http_send(&req, &r);
    ck_assert_int_eq(r.status, i == 0 ? 200 : 401);
    bw_test_http_resp_cleanup(&r);
  }
  bw_test_sleep_ms(500); /* let the logs be written */
  char dir[1024], path[2048];
  snprintf(dir, sizeof dir, "%s/log", bw_test_stack_data_dir(s));
  DIR *d = opendir(dir);
  ck_assert_msg(d != NULL, "no log dir %s", dir);
  int files = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.')
      continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    assert_not_in_file(path, token, "the cluster token");
    assert_not_in_file(path, WRONG_TOKEN, "a wrong token");
    files++;
  }
  closedir(d);
  ck_assert_int_gt(files, 0);
  snprintf(path, sizeof path, "%s/stack.log", bw_test_stack_data_dir(s));
  assert_not_in_file(path, token, "the cluster token");
  assert_not_in_file(path, WRONG_TOKEN, "a wrong token");
}
END_TEST

/* Files the test harness itself wrote into the data dir. */
static bool written_by_the_test(const char *name) {
  return strcmp(name, "stack.log") == 0 || strcmp(name, "test.conf") == 0;
}

static void assert_private_tree(const char *path, int depth) {
  struct stat st;
  ck_assert_msg(lstat(path, &st) == 0, "%s: %s", path, strerror(errno));
  if (S_ISLNK(st.st_mode))
    return;
  ck_assert_msg((st.st_mode & 0077) == 0,
                "%s is open to other users (mode %03o)", path,
                st.st_mode & 0777);
  if (!S_ISDIR(st.st_mode) || depth > 4)
    return;
  DIR *d = opendir(path);
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
        (depth == 0 && written_by_the_test(e->d_name)))
      continue;
    char child[4096];
    snprintf(child, sizeof child, "%s/%s", path, e->d_name);
    assert_private_tree(child, depth + 1);
  }
  if (d)
    closedir(d);
}

START_TEST(test_socket_and_data_dir_private) {
  const char *data = bw_test_stack_data_dir(bw_itest_stack());
  char sock[1100];
  struct stat st;
  snprintf(sock, sizeof sock, "%s/run/fcgi.sock", data);
  ck_assert_msg(stat(sock, &st) == 0 && S_ISSOCK(st.st_mode),
                "no FastCGI socket at %s", sock);
  ck_assert_msg((st.st_mode & 0077) == 0, "%s has mode %03o", sock,
                st.st_mode & 0777);
  assert_private_tree(data, 0);
}
END_TEST

START_TEST(test_nginx_hides_its_version) {
  bw_test_stack_t *s = bw_itest_stack();
  const char *paths[] = {"/api/v1/worker_register", "/", "/api/v1/nothing",
                         "/api/v1/grading_run/xyz"};
  char url[512], server[256];
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
    snprintf(url, sizeof url, "%s%s", bw_test_stack_url(s), paths[i]);
    long status = bw_fault_http_header(url, bw_test_stack_token(s), "Server",
                                       server, sizeof server);
    ck_assert_msg(status > 0, "no answer from %s", url);
    ck_assert_msg(strpbrk(server, "0123456789") == NULL,
                  "Server header \"%s\" shows a version (%s)", server, url);
  }
}
END_TEST

START_TEST(test_only_api_is_forwarded) {
  static const char *const paths[] = {
      "/web/index.html",
      "/nginx.conf",
      "/run/nginx.conf",
      "/../token",
      "/api",
      "/api../api/v1/heartbeat",
      "/token",
      "/fcgi.sock",
      "/%2e%2e/run/nginx.conf",
      "/log/fcgi.log",
  };
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
    bw_test_http_resp_t r;
    send_raw("GET", paths[i], NULL, 0, NULL, &r);
    ck_assert_msg(r.status == 404 || r.status == 400,
                  "%s: expected 404, got %ld", paths[i], r.status);
    BW_ASSERT_JSON(&r);
    ck_assert_msg(!r.body ||
                      (!strstr(r.body, "fastcgi") &&
                       !strstr(r.body, bw_test_stack_token(bw_itest_stack()))),
                  "%s leaks a file: %s", paths[i], BW_BODY(&r));
    bw_test_http_resp_cleanup(&r);
  }
}
END_TEST

/* A client that sends half a request header and then nothing is cut off
 * (nginx's client_header_timeout) instead of holding a connection. */
START_TEST(test_slow_client_is_cut_off) {
  int fd = bw_test_connect_local(bw_test_stack_port(bw_itest_stack()));
  ck_assert_int_ge(fd, 0);
  const char *half = "GET /api/v1/heartbeat HTTP/1.1\r\nHost: x\r\n";
  ck_assert_int_eq(write(fd, half, strlen(half)), (ssize_t)strlen(half));
  double t0 = bw_test_now();
  char buf[512];
  ssize_t n = 1;
  while (n > 0 && bw_test_now() - t0 < 40) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 1000) > 0)
      n = read(fd, buf, sizeof buf);
  }
  close(fd);
  double took = bw_test_now() - t0;
  fprintf(stderr,
          "badinput: a stalled request header was cut off after "
          "%.1f s\n",
          took);
  ck_assert_msg(n <= 0, "a stalled client still held its connection after "
                        "40 s");
}
END_TEST

/* ---- suite -------------------------------------------------------------- */

static Suite *badinput_suite(void) {
  Suite *s = suite_create("badinput");
  TCase *tc = bw_itest_tcase(s, "rejected", 120, true);
  tcase_add_test(tc, test_dollar_keys_rejected_everywhere_in_a_run);
  tcase_add_test(tc, test_dotted_keys_rejected_everywhere_in_a_run);
  tcase_add_test(tc, test_operator_and_dotted_keys_rejected_in_results);
  tcase_add_test(tc, test_invalid_utf8_rejected);
  tcase_add_test(tc, test_nul_bytes_rejected_raw_and_escaped);
  tcase_add_test(tc, test_malformed_json_rejected);
  tcase_add_test(tc, test_wrong_types_rejected_naming_the_field);
  tcase_add_test(tc, test_huge_and_bad_numbers_rejected);
  tcase_add_test(tc, test_deep_nesting_rejected);
  tcase_add_test(tc, test_counts_over_the_configured_limits_rejected);
  tcase_add_test(tc, test_lengths_over_the_configured_limits_rejected);
  tcase_add_test(tc, test_info_and_logs_over_their_caps_rejected);
  tcase_add_test(tc, test_oversize_body_413);
  tcase_add_test(tc, test_malformed_path_ids_rejected_before_any_query);
  tcase_add_test(tc, test_worker_id_checked_on_every_grader_call);
  tcase_add_test(tc, test_hostname_query_cannot_inject);

  /* last: the logs hold everything above */
  tc = bw_itest_tcase(s, "security", 120, false);
  tcase_add_test(tc, test_socket_and_data_dir_private);
  tcase_add_test(tc, test_nginx_hides_its_version);
  tcase_add_test(tc, test_only_api_is_forwarded);
  tcase_add_test(tc, test_slow_client_is_cut_off);
  tcase_add_test(tc, test_tokens_never_logged);
  return s;
}

int main(void) {
  bw_test_stack_opts_t opts = {
      .label = "badinput", .workers = 2, .config_text = BADINPUT_CONFIG};
  return bw_itest_main(badinput_suite(), &opts);
}
