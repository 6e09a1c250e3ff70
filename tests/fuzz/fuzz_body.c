/* fuzz_body.c - libFuzzer harness over everything a request body goes
 * through before the database: bw_json_parse_body, bw_validate_run_config,
 * bw_validate_result and bw_env_resolve.  All pure functions, no I/O.
 *
 * Besides the sanitizers' crashes, it aborts (a finding) when a promise of
 * the headers is broken:
 *   - an accepted body holds a key starting with '$' or containing '.', a NUL
 *     in a string, invalid UTF-8 or nesting past max_depth (it could become a
 *     MongoDB operator or path, or be cut by C/BSON);
 *   - a rejection without a message, or with an unexpected code;
 *   - a validated run whose env does not resolve for every student and stage,
 *     or resolves to a duplicate name, a bad name or a value over
 *     max_env_value;
 *   - an accepted result without success/info, or over its size caps.
 *
 * The limits are small so that the fuzzer reaches every one of them. */
#include <bson/bson.h>
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "env.h"
#include "error.h"
#include "json.h"
#include "validate.h"

/* Bodies larger than this skip the resolve of unvalidated layers: "$A$A..."
 * with a long A grows quadratically there, which is slow, not a bug. */
#define RAW_RESOLVE_MAX 2048

#define FUZZ_ASSERT(cond, ...)                                                 \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz_body: broken promise: " __VA_ARGS__);              \
      fprintf(stderr, "\n");                                                   \
      abort();                                                                 \
    }                                                                          \
  } while (0)

static const bw_config_t *fuzz_config(void) {
  static bw_config_t cfg;
  static int ready;
  if (!ready) {
    bw_config_init(&cfg);
    cfg.max_depth = 12;
    cfg.max_students = 6;
    cfg.max_stages = 3;
    cfg.max_env = 8;
    cfg.max_env_name = 24;
    cfg.max_env_value = 128;
    cfg.max_string = 64;
    cfg.max_timeout = 3600;
    cfg.max_info_bytes = 512;
    cfg.max_logs_bytes = 512;
    ready = 1;
  }
  return &cfg;
}

static void expect_rejection(int rc, const bw_error_t *error, json_object *out,
                             const char *what) {
  FUZZ_ASSERT(rc == BW_EINVAL || rc == BW_ETOOBIG, "%s returned %d", what, rc);
  FUZZ_ASSERT(error->code == rc, "%s: error->code %d != rc %d", what,
              error->code, rc);
  FUZZ_ASSERT(error->message[0] != '\0', "%s: rejection without a message",
              what);
  FUZZ_ASSERT(out == NULL, "%s: *out set on failure", what);
}

/* ------------------------------------------------------------------------
 * What the database would receive: the body as BSON, which must have no
 * operator or path keys and valid UTF-8 without NUL. */

static int json_depth(json_object *value) {
  int deepest = 0;
  if (json_object_is_type(value, json_type_object)) {
    json_object_object_foreach(value, key, child) {
      (void)key;
      int d = json_depth(child);
      deepest = d > deepest ? d : deepest;
    }
    return deepest + 1;
  }
  if (json_object_is_type(value, json_type_array)) {
    size_t n = json_object_array_length(value);
    for (size_t i = 0; i < n; i++) {
      int d = json_depth(json_object_array_get_idx(value, i));
      deepest = d > deepest ? d : deepest;
    }
    return deepest + 1;
  }
  return 0;
}

static void check_safe_for_mongo(json_object *body, const bw_config_t *cfg) {
  bson_t doc = BSON_INITIALIZER;
  size_t offset = 0;
  FUZZ_ASSERT(json_object_is_type(body, json_type_object),
              "accepted body is not an object");
  FUZZ_ASSERT(json_depth(body) <= cfg->max_depth,
              "accepted body nests %d deep, limit %d", json_depth(body),
              cfg->max_depth);
  json_object_object_foreach(body, key, value) {
    FUZZ_ASSERT(bw_json_append_bson(&doc, key, value) == 0,
                "BSON conversion of key %s failed", key);
  }
  FUZZ_ASSERT(bson_validate(&doc,
                            BSON_VALIDATE_UTF8 | BSON_VALIDATE_DOLLAR_KEYS |
                                BSON_VALIDATE_DOT_KEYS,
                            &offset),
              "accepted body is not safe BSON (offset %zu)", offset);
  bson_destroy(&doc);
}

/* ------------------------------------------------------------------------
 * Env resolution of a validated run. */

static void check_pairs(json_object *pairs, const bw_config_t *cfg) {
  size_t n = json_object_array_length(pairs);
  const char *previous = NULL;
  size_t previous_len = 0;
  for (size_t i = 0; i < n; i++) {
    json_object *pair = json_object_array_get_idx(pairs, i);
    const char *text = json_object_get_string(pair);
    size_t len = (size_t)json_object_get_string_len(pair);
    const char *eq = memchr(text, '=', len);
    FUZZ_ASSERT(eq != NULL, "env pair without '=': %s", text);
    size_t name_len = (size_t)(eq - text);
    char name[64];
    FUZZ_ASSERT(name_len < sizeof name, "env name too long");
    memcpy(name, text, name_len);
    name[name_len] = '\0';
    FUZZ_ASSERT(bw_validate_env_name(name, cfg->max_env_name),
                "bad env name %s", name);
    FUZZ_ASSERT(len - name_len - 1 <= cfg->max_env_value,
                "env %s: value of %zu bytes over max_env_value %zu", name,
                len - name_len - 1, cfg->max_env_value);
    /* sorted by name, so a duplicate would be adjacent */
    FUZZ_ASSERT(previous == NULL || previous_len != name_len ||
                    memcmp(previous, text, name_len) != 0,
                "env name %s twice", name);
    previous = text;
    previous_len = name_len;
  }
}

static void resolve_ok(json_object *global, json_object *student,
                       json_object *stage, const bw_config_t *cfg) {
  json_object *env = NULL, *pairs = NULL;
  bw_error_t error = {0, ""};
  json_object_object_get_ex(stage, "env", &env);
  int rc = bw_env_resolve(global, student, env, "0123456789abcdef01234567",
                          "76543210fedcba9876543210", &pairs, &error);
  FUZZ_ASSERT(rc == 0, "validated run does not resolve: %s", error.message);
  check_pairs(pairs, cfg);
  json_object_put(pairs);
}

static void resolve_pipeline(json_object *config, const char *key,
                             json_object *global, json_object *student,
                             const bw_config_t *cfg) {
  json_object *pipeline;
  if (!json_object_object_get_ex(config, key, &pipeline))
    return;
  size_t n = json_object_array_length(pipeline);
  for (size_t i = 0; i < n; i++)
    resolve_ok(global, student, json_object_array_get_idx(pipeline, i), cfg);
}

static void resolve_validated(json_object *config,
                              const bw_json_items_t *students,
                              const bw_config_t *cfg) {
  json_object *global = NULL, *student, *env;
  bw_error_t error = {0, ""};
  json_object_object_get_ex(config, "env", &global);
  resolve_pipeline(config, "pre_processing_pipeline", global, NULL, cfg);
  resolve_pipeline(config, "post_processing_pipeline", global, NULL, cfg);
  size_t n = bw_json_items_count(students);
  for (size_t i = 0; i < n; i++) {
    int rc = bw_json_items_get(students, i, &student, &error);
    FUZZ_ASSERT(rc == 0, "validated student unreadable: %s", error.message);
    env = bw_validate_env_text(student);
    FUZZ_ASSERT(env != NULL, "env text of a validated student is NULL");
    check_safe_for_mongo(env, cfg);
    resolve_pipeline(config, "student_pipeline", global, env, cfg);
    json_object_put(env);
    json_object_put(student);
  }
}

static void fuzz_run_config(json_object *body, const bw_json_items_t *students,
                            const bw_config_t *cfg) {
  json_object *config = NULL;
  bw_error_t error = {0, ""};
  int rc = bw_validate_run_config(body, students, cfg, &config, &error);
  if (rc < 0) {
    expect_rejection(rc, &error, config, "bw_validate_run_config");
    return;
  }
  FUZZ_ASSERT(config != NULL, "validated run config is NULL");
  check_safe_for_mongo(config, cfg);
  resolve_validated(config, students, cfg);
  json_object_put(config);
}

/* The resolver on layers nobody validated: it must not crash, whatever it
 * answers (its header only promises objects of NAME -> string). */
static void fuzz_raw_resolve(json_object *body, size_t size) {
  json_object *global = NULL, *students = NULL, *pipeline = NULL;
  json_object *student = NULL, *stage_env = NULL, *pairs = NULL;
  bw_error_t error;
  if (size > RAW_RESOLVE_MAX)
    return;
  json_object_object_get_ex(body, "env", &global);
  if (json_object_object_get_ex(body, "students", &students) &&
      json_object_is_type(students, json_type_array))
    student = json_object_array_get_idx(students, 0);
  if (json_object_object_get_ex(body, "student_pipeline", &pipeline) &&
      json_object_is_type(pipeline, json_type_array))
    json_object_object_get_ex(json_object_array_get_idx(pipeline, 0), "env",
                              &stage_env);
  if (!json_object_is_type(global, json_type_object))
    global = NULL;
  if (!json_object_is_type(student, json_type_object))
    student = NULL;
  if (!json_object_is_type(stage_env, json_type_object))
    stage_env = NULL;
  if (bw_env_resolve(global, student, stage_env, NULL, NULL, &pairs, &error) ==
      0)
    json_object_put(pairs);
}

static void fuzz_result(json_object *body, const bw_config_t *cfg) {
  json_object *result = NULL, *success, *info, *logs;
  bw_error_t error = {0, ""};
  int rc = bw_validate_result(body, cfg, &result, &error);
  if (rc < 0) {
    expect_rejection(rc, &error, result, "bw_validate_result");
    return;
  }
  FUZZ_ASSERT(json_object_object_get_ex(result, "success", &success) &&
                  json_object_is_type(success, json_type_boolean),
              "accepted result without a boolean success");
  FUZZ_ASSERT(json_object_object_get_ex(result, "info", &info) &&
                  json_object_is_type(info, json_type_array),
              "accepted result without an info array");
  FUZZ_ASSERT(bw_json_size(info) <= cfg->max_info_bytes,
              "accepted info of %zu bytes", bw_json_size(info));
  if (json_object_object_get_ex(result, "logs", &logs))
    FUZZ_ASSERT(bw_json_size(logs) <= cfg->max_logs_bytes,
                "accepted logs of %zu bytes", bw_json_size(logs));
  check_safe_for_mongo(result, cfg);
  json_object_put(result);
}

/* The lazy parse must read what the whole parse reads: the same tree
 * but for students, and each student equal to the whole tree's; where the
 * whole parse refuses a body the lazy one accepts, the problem is inside a
 * student, and reading the students finds it. */
static void compare_parsers(json_object *whole, json_object *lazy,
                            const bw_json_items_t *students) {
  json_object *list = NULL, *student;
  bw_error_t error = {0, ""};
  size_t n = bw_json_items_count(students);
  bool refused = false;

  for (size_t i = 0; i < n && !refused; i++) {
    refused = bw_json_items_get(students, i, &student, &error) < 0;
    if (whole != NULL && !refused) {
      json_object_object_get_ex(whole, "students", &list);
      FUZZ_ASSERT(
          json_object_equal(student, json_object_array_get_idx(list, i)),
          "student %zu differs between the parsers", i);
    }
    json_object_put(student);
  }
  FUZZ_ASSERT(whole != NULL || refused || lazy == NULL,
              "the whole parse refused a body the lazy one reads entirely");
  FUZZ_ASSERT(whole == NULL || !refused, "a student of a good body refused: %s",
              error.message);
  if (whole != NULL && students != NULL) {
    json_object_object_get_ex(whole, "students", &list);
    FUZZ_ASSERT(json_object_array_length(list) == n,
                "%zu students, the whole parse has %zu", n,
                json_object_array_length(list));
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const bw_config_t *cfg = fuzz_config();
  json_object *body = NULL, *whole = NULL;
  bw_json_items_t *students = NULL;
  bw_error_t error = {0, ""};
  int rc = bw_json_parse_body((const char *)data, size, cfg->max_depth, &whole,
                              &error);
  if (rc < 0)
    expect_rejection(rc, &error, whole, "bw_json_parse_body");
  /* Run bodies are parsed as the API does: students kept as text. */
  rc = bw_json_parse_body_lazy((const char *)data, size, cfg->max_depth,
                               "students", &body, &students, &error);
  if (rc < 0) {
    expect_rejection(rc, &error, body, "bw_json_parse_body_lazy");
    FUZZ_ASSERT(whole == NULL, "the lazy parse refused a good body: %s",
                error.message);
  } else {
    check_safe_for_mongo(body, cfg);
    compare_parsers(whole, body, students);
    fuzz_run_config(body, students, cfg);
    json_object_put(body);
  }
  bw_json_items_free(students);
  if (whole == NULL)
    return 0;
  check_safe_for_mongo(whole, cfg);
  fuzz_result(whole, cfg);
  fuzz_raw_resolve(whole, size);
  json_object_put(whole);
  return 0;
}
