#include "gen3.h"

int bw_run_status_gen3(bw_db_t *db, const char *course, const bson_oid_t *run,
                       json_object **out, bw_error_t *error) {
  (void)db, (void)course, (void)run;
  *out = NULL;
  return bw_error_set(error, BW_EINTERNAL, "not yet");
}

int bw_run_env_gen3(bw_db_t *db, const char *course, const bson_oid_t *run,
                    json_object **out, bw_error_t *error) {
  (void)db, (void)course, (void)run;
  *out = NULL;
  return bw_error_set(error, BW_EINTERNAL, "not yet");
}

int bw_job_log_gen3(bw_db_t *db, const char *course, const bson_oid_t *job,
                    json_object **out, bw_error_t *error) {
  (void)db, (void)course, (void)job;
  *out = NULL;
  return bw_error_set(error, BW_EINTERNAL, "not yet");
}

int bw_job_state_gen3(bw_db_t *db, const char *course, const bson_oid_t *job,
                      const char **state, bw_error_t *error) {
  (void)db, (void)course, (void)job;
  *state = NULL;
  return bw_error_set(error, BW_EINTERNAL, "not yet");
}

int bw_worker_list_gen3(bw_db_t *db, const bw_config_t *cfg, json_object **out,
                        bw_error_t *error) {
  (void)db, (void)cfg;
  *out = NULL;
  return bw_error_set(error, BW_EINTERNAL, "not yet");
}
