#include "beats.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "worker.h"

/* The longest a heartbeat waits to be written (a tenth of the interval at
 * most). */
#define BEATS_HOLD_MS 1000
/* How long a grader whose heartbeat this process wrote counts as known. */
#define BEATS_KNOWN_MS 60000
/* Graders known per process (a table; when full, heartbeats are written at
 * once) and heartbeats collected per batch. */
#define BEATS_TABLE 1024
#define BEATS_BATCH 256

typedef struct known {
  bson_oid_t worker;
  int64_t written_ms; /* 0: free */
} known_t;

static struct {
  const bw_config_t *cfg;
  bw_db_t *db;
  known_t *table;
  bson_oid_t batch[BEATS_BATCH];
  int n;
  int64_t due_ms; /* when the collected heartbeats must be written */
} beats;

static int64_t beats_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void bw_beats_start(const bw_config_t *cfg, bw_db_t *db) {
  beats.cfg = cfg;
  beats.db = db;
  beats.n = 0;
  beats.table = calloc(BEATS_TABLE, sizeof *beats.table);
}

/* The grader's entry, or a free one to take (NULL: the table is full). */
static known_t *beats_find(const bson_oid_t *worker) {
  uint32_t h = bson_oid_hash(worker);
  known_t *free_slot = NULL;

  for (int i = 0; beats.table != NULL && i < BEATS_TABLE; i++) {
    known_t *k = &beats.table[(h + (uint32_t)i) % BEATS_TABLE];
    if (k->written_ms != 0 && bson_oid_equal(&k->worker, worker))
      return k;
    if (k->written_ms == 0 && free_slot == NULL)
      free_slot = k;
    if (k->written_ms == 0)
      break; /* never deleted from: the first free slot ends the probe */
  }
  return free_slot;
}

static void beats_remember(const bson_oid_t *worker, int64_t now) {
  known_t *k = beats_find(worker);
  if (k != NULL) {
    bson_oid_copy(worker, &k->worker);
    k->written_ms = now;
  }
}

/* Writes every collected heartbeat; graders no longer registered are made
 * unknown (their entries keep their slot, with an expired time). */
static void beats_flush(void) {
  bw_error_t error;
  int64_t now = beats_now_ms();
  int rc;

  if (beats.n == 0)
    return;
  rc = bw_worker_heartbeat_many(beats.db, beats.batch, beats.n, &error);
  for (int i = 0; rc >= 0 && i < beats.n; i++) {
    char hex[25];
    known_t *k = beats_find(&beats.batch[i]);
    bson_oid_to_string(&beats.batch[i], hex);
    /* Some id is gone: learn which, one at a time (rare: a wiped DB). */
    bool known = rc == 1 || bw_worker_heartbeat(beats.db, hex, NULL) == 0;
    if (k != NULL && k->written_ms != 0)
      k->written_ms = known ? now : 1; /* 1: long expired */
  }
  if (rc < 0)
    bw_log_warn("heartbeats of %d graders not written: %s", beats.n,
                error.message);
  beats.n = 0;
}

int bw_beats_heartbeat(bw_request_t *req, const char *worker_id,
                       bw_error_t *error) {
  int64_t now = beats_now_ms();
  bson_oid_t worker;
  known_t *k;
  int rc;

  if (!bw_db_oid_parse(worker_id, &worker))
    return bw_error_set(error, BW_EINVAL, "worker_id: expected 24 hex digits");
  k = beats_find(&worker);
  if (k != NULL && k->written_ms != 0 &&
      now - k->written_ms < BEATS_KNOWN_MS && beats.n < BEATS_BATCH) {
    bool queued = false;
    for (int i = 0; i < beats.n && !queued; i++)
      queued = bson_oid_equal(&beats.batch[i], &worker);
    if (!queued) {
      int hold = beats.cfg->heartbeat * 100;
      if (beats.n == 0)
        beats.due_ms = now + (hold < BEATS_HOLD_MS ? hold : BEATS_HOLD_MS);
      bson_oid_copy(&worker, &beats.batch[beats.n++]);
    }
    bw_request_reply_success(req, NULL);
    return 0;
  }
  rc = bw_worker_heartbeat(beats.db, worker_id, error);
  if (rc < 0)
    return rc;
  beats_remember(&worker, now);
  bw_request_reply_success(req, NULL);
  return 0;
}

void bw_beats_stop(void) {
  beats_flush();
  free(beats.table);
  beats.table = NULL;
}

int bw_beats_timeout_ms(void) {
  int64_t left;
  if (beats.n == 0)
    return -1;
  left = beats.due_ms - beats_now_ms();
  return left > 0 ? (int)left : 0;
}

void bw_beats_tick(void) {
  if (beats.n > 0 && beats_now_ms() >= beats.due_ms)
    beats_flush();
}
