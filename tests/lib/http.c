/* http.c - see http.h. */
#include "http.h"

#include "util.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct body_buf {
  char *data;
  size_t len;
  size_t cap;
} body_buf_t;

/* The request body as curl reads it, for chunked uploads. */
typedef struct upload {
  const char *data;
  size_t len;
  size_t off;
} upload_t;

void bw_test_http_global_init(void) {
  curl_global_init(CURL_GLOBAL_ALL);
}

void bw_test_client_init(bw_test_client_t *c, const char *base_url,
                         const char *token) {
  memset(c, 0, sizeof *c);
  snprintf(c->base_url, sizeof c->base_url, "%s", base_url);
  snprintf(c->token, sizeof c->token, "%s", token);
}

static size_t collect_body(char *ptr, size_t size, size_t nmemb, void *user) {
  body_buf_t *b = user;
  size_t n = size * nmemb;
  return bw_test_buf_append(&b->data, &b->len, &b->cap, ptr, n) == 0 ? n : 0;
}

/* Every header line of the response (of the last one, after redirects or
 * a 100 Continue: a new status line starts the collection again). */
static size_t collect_header(char *line, size_t size, size_t n, void *user) {
  body_buf_t *h = user;
  size_t len = size * n;
  if (len >= 5 && strncmp(line, "HTTP/", 5) == 0)
    h->len = 0;
  return bw_test_buf_append(&h->data, &h->len, &h->cap, line, len) == 0 ? len
                                                                        : 0;
}

static size_t feed_body(char *buf, size_t size, size_t nitems, void *user) {
  upload_t *u = user;
  size_t n = size * nitems;
  if (n > u->len - u->off)
    n = u->len - u->off;
  memcpy(buf, u->data + u->off, n);
  u->off += n;
  return n;
}

static struct curl_slist *add_header(struct curl_slist *list, const char *name,
                                     const char *value) {
  char line[1024];
  snprintf(line, sizeof line, "%s: %s", name, value);
  return curl_slist_append(list, line);
}

static struct curl_slist *request_headers(const bw_test_http_req_t *req) {
  struct curl_slist *h = NULL;
  if (req->authorization)
    h = add_header(h, "Authorization", req->authorization);
  if (req->worker_id)
    h = add_header(h, req->worker_header ? req->worker_header : "worker_id",
                   req->worker_id);
  if (req->body)
    h = curl_slist_append(h, "Content-Type: application/json");
  if (!req->expect_continue)
    h = curl_slist_append(h, "Expect:");
  if (req->chunked)
    h = curl_slist_append(h, "Transfer-Encoding: chunked");
  return h;
}

static void set_body(CURL *curl, const bw_test_http_req_t *req, upload_t *up) {
  if (!req->body)
    return;
  if (req->chunked) {
    *up = (upload_t){req->body, req->body_len, 0};
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, feed_body);
    curl_easy_setopt(curl, CURLOPT_READDATA, up);
  } else {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, req->body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)req->body_len);
  }
}

static void finish_response(CURL *curl, body_buf_t *b,
                            bw_test_http_resp_t *resp) {
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp->status);
  char *ct = NULL;
  curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &ct);
  snprintf(resp->content_type, sizeof resp->content_type, "%s", ct ? ct : "");
  resp->body = b->data;
  resp->body_len = b->len;
  if (b->data) {
    json_tokener *tok = json_tokener_new();
    resp->json = json_tokener_parse_ex(tok, b->data, (int)b->len);
    if (json_tokener_get_error(tok) != json_tokener_success) {
      json_object_put(resp->json);
      resp->json = NULL;
    }
    json_tokener_free(tok);
  }
}

long bw_test_http_send(const bw_test_http_req_t *req,
                       bw_test_http_resp_t *resp) {
  memset(resp, 0, sizeof *resp);
  CURL *curl = curl_easy_init();
  if (!curl)
    return 0;
  body_buf_t b = {0}, h = {0};
  upload_t up;
  struct curl_slist *headers = request_headers(req);
  curl_easy_setopt(curl, CURLOPT_URL, req->url);
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req->method);
  if (strcmp(req->method, "HEAD") == 0)
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, collect_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &h);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, req->timeout_s ? req->timeout_s : 60);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  set_body(curl, req, &up);
  CURLcode rc = curl_easy_perform(curl);
  if (rc != CURLE_OK)
    fprintf(stderr, "itest: %s %s: %s\n", req->method, req->url,
            curl_easy_strerror(rc));
  finish_response(curl, &b, resp);
  resp->headers = h.data;
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return resp->status;
}

void bw_test_http_resp_cleanup(bw_test_http_resp_t *resp) {
  if (!resp)
    return;
  free(resp->body);
  free(resp->headers);
  json_object_put(resp->json);
  memset(resp, 0, sizeof *resp);
}

long bw_test_http_call(const bw_test_client_t *c, const char *method,
                       const char *path, const char *body,
                       bw_test_http_resp_t *resp) {
  char url[1024];
  snprintf(url, sizeof url, "%s%s", c->base_url, path);
  bw_test_http_req_t req = {
      .method = method,
      .url = url,
      .authorization = c->token[0] ? c->token : NULL,
      .worker_id = c->worker_id[0] ? c->worker_id : NULL,
      .body = body,
      .body_len = body ? strlen(body) : 0,
  };
  bw_test_http_resp_t local;
  bw_test_http_resp_t *r = resp ? resp : &local;
  long status = bw_test_http_send(&req, r);
  if (!resp)
    bw_test_http_resp_cleanup(&local);
  return status;
}

bool bw_test_http_header(const bw_test_http_resp_t *resp, const char *name,
                         char *out, size_t cap) {
  size_t name_len = strlen(name);
  const char *line = resp->headers;

  out[0] = '\0';
  while (line != NULL && *line != '\0') {
    size_t len = strcspn(line, "\r\n");
    if (len > name_len && strncasecmp(line, name, name_len) == 0 &&
        line[name_len] == ':') {
      const char *v = line + name_len + 1;
      size_t vlen = len - name_len - 1;
      while (vlen > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        vlen--;
      }
      snprintf(out, cap, "%.*s", (int)vlen, v);
      return true;
    }
    line += len;
    line += strspn(line, "\r\n");
  }
  return false;
}

/* Copies data[key] (a 24-hex string) to out; "" when absent. */
static void copy_id(const bw_test_http_resp_t *resp, const char *key,
                    char out[25]) {
  const char *id = bw_test_json_str(bw_test_http_data(resp), key);
  snprintf(out, 25, "%s", id ? id : "");
}

long bw_test_http_register(bw_test_client_t *c, const char *hostname,
                           int *heartbeat) {
  char path[512] = "/api/v1/worker_register";
  if (hostname) {
    char enc[400];
    bw_test_percent_encode(hostname, enc, sizeof enc);
    snprintf(path, sizeof path, "/api/v1/worker_register?hostname=%s", enc);
  }
  bw_test_client_t anonymous = *c; /* registration sends no worker id */
  anonymous.worker_id[0] = '\0';
  bw_test_http_resp_t resp;
  long status = bw_test_http_call(&anonymous, "GET", path, NULL, &resp);
  if (status == 200) {
    char id[25];
    copy_id(&resp, "worker_id", id);
    snprintf(c->worker_id, sizeof c->worker_id, "%s", id);
    if (heartbeat)
      *heartbeat = (int)bw_test_json_int(bw_test_http_data(&resp), "heartbeat");
  }
  bw_test_http_resp_cleanup(&resp);
  return status;
}

long bw_test_http_create_run(const bw_test_client_t *c, const char *config,
                             char run_id[25]) {
  bw_test_http_resp_t resp;
  long status =
      bw_test_http_call(c, "POST", "/api/v1/grading_run", config, &resp);
  run_id[0] = '\0';
  if (status == 200)
    copy_id(&resp, "grading_run_id", run_id);
  else
    fprintf(stderr, "itest: create run: %ld %s\n", status,
            resp.body ? resp.body : "");
  bw_test_http_resp_cleanup(&resp);
  return status;
}

long bw_test_http_start_run(const bw_test_client_t *c, const char *run_id) {
  char path[128];
  snprintf(path, sizeof path, "/api/v1/grading_run/%s", run_id);
  return bw_test_http_call(c, "POST", path, NULL, NULL);
}

long bw_test_http_create_and_start(const bw_test_client_t *c,
                                   const char *config, char run_id[25]) {
  long status = bw_test_http_create_run(c, config, run_id);
  return status == 200 ? bw_test_http_start_run(c, run_id) : status;
}

long bw_test_http_poll_wait(const bw_test_client_t *c, int wait,
                            bw_test_http_resp_t *resp, char job_id[25]) {
  bw_test_http_resp_t local;
  bw_test_http_resp_t *r = resp ? resp : &local;
  char path[64];
  snprintf(path, sizeof path, "/api/v1/grading_job?wait=%d", wait);
  long status = bw_test_http_call(c, "GET", path, NULL, r);
  if (job_id) {
    job_id[0] = '\0';
    if (status == 200)
      copy_id(r, "job_id", job_id);
  }
  if (!resp)
    bw_test_http_resp_cleanup(&local);
  return status;
}

long bw_test_http_poll(const bw_test_client_t *c, bw_test_http_resp_t *resp,
                       char job_id[25]) {
  return bw_test_http_poll_wait(c, 0, resp, job_id);
}

/* A result body in each shape a released grader sends (validate.h). */
static const char *const report_bodies[BW_TEST_SHAPES][2] = {
    /* v0.1 */
    {"{\"success\": false, \"info\": [{}]}",
     "{\"success\": true, \"info\": [{}]}"},
    /* the 2018-11 grader */
    {"{\"success\": false, \"info\": {\"stageResults\": [{}], "
     "\"stdout\": \"\", \"stderr\": \"e\"}}",
     "{\"success\": true, \"info\": {\"stageResults\": [{}], "
     "\"stdout\": \"o\", \"stderr\": \"\"}}"},
    /* the 2018-12 grader */
    {"{\"success\": false, \"results\": [{\"succeeded\": false}], "
     "\"logs\": {\"stdout\": \"\", \"stderr\": \"e\"}}",
     "{\"success\": true, \"results\": [{\"succeeded\": true}], "
     "\"logs\": {\"stdout\": \"o\", \"stderr\": \"\"}}"},
};

long bw_test_http_report_shape(const bw_test_client_t *c, const char *job_id,
                               bool success, int shape,
                               bw_test_http_resp_t *resp) {
  char path[128];
  snprintf(path, sizeof path, "/api/v1/grading_job/%s", job_id);
  return bw_test_http_call(c, "POST", path,
                           report_bodies[shape % BW_TEST_SHAPES][success],
                           resp);
}

long bw_test_http_report(const bw_test_client_t *c, const char *job_id,
                         bool success, bw_test_http_resp_t *resp) {
  size_t len = strlen(job_id);
  int shape = len > 0 ? (unsigned char)job_id[len - 1] % BW_TEST_SHAPES : 0;
  return bw_test_http_report_shape(c, job_id, success, shape, resp);
}

int bw_test_result_stages(json_object *job) {
  json_object *info = bw_test_json_get(job, "info");
  json_object *list = bw_test_json_get(job, "results");
  if (info != NULL && json_object_is_type(info, json_type_object))
    list = bw_test_json_get(info, "stageResults");
  else if (info != NULL)
    list = info;
  return list != NULL && json_object_is_type(list, json_type_array)
             ? (int)json_object_array_length(list)
             : -1;
}

long bw_test_http_heartbeat(const bw_test_client_t *c) {
  return bw_test_http_call(c, "POST", "/api/v1/heartbeat", NULL, NULL);
}

long bw_test_http_run_status(const bw_test_client_t *c, const char *run_id,
                             bw_test_http_resp_t *resp) {
  char path[128];
  snprintf(path, sizeof path, "/api/v1/grading_run/%s", run_id);
  return bw_test_http_call(c, "GET", path, NULL, resp);
}

long bw_test_http_get_job(const bw_test_client_t *c, const char *job_id,
                          bw_test_http_resp_t *resp) {
  char path[128];
  snprintf(path, sizeof path, "/api/v1/grading_job/%s", job_id);
  return bw_test_http_call(c, "GET", path, NULL, resp);
}

json_object *bw_test_json_get(json_object *obj, const char *key) {
  json_object *v = NULL;
  if (obj && json_object_is_type(obj, json_type_object) &&
      json_object_object_get_ex(obj, key, &v))
    return v;
  return NULL;
}

const char *bw_test_json_str(json_object *obj, const char *key) {
  json_object *v = bw_test_json_get(obj, key);
  return v && json_object_is_type(v, json_type_string)
             ? json_object_get_string(v)
             : NULL;
}

long long bw_test_json_int(json_object *obj, const char *key) {
  json_object *v = bw_test_json_get(obj, key);
  return v && json_object_is_type(v, json_type_int) ? json_object_get_int64(v)
                                                    : -1;
}

json_object *bw_test_http_data(const bw_test_http_resp_t *resp) {
  return bw_test_json_get(resp->json, "data");
}

const char *bw_test_http_jsend_status(const bw_test_http_resp_t *resp) {
  const char *s = bw_test_json_str(resp->json, "status");
  return s ? s : "";
}

const char *bw_test_http_message(const bw_test_http_resp_t *resp) {
  const char *m = bw_test_json_str(bw_test_http_data(resp), "message");
  if (!m)
    m = bw_test_json_str(resp->json, "message");
  return m ? m : "";
}

bool bw_test_json_equal(json_object *a, json_object *b) {
  return json_object_equal(a, b) != 0;
}

bool bw_test_is_oid(const char *s) {
  if (!s || strlen(s) != 24)
    return false;
  for (int i = 0; i < 24; i++)
    if (!isxdigit((unsigned char)s[i]))
      return false;
  return true;
}
