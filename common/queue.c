#include "queue.h"

#include <stdio.h>
#include <string.h>

#include "qsignal.h"

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
  if (h->round > 0)
    BSON_APPEND_INT32(doc, "round", h->round);
  if (h->first_attempt > 1)
    BSON_APPEND_INT32(doc, "first_attempt", h->first_attempt);
  if (h->gen != BW_GEN_SEED)
    BSON_APPEND_INT32(doc, "gen", h->gen);
  if (h->course[0] != '\0')
    BSON_APPEND_UTF8(doc, "course", h->course);
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
  h->round = (int)bw_db_get_int(doc, "round");
  h->first_attempt = (int)bw_db_get_int(doc, "first_attempt");
  h->gen = (int)bw_db_get_int(doc, "gen");
  if (bson_iter_init_find(&it, doc, "course") && BSON_ITER_HOLDS_UTF8(&it))
    bson_strncpy(h->course, bson_iter_utf8(&it, NULL), sizeof h->course);
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
  /* A waiting entry always names its generation, so a poll can ask for
   * its own with an equality (bw_queue_read_page_of_gen), which FerretDB
   * hands to PostgreSQL instead of reading every entry. */
  if (h->gen == BW_GEN_SEED)
    BSON_APPEND_INT32(&doc, "gen", BW_GEN_SEED);
  BSON_APPEND_DATE_TIME(&doc, "queued_at", bw_db_now_ms());
  mongoc_bulk_operation_insert(batch->bulks[p], &doc);
  bson_destroy(&doc);
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
    bw_qsignal_notify(batch->db); /* best effort: qsignal.h */
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

/* ---- hand-out steps (job.c's poll puts them together) ---------------- */

void bw_queue_page_cleanup(bw_queue_page_t *page) {
  for (int i = 0; i < page->n; i++)
    bson_destroy(&page->docs[i]);
  page->n = 0;
}

static void queue_visit_entry(const bson_t *doc, void *ctx) {
  bw_queue_page_t *page = ctx;
  if (page->n < BW_QUEUE_PAGE)
    bson_copy_to(doc, &page->docs[page->n++]);
}

/* The filter is empty on purpose: FerretDB pushes a LIMIT down to SQLite
 * only then, so this costs the same with 10 or 10,000 jobs waiting. */
int bw_queue_read_page(bw_db_t *db, int partition, bw_queue_page_t *page,
                       bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
  int rc;

  page->n = 0;
  BSON_APPEND_INT64(&opts, "limit", BW_QUEUE_PAGE);
  rc = bw_db_each(bw_db_queue(db, partition), &filter, &opts, queue_visit_entry,
                  page, error);
  bson_destroy(&filter);
  bson_destroy(&opts);
  return rc;
}

int bw_queue_read_page_of_gen(bw_db_t *db, int partition, int gen,
                              bw_queue_page_t *page, bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
  int rc;

  page->n = 0;
  /* Every entry names its gen (bw_queue_batch_add); one queued by an
   * older version without it is still found by bw_queue_read_page. */
  BSON_APPEND_INT32(&filter, "gen", gen);
  BSON_APPEND_INT64(&opts, "limit", BW_QUEUE_PAGE);
  rc = bw_db_each(bw_db_queue(db, partition), &filter, &opts, queue_visit_entry,
                  page, error);
  bson_destroy(&filter);
  bson_destroy(&opts);
  return rc;
}

int bw_queue_drop(bw_db_t *db, const char *id, const bw_handout_t *h,
                  bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER;
  bson_error_t driver;
  int rc = 0;
  BSON_APPEND_UTF8(&filter, "_id", id);
  if (!mongoc_collection_delete_one(
          bw_db_queue(db, queue_partition_of(&h->job_id)), &filter, NULL, NULL,
          &driver))
    rc = bw_db_error(&driver, error);
  bson_destroy(&filter);
  return rc;
}

int bw_queue_claim(bw_db_t *db, const char *id, const bw_handout_t *h,
                   const bson_oid_t *worker, bw_error_t *error) {
  bson_t doc = BSON_INITIALIZER;
  int rc;

  BSON_APPEND_UTF8(&doc, "_id", id);
  bw_handout_append(&doc, h, NULL);
  BSON_APPEND_OID(&doc, "worker_id", worker);
  bw_db_append_at(&doc, bw_db_now_ms(), BW_DB_BY_MINUTE);
  rc = bw_db_insert_once(db, BW_COLL_CLAIMS, &doc, error);
  bson_destroy(&doc);
  return rc;
}

/* findAndModify(remove) is safe here even on FerretDB, where it is not
 * atomic: the claim already made the caller the entry's only remover. */
int bw_queue_dequeue(bw_db_t *db, const char *id, const bw_handout_t *h,
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

int bw_queue_record_active(bw_db_t *db, const char *id, const bw_handout_t *h,
                           const bson_t *student, const bson_oid_t *worker,
                           int64_t deadline, bw_error_t *error) {
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

/* ---- cancelling a run ------------------------------------------------ */

typedef struct queue_ids {
  char (*ids)[48];
  bw_handout_t *h;
  size_t n;
} queue_ids_t;

static void queue_visit_run_entry(const bson_t *doc, void *ctx) {
  queue_ids_t *t = ctx;
  bson_iter_t it;
  if (!bson_iter_init_find(&it, doc, "_id") || !BSON_ITER_HOLDS_UTF8(&it))
    return;
  t->ids = bson_realloc(t->ids, (t->n + 1) * sizeof *t->ids);
  t->h = bson_realloc(t->h, (t->n + 1) * sizeof *t->h);
  if (!bw_handout_from_bson(doc, &t->h[t->n], NULL))
    return;
  bson_strncpy(t->ids[t->n], bson_iter_utf8(&it, NULL), sizeof t->ids[0]);
  t->n++;
}

/* Claims one entry for the cancel (no worker: a zero id) and drops it. */
static int queue_cancel_entry(bw_db_t *db, const char *id,
                              const bw_handout_t *h, bw_error_t *error) {
  bson_t doc = BSON_INITIALIZER;
  bson_oid_t nobody;
  int rc;

  memset(&nobody, 0, sizeof nobody);
  BSON_APPEND_UTF8(&doc, "_id", id);
  bw_handout_append(&doc, h, NULL);
  BSON_APPEND_OID(&doc, "worker_id", &nobody);
  BSON_APPEND_BOOL(&doc, "cancelled", true);
  BSON_APPEND_DATE_TIME(&doc, "at", bw_db_now_ms());
  rc = bw_db_insert_once(db, BW_COLL_CLAIMS, &doc, error);
  bson_destroy(&doc);
  /* Lost the claim: a poller has the job (or an earlier cancel dropped it). */
  if (rc == 0 || rc == BW_EDUP)
    rc = bw_queue_drop(db, id, h, error);
  return rc;
}

int bw_queue_cancel_run(bw_db_t *db, const bson_oid_t *run, bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER;
  int rc = 0;

  BSON_APPEND_OID(&filter, "run_id", run);
  for (int p = 0; rc == 0 && p < bw_db_queue_partitions(db); p++) {
    queue_ids_t t = {NULL, NULL, 0};
    rc = bw_db_each(bw_db_queue(db, p), &filter, NULL, queue_visit_run_entry,
                    &t, error);
    for (size_t i = 0; rc == 0 && i < t.n; i++)
      rc = queue_cancel_entry(db, t.ids[i], &t.h[i], error);
    bson_free(t.ids);
    bson_free(t.h);
  }
  bson_destroy(&filter);
  /* The queue changed: waiting polls look again (qsignal.h). */
  bw_qsignal_notify(db);
  return rc;
}
