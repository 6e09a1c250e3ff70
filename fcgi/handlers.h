/* handlers.h - one thin handler per endpoint of PROTOCOL.md.
 *
 * By the time a handler runs, the router has checked the token, the method,
 * the {id} in the path (24 hex digits, lowercased into call->path_id) and,
 * for grader endpoints, the worker_id header (call->worker_id).  A handler
 * either replies itself and returns 0, or returns a negative BW_E* code with
 * `error` filled, and the router replies with it. */
#ifndef BW_HANDLERS_H
#define BW_HANDLERS_H

#include "config.h"
#include "db.h"
#include "error.h"
#include "request.h"

typedef struct bw_call {
  const bw_config_t *cfg;
  bw_db_t *db;
  bw_request_t *req;
  char path_id[25];   /* the {id} of the path, "" when the route has none */
  char worker_id[25]; /* the calling grader, "" on client endpoints */
  const char *path_rest; /* a TAIL_REST route's rest of the path, else NULL */
} bw_call_t;

typedef int (*bw_handler_fn)(bw_call_t *call, bw_error_t *error);

int bw_handle_run_create(bw_call_t *call, bw_error_t *error);
int bw_handle_run_start(bw_call_t *call, bw_error_t *error);
int bw_handle_run_status(bw_call_t *call, bw_error_t *error);
int bw_handle_job_get(bw_call_t *call, bw_error_t *error);
int bw_handle_worker_register(bw_call_t *call, bw_error_t *error);
int bw_handle_job_poll(bw_call_t *call, bw_error_t *error);
int bw_handle_job_report(bw_call_t *call, bw_error_t *error);
int bw_handle_heartbeat(bw_call_t *call, bw_error_t *error);

#endif
