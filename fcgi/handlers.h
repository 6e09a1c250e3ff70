/* handlers.h - one thin handler per endpoint of PROTOCOL.md.
 *
 * By the time a handler runs, the router has checked the token, the method,
 * the {id} in the path (24 hex digits, parsed once into call->path_id) and,
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
  bson_oid_t path_id;    /* the {id} of the path, when the route has one */
  bson_oid_t worker_id;  /* the calling grader, on grader endpoints */
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

/* The 2019 API's graders (worker3_handlers.c): call->path_rest is the
 * grader's own name, checked by the router. */
int bw_handle_gen3_register(bw_call_t *call, bw_error_t *error);
int bw_handle_gen3_poll(bw_call_t *call, bw_error_t *error);
int bw_handle_gen3_result(bw_call_t *call, bw_error_t *error);
int bw_handle_gen3_heartbeat(bw_call_t *call, bw_error_t *error);
int bw_handle_gen3_ws(bw_call_t *call, bw_error_t *error);

/* GET /api/v1/health, the one route without the token (for load balancers
 * and monitoring): 200 when the database answers a ping, 503 when not.  It
 * says nothing a stranger could use. */
#define BW_HEALTH_PATH "/api/v1/health"
int bw_handle_health(bw_call_t *call, bw_error_t *error);

/* Course staff's endpoints (staff_handlers.c). */
int bw_handle_run_cancel(bw_call_t *call, bw_error_t *error);
int bw_handle_run_retry(bw_call_t *call, bw_error_t *error);
int bw_handle_runs_list(bw_call_t *call, bw_error_t *error);
int bw_handle_workers_list(bw_call_t *call, bw_error_t *error);
int bw_handle_queue_view(bw_call_t *call, bw_error_t *error);

#endif
