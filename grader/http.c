#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* A job carries its roster; 100000 students fit well below this. */
#define MAX_RESPONSE (256u * 1024 * 1024)

typedef struct response_buf {
  char *data;
  size_t len, cap;
} response_buf_t;

static size_t collect_body(char *ptr, size_t size, size_t nmemb, void *arg) {
  response_buf_t *buf = arg;
  size_t n = size * nmemb;

  if (buf->len + n + 1 > MAX_RESPONSE)
    return 0; /* makes curl fail the transfer */
  if (buf->len + n + 1 > buf->cap) {
    size_t cap = buf->cap ? buf->cap : 4096;
    char *grown;
    while (cap < buf->len + n + 1)
      cap *= 2;
    grown = realloc(buf->data, cap);
    if (grown == NULL)
      return 0;
    buf->data = grown;
    buf->cap = cap;
  }
  memcpy(buf->data + buf->len, ptr, n);
  buf->len += n;
  buf->data[buf->len] = '\0';
  return n;
}

/* libcurl's progress callback: non-zero aborts the transfer. */
static int check_give_up(void *arg, curl_off_t dltotal, curl_off_t dlnow,
                         curl_off_t ultotal, curl_off_t ulnow) {
  gr_http_t *http = arg;
  (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
  return http->give_up(http->give_up_arg) ? 1 : 0;
}

static const char *http_ca_file; /* set once in main, before threads */

void gr_http_set_ca_file(const char *path) {
  http_ca_file = path != NULL && path[0] != '\0' ? path : NULL;
}

int gr_http_init(gr_http_t *http, const char *base, const char *token) {
  http->base = base;
  http->token = token;
  http->give_up = NULL;
  http->give_up_arg = NULL;
  http->curl = curl_easy_init();
  return http->curl ? 0 : BW_ENOMEM;
}

void gr_http_cleanup(gr_http_t *http) {
  if (http->curl != NULL)
    curl_easy_cleanup(http->curl);
  http->curl = NULL;
}

void gr_reply_cleanup(gr_reply_t *reply) {
  if (reply->data != NULL)
    json_object_put(reply->data);
  reply->data = NULL;
}

int gr_reply_is_transient(const gr_reply_t *reply) {
  return reply->status == 0 || reply->status >= 500;
}

char *gr_http_escape(gr_http_t *http, const char *text) {
  char *escaped = curl_easy_escape(http->curl, text, 0);
  char *copy = escaped ? strdup(escaped) : NULL;

  curl_free(escaped);
  return copy;
}

/* Unwraps a JSend envelope: success -> data; fail -> data.message;
 * error -> message.  A body without an envelope is taken as the data. */
static void parse_body(const response_buf_t *buf, gr_reply_t *reply) {
  json_object *body, *status, *data = NULL, *message = NULL;

  if (buf->len == 0)
    return;
  body = json_tokener_parse(buf->data);
  if (body == NULL) {
    snprintf(reply->message, sizeof reply->message, "HTTP %ld, body not JSON",
             reply->status);
    return;
  }
  if (!json_object_object_get_ex(body, "status", &status) ||
      !json_object_is_type(status, json_type_string)) {
    reply->data = body;
    return;
  }
  if (json_object_object_get_ex(body, "data", &data))
    reply->data = json_object_get(data);
  if (json_object_object_get_ex(body, "message", &message) ||
      (data != NULL && json_object_is_type(data, json_type_object) &&
       json_object_object_get_ex(data, "message", &message)))
    snprintf(reply->message, sizeof reply->message, "HTTP %ld: %s",
             reply->status, json_object_get_string(message));
  json_object_put(body);
}

static struct curl_slist *make_headers(const gr_http_t *http,
                                       const char *worker_id) {
  struct curl_slist *headers = NULL, *next;
  char line[512];
  const char *lines[3];
  int i, n = 0;

  snprintf(line, sizeof line, "Authorization: %s", http->token);
  lines[n++] = "Content-Type: application/json";
  lines[n++] = "Expect:"; /* no 100-continue round trip for big results */
  for (i = 0; i < n; i++) {
    next = curl_slist_append(headers, lines[i]);
    if (next == NULL)
      goto fail;
    headers = next;
  }
  if ((next = curl_slist_append(headers, line)) == NULL)
    goto fail;
  headers = next;
  if (worker_id != NULL) {
    snprintf(line, sizeof line, "worker_id: %s", worker_id);
    if ((next = curl_slist_append(headers, line)) == NULL)
      goto fail;
    headers = next;
  }
  return headers;
fail:
  curl_slist_free_all(headers);
  return NULL;
}

int gr_http_request(gr_http_t *http, const char *method, const char *path,
                    const char *worker_id, const char *body, long timeout_ms,
                    gr_reply_t *reply) {
  char url[2048], error[CURL_ERROR_SIZE] = "";
  response_buf_t buf = {NULL, 0, 0};
  struct curl_slist *headers;
  CURL *curl = http->curl;
  CURLcode rc;

  memset(reply, 0, sizeof *reply);
  snprintf(url, sizeof url, "%s%s", http->base, path);
  headers = make_headers(http, worker_id);
  if (headers == NULL) {
    snprintf(reply->message, sizeof reply->message, "out of memory");
    return BW_ENOMEM;
  }
  curl_easy_reset(curl);
  curl_easy_setopt(curl, CURLOPT_URL, url);
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L); /* we are threaded */
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
  if (http_ca_file != NULL)
    curl_easy_setopt(curl, CURLOPT_CAINFO, http_ca_file);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &buf);
  if (http->give_up != NULL) {
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, check_give_up);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, http);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  }
  if (body != NULL || strcmp(method, "POST") == 0) {
    /* Always a Content-Length on POST: nginx answers 411 without one. */
    if (body == NULL)
      body = "";
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)strlen(body));
  }
  rc = curl_easy_perform(curl);
  curl_slist_free_all(headers);
  if (rc != CURLE_OK) {
    snprintf(reply->message, sizeof reply->message, "%s %s: %s", method, path,
             error[0] ? error : curl_easy_strerror(rc));
    free(buf.data);
    return BW_ESYS;
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply->status);
  snprintf(reply->message, sizeof reply->message, "HTTP %ld", reply->status);
  parse_body(&buf, reply);
  free(buf.data);
  return 0;
}
