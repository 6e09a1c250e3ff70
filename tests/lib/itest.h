/* itest.h - what every integration test binary shares: the stack its tests
 * talk to, a main() that starts it once around srunner_run_all(), a checked
 * fixture that empties the database before each test, and assertions that
 * show the response when they fail.
 *
 * Tests run forked (CK_FORK): the stack is started in main() (or in an
 * unchecked fixture of a TCase that needs a differently configured stack)
 * and the forked tests find it through bw_itest_stack(). */
#ifndef BW_TEST_ITEST_H
#define BW_TEST_ITEST_H

#include <check.h>
#include <string.h>

#include "config.h"
#include "http.h"
#include "stack.h"
#include "suite.h"
#include "util.h"

/* Starts a stack with `opts`, runs `suite` (Check's CK_ENV verbosity), stops
 * the stack (keeping its data dir if a test failed).  Returns main()'s exit
 * status: failure also when any stack's logs hold a sanitizer report (with
 * SAN=1 the service runs under ASan/UBSan, and a report there fails the
 * binary even if every response looked right).  Also stops the stack on
 * SIGINT/SIGTERM and at exit. */
int bw_itest_main(Suite *suite, const bw_test_stack_opts_t *opts);

/* The stack the current test talks to. */
bw_test_stack_t *bw_itest_stack(void);

/* For an unchecked fixture: runs the TCase's tests against another stack
 * (started with `opts`), then bw_itest_pop_stack() stops it and goes back to
 * the main one.  A stack that does not start fails every test of the TCase
 * through bw_itest_reset_db(). */
void bw_itest_push_stack(const bw_test_stack_opts_t *opts);
void bw_itest_pop_stack(void);

/* The service's default config pointed at the current stack's database, for
 * tests that call common/ directly (as a reaper or a FastCGI worker would). */
bw_config_t bw_itest_config(void);

/* A client of the current stack with its token, not registered. */
void bw_itest_client(bw_test_client_t *c);

/* Checked fixture: empties every collection so each test starts clean. */
void bw_itest_reset_db(void);

/* A TCase `name` added to `s`, whose tests may take `timeout_s` seconds
 * each; with `reset_db`, bw_itest_reset_db() is its checked fixture. */
TCase *bw_itest_tcase(Suite *s, const char *name, int timeout_s, bool reset_db);

/* A run config (caller frees) of `students` students {"NETID": "s<i>"},
 * the student pipeline [student_stage] (a stage's JSON text), and a pre
 * and a post pipeline of one stage each when asked. */
char *bw_itest_run_config(int students, const char *student_stage, bool pre,
                          bool post);

/* Polls (with `c`) until a job comes or `seconds` pass; returns the last
 * status and leaves the job in resp / job_id as bw_test_http_poll does. */
long bw_itest_poll_until_job(const bw_test_client_t *c, double seconds,
                             bw_test_http_resp_t *resp, char job_id[25]);

#define BW_BODY(r) ((r)->body ? (r)->body : "(no body)")

/* The HTTP status, showing the body when it is not the expected one. */
#define BW_ASSERT_STATUS(r, code)                                              \
  ck_assert_msg((r)->status == (code), "expected HTTP %d, got %ld: %s",        \
                (int)(code), (r)->status, BW_BODY(r))

/* A JSON body with Content-Type application/json. */
#define BW_ASSERT_JSON(r)                                                      \
  do {                                                                         \
    ck_assert_msg((r)->json != NULL, "body is not JSON: %s", BW_BODY(r));      \
    ck_assert_msg(strncmp((r)->content_type, "application/json", 16) == 0,     \
                  "Content-Type is \"%s\", not application/json",              \
                  (r)->content_type);                                          \
  } while (0)

/* {"status":"success","data":...} (data may be null) with HTTP `code`. */
#define BW_ASSERT_SUCCESS(r, code)                                             \
  do {                                                                         \
    BW_ASSERT_STATUS(r, code);                                                 \
    BW_ASSERT_JSON(r);                                                         \
    ck_assert_msg(strcmp(bw_test_http_jsend_status(r), "success") == 0,        \
                  "not a JSend success: %s", BW_BODY(r));                      \
    ck_assert_msg(json_object_object_get_ex((r)->json, "data", NULL),          \
                  "JSend success without data: %s", BW_BODY(r));               \
  } while (0)

/* {"status":"fail","data":{"message":"...needle..."}} with HTTP `code`;
 * needle "" accepts any non-empty message. */
#define BW_ASSERT_FAIL(r, code, needle)                                        \
  do {                                                                         \
    BW_ASSERT_STATUS(r, code);                                                 \
    BW_ASSERT_JSON(r);                                                         \
    ck_assert_msg(strcmp(bw_test_http_jsend_status(r), "fail") == 0,           \
                  "not a JSend fail: %s", BW_BODY(r));                         \
    ck_assert_msg(bw_test_http_message(r)[0] != '\0',                          \
                  "JSend fail without data.message: %s", BW_BODY(r));          \
    ck_assert_msg(strstr(bw_test_http_message(r), (needle)) != NULL,           \
                  "message \"%s\" does not name \"%s\"",                       \
                  bw_test_http_message(r), (needle));                          \
  } while (0)

#endif
