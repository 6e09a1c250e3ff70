#include "request.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "log.h"

/* Bodies grow by doubling from here, so a lying Content-Length never makes
 * us allocate more than what actually arrived (times two). */
#define BODY_FIRST_ALLOC (64 * 1024)
#define BODY_CHUNK (1024 * 1024)

static const char *request_param(FCGX_Request *fcgx, const char *name) {
  return FCGX_GetParam(name, fcgx->envp);
}

/* DOCUMENT_URI is nginx's decoded, normalised $document_uri; REQUEST_URI is
 * the raw one, used only if a config forgot the first. */
static void request_set_path(bw_request_t *req) {
  const char *uri = request_param(req->fcgx, "DOCUMENT_URI");
  size_t len;

  if (uri == NULL)
    uri = request_param(req->fcgx, "REQUEST_URI");
  if (uri == NULL)
    uri = "";
  len = strcspn(uri, "?");
  if (len >= sizeof req->path) {
    req->path_too_long = true;
    return;
  }
  memcpy(req->path, uri, len);
  req->path[len] = '\0';
  if (len > 1 && req->path[len - 1] == '/')
    req->path[len - 1] = '\0';
}

void bw_request_init(bw_request_t *req, FCGX_Request *fcgx) {
  const char *value;

  memset(req, 0, sizeof *req);
  req->fcgx = fcgx;
  value = request_param(fcgx, "REQUEST_METHOD");
  req->method = value != NULL ? value : "";
  value = request_param(fcgx, "QUERY_STRING");
  req->query = value != NULL ? value : "";
  req->authorization = request_param(fcgx, "HTTP_AUTHORIZATION");
  req->worker_id = request_param(fcgx, "HTTP_WORKER_ID");
  request_set_path(req);
}

/* Reads and drops what the handler left unread, at most `limit` bytes
 * (nginx never sends more than its own body limit). */
static void request_discard_input(bw_request_t *req, size_t limit) {
  char sink[16384];
  size_t seen = 0;
  int n;

  while (seen <= limit &&
         (n = FCGX_GetStr(sink, (int)sizeof sink, req->fcgx->in)) > 0)
    seen += (size_t)n;
}

void bw_request_cleanup(bw_request_t *req, size_t max_body) {
  if (!req->input_done)
    request_discard_input(req, max_body);
  free(req->body);
  req->body = NULL;
}

/* For the access log: request text may hold any byte, log lines may not. */
static void log_safe(char *out, size_t size, const char *text) {
  size_t i = 0;
  for (; i + 1 < size && text[i] != '\0'; i++) {
    unsigned char c = (unsigned char)text[i];
    out[i] = c < 0x20 || c >= 0x7f || c == '"' ? '?' : (char)c;
  }
  out[i] = '\0';
}

static long elapsed_ms(const struct timespec *start) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (long)(now.tv_sec - start->tv_sec) * 1000 +
         (now.tv_nsec - start->tv_nsec) / 1000000;
}

void bw_request_finish(bw_request_t *req, size_t max_body,
                       const struct timespec *start) {
  char method[16], path[BW_REQUEST_PATH_MAX];

  bw_request_cleanup(req, max_body);
  /* Copied out first: req.method lives in libfcgi's params, which
   * FCGX_Finish_r frees.  The reply goes out before we spend time logging. */
  log_safe(method, sizeof method, req->method);
  log_safe(path, sizeof path, req->path_too_long ? "(too long)" : req->path);
  FCGX_Finish_r(req->fcgx);
  bw_log_info("%s %s %d %ldms", method, path, req->status, elapsed_ms(start));
}

/* Content-Length: absent or "" means unknown (-1); anything but digits is
 * an error (-2). */
static long long request_content_length(const bw_request_t *req) {
  const char *text = request_param(req->fcgx, "CONTENT_LENGTH");
  char *end;
  long long n;

  if (text == NULL || *text == '\0')
    return -1;
  if (strspn(text, "0123456789") != strlen(text) || strlen(text) > 18)
    return -2;
  errno = 0;
  n = strtoll(text, &end, 10);
  return errno == 0 ? n : -2;
}

/* Makes room for at least one more byte, never beyond max_body + 2 (one byte
 * past the limit to notice it, one for the NUL). */
static int request_grow(bw_request_t *req, size_t *cap, size_t max_body) {
  size_t limit = max_body + 2, want = *cap == 0 ? BODY_FIRST_ALLOC : *cap * 2;
  char *bigger;

  if (want > limit)
    want = limit;
  bigger = realloc(req->body, want);
  if (bigger == NULL)
    return BW_ENOMEM;
  req->body = bigger;
  *cap = want;
  return 0;
}

static int request_too_big(size_t max_body, bw_error_t *error) {
  return bw_error_set(error, BW_ETOOBIG,
                      "body: larger than the limit of %zu bytes", max_body);
}

int bw_request_read_body(bw_request_t *req, size_t max_body,
                         bw_error_t *error) {
  long long declared = request_content_length(req);
  size_t cap = 0;
  int n;

  if (declared == -2)
    return bw_error_set(error, BW_EINVAL, "body: bad Content-Length");
  if (declared > 0 && (unsigned long long)declared > max_body)
    return request_too_big(max_body, error);
  req->body_len = 0;
  for (;;) {
    size_t room;
    if (req->body_len + 1 >= cap) {
      if (cap >= max_body + 2)
        return request_too_big(max_body, error);
      if (request_grow(req, &cap, max_body) < 0)
        return bw_error_set(error, BW_ENOMEM, "body: out of memory");
    }
    room = cap - 1 - req->body_len;
    if (room > BODY_CHUNK)
      room = BODY_CHUNK;
    n = FCGX_GetStr(req->body + req->body_len, (int)room, req->fcgx->in);
    if (n <= 0)
      break;
    req->body_len += (size_t)n;
    if (req->body_len > max_body)
      return request_too_big(max_body, error);
  }
  req->input_done = true;
  req->body[req->body_len] = '\0';
  if (declared >= 0 && (unsigned long long)declared != req->body_len)
    return bw_error_set(error, BW_EINVAL,
                        "body: %zu bytes arrived, Content-Length said %lld",
                        req->body_len, declared);
  return 0;
}

/* Percent-decodes value[0..len) into out; '+' is a space. */
static int query_decode(const char *name, const char *value, size_t len,
                        char *out, size_t size, bw_error_t *error) {
  size_t o = 0;

  for (size_t i = 0; i < len; i++) {
    int c = (unsigned char)value[i];
    if (c == '+') {
      c = ' ';
    } else if (c == '%') {
      int hi =
          i + 2 < len ? bw_json_hex_value((unsigned char)value[i + 1]) : -1;
      int lo =
          i + 2 < len ? bw_json_hex_value((unsigned char)value[i + 2]) : -1;
      if (hi < 0 || lo < 0)
        return bw_error_set(error, BW_EINVAL, "%s: bad percent-encoding", name);
      c = hi * 16 + lo;
      i += 2;
    }
    if (c == 0)
      return bw_error_set(error, BW_EINVAL, "%s: contains a NUL byte", name);
    if (o + 1 >= size)
      return bw_error_set(error, BW_EINVAL, "%s: longer than %zu bytes", name,
                          size - 1);
    out[o++] = (char)c;
  }
  out[o] = '\0';
  return 1;
}

int bw_request_query_param(const bw_request_t *req, const char *name, char *out,
                           size_t size, bw_error_t *error) {
  size_t name_len = strlen(name);
  const char *p = req->query;

  while (*p != '\0') {
    size_t len = strcspn(p, "&");
    if (len > name_len && strncmp(p, name, name_len) == 0 && p[name_len] == '=')
      return query_decode(name, p + name_len + 1, len - name_len - 1, out, size,
                          error);
    if (len == name_len && strncmp(p, name, name_len) == 0)
      return query_decode(name, "", 0, out, size, error);
    p += len;
    if (*p == '&')
      p++;
  }
  return 0;
}

static const char *status_reason(int status) {
  switch (status) {
  case 200:
    return "OK";
  case 204:
    return "No Content";
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 409:
    return "Conflict";
  case 413:
    return "Payload Too Large";
  case 500:
    return "Internal Server Error";
  case 503:
    return "Service Unavailable";
  default:
    /* 498 and any other code without a standard phrase: what the original's
     * Tornado sent.  nginx and Apache pass the phrase on from our Status
     * header, and some clients (Tornado 5.1) cannot parse a status line
     * without one. */
    return "Unknown";
  }
}

/* On every reply: the 2019 API's browser clients (broadway-on-demand's
 * status page) call from another origin with an Authorization header
 * (PROTOCOL-LATER.md §2.10).  No cookie is ever read, so "*" lends a page
 * nothing it does not already hold: the token. */
#define CORS_HEADERS                                                           \
  "Access-Control-Allow-Origin: *\r\n"                                         \
  "Access-Control-Allow-Headers: Authorization\r\n"

/* The headers are formatted here, not with FCGX_FPrintF: libfcgi has a
 * printf of its own that does not know %zu. */
static void request_write(bw_request_t *req, int status, const char *type,
                          const char *text, size_t len) {
  FCGX_Stream *out = req->fcgx->out;
  char head[400];
  int n = snprintf(head, sizeof head,
                   "Status: %d %s\r\n"
                   "Content-Type: %s\r\n"
                   "Cache-Control: no-store\r\n"
                   "Content-Length: %zu\r\n" CORS_HEADERS "%s%s%s\r\n",
                   status, status_reason(status), type, len,
                   req->allow[0] != '\0' ? "Allow: " : "", req->allow,
                   req->allow[0] != '\0' ? "\r\n" : "");

  if (n < 0 || (size_t)n >= sizeof head || FCGX_PutStr(head, n, out) != n)
    return;
  while (len > 0) {
    int chunk = len > BODY_CHUNK ? BODY_CHUNK : (int)len;
    if (FCGX_PutStr(text, chunk, out) != chunk)
      break; /* nginx went away; nothing left to tell anyone */
    text += chunk;
    len -= (size_t)chunk;
  }
}

void bw_request_reply(bw_request_t *req, int status, json_object *body) {
  static const char oom[] =
      "{\"status\":\"error\",\"message\":\"out of memory\",\"code\":500}";
  const char *text = NULL;
  size_t len = 0;

  if (req->status != 0) {
    json_object_put(body);
    return;
  }
  if (body != NULL)
    text = json_object_to_json_string_length(
        body, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
  if (text == NULL) {
    status = 500;
    text = oom;
    len = sizeof oom - 1;
  }
  req->status = status;
  request_write(req, status, "application/json", text, len);
  json_object_put(body);
}

void bw_request_reply_text(bw_request_t *req, int status, const char *type,
                           const char *text, size_t len) {
  if (req->status != 0)
    return;
  req->status = status;
  request_write(req, status, type, text, len);
}

int bw_request_stream_begin(bw_request_t *req, const char *type) {
  char head[384];
  int n;

  if (req->status != 0)
    return -1;
  req->status = 200;
  /* X-Accel-Buffering is read by nginx (it stops buffering this reply) and
   * passed on to the client (fastcgi_pass_header): a proxy in front of
   * nginx learns the same. */
  n = snprintf(head, sizeof head,
               "Status: 200 OK\r\n"
               "Content-Type: %s\r\n"
               "Cache-Control: no-cache\r\n"
               "X-Accel-Buffering: no\r\n" CORS_HEADERS "\r\n",
               type);
  if (n < 0 || (size_t)n >= sizeof head)
    return -1;
  return bw_request_stream_write(req, head, (size_t)n);
}

int bw_request_stream_write(bw_request_t *req, const char *text, size_t len) {
  FCGX_Stream *out = req->fcgx->out;

  if (len > INT_MAX || FCGX_PutStr(text, (int)len, out) != (int)len ||
      FCGX_FFlush(out) < 0)
    return -1;
  return 0;
}

void bw_request_reply_no_content(bw_request_t *req) {
  static const char head[] = "Status: 204 No Content\r\n" CORS_HEADERS "\r\n";

  if (req->status != 0)
    return;
  req->status = 204;
  FCGX_PutStr(head, (int)sizeof head - 1, req->fcgx->out);
}

void bw_request_reply_success(bw_request_t *req, json_object *data) {
  bw_request_reply(req, 200, bw_jsend_success(data));
}

void bw_request_reply_error(bw_request_t *req, int code, const char *message,
                            int queue_empty_code) {
  int status = bw_error_http_status(code, queue_empty_code);

  if (message == NULL || message[0] == '\0')
    message = status >= 500 ? "internal error" : "bad request";
  if (status >= 500 && code != BW_EEMPTY) {
    bw_log_warn("%d %s: %s", status, bw_error_name(code), message);
    bw_request_reply(req, status, bw_jsend_error(message, status));
  } else {
    bw_request_reply(req, status, bw_jsend_fail(message));
  }
}
