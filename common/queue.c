#include "queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "env.h"
#include "job.h"
#include "json.h"
#include "log.h"

/* How many waiting entries one poll looks at.  Pollers pick a random one of
 * these, so G graders polling at once mostly try different entries. */
#define QUEUE_PAGE 16
/* Pages a poll tries before answering "empty" while every entry it saw was
 * being taken by someone else. */
#define QUEUE_ROUNDS 4

void bw_queue_entry_id(const bson_oid_t *job_id, int attempt, char out[48]) {
  char hex[25];
  bson_oid_to_string(job_id, hex);
  snprintf(out, 48, "%s:%d", hex, attempt);
}

int bw_queue_push(bw_db_t *db, const bson_oid_t *job_ids, size_t n,
                  int attempt, bw_error_t *error) {
  mongoc_bulk_operation_t *bulk;
  bson_t opts = BSON_INITIALIZER, reply;
  bson_error_t driver;
  int64_t now = bw_db_now_ms();
  int rc = 0;

  if (n == 0)
    return 0;
  /* Unordered: an entry that already exists (a repeated push after a crash)
   * must not stop the others. */
  BSON_APPEND_BOOL(&opts, "ordered", false);
  bulk = mongoc_collection_create_bulk_operation_with_opts(
      bw_db_coll(db, BW_COLL_QUEUE), &opts);
  for (size_t i = 0; i < n; i++) {
    char id[48];
    bson_t doc = BSON_INITIALIZER;
    bw_queue_entry_id(&job_ids[i], attempt, id);
    BSON_APPEND_UTF8(&doc, "_id", id);
    BSON_APPEND_OID(&doc, "job_id", &job_ids[i]);
    BSON_APPEND_INT32(&doc, "attempt", attempt);
    BSON_APPEND_DATE_TIME(&doc, "queued_at", now);
    mongoc_bulk_operation_insert(bulk, &doc);
    bson_destroy(&doc);
  }
  if (!mongoc_bulk_operation_execute(bulk, &reply, &driver)) {
    bson_iter_t it;
    /* Only duplicate keys are fine; any other write error is a failure. */
    rc = bw_db_error(&driver, error);
    if (rc == BW_EDUP && bson_iter_init_find(&it, &reply, "nInserted"))
      rc = 0;
  }
  bson_destroy(&reply);
  mongoc_bulk_operation_destroy(bulk);
  bson_destroy(&opts);
  return rc;
}

typedef struct queue_entry {
  char id[48];
  bson_oid_t job_id;
  int attempt;
} queue_entry_t;

/* Reads up to QUEUE_PAGE waiting entries.  The filter is empty on purpose:
 * FerretDB pushes a LIMIT down to SQLite only then, so this costs the same
 * with 10 or 10,000 jobs waiting. */
static int queue_read_page(bw_db_t *db, queue_entry_t *page, int *n,
                           bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
  const bson_t *doc;
  bson_error_t driver;
  mongoc_cursor_t *cursor;
  int rc = 0;

  *n = 0;
  BSON_APPEND_INT64(&opts, "limit", QUEUE_PAGE);
  cursor = mongoc_collection_find_with_opts(bw_db_coll(db, BW_COLL_QUEUE),
                                            &filter, &opts, NULL);
  while (*n < QUEUE_PAGE && mongoc_cursor_next(cursor, &doc)) {
    bson_iter_t it;
    queue_entry_t *e = &page[*n];
    if (!bson_iter_init_find(&it, doc, "_id") || !BSON_ITER_HOLDS_UTF8(&it))
      continue;
    bson_strncpy(e->id, bson_iter_utf8(&it, NULL), sizeof e->id);
    if (!bson_iter_init_find(&it, doc, "job_id") || !BSON_ITER_HOLDS_OID(&it))
      continue;
    bson_oid_copy(bson_iter_oid(&it), &e->job_id);
    e->attempt = bson_iter_init_find(&it, doc, "attempt")
                     ? (int)bson_iter_as_int64(&it)
                     : 1;
    (*n)++;
  }
  if (mongoc_cursor_error(cursor, &driver))
    rc = bw_db_error(&driver, error);
  mongoc_cursor_destroy(cursor);
  bson_destroy(&filter);
  bson_destroy(&opts);
  return rc;
}

static void queue_delete_entry(bw_db_t *db, const char *id) {
  bson_t filter = BSON_INITIALIZER;
  bson_error_t driver;
  BSON_APPEND_UTF8(&filter, "_id", id);
  /* Best effort: a leftover entry whose claim exists is skipped by pollers
   * and removed by the next one that sees it. */
  if (!mongoc_collection_delete_one(bw_db_coll(db, BW_COLL_QUEUE), &filter,
                                    NULL, NULL, &driver))
    bw_log_warn("queue: could not delete entry %s: %s", id, driver.message);
  bson_destroy(&filter);
}

/* The once-only decision: this insert succeeds for exactly one poller. */
static int queue_claim(bw_db_t *db, const queue_entry_t *e,
                       const char *worker_id, bw_error_t *error) {
  bson_t doc = BSON_INITIALIZER;
  bson_oid_t op, worker;
  char ophex[25];
  int rc;

  bson_oid_init(&op, NULL);
  bson_oid_to_string(&op, ophex);
  bw_db_oid_parse(worker_id, &worker);
  BSON_APPEND_UTF8(&doc, "_id", e->id);
  BSON_APPEND_OID(&doc, "job_id", &e->job_id);
  BSON_APPEND_INT32(&doc, "attempt", e->attempt);
  BSON_APPEND_OID(&doc, "worker_id", &worker);
  BSON_APPEND_DATE_TIME(&doc, "at", bw_db_now_ms());
  BSON_APPEND_UTF8(&doc, "op", ophex);
  rc = bw_db_insert_once(db, BW_COLL_CLAIMS, &doc, error);
  bson_destroy(&doc);
  return rc;
}

/* Records the hand-out on the job.  findAndModify is safe here even on
 * FerretDB: the claim already made us the only writer of this attempt.  The
 * filter is the _id alone, the only filter FerretDB passes down to SQLite.
 * No state condition is needed: an entry exists only for an attempt that was
 * never claimed, and a final job never gets a new attempt pushed (claims are
 * inserted before entries are deleted, so repair always sees one of them).
 * Returns 0 and the updated job, BW_ENOTFOUND when the job is gone, or
 * BW_EDB. */
static int queue_mark_running(bw_db_t *db, const queue_entry_t *e,
                              const char *worker_id, bson_t *job,
                              bw_error_t *error) {
  bson_t query = BSON_INITIALIZER, update = BSON_INITIALIZER, set, reply;
  bson_oid_t worker;
  bson_error_t driver;
  bson_iter_t it;
  mongoc_find_and_modify_opts_t *opts;
  int rc;

  bson_init(job);
  BSON_APPEND_OID(&query, "_id", &e->job_id);
  bw_db_oid_parse(worker_id, &worker);
  BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
  BSON_APPEND_UTF8(&set, "state", "running");
  BSON_APPEND_OID(&set, "worker_id", &worker);
  BSON_APPEND_INT32(&set, "attempts", e->attempt);
  BSON_APPEND_DATE_TIME(&set, "started_at", bw_db_now_ms());
  bson_append_document_end(&update, &set);
  opts = mongoc_find_and_modify_opts_new();
  mongoc_find_and_modify_opts_set_update(opts, &update);
  mongoc_find_and_modify_opts_set_flags(opts,
                                        MONGOC_FIND_AND_MODIFY_RETURN_NEW);
  rc = BW_ENOTFOUND;
  if (!mongoc_collection_find_and_modify_with_opts(
          bw_db_coll(db, BW_COLL_JOBS), &query, opts, &reply, &driver)) {
    rc = bw_db_error(&driver, error);
  } else if (bson_iter_init_find(&it, &reply, "value") &&
             BSON_ITER_HOLDS_DOCUMENT(&it)) {
    const uint8_t *data;
    uint32_t len;
    bson_t found;
    bson_iter_document(&it, &len, &data);
    if (bson_init_static(&found, data, len)) {
      bson_destroy(job);
      bson_copy_to(&found, job);
      rc = 0;
    }
  }
  bson_destroy(&reply);
  mongoc_find_and_modify_opts_destroy(opts);
  bson_destroy(&query);
  bson_destroy(&update);
  return rc;
}

/* Builds the grader's view of a job: its stages with env resolved, and the
 * roster for pre/post jobs. */
static int queue_job_payload(bw_db_t *db, const bson_t *job, json_object **out,
                             bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, run, roster;
  bson_iter_t it;
  const bson_oid_t *run_oid;
  char run_id[25], job_id[25];
  const char *type = "student", *pipeline;
  json_object *jrun = NULL, *config, *stages, *global = NULL, *student = NULL,
              *result = NULL, *payload;
  int rc;

  if (!bson_iter_init_find(&it, job, "run_id") || !BSON_ITER_HOLDS_OID(&it))
    return bw_error_set(error, BW_EINTERNAL, "job without run_id");
  run_oid = bson_iter_oid(&it);
  bson_oid_to_string(run_oid, run_id);
  bson_iter_init_find(&it, job, "_id");
  bson_oid_to_string(bson_iter_oid(&it), job_id);
  if (bson_iter_init_find(&it, job, "type") && BSON_ITER_HOLDS_UTF8(&it))
    type = bson_iter_utf8(&it, NULL);
  pipeline = strcmp(type, "pre") == 0    ? "pre_processing_pipeline"
             : strcmp(type, "post") == 0 ? "post_processing_pipeline"
                                         : "student_pipeline";

  BSON_APPEND_OID(&filter, "_id", run_oid);
  rc = bw_db_find_one(db, BW_COLL_RUNS, &filter, NULL, &run, error);
  if (rc == 0) {
    jrun = bw_json_from_bson(&run);
    if (!json_object_object_get_ex(jrun, "config", &config) ||
        !json_object_object_get_ex(config, pipeline, &stages))
      rc = bw_error_set(error, BW_EINTERNAL, "run %s has no %s", run_id,
                        pipeline);
    json_object_object_get_ex(config, "env", &global);
  }
  bson_destroy(&run);
  if (rc == 0 && bson_iter_init_find(&it, job, "student"))
    student = bw_json_from_bson_iter(&it);

  if (rc == 0) {
    size_t n = json_object_array_length(stages);
    result = json_object_new_array_ext((int)n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
      json_object *stage = json_object_array_get_idx(stages, i), *copy = NULL,
                  *stage_env = NULL, *list = NULL;
      json_object_deep_copy(stage, &copy, NULL);
      json_object_object_get_ex(stage, "env", &stage_env);
      rc = bw_env_resolve(global, student, stage_env, run_id, job_id, &list,
                          error);
      if (rc == 0)
        json_object_object_add(copy, "env", list);
      json_object_array_add(result, copy);
    }
  }
  payload = json_object_new_object();
  json_object_object_add(payload, "job_id", json_object_new_string(job_id));
  json_object_object_add(payload, "stages", result);
  if (rc == 0 && strcmp(type, "student") != 0) {
    rc = bw_db_find_one(db, BW_COLL_ROSTERS, &filter, NULL, &roster, error);
    if (rc == 0 && bson_iter_init_find(&it, &roster, "students"))
      json_object_object_add(payload, "students", bw_json_from_bson_iter(&it));
    bson_destroy(&roster);
  }
  json_object_put(student);
  json_object_put(jrun);
  bson_destroy(&filter);
  if (rc < 0) {
    json_object_put(payload);
    return rc;
  }
  *out = payload;
  return 0;
}

/* Tries to take one entry.  Returns 0 (won and recorded), 1 (someone else
 * has it: try another), or a negative error. */
static int queue_take(bw_db_t *db, const queue_entry_t *e,
                      const char *worker_id, bson_t *job, bw_error_t *error) {
  int rc = queue_claim(db, e, worker_id, error);
  if (rc == BW_EDUP) {
    /* The claim is permanent, so this entry can never be handed out again:
     * drop it so it stops costing other pollers a round trip. */
    queue_delete_entry(db, e->id);
    return 1;
  }
  if (rc < 0)
    return rc;
  rc = queue_mark_running(db, e, worker_id, job, error);
  queue_delete_entry(db, e->id);
  if (rc == BW_ENOTFOUND) {
    bson_destroy(job);
    return 1;
  }
  return rc;
}

/* Every FastCGI worker is forked from one parent: seed per process, or they
 * would all pick the same entries. */
static int queue_random(void) {
  static pid_t seeded_for;
  if (seeded_for != getpid()) {
    seeded_for = getpid();
    srand((unsigned)getpid() ^ (unsigned)bw_db_now_ms());
  }
  return rand();
}

/* The job was recorded as handed out but its payload could not be built:
 * give the attempt back rather than leave it held by a grader that never
 * received it. */
static void queue_give_back(bw_db_t *db, const bw_config_t *cfg,
                            const queue_entry_t *e) {
  bool failed;
  bw_error_t error;
  if (bw_job_abandon(db, cfg, &e->job_id, e->attempt,
                     "its hand-out could not be sent", &failed, &error) < 0)
    bw_log_error("queue: %s: could not give back: %s", e->id, error.message);
}

int bw_queue_poll(bw_db_t *db, const bw_config_t *cfg, const char *worker_id,
                  json_object **out, bw_error_t *error) {
  queue_entry_t page[QUEUE_PAGE];

  *out = NULL;
  for (int round = 0; round < QUEUE_ROUNDS; round++) {
    int n, rc = queue_read_page(db, page, &n, error);
    if (rc < 0)
      return rc;
    if (n == 0)
      break;
    int start = queue_random() % n;
    for (int i = 0; i < n; i++) {
      bson_t job;
      const queue_entry_t *e = &page[(start + i) % n];
      rc = queue_take(db, e, worker_id, &job, error);
      if (rc == 1)
        continue;
      if (rc < 0)
        return rc;
      rc = queue_job_payload(db, &job, out, error);
      bson_destroy(&job);
      if (rc < 0) {
        bw_log_error("queue: job %s handed out but unreadable: %s", e->id,
                     error ? error->message : "");
        queue_give_back(db, cfg, e);
      }
      return rc;
    }
  }
  return bw_error_set(error, BW_EEMPTY, "queue is empty");
}
