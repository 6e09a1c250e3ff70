/* reap.h - what the reaper binary does on each tick.
 *
 * Declares dead every grader whose last heartbeat is older than 2 heartbeat
 * intervals (of database time: a --loop reaper does not count time the
 * database was away, see bw_reap_watch_t) and puts each job it held back in
 * the queue as a new attempt, or
 * fails the job once cfg->max_attempts hand-outs are used up.  Also re-queues
 * hand-outs whose poller died between claiming and recording them, and
 * finishes any run a crashed process left one step short (run repair lives
 * here, its only caller, built on run.h's reads and job.h's abandon).  Every
 * action is decided by a once-only insert, so any number of reapers may run
 * at once.  The end of the line db <- queue <- run <- job <- reap. */
#ifndef BW_REAP_H
#define BW_REAP_H

#include "config.h"
#include "db.h"
#include "error.h"

typedef struct bw_reap_stats {
  int dead_workers; /* graders found past their heartbeat deadline */
  int requeued;     /* jobs put back in the queue by this call */
  int failed;       /* jobs failed for running out of attempts */
  int repaired;     /* jobs re-queued by repair (each logged with its why) */
  int pruned;       /* results whose stage output retention removed */
  int lanes;        /* lanes opened for entries that had none (lane.h) */
  int deferred;     /* graders past their deadline but not declared dead: the
                       database has not been up for 2 intervals */
} bw_reap_stats_t;

/* What one reaper process saw of the database, so that time the database
 * was away does not count against graders: their heartbeats could not be
 * recorded then.  The database counts as up from the end of the first
 * prompt answer (within heartbeat/2) that follows a failure, a slow answer,
 * or a gap of more than every_ms + heartbeat/2 since the end of the last
 * good pass (the reaper itself was stopped, or restarted).  Set every_ms
 * and zero the rest before the first pass: a fresh reaper knows nothing,
 * so it waits 2 intervals before declaring anyone dead. */
typedef struct bw_reap_watch {
  int64_t every_ms; /* the caller's time between passes */
  int64_t up_since; /* ms; 0: not seen up yet */
  int64_t last_ok;  /* ms: the end of its last good pass or prompt answer */
  /* ms: the first heartbeat the API recorded at or after up_since; 0: none
   * seen yet.  The reaper's own connection may come back seconds before the
   * FastCGI workers' (theirs time out and reconnect; issue 11's stall test
   * saw 4 s under load), so graders are counted from when the API records
   * heartbeats again, not from when the reaper got an answer. */
  int64_t api_since;
} bw_reap_watch_t;

/* The end of one pass: `ok` when every call of it succeeded. */
void bw_reap_watch_pass(bw_reap_watch_t *watch, const bw_config_t *cfg,
                        bool ok);

/* Dead graders: re-queues (or fails) every job held by a grader whose last
 * heartbeat is older than 2 intervals, and every hand-out past its
 * deadline.  With `watch` (a --loop reaper), none until the API has
 * recorded heartbeats again for 2 intervals since the database came back
 * (or, when no grader heartbeats at all, until the database has been up for
 * 4 intervals); those are counted in stats->deferred.  Overdue hand-outs
 * wait only until the database has been up for claim_grace.  NULL (one
 * pass from cron, which cannot watch) trusts the heartbeats as they are.
 * Cheap: run it every few seconds.  Adds to *stats.  Returns 0 or BW_EDB. */
int bw_reap_dead(bw_db_t *db, const bw_config_t *cfg, bw_reap_watch_t *watch,
                 bw_reap_stats_t *stats, bw_error_t *error);

/* Repairs what a process killed mid-request can leave behind: claims older
 * than cfg->claim_grace whose hand-out was never recorded, waiting jobs with
 * no queue entry, and active runs one step short of their next phase; then
 * one bounded retention pass (retain.h).  Scans more: run it every
 * claim_grace/2 seconds.  Adds to *stats. */
int bw_reap_repair(bw_db_t *db, const bw_config_t *cfg, bw_reap_stats_t *stats,
                   bw_error_t *error);

/* Both, in that order: what one cron invocation does.  Zeroes *stats first. */
int bw_reap_once(bw_db_t *db, const bw_config_t *cfg, bw_reap_stats_t *stats,
                 bw_error_t *error);

#endif
