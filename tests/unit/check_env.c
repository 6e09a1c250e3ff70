/* check_env.c - common/env.c: the scanner ($NAME, ${NAME}, $$, literal '$'),
 * bw_env_check's messages, and bw_env_resolve's layering, "" inheritance,
 * ids and sorted output, including PROTOCOL.md's example. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "env.h"
#include "../lib/suite.h"

#define RUN_ID "5f1d0c0ffee0123456789abc"
#define JOB_ID "5f1d0c0ffee0123456789abd"

/* A JSON object from text (NULL text -> NULL layer). */
static json_object *obj(const char *text) {
  json_object *o;
  if (text == NULL)
    return NULL;
  o = json_tokener_parse(text);
  ck_assert_msg(o != NULL, "bad test JSON: %s", text);
  return o;
}

/* Resolves and compares the whole output, as compact JSON. */
static void expect_resolved_ids(const char *global, const char *student,
                                const char *stage, const char *run_id,
                                const char *job_id, const char *expected) {
  json_object *g = obj(global), *s = obj(student), *st = obj(stage), *out;
  bw_error_t error = {0};
  int rc = bw_env_resolve(g, s, st, run_id, job_id, &out, &error);
  ck_assert_msg(rc == 0, "%s", error.message);
  ck_assert_str_eq(
      json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN |
                                              JSON_C_TO_STRING_NOSLASHESCAPE),
      expected);
  json_object_put(out);
  json_object_put(g);
  json_object_put(s);
  json_object_put(st);
}

/* Same without ids, so expectations only list the user's variables. */
static void expect_resolved(const char *global, const char *student,
                            const char *stage, const char *expected) {
  expect_resolved_ids(global, student, stage, NULL, NULL, expected);
}

/* The "NAME=value" entry of `out` starting with `prefix`, or "". */
static const char *find_pair(json_object *out, const char *prefix) {
  size_t i, n = json_object_array_length(out);
  for (i = 0; i < n; i++) {
    const char *pair =
        json_object_get_string(json_object_array_get_idx(out, i));
    if (strncmp(pair, prefix, strlen(prefix)) == 0)
      return pair;
  }
  return "";
}

/* The value one stage variable resolves to, global and student given. */
static void expect_value(const char *global, const char *student,
                         const char *value, const char *expected) {
  json_object *g = obj(global), *s = obj(student),
              *st = json_object_new_object();
  json_object *out;
  bw_error_t error = {0};
  char want[512];

  json_object_object_add(st, "V", json_object_new_string(value));
  ck_assert_int_eq(bw_env_resolve(g, s, st, NULL, NULL, &out, &error), 0);
  snprintf(want, sizeof want, "V=%s", expected);
  ck_assert_str_eq(find_pair(out, "V="), want);
  json_object_put(out);
  json_object_put(g);
  json_object_put(s);
  json_object_put(st);
}

static void expect_check(const char *global, const char *student,
                         const char *stage, const char *where,
                         const char *stage_path, const char *message) {
  json_object *g = obj(global), *s = obj(student), *st = obj(stage);
  bw_error_t error = {0};
  int rc = bw_env_check(g, s, st, where, stage_path, &error);
  if (message == NULL) {
    ck_assert_msg(rc == 0, "%s", error.message);
  } else {
    ck_assert_int_eq(rc, BW_EINVAL);
    ck_assert_str_eq(error.message, message);
  }
  json_object_put(g);
  json_object_put(s);
  json_object_put(st);
}

/* ---- the scanner ------------------------------------------------------ */

static int trace_piece(const char *text, size_t len, bool is_ref, void *ctx) {
  char *trace = ctx;
  size_t n = strlen(trace);
  snprintf(trace + n, 512 - n, "%s(%.*s)", is_ref ? "R" : "L", (int)len, text);
  return 0;
}

static void expect_pieces(const char *value, const char *expected) {
  char trace[512] = "";
  ck_assert_int_eq(bw_env_scan(value, trace_piece, trace), 0);
  ck_assert_str_eq(trace, expected);
}

START_TEST(test_scan_pieces) {
  expect_pieces("", "");
  expect_pieces("plain", "L(plain)");
  expect_pieces("$A", "R(A)");
  expect_pieces("/sub/${NETID}/$ASSIGNMENT",
                "L(/sub/)R(NETID)L(/)R(ASSIGNMENT)");
  expect_pieces("$A_1.b", "R(A_1)L(.b)");
  expect_pieces("a$$b", "L(a$)L(b)");
  expect_pieces("$$A", "L($)L(A)");
  expect_pieces("$$$A", "L($)R(A)");
}
END_TEST

START_TEST(test_scan_literal_dollars) {
  expect_pieces("$", "L($)");
  expect_pieces("x$", "L(x$)");
  expect_pieces("$1", "L($1)");
  expect_pieces("$-x", "L($-x)");
  expect_pieces("${}", "L(${})");
  expect_pieces("${1X}", "L(${1X})");
  expect_pieces("${A-B}", "L(${A-B})");
  expect_pieces("${A", "L(${A)");
  expect_pieces("${A B}", "L(${A B})");
  expect_pieces("${$A}", "L(${)R(A)L(})");
}
END_TEST

static int stop_at_ref(const char *text, size_t len, bool is_ref, void *ctx) {
  (void)text;
  (void)len;
  (void)ctx;
  return is_ref ? 42 : 0;
}

START_TEST(test_scan_stops_on_nonzero) {
  ck_assert_int_eq(bw_env_scan("a$B$C", stop_at_ref, NULL), 42);
  ck_assert_int_eq(bw_env_scan("no refs $$", stop_at_ref, NULL), 0);
}
END_TEST

/* ---- bw_env_resolve --------------------------------------------------- */

START_TEST(test_protocol_example) {
  expect_resolved_ids(
      "{\"ASSIGNMENT\":\"mp1\"}", "{\"NETID\":\"waf\"}",
      "{\"NETID\":\"$NETID\",\"DIR\":\"/sub/${NETID}/$ASSIGNMENT\","
      "\"ASSIGNMENT\":\"\"}",
      RUN_ID, JOB_ID,
      "[\"ASSIGNMENT=mp1\",\"DIR=/sub/waf/mp1\",\"GRADING_JOB_ID=" JOB_ID
      "\",\"GRADING_RUN_ID=" RUN_ID "\",\"NETID=waf\"]");
}
END_TEST

START_TEST(test_layers_union) {
  expect_resolved("{\"G\":\"g\"}", "{\"S\":\"s\"}", "{\"T\":\"t\"}",
                  "[\"G=g\",\"S=s\",\"T=t\"]");
}
END_TEST

START_TEST(test_precedence) {
  expect_resolved("{\"A\":\"g\"}", "{\"A\":\"s\"}", NULL, "[\"A=s\"]");
  expect_resolved("{\"A\":\"g\"}", "{\"A\":\"s\"}", "{\"A\":\"t\"}",
                  "[\"A=t\"]");
  expect_resolved("{\"A\":\"g\"}", NULL, "{\"A\":\"t\"}", "[\"A=t\"]");
  expect_resolved("{\"A\":\"g\"}", "{}", "{}", "[\"A=g\"]");
}
END_TEST

START_TEST(test_reference_student_over_global) {
  expect_value("{\"X\":\"g\"}", "{\"X\":\"s\"}", "$X", "s");
  expect_value("{\"X\":\"g\"}", "{}", "${X}", "g");
  expect_value("{\"X\":\"g\"}", NULL, "$X-$X", "g-g");
}
END_TEST

START_TEST(test_reference_forms) {
  expect_value("{\"A\":\"1\",\"Ab\":\"2\"}", NULL, "${A}b|$Ab", "1b|2");
  expect_value("{\"A\":\"1\"}", NULL, "$$A", "$A");
  expect_value("{\"A\":\"1\"}", NULL, "$$$A", "$1");
  expect_value("{\"A\":\"1\"}", NULL, "cost: $$5", "cost: $5");
  expect_value("{\"A\":\"1\"}", NULL, "a$", "a$");
  expect_value("{\"A\":\"1\"}", NULL, "$1 ${1X} ${} ${A-B} ${A",
               "$1 ${1X} ${} ${A-B} ${A");
  expect_value("{\"A\":\"1\"}", NULL, "${$A}", "${1}");
}
END_TEST

START_TEST(test_stage_layer_not_referenced) {
  json_object *stage = obj("{\"A\":\"a\",\"B\":\"$A\"}"), *out = NULL;
  bw_error_t error = {0};
  ck_assert_int_eq(bw_env_resolve(NULL, NULL, stage, NULL, NULL, &out, &error),
                   BW_EINVAL);
  ck_assert_ptr_null(out);
  ck_assert_str_eq(error.message, "env.B: A is not defined");
  json_object_put(stage);
}
END_TEST

START_TEST(test_expansion_not_recursive) {
  /* A value that looks like a reference is copied, not expanded again. */
  expect_value("{\"A\":\"$B\",\"B\":\"x\"}", NULL, "$A", "$B");
}
END_TEST

START_TEST(test_empty_inherits) {
  expect_resolved("{\"A\":\"g\"}", "{\"A\":\"s\"}", "{\"A\":\"\"}",
                  "[\"A=s\"]");
  expect_resolved("{\"A\":\"g\"}", NULL, "{\"A\":\"\"}", "[\"A=g\"]");
  expect_resolved("{\"B\":\"g\"}", "{}", "{\"A\":\"\"}", "[\"A=\",\"B=g\"]");
}
END_TEST

START_TEST(test_ids_added_and_override) {
  expect_resolved_ids(NULL, NULL, NULL, RUN_ID, JOB_ID,
                      "[\"GRADING_JOB_ID=" JOB_ID "\",\"GRADING_RUN_ID=" RUN_ID
                      "\"]");
  expect_resolved_ids(
      "{\"GRADING_RUN_ID\":\"x\"}", "{\"GRADING_JOB_ID\":\"y\"}",
      "{\"GRADING_RUN_ID\":\"z\"}", RUN_ID, JOB_ID,
      "[\"GRADING_JOB_ID=" JOB_ID "\",\"GRADING_RUN_ID=" RUN_ID "\"]");
  expect_resolved_ids(NULL, NULL, NULL, RUN_ID, NULL,
                      "[\"GRADING_RUN_ID=" RUN_ID "\"]");
}
END_TEST

START_TEST(test_sorted_by_bytes) {
  expect_resolved("{\"b\":\"1\",\"_x\":\"2\",\"B\":\"3\",\"A1\":\"4\","
                  "\"A\":\"5\"}",
                  NULL, NULL, "[\"A=5\",\"A1=4\",\"B=3\",\"_x=2\",\"b=1\"]");
}
END_TEST

START_TEST(test_values_kept_verbatim) {
  expect_resolved("{\"A\":\"x=y z\"}", NULL,
                  "{\"U\":\"\xc3\xa9$A\xe2\x82\xac\"}",
                  "[\"A=x=y z\",\"U=\xc3\xa9x=y z\xe2\x82\xac\"]");
}
END_TEST

START_TEST(test_unnormalised_layers_use_json_text) {
  expect_resolved("{\"N\":12,\"F\":1.50,\"T\":true}", NULL, "{\"V\":\"$N\"}",
                  "[\"F=1.50\",\"N=12\",\"T=true\",\"V=12\"]");
}
END_TEST

START_TEST(test_empty_layers) {
  expect_resolved(NULL, NULL, NULL, "[]");
  expect_resolved("{}", "{}", "{}", "[]");
}
END_TEST

START_TEST(test_long_values_and_names) {
  /* Names past the lookup's stack buffer and long expansions. */
  char name[400], global[1200], stage[1200], want[1200];
  memset(name, 'N', sizeof name - 1);
  name[sizeof name - 1] = '\0';
  snprintf(global, sizeof global, "{\"%s\":\"v\"}", name);
  snprintf(stage, sizeof stage, "{\"V\":\"<$%s>\"}", name);
  snprintf(want, sizeof want, "[\"%s=v\",\"V=<v>\"]", name);
  expect_resolved(global, NULL, stage, want);
}
END_TEST

/* ---- bw_env_check ----------------------------------------------------- */

START_TEST(test_check_ok) {
  expect_check("{\"ASSIGNMENT\":\"mp1\"}", "{\"NETID\":\"waf\"}",
               "{\"NETID\":\"$NETID\",\"DIR\":\"/sub/${NETID}/$ASSIGNMENT\","
               "\"ASSIGNMENT\":\"\"}",
               "students[0]", "student_pipeline[0]", NULL);
  expect_check(NULL, NULL, NULL, "students[0]", "student_pipeline[0]", NULL);
  expect_check(NULL, NULL, "{\"A\":\"$$B ${1} $ x\"}", "x", "y", NULL);
}
END_TEST

START_TEST(test_check_undefined_names_student) {
  expect_check("{\"ASSIGNMENT\":\"mp1\"}", "{}",
               "{\"DIR\":\"/sub/${NETID}/$ASSIGNMENT\"}", "students[3]",
               "student_pipeline[0]",
               "students[3]: NETID (referenced by student_pipeline[0].env.DIR) "
               "is not defined");
}
END_TEST

START_TEST(test_check_first_undefined_in_order) {
  expect_check(NULL, "{\"B\":\"1\"}", "{\"X\":\"$B\",\"Y\":\"$C$D\"}",
               "students[0]", "student_pipeline[2]",
               "students[0]: C (referenced by student_pipeline[2].env.Y) is "
               "not defined");
}
END_TEST

START_TEST(test_check_empty_value_never_fails) {
  expect_check(NULL, NULL, "{\"A\":\"\"}", "students[0]", "student_pipeline[0]",
               NULL);
}
END_TEST

START_TEST(test_check_stage_names_do_not_count) {
  expect_check(NULL, NULL, "{\"A\":\"a\",\"B\":\"${A}\"}",
               "pre_processing_pipeline", "pre_processing_pipeline[0]",
               "pre_processing_pipeline: A (referenced by "
               "pre_processing_pipeline[0].env.B) is not defined");
}
END_TEST

START_TEST(test_check_without_prefixes) {
  expect_check(NULL, NULL, "{\"B\":\"$A\"}", NULL, NULL,
               "A (referenced by env.B) is not defined");
}
END_TEST

/* ---- the 2019 API's merge (PROTOCOL-LATER.md §2.9.3) ------------------ */

START_TEST(test_gen3_merge_spec_example) {
  json_object *global = json_tokener_parse("{\"A\":\"g\"}"),
              *stage = json_tokener_parse("{\"A\":\"s\",\"B\":\"s\"}"),
              *student =
                  json_tokener_parse("{\"B\":\"u\",\"STUDENT_ID\":\"x\"}"),
              *want = json_tokener_parse(
                  "{\"A\":\"s\",\"B\":\"u\",\"STUDENT_ID\":\"x\","
                  "\"GRADING_RUN_ID\":\"r\",\"GRADING_JOB_ID\":\"j\"}");
  json_object *env = bw_env_merge_gen3(global, stage, student, "r", "j");
  ck_assert_msg(json_object_equal(env, want), "%s",
                json_object_to_json_string(env));
  /* the layers are left as they were: the next student starts afresh */
  ck_assert_int_eq(json_object_object_length(stage), 2);
  ck_assert_str_eq(json_object_get_string(json_object_object_get(stage, "B")),
                   "s");
  json_object_put(env);
  json_object_put(global);
  json_object_put(stage);
  json_object_put(student);
  json_object_put(want);
}
END_TEST

START_TEST(test_gen3_merge_precedence_and_types) {
  json_object *global = json_tokener_parse(
                  "{\"GRADING_RUN_ID\":\"no\",\"N\":1,\"$X\":\"$HOME\"}"),
              *stage = json_tokener_parse("{\"GRADING_RUN_ID\":\"stage\"}"),
              *runtime = json_tokener_parse(
                  "{\"GRADING_JOB_ID\":\"no\",\"L\":[1,2],\"N\":null}");
  json_object *env = bw_env_merge_gen3(global, stage, runtime, "r", "j");
  /* a stage may override GRADING_RUN_ID, nothing GRADING_JOB_ID */
  ck_assert_str_eq(
      json_object_get_string(json_object_object_get(env, "GRADING_RUN_ID")),
      "stage");
  ck_assert_str_eq(
      json_object_get_string(json_object_object_get(env, "GRADING_JOB_ID")),
      "j");
  /* literal values keep their JSON type; no $NAME expansion */
  ck_assert(json_object_is_type(json_object_object_get(env, "L"),
                                json_type_array));
  ck_assert(json_object_object_get_ex(env, "N", NULL));
  ck_assert_ptr_null(json_object_object_get(env, "N"));
  ck_assert_str_eq(json_object_get_string(json_object_object_get(env, "$X")),
                   "$HOME");
  json_object_put(env);
  /* missing and non-object layers count as empty */
  env = bw_env_merge_gen3(NULL, NULL, NULL, "r", "j");
  ck_assert_int_eq(json_object_object_length(env), 2);
  json_object_put(env);
  json_object_put(global);
  json_object_put(stage);
  json_object_put(runtime);
}
END_TEST

static Suite *env_suite(void) {
  Suite *s = suite_create("env");
  TCase *scan = tcase_create("scan");
  TCase *resolve = tcase_create("resolve");
  TCase *check = tcase_create("check");

  tcase_add_test(scan, test_scan_pieces);
  tcase_add_test(scan, test_scan_literal_dollars);
  tcase_add_test(scan, test_scan_stops_on_nonzero);
  suite_add_tcase(s, scan);

  tcase_add_test(resolve, test_protocol_example);
  tcase_add_test(resolve, test_layers_union);
  tcase_add_test(resolve, test_precedence);
  tcase_add_test(resolve, test_reference_student_over_global);
  tcase_add_test(resolve, test_reference_forms);
  tcase_add_test(resolve, test_stage_layer_not_referenced);
  tcase_add_test(resolve, test_expansion_not_recursive);
  tcase_add_test(resolve, test_empty_inherits);
  tcase_add_test(resolve, test_ids_added_and_override);
  tcase_add_test(resolve, test_sorted_by_bytes);
  tcase_add_test(resolve, test_values_kept_verbatim);
  tcase_add_test(resolve, test_unnormalised_layers_use_json_text);
  tcase_add_test(resolve, test_empty_layers);
  tcase_add_test(resolve, test_long_values_and_names);
  suite_add_tcase(s, resolve);

  tcase_add_test(check, test_check_ok);
  tcase_add_test(check, test_check_undefined_names_student);
  tcase_add_test(check, test_check_first_undefined_in_order);
  tcase_add_test(check, test_check_empty_value_never_fails);
  tcase_add_test(check, test_check_stage_names_do_not_count);
  tcase_add_test(check, test_check_without_prefixes);
  suite_add_tcase(s, check);

  TCase *gen3 = tcase_create("gen3");
  tcase_add_test(gen3, test_gen3_merge_spec_example);
  tcase_add_test(gen3, test_gen3_merge_precedence_and_types);
  suite_add_tcase(s, gen3);
  return s;
}

int main(void) {
  return bw_test_main(env_suite());
}
