#include "reap.h"

#include <stdio.h>
#include <string.h>

#include "job.h"
#include "log.h"
#include "queue.h"
#include "run.h"

typedef struct reap_ids {
  bson_t *array; /* a BSON array being appended to */
  int count;
} reap_ids_t;

static void reap_visit_worker(const bson_t *doc, void *ctx) {
  reap_ids_t *ids = ctx;
  bson_iter_t it;
  const char *key;
  char buf[16];

  if (!bson_iter_init_find(&it, doc, "_id") || !BSON_ITER_HOLDS_OID(&it))
    return;
  bson_uint32_to_string((uint32_t)ids->count++, &key, buf, sizeof buf);
  BSON_APPEND_OID(ids->array, key, bson_iter_oid(&it));
}

/* Collects the ids of graders past their heartbeat deadline. */
static int reap_dead_workers(bw_db_t *db, int64_t cutoff, bson_t *ids,
                             int *count, bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, lt, opts = BSON_INITIALIZER, proj;
  reap_ids_t found = {ids, 0};
  int rc;

  BSON_APPEND_DOCUMENT_BEGIN(&filter, "last_heartbeat", &lt);
  BSON_APPEND_DATE_TIME(&lt, "$lt", cutoff);
  bson_append_document_end(&filter, &lt);
  BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
  BSON_APPEND_INT32(&proj, "_id", 1);
  bson_append_document_end(&opts, &proj);
  rc = bw_db_each(bw_db_coll(db, BW_COLL_WORKERS), &filter, &opts,
                  reap_visit_worker, &found, error);
  *count = found.count;
  bson_destroy(&filter);
  bson_destroy(&opts);
  return rc;
}

static void reap_abandon(bw_db_t *db, const bw_config_t *cfg,
                         const bw_handout_t *h, const bson_t *student,
                         const char *reason, bw_reap_stats_t *stats) {
  bw_error_t error;
  bool failed;
  char hex[25];
  int rc = bw_job_abandon(db, cfg, h, student, reason, &failed, &error);

  bson_oid_to_string(&h->job_id, hex);
  if (rc == 0 && failed) {
    stats->failed++;
    bw_log_info("reaper: job %s failed: %s", hex, reason);
  } else if (rc == 0) {
    stats->requeued++;
    bw_log_info("reaper: job %s attempt %d re-queued: %s", hex, h->attempt,
                reason);
  } else if (rc == BW_EDUP) {
    /* The attempt already ended (its result won), but its active record is
     * still here: whoever decided died or timed out half-way.  Finish it. */
    if (bw_job_settle(db, cfg, h, student, &error) < 0)
      bw_log_warn("reaper: job %s: %s", hex, error.message);
  } else {
    bw_log_warn("reaper: job %s: %s", hex, error.message);
  }
}

typedef struct reap_pass {
  bw_db_t *db;
  const bw_config_t *cfg;
  bw_reap_stats_t *stats;
  bool overdue; /* visiting overdue hand-outs, not dead graders' */
} reap_pass_t;

/* A hand-out of a dead grader, or one held past its deadline. */
static void reap_visit_lost_handout(const bson_t *doc, void *ctx) {
  reap_pass_t *pass = ctx;
  bw_handout_t h;
  bson_t student;
  bson_iter_t it;
  char worker[25] = "?", reason[400];
  const char *refused;

  if (!bw_handout_from_bson(doc, &h, &student))
    return;
  if (bson_iter_init_find(&it, doc, "worker_id") && BSON_ITER_HOLDS_OID(&it))
    bson_oid_to_string(bson_iter_oid(&it), worker);
  refused = bw_db_get_utf8(doc, "refused", NULL);
  if (refused != NULL && pass->overdue)
    snprintf(reason, sizeof reason,
             "grader %s's result was refused (%s) and no valid result came "
             "within its stages' timeouts plus claim_grace",
             worker, refused);
  else if (refused != NULL)
    snprintf(reason, sizeof reason,
             "grader %s's result was refused (%s), then it stopped "
             "heartbeating",
             worker, refused);
  else if (pass->overdue)
    snprintf(reason, sizeof reason,
             "grader %s held it past its stages' timeouts plus claim_grace",
             worker);
  else
    snprintf(reason, sizeof reason, "grader %s stopped heartbeating", worker);
  reap_abandon(pass->db, pass->cfg, &h, &student, reason, pass->stats);
}

/* Hand-outs past their deadline (see queue.c): their grader is alive but
 * lost the job, or is stuck. */
static int reap_overdue(bw_db_t *db, const bw_config_t *cfg,
                        bw_reap_stats_t *stats, bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, lt;
  reap_pass_t pass = {db, cfg, stats, true};
  int rc;

  BSON_APPEND_DOCUMENT_BEGIN(&filter, "deadline", &lt);
  BSON_APPEND_DATE_TIME(&lt, "$lt", bw_db_now_ms());
  bson_append_document_end(&filter, &lt);
  rc = bw_db_each(bw_db_coll(db, BW_COLL_ACTIVE), &filter, NULL,
                  reap_visit_lost_handout, &pass, error);
  bson_destroy(&filter);
  return rc;
}

int bw_reap_dead(bw_db_t *db, const bw_config_t *cfg, bw_reap_stats_t *stats,
                 bw_error_t *error) {
  int64_t cutoff = bw_db_now_ms() - 2000LL * cfg->heartbeat;
  bson_t dead = BSON_INITIALIZER, filter = BSON_INITIALIZER, in;
  reap_pass_t pass = {db, cfg, stats, false};
  int n, rc;

  rc = reap_dead_workers(db, cutoff, &dead, &n, error);
  if (rc == 0 && n > 0) {
    stats->dead_workers += n;
    BSON_APPEND_DOCUMENT_BEGIN(&filter, "worker_id", &in);
    BSON_APPEND_ARRAY(&in, "$in", &dead);
    bson_append_document_end(&filter, &in);
    /* `active` is small: one record per job being graded. */
    rc = bw_db_each(bw_db_coll(db, BW_COLL_ACTIVE), &filter, NULL,
                    reap_visit_lost_handout, &pass, error);
  }
  bson_destroy(&filter);
  bson_destroy(&dead);
  return rc < 0 ? rc : reap_overdue(db, cfg, stats, error);
}

/* A sorted set of _id strings, for checking many claims against one scan
 * (on FerretDB each lookup by _id would scan a whole collection). */
typedef struct reap_set {
  char (*ids)[48];
  size_t n, cap;
} reap_set_t;

static void reap_visit_id(const bson_t *doc, void *ctx) {
  reap_set_t *set = ctx;
  bson_iter_t it;
  if (!bson_iter_init_find(&it, doc, "_id") || !BSON_ITER_HOLDS_UTF8(&it))
    return;
  if (set->n == set->cap) {
    set->cap = set->cap ? set->cap * 2 : 256;
    set->ids = bson_realloc(set->ids, set->cap * sizeof *set->ids);
  }
  bson_strncpy(set->ids[set->n++], bson_iter_utf8(&it, NULL), 48);
}

static int reap_id_cmp(const void *a, const void *b) {
  return strcmp(a, b);
}

static bool reap_set_has(const reap_set_t *set, const char *id) {
  return set->n > 0 &&
         bsearch(id, set->ids, set->n, sizeof *set->ids, reap_id_cmp) != NULL;
}

/* The hand-outs that were recorded: active now, or ended since `since`. */
static int reap_recorded(bw_db_t *db, int64_t since, reap_set_t *set,
                         bw_error_t *error) {
  bson_t all = BSON_INITIALIZER, recent = BSON_INITIALIZER, range,
         opts = BSON_INITIALIZER, proj;
  int rc;

  BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
  BSON_APPEND_INT32(&proj, "_id", 1);
  bson_append_document_end(&opts, &proj);
  BSON_APPEND_DOCUMENT_BEGIN(&recent, "at", &range);
  BSON_APPEND_DATE_TIME(&range, "$gte", since);
  bson_append_document_end(&recent, &range);
  rc = bw_db_each(bw_db_coll(db, BW_COLL_ACTIVE), &all, &opts, reap_visit_id,
                  set, error);
  if (rc == 0)
    rc = bw_db_each(bw_db_coll(db, BW_COLL_OUTCOMES), &recent, &opts,
                    reap_visit_id, set, error);
  if (set->n > 0)
    qsort(set->ids, set->n, sizeof *set->ids, reap_id_cmp);
  bson_destroy(&all);
  bson_destroy(&recent);
  bson_destroy(&opts);
  return rc;
}

typedef struct reap_claim_pass {
  reap_pass_t pass;
  reap_set_t recorded;
} reap_claim_pass_t;

/* A claim with neither an active record nor an outcome: the poller died
 * between claiming and recording, so no grader has the job. */
static void reap_visit_claim(const bson_t *claim, void *ctx) {
  reap_claim_pass_t *cp = ctx;
  bw_db_t *db = cp->pass.db;
  bson_t job, env;
  bson_iter_t it;
  bw_handout_t h;
  bool has_env;

  if (!bson_iter_init_find(&it, claim, "_id") || !BSON_ITER_HOLDS_UTF8(&it) ||
      !bw_handout_from_bson(claim, &h, NULL) ||
      reap_set_has(&cp->recorded, bson_iter_utf8(&it, NULL)))
    return;
  /* Claims do not carry the student's env; the job document does. */
  has_env =
      bw_db_find_by_oid(db, BW_COLL_JOBS, "_id", &h.job_id, &job, NULL) == 0 &&
      bw_db_get_doc(&job, "student", &env) && !bson_empty(&env);
  cp->pass.stats->repaired++;
  reap_abandon(db, cp->pass.cfg, &h, has_env ? &env : NULL,
               "its hand-out never reached a grader", cp->pass.stats);
  bson_destroy(&job);
}

/* Only claims between 1 and 3 grace periods old are looked at: each is
 * checked a few times, and the scans return few documents however many
 * claims there are.  Older misses are caught by run repair. */
static int reap_claims(bw_db_t *db, const bw_config_t *cfg,
                       bw_reap_stats_t *stats, bw_error_t *error) {
  int64_t now = bw_db_now_ms(), grace = cfg->claim_grace * 1000LL;
  bson_t filter = BSON_INITIALIZER, range;
  reap_claim_pass_t cp = {{db, cfg, stats, false}, {NULL, 0, 0}};
  int rc;

  /* An attempt ends after its claim, so outcomes since the window's start
   * cover every claim in it. */
  rc = reap_recorded(db, now - 3 * grace, &cp.recorded, error);
  BSON_APPEND_DOCUMENT_BEGIN(&filter, "at", &range);
  BSON_APPEND_DATE_TIME(&range, "$gte", now - 3 * grace);
  BSON_APPEND_DATE_TIME(&range, "$lt", now - grace);
  bson_append_document_end(&filter, &range);
  if (rc == 0)
    rc = bw_db_each(bw_db_coll(db, BW_COLL_CLAIMS), &filter, NULL,
                    reap_visit_claim, &cp, error);
  bson_free(cp.recorded.ids);
  bson_destroy(&filter);
  return rc;
}

typedef struct reap_runs {
  bson_oid_t *ids;
  size_t n, cap;
} reap_runs_t;

static void reap_visit_run(const bson_t *doc, void *ctx) {
  reap_runs_t *runs = ctx;
  bson_iter_t it;

  if (!bson_iter_init_find(&it, doc, "_id") || !BSON_ITER_HOLDS_OID(&it))
    return;
  if (runs->n == runs->cap) {
    runs->cap = runs->cap ? runs->cap * 2 : 16;
    runs->ids = bson_realloc(runs->ids, runs->cap * sizeof *runs->ids);
  }
  bson_oid_copy(bson_iter_oid(&it), &runs->ids[runs->n++]);
}

static int reap_runs(bw_db_t *db, const bw_config_t *cfg,
                     bw_reap_stats_t *stats, bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, in, list, opts = BSON_INITIALIZER, proj;
  reap_runs_t runs = {NULL, 0, 0};
  int rc;

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
  /* Collect first: repairing while the cursor is open would hold it across
   * many other queries. */
  rc = bw_db_each(bw_db_coll(db, BW_COLL_RUNS), &filter, &opts, reap_visit_run,
                  &runs, error);
  for (size_t i = 0; rc == 0 && i < runs.n; i++)
    rc = bw_run_repair(db, cfg, &runs.ids[i], &stats->repaired, error);
  bson_free(runs.ids);
  bson_destroy(&filter);
  bson_destroy(&opts);
  return rc;
}

/* Graders silent for cfg->forget_workers seconds are deleted, so the
 * workers collection (looked up on every grader call) stays small. */
static int reap_forget_workers(bw_db_t *db, const bw_config_t *cfg,
                               bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, lt;
  bson_error_t driver;
  int rc = 0;

  BSON_APPEND_DOCUMENT_BEGIN(&filter, "last_heartbeat", &lt);
  BSON_APPEND_DATE_TIME(&lt, "$lt",
                        bw_db_now_ms() - cfg->forget_workers * 1000LL);
  bson_append_document_end(&filter, &lt);
  if (!mongoc_collection_delete_many(bw_db_coll(db, BW_COLL_WORKERS), &filter,
                                     NULL, NULL, &driver))
    rc = bw_db_error(&driver, error);
  bson_destroy(&filter);
  return rc;
}

int bw_reap_repair(bw_db_t *db, const bw_config_t *cfg, bw_reap_stats_t *stats,
                   bw_error_t *error) {
  int rc = reap_claims(db, cfg, stats, error);
  if (rc == 0)
    rc = reap_runs(db, cfg, stats, error);
  if (rc == 0)
    rc = reap_forget_workers(db, cfg, error);
  return rc;
}

int bw_reap_once(bw_db_t *db, const bw_config_t *cfg, bw_reap_stats_t *stats,
                 bw_error_t *error) {
  int rc;
  memset(stats, 0, sizeof *stats);
  rc = bw_reap_dead(db, cfg, stats, error);
  return rc < 0 ? rc : bw_reap_repair(db, cfg, stats, error);
}
