#include "course.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "auth.h"
#include "queue.h" /* BW_COURSE_MAX */

/* A courses file is small (one line per course); this only stops a wrong
 * path (a log, a device) from being read whole. */
#define COURSES_FILE_MAX (16 * 1024 * 1024)
#define COURSES_DEPTH 8

typedef struct course {
  char id[BW_COURSE_MAX + 1];
  char **tokens; /* admin */
  size_t n_tokens;
  char **query_tokens; /* member only */
  size_t n_query_tokens;
} course_t;

struct bw_courses {
  course_t *items;
  size_t count;
};

/* Where a message points: the file, and the text to find a key's line. */
typedef struct source {
  const char *name;
  const char *text;
  size_t len;
} source_t;

static size_t line_at(const source_t *src, size_t offset) {
  size_t line = 1;
  for (size_t i = 0; i < offset && i < src->len; i++)
    line += src->text[i] == '\n';
  return line;
}

/* The line where the object key `key` is first written ("key" then blanks
 * and ':'), after `from`; 0 when it cannot be found (an escaped key). */
static size_t key_line(const source_t *src, const char *key, size_t from,
                       size_t *at) {
  size_t klen = strlen(key);

  for (size_t i = from; i + klen + 2 <= src->len; i++) {
    size_t j;
    if (src->text[i] != '"' || strncmp(src->text + i + 1, key, klen) != 0 ||
        src->text[i + 1 + klen] != '"')
      continue;
    j = i + klen + 2;
    while (j < src->len && strchr(" \t\r\n", src->text[j]) != NULL)
      j++;
    if (j < src->len && src->text[j] == ':') {
      if (at != NULL)
        *at = i;
      return line_at(src, i);
    }
  }
  return 0;
}

/* "<file>:<line>: <what>", the line of `course` (and of its `field` after
 * it, when given). */
static int course_fail(const source_t *src, const char *course,
                       const char *field, bw_error_t *error, const char *fmt,
                       ...) __attribute__((format(printf, 5, 6)));
static int course_fail(const source_t *src, const char *course,
                       const char *field, bw_error_t *error, const char *fmt,
                       ...) {
  char what[384];
  size_t line = 0, at = 0;
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  if (course != NULL)
    line = key_line(src, course, 0, &at);
  if (line != 0 && field != NULL) {
    size_t inner = key_line(src, field, at, NULL);
    if (inner != 0)
      line = inner;
  }
  if (line == 0)
    return bw_error_set(error, BW_EINVAL, "%s: %s", src->name, what);
  return bw_error_set(error, BW_EINVAL, "%s:%zu: %s", src->name, line, what);
}

/* [-A-Za-z0-9_]{1,max}: the original's id_regex, bounded. */
static bool course_id_valid(const char *id, size_t max) {
  size_t n = strspn(id, "abcdefghijklmnopqrstuvwxyz"
                        "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-");
  return n > 0 && n <= max && id[n] == '\0';
}

static bool token_valid(const char *token, size_t len) {
  if (len == 0 || len > BW_COURSE_TOKEN_MAX)
    return false;
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)token[i] <= ' ' || (unsigned char)token[i] >= 0x7f)
      return false;
  return true;
}

/* A JSON array of tokens into *out (strdup'd); `where` is
 * "cs241" or "cs241.tokens" for messages. */
static int read_tokens(const source_t *src, const char *course,
                       const char *field, json_object *array, char ***out,
                       size_t *count, bw_error_t *error) {
  const char *where = field != NULL ? field : "";
  const char *dot = field != NULL ? "." : "";
  size_t n;

  if (!json_object_is_type(array, json_type_array))
    return course_fail(src, course, field, error,
                       "%s%s%s: expected an array of tokens", course, dot,
                       where);
  n = json_object_array_length(array);
  *out = calloc(n > 0 ? n : 1, sizeof **out);
  if (*out == NULL)
    return bw_error_set(error, BW_ENOMEM, "courses: out of memory");
  for (size_t i = 0; i < n; i++) {
    json_object *item = json_object_array_get_idx(array, i);
    if (!json_object_is_type(item, json_type_string))
      return course_fail(src, course, field, error,
                         "%s%s%s[%zu]: expected a string", course, dot, where,
                         i);
    if (!token_valid(json_object_get_string(item),
                     (size_t)json_object_get_string_len(item)))
      return course_fail(src, course, field, error,
                         "%s%s%s[%zu]: a token is 1 to %d printable ASCII "
                         "characters without spaces",
                         course, dot, where, i, BW_COURSE_TOKEN_MAX);
    (*out)[i] = strdup(json_object_get_string(item));
    if ((*out)[i] == NULL)
      return bw_error_set(error, BW_ENOMEM, "courses: out of memory");
    *count = i + 1;
  }
  return 0;
}

/* The later format: {"tokens": [...], "query_tokens": [...]}. */
static int read_course_object(const source_t *src, const char *id,
                              json_object *value, course_t *course,
                              bw_error_t *error) {
  json_object *tokens = NULL, *query = NULL;
  int rc;

  json_object_object_foreach(value, key, field) {
    (void)field;
    if (strcmp(key, "tokens") != 0 && strcmp(key, "query_tokens") != 0)
      return course_fail(src, id, key, error,
                         "%s.%s: unknown key (expected tokens, query_tokens)",
                         id, key);
  }
  if (!json_object_object_get_ex(value, "tokens", &tokens))
    return course_fail(src, id, NULL, error, "%s.tokens: missing", id);
  rc = read_tokens(src, id, "tokens", tokens, &course->tokens,
                   &course->n_tokens, error);
  if (rc == 0 && json_object_object_get_ex(value, "query_tokens", &query))
    rc = read_tokens(src, id, "query_tokens", query, &course->query_tokens,
                     &course->n_query_tokens, error);
  return rc;
}

static int read_course(const source_t *src, const char *id, json_object *value,
                       course_t *course, bw_error_t *error) {
  if (!course_id_valid(id, BW_COURSE_MAX))
    return course_fail(src, id, NULL, error,
                       "%s: a course id is 1 to %d of A-Z a-z 0-9 _ -", id,
                       BW_COURSE_MAX);
  memcpy(course->id, id, strlen(id) + 1);
  if (json_object_is_type(value, json_type_array))
    return read_tokens(src, id, NULL, value, &course->tokens,
                       &course->n_tokens, error);
  if (json_object_is_type(value, json_type_object))
    return read_course_object(src, id, value, course, error);
  return course_fail(src, id, NULL, error,
                     "%s: expected an array of tokens or an object "
                     "{\"tokens\": [...], \"query_tokens\": [...]}",
                     id);
}

/* The text as one JSON object, or a message with the line of the syntax
 * error. */
static int parse_json(const source_t *src, json_object **out,
                      bw_error_t *error) {
  json_tokener *tok = json_tokener_new_ex(COURSES_DEPTH);
  enum json_tokener_error jerr;
  size_t end;

  *out = NULL;
  if (tok == NULL)
    return bw_error_set(error, BW_ENOMEM, "courses: out of memory");
  json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
  *out = json_tokener_parse_ex(tok, src->text, (int)src->len);
  jerr = json_tokener_get_error(tok);
  end = json_tokener_get_parse_end(tok);
  json_tokener_free(tok);
  if (*out == NULL || jerr != json_tokener_success) {
    json_object_put(*out);
    *out = NULL;
    if (jerr == json_tokener_continue)
      return bw_error_set(error, BW_EINVAL, "%s:%zu: unexpected end of file",
                          src->name, line_at(src, src->len));
    return bw_error_set(error, BW_EINVAL, "%s:%zu: invalid JSON (%s)",
                        src->name, line_at(src, end),
                        json_tokener_error_desc(jerr));
  }
  while (end < src->len && strchr(" \t\r\n", src->text[end]) != NULL)
    end++;
  if (end < src->len || !json_object_is_type(*out, json_type_object)) {
    size_t line = line_at(src, end < src->len ? end : 0);
    json_object_put(*out);
    *out = NULL;
    return bw_error_set(error, BW_EINVAL,
                        "%s:%zu: expected one JSON object {\"<course>\": "
                        "[tokens], ...}",
                        src->name, line);
  }
  return 0;
}

int bw_courses_parse(const char *name, const char *text, size_t len,
                     bw_courses_t **out, bw_error_t *error) {
  source_t src = {.name = name, .text = text, .len = len};
  bw_courses_t *courses;
  json_object *root;
  size_t i = 0;
  int rc;

  *out = NULL;
  if (memchr(text, '\0', len) != NULL)
    return bw_error_set(error, BW_EINVAL, "%s:%zu: contains a NUL byte", name,
                        line_at(&src, (size_t)((const char *)memchr(text, '\0',
                                                                    len) -
                                               text)));
  rc = parse_json(&src, &root, error);
  if (rc < 0)
    return rc;
  courses = calloc(1, sizeof *courses);
  if (courses != NULL)
    courses->items = calloc((size_t)json_object_object_length(root) + 1,
                            sizeof *courses->items);
  if (courses == NULL || courses->items == NULL) {
    free(courses);
    json_object_put(root);
    return bw_error_set(error, BW_ENOMEM, "courses: out of memory");
  }
  json_object_object_foreach(root, id, value) {
    courses->count = ++i;
    rc = read_course(&src, id, value, &courses->items[i - 1], error);
    if (rc < 0)
      break;
  }
  json_object_put(root);
  if (rc < 0) {
    bw_courses_free(courses);
    return rc;
  }
  *out = courses;
  return 0;
}

static int read_file(const char *path, char **text, size_t *len,
                     bw_error_t *error) {
  FILE *f = fopen(path, "rb");
  struct stat st;
  size_t got;

  *text = NULL;
  if (f == NULL)
    return bw_error_set(error, BW_EINVAL, "%s: %s", path, strerror(errno));
  if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode) ||
      st.st_size > COURSES_FILE_MAX) {
    fclose(f);
    return bw_error_set(error, BW_EINVAL,
                        "%s: not a regular file of at most %d bytes", path,
                        COURSES_FILE_MAX);
  }
  *text = malloc((size_t)st.st_size + 1);
  if (*text == NULL) {
    fclose(f);
    return bw_error_set(error, BW_ENOMEM, "courses: out of memory");
  }
  got = fread(*text, 1, (size_t)st.st_size, f);
  fclose(f);
  (*text)[got] = '\0';
  *len = got;
  return 0;
}

int bw_courses_load(const char *path, bw_courses_t **out, bw_error_t *error) {
  char *text;
  size_t len = 0;
  int rc;

  *out = NULL;
  if (path == NULL || path[0] == '\0')
    return 0;
  rc = read_file(path, &text, &len, error);
  if (rc == 0)
    rc = bw_courses_parse(path, text, len, out, error);
  free(text);
  return rc;
}

static void free_tokens(char **tokens, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(tokens[i]);
  free(tokens);
}

void bw_courses_free(bw_courses_t *courses) {
  if (courses == NULL)
    return;
  for (size_t i = 0; i < courses->count; i++) {
    free_tokens(courses->items[i].tokens, courses->items[i].n_tokens);
    free_tokens(courses->items[i].query_tokens,
                courses->items[i].n_query_tokens);
  }
  free(courses->items);
  free(courses);
}

size_t bw_courses_count(const bw_courses_t *courses) {
  return courses != NULL ? courses->count : 0;
}

static const course_t *course_find(const bw_courses_t *courses,
                                   const char *id) {
  if (courses == NULL || id == NULL)
    return NULL;
  for (size_t i = 0; i < courses->count; i++)
    if (strcmp(courses->items[i].id, id) == 0)
      return &courses->items[i];
  return NULL;
}

/* Every token of the list is compared, whichever matches: the time says
 * nothing about which one (or how much of one) was right. */
static bool token_listed(char *const *tokens, size_t n, const char *given) {
  bool found = false;
  for (size_t i = 0; i < n; i++)
    found |= bw_auth_token_equal(given, tokens[i]);
  return found;
}

int bw_course_auth(const bw_courses_t *courses, const char *authorization,
                   const char *course, enum bw_course_role need,
                   bw_error_t *error) {
  const course_t *c;
  const char *token;
  bool ok;

  if (!bw_auth_bearer_format(authorization))
    return bw_error_set(error, BW_EAUTH, "invalid token format");
  token = authorization + 7;
  c = course_find(courses, course);
  if (c == NULL)
    return bw_error_set(error, BW_EAUTH, "course not found");
  ok = token_listed(c->tokens, c->n_tokens, token);
  if (need == BW_COURSE_MEMBER)
    ok |= token_listed(c->query_tokens, c->n_query_tokens, token);
  if (!ok)
    return bw_error_set(error, BW_EAUTH, "invalid token");
  return 0;
}
