#include "validate.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "env.h"
#include "json.h"

/* What every check shares: the limits and where to report.  The JSON path
 * of the value being checked (for the message) is each check's own
 * argument. */
typedef struct check {
  const bw_config_t *cfg;
  bw_error_t *error;
} check_t;

/* Paths in messages: "students[3].NETID".  A path longer than the buffer is
 * cut, which only shortens the message (vsnprintf, so no truncation warning
 * for what is meant). */
typedef char path_t[512];

static void path_format(path_t out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void path_format(path_t out, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(out, sizeof(path_t), fmt, ap);
  va_end(ap);
}

static void path_key(path_t out, const char *parent, const char *key) {
  if (parent[0] == '\0')
    path_format(out, "%s", key);
  else
    path_format(out, "%s.%s", parent, key);
}

static void path_index(path_t out, const char *parent, size_t index) {
  path_format(out, "%s[%zu]", parent, index);
}

static bool key_allowed(const char *key, const char *const *allowed) {
  for (; *allowed != NULL; allowed++)
    if (strcmp(key, *allowed) == 0)
      return true;
  return false;
}

static int check_known_keys(check_t *c, json_object *object, const char *path,
                            const char *const *allowed) {
  path_t child;
  json_object_object_foreach(object, key, value) {
    (void)value;
    if (!key_allowed(key, allowed)) {
      path_key(child, path, key);
      return bw_error_set(c->error, BW_EINVAL, "%s: unknown key", child);
    }
  }
  return 0;
}

static int check_string(check_t *c, json_object *value, const char *path,
                        size_t max_len) {
  size_t len;
  if (!json_object_is_type(value, json_type_string))
    return bw_error_set(c->error, BW_EINVAL, "%s: expected a string", path);
  len = (size_t)json_object_get_string_len(value);
  if (len > max_len)
    return bw_error_set(c->error, BW_EINVAL,
                        "%s: %zu bytes is over the limit of %zu", path, len,
                        max_len);
  return 0;
}

/* ------------------------------------------------------------------------
 * ENV objects: students' entries, the global env, stage envs. */

static int check_env_name(check_t *c, const char *name, const char *path) {
  path_t child;
  size_t len = strlen(name);
  if (len > c->cfg->max_env_name)
    return bw_error_set(c->error, BW_EINVAL,
                        "%s: variable name of %zu bytes is over the limit of "
                        "%zu",
                        path, len, c->cfg->max_env_name);
  if (!bw_validate_env_name(name, c->cfg->max_env_name)) {
    path_key(child, path, name);
    return bw_error_set(c->error, BW_EINVAL,
                        "%s: invalid environment variable name", child);
  }
  return 0;
}

static bool is_scalar(json_object *value) {
  return json_object_is_type(value, json_type_int) ||
         json_object_is_type(value, json_type_double) ||
         json_object_is_type(value, json_type_boolean);
}

/* The length of a value as an env holds it: a string's, or the JSON text's
 * of a number or boolean ("1.50", "true"). */
static size_t env_value_len(json_object *value) {
  if (is_scalar(value))
    return strlen(json_object_to_json_string_ext(value, 0));
  return (size_t)json_object_get_string_len(value);
}

json_object *bw_validate_env_text(json_object *env) {
  json_object *copy = NULL;
  bool scalars = false;

  json_object_object_foreach(env, name, value) {
    (void)name;
    scalars = scalars || is_scalar(value);
  }
  if (!scalars)
    return json_object_get(env);
  if (json_object_deep_copy(env, &copy, NULL) != 0)
    return NULL;
  json_object_object_foreach(copy, key, item) {
    if (is_scalar(item) &&
        bw_json_add(copy, key,
                    json_object_new_string(
                        json_object_to_json_string_ext(item, 0))) < 0) {
      json_object_put(copy);
      return NULL;
    }
  }
  return copy;
}

/* `scalars_allowed`: numbers and booleans are accepted (students and the
 * global env: they become their JSON text, see bw_validate_env_text); stage
 * envs take strings only. */
static int check_env_object(check_t *c, json_object *env, const char *path,
                            bool scalars_allowed) {
  path_t child;
  int count, rc;

  if (!json_object_is_type(env, json_type_object))
    return bw_error_set(c->error, BW_EINVAL, "%s: expected an object", path);
  count = json_object_object_length(env);
  if (count > c->cfg->max_env)
    return bw_error_set(c->error, BW_ETOOBIG,
                        "%s: %d variables is over the limit of %d", path, count,
                        c->cfg->max_env);
  json_object_object_foreach(env, name, value) {
    if ((rc = check_env_name(c, name, path)) < 0)
      return rc;
    path_key(child, path, name);
    if (!json_object_is_type(value, json_type_string) &&
        !(scalars_allowed && is_scalar(value)))
      return bw_error_set(c->error, BW_EINVAL, "%s: expected a string", child);
    /* The text of a number can be as long as the client likes: it is held
     * to the same limit as a string value. */
    if (env_value_len(value) > c->cfg->max_env_value)
      return bw_error_set(c->error, BW_EINVAL,
                          "%s: value of %zu bytes is over the limit of %zu",
                          child, env_value_len(value), c->cfg->max_env_value);
  }
  return 0;
}

/* ------------------------------------------------------------------------
 * Stages and pipelines. */

static const char *const stage_keys[] = {
    "image",     "env",     "entry_point", "enable_networking",
    "host_name", "timeout", "memory",      "cpus",
    "pids",      "disk",    "output",      NULL};

static int check_image(check_t *c, json_object *stage, const char *path) {
  json_object *image;
  path_t child;
  int rc;

  path_key(child, path, "image");
  if (!json_object_object_get_ex(stage, "image", &image))
    return bw_error_set(c->error, BW_EINVAL, "%s: required", child);
  if ((rc = check_string(c, image, child, c->cfg->max_string)) < 0)
    return rc;
  if (json_object_get_string_len(image) == 0)
    return bw_error_set(c->error, BW_EINVAL, "%s: must not be empty", child);
  return 0;
}

static int check_entry_point(check_t *c, json_object *entry_point,
                             const char *path) {
  path_t child;
  size_t i, n;
  int rc;

  if (!json_object_is_type(entry_point, json_type_array))
    return bw_error_set(c->error, BW_EINVAL, "%s: expected an array", path);
  n = json_object_array_length(entry_point);
  for (i = 0; i < n; i++) {
    path_index(child, path, i);
    rc = check_string(c, json_object_array_get_idx(entry_point, i), child,
                      c->cfg->max_string);
    if (rc < 0)
      return rc;
  }
  return 0;
}

static int check_timeout(check_t *c, json_object *timeout, const char *path) {
  double seconds;
  if (!json_object_is_type(timeout, json_type_int) &&
      !json_object_is_type(timeout, json_type_double))
    return bw_error_set(c->error, BW_EINVAL, "%s: expected a number", path);
  seconds = json_object_get_double(timeout);
  if (!(seconds > 0))
    return bw_error_set(c->error, BW_EINVAL, "%s: must be > 0", path);
  if (seconds > c->cfg->max_timeout)
    return bw_error_set(c->error, BW_EINVAL, "%s: must be <= %d", path,
                        c->cfg->max_timeout);
  return 0;
}

/* A stage's resource limits: sizes (memory, disk, output) in bytes or as
 * text with a k/m/g suffix, cpus a number, pids a whole number; each from a
 * floor to its max_<key> in the config. */
enum limit_kind { LIMIT_SIZE, LIMIT_CPUS, LIMIT_COUNT };

typedef struct stage_limit {
  const char *key;
  enum limit_kind kind;
  double min;
  size_t max_offset; /* of max_<key> in bw_config_t */
} stage_limit_t;

/* bwrap and a shell need a few MiB and pids before the stage's own code
 * runs: a lower limit would only make a stage fail to start. */
static const stage_limit_t stage_limits[] = {
    {"memory", LIMIT_SIZE, 4 << 20, offsetof(bw_config_t, max_memory)},
    {"cpus", LIMIT_CPUS, 0.01, offsetof(bw_config_t, max_cpus)},
    {"pids", LIMIT_COUNT, 4, offsetof(bw_config_t, max_pids)},
    {"disk", LIMIT_SIZE, 1 << 20, offsetof(bw_config_t, max_disk)},
    {"output", LIMIT_SIZE, 1024, offsetof(bw_config_t, max_output)},
};

static const stage_limit_t *find_stage_limit(const char *key) {
  for (size_t i = 0; i < sizeof stage_limits / sizeof *stage_limits; i++)
    if (strcmp(stage_limits[i].key, key) == 0)
      return &stage_limits[i];
  return NULL;
}

static double limit_max(const bw_config_t *cfg, const stage_limit_t *limit) {
  const char *field = (const char *)cfg + limit->max_offset;

  if (limit->kind == LIMIT_SIZE)
    return (double)*(const size_t *)field;
  if (limit->kind == LIMIT_CPUS)
    return *(const double *)field;
  return *(const int *)field;
}

static int check_limit(check_t *c, json_object *value, const char *path,
                       const stage_limit_t *limit) {
  uint64_t bytes;
  double n;

  if (limit->kind == LIMIT_SIZE) {
    if (!bw_validate_size(value, &bytes))
      return bw_error_set(c->error, BW_EINVAL,
                          "%s: expected bytes, or a size such as \"512m\"",
                          path);
    n = (double)bytes;
  } else if (limit->kind == LIMIT_CPUS) {
    if (!json_object_is_type(value, json_type_int) &&
        !json_object_is_type(value, json_type_double))
      return bw_error_set(c->error, BW_EINVAL, "%s: expected a number of CPUs",
                          path);
    n = json_object_get_double(value);
  } else {
    if (!json_object_is_type(value, json_type_int))
      return bw_error_set(c->error, BW_EINVAL, "%s: expected a whole number",
                          path);
    n = (double)json_object_get_int64(value);
  }
  if (!(n >= limit->min) || n > limit_max(c->cfg, limit))
    return bw_error_set(c->error, BW_EINVAL, "%s: expected %.15g to %.15g",
                        path, limit->min, limit_max(c->cfg, limit));
  return 0;
}

/* The optional keys of a stage, each checked when present. */
static int check_stage_option(check_t *c, json_object *stage, const char *path,
                              const char *key) {
  json_object *value;
  path_t child;

  if (!json_object_object_get_ex(stage, key, &value))
    return 0;
  path_key(child, path, key);
  if (strcmp(key, "env") == 0)
    return check_env_object(c, value, child, false);
  if (strcmp(key, "entry_point") == 0)
    return check_entry_point(c, value, child);
  if (strcmp(key, "enable_networking") == 0) {
    if (!json_object_is_type(value, json_type_boolean))
      return bw_error_set(c->error, BW_EINVAL, "%s: expected a boolean", child);
    return 0;
  }
  if (strcmp(key, "host_name") == 0)
    return check_string(c, value, child, c->cfg->max_string);
  if (find_stage_limit(key) != NULL)
    return check_limit(c, value, child, find_stage_limit(key));
  return check_timeout(c, value, child);
}

static int check_stage(check_t *c, json_object *stage, const char *path) {
  static const char *const options[] = {
      "env",       "entry_point", "enable_networking",
      "host_name", "timeout",     "memory",
      "cpus",      "pids",        "disk",
      "output"};
  size_t i;
  int rc;

  if (!json_object_is_type(stage, json_type_object))
    return bw_error_set(c->error, BW_EINVAL, "%s: expected an object", path);
  if ((rc = check_known_keys(c, stage, path, stage_keys)) < 0)
    return rc;
  if ((rc = check_image(c, stage, path)) < 0)
    return rc;
  for (i = 0; i < sizeof options / sizeof options[0]; i++)
    if ((rc = check_stage_option(c, stage, path, options[i])) < 0)
      return rc;
  return 0;
}

/* A pipeline: `required` for student_pipeline; the others may be absent but
 * not empty. */
static int check_pipeline(check_t *c, json_object *config, const char *key,
                          bool required) {
  json_object *pipeline;
  path_t child;
  size_t i, n;
  int rc;

  if (!json_object_object_get_ex(config, key, &pipeline))
    return required ? bw_error_set(c->error, BW_EINVAL, "%s: required", key)
                    : 0;
  if (!json_object_is_type(pipeline, json_type_array))
    return bw_error_set(c->error, BW_EINVAL, "%s: expected an array", key);
  n = json_object_array_length(pipeline);
  if (n == 0)
    return bw_error_set(c->error, BW_EINVAL,
                        required ? "%s: at least 1 stage required"
                                 : "%s: at least 1 stage if given",
                        key);
  if (n > (size_t)c->cfg->max_stages)
    return bw_error_set(c->error, BW_ETOOBIG,
                        "%s: %zu stages is over the limit of %d", key, n,
                        c->cfg->max_stages);
  for (i = 0; i < n; i++) {
    path_index(child, key, i);
    if ((rc = check_stage(c, json_object_array_get_idx(pipeline, i), child)) <
        0)
      return rc;
  }
  return 0;
}

static int note_longest(json_object *longest, json_object *layer);

/* Each student is read once here: besides its checks, the length of its
 * longest values goes to `longest`, for check_expansion. */
static int check_students(check_t *c, json_object *config,
                          const bw_json_items_t *students,
                          json_object *longest) {
  json_object *value, *student;
  path_t child;
  size_t i, n;
  int rc;

  if (!json_object_object_get_ex(config, "students", &value))
    return bw_error_set(c->error, BW_EINVAL, "students: required");
  if (!json_object_is_type(value, json_type_array))
    return bw_error_set(c->error, BW_EINVAL, "students: expected an array");
  n = bw_json_items_count(students);
  if (n == 0)
    return bw_error_set(c->error, BW_EINVAL,
                        "students: at least 1 student required");
  if (n > (size_t)c->cfg->max_students)
    return bw_error_set(c->error, BW_ETOOBIG,
                        "students: %zu students is over the limit of %d", n,
                        c->cfg->max_students);
  for (i = 0; i < n; i++) {
    path_index(child, "students", i);
    if ((rc = bw_json_items_get(students, i, &student, c->error)) < 0)
      return rc;
    rc = check_env_object(c, student, child, true);
    if (rc == 0 && note_longest(longest, student) < 0)
      rc = bw_error_set(c->error, BW_ENOMEM, "%s: out of memory", child);
    json_object_put(student);
    if (rc < 0)
      return rc;
  }
  return 0;
}

/* ------------------------------------------------------------------------
 * References: every $NAME of every stage must resolve for every student.
 *
 * Checking each stage env against each student costs students x env size,
 * which a hostile body can make huge.  Instead, for each stage, the names
 * that the global env does not define are collected once (each with the
 * first variable using it), as a small env {"VAR": "${A}${B}"}; bw_env_check
 * of that env against a student gives the same first failure as checking
 * the whole stage env, at a cost of the distinct missing names. */

typedef struct needs {
  json_object *global;
  json_object *seen;  /* NAME -> true, names already collected */
  json_object *needs; /* VAR -> "${A}${B}" */
  const char *var;
} needs_t;

/* A reference's NAME (not NUL-terminated in the stage value) as a new C
 * string, or NULL. */
static char *name_dup(const char *text, size_t len) {
  char *name = malloc(len + 1);
  if (name != NULL) {
    memcpy(name, text, len);
    name[len] = '\0';
  }
  return name;
}

/* Appends "${NAME}" to the needs entry of the current variable. */
static int add_need(needs_t *n, const char *name) {
  json_object *existing, *refs;
  const char *before = "";
  size_t size;
  char *text;

  if (json_object_object_get_ex(n->needs, n->var, &existing))
    before = json_object_get_string(existing);
  size = strlen(before) + strlen(name) + 4;
  text = malloc(size);
  if (text == NULL)
    return BW_ENOMEM;
  snprintf(text, size, "%s${%s}", before, name);
  refs = json_object_new_string(text);
  free(text);
  return bw_json_add(n->needs, n->var, refs);
}

static int collect_piece(const char *text, size_t len, bool is_ref, void *arg) {
  needs_t *n = arg;
  char *name;
  int rc = 0;

  if (!is_ref)
    return 0;
  if ((name = name_dup(text, len)) == NULL)
    return BW_ENOMEM;
  if (!json_object_object_get_ex(n->global, name, NULL) &&
      !json_object_object_get_ex(n->seen, name, NULL)) {
    rc = bw_json_add(n->seen, name, json_object_new_boolean(1));
    if (rc == 0)
      rc = add_need(n, name);
  }
  free(name);
  return rc;
}

/* The needs env of one stage, or NULL on ENOMEM. */
static json_object *stage_needs(json_object *global, json_object *stage) {
  needs_t n = {global, json_object_new_object(), json_object_new_object(),
               NULL};
  json_object *env;
  int rc = (n.seen && n.needs) ? 0 : BW_ENOMEM;

  if (rc == 0 && json_object_object_get_ex(stage, "env", &env)) {
    json_object_object_foreach(env, var, value) {
      n.var = var;
      rc = bw_env_scan(json_object_get_string(value), collect_piece, &n);
      if (rc != 0)
        break;
    }
  }
  json_object_put(n.seen);
  if (rc != 0) {
    json_object_put(n.needs);
    return NULL;
  }
  return n.needs;
}

static int check_each_student(check_t *c, const bw_json_items_t *students,
                              json_object *global, json_object **needs,
                              size_t n_stages) {
  char where[64], stage_path[64];
  size_t i, j, n_students = bw_json_items_count(students);
  json_object *student;
  int rc = 0;

  for (i = 0; rc == 0 && i < n_students; i++) {
    snprintf(where, sizeof where, "students[%zu]", i);
    if ((rc = bw_json_items_get(students, i, &student, c->error)) < 0)
      return rc;
    for (j = 0; rc == 0 && j < n_stages; j++) {
      if (json_object_object_length(needs[j]) == 0)
        continue;
      snprintf(stage_path, sizeof stage_path, "student_pipeline[%zu]", j);
      rc = bw_env_check(global, student, needs[j], where, stage_path, c->error);
    }
    json_object_put(student);
  }
  return rc;
}

static int check_student_references(check_t *c, json_object *config,
                                    const bw_json_items_t *students,
                                    json_object *global) {
  json_object *pipeline, **needs;
  size_t j, n_stages;
  int rc = 0;

  json_object_object_get_ex(config, "student_pipeline", &pipeline);
  n_stages = json_object_array_length(pipeline);
  needs = calloc(n_stages ? n_stages : 1, sizeof *needs);
  if (needs == NULL)
    return bw_error_set(c->error, BW_ENOMEM, "students: out of memory");
  for (j = 0; j < n_stages; j++) {
    needs[j] = stage_needs(global, json_object_array_get_idx(pipeline, j));
    if (needs[j] == NULL)
      rc = bw_error_set(c->error, BW_ENOMEM, "students: out of memory");
  }
  if (rc == 0)
    rc = check_each_student(c, students, global, needs, n_stages);
  for (j = 0; j < n_stages; j++)
    json_object_put(needs[j]);
  free(needs);
  return rc;
}

/* Pre- and post-processing jobs have no student layer. */
static int check_global_references(check_t *c, json_object *config,
                                   json_object *global, const char *key) {
  json_object *pipeline, *env;
  char stage_path[64];
  size_t j, n;
  int rc;

  if (!json_object_object_get_ex(config, key, &pipeline))
    return 0;
  n = json_object_array_length(pipeline);
  for (j = 0; j < n; j++) {
    if (!json_object_object_get_ex(json_object_array_get_idx(pipeline, j),
                                   "env", &env))
      continue;
    snprintf(stage_path, sizeof stage_path, "%s[%zu]", key, j);
    rc = bw_env_check(global, NULL, env, key, stage_path, c->error);
    if (rc < 0)
      return rc;
  }
  return 0;
}

/* ------------------------------------------------------------------------
 * Expansion size: "$A$A$A..." with a 64 KiB A would make a job's env
 * gigabytes long when a grader polls it.  Each stage value's longest possible
 * expansion (every reference at the longest value any layer gives that name)
 * must fit max_env_value. */

typedef struct bound {
  json_object *longest; /* NAME -> longest value length in any layer */
  size_t total;
} bound_t;

/* Returns 0 or BW_ENOMEM: a length lost to ENOMEM would read as 0 and let
 * an over-long expansion through. */
static int note_longest(json_object *longest, json_object *layer) {
  json_object_object_foreach(layer, name, value) {
    json_object *seen;
    int len = (int)env_value_len(value);
    if (json_object_object_get_ex(longest, name, &seen) &&
        json_object_get_int(seen) >= len)
      continue;
    if (bw_json_add(longest, name, json_object_new_int(len)) < 0)
      return BW_ENOMEM;
  }
  return 0;
}

static int bound_piece(const char *text, size_t len, bool is_ref, void *arg) {
  bound_t *b = arg;
  json_object *seen;
  char *name;

  if (!is_ref) {
    b->total += len;
    return 0;
  }
  if ((name = name_dup(text, len)) == NULL)
    return BW_ENOMEM;
  if (json_object_object_get_ex(b->longest, name, &seen))
    b->total += (size_t)json_object_get_int(seen);
  free(name);
  return 0;
}

static int check_pipeline_expansion(check_t *c, json_object *config,
                                    json_object *longest, const char *key) {
  json_object *pipeline, *env;
  path_t stage_path, env_path, var_path;
  size_t j, n;

  if (!json_object_object_get_ex(config, key, &pipeline))
    return 0;
  n = json_object_array_length(pipeline);
  for (j = 0; j < n; j++) {
    if (!json_object_object_get_ex(json_object_array_get_idx(pipeline, j),
                                   "env", &env))
      continue;
    json_object_object_foreach(env, var, value) {
      bound_t b = {longest, 0};
      if (bw_env_scan(json_object_get_string(value), bound_piece, &b) != 0)
        return bw_error_set(c->error, BW_ENOMEM, "env: out of memory");
      if (b.total <= c->cfg->max_env_value)
        continue;
      path_index(stage_path, key, j);
      path_key(env_path, stage_path, "env");
      path_key(var_path, env_path, var);
      return bw_error_set(c->error, BW_EINVAL,
                          "%s: expands to up to %zu bytes, over the limit of "
                          "%zu",
                          var_path, b.total, c->cfg->max_env_value);
    }
  }
  return 0;
}

/* `longest` holds the students' lengths (check_students). */
static int check_expansion(check_t *c, json_object *config, json_object *global,
                           json_object *longest) {
  static const char *const pipelines[] = {"pre_processing_pipeline",
                                          "student_pipeline",
                                          "post_processing_pipeline"};
  int rc = 0;

  if (global != NULL && note_longest(longest, global) < 0)
    return bw_error_set(c->error, BW_ENOMEM, "env: out of memory");
  for (size_t i = 0; rc == 0 && i < 3; i++)
    rc = check_pipeline_expansion(c, config, longest, pipelines[i]);
  return rc;
}

/* ------------------------------------------------------------------------
 * bw_validate_run_config */

static int check_run_parts(check_t *c, json_object *config,
                           const bw_json_items_t *students,
                           json_object *longest) {
  static const char *const keys[] = {"students",
                                     "student_pipeline",
                                     "pre_processing_pipeline",
                                     "post_processing_pipeline",
                                     "env",
                                     NULL};
  json_object *global = NULL;
  int rc;

  if ((rc = check_known_keys(c, config, "", keys)) < 0)
    return rc;
  if ((rc = check_students(c, config, students, longest)) < 0)
    return rc;
  if (json_object_object_get_ex(config, "env", &global) &&
      (rc = check_env_object(c, global, "env", true)) < 0)
    return rc;
  if ((rc = check_pipeline(c, config, "student_pipeline", true)) < 0 ||
      (rc = check_pipeline(c, config, "pre_processing_pipeline", false)) < 0 ||
      (rc = check_pipeline(c, config, "post_processing_pipeline", false)) < 0)
    return rc;
  if ((rc = check_global_references(c, config, global,
                                    "pre_processing_pipeline")) < 0 ||
      (rc = check_student_references(c, config, students, global)) < 0 ||
      (rc = check_global_references(c, config, global,
                                    "post_processing_pipeline")) < 0)
    return rc;
  return check_expansion(c, config, global, longest);
}

static int check_run_config(check_t *c, json_object *config,
                            const bw_json_items_t *students) {
  json_object *longest; /* NAME -> longest value length in any layer */
  int rc;

  if (!json_object_is_type(config, json_type_object))
    return bw_error_set(c->error, BW_EINVAL, "body: expected a JSON object");
  if ((longest = json_object_new_object()) == NULL)
    return bw_error_set(c->error, BW_ENOMEM, "env: out of memory");
  rc = check_run_parts(c, config, students, longest);
  json_object_put(longest);
  return rc;
}

/* A stage as the run keeps it: its keys, plus the config's default for each
 * limit it does not set, so that every grader enforces the same limits.
 * NULL on ENOMEM. */
static json_object *stage_with_defaults(json_object *stage,
                                        const bw_config_t *cfg) {
  json_object *out = json_object_new_object();
  int rc = out ? 0 : -1;

  json_object_object_foreach(stage, key, value) {
    if (rc == 0)
      rc = bw_json_add(out, key, json_object_get(value));
  }
  if (rc == 0 && !json_object_object_get_ex(stage, "memory", NULL))
    rc = bw_json_add(out, "memory",
                     json_object_new_int64((int64_t)cfg->default_memory));
  if (rc == 0 && !json_object_object_get_ex(stage, "cpus", NULL))
    rc = bw_json_add(out, "cpus", json_object_new_double(cfg->default_cpus));
  if (rc == 0 && !json_object_object_get_ex(stage, "pids", NULL))
    rc = bw_json_add(out, "pids", json_object_new_int(cfg->default_pids));
  if (rc == 0 && !json_object_object_get_ex(stage, "disk", NULL))
    rc = bw_json_add(out, "disk",
                     json_object_new_int64((int64_t)cfg->default_disk));
  if (rc == 0 && !json_object_object_get_ex(stage, "output", NULL))
    rc = bw_json_add(out, "output",
                     json_object_new_int64((int64_t)cfg->default_output));
  if (rc < 0) {
    json_object_put(out);
    return NULL;
  }
  return out;
}

static json_object *pipeline_with_defaults(json_object *pipeline,
                                           const bw_config_t *cfg) {
  size_t n = json_object_array_length(pipeline);
  json_object *out = json_object_new_array_ext((int)n);

  for (size_t i = 0; out != NULL && i < n; i++) {
    json_object *stage =
        stage_with_defaults(json_object_array_get_idx(pipeline, i), cfg);
    if (stage == NULL || json_object_array_add(out, stage) < 0) {
      json_object_put(stage);
      json_object_put(out);
      out = NULL;
    }
  }
  return out;
}

/* What the run keeps of a key of a valid body: the global env with its
 * numbers and booleans as text, pipelines with their default limits, the
 * rest shared with the body.  NULL on ENOMEM. */
static json_object *config_value(const char *key, json_object *value,
                                 const bw_config_t *cfg) {
  if (strcmp(key, "env") == 0)
    return bw_validate_env_text(value);
  if (strcmp(key, "student_pipeline") == 0 ||
      strcmp(key, "pre_processing_pipeline") == 0 ||
      strcmp(key, "post_processing_pipeline") == 0)
    return pipeline_with_defaults(value, cfg);
  return json_object_get(value);
}

/* What the run keeps of a valid body: every key but students (which the
 * caller holds as items), as config_value() gives it.  NULL on ENOMEM. */
static json_object *config_of(json_object *body, const bw_config_t *cfg) {
  json_object *config = json_object_new_object();
  if (config == NULL)
    return NULL;
  json_object_object_foreach(body, key, value) {
    if (strcmp(key, "students") == 0)
      continue;
    if (bw_json_add(config, key, config_value(key, value, cfg)) < 0) {
      json_object_put(config);
      return NULL;
    }
  }
  return config;
}

int bw_validate_run_config(json_object *body, const bw_json_items_t *students,
                           const bw_config_t *cfg, json_object **out,
                           bw_error_t *error) {
  check_t c = {cfg, error};
  int rc;

  *out = NULL;
  if (!json_object_is_type(body, json_type_object))
    return bw_error_set(error, BW_EINVAL, "body: expected a JSON object");
  if ((rc = check_run_config(&c, body, students)) < 0)
    return rc;
  if ((*out = config_of(body, cfg)) == NULL)
    return bw_error_set(error, BW_ENOMEM, "body: out of memory");
  return 0;
}

/* ------------------------------------------------------------------------
 * bw_validate_result */

static int check_size(check_t *c, json_object *value, const char *path,
                      size_t limit) {
  size_t size = bw_json_size(value);
  if (size > limit)
    return bw_error_set(c->error, BW_EINVAL,
                        "%s: %zu bytes is over the limit of %zu", path, size,
                        limit);
  return 0;
}

/* An array of objects (one per stage that ran): v0.1's `info`, 2018-12's
 * `results`. */
static int check_stage_list(check_t *c, json_object *list, const char *path) {
  path_t child;
  size_t i, n;

  if (!json_object_is_type(list, json_type_array))
    return bw_error_set(c->error, BW_EINVAL, "%s: expected an array", path);
  n = json_object_array_length(list);
  for (i = 0; i < n; i++) {
    if (!json_object_is_type(json_object_array_get_idx(list, i),
                             json_type_object)) {
      path_index(child, path, i);
      return bw_error_set(c->error, BW_EINVAL, "%s: expected an object", child);
    }
  }
  return 0;
}

/* The 2018-11 grader's `info`: {"stageResults": [{..},..], "stdout": s,
 * "stderr": s}. */
static int check_info_object(check_t *c, json_object *info, const char *path) {
  static const char *const keys[] = {"stageResults", "stdout", "stderr", NULL};
  json_object *stages;
  path_t child;
  int rc;

  if ((rc = check_known_keys(c, info, path, keys)) < 0)
    return rc;
  path_key(child, path, "stageResults");
  if (!json_object_object_get_ex(info, "stageResults", &stages))
    return bw_error_set(c->error, BW_EINVAL, "%s: required", child);
  if ((rc = check_stage_list(c, stages, child)) < 0)
    return rc;
  json_object_object_foreach(info, key, value) {
    if (strcmp(key, "stageResults") != 0 &&
        !json_object_is_type(value, json_type_string)) {
      path_key(child, path, key);
      return bw_error_set(c->error, BW_EINVAL, "%s: expected a string", child);
    }
  }
  return 0;
}

/* `info` in either released shape, or `results`; stored as given. */
static int check_info(check_t *c, json_object *info, const char *path,
                      bool object_allowed) {
  int rc = object_allowed && json_object_is_type(info, json_type_object)
               ? check_info_object(c, info, path)
               : check_stage_list(c, info, path);
  if (rc < 0)
    return rc;
  return check_size(c, info, path, c->cfg->max_info_bytes);
}

static int check_logs(check_t *c, json_object *logs, const char *path) {
  static const char *const keys[] = {"stdout", "stderr", NULL};
  path_t child;
  int rc;

  if (!json_object_is_type(logs, json_type_object))
    return bw_error_set(c->error, BW_EINVAL, "%s: expected an object", path);
  if ((rc = check_known_keys(c, logs, path, keys)) < 0)
    return rc;
  json_object_object_foreach(logs, key, value) {
    if (!json_object_is_type(value, json_type_string)) {
      path_key(child, path, key);
      return bw_error_set(c->error, BW_EINVAL, "%s: expected a string", child);
    }
  }
  return check_size(c, logs, path, c->cfg->max_logs_bytes);
}

/* The stage results of a result body: `info` (v0.1: an array; the 2018-11
 * grader: an object) or `results` (the 2018-12 grader), exactly one. */
static int check_result_stages(check_t *c, json_object *result,
                               const char *prefix, json_object *out) {
  json_object *info, *results;
  bool has_info = json_object_object_get_ex(result, "info", &info);
  bool has_results = json_object_object_get_ex(result, "results", &results);
  path_t path;
  int rc;

  path_key(path, prefix, has_results ? "results" : "info");
  if (has_info && has_results)
    return bw_error_set(c->error, BW_EINVAL,
                        "%s: not allowed together with info", path);
  if (!has_info && !has_results)
    return bw_error_set(c->error, BW_EINVAL, "%s: required", path);
  if ((rc = check_info(c, has_info ? info : results, path, has_info)) < 0)
    return rc;
  json_object_object_add(out, has_info ? "info" : "results",
                         json_object_get(has_info ? info : results));
  return 0;
}

/* The result proper, at `prefix` ("" or "data"). */
static int check_result(check_t *c, json_object *result, const char *prefix,
                        json_object *out) {
  static const char *const keys[] = {"success", "info", "results", "logs",
                                     NULL};
  json_object *success, *logs;
  path_t path;
  int rc;

  if (!json_object_is_type(result, json_type_object))
    return bw_error_set(c->error, BW_EINVAL, "%s: expected an object", prefix);
  if ((rc = check_known_keys(c, result, prefix, keys)) < 0)
    return rc;
  path_key(path, prefix, "success");
  if (!json_object_object_get_ex(result, "success", &success))
    return bw_error_set(c->error, BW_EINVAL, "%s: required", path);
  if (!json_object_is_type(success, json_type_boolean))
    return bw_error_set(c->error, BW_EINVAL, "%s: expected a boolean", path);
  json_object_object_add(out, "success", json_object_get(success));
  if ((rc = check_result_stages(c, result, prefix, out)) < 0)
    return rc;
  if (json_object_object_get_ex(result, "logs", &logs)) {
    path_key(path, prefix, "logs");
    if ((rc = check_logs(c, logs, path)) < 0)
      return rc;
    json_object_object_add(out, "logs", json_object_get(logs));
  }
  return 0;
}

/* The seed's graders wrap the result: {"status": "...", "data": {...}}. */
static int check_wrapped_result(check_t *c, json_object *body,
                                json_object *out) {
  static const char *const keys[] = {"status", "data", NULL};
  json_object *status, *data;
  int rc;

  if ((rc = check_known_keys(c, body, "", keys)) < 0)
    return rc;
  if (json_object_object_get_ex(body, "status", &status) &&
      !json_object_is_type(status, json_type_string))
    return bw_error_set(c->error, BW_EINVAL, "status: expected a string");
  if (!json_object_object_get_ex(body, "data", &data))
    return bw_error_set(c->error, BW_EINVAL, "data: required");
  return check_result(c, data, "data", out);
}

int bw_validate_result(json_object *body, const bw_config_t *cfg,
                       json_object **out, bw_error_t *error) {
  check_t c = {cfg, error};
  json_object *result;
  int rc;

  *out = NULL;
  if (!json_object_is_type(body, json_type_object))
    return bw_error_set(error, BW_EINVAL, "body: expected a JSON object");
  result = json_object_new_object();
  if (result == NULL)
    return bw_error_set(error, BW_ENOMEM, "body: out of memory");
  if (json_object_object_get_ex(body, "data", NULL) ||
      json_object_object_get_ex(body, "status", NULL))
    rc = check_wrapped_result(&c, body, result);
  else
    rc = check_result(&c, body, "", result);
  if (rc < 0) {
    json_object_put(result);
    return rc;
  }
  *out = result;
  return 0;
}

/* The 2019 API's logs (PROTOCOL-LATER.md §2.7, recommended): stdout and
 * stderr only, each "" when absent or not a string; other keys ignored. */
static json_object *gen3_logs(json_object *logs) {
  static const char *const keys[] = {"stdout", "stderr"};
  json_object *out = json_object_new_object(), *v;
  for (int i = 0; i < 2; i++)
    json_object_object_add(out, keys[i],
                           json_object_object_get_ex(logs, keys[i], &v) &&
                                   json_object_is_type(v, json_type_string)
                               ? json_object_get(v)
                               : json_object_new_string(""));
  return out;
}

int bw_validate_gen3_result(json_object *body, const bw_config_t *cfg,
                            const char **job_id, json_object **out,
                            bw_error_t *error) {
  static const char *const keys[] = {"grading_job_id", "success", "results",
                                     "logs", NULL};
  check_t c = {cfg, error};
  json_object *v, *result;
  int rc;

  *out = NULL;
  *job_id = NULL;
  if (!json_object_is_type(body, json_type_object))
    return bw_error_set(error, BW_EINVAL, "body: expected a JSON object");
  if ((rc = check_known_keys(&c, body, "", keys)) < 0)
    return rc;
  for (int i = 0; keys[i] != NULL; i++)
    if (!json_object_object_get_ex(body, keys[i], NULL))
      return bw_error_set(error, BW_EINVAL, "%s: required", keys[i]);
  v = json_object_object_get(body, "grading_job_id");
  if (!json_object_is_type(v, json_type_string))
    return bw_error_set(error, BW_EINVAL, "grading_job_id: expected a string");
  if (!json_object_is_type(json_object_object_get(body, "logs"),
                           json_type_object))
    return bw_error_set(error, BW_EINVAL, "logs: expected an object");
  /* The seed's checks and limits, on the seed's shape of the same result. */
  result = json_object_new_object();
  json_object_object_add(result, "success",
                         json_object_get(json_object_object_get(body, "success")));
  json_object_object_add(result, "results",
                         json_object_get(json_object_object_get(body, "results")));
  json_object_object_add(result, "logs",
                         gen3_logs(json_object_object_get(body, "logs")));
  rc = bw_validate_result(result, cfg, out, error);
  json_object_put(result);
  if (rc == 0)
    *job_id = json_object_get_string(v);
  return rc;
}

int bw_validate_gen3_register(json_object *body, const char **hostname,
                              bw_error_t *error) {
  static const char *const keys[] = {"hostname", NULL};
  check_t c = {NULL, error};
  json_object *v;
  int rc;

  *hostname = NULL;
  if (!json_object_is_type(body, json_type_object))
    return bw_error_set(error, BW_EINVAL, "body: expected a JSON object");
  if ((rc = check_known_keys(&c, body, "", keys)) < 0)
    return rc;
  if (!json_object_object_get_ex(body, "hostname", &v))
    return bw_error_set(error, BW_EINVAL, "hostname: required");
  if ((rc = check_string(&c, v, "hostname", 255)) < 0)
    return rc;
  *hostname = json_object_get_string(v);
  return 0;
}

/* ------------------------------------------------------------------------
 * Single values. */

bool bw_validate_env_name(const char *name, size_t max_len) {
  size_t i;
  if (name == NULL || name[0] == '\0' || (name[0] >= '0' && name[0] <= '9'))
    return false;
  for (i = 0; name[i] != '\0'; i++) {
    char ch = name[i];
    if (i >= max_len)
      return false;
    if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
          (ch >= '0' && ch <= '9') || ch == '_'))
      return false;
  }
  return true;
}

bool bw_validate_size(json_object *value, uint64_t *bytes) {
  const char *text, *p;
  uint64_t n = 0, unit = 1;

  if (json_object_is_type(value, json_type_int)) {
    if (json_object_get_int64(value) < 0)
      return false;
    *bytes = (uint64_t)json_object_get_int64(value);
    return true;
  }
  if (!json_object_is_type(value, json_type_string))
    return false;
  text = json_object_get_string(value);
  for (p = text; *p >= '0' && *p <= '9'; p++) {
    if (n > (UINT64_MAX - 9) / 10)
      return false;
    n = n * 10 + (uint64_t)(*p - '0');
  }
  if (p == text)
    return false;
  if (*p == 'k' || *p == 'K')
    unit = 1024;
  else if (*p == 'm' || *p == 'M')
    unit = 1024 * 1024;
  else if (*p == 'g' || *p == 'G')
    unit = 1024 * 1024 * 1024;
  if (unit > 1)
    p++;
  if (*p != '\0' || n > UINT64_MAX / unit)
    return false;
  *bytes = n * unit;
  return true;
}

bool bw_validate_hostname(const char *text) {
  size_t i;
  if (text == NULL || text[0] == '\0')
    return false;
  for (i = 0; text[i] != '\0'; i++) {
    char ch = text[i];
    if (i >= 255)
      return false;
    if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
          (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_'))
      return false;
  }
  return true;
}

bool bw_validate_path_hostname(const char *text) {
  size_t i;
  if (text == NULL || text[0] == '\0')
    return false;
  for (i = 0; text[i] != '\0'; i++) {
    unsigned char ch = (unsigned char)text[i];
    if (i >= 255 || ch <= 0x20 || ch >= 0x7f || ch == '(' || ch == ')')
      return false;
  }
  return true;
}
/* A decimal integer in [min, max], nothing else; false otherwise. */
static bool validate_query_long(const char *text, long min, long max,
                                long *out) {
  char *end;
  long v;
  if (text[0] < '0' || text[0] > '9' || strlen(text) > 18)
    return false;
  v = strtol(text, &end, 10);
  if (*end != '\0' || v < min || v > max)
    return false;
  *out = v;
  return true;
}

int bw_validate_run_page(const char *offset, const char *limit,
                         const char *summary, bw_run_page_t *page,
                         bw_error_t *error) {
  memset(page, 0, sizeof *page);
  if (offset && !validate_query_long(offset, 0, 1000000000L, &page->offset))
    return bw_error_set(error, BW_EINVAL,
                        "offset: expected an integer >= 0");
  if (limit && !validate_query_long(limit, 1, BW_RUN_PAGE_MAX, &page->limit))
    return bw_error_set(error, BW_EINVAL,
                        "limit: expected an integer from 1 to %d",
                        BW_RUN_PAGE_MAX);
  if (summary && (strcmp(summary, "1") == 0 || strcmp(summary, "true") == 0))
    page->summary = true;
  else if (summary && strcmp(summary, "0") != 0 &&
           strcmp(summary, "false") != 0)
    return bw_error_set(error, BW_EINVAL,
                        "summary: expected 1, true, 0 or false");
  return 0;
}
