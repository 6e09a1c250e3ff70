/* suite.h - how every test binary runs its Check suite, unit or
 * integration: Check's environment decides verbosity (CK_VERBOSITY) and
 * whether tests fork (CK_FORK, forked unless "no"). */
#ifndef BW_TEST_SUITE_H
#define BW_TEST_SUITE_H

#include <check.h>

/* Runs every test of `runner`, frees it (and its suite), and returns how
 * many tests failed. */
int bw_test_run_and_free(SRunner *runner);

/* The main() of a unit test binary: runs `suite`; returns EXIT_SUCCESS
 * when every test passed, else EXIT_FAILURE. */
int bw_test_main(Suite *suite);

#endif
