/* run.h - grading runs: create, start, report, and advance through their
 * phases (created -> pre_processing -> students -> post_processing ->
 * succeeded | failed).
 *
 * Where it sits: db <- queue <- run <- job <- reap.  run.c queues a phase's
 * hand-outs (queue.h) and counts finished student jobs (finish.h); job.c
 * tells it when a job became final; reap.c repairs runs with its reads.
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
#include "validate.h"

/* Stores a validated config (from bw_validate_run_config) and its students
 * (read one at a time) as a new run in state "created" with one job per
 * student (and a pre/post job when those pipelines exist), all in bulk.
 * Sets *run_id to the new run's id.  Returns 0, BW_ETOOBIG (roster over a
 * document's 16 MB), or BW_EDB. */
int bw_run_create(bw_db_t *db, json_object *config,
                  const bw_json_items_t *students, bson_oid_t *run_id,
                  bw_error_t *error);

/* Creates and starts a Gen 3 run (PROTOCOL-LATER.md §2.6, gen3.h) of
 * `course`/`assignment`.  config: the stored grading config (§2.5, already
 * validated); body: the validated POST grading_run body {students_env,
 * pre_processing_env?, post_processing_env?}.  A pipeline that is missing,
 * null or [] counts as absent.  Its hand-outs carry gen BW_GEN_3 and the
 * course.  Returns 0 and *run_id; BW_EINVAL with the original's message
 * for a pre/post env without that pipeline; BW_ETOOBIG; BW_EDB. */
int bw_run_create_gen3(bw_db_t *db, const bw_config_t *cfg, const char *course,
                       const char *assignment, json_object *config,
                       json_object *body, bson_oid_t *run_id,
                       bw_error_t *error);

/* Starts a run: queues its pre-processing job, or all its student jobs.
 * Exactly once however many callers race.  Returns 0, BW_EINVAL ("grading
 * run <id> was already started"), BW_ENOTFOUND, BW_EDB. */
int bw_run_start(bw_db_t *db, const bson_oid_t *run, bw_error_t *error);

/* bw_run_start, telling the caller in *count how many student jobs it
 * queued (-1 when a pre job was queued instead). */
int bw_run_start_count(bw_db_t *db, const bson_oid_t *run, int *count,
                       bw_error_t *error);

/* Sets h's gen and course from a run's document (or its roster's): every
 * hand-out of a run carries them, so only graders of its generation take
 * it (job.h) and fair share sees its course. */
void bw_run_handout_origin(const bson_t *run_doc, bw_handout_t *h);

/* The run's state, timestamps, job counts per state and every job.
 * Returns 0 and *out, BW_ENOTFOUND, or BW_EDB. */
int bw_run_status(bw_db_t *db, const bson_oid_t *run, json_object **out,
                  bw_error_t *error);

/* The run's document (without its config unless with_config).  Returns 0,
 * BW_ENOTFOUND "grading run <id> not found", or BW_EDB; *out is
 * initialised whatever the result, and the caller bson_destroy()s it. */
int bw_run_find(bw_db_t *db, const bson_oid_t *run, bool with_config,
                bson_t *out, bw_error_t *error);

/* bw_run_status listing only `page` of the jobs (NULL: the default). */
int bw_run_status_page(bw_db_t *db, const bson_oid_t *run,
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

/* Called once per job that reached a final state, by whoever made it final
 * (`h` is its last hand-out).  Moves the run on: a pre job's end queues the
 * students or fails the run; the last student job's end queues the post job
 * (exactly once) or finishes the run; the post job's end finishes the run.
 * Safe to call again for the same job.  Returns 0 or BW_EDB. */
int bw_run_job_finished(bw_db_t *db, const bw_config_t *cfg,
                        const bw_handout_t *h, bool success, bw_error_t *error);

/* After the run's last student job: queues the post job (once: a mark
 * decides it; with stale_ok a mark older than claim_grace is redone, for
 * repair after a crash) or finishes the run.  Returns 0 or BW_EDB. */
int bw_run_after_students(bw_db_t *db, const bw_config_t *cfg,
                          const bson_oid_t *run, bool stale_ok,
                          bw_error_t *error);

/* The jobs of a run with where their hand-outs are, as status and repair
 * see them: loaded from jobs, outcomes and active (and, with `queue`, the
 * queue partitions, which only repair needs), sorted by id.  On failure the
 * caller owns nothing; on success it calls bw_run_jobs_cleanup(). */
typedef struct bw_run_job {
  bson_oid_t id;
  char type[8];
  int index;
  int attempts; /* the highest attempt seen: hand-outs so far */
  int final;    /* 0: not final, 1: succeeded, 2: failed */
  bool active;  /* being graded now */
  bool waiting; /* an entry is in the queue (repair only looks) */
  char worker[25];
  char reason[256];
  int64_t started_at, finished_at;
  json_object *student;
  int decided;       /* the attempt of the outcome final/reason come from */
  int retry_attempt; /* the last retry's attempt of this job, if any */
  int retry_index;   /* its place among that retry's jobs, or -1 */
} bw_run_job_t;

typedef struct bw_run_jobs {
  bw_run_job_t *jobs;
  size_t n;
} bw_run_jobs_t;

int bw_run_jobs_load(bw_db_t *db, const bson_oid_t *run, bool queue,
                     bw_run_jobs_t *t, bw_error_t *error);
void bw_run_jobs_cleanup(bw_run_jobs_t *t);

/* The attempt and place the run's last retry gave `job` (run_doc is the
 * run's document); false when that retry did not queue it. */
bool bw_run_retry_of(const bson_t *run_doc, const bson_oid_t *job,
                     int *attempt, int *index);

/* ---- what cancel and retry (control.c) build on ---------------------- */

/* The _id of mark `what` of the run's round: "<run>:<what>" for the first
 * pass, "<run>:r<round>:<what>" for a retry's. */
void bw_run_mark_id(const bson_oid_t *run, int round, const char *what,
                    char id[128]);

/* Inserts the once-only mark `what` of the run's `round` (0: the first
 * pass, else a retry's), flagged `cancelled` when a cancel takes it.
 * Returns 0 when this call made it, BW_EDUP when it existed, BW_EDB. */
int bw_run_mark(bw_db_t *db, const bson_oid_t *run, int round,
                const char *what, bool cancelled, bw_error_t *error);

/* The same, but also 0 when the mark exists, is older than
 * cfg->claim_grace and is not a cancel's: its maker died between the mark
 * and the (idempotent) steps after it, which the caller redoes. */
int bw_run_mark_or_stale(bw_db_t *db, const bw_config_t *cfg,
                         const bson_oid_t *run, int round, const char *what,
                         bw_error_t *error);

/* True when a cancel took the end mark of the run's `round`. */
bool bw_run_cancelled(bw_db_t *db, const bson_oid_t *run, int round);

/* Sets the run's state (and the time `stamp` when not NULL, and success
 * when >= 0).  Only the owner of a mark calls it.  0 or BW_EDB. */
int bw_run_set_state(bw_db_t *db, const bson_oid_t *run, const char *state,
                     const char *stamp, int success, bw_error_t *error);

/* What a client is shown for a job of `type` that is neither being graded
 * nor final, in a run in `run_state`: "cancelled" in a cancelled run,
 * "queued" once the run's phase has queued it, else "created" (so starting a run of 10,000 students writes no
 * job document). */
const char *bw_run_job_state(const char *type, const char *run_state);

#endif
