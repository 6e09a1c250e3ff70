#include "worker.h"

#include <stdio.h>
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

/* ---- Gen 3 ------------------------------------------------------------- */

bool bw_worker_name_valid(const char *name) {
  size_t n = 0;
  for (; name[n] != '\0'; n++) {
    char ch = name[n];
    if (n >= BW_WORKER_NAME_MAX ||
        !((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
          (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
      return false;
  }
  return n > 0;
}

/* FNV-1a, 64 bits, from `seed`. */
static uint64_t worker_fnv(const char *text, uint64_t seed) {
  uint64_t h = seed;
  for (const unsigned char *p = (const unsigned char *)text; *p; p++)
    h = (h ^ *p) * 1099511628211ULL;
  return h;
}

void bw_worker_gen3_oid(const char *name, bson_oid_t *oid) {
  uint64_t a = worker_fnv(name, 14695981039346656037ULL),
           b = worker_fnv(name, a ^ 0x9e3779b97f4a7c15ULL);
  for (int i = 0; i < 8; i++)
    oid->bytes[i] = (uint8_t)(a >> (8 * i));
  for (int i = 0; i < 4; i++)
    oid->bytes[8 + i] = (uint8_t)(b >> (8 * i));
}

static int worker_exists_error(const char *name, bw_error_t *error) {
  return bw_error_set(error, BW_EINVAL, "worker id '%s' already exists", name);
}

/* A name that is also the id of a seed-era grader or of a job would make
 * GET|POST /api/v1/grading_job/<x> ambiguous (§4.2): taken.  0 when free. */
static int worker_name_free(bw_db_t *db, const char *name, bw_error_t *error) {
  static const bw_coll_t colls[] = {BW_COLL_WORKERS, BW_COLL_JOBS};
  bson_oid_t oid;
  bson_t doc;
  int rc = 0;

  if (strlen(name) != 24 || !bw_db_oid_parse(name, &oid))
    return 0;
  for (size_t i = 0; rc == 0 && i < 2; i++) {
    rc = bw_db_find_by_oid(db, colls[i], "_id", &oid, &doc, error);
    bson_destroy(&doc);
    if (rc == 0)
      return worker_exists_error(name, error);
  }
  return rc == BW_ENOTFOUND ? 0 : rc;
}

/* A known name: alive is taken; dead comes back, decided once by the mark
 * "worker:<oid>:<its last heartbeat>" (two re-registering at once: one
 * wins, the other finds it alive). */
static int worker_revive_gen3(bw_db_t *db, const bw_config_t *cfg,
                              const char *name, const bson_oid_t *oid,
                              const char *hostname, bw_error_t *error) {
  bson_t doc, mark = BSON_INITIALIZER, filter = BSON_INITIALIZER,
              update = BSON_INITIALIZER, set;
  bson_iter_t it;
  int64_t last = 0, now = bw_db_now_ms();
  char hex[25], id[80];
  int rc = bw_db_find_by_oid(db, BW_COLL_WORKERS, "_id", oid, &doc, error);

  if (rc == 0 && bson_iter_init_find(&it, &doc, "last_heartbeat") &&
      BSON_ITER_HOLDS_DATE_TIME(&it))
    last = bson_iter_date_time(&it);
  bson_destroy(&doc);
  if (rc == BW_ENOTFOUND) /* forgotten by the reaper just now */
    return bw_error_set(error, BW_EDB, "worker %s: try again", name);
  if (rc < 0)
    return rc;
  if (last >= now - 2000LL * cfg->heartbeat)
    return worker_exists_error(name, error);
  bson_oid_to_string(oid, hex);
  snprintf(id, sizeof id, "worker:%s:%lld", hex, (long long)last);
  BSON_APPEND_UTF8(&mark, "_id", id);
  BSON_APPEND_DATE_TIME(&mark, "at", now);
  rc = bw_db_insert_once(db, BW_COLL_MARKS, &mark, error);
  bson_destroy(&mark);
  if (rc == BW_EDUP)
    return worker_exists_error(name, error);
  BSON_APPEND_OID(&filter, "_id", oid);
  BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
  BSON_APPEND_UTF8(&set, "hostname", hostname);
  BSON_APPEND_DATE_TIME(&set, "last_heartbeat", now);
  bson_append_document_end(&update, &set);
  /* The mark made this call the one writer of the revival. */
  if (rc == 0)
    rc = bw_db_update_one(db, BW_COLL_WORKERS, &filter, &update, NULL, error);
  bson_destroy(&filter);
  bson_destroy(&update);
  return rc;
}

int bw_worker_register_gen3(bw_db_t *db, const bw_config_t *cfg,
                            const char *name, const char *hostname,
                            bw_error_t *error) {
  bson_t doc = BSON_INITIALIZER;
  bson_oid_t oid;
  int64_t now = bw_db_now_ms();
  int rc = worker_name_free(db, name, error);

  if (rc < 0)
    return rc;
  bw_worker_gen3_oid(name, &oid);
  BSON_APPEND_OID(&doc, "_id", &oid);
  BSON_APPEND_UTF8(&doc, "name", name);
  BSON_APPEND_INT32(&doc, "gen", 3);
  BSON_APPEND_UTF8(&doc, "hostname", hostname);
  BSON_APPEND_DATE_TIME(&doc, "registered_at", now);
  BSON_APPEND_DATE_TIME(&doc, "last_heartbeat", now);
  rc = bw_db_insert_once(db, BW_COLL_WORKERS, &doc, error);
  bson_destroy(&doc);
  if (rc == BW_EDUP)
    rc = worker_revive_gen3(db, cfg, name, &oid, hostname, error);
  return rc;
}

int bw_worker_find_gen3(bw_db_t *db, const char *name, bson_oid_t *oid,
                        bw_error_t *error) {
  bson_t doc;
  int rc;

  bw_worker_gen3_oid(name, oid);
  rc = bw_db_find_by_oid(db, BW_COLL_WORKERS, "_id", oid, &doc, error);
  /* The name is checked too: a hash is not a proof. */
  if (rc == 0 && strcmp(bw_db_get_utf8(&doc, "name", ""), name) != 0)
    rc = BW_ENOTFOUND;
  bson_destroy(&doc);
  if (rc == BW_ENOTFOUND)
    return bw_error_set(error, BW_EAUTH, "worker not found");
  return rc;
}
