/* validate.h - what a client may send, checked before anything touches the
 * database.  Every rule of PROTOCOL.md about bodies lives here, so a handler
 * only calls one function and replies 400 with error->message on failure.
 *
 * Messages name the field by its JSON path, e.g.
 *   "student_pipeline[1].timeout: expected a number"
 *   "students[3]: NETID is referenced by student_pipeline[0].env.DIR but is not
 * defined"
 *
 * Ownership: *out objects are new references, the caller puts them. */
#ifndef BW_VALIDATE_H
#define BW_VALIDATE_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "error.h"
#include "json.h"

/* A grading run config (the body of POST /api/v1/grading_run), as
 * bw_json_parse_body_lazy(..., "students", &body, &students, ...) gives it:
 * the students are read from `students`, one at a time (body's "students"
 * only says whether the key was there and an array).  On success *out is
 * what the run keeps: every key but students, with the global env's numbers
 * and booleans as their JSON text (bw_validate_env_text); the students as
 * posted stay in `students`.  Checks every key, type and limit in the
 * config, ENV names, timeouts (> 0, <= max_timeout), and that every $NAME /
 * ${NAME} / "" reference in every stage env resolves for every student
 * (bw_env_check).  Returns 0, BW_EINVAL, or BW_ETOOBIG for a count over a
 * configured limit (still a 400 to the client: the handler maps it).
 *
 * Details the protocol leaves open:
 *   - the first problem found is reported: unknown top-level keys first, then
 *     students, env, student_pipeline, pre_, post_processing_pipeline, then
 *     references (pre, each student in index order over all student stages,
 *     post), then expansion sizes;
 *   - counts over a limit (students, stages, variables) are BW_ETOOBIG; byte
 *     lengths over a limit are BW_EINVAL ("students[0].A: value of 70000
 *     bytes is over the limit of 65536"; a number's text is held to it too);
 *   - env values that are null, objects or arrays: "env.X: expected a
 *     string" (numbers and booleans are accepted only in students and env);
 *   - a stage value whose longest possible expansion (each reference at the
 *     longest value any layer has for it) is over max_env_value is refused:
 *     "student_pipeline[0].env.V: expands to up to N bytes, over the limit
 *     of 65536", so a job's env stays bounded;
 *   - entry_point may be empty; host_name is any string up to max_string;
 *   - limits: memory, disk and output are bytes (an integer) or a size text
 *     ("512m"; k, m, g are powers of 1024), cpus a number, pids an integer,
 *     each from a floor (memory 4 MiB, cpus 0.01, pids 4, disk 1 MiB, output
 *     1 KiB) to its max_<key>: "student_pipeline[0].memory: expected
 *     4194304 to 17179869184"; a stage without one gets default_<key>
 *     in *out. */
int bw_validate_run_config(json_object *body, const bw_json_items_t *students,
                           const bw_config_t *cfg, json_object **out,
                           bw_error_t *error);

/* An env (students, global) as jobs get it: numbers and booleans become
 * their JSON text ("1.50", "true"), what a shell would see had the course
 * quoted them.  A new reference (to env itself when it holds none), NULL on
 * ENOMEM. */
json_object *bw_validate_env_text(json_object *env);

/* A grader's result (the body of POST /api/v1/grading_job/{id}), in every
 * shape a released grader sends: v0.1's {"success":b,"info":[{..},..],
 * "logs":{..}}, the seed's {"status":"..","data":{"success":..,"info":..}},
 * the 2018-11 grader's {"success":b,"info":{"stageResults":[{..}],
 * "stdout":s,"stderr":s}} and the 2018-12 grader's {"success":b,
 * "results":[{..}],"logs":{"stdout":s,"stderr":s}}.  On success *out is
 * {"success":b, "info" or "results" as given, "logs" if given}.  info or
 * results over max_info_bytes, logs over max_logs_bytes: BW_EINVAL naming
 * the field and the limit. */
int bw_validate_result(json_object *body, const bw_config_t *cfg,
                       json_object **out, bw_error_t *error);

/* The 2019 API's result body (PROTOCOL-LATER.md §2.7): exactly
 * {grading_job_id: string, success, results, logs: object}, all required.
 * logs keeps stdout and stderr only, each "" when not a string; then the
 * rules and limits of bw_validate_result apply.  *job_id: the grading_job_id
 * (borrowed from body); *out as bw_validate_result's. */
int bw_validate_gen3_result(json_object *body, const bw_config_t *cfg,
                            const char **job_id, json_object **out,
                            bw_error_t *error);

/* The 2019 API's register body {"hostname": string of at most 255 bytes},
 * no other key.  *hostname is borrowed from body. */
int bw_validate_gen3_register(json_object *body, const char **hostname,
                              bw_error_t *error);

/* A size as a stage gives it: a non-negative integer of bytes, or text of
 * digits with an optional k, m or g suffix (powers of 1024).  False for
 * anything else or an overflow. */
bool bw_validate_size(json_object *value, uint64_t *bytes);

/* ENV variable name: [A-Za-z_][A-Za-z0-9_]*, at most max_len bytes. */
bool bw_validate_env_name(const char *name, size_t max_len);

/* A printable host name for ?hostname=: 1..255 bytes of [A-Za-z0-9.-_]. */
bool bw_validate_hostname(const char *text);

/* A host name in the path of GET /api/v1/worker_register/<hostname> (Gen
 * 2a; the original's pattern is [^()]+): 1..255 bytes of printable ASCII
 * but blanks and parentheses; '/' and '.' allowed. */
bool bw_validate_path_hostname(const char *text);
/* Which jobs a status lists (GET grading_run/{id}?offset=&limit=&summary=,
 * docs/PROTOCOL.md; bw_validate_run_page reads them).
 * Jobs are in roster order (pre, students by index, post).  A run of more
 * than BW_RUN_PAGE_MAX jobs read with neither offset nor limit lists its
 * first BW_RUN_PAGE_MAX: a response holds at most that many jobs however
 * large the run.  Whenever the list is not the whole run, the status says so in
 * "jobs_page": {offset, limit, total[, next_offset]}. */
#define BW_RUN_PAGE_MAX 1000
typedef struct bw_run_page {
  bool summary; /* counts only: no "jobs", "jobs_page" has only "total" */
  long offset;  /* >= 0 */
  long limit;   /* 1..BW_RUN_PAGE_MAX; 0: not given */
} bw_run_page_t;

/* The query of GET grading_run/{id}: offset, limit and summary as given
 * (NULL when absent).  offset: an integer >= 0; limit: 1..BW_RUN_PAGE_MAX;
 * summary: 1/true or 0/false.  Returns 0 and *page, or BW_EINVAL naming the
 * parameter. */
int bw_validate_run_page(const char *offset, const char *limit,
                         const char *summary, bw_run_page_t *page,
                         bw_error_t *error);

#endif
