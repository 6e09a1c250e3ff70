/* env.h - environment resolution for job stages (PROTOCOL.md, "Environment
 * resolution").
 *
 * Layers, most specific wins: stage env > student entry > global env.  In a
 * stage value, $NAME and ${NAME} expand to NAME from the student and global
 * layers (student wins), $$ is a literal $, and an empty stage value "" takes
 * the same-named variable from those layers when it exists.  A '$' followed
 * by anything else is kept literally.  GRADING_RUN_ID and GRADING_JOB_ID are
 * always added (and override any user value of those names).
 *
 * Precisely, scanning a stage value left to right:
 *   $$              -> "$"
 *   $NAME           -> NAME is the longest run of [A-Za-z0-9_] after the '$',
 *                      which must start with [A-Za-z_] ("$HOME/x" is HOME)
 *   ${NAME}         -> NAME must be a whole valid name followed by '}'
 *   any other '$'   -> a literal '$', and scanning goes on with the next
 *                      character: "$1", "$-", a final "$", "${1X}", "${}" and
 *                      an unclosed "${A" all stay as written (so "${$A}"
 *                      gives "${" + A's value + "}")
 * A reference is looked up in the student layer, then the global one; never
 * in the stage layer.  A stage value "" whose name exists in neither stays "".
 *
 * All json_object* arguments are borrowed (may be NULL for "no such layer"):
 * objects of NAME -> string. */
#ifndef BW_ENV_H
#define BW_ENV_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h"

/* Walks one stage value with the rules above, calling fn for each piece in
 * order: literal text (is_ref false; "$$" arrives as "$") or the NAME of a
 * reference (is_ref true).  `text` is not NUL-terminated.  A non-zero return
 * from fn stops the walk and is returned; otherwise returns 0.  (Validation
 * uses it to check each referenced name once per student, not once per use.) */
typedef int (*bw_env_piece_fn)(const char *text, size_t len, bool is_ref,
                               void *ctx);
int bw_env_scan(const char *value, bw_env_piece_fn fn, void *ctx);

/* Checks that every reference in stage_env resolves against global+student.
 * Returns 0, or BW_EINVAL with error->message "<where>: NAME is not defined"
 * where `where` is the caller-given prefix (e.g. "students[3]") and the
 * message names the stage variable, e.g.
 *   "students[3]: NETID (referenced by student_pipeline[0].env.DIR) is not
 * defined" */
int bw_env_check(json_object *global, json_object *student,
                 json_object *stage_env, const char *where,
                 const char *stage_path, bw_error_t *error);

/* Resolves one stage's env into a new JSON array of "NAME=value" strings,
 * each NAME once, sorted by name (strcmp order, deterministic).  run_id and
 * job_id are the 24-hex ids (a NULL one is left out).  Layer values that are
 * not strings are used as their JSON text.  Returns 0 and sets *out, or
 * BW_EINVAL (undefined reference: cannot happen for a validated run) or
 * BW_ENOMEM. */
int bw_env_resolve(json_object *global, json_object *student,
                   json_object *stage_env, const char *run_id,
                   const char *job_id, json_object **out, bw_error_t *error);

/* The 2019 API's env of one stage (PROTOCOL-LATER.md §2.9.3), a new object:
 * global (plus GRADING_RUN_ID = run_id), then the stage's own env, then
 * `runtime` (the student's entry, or the run's pre/post env), then
 * GRADING_JOB_ID = job_id; later layers win.  Values are literal and keep
 * their JSON type (no "$NAME", unlike bw_env_resolve).  Layers that are not
 * objects count as empty.  Computed from the given layers only, which it
 * never changes (the original mutated the shared stage env, so a student's
 * job carried the keys of the students before it). */
json_object *bw_env_merge_gen3(json_object *global, json_object *stage_env,
                               json_object *runtime, const char *run_id,
                               const char *job_id);

#endif
