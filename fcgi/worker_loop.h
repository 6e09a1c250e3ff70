/* worker_loop.h - one FastCGI worker process: its own database client, and a
 * loop that accepts and serves requests until told to stop.
 *
 * Stop signals (SIGTERM, SIGINT, SIGHUP, and the parent's death) are only
 * let in while the worker waits for a connection, so a request being served
 * always finishes and gets its reply before the worker exits; long polls
 * parked in it (longpoll.h) get queue_empty_code then.  The wait also
 * watches the parked polls and runs their tick. */
#ifndef BW_FCGI_WORKER_LOOP_H
#define BW_FCGI_WORKER_LOOP_H

#include <sys/types.h>

#include "config.h"
#include "course.h"

/* Runs in the child right after fork(); `parent` is the pid that forked it;
 * `courses` is the parent's courses file (course.h), NULL for none.
 * Returns the exit status for the process: 0 when stopped by a signal, 1
 * when it could not serve (database client, broken listening socket). */
int bw_fcgi_worker_run(int listen_fd, const bw_config_t *cfg,
                       const bw_courses_t *courses, pid_t parent);

#endif
