/* itest.c - see itest.h. */
#include "itest.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static bw_test_stack_t *main_stack;
static bw_test_stack_t *current_stack;
static bool pushed_stack_failed;
static bool sanitizer_failed; /* a stack's logs had a sanitizer report */

/* Ctrl-C or a kill of the test binary must not leave a stack running. */
static void stop_stacks_and_die(int sig) {
  signal(sig, SIG_DFL);
  bw_test_stack_stop_all();
  raise(sig);
}

static void at_exit_stop_stacks(void) {
  bw_test_stack_stop_all();
}

int bw_itest_main(Suite *suite, const bw_test_stack_opts_t *opts) {
  bw_test_http_global_init();
  atexit(at_exit_stop_stacks);
  signal(SIGINT, stop_stacks_and_die);
  signal(SIGTERM, stop_stacks_and_die);
  signal(SIGHUP, stop_stacks_and_die);
  signal(SIGPIPE, SIG_IGN);

  SRunner *runner = srunner_create(suite); /* owns the suite from here */
  main_stack = bw_test_stack_start(opts);
  if (!main_stack) {
    fprintf(stderr, "itest: the stack did not start; no test ran\n");
    srunner_free(runner);
    return EXIT_FAILURE;
  }
  current_stack = main_stack;
  int failed = bw_test_run_and_free(runner);
  if (!bw_test_stack_stop(main_stack, failed > 0))
    sanitizer_failed = true;
  main_stack = current_stack = NULL;
  if (sanitizer_failed)
    fprintf(stderr, "itest: FAILED: the service reported memory or undefined "
                    "behaviour errors (see the logs named above)\n");
  return failed == 0 && !sanitizer_failed ? EXIT_SUCCESS : EXIT_FAILURE;
}

bw_test_stack_t *bw_itest_stack(void) {
  return current_stack;
}

void bw_itest_push_stack(const bw_test_stack_opts_t *opts) {
  current_stack = bw_test_stack_start(opts);
  pushed_stack_failed = current_stack == NULL;
}

void bw_itest_pop_stack(void) {
  if (current_stack && current_stack != main_stack &&
      !bw_test_stack_stop(current_stack, false))
    sanitizer_failed = true;
  current_stack = main_stack;
  pushed_stack_failed = false;
}

bw_config_t bw_itest_config(void) {
  bw_config_t cfg;
  bw_config_init(&cfg);
  bson_strncpy(cfg.mongo_uri, bw_test_stack_mongo_uri(current_stack),
               sizeof cfg.mongo_uri);
  bson_strncpy(cfg.db_name, bw_test_stack_db_name(current_stack),
               sizeof cfg.db_name);
  return cfg;
}

void bw_itest_client(bw_test_client_t *c) {
  ck_assert_msg(current_stack != NULL, "no stack");
  bw_test_client_init(c, bw_test_stack_url(current_stack),
                      bw_test_stack_token(current_stack));
}

void bw_itest_reset_db(void) {
  ck_assert_msg(!pushed_stack_failed && current_stack != NULL,
                "the stack of this test case did not start");
  ck_assert_msg(bw_test_db_reset(current_stack) == 0,
                "could not empty the database at %s",
                bw_test_stack_mongo_uri(current_stack));
}

TCase *bw_itest_tcase(Suite *s, const char *name, int timeout_s,
                      bool reset_db) {
  TCase *tc = tcase_create(name);
  if (reset_db)
    tcase_add_checked_fixture(tc, bw_itest_reset_db, NULL);
  tcase_set_timeout(tc, timeout_s);
  suite_add_tcase(s, tc);
  return tc;
}

char *bw_itest_run_config(int students, const char *student_stage, bool pre,
                          bool post) {
  size_t cap = 256 + strlen(student_stage) + (size_t)students * 40, len = 0;
  char *config = malloc(cap);
  ck_assert_ptr_nonnull(config);
  len += (size_t)snprintf(config + len, cap - len, "{\"students\": [");
  for (int i = 0; i < students; i++)
    len += (size_t)snprintf(config + len, cap - len, "%s{\"NETID\": \"s%d\"}",
                            i ? ", " : "", i);
  len += (size_t)snprintf(config + len, cap - len,
                          "], \"student_pipeline\": [%s]", student_stage);
  if (pre)
    len += (size_t)snprintf(config + len, cap - len,
                            ", \"pre_processing_pipeline\": "
                            "[{\"image\": \"pre\"}]");
  if (post)
    len += (size_t)snprintf(config + len, cap - len,
                            ", \"post_processing_pipeline\": "
                            "[{\"image\": \"post\"}]");
  snprintf(config + len, cap - len, "}");
  return config;
}

long bw_itest_poll_until_job(const bw_test_client_t *c, double seconds,
                             bw_test_http_resp_t *resp, char job_id[25]) {
  double deadline = bw_test_now() + seconds;
  for (;;) {
    /* Long polls: the service hands the job over as soon as it is queued. */
    double left = deadline - bw_test_now();
    long status = bw_test_http_poll_wait(c, left > 5 ? 5 : left > 1 ? (int)left : 1,
                                         resp, job_id);
    if (status != 498 || bw_test_now() >= deadline)
      return status;
    bw_test_http_resp_cleanup(resp);
  }
}
