/* check_fuzz_regressions.c - one test per bug the fuzzer harness
 * (tests/fuzz/fuzz_body.c) found or its invariants exposed; the input that
 * showed it is also in tests/fuzz/corpus/regress_*.json. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "json.h"
#include "validate.h"
#include "../lib/suite.h"

/* A student env value given as a JSON number is turned into its text; that
 * text was not held to max_env_value, so a 200-digit number passed a limit
 * of 128 bytes. */
START_TEST(number_env_value_is_held_to_max_env_value) {
  bw_config_t cfg;
  bw_config_init(&cfg);
  cfg.max_env_value = 128;
  char body[512];
  char digits[260];
  memset(digits, '0', 200);
  digits[200] = '\0';
  snprintf(body, sizeof body,
           "{\"students\":[{\"A\":0.%s1}],"
           "\"student_pipeline\":[{\"image\":\"g\"}]}",
           digits);
  json_object *parsed = NULL, *config = NULL;
  bw_json_items_t *students = NULL;
  bw_error_t error;
  ck_assert_int_eq(bw_json_parse_body_lazy(body, strlen(body), cfg.max_depth,
                                           "students", &parsed, &students,
                                           &error),
                   0);
  ck_assert_int_eq(
      bw_validate_run_config(parsed, students, &cfg, &config, &error),
      BW_EINVAL);
  ck_assert_ptr_null(config);
  ck_assert_msg(strstr(error.message, "students[0].A") != NULL, "%s",
                error.message);
  json_object_put(parsed);
  bw_json_items_free(students);
}
END_TEST

int main(void) {
  Suite *s = suite_create("fuzz_regressions");
  TCase *tc = tcase_create("validate");
  tcase_add_test(tc, number_env_value_is_held_to_max_env_value);
  suite_add_tcase(s, tc);
  return bw_test_main(s);
}
