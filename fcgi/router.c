#include "router.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "beats.h"
#include "course.h"
#include "handlers.h"
#include "json.h"
#include "metrics.h"
#include "stream.h"
#include "worker.h"

/* Who may call a route, beyond holding the cluster token. */
enum route_caller {
  CALLER_ANY,       /* clients and graders registering */
  CALLER_WORKER,    /* a registered grader (worker_id header) */
  CALLER_WORKER_ID, /* a well-formed worker_id: the handler's own database
                       call answers "not registered", saving a query */
  CALLER_GEN3,      /* a 2019 grader: the token as "Bearer <token>" (strict
                       format), its name in the path (router_gen3) */
  /* The 2019 API's course routes: a course token for the {course} of the
   * path instead of the cluster token (course.h); "not found" is a 400. */
  CALLER_COURSE_ADMIN,  /* the course's tokens */
  CALLER_COURSE_MEMBER, /* its tokens or query_tokens */
};

/* What follows the route's path. */
enum route_tail {
  TAIL_NONE, /* nothing */
  TAIL_OID,  /* /{id}: 24 hex digits, lowercased into call->path_id */
  TAIL_REST, /* /{anything, '/' included}: call->path_rest, unchecked */
  TAIL_NAME, /* /{[-A-Za-z0-9_]+}: call->path_rest (a 2019 worker id) */
  /* path is a pattern: literal segments, {course} and {id} ([-\w]+, into
   * call->course and call->g3_id), and a last {rest} ([^()]+, '/'
   * included, into call->path_rest) */
  TAIL_COURSE,
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
    /* The 2019 API's graders, before the seed's routes of the same paths:
     * router_gen3 passes a seed-era request on to them. */
    {"POST", "/api/v1/worker", "worker_id", CALLER_GEN3,
     bw_handle_gen3_register, TAIL_NAME},
    {"GET", "/api/v1/grading_job", "worker_id", CALLER_GEN3,
     bw_handle_gen3_poll, TAIL_NAME},
    {"POST", "/api/v1/grading_job", "worker_id", CALLER_GEN3,
     bw_handle_gen3_result, TAIL_NAME},
    {"POST", "/api/v1/heartbeat", "worker_id", CALLER_GEN3,
     bw_handle_gen3_heartbeat, TAIL_NAME},
    {"GET", "/api/v1/worker_ws", "worker_id", CALLER_GEN3, bw_handle_gen3_ws,
     TAIL_NAME},
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
    /* The 2019 API's course routes (issue 14, PROTOCOL-LATER.md §2.6,
     * §2.10). */
    {"POST", "/api/v1/grading_config/{course}/{id}", NULL, CALLER_COURSE_ADMIN,
     bw_handle_g3_config_put, TAIL_COURSE},
    {"GET", "/api/v1/grading_config/{course}/{id}", NULL, CALLER_COURSE_ADMIN,
     bw_handle_g3_config_get, TAIL_COURSE},
    {"POST", "/api/v1/grading_run/{course}/{id}", NULL, CALLER_COURSE_ADMIN,
     bw_handle_g3_run_create, TAIL_COURSE},
    {"GET", "/api/v1/grading_run_status/{course}/{id}", NULL,
     CALLER_COURSE_MEMBER, bw_handle_g3_run_status, TAIL_COURSE},
    {"GET", "/api/v1/grading_run_env/{course}/{id}", NULL, CALLER_COURSE_ADMIN,
     bw_handle_g3_run_env, TAIL_COURSE},
    {"GET", "/api/v1/grading_job_log/{course}/{id}", NULL, CALLER_COURSE_ADMIN,
     bw_handle_g3_job_log, TAIL_COURSE},
    {"GET", "/api/v1/worker/{course}/{rest}", NULL, CALLER_COURSE_ADMIN,
     bw_handle_g3_workers, TAIL_COURSE},
    {"GET", "/api/v1/queue/{course}/length", NULL, CALLER_COURSE_ADMIN,
     bw_handle_g3_queue_length, TAIL_COURSE},
    {"GET", "/api/v1/queue/{course}/{id}/position", NULL, CALLER_COURSE_MEMBER,
     bw_handle_g3_queue_position, TAIL_COURSE},
    /* Server-Sent Events of one job (stream.h). */
    {"GET", "/api/v1/stream/{course}/{id}", NULL, CALLER_COURSE_MEMBER,
     bw_handle_stream, TAIL_COURSE},
};

#define ROUTE_COUNT (sizeof routes / sizeof routes[0])

static bool route_is_course(const route_t *route) {
  return route->caller == CALLER_COURSE_ADMIN ||
         route->caller == CALLER_COURSE_MEMBER;
}

/* Copies one path segment of [-\w]+ (the original's id_regex) into out (or
 * only checks it when out is NULL); returns its length, 0 when it is not
 * one. */
static size_t segment_word(const char *path, char *out) {
  size_t n = strspn(path, "abcdefghijklmnopqrstuvwxyz"
                          "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-");
  if (n == 0 || (path[n] != '/' && path[n] != '\0'))
    return 0;
  if (out != NULL) {
    memcpy(out, path, n); /* both are BW_REQUEST_PATH_MAX long */
    out[n] = '\0';
  }
  return n;
}

/* A TAIL_COURSE route's pattern against `path`; with `call`, the segments
 * are stored in it.  The whole path must be used. */
static bool pattern_match(const char *pattern, const char *path,
                          bw_call_t *call) {
  while (*pattern != '\0') {
    size_t n;
    if (strncmp(pattern, "{rest}", 6) == 0) {
      if (*path == '\0' || strpbrk(path, "()") != NULL)
        return false;
      if (call != NULL)
        call->path_rest = path;
      return true;
    }
    if (strncmp(pattern, "{course}", 8) == 0 ||
        strncmp(pattern, "{id}", 4) == 0) {
      bool course = pattern[1] == 'c';
      n = segment_word(path, call == NULL ? NULL
                             : course     ? call->course
                                          : call->g3_id);
      if (n == 0)
        return false;
      path += n;
      pattern += course ? 8 : 4;
      continue;
    }
    if (*pattern != *path)
      return false;
    pattern++;
    path++;
  }
  return *path == '\0';
}

/* The {id} segment when `path` matches the route ("" for routes without
 * one, and for TAIL_COURSE routes, whose segments pattern_match reads),
 * else NULL. */
static const char *route_match(const route_t *route, const char *path) {
  size_t n = strlen(route->path);
  const char *rest;

  if (route->tail == TAIL_COURSE)
    return pattern_match(route->path, path, NULL) ? "" : NULL;
  if (strncmp(path, route->path, n) != 0)
    return NULL;
  rest = path + n;
  if (route->id_field == NULL)
    return *rest == '\0' ? rest : NULL;
  if (rest[0] != '/' || rest[1] == '\0')
    return NULL;
  if (route->tail == TAIL_OID && strchr(rest + 1, '/') != NULL)
    return NULL;
  if (route->tail == TAIL_NAME && !bw_worker_name_valid(rest + 1))
    return NULL;
  return rest + 1;
}

/* The route for the request's path and method, with its {id} in *id; NULL
 * when there is none.  When the path is known but not with this method, the
 * methods that would do are listed in req->allow (empty otherwise). */
static const route_t *router_find(bw_request_t *req, size_t from,
                                  const char **id) {
  req->allow[0] = '\0';
  for (size_t i = from; i < ROUTE_COUNT && !req->path_too_long; i++) {
    const char *segment = route_match(&routes[i], req->path);
    if (segment == NULL)
      continue;
    if (strcmp(routes[i].method, req->method) == 0) {
      *id = segment;
      return &routes[i];
    }
    /* A course route's path with another method is left to the seed's
     * answer (GET grading_run/<id>/x stays the seed's 404). */
    if (!route_is_course(&routes[i]) &&
        strstr(req->allow, routes[i].method) == NULL) {
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
  if (caller != CALLER_WORKER && caller != CALLER_WORKER_ID)
    return 0; /* no worker_id header: every other caller */
  return bw_auth_worker_id(call->req->worker_id, &call->worker_id, error);
}

static int router_check_registered(bw_call_t *call, enum route_caller caller,
                                   bw_error_t *error) {
  if (caller != CALLER_WORKER)
    return 0;
  return bw_beats_check(call->db, call->cfg, &call->worker_id, error);
}

/* A CALLER_GEN3 route was found.  On a path the seed also serves
 * (GET|POST /api/v1/grading_job/<x>), PROTOCOL-LATER.md §4.2 decides, after
 * the token check every generation shares: a request with a worker_id
 * header is seed-era; otherwise <x> registered through POST
 * /api/v1/worker/<x> is a 2019 grader; otherwise a 24-hex <x>, or a request
 * without "Bearer ", is seed-era (a job read, or the seed's 400), and the
 * rest is a 2019 grader that is not registered (401 "worker not found").
 * So every seed-era request is answered exactly as before.  *route becomes
 * the seed's route for a seed-era request.  Returns 0 or the auth error. */
static int router_gen3(bw_call_t *call, const route_t **route, const char **id,
                       bw_error_t *error) {
  const char *seed_id = NULL;
  const route_t *seed =
      router_find(call->req, (size_t)(*route - routes) + 1, &seed_id);
  bson_oid_t oid;
  int rc;

  call->req->allow[0] = '\0';
  if (seed == NULL)
    return bw_auth_check_bearer(call->req->authorization, call->cfg->token,
                                error);
  rc = bw_auth_check(call->req->authorization, call->cfg->token, error);
  if (rc == 0 && call->req->worker_id == NULL) {
    if (!bw_db_reachable())
      return bw_error_set(error, BW_EDB,
                          "database: unreachable, retry in a moment");
    rc = bw_worker_find_gen3(call->db, *id, &oid, error);
    if (rc == 0 || (rc == BW_EAUTH &&
                    bw_auth_bearer_format(call->req->authorization) &&
                    !bw_db_oid_parse(*id, &oid)))
      return bw_auth_check_bearer(call->req->authorization, call->cfg->token,
                                  error);
    if (rc != BW_EAUTH)
      return rc;
    rc = 0;
  }
  if (rc == 0) {
    *route = seed;
    *id = seed_id;
  }
  return rc;
}

const char *bw_router_route_name(int route, char *buf, size_t len) {
  if (route < 0 || route >= (int)ROUTE_COUNT)
    snprintf(buf, len, "none");
  else
    snprintf(buf, len, "%s %s%s", routes[route].method, routes[route].path,
             routes[route].tail == TAIL_NAME ? "/{name}" /* the 2019 graders' */
             : routes[route].id_field        ? "/{id}"
                                             : "");
  return buf;
}

int bw_router_route_count(void) { return (int)ROUTE_COUNT; }

/* Who the caller must be: a course token for the course routes, the
 * cluster token for every other route and for paths that match none. */
static int router_check_token(bw_call_t *call, const route_t *route,
                              bw_error_t *error) {
  if (route == NULL || !route_is_course(route))
    return bw_auth_check(call->req->authorization, call->cfg->token, error);
  pattern_match(route->path, call->req->path, call);
  return bw_course_auth(call->courses, call->req->authorization, call->course,
                        route->caller == CALLER_COURSE_ADMIN ? BW_COURSE_ADMIN
                                                             : BW_COURSE_MEMBER,
                        error);
}

/* OPTIONS on a path of any route: a CORS preflight (PROTOCOL-LATER.md
 * §2.10): 204, no token asked (browsers send none), nothing else done. */
static bool router_preflight(bw_call_t *call) {
  bool known = strcmp(call->req->path, BW_HEALTH_PATH) == 0;

  if (strcmp(call->req->method, "OPTIONS") != 0)
    return false;
  for (size_t i = 0; i < ROUTE_COUNT && !known; i++)
    known = !call->req->path_too_long &&
            route_match(&routes[i], call->req->path) != NULL;
  if (known)
    bw_request_reply_no_content(call->req);
  return known;
}

static int router_serve(bw_call_t *call, int *index, bw_error_t *error) {
  const route_t *route = NULL;
  const char *id = NULL;
  int rc;

  if (router_preflight(call))
    return 0;
  if (strcmp(call->req->path, BW_HEALTH_PATH) == 0)
    return bw_handle_health(call, error); /* no token: see handlers.h */
  route = router_find(call->req, 0, &id);
  rc = route != NULL && route->caller == CALLER_GEN3
           ? router_gen3(call, &route, &id, error)
           : router_check_token(call, route, error);
  if (rc < 0)
    return rc;
  if (route == NULL && call->req->allow[0] != '\0') {
    router_reply_405(call->req);
    return 0;
  }
  if (route == NULL)
    return bw_error_set(error, BW_ENOTFOUND, "not found");
  *index = (int)(route - routes);
  if (route->tail == TAIL_REST || route->tail == TAIL_NAME)
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
  rc = route->handler(call, error);
  /* The original answers every "not found" of its course routes with 400. */
  if (rc == BW_ENOTFOUND && route_is_course(route))
    rc = BW_EINVAL;
  return rc;
}

void bw_router_dispatch(const bw_config_t *cfg, const bw_courses_t *courses,
                        bw_db_t *db, bw_request_t *req) {
  bw_call_t call = {.cfg = cfg, .db = db, .req = req, .courses = courses};
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
