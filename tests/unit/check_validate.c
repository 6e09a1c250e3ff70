/* check_validate.c - common/validate.c: every rejection of a grading run
 * config and of a grader's result, with its exact message (the JSON path of
 * the field), the limits of bw_config_t, number -> string normalisation,
 * reference checks per student, and the single-value validators. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "validate.h"
#include "../lib/suite.h"

#define STAGE "{\"image\":\"img\"}"
#define PIPE "\"student_pipeline\":[" STAGE "]"
#define ONE_STUDENT "\"students\":[{\"NETID\":\"a\"}]"

static bw_config_t cfg;

static void setup(void) {
  bw_config_init(&cfg);
}

static json_object *parse(const char *text) {
  json_object *o = json_tokener_parse(text);
  ck_assert_msg(o != NULL, "bad test JSON: %s", text);
  return o;
}

/* A run body as the API parses it: the students kept as text. */
typedef struct run_body {
  json_object *body;
  bw_json_items_t *students;
} run_body_t;

static run_body_t parse_run(const char *text) {
  run_body_t r;
  bw_error_t error = {0};
  int rc = bw_json_parse_body_lazy(text, strlen(text), cfg.max_depth,
                                   "students", &r.body, &r.students, &error);
  ck_assert_msg(rc == 0, "bad test JSON: %s (%s)", text, error.message);
  return r;
}

static void run_body_cleanup(run_body_t *r) {
  json_object_put(r->body);
  bw_json_items_free(r->students);
}

static void expect_run_error_code(const char *body, int code,
                                  const char *message) {
  run_body_t in = parse_run(body);
  json_object *out = (json_object *)1;
  bw_error_t error = {0};
  int rc = bw_validate_run_config(in.body, in.students, &cfg, &out, &error);
  ck_assert_msg(rc == code, "rc %d, message: %s", rc, error.message);
  ck_assert_ptr_null(out);
  ck_assert_str_eq(error.message, message);
  run_body_cleanup(&in);
}

static void expect_run_error(const char *body, const char *message) {
  expect_run_error_code(body, BW_EINVAL, message);
}

/* What the run keeps, as compact JSON (static): the config validation
 * returns, with "students" (in the body's place) as the jobs get them
 * (bw_validate_env_text of each). */
static const char *run_ok(const char *body) {
  static char text[4096];
  run_body_t in = parse_run(body);
  json_object *out = NULL, *shown = json_object_new_object(), *list;
  bw_error_t error = {0};
  int rc = bw_validate_run_config(in.body, in.students, &cfg, &out, &error);
  ck_assert_msg(rc == 0, "%s -> %s", body, error.message);
  ck_assert(!json_object_object_get_ex(out, "students", NULL));
  json_object_object_foreach(in.body, key, value) {
    (void)value;
    if (strcmp(key, "students") != 0) {
      json_object_object_add(shown, key,
                             json_object_get(json_object_object_get(out, key)));
      continue;
    }
    list = json_object_new_array();
    for (size_t i = 0; i < bw_json_items_count(in.students); i++) {
      json_object *student;
      ck_assert_int_eq(bw_json_items_get(in.students, i, &student, &error), 0);
      json_object_array_add(list, bw_validate_env_text(student));
      json_object_put(student);
    }
    json_object_object_add(shown, "students", list);
  }
  snprintf(text, sizeof text, "%s",
           json_object_to_json_string_ext(
               shown, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
  json_object_put(shown);
  json_object_put(out);
  run_body_cleanup(&in);
  return text;
}

static void expect_result_error(const char *body, const char *message) {
  json_object *in = parse(body), *out = (json_object *)1;
  bw_error_t error = {0};
  ck_assert_int_eq(bw_validate_result(in, &cfg, &out, &error), BW_EINVAL);
  ck_assert_ptr_null(out);
  ck_assert_str_eq(error.message, message);
  json_object_put(in);
}

static void expect_result(const char *body, const char *normalised) {
  json_object *in = parse(body), *out = NULL;
  bw_error_t error = {0};
  int rc = bw_validate_result(in, &cfg, &out, &error);
  ck_assert_msg(rc == 0, "%s -> %s", body, error.message);
  ck_assert_str_eq(json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN),
                   normalised);
  json_object_put(out);
  json_object_put(in);
}

/* ---- accepted configs ------------------------------------------------- */

/* The limits a stage that gives none is kept with (broadway.conf). */
#define DEFAULT_LIMITS                                                         \
  "\"memory\":1073741824,\"cpus\":1.0,\"pids\":256,\"disk\":1073741824,"         \
  "\"output\":67108864"
#define SOME_LIMITS                                                            \
  "\"memory\":\"512m\",\"cpus\":0.5,\"pids\":64,\"disk\":1048576,"              \
  "\"output\":\"64K\""

START_TEST(test_minimal_config) {
  ck_assert_str_eq(run_ok("{" ONE_STUDENT "," PIPE "}"),
                   "{\"students\":[{\"NETID\":\"a\"}],"
                   "\"student_pipeline\":[{\"image\":\"img\"," DEFAULT_LIMITS
                   "}]}");
}
END_TEST

START_TEST(test_full_config_stages_copied_as_given) {
  const char *body =
      "{\"students\":[{\"NETID\":\"a\"},{\"NETID\":\"b\"}],"
      "\"student_pipeline\":[{\"image\":\"grader\",\"env\":{\"N\":\"$NETID\"},"
      "\"entry_point\":[\"/bin/sh\",\"-c\",\"make\"],"
      "\"enable_networking\":true,\"host_name\":\"box\",\"timeout\":2.5,"
      SOME_LIMITS "}],"
      "\"pre_processing_pipeline\":[{\"image\":\"pre\",\"timeout\":86400,"
      DEFAULT_LIMITS "}],"
      "\"post_processing_pipeline\":[{\"image\":\"post\",\"env\":{\"A\":"
      "\"\"}," SOME_LIMITS "}],"
      "\"env\":{\"ASSIGNMENT\":\"mp1\"}}";
  ck_assert_str_eq(run_ok(body), body);
}
END_TEST

START_TEST(test_numbers_and_booleans_become_strings) {
  ck_assert_str_eq(
      run_ok("{\"students\":[{\"A\":12,\"B\":1.50,\"C\":true,\"D\":false,"
             "\"E\":-3,\"F\":1e5,\"G\":\"s\"}]," PIPE
             ",\"env\":{\"N\":7,\"T\":true}}"),
      "{\"students\":[{\"A\":\"12\",\"B\":\"1.50\",\"C\":\"true\","
      "\"D\":\"false\",\"E\":\"-3\",\"F\":\"1e5\",\"G\":\"s\"}],"
      "\"student_pipeline\":[{\"image\":\"img\"," DEFAULT_LIMITS "}],"
      "\"env\":{\"N\":\"7\",\"T\":\"true\"}}");
}
END_TEST

/* Validation changes nothing it is given: the students read after it, as
 * posted (what pre/post jobs get), numbers and all. */
START_TEST(test_input_left_untouched) {
  static const char *bodies[] = {
      "{\"students\":[{\"A\":12},{\"A\":\"x\"},{\"A\":true}]," PIPE
      ",\"env\":{\"N\":7}}",
      "{\"students\":[{\"A\":12},{\"A\":[]}]," PIPE ",\"env\":{\"N\":7}}",
      "{\"students\":[{\"A\":12}]," PIPE ",\"env\":{\"N\":7,\"M\":{}}}",
  };
  for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
    run_body_t in = parse_run(bodies[i]);
    json_object *out = NULL, *student;
    char *before = strdup(json_object_to_json_string(in.body));
    bw_error_t error;
    int rc = bw_validate_run_config(in.body, in.students, &cfg, &out, &error);
    ck_assert_int_eq(rc, i == 0 ? 0 : BW_EINVAL);
    ck_assert_str_eq(json_object_to_json_string(in.body), before);
    ck_assert_int_eq(bw_json_items_get(in.students, 0, &student, &error), 0);
    ck_assert_str_eq(json_object_to_json_string_ext(student, 0), "{\"A\":12}");
    json_object_put(student);
    if (rc == 0)
      ck_assert_str_eq(
          json_object_to_json_string_ext(json_object_object_get(out, "env"), 0),
          "{\"N\":\"7\"}");
    free(before);
    json_object_put(out);
    run_body_cleanup(&in);
  }
}
END_TEST

START_TEST(test_empty_student_allowed) {
  run_ok("{\"students\":[{}]," PIPE "}");
}
END_TEST

/* ---- top level -------------------------------------------------------- */

START_TEST(test_body_not_object) {
  json_object *in = parse("[1]"), *out = (json_object *)1;
  bw_error_t error = {0};
  ck_assert_int_eq(bw_validate_run_config(in, NULL, &cfg, &out, &error),
                   BW_EINVAL);
  ck_assert_ptr_null(out);
  ck_assert_str_eq(error.message, "body: expected a JSON object");
  json_object_put(in);
}
END_TEST

START_TEST(test_unknown_top_level_key) {
  expect_run_error("{" ONE_STUDENT "," PIPE ",\"foo\":1}", "foo: unknown key");
  expect_run_error("{\"pipeline\":[]}", "pipeline: unknown key");
}
END_TEST

START_TEST(test_students_required) {
  expect_run_error("{" PIPE "}", "students: required");
}
END_TEST

START_TEST(test_students_type) {
  expect_run_error("{\"students\":{}," PIPE "}", "students: expected an array");
  expect_run_error("{\"students\":\"a\"," PIPE "}",
                   "students: expected an array");
  expect_run_error("{\"students\":null," PIPE "}",
                   "students: expected an array");
}
END_TEST

START_TEST(test_students_empty) {
  expect_run_error("{\"students\":[]," PIPE "}",
                   "students: at least 1 student required");
}
END_TEST

START_TEST(test_student_not_object) {
  expect_run_error("{\"students\":[\"waf\"]," PIPE "}",
                   "students[0]: expected an object");
  expect_run_error("{\"students\":[{},[]]," PIPE "}",
                   "students[1]: expected an object");
  expect_run_error("{\"students\":[{},{},null]," PIPE "}",
                   "students[2]: expected an object");
}
END_TEST

START_TEST(test_student_env_names) {
  expect_run_error("{\"students\":[{\"1X\":\"a\"}]," PIPE "}",
                   "students[0].1X: invalid environment variable name");
  expect_run_error("{\"students\":[{\"A-B\":\"a\"}]," PIPE "}",
                   "students[0].A-B: invalid environment variable name");
  expect_run_error("{\"students\":[{\"\":\"a\"}]," PIPE "}",
                   "students[0].: invalid environment variable name");
  expect_run_error("{\"students\":[{\"\xc3\xa9\":\"a\"}]," PIPE "}",
                   "students[0].\xc3\xa9: invalid environment variable name");
}
END_TEST

START_TEST(test_student_env_values) {
  expect_run_error("{\"students\":[{},{\"X\":null}]," PIPE "}",
                   "students[1].X: expected a string");
  expect_run_error("{\"students\":[{\"X\":{}}]," PIPE "}",
                   "students[0].X: expected a string");
  expect_run_error("{\"students\":[{\"X\":[\"a\"]}]," PIPE "}",
                   "students[0].X: expected a string");
}
END_TEST

START_TEST(test_global_env) {
  expect_run_error("{" ONE_STUDENT "," PIPE ",\"env\":[]}",
                   "env: expected an object");
  expect_run_error("{" ONE_STUDENT "," PIPE ",\"env\":null}",
                   "env: expected an object");
  expect_run_error("{" ONE_STUDENT "," PIPE ",\"env\":{\"X\":null}}",
                   "env.X: expected a string");
  expect_run_error("{" ONE_STUDENT "," PIPE ",\"env\":{\"1X\":\"a\"}}",
                   "env.1X: invalid environment variable name");
}
END_TEST

/* ---- pipelines and stages --------------------------------------------- */

START_TEST(test_student_pipeline_required) {
  expect_run_error("{" ONE_STUDENT "}", "student_pipeline: required");
  expect_run_error("{" ONE_STUDENT ",\"student_pipeline\":{}}",
                   "student_pipeline: expected an array");
  expect_run_error("{" ONE_STUDENT ",\"student_pipeline\":[]}",
                   "student_pipeline: at least 1 stage required");
}
END_TEST

START_TEST(test_optional_pipelines_not_empty) {
  expect_run_error("{" ONE_STUDENT "," PIPE ",\"pre_processing_pipeline\":[]}",
                   "pre_processing_pipeline: at least 1 stage if given");
  expect_run_error("{" ONE_STUDENT "," PIPE ",\"post_processing_pipeline\":[]}",
                   "post_processing_pipeline: at least 1 stage if given");
  expect_run_error("{" ONE_STUDENT "," PIPE
                   ",\"post_processing_pipeline\":\"x\"}",
                   "post_processing_pipeline: expected an array");
  expect_run_error("{" ONE_STUDENT "," PIPE
                   ",\"pre_processing_pipeline\":null}",
                   "pre_processing_pipeline: expected an array");
}
END_TEST

START_TEST(test_stage_not_object) {
  expect_run_error("{" ONE_STUDENT ",\"student_pipeline\":[\"img\"]}",
                   "student_pipeline[0]: expected an object");
  expect_run_error("{" ONE_STUDENT "," PIPE
                   ",\"pre_processing_pipeline\":[" STAGE ",7]}",
                   "pre_processing_pipeline[1]: expected an object");
}
END_TEST

START_TEST(test_stage_unknown_key) {
  expect_run_error("{" ONE_STUDENT
                   ",\"student_pipeline\":[{\"image\":\"i\",\"foo\":1}]}",
                   "student_pipeline[0].foo: unknown key");
  expect_run_error("{" ONE_STUDENT
                   ",\"student_pipeline\":[{\"image\":\"i\",\"Image\":1}]}",
                   "student_pipeline[0].Image: unknown key");
}
END_TEST

START_TEST(test_stage_image) {
  expect_run_error("{" ONE_STUDENT ",\"student_pipeline\":[{}]}",
                   "student_pipeline[0].image: required");
  expect_run_error("{" ONE_STUDENT ",\"student_pipeline\":[" STAGE
                   ",{\"timeout\":1}]}",
                   "student_pipeline[1].image: required");
  expect_run_error("{" ONE_STUDENT ",\"student_pipeline\":[{\"image\":1}]}",
                   "student_pipeline[0].image: expected a string");
  expect_run_error("{" ONE_STUDENT ",\"student_pipeline\":[{\"image\":\"\"}]}",
                   "student_pipeline[0].image: must not be empty");
}
END_TEST

START_TEST(test_stage_env) {
  expect_run_error("{" ONE_STUDENT
                   ",\"student_pipeline\":[{\"image\":\"i\",\"env\":[]}]}",
                   "student_pipeline[0].env: expected an object");
  expect_run_error(
      "{" ONE_STUDENT
      ",\"student_pipeline\":[{\"image\":\"i\",\"env\":{\"X\":1}}]}",
      "student_pipeline[0].env.X: expected a string");
  expect_run_error(
      "{" ONE_STUDENT
      ",\"student_pipeline\":[{\"image\":\"i\",\"env\":{\"X\":true}}]}",
      "student_pipeline[0].env.X: expected a string");
  expect_run_error(
      "{" ONE_STUDENT
      ",\"student_pipeline\":[{\"image\":\"i\",\"env\":{\"1X\":\"a\"}}]}",
      "student_pipeline[0].env.1X: invalid environment variable name");
}
END_TEST

START_TEST(test_stage_entry_point) {
  expect_run_error(
      "{" ONE_STUDENT
      ",\"student_pipeline\":[{\"image\":\"i\",\"entry_point\":\"sh\"}]}",
      "student_pipeline[0].entry_point: expected an array");
  expect_run_error("{" ONE_STUDENT
                   ",\"student_pipeline\":[{\"image\":\"i\",\"entry_point\":"
                   "[\"sh\",1]}]}",
                   "student_pipeline[0].entry_point[1]: expected a string");
  run_ok("{" ONE_STUDENT
         ",\"student_pipeline\":[{\"image\":\"i\",\"entry_point\":[]}]}");
}
END_TEST

START_TEST(test_stage_enable_networking) {
  expect_run_error("{" ONE_STUDENT ",\"student_pipeline\":[{\"image\":\"i\","
                   "\"enable_networking\":\"yes\"}]}",
                   "student_pipeline[0].enable_networking: expected a boolean");
  expect_run_error("{" ONE_STUDENT ",\"student_pipeline\":[{\"image\":\"i\","
                   "\"enable_networking\":1}]}",
                   "student_pipeline[0].enable_networking: expected a boolean");
}
END_TEST

START_TEST(test_stage_host_name) {
  expect_run_error("{" ONE_STUDENT
                   ",\"student_pipeline\":[{\"image\":\"i\",\"host_name\":5}]}",
                   "student_pipeline[0].host_name: expected a string");
}
END_TEST

START_TEST(test_stage_timeout_type) {
  expect_run_error("{" ONE_STUDENT ",\"student_pipeline\":[" STAGE
                   ",{\"image\":\"i\",\"timeout\":\"30\"}]}",
                   "student_pipeline[1].timeout: expected a number");
  expect_run_error("{" ONE_STUDENT ",\"student_pipeline\":[" STAGE
                   ",{\"image\":\"i\",\"timeout\":true}]}",
                   "student_pipeline[1].timeout: expected a number");
  expect_run_error("{" ONE_STUDENT ",\"student_pipeline\":[" STAGE
                   ",{\"image\":\"i\",\"timeout\":null}]}",
                   "student_pipeline[1].timeout: expected a number");
}
END_TEST

START_TEST(test_stage_timeout_range) {
  expect_run_error("{" ONE_STUDENT ",\"student_pipeline\":[" STAGE
                   ",{\"image\":\"i\",\"timeout\":0}]}",
                   "student_pipeline[1].timeout: must be > 0");
  expect_run_error("{" ONE_STUDENT ",\"student_pipeline\":[{\"image\":\"i\","
                   "\"timeout\":-1}]}",
                   "student_pipeline[0].timeout: must be > 0");
  expect_run_error("{" ONE_STUDENT ",\"student_pipeline\":[{\"image\":\"i\","
                   "\"timeout\":0.0}]}",
                   "student_pipeline[0].timeout: must be > 0");
  expect_run_error("{" ONE_STUDENT ",\"student_pipeline\":[{\"image\":\"i\","
                   "\"timeout\":86401}]}",
                   "student_pipeline[0].timeout: must be <= 86400");
  expect_run_error("{" ONE_STUDENT ",\"student_pipeline\":[{\"image\":\"i\","
                   "\"timeout\":86400.5}]}",
                   "student_pipeline[0].timeout: must be <= 86400");
  run_ok("{" ONE_STUDENT ",\"student_pipeline\":[{\"image\":\"i\","
         "\"timeout\":86400},{\"image\":\"i\",\"timeout\":0.001}]}");
}
END_TEST

START_TEST(test_stage_timeout_configured_max) {
  cfg.max_timeout = 60;
  expect_run_error("{" ONE_STUDENT ",\"student_pipeline\":[{\"image\":\"i\","
                   "\"timeout\":61}]}",
                   "student_pipeline[0].timeout: must be <= 60");
}
END_TEST

START_TEST(test_stage_limits) {
  expect_run_error("{" ONE_STUDENT ",\"student_pipeline\":[{\"image\":\"i\","
                   "\"memory\":\"lots\"}]}",
                   "student_pipeline[0].memory: expected bytes, or a size such "
                   "as \"512m\"");
  expect_run_error("{" ONE_STUDENT ",\"student_pipeline\":[{\"image\":\"i\","
                   "\"memory\":\"1m\"}]}",
                   "student_pipeline[0].memory: expected 4194304 to "
                   "17179869184");
  expect_run_error("{" ONE_STUDENT ",\"student_pipeline\":[{\"image\":\"i\","
                   "\"disk\":-1}]}",
                   "student_pipeline[0].disk: expected bytes, or a size such "
                   "as \"512m\"");
  expect_run_error("{" ONE_STUDENT ",\"student_pipeline\":[{\"image\":\"i\","
                   "\"cpus\":\"2\"}]}",
                   "student_pipeline[0].cpus: expected a number of CPUs");
  expect_run_error("{" ONE_STUDENT ",\"student_pipeline\":[{\"image\":\"i\","
                   "\"cpus\":65}]}",
                   "student_pipeline[0].cpus: expected 0.01 to 64");
  expect_run_error("{" ONE_STUDENT ",\"student_pipeline\":[{\"image\":\"i\","
                   "\"pids\":2.5}]}",
                   "student_pipeline[0].pids: expected a whole number");
  expect_run_error("{" ONE_STUDENT ",\"student_pipeline\":[{\"image\":\"i\","
                   "\"pids\":2}]}",
                   "student_pipeline[0].pids: expected 4 to 65536");
  expect_run_error("{" ONE_STUDENT "," PIPE ",\"post_processing_pipeline\":"
                   "[{\"image\":\"i\",\"output\":\"5g\"}]}",
                   "post_processing_pipeline[0].output: expected 1024 to "
                   "4294967296");
}
END_TEST

START_TEST(test_stage_limit_defaults_configured) {
  cfg.default_memory = 64 << 20;
  cfg.default_cpus = 0.5;
  cfg.default_pids = 32;
  cfg.default_disk = 16 << 20;
  cfg.default_output = 1 << 20;
  cfg.max_memory = 128 << 20;
  ck_assert_str_eq(run_ok("{" ONE_STUDENT ",\"student_pipeline\":[{\"image\":"
                          "\"i\",\"pids\":8}]}"),
                   "{\"students\":[{\"NETID\":\"a\"}],"
                   "\"student_pipeline\":[{\"image\":\"i\",\"pids\":8,"
                   "\"memory\":67108864,\"cpus\":0.5,\"disk\":16777216,"
                   "\"output\":1048576}]}");
  expect_run_error("{" ONE_STUDENT ",\"student_pipeline\":[{\"image\":\"i\","
                   "\"memory\":\"1g\"}]}",
                   "student_pipeline[0].memory: expected 4194304 to 134217728");
}
END_TEST

START_TEST(test_first_error_wins_in_key_order) {
  /* Unknown keys are reported before missing ones. */
  expect_run_error("{\"foo\":1}", "foo: unknown key");
  expect_run_error("{" ONE_STUDENT ",\"student_pipeline\":[{\"foo\":1}]}",
                   "student_pipeline[0].foo: unknown key");
}
END_TEST

/* ---- limits ----------------------------------------------------------- */

START_TEST(test_limit_students_default) {
  size_t cap = 400000, len = 0;
  char *text = malloc(cap);
  ck_assert_ptr_nonnull(text);
  len += (size_t)snprintf(text, cap, "{\"students\":[");
  for (int i = 0; i < 100001; i++)
    len += (size_t)snprintf(text + len, cap - len, "%s{}", i ? "," : "");
  snprintf(text + len, cap - len, "]," PIPE "}");
  expect_run_error_code(
      text, BW_ETOOBIG,
      "students: 100001 students is over the limit of 100000");
  free(text);
}
END_TEST

START_TEST(test_limit_students_configured) {
  cfg.max_students = 2;
  run_ok("{\"students\":[{},{}]," PIPE "}");
  expect_run_error_code("{\"students\":[{},{},{}]," PIPE "}", BW_ETOOBIG,
                        "students: 3 students is over the limit of 2");
}
END_TEST

START_TEST(test_limit_stages) {
  cfg.max_stages = 1;
  expect_run_error_code(
      "{" ONE_STUDENT ",\"student_pipeline\":[" STAGE "," STAGE "]}",
      BW_ETOOBIG, "student_pipeline: 2 stages is over the limit of 1");
  expect_run_error_code("{" ONE_STUDENT "," PIPE
                        ",\"post_processing_pipeline\":[" STAGE "," STAGE "]}",
                        BW_ETOOBIG,
                        "post_processing_pipeline: 2 stages is over the limit "
                        "of 1");
}
END_TEST

START_TEST(test_limit_env_count) {
  cfg.max_env = 2;
  run_ok("{\"students\":[{\"A\":\"1\",\"B\":\"2\"}]," PIPE "}");
  expect_run_error_code(
      "{\"students\":[{\"A\":\"1\",\"B\":\"2\",\"C\":\"3\"}]," PIPE "}",
      BW_ETOOBIG, "students[0]: 3 variables is over the limit of 2");
  expect_run_error_code("{" ONE_STUDENT "," PIPE
                        ",\"env\":{\"A\":\"1\",\"B\":\"2\",\"C\":\"3\"}}",
                        BW_ETOOBIG, "env: 3 variables is over the limit of 2");
  expect_run_error_code(
      "{" ONE_STUDENT ",\"student_pipeline\":[{\"image\":\"i\",\"env\":"
      "{\"A\":\"1\",\"B\":\"2\",\"C\":\"3\"}}]}",
      BW_ETOOBIG,
      "student_pipeline[0].env: 3 variables is over the limit of 2");
}
END_TEST

START_TEST(test_limit_env_name) {
  cfg.max_env_name = 4;
  run_ok("{\"students\":[{\"ABCD\":\"1\"}]," PIPE "}");
  expect_run_error("{\"students\":[{\"ABCDE\":\"1\"}]," PIPE "}",
                   "students[0]: variable name of 5 bytes is over the limit "
                   "of 4");
}
END_TEST

START_TEST(test_limit_env_value) {
  cfg.max_env_value = 3;
  run_ok("{\"students\":[{\"A\":\"abc\"}]," PIPE "}");
  expect_run_error("{\"students\":[{\"A\":\"abcd\"}]," PIPE "}",
                   "students[0].A: value of 4 bytes is over the limit of 3");
  expect_run_error("{\"students\":[{\"A\":1.250}]," PIPE "}",
                   "students[0].A: value of 5 bytes is over the limit of 3");
  expect_run_error("{" ONE_STUDENT "," PIPE ",\"env\":{\"B\":12345}}",
                   "env.B: value of 5 bytes is over the limit of 3");
  expect_run_error("{" ONE_STUDENT ",\"student_pipeline\":[{\"image\":\"i\","
                   "\"env\":{\"X\":\"\xc3\xa9\xc3\xa9\"}}]}",
                   "student_pipeline[0].env.X: value of 4 bytes is over the "
                   "limit of 3");
}
END_TEST

START_TEST(test_limit_strings) {
  cfg.max_string = 5;
  run_ok("{" ONE_STUDENT ",\"student_pipeline\":[{\"image\":\"12345\"}]}");
  expect_run_error("{" ONE_STUDENT ",\"student_pipeline\":[{\"image\":"
                   "\"123456\"}]}",
                   "student_pipeline[0].image: 6 bytes is over the limit of 5");
  expect_run_error("{" ONE_STUDENT ",\"student_pipeline\":[{\"image\":\"i\","
                   "\"host_name\":\"abcdef\"}]}",
                   "student_pipeline[0].host_name: 6 bytes is over the limit "
                   "of 5");
  expect_run_error("{" ONE_STUDENT ",\"student_pipeline\":[{\"image\":\"i\","
                   "\"entry_point\":[\"sh\",\"abcdef\"]}]}",
                   "student_pipeline[0].entry_point[1]: 6 bytes is over the "
                   "limit of 5");
}
END_TEST

START_TEST(test_limit_expansion) {
  cfg.max_env_value = 10;
  run_ok("{\"students\":[{\"A\":\"12345\"}],\"student_pipeline\":[{\"image\":"
         "\"i\",\"env\":{\"V\":\"$A$A\"}}]}");
  expect_run_error("{\"students\":[{\"A\":\"12345\"}],\"student_pipeline\":"
                   "[{\"image\":\"i\",\"env\":{\"V\":\"$A$A$A\"}}]}",
                   "student_pipeline[0].env.V: expands to up to 15 bytes, over "
                   "the limit of 10");
  expect_run_error("{\"students\":[{}],\"env\":{\"A\":\"1234\"},"
                   "\"student_pipeline\":[" STAGE "],"
                   "\"post_processing_pipeline\":[{\"image\":\"i\",\"env\":{"
                   "\"V\":\"xyz${A}$A\"}}]}",
                   "post_processing_pipeline[0].env.V: expands to up to 11 "
                   "bytes, over the limit of 10");
}
END_TEST

/* ---- references ------------------------------------------------------- */

START_TEST(test_references_resolve) {
  run_ok("{\"students\":[{\"NETID\":\"a\"},{\"NETID\":\"b\"}],"
         "\"env\":{\"ASSIGNMENT\":\"mp1\"},"
         "\"student_pipeline\":[{\"image\":\"i\",\"env\":{\"NETID\":\"$NETID\","
         "\"DIR\":\"/sub/${NETID}/$ASSIGNMENT\",\"ASSIGNMENT\":\"\"}}],"
         "\"pre_processing_pipeline\":[{\"image\":\"i\",\"env\":{\"A\":"
         "\"$ASSIGNMENT\",\"NETID\":\"\"}}]}");
}
END_TEST

START_TEST(test_reference_missing_for_one_student) {
  expect_run_error(
      "{\"students\":[{\"NETID\":\"a\"},{\"ID\":\"b\"}],"
      "\"env\":{\"ASSIGNMENT\":\"mp1\"},"
      "\"student_pipeline\":[{\"image\":\"i\",\"env\":{"
      "\"DIR\":\"/sub/${NETID}/$ASSIGNMENT\"}}]}",
      "students[1]: NETID (referenced by student_pipeline[0].env.DIR) is not "
      "defined");
}
END_TEST

START_TEST(test_reference_lowest_student_first) {
  /* students[0] fails on stage 1 only, students[1] on stage 0. */
  expect_run_error(
      "{\"students\":[{\"A\":\"1\"},{\"B\":\"2\"}],"
      "\"student_pipeline\":[{\"image\":\"i\",\"env\":{\"X\":\"$A\"}},"
      "{\"image\":\"i\",\"env\":{\"Y\":\"$B\"}}]}",
      "students[0]: B (referenced by student_pipeline[1].env.Y) is not "
      "defined");
}
END_TEST

START_TEST(test_reference_first_variable_named) {
  expect_run_error("{\"students\":[{}],\"student_pipeline\":[{\"image\":\"i\","
                   "\"env\":{\"X\":\"$A\",\"Y\":\"$A$B\"}}]}",
                   "students[0]: A (referenced by student_pipeline[0].env.X) "
                   "is not defined");
  expect_run_error("{\"students\":[{\"A\":\"\"}],\"student_pipeline\":[{"
                   "\"image\":\"i\",\"env\":{\"X\":\"$A\",\"Y\":\"$A$B\"}}]}",
                   "students[0]: B (referenced by student_pipeline[0].env.Y) "
                   "is not defined");
}
END_TEST

START_TEST(test_reference_from_pre_and_post) {
  expect_run_error("{" ONE_STUDENT "," PIPE
                   ",\"pre_processing_pipeline\":[{\"image\":\"i\","
                   "\"env\":{\"X\":\"$NETID\"}}]}",
                   "pre_processing_pipeline: NETID (referenced by "
                   "pre_processing_pipeline[0].env.X) is not defined");
  expect_run_error("{" ONE_STUDENT "," PIPE
                   ",\"post_processing_pipeline\":[" STAGE
                   ",{\"image\":\"i\",\"env\":{\"X\":\"${Y}\"}}]}",
                   "post_processing_pipeline: Y (referenced by "
                   "post_processing_pipeline[1].env.X) is not defined");
}
END_TEST

START_TEST(test_reference_literal_dollars_accepted) {
  run_ok("{\"students\":[{}],\"student_pipeline\":[{\"image\":\"i\","
         "\"env\":{\"X\":\"$$HOME $1 ${} ${A $\"}}]}");
}
END_TEST

START_TEST(test_reference_to_number_student_value) {
  run_ok("{\"students\":[{\"N\":3}],\"student_pipeline\":[{\"image\":\"i\","
         "\"env\":{\"X\":\"$N\"}}]}");
}
END_TEST

/* ---- results ---------------------------------------------------------- */

START_TEST(test_result_plain) {
  expect_result("{\"success\":true,\"info\":[{\"stage\":1},{}]}",
                "{\"success\":true,\"info\":[{\"stage\":1},{}]}");
  expect_result("{\"info\":[],\"success\":false}",
                "{\"success\":false,\"info\":[]}");
}
END_TEST

START_TEST(test_result_with_logs) {
  expect_result("{\"success\":true,\"info\":[],\"logs\":{\"stdout\":\"o\","
                "\"stderr\":\"e\"}}",
                "{\"success\":true,\"info\":[],\"logs\":{\"stdout\":\"o\","
                "\"stderr\":\"e\"}}");
  expect_result("{\"success\":true,\"info\":[],\"logs\":{\"stdout\":\"o\"}}",
                "{\"success\":true,\"info\":[],\"logs\":{\"stdout\":\"o\"}}");
}
END_TEST

START_TEST(test_result_wrapped) {
  expect_result("{\"status\":\"anything\",\"data\":{\"success\":false,"
                "\"info\":[{\"a\":1}]}}",
                "{\"success\":false,\"info\":[{\"a\":1}]}");
  expect_result("{\"data\":{\"success\":true,\"info\":[]}}",
                "{\"success\":true,\"info\":[]}");
}
END_TEST

START_TEST(test_result_body_not_object) {
  expect_result_error("[]", "body: expected a JSON object");
}
END_TEST

START_TEST(test_result_success) {
  expect_result_error("{\"info\":[]}", "success: required");
  expect_result_error("{\"success\":\"true\",\"info\":[]}",
                      "success: expected a boolean");
  expect_result_error("{\"success\":1,\"info\":[]}",
                      "success: expected a boolean");
}
END_TEST

START_TEST(test_result_info) {
  expect_result_error("{\"success\":true}", "info: required");
  expect_result_error("{\"success\":true,\"info\":{}}",
                      "info.stageResults: required");
  expect_result_error("{\"success\":true,\"info\":1}",
                      "info: expected an array");
  expect_result_error("{\"success\":true,\"info\":[{},\"x\"]}",
                      "info[1]: expected an object");
  expect_result_error("{\"success\":true,\"info\":[null]}",
                      "info[0]: expected an object");
}
END_TEST

/* The 2018 graders' shapes: kept as given, with the same rules. */
START_TEST(test_result_2018_shapes) {
  expect_result("{\"success\":false,\"info\":{\"stageResults\":[{\"a\":1}],"
                "\"stdout\":\"o\",\"stderr\":\"e\"}}",
                "{\"success\":false,\"info\":{\"stageResults\":[{\"a\":1}],"
                "\"stdout\":\"o\",\"stderr\":\"e\"}}");
  expect_result("{\"success\":true,\"results\":[{\"exitCode\":0}],"
                "\"logs\":{\"stdout\":\"o\",\"stderr\":\"\"}}",
                "{\"success\":true,\"results\":[{\"exitCode\":0}],"
                "\"logs\":{\"stdout\":\"o\",\"stderr\":\"\"}}");
  expect_result_error("{\"success\":true,\"info\":{\"stageResults\":{}}}",
                      "info.stageResults: expected an array");
  expect_result_error("{\"success\":true,\"info\":{\"stageResults\":[1]}}",
                      "info.stageResults[0]: expected an object");
  expect_result_error("{\"success\":true,\"info\":{\"stageResults\":[],"
                      "\"stdout\":2}}",
                      "info.stdout: expected a string");
  expect_result_error("{\"success\":true,\"info\":{\"stageResults\":[],"
                      "\"x\":\"\"}}",
                      "info.x: unknown key");
  expect_result_error("{\"success\":true,\"results\":{}}",
                      "results: expected an array");
  expect_result_error("{\"success\":true,\"results\":[],\"info\":[]}",
                      "results: not allowed together with info");
  expect_result_error("{\"data\":{\"success\":true,\"results\":[[]]}}",
                      "data.results[0]: expected an object");
  cfg.max_info_bytes = 14;
  expect_result_error("{\"success\":true,\"results\":[{\"a\":\"12345\"}]}",
                      "results: 15 bytes is over the limit of 14");
  expect_result_error("{\"success\":true,\"info\":{\"stageResults\":[]"
                      ",\"stdout\":\"0123456789\"}}",
                      "info: 41 bytes is over the limit of 14");
}
END_TEST

START_TEST(test_result_logs) {
  expect_result_error("{\"success\":true,\"info\":[],\"logs\":\"x\"}",
                      "logs: expected an object");
  expect_result_error("{\"success\":true,\"info\":[],\"logs\":{\"foo\":\"x\"}}",
                      "logs.foo: unknown key");
  expect_result_error("{\"success\":true,\"info\":[],\"logs\":{\"stdout\":1}}",
                      "logs.stdout: expected a string");
}
END_TEST

/* The 2019 API's result (PROTOCOL-LATER.md §2.7). */
static void expect_gen3_result_error(const char *text, const char *needle) {
  json_object *body = json_tokener_parse(text), *out = NULL;
  const char *job_id;
  bw_error_t error = {0, ""};
  ck_assert_ptr_nonnull(body);
  ck_assert_int_eq(bw_validate_gen3_result(body, &cfg, &job_id, &out, &error),
                   BW_EINVAL);
  ck_assert_msg(strstr(error.message, needle) != NULL, "\"%s\" lacks \"%s\"",
                error.message, needle);
  ck_assert_ptr_null(out);
  json_object_put(body);
}

START_TEST(test_result_gen3) {
  json_object *body = json_tokener_parse(
                  "{\"grading_job_id\":\"j\",\"success\":false,"
                  "\"results\":[{\"success\":false}],"
                  "\"logs\":{\"stdout\":\"o\",\"stderr\":3,\"x\":\"y\"}}"),
              *out = NULL;
  const char *job_id = NULL;
  bw_error_t error = {0, ""};
  ck_assert_int_eq(bw_validate_gen3_result(body, &cfg, &job_id, &out, &error),
                   0);
  ck_assert_str_eq(job_id, "j");
  /* stored in the seed's shape; logs: stdout and stderr, strings only */
  ck_assert_str_eq(
      json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN),
      "{\"success\":false,\"results\":[{\"success\":false}],"
      "\"logs\":{\"stdout\":\"o\",\"stderr\":\"\"}}");
  json_object_put(out);
  json_object_put(body);
  expect_gen3_result_error("{\"success\":true,\"results\":[],\"logs\":{}}",
                           "grading_job_id: required");
  expect_gen3_result_error("{\"grading_job_id\":1,\"success\":true,"
                           "\"results\":[],\"logs\":{}}",
                           "grading_job_id: expected a string");
  expect_gen3_result_error("{\"grading_job_id\":\"j\",\"success\":true,"
                           "\"results\":[],\"logs\":{},\"info\":[]}",
                           "info: unknown key");
  expect_gen3_result_error("{\"grading_job_id\":\"j\",\"success\":true,"
                           "\"results\":[],\"logs\":[]}",
                           "logs: expected an object");
  expect_gen3_result_error("{\"grading_job_id\":\"j\",\"success\":1,"
                           "\"results\":[],\"logs\":{}}",
                           "success: expected a boolean");
}
END_TEST

START_TEST(test_result_unknown_keys) {
  expect_result_error("{\"success\":true,\"info\":[],\"foo\":1}",
                      "foo: unknown key");
  expect_result_error("{\"status\":\"s\",\"data\":{\"success\":true,"
                      "\"info\":[]},\"success\":true}",
                      "success: unknown key");
  expect_result_error("{\"data\":{\"success\":true,\"info\":[],\"x\":1}}",
                      "data.x: unknown key");
}
END_TEST

START_TEST(test_result_wrapped_errors) {
  expect_result_error("{\"status\":\"s\"}", "data: required");
  expect_result_error("{\"status\":1,\"data\":{}}",
                      "status: expected a string");
  expect_result_error("{\"status\":\"s\",\"data\":[]}",
                      "data: expected an object");
  expect_result_error("{\"data\":{\"info\":[]}}", "data.success: required");
  expect_result_error("{\"data\":{\"success\":true,\"info\":1}}",
                      "data.info: expected an array");
}
END_TEST

START_TEST(test_result_size_limits) {
  /* [{"a":"1234"}] is 14 bytes, {"stdout":"12"} 15. */
  cfg.max_info_bytes = 14;
  cfg.max_logs_bytes = 14;
  expect_result("{\"success\":true,\"info\":[{\"a\":\"1234\"}]}",
                "{\"success\":true,\"info\":[{\"a\":\"1234\"}]}");
  expect_result_error("{\"success\":true,\"info\":[{\"a\":\"12345\"}]}",
                      "info: 15 bytes is over the limit of 14");
  expect_result_error("{\"data\":{\"success\":true,\"info\":[{\"a\":\"12345\"}"
                      "]}}",
                      "data.info: 15 bytes is over the limit of 14");
  expect_result_error("{\"success\":true,\"info\":[],\"logs\":{\"stdout\":"
                      "\"12\"}}",
                      "logs: 15 bytes is over the limit of 14");
}
END_TEST

/* ---- single values ---------------------------------------------------- */

START_TEST(test_env_name) {
  ck_assert(bw_validate_env_name("A", 256));
  ck_assert(bw_validate_env_name("_", 256));
  ck_assert(bw_validate_env_name("a1_B", 256));
  ck_assert(bw_validate_env_name("ABCD", 4));
  ck_assert(!bw_validate_env_name("ABCDE", 4));
  ck_assert(!bw_validate_env_name("", 256));
  ck_assert(!bw_validate_env_name(NULL, 256));
  ck_assert(!bw_validate_env_name("1A", 256));
  ck_assert(!bw_validate_env_name("A-B", 256));
  ck_assert(!bw_validate_env_name("A B", 256));
  ck_assert(!bw_validate_env_name("A=", 256));
  ck_assert(!bw_validate_env_name("\xc3\xa9", 256));
}
END_TEST

START_TEST(test_hostname) {
  char name[300];
  ck_assert(bw_validate_hostname("grader-1.cs.example_x"));
  ck_assert(bw_validate_hostname("a"));
  ck_assert(!bw_validate_hostname(""));
  ck_assert(!bw_validate_hostname(NULL));
  ck_assert(!bw_validate_hostname("a b"));
  ck_assert(!bw_validate_hostname("a/b"));
  ck_assert(!bw_validate_hostname("<script>"));
  ck_assert(bw_validate_path_hostname("rack/3/node-1.cs.edu"));
  ck_assert(!bw_validate_path_hostname(""));
  ck_assert(!bw_validate_path_hostname("a b"));
  ck_assert(!bw_validate_path_hostname("a(b)"));
  ck_assert(!bw_validate_path_hostname("a\x01"));
  memset(name, 'h', 255);
  name[255] = '\0';
  ck_assert(bw_validate_hostname(name));
  name[255] = 'h';
  name[256] = '\0';
  ck_assert(!bw_validate_hostname(name));
}
END_TEST


/* ---- the 2019 API: grading configs and run requests (§2.5, §2.6) ------- */

static void gconfig_rejects(const char *text, const char *message) {
  json_object *in = parse(text);
  bw_error_t error = {0, ""};
  ck_assert_int_eq(bw_validate_gconfig(in, &cfg, &error), BW_EINVAL);
  ck_assert_str_eq(error.message, message);
  json_object_put(in);
}

static void gconfig_accepts(const char *text) {
  json_object *in = parse(text);
  bw_error_t error = {0, ""};
  ck_assert_msg(bw_validate_gconfig(in, &cfg, &error) == 0, "%s: %s", text,
                error.message);
  json_object_put(in);
}

START_TEST(test_gconfig_shapes) {
  gconfig_accepts("{\"student_pipeline\": null}");
  gconfig_accepts("{\"student_pipeline\": [], \"env\": null}");
  gconfig_accepts(
      "{\"student_pipeline\": [{\"image\": \"a\", \"env\": {\"X\": [1]}, "
      "\"entrypoint\": [\"/bin/sh\"], \"networking\": true, \"privileged\": "
      "false, \"hostname\": \"h\", \"timeout\": 1.5, \"memory\": \"2g\", "
      "\"logs\": true, \"cpuset_cpus\": \"0-1\"}, null], "
      "\"pre_processing_pipeline\": [{\"image\": \"p\"}], "
      "\"post_processing_pipeline\": null, \"env\": {\"A\": 1}}");
  gconfig_rejects("{}", "student_pipeline: missing");
  gconfig_rejects("{\"student_pipeline\": [], \"students\": []}",
                  "students: unknown key");
  gconfig_rejects("{\"student_pipeline\": {}}",
                  "student_pipeline: expected an array or null");
  gconfig_rejects("{\"student_pipeline\": [{}]}",
                  "student_pipeline[0].image: missing");
  gconfig_rejects("{\"student_pipeline\": [], \"post_processing_pipeline\": "
                  "[{\"image\": \"a\", \"entry_point\": []}]}",
                  "post_processing_pipeline[0].entry_point: unknown key");
  gconfig_rejects("{\"student_pipeline\": [{\"image\": \"a\", \"timeout\": "
                  "\"30\"}]}",
                  "student_pipeline[0].timeout: expected a number");
  gconfig_rejects("{\"student_pipeline\": [{\"image\": \"a\", "
                  "\"networking\": 1}]}",
                  "student_pipeline[0].networking: expected a boolean");
  gconfig_rejects("{\"student_pipeline\": [{\"image\": \"a\", "
                  "\"entrypoint\": [\"x\", 2]}]}",
                  "student_pipeline[0].entrypoint[1]: expected a string");
  gconfig_rejects("{\"student_pipeline\": [], \"env\": []}",
                  "env: expected an object");
}
END_TEST

START_TEST(test_g3_run_shapes) {
  static const struct {
    const char *text, *message;
  } cases[] = {
      {"{\"students_env\": [{\"STUDENT_ID\": \"a\", \"N\": 1}]}", ""},
      {"{\"students_env\": [], \"pre_processing_env\": {}, "
       "\"post_processing_env\": {\"A\": \"b\"}}",
       ""},
      {"{}", "students_env: missing"},
      {"{\"students_env\": {}}", "students_env: expected an array of objects"},
      {"{\"students_env\": [{}, 3]}", "students_env[1]: expected an object"},
      {"{\"students_env\": [], \"pre_processing_env\": null}",
       "pre_processing_env: expected an object"},
      {"{\"students_env\": [], \"env\": {}}", "env: unknown key"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    json_object *in = parse(cases[i].text);
    bw_error_t error = {0, ""};
    int rc = bw_validate_g3_run(in, &cfg, &error);
    ck_assert_msg(cases[i].message[0] == '\0' ? rc == 0 : rc == BW_EINVAL,
                  "%s: %d %s", cases[i].text, rc, error.message);
    if (cases[i].message[0] != '\0')
      ck_assert_str_eq(error.message, cases[i].message);
    json_object_put(in);
  }
  cfg.max_students = 1;
  {
    json_object *in = parse("{\"students_env\": [{}, {}]}");
    bw_error_t error = {0, ""};
    ck_assert_int_eq(bw_validate_g3_run(in, &cfg, &error), BW_EINVAL);
    ck_assert_str_eq(error.message,
                     "students_env: 2 students is over the limit of 1");
    json_object_put(in);
  }
}
END_TEST

static Suite *validate_suite(void) {
  Suite *s = suite_create("validate");
  TCase *ok = tcase_create("accepted");
  TCase *top = tcase_create("top_level");
  TCase *stage = tcase_create("stages");
  TCase *limits = tcase_create("limits");
  TCase *refs = tcase_create("references");
  TCase *result = tcase_create("result");
  TCase *single = tcase_create("single_values");
  TCase *all[] = {ok, top, stage, limits, refs, result, single};
  size_t i;

  for (i = 0; i < sizeof all / sizeof all[0]; i++)
    tcase_add_checked_fixture(all[i], setup, NULL);

  tcase_add_test(ok, test_minimal_config);
  tcase_add_test(ok, test_full_config_stages_copied_as_given);
  tcase_add_test(ok, test_numbers_and_booleans_become_strings);
  tcase_add_test(ok, test_input_left_untouched);
  tcase_add_test(ok, test_empty_student_allowed);

  tcase_add_test(top, test_body_not_object);
  tcase_add_test(top, test_unknown_top_level_key);
  tcase_add_test(top, test_students_required);
  tcase_add_test(top, test_students_type);
  tcase_add_test(top, test_students_empty);
  tcase_add_test(top, test_student_not_object);
  tcase_add_test(top, test_student_env_names);
  tcase_add_test(top, test_student_env_values);
  tcase_add_test(top, test_global_env);
  tcase_add_test(top, test_first_error_wins_in_key_order);

  tcase_add_test(stage, test_student_pipeline_required);
  tcase_add_test(stage, test_optional_pipelines_not_empty);
  tcase_add_test(stage, test_stage_not_object);
  tcase_add_test(stage, test_stage_unknown_key);
  tcase_add_test(stage, test_stage_image);
  tcase_add_test(stage, test_stage_env);
  tcase_add_test(stage, test_stage_entry_point);
  tcase_add_test(stage, test_stage_enable_networking);
  tcase_add_test(stage, test_stage_host_name);
  tcase_add_test(stage, test_stage_timeout_type);
  tcase_add_test(stage, test_stage_timeout_range);
  tcase_add_test(stage, test_stage_timeout_configured_max);
  tcase_add_test(stage, test_stage_limits);
  tcase_add_test(stage, test_stage_limit_defaults_configured);

  tcase_add_test(limits, test_limit_students_default);
  tcase_add_test(limits, test_limit_students_configured);
  tcase_add_test(limits, test_limit_stages);
  tcase_add_test(limits, test_limit_env_count);
  tcase_add_test(limits, test_limit_env_name);
  tcase_add_test(limits, test_limit_env_value);
  tcase_add_test(limits, test_limit_strings);
  tcase_add_test(limits, test_limit_expansion);

  tcase_add_test(refs, test_references_resolve);
  tcase_add_test(refs, test_reference_missing_for_one_student);
  tcase_add_test(refs, test_reference_lowest_student_first);
  tcase_add_test(refs, test_reference_first_variable_named);
  tcase_add_test(refs, test_reference_from_pre_and_post);
  tcase_add_test(refs, test_reference_literal_dollars_accepted);
  tcase_add_test(refs, test_reference_to_number_student_value);

  tcase_add_test(result, test_result_plain);
  tcase_add_test(result, test_result_with_logs);
  tcase_add_test(result, test_result_wrapped);
  tcase_add_test(result, test_result_body_not_object);
  tcase_add_test(result, test_result_success);
  tcase_add_test(result, test_result_info);
  tcase_add_test(result, test_result_logs);
  tcase_add_test(result, test_result_2018_shapes);
  tcase_add_test(result, test_result_unknown_keys);
  tcase_add_test(result, test_result_wrapped_errors);
  tcase_add_test(result, test_result_size_limits);
  tcase_add_test(result, test_result_gen3);

  tcase_add_test(single, test_env_name);
  tcase_add_test(single, test_hostname);
  tcase_add_test(single, test_gconfig_shapes);
  tcase_add_test(single, test_g3_run_shapes);

  for (i = 0; i < sizeof all / sizeof all[0]; i++)
    suite_add_tcase(s, all[i]);
  return s;
}

int main(void) {
  return bw_test_main(validate_suite());
}
