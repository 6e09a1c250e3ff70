/* check_beats.c - common/worker.c's reading of the `beats` documents API
 * hosts write (issue 10): a grader's last heartbeat is the later of its
 * document's and its entries', and the reaper may declare it dead only
 * once no pool can still hold an unwritten heartbeat from before its
 * deadline.  The writes themselves, a host killed between them and the
 * reaper acting on them run against the real stack in
 * tests/integration/check_faults.c (test_beats_*). */
#include <check.h>
#include <string.h>

#include "worker.h"
#include "../lib/suite.h"

#define HB 10              /* s */
#define EVERY (HB * 200LL) /* a pool's write period, ms */
#define T0 1800000000000LL /* ms */

static bw_config_t cfg_hb(void) {
  bw_config_t cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.heartbeat = HB;
  return cfg;
}

static bw_worker_pool_seen_t pool_at(int64_t at) {
  bw_worker_pool_seen_t p = {.at = at, .every_ms = EVERY};
  bson_oid_init(&p.pool, NULL);
  return p;
}

START_TEST(test_flush_period_is_a_fifth_of_the_interval) {
  bw_config_t cfg = cfg_hb();
  ck_assert_int_eq(bw_worker_flush_ms(&cfg), 2000);
  cfg.heartbeat = 1;
  ck_assert_int_eq(bw_worker_flush_ms(&cfg), 200);
}
END_TEST

START_TEST(test_last_beat_is_the_later_of_document_and_entries) {
  bw_worker_beat_t entries[2];
  bw_worker_beats_t beats = {.last = entries, .n = 2};
  bson_oid_t other;

  bson_oid_init(&entries[0].worker, NULL);
  bson_oid_init(&entries[1].worker, NULL);
  bson_oid_init(&other, NULL);
  /* sorted by worker, as bw_worker_beats_load leaves them */
  if (bson_oid_compare(&entries[0].worker, &entries[1].worker) > 0) {
    bw_worker_beat_t t = entries[0];
    entries[0] = entries[1];
    entries[1] = t;
  }
  entries[0].at = T0 + 5000;
  entries[1].at = T0 + 7000;
  ck_assert_int_eq(bw_worker_last_beat(&beats, &entries[0].worker, T0),
                   T0 + 5000);
  ck_assert_int_eq(bw_worker_last_beat(&beats, &entries[1].worker, T0 + 9000),
                   T0 + 9000);
  ck_assert_int_eq(bw_worker_last_beat(&beats, &other, T0), T0);
}
END_TEST

/* A pool that has not written since the deadline may hold a heartbeat from
 * before it: wait, unless it stopped writing 2 intervals + its period ago. */
START_TEST(test_settled_waits_for_every_recent_pool) {
  bw_config_t cfg = cfg_hb();
  int64_t deadline = T0 + 2000LL * HB;
  bw_worker_pool_seen_t pools[2] = {pool_at(deadline + 100),
                                    pool_at(deadline - 500)};
  bw_worker_beats_t beats = {.pools = pools, .npools = 1};

  ck_assert(bw_worker_beats_settled(&beats, &cfg, deadline, deadline + 200));
  beats.npools = 2; /* the second one last wrote before the deadline */
  ck_assert(!bw_worker_beats_settled(&beats, &cfg, deadline, deadline + 200));
  /* it writes again after the deadline: settled */
  pools[1].at = deadline;
  ck_assert(bw_worker_beats_settled(&beats, &cfg, deadline, deadline + 200));
  /* it was killed: settled once 2 intervals + its period have passed */
  pools[1].at = deadline - 500;
  ck_assert(!bw_worker_beats_settled(&beats, &cfg, deadline,
                                     pools[1].at + 2000LL * HB + EVERY - 1));
  ck_assert(bw_worker_beats_settled(&beats, &cfg, deadline,
                                    pools[1].at + 2000LL * HB + EVERY));
  /* no pool wrote at all: nothing can be pending */
  beats.npools = 0;
  ck_assert(bw_worker_beats_settled(&beats, &cfg, deadline, deadline));
}
END_TEST

START_TEST(test_window_covers_every_pool_that_can_defer) {
  bw_config_t cfg = cfg_hb();
  int64_t now = T0;
  /* A pool defers while now < at + 2 intervals + every: the window the
   * reaper loads must reach back past every such `at`. */
  ck_assert_int_le(bw_worker_beats_window(&cfg, now),
                   now - 2000LL * HB - EVERY);
}
END_TEST

static Suite *beats_suite(void) {
  const TTest *tests[] = {test_flush_period_is_a_fifth_of_the_interval,
                          test_last_beat_is_the_later_of_document_and_entries,
                          test_settled_waits_for_every_recent_pool,
                          test_window_covers_every_pool_that_can_defer};
  Suite *s = suite_create("beats");
  TCase *tc = tcase_create("read");
  for (size_t i = 0; i < sizeof tests / sizeof *tests; i++)
    tcase_add_test(tc, tests[i]);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return bw_test_main(beats_suite());
}
