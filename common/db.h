/* db.h - the MongoDB connection of one process, and the few primitives every
 * other module builds on.
 *
 * One bw_db_t per process, made after fork() (a mongoc client must never
 * cross a fork).  bw_db_open() allocates it, bw_db_close() frees it.  The
 * collections it hands out are owned by the bw_db_t: do not destroy them.
 *
 * Why the primitives look the way they do: the embedded database, FerretDB,
 * runs findAndModify and updates as read-then-write without a lock, so two
 * callers can both "win" and concurrent updates of one document can overwrite
 * each other.  Inserts under a unique _id are atomic on FerretDB and MongoDB
 * alike.  So every decision that must happen exactly once (a job handed out,
 * a result accepted, a run advanced) is made by inserting a document with a
 * deterministic string _id: whoever inserts it first owns the decision
 * (bw_db_insert_once).  Plain updates are used only on documents that, by
 * then, have exactly one writer. */
#ifndef BW_DB_H
#define BW_DB_H

#include <mongoc/mongoc.h>
#include <stdint.h>

#include "config.h"
#include "error.h"

/* On FerretDB v1.24 (SQLite) a lookup by key, even by _id, scans every row
 * of its collection in SQLite (its _id index is on a different expression
 * than its queries use), while an insert and a read of the first N rows of
 * a collection (empty filter + limit) cost the same at any size.  So the
 * collections a poll or a result touches by key are kept small (active,
 * counters, workers, runs, one queue partition); the large ones (jobs,
 * claims, outcomes, marks, results) are only inserted into on those paths. */
typedef enum bw_coll {
  BW_COLL_RUNS,     /* one per grading run: config (pipelines once), state */
  BW_COLL_ROSTERS,  /* one per run: the students array, for pre/post jobs */
  BW_COLL_JOBS,     /* one per job, written once at creation */
  BW_COLL_CLAIMS,   /* one per hand-out ever made: _id "<job>:<attempt>" */
  BW_COLL_ACTIVE,   /* one per hand-out being graded now: _id as claims */
  BW_COLL_OUTCOMES, /* one per ended attempt: _id "<job>:<attempt>" */
  BW_COLL_RESULTS,  /* one per finished job: what its grader sent */
  BW_COLL_MARKS,    /* run-level once-only decisions and finish tickets */
  BW_COLL_COUNTERS, /* one per run: where its next finish ticket likely is */
  BW_COLL_WORKERS,  /* one per registered grader, with its last heartbeat */
  BW_COLL_SIGNALS,  /* one document: "something was queued" (qsignal.h) */
  BW_COLL_GCONFIGS, /* Gen 3 grading configs, _id "<course>/<assignment>" */
  BW_COLL_LANES,    /* one per run with hand-outs waiting (lane.h) */
  BW_COLL_BEATS,    /* heartbeats, one insert per API host per flush */
  BW_COLL_COUNT
} bw_coll_t;

typedef struct bw_db bw_db_t;

/* Connects (lazily: the first command does the I/O) with server selection,
 * socket and connect timeouts of cfg->db_timeout_ms.  Returns 0 and *out, or
 * BW_EINVAL for a bad URI / BW_ENOMEM. */
int bw_db_open(bw_db_t **out, const bw_config_t *cfg, bw_error_t *error);
void bw_db_close(bw_db_t *db);

/* Parses cfg->mongo_uri as bw_db_open would, without connecting (and
 * without mongoc_init: safe in a parent that forks clients later).
 * Returns 0 or BW_EINVAL naming mongo_uri. */
int bw_db_check_uri(const bw_config_t *cfg, bw_error_t *error);

/* One round trip ("ping"): 0 when the database answers, else BW_EDB. */
int bw_db_ping(bw_db_t *db, bw_error_t *error);

mongoc_collection_t *bw_db_coll(bw_db_t *db, bw_coll_t which);

/* The queue is cfg->queue_partitions collections "queue_00", "queue_01", ...
 * (see queue.h).  partition is taken modulo their number. */
mongoc_collection_t *bw_db_queue(bw_db_t *db, int partition);
int bw_db_queue_partitions(const bw_db_t *db);
mongoc_database_t *bw_db_database(bw_db_t *db);
const char *bw_db_coll_name(bw_coll_t which);

/* updateOne on collection `which` (opts may be NULL): 0, or bw_db_error()'s
 * code.  For documents with one writer (see above): FerretDB runs it as a
 * read-then-write. */
int bw_db_update_one(bw_db_t *db, bw_coll_t which, const bson_t *filter,
                     const bson_t *update, const bson_t *opts,
                     bw_error_t *error);

/* Maps a driver error to ours: duplicate key -> BW_EDUP, server selection /
 * socket failures -> BW_EDB (503), anything else BW_EDB too.  The driver's
 * text (hosts, socket paths) is logged, not put in the message.  Returns
 * the code.  A failure to reach the
 * database also makes bw_db_reachable() false for a second. */
int bw_db_error(const bson_error_t *driver, bw_error_t *error);

/* false for BW_DB_HOLDOFF_MS after this process failed to reach the
 * database: callers answer 503 at once rather than each waiting out a
 * timeout (a frozen database would otherwise hold every FastCGI worker for
 * db_timeout_ms per request, and queue requests that need no database
 * behind them).  Process-wide, like the client. */
#define BW_DB_HOLDOFF_MS 1000
bool bw_db_reachable(void);

/* Inserts `doc` (which must carry its _id).  Returns 0 when this call
 * inserted it, BW_EDUP when a document with that _id already exists
 * (someone else decided first: the driver never retries writes, see
 * db_uri_new), BW_EDB on failure. */
int bw_db_insert_once(bw_db_t *db, bw_coll_t which, const bson_t *doc,
                      bw_error_t *error);

/* Runs visit(doc, ctx) on every document `coll` returns for filter/opts
 * (opts may be NULL).  `doc` is valid during the call only.  Returns 0 or
 * BW_EDB; a visit cannot stop the scan.  BW_EDB can come after some visits
 * (the database may go away mid-scan): what they collected in ctx is still
 * the caller's to free. */
typedef void (*bw_db_visit_fn)(const bson_t *doc, void *ctx);
int bw_db_each(mongoc_collection_t *coll, const bson_t *filter,
               const bson_t *opts, bw_db_visit_fn visit, void *ctx,
               bw_error_t *error);

/* Finds the first document `filter` matches (opts may be NULL; its limit is
 * replaced by 1).  Returns 0 with the document in *out, BW_ENOTFOUND, or
 * BW_EDB.  *out is initialised first, whatever the result (empty on
 * failure): the caller bson_destroy()s it on every path, and callers rely
 * on that. */
int bw_db_find_one(bw_db_t *db, bw_coll_t which, const bson_t *filter,
                   const bson_t *opts, bson_t *out, bw_error_t *error);

/* bw_db_find_one with the filter {key: oid}, and with {"_id": id} for the
 * string ids of queue entries, claims, outcomes and marks.  Same promise
 * about *out. */
int bw_db_find_by_oid(bw_db_t *db, bw_coll_t which, const char *key,
                      const bson_oid_t *oid, bson_t *out, bw_error_t *error);
int bw_db_find_by_id(bw_db_t *db, bw_coll_t which, const char *id, bson_t *out,
                     bw_error_t *error);

/* Reading one field of a document: the value, or the fallback (utf8),
 * false (oid, oid_hex: then out is "" for oid_hex), 0 (int) when the field is
 * missing or of another type. */
const char *bw_db_get_utf8(const bson_t *doc, const char *key,
                           const char *fallback);
bool bw_db_get_oid(const bson_t *doc, const char *key, bson_oid_t *out);
bool bw_db_get_oid_hex(const bson_t *doc, const char *key, char out[25]);
int64_t bw_db_get_int(const bson_t *doc, const char *key);
/* A read-only view of the embedded document `key` (valid while doc is, never
 * destroyed); false, and an empty view, when the field is missing or not a
 * document. */
bool bw_db_get_doc(const bson_t *doc, const char *key, bson_t *view);

/* Applies every sql-free-schema/<collection>.json in schema_dir (queue.json
 * to every queue partition): creates the collection and its indexes when
 * missing.  Idempotent.  Returns 0 or
 * BW_EDB / BW_EINVAL (bad schema file). */
int bw_db_apply_schema(bw_db_t *db, const char *schema_dir, bw_error_t *error);

/* Milliseconds since the epoch, for timestamps stored as BSON dates. */
int64_t bw_db_now_ms(void);

/* Documents the reaper reads by time carry `at` (a date) and a bucket of
 * it: claims and outcomes `minute` = at / BW_DB_MINUTE_MS, results `day` =
 * at / BW_DB_DAY_MS.  The reaper reads a window minute by minute (retention:
 * day by day) with equality filters, which every backend answers from an
 * index (FerretDB pushes equality down to PostgreSQL, never a range), so a
 * pass costs the same however much history is stored.  `buckets`: any of
 * BW_DB_BY_MINUTE, BW_DB_BY_DAY. */
#define BW_DB_MINUTE_MS 60000
#define BW_DB_DAY_MS 86400000LL
#define BW_DB_BY_MINUTE 1u
#define BW_DB_BY_DAY 2u
void bw_db_append_at(bson_t *doc, int64_t at_ms, unsigned buckets);

/* Visits the documents of `coll` whose `at` is in [from, to) (ms), minute
 * by minute: equality reads on `minute`, indexed on every backend, where a
 * range is a scan of the whole history on FerretDB (over 64 minutes: one
 * range read instead).  As bw_db_each otherwise. */
int bw_db_each_between(mongoc_collection_t *coll, int64_t from, int64_t to,
                       const bson_t *opts, bw_db_visit_fn visit, void *ctx,
                       bw_error_t *error);

/* Parses 24 hex digits (either case) into an ObjectId; false when
 * malformed.  The one id check of the project (libbson's
 * bson_oid_is_valid): the router parses every id of a request with it once,
 * and everything below takes the bson_oid_t. */
bool bw_db_oid_parse(const char *text, bson_oid_t *oid);

#endif
