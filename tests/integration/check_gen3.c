/* check_gen3.c - the 2019 API's graders against the real stack
 * (../shared/spec/PROTOCOL-LATER.md §2.7, §2.9, §3.2, §4.2).
 *
 * - the 2019 HTTP grader (run.py) replayed call by call: register (and a
 *   duplicate register: 400), heartbeat, 498 on an empty queue, the job
 *   message, results, the run's states and the job log;
 * - a 2018-era grader (Gen 2a calls, §3.1) and a 2019 grader, two of each,
 *   draining one mixed set of seed-era and Gen 3 runs at once: every job
 *   handed out once, each grader only its own generation's;
 * - a run of 800 of one generation queued first hides no job of the other;
 * - cancel and retry (the staff's routes) of a Gen 3 run;
 * - kill -9 of a 2019 grader holding a job: the job is re-queued, graded by
 *   another and finished once.
 *
 * Gen 3 runs are created through common/ (bw_run_create_gen3) on the
 * stack's database, as the course routes (another branch) will; their
 * views (status, env, log, job state, worker list) are read the same way.
 * Bounded: about 25 s in all. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/itest.h"
#include "admin.h"
#include "db.h"
#include "gen3.h"
#include "job.h"
#include "run.h"

#define G3_POLL_WAIT 2

/* ---- a 2019 grader, as run.py calls (Python requests) ------------------- */

typedef struct g3_grader {
  char name[64];
  char auth[320]; /* "Bearer <cluster token>" */
} g3_grader_t;

static void g3_grader_init(g3_grader_t *g, const char *name) {
  snprintf(g->name, sizeof g->name, "%s", name);
  snprintf(g->auth, sizeof g->auth, "Bearer %s",
           bw_test_stack_token(bw_itest_stack()));
}

/* One request with `auth` (NULL: none) and no worker_id header. */
static long g3_send(const char *auth, const char *method, const char *path,
                    const char *body, bw_test_http_resp_t *r) {
  char url[512];
  snprintf(url, sizeof url, "%s%s", bw_test_stack_url(bw_itest_stack()), path);
  bw_test_http_req_t req = {.method = method,
                            .url = url,
                            .authorization = auth,
                            .body = body,
                            .body_len = body ? strlen(body) : 0};
  return bw_test_http_send(&req, r);
}

static long g3_call(const g3_grader_t *g, const char *method,
                    const char *route, const char *body,
                    bw_test_http_resp_t *r) {
  char path[256];
  snprintf(path, sizeof path, "/api/v1/%s/%s", route, g->name);
  return g3_send(g->auth, method, path, body, r);
}

static long g3_register(const g3_grader_t *g, bw_test_http_resp_t *r) {
  return g3_call(g, "POST", "worker", "{\"hostname\": \"grader-2019\"}", r);
}

static long g3_heartbeat(const g3_grader_t *g) {
  bw_test_http_resp_t r;
  long status = g3_call(g, "POST", "heartbeat", "", &r);
  bw_test_http_resp_cleanup(&r);
  return status;
}

/* GET /api/v1/grading_job/<name>: on 200 the job message is in r. */
static long g3_poll(const g3_grader_t *g, bw_test_http_resp_t *r) {
  return g3_call(g, "GET", "grading_job", NULL, r);
}

/* The result as run.py sends it: chainlink's per-stage list. */
static long g3_report(const g3_grader_t *g, const char *job_id, bool success,
                      bw_test_http_resp_t *r) {
  char body[1024];
  snprintf(body, sizeof body,
           "{\"grading_job_id\": \"%s\", \"success\": %s, \"results\": "
           "[{\"data\": {\"Status\": \"exited\", \"Running\": false, "
           "\"ExitCode\": %d, \"OOMKilled\": false}, \"killed\": false, "
           "\"success\": %s}], \"logs\": {\"stdout\": \"out of %s\", "
           "\"stderr\": \"\"}}",
           job_id, success ? "true" : "false", success ? 0 : 1,
           success ? "true" : "false", job_id);
  return g3_call(g, "POST", "grading_job", body, r);
}

/* ---- Gen 3 runs, through common/ ----------------------------------------- */

static bw_db_t *g3_db(bw_config_t *cfg) {
  bw_db_t *db = NULL;
  bw_error_t error;
  *cfg = bw_itest_config();
  ck_assert_int_eq(bw_db_open(&db, cfg, &error), 0);
  return db;
}

/* A Gen 3 run of `course`/mp1 from the config and body texts. */
static void g3_run(const char *course, const char *config_text,
                   const char *body_text, char run_id[25]) {
  bw_config_t cfg;
  bw_db_t *db = g3_db(&cfg);
  json_object *config = json_tokener_parse(config_text),
              *body = json_tokener_parse(body_text);
  bson_oid_t run;
  bw_error_t error;
  ck_assert_ptr_nonnull(config);
  ck_assert_ptr_nonnull(body);
  ck_assert_msg(bw_run_create_gen3(db, &cfg, course, "mp1", config, body, &run,
                                   &error) == 0,
                "bw_run_create_gen3: %s", error.message);
  bson_oid_to_string(&run, run_id);
  json_object_put(config);
  json_object_put(body);
  bw_db_close(db);
}

/* A Gen 3 run of `students` students with a pre and a post job. */
static void g3_run_of(int students, char run_id[25]) {
  char body[4096];
  int n = snprintf(body, sizeof body, "{\"students_env\": [");
  for (int i = 0; i < students; i++)
    n += snprintf(body + n, sizeof body - (size_t)n, "%s{\"STUDENT_ID\": \"s%d\"}",
                  i ? ", " : "", i);
  snprintf(body + n, sizeof body - (size_t)n, "]}");
  g3_run("cs241",
         "{\"student_pipeline\": [{\"image\": \"grader:1\", \"timeout\": 5}],"
         " \"pre_processing_pipeline\": [{\"image\": \"pre:1\"}],"
         " \"post_processing_pipeline\": [{\"image\": \"post:1\"}],"
         " \"env\": {\"A\": \"g\"}}",
         body, run_id);
}

static json_object *g3_status(const char *course, const char *run_id) {
  bw_config_t cfg;
  bw_db_t *db = g3_db(&cfg);
  bson_oid_t run;
  bw_error_t error;
  json_object *out = NULL;
  ck_assert(bw_db_oid_parse(run_id, &run));
  ck_assert_msg(bw_run_status_gen3(db, course, &run, &out, &error) == 0,
                "status: %s", error.message);
  bw_db_close(db);
  return out;
}

/* Waits (20 s at most) for the run's §2.9.1 state. */
static json_object *g3_expect_state(const char *run_id, const char *state) {
  double deadline = bw_test_now() + 20;
  for (;;) {
    json_object *status = g3_status("cs241", run_id);
    const char *now = bw_test_json_str(status, "state");
    if (strcmp(now, state) == 0)
      return status;
    ck_assert_msg(bw_test_now() < deadline, "run %s: %s", run_id,
                  json_object_to_json_string(status));
    json_object_put(status);
    bw_test_sleep_ms(100);
  }
}

static const char *g3_env_str(json_object *stage, const char *key) {
  return bw_test_json_str(bw_test_json_get(stage, "env"), key);
}

/* Takes the next job (it must come within 10 s): its message's first stage
 * in *stage (borrowed from r), its id in job_id. */
static json_object *g3_take(const g3_grader_t *g, bw_test_http_resp_t *r,
                            char job_id[25]) {
  double deadline = bw_test_now() + 10;
  while (g3_poll(g, r) == 498 && bw_test_now() < deadline) {
    bw_test_http_resp_cleanup(r);
    bw_test_sleep_ms(100);
  }
  BW_ASSERT_SUCCESS(r, 200);
  json_object *job = bw_test_http_data(r);
  /* Exactly the two keys (run-ws.py's schema forbids any other). */
  ck_assert_int_eq(json_object_object_length(job), 2);
  snprintf(job_id, 25, "%s", bw_test_json_str(job, "grading_job_id"));
  ck_assert(bw_test_is_oid(job_id));
  json_object *stages = bw_test_json_get(job, "stages");
  ck_assert_int_eq(json_object_array_length(stages), 1);
  json_object *stage = json_object_array_get_idx(stages, 0);
  ck_assert(json_object_is_type(bw_test_json_get(stage, "env"),
                                json_type_object));
  ck_assert_str_eq(g3_env_str(stage, "GRADING_JOB_ID"), job_id);
  return stage;
}

static void g3_report_ok(const g3_grader_t *g, const char *job_id) {
  bw_test_http_resp_t r;
  g3_report(g, job_id, true, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  ck_assert(json_object_is_type(bw_test_json_get(r.json, "data"),
                                json_type_null));
  bw_test_http_resp_cleanup(&r);
}

/* ---- grader@166868d:run.py, §3.2 ------------------------------------------ */

START_TEST(test_grader_2019_sequence) {
  g3_grader_t g;
  bw_test_http_resp_t r;
  char run_id[25], pre[25], s0[25], s1[25], post[25];
  json_object *stage;

  g3_grader_init(&g, "5b0c4e3a-6a0b-4c1e-9a59-2d1f0e6f1a77");
  /* 1. register: 200 exactly, data.heartbeat, no worker_id */
  g3_register(&g, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  ck_assert_int_eq(bw_test_json_int(bw_test_http_data(&r), "heartbeat"), 10);
  ck_assert_ptr_null(bw_test_json_get(bw_test_http_data(&r), "worker_id"));
  bw_test_http_resp_cleanup(&r);
  /* a restart with the same id while it is alive: 400, and it exits */
  g3_register(&g, &r);
  BW_ASSERT_FAIL(&r, 400, "worker id '5b0c4e3a-6a0b-4c1e-9a59-2d1f0e6f1a77' "
                          "already exists");
  bw_test_http_resp_cleanup(&r);
  /* 2. the heartbeat thread: empty body, 200 */
  ck_assert_int_eq(g3_heartbeat(&g), 200);
  /* 3. poll, empty: 498 with the original's body; it waits 5 s */
  double t0 = bw_test_now();
  ck_assert_int_eq(g3_poll(&g, &r), 498);
  ck_assert_msg(bw_test_now() - t0 < G3_POLL_WAIT + 5, "498 after %.1f s",
                bw_test_now() - t0);
  BW_ASSERT_FAIL(&r, 498, "no jobs available");
  bw_test_http_resp_cleanup(&r);

  /* A run: config env, a stage env, two students (the second lacks B:
   * the original's shared-stage bug would give it the first's). */
  g3_run("cs241",
         "{\"student_pipeline\": [{\"image\": \"grader:1\", \"env\": "
         "{\"A\": \"s\", \"B\": \"s\"}, \"entrypoint\": [\"/run\"], "
         "\"networking\": false, \"timeout\": 5, \"memory\": \"1g\"}],"
         " \"pre_processing_pipeline\": [{\"image\": \"pre:1\"}],"
         " \"post_processing_pipeline\": [{\"image\": \"post:1\"}],"
         " \"env\": {\"A\": \"g\", \"N\": 7}}",
         "{\"students_env\": [{\"B\": \"u\", \"STUDENT_ID\": \"x\"}, "
         "{\"STUDENT_ID\": \"y\"}], \"pre_processing_env\": {\"P\": \"pre\"}}",
         run_id);
  json_object *status = g3_status("cs241", run_id);
  ck_assert_str_eq(bw_test_json_str(status, "state"),
                   "pre processing job has been scheduled");
  ck_assert_int_eq(json_object_object_length(
                       bw_test_json_get(status, "student_jobs_state")),
                   0);
  ck_assert(json_object_is_type(
      bw_test_json_get(status, "post_processing_job_state"), json_type_null));
  json_object_put(status);

  /* the pre job: no roster, its runtime env is pre_processing_env */
  stage = g3_take(&g, &r, pre);
  ck_assert_str_eq(bw_test_json_str(stage, "image"), "pre:1");
  ck_assert_str_eq(g3_env_str(stage, "P"), "pre");
  ck_assert_str_eq(g3_env_str(stage, "A"), "g");
  ck_assert_str_eq(g3_env_str(stage, "GRADING_RUN_ID"), run_id);
  ck_assert_ptr_null(bw_test_json_get(bw_test_http_data(&r), "students"));
  bw_test_http_resp_cleanup(&r);
  status = g3_status("cs241", run_id);
  ck_assert_str_eq(bw_test_json_str(bw_test_json_get(status,
                                                     "pre_processing_job_state"),
                                    pre),
                   "grading job is running");
  json_object_put(status);
  /* 4. its result */
  g3_report_ok(&g, pre);

  /* the students, in list order of the queue's choosing */
  for (int i = 0; i < 2; i++) {
    char id[25];
    stage = g3_take(&g, &r, id);
    json_object *env = bw_test_json_get(stage, "env");
    /* the stage copied unchanged, env replaced */
    ck_assert_str_eq(bw_test_json_str(stage, "image"), "grader:1");
    ck_assert_str_eq(json_object_to_json_string_ext(
                         bw_test_json_get(stage, "entrypoint"),
                         JSON_C_TO_STRING_PLAIN |
                             JSON_C_TO_STRING_NOSLASHESCAPE),
                     "[\"/run\"]");
    ck_assert(!json_object_get_boolean(bw_test_json_get(stage, "networking")));
    ck_assert_str_eq(bw_test_json_str(stage, "memory"), "1g");
    ck_assert_ptr_null(bw_test_json_get(stage, "entry_point"));
    ck_assert_str_eq(bw_test_json_str(env, "A"), "s"); /* stage > global */
    ck_assert_int_eq(bw_test_json_int(env, "N"), 7);   /* literal, typed */
    ck_assert_str_eq(bw_test_json_str(env, "GRADING_RUN_ID"), run_id);
    if (strcmp(bw_test_json_str(env, "STUDENT_ID"), "x") == 0) {
      ck_assert_str_eq(bw_test_json_str(env, "B"), "u"); /* runtime > stage */
      snprintf(s0, sizeof s0, "%s", id);
    } else {
      ck_assert_str_eq(bw_test_json_str(env, "STUDENT_ID"), "y");
      ck_assert_str_eq(bw_test_json_str(env, "B"), "s"); /* pristine */
      snprintf(s1, sizeof s1, "%s", id);
    }
    ck_assert_int_eq(json_object_object_length(env), 6);
    bw_test_http_resp_cleanup(&r);
    g3_report_ok(&g, id);
  }
  stage = g3_take(&g, &r, post);
  ck_assert_str_eq(bw_test_json_str(stage, "image"), "post:1");
  ck_assert_ptr_null(g3_env_str(stage, "P")); /* no post_processing_env */
  bw_test_http_resp_cleanup(&r);
  g3_report_ok(&g, post);

  status = g3_expect_state(run_id, "grading run is complete");
  ck_assert_str_eq(
      bw_test_json_str(bw_test_json_get(status, "student_jobs_state"), s0),
      "grading job was successful");
  ck_assert_str_eq(
      bw_test_json_str(bw_test_json_get(status, "post_processing_job_state"),
                       post),
      "grading job was successful");
  json_object_put(status);

  /* the job log, and the seed client's view of the same job */
  bw_config_t cfg;
  bw_db_t *db = g3_db(&cfg);
  bson_oid_t oid;
  bw_error_t error;
  json_object *log = NULL;
  ck_assert(bw_db_oid_parse(s1, &oid));
  ck_assert_int_eq(bw_job_log_gen3(db, "cs241", &oid, &log, &error), 0);
  char want[64];
  snprintf(want, sizeof want, "out of %s", s1);
  ck_assert_str_eq(bw_test_json_str(log, "stdout"), want);
  ck_assert_str_eq(bw_test_json_str(log, "stderr"), "");
  json_object_put(log);
  ck_assert_int_eq(bw_job_log_gen3(db, "cs225", &oid, &log, &error),
                   BW_ENOTFOUND); /* another course's job */
  const char *state = NULL;
  ck_assert_int_eq(bw_job_state_gen3(db, "cs241", &oid, &state, &error), 0);
  ck_assert_str_eq(state, "FINISHED");
  /* §2.10's env view: each variable's distinct values */
  json_object *envs = NULL;
  bson_oid_t run;
  ck_assert(bw_db_oid_parse(run_id, &run));
  ck_assert_int_eq(bw_run_env_gen3(db, "cs241", &run, &envs, &error), 0);
  json_object *e0 = bw_test_json_get(bw_test_json_get(envs, "student_env"), s0);
  ck_assert_str_eq(json_object_to_json_string_ext(bw_test_json_get(e0, "B"),
                                                  JSON_C_TO_STRING_PLAIN),
                   "[\"u\"]");
  ck_assert_str_eq(json_object_to_json_string_ext(
                       bw_test_json_get(bw_test_json_get(
                           bw_test_json_get(envs, "pre_processing_env"), pre),
                                        "P"),
                       JSON_C_TO_STRING_PLAIN),
                   "[\"pre\"]");
  json_object_put(envs);
  ck_assert_int_eq(bw_run_env_gen3(db, "cs225", &run, &envs, &error),
                   BW_ENOTFOUND);
  ck_assert_str_eq(error.message, "grading run with the given ID not found");
  /* the worker list: this grader, alive, idle, one result per job */
  json_object *list = NULL;
  ck_assert_int_eq(bw_worker_list_gen3(db, &cfg, &list, &error), 0);
  json_object *nodes = bw_test_json_get(list, "worker_nodes");
  ck_assert_int_eq(json_object_array_length(nodes), 1);
  json_object *node = json_object_array_get_idx(nodes, 0);
  ck_assert_str_eq(bw_test_json_str(node, "hostname"), "grader-2019");
  ck_assert_int_eq(bw_test_json_int(node, "jobs_processed"), 4);
  ck_assert(!json_object_get_boolean(bw_test_json_get(node, "busy")));
  ck_assert(json_object_get_boolean(bw_test_json_get(node, "alive")));
  json_object_put(list);
  /* the staff's list names it by the id it chose */
  ck_assert_int_eq(bw_admin_workers(db, &cfg, &list, &error), 0);
  ck_assert_str_eq(bw_test_json_str(json_object_array_get_idx(
                                        bw_test_json_get(list, "workers"), 0),
                                    "name"),
                   g.name);
  json_object_put(list);
  bw_db_close(db);
  bw_test_client_t c;
  bw_itest_client(&c);
  ck_assert_int_eq(bw_test_http_get_job(&c, s1, &r), 200);
  ck_assert_str_eq(bw_test_json_str(bw_test_http_data(&r), "state"),
                   "succeeded");
  bw_test_http_resp_cleanup(&r);

  /* results the original refuses, with its 400s */
  g3_report(&g, s0, true, &r); /* already finished */
  BW_ASSERT_FAIL(&r, 400, "cannot update job that is not in STARTED state");
  bw_test_http_resp_cleanup(&r);
  g3_report(&g, "weird", true, &r);
  BW_ASSERT_FAIL(&r, 400, "job with the given ID not found");
  bw_test_http_resp_cleanup(&r);
  g3_report(&g, "0123456789abcdef01234567", true, &r);
  BW_ASSERT_FAIL(&r, 400, "job with the given ID not found");
  bw_test_http_resp_cleanup(&r);
  /* 3 again: the queue is empty once more */
  ck_assert_int_eq(g3_poll(&g, &r), 498);
  bw_test_http_resp_cleanup(&r);
}
END_TEST

START_TEST(test_gen3_auth_and_unknown_workers) {
  g3_grader_t g, unknown;
  bw_test_http_resp_t r;
  char bad[400];
  g3_grader_init(&g, "test_worker");
  g3_grader_init(&unknown, "1234");
  g3_register(&g, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  bw_test_http_resp_cleanup(&r);

  /* the cluster token only, as "Bearer <token>" exactly */
  const char *token = bw_test_stack_token(bw_itest_stack());
  struct {
    const char *auth, *message;
  } wrong[4] = {{NULL, "invalid token format"},
                {token, "invalid token format"},
                {bad, "invalid token format"},
                {"Bearer not-the-token", "invalid token"}};
  snprintf(bad, sizeof bad, "Bearer  %s", token);
  for (int i = 0; i < 4; i++) {
    g3_send(wrong[i].auth, "POST", "/api/v1/worker/other",
            "{\"hostname\": \"h\"}", &r);
    BW_ASSERT_FAIL(&r, 401, wrong[i].message);
    bw_test_http_resp_cleanup(&r);
    g3_send(wrong[i].auth, "POST", "/api/v1/heartbeat/test_worker", "", &r);
    BW_ASSERT_FAIL(&r, 401, "");
    bw_test_http_resp_cleanup(&r);
  }
  /* an unknown worker: 401 worker not found, on every grader route */
  ck_assert_int_eq(g3_poll(&unknown, &r), 401);
  BW_ASSERT_FAIL(&r, 401, "worker not found");
  bw_test_http_resp_cleanup(&r);
  g3_report(&unknown, "0123456789abcdef01234567", true, &r);
  BW_ASSERT_FAIL(&r, 401, "worker not found");
  bw_test_http_resp_cleanup(&r);
  ck_assert_int_eq(g3_heartbeat(&unknown), 401);
  /* bad bodies name the field */
  g3_call(&g, "POST", "worker", "{\"hostname\": 3}", &r);
  BW_ASSERT_STATUS(&r, 400);
  bw_test_http_resp_cleanup(&r);
  g3_call(&g, "POST", "grading_job",
          "{\"grading_job_id\": \"x\", \"success\": true, \"results\": []}",
          &r);
  BW_ASSERT_FAIL(&r, 400, "logs: required");
  bw_test_http_resp_cleanup(&r);
  /* a name that is a seed-era grader's id is taken (§4.2) */
  bw_test_client_t seed;
  bw_itest_client(&seed);
  ck_assert_int_eq(bw_test_http_register(&seed, NULL, NULL), 200);
  g3_grader_t clash;
  g3_grader_init(&clash, seed.worker_id);
  g3_register(&clash, &r);
  BW_ASSERT_FAIL(&r, 400, "already exists");
  bw_test_http_resp_cleanup(&r);
  /* the WebSocket route: a clear JSON error */
  g3_call(&g, "GET", "worker_ws", NULL, &r);
  BW_ASSERT_FAIL(&r, 400, "WebSocket");
  bw_test_http_resp_cleanup(&r);
  /* /metrics names the 2019 routes apart from the seed's same paths */
  ck_assert_int_eq(bw_test_http_call(&seed, "GET", "/metrics", NULL, &r), 200);
  ck_assert_ptr_nonnull(strstr(
      r.body, "route=\"GET /api/v1/grading_job/{name}\",code=\"401\""));
  ck_assert_ptr_nonnull(strstr(r.body, "route=\"GET /api/v1/worker_ws/{name}\""));
  bw_test_http_resp_cleanup(&r);
}
END_TEST

/* ---- a 2018 and a 2019 grader drain one mixed set of runs ---------------- */

#define MIX_SEED_RUNS 2
#define MIX_G3_RUNS 2
#define MIX_STUDENTS 8
#define MIX_GRADERS 2 /* of each generation */

/* A 2018-12 grader (Gen 2a): register, then poll and report until `stop`
 * exists; writes "<job id> <shape>" per job to `out`. */
static void mix_seed_grader(const char *stop, const char *out, int n) {
  bw_test_client_t c;
  char host[64], job_id[25], path[128];
  FILE *f = fopen(out, "w");
  bw_itest_client(&c);
  snprintf(host, sizeof host, "grader-2018-%d", n);
  snprintf(path, sizeof path, "/api/v1/worker_register/%s", host);
  bw_test_http_resp_t r;
  if (bw_test_http_call(&c, "GET", path, NULL, &r) != 200)
    _exit(2);
  snprintf(c.worker_id, sizeof c.worker_id, "%s",
           bw_test_json_str(bw_test_http_data(&r), "worker_id"));
  bw_test_http_resp_cleanup(&r);
  while (access(stop, F_OK) != 0) {
    long status = bw_test_http_poll_wait(&c, 0, &r, job_id);
    if (status == 200) {
      json_object *stage = json_object_array_get_idx(
          bw_test_json_get(bw_test_http_data(&r), "stages"), 0);
      bool seed_shape = json_object_is_type(bw_test_json_get(stage, "env"),
                                            json_type_array);
      fprintf(f, "%s %s\n", job_id, seed_shape ? "seed" : "WRONG");
      fflush(f);
      snprintf(path, sizeof path, "/api/v1/grading_job/%s", job_id);
      bw_test_http_resp_cleanup(&r);
      if (bw_test_http_call(&c, "POST", path,
                            "{\"success\": true, \"results\": [], \"logs\": "
                            "{\"stdout\": \"\", \"stderr\": \"\"}}",
                            &r) != 200)
        _exit(3);
    } else if (status != 498) {
      _exit(4);
    } else {
      bw_test_sleep_ms(50);
    }
    bw_test_http_resp_cleanup(&r);
  }
  fclose(f);
  _exit(0);
}

static void mix_g3_grader(const char *stop, const char *out, int n) {
  g3_grader_t g;
  char name[64];
  FILE *f = fopen(out, "w");
  bw_test_http_resp_t r;
  snprintf(name, sizeof name, "grader-2019-%d", n);
  g3_grader_init(&g, name);
  if (g3_register(&g, &r) != 200)
    _exit(2);
  bw_test_http_resp_cleanup(&r);
  while (access(stop, F_OK) != 0) {
    long status = g3_poll(&g, &r);
    if (status == 200) {
      json_object *job = bw_test_http_data(&r);
      json_object *stage =
          json_object_array_get_idx(bw_test_json_get(job, "stages"), 0);
      char job_id[25];
      bool g3_shape = json_object_object_length(job) == 2 &&
                      json_object_is_type(bw_test_json_get(stage, "env"),
                                          json_type_object);
      snprintf(job_id, sizeof job_id, "%s",
               bw_test_json_str(job, "grading_job_id"));
      fprintf(f, "%s %s\n", job_id, g3_shape ? "gen3" : "WRONG");
      fflush(f);
      bw_test_http_resp_cleanup(&r);
      if (g3_report(&g, job_id, true, &r) != 200)
        _exit(3);
    } else if (status != 498) {
      _exit(4);
    } else {
      bw_test_sleep_ms(50);
    }
    bw_test_http_resp_cleanup(&r);
  }
  fclose(f);
  _exit(0);
}

/* Adds the job ids of a seed-era run's status (HTTP) to `ids` as keys. */
static void mix_seed_jobs(const char *run_id, json_object *ids) {
  bw_test_client_t c;
  bw_test_http_resp_t r;
  bw_itest_client(&c);
  double deadline = bw_test_now() + 30;
  for (;;) {
    ck_assert_int_eq(bw_test_http_run_status(&c, run_id, &r), 200);
    if (strcmp(bw_test_json_str(bw_test_http_data(&r), "state"),
               "succeeded") == 0)
      break;
    ck_assert_msg(bw_test_now() < deadline, "seed run %s: %s", run_id,
                  BW_BODY(&r));
    bw_test_http_resp_cleanup(&r);
    bw_test_sleep_ms(200);
  }
  json_object *jobs = bw_test_json_get(bw_test_http_data(&r), "jobs");
  for (size_t i = 0; i < json_object_array_length(jobs); i++)
    json_object_object_add(
        ids, bw_test_json_str(json_object_array_get_idx(jobs, i), "job_id"),
        json_object_new_string("seed"));
  bw_test_http_resp_cleanup(&r);
}

static void mix_g3_jobs(const char *run_id, json_object *ids) {
  json_object *status = g3_expect_state(run_id, "grading run is complete");
  static const char *maps[] = {"pre_processing_job_state",
                               "student_jobs_state",
                               "post_processing_job_state"};
  for (int m = 0; m < 3; m++) {
    json_object_object_foreach(bw_test_json_get(status, maps[m]), id, state) {
      ck_assert_str_eq(json_object_get_string(state),
                       "grading job was successful");
      json_object_object_add(ids, id, json_object_new_string("gen3"));
    }
  }
  json_object_put(status);
}

START_TEST(test_2018_and_2019_graders_drain_mixed_runs) {
  char dir[] = "/tmp/g3-mix-XXXXXX", stop[64], out[2 * MIX_GRADERS][80];
  char seed_runs[MIX_SEED_RUNS][25], g3_runs[MIX_G3_RUNS][25];
  pid_t pids[2 * MIX_GRADERS];
  bw_test_client_t c;

  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(stop, sizeof stop, "%s/stop", dir);
  bw_itest_client(&c);
  /* interleaved, so each generation's jobs sit among the other's */
  for (int i = 0; i < MIX_SEED_RUNS || i < MIX_G3_RUNS; i++) {
    if (i < MIX_SEED_RUNS) {
      char *config = bw_itest_run_config(
          MIX_STUDENTS, "{\"image\": \"bbox:1\"}", true, true);
      ck_assert_int_eq(bw_test_http_create_and_start(&c, config, seed_runs[i]),
                       200);
      free(config);
    }
    if (i < MIX_G3_RUNS)
      g3_run_of(MIX_STUDENTS, g3_runs[i]);
  }
  fflush(NULL);
  for (int i = 0; i < 2 * MIX_GRADERS; i++) {
    snprintf(out[i], sizeof out[i], "%s/grader-%d", dir, i);
    pids[i] = fork();
    ck_assert_int_ge(pids[i], 0);
    if (pids[i] == 0) {
      if (i % 2 == 0)
        mix_seed_grader(stop, out[i], i);
      else
        mix_g3_grader(stop, out[i], i);
    }
  }
  /* every run ends (its jobs were all graded), then the graders stop */
  json_object *expected = json_object_new_object();
  for (int i = 0; i < MIX_SEED_RUNS; i++)
    mix_seed_jobs(seed_runs[i], expected);
  for (int i = 0; i < MIX_G3_RUNS; i++)
    mix_g3_jobs(g3_runs[i], expected);
  FILE *f = fopen(stop, "w");
  ck_assert_ptr_nonnull(f);
  fclose(f);
  for (int i = 0; i < 2 * MIX_GRADERS; i++) {
    int status;
    ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "grader %d ended with status %d", i, status);
  }

  /* every job once, by a grader of its own generation */
  json_object *seen = json_object_new_object();
  int total = 0;
  for (int i = 0; i < 2 * MIX_GRADERS; i++) {
    char id[32], shape[16];
    f = fopen(out[i], "r");
    ck_assert_ptr_nonnull(f);
    while (fscanf(f, "%31s %15s", id, shape) == 2) {
      json_object *gen;
      ck_assert_msg(!json_object_object_get_ex(seen, id, NULL),
                    "job %s handed out twice", id);
      json_object_object_add(seen, id, NULL);
      ck_assert_msg(json_object_object_get_ex(expected, id, &gen),
                    "job %s is not one of the runs'", id);
      ck_assert_str_eq(shape, json_object_get_string(gen));
      ck_assert_str_eq(shape, i % 2 == 0 ? "seed" : "gen3");
      total++;
    }
    fclose(f);
    unlink(out[i]);
  }
  ck_assert_int_eq(total, (MIX_SEED_RUNS + MIX_G3_RUNS) * (MIX_STUDENTS + 2));
  ck_assert_int_eq(total, json_object_object_length(expected));
  json_object_put(seen);
  json_object_put(expected);
  unlink(stop);
  rmdir(dir);
}
END_TEST

/* ---- a flood of one generation does not hide the other's jobs ------------ */

#define FLOOD 800 /* ~50 entries per partition: every page of 16 is full */

/* A Gen 3 run of `students` students and no pre or post job: all queued. */
static void g3_run_flat(int students, char run_id[25]) {
  size_t cap = 64 + 32 * (size_t)students;
  char *body = malloc(cap);
  int n = snprintf(body, cap, "{\"students_env\": [");
  for (int i = 0; i < students; i++)
    n += snprintf(body + n, cap - (size_t)n, "%s{\"STUDENT_ID\": \"s%d\"}",
                  i ? ", " : "", i);
  snprintf(body + n, cap - (size_t)n, "]}");
  g3_run("cs241", "{\"student_pipeline\": [{\"image\": \"g:1\"}]}", body,
         run_id);
  free(body);
}

START_TEST(test_one_generation_flood_hides_no_job_of_the_other) {
  bw_test_client_t seed;
  bw_test_http_resp_t r;
  g3_grader_t g;
  char run_id[25], seed_run[25], job_id[25];
  char *config;

  /* a large Gen 3 run first, then a seed-era run of one: the seed grader
   * gets its job though every partition's first entries are Gen 3 */
  g3_run_flat(FLOOD, run_id);
  bw_itest_client(&seed);
  ck_assert_int_eq(bw_test_http_register(&seed, NULL, NULL), 200);
  config = bw_itest_run_config(1, "{\"image\": \"bbox:1\"}", false, false);
  ck_assert_int_eq(bw_test_http_create_and_start(&seed, config, seed_run), 200);
  free(config);
  double t0 = bw_test_now();
  ck_assert_int_eq(bw_test_http_poll_wait(&seed, 0, &r, job_id), 200);
  double took = bw_test_now() - t0;
  bw_test_http_resp_cleanup(&r);
  t0 = bw_test_now();
  ck_assert_int_eq(bw_test_http_poll_wait(&seed, 0, &r, job_id), 498);
  fprintf(stderr, "gen3 flood: a seed-era poll behind %d Gen 3 entries: "
          "%.0f ms (job), %.0f ms (empty)\n", FLOOD, took * 1000,
          (bw_test_now() - t0) * 1000);
  bw_test_http_resp_cleanup(&r);

  /* the other way round, in a clean queue: a large seed-era run, then a
   * Gen 3 run of one */
  bw_itest_reset_db();
  ck_assert_int_eq(bw_test_http_register(&seed, NULL, NULL), 200);
  config = bw_itest_run_config(FLOOD, "{\"image\": \"bbox:1\"}", false,
                               false);
  ck_assert_int_eq(bw_test_http_create_and_start(&seed, config, seed_run), 200);
  free(config);
  g3_run_flat(1, run_id);
  g3_grader_init(&g, "flooded");
  g3_register(&g, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  bw_test_http_resp_cleanup(&r);
  t0 = bw_test_now();
  ck_assert_int_eq(g3_poll(&g, &r), 200);
  fprintf(stderr, "gen3 flood: a Gen 3 poll behind %d seed-era entries: "
          "%.0f ms\n", FLOOD, (bw_test_now() - t0) * 1000);
  ck_assert_str_eq(g3_env_str(json_object_array_get_idx(
                                  bw_test_json_get(bw_test_http_data(&r),
                                                   "stages"),
                                  0),
                              "STUDENT_ID"),
                   "s0");
  bw_test_http_resp_cleanup(&r);
  ck_assert_int_eq(g3_poll(&g, &r), 498);
  bw_test_http_resp_cleanup(&r);
}
END_TEST

/* ---- cancel and retry (the staff's routes) on a Gen 3 run --------------- */

START_TEST(test_gen3_run_cancel_and_retry) {
  bw_test_client_t staff, seed;
  bw_test_http_resp_t r;
  g3_grader_t g;
  char run_id[25], job[25], path[128];

  bw_itest_client(&staff);
  bw_itest_client(&seed);
  ck_assert_int_eq(bw_test_http_register(&seed, NULL, NULL), 200);
  g3_grader_init(&g, "staff-test");
  g3_register(&g, &r);
  bw_test_http_resp_cleanup(&r);

  /* retry: a failed student job is queued again, for 2019 graders only */
  g3_run("cs241", "{\"student_pipeline\": [{\"image\": \"g:1\"}]}",
         "{\"students_env\": [{\"STUDENT_ID\": \"x\"}]}", run_id);
  g3_take(&g, &r, job);
  bw_test_http_resp_cleanup(&r);
  g3_report(&g, job, false, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  bw_test_http_resp_cleanup(&r);
  json_object *status = g3_expect_state(run_id, "grading run is complete");
  ck_assert_str_eq(
      bw_test_json_str(bw_test_json_get(status, "student_jobs_state"), job),
      "grading job failed");
  json_object_put(status);
  snprintf(path, sizeof path, "/api/v1/grading_run_retry/%s", run_id);
  ck_assert_int_eq(bw_test_http_call(&staff, "POST", path, NULL, &r), 200);
  bw_test_http_resp_cleanup(&r);
  ck_assert_int_eq(bw_test_http_poll_wait(&seed, 0, &r, NULL), 498);
  bw_test_http_resp_cleanup(&r);
  char again[25];
  json_object *stage = g3_take(&g, &r, again);
  ck_assert_str_eq(again, job);
  ck_assert_str_eq(g3_env_str(stage, "STUDENT_ID"), "x");
  bw_test_http_resp_cleanup(&r);
  g3_report_ok(&g, job);
  json_object_put(g3_expect_state(run_id, "grading run is complete"));

  /* cancel: queued jobs dropped, the one being graded still reports */
  g3_run("cs241", "{\"student_pipeline\": [{\"image\": \"g:1\"}]}",
         "{\"students_env\": [{\"STUDENT_ID\": \"a\"}, "
         "{\"STUDENT_ID\": \"b\"}]}",
         run_id);
  g3_take(&g, &r, job);
  bw_test_http_resp_cleanup(&r);
  snprintf(path, sizeof path, "/api/v1/grading_run_cancel/%s", run_id);
  ck_assert_int_eq(bw_test_http_call(&staff, "POST", path, NULL, &r), 200);
  bw_test_http_resp_cleanup(&r);
  ck_assert_int_eq(g3_poll(&g, &r), 498);
  bw_test_http_resp_cleanup(&r);
  g3_report_ok(&g, job);
  status = g3_status("cs241", run_id);
  ck_assert_str_eq(bw_test_json_str(status, "state"), "grading run failed");
  ck_assert_str_eq(
      bw_test_json_str(bw_test_json_get(status, "student_jobs_state"), job),
      "grading job was successful");
  json_object_put(status);
}
END_TEST

/* ---- dead 2019 graders (a stack with a 1 s heartbeat) --------------------- */

static void dead_stack_start(void) {
  bw_test_stack_opts_t opts = {.label = "gen3-hb1",
                               .heartbeat = 1,
                               .workers = 2,
                               .config_text = "poll_wait = 2\n"};
  bw_itest_push_stack(&opts);
}

START_TEST(test_killed_2019_grader_job_requeued_and_finished_once) {
  char run_id[25], job_id[25], again[25] = "";
  int fds[2];
  g3_grader_t live, dead;

  g3_run("cs241",
         "{\"student_pipeline\": [{\"image\": \"grader:1\", \"timeout\": 2}]}",
         "{\"students_env\": [{\"STUDENT_ID\": \"x\"}]}", run_id);
  g3_grader_init(&dead, "doomed-grader");
  g3_grader_init(&live, "live-grader");
  ck_assert_int_eq(pipe(fds), 0);
  fflush(NULL);
  /* A run.py that takes the job, heartbeats on while it "grades" it, and
   * is killed -9 mid-job. */
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    bw_test_http_resp_t r;
    char id[25];
    if (g3_register(&dead, &r) != 200)
      _exit(2);
    bw_test_http_resp_cleanup(&r);
    g3_take(&dead, &r, id);
    bw_test_http_resp_cleanup(&r);
    if (write(fds[1], id, 24) != 24)
      _exit(3);
    for (;;) {
      g3_heartbeat(&dead);
      bw_test_sleep_ms(300);
    }
  }
  ck_assert_int_eq(read(fds[0], job_id, 24), 24);
  job_id[24] = '\0';
  close(fds[0]);
  close(fds[1]);
  bw_test_sleep_ms(500);
  kill(pid, SIGKILL);
  int status;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);

  bw_test_http_resp_t r;
  g3_register(&live, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  bw_test_http_resp_cleanup(&r);
  double deadline = bw_test_now() + 20;
  while (bw_test_now() < deadline) {
    ck_assert_int_eq(g3_heartbeat(&live), 200);
    long got = g3_poll(&live, &r);
    if (got == 200) {
      snprintf(again, sizeof again, "%s",
               bw_test_json_str(bw_test_http_data(&r), "grading_job_id"));
      bw_test_http_resp_cleanup(&r);
      break;
    }
    ck_assert_int_eq(got, 498);
    bw_test_http_resp_cleanup(&r);
    bw_test_sleep_ms(200);
  }
  ck_assert_str_eq(again, job_id);
  /* the dead grader's late result is stale; the live one's counts */
  g3_report(&dead, job_id, true, &r);
  BW_ASSERT_FAIL(&r, 400, "cannot update job that is not in STARTED state");
  bw_test_http_resp_cleanup(&r);
  g3_report_ok(&live, job_id);
  g3_report(&live, job_id, true, &r); /* once only: finished now */
  BW_ASSERT_FAIL(&r, 400, "cannot update job that is not in STARTED state");
  bw_test_http_resp_cleanup(&r);

  json_object *done = g3_expect_state(run_id, "grading run is complete");
  ck_assert_str_eq(
      bw_test_json_str(bw_test_json_get(done, "student_jobs_state"), job_id),
      "grading job was successful");
  json_object_put(done);
  bw_test_client_t c;
  bw_itest_client(&c);
  ck_assert_int_eq(bw_test_http_get_job(&c, job_id, &r), 200);
  ck_assert_int_eq(bw_test_json_int(bw_test_http_data(&r), "attempts"), 2);
  bw_test_http_resp_cleanup(&r);

  /* the killed grader comes back: dead, so it may register again (§2.7),
   * and the queue has nothing for it */
  g3_register(&dead, &r);
  BW_ASSERT_SUCCESS(&r, 200);
  bw_test_http_resp_cleanup(&r);
  ck_assert_int_eq(g3_poll(&dead, &r), 498);
  bw_test_http_resp_cleanup(&r);
}
END_TEST

static Suite *gen3_suite(void) {
  Suite *s = suite_create("gen3");
  TCase *tc = bw_itest_tcase(s, "graders_2019", 90, true);
  tcase_add_test(tc, test_grader_2019_sequence);
  tcase_add_test(tc, test_gen3_auth_and_unknown_workers);
  tcase_add_test(tc, test_2018_and_2019_graders_drain_mixed_runs);
  tcase_add_test(tc, test_one_generation_flood_hides_no_job_of_the_other);
  tcase_add_test(tc, test_gen3_run_cancel_and_retry);
  tc = bw_itest_tcase(s, "dead_2019_grader", 90, true);
  tcase_add_unchecked_fixture(tc, dead_stack_start, bw_itest_pop_stack);
  tcase_add_test(tc, test_killed_2019_grader_job_requeued_and_finished_once);
  return s;
}

int main(void) {
  bw_test_stack_opts_t opts = {.label = "gen3",
                               .config_text = "poll_wait = 2\n"};
  return bw_itest_main(gen3_suite(), &opts);
}
