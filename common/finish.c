#include "finish.h"

#include <stdio.h>
#include <string.h>

/* Runs whose last tickets one process remembers (see finish_tickets). */
#define FINISH_TICKETS 128

/* The last ticket this process took per run and series: a better start than
 * the shared hint, which concurrent writers (FerretDB's unlocked updates)
 * can set back. */
static struct {
  bson_oid_t run;
  char series[16];
  int64_t ticket;
} finish_tickets[FINISH_TICKETS];
static int finish_tickets_next;

static int finish_ticket_slot(const bson_oid_t *run, const char *series) {
  for (int i = 0; i < FINISH_TICKETS; i++)
    if (bson_oid_equal(&finish_tickets[i].run, run) &&
        strcmp(finish_tickets[i].series, series) == 0)
      return i;
  return -1;
}

static int64_t finish_last_ticket(const bson_oid_t *run, const char *series) {
  int slot = finish_ticket_slot(run, series);
  return slot < 0 ? -1 : finish_tickets[slot].ticket;
}

static void finish_remember_ticket(const bson_oid_t *run, const char *series,
                                   int64_t ticket) {
  int slot = finish_ticket_slot(run, series);
  if (slot < 0) {
    slot = finish_tickets_next++ % FINISH_TICKETS;
    bson_oid_copy(run, &finish_tickets[slot].run);
    bson_strncpy(finish_tickets[slot].series, series,
                 sizeof finish_tickets[slot].series);
  }
  finish_tickets[slot].ticket = ticket;
}

/* Where a taker of `series` starts: the later of the shared hint and this
 * process's own last ticket + 1. */
static int64_t finish_ticket_start(bw_db_t *db, const bson_oid_t *run,
                                   const char *series) {
  bson_t filter = BSON_INITIALIZER, hint;
  int64_t n = finish_last_ticket(run, series) + 1;

  BSON_APPEND_OID(&filter, "_id", run);
  if (bw_db_find_one(db, BW_COLL_COUNTERS, &filter, NULL, &hint, NULL) == 0 &&
      bw_db_get_int(&hint, series) > n)
    n = bw_db_get_int(&hint, series);
  bson_destroy(&hint);
  bson_destroy(&filter);
  return n;
}

/* Moves the hint of `series` to `next`.  A lost or out-of-order write only
 * costs a later taker a retry. */
static void finish_ticket_hint(bw_db_t *db, const bson_oid_t *run,
                               const char *series, int64_t next) {
  bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set,
         opts = BSON_INITIALIZER;
  bson_error_t driver;

  BSON_APPEND_OID(&filter, "_id", run);
  BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
  BSON_APPEND_INT64(&set, series, next);
  bson_append_document_end(&update, &set);
  BSON_APPEND_BOOL(&opts, "upsert", true);
  mongoc_collection_update_one(bw_db_coll(db, BW_COLL_COUNTERS), &filter,
                               &update, &opts, NULL, &driver);
  bson_destroy(&filter);
  bson_destroy(&update);
  bson_destroy(&opts);
}

/* Takes the first free ticket of `series` for `job`: *ticket is its number. */
static int finish_take_ticket(bw_db_t *db, const bson_oid_t *run,
                              const char *series, const bson_oid_t *job,
                              int64_t *ticket, bw_error_t *error) {
  char hex[25];
  int64_t n = finish_ticket_start(db, run, series);
  int rc;

  bson_oid_to_string(run, hex);
  for (;; n++) {
    bson_t doc = BSON_INITIALIZER;
    char tid[80];
    snprintf(tid, sizeof tid, "%s:fin:%s:%lld", hex, series, (long long)n);
    BSON_APPEND_UTF8(&doc, "_id", tid);
    BSON_APPEND_OID(&doc, "run_id", run);
    BSON_APPEND_OID(&doc, "job_id", job);
    rc = bw_db_insert_once(db, BW_COLL_MARKS, &doc, error);
    bson_destroy(&doc);
    if (rc != BW_EDUP)
      break;
  }
  if (rc == 0) {
    *ticket = n;
    finish_remember_ticket(run, series, n);
    finish_ticket_hint(db, run, series, n + 1);
  }
  return rc;
}

bw_finish_plan_t bw_finish_plan(int count, int index) {
  bw_finish_plan_t plan = {.bucket = index % BW_FINISH_BUCKETS};
  plan.bucket_size =
      count / BW_FINISH_BUCKETS + (plan.bucket < count % BW_FINISH_BUCKETS);
  plan.buckets = count < BW_FINISH_BUCKETS ? count : BW_FINISH_BUCKETS;
  return plan;
}

int bw_finish_count(bw_db_t *db, const bson_oid_t *run, const bson_oid_t *job,
                    int index, int count, bool *last, bw_error_t *error) {
  return bw_finish_count_round(db, run, job, 0, index, count, last, error);
}

int bw_finish_count_round(bw_db_t *db, const bson_oid_t *run,
                          const bson_oid_t *job, int round, int index,
                          int count, bool *last, bw_error_t *error) {
  bw_finish_plan_t plan;
  int64_t ticket;
  char series[16], all[16] = "all", prefix[8] = "";
  int rc;

  *last = false;
  if (index < 0 || index >= count)
    return bw_error_set(error, BW_EINTERNAL,
                        "student job of index %d in a run of %d", index, count);
  plan = bw_finish_plan(count, index);
  if (round > 0)
    snprintf(prefix, sizeof prefix, "r%d", round % 100000);
  snprintf(series, sizeof series, "%sb%d", prefix, plan.bucket);
  snprintf(all, sizeof all, "%sall", prefix);
  rc = finish_take_ticket(db, run, series, job, &ticket, error);
  if (rc < 0 || ticket != plan.bucket_size - 1)
    return rc;
  rc = finish_take_ticket(db, run, all, job, &ticket, error);
  *last = rc == 0 && ticket == plan.buckets - 1;
  return rc;
}
