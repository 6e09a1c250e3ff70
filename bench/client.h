/* client.h - one simulated grader's (or client's) HTTP connection: a libcurl
 * easy handle kept across requests, so every request after the first reuses
 * the keep-alive connection to nginx, as a long-lived grader would.
 *
 * One bench_client_t per thread (a curl handle must not be shared).  The
 * response body of the last request stays in c->body until the next one.
 * bench_client_init/bench_client_cleanup pair; curl_global_init is the
 * caller's, once, before any thread starts. */
#ifndef BENCH_CLIENT_H
#define BENCH_CLIENT_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct bench_client {
  CURL *curl;
  struct curl_slist *headers; /* Authorization, worker_id once registered */
  char base[256];             /* http://host:port */
  char auth[300];             /* "Authorization: <token>" */
  char worker_id[25];         /* "" until registered */
  char *body;                 /* last response body, NUL-terminated */
  size_t len, cap;
  char error[CURL_ERROR_SIZE];
} bench_client_t;

/* Returns 0, or -1 when curl cannot make a handle. */
int bench_client_init(bench_client_t *c, const char *base, const char *token);
void bench_client_cleanup(bench_client_t *c);

/* METHOD base+path, with body (NULL for none).  Returns the HTTP status, or
 * 0 when no response came (the reason is in c->error). */
long bench_client_request(bench_client_t *c, const char *method,
                          const char *path, const char *body, size_t body_len);

/* GET /api/v1/worker_register?hostname=...; on 200 remembers the worker id
 * (sent as worker_id on every later request) and sets *heartbeat. */
long bench_client_register(bench_client_t *c, const char *hostname,
                           int *heartbeat);

/* Sends worker_id: <id> on every later request (24 hex digits).
 * Returns 0, or -1 when out of memory. */
int bench_client_set_worker(bench_client_t *c, const char *worker_id);

/* The string value of "key" in the last response body, copied to out (at
 * most size-1 bytes).  A plain text search, not a JSON parse: the benchmark
 * must not spend the CPU it measures on parsing replies it only needs an id
 * from.  Returns true when found. */
bool bench_client_find_string(const bench_client_t *c, const char *key,
                              char *out, size_t size);

/* POST /api/v1/grading_run of bench_config_alloc(students): 0 with the id
 * in run_id and the call's time in *seconds, or -1 (said on stderr). */
int bench_client_create_run(bench_client_t *c, int students, char run_id[25],
                            double *seconds);

/* POST /api/v1/grading_run/{id}: 0 (time in *seconds) or -1 (on stderr). */
int bench_client_start_run(bench_client_t *c, const char *run_id,
                           double *seconds);

#endif
