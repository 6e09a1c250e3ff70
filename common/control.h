/* control.h - what course staff do to a run once it exists: cancel it, or
 * retry its failed jobs.
 *
 * Where it sits: db <- queue <- run <- job <- control (and fcgi/handlers).
 * Both are decided by run.c's once-only marks (run.h, bw_run_mark), so they
 * hold on FerretDB, whose updates are unlocked read-then-write:
 *
 * - cancel takes the end mark of the run's current round, flagged
 *   "cancelled": the cancel and the run's own end are one decision, made
 *   once.  It then takes the round's phase marks (start, students, post) so
 *   no later phase begins, writes the state "cancelled", and claims and
 *   drops every waiting entry (queue.h, bw_queue_cancel_run).  Jobs being
 *   graded finish; their results are accepted and counted, but the run stays
 *   cancelled and post-processing never runs.  A phase whose mark was taken
 *   just before the cancel checks for it after its own writes (run.c), and
 *   so does a re-queue (job.c): whichever comes last cleans up.
 * - retry takes the mark "r<N>:retry" (N = the run's round + 1): exactly one
 *   caller reopens a finished run.  Its failed student jobs (or all of them)
 *   are queued again as new attempts, counted by finish tickets of round N
 *   alone, and post-processing runs again once, under round N's marks.
 *   The runs document records the round and each retried job's attempt and
 *   place (`retry`), which status, job views and repair read.
 *
 * Decisions where the issue was silent: a cancelled run cannot be retried
 * (409; post a new run); a run whose pre-processing failed cannot be
 * retried (409: none of its students ran); cancelling a run that is not
 * started yet is allowed (it can then never start). */
#ifndef BW_CONTROL_H
#define BW_CONTROL_H

#include <json-c/json.h>

#include "config.h"
#include "db.h"
#include "error.h"

/* Returns 0, BW_ENOTFOUND, BW_ECONFLICT ("grading run <id> was already
 * cancelled" / "... already finished (succeeded)"), or BW_EDB. */
int bw_control_cancel(bw_db_t *db, const bson_oid_t *run, bw_error_t *error);

/* Finishes a cancel whose canceller died after taking the end mark (the
 * reaper's repair calls it for every active run): when the round's end mark
 * is a cancel, does the cancel's remaining steps.  Returns 1 when it did,
 * 0 when the run was not cancelled, or BW_EDB. */
int bw_control_finish_cancel(bw_db_t *db, const bson_oid_t *run, int round,
                             bw_error_t *error);

/* Queues the run's failed student jobs again (every student job with
 * `all`) as new attempts, and its post-processing after them.  *out is
 * {"grading_run_id", "round", "retried": <jobs queued>}.  Returns 0,
 * BW_ENOTFOUND, BW_ECONFLICT (not finished, cancelled, nothing to retry,
 * pre-processing failed, another retry won), or BW_EDB. */
int bw_control_retry(bw_db_t *db, const bw_config_t *cfg, const bson_oid_t *run,
                     bool all, json_object **out, bw_error_t *error);

#endif
