/* http.h - one libcurl handle per thread talking JSON to the Broadway API.
 *
 * A request either reaches the server (any status: the caller decides what
 * a 401, 409 or 498 means) or fails in transport (refused, reset, timed
 * out).  Every request carries the cluster token; grader requests after
 * registration carry the worker id too.  Nothing here logs the token. */
#ifndef GR_HTTP_H
#define GR_HTTP_H

#include <curl/curl.h>
#include <json-c/json.h>
#include <stdbool.h>

typedef struct gr_http {
  CURL *curl;
  const char *base;  /* API base URL, no trailing slash; borrowed */
  const char *token; /* borrowed */
  /* When set, a request in flight is given up (a transport failure) once
   * give_up(give_up_arg) is true, checked about once a second: a long poll
   * must not hold a stopping grader for its whole wait. */
  bool (*give_up)(void *arg);
  void *give_up_arg;
} gr_http_t;

typedef struct gr_reply {
  long status;       /* HTTP status, 0 on a transport failure */
  json_object *data; /* JSend `data` (or the whole body without an
                        envelope), NULL if none; freed by cleanup */
  char message[256]; /* what went wrong, for logs */
} gr_reply_t;

/* The CA bundle every request checks HTTPS against
 * (NULL or "": the system's).  Call once, before the threads start; `path`
 * must outlive them. */
void gr_http_set_ca_file(const char *path);

/* Returns 0 or BW_ENOMEM when libcurl cannot make a handle. */
int gr_http_init(gr_http_t *http, const char *base, const char *token);
void gr_http_cleanup(gr_http_t *http);

/* Sends `method path` (path starts with '/').  worker_id and body may be
 * NULL.  Fills `reply` (always initialised, release with
 * gr_reply_cleanup).  Returns 0 when the server answered (whatever its
 * status), else BW_ESYS on a transport failure or BW_ENOMEM, with the reason
 * in reply->message. */
int gr_http_request(gr_http_t *http, const char *method, const char *path,
                    const char *worker_id, const char *body, long timeout_ms,
                    gr_reply_t *reply);
void gr_reply_cleanup(gr_reply_t *reply);

/* Transport failures and 5xx: worth retrying unchanged. */
int gr_reply_is_transient(const gr_reply_t *reply);

/* URL-escapes `text` for a query string.  Caller frees with free(). */
char *gr_http_escape(gr_http_t *http, const char *text);

#endif
