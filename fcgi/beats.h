/* beats.h - grader heartbeats, written to the database in batches.
 *
 * On FerretDB every heartbeat (an update of `workers` by _id) scans the
 * collection and wakes the database up: 200 graders heartbeating every 10 s
 * cost it ~5 % of a core, more than all their waiting long polls.  So a
 * worker process answers the heartbeat of a grader it knows (one whose
 * heartbeat it wrote itself in the last BEATS_KNOWN_MS) at once, and writes
 * the heartbeats it collected in one update, at most BEATS_HOLD_MS (and a
 * tenth of the heartbeat interval) later: a grader's last_heartbeat is never
 * late by more than that against the reaper's two intervals.  A grader it
 * does not know is written (and answered: 200 or 401) at once, as before.
 * When a batch finds an id no longer registered (the database was wiped),
 * that grader is forgotten, so its next heartbeat gets its 401. */
#ifndef BW_FCGI_BEATS_H
#define BW_FCGI_BEATS_H

#include "config.h"
#include "db.h"
#include "error.h"
#include "request.h"

void bw_beats_start(const bw_config_t *cfg, bw_db_t *db);

/* Writes what is collected and frees everything. */
void bw_beats_stop(void);

/* The heartbeat of worker_id: answers it (0), or returns BW_EAUTH or BW_EDB
 * for the caller to answer. */
int bw_beats_heartbeat(bw_request_t *req, const char *worker_id,
                       bw_error_t *error);

/* For the worker loop: ms until the collected heartbeats are due (-1:
 * none), and writing them when they are. */
int bw_beats_timeout_ms(void);
void bw_beats_tick(void);

#endif
