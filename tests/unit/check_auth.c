/* check_auth.c - common/auth.c: the constant-time token comparison (its
 * results, against strcmp, for every length and position of difference),
 * the Authorization header with and without "Bearer", messages that never
 * carry the token, and the worker_id header. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "../lib/suite.h"

#define TOKEN "c0ffee-5ecret-t0ken"

/* ---- bw_auth_token_equal ---------------------------------------------- */

START_TEST(test_equal_tokens) {
  ck_assert(bw_auth_token_equal(TOKEN, TOKEN));
  ck_assert(bw_auth_token_equal("x", "x"));
}
END_TEST

START_TEST(test_different_tokens) {
  ck_assert(!bw_auth_token_equal("c0ffee-5ecret-t0keN", TOKEN));
  ck_assert(!bw_auth_token_equal("C0ffee-5ecret-t0ken", TOKEN));
  ck_assert(!bw_auth_token_equal("c0ffee-5ecret-t0ke", TOKEN));
  ck_assert(!bw_auth_token_equal(TOKEN "x", TOKEN));
  ck_assert(!bw_auth_token_equal("", TOKEN));
  ck_assert(!bw_auth_token_equal(TOKEN, "c0ffee"));
}
END_TEST

START_TEST(test_null_and_empty) {
  ck_assert(!bw_auth_token_equal(NULL, TOKEN));
  ck_assert(!bw_auth_token_equal(TOKEN, NULL));
  ck_assert(!bw_auth_token_equal(NULL, NULL));
  /* An unset cluster token must not let an empty header in. */
  ck_assert(!bw_auth_token_equal("", ""));
  ck_assert(!bw_auth_token_equal("x", ""));
}
END_TEST

/* Every length up to 40 against every other, and a one-byte change at every
 * position: the compare agrees with strcmp everywhere (no early exit bug at
 * either end, no off-by-one on length). */
START_TEST(test_agrees_with_strcmp) {
  char expected[41], given[42];
  size_t n, m, i;

  for (n = 1; n <= 40; n++) {
    for (i = 0; i < n; i++)
      expected[i] = (char)('a' + (i * 7) % 26);
    expected[n] = '\0';
    for (m = 0; m <= 41; m++) {
      for (i = 0; i < m; i++)
        given[i] = (char)('a' + (i * 7) % 26);
      given[m] = '\0';
      ck_assert_int_eq(bw_auth_token_equal(given, expected),
                       strcmp(given, expected) == 0);
    }
    for (i = 0; i < n; i++) {
      strcpy(given, expected);
      given[i] ^= 0x20;
      ck_assert(!bw_auth_token_equal(given, expected));
      given[i] ^= 0x20;
      ck_assert(bw_auth_token_equal(given, expected));
    }
  }
}
END_TEST

START_TEST(test_high_bytes) {
  ck_assert(bw_auth_token_equal("\xc3\xa9\xff", "\xc3\xa9\xff"));
  ck_assert(!bw_auth_token_equal("\xc3\xa9\xfe", "\xc3\xa9\xff"));
}
END_TEST

/* ---- bw_auth_check ---------------------------------------------------- */

static void expect_auth(const char *header, const char *token, int code,
                        const char *message) {
  bw_error_t error = {0};
  int rc = bw_auth_check(header, token, &error);
  ck_assert_int_eq(rc, code);
  if (message != NULL) {
    ck_assert_int_eq(error.code, code);
    ck_assert_str_eq(error.message, message);
  }
}

START_TEST(test_check_plain_token) {
  expect_auth(TOKEN, TOKEN, 0, NULL);
}
END_TEST

START_TEST(test_check_bearer) {
  expect_auth("Bearer " TOKEN, TOKEN, 0, NULL);
  expect_auth("bearer " TOKEN, TOKEN, 0, NULL);
  expect_auth("BEARER \t " TOKEN, TOKEN, 0, NULL);
}
END_TEST

START_TEST(test_check_missing) {
  expect_auth(NULL, TOKEN, BW_EAUTH, "Authorization: missing");
  expect_auth("", TOKEN, BW_EAUTH, "Authorization: missing");
}
END_TEST

START_TEST(test_check_invalid) {
  expect_auth("nope", TOKEN, BW_EAUTH, "Authorization: invalid token");
  expect_auth("Bearer", TOKEN, BW_EAUTH, "Authorization: invalid token");
  expect_auth("Bearer ", TOKEN, BW_EAUTH, "Authorization: invalid token");
  expect_auth("Bearer" TOKEN, TOKEN, BW_EAUTH, "Authorization: invalid token");
  expect_auth("Basic " TOKEN, TOKEN, BW_EAUTH, "Authorization: invalid token");
  expect_auth(TOKEN " ", TOKEN, BW_EAUTH, "Authorization: invalid token");
}
END_TEST

START_TEST(test_check_unset_cluster_token) {
  expect_auth("", "", BW_EAUTH, "Authorization: missing");
  expect_auth("x", "", BW_EAUTH, "Authorization: invalid token");
}
END_TEST

START_TEST(test_check_message_never_has_token) {
  const char *headers[] = {NULL,           "",        "wrong",
                           "Bearer wrong", TOKEN "x", "c0ffee"};
  size_t i;
  for (i = 0; i < sizeof headers / sizeof headers[0]; i++) {
    bw_error_t error = {0};
    ck_assert_int_eq(bw_auth_check(headers[i], TOKEN, &error), BW_EAUTH);
    ck_assert_ptr_null(strstr(error.message, TOKEN));
    ck_assert_ptr_null(strstr(error.message, "c0ffee"));
    ck_assert_ptr_null(strstr(error.message, "wrong"));
  }
}
END_TEST

START_TEST(test_check_null_error_allowed) {
  ck_assert_int_eq(bw_auth_check("x", TOKEN, NULL), BW_EAUTH);
}
END_TEST

/* ---- bw_auth_worker_id ------------------------------------------------ */

static void expect_worker_error(const char *header, const char *message) {
  bson_oid_t out;
  bw_error_t error = {0};
  ck_assert_int_eq(bw_auth_worker_id(header, &out, &error), BW_EINVAL);
  ck_assert_str_eq(error.message, message);
}

/* The header parses to the ObjectId whose text is `want`. */
static void expect_worker_id(const char *header, const char *want) {
  bson_oid_t out;
  char hex[25];
  bw_error_t error;
  ck_assert_int_eq(bw_auth_worker_id(header, &out, &error), 0);
  bson_oid_to_string(&out, hex);
  ck_assert_str_eq(hex, want);
}

START_TEST(test_worker_id_ok) {
  expect_worker_id("5f1d0c0ffee0123456789abc", "5f1d0c0ffee0123456789abc");
}
END_TEST

START_TEST(test_worker_id_any_case) {
  expect_worker_id("5F1D0C0FFEE0123456789ABC", "5f1d0c0ffee0123456789abc");
}
END_TEST

START_TEST(test_worker_id_missing) {
  expect_worker_error(NULL, "worker_id: missing");
  expect_worker_error("", "worker_id: missing");
}
END_TEST

START_TEST(test_worker_id_malformed) {
  expect_worker_error("5f1d0c0ffee0123456789ab",
                      "worker_id: expected 24 hex digits");
  expect_worker_error("5f1d0c0ffee0123456789abcd",
                      "worker_id: expected 24 hex digits");
  expect_worker_error("5f1d0c0ffee0123456789abz",
                      "worker_id: expected 24 hex digits");
  expect_worker_error(" 5f1d0c0ffee0123456789abc",
                      "worker_id: expected 24 hex digits");
  expect_worker_error("ObjectId(\"5f1d0c0ffee0123456789abc\")",
                      "worker_id: expected 24 hex digits");
}
END_TEST

/* The 2019 API's strict rule (PROTOCOL-LATER.md §2.2). */
static void expect_bearer(const char *header, int code, const char *message) {
  bw_error_t error = {0, ""};
  ck_assert_int_eq(bw_auth_check_bearer(header, TOKEN, &error), code);
  if (message != NULL)
    ck_assert_str_eq(error.message, message);
}

START_TEST(test_check_bearer_strict) {
  expect_bearer("Bearer " TOKEN, 0, NULL);
  expect_bearer(NULL, BW_EAUTH, "invalid token format");
  expect_bearer(TOKEN, BW_EAUTH, "invalid token format");
  expect_bearer("bearer " TOKEN, BW_EAUTH, "invalid token format");
  expect_bearer("Bearer  " TOKEN, BW_EAUTH, "invalid token format");
  expect_bearer("Bearer " TOKEN " x", BW_EAUTH, "invalid token format");
  expect_bearer("Bearer\t" TOKEN, BW_EAUTH, "invalid token format");
  expect_bearer("Bearer ", BW_EAUTH, "invalid token");
  expect_bearer("Bearer x" TOKEN, BW_EAUTH, "invalid token");
}
END_TEST

static Suite *auth_suite(void) {
  Suite *s = suite_create("auth");
  TCase *equal = tcase_create("token_equal");
  TCase *check = tcase_create("check");
  TCase *worker = tcase_create("worker_id");

  tcase_add_test(equal, test_equal_tokens);
  tcase_add_test(equal, test_different_tokens);
  tcase_add_test(equal, test_null_and_empty);
  tcase_add_test(equal, test_agrees_with_strcmp);
  tcase_add_test(equal, test_high_bytes);
  suite_add_tcase(s, equal);

  tcase_add_test(check, test_check_plain_token);
  tcase_add_test(check, test_check_bearer);
  tcase_add_test(check, test_check_missing);
  tcase_add_test(check, test_check_invalid);
  tcase_add_test(check, test_check_unset_cluster_token);
  tcase_add_test(check, test_check_message_never_has_token);
  tcase_add_test(check, test_check_null_error_allowed);
  tcase_add_test(check, test_check_bearer_strict);
  suite_add_tcase(s, check);

  tcase_add_test(worker, test_worker_id_ok);
  tcase_add_test(worker, test_worker_id_any_case);
  tcase_add_test(worker, test_worker_id_missing);
  tcase_add_test(worker, test_worker_id_malformed);
  suite_add_tcase(s, worker);
  return s;
}

int main(void) {
  return bw_test_main(auth_suite());
}
