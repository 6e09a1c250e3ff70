#include "admin.h"

#include <string.h>

#include "json.h"
#include "run.h"
#include "worker.h"

/* ---- runs -------------------------------------------------------------- */

typedef struct admin_list {
  json_object *items;
} admin_list_t;

static void admin_visit_run(const bson_t *doc, void *ctx) {
  static const char *copied[] = {"state",      "success",     "created_at",
                                 "started_at", "finished_at", "student_count",
                                 "round"};
  admin_list_t *list = ctx;
  json_object *run = json_object_new_object();
  bson_iter_t it;
  char hex[25];

  if (bw_db_get_oid_hex(doc, "_id", hex))
    json_object_object_add(run, "grading_run_id", json_object_new_string(hex));
  for (size_t i = 0; i < sizeof copied / sizeof *copied; i++)
    if (bson_iter_init_find(&it, doc, copied[i]))
      json_object_object_add(run, copied[i], bw_json_from_bson_iter(&it));
  json_object_array_add(list->items, run);
}

static void admin_runs_filter(const bw_admin_runs_query_t *q, bson_t *filter) {
  bson_init(filter);
  if (q->state != NULL)
    BSON_APPEND_UTF8(filter, "state", q->state);
}

/* Each listed run's counts, from its status. */
static int admin_runs_counts(bw_db_t *db, json_object *items,
                             bw_error_t *error) {
  for (size_t i = 0; i < json_object_array_length(items); i++) {
    json_object *run = json_object_array_get_idx(items, i), *status, *counts;
    bson_oid_t id;
    int rc;
    if (!bw_db_oid_parse(json_object_get_string(
                             json_object_object_get(run, "grading_run_id")),
                         &id))
      continue;
    rc = bw_run_status(db, &id, &status, error);
    if (rc == BW_ENOTFOUND)
      continue;
    if (rc < 0)
      return rc;
    if (json_object_object_get_ex(status, "counts", &counts))
      json_object_object_add(run, "counts", json_object_get(counts));
    json_object_put(status);
  }
  return 0;
}

int bw_admin_runs(bw_db_t *db, const bw_admin_runs_query_t *q,
                  json_object **out, bw_error_t *error) {
  bson_t filter, opts = BSON_INITIALIZER, proj, sort;
  bson_error_t driver;
  admin_list_t list = {json_object_new_array()};
  int64_t total;
  int rc;

  *out = NULL;
  admin_runs_filter(q, &filter);
  BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
  BSON_APPEND_INT32(&proj, "config", 0);
  BSON_APPEND_INT32(&proj, "retry", 0);
  bson_append_document_end(&opts, &proj);
  BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
  /* Newest first (ids made by different processes in one second do not
   * sort by time). */
  BSON_APPEND_INT32(&sort, "created_at", -1);
  BSON_APPEND_INT32(&sort, "_id", -1);
  bson_append_document_end(&opts, &sort);
  BSON_APPEND_INT64(&opts, "skip", q->offset);
  BSON_APPEND_INT64(&opts, "limit", q->limit);
  total = mongoc_collection_count_documents(bw_db_coll(db, BW_COLL_RUNS),
                                            &filter, NULL, NULL, NULL, &driver);
  rc = total < 0 ? bw_db_error(&driver, error) : 0;
  if (rc == 0)
    rc = bw_db_each(bw_db_coll(db, BW_COLL_RUNS), &filter, &opts,
                    admin_visit_run, &list, error);
  if (rc == 0 && q->counts)
    rc = admin_runs_counts(db, list.items, error);
  bson_destroy(&filter);
  bson_destroy(&opts);
  if (rc < 0) {
    json_object_put(list.items);
    return rc;
  }
  *out = json_object_new_object();
  json_object_object_add(*out, "runs", list.items);
  json_object_object_add(*out, "total", json_object_new_int64(total));
  json_object_object_add(*out, "offset", json_object_new_int(q->offset));
  json_object_object_add(*out, "limit", json_object_new_int(q->limit));
  return 0;
}

/* ---- workers ----------------------------------------------------------- */

/* Per grader: the jobs it holds now (active) and the results it sent. */
typedef struct admin_workers {
  json_object *by_id; /* worker hex -> {jobs: [...], jobs_done: n} */
} admin_workers_t;

static json_object *admin_worker_slot(admin_workers_t *w, const bson_t *doc) {
  json_object *slot;
  char hex[25];
  if (!bw_db_get_oid_hex(doc, "worker_id", hex))
    return NULL;
  if (!json_object_object_get_ex(w->by_id, hex, &slot)) {
    slot = json_object_new_object();
    json_object_object_add(slot, "jobs", json_object_new_array());
    json_object_object_add(slot, "jobs_done", json_object_new_int(0));
    json_object_object_add(w->by_id, hex, slot);
  }
  return slot;
}

static void admin_visit_active(const bson_t *doc, void *ctx) {
  json_object *slot = admin_worker_slot(ctx, doc);
  char hex[25];
  if (slot != NULL && bw_db_get_oid_hex(doc, "job_id", hex))
    json_object_array_add(json_object_object_get(slot, "jobs"),
                          json_object_new_string(hex));
}

static void admin_visit_result(const bson_t *doc, void *ctx) {
  json_object *slot = admin_worker_slot(ctx, doc), *done;
  if (slot != NULL && json_object_object_get_ex(slot, "jobs_done", &done))
    json_object_set_int(done, json_object_get_int(done) + 1);
}

typedef struct admin_worker_list {
  admin_workers_t *held;
  bw_worker_beats_t beats; /* what API hosts wrote in the last 2 intervals */
  json_object *items;
  int64_t alive_after;
  int alive, dead;
} admin_worker_list_t;

/* A date as every reply shows one (bw_json_from_bson_iter). */
static json_object *admin_date(int64_t ms) {
  bson_t holder = BSON_INITIALIZER;
  bson_iter_t it;
  json_object *out = NULL;
  BSON_APPEND_DATE_TIME(&holder, "d", ms);
  if (bson_iter_init_find(&it, &holder, "d"))
    out = bw_json_from_bson_iter(&it);
  bson_destroy(&holder);
  return out;
}

static void admin_visit_worker(const bson_t *doc, void *ctx) {
  admin_worker_list_t *l = ctx;
  json_object *w = json_object_new_object(), *slot = NULL;
  bson_iter_t it;
  bson_oid_t id;
  char hex[25];
  int64_t last = 0;
  bool alive;

  if (!bw_db_get_oid(doc, "_id", &id) || !bw_db_get_oid_hex(doc, "_id", hex)) {
    json_object_put(w);
    return;
  }
  /* Its document's last_heartbeat lags (worker.h): the hosts' writes in
   * `beats` hold the heartbeats since. */
  if (bson_iter_init_find(&it, doc, "last_heartbeat") &&
      BSON_ITER_HOLDS_DATE_TIME(&it))
    last = bson_iter_date_time(&it);
  last = bw_worker_last_beat(&l->beats, &id, last);
  alive = last >= l->alive_after;
  json_object_object_add(w, "worker_id", json_object_new_string(hex));
  /* A 2019 grader's own id (worker.h: worker_id is derived from it). */
  if (bson_iter_init_find(&it, doc, "name") && BSON_ITER_HOLDS_UTF8(&it))
    json_object_object_add(w, "name", bw_json_from_bson_iter(&it));
  json_object_object_add(
      w, "hostname",
      json_object_new_string(bw_db_get_utf8(doc, "hostname", "")));
  json_object_object_add(w, "alive", json_object_new_boolean(alive));
  if (last != 0)
    json_object_object_add(w, "last_seen", admin_date(last));
  if (bson_iter_init_find(&it, doc, "registered_at"))
    json_object_object_add(w, "registered_at", bw_json_from_bson_iter(&it));
  json_object_object_get_ex(l->held->by_id, hex, &slot);
  json_object_object_add(
      w, "jobs",
      slot ? json_object_get(json_object_object_get(slot, "jobs"))
           : json_object_new_array());
  json_object_object_add(
      w, "jobs_done",
      json_object_new_int(
          slot ? json_object_get_int(json_object_object_get(slot, "jobs_done"))
               : 0));
  alive ? l->alive++ : l->dead++;
  json_object_array_add(l->items, w);
}

int bw_admin_workers(bw_db_t *db, const bw_config_t *cfg, json_object **out,
                     bw_error_t *error) {
  admin_workers_t held = {json_object_new_object()};
  admin_worker_list_t list = {.held = &held,
                              .items = json_object_new_array(),
                              .alive_after =
                                  bw_db_now_ms() - 2000LL * cfg->heartbeat};
  bson_t all = BSON_INITIALIZER, results = BSON_INITIALIZER, opts, proj;
  int rc;

  *out = NULL;
  bson_init(&opts);
  BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
  BSON_APPEND_INT32(&proj, "worker_id", 1);
  BSON_APPEND_INT32(&proj, "job_id", 1);
  bson_append_document_end(&opts, &proj);
  BSON_APPEND_UTF8(&results, "kind", "result");
  rc = bw_db_each(bw_db_coll(db, BW_COLL_ACTIVE), &all, &opts,
                  admin_visit_active, &held, error);
  if (rc == 0)
    rc = bw_db_each(bw_db_coll(db, BW_COLL_OUTCOMES), &results, &opts,
                    admin_visit_result, &held, error);
  if (rc == 0)
    rc = bw_worker_beats_load(db, list.alive_after, &list.beats, error);
  if (rc == 0)
    rc = bw_db_each(bw_db_coll(db, BW_COLL_WORKERS), &all, NULL,
                    admin_visit_worker, &list, error);
  bw_worker_beats_cleanup(&list.beats);
  bson_destroy(&all);
  bson_destroy(&results);
  bson_destroy(&opts);
  json_object_put(held.by_id);
  if (rc < 0) {
    json_object_put(list.items);
    return rc;
  }
  *out = json_object_new_object();
  json_object_object_add(*out, "workers", list.items);
  json_object_object_add(*out, "alive", json_object_new_int(list.alive));
  json_object_object_add(*out, "dead", json_object_new_int(list.dead));
  return 0;
}

/* ---- queue ------------------------------------------------------------- */

typedef struct admin_queue {
  json_object *by_run; /* run hex -> {waiting, running, oldest (ms)} */
  int64_t waiting, running, oldest;
} admin_queue_t;

static json_object *admin_queue_slot(admin_queue_t *q, const bson_t *doc) {
  json_object *slot;
  char hex[25];
  if (!bw_db_get_oid_hex(doc, "run_id", hex))
    return NULL;
  if (!json_object_object_get_ex(q->by_run, hex, &slot)) {
    slot = json_object_new_object();
    json_object_object_add(slot, "grading_run_id", json_object_new_string(hex));
    json_object_object_add(slot, "waiting", json_object_new_int(0));
    json_object_object_add(slot, "running", json_object_new_int(0));
    json_object_object_add(q->by_run, hex, slot);
  }
  return slot;
}

static void admin_bump(json_object *slot, const char *key) {
  json_object *n = json_object_object_get(slot, key);
  json_object_set_int(n, json_object_get_int(n) + 1);
}

static void admin_visit_waiting(const bson_t *doc, void *ctx) {
  admin_queue_t *q = ctx;
  json_object *slot = admin_queue_slot(q, doc), *oldest;
  bson_iter_t it;
  int64_t at;

  if (slot == NULL)
    return;
  q->waiting++;
  admin_bump(slot, "waiting");
  if (!bson_iter_init_find(&it, doc, "queued_at") ||
      !BSON_ITER_HOLDS_DATE_TIME(&it))
    return;
  at = bson_iter_date_time(&it);
  if (q->oldest == 0 || at < q->oldest)
    q->oldest = at;
  if (!json_object_object_get_ex(slot, "oldest_ms", &oldest))
    json_object_object_add(slot, "oldest_ms", json_object_new_int64(at));
  else if (at < json_object_get_int64(oldest))
    json_object_set_int64(oldest, at);
}

static void admin_visit_running(const bson_t *doc, void *ctx) {
  admin_queue_t *q = ctx;
  json_object *slot = admin_queue_slot(q, doc);
  if (slot == NULL)
    return;
  q->running++;
  admin_bump(slot, "running");
}

/* Ages instead of times: what a reader wants, and no clock to compare. */
static double admin_age_s(int64_t now, int64_t at) {
  return at ? (double)(now - at) / 1000.0 : 0.0;
}

int bw_admin_queue(bw_db_t *db, json_object **out, bw_error_t *error) {
  admin_queue_t q = {json_object_new_object(), 0, 0, 0};
  bson_t all = BSON_INITIALIZER, opts = BSON_INITIALIZER, proj;
  json_object *runs;
  int64_t now = bw_db_now_ms();
  int rc = 0;

  *out = NULL;
  BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
  BSON_APPEND_INT32(&proj, "run_id", 1);
  BSON_APPEND_INT32(&proj, "queued_at", 1);
  bson_append_document_end(&opts, &proj);
  for (int p = 0; rc == 0 && p < bw_db_queue_partitions(db); p++)
    rc = bw_db_each(bw_db_queue(db, p), &all, &opts, admin_visit_waiting, &q,
                    error);
  if (rc == 0)
    rc = bw_db_each(bw_db_coll(db, BW_COLL_ACTIVE), &all, &opts,
                    admin_visit_running, &q, error);
  bson_destroy(&all);
  bson_destroy(&opts);
  if (rc < 0) {
    json_object_put(q.by_run);
    return rc;
  }
  runs = json_object_new_array();
  json_object_object_foreach(q.by_run, key, slot) {
    json_object *oldest;
    (void)key;
    if (json_object_object_get_ex(slot, "oldest_ms", &oldest)) {
      json_object_object_add(slot, "oldest_wait_s",
                             json_object_new_double(admin_age_s(
                                 now, json_object_get_int64(oldest))));
      json_object_object_del(slot, "oldest_ms");
    }
    json_object_array_add(runs, json_object_get(slot));
  }
  json_object_put(q.by_run);
  *out = json_object_new_object();
  json_object_object_add(*out, "waiting", json_object_new_int64(q.waiting));
  json_object_object_add(*out, "running", json_object_new_int64(q.running));
  json_object_object_add(*out, "oldest_wait_s",
                         json_object_new_double(admin_age_s(now, q.oldest)));
  json_object_object_add(*out, "runs", runs);
  return 0;
}
