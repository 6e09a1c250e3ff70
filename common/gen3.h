/* gen3.h - the 2019 API ("Gen 3", PROTOCOL-LATER.md §2): what its course
 * routes read about runs, jobs and workers, in the original's shapes.
 *
 * Where it sits: db <- queue <- run <- job <- admin <- gen3 (and fcgi's Gen 3
 * handlers).  A Gen 3 run is an ordinary run (run.h: the same jobs, queue,
 * hand-outs, finish tickets, cancel/retry and repair) whose documents carry
 * gen 3, its course and assignment; its hand-outs carry gen BW_GEN_3 and the
 * course, so only Gen 3 graders take them (bw_job_poll).  The run is created
 * by bw_run_create_gen3 (run.h).  This module maps what run.c and job.c
 * store to §2.9.1's state strings, §2.6's status, §2.10's env view and the
 * job log.
 *
 * A course only ever sees its own: every function that takes `course`
 * answers BW_ENOTFOUND for a run or job of another course (or a seed-era
 * one) exactly as for an unknown id.  Ownership: *out objects are new json-c
 * references, the caller puts them. */
#ifndef BW_GEN3_H
#define BW_GEN3_H

#include <json-c/json.h>

#include "config.h"
#include "db.h"
#include "error.h"
#include "run.h"

/* Run states of §2.9.1, byte-exact (clients match substrings). */
#define BW_GEN3_RUN_READY "ready to be started"
#define BW_GEN3_RUN_PRE "pre processing job has been scheduled"
#define BW_GEN3_RUN_STUDENTS "students grading jobs have been scheduled"
#define BW_GEN3_RUN_POST "post processing job has been scheduled"
#define BW_GEN3_RUN_FINISHED "grading run is complete"
#define BW_GEN3_RUN_FAILED "grading run failed"
/* Job states of §2.9.1. */
#define BW_GEN3_JOB_QUEUED "grading job has been scheduled"
#define BW_GEN3_JOB_STARTED "grading job is running"
#define BW_GEN3_JOB_SUCCEEDED "grading job was successful"
#define BW_GEN3_JOB_FAILED "grading job failed"

/* §2.6 grading_run_status data {state, pre_processing_job_state,
 * post_processing_job_state, student_jobs_state}: a job is listed once its
 * phase queued it (the original creates jobs then).  BW_ENOTFOUND "grading
 * run with the given ID not found", BW_EDB. */
int bw_run_status_gen3(bw_db_t *db, const char *course, const bson_oid_t *run,
                       json_object **out, bw_error_t *error);

/* §2.10 grading_run_env data {pre_processing_env, post_processing_env,
 * student_env}: per job, each variable of its merged env (§2.9.3) with the
 * list of its distinct values across the job's stages.  Errors as above. */
int bw_run_env_gen3(bw_db_t *db, const char *course, const bson_oid_t *run,
                    json_object **out, bw_error_t *error);

/* §2.6 grading_job_log data {stdout, stderr} of a finished job, from the
 * `logs` of its grader's result (a value that is not a string reads ""; a
 * job the service gave up after its graders died reads "" and "").  BW_ENOTFOUND
 * "grading job with the given IDnot found or has not finished", BW_EDB. */
int bw_job_log_gen3(bw_db_t *db, const char *course, const bson_oid_t *job,
                    json_object **out, bw_error_t *error);

/* The job's state as the SSE events name it: "QUEUED" (not yet handed out,
 * or re-queued), "STARTED", "FINISHED" (succeeded) or "FAILED" (also a
 * cancelled job).  *state is a static string.  BW_ENOTFOUND (unknown, or
 * another course's), BW_EDB. */
int bw_job_state_gen3(bw_db_t *db, const char *course, const bson_oid_t *job,
                      const char **state, bw_error_t *error);

/* §2.6 worker list data {"worker_nodes": [{hostname, jobs_processed, busy,
 * alive}]}: every grader of the cluster, all generations, as the original.
 * jobs_processed counts the results it sent, busy that it holds a job now,
 * alive a heartbeat within 2 intervals.  0 or BW_EDB. */
int bw_worker_list_gen3(bw_db_t *db, const bw_config_t *cfg, json_object **out,
                        bw_error_t *error);

#endif
