/* retain.h - the retention policy: what the reaper removes from finished
 * jobs once they are older than broadway.conf's keep_output, and how little
 * it does per pass.
 *
 * Nothing is removed unless keep_output is set (0, the default, keeps
 * everything).  Past keep_output seconds after a job's result arrived, the
 * result keeps its success, its `info` entries (exit codes, durations, ...)
 * and every state, but loses the stage output: `logs`, and `stdout` and
 * `stderr` of each `info` entry.  It gets `pruned_at`, which
 * GET /api/v1/grading_job/{id} shows as `output_pruned_at`.
 *
 * Results carry `day` (bw_db_append_at); a pass reads them day by day with
 * equality filters (indexed on every backend) from a cursor kept in
 * counters/_id "retention", prunes at most BW_RETAIN_BATCH of them and looks
 * at most BW_RETAIN_DAYS days ahead, so a pass costs the same however much
 * history is stored or waits to be pruned. */
#ifndef BW_RETAIN_H
#define BW_RETAIN_H

#include "config.h"
#include "db.h"
#include "error.h"

#define BW_RETAIN_BATCH 500
#define BW_RETAIN_DAYS 31
/* Where the cursor starts when there is none yet: this many days before
 * the cutoff (older results, if any, are left alone). */
#define BW_RETAIN_FIRST_DAYS 366

/* One bounded retention pass; adds the results it pruned to *pruned.
 * Returns 0 or BW_EDB. */
int bw_retain_pass(bw_db_t *db, const bw_config_t *cfg, int *pruned,
                   bw_error_t *error);

#endif
