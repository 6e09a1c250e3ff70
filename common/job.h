/* job.h - the life of one grading job's attempts: hand one out (the poll),
 * accept a grader's result for it, or end an attempt its grader will never
 * report; and the client's view of a job.
 *
 * Where it sits: db <- queue <- run <- job <- reap, fcgi/handlers.  job.c
 * puts queue.c's storage steps together (claim, dequeue, record), gives a
 * hand-out that failed half-way back, and tells run.c when a job became
 * final.
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

/* Hands one waiting job of generation `gen` (enum bw_gen: the caller's
 * API generation; entries of another generation are left for their own
 * graders) to `worker`: picks an entry of a random partition, claims it,
 * dequeues it, builds the grader's payload and records the hand-out; a
 * claimed hand-out that cannot be recorded or built is given back
 * (bw_job_abandon).  On success *out is {"job_id":..., "stages":[...],
 * "students":[...] (pre/post only)}.  Returns 0, BW_EEMPTY, or BW_EDB. */
int bw_job_poll(bw_db_t *db, const bw_config_t *cfg, const bson_oid_t *worker,
                int gen, json_object **out, bw_error_t *error);

/* Client view of a job.  Returns 0 and *out (new reference), BW_ENOTFOUND
 * or BW_EDB. */
int bw_job_get(bw_db_t *db, const bson_oid_t *job, json_object **out,
               bw_error_t *error);

/* Records `result` (from bw_validate_result) for the job held by `worker`.
 * Returns 0, BW_ENOTFOUND, BW_ECONFLICT, or BW_EDB. */
int bw_job_report(bw_db_t *db, const bw_config_t *cfg, const bson_oid_t *job,
                  const bson_oid_t *worker, json_object *result,
                  bw_error_t *error);

/* Notes on the job's hand-out held by worker_id that the grader's result
 * was refused with `message` (a 400 or 413): if the job is given up later,
 * its reason says so instead of blaming the heartbeat.  Best effort (a
 * plain update of the small `active`, whose record has one writer then):
 * returns 0, BW_ENOTFOUND (not held by worker_id) or BW_EDB. */
int bw_job_note_refused(bw_db_t *db, const bson_oid_t *job,
                        const bson_oid_t *worker, const char *message,
                        bw_error_t *error);

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
