/* pipeline.h - one grading job: its folder, its roster, its stages in
 * order, and the result to report.
 *
 * The job runs to its first failing stage (non-zero exit, timeout, a limit
 * hit, or a stage that cannot start); the outcome keeps every stage that ran
 * with the tails of its output, and the job's whole output (capped) as its
 * logs.  A job abandoned because the grader is stopping has no result: it must
 * go back to the queue, not be reported as failed. */
#ifndef GR_PIPELINE_H
#define GR_PIPELINE_H

#include <json-c/json.h>
#include <stdbool.h>

#include "limits.h"
#include "options.h"
#include "session.h"
#include "tail.h"

typedef struct gr_stage_outcome {
  char *image;
  int exit_code; /* -1 when the stage could not start */
  bool timed_out;
  long long duration_ms;
  gr_tail_t out, err;
  char *error;        /* why it could not start, or NULL */
  char *note;         /* e.g. "no entry_point: nothing to run", or NULL */
  bool limited;       /* limits were enforced: the next fields say */
  gr_limits_t limits; /* what it was given */
  int timeout_ms;
  gr_killed_by_t killed_by; /* the limit it was stopped at */
  long long cpu_ms;         /* CPU time it used (-1: not measured) */
  long long memory_peak;    /* bytes (-1: not measured) */
} gr_stage_outcome_t;

typedef struct gr_job_outcome {
  bool success;
  bool abandoned;
  gr_stage_outcome_t *stages; /* the stages that ran */
  size_t n_stages;
  gr_tail_t log_out, log_err;
} gr_job_outcome_t;

/* Runs `job` (the `data` of GET /api/v1/grading_job; job_id already checked
 * to be 24 hex digits).  Fills `outcome` (always initialised; release with
 * gr_outcome_cleanup).  Returns 0, BW_ENOMEM, or BW_ESYS when the job
 * folder cannot be made (outcome then says so as a failed job). */
int gr_pipeline_run(const gr_options_t *opt, gr_session_t *session,
                    const char *job_id, json_object *job,
                    gr_job_outcome_t *outcome);

void gr_outcome_cleanup(gr_job_outcome_t *outcome);

/* The result body: {"success", "info": [...], "logs": {...}}, each stage
 * stream cut to its last `stage_max` bytes and each log stream to
 * `log_max`.  NULL when out of memory. */
json_object *gr_outcome_result(const gr_job_outcome_t *outcome,
                               size_t stage_max, size_t log_max);

#endif
