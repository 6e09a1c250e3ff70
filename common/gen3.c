#include "gen3.h"

#include <string.h>

#include "admin.h"
#include "env.h"
#include "job.h"

#define GEN3_RUN_NOT_FOUND "grading run with the given ID not found"
#define GEN3_LOG_NOT_FOUND                                                     \
  "grading job with the given IDnot found or has not finished"

/* True when a run's or job's document is of the 2019 API and `course`. */
static bool gen3_is_of(const bson_t *doc, const char *course) {
  return bw_db_get_int(doc, "gen") == BW_GEN_3 &&
         strcmp(bw_db_get_utf8(doc, "course", ""), course) == 0;
}

/* The run's document when it is `course`'s Gen 3 run; BW_ENOTFOUND with
 * the original's text otherwise, whatever the reason. */
static int gen3_run_find(bw_db_t *db, const char *course, const bson_oid_t *run,
                         bool with_config, bson_t *doc, bw_error_t *error) {
  int rc = bw_run_find(db, run, with_config, doc, error);
  if (rc == 0 && !gen3_is_of(doc, course))
    rc = BW_ENOTFOUND;
  if (rc == BW_ENOTFOUND)
    return bw_error_set(error, BW_ENOTFOUND, GEN3_RUN_NOT_FOUND);
  return rc;
}

static const char *gen3_run_state(const char *state) {
  static const char *const map[][2] = {
      {"created", BW_GEN3_RUN_READY},
      {"pre_processing", BW_GEN3_RUN_PRE},
      {"students", BW_GEN3_RUN_STUDENTS},
      {"post_processing", BW_GEN3_RUN_POST},
      {"succeeded", BW_GEN3_RUN_FINISHED}};
  for (size_t i = 0; i < sizeof map / sizeof *map; i++)
    if (strcmp(state, map[i][0]) == 0)
      return map[i][1];
  return BW_GEN3_RUN_FAILED; /* failed, and cancelled (staff's seed route) */
}

/* A job's §2.9.1 state, or NULL while its phase has not queued it (the
 * original creates a job when it queues it). */
static const char *gen3_job_state(const bw_run_job_t *j,
                                  const char *run_state) {
  const char *state;
  if (j->final)
    return j->final == 1 ? BW_GEN3_JOB_SUCCEEDED : BW_GEN3_JOB_FAILED;
  if (j->active)
    return BW_GEN3_JOB_STARTED;
  state = bw_run_job_state(j->type, run_state);
  if (strcmp(state, "queued") == 0)
    return BW_GEN3_JOB_QUEUED;
  return strcmp(state, "cancelled") == 0 ? BW_GEN3_JOB_FAILED : NULL;
}

/* The run's jobs by type, each listed by `value` while it exists:
 * {pre: {id: v} | null, post: ..., student: {id: v, ...}}. */
typedef json_object *(*gen3_value_fn)(const bw_run_job_t *j, const char *state,
                                      void *ctx);

static int gen3_run_jobs(bw_db_t *db, const bson_oid_t *run,
                         const char *run_state, gen3_value_fn value, void *ctx,
                         json_object *maps[3], bw_error_t *error) {
  bw_run_jobs_t t;
  int rc = bw_run_jobs_load(db, run, false, &t, error);

  maps[0] = maps[1] = NULL;
  maps[2] = json_object_new_object();
  for (size_t i = 0; rc == 0 && i < t.n; i++) {
    const bw_run_job_t *j = &t.jobs[i];
    const char *state = gen3_job_state(j, run_state);
    int k = strcmp(j->type, "pre") == 0    ? 0
            : strcmp(j->type, "post") == 0 ? 1
                                           : 2;
    char hex[25];
    if (state == NULL)
      continue;
    if (maps[k] == NULL)
      maps[k] = json_object_new_object();
    bson_oid_to_string(&j->id, hex);
    json_object_object_add(maps[k], hex, value(j, state, ctx));
  }
  if (rc == 0)
    bw_run_jobs_cleanup(&t);
  else
    for (int k = 0; k < 3; k++)
      json_object_put(maps[k]);
  return rc;
}

static json_object *gen3_state_value(const bw_run_job_t *j, const char *state,
                                     void *ctx) {
  (void)j, (void)ctx;
  return json_object_new_string(state);
}

int bw_run_status_gen3(bw_db_t *db, const char *course, const bson_oid_t *run,
                       json_object **out, bw_error_t *error) {
  json_object *maps[3];
  bson_t doc;
  const char *state;
  int rc = gen3_run_find(db, course, run, false, &doc, error);

  *out = NULL;
  state = bw_db_get_utf8(&doc, "state", "created");
  if (rc == 0)
    rc = gen3_run_jobs(db, run, state, gen3_state_value, NULL, maps, error);
  if (rc == 0) {
    *out = json_object_new_object();
    json_object_object_add(*out, "state",
                           json_object_new_string(gen3_run_state(state)));
    json_object_object_add(*out, "pre_processing_job_state", maps[0]);
    json_object_object_add(*out, "post_processing_job_state", maps[1]);
    json_object_object_add(*out, "student_jobs_state", maps[2]);
  }
  bson_destroy(&doc);
  return rc;
}

/* ---- env --------------------------------------------------------------- */

typedef struct gen3_env_ctx {
  json_object *config;
  char run_id[25];
} gen3_env_ctx_t;

/* Adds value to the list of `name` in env unless it is there already. */
static void gen3_env_add(json_object *env, const char *name,
                         json_object *value) {
  json_object *list;
  const char *text = json_object_to_json_string(value);
  if (!json_object_object_get_ex(env, name, &list)) {
    list = json_object_new_array();
    json_object_object_add(env, name, list);
  }
  for (size_t i = 0; i < json_object_array_length(list); i++)
    if (strcmp(json_object_to_json_string(json_object_array_get_idx(list, i)),
               text) == 0)
      return;
  json_object_array_add(list, json_object_get(value));
}

/* §2.10's ENV of a job: each variable of its stages' merged envs with the
 * distinct values it takes across them. */
static json_object *gen3_env_value(const bw_run_job_t *j, const char *state,
                                   void *ctx) {
  gen3_env_ctx_t *c = ctx;
  const char *pipeline = strcmp(j->type, "pre") == 0 ? "pre_processing_pipeline"
                         : strcmp(j->type, "post") == 0
                             ? "post_processing_pipeline"
                             : "student_pipeline";
  json_object *stages = json_object_object_get(c->config, pipeline),
              *runtime = j->student, *out = json_object_new_object();
  char job_id[25];

  (void)state;
  bson_oid_to_string(&j->id, job_id);
  if (strcmp(j->type, "pre") == 0)
    runtime = json_object_object_get(c->config, "pre_processing_env");
  else if (strcmp(j->type, "post") == 0)
    runtime = json_object_object_get(c->config, "post_processing_env");
  for (size_t i = 0; i < json_object_array_length(stages); i++) {
    json_object *env = bw_env_merge_gen3(
        json_object_object_get(c->config, "env"),
        json_object_object_get(json_object_array_get_idx(stages, i), "env"),
        runtime, c->run_id, job_id);
    json_object_object_foreach(env, name, value) gen3_env_add(out, name, value);
    json_object_put(env);
  }
  return out;
}

int bw_run_env_gen3(bw_db_t *db, const char *course, const bson_oid_t *run,
                    json_object **out, bw_error_t *error) {
  gen3_env_ctx_t ctx = {NULL, ""};
  json_object *maps[3];
  bson_t doc;
  const char *state;
  int rc = gen3_run_find(db, course, run, false, &doc, error);

  *out = NULL;
  state = bw_db_get_utf8(&doc, "state", "created");
  bson_oid_to_string(run, ctx.run_id);
  if (rc == 0)
    rc = bw_run_config(db, run, &ctx.config, error);
  if (rc == 0)
    rc = gen3_run_jobs(db, run, state, gen3_env_value, &ctx, maps, error);
  if (rc == 0) {
    *out = json_object_new_object();
    json_object_object_add(*out, "pre_processing_env", maps[0]);
    json_object_object_add(*out, "post_processing_env", maps[1]);
    json_object_object_add(*out, "student_env", maps[2]);
  }
  json_object_put(ctx.config);
  bson_destroy(&doc);
  return rc;
}

/* ---- one job ------------------------------------------------------------ */

/* The client's view of `course`'s Gen 3 job (bw_job_get); BW_ENOTFOUND
 * with `missing` for an unknown job or another course's. */
static int gen3_job_view(bw_db_t *db, const char *course, const bson_oid_t *job,
                         const char *missing, json_object **view,
                         bw_error_t *error) {
  bson_t doc;
  int rc = bw_db_find_by_oid(db, BW_COLL_JOBS, "_id", job, &doc, error);
  if (rc == 0 && !gen3_is_of(&doc, course))
    rc = BW_ENOTFOUND;
  bson_destroy(&doc);
  *view = NULL;
  if (rc == 0)
    rc = bw_job_get(db, job, view, error);
  if (rc == BW_ENOTFOUND)
    return bw_error_set(error, BW_ENOTFOUND, "%s", missing);
  return rc;
}

static const char *gen3_view_state(json_object *view) {
  return json_object_get_string(json_object_object_get(view, "state"));
}

/* A log field as §2.7 stores it: a string, anything else "". */
static json_object *gen3_log_text(json_object *logs, const char *key) {
  json_object *v = json_object_object_get(logs, key);
  return json_object_is_type(v, json_type_string) ? json_object_get(v)
                                                  : json_object_new_string("");
}

int bw_job_log_gen3(bw_db_t *db, const char *course, const bson_oid_t *job,
                    json_object **out, bw_error_t *error) {
  json_object *view, *logs;
  const char *state;
  int rc = gen3_job_view(db, course, job, GEN3_LOG_NOT_FOUND, &view, error);

  *out = NULL;
  if (rc < 0)
    return rc;
  state = gen3_view_state(view);
  if (strcmp(state, "succeeded") != 0 && strcmp(state, "failed") != 0) {
    json_object_put(view);
    return bw_error_set(error, BW_ENOTFOUND, GEN3_LOG_NOT_FOUND);
  }
  /* A job the service gave up (its graders died) has no logs: "" and "". */
  logs = json_object_object_get(view, "logs");
  *out = json_object_new_object();
  json_object_object_add(*out, "stdout", gen3_log_text(logs, "stdout"));
  json_object_object_add(*out, "stderr", gen3_log_text(logs, "stderr"));
  json_object_put(view);
  return 0;
}

int bw_job_state_gen3(bw_db_t *db, const char *course, const bson_oid_t *job,
                      const char **state, bw_error_t *error) {
  json_object *view;
  const char *s;
  int rc = gen3_job_view(db, course, job, "grading job not found", &view,
                         error);

  *state = NULL;
  if (rc < 0)
    return rc;
  s = gen3_view_state(view);
  *state = strcmp(s, "running") == 0     ? "STARTED"
           : strcmp(s, "succeeded") == 0 ? "FINISHED"
           : strcmp(s, "failed") == 0 || strcmp(s, "cancelled") == 0
               ? "FAILED"
               : "QUEUED";
  json_object_put(view);
  return 0;
}

/* ---- workers ------------------------------------------------------------ */

int bw_worker_list_gen3(bw_db_t *db, const bw_config_t *cfg, json_object **out,
                        bw_error_t *error) {
  json_object *all = NULL, *workers, *nodes;
  int rc = bw_admin_workers(db, cfg, &all, error);

  *out = NULL;
  if (rc < 0)
    return rc;
  workers = json_object_object_get(all, "workers");
  nodes = json_object_new_array();
  for (size_t i = 0; i < json_object_array_length(workers); i++) {
    json_object *w = json_object_array_get_idx(workers, i),
                *node = json_object_new_object();
    json_object_object_add(node, "hostname",
                           json_object_get(json_object_object_get(w, "hostname")));
    json_object_object_add(
        node, "jobs_processed",
        json_object_get(json_object_object_get(w, "jobs_done")));
    json_object_object_add(
        node, "busy",
        json_object_new_boolean(json_object_array_length(
                                    json_object_object_get(w, "jobs")) > 0));
    json_object_object_add(node, "alive",
                           json_object_get(json_object_object_get(w, "alive")));
    json_object_array_add(nodes, node);
  }
  *out = json_object_new_object();
  json_object_object_add(*out, "worker_nodes", nodes);
  json_object_put(all);
  return 0;
}
