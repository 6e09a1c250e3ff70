/* check_course.c - common/course.c: the courses file in both of the
 * original's formats (and mixed), every refusal naming the file, the line
 * and the key, and the course check of an Authorization header (format,
 * course, token; admin vs member; messages that never carry a token). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "course.h"
#include "../lib/suite.h"

static bw_courses_t *parse_ok(const char *text) {
  bw_courses_t *courses = NULL;
  bw_error_t error = {0, ""};
  int rc = bw_courses_parse("courses.json", text, strlen(text), &courses,
                            &error);
  ck_assert_msg(rc == 0, "refused: %s", error.message);
  ck_assert_ptr_nonnull(courses);
  return courses;
}

/* Parses `text`, expects a refusal whose message contains every needle. */
static void parse_bad(const char *text, const char *needle1,
                      const char *needle2) {
  bw_courses_t *courses = (bw_courses_t *)1;
  bw_error_t error = {0, ""};
  int rc = bw_courses_parse("courses.json", text, strlen(text), &courses,
                            &error);
  ck_assert_int_eq(rc, BW_EINVAL);
  ck_assert_ptr_null(courses);
  ck_assert_msg(strstr(error.message, needle1) != NULL,
                "\"%s\" does not contain \"%s\"", error.message, needle1);
  ck_assert_msg(needle2 == NULL || strstr(error.message, needle2) != NULL,
                "\"%s\" does not contain \"%s\"", error.message, needle2);
}

static int auth(const bw_courses_t *courses, const char *header,
                const char *course, enum bw_course_role role, char *message) {
  bw_error_t error = {0, ""};
  int rc = bw_course_auth(courses, header, course, role, &error);
  if (message != NULL)
    strcpy(message, error.message);
  return rc;
}

START_TEST(test_format_2019) {
  bw_courses_t *c = parse_ok("{\"cs241\": [\"tokA\"], \"cs225\": [\"tokA\", "
                             "\"tokB\"]}");
  ck_assert_uint_eq(bw_courses_count(c), 2);
  ck_assert_int_eq(auth(c, "Bearer tokA", "cs241", BW_COURSE_ADMIN, NULL), 0);
  ck_assert_int_eq(auth(c, "Bearer tokA", "cs225", BW_COURSE_ADMIN, NULL), 0);
  ck_assert_int_eq(auth(c, "Bearer tokB", "cs225", BW_COURSE_MEMBER, NULL), 0);
  ck_assert_int_eq(auth(c, "Bearer tokB", "cs241", BW_COURSE_ADMIN, NULL),
                   BW_EAUTH);
  bw_courses_free(c);
}
END_TEST

START_TEST(test_format_later_and_mixed) {
  char message[512];
  bw_courses_t *c = parse_ok(
      "{\n"
      "  \"cs241\": {\"tokens\": [\"adm\"], \"query_tokens\": [\"view\"]},\n"
      "  \"cs-225_x\": {\"tokens\": [\"t2\"]},\n"
      "  \"old\": [\"t3\"]\n"
      "}\n");
  ck_assert_uint_eq(bw_courses_count(c), 3);
  ck_assert_int_eq(auth(c, "Bearer adm", "cs241", BW_COURSE_ADMIN, NULL), 0);
  ck_assert_int_eq(auth(c, "Bearer adm", "cs241", BW_COURSE_MEMBER, NULL), 0);
  ck_assert_int_eq(auth(c, "Bearer view", "cs241", BW_COURSE_MEMBER, NULL), 0);
  /* A query token never passes on an admin route. */
  ck_assert_int_eq(auth(c, "Bearer view", "cs241", BW_COURSE_ADMIN, message),
                   BW_EAUTH);
  ck_assert_str_eq(message, "invalid token");
  ck_assert_int_eq(auth(c, "Bearer t2", "cs-225_x", BW_COURSE_MEMBER, NULL),
                   0);
  ck_assert_int_eq(auth(c, "Bearer t3", "old", BW_COURSE_ADMIN, NULL), 0);
  bw_courses_free(c);
}
END_TEST

START_TEST(test_empty_file_object) {
  bw_courses_t *c = parse_ok("{}");
  ck_assert_uint_eq(bw_courses_count(c), 0);
  bw_courses_free(c);
}
END_TEST

START_TEST(test_syntax_error_names_line) {
  parse_bad("{\n  \"cs241\": [\"a\"],\n  \"cs225\": [\"b\"\n}\n",
            "courses.json:4:", "invalid JSON");
  parse_bad("{\"cs241\": [\"a\"]", "courses.json:1:", "end of file");
  parse_bad("[\"cs241\"]", "courses.json:1:", "expected one JSON object");
  parse_bad("{\"a\": [\"x\"]}\n{}", "courses.json:2:", NULL);
  parse_bad("", "courses.json", NULL);
}
END_TEST

START_TEST(test_bad_values_name_line_and_key) {
  parse_bad("{\n\"cs241\": [\"a\"],\n\"cs225\": \"tokB\"\n}", "courses.json:3:",
            "cs225: expected an array of tokens or an object");
  parse_bad("{\n\"cs241\": [\"a\", 7]\n}", "courses.json:2:",
            "cs241[1]: expected a string");
  parse_bad("{\"x\": [\"a\"],\n\"cs241\": {\n  \"tokens\": [\"a\"],\n"
            "  \"query_tokens\": [null]\n}}",
            "courses.json:4:", "cs241.query_tokens[0]: expected a string");
  parse_bad("{\"cs241\": {\"query_tokens\": [\"a\"]}}", "courses.json:1:",
            "cs241.tokens: missing");
  parse_bad("{\"cs241\": {\"tokens\": [\"a\"],\n \"query_token\": []}}",
            "courses.json:2:", "cs241.query_token: unknown key");
  parse_bad("{\"cs241\": {\"tokens\": \"a\"}}", "courses.json:1:",
            "cs241.tokens: expected an array of tokens");
}
END_TEST

START_TEST(test_bad_course_ids_and_tokens) {
  char long_id[128], text[256];
  memset(long_id, 'a', 64);
  long_id[64] = '\0';
  snprintf(text, sizeof text, "{\"%s\": [\"t\"]}", long_id);
  parse_bad(text, long_id, "a course id is 1 to 63");
  parse_bad("{\"cs 241\": [\"t\"]}", "cs 241: a course id", NULL);
  parse_bad("{\"cs/241\": [\"t\"]}", "cs/241: a course id", NULL);
  parse_bad("{\"\": [\"t\"]}", "a course id", NULL);
  parse_bad("{\"cs241\": [\"\"]}", "cs241[0]: a token is 1 to", NULL);
  parse_bad("{\"cs241\": [\"two words\"]}", "cs241[0]: a token", "spaces");
}
END_TEST

/* No message says what a token is, even a refused one. */
START_TEST(test_refusals_never_show_tokens) {
  bw_courses_t *c = NULL;
  bw_error_t error = {0, ""};
  const char *text = "{\"cs241\": [\"s3cret-tok\", \"bad tok\"]}";
  ck_assert_int_eq(
      bw_courses_parse("f.json", text, strlen(text), &c, &error), BW_EINVAL);
  ck_assert_ptr_null(strstr(error.message, "s3cret"));
  ck_assert_ptr_null(strstr(error.message, "bad tok"));
}
END_TEST

START_TEST(test_load_file) {
  char path[] = "/tmp/check_course_XXXXXX";
  int fd = mkstemp(path);
  bw_courses_t *c = NULL;
  bw_error_t error = {0, ""};
  const char *text = "{\"cs241\":\n [\"tokA\"],\n \"bad\": 1}\n";

  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, text, strlen(text)), (int)strlen(text));
  close(fd);
  ck_assert_int_eq(bw_courses_load(path, &c, &error), BW_EINVAL);
  ck_assert_msg(strstr(error.message, path) != NULL &&
                    strstr(error.message, ":3: bad:") != NULL,
                "%s", error.message);
  unlink(path);
  ck_assert_int_eq(bw_courses_load(path, &c, &error), BW_EINVAL);
  ck_assert_msg(strstr(error.message, "No such file") != NULL, "%s",
                error.message);
  /* No courses file: no course, and no error. */
  ck_assert_int_eq(bw_courses_load("", &c, &error), 0);
  ck_assert_ptr_null(c);
  ck_assert_int_eq(bw_courses_load(NULL, &c, &error), 0);
}
END_TEST

/* §2.2: "Bearer " exactly, then exactly one more part; the format is
 * checked before the course, the course before the token. */
START_TEST(test_auth_format) {
  static const char *const bad[] = {
      NULL,           "",           "tokA",          "bearer tokA",
      "Bearer  tokA", "Bearer tokA ", "Bearer tok A", "Bearer\ttokA",
      "BEARER tokA",  "Bearer"};
  char message[512];
  bw_courses_t *c = parse_ok("{\"cs241\": [\"tokA\"]}");

  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ck_assert_int_eq(auth(c, bad[i], "nope", BW_COURSE_ADMIN, message),
                     BW_EAUTH);
    ck_assert_msg(strcmp(message, "invalid token format") == 0,
                  "header \"%s\": %s", bad[i] ? bad[i] : "(none)", message);
  }
  ck_assert_int_eq(auth(c, "Bearer tokA", "cs225", BW_COURSE_ADMIN, message),
                   BW_EAUTH);
  ck_assert_str_eq(message, "course not found");
  ck_assert_int_eq(auth(c, "Bearer tokB", "cs241", BW_COURSE_ADMIN, message),
                   BW_EAUTH);
  ck_assert_str_eq(message, "invalid token");
  ck_assert_int_eq(auth(c, "Bearer ", "cs241", BW_COURSE_ADMIN, message),
                   BW_EAUTH);
  ck_assert_str_eq(message, "invalid token");
  ck_assert_int_eq(auth(c, "Bearer tokA", NULL, BW_COURSE_ADMIN, message),
                   BW_EAUTH);
  ck_assert_str_eq(message, "course not found");
  /* No courses file at all. */
  ck_assert_int_eq(auth(NULL, "Bearer tokA", "cs241", BW_COURSE_ADMIN, message),
                   BW_EAUTH);
  ck_assert_str_eq(message, "course not found");
  bw_courses_free(c);
}
END_TEST

static Suite *course_suite(void) {
  Suite *s = suite_create("course");
  TCase *file = tcase_create("file");
  TCase *check = tcase_create("auth");

  tcase_add_test(file, test_format_2019);
  tcase_add_test(file, test_format_later_and_mixed);
  tcase_add_test(file, test_empty_file_object);
  tcase_add_test(file, test_syntax_error_names_line);
  tcase_add_test(file, test_bad_values_name_line_and_key);
  tcase_add_test(file, test_bad_course_ids_and_tokens);
  tcase_add_test(file, test_refusals_never_show_tokens);
  tcase_add_test(file, test_load_file);
  suite_add_tcase(s, file);
  tcase_add_test(check, test_auth_format);
  suite_add_tcase(s, check);
  return s;
}

int main(void) { return bw_test_main(course_suite()); }
