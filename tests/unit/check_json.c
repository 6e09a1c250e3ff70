/* check_json.c - common/json.c: request body parsing (syntax, UTF-8, NUL,
 * depth, forbidden keys, number range), JSend envelopes, BSON <-> JSON. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "../lib/suite.h"

/* Parses `len` bytes of `body` with depth 32 and expects the exact error. */
static void expect_error_len(const char *body, size_t len,
                             const char *message) {
  json_object *out = (json_object *)1;
  bw_error_t error = {0};
  int rc = bw_json_parse_body(body, len, 32, &out, &error);
  ck_assert_int_eq(rc, BW_EINVAL);
  ck_assert_int_eq(error.code, BW_EINVAL);
  ck_assert_ptr_null(out);
  ck_assert_str_eq(error.message, message);
}

static void expect_error(const char *body, const char *message) {
  expect_error_len(body, strlen(body), message);
}

/* Parses `body` and returns the object (the caller puts it). */
static json_object *expect_ok_depth(const char *body, int depth) {
  json_object *out = NULL;
  bw_error_t error = {0};
  int rc = bw_json_parse_body(body, strlen(body), depth, &out, &error);
  ck_assert_msg(rc == 0, "%s -> %s", body, error.message);
  ck_assert(json_object_is_type(out, json_type_object));
  return out;
}

static json_object *expect_ok(const char *body) {
  return expect_ok_depth(body, 32);
}

static void expect_same(const char *body, const char *compact) {
  json_object *out = expect_ok(body);
  ck_assert_str_eq(
      json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN |
                                              JSON_C_TO_STRING_NOSLASHESCAPE),
      compact);
  json_object_put(out);
}

/* {"a": [[...[]...]]}: the object is level 1, each array one more. */
static char *nested(int levels) {
  char *text = malloc((size_t)levels * 2 + 16);
  int i, n = 0;
  n += sprintf(text, "{\"a\":");
  for (i = 1; i < levels; i++)
    text[n++] = '[';
  for (i = 1; i < levels; i++)
    text[n++] = ']';
  strcpy(text + n, "}");
  return text;
}

/* ---- accepted bodies -------------------------------------------------- */

START_TEST(test_parse_simple_object) {
  json_object *out = expect_ok(" {\"a\": 1, \"b\": [true, null, \"x\"]}\n");
  json_object *a;
  ck_assert(json_object_object_get_ex(out, "a", &a));
  ck_assert_int_eq(json_object_get_int(a), 1);
  json_object_put(out);
}
END_TEST

START_TEST(test_parse_empty_object) {
  expect_same("{}", "{}");
}
END_TEST

START_TEST(test_parse_keeps_number_text) {
  expect_same("{\"a\":1.50,\"b\":1e5,\"c\":-0.0,\"d\":12}",
              "{\"a\":1.50,\"b\":1e5,\"c\":-0.0,\"d\":12}");
}
END_TEST

START_TEST(test_parse_escapes) {
  json_object *out =
      expect_ok("{\"a\":\"q\\\"b\\\\s\\/n\\nt\\tu\\u00e9\\ud83d\\ude00\"}");
  json_object *a;
  ck_assert(json_object_object_get_ex(out, "a", &a));
  ck_assert_str_eq(json_object_get_string(a),
                   "q\"b\\s/n\nt\tu\xc3\xa9\xf0\x9f\x98\x80");
  json_object_put(out);
}
END_TEST

START_TEST(test_parse_raw_utf8) {
  /* 2, 3 and 4 byte sequences, including the highest code point. */
  expect_same(
      "{\"\xc3\xa9\":\"\xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf\"}",
      "{\"\xc3\xa9\":\"\xe2\x82\xac \xf0\x9f\x98\x80 "
      "\xf4\x8f\xbf\xbf\"}");
}
END_TEST

START_TEST(test_parse_dollar_and_dot_in_values_ok) {
  expect_same("{\"a$\":\"$x.y\",\"b\":{\"c_d\":\"${E}\"}}",
              "{\"a$\":\"$x.y\",\"b\":{\"c_d\":\"${E}\"}}");
}
END_TEST

START_TEST(test_parse_trailing_whitespace_ok) {
  expect_same("{\"a\":1} \t\r\n", "{\"a\":1}");
}
END_TEST

START_TEST(test_parse_integer_limits_ok) {
  expect_same("{\"a\":18446744073709551615,\"b\":-9223372036854775808}",
              "{\"a\":18446744073709551615,\"b\":-9223372036854775808}");
}
END_TEST

START_TEST(test_parse_underflow_ok) {
  json_object_put(expect_ok("{\"a\":1e-400}"));
}
END_TEST

/* ---- syntax ----------------------------------------------------------- */

START_TEST(test_empty) {
  expect_error_len("", 0, "body: empty");
  expect_error(" \n\t ", "body: empty");
}
END_TEST

START_TEST(test_null_buffer) {
  expect_error_len(NULL, 0, "body: empty");
}
END_TEST

START_TEST(test_not_an_object) {
  expect_error("[1,2]", "body: expected a JSON object");
  expect_error("  \"x\"", "body: expected a JSON object");
  expect_error("12", "body: expected a JSON object");
  expect_error("null", "body: expected a JSON object");
}
END_TEST

START_TEST(test_invalid_offsets) {
  expect_error("{\"a\":1,}", "body: invalid JSON at offset 7");
  expect_error("{\"a\" 1}", "body: invalid JSON at offset 5");
  expect_error("{\"a\":}", "body: invalid JSON at offset 5");
  expect_error("{\"a\":[1,]}", "body: invalid JSON at offset 8");
  expect_error("{\"a\":1 \"b\":2}", "body: invalid JSON at offset 7");
  expect_error("{a:1}", "body: invalid JSON at offset 1");
}
END_TEST

START_TEST(test_truncated) {
  expect_error("{\"a\":", "body: invalid JSON at offset 5");
  expect_error("{\"a\":\"xy", "body: invalid JSON at offset 8");
  expect_error("{\"a\":[1", "body: invalid JSON at offset 7");
  expect_error("{\"a\":\"x\\", "body: invalid JSON at offset 8");
  expect_error("{\"a\":\"\\u12", "body: invalid JSON at offset 6");
}
END_TEST

START_TEST(test_non_json_extensions_rejected) {
  expect_error("{'a':1}", "body: invalid JSON at offset 1");
  expect_error("{\"a\":NaN}", "body: invalid JSON at offset 5");
  expect_error("{\"a\":Infinity}", "body: invalid JSON at offset 5");
  expect_error("{\"a\":TRUE}", "body: invalid JSON at offset 5");
  expect_error("{\"a\":tru}", "body: invalid JSON at offset 8");
  expect_error("{\"a\":1/*c*/}", "body: invalid JSON at offset 6");
  expect_error("{\"a\":01}", "body: invalid JSON at offset 6");
  expect_error("{\"a\":+1}", "body: invalid JSON at offset 5");
  expect_error("{\"a\":.5}", "body: invalid JSON at offset 5");
  expect_error("{\"a\":1.}", "body: invalid JSON at offset 7");
  expect_error("{\"a\":1e}", "body: invalid JSON at offset 7");
  expect_error("\xef\xbb\xbf{}", "body: expected a JSON object");
}
END_TEST

START_TEST(test_control_characters_in_strings) {
  expect_error("{\"a\":\"x\ty\"}", "body: invalid JSON at offset 7");
  expect_error("{\"a\":\"x\ny\"}", "body: invalid JSON at offset 7");
  expect_error("{\"a\x01\":1}", "body: invalid JSON at offset 3");
}
END_TEST

START_TEST(test_bad_escapes) {
  expect_error("{\"a\":\"\\x\"}", "body: invalid JSON at offset 6");
  expect_error("{\"a\":\"\\u12g4\"}", "body: invalid JSON at offset 6");
  expect_error("{\"a\":\"\\U0041\"}", "body: invalid JSON at offset 6");
}
END_TEST

START_TEST(test_lone_surrogates) {
  expect_error("{\"a\":\"\\ud800\"}", "body: invalid JSON at offset 6");
  expect_error("{\"a\":\"\\udc00\"}", "body: invalid JSON at offset 6");
  expect_error("{\"a\":\"\\ud800\\u0041\"}", "body: invalid JSON at offset 6");
  expect_error("{\"a\":\"x\\ud83dx\"}", "body: invalid JSON at offset 7");
}
END_TEST

START_TEST(test_trailing_garbage) {
  expect_error("{\"a\":1} x",
               "body: unexpected data after the object at offset 8");
  expect_error("{\"a\":1}{}",
               "body: unexpected data after the object at offset 7");
  expect_error("{}\n,", "body: unexpected data after the object at offset 3");
}
END_TEST

/* ---- NUL bytes -------------------------------------------------------- */

START_TEST(test_raw_nul) {
  expect_error_len("{\"a\":\"x\0\"}", 10,
                   "body: contains a NUL byte at offset 7");
  expect_error_len("{}\0", 3, "body: contains a NUL byte at offset 2");
}
END_TEST

START_TEST(test_escaped_nul_in_value_names_path) {
  expect_error("{\"students\":[{},{},{\"NAME\":\"a\\u0000b\"}]}",
               "students[2].NAME: contains a NUL byte");
  expect_error("{\"a\":\"\\u0000\"}", "a: contains a NUL byte");
  expect_error("{\"p\":[{\"entry_point\":[\"x\",\"\\u0000\"]}]}",
               "p[0].entry_point[1]: contains a NUL byte");
}
END_TEST

START_TEST(test_escaped_nul_in_key) {
  expect_error("{\"a\\u0000b\":1}",
               "body: an object key contains a NUL byte at offset 3");
  expect_error("{\"x\":{\"ok\":1,\"\\u0000\":2}}",
               "body: an object key contains a NUL byte at offset 14");
}
END_TEST

/* ---- UTF-8 ------------------------------------------------------------ */

START_TEST(test_invalid_utf8) {
  expect_error("{\"a\":\"\xff\"}", "body: invalid UTF-8 at offset 6");
  expect_error("{\"a\":\"ok\x80\"}", "body: invalid UTF-8 at offset 8");
}
END_TEST

START_TEST(test_overlong_utf8) {
  expect_error("{\"a\":\"\xc0\x80\"}", "body: invalid UTF-8 at offset 6");
  expect_error("{\"a\":\"\xc1\xbf\"}", "body: invalid UTF-8 at offset 6");
  expect_error("{\"a\":\"\xe0\x80\xaf\"}", "body: invalid UTF-8 at offset 6");
  expect_error("{\"a\":\"\xf0\x80\x80\xaf\"}",
               "body: invalid UTF-8 at offset 6");
}
END_TEST

START_TEST(test_utf8_surrogates_and_range) {
  expect_error("{\"a\":\"\xed\xa0\x80\"}", "body: invalid UTF-8 at offset 6");
  expect_error("{\"a\":\"\xf4\x90\x80\x80\"}",
               "body: invalid UTF-8 at offset 6");
  expect_error("{\"a\":\"\xf5\x80\x80\x80\"}",
               "body: invalid UTF-8 at offset 6");
}
END_TEST

START_TEST(test_truncated_utf8) {
  expect_error("{\"a\":\"\xe2\x82\"}", "body: invalid UTF-8 at offset 6");
  expect_error_len("{\"a\":\"\xe2\x82", 8, "body: invalid UTF-8 at offset 6");
}
END_TEST

/* ---- depth ------------------------------------------------------------ */

START_TEST(test_depth_limit_exact) {
  char *ok = nested(32), *deep = nested(33);
  json_object_put(expect_ok(ok));
  expect_error(deep, "body: nesting deeper than 32");
  free(ok);
  free(deep);
}
END_TEST

START_TEST(test_depth_limit_configurable) {
  json_object_put(expect_ok_depth("{\"a\":{}}", 2));
  json_object *out = NULL;
  bw_error_t error;
  ck_assert_int_eq(
      bw_json_parse_body("{\"a\":{\"b\":[]}}", 14, 2, &out, &error), BW_EINVAL);
  ck_assert_str_eq(error.message, "body: nesting deeper than 2");
}
END_TEST

START_TEST(test_depth_huge_input_does_not_crash) {
  size_t n = 100000, i;
  char *text = malloc(n + 8);
  strcpy(text, "{\"a\":");
  for (i = 5; i < n; i++)
    text[i] = '[';
  text[n] = '\0';
  expect_error(text, "body: nesting deeper than 32");
  free(text);
}
END_TEST

/* ---- keys MongoDB would misread --------------------------------------- */

START_TEST(test_dollar_keys) {
  expect_error("{\"$set\":1}", "$set: keys must not start with '$'");
  expect_error("{\"students\":[{\"A\":\"1\"},{\"$where\":\"1\"}]}",
               "students[1].$where: keys must not start with '$'");
  expect_error("{\"a\":{\"b\":{\"$gt\":1}}}",
               "a.b.$gt: keys must not start with '$'");
}
END_TEST

START_TEST(test_dotted_keys) {
  expect_error("{\"env\":{\"a.b\":\"1\"}}",
               "env.a.b: keys must not contain '.'");
  expect_error("{\".\":1}", ".: keys must not contain '.'");
  expect_error("{\"info\":[{\"x\":[{\"y.\":1}]}]}",
               "info[0].x[0].y.: keys must not contain '.'");
}
END_TEST

START_TEST(test_first_problem_in_document_order) {
  expect_error("{\"a\":\"\\u0000\",\"$b\":1}", "a: contains a NUL byte");
  expect_error("{\"$b\":1,\"a\":\"\\u0000\"}",
               "$b: keys must not start with '$'");
}
END_TEST

/* ---- number range ----------------------------------------------------- */

START_TEST(test_numbers_out_of_range) {
  expect_error("{\"a\":18446744073709551616}",
               "body: number out of range at offset 5");
  expect_error("{\"a\":-9223372036854775809}",
               "body: number out of range at offset 5");
  expect_error("{\"x\":[1,1e400]}", "body: number out of range at offset 8");
  expect_error("{\"a\":-1e999}", "body: number out of range at offset 5");
}
END_TEST

/* ---- JSend ------------------------------------------------------------ */

/* (A NULL value is JSON null in json-c and prints as "null".) */
static void expect_json(json_object *value, const char *compact) {
  ck_assert_str_eq(
      json_object_to_json_string_ext(value, JSON_C_TO_STRING_PLAIN), compact);
  json_object_put(value);
}

START_TEST(test_jsend_success) {
  json_object *data = json_object_new_object();
  json_object_object_add(data, "grading_run_id", json_object_new_string("x"));
  expect_json(bw_jsend_success(data),
              "{\"status\":\"success\",\"data\":{\"grading_run_id\":\"x\"}}");
  expect_json(bw_jsend_success(NULL), "{\"status\":\"success\",\"data\":null}");
}
END_TEST

START_TEST(test_jsend_fail) {
  expect_json(bw_jsend_fail("students: required"),
              "{\"status\":\"fail\",\"data\":{\"message\":\"students: "
              "required\"}}");
}
END_TEST

START_TEST(test_jsend_error) {
  expect_json(bw_jsend_error("database unavailable", 503),
              "{\"status\":\"error\",\"message\":\"database unavailable\","
              "\"code\":503}");
}
END_TEST

/* ---- BSON <-> JSON ---------------------------------------------------- */

START_TEST(test_from_bson_types) {
  bson_t doc = BSON_INITIALIZER, child;
  bson_oid_t oid;
  const uint8_t bytes[] = {1, 2, 3};

  bson_oid_init_from_string(&oid, "5f1d0c0ffee0123456789abc");
  BSON_APPEND_OID(&doc, "_id", &oid);
  BSON_APPEND_DATE_TIME(&doc, "at", 1700000000123);
  BSON_APPEND_INT32(&doc, "i32", -7);
  BSON_APPEND_INT64(&doc, "i64", 5000000000);
  BSON_APPEND_DOUBLE(&doc, "d", 2.5);
  BSON_APPEND_BOOL(&doc, "t", true);
  BSON_APPEND_NULL(&doc, "n");
  BSON_APPEND_UTF8(&doc, "s", "h\xc3\xa9");
  BSON_APPEND_DOCUMENT_BEGIN(&doc, "sub", &child);
  BSON_APPEND_UTF8(&child, "k", "v");
  bson_append_document_end(&doc, &child);
  BSON_APPEND_ARRAY_BEGIN(&doc, "arr", &child);
  BSON_APPEND_INT32(&child, "0", 1);
  BSON_APPEND_UTF8(&child, "1", "two");
  bson_append_array_end(&doc, &child);
  BSON_APPEND_BINARY(&doc, "bin", BSON_SUBTYPE_BINARY, bytes, 3);
  expect_json(
      bw_json_from_bson(&doc),
      "{\"_id\":\"5f1d0c0ffee0123456789abc\","
      "\"at\":\"2023-11-14T22:13:20.123Z\",\"i32\":-7,"
      "\"i64\":5000000000,\"d\":2.5,\"t\":true,\"n\":null,"
      "\"s\":\"h\xc3\xa9\",\"sub\":{\"k\":\"v\"},"
      "\"arr\":[1,\"two\"],"
      "\"bin\":{\"$binary\":{\"base64\":\"AQID\",\"subType\":\"00\"}}}");
  bson_destroy(&doc);
}
END_TEST

START_TEST(test_from_bson_dates) {
  bson_t doc = BSON_INITIALIZER;
  BSON_APPEND_DATE_TIME(&doc, "epoch", 0);
  BSON_APPEND_DATE_TIME(&doc, "before", -1);
  BSON_APPEND_DATE_TIME(&doc, "ms", 1764124306007);
  expect_json(bw_json_from_bson(&doc),
              "{\"epoch\":\"1970-01-01T00:00:00.000Z\","
              "\"before\":\"1969-12-31T23:59:59.999Z\","
              "\"ms\":\"2025-11-26T02:31:46.007Z\"}");
  bson_destroy(&doc);
}
END_TEST

START_TEST(test_from_bson_non_finite_double_is_null) {
  bson_t doc = BSON_INITIALIZER;
  BSON_APPEND_DOUBLE(&doc, "x", 1.0 / 0.0);
  expect_json(bw_json_from_bson(&doc), "{\"x\":null}");
  bson_destroy(&doc);
}
END_TEST

START_TEST(test_from_bson_iter_one_value) {
  bson_t doc = BSON_INITIALIZER;
  bson_iter_t iter;
  BSON_APPEND_UTF8(&doc, "a", "x");
  BSON_APPEND_NULL(&doc, "n");
  ck_assert(bson_iter_init_find(&iter, &doc, "a"));
  expect_json(bw_json_from_bson_iter(&iter), "\"x\"");
  ck_assert(bson_iter_init_find(&iter, &doc, "n"));
  ck_assert_ptr_null(bw_json_from_bson_iter(&iter));
  bson_destroy(&doc);
}
END_TEST

START_TEST(test_append_bson_types) {
  json_object *in =
      expect_ok("{\"i\":1,\"d\":1.5,\"s\":\"x\",\"t\":false,\"n\":null,"
                "\"a\":[1,{\"e\":\"f\"}],\"o\":{\"k\":[]}}");
  bson_t doc = BSON_INITIALIZER;
  bson_iter_t iter;

  json_object_object_foreach(in, key, value)
      ck_assert_int_eq(bw_json_append_bson(&doc, key, value), 0);
  ck_assert(bson_iter_init_find(&iter, &doc, "i"));
  ck_assert_int_eq(bson_iter_type(&iter), BSON_TYPE_INT64);
  ck_assert(bson_iter_init_find(&iter, &doc, "d"));
  ck_assert_int_eq(bson_iter_type(&iter), BSON_TYPE_DOUBLE);
  ck_assert(bson_iter_init_find(&iter, &doc, "a"));
  ck_assert_int_eq(bson_iter_type(&iter), BSON_TYPE_ARRAY);
  ck_assert(bson_iter_init_find(&iter, &doc, "o"));
  ck_assert_int_eq(bson_iter_type(&iter), BSON_TYPE_DOCUMENT);
  expect_json(bw_json_from_bson(&doc),
              "{\"i\":1,\"d\":1.5,\"s\":\"x\",\"t\":false,\"n\":null,"
              "\"a\":[1,{\"e\":\"f\"}],\"o\":{\"k\":[]}}");
  bson_destroy(&doc);
  json_object_put(in);
}
END_TEST

START_TEST(test_append_bson_big_unsigned_is_double) {
  json_object *in = expect_ok("{\"u\":18446744073709551615}");
  json_object *u = json_object_object_get(in, "u");
  bson_t doc = BSON_INITIALIZER;
  bson_iter_t iter;
  ck_assert_int_eq(bw_json_append_bson(&doc, "u", u), 0);
  ck_assert(bson_iter_init_find(&iter, &doc, "u"));
  ck_assert_int_eq(bson_iter_type(&iter), BSON_TYPE_DOUBLE);
  ck_assert(bson_iter_double(&iter) > 1.8e19);
  bson_destroy(&doc);
  json_object_put(in);
}
END_TEST

START_TEST(test_json_size) {
  json_object *in = expect_ok("{ \"a\" : \"b/c\" , \"n\" : [ 1 , 2 ] }");
  ck_assert_uint_eq(bw_json_size(in), strlen("{\"a\":\"b/c\",\"n\":[1,2]}"));
  ck_assert_uint_eq(bw_json_size(NULL), 4);
  json_object_put(in);
}
END_TEST

/* ---- students kept as text (bw_json_parse_body_lazy) ------------------ */

typedef struct lazy {
  json_object *body;
  bw_json_items_t *items;
} lazy_t;

static lazy_t lazy_ok(const char *text) {
  lazy_t l;
  bw_error_t error = {0};
  int rc = bw_json_parse_body_lazy(text, strlen(text), 32, "students", &l.body,
                                   &l.items, &error);
  ck_assert_msg(rc == 0, "%s -> %s", text, error.message);
  return l;
}

static void lazy_cleanup(lazy_t *l) {
  json_object_put(l->body);
  bw_json_items_free(l->items);
}

/* Element i, compact ("null" for a JSON null). */
static const char *lazy_item(const lazy_t *l, size_t i) {
  static char text[256];
  json_object *item;
  bw_error_t error = {0};
  ck_assert_int_eq(bw_json_items_get(l->items, i, &item, &error), 0);
  snprintf(text, sizeof text, "%s",
           json_object_to_json_string_ext(item, JSON_C_TO_STRING_PLAIN));
  json_object_put(item);
  return text;
}

START_TEST(test_lazy_keeps_students_as_text) {
  lazy_t l = lazy_ok("{\"env\": {\"A\": 1}, \"students\" : [ {\"N\": \"a\"} ,"
                     "7, -1.50e3,\"s\", true, null, [1, {\"x\": []}], {} ],"
                     " \"student_pipeline\": []}");
  ck_assert_str_eq(
      json_object_to_json_string_ext(l.body, JSON_C_TO_STRING_PLAIN),
      "{\"env\":{\"A\":1},\"students\":[],"
      "\"student_pipeline\":[]}");
  ck_assert_uint_eq(bw_json_items_count(l.items), 8);
  const char *want[] = {"{\"N\":\"a\"}", "7",    "-1.50e3",        "\"s\"",
                        "true",          "null", "[1,{\"x\":[]}]", "{}"};
  for (size_t i = 0; i < 8; i++)
    ck_assert_str_eq(lazy_item(&l, i), want[i]);
  lazy_cleanup(&l);
}
END_TEST

START_TEST(test_lazy_without_an_array_parses_whole) {
  lazy_t l = lazy_ok("{\"students\": {\"a\": 1}}");
  ck_assert_ptr_null(l.items);
  ck_assert_uint_eq(bw_json_items_count(l.items), 0);
  ck_assert_str_eq(
      json_object_to_json_string_ext(l.body, JSON_C_TO_STRING_PLAIN),
      "{\"students\":{\"a\":1}}");
  lazy_cleanup(&l);
  l = lazy_ok("{\"student_pipeline\": [1], \"x\": {\"students\": [1]}}");
  ck_assert_ptr_null(l.items);
  lazy_cleanup(&l);
  l = lazy_ok("{\"students\": []}");
  ck_assert_ptr_nonnull(l.items);
  ck_assert_uint_eq(bw_json_items_count(l.items), 0);
  lazy_cleanup(&l);
}
END_TEST

/* json-c keeps the last of repeated keys, and reads escapes in keys. */
START_TEST(test_lazy_key_as_json_c_reads_it) {
  lazy_t l = lazy_ok("{\"students\": [1, 2], \"students\": [3]}");
  ck_assert_uint_eq(bw_json_items_count(l.items), 1);
  ck_assert_str_eq(lazy_item(&l, 0), "3");
  lazy_cleanup(&l);
  l = lazy_ok("{\"students\": [1, 2], \"students\": 5}");
  ck_assert_ptr_null(l.items);
  lazy_cleanup(&l);
  l = lazy_ok("{\"stud\\u0065nts\": [{\"A\": \"b\"}]}");
  ck_assert_uint_eq(bw_json_items_count(l.items), 1);
  ck_assert_str_eq(lazy_item(&l, 0), "{\"A\":\"b\"}");
  lazy_cleanup(&l);
}
END_TEST

/* The checks inside a student come when it is read, naming its place. */
START_TEST(test_lazy_student_checked_when_read) {
  lazy_t l =
      lazy_ok("{\"students\": [{\"A\": \"ok\"}, {\"x\": {\"$where\": 1}},"
              " {\"a.b\": 1}, {\"N\": \"a\\u0000b\"}]}");
  const char *want[] = {"students[1].x.$where: keys must not start with '$'",
                        "students[2].a.b: keys must not contain '.'",
                        "students[3].N: contains a NUL byte"};
  for (size_t i = 1; i < 4; i++) {
    json_object *item = (json_object *)1;
    bw_error_t error = {0};
    ck_assert_int_eq(bw_json_items_get(l.items, i, &item, &error), BW_EINVAL);
    ck_assert_ptr_null(item);
    ck_assert_str_eq(error.message, want[i - 1]);
  }
  lazy_cleanup(&l);
}
END_TEST

/* Everything the whole parse refuses outside the students, the lazy one
 * refuses the same way. */
START_TEST(test_lazy_refuses_what_the_whole_parse_refuses) {
  static const char *bodies[] = {"",
                                 "[1]",
                                 "{\"students\": [1,]}",
                                 "{\"students\": [01]}",
                                 "{\"students\": [1]} x",
                                 "{\"$x\": 1, \"students\": [1]}",
                                 "{\"students\": [{\"a\\u0000\": 1}]}",
                                 "{\"students\": [\"\xff\"]}"};
  for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
    json_object *whole = NULL, *lazy = (json_object *)1;
    bw_json_items_t *items = (bw_json_items_t *)1;
    bw_error_t a = {0}, b = {0};
    size_t len = strlen(bodies[i]);
    int rc = bw_json_parse_body(bodies[i], len, 32, &whole, &a);
    ck_assert_int_eq(rc, BW_EINVAL);
    ck_assert_int_eq(bw_json_parse_body_lazy(bodies[i], len, 32, "students",
                                             &lazy, &items, &b),
                     BW_EINVAL);
    ck_assert_ptr_null(lazy);
    ck_assert_ptr_null(items);
    ck_assert_str_eq(a.message, b.message);
  }
}
END_TEST

static Suite *json_suite(void) {
  Suite *s = suite_create("json");
  TCase *ok = tcase_create("accepted");
  TCase *syntax = tcase_create("syntax");
  TCase *nul = tcase_create("nul");
  TCase *utf8 = tcase_create("utf8");
  TCase *depth = tcase_create("depth");
  TCase *keys = tcase_create("keys");
  TCase *jsend = tcase_create("jsend");
  TCase *bson = tcase_create("bson");

  tcase_add_test(ok, test_parse_simple_object);
  tcase_add_test(ok, test_parse_empty_object);
  tcase_add_test(ok, test_parse_keeps_number_text);
  tcase_add_test(ok, test_parse_escapes);
  tcase_add_test(ok, test_parse_raw_utf8);
  tcase_add_test(ok, test_parse_dollar_and_dot_in_values_ok);
  tcase_add_test(ok, test_parse_trailing_whitespace_ok);
  tcase_add_test(ok, test_parse_integer_limits_ok);
  tcase_add_test(ok, test_parse_underflow_ok);
  suite_add_tcase(s, ok);

  tcase_add_test(syntax, test_empty);
  tcase_add_test(syntax, test_null_buffer);
  tcase_add_test(syntax, test_not_an_object);
  tcase_add_test(syntax, test_invalid_offsets);
  tcase_add_test(syntax, test_truncated);
  tcase_add_test(syntax, test_non_json_extensions_rejected);
  tcase_add_test(syntax, test_control_characters_in_strings);
  tcase_add_test(syntax, test_bad_escapes);
  tcase_add_test(syntax, test_lone_surrogates);
  tcase_add_test(syntax, test_trailing_garbage);
  tcase_add_test(syntax, test_numbers_out_of_range);
  suite_add_tcase(s, syntax);

  tcase_add_test(nul, test_raw_nul);
  tcase_add_test(nul, test_escaped_nul_in_value_names_path);
  tcase_add_test(nul, test_escaped_nul_in_key);
  suite_add_tcase(s, nul);

  tcase_add_test(utf8, test_invalid_utf8);
  tcase_add_test(utf8, test_overlong_utf8);
  tcase_add_test(utf8, test_utf8_surrogates_and_range);
  tcase_add_test(utf8, test_truncated_utf8);
  suite_add_tcase(s, utf8);

  tcase_add_test(depth, test_depth_limit_exact);
  tcase_add_test(depth, test_depth_limit_configurable);
  tcase_add_test(depth, test_depth_huge_input_does_not_crash);
  suite_add_tcase(s, depth);

  tcase_add_test(keys, test_dollar_keys);
  tcase_add_test(keys, test_dotted_keys);
  tcase_add_test(keys, test_first_problem_in_document_order);
  suite_add_tcase(s, keys);

  tcase_add_test(keys, test_lazy_keeps_students_as_text);
  tcase_add_test(keys, test_lazy_without_an_array_parses_whole);
  tcase_add_test(keys, test_lazy_key_as_json_c_reads_it);
  tcase_add_test(keys, test_lazy_student_checked_when_read);
  tcase_add_test(keys, test_lazy_refuses_what_the_whole_parse_refuses);

  tcase_add_test(jsend, test_jsend_success);
  tcase_add_test(jsend, test_jsend_fail);
  tcase_add_test(jsend, test_jsend_error);
  suite_add_tcase(s, jsend);

  tcase_add_test(bson, test_from_bson_types);
  tcase_add_test(bson, test_from_bson_dates);
  tcase_add_test(bson, test_from_bson_non_finite_double_is_null);
  tcase_add_test(bson, test_from_bson_iter_one_value);
  tcase_add_test(bson, test_append_bson_types);
  tcase_add_test(bson, test_append_bson_big_unsigned_is_double);
  tcase_add_test(bson, test_json_size);
  suite_add_tcase(s, bson);
  return s;
}

int main(void) {
  return bw_test_main(json_suite());
}
