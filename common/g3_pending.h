/* g3_pending.h - TEMPORARY (g3-course only): the Model API (g3-model) and
 * the Queue API (fair) as /work/GEN3-CONTRACT.md declares them, with stubs
 * that answer BW_EINTERNAL, so the course routes build before those
 * branches are merged.  Deleted at the merge. */
#ifndef BW_G3_PENDING_H
#define BW_G3_PENDING_H

#include <json-c/json.h>
#include <stdint.h>

#include "config.h"
#include "db.h"
#include "error.h"

int bw_run_create_gen3(bw_db_t *db, const bw_config_t *cfg, const char *course,
                       const char *assignment, json_object *config,
                       json_object *body, bson_oid_t *run_id,
                       bw_error_t *error);
int bw_run_status_gen3(bw_db_t *db, const char *course, const bson_oid_t *run,
                       json_object **out, bw_error_t *error);
int bw_run_env_gen3(bw_db_t *db, const char *course, const bson_oid_t *run,
                    json_object **out, bw_error_t *error);
int bw_job_log_gen3(bw_db_t *db, const char *course, const bson_oid_t *job,
                    json_object **out, bw_error_t *error);
int bw_worker_list_gen3(bw_db_t *db, const bw_config_t *cfg, json_object **out,
                        bw_error_t *error);
int bw_queue_course_length(bw_db_t *db, const char *course, int64_t *n,
                           bw_error_t *error);
int bw_queue_position(bw_db_t *db, const char *course, const bson_oid_t *job,
                      int64_t *pos, bw_error_t *error);

#endif
