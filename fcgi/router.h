/* router.h - from a request to its handler, through the checks every request
 * passes, in this order (each failure is the reply, nothing after it runs):
 *
 *   0. OPTIONS on a known path: a CORS preflight           204
 *   1. the cluster token, or on the 2019 API's course routes
 *      the course's token (course.h)                       401
 *   2. the path (404) and the method (405, with Allow)
 *   3. the {id} in the path: 24 hex digits                 400
 *   4. grader endpoints: the worker_id header              400
 *      and, except heartbeat, a registered worker          401
 *   5. the handler, which reads the body if it needs one
 *
 * So nothing is parsed before the token is checked, and no malformed id
 * reaches the database. */
#ifndef BW_ROUTER_H
#define BW_ROUTER_H

#include "config.h"
#include "course.h"
#include "db.h"
#include "request.h"

/* How many routes there are (metrics.c counts per route). */
int bw_router_route_count(void);

/* Serves `req`: afterwards it has been replied to exactly once, and counted
 * in the metrics (metrics.h). */
void bw_router_dispatch(const bw_config_t *cfg, const bw_courses_t *courses,
                        bw_db_t *db, bw_request_t *req);

#endif
