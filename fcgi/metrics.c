#include "metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "admin.h"
#include "beats.h"
#include "json.h"
#include "longpoll.h"

/* Statuses counted apart; any other is counted as "other". */
static const int metrics_codes[] = {200, 400, 401, 404, 405,
                                    409, 413, 498, 500, 503};
#define CODES (int)(sizeof metrics_codes / sizeof *metrics_codes)
/* Histogram bounds (seconds): a poll takes milliseconds, a run's creation
 * of 10,000 students a second or more. */
static const double metrics_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                        0.5,   1,    2.5,   5,    10};
#define BOUNDS (int)(sizeof metrics_bounds / sizeof *metrics_bounds)

typedef struct metrics_route {
  atomic_ullong by_code[CODES + 1];
  atomic_ullong buckets[BOUNDS]; /* non-cumulative; summed when written */
  atomic_ullong count;
  atomic_ullong sum_us;
} metrics_route_t;

static metrics_route_t *metrics; /* routes + 1 entries, shared */
static int metrics_routes;

int bw_metrics_init(int routes) {
  size_t size = sizeof *metrics * (size_t)(routes + 1);
  void *block = mmap(NULL, size, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (block == MAP_FAILED)
    return -1;
  memset(block, 0, size);
  metrics = block;
  metrics_routes = routes;
  return 0;
}

void bw_metrics_observe(int route, int status, double seconds) {
  metrics_route_t *m;
  int code = CODES, bucket = 0;

  if (metrics == NULL)
    return;
  m = &metrics[route >= 0 && route < metrics_routes ? route : metrics_routes];
  for (int i = 0; i < CODES; i++)
    if (metrics_codes[i] == status)
      code = i;
  while (bucket < BOUNDS && seconds > metrics_bounds[bucket])
    bucket++;
  atomic_fetch_add(&m->by_code[code], 1);
  if (bucket < BOUNDS)
    atomic_fetch_add(&m->buckets[bucket], 1);
  atomic_fetch_add(&m->count, 1);
  atomic_fetch_add(&m->sum_us, (unsigned long long)(seconds * 1e6));
}

/* ---- the text ---------------------------------------------------------- */

typedef struct metrics_text {
  char *data;
  size_t len, cap;
} metrics_text_t;

__attribute__((format(printf, 2, 3))) static void
metrics_printf(metrics_text_t *t, const char *fmt, ...) {
  va_list ap;
  int n;
  for (;;) {
    va_start(ap, fmt);
    n = vsnprintf(t->data + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n < 0)
      return;
    if ((size_t)n < t->cap - t->len)
      break;
    t->cap = (t->cap + (size_t)n) * 2;
    t->data = bson_realloc(t->data, t->cap);
  }
  t->len += (size_t)n;
}

static void metrics_requests(metrics_text_t *t) {
  char name[96];
  metrics_printf(t, "# HELP broadway_http_requests_total API requests answered "
                    "by this host's FastCGI pool, by route and status.\n"
                    "# TYPE broadway_http_requests_total counter\n");
  for (int r = 0; r <= metrics_routes; r++)
    for (int c = 0; c <= CODES; c++) {
      unsigned long long n = atomic_load(&metrics[r].by_code[c]);
      char code[8];
      if (n == 0)
        continue;
      snprintf(code, sizeof code, "%d", c < CODES ? metrics_codes[c] : 0);
      metrics_printf(
          t, "broadway_http_requests_total{route=\"%s\",code=\"%s\"} %llu\n",
          bw_router_route_name(r, name, sizeof name),
          c < CODES ? code : "other", n);
    }
  metrics_printf(t,
                 "# HELP broadway_http_request_duration_seconds Time from "
                 "the request's arrival at a worker to its reply.\n"
                 "# TYPE broadway_http_request_duration_seconds histogram\n");
  for (int r = 0; r <= metrics_routes; r++) {
    unsigned long long count = atomic_load(&metrics[r].count), seen = 0;
    if (count == 0)
      continue;
    bw_router_route_name(r, name, sizeof name);
    for (int b = 0; b < BOUNDS; b++) {
      seen += atomic_load(&metrics[r].buckets[b]);
      metrics_printf(t,
                     "broadway_http_request_duration_seconds_bucket{route=\"%"
                     "s\",le=\"%g\"} %llu\n",
                     name, metrics_bounds[b], seen);
    }
    metrics_printf(
        t,
        "broadway_http_request_duration_seconds_bucket{route=\"%s\",le=\"+"
        "Inf\"} %llu\n"
        "broadway_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
        "broadway_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
        name, count, name, (double)atomic_load(&metrics[r].sum_us) / 1e6, name,
        count);
  }
}

static int metrics_count(bw_db_t *db, bw_coll_t which, const char *key,
                         const char *value, int64_t *n, bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER;
  bson_error_t driver;
  if (key != NULL)
    BSON_APPEND_UTF8(&filter, key, value);
  *n = mongoc_collection_count_documents(bw_db_coll(db, which), &filter, NULL,
                                         NULL, NULL, &driver);
  bson_destroy(&filter);
  return *n < 0 ? bw_db_error(&driver, error) : 0;
}

/* What the database says: the queue, the graders, how attempts ended. */
static int metrics_database(bw_call_t *call, metrics_text_t *t,
                            bw_error_t *error) {
  json_object *queue = NULL, *workers = NULL;
  int64_t handouts = 0, cancelled = 0, results = 0, requeued = 0, failed = 0;
  int rc = bw_admin_queue(call->db, &queue, error);

  if (rc == 0)
    rc = bw_admin_workers(call->db, call->cfg, &workers, error);
  if (rc == 0)
    rc = metrics_count(call->db, BW_COLL_CLAIMS, NULL, NULL, &handouts, error);
  if (rc == 0) {
    bson_t filter = BSON_INITIALIZER;
    bson_error_t driver;
    BSON_APPEND_BOOL(&filter, "cancelled", true);
    cancelled =
        mongoc_collection_count_documents(bw_db_coll(call->db, BW_COLL_CLAIMS),
                                          &filter, NULL, NULL, NULL, &driver);
    bson_destroy(&filter);
    if (cancelled < 0)
      rc = bw_db_error(&driver, error);
  }
  if (rc == 0)
    rc = metrics_count(call->db, BW_COLL_OUTCOMES, "kind", "result", &results,
                       error);
  if (rc == 0)
    rc = metrics_count(call->db, BW_COLL_OUTCOMES, "kind", "requeued",
                       &requeued, error);
  if (rc == 0)
    rc = metrics_count(call->db, BW_COLL_OUTCOMES, "kind", "failed", &failed,
                       error);
  if (rc == 0) {
    json_object *runs = json_object_object_get(queue, "runs");
    metrics_printf(
        t,
        "# HELP broadway_jobs_queued Jobs waiting for a grader.\n"
        "# TYPE broadway_jobs_queued gauge\n"
        "broadway_jobs_queued %lld\n"
        "# HELP broadway_jobs_running Jobs held by graders now.\n"
        "# TYPE broadway_jobs_running gauge\n"
        "broadway_jobs_running %lld\n"
        "# HELP broadway_queue_oldest_wait_seconds Age of the oldest waiting "
        "job.\n"
        "# TYPE broadway_queue_oldest_wait_seconds gauge\n"
        "broadway_queue_oldest_wait_seconds %.3f\n"
        "# HELP broadway_run_jobs_queued Jobs waiting, per run (a course label "
        "comes with courses).\n"
        "# TYPE broadway_run_jobs_queued gauge\n",
        (long long)json_object_get_int64(
            json_object_object_get(queue, "waiting")),
        (long long)json_object_get_int64(
            json_object_object_get(queue, "running")),
        json_object_get_double(json_object_object_get(queue, "oldest_wait_s")));
    for (size_t i = 0; i < json_object_array_length(runs); i++) {
      json_object *r = json_object_array_get_idx(runs, i);
      metrics_printf(
          t, "broadway_run_jobs_queued{run=\"%s\"} %d\n",
          json_object_get_string(json_object_object_get(r, "grading_run_id")),
          json_object_get_int(json_object_object_get(r, "waiting")));
    }
    metrics_printf(
        t,
        "# HELP broadway_graders Registered graders by heartbeat: alive "
        "(within 2 intervals) or dead.\n"
        "# TYPE broadway_graders gauge\n"
        "broadway_graders{state=\"alive\"} %d\n"
        "broadway_graders{state=\"dead\"} %d\n"
        "# HELP broadway_handouts_total Jobs handed to graders (claims).\n"
        "# TYPE broadway_handouts_total counter\n"
        "broadway_handouts_total %lld\n"
        "# HELP broadway_results_total Results accepted from graders.\n"
        "# TYPE broadway_results_total counter\n"
        "broadway_results_total %lld\n"
        "# HELP broadway_requeues_total Attempts put back in the queue "
        "(grader dead, hand-out lost).\n"
        "# TYPE broadway_requeues_total counter\n"
        "broadway_requeues_total %lld\n"
        "# HELP broadway_giveups_total Jobs failed after max_attempts.\n"
        "# TYPE broadway_giveups_total counter\n"
        "broadway_giveups_total %lld\n",
        json_object_get_int(json_object_object_get(workers, "alive")),
        json_object_get_int(json_object_object_get(workers, "dead")),
        (long long)(handouts - cancelled), (long long)results,
        (long long)requeued, (long long)failed);
  }
  json_object_put(queue);
  json_object_put(workers);
  return rc;
}

/* What this host's pool holds in memory now. */
static void metrics_pool(metrics_text_t *t) {
  int parked = bw_longpoll_parked_all(), unwritten = bw_beats_pending();
  if (parked >= 0)
    metrics_printf(
        t,
        "# HELP broadway_longpolls_parked Empty-queue polls waiting for a job "
        "in this host's FastCGI pool (longpoll.h: its processes share the "
        "page <socket>.longpoll and are woken through <socket>.w<pid>).\n"
        "# TYPE broadway_longpolls_parked gauge\n"
        "broadway_longpolls_parked %d\n",
        parked);
  if (unwritten >= 0)
    metrics_printf(t,
                   "# HELP broadway_heartbeats_unwritten Graders whose last "
                   "heartbeat this host answered and has not yet written to "
                   "the database (written every heartbeat/5).\n"
                   "# TYPE broadway_heartbeats_unwritten gauge\n"
                   "broadway_heartbeats_unwritten %d\n",
                   unwritten);
}

int bw_handle_metrics(bw_call_t *call, bw_error_t *error) {
  metrics_text_t t = {bson_malloc(8192), 0, 8192};
  int rc = metrics_database(call, &t, error);

  if (rc == 0)
    metrics_pool(&t);
  if (rc == 0 && metrics != NULL)
    metrics_requests(&t);
  if (rc == 0)
    bw_request_reply_text(call->req, 200,
                          "text/plain; version=0.0.4; charset=utf-8", t.data,
                          t.len);
  bson_free(t.data);
  return rc;
}
