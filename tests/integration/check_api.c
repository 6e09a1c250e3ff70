/* check_api.c - every endpoint and every error code of PROTOCOL.md, driven
 * over HTTP through nginx against the real stack (FerretDB, the FastCGI
 * pool, the reaper), started once for this binary.
 *
 * Each test starts from an empty database (checked fixture) and asserts what
 * a client or grader sees: the status code, the JSend envelope, and for
 * rejected input a message that names the offending field. */
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "../lib/http.h"
#include "../lib/itest.h"
#include "../lib/stack.h"
#include "../lib/util.h"

#define UNKNOWN_OID "0123456789abcdef01234567"
#define MINIMAL_RUN                                                            \
  "{\"students\": [{\"NETID\": \"a\"}],"                                       \
  " \"student_pipeline\": [{\"image\": \"alpine\"}]}"
#define REPORT_OK "{\"success\": true, \"info\": [{}]}"
#define API_HEARTBEAT 10

/* ---- helpers ------------------------------------------------------------ */

static void new_worker(bw_test_client_t *c) {
  bw_itest_client(c);
  ck_assert_int_eq(bw_test_http_register(c, NULL, NULL), 200);
  ck_assert_msg(bw_test_is_oid(c->worker_id), "worker_id \"%s\"", c->worker_id);
}

static void started_run(const bw_test_client_t *c, const char *config,
                        char run_id[25]) {
  ck_assert_int_eq(bw_test_http_create_and_start(c, config, run_id), 200);
}

/* Polls one job and returns its payload (data) in resp. */
static void take_job(const bw_test_client_t *c, bw_test_http_resp_t *resp,
                     char job_id[25]) {
  bw_test_http_poll(c, resp, job_id);
  BW_ASSERT_SUCCESS(resp, 200);
  ck_assert_msg(bw_test_is_oid(job_id), "job_id \"%s\"", job_id);
}

static void take_and_report(const bw_test_client_t *c, bool success,
                            char job_id[25]) {
  bw_test_http_resp_t r;
  take_job(c, &r, job_id);
  bw_test_http_resp_cleanup(&r);
  ck_assert_int_eq(bw_test_http_report(c, job_id, success, NULL), 200);
}

static void assert_db_count(const char *coll, long long expected) {
  long long n = bw_test_db_count(bw_itest_stack(), coll);
  ck_assert_msg(n == expected, "%s holds %lld documents, expected %lld", coll,
                n, expected);
}

/* METHOD path (with c's token and worker id) must answer `status` with a
 * JSend fail naming `needle`; a wrong status names the request. */
static void assert_call_fails(const bw_test_client_t *c, const char *method,
                              const char *path, const char *body, long status,
                              const char *needle) {
  bw_test_http_resp_t r;
  bw_test_http_call(c, method, path, body, &r);
  ck_assert_msg(r.status == status, "%s %s %s: expected %ld, got %ld: %s",
                method, path, body ? body : "", status, r.status, BW_BODY(&r));
  BW_ASSERT_FAIL(&r, status, needle);
  bw_test_http_resp_cleanup(&r);
}

/* POST /api/v1/grading_run must answer 400 naming `needle` and store
 * nothing. */
static void assert_config_rejected(const char *config, const char *needle) {
  bw_test_client_t c;
  bw_itest_client(&c);
  assert_call_fails(&c, "POST", "/api/v1/grading_run", config, 400, needle);
  assert_db_count("runs", 0);
  assert_db_count("jobs", 0);
}

/* A raw request with full control over the headers. */
static long raw(const char *method, const char *path, const char *auth,
                const char *worker_header, const char *worker_id,
                const char *body, bw_test_http_resp_t *r) {
  char url[512];
  snprintf(url, sizeof url, "%s%s", bw_test_stack_url(bw_itest_stack()), path);
  bw_test_http_req_t req = {.method = method,
                            .url = url,
                            .authorization = auth,
                            .worker_header = worker_header,
                            .worker_id = worker_id,
                            .body = body,
                            .body_len = body ? strlen(body) : 0};
  return bw_test_http_send(&req, r);
}

/* The value of NAME in a job stage's env list of "NAME=value"; *count gets
 * how many entries name it. */
static const char *stage_env(json_object *stage, const char *name, int *count) {
  json_object *env = bw_test_json_get(stage, "env");
  const char *found = NULL;
  size_t len = strlen(name);
  *count = 0;
  ck_assert_msg(env && json_object_is_type(env, json_type_array),
                "stage env is not a list: %s",
                json_object_to_json_string(stage));
  for (size_t i = 0; i < json_object_array_length(env); i++) {
    const char *entry =
        json_object_get_string(json_object_array_get_idx(env, i));
    if (entry && strncmp(entry, name, len) == 0 && entry[len] == '=') {
      found = entry + len + 1;
      (*count)++;
    }
  }
  return found;
}

static void assert_stage_env(json_object *stage, const char *name,
                             const char *expected) {
  int count;
  const char *value = stage_env(stage, name, &count);
  if (!expected) {
    ck_assert_msg(count == 0, "%s should not be in %s", name,
                  json_object_to_json_string(stage));
    return;
  }
  ck_assert_msg(count == 1, "%s appears %d times in %s", name, count,
                json_object_to_json_string(stage));
  ck_assert_msg(strcmp(value, expected) == 0, "%s=%s, expected %s=%s", name,
                value, name, expected);
}

static json_object *stage_at(json_object *payload, size_t i) {
  json_object *stages = bw_test_json_get(payload, "stages");
  ck_assert_msg(stages && json_object_is_type(stages, json_type_array) &&
                    json_object_array_length(stages) > i,
                "no stage %zu in %s", i, json_object_to_json_string(payload));
  return json_object_array_get_idx(stages, i);
}

static void assert_json_eq(json_object *got, const char *expected_text) {
  json_object *expected = json_tokener_parse(expected_text);
  ck_assert_msg(expected != NULL, "bad expected JSON %s", expected_text);
  ck_assert_msg(bw_test_json_equal(got, expected), "got %s, expected %s",
                got ? json_object_to_json_string(got) : "(absent)",
                expected_text);
  json_object_put(expected);
}

static void assert_str(json_object *obj, const char *key,
                       const char *expected) {
  const char *v = bw_test_json_str(obj, key);
  ck_assert_msg(v && strcmp(v, expected) == 0,
                "%s is %s, expected \"%s\" in %s", key, v ? v : "(absent)",
                expected, json_object_to_json_string(obj));
}

static void assert_int(json_object *obj, const char *key, long long expected) {
  json_object *v = bw_test_json_get(obj, key);
  ck_assert_msg(v && json_object_is_type(v, json_type_int) &&
                    json_object_get_int64(v) == expected,
                "%s is %s, expected %lld in %s", key,
                v ? json_object_to_json_string(v) : "(absent)", expected,
                json_object_to_json_string(obj));
}

static void assert_has(json_object *obj, const char *key) {
  ck_assert_msg(
      bw_test_json_get(obj, key) != NULL &&
          !json_object_is_type(bw_test_json_get(obj, key), json_type_null),
      "no %s in %s", key, json_object_to_json_string(obj));
}

/* ---- every endpoint, for the auth and routing tests --------------------- */

typedef struct endpoint {
  const char *method;
  const char *path;
  const char *body;
  bool grader; /* needs a worker_id */
} endpoint_t;

static const endpoint_t endpoints[] = {
    {"POST", "/api/v1/grading_run", MINIMAL_RUN, false},
    {"POST", "/api/v1/grading_run/" UNKNOWN_OID, NULL, false},
    {"GET", "/api/v1/grading_run/" UNKNOWN_OID, NULL, false},
    {"GET", "/api/v1/grading_job/" UNKNOWN_OID, NULL, false},
    {"GET", "/api/v1/worker_register", NULL, false},
    {"GET", "/api/v1/grader_register?hostname=h", NULL, false},
    {"GET", "/api/v1/grading_job", NULL, true},
    {"POST", "/api/v1/grading_job/" UNKNOWN_OID, REPORT_OK, true},
    {"POST", "/api/v1/heartbeat", NULL, true},
};
#define N_ENDPOINTS (sizeof endpoints / sizeof endpoints[0])

/* Sends every endpoint with Authorization `auth` and expects 401. */
static void assert_every_endpoint_401(const char *auth, const char *worker) {
  for (size_t i = 0; i < N_ENDPOINTS; i++) {
    const endpoint_t *e = &endpoints[i];
    bw_test_http_resp_t r;
    raw(e->method, e->path, auth, NULL, e->grader ? worker : NULL, e->body, &r);
    ck_assert_msg(r.status == 401, "%s %s with Authorization %s: got %ld %s",
                  e->method, e->path, auth ? "(wrong)" : "(none)", r.status,
                  BW_BODY(&r));
    BW_ASSERT_FAIL(&r, 401, "");
    bw_test_http_resp_cleanup(&r);
  }
}

/* ---- authentication ----------------------------------------------------- */

START_TEST(test_auth_missing_token_is_401_on_every_endpoint) {
  bw_test_client_t w;
  new_worker(&w);
  assert_every_endpoint_401(NULL, w.worker_id);
  bw_test_http_resp_t r; /* before routing, too */
  raw("GET", "/api/v1/nope", NULL, NULL, NULL, NULL, &r);
  BW_ASSERT_FAIL(&r, 401, "");
  bw_test_http_resp_cleanup(&r);
  assert_db_count("runs", 0);
  assert_db_count("workers", 1);
}
END_TEST

/* The one route without the token, for load balancers: it tells whether
 * the database answers and nothing else (docs/DEPLOY.md). */
START_TEST(test_health_needs_no_token) {
  bw_test_http_resp_t r;
  raw("GET", "/api/v1/health", NULL, NULL, NULL, NULL, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  ck_assert_str_eq(bw_test_json_str(bw_test_http_data(&r), "database"), "ok");
  bw_test_http_resp_cleanup(&r);
  raw("GET", "/api/v1/health", "not-the-token", NULL, NULL, NULL, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  bw_test_http_resp_cleanup(&r);
  raw("POST", "/api/v1/health", NULL, NULL, NULL, "{}", &r);
  BW_ASSERT_FAIL(&r, 405, "allowed: GET");
  bw_test_http_resp_cleanup(&r);
  raw("GET", "/api/v1/health/x", NULL, NULL, NULL, NULL, &r);
  BW_ASSERT_FAIL(&r, 401, ""); /* only the exact path is open */
  bw_test_http_resp_cleanup(&r);
}
END_TEST

START_TEST(test_auth_wrong_token_is_401_on_every_endpoint) {
  bw_test_client_t w;
  new_worker(&w);
  assert_every_endpoint_401("not-the-token", w.worker_id);
  assert_every_endpoint_401("Bearer not-the-token", w.worker_id);
  assert_every_endpoint_401("", w.worker_id);
  assert_db_count("runs", 0);
}
END_TEST

START_TEST(test_auth_token_prefix_or_extension_is_401) {
  const char *token = bw_test_stack_token(bw_itest_stack());
  char shorter[300], longer[300], bearer_longer[320];
  snprintf(shorter, sizeof shorter, "%.*s", (int)strlen(token) - 1, token);
  snprintf(longer, sizeof longer, "%s0", token);
  snprintf(bearer_longer, sizeof bearer_longer, "Bearer %s0", token);
  const char *wrong[] = {shorter, longer, bearer_longer};
  for (size_t i = 0; i < 3; i++) {
    bw_test_http_resp_t r;
    raw("GET", "/api/v1/worker_register", wrong[i], NULL, NULL, NULL, &r);
    BW_ASSERT_FAIL(&r, 401, "");
    bw_test_http_resp_cleanup(&r);
  }
  assert_db_count("workers", 0);
}
END_TEST

START_TEST(test_auth_bearer_form_is_accepted) {
  bw_test_client_t c;
  bw_itest_client(&c);
  char bearer[sizeof c.token];
  snprintf(bearer, sizeof bearer, "Bearer %.200s", c.token);
  memcpy(c.token, bearer, sizeof c.token);

  char run_id[25];
  ck_assert_int_eq(bw_test_http_create_and_start(&c, MINIMAL_RUN, run_id), 200);
  ck_assert_int_eq(bw_test_http_register(&c, NULL, NULL), 200);
  ck_assert_int_eq(bw_test_http_heartbeat(&c), 200);
  char job_id[25];
  bw_test_http_resp_t r;
  take_job(&c, &r, job_id);
  bw_test_http_resp_cleanup(&r);
  ck_assert_int_eq(bw_test_http_report(&c, job_id, true, NULL), 200);
  ck_assert_int_eq(bw_test_http_run_status(&c, run_id, NULL), 200);
}
END_TEST

START_TEST(test_auth_is_checked_before_the_body_is_parsed) {
  bw_test_client_t w;
  new_worker(&w);
  const char *bodies[] = {"{not json", "", "[1,2"};
  for (size_t i = 0; i < 3; i++) {
    bw_test_http_resp_t r;
    raw("POST", "/api/v1/grading_run", NULL, NULL, NULL, bodies[i], &r);
    BW_ASSERT_FAIL(&r, 401, "");
    bw_test_http_resp_cleanup(&r);
    raw("POST", "/api/v1/grading_run", "wrong", NULL, NULL, bodies[i], &r);
    BW_ASSERT_FAIL(&r, 401, "");
    bw_test_http_resp_cleanup(&r);
    raw("POST", "/api/v1/grading_job/" UNKNOWN_OID, NULL, NULL, w.worker_id,
        bodies[i], &r);
    BW_ASSERT_FAIL(&r, 401, "");
    bw_test_http_resp_cleanup(&r);
  }
}
END_TEST

START_TEST(test_auth_is_checked_before_the_worker_id) {
  bw_test_http_resp_t r;
  raw("GET", "/api/v1/grading_job", NULL, NULL, NULL, NULL, &r);
  BW_ASSERT_FAIL(&r, 401, "");
  bw_test_http_resp_cleanup(&r);
  raw("POST", "/api/v1/heartbeat", "wrong", NULL, "nothex", NULL, &r);
  BW_ASSERT_FAIL(&r, 401, "");
  bw_test_http_resp_cleanup(&r);
}
END_TEST

START_TEST(test_auth_token_is_never_logged) {
  bw_test_client_t c;
  new_worker(&c);
  char run_id[25], bearer[300];
  started_run(&c, MINIMAL_RUN, run_id);
  ck_assert_int_eq(bw_test_http_poll(&c, NULL, NULL), 200);
  snprintf(bearer, sizeof bearer, "Bearer %s", c.token);
  bw_test_http_resp_t r;
  raw("POST", "/api/v1/heartbeat", bearer, NULL, c.worker_id, NULL, &r);
  bw_test_http_resp_cleanup(&r);
  const char *wrong = "wrong-token-4c0ffee4c0ffee";
  raw("POST", "/api/v1/grading_run", wrong, NULL, NULL, "{bad", &r);
  bw_test_http_resp_cleanup(&r);
  bw_test_sleep_ms(300); /* let the log lines land */
  ck_assert_msg(!bw_test_stack_logs_contain(bw_itest_stack(), c.token),
                "the cluster token is in a log under %s/log",
                bw_test_stack_data_dir(bw_itest_stack()));
  ck_assert_msg(!bw_test_stack_logs_contain(bw_itest_stack(), wrong),
                "a wrong token is in a log under %s/log",
                bw_test_stack_data_dir(bw_itest_stack()));
}
END_TEST

/* ---- routing ------------------------------------------------------------ */

START_TEST(test_unknown_path_under_api_is_404) {
  bw_test_client_t w;
  new_worker(&w);
  const char *paths[] = {"/api/v1/nope",
                         "/api/v1/grading_runz",
                         "/api/v2/grading_run",
                         "/api/v1/",
                         "/api/",
                         "/api/v1/grading_run/" UNKNOWN_OID "/extra",
                         "/api/v1/grading_job/" UNKNOWN_OID "/extra",
                         "/api/v1/grader_register/extra"};
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
    assert_call_fails(&w, "GET", paths[i], NULL, 404, "");
}
END_TEST

START_TEST(test_path_outside_api_is_404_json) {
  bw_test_client_t c;
  bw_itest_client(&c);
  /* "/" and its three files are the status page (check_web). */
  const char *paths[] = {"/index.htm", "/app.json", "/v1/grading_run",
                         "/grading_job"};
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
    bw_test_http_resp_t r;
    bw_test_http_call(&c, "GET", paths[i], NULL, &r);
    ck_assert_msg(r.status == 404, "GET %s: got %ld %s", paths[i], r.status,
                  BW_BODY(&r));
    BW_ASSERT_JSON(&r);
    bw_test_http_resp_cleanup(&r);
  }
}
END_TEST

START_TEST(test_wrong_method_on_known_path_is_405) {
  bw_test_client_t w;
  new_worker(&w);
  const struct {
    const char *method, *path;
  } wrong[] = {
      {"GET", "/api/v1/grading_run"},
      {"PUT", "/api/v1/grading_run"},
      {"DELETE", "/api/v1/grading_run/" UNKNOWN_OID},
      {"PUT", "/api/v1/grading_run/" UNKNOWN_OID},
      {"POST", "/api/v1/grading_job"},
      {"DELETE", "/api/v1/grading_job"},
      {"PUT", "/api/v1/grading_job/" UNKNOWN_OID},
      {"PATCH", "/api/v1/grading_job/" UNKNOWN_OID},
      {"POST", "/api/v1/worker_register"},
      {"POST", "/api/v1/grader_register"},
      {"GET", "/api/v1/heartbeat"},
      {"PUT", "/api/v1/heartbeat"},
  };
  for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++)
    assert_call_fails(&w, wrong[i].method, wrong[i].path, NULL, 405, "");
  assert_db_count("runs", 0);
}
END_TEST

/* A body one MiB over the 64 MiB default limit of the config. */
static char *oversize_body(size_t *len) {
  *len = (size_t)65 << 20;
  char *body = malloc(*len);
  ck_assert_ptr_nonnull(body);
  memset(body, ' ', *len);
  body[0] = '{';
  body[*len - 1] = '}';
  return body;
}

static void post_oversize(bool chunked) {
  size_t len;
  char *body = oversize_body(&len);
  char url[512];
  snprintf(url, sizeof url, "%s/api/v1/grading_run",
           bw_test_stack_url(bw_itest_stack()));
  bw_test_http_req_t req = {.method = "POST",
                            .url = url,
                            .authorization =
                                bw_test_stack_token(bw_itest_stack()),
                            .body = body,
                            .body_len = len,
                            .chunked = chunked,
                            .expect_continue = true};
  bw_test_http_resp_t r;
  bw_test_http_send(&req, &r);
  free(body);
  ck_assert_msg(r.status == 413, "%s body of 65 MiB: got %ld %s",
                chunked ? "chunked" : "sized", r.status, BW_BODY(&r));
  BW_ASSERT_FAIL(&r, 413, "");
  bw_test_http_resp_cleanup(&r);
  assert_db_count("runs", 0);
}

START_TEST(test_body_over_size_limit_is_413) {
  post_oversize(false);
}
END_TEST

START_TEST(test_chunked_body_over_size_limit_is_413) {
  post_oversize(true);
}
END_TEST

/* 3000 students of ~500 bytes: a run well over nginx's 1 MiB default body
 * limit but under ours must get through. */
START_TEST(test_body_of_1_5_mib_is_accepted) {
  size_t cap = 2u << 20, len = 0;
  char *body = malloc(cap);
  ck_assert_ptr_nonnull(body);
  char pad[481];
  memset(pad, 'p', sizeof pad - 1);
  pad[sizeof pad - 1] = '\0';
  len += (size_t)snprintf(body + len, cap - len, "{\"students\": [");
  for (int i = 0; i < 3000; i++)
    len += (size_t)snprintf(body + len, cap - len,
                            "%s{\"NETID\": \"s%d\", \"PAD\": \"%s\"}",
                            i ? "," : "", i, pad);
  snprintf(body + len, cap - len,
           "], \"student_pipeline\": [{\"image\": \"alpine\"}]}");
  bw_test_client_t c;
  bw_itest_client(&c);
  char run_id[25];
  long status = bw_test_http_create_run(&c, body, run_id);
  free(body);
  ck_assert_int_eq(status, 200);
  ck_assert(bw_test_is_oid(run_id));
  assert_db_count("jobs", 3000);
}
END_TEST

/* ---- create run --------------------------------------------------------- */

START_TEST(test_create_run_returns_id_and_does_not_start_it) {
  bw_test_client_t c;
  bw_test_http_resp_t r;
  new_worker(&c);
  bw_test_http_call(&c, "POST", "/api/v1/grading_run", MINIMAL_RUN, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  const char *run_id =
      bw_test_json_str(bw_test_http_data(&r), "grading_run_id");
  ck_assert_msg(bw_test_is_oid(run_id), "grading_run_id in %s", r.body);

  bw_test_http_resp_t status;
  bw_test_http_run_status(&c, run_id, &status);
  BW_ASSERT_SUCCESS(&status, 200);
  assert_str(bw_test_http_data(&status), "state", "created");
  bw_test_http_resp_cleanup(&status);
  bw_test_http_resp_cleanup(&r);
  ck_assert_int_eq(bw_test_http_poll(&c, NULL, NULL), 498);
}
END_TEST

START_TEST(test_create_run_malformed_json_is_400) {
  const char *bad[] = {
      "{\"students\": [",     "not json", "{\"students\": [{\"A\": \"1\"}],}",
      "{'students': []}",     "",         "[]",
      "\"a string\"",         "null",     "42",
      MINIMAL_RUN " trailing"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_config_rejected(bad[i], "");
}
END_TEST

START_TEST(test_create_run_missing_required_keys_is_400_naming_them) {
  assert_config_rejected("{\"student_pipeline\": [{\"image\": \"a\"}]}",
                         "students");
  assert_config_rejected("{\"students\": [{\"N\": \"a\"}]}",
                         "student_pipeline");
  assert_config_rejected("{}", "student");
  assert_config_rejected("{\"students\": [{\"N\": \"a\"}], "
                         "\"student_pipeline\": [{\"env\": {}}]}",
                         "student_pipeline[0].image");
}
END_TEST

START_TEST(test_create_run_empty_students_or_pipelines_is_400) {
  assert_config_rejected("{\"students\": [], "
                         "\"student_pipeline\": [{\"image\": \"a\"}]}",
                         "students");
  assert_config_rejected("{\"students\": [{\"N\": \"a\"}], "
                         "\"student_pipeline\": []}",
                         "student_pipeline");
  assert_config_rejected("{\"students\": [{\"N\": \"a\"}], "
                         "\"student_pipeline\": [{\"image\": \"a\"}], "
                         "\"pre_processing_pipeline\": []}",
                         "pre_processing_pipeline");
  assert_config_rejected("{\"students\": [{\"N\": \"a\"}], "
                         "\"student_pipeline\": [{\"image\": \"a\"}], "
                         "\"post_processing_pipeline\": []}",
                         "post_processing_pipeline");
  assert_config_rejected("{\"students\": [{\"N\": \"a\"}], "
                         "\"student_pipeline\": [{\"image\": \"\"}]}",
                         "student_pipeline[0].image");
}
END_TEST

/* A valid config with one piece replaced, and the field the 400 must name. */
typedef struct bad_config {
  const char *config;
  const char *field;
} bad_config_t;

static void assert_configs_rejected(const bad_config_t *bad, size_t n) {
  for (size_t i = 0; i < n; i++)
    assert_config_rejected(bad[i].config, bad[i].field);
}

#define ASSERT_ALL_REJECTED(table)                                             \
  assert_configs_rejected(table, sizeof table / sizeof table[0])

#define STUDENTS "\"students\": [{\"N\": \"a\"}, {\"N\": \"b\"}]"
#define PIPE "\"student_pipeline\": [{\"image\": \"a\"}]"
/* The valid config with `keys` (JSON members) added at the top level, or to
 * its student stage. */
#define RUN_WITH(keys) "{" STUDENTS ", " PIPE ", " keys "}"
#define STAGE_WITH(keys)                                                       \
  "{" STUDENTS ", \"student_pipeline\": [{\"image\": \"a\", " keys "}]}"

static const bad_config_t wrong_types[] = {
    {"{\"students\": {\"N\": \"a\"}, " PIPE "}", "students"},
    {"{\"students\": \"a\", " PIPE "}", "students"},
    {"{\"students\": [{\"N\": \"a\"}, 7], " PIPE "}", "students[1]"},
    {"{\"students\": [{\"N\": \"a\"}, [\"x\"]], " PIPE "}", "students[1]"},
    {"{\"students\": [{\"N\": {\"x\": 1}}], " PIPE "}", "students[0].N"},
    {"{\"students\": [{\"N\": [1]}], " PIPE "}", "students[0].N"},
    {"{" STUDENTS ", \"student_pipeline\": {\"image\": \"a\"}}",
     "student_pipeline"},
    {"{" STUDENTS ", \"student_pipeline\": [\"alpine\"]}",
     "student_pipeline[0]"},
    {"{" STUDENTS ", \"student_pipeline\": [{\"image\": 5}]}",
     "student_pipeline[0].image"},
    {"{" STUDENTS ", \"student_pipeline\": [{\"image\": \"a\"}, "
     "{\"image\": \"b\", \"timeout\": \"10\"}]}",
     "student_pipeline[1].timeout"},
    {STAGE_WITH("\"timeout\": true"), "student_pipeline[0].timeout"},
    {STAGE_WITH("\"enable_networking\": \"yes\""),
     "student_pipeline[0].enable_networking"},
    {STAGE_WITH("\"entry_point\": \"/bin/sh\""),
     "student_pipeline[0].entry_point"},
    {STAGE_WITH("\"entry_point\": [\"/bin/sh\", 3]"),
     "student_pipeline[0].entry_point"},
    {STAGE_WITH("\"host_name\": 12"), "student_pipeline[0].host_name"},
    {STAGE_WITH("\"env\": [\"A=b\"]"), "student_pipeline[0].env"},
    {STAGE_WITH("\"env\": {\"A\": 1}"), "student_pipeline[0].env.A"},
    {RUN_WITH("\"env\": [\"A=b\"]"), "env"},
    {RUN_WITH("\"env\": {\"A\": {\"x\": \"y\"}}"), "env.A"},
    {RUN_WITH("\"pre_processing_pipeline\": {}"), "pre_processing_pipeline"},
    {RUN_WITH("\"post_processing_pipeline\": [{\"image\": null}]"),
     "post_processing_pipeline[0].image"},
    {RUN_WITH("\"pre_processing_pipeline\": [{\"image\": \"p\", \"timeout\": "
              "\"1\"}]"),
     "pre_processing_pipeline[0].timeout"},
};

START_TEST(test_create_run_wrong_types_are_400_naming_the_field) {
  ASSERT_ALL_REJECTED(wrong_types);
}
END_TEST

static const bad_config_t unknown_keys[] = {
    {RUN_WITH("\"extra\": 1"), "extra"},
    {RUN_WITH("\"Students\": []"), "Students"},
    {STAGE_WITH("\"imagee\": \"b\""), "student_pipeline[0].imagee"},
    {STAGE_WITH("\"networking\": true"), "student_pipeline[0].networking"},
    {RUN_WITH("\"post_processing_pipeline\": [{\"image\": \"p\", \"students\": "
              "[]}]"),
     "post_processing_pipeline[0].students"},
};

START_TEST(test_create_run_unknown_keys_are_400_naming_them) {
  ASSERT_ALL_REJECTED(unknown_keys);
}
END_TEST

static const bad_config_t bad_env_names[] = {
    {RUN_WITH("\"env\": {\"1ABC\": \"x\"}"), "env.1ABC"},
    {RUN_WITH("\"env\": {\"A-B\": \"x\"}"), "env.A-B"},
    {RUN_WITH("\"env\": {\"\": \"x\"}"), "env"},
    {"{\"students\": [{\"N\": \"a\"}, {\"BAD NAME\": \"b\"}], " PIPE "}",
     "students[1].BAD NAME"},
    {STAGE_WITH("\"env\": {\"X=Y\": \"z\"}"), "student_pipeline[0].env.X=Y"},
    {STAGE_WITH("\"env\": {\"\xc3\xa9T\": \"z\"}"), "student_pipeline[0].env"},
};

START_TEST(test_create_run_bad_env_names_are_400_naming_them) {
  ASSERT_ALL_REJECTED(bad_env_names);
}
END_TEST

START_TEST(test_create_run_undefined_env_reference_names_student_and_var) {
  const char *forms[] = {"$NETID", "${NETID}", "/x/${NETID}/y", "pre-$NETID"};
  for (size_t i = 0; i < 4; i++) {
    char config[512];
    snprintf(config, sizeof config,
             "{\"students\": [{\"NETID\": \"a\"}, {\"NETID\": \"b\"}, "
             "{\"OTHER\": \"c\"}], \"student_pipeline\": [{\"image\": \"a\", "
             "\"env\": {\"WHO\": \"%s\"}}]}",
             forms[i]);
    assert_config_rejected(config, "students[2]");
    assert_config_rejected(config, "NETID");
  }
  /* Defined globally for everyone: fine; $$NAME is a literal, not a use. */
  bw_test_client_t c;
  bw_itest_client(&c);
  char run_id[25];
  ck_assert_int_eq(
      bw_test_http_create_run(
          &c,
          "{\"env\": {\"NETID\": \"g\"}, \"students\": [{\"NETID\": \"a\"}, "
          "{\"OTHER\": \"c\"}], \"student_pipeline\": [{\"image\": \"a\", "
          "\"env\": {\"WHO\": \"$NETID\", \"LIT\": \"$$UNDEFINED\"}}]}",
          run_id),
      200);
}
END_TEST

/* PROTOCOL.md: numbers and booleans in students / env "may be accepted and
 * turned into their JSON text".  Either they are rejected naming the field,
 * or the job env carries their text and the roster stays as given. */
START_TEST(test_create_run_number_and_boolean_values_become_text) {
  const char *students = "[{\"N\": 5, \"B\": true, \"F\": 2.5}]";
  char config[512];
  snprintf(config, sizeof config,
           "{\"students\": %s, \"env\": {\"G\": 7, \"H\": false}, "
           "\"pre_processing_pipeline\": [{\"image\": \"p\"}], "
           "\"student_pipeline\": [{\"image\": \"s\"}]}",
           students);
  bw_test_client_t c;
  new_worker(&c);
  bw_test_http_resp_t r;
  bw_test_http_call(&c, "POST", "/api/v1/grading_run", config, &r);
  if (r.status == 400) {
    BW_ASSERT_FAIL(&r, 400, "students[0]");
    bw_test_http_resp_cleanup(&r);
    return;
  }
  BW_ASSERT_SUCCESS(&r, 200);
  char run_id[25], job_id[25];
  snprintf(run_id, sizeof run_id, "%s",
           bw_test_json_str(bw_test_http_data(&r), "grading_run_id"));
  bw_test_http_resp_cleanup(&r);
  ck_assert_int_eq(bw_test_http_start_run(&c, run_id), 200);

  take_job(&c, &r, job_id); /* pre: global env and the roster */
  assert_json_eq(bw_test_json_get(bw_test_http_data(&r), "students"), students);
  assert_stage_env(stage_at(bw_test_http_data(&r), 0), "G", "7");
  assert_stage_env(stage_at(bw_test_http_data(&r), 0), "H", "false");
  bw_test_http_resp_cleanup(&r);
  ck_assert_int_eq(bw_test_http_report(&c, job_id, true, NULL), 200);

  take_job(&c, &r, job_id);
  json_object *stage = stage_at(bw_test_http_data(&r), 0);
  assert_stage_env(stage, "N", "5");
  assert_stage_env(stage, "B", "true");
  assert_stage_env(stage, "F", "2.5");
  assert_stage_env(stage, "G", "7");
  bw_test_http_resp_cleanup(&r);
}
END_TEST

START_TEST(test_create_run_timeout_must_be_positive_and_bounded) {
  const char *bad[] = {"0", "-1", "-0.5", "86401", "1e12"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char config[256];
    snprintf(config, sizeof config,
             "{" STUDENTS ", \"student_pipeline\": [{\"image\": \"a\", "
             "\"timeout\": %s}]}",
             bad[i]);
    assert_config_rejected(config, "student_pipeline[0].timeout");
  }
  bw_test_client_t c;
  bw_itest_client(&c);
  char run_id[25];
  ck_assert_int_eq(
      bw_test_http_create_run(&c,
                              "{" STUDENTS ", \"student_pipeline\": "
                              "[{\"image\": \"a\", \"timeout\": 86400}]}",
                              run_id),
      200);
}
END_TEST

START_TEST(test_create_run_accepts_every_documented_key) {
  bw_test_client_t c;
  bw_itest_client(&c);
  char run_id[25];
  ck_assert_int_eq(
      bw_test_http_create_run(
          &c,
          "{\"students\": [{\"NETID\": \"a\"}], "
          "\"env\": {\"ASSIGNMENT\": \"mp1\"}, "
          "\"pre_processing_pipeline\": [{\"image\": \"pre\"}], "
          "\"post_processing_pipeline\": [{\"image\": \"post\"}], "
          "\"student_pipeline\": [{\"image\": \"a\", \"env\": {\"X\": \"1\"}, "
          "\"entry_point\": [\"/bin/sh\", \"-c\", \"true\"], "
          "\"enable_networking\": true, \"host_name\": \"h\", "
          "\"timeout\": 2.5}]}",
          run_id),
      200);
  assert_db_count("runs", 1);
  assert_db_count("jobs", 3);
}
END_TEST

/* ---- ids of runs and jobs ----------------------------------------------- */

static const char *const malformed_ids[] = {
    "abc", "zzzzzzzzzzzzzzzzzzzzzzzz", "0123456789abcdef012345678",
    "0123456789abcdef0123456", "0123456789abcdef0123456%20"};
#define N_MALFORMED (sizeof malformed_ids / sizeof malformed_ids[0])

static void assert_id_errors(const char *method, const char *prefix,
                             const char *body, const bw_test_client_t *c,
                             const char *field) {
  char path[256];
  for (size_t i = 0; i < N_MALFORMED; i++) {
    snprintf(path, sizeof path, "%s%s", prefix, malformed_ids[i]);
    assert_call_fails(c, method, path, body, 400, field);
  }
  snprintf(path, sizeof path, "%s%s", prefix, UNKNOWN_OID);
  assert_call_fails(c, method, path, body, 404, "");
}

START_TEST(test_start_run_malformed_id_400_unknown_404) {
  bw_test_client_t c;
  bw_itest_client(&c);
  assert_id_errors("POST", "/api/v1/grading_run/", NULL, &c, "grading_run_id");
}
END_TEST

START_TEST(test_run_status_malformed_id_400_unknown_404) {
  bw_test_client_t c;
  bw_itest_client(&c);
  assert_id_errors("GET", "/api/v1/grading_run/", NULL, &c, "grading_run_id");
}
END_TEST

START_TEST(test_get_job_malformed_id_400_unknown_404) {
  bw_test_client_t c;
  bw_itest_client(&c);
  assert_id_errors("GET", "/api/v1/grading_job/", NULL, &c, "job_id");
}
END_TEST

START_TEST(test_report_malformed_job_id_400_unknown_404) {
  bw_test_client_t w;
  new_worker(&w);
  assert_id_errors("POST", "/api/v1/grading_job/", REPORT_OK, &w, "job_id");
}
END_TEST

START_TEST(test_start_run_twice_is_400) {
  bw_test_client_t c;
  bw_itest_client(&c);
  char run_id[25];
  started_run(&c, MINIMAL_RUN, run_id);
  char path[128];
  snprintf(path, sizeof path, "/api/v1/grading_run/%s", run_id);
  assert_call_fails(&c, "POST", path, NULL, 400, "already");
  /* and it queued its one student job once */
  bw_test_client_t w;
  new_worker(&w);
  char job_id[25];
  take_and_report(&w, true, job_id);
  ck_assert_int_eq(bw_test_http_poll(&w, NULL, NULL), 498);
}
END_TEST

START_TEST(test_start_run_is_200_jsend_success) {
  bw_test_client_t c;
  bw_itest_client(&c);
  char run_id[25], path[128];
  ck_assert_int_eq(bw_test_http_create_run(&c, MINIMAL_RUN, run_id), 200);
  snprintf(path, sizeof path, "/api/v1/grading_run/%s", run_id);
  bw_test_http_resp_t r;
  bw_test_http_call(&c, "POST", path, NULL, &r);
  BW_ASSERT_STATUS(&r, 200);
  BW_ASSERT_JSON(&r);
  assert_str(r.json, "status", "success");
  bw_test_http_resp_cleanup(&r);
}
END_TEST

/* ---- graders: registration, worker ids, heartbeats ---------------------- */

START_TEST(test_register_returns_worker_id_and_heartbeat) {
  bw_test_client_t c;
  bw_itest_client(&c);
  bw_test_http_resp_t r;
  bw_test_http_call(&c, "GET", "/api/v1/worker_register", NULL, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  json_object *data = bw_test_http_data(&r);
  ck_assert_msg(bw_test_is_oid(bw_test_json_str(data, "worker_id")),
                "worker_id in %s", r.body);
  assert_int(data, "heartbeat", API_HEARTBEAT);
  bw_test_http_resp_cleanup(&r);
  assert_db_count("workers", 1);
}
END_TEST

START_TEST(test_register_twice_gives_two_workers) {
  bw_test_client_t a, b;
  new_worker(&a);
  new_worker(&b);
  ck_assert_str_ne(a.worker_id, b.worker_id);
  ck_assert_int_eq(bw_test_http_heartbeat(&a), 200);
  ck_assert_int_eq(bw_test_http_heartbeat(&b), 200);
}
END_TEST

START_TEST(test_grader_register_alias_with_hostname) {
  bw_test_client_t c;
  bw_itest_client(&c);
  const char *paths[] = {"/api/v1/grader_register?hostname=grader-7.cs.edu",
                         "/api/v1/grader_register",
                         "/api/v1/worker_register?hostname=node_1"};
  for (size_t i = 0; i < 3; i++) {
    bw_test_http_resp_t r;
    bw_test_http_call(&c, "GET", paths[i], NULL, &r);
    BW_ASSERT_SUCCESS(&r, 200);
    const char *id = bw_test_json_str(bw_test_http_data(&r), "worker_id");
    ck_assert_msg(bw_test_is_oid(id), "GET %s: %s", paths[i], r.body);
    assert_int(bw_test_http_data(&r), "heartbeat", API_HEARTBEAT);
    /* the id works on grader endpoints */
    snprintf(c.worker_id, sizeof c.worker_id, "%s", id);
    ck_assert_int_eq(bw_test_http_heartbeat(&c), 200);
    c.worker_id[0] = '\0';
    bw_test_http_resp_cleanup(&r);
  }
  assert_db_count("workers", 3);
}
END_TEST

/* The three grader endpoints that need a worker_id. */
static void grader_calls(const char *worker_header, const char *worker_id,
                         long expected, const char *needle) {
  const char *auth = bw_test_stack_token(bw_itest_stack());
  const endpoint_t calls[] = {
      {"GET", "/api/v1/grading_job", NULL, true},
      {"POST", "/api/v1/grading_job/" UNKNOWN_OID, REPORT_OK, true},
      {"POST", "/api/v1/heartbeat", NULL, true},
  };
  for (size_t i = 0; i < 3; i++) {
    bw_test_http_resp_t r;
    raw(calls[i].method, calls[i].path, auth, worker_header, worker_id,
        calls[i].body, &r);
    ck_assert_msg(r.status == expected, "%s %s with %s: %s: got %ld %s",
                  calls[i].method, calls[i].path,
                  worker_header ? worker_header : "worker_id",
                  worker_id ? worker_id : "(none)", r.status, BW_BODY(&r));
    BW_ASSERT_FAIL(&r, expected, needle);
    bw_test_http_resp_cleanup(&r);
  }
}

START_TEST(test_grader_call_without_worker_id_is_400) {
  grader_calls(NULL, NULL, 400, "worker_id");
}
END_TEST

START_TEST(test_grader_call_with_malformed_worker_id_is_400) {
  const char *bad[] = {"abc",
                       "zzzzzzzzzzzzzzzzzzzzzzzz",
                       "0123456789abcdef012345678",
                       "0123456789abcdef0123456",
                       " 0123456789abcdef01234567x",
                       "0123456789abcdef0123456-"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    grader_calls(NULL, bad[i], 400, "worker_id");
}
END_TEST

START_TEST(test_grader_call_with_unregistered_worker_is_401) {
  grader_calls(NULL, UNKNOWN_OID, 401, "");
  grader_calls("Worker-Id", UNKNOWN_OID, 401, "");
}
END_TEST

START_TEST(test_worker_id_header_form_is_accepted) {
  bw_test_client_t w;
  new_worker(&w);
  const char *auth = bw_test_stack_token(bw_itest_stack());
  bw_test_http_resp_t r;
  raw("POST", "/api/v1/heartbeat", auth, "Worker-Id", w.worker_id, NULL, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  bw_test_http_resp_cleanup(&r);
  raw("GET", "/api/v1/grading_job?wait=0", auth, "Worker-Id", w.worker_id, NULL, &r);
  BW_ASSERT_FAIL(&r, 498, "");
  bw_test_http_resp_cleanup(&r);

  bw_test_client_t c;
  bw_itest_client(&c);
  char run_id[25], job_id[25], path[128];
  started_run(&c, MINIMAL_RUN, run_id);
  raw("GET", "/api/v1/grading_job", auth, "Worker-Id", w.worker_id, NULL, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  snprintf(job_id, sizeof job_id, "%s",
           bw_test_json_str(bw_test_http_data(&r), "job_id"));
  bw_test_http_resp_cleanup(&r);
  snprintf(path, sizeof path, "/api/v1/grading_job/%s", job_id);
  raw("POST", path, auth, "Worker-Id", w.worker_id, REPORT_OK, &r);
  BW_ASSERT_STATUS(&r, 200);
  bw_test_http_resp_cleanup(&r);
}
END_TEST

START_TEST(test_heartbeat_is_200_jsend_success) {
  bw_test_client_t w;
  new_worker(&w);
  bw_test_http_resp_t r;
  bw_test_http_call(&w, "POST", "/api/v1/heartbeat", NULL, &r);
  BW_ASSERT_STATUS(&r, 200);
  BW_ASSERT_JSON(&r);
  assert_str(r.json, "status", "success");
  bw_test_http_resp_cleanup(&r);
}
END_TEST

START_TEST(test_poll_empty_queue_is_498_jsend_fail) {
  bw_test_client_t w;
  new_worker(&w);
  bw_test_http_resp_t r;
  bw_test_http_poll(&w, &r, NULL);
  BW_ASSERT_FAIL(&r, 498, "");
  bw_test_http_resp_cleanup(&r);
}
END_TEST

/* ---- job payloads ------------------------------------------------------- */

#define EXAMPLE_RUN                                                            \
  "{\"env\": {\"ASSIGNMENT\": \"mp1\", \"SHARED\": \"global\", "               \
  "\"G_ONLY\": \"g\"},"                                                        \
  " \"students\": [{\"NETID\": \"waf\", \"SHARED\": \"student\"}],"            \
  " \"student_pipeline\": ["                                                   \
  "  {\"image\": \"grader/one:1\", \"env\": {\"NETID\": \"$NETID\","           \
  "   \"DIR\": \"/sub/${NETID}/$ASSIGNMENT\", \"ASSIGNMENT\": \"\","           \
  "   \"PRICE\": \"$$5\", \"LIT\": \"a$${NETID}\", \"NOPE\": \"\","            \
  "   \"STAGE_ONLY\": \"s\"},"                                                 \
  "   \"entry_point\": [\"/bin/sh\", \"-c\", \"echo $NETID\"],"                \
  "   \"enable_networking\": true, \"host_name\": \"box\", \"timeout\": 45},"  \
  "  {\"image\": \"grader/two\", \"env\": {\"SHARED\": \"stage\"}}]}"

START_TEST(test_poll_job_env_resolved_per_protocol_example) {
  bw_test_client_t c;
  new_worker(&c);
  char run_id[25], job_id[25];
  started_run(&c, EXAMPLE_RUN, run_id);
  bw_test_http_resp_t r;
  take_job(&c, &r, job_id);
  json_object *job = bw_test_http_data(&r);
  ck_assert_msg(bw_test_json_get(job, "students") == NULL,
                "a student job carries the roster: %s", r.body);

  json_object *one = stage_at(job, 0);
  assert_stage_env(one, "NETID", "waf");
  assert_stage_env(one, "DIR", "/sub/waf/mp1");
  assert_stage_env(one, "ASSIGNMENT", "mp1");
  assert_stage_env(one, "PRICE", "$5");
  assert_stage_env(one, "LIT", "a${NETID}");
  assert_stage_env(one, "NOPE", "");
  assert_stage_env(one, "STAGE_ONLY", "s");
  assert_stage_env(one, "SHARED", "student"); /* student over global */
  assert_stage_env(one, "G_ONLY", "g");
  assert_stage_env(one, "GRADING_RUN_ID", run_id);
  assert_stage_env(one, "GRADING_JOB_ID", job_id);
  ck_assert_int_eq(json_object_array_length(bw_test_json_get(one, "env")), 11);
  /* the other stage keys as given */
  assert_str(one, "image", "grader/one:1");
  assert_json_eq(bw_test_json_get(one, "entry_point"),
                 "[\"/bin/sh\", \"-c\", \"echo $NETID\"]");
  assert_json_eq(bw_test_json_get(one, "enable_networking"), "true");
  assert_str(one, "host_name", "box");
  assert_json_eq(bw_test_json_get(one, "timeout"), "45");

  json_object *two = stage_at(job, 1);
  assert_str(two, "image", "grader/two");
  assert_stage_env(two, "SHARED", "stage"); /* stage over student */
  assert_stage_env(two, "NETID", "waf");
  assert_stage_env(two, "ASSIGNMENT", "mp1");
  assert_stage_env(two, "G_ONLY", "g");
  assert_stage_env(two, "STAGE_ONLY", NULL); /* other stage's own env */
  assert_stage_env(two, "GRADING_RUN_ID", run_id);
  assert_stage_env(two, "GRADING_JOB_ID", job_id);
  ck_assert_int_eq(json_object_array_length(bw_test_json_get(job, "stages")),
                   2);
  bw_test_http_resp_cleanup(&r);
}
END_TEST

START_TEST(test_poll_job_user_grading_ids_are_overridden) {
  bw_test_client_t c;
  new_worker(&c);
  char run_id[25], job_id[25];
  started_run(&c,
              "{\"students\": [{\"GRADING_JOB_ID\": \"fake\"}], "
              "\"student_pipeline\": [{\"image\": \"a\", \"env\": "
              "{\"GRADING_RUN_ID\": \"fake\"}}]}",
              run_id);
  bw_test_http_resp_t r;
  take_job(&c, &r, job_id);
  json_object *stage = stage_at(bw_test_http_data(&r), 0);
  assert_stage_env(stage, "GRADING_RUN_ID", run_id);
  assert_stage_env(stage, "GRADING_JOB_ID", job_id);
  bw_test_http_resp_cleanup(&r);
}
END_TEST

#define ROSTER                                                                 \
  "[{\"NETID\": \"a\", \"X\": \"1\"}, {\"NETID\": \"b\"},"                     \
  " {\"NETID\": \"\xc3\xbc-\xc3\xb1 \\\"q\\\"\", \"EMPTY\": \"\"}]"

START_TEST(test_pre_and_post_jobs_carry_the_roster_exactly) {
  bw_test_client_t c;
  new_worker(&c);
  char run_id[25], job_id[25];
  started_run(&c,
              "{\"env\": {\"ASSIGNMENT\": \"mp1\"}, \"students\": " ROSTER ","
              " \"pre_processing_pipeline\": [{\"image\": \"pre\", \"env\":"
              " {\"WHAT\": \"pre-$ASSIGNMENT\"}}],"
              " \"student_pipeline\": [{\"image\": \"s\"}],"
              " \"post_processing_pipeline\": [{\"image\": \"post\"}]}",
              run_id);
  bw_test_http_resp_t r;
  take_job(&c, &r, job_id);
  json_object *pre = bw_test_http_data(&r);
  assert_json_eq(bw_test_json_get(pre, "students"), ROSTER);
  json_object *stage = stage_at(pre, 0);
  assert_str(stage, "image", "pre");
  assert_stage_env(stage, "ASSIGNMENT", "mp1");
  assert_stage_env(stage, "WHAT", "pre-mp1");
  assert_stage_env(stage, "NETID", NULL); /* no student layer */
  assert_stage_env(stage, "GRADING_RUN_ID", run_id);
  assert_stage_env(stage, "GRADING_JOB_ID", job_id);
  bw_test_http_resp_cleanup(&r);
  ck_assert_int_eq(bw_test_http_report(&c, job_id, true, NULL), 200);

  for (int i = 0; i < 3; i++)
    take_and_report(&c, true, job_id);
  take_job(&c, &r, job_id);
  json_object *post = bw_test_http_data(&r);
  assert_str(stage_at(post, 0), "image", "post");
  assert_json_eq(bw_test_json_get(post, "students"), ROSTER);
  assert_stage_env(stage_at(post, 0), "NETID", NULL);
  bw_test_http_resp_cleanup(&r);
}
END_TEST

/* ---- results ------------------------------------------------------------ */

#define RESULT_WITH_LOGS                                                       \
  "{\"success\": true, \"info\": [{\"stage\": \"one\", \"exit\": 0},"          \
  " {\"nested\": {\"k\": [1, 2]}}],"                                           \
  " \"logs\": {\"stdout\": \"out\\nline\", \"stderr\": \"err\"}}"

static void report_raw(const bw_test_client_t *c, const char *job_id,
                       const char *body, bw_test_http_resp_t *r) {
  char path[128];
  snprintf(path, sizeof path, "/api/v1/grading_job/%s", job_id);
  bw_test_http_call(c, "POST", path, body, r);
}

START_TEST(test_report_is_200_and_job_shows_the_result) {
  bw_test_client_t c;
  new_worker(&c);
  char run_id[25], job_id[25];
  started_run(&c, MINIMAL_RUN, run_id);
  bw_test_http_resp_t r;
  take_job(&c, &r, job_id);
  bw_test_http_resp_cleanup(&r);
  report_raw(&c, job_id, RESULT_WITH_LOGS, &r);
  BW_ASSERT_STATUS(&r, 200);
  BW_ASSERT_JSON(&r);
  assert_str(r.json, "status", "success");
  bw_test_http_resp_cleanup(&r);

  bw_test_http_get_job(&c, job_id, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  json_object *job = bw_test_http_data(&r);
  assert_str(job, "state", "succeeded");
  assert_json_eq(bw_test_json_get(job, "success"), "true");
  assert_json_eq(bw_test_json_get(job, "info"),
                 "[{\"stage\": \"one\", \"exit\": 0},"
                 " {\"nested\": {\"k\": [1, 2]}}]");
  assert_json_eq(bw_test_json_get(job, "logs"),
                 "{\"stdout\": \"out\\nline\", \"stderr\": \"err\"}");
  bw_test_http_resp_cleanup(&r);
}
END_TEST

START_TEST(test_report_resent_by_same_worker_is_200_and_changes_nothing) {
  bw_test_client_t c;
  new_worker(&c);
  char run_id[25], job_id[25];
  started_run(&c, MINIMAL_RUN, run_id);
  bw_test_http_resp_t r;
  take_job(&c, &r, job_id);
  bw_test_http_resp_cleanup(&r);
  report_raw(&c, job_id, RESULT_WITH_LOGS, &r);
  BW_ASSERT_STATUS(&r, 200);
  bw_test_http_resp_cleanup(&r);
  bw_test_http_get_job(&c, job_id, &r);
  json_object *before = json_object_get(bw_test_http_data(&r));
  bw_test_http_resp_cleanup(&r);

  report_raw(&c, job_id, RESULT_WITH_LOGS, &r);
  BW_ASSERT_STATUS(&r, 200);
  bw_test_http_resp_cleanup(&r);
  report_raw(&c, job_id, "{\"success\": false, \"info\": []}", &r);
  BW_ASSERT_STATUS(&r, 200);
  bw_test_http_resp_cleanup(&r);

  bw_test_http_get_job(&c, job_id, &r);
  ck_assert_msg(bw_test_json_equal(before, bw_test_http_data(&r)),
                "job changed by a resent result:\nbefore %s\nafter  %s",
                json_object_to_json_string(before), r.body);
  json_object_put(before);
  bw_test_http_resp_cleanup(&r);
  bw_test_http_run_status(&c, run_id, &r);
  assert_str(bw_test_http_data(&r), "state", "succeeded");
  bw_test_http_resp_cleanup(&r);
}
END_TEST

START_TEST(test_report_by_another_worker_is_409) {
  bw_test_client_t a, b;
  new_worker(&a);
  new_worker(&b);
  char run_id[25], job_id[25];
  started_run(&a, MINIMAL_RUN, run_id);
  bw_test_http_resp_t r;
  take_job(&a, &r, job_id);
  bw_test_http_resp_cleanup(&r);

  report_raw(&b, job_id, REPORT_OK, &r); /* while A holds it */
  BW_ASSERT_FAIL(&r, 409, "");
  bw_test_http_resp_cleanup(&r);
  bw_test_http_get_job(&a, job_id, &r);
  assert_str(bw_test_http_data(&r), "state", "running");
  bw_test_http_resp_cleanup(&r);

  ck_assert_int_eq(bw_test_http_report(&a, job_id, true, NULL), 200);
  report_raw(&b, job_id, REPORT_OK, &r); /* after A finished it */
  BW_ASSERT_FAIL(&r, 409, "");
  bw_test_http_resp_cleanup(&r);
}
END_TEST

START_TEST(test_report_for_a_job_not_handed_out_is_409) {
  bw_test_client_t c;
  new_worker(&c);
  char run_id[25];
  started_run(&c,
              "{\"students\": [{\"N\": \"a\"}], \"student_pipeline\": "
              "[{\"image\": \"a\"}], \"post_processing_pipeline\": "
              "[{\"image\": \"p\"}]}",
              run_id);
  bw_test_http_resp_t r;
  bw_test_http_run_status(&c, run_id, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  char post_id[25];
  snprintf(post_id, sizeof post_id, "%s",
           bw_test_json_str(bw_test_http_data(&r), "post_job_id"));
  json_object *jobs = bw_test_json_get(bw_test_http_data(&r), "jobs");
  char student_id[25];
  snprintf(student_id, sizeof student_id, "%s",
           bw_test_json_str(json_object_array_get_idx(jobs, 0), "job_id"));
  bw_test_http_resp_cleanup(&r);

  report_raw(&c, student_id, REPORT_OK, &r); /* queued, not polled */
  BW_ASSERT_FAIL(&r, 409, "");
  bw_test_http_resp_cleanup(&r);
  report_raw(&c, post_id, REPORT_OK, &r); /* not even queued */
  BW_ASSERT_FAIL(&r, 409, "");
  bw_test_http_resp_cleanup(&r);
  bw_test_http_run_status(&c, run_id, &r);
  assert_str(bw_test_http_data(&r), "state", "students");
  bw_test_http_resp_cleanup(&r);
}
END_TEST

START_TEST(test_report_unknown_job_is_404) {
  bw_test_client_t w;
  new_worker(&w);
  bw_test_http_resp_t r;
  report_raw(&w, UNKNOWN_OID, REPORT_OK, &r);
  BW_ASSERT_FAIL(&r, 404, "");
  bw_test_http_resp_cleanup(&r);
}
END_TEST

START_TEST(test_report_wrapped_status_data_form_is_accepted) {
  bw_test_client_t c;
  new_worker(&c);
  char run_id[25], job_id[25];
  started_run(&c, MINIMAL_RUN, run_id);
  bw_test_http_resp_t r;
  take_job(&c, &r, job_id);
  bw_test_http_resp_cleanup(&r);
  report_raw(&c, job_id,
             "{\"status\": \"success\", \"data\": {\"success\": false, "
             "\"info\": [{\"error\": \"timeout\"}]}}",
             &r);
  BW_ASSERT_STATUS(&r, 200);
  bw_test_http_resp_cleanup(&r);
  bw_test_http_get_job(&c, job_id, &r);
  json_object *job = bw_test_http_data(&r);
  assert_str(job, "state", "failed");
  assert_json_eq(bw_test_json_get(job, "success"), "false");
  assert_json_eq(bw_test_json_get(job, "info"), "[{\"error\": \"timeout\"}]");
  bw_test_http_resp_cleanup(&r);
}
END_TEST

static const bad_config_t bad_results[] = {
    {"{\"info\": [{}]}", "success"},
    {"{\"success\": \"yes\", \"info\": [{}]}", "success"},
    {"{\"success\": 1, \"info\": [{}]}", "success"},
    {"{\"success\": true, \"info\": {}}", "info"},
    {"{\"success\": true, \"info\": [1]}", "info[0]"},
    {"{\"success\": true, \"info\": [{}], \"extra\": 1}", "extra"},
    {"{\"success\": true, \"info\": [{}], \"logs\": \"text\"}", "logs"},
    {"{\"success\": true, \"info\": [{}], \"logs\": {\"stdout\": 1}}",
     "logs.stdout"},
    {"{\"success\": true, \"info\": [{}], \"logs\": {\"other\": \"x\"}}",
     "logs.other"},
    {"{\"status\": \"success\", \"data\": {\"info\": []}}", "success"},
    {"{\"status\": \"success\", \"data\": [1]}", "data"},
    {"{\"success\": true, \"info\": [{}]", ""},
    {"", ""},
    {"[]", ""},
};

START_TEST(test_report_bad_body_is_400_naming_the_field) {
  bw_test_client_t c;
  new_worker(&c);
  char run_id[25], job_id[25];
  started_run(&c, MINIMAL_RUN, run_id);
  bw_test_http_resp_t r;
  take_job(&c, &r, job_id);
  bw_test_http_resp_cleanup(&r);
  for (size_t i = 0; i < sizeof bad_results / sizeof bad_results[0]; i++) {
    report_raw(&c, job_id, bad_results[i].config, &r);
    ck_assert_msg(r.status == 400, "result %s: got %ld %s",
                  bad_results[i].config, r.status, BW_BODY(&r));
    BW_ASSERT_FAIL(&r, 400, bad_results[i].field);
    bw_test_http_resp_cleanup(&r);
  }
  bw_test_http_get_job(&c, job_id, &r);
  assert_str(bw_test_http_data(&r), "state", "running");
  bw_test_http_resp_cleanup(&r);
  ck_assert_int_eq(bw_test_http_report(&c, job_id, true, NULL), 200);
}
END_TEST

/* ---- run status and job reads ------------------------------------------- */

/* Checks state and the five per-state counts of a run status. */
static json_object *assert_run(const bw_test_client_t *c, const char *run_id,
                               bw_test_http_resp_t *r, const char *state,
                               const int counts[5]) {
  static const char *names[] = {"created", "queued", "running", "succeeded",
                                "failed"};
  bw_test_http_run_status(c, run_id, r);
  BW_ASSERT_SUCCESS(r, 200);
  json_object *run = bw_test_http_data(r);
  assert_str(run, "state", state);
  json_object *n = bw_test_json_get(run, "counts");
  ck_assert_msg(n != NULL, "no counts in %s", r->body);
  for (int i = 0; i < 5; i++)
    assert_int(n, names[i], counts[i]);
  return run;
}

static json_object *job_of(json_object *run, size_t i) {
  json_object *jobs = bw_test_json_get(run, "jobs");
  ck_assert_msg(jobs && json_object_array_length(jobs) > i, "no job %zu in %s",
                i, json_object_to_json_string(run));
  return json_object_array_get_idx(jobs, i);
}

START_TEST(test_run_status_shape_across_phases) {
  bw_test_client_t c;
  new_worker(&c);
  char run_id[25], job_id[25];
  ck_assert_int_eq(
      bw_test_http_create_run(&c,
                              "{\"students\": [{\"NETID\": \"a\"}, "
                              "{\"NETID\": \"b\", \"X\": \"y\"}], "
                              "\"pre_processing_pipeline\": [{\"image\": "
                              "\"p\"}], \"student_pipeline\": [{\"image\": "
                              "\"s\"}], \"post_processing_pipeline\": "
                              "[{\"image\": \"q\"}]}",
                              run_id),
      200);
  bw_test_http_resp_t r;
  json_object *run =
      assert_run(&c, run_id, &r, "created", (int[]){4, 0, 0, 0, 0});
  assert_str(run, "grading_run_id", run_id);
  assert_has(run, "created_at");
  ck_assert_ptr_null(bw_test_json_get(run, "started_at"));
  ck_assert_int_eq(json_object_array_length(bw_test_json_get(run, "jobs")), 4);
  const char *types[] = {"pre", "student", "student", "post"};
  for (size_t i = 0; i < 4; i++) {
    json_object *job = job_of(run, i);
    ck_assert(bw_test_is_oid(bw_test_json_str(job, "job_id")));
    assert_str(job, "type", types[i]);
    assert_str(job, "state", "created");
    assert_int(job, "attempts", 0);
  }
  assert_json_eq(bw_test_json_get(job_of(run, 1), "student"),
                 "{\"NETID\": \"a\"}");
  assert_json_eq(bw_test_json_get(job_of(run, 2), "student"),
                 "{\"NETID\": \"b\", \"X\": \"y\"}");
  assert_str(run, "pre_job_id", bw_test_json_str(job_of(run, 0), "job_id"));
  assert_str(run, "post_job_id", bw_test_json_str(job_of(run, 3), "job_id"));
  bw_test_http_resp_cleanup(&r);

  ck_assert_int_eq(bw_test_http_start_run(&c, run_id), 200);
  run = assert_run(&c, run_id, &r, "pre_processing", (int[]){3, 1, 0, 0, 0});
  assert_has(run, "started_at");
  assert_str(job_of(run, 0), "state", "queued");
  bw_test_http_resp_cleanup(&r);

  bw_test_http_resp_t job;
  take_job(&c, &job, job_id);
  bw_test_http_resp_cleanup(&job);
  run = assert_run(&c, run_id, &r, "pre_processing", (int[]){3, 0, 1, 0, 0});
  assert_str(job_of(run, 0), "state", "running");
  assert_int(job_of(run, 0), "attempts", 1);
  assert_str(job_of(run, 0), "worker_id", c.worker_id);
  bw_test_http_resp_cleanup(&r);

  ck_assert_int_eq(bw_test_http_report(&c, job_id, true, NULL), 200);
  run = assert_run(&c, run_id, &r, "students", (int[]){1, 2, 0, 1, 0});
  assert_str(job_of(run, 0), "state", "succeeded");
  bw_test_http_resp_cleanup(&r);

  take_job(&c, &job, job_id);
  bw_test_http_resp_cleanup(&job);
  assert_run(&c, run_id, &r, "students", (int[]){1, 1, 1, 1, 0});
  bw_test_http_resp_cleanup(&r);
  ck_assert_int_eq(bw_test_http_report(&c, job_id, false, NULL), 200);
  take_and_report(&c, true, job_id);
  run = assert_run(&c, run_id, &r, "post_processing", (int[]){0, 1, 0, 2, 1});
  assert_str(job_of(run, 3), "state", "queued");
  bw_test_http_resp_cleanup(&r);

  take_and_report(&c, true, job_id);
  run = assert_run(&c, run_id, &r, "succeeded", (int[]){0, 0, 0, 3, 1});
  assert_has(run, "finished_at");
  assert_json_eq(bw_test_json_get(run, "success"), "true");
  for (size_t i = 0; i < 4; i++)
    assert_int(job_of(run, i), "attempts", 1);
  bw_test_http_resp_cleanup(&r);
}
END_TEST

/* Job documents are written in bulks of 1,000: a roster that ends exactly
 * on a bulk's edge, then a post job, loses no job and keeps their order. */
START_TEST(test_run_of_1999_students_with_pre_and_post_has_every_job) {
  size_t cap = 64u << 10, len = 0;
  char *body = malloc(cap), run_id[25];
  ck_assert_ptr_nonnull(body);
  len += (size_t)snprintf(body + len, cap - len, "{\"students\": [");
  for (int i = 0; i < 1999; i++)
    len += (size_t)snprintf(body + len, cap - len, "%s{\"N\": \"s%d\"}",
                            i ? "," : "", i);
  snprintf(body + len, cap - len,
           "], \"pre_processing_pipeline\": [{\"image\": \"p\"}], "
           "\"student_pipeline\": [{\"image\": \"s\"}], "
           "\"post_processing_pipeline\": [{\"image\": \"q\"}]}");
  bw_test_client_t c;
  bw_itest_client(&c);
  ck_assert_int_eq(bw_test_http_create_run(&c, body, run_id), 200);
  free(body);
  bw_test_http_resp_t r;
  json_object *run =
      assert_run(&c, run_id, &r, "created", (int[]){2001, 0, 0, 0, 0});
  /* Over 1,000 jobs a status lists them a page at a time (docs/PROTOCOL.md):
   * the default is the first page, next_offset leads to the rest. */
  long long offset = 0;
  for (int page = 0; offset >= 0; page++) {
    if (page > 0) {
      char path[128];
      bw_test_http_resp_cleanup(&r);
      snprintf(path, sizeof path, "/api/v1/grading_run/%s?offset=%lld", run_id,
               offset);
      bw_test_http_call(&c, "GET", path, NULL, &r);
      BW_ASSERT_SUCCESS(&r, 200);
      run = bw_test_http_data(&r);
    }
    json_object *jobs = bw_test_json_get(run, "jobs");
    ck_assert_int_eq(bw_test_json_int(bw_test_json_get(run, "jobs_page"),
                                      "total"),
                     2001);
    for (size_t k = 0; k < json_object_array_length(jobs); k++) {
      int at = (int)offset + (int)k; /* 0: pre, 2000: post */
      char netid[16];
      if (at == 0 || at == 2000) {
        assert_str(job_of(run, k), "type", at == 0 ? "pre" : "post");
        continue;
      }
      snprintf(netid, sizeof netid, "s%d", at - 1);
      assert_int(job_of(run, k), "index", at - 1);
      assert_str(bw_test_json_get(job_of(run, k), "student"), "N", netid);
    }
    ck_assert_int_eq((int)json_object_array_length(jobs), page < 2 ? 1000 : 1);
    offset = bw_test_json_int(bw_test_json_get(run, "jobs_page"),
                              "next_offset");
  }
  bw_test_http_resp_cleanup(&r);
}
END_TEST

/* Runs scripts/start-run on `config` against the test stack; returns its
 * exit status, its stdout's first line in `out` and its stderr in `err`. */
static int run_start_script(const char *config, char *out, size_t out_size,
                            char *err, size_t err_size) {
  char script[PATH_MAX], dir[] = "/tmp/start-run-XXXXXX", path[PATH_MAX + 32],
                         errors[PATH_MAX + 32], command[4 * PATH_MAX + 128];
  const bw_test_stack_t *stack = bw_itest_stack();
  ck_assert(bw_test_find_run_script(script));
  snprintf(strrchr(script, '/') + 1, 16, "start-run");
  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/run.json", dir);
  snprintf(errors, sizeof errors, "%s/stderr", dir);
  ck_assert_int_eq(bw_test_write_file(path, config), 0);
  setenv("BROADWAY_URL", bw_test_stack_url(stack), 1);
  setenv("BROADWAY_TOKEN", bw_test_stack_token(stack), 1);
  snprintf(command, sizeof command, "'%s' '%s' 2>'%s'", script, path, errors);
  FILE *p = popen(command, "r");
  ck_assert_ptr_nonnull(p);
  out[0] = '\0';
  if (fgets(out, (int)out_size, p) != NULL)
    out[strcspn(out, "\n")] = '\0';
  int status = pclose(p);
  char *text = bw_test_read_file(errors, NULL);
  snprintf(err, err_size, "%s", text ? text : "");
  free(text);
  bw_test_remove_tree(dir);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The seed's start_run_script: post a config, start the run, print its id. */
START_TEST(test_start_run_script_posts_and_starts_a_run) {
  char id[64], err[1024];
  ck_assert_int_eq(run_start_script("{\"students\": [{\"N\": \"a\"}, "
                                    "{\"N\": \"b\"}], " PIPE "}",
                                    id, sizeof id, err, sizeof err),
                   0);
  ck_assert_msg(bw_test_is_oid(id), "start-run printed '%s' (%s)", id, err);
  bw_test_client_t c;
  bw_itest_client(&c);
  bw_test_http_resp_t r;
  assert_run(&c, id, &r, "students", (int[]){0, 2, 0, 0, 0});
  bw_test_http_resp_cleanup(&r);

  ck_assert_int_ne(run_start_script("{\"students\": [], " PIPE "}", id,
                                    sizeof id, err, sizeof err),
                   0);
  ck_assert_str_eq(id, "");
  ck_assert_msg(strstr(err, "students: at least 1 student required"),
                "stderr: %s", err);
  assert_db_count("runs", 1);
}
END_TEST

START_TEST(test_get_job_shape_before_and_after_finish) {
  bw_test_client_t c;
  new_worker(&c);
  char run_id[25], job_id[25];
  started_run(&c,
              "{\"students\": [{\"NETID\": \"a\"}], "
              "\"student_pipeline\": [{\"image\": \"s\"}]}",
              run_id);
  bw_test_http_resp_t r;
  bw_test_http_run_status(&c, run_id, &r);
  snprintf(job_id, sizeof job_id, "%s",
           bw_test_json_str(job_of(bw_test_http_data(&r), 0), "job_id"));
  bw_test_http_resp_cleanup(&r);

  bw_test_http_get_job(&c, job_id, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  json_object *job = bw_test_http_data(&r);
  assert_str(job, "job_id", job_id);
  assert_str(job, "grading_run_id", run_id);
  assert_str(job, "type", "student");
  assert_str(job, "state", "queued");
  assert_int(job, "attempts", 0);
  assert_has(job, "created_at");
  assert_json_eq(bw_test_json_get(job, "student"), "{\"NETID\": \"a\"}");
  ck_assert_ptr_null(bw_test_json_get(job, "success"));
  ck_assert_ptr_null(bw_test_json_get(job, "info"));
  bw_test_http_resp_cleanup(&r);

  char polled[25];
  take_job(&c, &r, polled);
  bw_test_http_resp_cleanup(&r);
  ck_assert_str_eq(polled, job_id);
  bw_test_http_get_job(&c, job_id, &r);
  job = bw_test_http_data(&r);
  assert_str(job, "state", "running");
  assert_int(job, "attempts", 1);
  assert_str(job, "worker_id", c.worker_id);
  assert_has(job, "started_at");
  bw_test_http_resp_cleanup(&r);

  report_raw(&c, job_id, RESULT_WITH_LOGS, &r);
  BW_ASSERT_STATUS(&r, 200);
  bw_test_http_resp_cleanup(&r);
  bw_test_http_get_job(&c, job_id, &r);
  job = bw_test_http_data(&r);
  assert_str(job, "state", "succeeded");
  assert_str(job, "worker_id", c.worker_id);
  assert_has(job, "finished_at");
  assert_json_eq(bw_test_json_get(job, "success"), "true");
  assert_has(job, "info");
  assert_has(job, "logs");
  bw_test_http_resp_cleanup(&r);
}
END_TEST

/* ---- suite -------------------------------------------------------------- */

static Suite *api_suite(void) {
  Suite *s = suite_create("api");
  TCase *tc = bw_itest_tcase(s, "auth", 120, true);
  tcase_add_test(tc, test_auth_missing_token_is_401_on_every_endpoint);
  tcase_add_test(tc, test_health_needs_no_token);
  tcase_add_test(tc, test_auth_wrong_token_is_401_on_every_endpoint);
  tcase_add_test(tc, test_auth_token_prefix_or_extension_is_401);
  tcase_add_test(tc, test_auth_bearer_form_is_accepted);
  tcase_add_test(tc, test_auth_is_checked_before_the_body_is_parsed);
  tcase_add_test(tc, test_auth_is_checked_before_the_worker_id);
  tcase_add_test(tc, test_auth_token_is_never_logged);

  tc = bw_itest_tcase(s, "routing", 120, true);
  tcase_add_test(tc, test_unknown_path_under_api_is_404);
  tcase_add_test(tc, test_path_outside_api_is_404_json);
  tcase_add_test(tc, test_wrong_method_on_known_path_is_405);
  tcase_add_test(tc, test_body_over_size_limit_is_413);
  tcase_add_test(tc, test_chunked_body_over_size_limit_is_413);
  tcase_add_test(tc, test_body_of_1_5_mib_is_accepted);
  tcase_add_test(tc, test_run_of_1999_students_with_pre_and_post_has_every_job);
  tcase_add_test(tc, test_start_run_script_posts_and_starts_a_run);

  tc = bw_itest_tcase(s, "create_run", 120, true);
  tcase_add_test(tc, test_create_run_returns_id_and_does_not_start_it);
  tcase_add_test(tc, test_create_run_malformed_json_is_400);
  tcase_add_test(tc, test_create_run_missing_required_keys_is_400_naming_them);
  tcase_add_test(tc, test_create_run_empty_students_or_pipelines_is_400);
  tcase_add_test(tc, test_create_run_wrong_types_are_400_naming_the_field);
  tcase_add_test(tc, test_create_run_unknown_keys_are_400_naming_them);
  tcase_add_test(tc, test_create_run_bad_env_names_are_400_naming_them);
  tcase_add_test(tc,
                 test_create_run_undefined_env_reference_names_student_and_var);
  tcase_add_test(tc, test_create_run_timeout_must_be_positive_and_bounded);
  tcase_add_test(tc, test_create_run_number_and_boolean_values_become_text);
  tcase_add_test(tc, test_create_run_accepts_every_documented_key);

  tc = bw_itest_tcase(s, "ids", 120, true);
  tcase_add_test(tc, test_start_run_malformed_id_400_unknown_404);
  tcase_add_test(tc, test_run_status_malformed_id_400_unknown_404);
  tcase_add_test(tc, test_get_job_malformed_id_400_unknown_404);
  tcase_add_test(tc, test_report_malformed_job_id_400_unknown_404);
  tcase_add_test(tc, test_start_run_twice_is_400);
  tcase_add_test(tc, test_start_run_is_200_jsend_success);

  tc = bw_itest_tcase(s, "graders", 120, true);
  tcase_add_test(tc, test_register_returns_worker_id_and_heartbeat);
  tcase_add_test(tc, test_register_twice_gives_two_workers);
  tcase_add_test(tc, test_grader_register_alias_with_hostname);
  tcase_add_test(tc, test_grader_call_without_worker_id_is_400);
  tcase_add_test(tc, test_grader_call_with_malformed_worker_id_is_400);
  tcase_add_test(tc, test_grader_call_with_unregistered_worker_is_401);
  tcase_add_test(tc, test_worker_id_header_form_is_accepted);
  tcase_add_test(tc, test_heartbeat_is_200_jsend_success);
  tcase_add_test(tc, test_poll_empty_queue_is_498_jsend_fail);

  tc = bw_itest_tcase(s, "payload", 120, true);
  tcase_add_test(tc, test_poll_job_env_resolved_per_protocol_example);
  tcase_add_test(tc, test_poll_job_user_grading_ids_are_overridden);
  tcase_add_test(tc, test_pre_and_post_jobs_carry_the_roster_exactly);

  tc = bw_itest_tcase(s, "results", 120, true);
  tcase_add_test(tc, test_report_is_200_and_job_shows_the_result);
  tcase_add_test(tc,
                 test_report_resent_by_same_worker_is_200_and_changes_nothing);
  tcase_add_test(tc, test_report_by_another_worker_is_409);
  tcase_add_test(tc, test_report_for_a_job_not_handed_out_is_409);
  tcase_add_test(tc, test_report_unknown_job_is_404);
  tcase_add_test(tc, test_report_wrapped_status_data_form_is_accepted);
  tcase_add_test(tc, test_report_bad_body_is_400_naming_the_field);

  tc = bw_itest_tcase(s, "status", 120, true);
  tcase_add_test(tc, test_run_status_shape_across_phases);
  tcase_add_test(tc, test_get_job_shape_before_and_after_finish);
  return s;
}

int main(void) {
  bw_test_stack_opts_t opts = {
      .label = "api", .heartbeat = API_HEARTBEAT, .workers = 2};
  return bw_itest_main(api_suite(), &opts);
}
