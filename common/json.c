#include "json.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------------
 * Strict pre-scan of a request body.
 *
 * json-c's STRICT mode (0.16 rejects single-quoted strings) still accepts
 * NaN, raw control characters in strings and out-of-range numbers, and
 * silently truncates keys at an escaped NUL.  So the body is first checked
 * against RFC 8259 here, which also gives every rejection an exact byte offset;
 * json-c then only builds the tree from text known to be valid. */

enum scan_problem {
  SCAN_OK,
  SCAN_SYNTAX,
  SCAN_DEPTH,
  SCAN_RANGE,
  SCAN_TRAILING,
  SCAN_NOT_OBJECT,
  SCAN_EMPTY
};

typedef struct scan {
  const char *buf;
  size_t len;
  size_t pos;
  int max_depth;
  enum scan_problem problem;
  size_t problem_at;
  bool nul_in_key; /* an escaped NUL in an object key (json-c drops it) */
  size_t nul_in_key_at;
  const char *lazy_key;        /* a top-level key whose array is kept as text */
  bool lazy_found;             /* its last occurrence holds an array ... */
  size_t lazy_start, lazy_end; /* ... at buf[lazy_start, lazy_end) */
} scan_t;

static int scan_value(scan_t *s, int depth);

static int scan_fail(scan_t *s, enum scan_problem problem, size_t at) {
  s->problem = problem;
  s->problem_at = at;
  return -1;
}

static int scan_peek(const scan_t *s) {
  return s->pos < s->len ? (unsigned char)s->buf[s->pos] : -1;
}

static void scan_skip_ws(scan_t *s) {
  while (s->pos < s->len) {
    char c = s->buf[s->pos];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
      return;
    s->pos++;
  }
}

size_t bw_json_utf8_length(const unsigned char *p, size_t avail) {
  unsigned char c = p[0];
  unsigned char lo = 0x80, hi = 0xBF;
  size_t n, i;

  if (c < 0x80)
    return 1;
  if (c >= 0xC2 && c <= 0xDF)
    n = 2;
  else if (c >= 0xE0 && c <= 0xEF)
    n = 3;
  else if (c >= 0xF0 && c <= 0xF4)
    n = 4;
  else
    return 0;
  if (avail < n)
    return 0;
  if (c == 0xE0)
    lo = 0xA0;
  else if (c == 0xED)
    hi = 0x9F;
  else if (c == 0xF0)
    lo = 0x90;
  else if (c == 0xF4)
    hi = 0x8F;
  if (p[1] < lo || p[1] > hi)
    return 0;
  for (i = 2; i < n; i++)
    if (p[i] < 0x80 || p[i] > 0xBF)
      return 0;
  return n;
}

/* Offset of the first invalid UTF-8 byte, or len when all is valid. */
static size_t utf8_invalid_at(const char *buf, size_t len) {
  size_t pos = 0;
  while (pos < len) {
    size_t n = bw_json_utf8_length((const unsigned char *)buf + pos, len - pos);
    if (n == 0)
      return pos;
    pos += n;
  }
  return len;
}

int bw_json_hex_value(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Reads the 4 hex digits of a \u escape starting at `at` (just past "\u"). */
static long scan_hex4(const scan_t *s, size_t at) {
  long value = 0;
  size_t i;
  if (s->len - at < 4)
    return -1;
  for (i = 0; i < 4; i++) {
    int h = bw_json_hex_value((unsigned char)s->buf[at + i]);
    if (h < 0)
      return -1;
    value = value * 16 + h;
  }
  return value;
}

/* A \uXXXX escape at s->pos (on the backslash).  A lone surrogate is
 * rejected: it has no UTF-8 form, and MongoDB only stores valid UTF-8. */
static int scan_unicode_escape(scan_t *s, bool is_key) {
  size_t start = s->pos;
  long cp = scan_hex4(s, s->pos + 2);
  if (cp < 0)
    return scan_fail(s, SCAN_SYNTAX, start);
  s->pos += 6;
  if (cp == 0 && is_key && !s->nul_in_key) {
    s->nul_in_key = true;
    s->nul_in_key_at = start;
  }
  if (cp >= 0xDC00 && cp <= 0xDFFF)
    return scan_fail(s, SCAN_SYNTAX, start);
  if (cp >= 0xD800 && cp <= 0xDBFF) {
    long low;
    if (s->len - s->pos < 2 || s->buf[s->pos] != '\\' ||
        s->buf[s->pos + 1] != 'u')
      return scan_fail(s, SCAN_SYNTAX, start);
    low = scan_hex4(s, s->pos + 2);
    if (low < 0xDC00 || low > 0xDFFF)
      return scan_fail(s, SCAN_SYNTAX, start);
    s->pos += 6;
  }
  return 0;
}

static int scan_string(scan_t *s, bool is_key) {
  s->pos++; /* the opening quote */
  for (;;) {
    int c = scan_peek(s);
    if (c < 0 || c < 0x20)
      return scan_fail(s, SCAN_SYNTAX, s->pos);
    if (c == '"') {
      s->pos++;
      return 0;
    }
    if (c != '\\') {
      s->pos++;
      continue;
    }
    if (s->pos + 1 >= s->len)
      return scan_fail(s, SCAN_SYNTAX, s->len);
    c = (unsigned char)s->buf[s->pos + 1];
    if (c == 'u') {
      if (scan_unicode_escape(s, is_key) < 0)
        return -1;
    } else if (c && strchr("\"\\/bfnrt", c) != NULL) {
      s->pos += 2;
    } else {
      return scan_fail(s, SCAN_SYNTAX, s->pos);
    }
  }
}

static size_t scan_digits(scan_t *s) {
  size_t start = s->pos;
  while (s->pos < s->len && s->buf[s->pos] >= '0' && s->buf[s->pos] <= '9')
    s->pos++;
  return s->pos - start;
}

/* json-c saturates integers outside int64/uint64 and turns 1e400 into inf:
 * both would store a value the client did not send, so both are refused. */
static bool number_in_range(const char *text, size_t len, bool integer) {
  char small[64];
  char *copy = len < sizeof small ? small : malloc(len + 1);
  bool ok;

  if (copy == NULL)
    return false;
  memcpy(copy, text, len);
  copy[len] = '\0';
  errno = 0;
  if (integer && copy[0] == '-') {
    (void)strtoll(copy, NULL, 10);
    ok = errno != ERANGE;
  } else if (integer) {
    (void)strtoull(copy, NULL, 10);
    ok = errno != ERANGE;
  } else {
    ok = isfinite(strtod(copy, NULL));
  }
  if (copy != small)
    free(copy);
  return ok;
}

static int scan_number(scan_t *s) {
  size_t start = s->pos;
  bool integer = true;

  if (scan_peek(s) == '-')
    s->pos++;
  if (scan_peek(s) == '0')
    s->pos++;
  else if (scan_digits(s) == 0)
    return scan_fail(s, SCAN_SYNTAX, s->pos);
  if (scan_peek(s) == '.') {
    integer = false;
    s->pos++;
    if (scan_digits(s) == 0)
      return scan_fail(s, SCAN_SYNTAX, s->pos);
  }
  if (scan_peek(s) == 'e' || scan_peek(s) == 'E') {
    integer = false;
    s->pos++;
    if (scan_peek(s) == '+' || scan_peek(s) == '-')
      s->pos++;
    if (scan_digits(s) == 0)
      return scan_fail(s, SCAN_SYNTAX, s->pos);
  }
  if (!number_in_range(s->buf + start, s->pos - start, integer))
    return scan_fail(s, SCAN_RANGE, start);
  return 0;
}

static int scan_literal(scan_t *s, const char *word) {
  size_t n = strlen(word), i;
  for (i = 0; i < n; i++)
    if (s->pos + i >= s->len || s->buf[s->pos + i] != word[i])
      return scan_fail(s, SCAN_SYNTAX, s->pos + i);
  s->pos += n;
  return 0;
}

/* True when the key at buf[at, end) (quotes included) is s->lazy_key. */
static bool scan_is_lazy_key(const scan_t *s, size_t at, size_t end) {
  size_t n = s->lazy_key ? strlen(s->lazy_key) : 0;
  json_object *key;
  bool same;

  if (n == 0)
    return false;
  if (memchr(s->buf + at, '\\', end - at) == NULL)
    return end - at == n + 2 && memcmp(s->buf + at + 1, s->lazy_key, n) == 0;
  /* Spelled with escapes ("stud\u0065nts"): as json-c will read it. */
  json_tokener *tok = json_tokener_new();
  if (tok == NULL)
    return false;
  key = json_tokener_parse_ex(tok, s->buf + at, (int)(end - at));
  json_tokener_free(tok);
  same = json_object_is_type(key, json_type_string) &&
         (size_t)json_object_get_string_len(key) == n &&
         memcmp(json_object_get_string(key), s->lazy_key, n) == 0;
  json_object_put(key);
  return same;
}

/* The members of an object or the items of an array, s->pos just past the
 * opening bracket. */
static int scan_container(scan_t *s, int depth, bool object) {
  char close = object ? '}' : ']';

  if (depth > s->max_depth)
    return scan_fail(s, SCAN_DEPTH, s->pos - 1);
  scan_skip_ws(s);
  if (scan_peek(s) == close) {
    s->pos++;
    return 0;
  }
  for (;;) {
    scan_skip_ws(s);
    size_t key_at = s->pos, key_end = s->pos, value_at;
    if (object) {
      if (scan_peek(s) != '"')
        return scan_fail(s, SCAN_SYNTAX, s->pos);
      if (scan_string(s, true) < 0)
        return -1;
      key_end = s->pos;
      scan_skip_ws(s);
      if (scan_peek(s) != ':')
        return scan_fail(s, SCAN_SYNTAX, s->pos);
      s->pos++;
    }
    scan_skip_ws(s);
    value_at = s->pos;
    if (scan_value(s, depth) < 0)
      return -1;
    if (object && depth == 1 && scan_is_lazy_key(s, key_at, key_end)) {
      /* json-c keeps the last of repeated keys: so do we. */
      s->lazy_found = s->buf[value_at] == '[';
      s->lazy_start = value_at;
      s->lazy_end = s->pos;
    }
    scan_skip_ws(s);
    if (scan_peek(s) == close) {
      s->pos++;
      return 0;
    }
    if (scan_peek(s) != ',')
      return scan_fail(s, SCAN_SYNTAX, s->pos);
    s->pos++;
  }
}

/* `depth` is the nesting of the container holding this value (0 at the top):
 * the top-level object is at depth 1. */
static int scan_value(scan_t *s, int depth) {
  int c;
  scan_skip_ws(s);
  c = scan_peek(s);
  switch (c) {
  case '{':
  case '[':
    s->pos++;
    return scan_container(s, depth + 1, c == '{');
  case '"':
    return scan_string(s, false);
  case 't':
    return scan_literal(s, "true");
  case 'f':
    return scan_literal(s, "false");
  case 'n':
    return scan_literal(s, "null");
  default:
    if (c == '-' || (c >= '0' && c <= '9'))
      return scan_number(s);
    return scan_fail(s, SCAN_SYNTAX, c < 0 ? s->len : s->pos);
  }
}

static int scan_body(scan_t *s) {
  scan_skip_ws(s);
  if (s->pos == s->len)
    return scan_fail(s, SCAN_EMPTY, 0);
  if (scan_peek(s) != '{')
    return scan_fail(s, SCAN_NOT_OBJECT, s->pos);
  if (scan_value(s, 0) < 0)
    return -1;
  scan_skip_ws(s);
  if (s->pos != s->len)
    return scan_fail(s, SCAN_TRAILING, s->pos);
  return 0;
}

static int scan_report(const scan_t *s, bw_error_t *error) {
  switch (s->problem) {
  case SCAN_EMPTY:
    return bw_error_set(error, BW_EINVAL, "body: empty");
  case SCAN_NOT_OBJECT:
    return bw_error_set(error, BW_EINVAL, "body: expected a JSON object");
  case SCAN_DEPTH:
    return bw_error_set(error, BW_EINVAL, "body: nesting deeper than %d",
                        s->max_depth);
  case SCAN_RANGE:
    return bw_error_set(error, BW_EINVAL,
                        "body: number out of range at offset %zu",
                        s->problem_at);
  case SCAN_TRAILING:
    return bw_error_set(error, BW_EINVAL,
                        "body: unexpected data after the object at offset %zu",
                        s->problem_at);
  default:
    return bw_error_set(error, BW_EINVAL, "body: invalid JSON at offset %zu",
                        s->problem_at);
  }
}

/* ------------------------------------------------------------------------
 * The walk over the parsed tree: keys that MongoDB would read as operators or
 * paths, and strings holding a NUL (legal JSON, but C strings and BSON keys
 * would silently cut them). */

/* Builds a JSON path for messages; a path longer than the buffer is cut,
 * which only shortens the message (vsnprintf: no truncation warning for what
 * is meant). */
static void path_format(char *out, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void path_format(char *out, size_t size, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(out, size, fmt, ap);
  va_end(ap);
}

static void path_key(char *out, size_t size, const char *parent,
                     const char *key) {
  if (parent[0] == '\0')
    path_format(out, size, "%s", key);
  else
    path_format(out, size, "%s.%s", parent, key);
}

static void path_index(char *out, size_t size, const char *parent,
                       size_t index) {
  path_format(out, size, "%s[%zu]", parent, index);
}

static int walk_value(json_object *value, const char *path, bw_error_t *error);

static int walk_object(json_object *object, const char *path,
                       bw_error_t *error) {
  char child[512];
  json_object_object_foreach(object, key, value) {
    path_key(child, sizeof child, path, key);
    if (key[0] == '$')
      return bw_error_set(error, BW_EINVAL, "%s: keys must not start with '$'",
                          child);
    if (strchr(key, '.') != NULL)
      return bw_error_set(error, BW_EINVAL, "%s: keys must not contain '.'",
                          child);
    if (walk_value(value, child, error) < 0)
      return BW_EINVAL;
  }
  return 0;
}

static int walk_value(json_object *value, const char *path, bw_error_t *error) {
  char child[512];
  size_t i, n;

  switch (json_object_get_type(value)) {
  case json_type_object:
    return walk_object(value, path, error);
  case json_type_array:
    n = json_object_array_length(value);
    for (i = 0; i < n; i++) {
      path_index(child, sizeof child, path, i);
      if (walk_value(json_object_array_get_idx(value, i), child, error) < 0)
        return BW_EINVAL;
    }
    return 0;
  case json_type_string:
    if (strlen(json_object_get_string(value)) !=
        (size_t)json_object_get_string_len(value))
      return bw_error_set(error, BW_EINVAL, "%s: contains a NUL byte", path);
    return 0;
  default:
    return 0;
  }
}

/* Builds the tree from text scan_body() accepted.  json-c should never
 * refuse it; if it does, the client still gets json-c's offset. */
static int parse_checked_text(const char *buf, size_t len, int max_depth,
                              json_object **out, bw_error_t *error) {
  /* json-c counts the top-level value as one level more than we do. */
  json_tokener *tok = json_tokener_new_ex(max_depth + 1);
  enum json_tokener_error problem;
  size_t end;

  if (tok == NULL)
    return bw_error_set(error, BW_ENOMEM, "body: out of memory");
  json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
  *out = json_tokener_parse_ex(tok, buf, (int)len);
  problem = json_tokener_get_error(tok);
  end = json_tokener_get_parse_end(tok);
  json_tokener_free(tok);
  if (*out != NULL && end == len)
    return 0;
  json_object_put(*out);
  *out = NULL;
  return bw_error_set(error, BW_EINVAL, "body: invalid JSON at offset %zu (%s)",
                      end, json_tokener_error_desc(problem));
}

/* The checks of bw_json_parse_body up to the scan; scan->lazy_key is set by
 * the caller. */
static int scan_checked(scan_t *scan, const char *buf, size_t len,
                        int max_depth, bw_error_t *error) {
  const char *nul;
  size_t bad_utf8;

  if (buf == NULL || len == 0)
    return bw_error_set(error, BW_EINVAL, "body: empty");
  if (len > INT_MAX)
    return bw_error_set(error, BW_ETOOBIG, "body: too large");
  nul = memchr(buf, '\0', len);
  if (nul != NULL)
    return bw_error_set(error, BW_EINVAL,
                        "body: contains a NUL byte at offset %zu",
                        (size_t)(nul - buf));
  bad_utf8 = utf8_invalid_at(buf, len);
  if (bad_utf8 != len)
    return bw_error_set(error, BW_EINVAL, "body: invalid UTF-8 at offset %zu",
                        bad_utf8);
  scan->buf = buf;
  scan->len = len;
  scan->max_depth = max_depth < 1 ? 1 : max_depth;
  return scan_body(scan) < 0 ? scan_report(scan, error) : 0;
}

/* Builds and walks the tree of scanned text. */
static int parse_scanned(const scan_t *scan, const char *buf, size_t len,
                         json_object **out, bw_error_t *error) {
  json_object *root;
  int rc = parse_checked_text(buf, len, scan->max_depth, &root, error);

  if (rc < 0)
    return rc;
  if (walk_object(root, "", error) < 0) {
    json_object_put(root);
    return BW_EINVAL;
  }
  if (scan->nul_in_key) {
    json_object_put(root);
    return bw_error_set(error, BW_EINVAL,
                        "body: an object key contains a NUL byte at offset %zu",
                        scan->nul_in_key_at);
  }
  *out = root;
  return 0;
}

int bw_json_parse_body(const char *buf, size_t len, int max_depth,
                       json_object **out, bw_error_t *error) {
  scan_t scan = {0};
  int rc = scan_checked(&scan, buf, len, max_depth, error);
  *out = NULL;
  return rc < 0 ? rc : parse_scanned(&scan, buf, len, out, error);
}

/* ------------------------------------------------------------------------
 * Items kept as text. */

struct bw_json_items {
  char *text;    /* the array's text, brackets included */
  size_t n, cap; /* element i is text[at[i].start, at[i].start + at[i].len) */
  struct {
    size_t start, len;
  } * at;
  int max_depth;
  char key[64]; /* for paths in messages: "students[3].X" */
};

static int items_push(bw_json_items_t *items, size_t start, size_t len) {
  if (items->n == items->cap) {
    size_t cap = items->cap ? items->cap * 2 : 64;
    void *at = realloc(items->at, cap * sizeof *items->at);
    if (at == NULL)
      return BW_ENOMEM;
    items->at = at;
    items->cap = cap;
  }
  items->at[items->n].start = start;
  items->at[items->n++].len = len;
  return 0;
}

/* Splits the array text (already scanned: valid, within the depth limit)
 * into its elements. */
static int items_split(bw_json_items_t *items, size_t len) {
  scan_t sub = {.buf = items->text, .len = len, .pos = 1, .max_depth = INT_MAX};
  for (;;) {
    size_t start;
    scan_skip_ws(&sub);
    if (scan_peek(&sub) == ']')
      return 0;
    start = sub.pos;
    if (scan_value(&sub, 2) < 0)
      return BW_EINVAL; /* not reached: the body was scanned */
    if (items_push(items, start, sub.pos - start) < 0)
      return BW_ENOMEM;
    scan_skip_ws(&sub);
    if (scan_peek(&sub) == ',')
      sub.pos++;
  }
}

static bw_json_items_t *items_alloc(const scan_t *scan, const char *key) {
  size_t len = scan->lazy_end - scan->lazy_start;
  bw_json_items_t *items = calloc(1, sizeof *items);

  if (items == NULL || (items->text = malloc(len + 1)) == NULL) {
    free(items);
    return NULL;
  }
  memcpy(items->text, scan->buf + scan->lazy_start, len);
  items->text[len] = '\0';
  items->max_depth = scan->max_depth;
  snprintf(items->key, sizeof items->key, "%s", key);
  if (items_split(items, len) < 0) {
    bw_json_items_free(items);
    return NULL;
  }
  return items;
}

int bw_json_parse_body_lazy(const char *buf, size_t len, int max_depth,
                            const char *key, json_object **out,
                            bw_json_items_t **items, bw_error_t *error) {
  scan_t scan = {.lazy_key = key};
  size_t cut, rest_len;
  char *rest;
  int rc;

  *out = NULL;
  *items = NULL;
  rc = scan_checked(&scan, buf, len, max_depth, error);
  if (rc < 0 || !scan.lazy_found)
    return rc < 0 ? rc : parse_scanned(&scan, buf, len, out, error);
  /* The tree is built from the body with that array emptied. */
  cut = scan.lazy_end - scan.lazy_start;
  rest_len = len - cut + 2;
  if ((rest = malloc(rest_len + 1)) == NULL)
    return bw_error_set(error, BW_ENOMEM, "body: out of memory");
  memcpy(rest, buf, scan.lazy_start);
  memcpy(rest + scan.lazy_start, "[]", 2);
  memcpy(rest + scan.lazy_start + 2, buf + scan.lazy_end, len - scan.lazy_end);
  rest[rest_len] = '\0';
  rc = parse_scanned(&scan, rest, rest_len, out, error);
  free(rest);
  if (rc == 0 && (*items = items_alloc(&scan, key)) == NULL) {
    json_object_put(*out);
    *out = NULL;
    rc = bw_error_set(error, BW_ENOMEM, "body: out of memory");
  }
  return rc;
}

/* Element i's tree.  json-c cannot tell a number at the very end of its
 * input from one cut short (it asks for more): a space ends it. */
static int items_parse(const bw_json_items_t *items, size_t i,
                       json_object **out, bw_error_t *error) {
  json_tokener *tok = json_tokener_new_ex(items->max_depth + 1);
  enum json_tokener_error problem;

  if (tok == NULL)
    return bw_error_set(error, BW_ENOMEM, "body: out of memory");
  json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
  *out = json_tokener_parse_ex(tok, items->text + items->at[i].start,
                               (int)items->at[i].len);
  if (*out == NULL && json_tokener_get_error(tok) == json_tokener_continue)
    *out = json_tokener_parse_ex(tok, " ", 1);
  problem = json_tokener_get_error(tok);
  json_tokener_free(tok);
  if (problem == json_tokener_success)
    return 0; /* *out is NULL for a JSON null */
  json_object_put(*out);
  *out = NULL;
  /* Not reached: the text was scanned. */
  return bw_error_set(error, BW_EINVAL, "%s[%zu]: invalid JSON", items->key, i);
}

size_t bw_json_items_count(const bw_json_items_t *items) {
  return items ? items->n : 0;
}

int bw_json_items_get(const bw_json_items_t *items, size_t i, json_object **out,
                      bw_error_t *error) {
  char path[512];
  int rc;

  *out = NULL;
  rc = items_parse(items, i, out, error);
  path_index(path, sizeof path, items->key, i);
  if (rc == 0 && walk_value(*out, path, error) < 0) {
    json_object_put(*out);
    *out = NULL;
    rc = BW_EINVAL;
  }
  return rc;
}

void bw_json_items_free(bw_json_items_t *items) {
  if (items == NULL)
    return;
  free(items->text);
  free(items->at);
  free(items);
}

/* ------------------------------------------------------------------------
 * JSend envelopes. */

json_object *bw_jsend_success(json_object *data) {
  json_object *reply = json_object_new_object();
  if (reply == NULL) {
    json_object_put(data);
    return NULL;
  }
  json_object_object_add(reply, "status", json_object_new_string("success"));
  json_object_object_add(reply, "data", data);
  return reply;
}

json_object *bw_jsend_fail(const char *message) {
  json_object *reply = json_object_new_object();
  json_object *data = json_object_new_object();
  if (reply == NULL || data == NULL) {
    json_object_put(reply);
    json_object_put(data);
    return NULL;
  }
  json_object_object_add(data, "message",
                         json_object_new_string(message ? message : ""));
  json_object_object_add(reply, "status", json_object_new_string("fail"));
  json_object_object_add(reply, "data", data);
  return reply;
}

json_object *bw_jsend_fail_text(const char *message) {
  json_object *reply = json_object_new_object();
  if (reply == NULL)
    return NULL;
  json_object_object_add(reply, "status", json_object_new_string("fail"));
  json_object_object_add(reply, "data",
                         json_object_new_string(message ? message : ""));
  return reply;
}

json_object *bw_jsend_error(const char *message, int code) {
  json_object *reply = json_object_new_object();
  if (reply == NULL)
    return NULL;
  json_object_object_add(reply, "status", json_object_new_string("error"));
  json_object_object_add(reply, "message",
                         json_object_new_string(message ? message : ""));
  json_object_object_add(reply, "code", json_object_new_int(code));
  return reply;
}

/* ------------------------------------------------------------------------
 * BSON -> JSON.
 *
 * json-c's JSON null is a NULL pointer, so the internal converters return a
 * status and leave the value in *out, where NULL may be a legitimate null. */

static int from_iter(const bson_iter_t *iter, json_object **out);

static int from_children(const bson_iter_t *iter, bool array,
                         json_object **out) {
  json_object *result =
      array ? json_object_new_array() : json_object_new_object();
  bson_iter_t child;

  *out = NULL;
  if (result == NULL)
    return BW_ENOMEM;
  if (bson_iter_recurse(iter, &child)) {
    while (bson_iter_next(&child)) {
      json_object *value;
      int rc = from_iter(&child, &value);
      if (rc == 0 && array && json_object_array_add(result, value) != 0) {
        json_object_put(value);
        rc = BW_ENOMEM;
      } else if (rc == 0 && !array) {
        rc = bw_json_add(result, bson_iter_key(&child), value);
      }
      if (rc < 0) {
        json_object_put(result);
        return BW_ENOMEM;
      }
    }
  }
  *out = result;
  return 0;
}

/* "2026-11-26T02:31:46.123Z" from milliseconds since the epoch (null when
 * the year does not fit struct tm). */
static int from_date_time(int64_t ms, json_object **out) {
  char text[64], when[48];
  int64_t seconds = ms / 1000, millis = ms % 1000;
  time_t t;
  struct tm tm;

  *out = NULL;
  if (millis < 0) { /* floor division, for dates before 1970 */
    millis += 1000;
    seconds--;
  }
  t = (time_t)seconds;
  if (gmtime_r(&t, &tm) == NULL)
    return 0;
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(text, sizeof text, "%s.%03dZ", when, (int)millis);
  *out = json_object_new_string(text);
  return *out ? 0 : BW_ENOMEM;
}

/* The relaxed extended JSON of one value, e.g. {"$binary": {...}}. */
static int from_extended(const bson_iter_t *iter, json_object **out) {
  bson_t wrapper = BSON_INITIALIZER;
  json_object *parsed = NULL, *value = NULL;
  char *text = NULL;

  *out = NULL;
  if (bson_append_iter(&wrapper, "v", 1, iter))
    text = bson_as_relaxed_extended_json(&wrapper, NULL);
  bson_destroy(&wrapper);
  if (text == NULL)
    return BW_ENOMEM;
  parsed = json_tokener_parse(text);
  bson_free(text);
  if (parsed == NULL || !json_object_object_get_ex(parsed, "v", &value)) {
    json_object_put(parsed);
    return BW_ENOMEM;
  }
  *out = json_object_get(value);
  json_object_put(parsed);
  return 0;
}

int bw_json_add(json_object *object, const char *key, json_object *value) {
  if (value == NULL || json_object_object_add(object, key, value) != 0) {
    json_object_put(value);
    return BW_ENOMEM;
  }
  return 0;
}

/* A double as the shortest text that reads back as the same number, so a
 * stored 0.42 is shown as 0.42, not json-c's 0.41999999999999998. */
static json_object *json_double_shortest(double d) {
  char text[32];
  for (int digits = 15; digits <= 17; digits++) {
    snprintf(text, sizeof text, "%.*g", digits, d);
    if (strtod(text, NULL) == d)
      break;
  }
  /* Still a double to the reader: 1.0 stays 1.0, as json-c writes it. */
  if (strpbrk(text, ".e") == NULL)
    strcat(text, ".0");
  return json_object_new_double_s(d, text);
}

/* Wraps a json-c constructor's result: NULL from it means ENOMEM. */
static int made(json_object *value, json_object **out) {
  *out = value;
  return value ? 0 : BW_ENOMEM;
}

static int from_iter(const bson_iter_t *iter, json_object **out) {
  char oid[25];
  uint32_t len;
  const char *text;
  double d;

  *out = NULL;
  switch (bson_iter_type(iter)) {
  case BSON_TYPE_OID:
    bson_oid_to_string(bson_iter_oid(iter), oid);
    return made(json_object_new_string(oid), out);
  case BSON_TYPE_DATE_TIME:
    return from_date_time(bson_iter_date_time(iter), out);
  case BSON_TYPE_INT32:
    return made(json_object_new_int64(bson_iter_int32(iter)), out);
  case BSON_TYPE_INT64:
    return made(json_object_new_int64(bson_iter_int64(iter)), out);
  case BSON_TYPE_DOUBLE:
    d = bson_iter_double(iter);
    /* NaN and inf have no JSON form; null keeps the reply parseable. */
    return isfinite(d) ? made(json_double_shortest(d), out) : 0;
  case BSON_TYPE_BOOL:
    return made(json_object_new_boolean(bson_iter_bool(iter)), out);
  case BSON_TYPE_NULL:
    return 0;
  case BSON_TYPE_UTF8:
    text = bson_iter_utf8(iter, &len);
    return made(json_object_new_string_len(text, (int)len), out);
  case BSON_TYPE_DOCUMENT:
    return from_children(iter, false, out);
  case BSON_TYPE_ARRAY:
    return from_children(iter, true, out);
  default:
    return from_extended(iter, out);
  }
}

json_object *bw_json_from_bson_iter(const bson_iter_t *iter) {
  json_object *value;
  from_iter(iter, &value);
  return value;
}

json_object *bw_json_from_bson(const bson_t *doc) {
  json_object *result = json_object_new_object();
  bson_iter_t iter;

  if (result == NULL || doc == NULL || !bson_iter_init(&iter, doc))
    return result;
  while (bson_iter_next(&iter)) {
    json_object *value;
    if (from_iter(&iter, &value) < 0 ||
        json_object_object_add(result, bson_iter_key(&iter), value) != 0) {
      json_object_put(value);
      json_object_put(result);
      return NULL;
    }
  }
  return result;
}

/* ------------------------------------------------------------------------
 * JSON -> BSON. */

static bool append_int(bson_t *out, const char *key, json_object *value) {
  int64_t i = json_object_get_int64(value);
  uint64_t u = json_object_get_uint64(value);
  /* Above INT64_MAX BSON has no integer type: keep the magnitude. */
  if (i == INT64_MAX && u > (uint64_t)INT64_MAX)
    return bson_append_double(out, key, -1, (double)u);
  return bson_append_int64(out, key, -1, i);
}

static bool append_object(bson_t *out, const char *key, json_object *value) {
  bson_t child;
  bool ok = true;
  if (!bson_append_document_begin(out, key, -1, &child))
    return false;
  json_object_object_foreach(value, k, v) {
    if (bw_json_append_bson(&child, k, v) < 0) {
      ok = false;
      break;
    }
  }
  return bson_append_document_end(out, &child) && ok;
}

static bool append_array(bson_t *out, const char *key, json_object *value) {
  bson_t child;
  bool ok = true;
  size_t i, n = json_object_array_length(value);
  if (!bson_append_array_begin(out, key, -1, &child))
    return false;
  for (i = 0; i < n && ok; i++) {
    char buf[16];
    const char *index;
    bson_uint32_to_string((uint32_t)i, &index, buf, sizeof buf);
    ok = bw_json_append_bson(&child, index,
                             json_object_array_get_idx(value, i)) == 0;
  }
  return bson_append_array_end(out, &child) && ok;
}

int bw_json_append_bson(bson_t *out, const char *key, json_object *value) {
  bool ok;
  switch (json_object_get_type(value)) {
  case json_type_null:
    ok = bson_append_null(out, key, -1);
    break;
  case json_type_boolean:
    ok = bson_append_bool(out, key, -1, json_object_get_boolean(value));
    break;
  case json_type_int:
    ok = append_int(out, key, value);
    break;
  case json_type_double:
    ok = bson_append_double(out, key, -1, json_object_get_double(value));
    break;
  case json_type_string:
    ok = bson_append_utf8(out, key, -1, json_object_get_string(value),
                          json_object_get_string_len(value));
    break;
  case json_type_object:
    ok = append_object(out, key, value);
    break;
  case json_type_array:
    ok = append_array(out, key, value);
    break;
  default:
    ok = false;
  }
  return ok ? 0 : BW_ENOMEM;
}

size_t bw_json_size(json_object *value) {
  size_t len = 0;
  json_object_to_json_string_length(
      value, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
  return len;
}
