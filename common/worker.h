/* worker.h - graders: registration, the worker_id check, heartbeats.
 *
 * A worker is alive while its last heartbeat is younger than 2 heartbeat
 * intervals; the reaper (reap.h) acts on the ones that are not.  Only
 * heartbeats write a worker's document after registration, so the
 * read-then-write updates of FerretDB cannot lose anything here.
 *
 * Where a heartbeat is recorded (issue 10): an API host keeps the ones it
 * answers in its FastCGI pool's shared memory (fcgi/beats.h) and writes
 * them every bw_worker_flush_ms as ONE insert into `beats` ({pool, at,
 * every, beats: [{w, at}]}); it also moves `workers.last_heartbeat` on
 * now and then ($max), so that document lags by minutes at most.  A
 * grader's last heartbeat is the latest of the two (bw_worker_last_beat).
 * bw_worker_heartbeat, one update per heartbeat, is what a host without
 * that memory does. */
#ifndef BW_WORKER_H
#define BW_WORKER_H

#include <stdbool.h>

#include "config.h"
#include "db.h"
#include "error.h"

/* Registers a grader (hostname may be NULL).  Writes its id to worker_id.
 * Returns 0 or BW_EDB. */
int bw_worker_register(bw_db_t *db, const char *hostname, char worker_id[25],
                       bw_error_t *error);

/* Returns 0 when `worker` is registered, BW_EAUTH "worker_id: not a
 * registered worker" when not, BW_EDB on failure. */
int bw_worker_check(bw_db_t *db, const bson_oid_t *worker, bw_error_t *error);

/* Marks the worker alive now (bw_worker_store_beat at now).  Returns 0,
 * BW_EAUTH, or BW_EDB. */
int bw_worker_heartbeat(bw_db_t *db, const bson_oid_t *worker,
                        bw_error_t *error);

/* ---- the 2019 API's graders (PROTOCOL-LATER.md §2.7) -------------------
 *
 * A Gen 3 grader chooses its id, a name of [-A-Za-z0-9_] (at most
 * BW_WORKER_NAME_MAX bytes).  Inside, every grader is an ObjectId (active
 * records, outcomes and the reaper know no other): a name's is derived from
 * the name alone (bw_worker_gen3_oid), so registering is one insert under a
 * unique _id, the once-only decision FerretDB makes atomically, and finding
 * a name is one _id lookup.  Its document also holds the name, gen 3 and
 * the hostname. */
#define BW_WORKER_NAME_MAX 128

/* true for 1..BW_WORKER_NAME_MAX bytes of [-A-Za-z0-9_]. */
bool bw_worker_name_valid(const char *name);

/* The ObjectId of Gen 3 grader `name` (a 96-bit hash of it). */
void bw_worker_gen3_oid(const char *name, bson_oid_t *oid);

/* Registers Gen 3 grader `name` from `hostname`.  A new name is stored; a
 * known one that is dead (no heartbeat for 2 intervals) is alive again,
 * with this hostname and now as its last heartbeat (decided once, by a
 * mark, when two re-register at once).  Returns 0; BW_EINVAL "worker id
 * '<name>' already exists" when it is alive, or when the name is the id of
 * a seed-era grader or of a job (PROTOCOL-LATER.md §4.2 keeps the shared
 * paths unambiguous); BW_EDB. */
int bw_worker_register_gen3(bw_db_t *db, const bw_config_t *cfg,
                            const char *name, const char *hostname,
                            bw_error_t *error);

/* *oid of registered Gen 3 grader `name` (dead or alive).  Returns 0,
 * BW_EAUTH "worker not found", or BW_EDB. */
int bw_worker_find_gen3(bw_db_t *db, const char *name, bson_oid_t *oid,
                        bw_error_t *error);

/* How often an API host writes the heartbeats it answered: a fifth of the
 * interval (100 ms at least), so a live grader's heartbeat reaches the
 * database with 0.8 of an interval to spare.  ms. */
int64_t bw_worker_flush_ms(const bw_config_t *cfg);

typedef struct bw_worker_beat {
  bson_oid_t worker;
  int64_t at; /* ms: when the heartbeat was answered */
} bw_worker_beat_t;

/* Inserts one `beats` document of pool `pool` (n may be 0: "this host is
 * up and holds nothing unreported").  `at` (ms) must be when the pool
 * took `beats` from its memory: every heartbeat it answered before `at` is
 * in this document or an earlier one, and the reaper relies on that
 * (bw_worker_beats_settled).  Returns 0 or BW_EDB. */
int bw_worker_beats_insert(bw_db_t *db, const bson_oid_t *pool, int64_t at,
                           int64_t every_ms, const bw_worker_beat_t *beats,
                           size_t n, bw_error_t *error);

/* Which of `ids` (n of them, sorted with bson_oid_compare) are registered:
 * registered[i] for ids[i].  One read of every worker's _id for a whole
 * pool's cache of confirmed ids: `workers` is small (one row per grader,
 * long-silent ones forgotten), and FerretDB evaluates `$in` itself, each
 * row against each id, where a plain read costs a few us a row.  Returns 0
 * or BW_EDB. */
int bw_worker_registered_among(bw_db_t *db, const bson_oid_t *ids, size_t n,
                               bool *registered, bw_error_t *error);

/* Moves the worker's last_heartbeat on to `at` unless it holds a later one
 * ($max).  *found: false when there is no such worker (forgotten).
 * Returns 0 or BW_EDB. */
int bw_worker_store_beat(bw_db_t *db, const bson_oid_t *worker, int64_t at,
                         bool *found, bw_error_t *error);

typedef struct bw_worker_pool_seen {
  bson_oid_t pool;
  int64_t at;       /* ms: its latest write */
  int64_t every_ms; /* between its writes */
} bw_worker_pool_seen_t;

/* What the `beats` documents written at or after a time say. */
typedef struct bw_worker_beats {
  bw_worker_beat_t *last; /* each worker's latest, sorted by worker */
  size_t n, cap;
  bw_worker_pool_seen_t *pools;
  size_t npools, pools_cap;
  int64_t first_at; /* ms: the earliest write; 0: none */
} bw_worker_beats_t;

/* Reads the documents written at or after `from` (minute by minute).
 * Returns 0 or BW_EDB; *out is the caller's to clean up either way. */
int bw_worker_beats_load(bw_db_t *db, int64_t from, bw_worker_beats_t *out,
                         bw_error_t *error);
void bw_worker_beats_cleanup(bw_worker_beats_t *beats);

/* The worker's last heartbeat: the later of `stored` (its document's
 * last_heartbeat) and its latest entry in `beats`. */
int64_t bw_worker_last_beat(const bw_worker_beats_t *beats,
                            const bson_oid_t *worker, int64_t stored);

/* Whether no heartbeat answered before `deadline` can still be unreported:
 * every pool that wrote (in `beats`) has written since `deadline`, or
 * stopped writing over 2 intervals + its `every` ago (killed: what it held
 * is lost, and a live grader's next heartbeat, an interval later, has been
 * seen through another pool by then).  The reaper declares a grader dead
 * only when this holds for its deadline (last heartbeat + 2 intervals). */
bool bw_worker_beats_settled(const bw_worker_beats_t *beats,
                             const bw_config_t *cfg, int64_t deadline,
                             int64_t now);

/* The window bw_worker_beats_settled needs: load from here. */
int64_t bw_worker_beats_window(const bw_config_t *cfg, int64_t now);

/* Deletes `beats` documents older than 10 minutes + 4 intervals.  0 or
 * BW_EDB. */
int bw_worker_beats_prune(bw_db_t *db, const bw_config_t *cfg,
                          bw_error_t *error);

#endif
