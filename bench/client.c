/* client.c - keep-alive HTTP client of the benchmark; see client.h. */
#include "client.h"
#include "bench.h"

#include "../tests/lib/util.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t client_write(char *data, size_t size, size_t nmemb, void *arg) {
  bench_client_t *c = arg;
  size_t n = size * nmemb;
  /* Out of memory: 0, and curl reports a write error. */
  return bw_test_buf_append(&c->body, &c->len, &c->cap, data, n) == 0 ? n : 0;
}

/* The headers every request carries.  "Expect:" stops curl from waiting for
 * 100-continue before large bodies (a run of 10,000 students is ~250 kB). */
static int client_set_headers(bench_client_t *c) {
  char worker[64];
  struct curl_slist *list = curl_slist_append(NULL, c->auth);
  if (list)
    list = curl_slist_append(list, "Expect:");
  if (list)
    list = curl_slist_append(list, "Content-Type: application/json");
  if (list && c->worker_id[0]) {
    snprintf(worker, sizeof worker, "worker_id: %s", c->worker_id);
    list = curl_slist_append(list, worker);
  }
  if (!list)
    return -1;
  curl_slist_free_all(c->headers);
  c->headers = list;
  curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->headers);
  return 0;
}

int bench_client_init(bench_client_t *c, const char *base, const char *token) {
  memset(c, 0, sizeof *c);
  c->curl = curl_easy_init();
  if (!c->curl)
    return -1;
  snprintf(c->base, sizeof c->base, "%s", base);
  snprintf(c->auth, sizeof c->auth, "Authorization: %s", token);
  curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c->curl, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, 120L);
  curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->error);
  curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, client_write);
  curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, c);
  return client_set_headers(c);
}

void bench_client_cleanup(bench_client_t *c) {
  if (c->curl)
    curl_easy_cleanup(c->curl);
  curl_slist_free_all(c->headers);
  free(c->body);
  memset(c, 0, sizeof *c);
}

long bench_client_request(bench_client_t *c, const char *method,
                          const char *path, const char *body, size_t body_len) {
  char url[1024];
  long status = 0;

  snprintf(url, sizeof url, "%s%s", c->base, path);
  c->len = 0;
  if (c->body)
    c->body[0] = '\0';
  c->error[0] = '\0';
  curl_easy_setopt(c->curl, CURLOPT_URL, url);
  if (strcmp(method, "GET") == 0) {
    curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(c->curl, CURLOPT_POST, 1L);
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, (long)body_len);
  }
  if (curl_easy_perform(c->curl) != CURLE_OK)
    return 0;
  curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
  return status;
}

long bench_client_register(bench_client_t *c, const char *hostname,
                           int *heartbeat) {
  char path[300];
  json_object *root, *data, *v;
  long status;

  snprintf(path, sizeof path, "/api/v1/worker_register?hostname=%s", hostname);
  status = bench_client_request(c, "GET", path, NULL, 0);
  if (status != 200)
    return status;
  root = json_tokener_parse(c->body ? c->body : "");
  if (root && json_object_object_get_ex(root, "data", &data) &&
      json_object_object_get_ex(data, "worker_id", &v))
    snprintf(c->worker_id, sizeof c->worker_id, "%s",
             json_object_get_string(v));
  if (root && heartbeat && json_object_object_get_ex(root, "data", &data) &&
      json_object_object_get_ex(data, "heartbeat", &v))
    *heartbeat = json_object_get_int(v);
  json_object_put(root);
  if (strlen(c->worker_id) != 24 || client_set_headers(c) < 0)
    return 0;
  return status;
}

int bench_client_set_worker(bench_client_t *c, const char *worker_id) {
  snprintf(c->worker_id, sizeof c->worker_id, "%s", worker_id);
  return client_set_headers(c);
}

bool bench_client_find_string(const bench_client_t *c, const char *key,
                              char *out, size_t size) {
  char quoted[128];
  const char *p, *end;

  if (!c->body)
    return false;
  snprintf(quoted, sizeof quoted, "\"%s\"", key);
  p = strstr(c->body, quoted);
  if (!p)
    return false;
  p += strlen(quoted);
  while (*p == ' ' || *p == ':')
    p++;
  if (*p++ != '"')
    return false;
  end = strchr(p, '"');
  if (!end || (size_t)(end - p) >= size)
    return false;
  memcpy(out, p, (size_t)(end - p));
  out[end - p] = '\0';
  return true;
}

int bench_client_create_run(bench_client_t *c, int students, char run_id[25],
                            double *seconds) {
  char *config = bench_config_alloc(students);
  double t = bw_test_now();
  long status;

  if (!config)
    return -1;
  status = bench_client_request(c, "POST", "/api/v1/grading_run", config,
                                strlen(config));
  *seconds = bw_test_now() - t;
  free(config);
  if (status != 200 ||
      !bench_client_find_string(c, "grading_run_id", run_id, 25)) {
    fprintf(stderr, "bench: create run of %d: HTTP %ld %s %s\n", students,
            status, c->error, c->body ? c->body : "");
    return -1;
  }
  return 0;
}

int bench_client_start_run(bench_client_t *c, const char *run_id,
                           double *seconds) {
  char path[128];
  double t = bw_test_now();
  long status;

  snprintf(path, sizeof path, "/api/v1/grading_run/%s", run_id);
  status = bench_client_request(c, "POST", path, "", 0);
  *seconds = bw_test_now() - t;
  if (status != 200) {
    fprintf(stderr, "bench: start run %s: HTTP %ld %s %s\n", run_id, status,
            c->error, c->body ? c->body : "");
    return -1;
  }
  return 0;
}
