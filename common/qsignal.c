#include "qsignal.h"

#include "log.h"

#define QSIGNAL_ID "queue"

static bw_qsignal_hook_fn local_hook;

void bw_qsignal_set_local_hook(bw_qsignal_hook_fn fn) {
  local_hook = fn;
}

int bw_qsignal_bump(bw_db_t *db, bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set,
         opts = BSON_INITIALIZER;
  bson_oid_t value;
  int rc = 0;

  bson_oid_init(&value, NULL);
  BSON_APPEND_UTF8(&filter, "_id", QSIGNAL_ID);
  BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
  BSON_APPEND_OID(&set, "v", &value);
  BSON_APPEND_DATE_TIME(&set, "at", bw_db_now_ms());
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
    local_hook();
  return rc;
}

void bw_qsignal_notify(bw_db_t *db) {
  bw_error_t error;
  if (bw_qsignal_bump(db, &error) < 0)
    bw_log_warn("queue: signal not sent: %s", error.message);
}

int bw_qsignal_read(bw_db_t *db, uint64_t *value, bw_error_t *error) {
  bson_t doc;
  bson_iter_t it;
  int rc = bw_db_find_by_id(db, BW_COLL_SIGNALS, QSIGNAL_ID, &doc, error);

  *value = 0;
  if (rc == 0 && bson_iter_init_find(&it, &doc, "v") &&
      BSON_ITER_HOLDS_OID(&it)) {
    const uint8_t *bytes = bson_iter_oid(&it)->bytes;
    uint64_t h = 1469598103934665603ull; /* FNV-1a over the 12 bytes */
    for (int i = 0; i < 12; i++)
      h = (h ^ bytes[i]) * 1099511628211ull;
    *value = h == 0 ? 1 : h;
  }
  bson_destroy(&doc);
  return rc == BW_ENOTFOUND ? 0 : rc;
}
