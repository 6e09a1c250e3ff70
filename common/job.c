#include "job.h"

#include <stdio.h>
#include <string.h>

#include "json.h"
#include "log.h"
#include "run.h"

static const char *bson_get_utf8(const bson_t *doc, const char *key,
                                 const char *fallback) {
  bson_iter_t it;
  if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it))
    return bson_iter_utf8(&it, NULL);
  return fallback;
}

static bool bson_get_oid_hex(const bson_t *doc, const char *key, char out[25]) {
  bson_iter_t it;
  out[0] = '\0';
  if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_OID(&it))
    return false;
  bson_oid_to_string(bson_iter_oid(&it), out);
  return true;
}

static int job_find_by(bw_db_t *db, bw_coll_t which, const char *key,
                       const bson_oid_t *oid, bson_t *out, bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER;
  int rc;
  BSON_APPEND_OID(&filter, key, oid);
  rc = bw_db_find_one(db, which, &filter, NULL, out, error);
  bson_destroy(&filter);
  return rc;
}

/* ---- read ------------------------------------------------------------ */

/* Copies the listed fields of doc into view (as JSON). */
static void job_copy_fields(json_object *view, const bson_t *doc,
                            const char *const *fields, size_t n) {
  bson_iter_t it;
  for (size_t i = 0; i < n; i++)
    if (bson_iter_init_find(&it, doc, fields[i]))
      json_object_object_add(view, fields[i], bw_json_from_bson_iter(&it));
}

typedef struct job_history {
  int attempts;
  char reason[256];
} job_history_t;

static void job_visit_outcome(const bson_t *doc, void *ctx) {
  job_history_t *h = ctx;
  h->attempts++;
  bson_strncpy(h->reason, bson_get_utf8(doc, "reason", ""), sizeof h->reason);
}

/* How many attempts ended, and the reason given for the last one. */
static void job_read_history(bw_db_t *db, const bson_oid_t *job,
                             job_history_t *h) {
  bson_t filter = BSON_INITIALIZER;
  memset(h, 0, sizeof *h);
  BSON_APPEND_OID(&filter, "job_id", job);
  bw_db_each(bw_db_coll(db, BW_COLL_OUTCOMES), &filter, NULL, job_visit_outcome,
             h, NULL);
  bson_destroy(&filter);
}

int bw_job_get(bw_db_t *db, const bw_config_t *cfg, const char *job_id,
               json_object **out, bw_error_t *error) {
  static const char *const result_fields[] = {"success", "info", "logs",
                                              "reason", "finished_at"};
  static const char *const active_fields[] = {"started_at"};
  bson_oid_t oid, run;
  bson_t job, found;
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
  rc = job_find_by(db, BW_COLL_JOBS, "_id", &oid, &job, error);
  if (rc < 0) {
    bson_destroy(&job);
    return rc == BW_ENOTFOUND ? bw_error_set(error, BW_ENOTFOUND,
                                             "grading job %s not found", job_id)
                              : rc;
  }
  view = json_object_new_object();
  json_object_object_add(view, "job_id", json_object_new_string(job_id));
  if (bson_get_oid_hex(&job, "run_id", hex))
    json_object_object_add(view, "grading_run_id", json_object_new_string(hex));
  job_copy_fields(
      view, &job,
      (const char *const[]){"type", "index", "student", "created_at"}, 4);
  bson_iter_init_find(&it, &job, "run_id");
  bson_oid_copy(bson_iter_oid(&it), &run);
  bw_run_state(db, &run, run_state, sizeof run_state);

  job_read_history(db, &oid, &history);
  attempts = history.attempts;
  if (job_find_by(db, BW_COLL_RESULTS, "_id", &oid, &found, NULL) == 0) {
    state =
        bson_iter_init_find(&it, &found, "success") && bson_iter_as_bool(&it)
            ? "succeeded"
            : "failed";
    job_copy_fields(view, &found, result_fields, 5);
    if (bson_get_oid_hex(&found, "worker_id", hex))
      json_object_object_add(view, "worker_id", json_object_new_string(hex));
  } else if (bson_destroy(&found),
             bw_queue_find_active(db, &oid, &found, NULL) == 0) {
    state = "running";
    attempts++;
    job_copy_fields(view, &found, active_fields, 1);
    if (bson_get_oid_hex(&found, "worker_id", hex))
      json_object_object_add(view, "worker_id", json_object_new_string(hex));
  } else {
    state = bw_run_job_state(bson_get_utf8(&job, "type", "student"), run_state);
    if (history.reason[0] != '\0')
      json_object_object_add(view, "reason",
                             json_object_new_string(history.reason));
  }
  bson_destroy(&found);
  bson_destroy(&job);
  json_object_object_add(view, "state", json_object_new_string(state));
  json_object_object_add(view, "attempts", json_object_new_int(attempts));
  *out = view;
  return 0;
}

/* ---- end of an attempt ----------------------------------------------- */

/* The attempt's outcome: inserting it is what decides, once, how the
 * attempt ended. */
static int job_insert_outcome(bw_db_t *db, const bw_handout_t *h,
                              const char *kind, const bson_oid_t *worker,
                              int success, const char *reason,
                              bw_error_t *error) {
  bson_t doc = BSON_INITIALIZER;
  char id[48];
  int rc;

  bw_queue_entry_id(&h->job_id, h->attempt, id);
  BSON_APPEND_UTF8(&doc, "_id", id);
  BSON_APPEND_OID(&doc, "job_id", &h->job_id);
  BSON_APPEND_OID(&doc, "run_id", &h->run_id);
  BSON_APPEND_INT32(&doc, "attempt", h->attempt);
  BSON_APPEND_UTF8(&doc, "kind", kind);
  if (worker != NULL)
    BSON_APPEND_OID(&doc, "worker_id", worker);
  if (success >= 0)
    BSON_APPEND_BOOL(&doc, "success", success != 0);
  if (reason != NULL)
    BSON_APPEND_UTF8(&doc, "reason", reason);
  BSON_APPEND_DATE_TIME(&doc, "at", bw_db_now_ms());
  rc = bw_db_insert_once(db, BW_COLL_OUTCOMES, &doc, error);
  bson_destroy(&doc);
  return rc;
}

/* The job's final record.  A second insert (a re-applied result after a
 * crash) changes nothing. */
static int job_insert_result(bw_db_t *db, const bw_handout_t *h,
                             const bson_oid_t *worker, bool success,
                             json_object *result, const char *reason,
                             bw_error_t *error) {
  bson_t doc = BSON_INITIALIZER;
  json_object *v;
  int rc;

  BSON_APPEND_OID(&doc, "_id", &h->job_id);
  BSON_APPEND_OID(&doc, "run_id", &h->run_id);
  BSON_APPEND_INT32(&doc, "attempt", h->attempt);
  if (worker != NULL)
    BSON_APPEND_OID(&doc, "worker_id", worker);
  BSON_APPEND_BOOL(&doc, "success", success);
  if (result != NULL && json_object_object_get_ex(result, "info", &v))
    bw_json_append_bson(&doc, "info", v);
  if (result != NULL && json_object_object_get_ex(result, "logs", &v))
    bw_json_append_bson(&doc, "logs", v);
  if (reason != NULL)
    BSON_APPEND_UTF8(&doc, "reason", reason);
  BSON_APPEND_DATE_TIME(&doc, "finished_at", bw_db_now_ms());
  rc = bw_db_insert_once(db, BW_COLL_RESULTS, &doc, error);
  bson_destroy(&doc);
  return rc == BW_EDUP ? 0 : rc;
}

/* Everything after the outcome insert; each step is idempotent, so a resend
 * after a crash half-way through can simply run it again. */
static int job_finish(bw_db_t *db, const bw_config_t *cfg,
                      const bw_handout_t *h, const bson_oid_t *worker,
                      bool success, json_object *result, const char *reason,
                      bw_error_t *error) {
  int rc = job_insert_result(db, h, worker, success, result, reason, error);
  if (rc == 0)
    rc = bw_queue_end_active(db, &h->job_id, h->attempt, error);
  if (rc == 0)
    rc = bw_run_job_finished(db, cfg, h, success, error);
  return rc;
}

/* The job is not (or no longer) held by the caller: 200 if the caller's own
 * result was already accepted (a resend), 404 if there is no such job, 409
 * otherwise. */
static int job_not_held(bw_db_t *db, const bson_oid_t *oid, const char *job_id,
                        const char *worker_id, bw_error_t *error) {
  bson_t doc;
  char by[25];
  int rc = job_find_by(db, BW_COLL_RESULTS, "_id", oid, &doc, error);

  if (rc == 0) {
    bson_get_oid_hex(&doc, "worker_id", by);
    rc = strcmp(by, worker_id) == 0
             ? 0
             : bw_error_set(error, BW_ECONFLICT,
                            "grading job %s is finished, by another worker",
                            job_id);
  } else if (rc == BW_ENOTFOUND) {
    bson_destroy(&doc);
    rc = job_find_by(db, BW_COLL_JOBS, "_id", oid, &doc, error);
    if (rc == BW_ENOTFOUND)
      rc =
          bw_error_set(error, BW_ENOTFOUND, "grading job %s not found", job_id);
    else if (rc == 0)
      rc = bw_error_set(error, BW_ECONFLICT,
                        "grading job %s is not held by this worker (it was "
                        "re-queued, or never handed to it)",
                        job_id);
  }
  bson_destroy(&doc);
  return rc;
}

int bw_job_report(bw_db_t *db, const bw_config_t *cfg, const char *job_id,
                  const char *worker_id, json_object *result,
                  bw_error_t *error) {
  bool success =
      json_object_get_boolean(json_object_object_get(result, "success"));
  bson_oid_t oid, worker;
  bson_t active, existing, filter = BSON_INITIALIZER;
  bw_handout_t h;
  char holder[25], id[48], by[25];
  int rc;

  if (!bw_db_oid_parse(job_id, &oid))
    return bw_error_set(error, BW_EINVAL, "job_id: expected 24 hex digits");
  if (!bw_db_oid_parse(worker_id, &worker))
    return bw_error_set(error, BW_EINVAL, "worker_id: expected 24 hex digits");
  rc = bw_queue_find_active(db, &oid, &active, error);
  if (rc == 0 && (!bson_get_oid_hex(&active, "worker_id", holder) ||
                  strcmp(holder, worker_id) != 0 ||
                  !bw_handout_from_bson(&active, &h, NULL)))
    rc = BW_ENOTFOUND;
  bson_destroy(&active);
  if (rc == BW_ENOTFOUND)
    return job_not_held(db, &oid, job_id, worker_id, error);
  if (rc < 0)
    return rc;

  rc = job_insert_outcome(db, &h, "result", &worker, success, NULL, error);
  if (rc == 0)
    return job_finish(db, cfg, &h, &worker, success, result, NULL, error);
  if (rc != BW_EDUP)
    return rc;

  /* The attempt already ended: fine if it was this worker's own result,
   * and then the steps after the outcome are re-applied (a crash may have
   * cut them short; each is idempotent). */
  bw_queue_entry_id(&oid, h.attempt, id);
  BSON_APPEND_UTF8(&filter, "_id", id);
  rc = bw_db_find_one(db, BW_COLL_OUTCOMES, &filter, NULL, &existing, error);
  bson_destroy(&filter);
  if (rc == 0) {
    bson_get_oid_hex(&existing, "worker_id", by);
    if (strcmp(bson_get_utf8(&existing, "kind", ""), "result") == 0 &&
        strcmp(by, worker_id) == 0)
      rc = job_finish(db, cfg, &h, &worker, success, result, NULL, error);
    else
      rc = bw_error_set(
          error, BW_ECONFLICT, "grading job %s attempt %d already ended: %s",
          job_id, h.attempt, bson_get_utf8(&existing, "reason", "re-queued"));
  }
  bson_destroy(&existing);
  return rc;
}

int bw_job_abandon(bw_db_t *db, const bw_config_t *cfg, const bw_handout_t *h,
                   const bson_t *student, const char *reason, bool *failed,
                   bw_error_t *error) {
  bool give_up = h->attempt >= cfg->max_attempts;
  bw_handout_t next = *h;
  char why[512];
  int rc;

  *failed = false;
  if (give_up)
    snprintf(why, sizeof why, "gave up after %d attempts: %s", h->attempt,
             reason);
  else
    bson_strncpy(why, reason, sizeof why);
  rc = job_insert_outcome(db, h, give_up ? "failed" : "requeued", NULL, -1, why,
                          error);
  if (rc < 0)
    return rc;
  if (give_up) {
    *failed = true;
    return job_finish(db, cfg, h, NULL, false, NULL, why, error);
  }
  /* Queue the next attempt before forgetting this one: a crash in between
   * leaves a stale active record (harmless: the reaper's next pass finds its
   * outcome), never a lost job. */
  next.attempt = h->attempt + 1;
  rc = bw_queue_push(db, &next, student, error);
  if (rc == 0)
    rc = bw_queue_end_active(db, &h->job_id, h->attempt, error);
  return rc;
}
