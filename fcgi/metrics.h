/* metrics.h - GET /metrics: Prometheus text format.
 *
 * Two kinds of figures:
 * - request counts and a latency histogram per route, counted by this API
 *   host's FastCGI processes in one block of shared memory (mapped by the
 *   parent before it forks the pool, updated with atomic adds), so a scrape
 *   answered by any worker reports the whole pool, and a worker respawned
 *   after a crash keeps counting into the same block.  Several API hosts:
 *   Prometheus scrapes each (an `instance` each) and sums.
 * - the queue, the graders and the attempts' ends, read from the database
 *   at scrape time (common/admin.c; outcomes and claims counted), so they
 *   are the same whichever host answers, and survive restarts.
 *
 * The route is the token-checked /metrics (Authorization: the token, or
 * "Bearer <token>", which Prometheus sends from `credentials_file`). */
#ifndef BW_METRICS_H
#define BW_METRICS_H

#include "handlers.h"

/* Maps the shared counters for `routes` routes (+1 for requests that
 * matched none).  Call once in the parent, before forking.  0 or -1 (then
 * nothing is counted, and /metrics says so). */
int bw_metrics_init(int routes);

/* Counts one request of route `route` (-1: none) answered with `status`
 * after `seconds`. */
void bw_metrics_observe(int route, int status, double seconds);

/* The route names, for the labels (router.c lists them). */
const char *bw_router_route_name(int route, char *buf, size_t len);

int bw_handle_metrics(bw_call_t *call, bw_error_t *error);

#endif
