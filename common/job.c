#include "job.h"

#include <stdio.h>
#include <string.h>

#include "json.h"
#include "log.h"
#include "run.h"

/* ---- read ------------------------------------------------------------ */

/* Copies the listed fields of doc into view (as JSON). */
static void job_copy_fields(json_object *view, const bson_t *doc,
                            const char *const *fields, size_t n) {
  bson_iter_t it;
  for (size_t i = 0; i < n; i++)
    if (bson_iter_init_find(&it, doc, fields[i]))
      json_object_object_add(view, fields[i], bw_json_from_bson_iter(&it));
}

/* A job's ended attempts, read from outcomes. */
typedef struct job_history {
  int attempts; /* attempts that ended */
  bson_t final; /* the outcome that made the job final, if any */
  bool has_final;
  char reason[256]; /* the last re-queue's reason */
} job_history_t;

static void job_visit_outcome(const bson_t *doc, void *ctx) {
  job_history_t *h = ctx;
  const char *kind = bw_db_get_utf8(doc, "kind", "");
  h->attempts++;
  if (strcmp(kind, "requeued") == 0)
    bson_strncpy(h->reason, bw_db_get_utf8(doc, "reason", ""),
                 sizeof h->reason);
  else if (!h->has_final) {
    bson_copy_to(doc, &h->final);
    h->has_final = true;
  }
}

static void job_read_history(bw_db_t *db, const bson_oid_t *job,
                             job_history_t *h) {
  bson_t filter = BSON_INITIALIZER;
  memset(h, 0, sizeof *h);
  BSON_APPEND_OID(&filter, "job_id", job);
  bw_db_each(bw_db_coll(db, BW_COLL_OUTCOMES), &filter, NULL, job_visit_outcome,
             h, NULL);
  bson_destroy(&filter);
}

/* A final job: its success, who finished it and when, what the grader
 * sent (info or results, logs), or why the service gave it up. */
static const char *job_view_final(bw_db_t *db, const bson_t *outcome,
                                  json_object *view) {
  bson_t result;
  bson_iter_t it;
  char hex[25];
  bool ok = strcmp(bw_db_get_utf8(outcome, "kind", ""), "result") == 0 &&
            bson_iter_init_find(&it, outcome, "success") &&
            bson_iter_as_bool(&it);

  json_object_object_add(view, "success", json_object_new_boolean(ok));
  job_copy_fields(view, outcome, (const char *const[]){"reason"}, 1);
  if (bson_iter_init_find(&it, outcome, "at"))
    json_object_object_add(view, "finished_at", bw_json_from_bson_iter(&it));
  if (bw_db_get_oid_hex(outcome, "worker_id", hex))
    json_object_object_add(view, "worker_id", json_object_new_string(hex));
  if (bw_db_find_by_id(db, BW_COLL_RESULTS, bw_db_get_utf8(outcome, "_id", ""),
                       &result, NULL) == 0)
    job_copy_fields(view, &result,
                    (const char *const[]){"info", "results", "logs"}, 3);
  bson_destroy(&result);
  return ok ? "succeeded" : "failed";
}

int bw_job_get(bw_db_t *db, const bw_config_t *cfg, const char *job_id,
               json_object **out, bw_error_t *error) {
  bson_oid_t oid, run;
  bson_t job, active;
  bson_iter_t it;
  char hex[25], run_state[32];
  job_history_t history;
  const char *state;
  json_object *view;
  int rc, attempts;
  (void)cfg;

  *out = NULL;
  if (!bw_db_oid_parse(job_id, &oid))
    return bw_error_set(error, BW_EINVAL, "job_id: expected 24 hex digits");
  rc = bw_db_find_by_oid(db, BW_COLL_JOBS, "_id", &oid, &job, error);
  if (rc < 0) {
    bson_destroy(&job);
    return rc == BW_ENOTFOUND ? bw_error_set(error, BW_ENOTFOUND,
                                             "grading job %s not found", job_id)
                              : rc;
  }
  view = json_object_new_object();
  json_object_object_add(view, "job_id", json_object_new_string(job_id));
  if (bw_db_get_oid_hex(&job, "run_id", hex))
    json_object_object_add(view, "grading_run_id", json_object_new_string(hex));
  job_copy_fields(
      view, &job,
      (const char *const[]){"type", "index", "student", "created_at"}, 4);
  bson_iter_init_find(&it, &job, "run_id");
  bson_oid_copy(bson_iter_oid(&it), &run);
  bw_run_state(db, &run, run_state, sizeof run_state);

  job_read_history(db, &oid, &history);
  attempts = history.attempts;
  bson_init(&active);
  if (history.has_final) {
    state = job_view_final(db, &history.final, view);
    bson_destroy(&history.final);
  } else if (bson_destroy(&active),
             bw_queue_find_active(db, &oid, &active, NULL) == 0) {
    state = "running";
    attempts++;
    job_copy_fields(view, &active, (const char *const[]){"started_at"}, 1);
    if (bw_db_get_oid_hex(&active, "worker_id", hex))
      json_object_object_add(view, "worker_id", json_object_new_string(hex));
  } else {
    state =
        bw_run_job_state(bw_db_get_utf8(&job, "type", "student"), run_state);
  }
  if (history.reason[0] != '\0' && !history.has_final)
    json_object_object_add(view, "reason",
                           json_object_new_string(history.reason));
  bson_destroy(&active);
  bson_destroy(&job);
  json_object_object_add(view, "state", json_object_new_string(state));
  json_object_object_add(view, "attempts", json_object_new_int(attempts));
  *out = view;
  return 0;
}

/* ---- end of an attempt ----------------------------------------------- */

/* The attempt's outcome: inserting it is what decides, once, how the
 * attempt ended.  It carries the hand-out, so whoever finds it can finish
 * what its inserter started (bw_job_settle). */
static int job_insert_outcome(bw_db_t *db, const bw_handout_t *h,
                              const char *kind, const bson_oid_t *worker,
                              int success, const char *reason, bson_t *out,
                              bw_error_t *error) {
  bson_t doc = BSON_INITIALIZER;
  char id[48];
  int rc;

  bw_queue_entry_id(&h->job_id, h->attempt, id);
  BSON_APPEND_UTF8(&doc, "_id", id);
  bw_handout_append(&doc, h, NULL);
  BSON_APPEND_UTF8(&doc, "kind", kind);
  if (worker != NULL)
    BSON_APPEND_OID(&doc, "worker_id", worker);
  if (success >= 0)
    BSON_APPEND_BOOL(&doc, "success", success != 0);
  if (reason != NULL)
    BSON_APPEND_UTF8(&doc, "reason", reason);
  BSON_APPEND_DATE_TIME(&doc, "at", bw_db_now_ms());
  rc = bw_db_insert_once(db, BW_COLL_OUTCOMES, &doc, error);
  /* On success *out is the outcome (no need to read it back). */
  if (rc == 0 && out != NULL)
    bson_copy_to(&doc, out);
  bson_destroy(&doc);
  return rc;
}

/* What the grader sent for attempt h->attempt, stored before the outcome is
 * decided: whoever finishes the attempt later (a resend, the reaper) finds
 * it there.  It counts only if the attempt's outcome is this result. */
static int job_insert_result(bw_db_t *db, const bw_handout_t *h,
                             const bson_oid_t *worker, json_object *result,
                             bw_error_t *error) {
  bson_t doc = BSON_INITIALIZER;
  json_object *v;
  char id[48];
  int rc;

  bw_queue_entry_id(&h->job_id, h->attempt, id);
  BSON_APPEND_UTF8(&doc, "_id", id);
  BSON_APPEND_OID(&doc, "job_id", &h->job_id);
  BSON_APPEND_OID(&doc, "run_id", &h->run_id);
  BSON_APPEND_INT32(&doc, "attempt", h->attempt);
  BSON_APPEND_OID(&doc, "worker_id", worker);
  BSON_APPEND_BOOL(
      &doc, "success",
      json_object_get_boolean(json_object_object_get(result, "success")));
  /* Stored in the shape the grader sent (info or results). */
  for (size_t i = 0; i < 3; i++) {
    static const char *const fields[] = {"info", "results", "logs"};
    if (json_object_object_get_ex(result, fields[i], &v))
      bw_json_append_bson(&doc, fields[i], v);
  }
  BSON_APPEND_DATE_TIME(&doc, "at", bw_db_now_ms());
  rc = bw_db_insert_once(db, BW_COLL_RESULTS, &doc, error);
  bson_destroy(&doc);
  return rc == BW_EDUP ? 0 : rc; /* a resend: the first copy stands */
}

/* Carries out what `outcome` decided for hand-out `h`.  Every step is
 * idempotent, so this is also how a resend or the reaper finishes an
 * attempt whose decider died (or timed out) half-way. */
static int job_apply(bw_db_t *db, const bw_config_t *cfg, const bw_handout_t *h,
                     const bson_t *student, const bson_t *outcome,
                     bw_error_t *error) {
  const char *kind = bw_db_get_utf8(outcome, "kind", "");
  bson_iter_t it;
  int rc = 0;

  if (strcmp(kind, "requeued") == 0) {
    bw_handout_t next = *h;
    next.attempt = h->attempt + 1;
    /* The next attempt is queued before this one is forgotten: a crash in
     * between leaves a stale active record, never a lost job. */
    rc = bw_queue_push(db, &next, student, error);
    if (rc == 0)
      rc = bw_queue_end_active(db, &h->job_id, h->attempt, error);
    return rc;
  }
  rc = bw_queue_end_active(db, &h->job_id, h->attempt, error);
  if (rc == 0)
    rc = bw_run_job_finished(db, cfg, h,
                             strcmp(kind, "result") == 0 &&
                                 bson_iter_init_find(&it, outcome, "success") &&
                                 bson_iter_as_bool(&it),
                             error);
  return rc;
}

static int job_find_outcome(bw_db_t *db, const bw_handout_t *h, bson_t *out,
                            bw_error_t *error) {
  char id[48];
  bw_queue_entry_id(&h->job_id, h->attempt, id);
  return bw_db_find_by_id(db, BW_COLL_OUTCOMES, id, out, error);
}

int bw_job_settle(bw_db_t *db, const bw_config_t *cfg, const bw_handout_t *h,
                  const bson_t *student, bw_error_t *error) {
  bson_t outcome;
  int rc = job_find_outcome(db, h, &outcome, error);
  if (rc == 0)
    rc = job_apply(db, cfg, h, student, &outcome, error);
  bson_destroy(&outcome);
  return rc;
}

typedef struct job_own_result {
  const char *worker_id;
  bson_t outcome; /* the caller's accepted result, if found */
  bool found, any;
} job_own_result_t;

static void job_visit_own_result(const bson_t *doc, void *ctx) {
  job_own_result_t *own = ctx;
  char by[25];
  own->any = true;
  if (!own->found && strcmp(bw_db_get_utf8(doc, "kind", ""), "result") == 0 &&
      bw_db_get_oid_hex(doc, "worker_id", by) &&
      strcmp(by, own->worker_id) == 0) {
    bson_copy_to(doc, &own->outcome);
    own->found = true;
  }
}

/* The job has no hand-out held by the caller: 200 if the caller's own
 * result was already accepted (a resend; whatever the first attempt left
 * undone is finished now), 404 if there is no such job, 409 otherwise. */
static int job_not_held(bw_db_t *db, const bw_config_t *cfg,
                        const bson_oid_t *oid, const char *job_id,
                        const char *worker_id, bw_error_t *error) {
  job_own_result_t own = {.worker_id = worker_id};
  bson_t filter = BSON_INITIALIZER, doc;
  bw_handout_t h;
  int rc;

  BSON_APPEND_OID(&filter, "job_id", oid);
  rc = bw_db_each(bw_db_coll(db, BW_COLL_OUTCOMES), &filter, NULL,
                  job_visit_own_result, &own, error);
  bson_destroy(&filter);
  if (rc < 0) {
    /* The scan can fail after it copied the caller's outcome. */
    if (own.found)
      bson_destroy(&own.outcome);
    return rc;
  }
  if (own.found) {
    rc = bw_handout_from_bson(&own.outcome, &h, NULL)
             ? job_apply(db, cfg, &h, NULL, &own.outcome, error)
             : 0;
    bson_destroy(&own.outcome);
    return rc;
  }
  rc = bw_db_find_by_oid(db, BW_COLL_JOBS, "_id", oid, &doc, error);
  bson_destroy(&doc);
  if (rc == BW_ENOTFOUND)
    return bw_error_set(error, BW_ENOTFOUND, "grading job %s not found",
                        job_id);
  if (rc < 0)
    return rc;
  return bw_error_set(error, BW_ECONFLICT,
                      "grading job %s is not held by this worker (%s)", job_id,
                      own.any ? "it was re-queued or finished by another"
                              : "it was never handed to it");
}

int bw_job_report(bw_db_t *db, const bw_config_t *cfg, const char *job_id,
                  const char *worker_id, json_object *result,
                  bw_error_t *error) {
  bool success =
      json_object_get_boolean(json_object_object_get(result, "success"));
  bson_oid_t oid, worker;
  bson_t active, outcome;
  bw_handout_t h;
  char holder[25], by[25];
  int rc;

  if (!bw_db_oid_parse(job_id, &oid))
    return bw_error_set(error, BW_EINVAL, "job_id: expected 24 hex digits");
  if (!bw_db_oid_parse(worker_id, &worker))
    return bw_error_set(error, BW_EINVAL, "worker_id: expected 24 hex digits");
  rc = bw_queue_find_active(db, &oid, &active, error);
  if (rc == 0 && (!bw_db_get_oid_hex(&active, "worker_id", holder) ||
                  strcmp(holder, worker_id) != 0 ||
                  !bw_handout_from_bson(&active, &h, NULL)))
    rc = BW_ENOTFOUND;
  bson_destroy(&active);
  if (rc == BW_ENOTFOUND)
    return job_not_held(db, cfg, &oid, job_id, worker_id, error);
  if (rc == 0)
    rc = job_insert_result(db, &h, &worker, result, error);
  if (rc == 0)
    rc = job_insert_outcome(db, &h, "result", &worker, success, NULL, &outcome,
                            error);
  if (rc == 0) {
    rc = job_apply(db, cfg, &h, NULL, &outcome, error);
    bson_destroy(&outcome);
    return rc;
  }
  if (rc != BW_EDUP)
    return rc;

  /* Decided earlier: by this worker's own result (a resend, maybe after a
   * timeout that hid our insert), or by the reaper. */
  rc = job_find_outcome(db, &h, &outcome, error);
  if (rc == 0) {
    bw_db_get_oid_hex(&outcome, "worker_id", by);
    if (strcmp(bw_db_get_utf8(&outcome, "kind", ""), "result") == 0 &&
        strcmp(by, worker_id) == 0)
      rc = job_apply(db, cfg, &h, NULL, &outcome, error);
    else
      rc = bw_error_set(
          error, BW_ECONFLICT, "grading job %s attempt %d already ended: %s",
          job_id, h.attempt, bw_db_get_utf8(&outcome, "reason", "re-queued"));
  }
  bson_destroy(&outcome);
  return rc;
}

int bw_job_abandon(bw_db_t *db, const bw_config_t *cfg, const bw_handout_t *h,
                   const bson_t *student, const char *reason, bool *failed,
                   bw_error_t *error) {
  bool give_up = h->attempt >= cfg->max_attempts;
  bson_t outcome;
  char why[512];
  int rc;

  *failed = false;
  if (give_up)
    snprintf(why, sizeof why, "gave up after %d attempts: %s", h->attempt,
             reason);
  else
    bson_strncpy(why, reason, sizeof why);
  rc = job_insert_outcome(db, h, give_up ? "failed" : "requeued", NULL, -1, why,
                          &outcome, error);
  if (rc < 0)
    return rc;
  *failed = give_up;
  rc = job_apply(db, cfg, h, student, &outcome, error);
  bson_destroy(&outcome);
  return rc;
}

int bw_job_note_refused(bw_db_t *db, const char *job_id, const char *worker_id,
                        const char *message, bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, reply;
  bson_oid_t job, worker;
  bson_error_t driver;
  char note[120]; /* the reason built from it fits a job view's 256 */
  int rc = 0;

  if (!bw_db_oid_parse(job_id, &job) || !bw_db_oid_parse(worker_id, &worker))
    return bw_error_set(error, BW_ENOTFOUND, "no such hand-out");
  snprintf(note, sizeof note, "%s", message); /* bounded: it goes in logs */
  BSON_APPEND_OID(&filter, "job_id", &job);
  BSON_APPEND_OID(&filter, "worker_id", &worker);
  BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
  BSON_APPEND_UTF8(&set, "refused", note);
  BSON_APPEND_DATE_TIME(&set, "refused_at", bw_db_now_ms());
  bson_append_document_end(&update, &set);
  if (!mongoc_collection_update_one(bw_db_coll(db, BW_COLL_ACTIVE), &filter,
                                    &update, NULL, &reply, &driver))
    rc = bw_db_error(&driver, error);
  else if (bw_db_get_int(&reply, "matchedCount") == 0)
    rc = bw_error_set(error, BW_ENOTFOUND, "no such hand-out");
  bson_destroy(&reply);
  bson_destroy(&update);
  bson_destroy(&filter);
  return rc;
}
