/* queue.h - where hand-outs are stored: the queue partitions, the claims and
 * the `active` records.  Storage only: which entry to take, what to send the
 * grader and what to do when a step fails is job.c's (bw_job_poll).
 *
 * A hand-out is one attempt at one job.  While it waits it is an entry in
 * one of the queue partitions (queue_00 .. queue_NN: the one of its run's
 * lane, lane.h), _id "<job>:<attempt>", carrying everything a grader needs
 * but the run's pipelines (job, run, type, attempt, the student's env), so
 * handing it out never reads the large jobs collection.
 *
 * A poll (job.c) picks the lane whose turn it is (fair share: courses, then
 * a course's runs, round-robin; lane.h), reads the first few entries of its
 * partition with an empty filter and a limit (on FerretDB the one read
 * whose cost does not grow with the collection), then claims one by
 * inserting claims/_id "<job>:<attempt>":
 * the insert that succeeds owns the hand-out, so no job goes to two graders
 * even where findAndModify is not atomic.  The winner then dequeues the
 * entry with findAndModify(remove) and records the hand-out in `active`
 * (small: one document per job being graded now).  The entry's removal is a
 * key lookup: a GIN index lookup on FerretDB's PostgreSQL backend, a scan of
 * the partition on its SQLite one.  A poller that dies between claim and
 * record leaves
 * a claim with no active record: the reaper re-queues it after
 * cfg->claim_grace seconds.
 *
 * Ownership: batches are bw_queue_batch_alloc()ed and _free()d by the
 * caller, pages bw_queue_page_cleanup()ed. */
#ifndef BW_QUEUE_H
#define BW_QUEUE_H

#include "db.h"

/* The API generation a job was made through, which decides the job's shape
 * and so which graders may take it (PROTOCOL-LATER.md §4.1): seed-era
 * graders (v0.1, Gen 2) and Gen 3 graders never take each other's jobs. */
enum bw_gen {
  BW_GEN_SEED = 0, /* v0.1 and Gen 2: "K=V" env lists, entry_point, ... */
  BW_GEN_3 = 3,    /* the 2019 API: env objects, entrypoint, ... */
};

/* Longest course id (PROTOCOL-LATER.md §2.4), without the NUL. */
#define BW_COURSE_MAX 63

/* What identifies a hand-out; stored in queue entries and active records. */
typedef struct bw_handout {
  bson_oid_t job_id;
  bson_oid_t run_id;
  char type[8];      /* "pre", "student" or "post" */
  int attempt;       /* 1-based */
  int student_count; /* the run's, for student jobs (finish tickets) */
  int index;         /* a student job's place in the roster (finish tickets) */
  int round;         /* 0, or the retry that queued it (run.c's marks) */
  int first_attempt; /* the attempt its round began with (0 or 1: the
                        first pass); max_attempts counts from there, so a
                        retried job gets its attempts again */
  int gen;           /* enum bw_gen of its run (stored only when not 0,
                        but always in waiting entries) */
  char course[BW_COURSE_MAX + 1]; /* its run's course; "" for seed-era runs
                                     (stored only when not empty) */
} bw_handout_t;

/* The _id of a queue entry, claim, active record or outcome:
 * "<24 hex>:<attempt>". */
void bw_queue_entry_id(const bson_oid_t *job_id, int attempt, char out[48]);

/* Reads a hand-out back from an entry or active document; false when the
 * document is not one.  `student`, when not NULL, is set to a view of the
 * student's env inside `doc` (valid while doc is), or left empty. */
bool bw_handout_from_bson(const bson_t *doc, bw_handout_t *h, bson_t *student);

/* Appends a hand-out's fields (not its _id) to doc; student may be NULL. */
void bw_handout_append(bson_t *doc, const bw_handout_t *h,
                       const bson_t *student);

/* Queuing many hand-outs at once: one unordered bulk insert per partition.
 * An entry that already exists is fine (a repeated push after a crash), and
 * so is one whose claim exists (pollers drop it): pushing is idempotent. */
typedef struct bw_queue_batch bw_queue_batch_t;
bw_queue_batch_t *bw_queue_batch_alloc(bw_db_t *db);
void bw_queue_batch_add(bw_queue_batch_t *batch, const bw_handout_t *h,
                        const bson_t *student);
/* Returns 0 or BW_EDB.  The batch may be freed afterwards, not reused. */
int bw_queue_batch_push(bw_queue_batch_t *batch, bw_error_t *error);
void bw_queue_batch_free(bw_queue_batch_t *batch);

/* One hand-out, no student env (pre/post jobs, and re-queues that carry the
 * env along). */
int bw_queue_push(bw_db_t *db, const bw_handout_t *h, const bson_t *student,
                  bw_error_t *error);

/* How many waiting entries one poll looks at in a partition.  Pollers pick
 * a random one of these, so graders polling at once mostly try different
 * entries. */
#define BW_QUEUE_PAGE 16

typedef struct bw_queue_page {
  bson_t docs[BW_QUEUE_PAGE];
  int n;
} bw_queue_page_t;

/* Reads the first BW_QUEUE_PAGE entries of one partition (taken modulo
 * their number) into page, which the caller cleans up on every path.
 * Returns 0 or BW_EDB. */
int bw_queue_read_page(bw_db_t *db, int partition, bw_queue_page_t *page,
                       bw_error_t *error);
/* The first BW_QUEUE_PAGE entries of one run in one partition: for a lane
 * whose partition it shares with other runs (lane.h).  A lookup by run_id:
 * indexed on MongoDB and on FerretDB's PostgreSQL backend. */
int bw_queue_read_run_page(bw_db_t *db, int partition, const bson_oid_t *run,
                           bw_queue_page_t *page, bw_error_t *error);
void bw_queue_page_cleanup(bw_queue_page_t *page);

/* The same, but only entries of generation `gen`: for a poll whose page was
 * all of the other generation (a large run of one queued before the other's
 * jobs).  An equality on `gen`, which waiting entries always carry (other
 * documents only when it is not 0); no index serves it, so PostgreSQL
 * scans the partition: only taken then, never on the usual path. */
int bw_queue_read_page_of_gen(bw_db_t *db, int partition, int gen,
                              bw_queue_page_t *page, bw_error_t *error);

/* The steps of one hand-out, `id` being its entry's _id and `partition`
 * the one its page was read from.  The claim is the
 * once-only decision: 0 for exactly one poller, BW_EDUP for the others (the
 * claim is permanent, so the entry can be dropped), BW_EDB.  The winner
 * dequeues (0 also when someone dropped the entry first, or BW_EDB) and
 * records the hand-out in `active` as held by worker until deadline (ms
 * since the epoch): what results and the reaper look up (0, also when it
 * was recorded already, or BW_EDB).  bw_queue_drop removes an entry whose
 * claim exists (0 or BW_EDB). */
int bw_queue_claim(bw_db_t *db, const char *id, const bw_handout_t *h,
                   const bson_oid_t *worker, bw_error_t *error);
int bw_queue_dequeue(bw_db_t *db, int partition, const char *id,
                     bw_error_t *error);
int bw_queue_record_active(bw_db_t *db, const char *id, const bw_handout_t *h,
                           const bson_t *student, const bson_oid_t *worker,
                           int64_t deadline, bw_error_t *error);
int bw_queue_drop(bw_db_t *db, int partition, const char *id,
                  bw_error_t *error);

/* Cancelling a run: every waiting entry of `run` is claimed (a claim
 * flagged "cancelled", which the reaper leaves alone) and dropped, so no
 * poller can take it; an entry a poller claimed first is being graded and
 * its result is still accepted.  Idempotent.  Returns 0 or BW_EDB. */
int bw_queue_cancel_run(bw_db_t *db, const bson_oid_t *run, bw_error_t *error);

/* The active record of the job's current hand-out, if any: returns 0 and
 * *out, BW_ENOTFOUND, or BW_EDB.  *out is initialised whatever the result
 * (as bw_db_find_one): the caller bson_destroy()s it on every path. */
int bw_queue_find_active(bw_db_t *db, const bson_oid_t *job_id, bson_t *out,
                         bw_error_t *error);

/* Deletes the active record "<job>:<attempt>" (the attempt ended). */
int bw_queue_end_active(bw_db_t *db, const bson_oid_t *job_id, int attempt,
                        bw_error_t *error);

/* The reaper's pass: opens a lane (lane.h) for each run that has entries at
 * the front of a partition but no lane (entries queued before lanes, or a
 * lost race), so they get their turn rather than wait for the queue to
 * empty.  *opened counts them.  0 or BW_EDB. */
int bw_queue_adopt_strays(bw_db_t *db, int *opened, bw_error_t *error);

/* ---- the Queue API (issue 14: queue length and position per course) --- */

/* Number of waiting hand-outs of `course` ("" : seed-era runs), 0 when
 * none.  A count per partition by course (indexed: queue.json's course_1;
 * course "" has no field, so its count scans).  0 or BW_EDB. */
int bw_queue_course_length(bw_db_t *db, const char *course, int64_t *n,
                           bw_error_t *error);

/* 0-based position of the job's waiting hand-out among its course's waiting
 * hand-outs, in the order the queue will hand them out as far as it can
 * tell.  Defined as: the course's runs take turns (lane.h), in the order a
 * poll tries them (their lanes' opening order; runs whose entries have no
 * lane after them, by id); a run's entries go out oldest first (queued_at,
 * then _id, which follows the roster).  So the k-th (0-based) entry of the
 * i-th run stands after min(w_j, k) entries of every run j (w_j waiting;
 * k of its own), plus one of each run before it with more than k waiting
 * (bw_lanes_rr_position).  Graders take any of a page's first 16 at random,
 * other courses' turns come in between, and a run posted later takes turns
 * too (a position can grow), so it is an estimate of the order, not a
 * promise.  Reads the course's waiting entries
 * (indexed by course) and the lanes.  BW_ENOTFOUND when the job has no
 * waiting hand-out or belongs to another course; BW_EDB. */
int bw_queue_position(bw_db_t *db, const char *course, const bson_oid_t *job,
                      int64_t *pos, bw_error_t *error);

/* bw_queue_position for n jobs of `course` at once, with one read of the
 * course's queue (the SSE streams of a course, fcgi/stream.c, after every
 * move): pos[i] is job i's position, -1 when it is not waiting.  0 or
 * BW_EDB. */
int bw_queue_positions(bw_db_t *db, const char *course, const bson_oid_t *jobs,
                       size_t n, int64_t *pos, bw_error_t *error);

#endif
