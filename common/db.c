#include "db.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "json.h"
#include "log.h"

struct bw_db {
  mongoc_client_t *client;
  mongoc_database_t *database;
  mongoc_collection_t *colls[BW_COLL_COUNT];
  mongoc_collection_t **queue;
  int partitions;
};

static const char *coll_names[BW_COLL_COUNT] = {
    "runs",     "rosters", "jobs",  "claims",   "active",
    "outcomes", "results", "marks", "counters", "workers", "signals",
    "gconfigs", "lanes",   "beats",
};

static void db_queue_name(int partition, char out[32]) {
  snprintf(out, 32, "queue_%02d", partition);
}

const char *bw_db_coll_name(bw_coll_t which) {
  return coll_names[which];
}

int64_t bw_db_now_ms(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

void bw_db_append_at(bson_t *doc, int64_t at_ms, unsigned buckets) {
  BSON_APPEND_DATE_TIME(doc, "at", at_ms);
  if (buckets & BW_DB_BY_MINUTE)
    BSON_APPEND_INT64(doc, "minute", at_ms / BW_DB_MINUTE_MS);
  if (buckets & BW_DB_BY_DAY)
    BSON_APPEND_INT64(doc, "day", at_ms / BW_DB_DAY_MS);
}

bool bw_db_oid_parse(const char *text, bson_oid_t *oid) {
  if (text == NULL || strlen(text) != 24 || !bson_oid_is_valid(text, 24))
    return false;
  bson_oid_init_from_string(oid, text);
  return true;
}

/* Timeouts go on the URI so that a database that is down costs a request
 * at most db_timeout_ms, and the client rescans by itself when it is back. */
static mongoc_uri_t *db_uri_new(const bw_config_t *cfg, bw_error_t *error) {
  bson_error_t driver;
  mongoc_uri_t *uri = mongoc_uri_new_with_error(cfg->mongo_uri, &driver);
  if (uri == NULL) {
    bw_error_set(error, BW_EINVAL, "mongo_uri: %s", driver.message);
    return NULL;
  }
  mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS,
                                 cfg->db_timeout_ms);
  mongoc_uri_set_option_as_int32(uri, MONGOC_URI_CONNECTTIMEOUTMS,
                                 cfg->db_timeout_ms);
  mongoc_uri_set_option_as_int32(
      uri, MONGOC_URI_SOCKETTIMEOUTMS,
      cfg->socket_timeout_ms > 0 ? cfg->socket_timeout_ms : cfg->db_timeout_ms);
  /* A write the driver retried by itself could meet its own first try as a
   * duplicate key and take it for someone else's decision.  Off: a failed
   * write is reported, and the caller's resend (or the reaper) settles it. */
  mongoc_uri_set_option_as_bool(uri, MONGOC_URI_RETRYWRITES, false);
  return uri;
}

/* The driver's own messages go through our log.  It warns on every client
 * destroy that FerretDB has no endSessions command: true, and harmless. */
static void db_log_handler(mongoc_log_level_t level, const char *domain,
                           const char *message, void *data) {
  (void)data;
  if (level > MONGOC_LOG_LEVEL_WARNING || strstr(message, "endSessions"))
    return;
  bw_log(level == MONGOC_LOG_LEVEL_WARNING ? BW_LOG_WARN : BW_LOG_ERROR,
         "mongoc %s: %s", domain, message);
}

int bw_db_open(bw_db_t **out, const bw_config_t *cfg, bw_error_t *error) {
  bson_error_t driver;
  mongoc_uri_t *uri;
  bw_db_t *db;

  *out = NULL;
  mongoc_init();
  mongoc_log_set_handler(db_log_handler, NULL);
  uri = db_uri_new(cfg, error);
  if (uri == NULL)
    return BW_EINVAL;
  db = bson_malloc0(sizeof *db);
  db->client = mongoc_client_new_from_uri_with_error(uri, &driver);
  mongoc_uri_destroy(uri);
  if (db->client == NULL) {
    bson_free(db);
    return bw_error_set(error, BW_EINVAL, "mongo_uri: %s", driver.message);
  }
  mongoc_client_set_appname(db->client, "broadway");
  mongoc_client_set_error_api(db->client, MONGOC_ERROR_API_VERSION_2);
  db->database = mongoc_client_get_database(db->client, cfg->db_name);
  for (int i = 0; i < BW_COLL_COUNT; i++)
    db->colls[i] = mongoc_database_get_collection(db->database, coll_names[i]);
  db->partitions = cfg->queue_partitions > 0 ? cfg->queue_partitions : 1;
  db->queue = bson_malloc0(sizeof *db->queue * (size_t)db->partitions);
  for (int i = 0; i < db->partitions; i++) {
    char name[32];
    db_queue_name(i, name);
    db->queue[i] = mongoc_database_get_collection(db->database, name);
  }
  *out = db;
  return 0;
}

int bw_db_check_uri(const bw_config_t *cfg, bw_error_t *error) {
  bson_error_t driver;
  mongoc_uri_t *uri = mongoc_uri_new_with_error(cfg->mongo_uri, &driver);

  if (uri == NULL)
    return bw_error_set(error, BW_EINVAL, "mongo_uri: %s", driver.message);
  mongoc_uri_destroy(uri);
  return 0;
}

int bw_db_ping(bw_db_t *db, bw_error_t *error) {
  bson_t cmd = BSON_INITIALIZER;
  bson_error_t driver;
  bool ok;

  BSON_APPEND_INT32(&cmd, "ping", 1);
  ok = mongoc_database_command_simple(db->database, &cmd, NULL, NULL, &driver);
  bson_destroy(&cmd);
  return ok ? 0 : bw_db_error(&driver, error);
}

void bw_db_close(bw_db_t *db) {
  if (db == NULL)
    return;
  for (int i = 0; i < BW_COLL_COUNT; i++)
    mongoc_collection_destroy(db->colls[i]);
  for (int i = 0; i < db->partitions; i++)
    mongoc_collection_destroy(db->queue[i]);
  bson_free(db->queue);
  mongoc_database_destroy(db->database);
  mongoc_client_destroy(db->client);
  bson_free(db);
}

mongoc_collection_t *bw_db_coll(bw_db_t *db, bw_coll_t which) {
  return db->colls[which];
}

mongoc_collection_t *bw_db_queue(bw_db_t *db, int partition) {
  int k = partition % db->partitions;
  return db->queue[k < 0 ? k + db->partitions : k];
}

int bw_db_queue_partitions(const bw_db_t *db) {
  return db->partitions;
}

mongoc_database_t *bw_db_database(bw_db_t *db) {
  return db->database;
}

static int64_t db_unreachable_until;

bool bw_db_reachable(void) {
  return bw_db_now_ms() >= db_unreachable_until;
}

int bw_db_update_one(bw_db_t *db, bw_coll_t which, const bson_t *filter,
                     const bson_t *update, const bson_t *opts,
                     bw_error_t *error) {
  bson_error_t driver;
  if (!mongoc_collection_update_one(bw_db_coll(db, which), filter, update, opts,
                                    NULL, &driver))
    return bw_db_error(&driver, error);
  return 0;
}

int bw_db_error(const bson_error_t *driver, bw_error_t *error) {
  if (driver->code == 11000 || driver->code == 11001)
    return bw_error_set(error, BW_EDUP, "database: duplicate key");
  /* The driver's text names hosts and socket paths: it goes to the log,
   * the client gets the gist. */
  bw_log_warn("database: %s (domain %u, code %u)", driver->message,
              driver->domain, driver->code);
  if (driver->domain == MONGOC_ERROR_STREAM ||
      driver->domain == MONGOC_ERROR_SERVER_SELECTION) {
    db_unreachable_until = bw_db_now_ms() + BW_DB_HOLDOFF_MS;
    return bw_error_set(error, BW_EDB,
                        "database: unreachable, retry in a moment");
  }
  return bw_error_set(error, BW_EDB, "database: command failed (code %u)",
                      driver->code);
}

int bw_db_insert_once(bw_db_t *db, bw_coll_t which, const bson_t *doc,
                      bw_error_t *error) {
  bson_error_t driver;
  if (mongoc_collection_insert_one(db->colls[which], doc, NULL, NULL, &driver))
    return 0;
  return bw_db_error(&driver, error);
}

int bw_db_each(mongoc_collection_t *coll, const bson_t *filter,
               const bson_t *opts, bw_db_visit_fn visit, void *ctx,
               bw_error_t *error) {
  const bson_t *doc;
  bson_error_t driver;
  mongoc_cursor_t *cursor =
      mongoc_collection_find_with_opts(coll, filter, opts, NULL);
  int rc = 0;

  while (mongoc_cursor_next(cursor, &doc))
    visit(doc, ctx);
  if (mongoc_cursor_error(cursor, &driver))
    rc = bw_db_error(&driver, error);
  mongoc_cursor_destroy(cursor);
  return rc;
}

/* More minutes than this in a window: one range read instead. */
#define DB_MAX_MINUTES 64

int bw_db_each_between(mongoc_collection_t *coll, int64_t from, int64_t to,
                       const bson_t *opts, bw_db_visit_fn visit, void *ctx,
                       bw_error_t *error) {
  int64_t first = from / BW_DB_MINUTE_MS, last = (to - 1) / BW_DB_MINUTE_MS;
  bool by_minute = last - first < DB_MAX_MINUTES;
  int rc = 0;

  for (int64_t m = first; rc == 0 && m <= (by_minute ? last : first); m++) {
    bson_t filter = BSON_INITIALIZER, range;
    if (by_minute)
      BSON_APPEND_INT64(&filter, "minute", m);
    BSON_APPEND_DOCUMENT_BEGIN(&filter, "at", &range);
    BSON_APPEND_DATE_TIME(&range, "$gte", from);
    BSON_APPEND_DATE_TIME(&range, "$lt", to);
    bson_append_document_end(&filter, &range);
    rc = bw_db_each(coll, &filter, opts, visit, ctx, error);
    bson_destroy(&filter);
  }
  return rc;
}

int bw_db_find_one(bw_db_t *db, bw_coll_t which, const bson_t *filter,
                   const bson_t *opts, bson_t *out, bw_error_t *error) {
  const bson_t *doc;
  bson_error_t driver;
  bson_t limited = BSON_INITIALIZER;
  mongoc_cursor_t *cursor;
  int rc = BW_ENOTFOUND;

  bson_init(out);
  if (opts != NULL)
    bson_copy_to_excluding_noinit(opts, &limited, "limit", NULL);
  BSON_APPEND_INT64(&limited, "limit", 1);
  cursor = mongoc_collection_find_with_opts(db->colls[which], filter, &limited,
                                            NULL);
  if (mongoc_cursor_next(cursor, &doc)) {
    bson_copy_to(doc, out);
    rc = 0;
  } else if (mongoc_cursor_error(cursor, &driver)) {
    rc = bw_db_error(&driver, error);
  } else {
    bw_error_set(error, BW_ENOTFOUND, "not found");
  }
  mongoc_cursor_destroy(cursor);
  bson_destroy(&limited);
  return rc;
}

const char *bw_db_get_utf8(const bson_t *doc, const char *key,
                           const char *fallback) {
  bson_iter_t it;
  if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it))
    return bson_iter_utf8(&it, NULL);
  return fallback;
}

bool bw_db_get_oid(const bson_t *doc, const char *key, bson_oid_t *out) {
  bson_iter_t it;
  if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_OID(&it))
    return false;
  bson_oid_copy(bson_iter_oid(&it), out);
  return true;
}

bool bw_db_get_oid_hex(const bson_t *doc, const char *key, char out[25]) {
  bson_oid_t oid;
  out[0] = '\0';
  if (!bw_db_get_oid(doc, key, &oid))
    return false;
  bson_oid_to_string(&oid, out);
  return true;
}

int64_t bw_db_get_int(const bson_t *doc, const char *key) {
  bson_iter_t it;
  return bson_iter_init_find(&it, doc, key) ? bson_iter_as_int64(&it) : 0;
}

bool bw_db_get_doc(const bson_t *doc, const char *key, bson_t *view) {
  bson_iter_t it;
  const uint8_t *data;
  uint32_t len;
  if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_DOCUMENT(&it)) {
    bson_init(view);
    return false;
  }
  bson_iter_document(&it, &len, &data);
  return bson_init_static(view, data, len);
}

int bw_db_find_by_oid(bw_db_t *db, bw_coll_t which, const char *key,
                      const bson_oid_t *oid, bson_t *out, bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER;
  int rc;
  BSON_APPEND_OID(&filter, key, oid);
  rc = bw_db_find_one(db, which, &filter, NULL, out, error);
  bson_destroy(&filter);
  return rc;
}

int bw_db_find_by_id(bw_db_t *db, bw_coll_t which, const char *id, bson_t *out,
                     bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER;
  int rc;
  BSON_APPEND_UTF8(&filter, "_id", id);
  rc = bw_db_find_one(db, which, &filter, NULL, out, error);
  bson_destroy(&filter);
  return rc;
}

/* "already exists" (48) is the normal answer on every start but the first. */
static int db_create_collection(bw_db_t *db, const char *name,
                                bw_error_t *error) {
  bson_error_t driver;
  mongoc_collection_t *coll =
      mongoc_database_create_collection(db->database, name, NULL, &driver);
  if (coll != NULL) {
    mongoc_collection_destroy(coll);
    return 0;
  }
  if (driver.code == 48)
    return 0;
  return bw_db_error(&driver, error);
}

/* Index directions as int32: FerretDB's SQLite backend panics on int64. */
static void db_append_index_key(bson_t *index, json_object *key) {
  bson_t doc;
  BSON_APPEND_DOCUMENT_BEGIN(index, "key", &doc);
  json_object_object_foreach(key, field, direction) {
    BSON_APPEND_INT32(&doc, field, json_object_get_int(direction));
  }
  bson_append_document_end(index, &doc);
}

/* One createIndexes command per index: FerretDB v1.24 panics when one
 * command lists two or more indexes that already exist (its duplicate filter
 * deletes from the slice it is indexing), which is every start but the
 * first.  Creating an existing identical index is a no-op on both. */
static int db_create_index(bw_db_t *db, const char *coll, json_object *spec,
                           size_t i, bw_error_t *error) {
  bson_t cmd = BSON_INITIALIZER, list, index, reply;
  bson_error_t driver;
  json_object *key, *name, *unique;
  int rc = 0;

  if (!json_object_object_get_ex(spec, "key", &key) ||
      !json_object_object_get_ex(spec, "name", &name))
    return bw_error_set(error, BW_EINVAL,
                        "schema %s: indexes[%zu] needs key and name", coll, i);
  BSON_APPEND_UTF8(&cmd, "createIndexes", coll);
  BSON_APPEND_ARRAY_BEGIN(&cmd, "indexes", &list);
  BSON_APPEND_DOCUMENT_BEGIN(&list, "0", &index);
  db_append_index_key(&index, key);
  BSON_APPEND_UTF8(&index, "name", json_object_get_string(name));
  if (json_object_object_get_ex(spec, "unique", &unique) &&
      json_object_get_boolean(unique))
    BSON_APPEND_BOOL(&index, "unique", true);
  bson_append_document_end(&list, &index);
  bson_append_array_end(&cmd, &list);
  if (!mongoc_database_write_command_with_opts(db->database, &cmd, NULL, &reply,
                                               &driver))
    rc = bw_db_error(&driver, error);
  bson_destroy(&reply);
  bson_destroy(&cmd);
  return rc;
}

static int db_apply_file(bw_db_t *db, const char *path, const char *coll,
                         bw_error_t *error) {
  json_object *schema = json_object_from_file(path), *indexes;
  int rc;

  if (schema == NULL)
    return bw_error_set(error, BW_EINVAL, "schema: cannot read %s", path);
  rc = db_create_collection(db, coll, error);
  if (rc == 0 && json_object_object_get_ex(schema, "indexes", &indexes) &&
      json_object_is_type(indexes, json_type_array))
    for (size_t j = 0; rc == 0 && j < json_object_array_length(indexes); j++)
      rc = db_create_index(db, coll, json_object_array_get_idx(indexes, j), j,
                           error);
  json_object_put(schema);
  return rc;
}

int bw_db_apply_schema(bw_db_t *db, const char *schema_dir, bw_error_t *error) {
  char path[BW_PATH_MAX];
  int rc = 0;

  for (int i = 0; rc == 0 && i < BW_COLL_COUNT; i++) {
    snprintf(path, sizeof path, "%s/%s.json", schema_dir, coll_names[i]);
    rc = db_apply_file(db, path, coll_names[i], error);
  }
  snprintf(path, sizeof path, "%s/queue.json", schema_dir);
  for (int i = 0; rc == 0 && i < db->partitions; i++) {
    char name[32];
    db_queue_name(i, name);
    rc = db_apply_file(db, path, name, error);
  }
  return rc;
}
