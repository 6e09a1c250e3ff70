/* qsignal.h - the queue's "something was queued" signal, for long polls.
 *
 * A waiting poll must learn that a job was queued, through this host or any
 * other, without reading the queue partitions over and over.  So every push
 * into the queue (queue.c) ends with bw_qsignal_bump(): one write that sets
 * signals/"queue".v to a fresh ObjectId.  A waiter's host reads that one
 * small document (bw_qsignal_read) and looks at the queue again only when
 * the value changed.  The push writes its entries before it bumps, so a
 * reader that sees the new value also sees the entries.
 *
 * A value is never reused, so a bump lost to FerretDB's unlocked update
 * (two writers at once) still changes the value from what any reader saw
 * before: no wake-up is missed.  A bump that fails is logged, not an error
 * of the push: the job is queued, and waiters look at the queue again on
 * their own at least every few seconds (fcgi/longpoll.c).
 *
 * A second signal, signals/"jobs", moves whenever a Gen 3 job (a course's
 * job: the only kind a client can stream, fcgi/stream.h) is handed out or
 * ends (job.c).  SSE streams look at their jobs again only when one of the
 * two moved; seed-era hand-outs and results do not bump it, so the seed
 * API pays nothing for it.  Both documents are read in one find (the
 * collection holds just these two), so a host with streams waiting reads
 * no more than one with long polls waiting.
 *
 * bw_qsignal_set_local_hook() lets the FastCGI worker hear of its own
 * bumps at once, without waiting for its next read. */
#ifndef BW_QSIGNAL_H
#define BW_QSIGNAL_H

/* Only db.h: queue.c (storage) includes this to bump on every push. */
#include "db.h"

/* Marks that something was queued.  Returns 0 or BW_EDB. */
int bw_qsignal_bump(bw_db_t *db, bw_error_t *error);

/* bw_qsignal_bump for a push that succeeded: a failure is logged as a
 * warning, not returned (the job is queued; waiters look again on their own
 * within seconds).  queue.c calls it after every push, so every way a job
 * gets queued (submission, re-queue by the reaper or an abandon, a staff
 * retry) wakes waiting graders; control.c calls it after a cancel. */
void bw_qsignal_notify(bw_db_t *db);

/* Which signal moved. */
enum bw_qsignal_kind {
  BW_QSIGNAL_QUEUE, /* something was queued (or a cancel dropped entries) */
  BW_QSIGNAL_JOBS,  /* a Gen 3 job was handed out or ended */
};

/* bw_qsignal_notify for the "jobs" signal: Gen 3 job `job` was handed out,
 * or its attempt ended.  The document also names the job (a hint: two
 * bumps at once may leave only one name, never a wrong value), so the
 * hosts of its streams look at that job at once.  Logged, not returned,
 * on failure (a stream then sees the change with the next one). */
void bw_qsignal_notify_jobs(bw_db_t *db, const bson_oid_t *job);

/* Both signals' current values (0 before the first bump ever), and the
 * job the "jobs" signal last named, in one read.  Returns 0 or BW_EDB. */
typedef struct bw_qsignal_values {
  uint64_t queue, jobs;
  bson_oid_t job;
  bool has_job;
} bw_qsignal_values_t;
int bw_qsignal_read(bw_db_t *db, bw_qsignal_values_t *values,
                    bw_error_t *error);

/* fn (or NULL) is called after every bump this process makes; `job` is
 * the moved job of a BW_QSIGNAL_JOBS bump, NULL for the queue's. */
typedef void (*bw_qsignal_hook_fn)(enum bw_qsignal_kind kind,
                                   const bson_oid_t *job);
void bw_qsignal_set_local_hook(bw_qsignal_hook_fn fn);

#endif
