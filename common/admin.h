/* admin.h - what course staff look at: the runs (paged, by state), the
 * graders and the queue.  Reads only; every answer is built from complete
 * reads (a database error on any of them is BW_EDB, never a partial list).
 *
 * Where it sits: db <- queue <- run <- admin.  There is no course yet
 * (issue 14 adds courses): each list is built from a filter document, so a
 * course becomes one more field of it ("course" on runs, on queue entries)
 * and one more query parameter. */
#ifndef BW_ADMIN_H
#define BW_ADMIN_H

#include <json-c/json.h>

#include "config.h"
#include "db.h"
#include "error.h"

#define BW_ADMIN_RUNS_MAX 100 /* the most runs one page lists */

typedef struct bw_admin_runs_query {
  const char *state; /* NULL: any */
  int offset, limit; /* limit 1..BW_ADMIN_RUNS_MAX */
  bool counts;       /* add each run's job counts (reads its jobs) */
} bw_admin_runs_query_t;

/* Runs, newest first: {"runs": [{grading_run_id, state, success,
 * created_at, started_at, finished_at, student_count, round, counts?}],
 * "total", "offset", "limit"}.  Returns 0 and *out, or BW_EDB. */
int bw_admin_runs(bw_db_t *db, const bw_admin_runs_query_t *q,
                  json_object **out, bw_error_t *error);

/* Graders: {"workers": [{worker_id, hostname, alive, last_seen,
 * registered_at, jobs: [job ids held now], jobs_done}], "alive", "dead"}.
 * Alive: a heartbeat within 2 intervals (the reaper's rule).  0 or BW_EDB. */
int bw_admin_workers(bw_db_t *db, const bw_config_t *cfg, json_object **out,
                     bw_error_t *error);

/* The queue: {"waiting", "running", "oldest_wait_s", "runs":
 * [{grading_run_id, waiting, running, oldest_wait_s}]}.  0 or BW_EDB. */
int bw_admin_queue(bw_db_t *db, json_object **out, bw_error_t *error);

#endif
