#include "worker.h"

#include <stdio.h>
#include <stdlib.h>
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
  bool found;
  int rc = bw_worker_store_beat(db, worker, bw_db_now_ms(), &found, error);
  if (rc == 0 && !found)
    rc = bw_error_set(error, BW_EAUTH, "worker_id: not a registered worker");
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

/* ---- heartbeats written by API hosts (beats) ----------------------------- */

int64_t bw_worker_flush_ms(const bw_config_t *cfg) {
  int64_t every = cfg->heartbeat * 200LL;
  return every < 100 ? 100 : every;
}

int bw_worker_beats_insert(bw_db_t *db, const bson_oid_t *pool, int64_t at,
                           int64_t every_ms, const bw_worker_beat_t *beats,
                           size_t n, bw_error_t *error) {
  bson_t doc = BSON_INITIALIZER, list, entry;
  bson_oid_t id;
  bson_error_t driver;
  char buf[16];
  const char *key;
  int rc = 0;

  bson_oid_init(&id, NULL);
  BSON_APPEND_OID(&doc, "_id", &id);
  BSON_APPEND_OID(&doc, "pool", pool);
  bw_db_append_at(&doc, at, BW_DB_BY_MINUTE);
  BSON_APPEND_INT64(&doc, "every", every_ms);
  BSON_APPEND_ARRAY_BEGIN(&doc, "beats", &list);
  for (size_t i = 0; i < n; i++) {
    bson_uint32_to_string((uint32_t)i, &key, buf, sizeof buf);
    BSON_APPEND_DOCUMENT_BEGIN(&list, key, &entry);
    BSON_APPEND_OID(&entry, "w", &beats[i].worker);
    BSON_APPEND_DATE_TIME(&entry, "at", beats[i].at);
    bson_append_document_end(&list, &entry);
  }
  bson_append_array_end(&doc, &list);
  if (!mongoc_collection_insert_one(bw_db_coll(db, BW_COLL_BEATS), &doc, NULL,
                                    NULL, &driver))
    rc = bw_db_error(&driver, error);
  bson_destroy(&doc);
  return rc;
}

static int worker_oid_cmp(const void *a, const void *b) {
  return bson_oid_compare(a, b);
}

typedef struct worker_among {
  const bson_oid_t *ids;
  size_t n;
  bool *registered;
} worker_among_t;

static void worker_visit_among(const bson_t *doc, void *ctx) {
  worker_among_t *a = ctx;
  bson_oid_t id;
  const bson_oid_t *hit;
  if (!bw_db_get_oid(doc, "_id", &id))
    return;
  hit = bsearch(&id, a->ids, a->n, sizeof *a->ids, worker_oid_cmp);
  if (hit != NULL)
    a->registered[hit - a->ids] = true;
}

int bw_worker_registered_among(bw_db_t *db, const bson_oid_t *ids, size_t n,
                               bool *registered, bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, proj;
  worker_among_t among = {ids, n, registered};
  int rc;

  memset(registered, 0, n * sizeof *registered);
  BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
  BSON_APPEND_INT32(&proj, "_id", 1);
  bson_append_document_end(&opts, &proj);
  rc = bw_db_each(bw_db_coll(db, BW_COLL_WORKERS), &filter, &opts,
                  worker_visit_among, &among, error);
  bson_destroy(&filter);
  bson_destroy(&opts);
  return rc;
}

int bw_worker_store_beat(bw_db_t *db, const bson_oid_t *worker, int64_t at,
                         bool *found, bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, max, reply;
  bson_error_t driver;
  bson_iter_t it;
  int rc = 0;

  *found = true;
  BSON_APPEND_OID(&filter, "_id", worker);
  BSON_APPEND_DOCUMENT_BEGIN(&update, "$max", &max);
  BSON_APPEND_DATE_TIME(&max, "last_heartbeat", at);
  bson_append_document_end(&update, &max);
  /* FerretDB's read-then-write may let an older value win a race with
   * another host's: the entries in `beats` still hold the later one for
   * as long as it decides anything (bw_worker_last_beat). */
  if (!mongoc_collection_update_one(bw_db_coll(db, BW_COLL_WORKERS), &filter,
                                    &update, NULL, &reply, &driver))
    rc = bw_db_error(&driver, error);
  else if (bson_iter_init_find(&it, &reply, "matchedCount") &&
           bson_iter_as_int64(&it) == 0)
    *found = false;
  bson_destroy(&reply);
  bson_destroy(&filter);
  bson_destroy(&update);
  return rc;
}

static void worker_visit_beats(const bson_t *doc, void *ctx) {
  bw_worker_beats_t *b = ctx;
  bson_iter_t it, list, entry;
  bson_oid_t pool;
  int64_t at;
  size_t p;

  if (!bson_iter_init_find(&it, doc, "at") || !BSON_ITER_HOLDS_DATE_TIME(&it) ||
      !bw_db_get_oid(doc, "pool", &pool))
    return;
  at = bson_iter_date_time(&it);
  if (b->first_at == 0 || at < b->first_at)
    b->first_at = at;
  for (p = 0; p < b->npools && !bson_oid_equal(&b->pools[p].pool, &pool); p++)
    ;
  if (p == b->npools) {
    if (b->npools == b->pools_cap) {
      b->pools_cap = b->pools_cap ? 2 * b->pools_cap : 8;
      b->pools = bson_realloc(b->pools, b->pools_cap * sizeof *b->pools);
    }
    b->pools[b->npools++] = (bw_worker_pool_seen_t){.pool = pool, .at = 0};
  }
  if (at > b->pools[p].at) {
    b->pools[p].at = at;
    b->pools[p].every_ms = bw_db_get_int(doc, "every");
  }
  if (!bson_iter_init_find(&it, doc, "beats") || !BSON_ITER_HOLDS_ARRAY(&it) ||
      !bson_iter_recurse(&it, &list))
    return;
  while (bson_iter_next(&list)) {
    bw_worker_beat_t beat = {.at = 0};
    if (!BSON_ITER_HOLDS_DOCUMENT(&list) || !bson_iter_recurse(&list, &entry))
      continue;
    while (bson_iter_next(&entry)) {
      if (strcmp(bson_iter_key(&entry), "w") == 0 &&
          BSON_ITER_HOLDS_OID(&entry))
        bson_oid_copy(bson_iter_oid(&entry), &beat.worker);
      else if (strcmp(bson_iter_key(&entry), "at") == 0 &&
               BSON_ITER_HOLDS_DATE_TIME(&entry))
        beat.at = bson_iter_date_time(&entry);
    }
    if (beat.at == 0)
      continue;
    if (b->n == b->cap) {
      b->cap = b->cap ? 2 * b->cap : 256;
      b->last = bson_realloc(b->last, b->cap * sizeof *b->last);
    }
    b->last[b->n++] = beat;
  }
}

/* Sorted by worker, then by time: keeps each worker's latest. */
static int worker_beat_cmp(const void *a, const void *b) {
  const bw_worker_beat_t *x = a, *y = b;
  int c = bson_oid_compare(&x->worker, &y->worker);
  return c != 0 ? c : (x->at > y->at) - (x->at < y->at);
}

int bw_worker_beats_load(bw_db_t *db, int64_t from, bw_worker_beats_t *out,
                         bw_error_t *error) {
  size_t kept = 0;
  int rc;

  memset(out, 0, sizeof *out);
  /* to: a minute ahead, for a host whose clock is slightly ahead. */
  rc = bw_db_each_between(bw_db_coll(db, BW_COLL_BEATS), from,
                          bw_db_now_ms() + BW_DB_MINUTE_MS, NULL,
                          worker_visit_beats, out, error);
  if (out->n > 0)
    qsort(out->last, out->n, sizeof *out->last, worker_beat_cmp);
  for (size_t i = 0; i < out->n; i++) {
    if (kept > 0 &&
        bson_oid_equal(&out->last[kept - 1].worker, &out->last[i].worker))
      kept--;
    out->last[kept++] = out->last[i];
  }
  out->n = kept;
  return rc;
}

void bw_worker_beats_cleanup(bw_worker_beats_t *beats) {
  bson_free(beats->last);
  bson_free(beats->pools);
  memset(beats, 0, sizeof *beats);
}

int64_t bw_worker_last_beat(const bw_worker_beats_t *beats,
                            const bson_oid_t *worker, int64_t stored) {
  const bw_worker_beat_t *found =
      beats->n == 0 ? NULL
                    : bsearch(worker, beats->last, beats->n,
                              sizeof *beats->last, worker_oid_cmp);
  return found != NULL && found->at > stored ? found->at : stored;
}

bool bw_worker_beats_settled(const bw_worker_beats_t *beats,
                             const bw_config_t *cfg, int64_t deadline,
                             int64_t now) {
  for (size_t p = 0; p < beats->npools; p++) {
    const bw_worker_pool_seen_t *seen = &beats->pools[p];
    if (seen->at < deadline &&
        now < seen->at + 2000LL * cfg->heartbeat + seen->every_ms)
      return false;
  }
  return true;
}

int64_t bw_worker_beats_window(const bw_config_t *cfg, int64_t now) {
  /* Pools that wrote before this have either written again since, or
   * stopped long enough ago (2 intervals + every) to be settled; and a
   * grader whose latest entry is older missed a heartbeat for sure. */
  return now - 2000LL * cfg->heartbeat - 2 * bw_worker_flush_ms(cfg) - 1000;
}

int bw_worker_beats_prune(bw_db_t *db, const bw_config_t *cfg,
                          bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, lt;
  bson_error_t driver;
  int64_t keep = 600000LL + 4000LL * cfg->heartbeat;
  int rc = 0;

  /* A range on `beats`, small by this very pruning: a few hundred rows. */
  BSON_APPEND_DOCUMENT_BEGIN(&filter, "minute", &lt);
  BSON_APPEND_INT64(&lt, "$lt", (bw_db_now_ms() - keep) / BW_DB_MINUTE_MS);
  bson_append_document_end(&filter, &lt);
  if (!mongoc_collection_delete_many(bw_db_coll(db, BW_COLL_BEATS), &filter,
                                     NULL, NULL, &driver))
    rc = bw_db_error(&driver, error);
  bson_destroy(&filter);
  return rc;
}
