/* longpoll.h - empty-queue polls that wait for a job (the original's long
 * poll), many in one single-threaded worker process.
 *
 * A poll that finds the queue empty is not answered: its FastCGI request is
 * parked (kept open, connection and all) and the worker goes on accepting
 * other requests.  The worker loop polls the listening socket and the
 * parked connections with a short timeout; on each tick this module
 *   - drops parked requests whose nginx connection hung up (the grader went
 *     away: handing it a job would lose the job to the reaper's deadline);
 *   - reads the signals (common/qsignal.h: the queue's and the Gen 3
 *     jobs', one find of both documents), one small read for the whole
 *     host: the processes share a page beside the FastCGI socket
 *     (<socket_path>.longpoll), and whoever moves its "next check" time
 *     forward does the read;
 *   - when the signal changed (a push on any host), this process pushed, or
 *     every LONGPOLL_RECHECK_MS anyway: polls the queue for its waiters,
 *     oldest first, until the queue is empty again;
 *   - answers queue_empty_code to waiters whose wait is over.
 * So idle waiters cost one small read per tick per host, not a queue scan
 * each; and a new poll that arrives while the host knows the queue is empty
 * (nothing queued since a poll found it empty, signal read recently) parks
 * without scanning the queue at all.
 *
 * Ownership: a parked request (its FCGX_Request, heap-allocated by the
 * worker loop, and its bw_request_t) belongs to this module until it is
 * answered and finished here. */
#ifndef BW_FCGI_LONGPOLL_H
#define BW_FCGI_LONGPOLL_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "db.h"
#include "error.h"
#include "request.h"

/* Requests one process may keep parked, long polls and streams
 * (fcgi/stream.h) together.  Each holds a connection, and libfcgi closes a
 * connection with select(), which cannot take a descriptor over
 * FD_SETSIZE (1024): stay well below it. */
#define BW_LONGPOLL_MAX 768

/* Prepares this worker process (after fork, after bw_db_open).  Without the
 * shared page (it cannot be made) polls answer at once, as without
 * poll_wait, and streams are refused.  Returns 0 or -1. */
int bw_longpoll_start(const bw_config_t *cfg, bw_db_t *db);

/* Other requests parked in this process that wait for the signals: the
 * SSE streams (fcgi/stream.h).  Setting their number makes them count as
 * this process's waiters: the host reads the signals while they wait, and
 * wakes this process (a datagram) when one moves.  bw_longpoll_moved()
 * moves on whenever the host saw either signal move (a push, a hand-out or
 * an end of a Gen 3 job, through any host) or this process bumped one:
 * streams look at their jobs again only then.  bw_longpoll_parked() is the
 * number of parked polls (the two share BW_LONGPOLL_MAX).  Without the
 * shared page (bw_longpoll_available() false) nothing moves. */
bool bw_longpoll_available(void);
int bw_longpoll_parked(void);
void bw_longpoll_watchers(int n);
uint64_t bw_longpoll_moved(void);

/* The jobs named as moved (handed out, ended) since the last call, at most
 * `max` into out: their streams look at them at once, before the recheck
 * of all (a move not named is still seen by it).  Returns how many. */
int bw_longpoll_take_hints(bson_oid_t *out, int max);

/* Answers every waiter (queue_empty_code) and frees everything. */
void bw_longpoll_stop(void);

/* How long this poll may wait, in seconds: ?wait=N if given, at most
 * cfg->poll_wait.  Returns it (0: answer at once) or BW_EINVAL naming
 * `wait`. */
int bw_longpoll_wait_for(const bw_request_t *req, const bw_config_t *cfg,
                         bw_error_t *error);

/* Hands worker_id a job, or parks the request for up to `wait` seconds
 * (req->parked is then true: the caller must neither answer nor finish
 * it).  Returns 0 when answered or parked, BW_EEMPTY (error filled: answer
 * it) when the queue is empty and the request cannot wait, or BW_EDB. */
int bw_longpoll_poll(bw_request_t *req, const bson_oid_t *worker_id, int wait,
                     bw_error_t *error);

/* For the worker loop: the parked connections to watch (at most `max`,
 * events POLLRDHUP) and the poll timeout in ms (-1: none parked). */
int bw_longpoll_pollfds(struct pollfd *fds, int max);
int bw_longpoll_timeout_ms(void);

/* Parked long polls of the whole host (every process on the shared page;
 * a killed one's count is left out), or -1 without the page.  For
 * /metrics. */
int bw_longpoll_parked_all(void);

/* One tick, after the wait: `fds` are what bw_longpoll_pollfds gave, with
 * their revents. */
void bw_longpoll_tick(const struct pollfd *fds, int n);

#endif
