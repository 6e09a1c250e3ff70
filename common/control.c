#include "control.h"

#include <string.h>

#include "json.h"
#include "queue.h"
#include "run.h"

/* ---- cancel ------------------------------------------------------------ */

/* The end mark existed: the run was cancelled or finished before. */
static int control_already_over(bw_db_t *db, const bson_oid_t *run, int round,
                                const bson_t *doc, bw_error_t *error) {
  char hex[25];
  bson_oid_to_string(run, hex);
  if (bw_run_cancelled(db, run, round))
    return bw_error_set(error, BW_ECONFLICT,
                        "grading run %s was already cancelled", hex);
  return bw_error_set(error, BW_ECONFLICT,
                      "grading run %s already finished (%s)", hex,
                      bw_db_get_utf8(doc, "state", "finishing"));
}

/* After the end mark: no later phase of the round may begin.  A mark that
 * exists already is fine (that phase began; run.c's guard sees the cancel). */
static int control_block_phases(bw_db_t *db, const bson_oid_t *run, int round,
                                bw_error_t *error) {
  static const char *phases[] = {"start", "students", "post"};
  for (size_t i = 0; i < sizeof phases / sizeof *phases; i++) {
    int rc;
    if (i == 0 && round > 0)
      continue; /* only the first pass starts */
    rc = bw_run_mark(db, run, round, phases[i], false, error);
    if (rc < 0 && rc != BW_EDUP)
      return rc;
  }
  return 0;
}

/* What follows the end mark; idempotent. */
static int control_cancel_steps(bw_db_t *db, const bson_oid_t *run, int round,
                                bw_error_t *error) {
  int rc = control_block_phases(db, run, round, error);
  if (rc == 0)
    rc = bw_run_set_state(db, run, "cancelled", "finished_at", 0, error);
  if (rc == 0)
    rc = bw_queue_cancel_run(db, run, error);
  return rc;
}

int bw_control_finish_cancel(bw_db_t *db, const bson_oid_t *run, int round,
                             bw_error_t *error) {
  if (!bw_run_cancelled(db, run, round))
    return 0;
  return control_cancel_steps(db, run, round, error) < 0 ? BW_EDB : 1;
}

int bw_control_cancel(bw_db_t *db, const bson_oid_t *run, bw_error_t *error) {
  bson_t doc;
  int round, rc = bw_run_find(db, run, false, &doc, error);

  round = rc == 0 ? (int)bw_db_get_int(&doc, "round") : 0;
  if (rc == 0)
    rc = bw_run_mark(db, run, round, "end", true, error);
  if (rc == 0)
    rc = control_cancel_steps(db, run, round, error);
  /* Cancelled before: the steps again (its canceller may have died after
   * the mark), then 409 all the same. */
  if (rc == BW_EDUP && bw_run_cancelled(db, run, round) &&
      strcmp(bw_db_get_utf8(&doc, "state", ""), "cancelled") != 0)
    rc = control_cancel_steps(db, run, round, error) < 0 ? BW_EDB : BW_EDUP;
  if (rc == BW_EDUP)
    rc = control_already_over(db, run, round, &doc, error);
  bson_destroy(&doc);
  return rc;
}

/* ---- retry ------------------------------------------------------------- */

typedef struct control_retry {
  bw_run_jobs_t jobs;
  bw_run_job_t **picked; /* the student jobs to queue again */
  int n;
  bw_run_job_t *post; /* the post job, if the run has one */
  bool pre_failed, post_failed;
} control_retry_t;

static void control_pick(control_retry_t *r, bool all) {
  r->picked = bson_malloc(sizeof *r->picked * (r->jobs.n ? r->jobs.n : 1));
  for (size_t i = 0; i < r->jobs.n; i++) {
    bw_run_job_t *j = &r->jobs.jobs[i];
    if (strcmp(j->type, "pre") == 0)
      r->pre_failed = j->final == 2;
    else if (strcmp(j->type, "post") == 0) {
      r->post = j;
      r->post_failed = j->final == 2;
    } else if (j->final == 2 || (all && j->final == 1))
      r->picked[r->n++] = j;
  }
}

/* Why the run cannot be retried, or 0. */
static int control_retry_refused(const bson_oid_t *run, const bson_t *doc,
                                 const control_retry_t *r, bw_error_t *error) {
  const char *state = bw_db_get_utf8(doc, "state", "created");
  char hex[25];

  bson_oid_to_string(run, hex);
  if (strcmp(state, "succeeded") != 0 && strcmp(state, "failed") != 0)
    return bw_error_set(error, BW_ECONFLICT,
                        "grading run %s is %s: only a finished run (succeeded "
                        "or failed) can be retried",
                        hex, state);
  if (r != NULL && r->pre_failed)
    return bw_error_set(error, BW_ECONFLICT,
                        "grading run %s failed in pre-processing: no student "
                        "job ran; post a new run",
                        hex);
  if (r != NULL && r->n == 0 && !r->post_failed)
    return bw_error_set(error, BW_ECONFLICT,
                        "grading run %s has no failed jobs to retry", hex);
  return 0;
}

/* Reopens the run for round `round`: its state, the round, and each
 * retried job's attempt and place.  One writer: the retry mark's owner. */
static int control_reopen(bw_db_t *db, const bson_oid_t *run, int round,
                          const control_retry_t *r, bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, unset,
         retry, entry;
  int rc = 0;

  BSON_APPEND_OID(&filter, "_id", run);
  BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
  BSON_APPEND_UTF8(&set, "state", r->n > 0 ? "students" : "post_processing");
  BSON_APPEND_INT32(&set, "round", round);
  BSON_APPEND_INT32(&set, "retry_count", r->n);
  BSON_APPEND_INT32(&set, "post_attempt", r->post ? r->post->attempts + 1 : 1);
  BSON_APPEND_DATE_TIME(&set, "retried_at", bw_db_now_ms());
  BSON_APPEND_DOCUMENT_BEGIN(&set, "retry", &retry);
  for (int i = 0; i < r->n; i++) {
    char hex[25];
    bson_oid_to_string(&r->picked[i]->id, hex);
    BSON_APPEND_DOCUMENT_BEGIN(&retry, hex, &entry);
    BSON_APPEND_INT32(&entry, "attempt", r->picked[i]->attempts + 1);
    BSON_APPEND_INT32(&entry, "index", i);
    bson_append_document_end(&retry, &entry);
  }
  bson_append_document_end(&set, &retry);
  bson_append_document_end(&update, &set);
  BSON_APPEND_DOCUMENT_BEGIN(&update, "$unset", &unset);
  BSON_APPEND_UTF8(&unset, "finished_at", "");
  BSON_APPEND_UTF8(&unset, "success", "");
  bson_append_document_end(&update, &unset);
  rc = bw_db_update_one(db, BW_COLL_RUNS, &filter, &update, NULL, error);
  bson_destroy(&filter);
  bson_destroy(&update);
  return rc;
}

/* Queues the picked jobs' next attempts, counted among round `round`. */
static int control_queue_picked(bw_db_t *db, const bson_t *run_doc,
                                const bson_oid_t *run, int round,
                                const control_retry_t *r, bw_error_t *error) {
  bw_queue_batch_t *batch = bw_queue_batch_alloc(db);
  int rc;

  for (int i = 0; i < r->n; i++) {
    bw_handout_t h = {.attempt = r->picked[i]->attempts + 1,
                      .first_attempt = r->picked[i]->attempts + 1,
                      .round = round,
                      .index = i,
                      .student_count = r->n,
                      .type = "student"};
    bson_t holder = BSON_INITIALIZER, env;
    bson_oid_copy(&r->picked[i]->id, &h.job_id);
    bson_oid_copy(run, &h.run_id);
    bw_run_handout_origin(run_doc, &h);
    if (r->picked[i]->student != NULL)
      bw_json_append_bson(&holder, "s", r->picked[i]->student);
    bw_queue_batch_add(batch, &h,
                       bw_db_get_doc(&holder, "s", &env) ? &env : NULL);
    bson_destroy(&holder);
  }
  rc = bw_queue_batch_push(batch, error);
  bw_queue_batch_free(batch);
  return rc;
}

static json_object *control_retry_reply(const bson_oid_t *run, int round,
                                        int n) {
  json_object *out = json_object_new_object();
  char hex[25];
  bson_oid_to_string(run, hex);
  json_object_object_add(out, "grading_run_id", json_object_new_string(hex));
  json_object_object_add(out, "round", json_object_new_int(round));
  json_object_object_add(out, "retried", json_object_new_int(n));
  return out;
}

int bw_control_retry(bw_db_t *db, const bw_config_t *cfg, const bson_oid_t *run,
                     bool all, json_object **out, bw_error_t *error) {
  control_retry_t r;
  bson_t doc;
  char hex[25];
  int round = 0, rc = bw_run_find(db, run, false, &doc, error);

  *out = NULL;
  memset(&r, 0, sizeof r);
  if (rc == 0)
    rc = control_retry_refused(run, &doc, NULL, error);
  if (rc == 0)
    rc = bw_run_jobs_load(db, run, false, &r.jobs, error);
  if (rc == 0) {
    control_pick(&r, all);
    rc = control_retry_refused(run, &doc, &r, error);
  }
  if (rc == 0) {
    round = (int)bw_db_get_int(&doc, "round") + 1;
    /* A retry mark older than claim_grace on a run still finished: its
     * maker died before reopening it; the steps after it are idempotent. */
    rc = bw_run_mark_or_stale(db, cfg, run, round, "retry", error);
    bson_oid_to_string(run, hex);
    if (rc == BW_EDUP)
      rc = bw_error_set(error, BW_ECONFLICT,
                        "grading run %s is being retried already", hex);
  }
  if (rc == 0)
    rc = control_reopen(db, run, round, &r, error);
  if (rc == 0 && r.n > 0)
    rc = control_queue_picked(db, &doc, run, round, &r, error);
  else if (rc == 0) /* only post-processing failed: run it again */
    rc = bw_run_after_students(db, cfg, run, false, error);
  if (rc == 0)
    *out = control_retry_reply(run, round, r.n);
  bson_free(r.picked);
  bw_run_jobs_cleanup(&r.jobs);
  bson_destroy(&doc);
  return rc;
}
