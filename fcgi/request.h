/* request.h - one FastCGI request: what nginx passed us, the body (read only
 * on demand, within the size limit) and the one reply every request gets.
 *
 * bw_request_init() borrows the FCGX_Request: the strings it points to live
 * until FCGX_Finish_r().  bw_request_cleanup() frees the body and discards
 * any input not read, so nginx never writes into a closed socket (which it
 * would turn into a 502). */
#ifndef BW_REQUEST_H
#define BW_REQUEST_H

#include <fcgiapp.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "error.h"

#define BW_REQUEST_PATH_MAX 512

typedef struct bw_request {
  FCGX_Request *fcgx;
  const char *method;             /* REQUEST_METHOD, "" when absent */
  char path[BW_REQUEST_PATH_MAX]; /* no query, no trailing slash */
  bool path_too_long;             /* path[] is then empty: no route matches */
  const char *query;              /* QUERY_STRING, "" when absent */
  const char *authorization;      /* HTTP_AUTHORIZATION or NULL */
  const char *worker_id; /* HTTP_WORKER_ID (worker_id / Worker-Id) or NULL */
  char *body;            /* NUL-terminated once read, else NULL */
  size_t body_len;
  bool input_done; /* the body was read to its end: nothing to discard */
  int status;      /* of the reply, 0 until one was sent */
  char allow[32];  /* Allow header value for a 405, "" otherwise */
  bool parked;     /* a long poll took it over (longpoll.h): not finished */
} bw_request_t;

void bw_request_init(bw_request_t *req, FCGX_Request *fcgx);
void bw_request_cleanup(bw_request_t *req, size_t max_body);

/* Ends the request: bw_request_cleanup(), the reply flushed to nginx
 * (FCGX_Finish_r: the FCGX_Request is then free for the next accept) and
 * the access-log line, with the time since `start`.  A request never
 * answered (its grader went away while it waited) is logged as status 0. */
void bw_request_finish(bw_request_t *req, size_t max_body,
                       const struct timespec *start);

/* Reads the whole body into req->body.  Returns 0, BW_ETOOBIG (over
 * max_body: 413) or BW_EINVAL (a Content-Length that is not a number or does
 * not match what arrived). */
int bw_request_read_body(bw_request_t *req, size_t max_body, bw_error_t *error);

/* The first `name=value` of the query string, percent-decoded into out.
 * Returns 1 when found, 0 when absent, BW_EINVAL (message names `name`) for
 * a bad escape, a NUL byte or a value that does not fit in out. */
int bw_request_query_param(const bw_request_t *req, const char *name, char *out,
                           size_t size, bw_error_t *error);

/* Sends status and `body` (taking over its reference) as the reply.  Only
 * the first reply of a request is sent. */
void bw_request_reply(bw_request_t *req, int status, json_object *body);

/* A reply that is not JSON (GET /metrics): `len` bytes of `text` as
 * Content-Type `type`.  Only the first reply of a request is sent. */
void bw_request_reply_text(bw_request_t *req, int status, const char *type,
                           const char *text, size_t len);

/* A reply sent in pieces (Server-Sent Events, fcgi/stream.h): the header
 * of a 200 with Content-Type `type`, no Content-Length, `Cache-Control:
 * no-cache` and `X-Accel-Buffering: no` (nginx then passes each piece on
 * as it comes), flushed at once.  Only the first reply of a request is
 * sent.  Returns 0, or -1 when the connection is gone. */
int bw_request_stream_begin(bw_request_t *req, const char *type);

/* One piece of a reply begun with bw_request_stream_begin, flushed to
 * nginx at once.  Returns 0, or -1 when the connection is gone. */
int bw_request_stream_write(bw_request_t *req, const char *text, size_t len);

/* 204 No Content, no body (CORS preflights).  Every reply carries the
 * CORS headers Access-Control-Allow-Origin: * and
 * Access-Control-Allow-Headers: Authorization.  Only the first reply of a
 * request is sent. */
void bw_request_reply_no_content(bw_request_t *req);

/* 200 with {"status":"success","data":data} (data taken over, may be NULL). */
void bw_request_reply_success(bw_request_t *req, json_object *data);

/* The reply for a failure: its HTTP status from `code` (the negative BW_E*
 * the failed call returned: the one place the code is kept); a JSend fail
 * with the message below 500 (and for the queue-empty code), a JSend error
 * with message and code from 500 on. */
void bw_request_reply_error(bw_request_t *req, int code, const char *message,
                            int queue_empty_code);

#endif
