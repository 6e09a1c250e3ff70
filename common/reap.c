#include "reap.h"

#include <stdio.h>
#include <string.h>

#include "control.h"
#include "job.h"
#include "json.h"
#include "log.h"
#include "queue.h"
#include "retain.h"
#include "run.h"
#include "worker.h"

typedef struct reap_candidate {
  bson_oid_t id;
  int64_t stored; /* its document's last_heartbeat */
} reap_candidate_t;

typedef struct reap_candidates {
  reap_candidate_t *items;
  size_t n, cap;
} reap_candidates_t;

static void reap_visit_worker(const bson_t *doc, void *ctx) {
  reap_candidates_t *c = ctx;
  bson_iter_t it;
  reap_candidate_t item = {.stored = 0};

  if (!bw_db_get_oid(doc, "_id", &item.id))
    return;
  if (bson_iter_init_find(&it, doc, "last_heartbeat") &&
      BSON_ITER_HOLDS_DATE_TIME(&it))
    item.stored = bson_iter_date_time(&it);
  if (c->n == c->cap) {
    c->cap = c->cap ? 2 * c->cap : 64;
    c->items = bson_realloc(c->items, c->cap * sizeof *c->items);
  }
  c->items[c->n++] = item;
}

/* Collects into `ids` (a BSON array) the graders past their heartbeat
 * deadline: no heartbeat since `cutoff` in their document (which lags,
 * worker.h) nor in `beats`; and of those, counts in *waiting the ones a
 * host may still hold an unreported heartbeat of (bw_worker_beats_settled:
 * not declared dead yet). */
static int reap_dead_workers(bw_db_t *db, const bw_config_t *cfg,
                             int64_t cutoff, bson_t *ids, int *count,
                             int *waiting, bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, lt, opts = BSON_INITIALIZER, proj;
  reap_candidates_t c = {NULL, 0, 0};
  bw_worker_beats_t beats;
  int64_t now;
  int rc;

  *count = *waiting = 0;
  memset(&beats, 0, sizeof beats);
  BSON_APPEND_DOCUMENT_BEGIN(&filter, "last_heartbeat", &lt);
  BSON_APPEND_DATE_TIME(&lt, "$lt", cutoff);
  bson_append_document_end(&filter, &lt);
  BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
  BSON_APPEND_INT32(&proj, "_id", 1);
  BSON_APPEND_INT32(&proj, "last_heartbeat", 1);
  bson_append_document_end(&opts, &proj);
  rc = bw_db_each(bw_db_coll(db, BW_COLL_WORKERS), &filter, &opts,
                  reap_visit_worker, &c, error);
  /* Read after the documents: what the hosts wrote meanwhile only adds. */
  if (rc == 0 && c.n > 0)
    rc = bw_worker_beats_load(
        db, bw_worker_beats_window(cfg, cutoff + 2000LL * cfg->heartbeat),
        &beats, error);
  now = bw_db_now_ms();
  for (size_t i = 0; rc == 0 && i < c.n; i++) {
    int64_t last =
        bw_worker_last_beat(&beats, &c.items[i].id, c.items[i].stored);
    const char *key;
    char buf[16];
    if (last >= cutoff)
      continue;
    if (!bw_worker_beats_settled(&beats, cfg, last + 2000LL * cfg->heartbeat,
                                 now)) {
      (*waiting)++;
      continue;
    }
    bson_uint32_to_string((uint32_t)(*count)++, &key, buf, sizeof buf);
    BSON_APPEND_OID(ids, key, &c.items[i].id);
  }
  bw_worker_beats_cleanup(&beats);
  bson_free(c.items);
  bson_destroy(&filter);
  bson_destroy(&opts);
  return rc;
}

/* Ends attempt h->attempt for `reason`.  Returns 0 when this call decided
 * it (re-queued or failed), 1 when it had already ended, or an error. */
static int reap_abandon(bw_db_t *db, const bw_config_t *cfg,
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
    return 1;
  } else {
    bw_log_warn("reaper: job %s: %s", hex, error.message);
  }
  return rc;
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

/* Hand-outs past their deadline (job.c, job_deadline): their grader is alive but
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

/* Records one answer (or failure) of the database, from start to end. */
static void reap_watch_down(bw_reap_watch_t *w, const bw_config_t *cfg) {
  if (w->up_since != 0)
    bw_log_warn("reaper: the database is not answering: no grader is "
                "declared dead until it has answered for %d s",
                2 * cfg->heartbeat);
  w->up_since = 0;
}

static void reap_watch_saw(bw_reap_watch_t *w, const bw_config_t *cfg,
                           int64_t start, int64_t end, bool ok) {
  int64_t half = cfg->heartbeat * 500LL;

  if (!ok) {
    reap_watch_down(w, cfg);
    return;
  }
  if (w->up_since == 0 || end - start > half ||
      start - w->last_ok > w->every_ms + half) {
    if (w->up_since != 0)
      bw_log_warn("reaper: the database was away or slow (%lld ms to answer, "
                  "%lld ms since the last good pass): its graders get %d s",
                  (long long)(end - start), (long long)(start - w->last_ok),
                  2 * cfg->heartbeat);
    w->up_since = end;
    w->api_since = 0;
  }
  w->last_ok = end;
}

/* The first heartbeat recorded at or after `since` (ms) into *at, or 0 when
 * there is none yet: a registration or a direct heartbeat in `workers`
 * (small: one row per grader), or a write of an API host's heartbeats in
 * `beats` (worker.h; any write, even an empty one, shows that host reaches
 * the database again). */
static int reap_first_heartbeat_since(bw_db_t *db, int64_t since, int64_t *at,
                                      bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, gte, opts = BSON_INITIALIZER, sort, doc;
  bw_worker_beats_t beats;
  bson_iter_t it;
  int rc;

  memset(&beats, 0, sizeof beats);
  BSON_APPEND_DOCUMENT_BEGIN(&filter, "last_heartbeat", &gte);
  BSON_APPEND_DATE_TIME(&gte, "$gte", since);
  bson_append_document_end(&filter, &gte);
  BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
  BSON_APPEND_INT32(&sort, "last_heartbeat", 1);
  bson_append_document_end(&opts, &sort);
  rc = bw_db_find_one(db, BW_COLL_WORKERS, &filter, &opts, &doc, error);
  *at = rc == 0 && bson_iter_init_find(&it, &doc, "last_heartbeat") &&
                BSON_ITER_HOLDS_DATE_TIME(&it)
            ? bson_iter_date_time(&it)
            : 0;
  bson_destroy(&doc);
  bson_destroy(&filter);
  bson_destroy(&opts);
  if (rc == BW_ENOTFOUND)
    rc = 0;
  if (rc == 0)
    rc = bw_worker_beats_load(db, since, &beats, error);
  if (rc == 0 && beats.first_at != 0 && (*at == 0 || beats.first_at < *at))
    *at = beats.first_at;
  bw_worker_beats_cleanup(&beats);
  return rc;
}

/* Whether silent graders may only have been unable to reach the database:
 * the API has not yet recorded heartbeats for 2 intervals since it came
 * back.  With no heartbeat at all since then (every grader died, or the
 * API is still cut off), 4 intervals of the reaper's own view decide. */
static int reap_watch_defers(bw_db_t *db, const bw_config_t *cfg,
                             bw_reap_watch_t *w, int64_t now, bool *defer,
                             bw_error_t *error) {
  int64_t grace = 2000LL * cfg->heartbeat;
  int rc = 0;

  *defer = now - w->up_since < grace;
  if (*defer)
    return 0;
  if (w->api_since == 0)
    rc = reap_first_heartbeat_since(db, w->up_since, &w->api_since, error);
  if (rc < 0)
    return rc;
  *defer = w->api_since != 0 ? now - w->api_since < grace
                             : now - w->up_since < 2 * grace;
  return 0;
}

void bw_reap_watch_pass(bw_reap_watch_t *watch, const bw_config_t *cfg,
                        bool ok) {
  /* The rest of the pass (repair) counts as one more answer, timed from
   * the dead-grader check's: a stall that a repair call sat through (its
   * calls may wait up to reaper_timeout_ms) must not pass for a prompt
   * database by moving last_ok over it. */
  if (!ok)
    reap_watch_down(watch, cfg);
  else if (watch->up_since != 0)
    reap_watch_saw(watch, cfg, watch->last_ok, bw_db_now_ms(), true);
}

int bw_reap_dead(bw_db_t *db, const bw_config_t *cfg, bw_reap_watch_t *watch,
                 bw_reap_stats_t *stats, bw_error_t *error) {
  int64_t start = bw_db_now_ms(), cutoff = start - 2000LL * cfg->heartbeat;
  bson_t dead = BSON_INITIALIZER, filter = BSON_INITIALIZER, in;
  reap_pass_t pass = {db, cfg, stats, false};
  int n, unsettled, rc;

  rc = reap_dead_workers(db, cfg, cutoff, &dead, &n, &unsettled, error);
  stats->deferred += unsettled;
  if (watch != NULL) {
    int64_t end = bw_db_now_ms();
    bool defer = false;
    reap_watch_saw(watch, cfg, start, end, rc == 0);
    if (rc == 0)
      rc = reap_watch_defers(db, cfg, watch, end, &defer, error);
    if (rc == 0 && defer) {
      stats->deferred += n;
      bson_destroy(&dead);
      /* Overdue hand-outs do not hang on heartbeats: a grader that finished
       * while the database was away delivers its result within claim_grace
       * of its return (the deadline's own slack), so only that long is
       * waited for, not the 2-4 intervals the heartbeats need. */
      return end - watch->up_since < 1000LL * cfg->claim_grace
                 ? 0
                 : reap_overdue(db, cfg, stats, error);
    }
  }
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
  bson_t all = BSON_INITIALIZER, opts = BSON_INITIALIZER, proj;
  int rc;

  BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
  BSON_APPEND_INT32(&proj, "_id", 1);
  bson_append_document_end(&opts, &proj);
  rc = bw_db_each(bw_db_coll(db, BW_COLL_ACTIVE), &all, &opts, reap_visit_id,
                  set, error);
  /* to: a little ahead, for outcomes stamped by a clock slightly ahead. */
  if (rc == 0)
    rc = bw_db_each_between(bw_db_coll(db, BW_COLL_OUTCOMES), since,
                            bw_db_now_ms() + BW_DB_MINUTE_MS, &opts,
                            reap_visit_id, set, error);
  if (set->n > 0)
    qsort(set->ids, set->n, sizeof *set->ids, reap_id_cmp);
  bson_destroy(&all);
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

  if (bson_iter_init_find(&it, claim, "cancelled") ||
      !bson_iter_init_find(&it, claim, "_id") || !BSON_ITER_HOLDS_UTF8(&it) ||
      !bw_handout_from_bson(claim, &h, NULL) ||
      reap_set_has(&cp->recorded, bson_iter_utf8(&it, NULL)))
    return;
  /* Claims do not carry the student's env; the job document does. */
  has_env =
      bw_db_find_by_oid(db, BW_COLL_JOBS, "_id", &h.job_id, &job, NULL) == 0 &&
      bw_db_get_doc(&job, "student", &env) && !bson_empty(&env);
  /* A repair, not a grader's job taken: counted only when this pass ended
   * the attempt (and as failed if that used up its attempts). */
  bw_reap_stats_t mine = {0};
  if (reap_abandon(db, cp->pass.cfg, &h, has_env ? &env : NULL,
                   "repair: its claim is over claim_grace old and its "
                   "hand-out was never recorded (the poller died)",
                   &mine) == 0)
    cp->pass.stats->repaired++;
  cp->pass.stats->failed += mine.failed;
  bson_destroy(&job);
}

/* Only claims between 1 and 3 grace periods old are looked at: each is
 * checked a few times, and the scans return few documents however many
 * claims there are.  Older misses are caught by run repair. */
static int reap_claims(bw_db_t *db, const bw_config_t *cfg,
                       bw_reap_stats_t *stats, bw_error_t *error) {
  int64_t now = bw_db_now_ms(), grace = cfg->claim_grace * 1000LL;
  reap_claim_pass_t cp = {{db, cfg, stats, false}, {NULL, 0, 0}};
  int rc;

  /* An attempt ends after its claim, so outcomes since the window's start
   * cover every claim in it. */
  rc = reap_recorded(db, now - 3 * grace, &cp.recorded, error);
  if (rc == 0)
    rc = bw_db_each_between(bw_db_coll(db, BW_COLL_CLAIMS), now - 3 * grace,
                            now - grace, NULL, reap_visit_claim, &cp, error);
  bson_free(cp.recorded.ids);
  return rc;
}

/* ---- run repair --------------------------------------------------- */

/* What became of a job's next attempt, as far as its claim tells. */
enum reap_claim { REAP_UNCLAIMED, REAP_CLAIMED, REAP_ORPHANED };

/* REAP_ORPHANED: claimed over claim_grace ago yet (the caller knows) never
 * recorded, so the poller died in between.  On a database error, say
 * "claimed": repair must never double-queue. */
static enum reap_claim reap_claim_of(bw_db_t *db, const bw_config_t *cfg,
                                     const bson_oid_t *job, int attempt) {
  bson_t found;
  bson_iter_t it;
  char id[48];
  enum reap_claim state = REAP_CLAIMED;
  int rc;

  bw_queue_entry_id(job, attempt, id);
  rc = bw_db_find_by_id(db, BW_COLL_CLAIMS, id, &found, NULL);
  if (rc == BW_ENOTFOUND)
    state = REAP_UNCLAIMED;
  else if (rc == 0 && bson_iter_init_find(&it, &found, "at") &&
           BSON_ITER_HOLDS_DATE_TIME(&it) &&
           bson_iter_date_time(&it) <
               bw_db_now_ms() - cfg->claim_grace * 1000LL)
    state = REAP_ORPHANED;
  bson_destroy(&found);
  return state;
}

/* The student env of a job as a BSON view into `holder` (or NULL). */
static const bson_t *reap_job_env(const bw_run_job_t *j, bson_t *holder,
                                  bson_t *env) {
  if (j->student == NULL)
    return NULL;
  bw_json_append_bson(holder, "s", j->student);
  return bw_db_get_doc(holder, "s", env) ? env : NULL;
}

/* Re-queues one job that nothing will hand out: not final, not being
 * graded, and either never queued for its next attempt (no entry waiting,
 * no claim) or claimed long ago by a poller that died before recording the
 * hand-out.  The reaper's claim check catches the latter within minutes;
 * this catches the claims it never saw (the reaper was down longer than its
 * window).  A job never handed out is only looked at once its phase began
 * over claim_grace ago (`phase_age_ms`): the process that entered the phase
 * queues its jobs after writing the run's state, and a large run takes a
 * while (issue 11: 375 "repairs" of a 10,000-student run still being
 * queued, pushing entries its starter was about to push). */
static int reap_repair_job(bw_db_t *db, const bw_config_t *cfg,
                           const bson_oid_t *run, bw_run_job_t *j,
                           const bson_t *run_doc, int64_t phase_age_ms,
                           int *repaired, bw_error_t *error) {
  bw_handout_t h = {.attempt = j->attempts + 1,
                    .round = (int)bw_db_get_int(run_doc, "round")};
  bson_t holder = BSON_INITIALIZER, env;
  const bson_t *student;
  enum reap_claim claim;
  const char *why;
  char hex[25];
  bool failed;
  int rc;

  if (j->final || j->active)
    return 0;
  claim = reap_claim_of(db, cfg, &j->id, h.attempt);
  if (claim == REAP_CLAIMED || (claim == REAP_UNCLAIMED && j->waiting) ||
      (claim == REAP_UNCLAIMED && j->attempts == 0 &&
       phase_age_ms < cfg->claim_grace * 1000LL))
    return 0;
  bson_oid_copy(&j->id, &h.job_id);
  bson_oid_copy(run, &h.run_id);
  bson_strncpy(h.type, j->type, sizeof h.type);
  bw_run_handout_origin(run_doc, &h);
  /* A retried job counts among its retry's jobs (run.h). */
  h.student_count = (int)bw_db_get_int(
      run_doc, j->retry_index >= 0 ? "retry_count" : "student_count");
  h.index = j->retry_index >= 0 ? j->retry_index : j->index;
  /* Its round's first attempt: a retried student job's, or a retry
   * round's post job's (attempts count from there, job.h). */
  h.first_attempt = j->retry_index >= 0 ? j->retry_attempt
                    : h.round > 0 && strcmp(j->type, "post") == 0
                        ? (int)bw_db_get_int(run_doc, "post_attempt")
                        : 1;
  student = reap_job_env(j, &holder, &env);
  if (claim == REAP_ORPHANED) {
    why = "its claim is over claim_grace old and its hand-out was never "
          "recorded (the poller died; the claim check never saw it)";
    rc = bw_job_abandon(db, cfg, &h, student, why, &failed, error);
    if (rc == BW_EDUP) /* the reaper's claim check got there first */
      rc = 1;
  } else {
    why = h.attempt == 1
              ? "never queued, its phase began over claim_grace ago (the "
                "process entering the phase died)"
              : "its previous attempt ended but this one was never queued "
                "(the process that ended it died)";
    rc = bw_queue_push(db, &h, student, error);
  }
  bson_destroy(&holder);
  if (rc == 0) {
    (*repaired)++;
    bson_oid_to_string(&j->id, hex);
    bw_log_info("reaper: repair: job %s attempt %d queued: %s", hex, h.attempt,
                why);
  }
  return rc < 0 ? rc : 0;
}

/* The job of `type` (pre or post) final: re-apply its end to the run. */
static int reap_repair_phase_end(bw_db_t *db, const bw_config_t *cfg,
                                 const bson_oid_t *run, const bw_run_job_t *j,
                                 int round) {
  bw_handout_t h = {.attempt = j->attempts, .round = round};
  bson_oid_copy(&j->id, &h.job_id);
  bson_oid_copy(run, &h.run_id);
  bson_strncpy(h.type, j->type, sizeof h.type);
  return bw_run_job_finished(db, cfg, &h, j->final == 1, NULL);
}

/* How long ago the run entered its phase `state`: the age of the mark
 * that decided it ("start", "students" after a pre job, "post"); 0 when
 * there is none (not an active phase). */
static int reap_phase_age(bw_db_t *db, const bson_oid_t *run, int round,
                          const char *state, bool has_pre, int64_t *age_ms,
                          bw_error_t *error) {
  /* A retry's round (control.h) begins its students phase at its retry
   * mark. */
  const char *what = strcmp(state, "post_processing") == 0 ? "post"
                     : strcmp(state, "students") != 0      ? "start"
                     : round > 0                           ? "retry"
                     : has_pre                             ? "students"
                                                           : "start";
  bson_t mark;
  bson_iter_t it;
  char id[128];
  int rc;

  *age_ms = 0;
  bw_run_mark_id(run, strcmp(what, "start") == 0 ? 0 : round, what, id);
  rc = bw_db_find_by_id(db, BW_COLL_MARKS, id, &mark, error);
  if (rc == 0 && bson_iter_init_find(&it, &mark, "at") &&
      BSON_ITER_HOLDS_DATE_TIME(&it))
    *age_ms = bw_db_now_ms() - bson_iter_date_time(&it);
  bson_destroy(&mark);
  return rc == BW_ENOTFOUND ? 0 : rc;
}

/* Re-drives an active run (after crashes): re-queues jobs of its current
 * phase that are neither final, nor waiting, nor being graded, nor claimed;
 * and moves the run on when its phase's jobs are all final but it did not
 * advance.  Every step is idempotent or guarded by a once-only mark.  Adds
 * the number of fixes to *repaired.  Returns 0 or BW_EDB. */
static int reap_run(bw_db_t *db, const bw_config_t *cfg, const bson_oid_t *run,
                    int *repaired, bw_error_t *error) {
  bson_t doc;
  bson_oid_t pre;
  bw_run_jobs_t t;
  char phase_type[8];
  const char *state;
  int64_t phase_age_ms;
  int rc, round, final = 0, phase_jobs = 0;

  rc = bw_run_find(db, run, false, &doc, error);
  if (rc < 0) {
    bson_destroy(&doc);
    return rc == BW_ENOTFOUND ? 0 : rc;
  }
  state = bw_db_get_utf8(&doc, "state", "created");
  round = (int)bw_db_get_int(&doc, "round");
  /* Cancelled, but its canceller died before the state was written: the
   * cancel's steps (idempotent) instead of any repair of its phase. */
  rc = bw_control_finish_cancel(db, run, round, error);
  if (rc != 0) {
    char hex[25];
    bson_oid_to_string(run, hex);
    if (rc > 0) {
      (*repaired)++;
      bw_log_info("reaper: repair: run %s: cancelled, but its canceller "
                  "stopped half-way: cancel finished",
                  hex);
    }
    bson_destroy(&doc);
    return rc < 0 ? rc : 0;
  }
  rc = reap_phase_age(db, run, round, state,
                      bw_db_get_oid(&doc, "pre_job_id", &pre), &phase_age_ms,
                      error);
  if (rc < 0) {
    bson_destroy(&doc);
    return rc;
  }
  bson_strncpy(phase_type,
               strcmp(state, "pre_processing") == 0    ? "pre"
               : strcmp(state, "post_processing") == 0 ? "post"
               : strcmp(state, "students") == 0        ? "student"
                                                       : "",
               sizeof phase_type);
  if (phase_type[0] == '\0') {
    bson_destroy(&doc);
    return 0;
  }

  rc = bw_run_jobs_load(db, run, true, &t, error);
  for (size_t i = 0; rc == 0 && i < t.n; i++) {
    bw_run_job_t *j = &t.jobs[i];
    if (strcmp(j->type, phase_type) != 0)
      continue;
    phase_jobs++;
    final += j->final != 0;
    rc = reap_repair_job(db, cfg, run, j, &doc, phase_age_ms, repaired,
                         error);
    if (rc == 0 && j->final && strcmp(phase_type, "student") != 0)
      rc = reap_repair_phase_end(db, cfg, run, j, round);
  }
  /* Every student job is final but the run did not move on: the last
   * finisher died between its steps.  The marks keep this once-only. */
  if (rc == 0 && strcmp(phase_type, "student") == 0 && phase_jobs > 0 &&
      final == phase_jobs)
    rc = bw_run_after_students(db, cfg, run, true, error);
  bw_run_jobs_cleanup(&t);
  bson_destroy(&doc);
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
  /* One equality read per active state, not one `$in`: FerretDB pushes
   * equality down to an index and evaluates `$in` over every run stored. */
  static const char *const active[] = {"pre_processing", "students",
                                       "post_processing"};
  bson_t opts = BSON_INITIALIZER, proj;
  reap_runs_t runs = {NULL, 0, 0};
  int rc = 0;

  BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
  BSON_APPEND_INT32(&proj, "_id", 1);
  bson_append_document_end(&opts, &proj);
  /* Collect first: repairing while the cursor is open would hold it across
   * many other queries. */
  for (size_t s = 0; rc == 0 && s < sizeof active / sizeof *active; s++) {
    bson_t filter = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&filter, "state", active[s]);
    rc = bw_db_each(bw_db_coll(db, BW_COLL_RUNS), &filter, &opts,
                    reap_visit_run, &runs, error);
    bson_destroy(&filter);
  }
  for (size_t i = 0; rc == 0 && i < runs.n; i++)
    rc = reap_run(db, cfg, &runs.ids[i], &stats->repaired, error);
  bson_free(runs.ids);
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
  if (rc == 0)
    rc = bw_worker_beats_prune(db, cfg, error);
  if (rc == 0)
    rc = bw_retain_pass(db, cfg, &stats->pruned, error);
  if (rc == 0)
    rc = bw_queue_adopt_strays(db, &stats->lanes, error);
  return rc;
}

int bw_reap_once(bw_db_t *db, const bw_config_t *cfg, bw_reap_stats_t *stats,
                 bw_error_t *error) {
  int rc;
  memset(stats, 0, sizeof *stats);
  rc = bw_reap_dead(db, cfg, NULL, stats, error);
  return rc < 0 ? rc : bw_reap_repair(db, cfg, stats, error);
}
