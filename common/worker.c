#include "worker.h"

#include <string.h>

int bw_worker_register(bw_db_t *db, const char *hostname, char worker_id[25],
                       bw_error_t *error) {
  bson_t doc = BSON_INITIALIZER;
  bson_oid_t oid;
  bson_error_t driver;
  int64_t now = bw_db_now_ms();
  int rc = 0;

  bson_oid_init(&oid, NULL);
  BSON_APPEND_OID(&doc, "_id", &oid);
  if (hostname != NULL)
    BSON_APPEND_UTF8(&doc, "hostname", hostname);
  BSON_APPEND_DATE_TIME(&doc, "registered_at", now);
  BSON_APPEND_DATE_TIME(&doc, "last_heartbeat", now);
  if (!mongoc_collection_insert_one(bw_db_coll(db, BW_COLL_WORKERS), &doc, NULL,
                                    NULL, &driver))
    rc = bw_db_error(&driver, error);
  bson_destroy(&doc);
  if (rc == 0)
    bson_oid_to_string(&oid, worker_id);
  return rc;
}

int bw_worker_check(bw_db_t *db, const bson_oid_t *worker, bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, proj, found;
  int rc;

  BSON_APPEND_OID(&filter, "_id", worker);
  BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
  BSON_APPEND_INT32(&proj, "_id", 1);
  bson_append_document_end(&opts, &proj);
  rc = bw_db_find_one(db, BW_COLL_WORKERS, &filter, &opts, &found, error);
  bson_destroy(&found);
  bson_destroy(&filter);
  bson_destroy(&opts);
  if (rc == BW_ENOTFOUND)
    return bw_error_set(error, BW_EAUTH, "worker_id: not a registered worker");
  return rc;
}

int bw_worker_heartbeat(bw_db_t *db, const bson_oid_t *worker,
                        bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, reply;
  bson_error_t driver;
  bson_iter_t it;
  int rc = 0;

  BSON_APPEND_OID(&filter, "_id", worker);
  BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
  BSON_APPEND_DATE_TIME(&set, "last_heartbeat", bw_db_now_ms());
  bson_append_document_end(&update, &set);
  /* Only heartbeats write a worker after registration, so FerretDB's
   * read-then-write cannot lose anything but an older heartbeat. */
  if (!mongoc_collection_update_one(bw_db_coll(db, BW_COLL_WORKERS), &filter,
                                    &update, NULL, &reply, &driver))
    rc = bw_db_error(&driver, error);
  else if (bson_iter_init_find(&it, &reply, "matchedCount") &&
           bson_iter_as_int64(&it) == 0)
    rc = bw_error_set(error, BW_EAUTH, "worker_id: not a registered worker");
  bson_destroy(&reply);
  bson_destroy(&filter);
  bson_destroy(&update);
  return rc;
}
