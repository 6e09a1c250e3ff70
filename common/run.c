#include "run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "log.h"
#include "queue.h"

/* BSON documents over this are refused by MongoDB; say so before trying. */
#define RUN_MAX_DOC (16 * 1024 * 1024 - 64 * 1024)

static const char *bson_get_utf8(const bson_t *doc, const char *key,
                                 const char *fallback) {
  bson_iter_t it;
  if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it))
    return bson_iter_utf8(&it, NULL);
  return fallback;
}

static bool bson_get_oid(const bson_t *doc, const char *key, bson_oid_t *out) {
  bson_iter_t it;
  if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_OID(&it))
    return false;
  bson_oid_copy(bson_iter_oid(&it), out);
  return true;
}

const char *bw_run_job_state(const char *stored, const char *type,
                             const char *run_state) {
  if (strcmp(stored, "created") == 0 && strcmp(type, "student") == 0 &&
      (strcmp(run_state, "students") == 0 ||
       strcmp(run_state, "post_processing") == 0))
    return "queued";
  return stored;
}

/* ---- create ---------------------------------------------------------- */

static void run_job_doc(bson_t *doc, const bson_oid_t *id,
                        const bson_oid_t *run, const char *type, int index,
                        json_object *student, int student_count, int64_t now) {
  bson_init(doc);
  BSON_APPEND_OID(doc, "_id", id);
  BSON_APPEND_OID(doc, "run_id", run);
  BSON_APPEND_UTF8(doc, "type", type);
  if (student != NULL) {
    BSON_APPEND_INT32(doc, "index", index);
    BSON_APPEND_INT32(doc, "student_count", student_count);
    bw_json_append_bson(doc, "student", student);
  }
  BSON_APPEND_UTF8(doc, "state", "created");
  BSON_APPEND_INT32(doc, "attempts", 0);
  BSON_APPEND_DATE_TIME(doc, "created_at", now);
}

static int run_insert_jobs(bw_db_t *db, const bson_oid_t *run,
                           json_object *students, const bson_oid_t *ids,
                           const bson_oid_t *pre, const bson_oid_t *post,
                           bw_error_t *error) {
  size_t n = json_object_array_length(students);
  mongoc_bulk_operation_t *bulk;
  bson_t doc, reply;
  bson_error_t driver;
  int64_t now = bw_db_now_ms();
  int rc = 0;

  bulk = mongoc_collection_create_bulk_operation_with_opts(
      bw_db_coll(db, BW_COLL_JOBS), NULL);
  if (pre != NULL) {
    run_job_doc(&doc, pre, run, "pre", 0, NULL, 0, now);
    mongoc_bulk_operation_insert(bulk, &doc);
    bson_destroy(&doc);
  }
  for (size_t i = 0; i < n; i++) {
    run_job_doc(&doc, &ids[i], run, "student", (int)i,
                json_object_array_get_idx(students, i), (int)n, now);
    mongoc_bulk_operation_insert(bulk, &doc);
    bson_destroy(&doc);
  }
  if (post != NULL) {
    run_job_doc(&doc, post, run, "post", 0, NULL, 0, now);
    mongoc_bulk_operation_insert(bulk, &doc);
    bson_destroy(&doc);
  }
  if (!mongoc_bulk_operation_execute(bulk, &reply, &driver))
    rc = bw_db_error(&driver, error);
  bson_destroy(&reply);
  mongoc_bulk_operation_destroy(bulk);
  return rc;
}

static int run_insert_doc(bw_db_t *db, bw_coll_t which, const bson_t *doc,
                          bw_error_t *error) {
  bson_error_t driver;
  if (!mongoc_collection_insert_one(bw_db_coll(db, which), doc, NULL, NULL,
                                    &driver))
    return bw_db_error(&driver, error);
  return 0;
}

static int run_insert_roster(bw_db_t *db, const bson_oid_t *run,
                             json_object *students, const bson_oid_t *ids,
                             bw_error_t *error) {
  bson_t doc = BSON_INITIALIZER, list;
  size_t n = json_object_array_length(students);
  int rc;

  BSON_APPEND_OID(&doc, "_id", run);
  bw_json_append_bson(&doc, "students", students);
  BSON_APPEND_ARRAY_BEGIN(&doc, "student_job_ids", &list);
  for (size_t i = 0; i < n; i++) {
    const char *key;
    char buf[16];
    bson_uint32_to_string((uint32_t)i, &key, buf, sizeof buf);
    BSON_APPEND_OID(&list, key, &ids[i]);
  }
  bson_append_array_end(&doc, &list);
  if (doc.len > RUN_MAX_DOC)
    rc = bw_error_set(error, BW_ETOOBIG,
                      "students: the roster is %u bytes, over the 16 MB a "
                      "document may hold",
                      doc.len);
  else
    rc = run_insert_doc(db, BW_COLL_ROSTERS, &doc, error);
  bson_destroy(&doc);
  return rc;
}

static int run_insert_run(bw_db_t *db, const bson_oid_t *run,
                          json_object *config, size_t students,
                          const bson_oid_t *pre, const bson_oid_t *post,
                          bw_error_t *error) {
  bson_t doc = BSON_INITIALIZER, sub;
  int rc;

  BSON_APPEND_OID(&doc, "_id", run);
  BSON_APPEND_UTF8(&doc, "state", "created");
  BSON_APPEND_DATE_TIME(&doc, "created_at", bw_db_now_ms());
  BSON_APPEND_INT32(&doc, "student_count", (int)students);
  if (pre != NULL)
    BSON_APPEND_OID(&doc, "pre_job_id", pre);
  if (post != NULL)
    BSON_APPEND_OID(&doc, "post_job_id", post);
  /* The pipelines and global env, once; the roster lives in rosters. */
  BSON_APPEND_DOCUMENT_BEGIN(&doc, "config", &sub);
  json_object_object_foreach(config, key, value) {
    if (strcmp(key, "students") != 0)
      bw_json_append_bson(&sub, key, value);
  }
  bson_append_document_end(&doc, &sub);
  if (doc.len > RUN_MAX_DOC)
    rc = bw_error_set(error, BW_ETOOBIG,
                      "body: the pipelines are over the 16 MB a document may "
                      "hold");
  else
    rc = run_insert_doc(db, BW_COLL_RUNS, &doc, error);
  bson_destroy(&doc);
  return rc;
}

int bw_run_create(bw_db_t *db, const bw_config_t *cfg, json_object *config,
                  char run_id[25], bw_error_t *error) {
  json_object *students = json_object_object_get(config, "students");
  size_t n = json_object_array_length(students);
  bson_oid_t run, pre, post, *ids;
  bool has_pre = json_object_object_get(config, "pre_processing_pipeline"),
       has_post = json_object_object_get(config, "post_processing_pipeline");
  int rc;
  (void)cfg;

  ids = bson_malloc(sizeof *ids * (n ? n : 1));
  bson_oid_init(&run, NULL);
  for (size_t i = 0; i < n; i++)
    bson_oid_init(&ids[i], NULL);
  bson_oid_init(&pre, NULL);
  bson_oid_init(&post, NULL);

  /* The run document goes in last: a run is visible only once complete. */
  rc = run_insert_roster(db, &run, students, ids, error);
  if (rc == 0)
    rc = run_insert_jobs(db, &run, students, ids, has_pre ? &pre : NULL,
                         has_post ? &post : NULL, error);
  if (rc == 0)
    rc = run_insert_run(db, &run, config, n, has_pre ? &pre : NULL,
                        has_post ? &post : NULL, error);
  bson_free(ids);
  if (rc == 0)
    bson_oid_to_string(&run, run_id);
  return rc;
}

/* ---- phases ---------------------------------------------------------- */

static int run_find(bw_db_t *db, const bson_oid_t *run, bool with_config,
                    bson_t *out, bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, proj;
  char hex[25];
  int rc;

  BSON_APPEND_OID(&filter, "_id", run);
  if (!with_config) {
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
    BSON_APPEND_INT32(&proj, "config", 0);
    bson_append_document_end(&opts, &proj);
  }
  rc = bw_db_find_one(db, BW_COLL_RUNS, &filter, &opts, out, error);
  bson_destroy(&filter);
  bson_destroy(&opts);
  if (rc == BW_ENOTFOUND) {
    bson_oid_to_string(run, hex);
    return bw_error_set(error, BW_ENOTFOUND, "grading run %s not found", hex);
  }
  return rc;
}

static int run_update(bw_db_t *db, bw_coll_t which, const bson_oid_t *id,
                      const bson_t *update, bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER;
  bson_error_t driver;
  int rc = 0;

  BSON_APPEND_OID(&filter, "_id", id);
  if (!mongoc_collection_update_one(bw_db_coll(db, which), &filter, update,
                                    NULL, NULL, &driver))
    rc = bw_db_error(&driver, error);
  bson_destroy(&filter);
  return rc;
}

/* Sets the run's state (and a timestamp field, or NULL). */
static int run_set_state(bw_db_t *db, const bson_oid_t *run, const char *state,
                         const char *stamp, int success, bw_error_t *error) {
  bson_t update = BSON_INITIALIZER, set;
  int rc;

  BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
  BSON_APPEND_UTF8(&set, "state", state);
  if (stamp != NULL)
    BSON_APPEND_DATE_TIME(&set, stamp, bw_db_now_ms());
  if (success >= 0)
    BSON_APPEND_BOOL(&set, "success", success != 0);
  bson_append_document_end(&update, &set);
  rc = run_update(db, BW_COLL_RUNS, run, &update, error);
  bson_destroy(&update);
  return rc;
}

/* A once-only mark under marks/_id "<run>:<what>".  Returns 0 when this call
 * made it, BW_EDUP when it existed, BW_EDB. */
static int run_mark_once(bw_db_t *db, const bson_oid_t *run, const char *what,
                         bw_error_t *error) {
  bson_t doc = BSON_INITIALIZER;
  bson_oid_t op;
  char hex[25], id[128], ophex[25];
  int rc;

  bson_oid_to_string(run, hex);
  snprintf(id, sizeof id, "%s:%s", hex, what);
  bson_oid_init(&op, NULL);
  bson_oid_to_string(&op, ophex);
  BSON_APPEND_UTF8(&doc, "_id", id);
  BSON_APPEND_OID(&doc, "run_id", run);
  BSON_APPEND_DATE_TIME(&doc, "at", bw_db_now_ms());
  BSON_APPEND_UTF8(&doc, "op", ophex);
  rc = bw_db_insert_once(db, BW_COLL_MARKS, &doc, error);
  bson_destroy(&doc);
  return rc;
}

/* Like run_mark_once, but also 0 when the mark exists and is older than
 * cfg->claim_grace: its maker died between the mark and the steps after it,
 * and those steps are idempotent, so the caller redoes them. */
static int run_mark_once_or_stale(bw_db_t *db, const bw_config_t *cfg,
                                  const bson_oid_t *run, const char *what,
                                  bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, mark;
  bson_iter_t it;
  char hex[25], id[128];
  int rc = run_mark_once(db, run, what, error);

  if (rc != BW_EDUP)
    return rc;
  bson_oid_to_string(run, hex);
  snprintf(id, sizeof id, "%s:%s", hex, what);
  BSON_APPEND_UTF8(&filter, "_id", id);
  if (bw_db_find_one(db, BW_COLL_MARKS, &filter, NULL, &mark, NULL) == 0 &&
      bson_iter_init_find(&it, &mark, "at") && BSON_ITER_HOLDS_DATE_TIME(&it) &&
      bson_iter_date_time(&it) < bw_db_now_ms() - cfg->claim_grace * 1000LL)
    rc = 0;
  bson_destroy(&mark);
  bson_destroy(&filter);
  return rc;
}

/* Queues one job of the run (pre or post) and shows it as queued. */
static int run_queue_single(bw_db_t *db, const bson_oid_t *job,
                            bw_error_t *error) {
  bson_t update = BSON_INITIALIZER, set;
  int rc;

  BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
  BSON_APPEND_UTF8(&set, "state", "queued");
  bson_append_document_end(&update, &set);
  rc = run_update(db, BW_COLL_JOBS, job, &update, error);
  bson_destroy(&update);
  return rc < 0 ? rc : bw_queue_push(db, job, 1, 1, error);
}

static int run_queue_students(bw_db_t *db, const bson_oid_t *run,
                              bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, proj, roster;
  bson_iter_t it, item;
  bson_oid_t *ids = NULL;
  size_t n = 0, cap = 0;
  int rc;

  BSON_APPEND_OID(&filter, "_id", run);
  BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
  BSON_APPEND_INT32(&proj, "student_job_ids", 1);
  bson_append_document_end(&opts, &proj);
  rc = bw_db_find_one(db, BW_COLL_ROSTERS, &filter, &opts, &roster, error);
  if (rc == 0 && bson_iter_init_find(&it, &roster, "student_job_ids") &&
      bson_iter_recurse(&it, &item)) {
    while (bson_iter_next(&item)) {
      if (!BSON_ITER_HOLDS_OID(&item))
        continue;
      if (n == cap) {
        cap = cap ? cap * 2 : 256;
        ids = bson_realloc(ids, cap * sizeof *ids);
      }
      bson_oid_copy(bson_iter_oid(&item), &ids[n++]);
    }
    rc = bw_queue_push(db, ids, n, 1, error);
  }
  bson_free(ids);
  bson_destroy(&roster);
  bson_destroy(&filter);
  bson_destroy(&opts);
  return rc;
}

/* The state is written before the jobs are queued: a job finishing at once
 * must never see its run's state overwritten by an older step. */
static int run_enter_students(bw_db_t *db, const bson_oid_t *run,
                              bw_error_t *error) {
  int rc = run_set_state(db, run, "students", NULL, -1, error);
  return rc < 0 ? rc : run_queue_students(db, run, error);
}

static int run_finish(bw_db_t *db, const bw_config_t *cfg,
                      const bson_oid_t *run, bool success, bw_error_t *error) {
  int rc = run_mark_once_or_stale(db, cfg, run, "end", error);
  if (rc == BW_EDUP)
    return 0;
  if (rc < 0)
    return rc;
  return run_set_state(db, run, success ? "succeeded" : "failed",
                       "finished_at", success, error);
}

int bw_run_start(bw_db_t *db, const bw_config_t *cfg, const char *run_id,
                 bw_error_t *error) {
  bson_oid_t run, pre;
  bson_t doc;
  int rc;
  (void)cfg;

  if (!bw_db_oid_parse(run_id, &run))
    return bw_error_set(error, BW_EINVAL,
                        "grading_run_id: expected 24 hex digits");
  rc = run_find(db, &run, false, &doc, error);
  if (rc == 0) {
    rc = run_mark_once(db, &run, "start", error);
    if (rc == BW_EDUP)
      rc = bw_error_set(error, BW_EINVAL, "grading run %s was already started",
                        run_id);
  }
  if (rc == 0 && bson_get_oid(&doc, "pre_job_id", &pre)) {
    rc = run_set_state(db, &run, "pre_processing", "started_at", -1, error);
    if (rc == 0)
      rc = run_queue_single(db, &pre, error);
  } else if (rc == 0) {
    rc = run_set_state(db, &run, "students", "started_at", -1, error);
    if (rc == 0)
      rc = run_queue_students(db, &run, error);
  }
  bson_destroy(&doc);
  return rc;
}

/* Finish tickets: the k-th student job to finish inserts marks
 * "<run>:fin:<k>".  Tickets are dense (each taker starts at or below the
 * first free one and moves up on a duplicate), so whoever takes ticket S-1
 * is the last, however many results arrive at once.  "<run>:fin" holds a
 * hint of where to start; it may lag, never lead. */
static int run_take_ticket(bw_db_t *db, const bson_oid_t *run,
                           const bson_oid_t *job, int64_t *ticket,
                           bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, hint, update = BSON_INITIALIZER, set,
         opts = BSON_INITIALIZER;
  bson_iter_t it;
  bson_error_t driver;
  char hex[25], id[64];
  int64_t n = 0;
  int rc;

  bson_oid_to_string(run, hex);
  snprintf(id, sizeof id, "%s:fin", hex);
  BSON_APPEND_UTF8(&filter, "_id", id);
  if (bw_db_find_one(db, BW_COLL_MARKS, &filter, NULL, &hint, NULL) == 0 &&
      bson_iter_init_find(&it, &hint, "n"))
    n = bson_iter_as_int64(&it);
  bson_destroy(&hint);

  for (;; n++) {
    bson_t doc = BSON_INITIALIZER;
    bson_oid_t op;
    char tid[64], ophex[25];
    snprintf(tid, sizeof tid, "%s:fin:%lld", hex, (long long)n);
    bson_oid_init(&op, NULL);
    bson_oid_to_string(&op, ophex);
    BSON_APPEND_UTF8(&doc, "_id", tid);
    BSON_APPEND_OID(&doc, "job_id", job);
    BSON_APPEND_UTF8(&doc, "op", ophex);
    rc = bw_db_insert_once(db, BW_COLL_MARKS, &doc, error);
    bson_destroy(&doc);
    if (rc != BW_EDUP)
      break;
  }
  if (rc == 0) {
    *ticket = n;
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    BSON_APPEND_INT64(&set, "n", n + 1);
    bson_append_document_end(&update, &set);
    BSON_APPEND_BOOL(&opts, "upsert", true);
    /* A lost or duplicate hint write only costs a later taker a retry. */
    mongoc_collection_update_one(bw_db_coll(db, BW_COLL_MARKS), &filter,
                                 &update, &opts, NULL, &driver);
  }
  bson_destroy(&filter);
  bson_destroy(&update);
  bson_destroy(&opts);
  return rc;
}

static int run_student_finished(bw_db_t *db, const bw_config_t *cfg,
                                const bson_oid_t *run, const bson_t *job,
                                bw_error_t *error) {
  bson_oid_t job_oid, post;
  bson_iter_t it;
  bson_t doc;
  char done[64], hex[25];
  int64_t ticket = -1, count = 0;
  int rc;

  bson_get_oid(job, "_id", &job_oid);
  bson_oid_to_string(&job_oid, hex);
  snprintf(done, sizeof done, "done:%s", hex);
  /* Count each job once, even if its result is applied twice. */
  rc = run_mark_once(db, run, done, error);
  if (rc == BW_EDUP)
    return 0;
  if (rc == 0)
    rc = run_take_ticket(db, run, &job_oid, &ticket, error);
  if (rc < 0)
    return rc;
  if (bson_iter_init_find(&it, job, "student_count"))
    count = bson_iter_as_int64(&it);
  if (ticket != count - 1)
    return 0;

  /* The last student job: exactly one caller gets here. */
  rc = run_find(db, run, false, &doc, error);
  if (rc == 0 && bson_get_oid(&doc, "post_job_id", &post)) {
    rc = run_mark_once(db, run, "post", error);
    if (rc == 0)
      rc = run_set_state(db, run, "post_processing", NULL, -1, error);
    if (rc == 0)
      rc = run_queue_single(db, &post, error);
    if (rc == BW_EDUP)
      rc = 0;
  } else if (rc == 0) {
    rc = run_finish(db, cfg, run, true, error);
  }
  bson_destroy(&doc);
  return rc;
}

int bw_run_job_finished(bw_db_t *db, const bw_config_t *cfg, const bson_t *job,
                        bool success, bw_error_t *error) {
  const char *type = bson_get_utf8(job, "type", "student");
  bson_oid_t run;

  if (!bson_get_oid(job, "run_id", &run))
    return bw_error_set(error, BW_EINTERNAL, "job without run_id");
  if (strcmp(type, "pre") == 0) {
    if (!success)
      return run_finish(db, cfg, &run, false, error);
    int rc = run_mark_once_or_stale(db, cfg, &run, "students", error);
    if (rc == BW_EDUP)
      return 0;
    return rc < 0 ? rc : run_enter_students(db, &run, error);
  }
  if (strcmp(type, "post") == 0)
    return run_finish(db, cfg, &run, success, error);
  return run_student_finished(db, cfg, &run, job, error);
}

/* ---- status ---------------------------------------------------------- */

static int job_order(const void *a, const void *b) {
  json_object *ja = *(json_object *const *)a, *jb = *(json_object *const *)b;
  static const char *types[] = {"pre", "student", "post"};
  int ta = 0, tb = 0;
  for (int i = 0; i < 3; i++) {
    if (strcmp(json_object_get_string(json_object_object_get(ja, "type")),
               types[i]) == 0)
      ta = i;
    if (strcmp(json_object_get_string(json_object_object_get(jb, "type")),
               types[i]) == 0)
      tb = i;
  }
  if (ta != tb)
    return ta - tb;
  return json_object_get_int(json_object_object_get(ja, "index")) -
         json_object_get_int(json_object_object_get(jb, "index"));
}

/* One job as the run status lists it. */
static json_object *run_status_job(const bson_t *doc, const char *run_state) {
  json_object *job = json_object_new_object(), *v;
  json_object *all = bw_json_from_bson(doc);
  const char *state = bw_run_job_state(bson_get_utf8(doc, "state", "created"),
                                       bson_get_utf8(doc, "type", "student"),
                                       run_state);
  static const char *copied[] = {"type",       "index",       "attempts",
                                 "worker_id",  "success",     "reason",
                                 "started_at", "finished_at", "student"};

  json_object_object_add(job, "job_id",
                         json_object_get(json_object_object_get(all, "_id")));
  json_object_object_add(job, "state", json_object_new_string(state));
  for (size_t i = 0; i < sizeof copied / sizeof *copied; i++)
    if (json_object_object_get_ex(all, copied[i], &v))
      json_object_object_add(job, copied[i], json_object_get(v));
  json_object_put(all);
  return job;
}

static int run_status_jobs(bw_db_t *db, const bson_oid_t *run,
                           const char *run_state, json_object *status,
                           bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, proj;
  const bson_t *doc;
  bson_error_t driver;
  mongoc_cursor_t *cursor;
  json_object *jobs = json_object_new_array(), *counts = json_object_new_object();
  static const char *states[] = {"created", "queued", "running", "succeeded",
                                 "failed"};
  int n[5] = {0}, rc = 0;

  BSON_APPEND_OID(&filter, "run_id", run);
  BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
  BSON_APPEND_INT32(&proj, "info", 0);
  BSON_APPEND_INT32(&proj, "logs", 0);
  bson_append_document_end(&opts, &proj);
  cursor = mongoc_collection_find_with_opts(bw_db_coll(db, BW_COLL_JOBS),
                                            &filter, &opts, NULL);
  while (mongoc_cursor_next(cursor, &doc)) {
    json_object *job = run_status_job(doc, run_state);
    const char *state = json_object_get_string(json_object_object_get(job, "state"));
    for (int i = 0; i < 5; i++)
      if (strcmp(state, states[i]) == 0)
        n[i]++;
    json_object_array_add(jobs, job);
  }
  if (mongoc_cursor_error(cursor, &driver))
    rc = bw_db_error(&driver, error);
  mongoc_cursor_destroy(cursor);
  bson_destroy(&filter);
  bson_destroy(&opts);
  json_object_array_sort(jobs, job_order);
  for (int i = 0; i < 5; i++)
    json_object_object_add(counts, states[i], json_object_new_int(n[i]));
  json_object_object_add(status, "counts", counts);
  json_object_object_add(status, "jobs", jobs);
  return rc;
}

int bw_run_status(bw_db_t *db, const bw_config_t *cfg, const char *run_id,
                  json_object **out, bw_error_t *error) {
  bson_oid_t run;
  bson_t doc;
  json_object *status, *all, *v;
  static const char *copied[] = {"state",      "success",     "created_at",
                                 "started_at", "finished_at", "student_count",
                                 "pre_job_id", "post_job_id"};
  int rc;
  (void)cfg;

  *out = NULL;
  if (!bw_db_oid_parse(run_id, &run))
    return bw_error_set(error, BW_EINVAL,
                        "grading_run_id: expected 24 hex digits");
  rc = run_find(db, &run, false, &doc, error);
  if (rc < 0) {
    bson_destroy(&doc);
    return rc;
  }
  all = bw_json_from_bson(&doc);
  status = json_object_new_object();
  json_object_object_add(status, "grading_run_id",
                         json_object_new_string(run_id));
  for (size_t i = 0; i < sizeof copied / sizeof *copied; i++)
    if (json_object_object_get_ex(all, copied[i], &v))
      json_object_object_add(status, copied[i], json_object_get(v));
  rc = run_status_jobs(db, &run, bson_get_utf8(&doc, "state", "created"),
                       status, error);
  json_object_put(all);
  bson_destroy(&doc);
  if (rc < 0) {
    json_object_put(status);
    return rc;
  }
  *out = status;
  return 0;
}

/* ---- repair ---------------------------------------------------------- */

static bool run_entry_exists(bw_db_t *db, bw_coll_t which,
                             const bson_oid_t *job, int attempt) {
  bson_t filter = BSON_INITIALIZER, found;
  char id[48];
  int rc;

  bw_queue_entry_id(job, attempt, id);
  BSON_APPEND_UTF8(&filter, "_id", id);
  rc = bw_db_find_one(db, which, &filter, NULL, &found, NULL);
  bson_destroy(&found);
  bson_destroy(&filter);
  /* On a database error, say "exists": repair must never double-queue. */
  return rc != BW_ENOTFOUND;
}

/* Scans the jobs of one type of a run: re-queues waiting ones that nothing
 * will hand out, and counts the final ones. */
static int run_repair_jobs(bw_db_t *db, const bson_oid_t *run,
                           const char *type, int *final, int *repaired,
                           bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, proj;
  const bson_t *doc;
  bson_error_t driver;
  mongoc_cursor_t *cursor;
  int rc = 0;

  *final = 0;
  BSON_APPEND_OID(&filter, "run_id", run);
  BSON_APPEND_UTF8(&filter, "type", type);
  BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
  BSON_APPEND_INT32(&proj, "state", 1);
  BSON_APPEND_INT32(&proj, "attempts", 1);
  bson_append_document_end(&opts, &proj);
  cursor = mongoc_collection_find_with_opts(bw_db_coll(db, BW_COLL_JOBS),
                                            &filter, &opts, NULL);
  while (rc == 0 && mongoc_cursor_next(cursor, &doc)) {
    const char *state = bson_get_utf8(doc, "state", "created");
    bson_iter_t it;
    bson_oid_t job;
    int next = 1;
    if (strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0) {
      (*final)++;
      continue;
    }
    if (strcmp(state, "running") == 0 || !bson_get_oid(doc, "_id", &job))
      continue;
    if (bson_iter_init_find(&it, doc, "attempts"))
      next = (int)bson_iter_as_int64(&it) + 1;
    if (run_entry_exists(db, BW_COLL_QUEUE, &job, next) ||
        run_entry_exists(db, BW_COLL_CLAIMS, &job, next))
      continue;
    rc = bw_queue_push(db, &job, 1, next, error);
    if (rc == 0)
      (*repaired)++;
  }
  if (rc == 0 && mongoc_cursor_error(cursor, &driver))
    rc = bw_db_error(&driver, error);
  mongoc_cursor_destroy(cursor);
  bson_destroy(&filter);
  bson_destroy(&opts);
  return rc;
}

static int run_repair_single(bw_db_t *db, const bw_config_t *cfg,
                             const bson_oid_t *job, int *repaired,
                             bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, doc;
  const char *state;
  int rc;

  BSON_APPEND_OID(&filter, "_id", job);
  rc = bw_db_find_one(db, BW_COLL_JOBS, &filter, NULL, &doc, error);
  if (rc == 0) {
    state = bson_get_utf8(&doc, "state", "created");
    if (strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0) {
      rc = bw_run_job_finished(db, cfg, &doc, strcmp(state, "succeeded") == 0,
                               error);
    } else {
      bson_iter_t it;
      int next = 1;
      if (bson_iter_init_find(&it, &doc, "attempts"))
        next = (int)bson_iter_as_int64(&it) + 1;
      if (strcmp(state, "running") != 0 &&
          !run_entry_exists(db, BW_COLL_QUEUE, job, next) &&
          !run_entry_exists(db, BW_COLL_CLAIMS, job, next)) {
        rc = bw_queue_push(db, job, 1, next, error);
        (*repaired)++;
      }
    }
  }
  bson_destroy(&doc);
  bson_destroy(&filter);
  return rc == BW_ENOTFOUND ? 0 : rc;
}

int bw_run_repair(bw_db_t *db, const bw_config_t *cfg, const bson_oid_t *run,
                  int *repaired, bw_error_t *error) {
  bson_t doc;
  bson_oid_t job;
  const char *state;
  int rc, final = 0;
  int64_t count = 0;
  bson_iter_t it;

  rc = run_find(db, run, false, &doc, error);
  if (rc < 0) {
    bson_destroy(&doc);
    return rc == BW_ENOTFOUND ? 0 : rc;
  }
  state = bson_get_utf8(&doc, "state", "created");
  if (bson_iter_init_find(&it, &doc, "student_count"))
    count = bson_iter_as_int64(&it);
  if (strcmp(state, "pre_processing") == 0 &&
      bson_get_oid(&doc, "pre_job_id", &job)) {
    rc = run_repair_single(db, cfg, &job, repaired, error);
  } else if (strcmp(state, "post_processing") == 0 &&
             bson_get_oid(&doc, "post_job_id", &job)) {
    rc = run_repair_single(db, cfg, &job, repaired, error);
  } else if (strcmp(state, "students") == 0) {
    rc = run_repair_jobs(db, run, "student", &final, repaired, error);
    if (rc == 0 && final == count) {
      /* Every student job is final but the run did not move on: its last
       * finisher died between its steps.  The marks keep this once-only. */
      if (bson_get_oid(&doc, "post_job_id", &job)) {
        rc = run_mark_once_or_stale(db, cfg, run, "post", error);
        if (rc == 0) {
          rc = run_set_state(db, run, "post_processing", NULL, -1, error);
          if (rc == 0)
            rc = run_queue_single(db, &job, error);
          (*repaired)++;
        }
      } else {
        rc = run_mark_once_or_stale(db, cfg, run, "end", error);
        if (rc == 0) {
          rc = run_set_state(db, run, "succeeded", "finished_at", 1, error);
          (*repaired)++;
        }
      }
      if (rc == BW_EDUP)
        rc = 0;
    }
  }
  bson_destroy(&doc);
  return rc;
}
