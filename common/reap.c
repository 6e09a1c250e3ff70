#include "reap.h"

#include <stdio.h>
#include <string.h>

#include "job.h"
#include "log.h"
#include "run.h"

/* Collects the ids of graders past their heartbeat deadline. */
static int reap_dead_workers(bw_db_t *db, int64_t cutoff, bson_t *ids,
                             int *count, bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, lt, opts = BSON_INITIALIZER, proj;
  const bson_t *doc;
  bson_error_t driver;
  bson_iter_t it;
  mongoc_cursor_t *cursor;
  int rc = 0;

  *count = 0;
  BSON_APPEND_DOCUMENT_BEGIN(&filter, "last_heartbeat", &lt);
  BSON_APPEND_DATE_TIME(&lt, "$lt", cutoff);
  bson_append_document_end(&filter, &lt);
  BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
  BSON_APPEND_INT32(&proj, "_id", 1);
  bson_append_document_end(&opts, &proj);
  cursor = mongoc_collection_find_with_opts(bw_db_coll(db, BW_COLL_WORKERS),
                                            &filter, &opts, NULL);
  while (mongoc_cursor_next(cursor, &doc)) {
    const char *key;
    char buf[16];
    if (!bson_iter_init_find(&it, doc, "_id") || !BSON_ITER_HOLDS_OID(&it))
      continue;
    bson_uint32_to_string((uint32_t)(*count)++, &key, buf, sizeof buf);
    BSON_APPEND_OID(ids, key, bson_iter_oid(&it));
  }
  if (mongoc_cursor_error(cursor, &driver))
    rc = bw_db_error(&driver, error);
  mongoc_cursor_destroy(cursor);
  bson_destroy(&filter);
  bson_destroy(&opts);
  return rc;
}

static void reap_abandon(bw_db_t *db, const bw_config_t *cfg,
                         const bson_oid_t *job, int attempt,
                         const char *reason, bw_reap_stats_t *stats) {
  bw_error_t error;
  bool failed;
  char hex[25];
  int rc = bw_job_abandon(db, cfg, job, attempt, reason, &failed, &error);

  bson_oid_to_string(job, hex);
  if (rc == 0 && failed) {
    stats->failed++;
    bw_log_info("reaper: job %s failed: %s", hex, reason);
  } else if (rc == 0) {
    stats->requeued++;
    bw_log_info("reaper: job %s attempt %d re-queued: %s", hex, attempt,
                reason);
  } else if (rc != BW_EDUP) {
    bw_log_warn("reaper: job %s: %s", hex, error.message);
  }
}

int bw_reap_dead(bw_db_t *db, const bw_config_t *cfg, bw_reap_stats_t *stats,
                 bw_error_t *error) {
  int64_t cutoff = bw_db_now_ms() - 2000LL * cfg->heartbeat;
  bson_t dead = BSON_INITIALIZER, filter = BSON_INITIALIZER, in;
  const bson_t *doc;
  bson_error_t driver;
  mongoc_cursor_t *cursor;
  int n, rc;

  rc = reap_dead_workers(db, cutoff, &dead, &n, error);
  if (rc < 0 || n == 0) {
    bson_destroy(&dead);
    return rc;
  }
  stats->dead_workers += n;
  BSON_APPEND_UTF8(&filter, "state", "running");
  BSON_APPEND_DOCUMENT_BEGIN(&filter, "worker_id", &in);
  BSON_APPEND_ARRAY(&in, "$in", &dead);
  bson_append_document_end(&filter, &in);
  cursor = mongoc_collection_find_with_opts(bw_db_coll(db, BW_COLL_JOBS),
                                            &filter, NULL, NULL);
  while (mongoc_cursor_next(cursor, &doc)) {
    bson_iter_t it;
    bson_oid_t job;
    char worker[25] = "?", reason[128];
    int attempt = 1;
    if (!bson_iter_init_find(&it, doc, "_id") || !BSON_ITER_HOLDS_OID(&it))
      continue;
    bson_oid_copy(bson_iter_oid(&it), &job);
    if (bson_iter_init_find(&it, doc, "attempts"))
      attempt = (int)bson_iter_as_int64(&it);
    if (bson_iter_init_find(&it, doc, "worker_id") && BSON_ITER_HOLDS_OID(&it))
      bson_oid_to_string(bson_iter_oid(&it), worker);
    snprintf(reason, sizeof reason, "grader %s stopped heartbeating", worker);
    reap_abandon(db, cfg, &job, attempt, reason, stats);
  }
  if (mongoc_cursor_error(cursor, &driver))
    rc = bw_db_error(&driver, error);
  mongoc_cursor_destroy(cursor);
  bson_destroy(&filter);
  bson_destroy(&dead);
  return rc;
}

/* A claim whose job never recorded it: the poller died between the claim
 * and findAndModify, so no grader has the job. */
static void reap_check_claim(bw_db_t *db, const bw_config_t *cfg,
                             const bson_t *claim, bw_reap_stats_t *stats) {
  bson_t filter = BSON_INITIALIZER, job, mark = BSON_INITIALIZER, set;
  bson_iter_t it;
  bson_oid_t job_id;
  int attempt = 1, recorded = 0;
  const char *state = "";

  if (!bson_iter_init_find(&it, claim, "job_id") || !BSON_ITER_HOLDS_OID(&it))
    return;
  bson_oid_copy(bson_iter_oid(&it), &job_id);
  if (bson_iter_init_find(&it, claim, "attempt"))
    attempt = (int)bson_iter_as_int64(&it);
  BSON_APPEND_OID(&filter, "_id", &job_id);
  if (bw_db_find_one(db, BW_COLL_JOBS, &filter, NULL, &job, NULL) == 0) {
    if (bson_iter_init_find(&it, &job, "attempts"))
      recorded = (int)bson_iter_as_int64(&it);
    if (bson_iter_init_find(&it, &job, "state") && BSON_ITER_HOLDS_UTF8(&it))
      state = bson_iter_utf8(&it, NULL);
    if (recorded < attempt && strcmp(state, "succeeded") != 0 &&
        strcmp(state, "failed") != 0) {
      stats->repaired++;
      reap_abandon(db, cfg, &job_id, attempt,
                   "its hand-out never reached a grader", stats);
    }
  }
  bson_destroy(&job);
  bson_destroy(&filter);
  /* Checked claims are not looked at again. */
  BSON_APPEND_DOCUMENT_BEGIN(&mark, "$set", &set);
  BSON_APPEND_BOOL(&set, "checked", true);
  bson_append_document_end(&mark, &set);
  bson_reinit(&filter);
  if (bson_iter_init_find(&it, claim, "_id"))
    bson_append_iter(&filter, "_id", 3, &it);
  mongoc_collection_update_one(bw_db_coll(db, BW_COLL_CLAIMS), &filter, &mark,
                               NULL, NULL, NULL);
  bson_destroy(&mark);
  bson_destroy(&filter);
}

static int reap_claims(bw_db_t *db, const bw_config_t *cfg,
                       bw_reap_stats_t *stats, bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, sub;
  const bson_t *doc;
  bson_error_t driver;
  mongoc_cursor_t *cursor;
  int rc = 0;

  BSON_APPEND_DOCUMENT_BEGIN(&filter, "at", &sub);
  BSON_APPEND_DATE_TIME(&sub, "$lt",
                        bw_db_now_ms() - cfg->claim_grace * 1000LL);
  bson_append_document_end(&filter, &sub);
  BSON_APPEND_DOCUMENT_BEGIN(&filter, "checked", &sub);
  BSON_APPEND_BOOL(&sub, "$ne", true);
  bson_append_document_end(&filter, &sub);
  cursor = mongoc_collection_find_with_opts(bw_db_coll(db, BW_COLL_CLAIMS),
                                            &filter, NULL, NULL);
  while (mongoc_cursor_next(cursor, &doc))
    reap_check_claim(db, cfg, doc, stats);
  if (mongoc_cursor_error(cursor, &driver))
    rc = bw_db_error(&driver, error);
  mongoc_cursor_destroy(cursor);
  bson_destroy(&filter);
  return rc;
}

static int reap_runs(bw_db_t *db, const bw_config_t *cfg,
                     bw_reap_stats_t *stats, bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, in, list, opts = BSON_INITIALIZER, proj;
  const bson_t *doc;
  bson_error_t driver;
  mongoc_cursor_t *cursor;
  bson_oid_t *runs = NULL;
  size_t n = 0, cap = 0;
  int rc = 0;

  BSON_APPEND_DOCUMENT_BEGIN(&filter, "state", &in);
  BSON_APPEND_ARRAY_BEGIN(&in, "$in", &list);
  BSON_APPEND_UTF8(&list, "0", "pre_processing");
  BSON_APPEND_UTF8(&list, "1", "students");
  BSON_APPEND_UTF8(&list, "2", "post_processing");
  bson_append_array_end(&in, &list);
  bson_append_document_end(&filter, &in);
  BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
  BSON_APPEND_INT32(&proj, "_id", 1);
  bson_append_document_end(&opts, &proj);
  cursor = mongoc_collection_find_with_opts(bw_db_coll(db, BW_COLL_RUNS),
                                            &filter, &opts, NULL);
  /* Collect first: repairing while the cursor is open would hold it across
   * many other queries. */
  while (mongoc_cursor_next(cursor, &doc)) {
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc, "_id") || !BSON_ITER_HOLDS_OID(&it))
      continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      runs = bson_realloc(runs, cap * sizeof *runs);
    }
    bson_oid_copy(bson_iter_oid(&it), &runs[n++]);
  }
  if (mongoc_cursor_error(cursor, &driver))
    rc = bw_db_error(&driver, error);
  mongoc_cursor_destroy(cursor);
  for (size_t i = 0; rc == 0 && i < n; i++)
    rc = bw_run_repair(db, cfg, &runs[i], &stats->repaired, error);
  bson_free(runs);
  bson_destroy(&filter);
  bson_destroy(&opts);
  return rc;
}

int bw_reap_repair(bw_db_t *db, const bw_config_t *cfg, bw_reap_stats_t *stats,
                   bw_error_t *error) {
  int rc = reap_claims(db, cfg, stats, error);
  return rc < 0 ? rc : reap_runs(db, cfg, stats, error);
}

int bw_reap_once(bw_db_t *db, const bw_config_t *cfg, bw_reap_stats_t *stats,
                 bw_error_t *error) {
  int rc;
  memset(stats, 0, sizeof *stats);
  rc = bw_reap_dead(db, cfg, stats, error);
  return rc < 0 ? rc : bw_reap_repair(db, cfg, stats, error);
}
