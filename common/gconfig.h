/* gconfig.h - grading configs of the 2019 API (PROTOCOL-LATER.md §2.5,
 * §2.6): one per "<course>/<assignment>", in the `gconfigs` collection.
 * What a client may send as a config is checked by validate.h
 * (bw_validate_gconfig) before it gets here.
 *
 * Who owns what: bw_gconfig_get() returns a new json-c object the caller
 * puts; bw_gconfig_put borrows what it is given.  Configs
 * are private to their course: the course is part of every key, and the
 * caller has checked the course's token (course.h) before calling. */
#ifndef BW_GCONFIG_H
#define BW_GCONFIG_H

#include <json-c/json.h>

#include "config.h"
#include "db.h"
#include "error.h"

/* Longest assignment name (the original's [-\w]+, bounded here). */
#define BW_ASSIGNMENT_MAX 128

/* Stores `config` (checked) under "<course>/<assignment>", replacing any
 * config stored there.  Returns 0, BW_EINVAL (over 16 MB as BSON: the
 * original silently dropped such a config), BW_EDB. */
int bw_gconfig_put(bw_db_t *db, const char *course, const char *assignment,
                   json_object *config, bw_error_t *error);

/* The stored config as §2.6's GET answers it: {"env", "student_pipeline",
 * "pre_processing_pipeline", "post_processing_pipeline"}, absent ones null.
 * Returns 0 and *out, BW_ENOTFOUND "assignment configuration not found",
 * BW_EDB. */
int bw_gconfig_get(bw_db_t *db, const char *course, const char *assignment,
                   json_object **out, bw_error_t *error);

#endif
