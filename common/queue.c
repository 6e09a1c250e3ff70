#include "queue.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lane.h"
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

/* One run seen by a batch, and the partition of its lane. */
_Static_assert(BW_LANE_COURSE_SIZE == BW_COURSE_MAX + 1,
               "lane.h's course size is a hand-out's");

typedef struct queue_batch_run {
  bw_handout_t h; /* its first hand-out: run, course, gen for the lane */
  int partition;
} queue_batch_run_t;

static bw_lane_key_t queue_lane_key(const bw_handout_t *h) {
  return (bw_lane_key_t){&h->run_id, h->course, h->gen};
}

struct bw_queue_batch {
  bw_db_t *db;
  int partitions;
  mongoc_bulk_operation_t **bulks; /* one per partition, made on first use */
  queue_batch_run_t *runs;         /* usually one */
  size_t nruns;
  int rc; /* a lane lookup failed: the push fails with it */
  bw_error_t error;
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
  bson_free(batch->runs);
  bson_free(batch);
}

/* The partition of h's run's lane (looked up once per run and batch), or
 * -1 after a failed lookup (kept in batch->rc). */
static int queue_batch_partition(bw_queue_batch_t *batch,
                                 const bw_handout_t *h) {
  queue_batch_run_t *run;
  for (size_t i = 0; i < batch->nruns; i++)
    if (bson_oid_equal(&batch->runs[i].h.run_id, &h->run_id))
      return batch->runs[i].partition;
  if (batch->rc < 0)
    return -1;
  batch->runs =
      bson_realloc(batch->runs, (batch->nruns + 1) * sizeof *batch->runs);
  run = &batch->runs[batch->nruns];
  run->h = *h;
  bw_lane_key_t key = queue_lane_key(h);
  batch->rc =
      bw_lane_partition(batch->db, &key, &run->partition, &batch->error);
  if (batch->rc < 0)
    return -1;
  batch->nruns++;
  return ((run->partition % batch->partitions) + batch->partitions) %
         batch->partitions;
}

void bw_queue_batch_add(bw_queue_batch_t *batch, const bw_handout_t *h,
                        const bson_t *student) {
  int p = queue_batch_partition(batch, h);
  bson_t doc = BSON_INITIALIZER;
  char id[48];

  if (p < 0)
    return;
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
  int rc = batch->rc;

  if (rc < 0 && error != NULL)
    *error = batch->error;
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
  /* After the entries: a poll that closed a lane meanwhile (lane.h). */
  for (size_t i = 0; rc == 0 && i < batch->nruns; i++) {
    bw_lane_key_t key = queue_lane_key(&batch->runs[i].h);
    rc = bw_lane_confirm(batch->db, &key, batch->runs[i].partition, error);
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

/* The first BW_QUEUE_PAGE entries of one partition that filter matches. */
static int queue_read_page_where(bw_db_t *db, int partition,
                                 const bson_t *filter, bw_queue_page_t *page,
                                 bw_error_t *error) {
  bson_t opts = BSON_INITIALIZER;
  int rc;

  page->n = 0;
  BSON_APPEND_INT64(&opts, "limit", BW_QUEUE_PAGE);
  rc = bw_db_each(bw_db_queue(db, partition), filter, &opts, queue_visit_entry,
                  page, error);
  bson_destroy(&opts);
  return rc;
}

/* The filter is empty on purpose: FerretDB pushes a LIMIT down to SQLite
 * only then, so this costs the same with 10 or 10,000 jobs waiting. */
int bw_queue_read_page(bw_db_t *db, int partition, bw_queue_page_t *page,
                       bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER;
  int rc = queue_read_page_where(db, partition, &filter, page, error);
  bson_destroy(&filter);
  return rc;
}

int bw_queue_read_run_page(bw_db_t *db, int partition, const bson_oid_t *run,
                           bw_queue_page_t *page, bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER;
  int rc;
  BSON_APPEND_OID(&filter, "run_id", run);
  rc = queue_read_page_where(db, partition, &filter, page, error);
  bson_destroy(&filter);
  return rc;
}

int bw_queue_read_page_of_gen(bw_db_t *db, int partition, int gen,
                              bw_queue_page_t *page, bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER;
  int rc;
  /* Every entry names its gen (bw_queue_batch_add); one queued by an
   * older version without it is still found by bw_queue_read_page. */
  BSON_APPEND_INT32(&filter, "gen", gen);
  rc = queue_read_page_where(db, partition, &filter, page, error);
  bson_destroy(&filter);
  return rc;
}

int bw_queue_drop(bw_db_t *db, int partition, const char *id,
                  bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER;
  bson_error_t driver;
  int rc = 0;
  BSON_APPEND_UTF8(&filter, "_id", id);
  if (!mongoc_collection_delete_one(bw_db_queue(db, partition), &filter, NULL,
                                    NULL, &driver))
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
int bw_queue_dequeue(bw_db_t *db, int partition, const char *id,
                     bw_error_t *error) {
  bson_t query = BSON_INITIALIZER, reply;
  bson_error_t driver;
  mongoc_find_and_modify_opts_t *opts = mongoc_find_and_modify_opts_new();
  int rc = 0;

  BSON_APPEND_UTF8(&query, "_id", id);
  mongoc_find_and_modify_opts_set_flags(opts, MONGOC_FIND_AND_MODIFY_REMOVE);
  if (!mongoc_collection_find_and_modify_with_opts(
          bw_db_queue(db, partition), &query, opts, &reply, &driver))
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
static int queue_cancel_entry(bw_db_t *db, int partition, const char *id,
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
    rc = bw_queue_drop(db, partition, id, error);
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
      rc = queue_cancel_entry(db, p, t.ids[i], &t.h[i], error);
    bson_free(t.ids);
    bson_free(t.h);
  }
  bson_destroy(&filter);
  /* Nothing of the run waits now: its lane would only cost polls a look.
   * (A re-queue racing this reopens it; its entry is then cancelled by
   * the re-queuer, job.c, and the lane closes at its next turn.) */
  if (rc == 0)
    rc = bw_lane_drop(db, run, error);
  /* The queue changed: waiting polls look again (qsignal.h). */
  bw_qsignal_notify(db);
  return rc;
}

/* ---- entries without a lane (the reaper) ----------------------------- */

static bool queue_lane_listed(const bw_lanes_t *lanes, const bson_oid_t *run) {
  for (size_t i = 0; i < lanes->n; i++)
    if (bson_oid_equal(&lanes->v[i].run_id, run))
      return true;
  return false;
}

int bw_queue_adopt_strays(bw_db_t *db, int *opened, bw_error_t *error) {
  bw_lanes_t lanes;
  int rc = bw_lanes_read_all(db, &lanes, error);

  *opened = 0;
  for (int p = 0; rc == 0 && p < bw_db_queue_partitions(db); p++) {
    bw_queue_page_t page;
    rc = bw_queue_read_page(db, p, &page, error);
    for (int i = 0; rc == 0 && i < page.n; i++) {
      bw_handout_t h;
      bw_lane_key_t key;
      if (!bw_handout_from_bson(&page.docs[i], &h, NULL) ||
          queue_lane_listed(&lanes, &h.run_id))
        continue;
      key = queue_lane_key(&h);
      rc = bw_lane_open(db, &key, p, error);
      if (rc == 0)
        (*opened)++;
      else if (rc == BW_EDUP) /* a push opened it meanwhile */
        rc = 0;
      /* Listed now, whoever opened it. */
      lanes.v = bson_realloc(lanes.v, (lanes.n + 1) * sizeof *lanes.v);
      memset(&lanes.v[lanes.n], 0, sizeof *lanes.v);
      lanes.v[lanes.n++].run_id = h.run_id;
    }
    bw_queue_page_cleanup(&page);
  }
  bw_lanes_cleanup(&lanes);
  return rc;
}

/* ---- the Queue API ---------------------------------------------------- */

/* The filter for a course's entries: seed-era runs' ("") carry no field. */
static void queue_course_filter(bson_t *filter, const char *course) {
  if (course[0] != '\0') {
    BSON_APPEND_UTF8(filter, "course", course);
  } else {
    bson_t exists;
    BSON_APPEND_DOCUMENT_BEGIN(filter, "course", &exists);
    BSON_APPEND_BOOL(&exists, "$exists", false);
    bson_append_document_end(filter, &exists);
  }
}

int bw_queue_course_length(bw_db_t *db, const char *course, int64_t *n,
                           bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER;
  int rc = 0;

  *n = 0;
  queue_course_filter(&filter, course);
  for (int p = 0; rc == 0 && p < bw_db_queue_partitions(db); p++) {
    bson_error_t driver;
    int64_t c = mongoc_collection_count_documents(bw_db_queue(db, p), &filter,
                                                  NULL, NULL, NULL, &driver);
    if (c < 0)
      rc = bw_db_error(&driver, error);
    else
      *n += c;
  }
  bson_destroy(&filter);
  return rc;
}

/* A course's waiting entries, as the position needs them. */
typedef struct queue_waiting {
  bson_oid_t run, job;
  int64_t queued_at;
  char id[48];
  size_t rank; /* its run's place in turn order */
} queue_waiting_t;

typedef struct queue_course_scan {
  queue_waiting_t *v;
  size_t n;
} queue_course_scan_t;

static void queue_visit_course_entry(const bson_t *doc, void *ctx) {
  queue_course_scan_t *scan = ctx;
  queue_waiting_t w;
  bson_iter_t it;

  memset(&w, 0, sizeof w);
  if (!bw_db_get_oid(doc, "run_id", &w.run) ||
      !bw_db_get_oid(doc, "job_id", &w.job))
    return;
  bson_strncpy(w.id, bw_db_get_utf8(doc, "_id", ""), sizeof w.id);
  if (bson_iter_init_find(&it, doc, "queued_at") &&
      BSON_ITER_HOLDS_DATE_TIME(&it))
    w.queued_at = bson_iter_date_time(&it);
  scan->v = bson_realloc(scan->v, (scan->n + 1) * sizeof *scan->v);
  scan->v[scan->n++] = w;
}

/* Turn order of runs, then queue order within a run (queued first, then
 * by _id: a run's jobs are made in roster order). */
static int queue_waiting_cmp(const void *a, const void *b) {
  const queue_waiting_t *x = a, *y = b;
  if (x->rank != y->rank)
    return x->rank < y->rank ? -1 : 1;
  if (x->queued_at != y->queued_at)
    return x->queued_at < y->queued_at ? -1 : 1;
  return strcmp(x->id, y->id);
}

/* Ranks every entry's run: the course's lanes in turn order first (lane.h),
 * then runs without a lane (served only when the lanes are empty). */
static void queue_rank_runs(queue_course_scan_t *scan, const bw_lanes_t *lanes,
                            const char *course) {
  size_t ranked = lanes->n;
  for (size_t i = 0; i < scan->n; i++) {
    scan->v[i].rank = SIZE_MAX;
    for (size_t l = 0; l < lanes->n; l++)
      if (strcmp(lanes->v[l].course, course) == 0 &&
          bson_oid_equal(&lanes->v[l].run_id, &scan->v[i].run))
        scan->v[i].rank = l;
  }
  for (size_t i = 0; i < scan->n; i++) {
    if (scan->v[i].rank != SIZE_MAX)
      continue;
    for (size_t j = i; j < scan->n; j++)
      if (scan->v[j].rank == SIZE_MAX &&
          bson_oid_equal(&scan->v[j].run, &scan->v[i].run))
        scan->v[j].rank = ranked;
    ranked++;
  }
}

/* Position of entry `at` among the sorted entries: its run's turn in
 * each round (bw_lanes_rr_position). */
static int64_t queue_position_of(const queue_course_scan_t *scan, size_t at) {
  int64_t *waiting = bson_malloc0(scan->n * sizeof *waiting), k = 0, pos;
  size_t runs = 0, mine = 0;
  for (size_t i = 0; i < scan->n; i++) {
    if (i > 0 && scan->v[i].rank != scan->v[i - 1].rank)
      runs++;
    waiting[runs]++;
    if (i == at) {
      mine = runs;
      k = waiting[runs] - 1;
    }
  }
  pos = bw_lanes_rr_position(waiting, runs + 1, mine, k);
  bson_free(waiting);
  return pos;
}

int bw_queue_positions(bw_db_t *db, const char *course, const bson_oid_t *jobs,
                       size_t n, int64_t *pos, bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, proj;
  queue_course_scan_t scan = {NULL, 0};
  bw_lanes_t lanes = {NULL, 0};
  int rc = 0;

  for (size_t j = 0; j < n; j++)
    pos[j] = -1;
  queue_course_filter(&filter, course);
  BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
  BSON_APPEND_INT32(&proj, "run_id", 1);
  BSON_APPEND_INT32(&proj, "job_id", 1);
  BSON_APPEND_INT32(&proj, "queued_at", 1);
  bson_append_document_end(&opts, &proj);
  for (int p = 0; rc == 0 && p < bw_db_queue_partitions(db); p++)
    rc = bw_db_each(bw_db_queue(db, p), &filter, &opts,
                    queue_visit_course_entry, &scan, error);
  if (rc == 0)
    rc = bw_lanes_read_all(db, &lanes, error);
  if (rc == 0) {
    queue_rank_runs(&scan, &lanes, course);
    if (scan.n > 1)
      qsort(scan.v, scan.n, sizeof *scan.v, queue_waiting_cmp);
    for (size_t j = 0; j < n; j++)
      for (size_t i = 0; pos[j] < 0 && i < scan.n; i++)
        if (bson_oid_equal(&scan.v[i].job, &jobs[j]))
          pos[j] = queue_position_of(&scan, i);
  }
  bw_lanes_cleanup(&lanes);
  bson_free(scan.v);
  bson_destroy(&opts);
  bson_destroy(&filter);
  return rc;
}

int bw_queue_position(bw_db_t *db, const char *course, const bson_oid_t *job,
                      int64_t *pos, bw_error_t *error) {
  int rc = bw_queue_positions(db, course, job, 1, pos, error);

  if (rc == 0 && *pos < 0)
    rc = bw_error_set(error, BW_ENOTFOUND, "job is not waiting");
  if (*pos < 0)
    *pos = 0;
  return rc;
}
