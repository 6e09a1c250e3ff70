/* check_finish.c - common/finish.c's plan: which series a student job takes
 * its finish ticket in.  Exactly-once rests on it: the bucket sizes must add
 * up to the roster, every job must land in a bucket of the size the plan
 * says, and "all" must have one ticket per non-empty bucket, or no job (or
 * two) would see itself last.  The tickets themselves are taken against a
 * real database in tests/integration/check_queue.c (finish_tickets_*). */
#include <check.h>

#include "finish.h"
#include "../lib/suite.h"

/* Checks the plan of every index of a roster of `count`. */
static void check_plan(int count) {
  int64_t members[BW_FINISH_BUCKETS] = {0}, sizes[BW_FINISH_BUCKETS] = {0},
          total = 0, nonempty = 0;

  for (int i = 0; i < count; i++) {
    bw_finish_plan_t plan = bw_finish_plan(count, i);
    ck_assert_int_eq(plan.bucket, i % BW_FINISH_BUCKETS);
    ck_assert_int_eq(plan.buckets,
                     count < BW_FINISH_BUCKETS ? count : BW_FINISH_BUCKETS);
    ck_assert_int_gt(plan.bucket_size, 0);
    members[plan.bucket]++;
    sizes[plan.bucket] = plan.bucket_size;
  }
  for (int b = 0; b < BW_FINISH_BUCKETS; b++) {
    ck_assert_msg(members[b] == sizes[b],
                  "S=%d bucket %d: %lld jobs, size %lld", count, b,
                  (long long)members[b], (long long)sizes[b]);
    total += members[b];
    nonempty += members[b] > 0;
  }
  ck_assert_int_eq(total, count);
  if (count > 0)
    ck_assert_int_eq(nonempty, bw_finish_plan(count, 0).buckets);
}

START_TEST(test_plan_every_roster_size) {
  /* Below, at and around the bucket count, and a few large rosters. */
  for (int count = 1; count <= 3 * BW_FINISH_BUCKETS + 1; count++)
    check_plan(count);
  check_plan(1000);
  check_plan(10000);
  check_plan(10007);
}
END_TEST

START_TEST(test_plan_small_roster_one_job_per_bucket) {
  for (int i = 0; i < 5; i++) {
    bw_finish_plan_t plan = bw_finish_plan(5, i);
    ck_assert_int_eq(plan.bucket, i);
    ck_assert_int_eq(plan.bucket_size, 1);
    ck_assert_int_eq(plan.buckets, 5);
  }
}
END_TEST

START_TEST(test_plan_uneven_buckets) {
  /* 130 = 2 * 64 + 2: buckets 0 and 1 hold three jobs, the others two. */
  ck_assert_int_eq(bw_finish_plan(130, 0).bucket_size, 3);
  ck_assert_int_eq(bw_finish_plan(130, 65).bucket_size, 3);
  ck_assert_int_eq(bw_finish_plan(130, 129).bucket, 1);
  ck_assert_int_eq(bw_finish_plan(130, 2).bucket_size, 2);
  ck_assert_int_eq(bw_finish_plan(130, 127).bucket_size, 2);
  ck_assert_int_eq(bw_finish_plan(130, 127).buckets, BW_FINISH_BUCKETS);
}
END_TEST

START_TEST(test_count_refuses_an_index_out_of_range) {
  /* Checked before any database call, so no database is needed. */
  bson_oid_t run, job;
  bw_error_t error = {0};
  bool last = true;
  bson_oid_init(&run, NULL);
  bson_oid_init(&job, NULL);
  ck_assert_int_eq(bw_finish_count(NULL, &run, &job, 3, 3, &last, &error),
                   BW_EINTERNAL);
  ck_assert(!last);
  ck_assert_str_eq(error.message, "student job of index 3 in a run of 3");
  ck_assert_int_eq(bw_finish_count(NULL, &run, &job, -1, 3, &last, NULL),
                   BW_EINTERNAL);
}
END_TEST

static Suite *finish_suite(void) {
  const TTest *tests[] = {
      test_plan_every_roster_size, test_plan_small_roster_one_job_per_bucket,
      test_plan_uneven_buckets, test_count_refuses_an_index_out_of_range};
  Suite *s = suite_create("finish");
  TCase *plan = tcase_create("plan");
  for (size_t i = 0; i < sizeof tests / sizeof *tests; i++)
    tcase_add_test(plan, tests[i]);
  suite_add_tcase(s, plan);
  return s;
}

int main(void) {
  return bw_test_main(finish_suite());
}
