#include "env.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

/* ------------------------------------------------------------------------
 * Scanning a stage value into literal pieces and references. */

static bool is_name_start(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool is_name_char(char c) {
  return is_name_start(c) || (c >= '0' && c <= '9');
}

static size_t name_length(const char *p) {
  size_t n = 0;
  if (!is_name_start(p[0]))
    return 0;
  while (is_name_char(p[n]))
    n++;
  return n;
}

/* Length of the reference starting at the '$' in p (0 when that '$' is a
 * literal), with the name's position in *name and length in *name_len. */
static size_t reference_length(const char *p, const char **name,
                               size_t *name_len) {
  size_t n;
  if (p[1] == '{') {
    n = name_length(p + 2);
    if (n == 0 || p[2 + n] != '}')
      return 0;
    *name = p + 2;
    *name_len = n;
    return n + 3;
  }
  n = name_length(p + 1);
  if (n == 0)
    return 0;
  *name = p + 1;
  *name_len = n;
  return n + 1;
}

int bw_env_scan(const char *value, bw_env_piece_fn fn, void *ctx) {
  const char *literal = value, *p = value;
  int rc;

  while (*p != '\0') {
    const char *name;
    size_t name_len, ref_len;

    if (*p != '$') {
      p++;
      continue;
    }
    if (p[1] == '$') { /* "$$": the literal run ends with one '$' */
      if ((rc = fn(literal, (size_t)(p + 1 - literal), false, ctx)) != 0)
        return rc;
      p += 2;
      literal = p;
      continue;
    }
    ref_len = reference_length(p, &name, &name_len);
    if (ref_len == 0) {
      p++;
      continue;
    }
    if (p > literal && (rc = fn(literal, (size_t)(p - literal), false, ctx)))
      return rc;
    if ((rc = fn(name, name_len, true, ctx)) != 0)
      return rc;
    p += ref_len;
    literal = p;
  }
  if (p > literal)
    return fn(literal, (size_t)(p - literal), false, ctx);
  return 0;
}

/* ------------------------------------------------------------------------
 * Looking names up in the student and global layers. */

/* The layer's value for NAME given by pointer and length (names inside a
 * stage value are not NUL-terminated), or NULL. */
static json_object *layer_get(json_object *layer, const char *name, size_t len,
                              bool *found) {
  char small[256];
  char *key = len < sizeof small ? small : malloc(len + 1);
  json_object *value = NULL;

  *found = false;
  if (layer == NULL || key == NULL) {
    if (key != small)
      free(key);
    return NULL;
  }
  memcpy(key, name, len);
  key[len] = '\0';
  *found = json_object_object_get_ex(layer, key, &value);
  if (key != small)
    free(key);
  return value;
}

/* Student first, then global.  *found tells a null value from no value. */
static json_object *lookup(json_object *global, json_object *student,
                           const char *name, size_t len, bool *found) {
  json_object *value = layer_get(student, name, len, found);
  if (*found)
    return value;
  return layer_get(global, name, len, found);
}

/* A layer value as text: strings as they are, anything else (numbers and
 * booleans of an unnormalised layer) as its JSON text. */
static const char *value_text(json_object *value, size_t *len) {
  const char *text;
  if (json_object_is_type(value, json_type_string)) {
    *len = (size_t)json_object_get_string_len(value);
    return json_object_get_string(value);
  }
  text = value == NULL
             ? ""
             : json_object_to_json_string_ext(value, JSON_C_TO_STRING_PLAIN);
  *len = strlen(text);
  return text;
}

/* ------------------------------------------------------------------------
 * bw_env_check */

typedef struct check_ctx {
  json_object *global, *student;
  const char *where, *stage_path, *var;
  bw_error_t *error;
} check_ctx_t;

static int check_piece(const char *text, size_t len, bool is_ref, void *arg) {
  check_ctx_t *c = arg;
  bool found;

  if (!is_ref)
    return 0;
  lookup(c->global, c->student, text, len, &found);
  if (found)
    return 0;
  return bw_error_set(
      c->error, BW_EINVAL, "%s%s%.*s (referenced by %s%senv.%s) is not defined",
      c->where ? c->where : "", c->where ? ": " : "", (int)len, text,
      c->stage_path ? c->stage_path : "", c->stage_path ? "." : "", c->var);
}

int bw_env_check(json_object *global, json_object *student,
                 json_object *stage_env, const char *where,
                 const char *stage_path, bw_error_t *error) {
  check_ctx_t ctx = {global, student, where, stage_path, NULL, error};

  if (!json_object_is_type(stage_env, json_type_object))
    return 0;
  json_object_object_foreach(stage_env, var, value) {
    int rc;
    if (!json_object_is_type(value, json_type_string))
      continue;
    ctx.var = var;
    rc = bw_env_scan(json_object_get_string(value), check_piece, &ctx);
    if (rc != 0)
      return rc;
  }
  return 0;
}

/* ------------------------------------------------------------------------
 * bw_env_resolve */

typedef struct expand_ctx {
  json_object *global, *student;
  const char *var;
  FILE *out;
  bw_error_t *error;
} expand_ctx_t;

static int expand_piece(const char *text, size_t len, bool is_ref, void *arg) {
  expand_ctx_t *c = arg;
  json_object *value;
  bool found;

  if (is_ref) {
    value = lookup(c->global, c->student, text, len, &found);
    if (!found)
      return bw_error_set(c->error, BW_EINVAL, "env.%s: %.*s is not defined",
                          c->var, (int)len, text);
    text = value_text(value, &len);
  }
  if (len > 0 && fwrite(text, 1, len, c->out) != len)
    return bw_error_set(c->error, BW_ENOMEM, "env: out of memory");
  return 0;
}

/* The stage value of `var` with its references replaced: a new string. */
static int expand_value(json_object *global, json_object *student,
                        const char *var, json_object *stage_value,
                        json_object **out, bw_error_t *error) {
  expand_ctx_t ctx = {global, student, var, NULL, error};
  const char *raw = json_object_get_string(stage_value);
  char *text = NULL;
  size_t len = 0;
  int rc;

  if (raw == NULL || raw[0] == '\0') {
    bool found;
    json_object *inherited = lookup(global, student, var, strlen(var), &found);
    raw = found ? value_text(inherited, &len) : "";
    *out = json_object_new_string_len(raw, (int)len);
    return *out ? 0 : bw_error_set(error, BW_ENOMEM, "env: out of memory");
  }
  ctx.out = open_memstream(&text, &len);
  if (ctx.out == NULL)
    return bw_error_set(error, BW_ENOMEM, "env: out of memory");
  rc = bw_env_scan(raw, expand_piece, &ctx);
  if (fclose(ctx.out) != 0 && rc == 0)
    rc = bw_error_set(error, BW_ENOMEM, "env: out of memory");
  if (rc == 0) {
    *out = json_object_new_string_len(text, (int)len);
    if (*out == NULL)
      rc = bw_error_set(error, BW_ENOMEM, "env: out of memory");
  }
  free(text);
  return rc;
}

/* Copies every NAME of `layer` into `merged` as a string, replacing what a
 * less specific layer put there. */
static int merge_layer(json_object *merged, json_object *layer,
                       bw_error_t *error) {
  if (!json_object_is_type(layer, json_type_object))
    return 0;
  json_object_object_foreach(layer, name, value) {
    size_t len;
    const char *text = value_text(value, &len);
    if (bw_json_add(merged, name, json_object_new_string_len(text, (int)len)) <
        0)
      return bw_error_set(error, BW_ENOMEM, "env: out of memory");
  }
  return 0;
}

static int merge_stage(json_object *merged, json_object *global,
                       json_object *student, json_object *stage_env,
                       bw_error_t *error) {
  if (!json_object_is_type(stage_env, json_type_object))
    return 0;
  json_object_object_foreach(stage_env, var, value) {
    json_object *resolved;
    int rc = expand_value(global, student, var, value, &resolved, error);
    if (rc < 0)
      return rc;
    if (bw_json_add(merged, var, resolved) < 0)
      return bw_error_set(error, BW_ENOMEM, "env: out of memory");
  }
  return 0;
}

static int merge_id(json_object *merged, const char *name, const char *id,
                    bw_error_t *error) {
  if (id != NULL && bw_json_add(merged, name, json_object_new_string(id)) < 0)
    return bw_error_set(error, BW_ENOMEM, "env: out of memory");
  return 0;
}

static int compare_names(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static json_object *name_value_string(const char *name, json_object *value) {
  size_t name_len = strlen(name);
  size_t value_len = (size_t)json_object_get_string_len(value);
  char *text = malloc(name_len + 1 + value_len);
  json_object *result;

  if (text == NULL)
    return NULL;
  memcpy(text, name, name_len);
  text[name_len] = '=';
  memcpy(text + name_len + 1, json_object_get_string(value), value_len);
  result = json_object_new_string_len(text, (int)(name_len + 1 + value_len));
  free(text);
  return result;
}

/* merged (NAME -> string) as a sorted array of "NAME=value". */
static int sorted_pairs(json_object *merged, json_object **out,
                        bw_error_t *error) {
  size_t n = (size_t)json_object_object_length(merged), i = 0;
  const char **names = malloc((n ? n : 1) * sizeof *names);
  json_object *pairs = json_object_new_array_ext((int)n);
  int rc = 0;

  if (names == NULL || pairs == NULL)
    rc = bw_error_set(error, BW_ENOMEM, "env: out of memory");
  if (rc == 0) {
    json_object_object_foreach(merged, name, value) {
      (void)value;
      names[i++] = name;
    }
    qsort(names, n, sizeof *names, compare_names);
  }
  for (i = 0; rc == 0 && i < n; i++) {
    json_object *pair =
        name_value_string(names[i], json_object_object_get(merged, names[i]));
    if (pair == NULL || json_object_array_add(pairs, pair) != 0) {
      json_object_put(pair);
      rc = bw_error_set(error, BW_ENOMEM, "env: out of memory");
    }
  }
  free(names);
  if (rc < 0) {
    json_object_put(pairs);
    return rc;
  }
  *out = pairs;
  return 0;
}

int bw_env_resolve(json_object *global, json_object *student,
                   json_object *stage_env, const char *run_id,
                   const char *job_id, json_object **out, bw_error_t *error) {
  json_object *merged = json_object_new_object();
  int rc;

  *out = NULL;
  if (merged == NULL)
    return bw_error_set(error, BW_ENOMEM, "env: out of memory");
  rc = merge_layer(merged, global, error);
  if (rc == 0)
    rc = merge_layer(merged, student, error);
  if (rc == 0)
    rc = merge_stage(merged, global, student, stage_env, error);
  if (rc == 0)
    rc = merge_id(merged, "GRADING_RUN_ID", run_id, error);
  if (rc == 0)
    rc = merge_id(merged, "GRADING_JOB_ID", job_id, error);
  if (rc == 0)
    rc = sorted_pairs(merged, out, error);
  json_object_put(merged);
  return rc;
}

/* Adds every key of `layer` (when an object) to env, replacing. */
static void env_layer_gen3(json_object *env, json_object *layer) {
  if (!json_object_is_type(layer, json_type_object))
    return;
  json_object_object_foreach(layer, key, value)
      json_object_object_add(env, key, json_object_get(value));
}

json_object *bw_env_merge_gen3(json_object *global, json_object *stage_env,
                               json_object *runtime, const char *run_id,
                               const char *job_id) {
  json_object *env = json_object_new_object();
  env_layer_gen3(env, global);
  json_object_object_add(env, "GRADING_RUN_ID", json_object_new_string(run_id));
  env_layer_gen3(env, stage_env);
  env_layer_gen3(env, runtime);
  json_object_object_add(env, "GRADING_JOB_ID", json_object_new_string(job_id));
  return env;
}
