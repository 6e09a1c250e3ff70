/* job.h - one grading job: read it, accept a grader's result for it, or end
 * an attempt its grader will never report.
 *
 * A job's document in `jobs` is written once, at run creation.  Its state is
 * where its hand-outs are: waiting in a queue partition, being graded
 * (`active`), or ended (`outcomes`, and `results` once final).  The result
 * rules (PROTOCOL.md): the job must be held by the calling worker (else
 * 409); the same worker re-sending the result it already sent gets 200 and
 * nothing changes; an unknown job is 404.  Acceptance is decided by a
 * once-only insert of the attempt's outcome, so a result racing the reaper
 * (or a second copy of itself) is accepted at most once. */
#ifndef BW_JOB_H
#define BW_JOB_H

#include <json-c/json.h>

#include "config.h"
#include "db.h"
#include "error.h"
#include "queue.h"

/* Client view of a job.  Returns 0 and *out (new reference), BW_EINVAL for
 * a malformed id, BW_ENOTFOUND or BW_EDB. */
int bw_job_get(bw_db_t *db, const bw_config_t *cfg, const char *job_id,
               json_object **out, bw_error_t *error);

/* Records `result` (from bw_validate_result) for the job held by worker_id.
 * Returns 0, BW_ENOTFOUND, BW_ECONFLICT, or BW_EDB. */
int bw_job_report(bw_db_t *db, const bw_config_t *cfg, const char *job_id,
                  const char *worker_id, json_object *result,
                  bw_error_t *error);

/* Notes on the job's hand-out held by worker_id that the grader's result
 * was refused with `message` (a 400 or 413): if the job is given up later,
 * its reason says so instead of blaming the heartbeat.  Best effort (a
 * plain update of the small `active`, whose record has one writer then):
 * returns 0, BW_ENOTFOUND (not held by worker_id) or BW_EDB. */
int bw_job_note_refused(bw_db_t *db, const char *job_id, const char *worker_id,
                        const char *message, bw_error_t *error);

/* Ends hand-out `h` (its grader stopped heartbeating, or the hand-out never
 * reached the grader): queues the job again as attempt h->attempt+1 (with
 * `student`, its env, which may be NULL for pre/post jobs), or fails it with
 * `reason` once cfg->max_attempts hand-outs are used up (then *failed is
 * true and the run moves on).  Decided by the attempt's once-only outcome
 * insert.  Returns 0 when this call ended the attempt, BW_EDUP when it had
 * already ended, or BW_EDB. */
int bw_job_abandon(bw_db_t *db, const bw_config_t *cfg, const bw_handout_t *h,
                   const bson_t *student, const char *reason, bool *failed,
                   bw_error_t *error);

/* Finishes what the outcome of hand-out `h` decided, for an attempt whose
 * decider died or timed out half-way (the reaper calls it when it finds the
 * attempt already ended): re-queues the next attempt (with `student`), or
 * ends the active record and moves the run on.  Idempotent.  Returns 0,
 * BW_ENOTFOUND (no outcome: the attempt has not ended), or BW_EDB. */
int bw_job_settle(bw_db_t *db, const bw_config_t *cfg, const bw_handout_t *h,
                  const bson_t *student, bw_error_t *error);

#endif
