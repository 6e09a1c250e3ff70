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
#include "course.h"
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
  const bw_courses_t *courses; /* the courses file (NULL: none), course.h */
  /* Gen 3 course routes (router.c's TAIL_COURSE): the {course} and {id}
   * segments of the path, as text ({id}: an assignment, run or job id) */
  char course[BW_REQUEST_PATH_MAX];
  char g3_id[BW_REQUEST_PATH_MAX];
} bw_call_t;

typedef int (*bw_handler_fn)(bw_call_t *call, bw_error_t *error);

/* The body as a JSON object: over max_body is a 413, anything else wrong
 * with it a 400 naming the problem. */
int bw_call_read_json(bw_call_t *call, json_object **out, bw_error_t *error);

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

/* The 2019 API's course routes (course_handlers.c, PROTOCOL-LATER.md §2.6,
 * §2.10).  The router has checked the course token; ids are in call->g3_id
 * (the assignment, run or job), the worker list's scope in path_rest.
 * A body-schema failure is answered here (400, data a string); BW_ENOTFOUND
 * returned becomes a 400 in the router, as in the original. */
int bw_handle_g3_config_put(bw_call_t *call, bw_error_t *error);
int bw_handle_g3_config_get(bw_call_t *call, bw_error_t *error);
int bw_handle_g3_run_create(bw_call_t *call, bw_error_t *error);
int bw_handle_g3_run_status(bw_call_t *call, bw_error_t *error);
int bw_handle_g3_run_env(bw_call_t *call, bw_error_t *error);
int bw_handle_g3_job_log(bw_call_t *call, bw_error_t *error);
int bw_handle_g3_workers(bw_call_t *call, bw_error_t *error);
int bw_handle_g3_queue_length(bw_call_t *call, bw_error_t *error);
int bw_handle_g3_queue_position(bw_call_t *call, bw_error_t *error);

#endif
