#include "handlers.h"

#include <stdio.h>
#include <string.h>

#include "beats.h"
#include "job.h"
#include "json.h"
#include "longpoll.h"
#include "run.h"
#include "validate.h"
#include "worker.h"

int bw_call_read_json(bw_call_t *call, json_object **out, bw_error_t *error) {
  int rc = bw_request_read_body(call->req, call->cfg->max_body, error);
  if (rc < 0)
    return rc;
  return bw_json_parse_body(call->req->body, call->req->body_len,
                            call->cfg->max_depth, out, error);
}

/* A count over a configured limit inside a body that arrived whole is a bad
 * body like any other: 400, not 413 (which says "the bytes were too many"). */
static int as_bad_body(int rc, bw_error_t *error) {
  if (rc != BW_ETOOBIG)
    return rc;
  if (error != NULL)
    error->code = BW_EINVAL;
  return BW_EINVAL;
}

static json_object *one_string(const char *key, const char *value) {
  json_object *data = json_object_new_object();
  json_object_object_add(data, key, json_object_new_string(value));
  return data;
}

int bw_handle_run_create(bw_call_t *call, bw_error_t *error) {
  json_object *body = NULL, *config = NULL;
  bw_json_items_t *students = NULL;
  bson_oid_t run;
  char run_id[25];
  int rc = bw_request_read_body(call->req, call->cfg->max_body, error);

  /* The roster stays text until each student is read: a 10,000-student
   * body would cost ~9 MB as one json-c tree. */
  if (rc == 0)
    rc = bw_json_parse_body_lazy(call->req->body, call->req->body_len,
                                 call->cfg->max_depth, "students", &body,
                                 &students, error);
  if (rc == 0)
    rc = as_bad_body(
        bw_validate_run_config(body, students, call->cfg, &config, error),
        error);
  if (rc == 0)
    rc = bw_run_create(call->db, config, students, &run, error);
  bw_json_items_free(students);
  json_object_put(config);
  json_object_put(body);
  if (rc < 0)
    return rc;
  bson_oid_to_string(&run, run_id);
  bw_request_reply_success(call->req, one_string("grading_run_id", run_id));
  return 0;
}

int bw_handle_run_start(bw_call_t *call, bw_error_t *error) {
  int rc = bw_run_start(call->db, &call->path_id, error);
  if (rc < 0)
    return rc;
  bw_request_reply_success(call->req, NULL);
  return 0;
}

/* offset, limit, summary: each NULL when absent from the query. */
static int read_page_query(bw_call_t *call, char text[3][24],
                           const char *given[3], bw_error_t *error) {
  static const char *names[] = {"offset", "limit", "summary"};
  for (int i = 0; i < 3; i++) {
    int found = bw_request_query_param(call->req, names[i], text[i], 24, error);
    if (found < 0)
      return found;
    given[i] = found ? text[i] : NULL;
  }
  return 0;
}

int bw_handle_run_status(bw_call_t *call, bw_error_t *error) {
  json_object *status = NULL;
  char text[3][24];
  const char *given[3];
  bw_run_page_t page;
  int rc = read_page_query(call, text, given, error);

  if (rc == 0)
    rc = bw_validate_run_page(given[0], given[1], given[2], &page, error);
  if (rc == 0)
    rc = bw_run_status_page(call->db, &call->path_id, &page, &status,
                            error);
  if (rc < 0)
    return rc;
  bw_request_reply_success(call->req, status);
  return 0;
}

int bw_handle_job_get(bw_call_t *call, bw_error_t *error) {
  json_object *job = NULL;
  int rc = bw_job_get(call->db, &call->path_id, &job, error);
  if (rc < 0)
    return rc;
  bw_request_reply_success(call->req, job);
  return 0;
}

/* The grader's hostname: Gen 2a puts it in the path (the original's pattern
 * [^()]+, so it may hold '/' and '.'), v0.1 in ?hostname=.  Returns 1 with
 * it in out, 0 when none was given, or BW_EINVAL. */
static int call_hostname(bw_call_t *call, char *out, size_t size,
                         bw_error_t *error) {
  int found;

  if (call->path_rest != NULL) {
    if (!bw_validate_path_hostname(call->path_rest))
      return bw_error_set(error, BW_EINVAL,
                          "hostname: expected 1 to 255 printable characters, "
                          "no blanks or parentheses");
    snprintf(out, size, "%s", call->path_rest);
    return 1;
  }
  found = bw_request_query_param(call->req, "hostname", out, size, error);
  if (found > 0 && !bw_validate_hostname(out))
    return bw_error_set(error, BW_EINVAL,
                        "hostname: expected 1 to 255 characters of "
                        "A-Z a-z 0-9 . - _");
  return found;
}

int bw_handle_worker_register(bw_call_t *call, bw_error_t *error) {
  char hostname[256], worker_id[25];
  bson_oid_t oid;
  json_object *data;
  int found, rc;

  found = call_hostname(call, hostname, sizeof hostname, error);
  if (found < 0)
    return found;
  rc = bw_worker_register(call->db, found ? hostname : NULL, worker_id, error);
  if (rc < 0)
    return rc;
  if (bw_db_oid_parse(worker_id, &oid))
    bw_beats_registered(call->cfg, &oid, bw_db_now_ms());
  data = one_string("worker_id", worker_id);
  json_object_object_add(data, "heartbeat",
                         json_object_new_int(call->cfg->heartbeat));
  bw_request_reply_success(call->req, data);
  return 0;
}

int bw_handle_job_poll(bw_call_t *call, bw_error_t *error) {
  int wait = bw_longpoll_wait_for(call->req, call->cfg, error);
  if (wait < 0)
    return wait;
  return bw_longpoll_poll(call->req, &call->worker_id, wait, error);
}

int bw_handle_job_report(bw_call_t *call, bw_error_t *error) {
  json_object *body = NULL, *result = NULL;
  int rc = bw_call_read_json(call, &body, error);

  if (rc == 0)
    rc =
        as_bad_body(bw_validate_result(body, call->cfg, &result, error), error);
  if (rc == BW_EINVAL || rc == BW_ETOOBIG) /* for the job's diagnostics */
    bw_job_note_refused(call->db, &call->path_id, &call->worker_id,
                        error->message, NULL);
  if (rc == 0)
    rc = bw_job_report(call->db, call->cfg, &call->path_id, &call->worker_id,
                       result, error);
  json_object_put(result);
  json_object_put(body);
  if (rc < 0)
    return rc;
  bw_request_reply_success(call->req, NULL);
  return 0;
}

int bw_handle_heartbeat(bw_call_t *call, bw_error_t *error) {
  int rc = bw_beats_record(call->db, call->cfg, &call->worker_id, error);
  if (rc < 0)
    return rc;
  bw_request_reply_success(call->req, NULL);
  return 0;
}

int bw_handle_health(bw_call_t *call, bw_error_t *error) {
  int rc;

  if (strcmp(call->req->method, "GET") != 0) {
    snprintf(call->req->allow, sizeof call->req->allow, "GET");
    bw_request_reply(call->req, 405,
                     bw_jsend_fail("method not allowed (allowed: GET)"));
    return 0;
  }
  rc = bw_db_ping(call->db, error);
  if (rc < 0)
    return rc;
  bw_request_reply_success(call->req, one_string("database", "ok"));
  return 0;
}
