#include "router.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "beats.h"
#include "handlers.h"
#include "json.h"
#include "metrics.h"

/* Who may call a route, beyond holding the cluster token. */
enum route_caller {
  CALLER_ANY,       /* clients and graders registering */
  CALLER_WORKER,    /* a registered grader (worker_id header) */
  CALLER_WORKER_ID, /* a well-formed worker_id: the handler's own database
                       call answers "not registered", saving a query */
};

/* What follows the route's path. */
enum route_tail {
  TAIL_NONE, /* nothing */
  TAIL_OID,  /* /{id}: 24 hex digits, lowercased into call->path_id */
  TAIL_REST, /* /{anything, '/' included}: call->path_rest, unchecked */
};

typedef struct route {
  const char *method;
  const char *path;     /* without the trailing /{id} */
  const char *id_field; /* NULL: no {id}; else its name in messages */
  enum route_caller caller;
  bw_handler_fn handler;
  enum route_tail tail; /* TAIL_NONE when id_field is NULL */
} route_t;

static const route_t routes[] = {
    {"POST", "/api/v1/grading_run", NULL, CALLER_ANY, bw_handle_run_create,
     TAIL_NONE},
    {"POST", "/api/v1/grading_run", "grading_run_id", CALLER_ANY,
     bw_handle_run_start, TAIL_OID},
    {"GET", "/api/v1/grading_run", "grading_run_id", CALLER_ANY,
     bw_handle_run_status, TAIL_OID},
    {"GET", "/api/v1/grading_job", "job_id", CALLER_ANY, bw_handle_job_get,
     TAIL_OID},
    {"POST", "/api/v1/grading_job", "job_id", CALLER_WORKER,
     bw_handle_job_report, TAIL_OID},
    {"GET", "/api/v1/grading_job", NULL, CALLER_WORKER, bw_handle_job_poll,
     TAIL_NONE},
    {"GET", "/api/v1/worker_register", NULL, CALLER_ANY,
     bw_handle_worker_register, TAIL_NONE},
    /* Gen 2a (the 2018-12 grader): the hostname is the rest of the path. */
    {"GET", "/api/v1/worker_register", "hostname", CALLER_ANY,
     bw_handle_worker_register, TAIL_REST},
    {"GET", "/api/v1/grader_register", NULL, CALLER_ANY,
     bw_handle_worker_register, TAIL_NONE},
    {"POST", "/api/v1/heartbeat", NULL, CALLER_WORKER_ID, bw_handle_heartbeat,
     TAIL_NONE},
    /* Course staff (issue 15). */
    {"POST", "/api/v1/grading_run_cancel", "grading_run_id", CALLER_ANY,
     bw_handle_run_cancel, TAIL_OID},
    {"POST", "/api/v1/grading_run_retry", "grading_run_id", CALLER_ANY,
     bw_handle_run_retry, TAIL_OID},
    {"GET", "/api/v1/grading_runs", NULL, CALLER_ANY, bw_handle_runs_list,
     TAIL_NONE},
    {"GET", "/api/v1/workers", NULL, CALLER_ANY, bw_handle_workers_list,
     TAIL_NONE},
    {"GET", "/api/v1/queue", NULL, CALLER_ANY, bw_handle_queue_view,
     TAIL_NONE},
    {"GET", "/metrics", NULL, CALLER_ANY, bw_handle_metrics, TAIL_NONE},
};

#define ROUTE_COUNT (sizeof routes / sizeof routes[0])

/* The {id} segment when `path` matches the route ("" for routes without
 * one), else NULL. */
static const char *route_match(const route_t *route, const char *path) {
  size_t n = strlen(route->path);
  const char *rest;

  if (strncmp(path, route->path, n) != 0)
    return NULL;
  rest = path + n;
  if (route->id_field == NULL)
    return *rest == '\0' ? rest : NULL;
  if (rest[0] != '/' || rest[1] == '\0')
    return NULL;
  if (route->tail == TAIL_OID && strchr(rest + 1, '/') != NULL)
    return NULL;
  return rest + 1;
}

/* The route for the request's path and method, with its {id} in *id; NULL
 * when there is none.  When the path is known but not with this method, the
 * methods that would do are listed in req->allow (empty otherwise). */
static const route_t *router_find(bw_request_t *req, const char **id) {
  req->allow[0] = '\0';
  for (size_t i = 0; i < ROUTE_COUNT && !req->path_too_long; i++) {
    const char *segment = route_match(&routes[i], req->path);
    if (segment == NULL)
      continue;
    if (strcmp(routes[i].method, req->method) == 0) {
      *id = segment;
      return &routes[i];
    }
    if (strstr(req->allow, routes[i].method) == NULL) {
      if (req->allow[0] != '\0')
        strcat(req->allow, ", ");
      strcat(req->allow, routes[i].method);
    }
  }
  return NULL;
}

/* 405 is not an error of the modules (no BW_E* code maps to it): the router
 * answers it itself. */
static void router_reply_405(bw_request_t *req) {
  char message[64];
  snprintf(message, sizeof message, "method not allowed (allowed: %s)",
           req->allow);
  bw_request_reply(req, 405, bw_jsend_fail(message));
}

static int router_check_worker_id(bw_call_t *call, enum route_caller caller,
                                  bw_error_t *error) {
  if (caller == CALLER_ANY)
    return 0;
  return bw_auth_worker_id(call->req->worker_id, &call->worker_id, error);
}

static int router_check_registered(bw_call_t *call, enum route_caller caller,
                                   bw_error_t *error) {
  if (caller != CALLER_WORKER)
    return 0;
  return bw_beats_check(call->db, call->cfg, &call->worker_id, error);
}

const char *bw_router_route_name(int route, char *buf, size_t len) {
  if (route < 0 || route >= (int)ROUTE_COUNT)
    snprintf(buf, len, "none");
  else
    snprintf(buf, len, "%s %s%s", routes[route].method, routes[route].path,
             routes[route].id_field ? "/{id}" : "");
  return buf;
}

int bw_router_route_count(void) { return (int)ROUTE_COUNT; }

static int router_serve(bw_call_t *call, int *index, bw_error_t *error) {
  const route_t *route = NULL;
  const char *id = NULL;
  int rc;

  if (strcmp(call->req->path, BW_HEALTH_PATH) == 0)
    return bw_handle_health(call, error); /* no token: see handlers.h */
  rc = bw_auth_check(call->req->authorization, call->cfg->token, error);
  if (rc < 0)
    return rc;
  route = router_find(call->req, &id);
  if (route == NULL && call->req->allow[0] != '\0') {
    router_reply_405(call->req);
    return 0;
  }
  if (route == NULL)
    return bw_error_set(error, BW_ENOTFOUND, "not found");
  *index = (int)(route - routes);
  if (route->tail == TAIL_REST)
    call->path_rest = id;
  else if (route->tail == TAIL_OID && !bw_db_oid_parse(id, &call->path_id))
    return bw_error_set(error, BW_EINVAL, "%s: expected 24 hex digits",
                        route->id_field);
  rc = router_check_worker_id(call, route->caller, error);
  if (rc < 0)
    return rc;
  /* Everything from here needs the database.  While it is known to be
   * down, answer at once instead of tying this worker up in a timeout. */
  if (!bw_db_reachable())
    return bw_error_set(error, BW_EDB,
                        "database: unreachable, retry in a moment");
  rc = router_check_registered(call, route->caller, error);
  if (rc < 0)
    return rc;
  return route->handler(call, error);
}

void bw_router_dispatch(const bw_config_t *cfg, bw_db_t *db,
                        bw_request_t *req) {
  bw_call_t call = {.cfg = cfg, .db = db, .req = req};
  bw_error_t error = {.code = 0, .message = ""};
  struct timespec start, end;
  int index = -1, rc;

  clock_gettime(CLOCK_MONOTONIC, &start);
  rc = router_serve(&call, &index, &error);

  /* The reply's status comes from what the call returned, whoever filled
   * (or did not fill) error.message.  A parked long poll (longpoll.h) is
   * answered later, by the long-poll loop. */
  if (rc < 0)
    bw_request_reply_error(req, rc, error.message, cfg->queue_empty_code);
  else if (req->status == 0 && !req->parked)
    bw_request_reply_error(req, BW_EINTERNAL, "internal error: no reply",
                           cfg->queue_empty_code);
  if (req->parked)
    return; /* its status is not known yet: not in the metrics */
  clock_gettime(CLOCK_MONOTONIC, &end);
  bw_metrics_observe(index, req->status,
                     (double)(end.tv_sec - start.tv_sec) +
                         (end.tv_nsec - start.tv_nsec) / 1e9);
}
