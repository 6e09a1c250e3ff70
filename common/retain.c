#include "retain.h"

#include <string.h>

#define CURSOR_ID "retention"

/* The first day not yet known to be fully pruned, or `fallback`. */
static int64_t retain_cursor(bw_db_t *db, int64_t fallback) {
  bson_t doc;
  int64_t day = fallback;
  if (bw_db_find_by_id(db, BW_COLL_COUNTERS, CURSOR_ID, &doc, NULL) == 0 &&
      bw_db_get_int(&doc, "output_day") > 0)
    day = bw_db_get_int(&doc, "output_day");
  bson_destroy(&doc);
  return day;
}

static int retain_save_cursor(bw_db_t *db, int64_t day, bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set,
         opts = BSON_INITIALIZER;
  int rc = 0;

  BSON_APPEND_UTF8(&filter, "_id", CURSOR_ID);
  BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
  BSON_APPEND_INT64(&set, "output_day", day);
  bson_append_document_end(&update, &set);
  BSON_APPEND_BOOL(&opts, "upsert", true);
  /* Two reapers may both move it: each only past days it saw pruned. */
  rc = bw_db_update_one(db, BW_COLL_COUNTERS, &filter, &update, &opts, error);
  bson_destroy(&filter);
  bson_destroy(&update);
  bson_destroy(&opts);
  return rc;
}

typedef struct retain_batch {
  bson_t **found;
  int n, cap;
} retain_batch_t;

static void retain_visit(const bson_t *doc, void *ctx) {
  retain_batch_t *b = ctx;
  if (b->n < b->cap)
    b->found[b->n++] = bson_copy(doc);
}

/* `info` without each entry's stdout and stderr. */
static void retain_strip_info(const bson_t *result, bson_t *set) {
  bson_iter_t it, entry;
  bson_t info;
  char buf[16];
  const char *key;
  uint32_t i = 0;

  if (!bson_iter_init_find(&it, result, "info") || !BSON_ITER_HOLDS_ARRAY(&it))
    return;
  BSON_APPEND_ARRAY_BEGIN(set, "info", &info);
  bson_iter_recurse(&it, &entry);
  while (bson_iter_next(&entry)) {
    bson_uint32_to_string(i++, &key, buf, sizeof buf);
    if (BSON_ITER_HOLDS_DOCUMENT(&entry)) {
      const uint8_t *data;
      uint32_t len;
      bson_t stage, kept;
      bson_iter_document(&entry, &len, &data);
      bson_init_static(&stage, data, len);
      BSON_APPEND_DOCUMENT_BEGIN(&info, key, &kept);
      bson_copy_to_excluding_noinit(&stage, &kept, "stdout", "stderr", NULL);
      bson_append_document_end(&info, &kept);
    } else {
      bson_append_iter(&info, key, -1, &entry);
    }
  }
  bson_append_array_end(set, &info);
}

/* Idempotent: a second reaper pruning the same result writes the same. */
static int retain_prune(bw_db_t *db, const bson_t *result, bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, unset;
  bson_iter_t id;
  int rc = 0;

  if (!bson_iter_init_find(&id, result, "_id"))
    return 0;
  bson_append_iter(&filter, "_id", -1, &id);
  BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
  BSON_APPEND_DATE_TIME(&set, "pruned_at", bw_db_now_ms());
  retain_strip_info(result, &set);
  bson_append_document_end(&update, &set);
  BSON_APPEND_DOCUMENT_BEGIN(&update, "$unset", &unset);
  BSON_APPEND_UTF8(&unset, "logs", "");
  bson_append_document_end(&update, &unset);
  rc = bw_db_update_one(db, BW_COLL_RESULTS, &filter, &update, NULL, error);
  bson_destroy(&filter);
  bson_destroy(&update);
  return rc;
}

/* Prunes up to `budget` unpruned results of `day` older than `cutoff`;
 * *found says how many there were (== budget: maybe more). */
static int retain_day(bw_db_t *db, int64_t day, int64_t cutoff, int budget,
                      int *found, bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, range, missing, opts = BSON_INITIALIZER;
  retain_batch_t b = {bson_malloc0(sizeof(bson_t *) * (size_t)budget), 0,
                      budget};
  int rc;

  BSON_APPEND_INT64(&filter, "day", day);
  BSON_APPEND_DOCUMENT_BEGIN(&filter, "at", &range);
  BSON_APPEND_DATE_TIME(&range, "$lt", cutoff);
  bson_append_document_end(&filter, &range);
  BSON_APPEND_DOCUMENT_BEGIN(&filter, "pruned_at", &missing);
  BSON_APPEND_BOOL(&missing, "$exists", false);
  bson_append_document_end(&filter, &missing);
  BSON_APPEND_INT64(&opts, "limit", budget);
  rc = bw_db_each(bw_db_coll(db, BW_COLL_RESULTS), &filter, &opts,
                  retain_visit, &b, error);
  for (int i = 0; i < b.n; i++) {
    if (rc == 0)
      rc = retain_prune(db, b.found[i], error);
    bson_destroy(b.found[i]);
  }
  *found = b.n;
  bson_free(b.found);
  bson_destroy(&filter);
  bson_destroy(&opts);
  return rc;
}

int bw_retain_pass(bw_db_t *db, const bw_config_t *cfg, int *pruned,
                   bw_error_t *error) {
  int64_t cutoff = bw_db_now_ms() - cfg->keep_output * 1000LL,
          last = cutoff / BW_DB_DAY_MS,
          start = retain_cursor(db, last - BW_RETAIN_FIRST_DAYS), day = start;
  int budget = BW_RETAIN_BATCH, rc = 0;

  if (cfg->keep_output <= 0)
    return 0;
  for (; rc == 0 && day <= last && day < start + BW_RETAIN_DAYS; day++) {
    int found = 0;
    rc = retain_day(db, day, cutoff, budget, &found, error);
    *pruned += found;
    budget -= found;
    /* The cutoff's own day fills up still; a day with more left waits. */
    if (rc < 0 || budget == 0 || day == last)
      break;
  }
  if (rc == 0 && day != start)
    rc = retain_save_cursor(db, day, error);
  return rc;
}
