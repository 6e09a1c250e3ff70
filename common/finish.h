/* finish.h - finish tickets: which student job of a run finished last,
 * decided exactly once with nothing but unique inserts (run.c calls it once
 * per student job that became final, to move the run on after the last).
 *
 * A series of tickets is dense: the k-th taker inserts marks
 * "<run>:fin:<series>:<k>", starting at or below the first free k and
 * moving up on a duplicate, so whoever takes ticket N-1 of a series of N is
 * its last, however many arrive at once.  One series for the whole run made
 * concurrent reporters collide (11.6 inserts per job with 16 processes), so
 * a student job first takes a ticket in its bucket (its index mod
 * BW_FINISH_BUCKETS, each with a known size), and the last of each bucket
 * then takes one in the run's series "all" of min(S, BW_FINISH_BUCKETS)
 * tickets.
 *
 * counters/"<run>" holds, per series, a hint of where to start; like this
 * process's own last ticket, it may lag, never lead. */
#ifndef BW_FINISH_H
#define BW_FINISH_H

#include <stdbool.h>

#include "db.h"

#define BW_FINISH_BUCKETS 64

/* Where the student job of roster index `index` (0 <= index < count) takes
 * its tickets in a run of `count` students. */
typedef struct bw_finish_plan {
  int bucket;          /* its series: "b<bucket>" */
  int64_t bucket_size; /* student jobs in that bucket: its last takes the */
  int64_t buckets;     /* ... ticket bucket_size-1, then one of "all"'s */
} bw_finish_plan_t;
bw_finish_plan_t bw_finish_plan(int count, int index);

/* Counts student job `job` (roster index `index` of `count`) of `run` as
 * finished.  Call it at most once per job (run.c guards it with a done
 * mark).  *last is true for exactly one job of the run, however many
 * processes count at once.  Returns 0, BW_EINTERNAL (index out of range),
 * or BW_EDB. */
int bw_finish_count(bw_db_t *db, const bson_oid_t *run, const bson_oid_t *job,
                    int index, int count, bool *last, bw_error_t *error);

/* The same for the student jobs of retry `round` (> 0; round 0 is
 * bw_finish_count), `count` being how many that retry queued: its tickets
 * are series of their own ("r<round>b<bucket>", "r<round>all"). */
int bw_finish_count_round(bw_db_t *db, const bson_oid_t *run,
                          const bson_oid_t *job, int round, int index,
                          int count, bool *last, bw_error_t *error);

#endif
