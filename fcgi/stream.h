/* stream.h - GET /api/v1/stream/<course_id>/<job_id>: a job's progress as
 * Server-Sent Events (PROTOCOL-LATER.md §2.10), for broadway-on-demand's
 * status page.
 *
 * The reply is `Content-Type: text/event-stream` (with `Cache-Control:
 * no-cache` and `X-Accel-Buffering: no`, so nginx passes each event on as it
 * comes).  Events, each `event: status_update` and one `data:` line:
 *   {"type":"position","data":n}   the job waits, n-th (0-based) in its
 *                                  course's queue: at once, then whenever n
 *                                  changes;
 *   {"type":"state","data":"STARTED"}  a grader took it;
 *   {"type":"state","data":"FINISHED"} or "FAILED": it ended; the reply
 *                                  ends there.
 * A comment `:` and a blank line every cfg->stream_keepalive seconds (20)
 * keeps proxies from timing the connection out.  A job handed back to the
 * queue (its grader died: this service re-queues, the original did not)
 * gets position events again.
 *
 * Who may: a member of the course (a course token or a query token).  401
 * with the JSend fail body otherwise.  A job id that is not one of the
 * course's jobs (unknown, malformed or another course's: they read alike,
 * so no course learns of another's jobs) is a 400 "grading job with the
 * given ID not found" before any event; the original opened a stream that
 * never said anything.
 *
 * What a waiting stream costs: nothing of its own.  Its FastCGI request is
 * parked in the worker process, next to the long polls (longpoll.h), and
 * the process goes on serving others.  A stream's job is read again only
 * when something moved: the host's one read of the signals every 50 ms
 * (shared with the long polls; 100 ms while no poll waits) saw a push, a Gen 3 hand-out or a Gen 3
 * job's end, or a process of this host made one (qsignal.h).  Then:
 *   - the job the "jobs" signal names (passed between the host's processes
 *     in their wake-up datagrams): one state read for its streams, at once;
 *   - every stream of the process, at most once per STREAM_REFRESH_MIN_MS
 *     and never more than a third of the process's time (rechecks back off
 *     to twice their own duration): one read of each course's queue for
 *     all its streams' positions (bw_queue_positions), and a state read
 *     for each job not waiting.
 * Between moves a stream costs a keep-alive write.
 *
 * Ownership: a parked stream (its FCGX_Request and bw_request_t) belongs
 * to this module until it ends here: its job's final state was sent, the
 * client went away (nginx closed the connection), a write failed, or the
 * worker stops (bw_stream_stop: the client reconnects, as EventSource
 * does). */
#ifndef BW_FCGI_STREAM_H
#define BW_FCGI_STREAM_H

#include <poll.h>

#include "handlers.h"

/* The route's handler.  Answers an error, or a stream that ends at once
 * (the job had ended), or parks the stream (req->parked). */
int bw_handle_stream(bw_call_t *call, bw_error_t *error);

/* For the worker loop, as longpoll.h's: the parked streams' connections
 * (events POLLRDHUP), the wait in ms until a stream has something to do
 * (-1: none parked), and one tick after the wait. */
int bw_stream_pollfds(struct pollfd *fds, int max);
int bw_stream_timeout_ms(void);
void bw_stream_tick(const struct pollfd *fds, int n);

/* Ends every parked stream (the worker stops). */
void bw_stream_stop(void);

#endif
