#include "session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "log.h"

#define REGISTER_TIMEOUT_MS 30000L

void gr_backoff_init(gr_backoff_t *backoff, int min_ms, int max_ms) {
  backoff->min_ms = min_ms;
  backoff->max_ms = max_ms;
  backoff->next_ms = min_ms;
}

int gr_backoff_next(gr_backoff_t *backoff) {
  int delay = backoff->next_ms;

  backoff->next_ms = delay >= backoff->max_ms / 2 ? backoff->max_ms : delay * 2;
  return delay;
}

void gr_backoff_reset(gr_backoff_t *backoff) {
  backoff->next_ms = backoff->min_ms;
}

int gr_session_init(gr_session_t *session, const gr_options_t *opt) {
  pthread_condattr_t attr;
  int rc;

  memset(session, 0, sizeof *session);
  session->opt = opt;
  session->heartbeat_s = 10;
  if (pthread_mutex_init(&session->lock, NULL) != 0)
    return BW_ESYS;
  if (pthread_condattr_init(&attr) != 0) {
    pthread_mutex_destroy(&session->lock);
    return BW_ESYS;
  }
  /* Monotonic: a clock step must not stretch or skip a heartbeat. */
  rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  if (rc == 0)
    rc = pthread_cond_init(&session->wake, &attr);
  pthread_condattr_destroy(&attr); /* on failure too */
  if (rc != 0) {
    pthread_mutex_destroy(&session->lock);
    return BW_ESYS;
  }
  return 0;
}

void gr_session_cleanup(gr_session_t *session) {
  pthread_cond_destroy(&session->wake);
  pthread_mutex_destroy(&session->lock);
}

void gr_session_stop(gr_session_t *session) {
  pthread_mutex_lock(&session->lock);
  session->stopping = true;
  pthread_cond_broadcast(&session->wake);
  pthread_mutex_unlock(&session->lock);
}

bool gr_session_stopping(gr_session_t *session) {
  bool stopping;

  pthread_mutex_lock(&session->lock);
  stopping = session->stopping;
  pthread_mutex_unlock(&session->lock);
  return stopping;
}

static void deadline_after_ms(struct timespec *ts, int ms) {
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += ms / 1000;
  ts->tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

bool gr_session_sleep_ms(gr_session_t *session, int ms) {
  struct timespec deadline;
  bool stopping;

  deadline_after_ms(&deadline, ms);
  pthread_mutex_lock(&session->lock);
  while (!session->stopping &&
         pthread_cond_timedwait(&session->wake, &session->lock, &deadline) !=
             ETIMEDOUT)
    ;
  stopping = session->stopping;
  pthread_mutex_unlock(&session->lock);
  return !stopping;
}

void gr_session_worker_id(gr_session_t *session, char out[25]) {
  pthread_mutex_lock(&session->lock);
  memcpy(out, session->worker_id, 25);
  pthread_mutex_unlock(&session->lock);
}

/* One registration request.  Returns 0 and fills id/heartbeat, or
 * BW_EAUTH (a 401) or BW_ESYS (anything else; logged either way). */
static int register_once(gr_session_t *session, gr_http_t *http, char id[25],
                         int *heartbeat) {
  json_object *field;
  gr_reply_t reply;
  char path[1024], *host;
  const char *text;
  int rc = BW_ESYS;

  host = gr_http_escape(http, session->opt->hostname);
  snprintf(path, sizeof path, "/api/v1/worker_register?hostname=%s",
           host ? host : "");
  free(host);
  if (gr_http_request(http, "GET", path, NULL, NULL, REGISTER_TIMEOUT_MS,
                      &reply) == 0 &&
      reply.status == 200 && reply.data != NULL &&
      json_object_object_get_ex(reply.data, "worker_id", &field) &&
      (text = json_object_get_string(field)) != NULL && strlen(text) == 24) {
    memcpy(id, text, 25);
    *heartbeat = 10;
    if (json_object_object_get_ex(reply.data, "heartbeat", &field) &&
        json_object_get_int(field) > 0)
      *heartbeat = json_object_get_int(field);
    rc = 0;
  } else if (reply.status == 401) {
    rc = BW_EAUTH;
    bw_log_error("registration refused (401): is the token right? retrying");
  } else {
    bw_log_warn("registration failed: %s; retrying", reply.message);
  }
  gr_reply_cleanup(&reply);
  return rc;
}

/* Registers until it works; the caller holds no lock.  Returns 0, or
 * BW_ECONFLICT when the session was stopped first. */
static int register_until_done(gr_session_t *session, gr_http_t *http) {
  gr_backoff_t backoff;
  char id[25];
  int heartbeat;

  gr_backoff_init(&backoff, 200, 5000);
  while (register_once(session, http, id, &heartbeat) != 0)
    if (!gr_session_sleep_ms(session, gr_backoff_next(&backoff)))
      return BW_ECONFLICT;
  pthread_mutex_lock(&session->lock);
  memcpy(session->worker_id, id, 25);
  session->heartbeat_s = heartbeat;
  pthread_mutex_unlock(&session->lock);
  bw_log_info("registered as worker %s (heartbeat every %d s)", id, heartbeat);
  return 0;
}

int gr_session_register(gr_session_t *session, gr_http_t *http) {
  return register_until_done(session, http);
}

int gr_session_reregister(gr_session_t *session, gr_http_t *http,
                          const char *stale_id) {
  /* Serialises re-registrations: the losers of the race find a new id and
   * return at once. */
  static pthread_mutex_t registering = PTHREAD_MUTEX_INITIALIZER;
  char current[25];
  int rc = 0;

  pthread_mutex_lock(&registering);
  gr_session_worker_id(session, current);
  if (strcmp(current, stale_id) == 0) {
    bw_log_warn("the API does not know worker %s (401): registering again",
                stale_id);
    rc = register_until_done(session, http);
  }
  pthread_mutex_unlock(&registering);
  return rc;
}

static int heartbeat_interval_ms(gr_session_t *session) {
  int seconds;

  pthread_mutex_lock(&session->lock);
  seconds = session->heartbeat_s;
  pthread_mutex_unlock(&session->lock);
  return seconds * 1000;
}

/* One heartbeat.  Returns 0 when the API took it (or a re-registration
 * after a 401 did), else BW_ESYS or BW_ECONFLICT (stopped).  `failures`
 * counts the current streak, so an outage is logged once, not every
 * second. */
static int heartbeat_once(gr_session_t *session, gr_http_t *http,
                          int *failures) {
  char id[25];
  gr_reply_t reply;
  int interval = heartbeat_interval_ms(session);
  int rc = BW_ESYS;

  gr_session_worker_id(session, id);
  /* A heartbeat that arrives later than its interval is worth nothing. */
  gr_http_request(http, "POST", "/api/v1/heartbeat", id, NULL,
                  interval > 1000 ? interval : 1000, &reply);
  if (reply.status == 200) {
    if (*failures > 0)
      bw_log_info("heartbeat: working again after %d failure(s)", *failures);
    *failures = 0;
    rc = 0;
  } else if (reply.status == 401) {
    rc = gr_session_reregister(session, http, id);
  } else if ((*failures)++ == 0) {
    bw_log_warn("heartbeat failed: %s (retrying; logged once)", reply.message);
  }
  gr_reply_cleanup(&reply);
  return rc;
}

static long long monotonic_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void *gr_heartbeat_main(void *arg) {
  gr_session_t *session = arg;
  gr_backoff_t retry;
  gr_http_t http;
  int delay = heartbeat_interval_ms(session), failures = 0;

  if (gr_http_init(&http, session->opt->api, session->opt->token) != 0) {
    bw_log_error("heartbeat: no curl handle; stopping the grader");
    gr_session_stop(session);
    return NULL;
  }
  gr_backoff_init(&retry, 250, 2000);
  while (gr_session_sleep_ms(session, delay)) {
    long long started = monotonic_ms();
    int interval = heartbeat_interval_ms(session);
    if (heartbeat_once(session, &http, &failures) == 0) {
      /* Beat on a fixed period: the request's own time is not added. */
      gr_backoff_reset(&retry);
      delay = interval - (int)(monotonic_ms() - started);
      if (delay < 0)
        delay = 0;
    } else {
      /* Retry well inside the interval: two missed ones mean dead. */
      delay = gr_backoff_next(&retry);
      if (delay > interval)
        delay = interval;
    }
  }
  gr_http_cleanup(&http);
  return NULL;
}
