/* The 2019 API's course routes (PROTOCOL-LATER.md §2.6, §2.10): parse,
 * call common/, reply.  The router has checked the course token and put
 * the path's segments in call->course and call->g3_id. */
#include "handlers.h"

#include <stdio.h>
#include <string.h>

#include "gconfig.h"
#include "gen3.h"
#include "json.h"
#include "queue.h"
#include "run.h"
#include "validate.h"

#define RUN_NOT_FOUND "grading run with the given ID not found"
/* Sic: the original's text has no space before "not". */
#define LOG_NOT_FOUND "grading job with the given IDnot found or has not finished"
#define JOB_NOT_QUEUED "job is not waiting" /* as bw_queue_position says */

/* A body-schema failure as the original's Tornado-JSON answered it: 400
 * with the message as a string `data` (§2.1).  413 stays a 413. */
static int schema_fail(bw_call_t *call, int rc, const bw_error_t *error) {
  if (rc == BW_ETOOBIG || rc == BW_ENOMEM)
    return rc;
  bw_request_reply(call->req, 400, bw_jsend_fail_text(error->message));
  return 0;
}

/* The body as an object passing `check`; 0 and *out, or the reply (400
 * schema failure, 413) already sent / the code to send: *out NULL. */
static int read_checked(bw_call_t *call,
                        int (*check)(json_object *, const bw_config_t *,
                                     bw_error_t *),
                        json_object **out, bw_error_t *error) {
  int rc = bw_call_read_json(call, out, error);
  if (rc == 0)
    rc = check(*out, call->cfg, error);
  if (rc == 0)
    return 0;
  json_object_put(*out);
  *out = NULL;
  return schema_fail(call, rc, error);
}

/* The assignment name of the path: [-\w]+ (the router's match) and at most
 * BW_ASSIGNMENT_MAX bytes. */
static int check_assignment(const bw_call_t *call, bw_error_t *error) {
  if (strlen(call->g3_id) > BW_ASSIGNMENT_MAX)
    return bw_error_set(error, BW_EINVAL,
                        "assignment_name: longer than %d characters",
                        BW_ASSIGNMENT_MAX);
  return 0;
}

/* The {id} as a run or job id: anything but 24 hex digits is unknown. */
static int path_oid(const bw_call_t *call, bson_oid_t *oid,
                    const char *not_found, bw_error_t *error) {
  if (!bw_db_oid_parse(call->g3_id, oid))
    return bw_error_set(error, BW_ENOTFOUND, "%s", not_found);
  return 0;
}

/* Replies 200 with `data` (taken over) when rc is 0; returns rc. */
static int reply_data(bw_call_t *call, int rc, json_object *data) {
  if (rc < 0) {
    json_object_put(data);
    return rc;
  }
  bw_request_reply_success(call->req, data);
  return 0;
}

int bw_handle_g3_config_put(bw_call_t *call, bw_error_t *error) {
  json_object *config = NULL;
  int rc = check_assignment(call, error);

  if (rc == 0)
    rc = read_checked(call, bw_validate_gconfig, &config, error);
  if (rc < 0 || config == NULL)
    return rc;
  rc = bw_gconfig_put(call->db, call->course, call->g3_id, config, error);
  json_object_put(config);
  return reply_data(call, rc, NULL);
}

int bw_handle_g3_config_get(bw_call_t *call, bw_error_t *error) {
  json_object *config = NULL;
  int rc = check_assignment(call, error);

  if (rc == 0)
    rc = bw_gconfig_get(call->db, call->course, call->g3_id, &config, error);
  return reply_data(call, rc, config);
}

int bw_handle_g3_run_create(bw_call_t *call, bw_error_t *error) {
  json_object *body = NULL, *config = NULL, *data = NULL;
  bson_oid_t run;
  char run_id[25];
  int rc = check_assignment(call, error);

  /* The original's order: the body's schema, then the config. */
  if (rc == 0)
    rc = read_checked(call, bw_validate_g3_run, &body, error);
  if (rc < 0 || body == NULL)
    return rc;
  rc = bw_gconfig_get(call->db, call->course, call->g3_id, &config, error);
  if (rc == 0)
    rc = bw_run_create_gen3(call->db, call->cfg, call->course, call->g3_id,
                            config, body, &run, error);
  json_object_put(config);
  json_object_put(body);
  if (rc == 0) {
    bson_oid_to_string(&run, run_id);
    data = json_object_new_object();
    if (data == NULL ||
        bw_json_add(data, "grading_run_id", json_object_new_string(run_id)) < 0)
      rc = bw_error_set(error, BW_ENOMEM, "out of memory");
  }
  return reply_data(call, rc, data);
}

/* What a course reads about one of its runs or jobs (gen3.h): another
 * course's id, or a malformed one, is `not_found`. */
typedef int (*g3_view_fn)(bw_db_t *db, const char *course,
                          const bson_oid_t *id, json_object **out,
                          bw_error_t *error);

static int reply_view(bw_call_t *call, g3_view_fn view, const char *not_found,
                      bw_error_t *error) {
  json_object *data = NULL;
  bson_oid_t id;
  int rc = path_oid(call, &id, not_found, error);

  if (rc == 0)
    rc = view(call->db, call->course, &id, &data, error);
  return reply_data(call, rc, data);
}

int bw_handle_g3_run_status(bw_call_t *call, bw_error_t *error) {
  return reply_view(call, bw_run_status_gen3, RUN_NOT_FOUND, error);
}

int bw_handle_g3_run_env(bw_call_t *call, bw_error_t *error) {
  return reply_view(call, bw_run_env_gen3, RUN_NOT_FOUND, error);
}

int bw_handle_g3_job_log(bw_call_t *call, bw_error_t *error) {
  return reply_view(call, bw_job_log_gen3, LOG_NOT_FOUND, error);
}

/* Only "all" exists, as in the original; any other scope is a 404 that
 * names it. */
int bw_handle_g3_workers(bw_call_t *call, bw_error_t *error) {
  json_object *data = NULL;
  char message[BW_REQUEST_PATH_MAX + 48];
  int rc;

  if (strcmp(call->path_rest, "all") != 0) {
    snprintf(message, sizeof message, "scope %s has not been implemented yet",
             call->path_rest);
    bw_request_reply(call->req, 404, bw_jsend_fail(message));
    return 0;
  }
  rc = bw_worker_list_gen3(call->db, call->cfg, &data, error);
  return reply_data(call, rc, data);
}

/* {"<key>": n} */
static int reply_count(bw_call_t *call, int rc, const char *key, int64_t n,
                       bw_error_t *error) {
  json_object *data = NULL;
  if (rc == 0) {
    data = json_object_new_object();
    if (data == NULL || bw_json_add(data, key, json_object_new_int64(n)) < 0)
      rc = bw_error_set(error, BW_ENOMEM, "out of memory");
  }
  return reply_data(call, rc, data);
}

int bw_handle_g3_queue_length(bw_call_t *call, bw_error_t *error) {
  int64_t n = 0;
  int rc = bw_queue_course_length(call->db, call->course, &n, error);
  return reply_count(call, rc, "length", n, error);
}

int bw_handle_g3_queue_position(bw_call_t *call, bw_error_t *error) {
  bson_oid_t job;
  int64_t pos = 0;
  int rc = path_oid(call, &job, JOB_NOT_QUEUED, error);

  if (rc == 0)
    rc = bw_queue_position(call->db, call->course, &job, &pos, error);
  return reply_count(call, rc, "position", pos, error);
}
