/* lane.h - fair share: where a run's waiting hand-outs are, and whose turn
 * it is (issue 14).
 *
 * A lane is one run with hand-outs waiting: lanes/_id "<run hex>" {run_id,
 * course, gen, partition, opened_at}.  Its entries all go to the one queue
 * partition chosen when the lane opened (one no other lane uses, when there
 * is one), so that partition's first page (the flat-cost read, queue.h) is
 * the run's next entries whatever else is queued.  A poll reads the lanes
 * of its generation (one small collection), takes the next course in turn,
 * then that course's next run in turn, and reads that lane's page: courses
 * interleave round-robin, and within a course its runs do, so a 5-job run
 * posted after a 1,000-job one starts at once.  Seed-era runs all belong to
 * course "".
 *
 * Whose turn it is: one counter per generation, incremented by every poll.
 * In the FastCGI pool it lives in shared memory mapped by the parent before
 * it forks (bw_lane_share_turns), so the whole pool takes turns as one;
 * anywhere else (the reaper, tests, bench tools) it is per process, with a
 * random start.  Several API hosts each turn their own counter: still
 * round-robin on each, so still fair overall.
 *
 * Correctness does not rest on lanes (the claims do, queue.h): a lane only
 * says where to look first.  An entry with no lane (a race below, entries
 * of before lanes) is still handed out: a poll that finds nothing through
 * the lanes walks every partition, as before lanes, and the reaper opens a
 * lane for entries it finds without one (bw_queue_adopt_strays).
 *
 * Opening and closing race with pushes, and FerretDB has no atomic
 * read-then-write; inserts under a unique _id are the only atomic step.  So
 * a push inserts its entries first and then looks for the lane, inserting
 * it again when it is gone (bw_lane_confirm), and a poll that closes a lane
 * deletes it first and then looks for the run's entries again, re-inserting
 * the lane if it finds any.  Each writes before it looks, so whichever order
 * the two interleave in, one of them sees the other's write: the lane
 * exists afterwards if entries do.
 *
 * Ownership: bw_lanes_t is filled by bw_lanes_read and cleaned up by the
 * caller with bw_lanes_cleanup on every path. */
#ifndef BW_LANE_H
#define BW_LANE_H

#include <stdint.h>

#include "db.h"

/* Below queue.h (whose pushes open lanes), so it cannot include it: the
 * course size is BW_COURSE_MAX + 1 (queue.c asserts they agree), gen an
 * enum bw_gen. */
#define BW_LANE_COURSE_SIZE 64

typedef struct bw_lane {
  bson_oid_t run_id;
  char course[BW_LANE_COURSE_SIZE];
  int gen;
  int partition;
  int64_t opened_at;
} bw_lane_t;

typedef struct bw_lanes {
  bw_lane_t *v;
  size_t n;
} bw_lanes_t;

/* Maps the pool-wide turn counters; call once in the FastCGI parent before
 * forking.  0, or -1 (then each process counts its own turns). */
int bw_lane_share_turns(void);

/* The next turn of generation `gen` (a counter shared as above). */
uint64_t bw_lane_next_turn(int gen);

/* The run, course and generation a lane is opened for. */
typedef struct bw_lane_key {
  const bson_oid_t *run;
  const char *course;
  int gen;
} bw_lane_key_t;

/* The partition where entries of the run go: its lane's, opening the lane
 * when there is none.  0 or BW_EDB. */
int bw_lane_partition(bw_db_t *db, const bw_lane_key_t *key, int *partition,
                      bw_error_t *error);

/* After a push of the run into `partition`: the lane is there again if a
 * poll closed it meanwhile (looked up, inserted when missing).  0 (also
 * when it was there), or BW_EDB.
 * bw_lane_open is the same but says BW_EDUP when it was there. */
int bw_lane_confirm(bw_db_t *db, const bw_lane_key_t *key, int partition,
                    bw_error_t *error);
int bw_lane_open(bw_db_t *db, const bw_lane_key_t *key, int partition,
                 bw_error_t *error);

/* Every open lane of generation gen, sorted by course, then by when it
 * opened (then run id).  0 or BW_EDB. */
int bw_lanes_read(bw_db_t *db, int gen, bw_lanes_t *out, bw_error_t *error);
/* Every open lane of every generation, as above. */
int bw_lanes_read_all(bw_db_t *db, bw_lanes_t *out, bw_error_t *error);
void bw_lanes_cleanup(bw_lanes_t *lanes);

/* Sorts lanes as bw_lanes_read does (pure). */
void bw_lanes_sort(bw_lanes_t *lanes);

/* The order a poll tries sorted lanes in at turn `turn` (pure): order[0] is
 * the lane whose turn it is (course turn % courses, then that course's run
 * (turn / courses) % its runs), then the lanes of the following turns, then
 * any left.  order holds lanes->n indexes. */
void bw_lanes_order(const bw_lanes_t *lanes, uint64_t turn, size_t *order);

/* A lane opened less than BW_LANE_YOUNG_MS ago: its pusher may still be
 * inserting its entries (a large run's take a second), so a poll that finds
 * none yet leaves it open rather than close and reopen it. */
#define BW_LANE_YOUNG_MS 2000
bool bw_lane_young(const bw_lane_t *lane);

/* Closes the lane (its partition showed no entry of its run), unless a
 * push put one there meanwhile.  0 or BW_EDB. */
int bw_lane_close(bw_db_t *db, const bw_lane_t *lane, bw_error_t *error);

/* Closes run's lane whatever is left (a cancelled run: its entries are
 * gone).  0 or BW_EDB. */
int bw_lane_drop(bw_db_t *db, const bson_oid_t *run, bw_error_t *error);

/* Where the k-th (0-based) waiting entry of run i stands when the runs of
 * one course take turns (pure): waiting[j] is run j's number of waiting
 * entries, runs in turn order.  Each earlier round hands out one entry of
 * every run that still has one, then the runs before i in this round. */
int64_t bw_lanes_rr_position(const int64_t *waiting, size_t runs, size_t i,
                             int64_t k);

#endif
