/* suite.c - see suite.h. */
#include "suite.h"

#include <stdlib.h>

int bw_test_run_and_free(SRunner *runner) {
  srunner_run_all(runner, CK_ENV);
  int failed = srunner_ntests_failed(runner);
  srunner_free(runner);
  return failed;
}

int bw_test_main(Suite *suite) {
  return bw_test_run_and_free(srunner_create(suite)) == 0 ? EXIT_SUCCESS
                                                          : EXIT_FAILURE;
}
