#include "api.h"
#include "text.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void api_copy(char *dst, size_t size, const char *src) {
  snprintf(dst, size, "%s", src);
}

static int api_read_file(cli_api_t *api, bool want_url, bool want_token) {
  const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
  char path[1024], line[1200];
  FILE *f;
  int n = 0;

  if (xdg != NULL && xdg[0] != '\0')
    snprintf(path, sizeof path, "%s/broadway/config", xdg);
  else if (home != NULL)
    snprintf(path, sizeof path, "%s/.config/broadway/config", home);
  else
    return 0;
  if ((f = fopen(path, "r")) == NULL)
    return 0; /* no file: the defaults */
  while (fgets(line, sizeof line, f) != NULL) {
    char *s = bw_trim(line), *eq, *key, *value;
    n++;
    if (*s == '\0' || *s == '#')
      continue;
    if ((eq = strchr(s, '=')) == NULL) {
      fprintf(stderr, "broadway: %s:%d: expected `api = URL` or `token = T`\n",
              path, n);
      fclose(f);
      return CLI_USAGE;
    }
    *eq = '\0';
    key = bw_trim(s);
    value = bw_trim(eq + 1);
    if (strcmp(key, "api") == 0 && want_url)
      api_copy(api->url, sizeof api->url, value);
    else if (strcmp(key, "token") == 0 && want_token) {
      api_copy(api->token, sizeof api->token, value);
      snprintf(api->source, sizeof api->source, "token in %s", path);
    } else if (strcmp(key, "api") != 0 && strcmp(key, "token") != 0) {
      fprintf(stderr, "broadway: %s:%d: unknown key \"%s\" (api, token)\n",
              path, n, key);
      fclose(f);
      return CLI_USAGE;
    }
  }
  fclose(f);
  return 0;
}

int cli_api_init(cli_api_t *api, const char *url, const char *token) {
  const char *env_url = getenv("BROADWAY_API"),
             *env_token = getenv("BROADWAY_TOKEN");

  /* Set but empty is unset (`BROADWAY_TOKEN= broadway ...`). */
  if (env_url != NULL && env_url[0] == '\0')
    env_url = NULL;
  if (env_token != NULL && env_token[0] == '\0')
    env_token = NULL;
  size_t len;
  int rc;

  memset(api, 0, sizeof *api);
  api_copy(api->url, sizeof api->url, "http://127.0.0.1:1470");
  api_copy(api->source, sizeof api->source, "no token set");
  rc = api_read_file(api, url == NULL && env_url == NULL,
                     token == NULL && env_token == NULL);
  if (rc != 0)
    return rc;
  if (url != NULL || env_url != NULL)
    api_copy(api->url, sizeof api->url, url ? url : env_url);
  if (token != NULL || env_token != NULL) {
    api_copy(api->token, sizeof api->token, token ? token : env_token);
    api_copy(api->source, sizeof api->source,
             token ? "--token" : "BROADWAY_TOKEN");
  }
  len = strlen(api->url);
  while (len > 0 && api->url[len - 1] == '/')
    api->url[--len] = '\0';
  return 0;
}

typedef struct api_buf {
  char *data;
  size_t len;
} api_buf_t;

static size_t api_write(char *ptr, size_t size, size_t n, void *ctx) {
  api_buf_t *b = ctx;
  size_t add = size * n;
  char *grown = realloc(b->data, b->len + add + 1);
  if (grown == NULL)
    return 0;
  b->data = grown;
  memcpy(b->data + b->len, ptr, add);
  b->len += add;
  b->data[b->len] = '\0';
  return add;
}

/* The server's own words: JSend fail data.message, or error message. */
static const char *api_message(json_object *body) {
  json_object *data, *msg;
  if (json_object_object_get_ex(body, "data", &data) &&
      json_object_object_get_ex(data, "message", &msg))
    return json_object_get_string(msg);
  if (json_object_object_get_ex(body, "message", &msg))
    return json_object_get_string(msg);
  return NULL;
}

static void api_explain(const cli_api_t *api, long status, const char *path,
                        const char *said) {
  const char *msg = said ? said : "(no message)";
  switch (status) {
  case 401:
    fprintf(stderr,
            "broadway: the API refused the token (401: %s). Token from: %s. "
            "Set BROADWAY_TOKEN, or `token = ...` in "
            "$XDG_CONFIG_HOME/broadway/config.\n",
            msg, api->source);
    break;
  case 404:
    fprintf(stderr, "broadway: not found (404): %s\n", msg);
    break;
  case 409:
    fprintf(stderr, "broadway: not possible now (409): %s\n", msg);
    break;
  case 503:
    fprintf(stderr,
            "broadway: the service is up but cannot reach its database "
            "(503): %s. Try again in a moment.\n",
            msg);
    break;
  case 400:
    fprintf(stderr, "broadway: the API rejected the request (400): %s\n", msg);
    break;
  default:
    fprintf(stderr, "broadway: %s %s answered HTTP %ld: %s\n", api->url, path,
            status, msg);
  }
}

int cli_api_call(const cli_api_t *api, const char *method, const char *path,
                 const char *body, json_object **data, long *status) {
  CURL *curl = curl_easy_init();
  struct curl_slist *headers = NULL;
  api_buf_t buf = {NULL, 0};
  char url[1200], auth[600], err[CURL_ERROR_SIZE] = "";
  json_object *parsed = NULL, *d;
  long code = 0;
  CURLcode cc;
  int rc = CLI_OK;

  *data = NULL;
  if (status)
    *status = 0;
  if (curl == NULL) {
    fprintf(stderr, "broadway: out of memory\n");
    return CLI_UNREACHABLE;
  }
  snprintf(url, sizeof url, "%s%s", api->url, path);
  /* The token goes in a header, never in the URL. */
  snprintf(auth, sizeof auth, "Authorization: %s", api->token);
  headers = curl_slist_append(headers, auth);
  headers = curl_slist_append(headers, "Content-Type: application/json");
  curl_easy_setopt(curl, CURLOPT_URL, url);
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, api_write);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &buf);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, err);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 120L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  if (body != NULL) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
  } else if (strcmp(method, "POST") == 0) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
  }
  cc = curl_easy_perform(curl);
  if (cc != CURLE_OK) {
    fprintf(stderr,
            "broadway: cannot reach the API at %s (%s). Is it running? "
            "Set BROADWAY_API or `api = URL` in "
            "$XDG_CONFIG_HOME/broadway/config.\n",
            api->url, err[0] ? err : curl_easy_strerror(cc));
    rc = CLI_UNREACHABLE;
  } else {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    parsed = buf.data ? json_tokener_parse(buf.data) : NULL;
    if (code != 200) {
      api_explain(api, code, path, parsed ? api_message(parsed) : NULL);
      rc = CLI_REFUSED;
    } else if (parsed == NULL) {
      fprintf(stderr, "broadway: %s%s did not answer JSON\n", api->url, path);
      rc = CLI_REFUSED;
    } else if (json_object_object_get_ex(parsed, "data", &d)) {
      *data = json_object_get(d);
    }
  }
  if (status)
    *status = code;
  json_object_put(parsed);
  free(buf.data);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return rc;
}
