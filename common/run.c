#include "run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "finish.h"
#include "json.h"
#include "validate.h"

/* BSON documents over this are refused by MongoDB; say so before trying. */
#define RUN_MAX_DOC (16 * 1024 * 1024 - 64 * 1024)
/* Run configs one process keeps (see bw_run_config). */
#define RUN_CACHE 8
/* Job documents one bulk insert carries (see run_insert_jobs). */
#define RUN_INSERT_BATCH 1000

const char *bw_run_job_state(const char *type, const char *run_state) {
  if (strcmp(run_state, "cancelled") == 0)
    return "cancelled";
  const char *queued_in = strcmp(type, "pre") == 0    ? "pre_processing"
                          : strcmp(type, "post") == 0 ? "post_processing"
                                                      : "students";
  if (strcmp(run_state, queued_in) == 0 ||
      (strcmp(type, "student") == 0 &&
       strcmp(run_state, "post_processing") == 0))
    return "queued";
  return "created";
}

/* ---- create ---------------------------------------------------------- */

/* Where a run came from: its API generation and course (run.h), written on
 * its runs, rosters and jobs documents (only when not the seed's). */
typedef struct run_origin {
  int gen;
  const char *course, *assignment;
} run_origin_t;

static void run_append_origin(bson_t *doc, const run_origin_t *o) {
  if (o == NULL || o->gen == BW_GEN_SEED)
    return;
  BSON_APPEND_INT32(doc, "gen", o->gen);
  BSON_APPEND_UTF8(doc, "course", o->course);
  if (o->assignment != NULL)
    BSON_APPEND_UTF8(doc, "assignment", o->assignment);
}

void bw_run_handout_origin(const bson_t *doc, bw_handout_t *h) {
  h->gen = (int)bw_db_get_int(doc, "gen");
  bson_strncpy(h->course, bw_db_get_utf8(doc, "course", ""),
               sizeof h->course);
}

static void run_job_doc(bson_t *doc, const bson_oid_t *id,
                        const bson_oid_t *run, const char *type, int index,
                        const bson_t *student, const run_origin_t *origin,
                        int64_t now) {
  bson_init(doc);
  BSON_APPEND_OID(doc, "_id", id);
  BSON_APPEND_OID(doc, "run_id", run);
  BSON_APPEND_UTF8(doc, "type", type);
  run_append_origin(doc, origin);
  if (student != NULL) {
    BSON_APPEND_INT32(doc, "index", index);
    BSON_APPEND_DOCUMENT(doc, "student", student);
  }
  BSON_APPEND_DATE_TIME(doc, "created_at", now);
}

/* Sends what `bulk` holds (ordered: it stops at the first error) and makes
 * it a new, empty bulk. */
static int run_bulk_flush(bw_db_t *db, mongoc_bulk_operation_t **bulk,
                          bw_error_t *error) {
  bson_t reply;
  bson_error_t driver;
  int rc = 0;
  if (!mongoc_bulk_operation_execute(*bulk, &reply, &driver))
    rc = bw_db_error(&driver, error);
  bson_destroy(&reply);
  mongoc_bulk_operation_destroy(*bulk);
  *bulk = mongoc_collection_create_bulk_operation_with_opts(
      bw_db_coll(db, BW_COLL_JOBS), NULL);
  return rc;
}

/* The roster, read once from the body's text, one student at a time: the
 * students as posted (what pre/post jobs get) and as their jobs hold them
 * (numbers and booleans as text), as BSON arrays.  *differs when the two
 * are not the same.  On failure the caller still destroys both. */
static int run_read_students(const bw_json_items_t *students, bson_t *roster,
                             bson_t *envs, bool *differs, bw_error_t *error) {
  size_t n = bw_json_items_count(students);
  int rc = 0;

  bson_init(roster);
  bson_init(envs);
  *differs = false;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    json_object *student, *env;
    const char *key;
    char buf[16];
    if ((rc = bw_json_items_get(students, i, &student, error)) < 0)
      break;
    bson_uint32_to_string((uint32_t)i, &key, buf, sizeof buf);
    env = bw_validate_env_text(student);
    if (env == NULL || bw_json_append_bson(roster, key, student) < 0 ||
        bw_json_append_bson(envs, key, env) < 0)
      rc = bw_error_set(error, BW_ENOMEM, "students: out of memory");
    *differs = *differs || env != student;
    json_object_put(env);
    json_object_put(student);
  }
  return rc;
}

/* The job documents go in batches of RUN_INSERT_BATCH, so that what a large
 * roster costs in memory stays small.  `envs` is run_read_students'. */
static int run_insert_jobs(bw_db_t *db, const bson_oid_t *run,
                           const bson_t *envs, const bson_oid_t *ids,
                           const bson_oid_t *pre, const bson_oid_t *post,
                           const run_origin_t *origin, bw_error_t *error) {
  mongoc_bulk_operation_t *bulk;
  bson_iter_t it;
  bson_t doc, env;
  size_t queued = 0;
  int64_t now = bw_db_now_ms();
  int rc = 0, i = 0;

  bulk = mongoc_collection_create_bulk_operation_with_opts(
      bw_db_coll(db, BW_COLL_JOBS), NULL);
  if (pre != NULL) {
    run_job_doc(&doc, pre, run, "pre", 0, NULL, origin, now);
    mongoc_bulk_operation_insert(bulk, &doc);
    bson_destroy(&doc);
    queued++;
  }
  for (bson_iter_init(&it, envs); rc == 0 && bson_iter_next(&it); i++) {
    const uint8_t *data;
    uint32_t len;
    bson_iter_document(&it, &len, &data);
    bson_init_static(&env, data, len);
    run_job_doc(&doc, &ids[i], run, "student", i, &env, origin, now);
    mongoc_bulk_operation_insert(bulk, &doc);
    bson_destroy(&doc);
    if (++queued == RUN_INSERT_BATCH) {
      rc = run_bulk_flush(db, &bulk, error);
      queued = 0;
    }
  }
  if (rc == 0 && post != NULL) {
    run_job_doc(&doc, post, run, "post", 0, NULL, origin, now);
    mongoc_bulk_operation_insert(bulk, &doc);
    bson_destroy(&doc);
    queued++;
  }
  if (rc == 0 && queued > 0)
    rc = run_bulk_flush(db, &bulk, error);
  mongoc_bulk_operation_destroy(bulk);
  return rc;
}

static int run_insert(bw_db_t *db, bw_coll_t which, const bson_t *doc,
                      const char *field, bw_error_t *error) {
  bson_error_t driver;
  if (doc->len > RUN_MAX_DOC)
    return bw_error_set(error, BW_ETOOBIG,
                        "%s: %u bytes stored, over the 16 MB a document may "
                        "hold",
                        field, doc->len);
  if (!mongoc_collection_insert_one(bw_db_coll(db, which), doc, NULL, NULL,
                                    &driver))
    return bw_db_error(&driver, error);
  return 0;
}

/* The roster as posted goes to pre/post jobs; the student jobs' envs (values
 * as text) are stored beside it only when they differ from it (envs NULL). */
static int run_insert_roster(bw_db_t *db, const bson_oid_t *run,
                             const bson_t *roster, const bson_t *envs,
                             const bson_oid_t *ids, size_t n,
                             const run_origin_t *origin, bw_error_t *error) {
  bson_t doc = BSON_INITIALIZER, list;
  int rc;

  BSON_APPEND_OID(&doc, "_id", run);
  run_append_origin(&doc, origin); /* its student jobs' hand-outs carry it */
  BSON_APPEND_ARRAY(&doc, "students", roster);
  if (envs != NULL)
    BSON_APPEND_ARRAY(&doc, "envs", envs);
  BSON_APPEND_ARRAY_BEGIN(&doc, "student_job_ids", &list);
  for (size_t i = 0; i < n; i++) {
    const char *key;
    char buf[16];
    bson_uint32_to_string((uint32_t)i, &key, buf, sizeof buf);
    BSON_APPEND_OID(&list, key, &ids[i]);
  }
  bson_append_array_end(&doc, &list);
  rc = run_insert(db, BW_COLL_ROSTERS, &doc, "students", error);
  bson_destroy(&doc);
  return rc;
}

static int run_insert_run(bw_db_t *db, const bson_oid_t *run,
                          json_object *config, size_t students,
                          const bson_oid_t *pre, const bson_oid_t *post,
                          const run_origin_t *origin, bw_error_t *error) {
  bson_t doc = BSON_INITIALIZER, sub;
  int rc;

  BSON_APPEND_OID(&doc, "_id", run);
  BSON_APPEND_UTF8(&doc, "state", "created");
  run_append_origin(&doc, origin);
  BSON_APPEND_DATE_TIME(&doc, "created_at", bw_db_now_ms());
  BSON_APPEND_INT32(&doc, "student_count", (int)students);
  if (pre != NULL)
    BSON_APPEND_OID(&doc, "pre_job_id", pre);
  if (post != NULL)
    BSON_APPEND_OID(&doc, "post_job_id", post);
  /* The pipelines and global env, once; the roster lives in rosters. */
  BSON_APPEND_DOCUMENT_BEGIN(&doc, "config", &sub);
  json_object_object_foreach(config, key, value)
      bw_json_append_bson(&sub, key, value);
  bson_append_document_end(&doc, &sub);
  rc = run_insert(db, BW_COLL_RUNS, &doc, "body", error);
  bson_destroy(&doc);
  return rc;
}

/* Stores a run whose roster was read into `roster` (as posted) and `envs`
 * (as its jobs hold them; NULL: the same), in the order that makes it
 * visible only once complete: roster, jobs, then the run document. */
static int run_store(bw_db_t *db, json_object *config, const bson_t *roster,
                     const bson_t *envs, const run_origin_t *origin,
                     bson_oid_t *run_id, bw_error_t *error) {
  size_t n = bson_count_keys(roster);
  bson_oid_t run, pre, post, *ids;
  bool has_pre = json_object_object_get(config, "pre_processing_pipeline"),
       has_post = json_object_object_get(config, "post_processing_pipeline");
  int rc;

  ids = bson_malloc(sizeof *ids * (n ? n : 1));
  bson_oid_init(&run, NULL);
  for (size_t i = 0; i < n; i++)
    bson_oid_init(&ids[i], NULL);
  bson_oid_init(&pre, NULL);
  bson_oid_init(&post, NULL);
  rc = run_insert_roster(db, &run, roster, envs, ids, n, origin, error);
  if (rc == 0)
    rc = run_insert_jobs(db, &run, envs ? envs : roster, ids,
                         has_pre ? &pre : NULL, has_post ? &post : NULL,
                         origin, error);
  if (rc == 0)
    rc = run_insert_run(db, &run, config, n, has_pre ? &pre : NULL,
                        has_post ? &post : NULL, origin, error);
  bson_free(ids);
  if (rc == 0)
    bson_oid_copy(&run, run_id);
  return rc;
}

int bw_run_create(bw_db_t *db, json_object *config,
                  const bw_json_items_t *students, bson_oid_t *run_id,
                  bw_error_t *error) {
  bson_t roster, envs;
  bool differs;
  int rc = run_read_students(students, &roster, &envs, &differs, error);

  if (rc == 0)
    rc = run_store(db, config, &roster, differs ? &envs : NULL, NULL, run_id,
                   error);
  bson_destroy(&roster);
  bson_destroy(&envs);
  return rc;
}

/* ---- reads ----------------------------------------------------------- */

int bw_run_find(bw_db_t *db, const bson_oid_t *run, bool with_config,
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

static struct {
  bson_oid_t run;
  json_object *config;
} run_cache[RUN_CACHE];
static int run_cache_next;

int bw_run_config(bw_db_t *db, const bson_oid_t *run, json_object **out,
                  bw_error_t *error) {
  bson_t doc;
  bson_iter_t it;
  int rc;

  for (int i = 0; i < RUN_CACHE; i++)
    if (run_cache[i].config != NULL && bson_oid_equal(&run_cache[i].run, run)) {
      *out = json_object_get(run_cache[i].config);
      return 0;
    }
  rc = bw_run_find(db, run, true, &doc, error);
  if (rc == 0 && !bson_iter_init_find(&it, &doc, "config"))
    rc = bw_error_set(error, BW_EINTERNAL, "run without config");
  if (rc == 0) {
    int slot = run_cache_next++ % RUN_CACHE;
    json_object_put(run_cache[slot].config);
    bson_oid_copy(run, &run_cache[slot].run);
    run_cache[slot].config = bw_json_from_bson_iter(&it);
    *out = json_object_get(run_cache[slot].config);
  }
  bson_destroy(&doc);
  return rc;
}

int bw_run_roster(bw_db_t *db, const bson_oid_t *run, json_object **out,
                  bw_error_t *error) {
  bson_t doc;
  bson_iter_t it;
  int rc = bw_db_find_by_oid(db, BW_COLL_ROSTERS, "_id", run, &doc, error);
  if (rc == 0 && bson_iter_init_find(&it, &doc, "students"))
    *out = bw_json_from_bson_iter(&it);
  else if (rc == 0)
    rc = bw_error_set(error, BW_EINTERNAL, "roster without students");
  bson_destroy(&doc);
  return rc;
}

/* ---- phases ---------------------------------------------------------- */

static int run_update_state(bw_db_t *db, const bson_oid_t *run,
                            const char *state, const char *stamp, int success,
                            bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set;
  int rc = 0;

  BSON_APPEND_OID(&filter, "_id", run);
  BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
  BSON_APPEND_UTF8(&set, "state", state);
  if (stamp != NULL)
    BSON_APPEND_DATE_TIME(&set, stamp, bw_db_now_ms());
  if (success >= 0)
    BSON_APPEND_BOOL(&set, "success", success != 0);
  bson_append_document_end(&update, &set);
  /* Each phase change has exactly one writer (a mark decided it), so
   * FerretDB's read-then-write cannot lose one. */
  rc = bw_db_update_one(db, BW_COLL_RUNS, &filter, &update, NULL, error);
  bson_destroy(&filter);
  bson_destroy(&update);
  return rc;
}

void bw_run_mark_id(const bson_oid_t *run, int round, const char *what,
                    char id[128]) {
  char hex[25];
  bson_oid_to_string(run, hex);
  if (round > 0)
    snprintf(id, 128, "%s:r%d:%s", hex, round, what);
  else
    snprintf(id, 128, "%s:%s", hex, what);
}

int bw_run_mark(bw_db_t *db, const bson_oid_t *run, int round,
                const char *what, bool cancelled, bw_error_t *error) {
  bson_t doc = BSON_INITIALIZER;
  char id[128];
  int rc;

  bw_run_mark_id(run, round, what, id);
  BSON_APPEND_UTF8(&doc, "_id", id);
  BSON_APPEND_OID(&doc, "run_id", run);
  BSON_APPEND_DATE_TIME(&doc, "at", bw_db_now_ms());
  if (cancelled)
    BSON_APPEND_BOOL(&doc, "cancelled", true);
  rc = bw_db_insert_once(db, BW_COLL_MARKS, &doc, error);
  bson_destroy(&doc);
  return rc;
}

/* A once-only mark of the first pass.  Returns 0 when this call made it,
 * BW_EDUP when it existed, BW_EDB. */
static int run_mark_once(bw_db_t *db, const bson_oid_t *run, const char *what,
                         bw_error_t *error) {
  return bw_run_mark(db, run, 0, what, false, error);
}

bool bw_run_cancelled(bw_db_t *db, const bson_oid_t *run, int round) {
  bson_t mark;
  bson_iter_t it;
  char id[128];
  bool cancelled;

  bw_run_mark_id(run, round, "end", id);
  cancelled = bw_db_find_by_id(db, BW_COLL_MARKS, id, &mark, NULL) == 0 &&
              bson_iter_init_find(&it, &mark, "cancelled") &&
              bson_iter_as_bool(&it);
  bson_destroy(&mark);
  return cancelled;
}

/* Like bw_run_mark, but also 0 when the mark exists and is older than
 * cfg->claim_grace: its maker died between the mark and the steps after it,
 * and those steps are idempotent, so the caller redoes them. */
int bw_run_mark_or_stale(bw_db_t *db, const bw_config_t *cfg,
                         const bson_oid_t *run, int round, const char *what,
                         bw_error_t *error) {
  bson_t mark;
  bson_iter_t it;
  char id[128];
  int rc = bw_run_mark(db, run, round, what, false, error);

  if (rc != BW_EDUP)
    return rc;
  bw_run_mark_id(run, round, what, id);
  /* A cancel's mark is never stale: it was the whole decision. */
  if (bw_db_find_by_id(db, BW_COLL_MARKS, id, &mark, NULL) == 0 &&
      !bson_iter_init_find(&it, &mark, "cancelled") &&
      bson_iter_init_find(&it, &mark, "at") && BSON_ITER_HOLDS_DATE_TIME(&it) &&
      bson_iter_date_time(&it) < bw_db_now_ms() - cfg->claim_grace * 1000LL)
    rc = 0;
  bson_destroy(&mark);
  return rc;
}

/* Queues the run's pre or post job (attempt 1, or a retry's). */
static int run_queue_single(bw_db_t *db, const bson_t *run_doc,
                            const bson_oid_t *run, const bson_oid_t *job,
                            const char *type, int round, int attempt,
                            bw_error_t *error) {
  bw_handout_t h = {.attempt = attempt > 0 ? attempt : 1,
                    .first_attempt = attempt > 0 ? attempt : 1,
                    .round = round};
  bw_run_handout_origin(run_doc, &h);
  bson_oid_copy(job, &h.job_id);
  bson_oid_copy(run, &h.run_id);
  bson_strncpy(h.type, type, sizeof h.type);
  return bw_queue_push(db, &h, NULL, error);
}

/* Queues attempt 1 of every student job, from the roster (its envs).  Repeating
 * it is harmless: entries already there are kept, claimed ones get dropped.
 * *count: the run's students. */
static int run_queue_students(bw_db_t *db, const bson_oid_t *run, int *count,
                              bw_error_t *error) {
  bson_t roster;
  bson_iter_t ids, students, id, student;
  bw_queue_batch_t *batch;
  bw_handout_t h = {.attempt = 1, .type = "student"};
  int rc = bw_db_find_by_oid(db, BW_COLL_ROSTERS, "_id", run, &roster, error),
      n = 0;

  if (rc < 0) {
    bson_destroy(&roster);
    return rc;
  }
  bson_oid_copy(run, &h.run_id);
  bw_run_handout_origin(&roster, &h);
  if (bson_iter_init_find(&ids, &roster, "student_job_ids") &&
      bson_iter_recurse(&ids, &id))
    while (bson_iter_next(&id))
      n++;
  h.student_count = n;
  *count = n;
  batch = bw_queue_batch_alloc(db);
  if (bson_iter_init_find(&ids, &roster, "student_job_ids") &&
      bson_iter_recurse(&ids, &id) &&
      (bson_iter_init_find(&students, &roster, "envs") ||
       bson_iter_init_find(&students, &roster, "students")) &&
      bson_iter_recurse(&students, &student)) {
    for (h.index = 0; bson_iter_next(&id) && bson_iter_next(&student);
         h.index++) {
      const uint8_t *data;
      uint32_t len;
      bson_t env;
      if (!BSON_ITER_HOLDS_OID(&id) || !BSON_ITER_HOLDS_DOCUMENT(&student))
        continue;
      bson_oid_copy(bson_iter_oid(&id), &h.job_id);
      bson_iter_document(&student, &len, &data);
      bson_init_static(&env, data, len);
      bw_queue_batch_add(batch, &h, &env);
    }
  }
  rc = bw_queue_batch_push(batch, error);
  bw_queue_batch_free(batch);
  bson_destroy(&roster);
  return rc;
}

int bw_run_set_state(bw_db_t *db, const bson_oid_t *run, const char *state,
                     const char *stamp, int success, bw_error_t *error) {
  return run_update_state(db, run, state, stamp, success, error);
}

/* A phase was entered (state written, jobs queued) by a mark taken before a
 * cancel of the round took the end mark: the cancel may have written its
 * state and dropped the queue before this, so it is done again here.
 * Checked after the writes, so either this sees the cancel or the cancel
 * comes after them (control.h). */
static int run_guard_cancel(bw_db_t *db, const bson_oid_t *run, int round,
                            bw_error_t *error) {
  int rc;
  if (!bw_run_cancelled(db, run, round))
    return 0;
  rc = run_update_state(db, run, "cancelled", NULL, 0, error);
  return rc < 0 ? rc : bw_queue_cancel_run(db, run, error);
}

/* The state is written before the jobs are queued: a job finishing at once
 * must never see its run's state overwritten by an older step. */
static int run_enter_students(bw_db_t *db, const bson_oid_t *run, int round,
                              const char *stamp, int *count,
                              bw_error_t *error) {
  int rc = run_update_state(db, run, "students", stamp, -1, error);
  if (rc == 0)
    rc = run_queue_students(db, run, count, error);
  return rc < 0 ? rc : run_guard_cancel(db, run, round, error);
}

static int run_enter_post(bw_db_t *db, const bson_t *run_doc,
                          const bson_oid_t *run, int round, int attempt,
                          const bson_oid_t *post, bw_error_t *error) {
  int rc = run_update_state(db, run, "post_processing", NULL, -1, error);
  if (rc == 0)
    rc = run_queue_single(db, run_doc, run, post, "post", round, attempt,
                          error);
  return rc < 0 ? rc : run_guard_cancel(db, run, round, error);
}

static int run_finish(bw_db_t *db, const bw_config_t *cfg,
                      const bson_oid_t *run, int round, bool success,
                      bw_error_t *error) {
  int rc = bw_run_mark_or_stale(db, cfg, run, round, "end", error);
  if (rc == BW_EDUP)
    return 0;
  if (rc < 0)
    return rc;
  return run_update_state(db, run, success ? "succeeded" : "failed",
                          "finished_at", success, error);
}

int bw_run_start(bw_db_t *db, const bson_oid_t *run, bw_error_t *error) {
  return bw_run_start_count(db, run, NULL, error);
}

int bw_run_start_count(bw_db_t *db, const bson_oid_t *run, int *count,
                       bw_error_t *error) {
  bson_oid_t pre;
  bson_t doc;
  char run_id[25];
  int ignored, rc = bw_run_find(db, run, false, &doc, error);

  if (count == NULL)
    count = &ignored;
  *count = -1; /* not entered yet: a pre job runs first */

  if (rc == 0) {
    rc = run_mark_once(db, run, "start", error);
    bson_oid_to_string(run, run_id);
    if (rc == BW_EDUP)
      rc = bw_error_set(error, BW_EINVAL, "grading run %s was already started",
                        run_id);
  }
  if (rc == 0 && bw_db_get_oid(&doc, "pre_job_id", &pre)) {
    rc = run_update_state(db, run, "pre_processing", "started_at", -1, error);
    if (rc == 0)
      rc = run_queue_single(db, &doc, run, &pre, "pre", 0, 1, error);
    if (rc == 0)
      rc = run_guard_cancel(db, run, 0, error);
  } else if (rc == 0) {
    rc = run_enter_students(db, run, 0, "started_at", count, error);
  }
  bson_destroy(&doc);
  return rc;
}

int bw_run_after_students(bw_db_t *db, const bw_config_t *cfg,
                          const bson_oid_t *run, bool stale_ok,
                          bw_error_t *error) {
  bson_oid_t post;
  bson_t doc;
  int rc = bw_run_find(db, run, false, &doc, error),
      round = (int)bw_db_get_int(&doc, "round");

  if (rc == 0 && bw_db_get_oid(&doc, "post_job_id", &post)) {
    rc = stale_ok ? bw_run_mark_or_stale(db, cfg, run, round, "post", error)
                  : bw_run_mark(db, run, round, "post", false, error);
    if (rc == 0)
      rc = run_enter_post(db, &doc, run, round,
                          (int)bw_db_get_int(&doc, "post_attempt"), &post,
                          error);
    if (rc == BW_EDUP)
      rc = 0;
  } else if (rc == 0) {
    rc = run_finish(db, cfg, run, round, true, error);
  }
  bson_destroy(&doc);
  return rc;
}

static int run_student_finished(bw_db_t *db, const bw_config_t *cfg,
                                const bw_handout_t *h, bw_error_t *error) {
  char done[64], hex[25];
  bool last = false;
  int rc;

  bson_oid_to_string(&h->job_id, hex);
  snprintf(done, sizeof done, "done:%s", hex);
  /* Count each job once per round, even if its end is applied twice. */
  rc = bw_run_mark(db, &h->run_id, h->round, done, false, error);
  if (rc == BW_EDUP)
    return 0;
  if (rc == 0)
    rc = bw_finish_count_round(db, &h->run_id, &h->job_id, h->round, h->index,
                               h->student_count, &last, error);
  if (rc < 0 || !last)
    return rc;
  /* The last student job: exactly one caller gets here. */
  return bw_run_after_students(db, cfg, &h->run_id, false, error);
}

int bw_run_job_finished(bw_db_t *db, const bw_config_t *cfg,
                        const bw_handout_t *h, bool success,
                        bw_error_t *error) {
  if (strcmp(h->type, "pre") == 0) {
    int rc;
    if (!success)
      return run_finish(db, cfg, &h->run_id, h->round, false, error);
    int count = 0;
    rc = bw_run_mark_or_stale(db, cfg, &h->run_id, h->round, "students",
                                error);
    if (rc == BW_EDUP)
      return 0;
    if (rc == 0)
      rc = run_enter_students(db, &h->run_id, h->round, NULL, &count, error);
    /* No students (a Gen 3 run may have none): nothing will finish them. */
    if (rc == 0 && count == 0)
      rc = bw_run_after_students(db, cfg, &h->run_id, false, error);
    return rc;
  }
  if (strcmp(h->type, "post") == 0)
    return run_finish(db, cfg, &h->run_id, h->round, success, error);
  return run_student_finished(db, cfg, h, error);
}

/* ---- the jobs of a run, as status and repair see them ------------------ */

static int run_job_cmp(const void *a, const void *b) {
  return bson_oid_compare(&((const bw_run_job_t *)a)->id,
                          &((const bw_run_job_t *)b)->id);
}

static bw_run_job_t *run_jobs_find(bw_run_jobs_t *t, const bson_oid_t *id) {
  bw_run_job_t key;
  if (t->n == 0)
    return NULL;
  bson_oid_copy(id, &key.id);
  return bsearch(&key, t->jobs, t->n, sizeof key, run_job_cmp);
}

void bw_run_jobs_cleanup(bw_run_jobs_t *t) {
  for (size_t i = 0; i < t->n; i++)
    json_object_put(t->jobs[i].student);
  bson_free(t->jobs);
  t->jobs = NULL;
  t->n = 0;
}

/* Runs `visit` on every document of `coll` whose run_id is `run`. */
static int run_each(mongoc_collection_t *coll, const bson_oid_t *run,
                    bw_db_visit_fn visit, bw_run_jobs_t *t, bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER;
  int rc;
  BSON_APPEND_OID(&filter, "run_id", run);
  rc = bw_db_each(coll, &filter, NULL, visit, t, error);
  bson_destroy(&filter);
  return rc;
}

static void run_visit_job(const bson_t *doc, void *ctx) {
  bw_run_jobs_t *t = ctx;
  bw_run_job_t *j;
  bson_iter_t it;

  t->jobs = bson_realloc(t->jobs, (t->n + 1) * sizeof *t->jobs);
  j = memset(&t->jobs[t->n], 0, sizeof *j);
  j->retry_index = -1;
  if (!bw_db_get_oid(doc, "_id", &j->id))
    return;
  bson_strncpy(j->type, bw_db_get_utf8(doc, "type", "student"), sizeof j->type);
  j->index = (int)bw_db_get_int(doc, "index");
  if (bson_iter_init_find(&it, doc, "student"))
    j->student = bw_json_from_bson_iter(&it);
  t->n++;
}

static void run_visit_outcome(const bson_t *doc, void *ctx) {
  bw_run_jobs_t *t = ctx;
  bson_oid_t id;
  bson_iter_t it;
  bw_run_job_t *j;
  const char *kind = bw_db_get_utf8(doc, "kind", "");
  int attempt = (int)bw_db_get_int(doc, "attempt");

  if (!bw_db_get_oid(doc, "job_id", &id) || !(j = run_jobs_find(t, &id)))
    return;
  if (attempt > j->attempts)
    j->attempts = attempt;
  /* The latest ended attempt says where the job is (a retry starts a new
   * attempt after a final one). */
  if (attempt < j->decided)
    return;
  j->decided = attempt;
  j->final = 0;
  j->finished_at = 0;
  j->reason[0] = '\0';
  if (bson_iter_init_find(&it, doc, "reason") && BSON_ITER_HOLDS_UTF8(&it))
    bson_strncpy(j->reason, bson_iter_utf8(&it, NULL), sizeof j->reason);
  if (strcmp(kind, "result") == 0) {
    j->final =
        bson_iter_init_find(&it, doc, "success") && bson_iter_as_bool(&it) ? 1
                                                                           : 2;
    if (bson_iter_init_find(&it, doc, "worker_id") && BSON_ITER_HOLDS_OID(&it))
      bson_oid_to_string(bson_iter_oid(&it), j->worker);
  } else if (strcmp(kind, "failed") == 0) {
    j->final = 2;
  }
  if (j->final && bson_iter_init_find(&it, doc, "at"))
    j->finished_at = bson_iter_date_time(&it);
}

static void run_visit_active(const bson_t *doc, void *ctx) {
  bw_run_jobs_t *t = ctx;
  bson_oid_t id;
  bson_iter_t it;
  bw_run_job_t *j;

  if (!bw_db_get_oid(doc, "job_id", &id) || !(j = run_jobs_find(t, &id)) ||
      bw_db_get_int(doc, "attempt") <= j->decided)
    return;
  j->active = true;
  j->final = 0;
  if (bw_db_get_int(doc, "attempt") > j->attempts)
    j->attempts = (int)bw_db_get_int(doc, "attempt");
  if (bson_iter_init_find(&it, doc, "worker_id") && BSON_ITER_HOLDS_OID(&it))
    bson_oid_to_string(bson_iter_oid(&it), j->worker);
  if (bson_iter_init_find(&it, doc, "started_at"))
    j->started_at = bson_iter_date_time(&it);
}

static void run_visit_waiting(const bson_t *doc, void *ctx) {
  bw_run_jobs_t *t = ctx;
  bson_oid_t id;
  bw_run_job_t *j;
  if (bw_db_get_oid(doc, "job_id", &id) && (j = run_jobs_find(t, &id)))
    j->waiting = true;
}

bool bw_run_retry_of(const bson_t *run_doc, const bson_oid_t *job,
                     int *attempt, int *index) {
  bson_t retry, entry;
  char hex[25];
  bson_oid_to_string(job, hex);
  if (!bw_db_get_doc(run_doc, "retry", &retry) ||
      !bw_db_get_doc(&retry, hex, &entry))
    return false;
  *attempt = (int)bw_db_get_int(&entry, "attempt");
  *index = (int)bw_db_get_int(&entry, "index");
  return true;
}

/* The jobs the run's last retry queued again: waiting for that attempt
 * unless it already ended or is being graded. */
static int run_jobs_retried(bw_db_t *db, const bson_oid_t *run,
                            bw_run_jobs_t *t, bw_error_t *error) {
  bson_t doc;
  int rc = bw_run_find(db, run, false, &doc, error);
  for (size_t i = 0; rc == 0 && i < t->n; i++) {
    bw_run_job_t *j = &t->jobs[i];
    j->retry_index = -1;
    if (!bw_run_retry_of(&doc, &j->id, &j->retry_attempt, &j->retry_index))
      continue;
    if (j->retry_attempt > j->decided && !j->active) {
      j->final = 0;
      j->finished_at = 0;
      j->reason[0] = '\0';
    }
  }
  bson_destroy(&doc);
  return rc == BW_ENOTFOUND ? 0 : rc;
}

int bw_run_jobs_load(bw_db_t *db, const bson_oid_t *run, bool queue,
                     bw_run_jobs_t *t, bw_error_t *error) {
  int rc;

  t->jobs = NULL;
  t->n = 0;
  rc = run_each(bw_db_coll(db, BW_COLL_JOBS), run, run_visit_job, t, error);
  if (rc == 0 && t->n > 0)
    qsort(t->jobs, t->n, sizeof *t->jobs, run_job_cmp);
  if (rc == 0)
    rc = run_each(bw_db_coll(db, BW_COLL_OUTCOMES), run, run_visit_outcome, t,
                  error);
  if (rc == 0)
    rc = run_each(bw_db_coll(db, BW_COLL_ACTIVE), run, run_visit_active, t,
                  error);
  if (rc == 0)
    rc = run_jobs_retried(db, run, t, error);
  for (int p = 0; queue && rc == 0 && p < bw_db_queue_partitions(db); p++)
    rc = run_each(bw_db_queue(db, p), run, run_visit_waiting, t, error);
  /* On failure the caller owns nothing (the database may go away between
   * two of the scans, after the jobs and their student envs are loaded). */
  if (rc < 0)
    bw_run_jobs_cleanup(t);
  return rc;
}

/* ---- status ---------------------------------------------------------- */

static int run_status_order(const void *a, const void *b) {
  const bw_run_job_t *x = *(bw_run_job_t *const *)a,
                     *y = *(bw_run_job_t *const *)b;
  int tx = strcmp(x->type, "pre") == 0    ? 0
           : strcmp(x->type, "post") == 0 ? 2
                                          : 1;
  int ty = strcmp(y->type, "pre") == 0    ? 0
           : strcmp(y->type, "post") == 0 ? 2
                                          : 1;
  return tx != ty ? tx - ty : x->index - y->index;
}

static json_object *run_date(int64_t ms) {
  bson_t doc = BSON_INITIALIZER;
  bson_iter_t it;
  json_object *out;
  BSON_APPEND_DATE_TIME(&doc, "d", ms);
  bson_iter_init_find(&it, &doc, "d");
  out = bw_json_from_bson_iter(&it);
  bson_destroy(&doc);
  return out;
}

static const char *run_job_shown_state(const bw_run_job_t *j,
                                       const char *run_state) {
  if (j->final)
    return j->final == 1 ? "succeeded" : "failed";
  if (j->active)
    return "running";
  return bw_run_job_state(j->type, run_state);
}

static json_object *run_status_job(const bw_run_job_t *j,
                                   const char *run_state) {
  json_object *job = json_object_new_object();
  char hex[25];

  bson_oid_to_string(&j->id, hex);
  json_object_object_add(job, "job_id", json_object_new_string(hex));
  json_object_object_add(job, "type", json_object_new_string(j->type));
  json_object_object_add(
      job, "state", json_object_new_string(run_job_shown_state(j, run_state)));
  json_object_object_add(job, "attempts", json_object_new_int(j->attempts));
  if (strcmp(j->type, "student") == 0) {
    json_object_object_add(job, "index", json_object_new_int(j->index));
    json_object_object_add(job, "student", json_object_get(j->student));
  }
  if (j->worker[0] != '\0')
    json_object_object_add(job, "worker_id", json_object_new_string(j->worker));
  if (j->final)
    json_object_object_add(job, "success",
                           json_object_new_boolean(j->final == 1));
  if (j->reason[0] != '\0')
    json_object_object_add(job, "reason", json_object_new_string(j->reason));
  if (j->started_at)
    json_object_object_add(job, "started_at", run_date(j->started_at));
  if (j->finished_at)
    json_object_object_add(job, "finished_at", run_date(j->finished_at));
  return job;
}

/* "jobs_page" of a status: which part of the run's jobs "jobs" holds. */
static json_object *run_page_info(const bw_run_page_t *page, size_t first,
                                  size_t end, size_t total) {
  json_object *info = json_object_new_object();
  if (!page->summary) {
    json_object_object_add(info, "offset", json_object_new_int64((int64_t)first));
    json_object_object_add(info, "limit",
                           json_object_new_int64(page->limit > 0
                                                     ? page->limit
                                                     : BW_RUN_PAGE_MAX));
  }
  json_object_object_add(info, "total", json_object_new_int64((int64_t)total));
  if (!page->summary && end < total)
    json_object_object_add(info, "next_offset",
                           json_object_new_int64((int64_t)end));
  return info;
}

static void run_status_jobs(bw_run_jobs_t *t, const char *run_state,
                            const bw_run_page_t *page, json_object *status) {
  static const char *states[] = {"created",   "queued", "running",
                                 "succeeded", "failed", "cancelled"};
  json_object *jobs = NULL, *counts = json_object_new_object();
  bw_run_job_t **order = bson_malloc(sizeof *order * (t->n ? t->n : 1));
  size_t limit = page->limit > 0 ? (size_t)page->limit : BW_RUN_PAGE_MAX;
  size_t first = (size_t)page->offset < t->n ? (size_t)page->offset : t->n;
  size_t end = t->n - first > limit ? first + limit : t->n;
  int n[6] = {0};

  for (size_t i = 0; i < t->n; i++)
    order[i] = &t->jobs[i];
  qsort(order, t->n, sizeof *order, run_status_order);
  if (!page->summary)
    jobs = json_object_new_array_ext((int)(end - first));
  for (size_t i = 0; i < t->n; i++) {
    const char *state = run_job_shown_state(order[i], run_state);
    for (int k = 0; k < 6; k++)
      n[k] += strcmp(state, states[k]) == 0;
    if (jobs && i >= first && i < end)
      json_object_array_add(jobs, run_status_job(order[i], run_state));
  }
  for (int k = 0; k < 6; k++)
    json_object_object_add(counts, states[k], json_object_new_int(n[k]));
  json_object_object_add(status, "counts", counts);
  if (jobs)
    json_object_object_add(status, "jobs", jobs);
  /* The seed's response, unchanged, whenever it lists the whole run. */
  if (page->summary || first > 0 || end < t->n)
    json_object_object_add(status, "jobs_page",
                           run_page_info(page, first, end, t->n));
  bson_free(order);
}

int bw_run_status(bw_db_t *db, const bson_oid_t *run, json_object **out,
                  bw_error_t *error) {
  return bw_run_status_page(db, run, NULL, out, error);
}

int bw_run_status_page(bw_db_t *db, const bson_oid_t *run,
                       const bw_run_page_t *page, json_object **out,
                       bw_error_t *error) {
  static const bw_run_page_t first_page = {false, 0, 0};
  static const char *copied[] = {"state",      "success",     "created_at",
                                 "started_at", "finished_at", "student_count",
                                 "pre_job_id", "post_job_id", "round"};
  bson_t doc;
  bw_run_jobs_t t;
  json_object *status, *all, *v;
  char run_id[25];
  int rc;

  *out = NULL;
  rc = bw_run_find(db, run, false, &doc, error);
  if (rc == 0)
    rc = bw_run_jobs_load(db, run, false, &t, error);
  if (rc < 0) {
    bson_destroy(&doc);
    return rc;
  }
  bson_oid_to_string(run, run_id);
  all = bw_json_from_bson(&doc);
  status = json_object_new_object();
  json_object_object_add(status, "grading_run_id",
                         json_object_new_string(run_id));
  for (size_t i = 0; i < sizeof copied / sizeof *copied; i++)
    if (json_object_object_get_ex(all, copied[i], &v))
      json_object_object_add(status, copied[i], json_object_get(v));
  run_status_jobs(&t, bw_db_get_utf8(&doc, "state", "created"),
                  page ? page : &first_page, status);
  bw_run_jobs_cleanup(&t);
  json_object_put(all);
  bson_destroy(&doc);
  *out = status;
  return 0;
}

/* ---- Gen 3 ----------------------------------------------------------- */

/* A pipeline counts when it is a non-empty array (§2.5: missing, null and
 * [] are all "absent"). */
static bool run_gen3_has(json_object *config, const char *pipeline) {
  json_object *p = json_object_object_get(config, pipeline);
  return json_object_is_type(p, json_type_array) &&
         json_object_array_length(p) > 0;
}

/* The run's stored config: the present pipelines, the global env, and the
 * pre/post runtime envs (their jobs' runtime layer, §2.9.3), so that a
 * hand-out reads them all from the one cached config (bw_run_config). */
static int run_gen3_config(json_object *config, json_object *body,
                           json_object **out, bw_error_t *error) {
  static const char *const phase[2] = {"pre", "post"};
  json_object *stored = json_object_new_object(), *v;

  for (int i = 0; i < 2; i++) {
    char pipeline[40], env[32];
    snprintf(pipeline, sizeof pipeline, "%s_processing_pipeline", phase[i]);
    snprintf(env, sizeof env, "%s_processing_env", phase[i]);
    v = json_object_object_get(body, env);
    if (v != NULL && !run_gen3_has(config, pipeline)) {
      json_object_put(stored);
      /* The original's text, its missing space included (§2.6). */
      return bw_error_set(error, BW_EINVAL,
                          "%s-processing runtime environment provided, but "
                          "no%s-processing stage was associated with this "
                          "assignment",
                          phase[i], phase[i]);
    }
    if (run_gen3_has(config, pipeline))
      json_object_object_add(stored, pipeline,
                             json_object_get(json_object_object_get(config,
                                                                    pipeline)));
    if (json_object_is_type(v, json_type_object))
      json_object_object_add(stored, env, json_object_get(v));
  }
  v = json_object_object_get(config, "student_pipeline");
  json_object_object_add(stored, "student_pipeline",
                         json_object_is_type(v, json_type_array)
                             ? json_object_get(v)
                             : json_object_new_array());
  v = json_object_object_get(config, "env");
  if (json_object_is_type(v, json_type_object))
    json_object_object_add(stored, "env", json_object_get(v));
  *out = stored;
  return 0;
}

int bw_run_create_gen3(bw_db_t *db, const bw_config_t *cfg, const char *course,
                       const char *assignment, json_object *config,
                       json_object *body, bson_oid_t *run_id,
                       bw_error_t *error) {
  run_origin_t origin = {BW_GEN_3, course, assignment};
  json_object *stored = NULL,
              *students = json_object_object_get(body, "students_env");
  bson_t roster = BSON_INITIALIZER;
  int rc, count = 0;

  rc = run_gen3_config(config, body, &stored, error);
  /* Student envs are kept literal (§2.9.3: no "$NAME", values keep their
   * JSON type), so the roster is stored once, as posted. */
  for (size_t i = 0; rc == 0 && i < json_object_array_length(students); i++) {
    json_object *env = json_object_array_get_idx(students, i);
    const char *key;
    char buf[16];
    bson_uint32_to_string((uint32_t)i, &key, buf, sizeof buf);
    if (!json_object_is_type(env, json_type_object))
      rc = bw_error_set(error, BW_EINVAL, "students_env[%zu]: expected an "
                        "object", i);
    else if (bw_json_append_bson(&roster, key, env) < 0)
      rc = bw_error_set(error, BW_ENOMEM, "students_env: out of memory");
  }
  if (rc == 0)
    rc = run_store(db, stored, &roster, NULL, &origin, run_id, error);
  /* Started at once (§2.6); a run without students moves on at once
   * (§2.9.1 item 6, the recommended behaviour). */
  if (rc == 0)
    rc = bw_run_start_count(db, run_id, &count, error);
  if (rc == 0 && count == 0)
    rc = bw_run_after_students(db, cfg, run_id, false, error);
  json_object_put(stored);
  bson_destroy(&roster);
  return rc;
}
