/* worker.h - graders: registration, the worker_id check, heartbeats.
 *
 * A worker is alive while its last heartbeat is younger than 2 heartbeat
 * intervals; the reaper (reap.h) acts on the ones that are not.  Only
 * heartbeats write a worker's document after registration, so the
 * read-then-write updates of FerretDB cannot lose anything here. */
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

/* Marks the worker alive now.  Returns 0, BW_EAUTH, or BW_EDB. */
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

#endif
