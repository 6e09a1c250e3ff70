/* http.h - a tiny libcurl client for integration tests: one request in, the
 * status code and the JSON body out, plus one helper per Broadway endpoint.
 *
 * Every helper returns the HTTP status (0 when no response came: connection
 * refused, reset, timeout; the reason is printed to stderr).  Responses are
 * caller-owned: bw_test_http_resp_cleanup() frees one (also when the call
 * failed), and may be called again on the same struct before reusing it.
 * json-c objects returned by the accessors are borrowed from the response. */
#ifndef BW_TEST_HTTP_H
#define BW_TEST_HTTP_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct bw_test_http_resp {
  long status;
  char *body; /* raw body, NUL-terminated; NULL if none */
  size_t body_len;
  char content_type[128];
  json_object *json; /* the parsed body; NULL when not JSON */
  char *headers;     /* the response's header lines as received, or NULL */
} bw_test_http_resp_t;

/* One raw request: everything a test may want to get wrong on purpose. */
typedef struct bw_test_http_req {
  const char *method;        /* "GET", "POST", ... */
  const char *url;           /* full URL */
  const char *authorization; /* Authorization value; NULL: no header */
  const char *worker_id;     /* NULL: no worker header */
  const char *worker_header; /* its name; NULL: "worker_id" */
  const char *body;          /* NULL: no body */
  size_t body_len;
  bool chunked;         /* send the body with Transfer-Encoding: chunked */
  bool expect_continue; /* let curl send Expect: 100-continue */
  long timeout_s;       /* 0: 60 s */
} bw_test_http_req_t;

/* Who is calling: the stack's base URL, the token, and (once registered)
 * the grader's worker id, sent on every grader call. */
typedef struct bw_test_client {
  char base_url[256];
  char token[256];
  char worker_id[64]; /* "" until registered */
} bw_test_client_t;

/* Once per process, before forking tests (curl_global_init). */
void bw_test_http_global_init(void);

void bw_test_client_init(bw_test_client_t *c, const char *base_url,
                         const char *token);

long bw_test_http_send(const bw_test_http_req_t *req,
                       bw_test_http_resp_t *resp);
void bw_test_http_resp_cleanup(bw_test_http_resp_t *resp);

/* METHOD base_url+path with the client's token and worker id (if any);
 * body NULL for none.  resp may be NULL when only the status matters. */
long bw_test_http_call(const bw_test_client_t *c, const char *method,
                       const char *path, const char *body,
                       bw_test_http_resp_t *resp);

/* GET /api/v1/worker_register (hostname NULL: no query); on 200 stores the
 * id in c->worker_id.  heartbeat (may be NULL) gets the returned interval. */
long bw_test_http_register(bw_test_client_t *c, const char *hostname,
                           int *heartbeat);

/* POST /api/v1/grading_run; on 200 copies the id to run_id. */
long bw_test_http_create_run(const bw_test_client_t *c, const char *config,
                             char run_id[25]);
long bw_test_http_start_run(const bw_test_client_t *c, const char *run_id);

/* Create then start; returns 200 only if both returned 200. */
long bw_test_http_create_and_start(const bw_test_client_t *c,
                                   const char *config, char run_id[25]);

/* GET /api/v1/grading_job?wait=0 (an empty queue answers at once); on 200
 * job_id (may be NULL) gets the job's id. */
long bw_test_http_poll(const bw_test_client_t *c, bw_test_http_resp_t *resp,
                       char job_id[25]);

/* The same as a long poll: the service holds it up to `wait` seconds (at
 * most its poll_wait) for a job. */
long bw_test_http_poll_wait(const bw_test_client_t *c, int wait,
                            bw_test_http_resp_t *resp, char job_id[25]);

/* POST /api/v1/grading_job/{id} with a result of one stage in shape
 * `shape` (mod BW_TEST_SHAPES): 0 v0.1 {"success":b,"info":[{}]}, 1 the
 * 2018-11 grader's {"success":b,"info":{"stageResults":[{}],"stdout",
 * "stderr"}}, 2 the 2018-12 grader's {"success":b,"results":[{..}],
 * "logs":{..}}.  bw_test_http_report picks the shape from the job id, so
 * every test that reports results sends all of them. */
#define BW_TEST_SHAPES 3
long bw_test_http_report_shape(const bw_test_client_t *c, const char *job_id,
                               bool success, int shape,
                               bw_test_http_resp_t *resp);
long bw_test_http_report(const bw_test_client_t *c, const char *job_id,
                         bool success, bw_test_http_resp_t *resp);

/* How many stage results a job view (data of GET grading_job/{id}) holds,
 * whatever the shape its grader sent; -1 when it holds none. */
int bw_test_result_stages(json_object *job);
long bw_test_http_heartbeat(const bw_test_client_t *c);
long bw_test_http_run_status(const bw_test_client_t *c, const char *run_id,
                             bw_test_http_resp_t *resp);
long bw_test_http_get_job(const bw_test_client_t *c, const char *job_id,
                          bw_test_http_resp_t *resp);

/* Copies the value of response header `name` (any case) to out; false
 * (and "") when the response has none. */
bool bw_test_http_header(const bw_test_http_resp_t *resp, const char *name,
                         char *out, size_t cap);

/* JSend accessors (NULL / "" when absent). */
json_object *bw_test_http_data(const bw_test_http_resp_t *resp);
const char *bw_test_http_jsend_status(const bw_test_http_resp_t *resp);
/* data.message of a fail body, or message of an error body. */
const char *bw_test_http_message(const bw_test_http_resp_t *resp);

/* Small json-c helpers for assertions (NULL / -1 / false when absent). */
json_object *bw_test_json_get(json_object *obj, const char *key);
const char *bw_test_json_str(json_object *obj, const char *key);
long long bw_test_json_int(json_object *obj, const char *key);

/* Deep equality: objects with the same keys (any order) and equal values,
 * arrays element by element in order. */
bool bw_test_json_equal(json_object *a, json_object *b);

/* true when s is 24 hex digits. */
bool bw_test_is_oid(const char *s);

#endif
