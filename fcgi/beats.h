/* beats.h - the heartbeats this API host answers, kept in its FastCGI
 * pool's shared memory and written to the database as ONE insert every
 * bw_worker_flush_ms (a fifth of the interval), and the registered-worker
 * cache that spares a grader call its `workers` lookup (issue 10).
 *
 * Why: a heartbeat written on its own costs FerretDB ~1.6 ms of CPU (one
 * statement), 200 graders every 10 s 5.6 % of a core; one insert per
 * host per second carries all of them.
 *
 * The table (a shared anonymous mapping made by the pool's parent before
 * it forks, like metrics.h's counters, so a respawned or reloaded worker
 * finds it) holds per grader: when the database last said it is
 * registered, its last heartbeat here, the last one written to `beats`
 * and the last one moved into workers.last_heartbeat.  A robust
 * process-shared mutex guards it (a worker killed holding it does not stop
 * the others).  Any worker process writes, whichever first finds a write
 * due; the worker loop wakes for it (bw_beats_timeout_ms).
 *
 * What a write says (worker.h, bw_worker_beats_settled): every heartbeat
 * answered before its `at` is in it or in an earlier write.  While any
 * grader beat here within 2 intervals + a flush, the pool writes every
 * flush even with nothing new (so the reaper knows nothing is pending).
 *
 * What a crash loses: a kill -9 of the pool's parent (or of the host)
 * loses the heartbeats answered since the last write, at most one per
 * grader (a flush is a fifth of an interval).  That cannot cause a false
 * death: the reaper declares a grader dead only once every pool that wrote
 * recently has written past the grader's deadline, or stopped writing 2
 * intervals + a flush ago, by which time the grader's next heartbeat (an
 * interval after the lost one) has been written by a live pool.  A killed
 * worker process loses nothing: the table outlives it.
 *
 * The cache: an id the database confirmed is trusted, and once per
 * heartbeat interval the pool confirms every id it trusts in ONE read
 * (of every worker's `_id`); an id the reaper forgot (or a wiped database)
 * loses its trust then, so its next call asks and gets 401 within an interval.
 * An id never confirmed always asks the database (401 when not registered).
 * Trust lapses after 5 minutes (forget_workers/4 at most) without a
 * confirmation. */
#ifndef BW_FCGI_BEATS_H
#define BW_FCGI_BEATS_H

#include "config.h"
#include "db.h"
#include "error.h"

/* Maps the table.  Call once in the parent, before forking.  0, or -1:
 * then every call below falls back to the database, as before issue 10. */
int bw_beats_init(void);

/* bw_worker_check with the cache.  0, BW_EAUTH (not registered), BW_EDB. */
int bw_beats_check(bw_db_t *db, const bw_config_t *cfg,
                   const bson_oid_t *worker, bw_error_t *error);

/* A worker just registered (its document says last_heartbeat = `at`). */
void bw_beats_registered(const bw_config_t *cfg, const bson_oid_t *worker,
                         int64_t at);

/* A heartbeat: checked as bw_beats_check does, then into the table (or,
 * without one or when it is full, bw_worker_heartbeat).  0, BW_EAUTH,
 * BW_EDB. */
int bw_beats_record(bw_db_t *db, const bw_config_t *cfg,
                    const bson_oid_t *worker, bw_error_t *error);

/* For the worker loop: ms until this process should look at the table
 * again (-1: nothing to write), and the look itself: writes when a write
 * is due and no other process is writing. */
int bw_beats_timeout_ms(const bw_config_t *cfg);
void bw_beats_tick(bw_db_t *db, const bw_config_t *cfg);

/* At a worker's stop: writes what is pending now, whoever's turn it is. */
void bw_beats_flush(bw_db_t *db, const bw_config_t *cfg);

/* For /metrics: heartbeats answered and not yet written (-1: no table). */
int bw_beats_pending(void);

#endif
