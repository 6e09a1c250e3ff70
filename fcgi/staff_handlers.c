/* staff_handlers.c - the endpoints course staff use (issue 15): cancel,
 * retry, and the lists of runs, graders and the queue.  Thin, like
 * handlers.c: parse, call common/control.c or common/admin.c, reply. */
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "control.h"
#include "handlers.h"

int bw_handle_run_cancel(bw_call_t *call, bw_error_t *error) {
  int rc = bw_control_cancel(call->db, &call->path_id, error);
  if (rc < 0)
    return rc;
  bw_request_reply_success(call->req, NULL);
  return 0;
}

int bw_handle_run_retry(bw_call_t *call, bw_error_t *error) {
  char jobs[16] = "failed";
  json_object *out = NULL;
  int rc = bw_request_query_param(call->req, "jobs", jobs, sizeof jobs, error);

  if (rc < 0)
    return rc;
  if (strcmp(jobs, "failed") != 0 && strcmp(jobs, "all") != 0)
    return bw_error_set(error, BW_EINVAL, "jobs: expected failed or all");
  rc = bw_control_retry(call->db, call->cfg, &call->path_id,
                        strcmp(jobs, "all") == 0, &out, error);
  if (rc < 0)
    return rc;
  bw_request_reply_success(call->req, out);
  return 0;
}

/* An optional whole number query parameter within [min, max]. */
static int staff_int_param(bw_call_t *call, const char *name, int min, int max,
                           int *out, bw_error_t *error) {
  char text[16], *end;
  long v;
  int rc = bw_request_query_param(call->req, name, text, sizeof text, error);
  if (rc <= 0)
    return rc;
  v = strtol(text, &end, 10);
  if (end == text || *end != '\0' || v < min || v > max)
    return bw_error_set(error, BW_EINVAL,
                        "%s: expected a whole number %d to %d", name, min, max);
  *out = (int)v;
  return 0;
}

int bw_handle_runs_list(bw_call_t *call, bw_error_t *error) {
  static const char *states[] = {
      "created",   "pre_processing", "students", "post_processing",
      "succeeded", "failed",         "cancelled"};
  bw_admin_runs_query_t q = {.limit = 20};
  char state[32], counts[8] = "";
  json_object *out = NULL;
  int found, rc;

  found =
      bw_request_query_param(call->req, "state", state, sizeof state, error);
  if (found < 0)
    return found;
  for (size_t i = 0; found && i < sizeof states / sizeof *states; i++)
    if (strcmp(state, states[i]) == 0)
      q.state = states[i];
  if (found && q.state == NULL)
    return bw_error_set(error, BW_EINVAL,
                        "state: expected created, pre_processing, students, "
                        "post_processing, succeeded, failed or cancelled");
  rc = staff_int_param(call, "offset", 0, 1000000000, &q.offset, error);
  if (rc == 0)
    rc = staff_int_param(call, "limit", 1, BW_ADMIN_RUNS_MAX, &q.limit, error);
  if (rc == 0)
    rc = bw_request_query_param(call->req, "counts", counts, sizeof counts,
                                error);
  if (rc < 0)
    return rc;
  q.counts = strcmp(counts, "1") == 0 || strcmp(counts, "true") == 0;
  rc = bw_admin_runs(call->db, &q, &out, error);
  if (rc < 0)
    return rc;
  bw_request_reply_success(call->req, out);
  return 0;
}

int bw_handle_workers_list(bw_call_t *call, bw_error_t *error) {
  json_object *out = NULL;
  int rc = bw_admin_workers(call->db, call->cfg, &out, error);
  if (rc < 0)
    return rc;
  bw_request_reply_success(call->req, out);
  return 0;
}

int bw_handle_queue_view(bw_call_t *call, bw_error_t *error) {
  json_object *out = NULL;
  int rc = bw_admin_queue(call->db, &out, error);
  if (rc < 0)
    return rc;
  bw_request_reply_success(call->req, out);
  return 0;
}
