/* session.h - what all grader threads share: the worker id the API gave us,
 * the heartbeat interval, and the stop flag.
 *
 * Registration and re-registration happen here, under the session lock, so
 * that when several threads see a 401 at once (the API forgot us: database
 * wiped) only the first registers again.  Every wait in the grader goes
 * through gr_session_sleep_ms(), which gr_session_stop() cuts short: SIGTERM
 * never waits for a backoff to end. */
#ifndef GR_SESSION_H
#define GR_SESSION_H

#include <pthread.h>
#include <stdbool.h>

#include "http.h"
#include "options.h"

typedef struct gr_session {
  const gr_options_t *opt; /* borrowed */
  pthread_mutex_t lock;
  pthread_cond_t wake; /* signalled by gr_session_stop */
  bool stopping;
  char worker_id[25];
  int heartbeat_s;
} gr_session_t;

/* Doubling delays between min_ms and max_ms. */
typedef struct gr_backoff {
  int min_ms, max_ms, next_ms;
} gr_backoff_t;

void gr_backoff_init(gr_backoff_t *backoff, int min_ms, int max_ms);
int gr_backoff_next(gr_backoff_t *backoff); /* the delay to wait now */
void gr_backoff_reset(gr_backoff_t *backoff);

/* Returns 0 or BW_ESYS (pthread failure). */
int gr_session_init(gr_session_t *session, const gr_options_t *opt);
void gr_session_cleanup(gr_session_t *session);

/* Registers, retrying with backoff until it works.  Returns 0, or
 * BW_ECONFLICT when the session was stopped first. */
int gr_session_register(gr_session_t *session, gr_http_t *http);

/* Called after a 401 for `stale_id`: registers again unless another thread
 * already did.  Returns 0, or BW_ECONFLICT when stopped. */
int gr_session_reregister(gr_session_t *session, gr_http_t *http,
                          const char *stale_id);

void gr_session_worker_id(gr_session_t *session, char out[25]);

void gr_session_stop(gr_session_t *session);
bool gr_session_stopping(gr_session_t *session);

/* Sleeps ms milliseconds or until stopped.  Returns false when stopped. */
bool gr_session_sleep_ms(gr_session_t *session, int ms);

/* Thread body: heartbeats at the registered interval until stopped.  `arg`
 * is the session.  Makes its own HTTP handle. */
void *gr_heartbeat_main(void *arg);

#endif
