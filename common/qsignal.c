#include "qsignal.h"

#include <string.h>

#include "log.h"

#define QSIGNAL_QUEUE_ID "queue"
#define QSIGNAL_JOBS_ID "jobs"
/* The collection holds only the signals: a read of all of them is one
 * small find, bounded here in case someone adds documents. */
#define QSIGNAL_READ_LIMIT 8

static bw_qsignal_hook_fn local_hook;

void bw_qsignal_set_local_hook(bw_qsignal_hook_fn fn) {
  local_hook = fn;
}

/* Sets signals/<id>.v to a value never used before. */
static int qsignal_bump(bw_db_t *db, const char *id,
                        enum bw_qsignal_kind kind, const bson_oid_t *job,
                        bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set,
         opts = BSON_INITIALIZER;
  bson_oid_t value;
  int rc = 0;

  bson_oid_init(&value, NULL);
  BSON_APPEND_UTF8(&filter, "_id", id);
  BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
  BSON_APPEND_OID(&set, "v", &value);
  BSON_APPEND_DATE_TIME(&set, "at", bw_db_now_ms());
  if (job != NULL)
    BSON_APPEND_OID(&set, "job", job);
  bson_append_document_end(&update, &set);
  BSON_APPEND_BOOL(&opts, "upsert", true);
  rc = bw_db_update_one(db, BW_COLL_SIGNALS, &filter, &update, &opts, error);
  /* Two first-ever bumps racing: the other one's insert won, and its value
   * is as new as ours. */
  if (rc == BW_EDUP)
    rc = 0;
  bson_destroy(&opts);
  bson_destroy(&update);
  bson_destroy(&filter);
  if (local_hook != NULL)
    local_hook(kind, job);
  return rc;
}

int bw_qsignal_bump(bw_db_t *db, bw_error_t *error) {
  return qsignal_bump(db, QSIGNAL_QUEUE_ID, BW_QSIGNAL_QUEUE, NULL, error);
}

void bw_qsignal_notify(bw_db_t *db) {
  bw_error_t error;
  if (bw_qsignal_bump(db, &error) < 0)
    bw_log_warn("queue: signal not sent: %s", error.message);
}

void bw_qsignal_notify_jobs(bw_db_t *db, const bson_oid_t *job) {
  bw_error_t error;
  if (qsignal_bump(db, QSIGNAL_JOBS_ID, BW_QSIGNAL_JOBS, job, &error) < 0)
    bw_log_warn("jobs: signal not sent: %s", error.message);
}

/* FNV-1a over the ObjectId's 12 bytes; never 0 (0 is "never bumped"). */
static uint64_t qsignal_hash(const bson_oid_t *oid) {
  uint64_t h = 1469598103934665603ull;
  for (int i = 0; i < 12; i++)
    h = (h ^ oid->bytes[i]) * 1099511628211ull;
  return h == 0 ? 1 : h;
}

static void qsignal_visit(const bson_t *doc, void *ctx) {
  bw_qsignal_values_t *values = ctx;
  const char *id = bw_db_get_utf8(doc, "_id", "");
  bson_iter_t it;

  if (!bson_iter_init_find(&it, doc, "v") || !BSON_ITER_HOLDS_OID(&it))
    return;
  if (strcmp(id, QSIGNAL_QUEUE_ID) == 0) {
    values->queue = qsignal_hash(bson_iter_oid(&it));
  } else if (strcmp(id, QSIGNAL_JOBS_ID) == 0) {
    values->jobs = qsignal_hash(bson_iter_oid(&it));
    values->has_job = bw_db_get_oid(doc, "job", &values->job);
  }
}

int bw_qsignal_read(bw_db_t *db, bw_qsignal_values_t *values,
                    bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
  int rc;

  memset(values, 0, sizeof *values);
  BSON_APPEND_INT64(&opts, "limit", QSIGNAL_READ_LIMIT);
  rc = bw_db_each(bw_db_coll(db, BW_COLL_SIGNALS), &filter, &opts,
                  qsignal_visit, values, error);
  bson_destroy(&opts);
  bson_destroy(&filter);
  return rc;
}
