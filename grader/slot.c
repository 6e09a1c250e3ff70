#include "slot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "log.h"
#include "pipeline.h"
#include "process.h"

/* A poll waits on the API for a job up to POLL_WAIT_S (the API may cap it
 * lower: its poll_wait); the HTTP timeout leaves room beyond it. */
#define POLL_WAIT_S 18
#define POLL_STR(x) #x
#define POLL_PATH_OF(s) "/api/v1/grading_job?wait=" POLL_STR(s)
#define POLL_PATH POLL_PATH_OF(POLL_WAIT_S)
#define POLL_TIMEOUT_MS ((POLL_WAIT_S + 12) * 1000L)
/* An empty answer faster than this means the API did not wait (an API
 * without long polls, or poll_wait 0): back off as before. */
#define POLL_WAITED_MS 1000
#define REPORT_TIMEOUT_MS 60000L

/* A result the API refuses as too big or malformed (400/413) is sent again
 * with less output, then with none: the job's success must arrive even if
 * its output cannot. */
static const size_t smaller_output[][2] = {{4096, 16384}, {0, 0}};
#define SHRINK_STEPS (1 + sizeof smaller_output / sizeof *smaller_output)

static char *result_body(const gr_options_t *opt,
                         const gr_job_outcome_t *outcome, size_t step) {
  size_t stage_max = step == 0 ? opt->tail_bytes : smaller_output[step - 1][0];
  size_t log_max = step == 0 ? opt->logs_bytes : smaller_output[step - 1][1];
  json_object *result = gr_outcome_result(outcome, stage_max, log_max);
  const char *text;
  char *body;

  if (result == NULL)
    return NULL;
  text = json_object_to_json_string_ext(
      result, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
  body = text != NULL ? strdup(text) : NULL; /* NULL: out of memory */
  json_object_put(result);
  return body;
}

/* What to do after one attempt at reporting. */
enum { REPORT_DONE, REPORT_RETRY, REPORT_SHRINK };

static int judge_report(gr_slot_t *slot, gr_http_t *http, const char *job_id,
                        const char *worker_id, const gr_reply_t *reply,
                        bool success) {
  switch (reply->status) {
  case 200:
    bw_log_info("job %s: reported, success=%s", job_id,
                success ? "true" : "false");
    return REPORT_DONE;
  case 409:
    bw_log_info("job %s: no longer ours (409): result dropped", job_id);
    return REPORT_DONE;
  case 404:
    bw_log_warn("job %s: unknown to the API (404): result dropped", job_id);
    return REPORT_DONE;
  case 401:
    /* The job was held by the id the API forgot: it is not ours to report
     * under a new one. */
    bw_log_warn("job %s: worker unknown (401): result dropped", job_id);
    gr_session_reregister(slot->session, http, worker_id);
    return REPORT_DONE;
  case 400:
  case 413:
    return REPORT_SHRINK;
  default:
    if (gr_reply_is_transient(reply))
      return REPORT_RETRY;
    bw_log_error("job %s: result refused: %s", job_id, reply->message);
    return REPORT_DONE;
  }
}

static void report(gr_slot_t *slot, gr_http_t *http, const char *job_id,
                   const gr_job_outcome_t *outcome) {
  const gr_options_t *opt = slot->session->opt;
  char path[128], worker_id[25];
  gr_backoff_t backoff;
  size_t step = 0;

  snprintf(path, sizeof path, "/api/v1/grading_job/%s", job_id);
  gr_backoff_init(&backoff, 200, 5000);
  for (;;) {
    gr_reply_t reply;
    char *body = result_body(opt, outcome, step);
    int verdict;

    if (body == NULL) {
      bw_log_error("job %s: out of memory building the result", job_id);
      return;
    }
    gr_session_worker_id(slot->session, worker_id);
    gr_http_request(http, "POST", path, worker_id, body, REPORT_TIMEOUT_MS,
                    &reply);
    free(body);
    verdict =
        judge_report(slot, http, job_id, worker_id, &reply, outcome->success);
    if (verdict == REPORT_SHRINK && step + 1 < SHRINK_STEPS) {
      bw_log_warn("job %s: result refused (%s): sending less output", job_id,
                  reply.message);
      step++;
    } else if (verdict == REPORT_SHRINK) {
      bw_log_error("job %s: result refused: %s", job_id, reply.message);
      verdict = REPORT_DONE;
    } else if (verdict == REPORT_RETRY) {
      bw_log_warn("job %s: reporting failed: %s; retrying", job_id,
                  reply.message);
    }
    gr_reply_cleanup(&reply);
    if (verdict == REPORT_DONE)
      return;
    if (verdict == REPORT_RETRY &&
        !gr_session_sleep_ms(slot->session, gr_backoff_next(&backoff))) {
      bw_log_info("job %s: stopping: result not reported, the API will "
                  "re-queue the job",
                  job_id);
      return;
    }
  }
}

static void run_job(gr_slot_t *slot, gr_http_t *http, json_object *job) {
  json_object *field;
  const char *job_id = NULL;
  bson_oid_t parsed;
  gr_job_outcome_t outcome;
  long long started = gr_monotonic_ms();
  size_t n_stages = 0;

  if (json_object_object_get_ex(job, "job_id", &field))
    job_id = json_object_get_string(field);
  /* The id goes into a URL path: only the 24 hex digits of an ObjectId. */
  if (!bw_db_oid_parse(job_id, &parsed)) {
    bw_log_error("the API handed out a job without a valid job_id: skipped");
    return;
  }
  if (json_object_object_get_ex(job, "stages", &field) &&
      json_object_is_type(field, json_type_array))
    n_stages = json_object_array_length(field);
  bw_log_info("job %s: %zu stage(s)%s", job_id, n_stages,
              json_object_object_get_ex(job, "students", NULL) ? ", with roster"
                                                               : "");
  gr_pipeline_run(slot->session->opt, slot->session, job_id, job, &outcome);
  if (outcome.abandoned)
    bw_log_info("job %s: abandoned (stopping); the API will re-queue it",
                job_id);
  else {
    bw_log_info("job %s: %s after %lld ms", job_id,
                outcome.success ? "succeeded" : "failed",
                gr_monotonic_ms() - started);
    report(slot, http, job_id, &outcome);
  }
  gr_outcome_cleanup(&outcome);
}

static long monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool slot_stopping(void *arg) {
  return gr_session_stopping(arg);
}

/* One poll (a long poll: the API holds it until a job comes or its wait
 * ends).  Returns the delay before the next one in ms (0: at once). */
static int poll_once(gr_slot_t *slot, gr_http_t *http, gr_backoff_t *empty,
                     gr_backoff_t *errors, int *failures) {
  char worker_id[25];
  gr_reply_t reply;
  long started = monotonic_ms();
  int delay = 0;

  gr_session_worker_id(slot->session, worker_id);
  /* Only the poll is given up on stop: a finished result is still sent. */
  http->give_up = slot_stopping;
  http->give_up_arg = slot->session;
  gr_http_request(http, "GET", POLL_PATH, worker_id, NULL, POLL_TIMEOUT_MS,
                  &reply);
  http->give_up = NULL;
  if (gr_session_stopping(slot->session)) {
    gr_reply_cleanup(&reply);
    return 0;
  }
  if (!gr_reply_is_transient(&reply) && *failures > 0) {
    bw_log_info("slot %d: the API answers again after %d failure(s)",
                slot->index, *failures);
    *failures = 0;
  }
  if (reply.status == 200 && reply.data != NULL) {
    gr_backoff_reset(empty);
    gr_backoff_reset(errors);
    run_job(slot, http, reply.data);
  } else if (reply.status == 401) {
    gr_session_reregister(slot->session, http, worker_id);
  } else if (gr_reply_is_transient(&reply)) {
    delay = gr_backoff_next(errors);
    if ((*failures)++ == 0)
      bw_log_warn("slot %d: polling failed: %s (retrying; logged once)",
                  slot->index, reply.message);
  } else {
    /* 498 (or whatever code the API was configured to use): empty.  After
     * a long poll that waited, poll again at once. */
    gr_backoff_reset(errors);
    if (monotonic_ms() - started < POLL_WAITED_MS)
      delay = gr_backoff_next(empty);
    else
      gr_backoff_reset(empty);
    if (reply.status != 498)
      bw_log_debug("slot %d: poll answered %s", slot->index, reply.message);
  }
  gr_reply_cleanup(&reply);
  return delay;
}


void *gr_slot_main(void *arg) {
  gr_slot_t *slot = arg;
  gr_backoff_t empty, errors;
  gr_http_t http;
  int failures = 0;

  if (gr_http_init(&http, slot->session->opt->api, slot->session->opt->token) !=
      0) {
    bw_log_error("slot %d: no curl handle", slot->index);
    return NULL;
  }
  gr_backoff_init(&empty, 200, 2000);
  gr_backoff_init(&errors, 200, 5000);
  while (!gr_session_stopping(slot->session)) {
    int delay = poll_once(slot, &http, &empty, &errors, &failures);
    if (delay > 0 && !gr_session_sleep_ms(slot->session, delay))
      break;
  }
  gr_http_cleanup(&http);
  return NULL;
}
