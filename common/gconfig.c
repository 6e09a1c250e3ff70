#include "gconfig.h"

#include <stdio.h>

#include "json.h"
#include "queue.h" /* BW_COURSE_MAX */

#define GCONFIG_ID_BUF (BW_COURSE_MAX + 1 + BW_ASSIGNMENT_MAX + 1)

/* MongoDB's document limit, less room for _id and the other fields. */
#define GCONFIG_MAX_BSON (16 * 1024 * 1024 - 4096)

static const char *const gconfig_keys[] = {
    "env", "student_pipeline", "pre_processing_pipeline",
    "post_processing_pipeline"};

static void gconfig_id(const char *course, const char *assignment,
                       char out[GCONFIG_ID_BUF]) {
  snprintf(out, GCONFIG_ID_BUF, "%s/%s", course, assignment);
}

int bw_gconfig_put(bw_db_t *db, const char *course, const char *assignment,
                   json_object *config, bw_error_t *error) {
  char id[GCONFIG_ID_BUF];
  bson_t filter, update, set, opts;
  int rc;

  gconfig_id(course, assignment, id);
  bson_init(&filter);
  BSON_APPEND_UTF8(&filter, "_id", id);
  bson_init(&update);
  BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
  BSON_APPEND_UTF8(&set, "course", course);
  BSON_APPEND_UTF8(&set, "assignment", assignment);
  rc = bw_json_append_bson(&set, "config", config);
  BSON_APPEND_DATE_TIME(&set, "at", bw_db_now_ms());
  bson_append_document_end(&update, &set);
  bson_init(&opts);
  BSON_APPEND_BOOL(&opts, "upsert", true);
  if (rc < 0)
    rc = bw_error_set(error, BW_ENOMEM, "config: out of memory");
  else if (update.len > GCONFIG_MAX_BSON)
    rc = bw_error_set(error, BW_EINVAL,
                      "body: a grading config is limited to 16 MB stored");
  else
    rc = bw_db_update_one(db, BW_COLL_GCONFIGS, &filter, &update, &opts, error);
  /* Two first writes at once: on FerretDB both upserts may insert, and the
   * second then finds the _id taken.  It now exists: write over it. */
  if (rc == BW_EDUP)
    rc = bw_db_update_one(db, BW_COLL_GCONFIGS, &filter, &update, &opts, error);
  bson_destroy(&opts);
  bson_destroy(&update);
  bson_destroy(&filter);
  return rc;
}

int bw_gconfig_get(bw_db_t *db, const char *course, const char *assignment,
                   json_object **out, bw_error_t *error) {
  char id[GCONFIG_ID_BUF];
  json_object *stored = NULL;
  bson_t doc, config;
  int rc;

  *out = NULL;
  gconfig_id(course, assignment, id);
  rc = bw_db_find_by_id(db, BW_COLL_GCONFIGS, id, &doc, error);
  if (rc == BW_ENOTFOUND)
    rc = bw_error_set(error, BW_ENOTFOUND,
                      "assignment configuration not found");
  if (rc == 0 && bw_db_get_doc(&doc, "config", &config) &&
      (stored = bw_json_from_bson(&config)) == NULL)
    rc = bw_error_set(error, BW_ENOMEM, "config: out of memory");
  bson_destroy(&doc);
  if (rc == 0 && (*out = json_object_new_object()) == NULL)
    rc = bw_error_set(error, BW_ENOMEM, "config: out of memory");
  if (rc < 0) {
    json_object_put(stored);
    return rc;
  }
  for (size_t i = 0; i < sizeof gconfig_keys / sizeof gconfig_keys[0]; i++) {
    json_object *value = NULL;
    if (stored != NULL)
      json_object_object_get_ex(stored, gconfig_keys[i], &value);
    json_object_object_add(*out, gconfig_keys[i], json_object_get(value));
  }
  json_object_put(stored);
  return 0;
}
