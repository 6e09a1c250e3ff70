/* worker.h - graders: registration, the worker_id check, heartbeats.
 *
 * A worker is alive while its last heartbeat is younger than 2 heartbeat
 * intervals; the reaper (reap.h) acts on the ones that are not.  Only
 * heartbeats write a worker's document after registration, so the
 * read-then-write updates of FerretDB cannot lose anything here. */
#ifndef BW_WORKER_H
#define BW_WORKER_H

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

#endif
