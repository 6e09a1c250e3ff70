/* reap.h - what the reaper binary does on each tick.
 *
 * Declares dead every grader whose last heartbeat is older than 2 heartbeat
 * intervals and puts each job it held back in the queue as a new attempt, or
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
  int repaired;     /* orphan claims and stuck runs moved on */
  int pruned;       /* results whose stage output retention removed */
} bw_reap_stats_t;

/* Dead graders: re-queues (or fails) every job held by a grader whose last
 * heartbeat is older than 2 intervals.  Cheap: run it every few seconds.
 * Adds to *stats.  Returns 0 or BW_EDB. */
int bw_reap_dead(bw_db_t *db, const bw_config_t *cfg, bw_reap_stats_t *stats,
                 bw_error_t *error);

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
