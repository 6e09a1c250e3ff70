/* TEMPORARY stubs: see g3_pending.h. */
#include "g3_pending.h"

static int pending(bw_error_t *error) {
  return bw_error_set(error, BW_EINTERNAL, "not built yet");
}

int bw_run_create_gen3(bw_db_t *db, const bw_config_t *cfg, const char *course,
                       const char *assignment, json_object *config,
                       json_object *body, bson_oid_t *run_id,
                       bw_error_t *error) {
  (void)db, (void)cfg, (void)course, (void)assignment, (void)config,
      (void)body, (void)run_id;
  return pending(error);
}
int bw_run_status_gen3(bw_db_t *db, const char *course, const bson_oid_t *run,
                       json_object **out, bw_error_t *error) {
  (void)db, (void)course, (void)run, (void)out;
  return pending(error);
}
int bw_run_env_gen3(bw_db_t *db, const char *course, const bson_oid_t *run,
                    json_object **out, bw_error_t *error) {
  (void)db, (void)course, (void)run, (void)out;
  return pending(error);
}
int bw_job_log_gen3(bw_db_t *db, const char *course, const bson_oid_t *job,
                    json_object **out, bw_error_t *error) {
  (void)db, (void)course, (void)job, (void)out;
  return pending(error);
}
int bw_worker_list_gen3(bw_db_t *db, const bw_config_t *cfg, json_object **out,
                        bw_error_t *error) {
  (void)db, (void)cfg, (void)out;
  return pending(error);
}
int bw_queue_course_length(bw_db_t *db, const char *course, int64_t *n,
                           bw_error_t *error) {
  (void)db, (void)course, (void)n;
  return pending(error);
}
int bw_queue_position(bw_db_t *db, const char *course, const bson_oid_t *job,
                      int64_t *pos, bw_error_t *error) {
  (void)db, (void)course, (void)job, (void)pos;
  return pending(error);
}
