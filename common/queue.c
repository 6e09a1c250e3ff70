#include "queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "env.h"
#include "job.h"
#include "json.h"
#include "log.h"
#include "qsignal.h"
#include "run.h"

/* How many waiting entries one poll looks at in a partition.  Pollers pick
 * a random one of these, so graders polling at once mostly try different
 * entries. */
#define QUEUE_PAGE 16

void bw_queue_entry_id(const bson_oid_t *job_id, int attempt, char out[48]) {
  char hex[25];
  bson_oid_to_string(job_id, hex);
  snprintf(out, 48, "%s:%d", hex, attempt);
}

void bw_handout_append(bson_t *doc, const bw_handout_t *h,
                       const bson_t *student) {
  BSON_APPEND_OID(doc, "job_id", &h->job_id);
  BSON_APPEND_OID(doc, "run_id", &h->run_id);
  BSON_APPEND_UTF8(doc, "type", h->type);
  BSON_APPEND_INT32(doc, "attempt", h->attempt);
  if (strcmp(h->type, "student") == 0) {
    BSON_APPEND_INT32(doc, "student_count", h->student_count);
    BSON_APPEND_INT32(doc, "index", h->index);
  }
  if (student != NULL)
    BSON_APPEND_DOCUMENT(doc, "student", student);
}

bool bw_handout_from_bson(const bson_t *doc, bw_handout_t *h, bson_t *student) {
  bson_iter_t it;

  memset(h, 0, sizeof *h);
  if (student != NULL)
    bson_init(student);
  if (!bson_iter_init_find(&it, doc, "job_id") || !BSON_ITER_HOLDS_OID(&it))
    return false;
  bson_oid_copy(bson_iter_oid(&it), &h->job_id);
  if (!bson_iter_init_find(&it, doc, "run_id") || !BSON_ITER_HOLDS_OID(&it))
    return false;
  bson_oid_copy(bson_iter_oid(&it), &h->run_id);
  if (!bson_iter_init_find(&it, doc, "type") || !BSON_ITER_HOLDS_UTF8(&it))
    return false;
  bson_strncpy(h->type, bson_iter_utf8(&it, NULL), sizeof h->type);
  h->attempt = bson_iter_init_find(&it, doc, "attempt")
                   ? (int)bson_iter_as_int64(&it)
                   : 1;
  if (bson_iter_init_find(&it, doc, "student_count"))
    h->student_count = (int)bson_iter_as_int64(&it);
  h->index = bson_iter_init_find(&it, doc, "index")
                 ? (int)bson_iter_as_int64(&it)
                 : -1;
  if (student != NULL)
    bw_db_get_doc(doc, "student", student);
  return true;
}

/* A job always lands in the same partition, so its entries for successive
 * attempts are found in one place. */
static int queue_partition_of(const bson_oid_t *job_id) {
  uint32_t h = 2166136261u;
  for (int i = 0; i < 12; i++)
    h = (h ^ job_id->bytes[i]) * 16777619u;
  return (int)(h & 0x7fffffff);
}

struct bw_queue_batch {
  bw_db_t *db;
  int partitions;
  mongoc_bulk_operation_t **bulks; /* one per partition, made on first use */
};

bw_queue_batch_t *bw_queue_batch_alloc(bw_db_t *db) {
  bw_queue_batch_t *batch = bson_malloc0(sizeof *batch);
  batch->db = db;
  batch->partitions = bw_db_queue_partitions(db);
  batch->bulks = bson_malloc0(sizeof *batch->bulks * (size_t)batch->partitions);
  return batch;
}

void bw_queue_batch_free(bw_queue_batch_t *batch) {
  if (batch == NULL)
    return;
  for (int i = 0; i < batch->partitions; i++)
    if (batch->bulks[i] != NULL)
      mongoc_bulk_operation_destroy(batch->bulks[i]);
  bson_free(batch->bulks);
  bson_free(batch);
}

void bw_queue_batch_add(bw_queue_batch_t *batch, const bw_handout_t *h,
                        const bson_t *student) {
  int p = queue_partition_of(&h->job_id) % batch->partitions;
  bson_t doc = BSON_INITIALIZER;
  char id[48];

  if (batch->bulks[p] == NULL) {
    bson_t opts = BSON_INITIALIZER;
    /* Unordered: an entry that already exists must not stop the others. */
    BSON_APPEND_BOOL(&opts, "ordered", false);
    batch->bulks[p] = mongoc_collection_create_bulk_operation_with_opts(
        bw_db_queue(batch->db, p), &opts);
    bson_destroy(&opts);
  }
  bw_queue_entry_id(&h->job_id, h->attempt, id);
  BSON_APPEND_UTF8(&doc, "_id", id);
  bw_handout_append(&doc, h, student);
  BSON_APPEND_DATE_TIME(&doc, "queued_at", bw_db_now_ms());
  mongoc_bulk_operation_insert(batch->bulks[p], &doc);
  bson_destroy(&doc);
}

/* Tells long polls (qsignal.h).  Not an error of the push: the job is
 * queued, and waiters look again on their own within seconds. */
static void queue_wake_waiters(bw_db_t *db) {
  bw_error_t error;
  if (bw_qsignal_bump(db, &error) < 0)
    bw_log_warn("queue: signal not sent: %s", error.message);
}

int bw_queue_batch_push(bw_queue_batch_t *batch, bw_error_t *error) {
  bool pushed = false;
  int rc = 0;

  for (int i = 0; rc == 0 && i < batch->partitions; i++) {
    bson_t reply;
    bson_error_t driver;
    if (batch->bulks[i] == NULL)
      continue;
    pushed = true;
    /* Only duplicate keys are fine; any other write error is a failure. */
    if (!mongoc_bulk_operation_execute(batch->bulks[i], &reply, &driver)) {
      rc = bw_db_error(&driver, error);
      if (rc == BW_EDUP)
        rc = 0;
    }
    bson_destroy(&reply);
  }
  /* After the entries: a long poll woken by the signal must find them. */
  if (rc == 0 && pushed)
    queue_wake_waiters(batch->db);
  return rc;
}

int bw_queue_push(bw_db_t *db, const bw_handout_t *h, const bson_t *student,
                  bw_error_t *error) {
  bw_queue_batch_t *batch = bw_queue_batch_alloc(db);
  int rc;
  bw_queue_batch_add(batch, h, student);
  rc = bw_queue_batch_push(batch, error);
  bw_queue_batch_free(batch);
  return rc;
}

/* ---- poll ------------------------------------------------------------ */

typedef struct queue_page {
  bson_t docs[QUEUE_PAGE];
  int n;
} queue_page_t;

static void queue_page_cleanup(queue_page_t *page) {
  for (int i = 0; i < page->n; i++)
    bson_destroy(&page->docs[i]);
  page->n = 0;
}

static void queue_visit_entry(const bson_t *doc, void *ctx) {
  queue_page_t *page = ctx;
  if (page->n < QUEUE_PAGE)
    bson_copy_to(doc, &page->docs[page->n++]);
}

/* Reads up to QUEUE_PAGE entries of one partition.  The filter is empty on
 * purpose: FerretDB pushes a LIMIT down to SQLite only then, so this costs
 * the same with 10 or 10,000 jobs waiting. */
static int queue_read_page(bw_db_t *db, int partition, queue_page_t *page,
                           bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
  int rc;

  page->n = 0;
  BSON_APPEND_INT64(&opts, "limit", QUEUE_PAGE);
  rc = bw_db_each(bw_db_queue(db, partition), &filter, &opts, queue_visit_entry,
                  page, error);
  bson_destroy(&filter);
  bson_destroy(&opts);
  return rc;
}

static void queue_drop_entry(bw_db_t *db, const char *id,
                             const bw_handout_t *h) {
  bson_t filter = BSON_INITIALIZER;
  bson_error_t driver;
  BSON_APPEND_UTF8(&filter, "_id", id);
  /* Best effort: a leftover entry whose claim exists is dropped by the next
   * poller that tries it. */
  if (!mongoc_collection_delete_one(
          bw_db_queue(db, queue_partition_of(&h->job_id)), &filter, NULL, NULL,
          &driver))
    bw_log_warn("queue: could not drop entry %s: %s", id, driver.message);
  bson_destroy(&filter);
}

/* The once-only decision: this insert succeeds for exactly one poller. */
static int queue_claim(bw_db_t *db, const char *id, const bw_handout_t *h,
                       const bson_oid_t *worker, bw_error_t *error) {
  bson_t doc = BSON_INITIALIZER;
  int rc;

  BSON_APPEND_UTF8(&doc, "_id", id);
  bw_handout_append(&doc, h, NULL);
  BSON_APPEND_OID(&doc, "worker_id", worker);
  BSON_APPEND_DATE_TIME(&doc, "at", bw_db_now_ms());
  rc = bw_db_insert_once(db, BW_COLL_CLAIMS, &doc, error);
  bson_destroy(&doc);
  return rc;
}

/* The dequeue proper.  findAndModify(remove) is safe here even on FerretDB,
 * where it is not atomic: the claim already made us the entry's only
 * remover.  Returns 0 (also when someone dropped it first) or BW_EDB. */
static int queue_dequeue(bw_db_t *db, const char *id, const bw_handout_t *h,
                         bw_error_t *error) {
  bson_t query = BSON_INITIALIZER, reply;
  bson_error_t driver;
  mongoc_find_and_modify_opts_t *opts = mongoc_find_and_modify_opts_new();
  int rc = 0;

  BSON_APPEND_UTF8(&query, "_id", id);
  mongoc_find_and_modify_opts_set_flags(opts, MONGOC_FIND_AND_MODIFY_REMOVE);
  if (!mongoc_collection_find_and_modify_with_opts(
          bw_db_queue(db, queue_partition_of(&h->job_id)), &query, opts, &reply,
          &driver))
    rc = bw_db_error(&driver, error);
  bson_destroy(&reply);
  mongoc_find_and_modify_opts_destroy(opts);
  bson_destroy(&query);
  return rc;
}

/* When a hand-out is overdue: its stages' timeouts (the grader kills a
 * stage at its timeout) plus claim_grace.  A grader that holds a job longer
 * has lost it (the reply to its poll never reached it) or is stuck; the
 * reaper re-queues it then, heartbeat or not. */
static int64_t queue_deadline(const bw_config_t *cfg, json_object *payload) {
  json_object *stages = json_object_object_get(payload, "stages"), *t;
  int64_t seconds = cfg->claim_grace;

  for (size_t i = 0; i < json_object_array_length(stages); i++)
    seconds += json_object_object_get_ex(json_object_array_get_idx(stages, i),
                                         "timeout", &t)
                   ? (int64_t)json_object_get_double(t) + 1
                   : cfg->default_timeout;
  return bw_db_now_ms() + seconds * 1000;
}

/* Records the hand-out as being graded by `worker` until `deadline`: what
 * results and the reaper look up. */
static int queue_record_active(bw_db_t *db, const char *id,
                               const bw_handout_t *h, const bson_t *student,
                               const bson_oid_t *worker, int64_t deadline,
                               bw_error_t *error) {
  bson_t doc = BSON_INITIALIZER;
  int rc;

  BSON_APPEND_UTF8(&doc, "_id", id);
  bw_handout_append(&doc, h, student);
  BSON_APPEND_OID(&doc, "worker_id", worker);
  BSON_APPEND_DATE_TIME(&doc, "started_at", bw_db_now_ms());
  BSON_APPEND_DATE_TIME(&doc, "deadline", deadline);
  rc = bw_db_insert_once(db, BW_COLL_ACTIVE, &doc, error);
  bson_destroy(&doc);
  return rc == BW_EDUP ? 0 : rc;
}

/* Builds the grader's view of a job: its stages with env resolved, and the
 * roster for pre/post jobs. */
static int queue_payload(bw_db_t *db, const bw_handout_t *h,
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
static void queue_give_back(bw_db_t *db, const bw_config_t *cfg,
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
static int queue_take(bw_db_t *db, const bw_config_t *cfg, const bson_t *entry,
                      const bson_oid_t *worker, json_object **out,
                      bw_error_t *error) {
  bw_handout_t h;
  bson_t student;
  bson_iter_t it;
  char id[48];
  int rc;

  if (!bson_iter_init_find(&it, entry, "_id") || !BSON_ITER_HOLDS_UTF8(&it) ||
      !bw_handout_from_bson(entry, &h, &student))
    return 1;
  bson_strncpy(id, bson_iter_utf8(&it, NULL), sizeof id);
  rc = queue_claim(db, id, &h, worker, error);
  if (rc == BW_EDUP) {
    /* The claim is permanent, so this entry can never be handed out again:
     * drop it so it stops costing other pollers a round trip. */
    queue_drop_entry(db, id, &h);
    return 1;
  }
  if (rc < 0)
    return rc;
  rc = queue_dequeue(db, id, &h, error);
  if (rc == 0)
    rc = queue_payload(db, &h, &student, out, error);
  if (rc == 0)
    rc = queue_record_active(db, id, &h, &student, worker,
                             queue_deadline(cfg, *out), error);
  if (rc < 0) {
    json_object_put(*out);
    *out = NULL;
    bw_log_error("queue: %s claimed but not handed out: %s", id,
                 error ? error->message : "");
    queue_give_back(db, cfg, &h, &student);
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

int bw_queue_poll(bw_db_t *db, const bw_config_t *cfg, const char *worker_id,
                  json_object **out, bw_error_t *error) {
  int partitions = bw_db_queue_partitions(db), first = queue_random();
  bson_oid_t worker;
  queue_page_t page;

  *out = NULL;
  if (!bw_db_oid_parse(worker_id, &worker))
    return bw_error_set(error, BW_EINVAL, "worker_id: expected 24 hex digits");
  for (int p = 0; p < partitions; p++) {
    int rc = queue_read_page(db, first + p, &page, error), start;
    if (rc < 0) {
      queue_page_cleanup(&page);
      return rc;
    }
    start = page.n ? queue_random() % page.n : 0;
    for (int i = 0; i < page.n; i++) {
      rc = queue_take(db, cfg, &page.docs[(start + i) % page.n], &worker, out,
                      error);
      if (rc != 1) {
        queue_page_cleanup(&page);
        return rc;
      }
    }
    queue_page_cleanup(&page);
  }
  return bw_error_set(error, BW_EEMPTY, "queue is empty");
}

int bw_queue_find_active(bw_db_t *db, const bson_oid_t *job_id, bson_t *out,
                         bw_error_t *error) {
  /* Not by _id: the attempt is not known here.  `active` is small. */
  return bw_db_find_by_oid(db, BW_COLL_ACTIVE, "job_id", job_id, out, error);
}

int bw_queue_end_active(bw_db_t *db, const bson_oid_t *job_id, int attempt,
                        bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER;
  bson_error_t driver;
  char id[48];
  int rc = 0;

  bw_queue_entry_id(job_id, attempt, id);
  BSON_APPEND_UTF8(&filter, "_id", id);
  if (!mongoc_collection_delete_one(bw_db_coll(db, BW_COLL_ACTIVE), &filter,
                                    NULL, NULL, &driver))
    rc = bw_db_error(&driver, error);
  bson_destroy(&filter);
  return rc;
}
