#include "job.h"

#include <stdio.h>
#include <string.h>

#include "json.h"
#include "log.h"
#include "queue.h"
#include "run.h"

static const char *bson_get_utf8(const bson_t *doc, const char *key,
                                 const char *fallback) {
  bson_iter_t it;
  if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it))
    return bson_iter_utf8(&it, NULL);
  return fallback;
}

static int job_find(bw_db_t *db, const bson_oid_t *job_oid, bson_t *job,
                    bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER;
  char hex[25];
  int rc;

  BSON_APPEND_OID(&filter, "_id", job_oid);
  rc = bw_db_find_one(db, BW_COLL_JOBS, &filter, NULL, job, error);
  bson_destroy(&filter);
  if (rc == BW_ENOTFOUND) {
    bson_oid_to_string(job_oid, hex);
    return bw_error_set(error, BW_ENOTFOUND, "grading job %s not found", hex);
  }
  return rc;
}

static const char *job_run_state(bw_db_t *db, const bson_t *job, char *buf,
                                 size_t len) {
  bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, proj, run;
  bson_iter_t it;

  bson_strncpy(buf, "created", len);
  if (bson_iter_init_find(&it, job, "run_id") && BSON_ITER_HOLDS_OID(&it)) {
    BSON_APPEND_OID(&filter, "_id", bson_iter_oid(&it));
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
    BSON_APPEND_INT32(&proj, "state", 1);
    bson_append_document_end(&opts, &proj);
    if (bw_db_find_one(db, BW_COLL_RUNS, &filter, &opts, &run, NULL) == 0)
      bson_strncpy(buf, bson_get_utf8(&run, "state", "created"), len);
    bson_destroy(&run);
  }
  bson_destroy(&filter);
  bson_destroy(&opts);
  return buf;
}

/* Adds info and logs from results to a finished job's view. */
static void job_add_result(bw_db_t *db, const bson_oid_t *job_oid,
                           json_object *view) {
  bson_t filter = BSON_INITIALIZER, doc;
  bson_iter_t it;

  BSON_APPEND_OID(&filter, "_id", job_oid);
  if (bw_db_find_one(db, BW_COLL_RESULTS, &filter, NULL, &doc, NULL) == 0) {
    if (bson_iter_init_find(&it, &doc, "info"))
      json_object_object_add(view, "info", bw_json_from_bson_iter(&it));
    if (bson_iter_init_find(&it, &doc, "logs"))
      json_object_object_add(view, "logs", bw_json_from_bson_iter(&it));
  }
  bson_destroy(&doc);
  bson_destroy(&filter);
}

int bw_job_get(bw_db_t *db, const bw_config_t *cfg, const char *job_id,
               json_object **out, bw_error_t *error) {
  bson_oid_t oid;
  bson_t job;
  char run_state[32];
  json_object *view, *state;
  int rc;
  (void)cfg;

  *out = NULL;
  if (!bw_db_oid_parse(job_id, &oid))
    return bw_error_set(error, BW_EINVAL, "job_id: expected 24 hex digits");
  rc = job_find(db, &oid, &job, error);
  if (rc < 0) {
    bson_destroy(&job);
    return rc;
  }
  view = bw_json_from_bson(&job);
  state = json_object_new_string(bw_run_job_state(
      bson_get_utf8(&job, "state", "created"),
      bson_get_utf8(&job, "type", "student"),
      job_run_state(db, &job, run_state, sizeof run_state)));
  bson_destroy(&job);
  /* Same names as the protocol uses elsewhere. */
  json_object_object_add(view, "job_id",
                         json_object_get(json_object_object_get(view, "_id")));
  json_object_object_del(view, "_id");
  json_object_object_add(
      view, "grading_run_id",
      json_object_get(json_object_object_get(view, "run_id")));
  json_object_object_del(view, "run_id");
  json_object_object_del(view, "student_count");
  json_object_object_add(view, "state", state);
  job_add_result(db, &oid, view);
  *out = view;
  return 0;
}

/* The attempt's outcome document: inserting it is what decides, once, how
 * the attempt ended. */
static void job_outcome_doc(bson_t *doc, const bson_oid_t *job_oid,
                            int attempt, const char *kind,
                            const char *worker_id, const char *reason) {
  char id[48], ophex[25];
  bson_oid_t op, worker;

  bson_init(doc);
  bw_queue_entry_id(job_oid, attempt, id);
  bson_oid_init(&op, NULL);
  bson_oid_to_string(&op, ophex);
  BSON_APPEND_UTF8(doc, "_id", id);
  BSON_APPEND_OID(doc, "job_id", job_oid);
  BSON_APPEND_INT32(doc, "attempt", attempt);
  BSON_APPEND_UTF8(doc, "kind", kind);
  if (worker_id != NULL && bw_db_oid_parse(worker_id, &worker))
    BSON_APPEND_OID(doc, "worker_id", &worker);
  if (reason != NULL)
    BSON_APPEND_UTF8(doc, "reason", reason);
  BSON_APPEND_DATE_TIME(doc, "at", bw_db_now_ms());
  BSON_APPEND_UTF8(doc, "op", ophex);
}

/* Plain $set on a job that, by now, has exactly one writer. */
static int job_update(bw_db_t *db, const bson_oid_t *job_oid,
                      const bson_t *update, bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER;
  bson_error_t driver;
  int rc = 0;

  BSON_APPEND_OID(&filter, "_id", job_oid);
  if (!mongoc_collection_update_one(bw_db_coll(db, BW_COLL_JOBS), &filter,
                                    update, NULL, NULL, &driver))
    rc = bw_db_error(&driver, error);
  bson_destroy(&filter);
  return rc;
}

/* Stores what the grader sent in results, apart from the job: on FerretDB
 * every _id lookup scans its collection's rows, so the jobs documents that
 * polls and results look up must stay small however much output graders
 * send.  A second insert (a re-applied result) changes nothing. */
static int job_store_result(bw_db_t *db, const bson_oid_t *job_oid,
                            const char *worker_id, json_object *result,
                            bw_error_t *error) {
  bson_t doc = BSON_INITIALIZER;
  bson_oid_t worker;
  json_object *v;
  int rc;

  BSON_APPEND_OID(&doc, "_id", job_oid);
  if (bw_db_oid_parse(worker_id, &worker))
    BSON_APPEND_OID(&doc, "worker_id", &worker);
  BSON_APPEND_BOOL(&doc, "success",
                   json_object_get_boolean(json_object_object_get(result, "success")));
  if (json_object_object_get_ex(result, "info", &v))
    bw_json_append_bson(&doc, "info", v);
  if (json_object_object_get_ex(result, "logs", &v))
    bw_json_append_bson(&doc, "logs", v);
  BSON_APPEND_DATE_TIME(&doc, "at", bw_db_now_ms());
  rc = bw_db_insert_once(db, BW_COLL_RESULTS, &doc, error);
  bson_destroy(&doc);
  return rc == BW_EDUP ? 0 : rc;
}

static int job_record_result(bw_db_t *db, const bw_config_t *cfg,
                             const bson_oid_t *job_oid, const char *worker_id,
                             json_object *result, bw_error_t *error) {
  bson_t update = BSON_INITIALIZER, set, job;
  bool ok = json_object_get_boolean(json_object_object_get(result, "success"));
  int rc = job_store_result(db, job_oid, worker_id, result, error);

  if (rc < 0) {
    bson_destroy(&update);
    return rc;
  }
  BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
  BSON_APPEND_UTF8(&set, "state", ok ? "succeeded" : "failed");
  BSON_APPEND_BOOL(&set, "success", ok);
  BSON_APPEND_DATE_TIME(&set, "finished_at", bw_db_now_ms());
  bson_append_document_end(&update, &set);
  rc = job_update(db, job_oid, &update, error);
  bson_destroy(&update);
  if (rc < 0)
    return rc;
  rc = job_find(db, job_oid, &job, error);
  if (rc == 0)
    rc = bw_run_job_finished(db, cfg, &job, ok, error);
  bson_destroy(&job);
  return rc;
}

int bw_job_report(bw_db_t *db, const bw_config_t *cfg, const char *job_id,
                  const char *worker_id, json_object *result,
                  bw_error_t *error) {
  bson_oid_t oid;
  bson_t job, outcome, existing, filter = BSON_INITIALIZER;
  bson_iter_t it;
  char holder[25] = "", id[48];
  const char *state;
  int attempt = 0, rc;

  if (!bw_db_oid_parse(job_id, &oid))
    return bw_error_set(error, BW_EINVAL, "job_id: expected 24 hex digits");
  rc = job_find(db, &oid, &job, error);
  if (rc == 0) {
    if (bson_iter_init_find(&it, &job, "worker_id") && BSON_ITER_HOLDS_OID(&it))
      bson_oid_to_string(bson_iter_oid(&it), holder);
    if (bson_iter_init_find(&it, &job, "attempts"))
      attempt = (int)bson_iter_as_int64(&it);
    state = bson_get_utf8(&job, "state", "created");
    if (strcmp(holder, worker_id) != 0 || attempt < 1)
      rc = bw_error_set(error, BW_ECONFLICT,
                        "grading job %s is not held by this worker (it is %s)",
                        job_id, state);
  }
  bson_destroy(&job);
  if (rc < 0)
    return rc;

  job_outcome_doc(&outcome, &oid, attempt, "result", worker_id, NULL);
  rc = bw_db_insert_once(db, BW_COLL_OUTCOMES, &outcome, error);
  bson_destroy(&outcome);
  if (rc == 0)
    return job_record_result(db, cfg, &oid, worker_id, result, error);
  if (rc != BW_EDUP)
    return rc;

  /* The attempt already ended: fine if it was this worker's own result. */
  bw_queue_entry_id(&oid, attempt, id);
  BSON_APPEND_UTF8(&filter, "_id", id);
  rc = bw_db_find_one(db, BW_COLL_OUTCOMES, &filter, NULL, &existing, error);
  bson_destroy(&filter);
  if (rc == 0) {
    char by[25] = "";
    if (bson_iter_init_find(&it, &existing, "worker_id") &&
        BSON_ITER_HOLDS_OID(&it))
      bson_oid_to_string(bson_iter_oid(&it), by);
    if (strcmp(bson_get_utf8(&existing, "kind", ""), "result") == 0 &&
        strcmp(by, worker_id) == 0)
      rc = 0; /* a resend: 200, nothing changes */
    else
      rc = bw_error_set(error, BW_ECONFLICT,
                        "grading job %s attempt %d already ended (%s)", job_id,
                        attempt, bson_get_utf8(&existing, "reason", "re-queued"));
  }
  bson_destroy(&existing);
  return rc;
}

int bw_job_abandon(bw_db_t *db, const bw_config_t *cfg,
                   const bson_oid_t *job_id, int attempt, const char *reason,
                   bool *failed, bw_error_t *error) {
  bson_t outcome, update = BSON_INITIALIZER, set, job;
  bool give_up = attempt >= cfg->max_attempts;
  char why[512];
  int rc;

  *failed = false;
  if (give_up)
    snprintf(why, sizeof why, "gave up after %d attempts: %s", attempt,
             reason);
  else
    bson_strncpy(why, reason, sizeof why);
  job_outcome_doc(&outcome, job_id, attempt, give_up ? "failed" : "requeued",
                  NULL, why);
  rc = bw_db_insert_once(db, BW_COLL_OUTCOMES, &outcome, error);
  bson_destroy(&outcome);
  if (rc < 0)
    return rc;

  BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
  BSON_APPEND_UTF8(&set, "state", give_up ? "failed" : "queued");
  BSON_APPEND_INT32(&set, "attempts", attempt);
  BSON_APPEND_UTF8(&set, "reason", why);
  BSON_APPEND_NULL(&set, "worker_id");
  if (give_up) {
    BSON_APPEND_BOOL(&set, "success", false);
    BSON_APPEND_DATE_TIME(&set, "finished_at", bw_db_now_ms());
  }
  bson_append_document_end(&update, &set);
  /* The job is written before the next attempt is queued, so no poller can
   * be writing it at the same time. */
  rc = job_update(db, job_id, &update, error);
  bson_destroy(&update);
  if (rc < 0)
    return rc;
  if (!give_up)
    return bw_queue_push(db, job_id, 1, attempt + 1, error);
  *failed = true;
  rc = job_find(db, job_id, &job, error);
  if (rc == 0)
    rc = bw_run_job_finished(db, cfg, &job, false, error);
  bson_destroy(&job);
  return rc;
}
