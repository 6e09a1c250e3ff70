/* worker3_handlers.c - the 2019 API's grader endpoints (PROTOCOL-LATER.md
 * §2.7): register, poll, result, heartbeat, and the WebSocket route this
 * service cannot serve.  The router has checked the cluster token (as
 * "Bearer <token>") and that call->path_rest is a worker name ([-\w]+). */
#include "handlers.h"

#include "job.h"
#include "json.h"
#include "validate.h"
#include "worker.h"

/* The original's answers for a result it cannot take (§2.7: 400s). */
#define W3_NO_JOB "job with the given ID not found"
#define W3_NOT_STARTED "cannot update job that is not in STARTED state"

static int w3_read_json(bw_call_t *call, json_object **out,
                        bw_error_t *error) {
  int rc = bw_request_read_body(call->req, call->cfg->max_body, error);
  if (rc < 0)
    return rc;
  return bw_json_parse_body(call->req->body, call->req->body_len,
                            call->cfg->max_depth, out, error);
}

int bw_handle_gen3_register(bw_call_t *call, bw_error_t *error) {
  json_object *body = NULL, *data;
  const char *hostname;
  int rc = w3_read_json(call, &body, error);

  if (rc == 0)
    rc = bw_validate_gen3_register(body, &hostname, error);
  if (rc == 0)
    rc = bw_worker_register_gen3(call->db, call->cfg, call->path_rest,
                                 hostname, error);
  json_object_put(body);
  if (rc < 0)
    return rc;
  /* No worker_id: the grader chose it. */
  data = json_object_new_object();
  json_object_object_add(data, "heartbeat",
                         json_object_new_int(call->cfg->heartbeat));
  bw_request_reply_success(call->req, data);
  return 0;
}

/* Answers at once, as the original does (§2.7: "not a long poll"): run.py
 * polls again 5 s after a 498. */
int bw_handle_gen3_poll(bw_call_t *call, bw_error_t *error) {
  json_object *job = NULL;
  int rc = bw_worker_find_gen3(call->db, call->path_rest, &call->worker_id,
                               error);
  if (rc == 0)
    rc = bw_job_poll(call->db, call->cfg, &call->worker_id, BW_GEN_3, &job,
                     error);
  if (rc == BW_EEMPTY)
    return bw_error_set(error, BW_EEMPTY, "no jobs available");
  if (rc < 0)
    return rc;
  bw_request_reply_success(call->req, job);
  return 0;
}

/* Whether the caller holds the job now (the original's STARTED state). */
static int w3_held(bw_call_t *call, const bson_oid_t *job, bool *held,
                   bw_error_t *error) {
  bson_t active;
  bson_oid_t by;
  int rc = bw_queue_find_active(call->db, job, &active, error);
  *held = rc == 0 && bw_db_get_oid(&active, "worker_id", &by) &&
          bson_oid_equal(&by, &call->worker_id);
  bson_destroy(&active);
  return rc == BW_ENOTFOUND ? 0 : rc;
}

int bw_handle_gen3_result(bw_call_t *call, bw_error_t *error) {
  json_object *body = NULL, *result = NULL;
  const char *job_id = NULL;
  bson_oid_t job;
  bool held = false;
  int rc = bw_worker_find_gen3(call->db, call->path_rest, &call->worker_id,
                               error);

  if (rc == 0)
    rc = w3_read_json(call, &body, error);
  if (rc == 0)
    rc = bw_validate_gen3_result(body, call->cfg, &job_id, &result, error);
  if (rc == BW_ETOOBIG) /* a count over a limit of a body that came whole */
    rc = error->code = BW_EINVAL;
  if (rc == 0 && !bw_db_oid_parse(job_id, &job))
    rc = bw_error_set(error, BW_EINVAL, W3_NO_JOB);
  if (rc == 0)
    rc = w3_held(call, &job, &held, error);
  if (rc == 0)
    rc = bw_job_report(call->db, call->cfg, &job, &call->worker_id, result,
                       error);
  /* Not held by this grader: never handed to it, re-queued after it was
   * declared dead, or finished (PROTOCOL.md: where this service differs).
   * Its own result sent again is also 400 here, as in the original, though
   * bw_job_report finished what the first copy may have left undone. */
  if (rc == 0 && !held)
    rc = bw_error_set(error, BW_EINVAL, W3_NOT_STARTED);
  else if (rc == BW_ENOTFOUND)
    rc = bw_error_set(error, BW_EINVAL, W3_NO_JOB);
  else if (rc == BW_ECONFLICT)
    rc = bw_error_set(error, BW_EINVAL, W3_NOT_STARTED);
  json_object_put(result);
  json_object_put(body);
  if (rc < 0)
    return rc;
  bw_request_reply_success(call->req, NULL);
  return 0;
}

int bw_handle_gen3_heartbeat(bw_call_t *call, bw_error_t *error) {
  int rc = bw_worker_find_gen3(call->db, call->path_rest, &call->worker_id,
                               error);
  if (rc == 0)
    rc = bw_worker_heartbeat(call->db, &call->worker_id, error);
  if (rc < 0)
    return rc;
  bw_request_reply_success(call->req, NULL);
  return 0;
}

int bw_handle_gen3_ws(bw_call_t *call, bw_error_t *error) {
  (void)call;
  return bw_error_set(error, BW_EINVAL,
                      "WebSocket graders (/api/v1/worker_ws) are not served: "
                      "a WebSocket cannot pass through FastCGI; run the HTTP "
                      "grader (run.py), which uses /api/v1/worker, "
                      "/api/v1/grading_job and /api/v1/heartbeat");
}
