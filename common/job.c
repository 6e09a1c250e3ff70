#include "job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "env.h"
#include "json.h"
#include "lane.h"
#include "log.h"
#include "qsignal.h"
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
  int last;     /* the latest of them */
  bson_t final; /* the latest outcome, when it made the job final */
  bool has_final;
  char reason[256]; /* the latest re-queue's reason */
} job_history_t;

/* The latest ended attempt decides: after a retry, an earlier final one is
 * history. */
static void job_visit_outcome(const bson_t *doc, void *ctx) {
  job_history_t *h = ctx;
  const char *kind = bw_db_get_utf8(doc, "kind", "");
  int attempt = (int)bw_db_get_int(doc, "attempt");
  h->attempts++;
  if (attempt < h->last)
    return;
  h->last = attempt;
  if (h->has_final)
    bson_destroy(&h->final);
  h->has_final = strcmp(kind, "requeued") != 0;
  if (h->has_final)
    bson_copy_to(doc, &h->final);
  else
    bson_strncpy(h->reason, bw_db_get_utf8(doc, "reason", ""),
                 sizeof h->reason);
}

/* Returns 0 or BW_EDB; on error *h holds nothing to free. */
static int job_read_history(bw_db_t *db, const bson_oid_t *job,
                            job_history_t *h, bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER;
  int rc;
  memset(h, 0, sizeof *h);
  BSON_APPEND_OID(&filter, "job_id", job);
  rc = bw_db_each(bw_db_coll(db, BW_COLL_OUTCOMES), &filter, NULL,
                  job_visit_outcome, h, error);
  bson_destroy(&filter);
  if (rc < 0 && h->has_final) {
    bson_destroy(&h->final);
    h->has_final = false;
  }
  return rc;
}

/* A final job: its success, who finished it and when, what the grader
 * sent (info or results, logs), or why the service gave it up.  Sets *state;
 * returns 0 or BW_EDB (a result without its info and logs is not shown). */
static int job_view_final(bw_db_t *db, const bson_t *outcome, json_object *view,
                          const char **state, bw_error_t *error) {
  bson_t result;
  bson_iter_t it;
  char hex[25];
  int rc;
  bool ok = strcmp(bw_db_get_utf8(outcome, "kind", ""), "result") == 0 &&
            bson_iter_init_find(&it, outcome, "success") &&
            bson_iter_as_bool(&it);

  json_object_object_add(view, "success", json_object_new_boolean(ok));
  job_copy_fields(view, outcome, (const char *const[]){"reason"}, 1);
  if (bson_iter_init_find(&it, outcome, "at"))
    json_object_object_add(view, "finished_at", bw_json_from_bson_iter(&it));
  if (bw_db_get_oid_hex(outcome, "worker_id", hex))
    json_object_object_add(view, "worker_id", json_object_new_string(hex));
  /* Not found is an attempt the service ended: it has no body. */
  rc = bw_db_find_by_id(db, BW_COLL_RESULTS, bw_db_get_utf8(outcome, "_id", ""),
                        &result, error);
  if (rc == 0)
    job_copy_fields(view, &result,
                    (const char *const[]){"info", "results", "logs"}, 3);
  /* Retention (retain.h) removed the stage output: say so, and when. */
  if (bson_iter_init_find(&it, &result, "pruned_at"))
    json_object_object_add(view, "output_pruned_at",
                           bw_json_from_bson_iter(&it));
  bson_destroy(&result);
  *state = ok ? "succeeded" : "failed";
  return rc == BW_ENOTFOUND ? 0 : rc;
}

/* The job's state from its attempts: final, running (its hand-out is in
 * `active`), or what its run's phase says.  Adds what it read to view. */
static int job_view_state(bw_db_t *db, const bson_oid_t *oid, const bson_t *job,
                          json_object *view, bw_error_t *error) {
  bson_oid_t run;
  bson_t active = BSON_INITIALIZER, run_doc;
  char hex[25], run_state[32];
  job_history_t history;
  const char *state = NULL;
  int rc, attempts, retry_attempt = 0, retry_index;

  if (!bw_db_get_oid(job, "run_id", &run))
    return bw_error_set(error, BW_EINTERNAL, "job without run_id");
  /* The run's state, and whether staff retried this job (no run: a job
   * being created, "created"). */
  rc = bw_run_find(db, &run, false, &run_doc, error);
  bson_strncpy(run_state, bw_db_get_utf8(&run_doc, "state", "created"),
               sizeof run_state);
  if (rc == 0)
    bw_run_retry_of(&run_doc, oid, &retry_attempt, &retry_index);
  bson_destroy(&run_doc);
  if (rc == BW_ENOTFOUND)
    rc = 0;
  if (rc == 0)
    rc = job_read_history(db, oid, &history, error);
  if (rc < 0)
    return rc;
  attempts = history.attempts;
  if (history.has_final && retry_attempt > history.last) {
    /* Retried: the final attempt is history, the new one waits or runs. */
    bson_destroy(&history.final);
    history.has_final = false;
  }
  if (history.has_final) {
    rc = job_view_final(db, &history.final, view, &state, error);
    bson_destroy(&history.final);
  } else {
    bson_destroy(&active);
    rc = bw_queue_find_active(db, oid, &active, error);
  }
  if (rc == 0 && state == NULL) {
    state = "running";
    attempts++;
    job_copy_fields(view, &active, (const char *const[]){"started_at"}, 1);
    if (bw_db_get_oid_hex(&active, "worker_id", hex))
      json_object_object_add(view, "worker_id", json_object_new_string(hex));
  } else if (rc == BW_ENOTFOUND) {
    rc = 0;
    state = bw_run_job_state(bw_db_get_utf8(job, "type", "student"), run_state);
  }
  bson_destroy(&active);
  if (rc < 0)
    return rc;
  if (history.reason[0] != '\0' && !history.has_final)
    json_object_object_add(view, "reason",
                           json_object_new_string(history.reason));
  json_object_object_add(view, "state", json_object_new_string(state));
  json_object_object_add(view, "attempts", json_object_new_int(attempts));
  return 0;
}

int bw_job_get(bw_db_t *db, const bson_oid_t *oid, json_object **out,
               bw_error_t *error) {
  bson_t job;
  char hex[25], job_id[25];
  json_object *view;
  int rc;

  *out = NULL;
  bson_oid_to_string(oid, job_id);
  rc = bw_db_find_by_oid(db, BW_COLL_JOBS, "_id", oid, &job, error);
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
  /* Any step that fails fails the read: never a 200 from part of it. */
  rc = job_view_state(db, oid, &job, view, error);
  bson_destroy(&job);
  if (rc < 0) {
    json_object_put(view);
    return rc;
  }
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
  bw_db_append_at(&doc, bw_db_now_ms(), BW_DB_BY_MINUTE);
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
  bw_db_append_at(&doc, bw_db_now_ms(), BW_DB_BY_DAY);
  rc = bw_db_insert_once(db, BW_COLL_RESULTS, &doc, error);
  bson_destroy(&doc);
  return rc == BW_EDUP ? 0 : rc; /* a resend: the first copy stands */
}

/* A client may be streaming this job (fcgi/stream.h, Gen 3 jobs only: a
 * course's): the "jobs" signal tells the hosts of its stream that it was
 * handed out or ended.  Seed-era jobs cost nothing here. */
static void job_moved(bw_db_t *db, const bw_handout_t *h) {
  if (h->course[0] != '\0')
    bw_qsignal_notify_jobs(db, &h->job_id);
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
    /* Checked after the push: a cancel either is seen here or comes after
     * it and drops the entry itself. */
    if (rc == 0 && bw_run_cancelled(db, &h->run_id, h->round))
      rc = bw_queue_cancel_run(db, &h->run_id, error);
    return rc;
  }
  rc = bw_queue_end_active(db, &h->job_id, h->attempt, error);
  if (rc == 0)
    rc = bw_run_job_finished(db, cfg, h,
                             strcmp(kind, "result") == 0 &&
                                 bson_iter_init_find(&it, outcome, "success") &&
                                 bson_iter_as_bool(&it),
                             error);
  if (rc == 0)
    job_moved(db, h);
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
  const bson_oid_t *worker;
  bson_t outcome; /* the caller's accepted result, if found */
  bool found, any;
} job_own_result_t;

/* True when `outcome` is a result sent by `worker`. */
static bool job_is_result_of(const bson_t *outcome, const bson_oid_t *worker) {
  bson_oid_t by;
  return strcmp(bw_db_get_utf8(outcome, "kind", ""), "result") == 0 &&
         bw_db_get_oid(outcome, "worker_id", &by) &&
         bson_oid_equal(&by, worker);
}

static void job_visit_own_result(const bson_t *doc, void *ctx) {
  job_own_result_t *own = ctx;
  own->any = true;
  if (!own->found && job_is_result_of(doc, own->worker)) {
    bson_copy_to(doc, &own->outcome);
    own->found = true;
  }
}

/* The job has no hand-out held by the caller: 200 if the caller's own
 * result was already accepted (a resend; whatever the first attempt left
 * undone is finished now), 404 if there is no such job, 409 otherwise. */
static int job_not_held(bw_db_t *db, const bw_config_t *cfg,
                        const bson_oid_t *oid, const bson_oid_t *worker,
                        bw_error_t *error) {
  job_own_result_t own = {.worker = worker};
  bson_t filter = BSON_INITIALIZER, doc;
  bw_handout_t h;
  char job_id[25];
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
  bson_oid_to_string(oid, job_id);
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

/* Why a failed result failed, for the run's status: the first stage the
 * grader stopped at a limit ("stage 1 killed_by memory (67108864)"), or
 * NULL.  `why` holds the text. */
static const char *job_result_reason(json_object *result, char *why,
                                     size_t len) {
  json_object *info = json_object_object_get(result, "info"), *by, *limit;

  if (!json_object_is_type(info, json_type_array))
    return NULL; /* the Gen 2 shape ("results") has no limits to name */
  for (size_t i = 0; i < json_object_array_length(info); i++) {
    json_object *stage = json_object_array_get_idx(info, i);
    if (!json_object_object_get_ex(stage, "killed_by", &by) ||
        !json_object_is_type(by, json_type_string))
      continue;
    json_object_object_get_ex(stage, "limit", &limit);
    snprintf(why, len, "stage %zu killed_by %.32s (%.64s)", i,
             json_object_get_string(by),
             limit ? json_object_get_string(limit) : "?");
    return why;
  }
  return NULL;
}

int bw_job_report(bw_db_t *db, const bw_config_t *cfg, const bson_oid_t *oid,
                  const bson_oid_t *worker, json_object *result,
                  bw_error_t *error) {
  bool success =
      json_object_get_boolean(json_object_object_get(result, "success"));
  bson_oid_t holder;
  bson_t active, outcome;
  bw_handout_t h;
  char job_id[25], why[160];
  int rc;

  rc = bw_queue_find_active(db, oid, &active, error);
  if (rc == 0 && (!bw_db_get_oid(&active, "worker_id", &holder) ||
                  !bson_oid_equal(&holder, worker) ||
                  !bw_handout_from_bson(&active, &h, NULL)))
    rc = BW_ENOTFOUND;
  bson_destroy(&active);
  if (rc == BW_ENOTFOUND)
    return job_not_held(db, cfg, oid, worker, error);
  if (rc == 0)
    rc = job_insert_result(db, &h, worker, result, error);
  if (rc == 0)
    rc = job_insert_outcome(db, &h, "result", worker, success,
                            job_result_reason(result, why, sizeof why),
                            &outcome, error);
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
  if (rc == 0 && job_is_result_of(&outcome, worker)) {
    rc = job_apply(db, cfg, &h, NULL, &outcome, error);
  } else if (rc == 0) {
    bson_oid_to_string(oid, job_id);
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
  /* Counted in the hand-out's round: a retry gives a job its attempts
   * again. */
  int used = h->attempt - (h->first_attempt > 1 ? h->first_attempt : 1) + 1;
  bool give_up = used >= cfg->max_attempts;
  bson_t outcome;
  char why[512];
  int rc;

  *failed = false;
  if (give_up)
    snprintf(why, sizeof why, "gave up after %d attempts: %s", used, reason);
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

int bw_job_note_refused(bw_db_t *db, const bson_oid_t *job,
                        const bson_oid_t *worker, const char *message,
                        bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, reply;
  bson_error_t driver;
  char note[120]; /* the reason built from it fits a job view's 256 */
  int rc = 0;

  snprintf(note, sizeof note, "%s", message); /* bounded: it goes in logs */
  BSON_APPEND_OID(&filter, "job_id", job);
  BSON_APPEND_OID(&filter, "worker_id", worker);
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

/* ---- the poll: one attempt handed out -------------------------------- */

/* When a hand-out is overdue: its stages' timeouts (the grader kills a
 * stage at its timeout) plus claim_grace.  A grader that holds a job longer
 * has lost it (the reply to its poll never reached it) or is stuck; the
 * reaper re-queues it then, heartbeat or not. */
static int64_t job_deadline(const bw_config_t *cfg, json_object *payload) {
  json_object *stages = json_object_object_get(payload, "stages"), *t;
  int64_t seconds = cfg->claim_grace;

  for (size_t i = 0; i < json_object_array_length(stages); i++)
    seconds += json_object_object_get_ex(json_object_array_get_idx(stages, i),
                                         "timeout", &t)
                   ? (int64_t)json_object_get_double(t) + 1
                   : cfg->default_timeout;
  return bw_db_now_ms() + seconds * 1000;
}

/* The 2019 API's job message (PROTOCOL-LATER.md §2.5): exactly
 * {"grading_job_id", "stages"}, each stage as configured with its env
 * replaced by the merged one (§2.9.3), always present; no roster. */
static json_object *job_payload_gen3(const bw_handout_t *h, json_object *config,
                                     json_object *stages,
                                     json_object *student) {
  json_object *runtime = student, *list = json_object_new_array(), *payload;
  char run_id[25], job_id[25];

  bson_oid_to_string(&h->run_id, run_id);
  bson_oid_to_string(&h->job_id, job_id);
  if (strcmp(h->type, "pre") == 0)
    runtime = json_object_object_get(config, "pre_processing_env");
  else if (strcmp(h->type, "post") == 0)
    runtime = json_object_object_get(config, "post_processing_env");
  for (size_t i = 0; i < json_object_array_length(stages); i++) {
    json_object *stage = json_object_array_get_idx(stages, i), *copy;
    if (!json_object_is_type(stage, json_type_object)) {
      json_object_array_add(list, json_object_get(stage)); /* a null stage */
      continue;
    }
    copy = json_object_new_object();
    json_object_object_foreach(stage, key, value) {
      if (strcmp(key, "env") != 0)
        json_object_object_add(copy, key, json_object_get(value));
    }
    json_object_object_add(
        copy, "env",
        bw_env_merge_gen3(json_object_object_get(config, "env"),
                          json_object_object_get(stage, "env"), runtime,
                          run_id, job_id));
    json_object_array_add(list, copy);
  }
  payload = json_object_new_object();
  json_object_object_add(payload, "grading_job_id",
                         json_object_new_string(job_id));
  json_object_object_add(payload, "stages", list);
  return payload;
}

/* Builds the grader's view of a job: its stages with env resolved, and the
 * roster for pre/post jobs. */
static int job_payload(bw_db_t *db, const bw_handout_t *h,
                       const bson_t *student_bson, json_object **out,
                       bw_error_t *error) {
  const char *pipeline = strcmp(h->type, "pre") == 0 ? "pre_processing_pipeline"
                         : strcmp(h->type, "post") == 0
                             ? "post_processing_pipeline"
                             : "student_pipeline";
  json_object *config = NULL, *stages, *global = NULL, *student = NULL, *list,
              *payload;
  char run_id[25], job_id[25];
  int rc;

  bson_oid_to_string(&h->run_id, run_id);
  bson_oid_to_string(&h->job_id, job_id);
  rc = bw_run_config(db, &h->run_id, &config, error);
  if (rc < 0)
    return rc;
  if (!json_object_object_get_ex(config, pipeline, &stages)) {
    json_object_put(config);
    return bw_error_set(error, BW_EINTERNAL, "run %s has no %s", run_id,
                        pipeline);
  }
  json_object_object_get_ex(config, "env", &global);
  if (student_bson != NULL && !bson_empty(student_bson))
    student = bw_json_from_bson(student_bson);
  if (h->gen == BW_GEN_3) {
    *out = job_payload_gen3(h, config, stages, student);
    json_object_put(student);
    json_object_put(config);
    return 0;
  }

  list = json_object_new_array();
  for (size_t i = 0; rc == 0 && i < json_object_array_length(stages); i++) {
    json_object *stage = json_object_array_get_idx(stages, i), *copy = NULL,
                *stage_env = NULL, *env = NULL;
    /* Without a copy (ENOMEM) the env below would be added to NULL. */
    if (json_object_deep_copy(stage, &copy, NULL) != 0) {
      rc = bw_error_set(error, BW_ENOMEM, "job %s: out of memory", job_id);
      break;
    }
    json_object_object_get_ex(stage, "env", &stage_env);
    rc =
        bw_env_resolve(global, student, stage_env, run_id, job_id, &env, error);
    if (rc == 0)
      json_object_object_add(copy, "env", env);
    json_object_array_add(list, copy);
  }
  payload = json_object_new_object();
  json_object_object_add(payload, "job_id", json_object_new_string(job_id));
  json_object_object_add(payload, "stages", list);
  if (rc == 0 && strcmp(h->type, "student") != 0) {
    json_object *roster = NULL;
    rc = bw_run_roster(db, &h->run_id, &roster, error);
    if (rc == 0)
      json_object_object_add(payload, "students", roster);
  }
  json_object_put(student);
  json_object_put(config);
  if (rc < 0) {
    json_object_put(payload);
    return rc;
  }
  *out = payload;
  return 0;
}

/* The hand-out was claimed but could not be recorded or sent: give the
 * attempt back rather than leave it with a grader that never received it. */
static void job_give_back(bw_db_t *db, const bw_config_t *cfg,
                          const bw_handout_t *h, const bson_t *student) {
  bool failed;
  bw_error_t error;
  char hex[25];
  if (bw_job_abandon(db, cfg, h, student, "its hand-out could not be sent",
                     &failed, &error) < 0) {
    bson_oid_to_string(&h->job_id, hex);
    bw_log_error("queue: job %s: could not give back: %s", hex, error.message);
  }
}

/* Tries to take one entry.  Returns 0 (won: *out is the payload), 1
 * (someone else has it), or a negative error. */
static int job_take(bw_db_t *db, const bw_config_t *cfg, int partition,
                    const bson_t *entry, const bson_oid_t *worker, int gen,
                    json_object **out, bw_error_t *error) {
  bw_handout_t h;
  bson_t student;
  bson_iter_t it;
  bw_error_t dropped;
  char id[48];
  int rc;

  if (!bson_iter_init_find(&it, entry, "_id") || !BSON_ITER_HOLDS_UTF8(&it) ||
      !bw_handout_from_bson(entry, &h, &student) || h.gen != gen)
    return 1;
  bson_strncpy(id, bson_iter_utf8(&it, NULL), sizeof id);
  rc = bw_queue_claim(db, id, &h, worker, error);
  if (rc == BW_EDUP) {
    /* The claim is permanent, so this entry can never be handed out again:
     * drop it so it stops costing other pollers a round trip.  Best effort:
     * a leftover is dropped by the next poller that tries it. */
    if (bw_queue_drop(db, partition, id, &dropped) < 0)
      bw_log_warn("queue: could not drop entry %s: %s", id, dropped.message);
    return 1;
  }
  if (rc < 0)
    return rc;
  rc = bw_queue_dequeue(db, partition, id, error);
  if (rc == 0)
    rc = job_payload(db, &h, &student, out, error);
  if (rc == 0)
    rc = bw_queue_record_active(db, id, &h, &student, worker,
                                job_deadline(cfg, *out), error);
  if (rc == 0)
    job_moved(db, &h);
  if (rc < 0) {
    json_object_put(*out);
    *out = NULL;
    bw_log_error("queue: %s claimed but not handed out: %s", id,
                 error ? error->message : "");
    job_give_back(db, cfg, &h, &student);
  }
  return rc;
}

/* Every FastCGI worker is forked from one parent: seed per process, or they
 * would all pick the same entries. */
static int job_random(void) {
  static pid_t seeded_for;
  if (seeded_for != getpid()) {
    seeded_for = getpid();
    srand((unsigned)getpid() ^ (unsigned)bw_db_now_ms());
  }
  return rand();
}

/* How many entries of the page are of generation `gen`. */
static int job_page_of_gen(const bw_queue_page_t *page, int gen) {
  int n = 0;
  for (int i = 0; i < page->n; i++)
    n += bw_db_get_int(&page->docs[i], "gen") == gen;
  return n;
}

/* Tries the entries of `page` (read from `partition`) that `want` accepts,
 * from the spread-th on (taken modulo the page).  0 (won), 1 (none taken)
 * or a negative error. */
static int job_take_page(bw_db_t *db, const bw_config_t *cfg, int partition,
                         const bw_queue_page_t *page, const bson_oid_t *want,
                         uint64_t spread, const bson_oid_t *worker, int gen,
                         json_object **out, bw_error_t *error) {
  int start = page->n ? (int)(spread % (uint64_t)page->n) : 0;
  for (int i = 0; i < page->n; i++) {
    const bson_t *entry = &page->docs[(start + i) % page->n];
    bson_oid_t run;
    int rc;
    if (want != NULL &&
        (!bw_db_get_oid(entry, "run_id", &run) || !bson_oid_equal(&run, want)))
      continue;
    rc = job_take(db, cfg, partition, entry, worker, gen, out, error);
    if (rc != 1)
      return rc;
  }
  return 1;
}

/* True when the page holds an entry of run. */
static bool job_page_has_run(const bw_queue_page_t *page,
                             const bson_oid_t *run) {
  bson_oid_t r;
  for (int i = 0; i < page->n; i++)
    if (bw_db_get_oid(&page->docs[i], "run_id", &r) && bson_oid_equal(&r, run))
      return true;
  return false;
}

/* A lane showed none of its run's entries: closed, unless it just opened
 * (its pusher opens it before it inserts the entries).  1 (nothing taken)
 * or a negative error. */
static int job_lane_empty(bw_db_t *db, const bw_lane_t *lane,
                          bw_error_t *error) {
  int rc = bw_lane_young(lane) ? 0 : bw_lane_close(db, lane, error);
  return rc < 0 ? rc : 1;
}

/* One lane's turn: its run's entries at the front of its partition, or
 * (when the partition's first page is other runs': it shares it) looked up
 * by run.  0, 1 or a negative error. */
static int job_take_lane(bw_db_t *db, const bw_config_t *cfg,
                         const bw_lane_t *lane, uint64_t spread,
                         const bson_oid_t *worker, int gen, json_object **out,
                         bw_error_t *error) {
  bw_queue_page_t page;
  int rc = bw_queue_read_page(db, lane->partition, &page, error);

  if (rc == 0 && !job_page_has_run(&page, &lane->run_id) &&
      page.n == BW_QUEUE_PAGE) {
    bw_queue_page_cleanup(&page);
    rc = bw_queue_read_run_page(db, lane->partition, &lane->run_id, &page,
                                error);
  }
  if (rc == 0 && !job_page_has_run(&page, &lane->run_id))
    rc = job_lane_empty(db, lane, error);
  else if (rc == 0)
    rc = job_take_page(db, cfg, lane->partition, &page, &lane->run_id, spread,
                       worker, gen, out, error);
  bw_queue_page_cleanup(&page);
  return rc;
}

/* Fair share (lane.h): the lanes of gen, from the one whose turn it is.
 * 0, 1 (nothing taken through them) or a negative error. */
static int job_poll_lanes(bw_db_t *db, const bw_config_t *cfg,
                          const bson_oid_t *worker, int gen, json_object **out,
                          bw_error_t *error) {
  bw_lanes_t lanes;
  size_t *order;
  uint64_t turn;
  int rc = bw_lanes_read(db, gen, &lanes, error);

  if (rc < 0 || lanes.n == 0) {
    bw_lanes_cleanup(&lanes);
    return rc < 0 ? rc : 1;
  }
  order = bson_malloc(lanes.n * sizeof *order);
  turn = bw_lane_next_turn(gen);
  bw_lanes_order(&lanes, turn, order);
  rc = 1;
  /* Polls of one lane at once have turns lanes.n apart: each starts at the
   * next entry of the page, so they rarely race for one claim (with the
   * pool's shared counter; per process it is as good as random). */
  for (size_t i = 0; rc == 1 && i < lanes.n; i++)
    rc = job_take_lane(db, cfg, &lanes.v[order[i]],
                       i == 0 ? turn / lanes.n : (uint64_t)job_random(), worker,
                       gen, out, error);
  bson_free(order);
  bw_lanes_cleanup(&lanes);
  return rc;
}

int bw_job_poll(bw_db_t *db, const bw_config_t *cfg, const bson_oid_t *worker,
                int gen, json_object **out, bw_error_t *error) {
  int partitions = bw_db_queue_partitions(db), first, rc;
  bw_queue_page_t page;

  *out = NULL;
  rc = job_poll_lanes(db, cfg, worker, gen, out, error);
  if (rc != 1)
    return rc;
  /* Nothing through the lanes: every partition, as before lanes, so an
   * entry without a lane (lane.h) is still found. */
  first = job_random() % partitions;
  for (int p = 0; p < partitions; p++) {
    int at = (first + p) % partitions;
    rc = bw_queue_read_page(db, at, &page, error);
    /* A full page of the other generation's entries can hide ours. */
    if (rc == 0 && page.n == BW_QUEUE_PAGE && job_page_of_gen(&page, gen) == 0) {
      bw_queue_page_cleanup(&page);
      rc = bw_queue_read_page_of_gen(db, at, gen, &page, error);
    }
    if (rc == 0)
      rc = job_take_page(db, cfg, at, &page, NULL, (uint64_t)job_random(),
                         worker, gen, out, error);
    bw_queue_page_cleanup(&page);
    if (rc != 1)
      return rc;
  }
  return bw_error_set(error, BW_EEMPTY, "queue is empty");
}
