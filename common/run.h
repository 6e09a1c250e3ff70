/* run.h - grading runs: create, start, report, and advance through their
 * phases (created -> pre_processing -> students -> post_processing ->
 * succeeded | failed).
 *
 * A run's pipelines and global env are stored once, in its runs document;
 * its roster once, in rosters; each job stores only its own student entry.
 * Ownership: *out objects are new json-c references, the caller puts them. */
#ifndef BW_RUN_H
#define BW_RUN_H

#include <json-c/json.h>

#include "config.h"
#include "db.h"
#include "error.h"
#include "json.h"
#include "queue.h"

/* Stores a validated config (from bw_validate_run_config) and its students
 * (read one at a time) as a new run in state "created" with one job per
 * student (and a pre/post job when those pipelines exist), all in bulk.
 * Writes the run id (24 hex + NUL) to run_id.  Returns 0, BW_ETOOBIG (roster
 * over a document's 16 MB), or BW_EDB. */
int bw_run_create(bw_db_t *db, const bw_config_t *cfg, json_object *config,
                  const bw_json_items_t *students, char run_id[25],
                  bw_error_t *error);

/* Starts a run: queues its pre-processing job, or all its student jobs.
 * Exactly once however many callers race.  Returns 0, BW_EINVAL (malformed
 * id, or "grading run <id> was already started"), BW_ENOTFOUND, BW_EDB. */
int bw_run_start(bw_db_t *db, const bw_config_t *cfg, const char *run_id,
                 bw_error_t *error);

/* The run's state, timestamps, job counts per state and every job.
 * Returns 0 and *out, BW_EINVAL, BW_ENOTFOUND, or BW_EDB. */
int bw_run_status(bw_db_t *db, const bw_config_t *cfg, const char *run_id,
                  json_object **out, bw_error_t *error);

/* Which jobs a status lists (GET grading_run/{id}?offset=&limit=&summary=,
 * PROTOCOL.md "Reading a large run"; bw_validate_run_page reads them).
 * Jobs are in roster order (pre, students by index, post).  A run of more
 * than BW_RUN_PAGE_MAX jobs read with neither offset nor limit lists its
 * first BW_RUN_PAGE_MAX: a response stays under ~1 MB however large the
 * run.  Whenever the list is not the whole run, the status says so in
 * "jobs_page": {offset, limit, total[, next_offset]}. */
#define BW_RUN_PAGE_MAX 1000
typedef struct bw_run_page {
  bool summary; /* counts only: no "jobs", "jobs_page" has only "total" */
  long offset;  /* >= 0 */
  long limit;   /* 1..BW_RUN_PAGE_MAX; 0: not given */
} bw_run_page_t;

/* bw_run_status listing only `page` of the jobs (NULL: the default). */
int bw_run_status_page(bw_db_t *db, const bw_config_t *cfg, const char *run_id,
                       const bw_run_page_t *page, json_object **out,
                       bw_error_t *error);

/* The run's config without the roster ({env, *_pipeline}).  Pipelines never
 * change once stored, so each process keeps the last few it read: a poll
 * does not re-read them.  Returns 0 and *out (new reference), or an error. */
int bw_run_config(bw_db_t *db, const bson_oid_t *run, json_object **out,
                  bw_error_t *error);

/* The roster (students array exactly as given).  0 and *out, or an error. */
int bw_run_roster(bw_db_t *db, const bson_oid_t *run, json_object **out,
                  bw_error_t *error);

/* Copies the run's state into buf ("created" if unknown). */
void bw_run_state(bw_db_t *db, const bson_oid_t *run, char *buf, size_t len);

/* Called once per job that reached a final state, by whoever made it final
 * (`h` is its last hand-out).  Moves the run on: a pre job's end queues the
 * students or fails the run; the last student job's end queues the post job
 * (exactly once) or finishes the run; the post job's end finishes the run.
 * Safe to call again for the same job.  Returns 0 or BW_EDB. */
int bw_run_job_finished(bw_db_t *db, const bw_config_t *cfg,
                        const bw_handout_t *h, bool success, bw_error_t *error);

/* Re-drives an active run (the reaper, after crashes): re-queues jobs of its
 * current phase that are neither final, nor waiting, nor being graded, nor
 * claimed; and moves the run on when its phase's jobs are all final but it
 * did not advance.  Every step is idempotent or guarded by a once-only mark.
 * Adds the number of fixes to *repaired.  Returns 0 or BW_EDB. */
int bw_run_repair(bw_db_t *db, const bw_config_t *cfg, const bson_oid_t *run,
                  int *repaired, bw_error_t *error);

/* What a client is shown for a job of `type` that is neither being graded
 * nor final, in a run in `run_state`: "queued" once the run's phase has
 * queued it, else "created" (so starting a run of 10,000 students writes no
 * job document). */
const char *bw_run_job_state(const char *type, const char *run_state);

#endif
