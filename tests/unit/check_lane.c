/* check_lane.c - common/lane.c's turn order, which is pure: which lane a
 * poll tries first at each turn (courses round-robin, then the runs of the
 * course), that every lane is tried once, and where a waiting entry stands
 * when a course's runs take turns (the Queue API's position).  The lanes
 * themselves, against a real database: tests/integration/check_fair.c. */
#include <check.h>
#include <string.h>

#include "lane.h"
#include "../lib/suite.h"

/* Lanes of courses[i], opened at i (so sorting keeps this order within a
 * course), run ids 1..n. */
static bw_lanes_t make_lanes(const char *const *courses, size_t n) {
  bw_lanes_t lanes = {bson_malloc0(n * sizeof(bw_lane_t)), n};
  for (size_t i = 0; i < n; i++) {
    bson_strncpy(lanes.v[i].course, courses[i], sizeof lanes.v[i].course);
    lanes.v[i].opened_at = (int64_t)i;
    lanes.v[i].run_id.bytes[11] = (uint8_t)(i + 1);
  }
  bw_lanes_sort(&lanes);
  return lanes;
}

/* The run (1-based, as made above) whose turn t is. */
static int first_run(const bw_lanes_t *lanes, uint64_t t) {
  size_t order[16];
  bw_lanes_order(lanes, t, order);
  return lanes->v[order[0]].run_id.bytes[11];
}

START_TEST(test_courses_alternate_then_runs_within_a_course) {
  /* Course "a" has runs 1 and 3, course "b" run 2. */
  const char *courses[] = {"a", "b", "a"};
  bw_lanes_t lanes = make_lanes(courses, 3);
  /* Turns 0..5: a/1, b/2, a/3, b/2, a/1, b/2. */
  const int expect[] = {1, 2, 3, 2, 1, 2};
  for (uint64_t t = 0; t < 6; t++)
    ck_assert_int_eq(first_run(&lanes, t), expect[t]);
  bw_lanes_cleanup(&lanes);
}
END_TEST

START_TEST(test_one_course_runs_take_turns) {
  const char *courses[] = {"", "", ""};
  bw_lanes_t lanes = make_lanes(courses, 3);
  for (uint64_t t = 0; t < 9; t++)
    ck_assert_int_eq(first_run(&lanes, t), (int)(t % 3) + 1);
  /* A small run after a big one: every other turn is the small one's. */
  lanes.n = 2;
  for (uint64_t t = 100; t < 110; t++)
    ck_assert_int_eq(first_run(&lanes, t), (int)(t % 2) + 1);
  bw_lanes_cleanup(&lanes);
}
END_TEST

START_TEST(test_order_tries_every_lane_once) {
  const char *courses[] = {"a", "a", "a", "b", "c", "c"};
  bw_lanes_t lanes = make_lanes(courses, 6);
  for (uint64_t t = 0; t < 50; t++) {
    size_t order[6];
    bool seen[6] = {false};
    bw_lanes_order(&lanes, t, order);
    for (size_t i = 0; i < 6; i++) {
      ck_assert_uint_lt(order[i], 6);
      ck_assert_msg(!seen[order[i]], "turn %llu: lane %zu twice",
                    (unsigned long long)t, order[i]);
      seen[order[i]] = true;
    }
  }
  /* A turn counter near its wrap still picks a valid lane. */
  ck_assert_int_ge(first_run(&lanes, UINT64_MAX), 1);
  bw_lanes_cleanup(&lanes);
}
END_TEST

START_TEST(test_empty_lanes_order_nothing) {
  bw_lanes_t lanes = {NULL, 0};
  bw_lanes_order(&lanes, 7, NULL);
}
END_TEST

START_TEST(test_position_interleaves_runs) {
  /* Runs of 10 and 4 waiting, in that turn order: 0:r0 1:r1 2:r0 3:r1 ... */
  const int64_t waiting[] = {10, 4};
  ck_assert_int_eq(bw_lanes_rr_position(waiting, 2, 0, 0), 0);
  ck_assert_int_eq(bw_lanes_rr_position(waiting, 2, 1, 0), 1);
  ck_assert_int_eq(bw_lanes_rr_position(waiting, 2, 0, 2), 4);
  ck_assert_int_eq(bw_lanes_rr_position(waiting, 2, 1, 3), 7);
  /* After the small run is out, the big one's entries follow one another. */
  ck_assert_int_eq(bw_lanes_rr_position(waiting, 2, 0, 4), 8);
  ck_assert_int_eq(bw_lanes_rr_position(waiting, 2, 0, 9), 13);
  /* Every position from 0 to 13 is taken exactly once. */
  bool seen[14] = {false};
  for (size_t r = 0; r < 2; r++)
    for (int64_t k = 0; k < waiting[r]; k++) {
      int64_t p = bw_lanes_rr_position(waiting, 2, r, k);
      ck_assert(p >= 0 && p < 14 && !seen[p]);
      seen[p] = true;
    }
}
END_TEST

static Suite *lane_suite(void) {
  const TTest *tests[] = {test_courses_alternate_then_runs_within_a_course,
                          test_one_course_runs_take_turns,
                          test_order_tries_every_lane_once,
                          test_empty_lanes_order_nothing,
                          test_position_interleaves_runs};
  Suite *s = suite_create("lane");
  TCase *tc = tcase_create("turns");
  for (size_t i = 0; i < sizeof tests / sizeof *tests; i++)
    tcase_add_test(tc, tests[i]);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return bw_test_main(lane_suite());
}
