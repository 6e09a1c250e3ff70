#include "router.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "handlers.h"
#include "json.h"
#include "validate.h"
#include "worker.h"

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

static void copy_lower(char out[25], const char *hex) {
  for (int i = 0; i < 24; i++)
    out[i] = (char)tolower((unsigned char)hex[i]);
  out[24] = '\0';
}

static int router_check_worker_id(bw_call_t *call, enum route_caller caller,
                                  bw_error_t *error) {
  if (caller == CALLER_ANY)
    return 0;
  return bw_auth_worker_id(call->req->worker_id, call->worker_id, error);
}

static int router_check_registered(bw_call_t *call, enum route_caller caller,
                                   bw_error_t *error) {
  if (caller != CALLER_WORKER)
    return 0;
  return bw_worker_check(call->db, call->worker_id, error);
}

static int router_serve(bw_call_t *call, bw_error_t *error) {
  const route_t *route = NULL;
  const char *id = NULL;
  int rc;

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
  if (route->tail == TAIL_REST)
    call->path_rest = id;
  if (route->tail == TAIL_OID) {
    if (!bw_validate_oid(id))
      return bw_error_set(error, BW_EINVAL, "%s: expected 24 hex digits",
                          route->id_field);
    copy_lower(call->path_id, id);
  }
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
  int rc = router_serve(&call, &error);

  if (rc < 0) {
    error.code = rc;
    bw_request_reply_error(req, &error, cfg->queue_empty_code);
  } else if (req->status == 0 && !req->parked) {
    bw_error_set(&error, BW_EINTERNAL, "internal error: no reply");
    bw_request_reply_error(req, &error, cfg->queue_empty_code);
  }
}
