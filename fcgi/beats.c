#include "beats.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "worker.h"

/* Graders one host keeps.  A slot is reused once its grader has been quiet
 * (and written) for a refresh period; with all taken, heartbeats go to the
 * database one by one as before. */
#define BEATS_SLOTS 4096
/* workers.last_heartbeat updates per write, at most: a pool restarted under
 * 200 graders catches up in a few writes without one long stall. */
#define BEATS_STORES 32

typedef struct beats_slot {
  bool used;
  bson_oid_t worker;
  int64_t verified_ms; /* the database said "registered" then; 0: never */
  int64_t used_ms;     /* the cache last answered for it then */
  int64_t beat_ms;     /* its last heartbeat here; 0: none */
  int64_t flushed_ms;  /* the latest of them written to `beats` */
  int64_t stored_ms;   /* the latest moved into workers.last_heartbeat */
} beats_slot_t;

typedef struct beats_shared {
  pthread_mutex_t lock; /* robust, process-shared: guards slots[] */
  bson_oid_t pool;      /* names this pool's writes */
  _Atomic int64_t next_write_ms;
  _Atomic int64_t last_beat_ms;  /* the latest heartbeat answered here */
  _Atomic int64_t written_at_ms; /* `at` of the last write that succeeded */
  _Atomic int32_t writer;        /* pid of the process writing now, or 0 */
  _Atomic bool stores_left;      /* a write left updates for the next one */
  _Atomic int64_t next_confirm_ms;
  _Atomic int64_t used_at_ms; /* the cache last answered for anyone then */
  beats_slot_t slots[BEATS_SLOTS];
} beats_shared_t;

static beats_shared_t *beats;

int bw_beats_init(void) {
  pthread_mutexattr_t attr;
  void *block = mmap(NULL, sizeof *beats, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  int rc;

  if (block == MAP_FAILED)
    return -1;
  memset(block, 0, sizeof *beats);
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  rc = pthread_mutex_init(&((beats_shared_t *)block)->lock, &attr);
  pthread_mutexattr_destroy(&attr);
  if (rc != 0) {
    munmap(block, sizeof *beats);
    return -1;
  }
  beats = block;
  bson_oid_init(&beats->pool, NULL);
  return 0;
}

/* How long a confirmation from the database is trusted, and how often a
 * grader's heartbeat is moved into its document: well inside
 * forget_workers, so the reaper never forgets a grader that beats. */
static int64_t beats_refresh_ms(const bw_config_t *cfg) {
  int64_t quarter = cfg->forget_workers * 250LL;
  return quarter < 300000 ? quarter : 300000;
}

static bool beats_lock(void) {
  int rc = pthread_mutex_lock(&beats->lock);
  /* Its holder died: the slot it was writing may be half-written, which
   * costs at most one grader one cache miss or one extra write. */
  if (rc == EOWNERDEAD)
    rc = pthread_mutex_consistent(&beats->lock);
  return rc == 0;
}

static void beats_unlock(void) {
  pthread_mutex_unlock(&beats->lock);
}

/* A slot nothing depends on any more: written, moved into its document,
 * and quiet for a refresh period. */
static bool beats_spare(const beats_slot_t *s, int64_t now, int64_t refresh) {
  int64_t seen = s->used_ms > s->beat_ms ? s->used_ms : s->beat_ms;
  return s->beat_ms <= s->flushed_ms && s->beat_ms <= s->stored_ms &&
         now - seen > refresh;
}

/* With the lock held: the slot of `worker`, or with `add`, a new one (NULL
 * when the table is full).  Open addressing, linear probing; slots are
 * never emptied, only reused, so a probe stops at the first unused one. */
static beats_slot_t *beats_find(const bson_oid_t *worker, bool add, int64_t now,
                                int64_t refresh) {
  uint32_t hash = 2166136261u;
  beats_slot_t *spare = NULL;

  for (int i = 0; i < 12; i++)
    hash = (hash ^ worker->bytes[i]) * 16777619u;
  for (int i = 0; i < BEATS_SLOTS; i++) {
    beats_slot_t *s = &beats->slots[(hash + (uint32_t)i) % BEATS_SLOTS];
    if (!s->used) {
      spare = spare ? spare : s;
      break;
    }
    if (bson_oid_equal(&s->worker, worker))
      return s;
    if (spare == NULL && beats_spare(s, now, refresh))
      spare = s;
  }
  if (!add || spare == NULL)
    return NULL;
  memset(spare, 0, sizeof *spare);
  bson_oid_copy(worker, &spare->worker);
  spare->used = true;
  return spare;
}

int bw_beats_check(bw_db_t *db, const bw_config_t *cfg,
                   const bson_oid_t *worker, bw_error_t *error) {
  int64_t now = bw_db_now_ms(), refresh = beats_refresh_ms(cfg);
  beats_slot_t *s;
  bool known = false;
  int rc;

  if (beats != NULL && beats_lock()) {
    s = beats_find(worker, false, now, refresh);
    known = s != NULL && s->verified_ms > now - refresh;
    if (known) {
      s->used_ms = now;
      atomic_store(&beats->used_at_ms, now);
    }
    beats_unlock();
  }
  if (known)
    return 0;
  rc = bw_worker_check(db, worker, error);
  if (rc == 0 && beats != NULL && beats_lock()) {
    s = beats_find(worker, true, now, refresh);
    if (s != NULL)
      s->verified_ms = s->used_ms = now;
    atomic_store(&beats->used_at_ms, now);
    beats_unlock();
  }
  return rc;
}

void bw_beats_registered(const bw_config_t *cfg, const bson_oid_t *worker,
                         int64_t at) {
  beats_slot_t *s;
  if (beats == NULL || !beats_lock())
    return;
  s = beats_find(worker, true, at, beats_refresh_ms(cfg));
  if (s != NULL)
    s->verified_ms = s->stored_ms = s->used_ms = at;
  atomic_store(&beats->used_at_ms, at);
  beats_unlock();
}

int bw_beats_record(bw_db_t *db, const bw_config_t *cfg,
                    const bson_oid_t *worker, bw_error_t *error) {
  int64_t now;
  beats_slot_t *s = NULL;
  int rc = bw_beats_check(db, cfg, worker, error); /* 401 when unknown */

  if (rc < 0)
    return rc;
  if (beats != NULL && beats_lock()) {
    /* The time is taken under the lock, as a write's `at` is: a heartbeat
     * answered after a write's snapshot is never older than its `at`. */
    now = bw_db_now_ms();
    s = beats_find(worker, true, now, beats_refresh_ms(cfg));
    if (s != NULL && s->beat_ms < now)
      s->beat_ms = now;
    if (s != NULL)
      atomic_store(&beats->last_beat_ms, now);
    beats_unlock();
  }
  return s != NULL ? 0 : bw_worker_heartbeat(db, worker, error);
}

/* ---- writing -------------------------------------------------------- */

/* Whether the pool must write: something is unwritten, or a grader beat
 * here recently (then even an empty write tells the reaper that nothing
 * is pending: worker.h, bw_worker_beats_settled), until the last
 * heartbeats of graders that stopped have been moved into their
 * documents. */
static bool beats_active(const bw_config_t *cfg, int64_t now) {
  int64_t last = atomic_load(&beats->last_beat_ms);
  return last != 0 &&
         (last >= atomic_load(&beats->written_at_ms) ||
          atomic_load(&beats->stores_left) ||
          now - last < 2000LL * cfg->heartbeat + 3 * bw_worker_flush_ms(cfg));
}

/* Whether the cache answered for anyone within a refresh period: then the
 * pool confirms what it trusts once per interval (beats_confirm). */
static bool beats_trusting(const bw_config_t *cfg, int64_t now) {
  int64_t used = atomic_load(&beats->used_at_ms);
  return used != 0 && now - used < beats_refresh_ms(cfg);
}

int bw_beats_timeout_ms(const bw_config_t *cfg) {
  int64_t now, until = INT64_MAX;
  if (beats == NULL)
    return -1;
  now = bw_db_now_ms();
  if (beats_active(cfg, now))
    until = atomic_load(&beats->next_write_ms);
  if (beats_trusting(cfg, now) && atomic_load(&beats->next_confirm_ms) < until)
    until = atomic_load(&beats->next_confirm_ms);
  if (until == INT64_MAX)
    return -1;
  /* Due, but another process is writing (a stalled database holds it for
   * up to db_timeout_ms): look again a little later, not at once. */
  if (until <= now)
    return atomic_load(&beats->writer) != 0 ? 50 : 0;
  return until - now > 60000 ? 60000 : (int)(until - now);
}

typedef struct beats_batch {
  bw_worker_beat_t *beats; /* unwritten heartbeats */
  size_t n;
  bw_worker_beat_t stores[BEATS_STORES]; /* to move into their documents */
  size_t nstores;
  int64_t at; /* the snapshot */
} beats_batch_t;

/* With the lock held: what the next write carries. */
static void beats_collect(const bw_config_t *cfg, beats_batch_t *b) {
  int64_t refresh = beats_refresh_ms(cfg),
          quiet = 2000LL * cfg->heartbeat + bw_worker_flush_ms(cfg);
  bool left = false;

  b->at = bw_db_now_ms();
  for (int i = 0; i < BEATS_SLOTS; i++) {
    const beats_slot_t *s = &beats->slots[i];
    if (!s->used || s->beat_ms == 0)
      continue;
    if (s->beat_ms > s->flushed_ms)
      b->beats[b->n++] = (bw_worker_beat_t){s->worker, s->beat_ms};
    /* A grader's document follows its heartbeats every refresh period,
     * and takes the last one once it stopped (its `last_seen`). */
    if (s->beat_ms > s->stored_ms &&
        (s->beat_ms - s->stored_ms >= refresh || b->at - s->beat_ms >= quiet)) {
      if (b->nstores < BEATS_STORES)
        b->stores[b->nstores++] = (bw_worker_beat_t){s->worker, s->beat_ms};
      else
        left = true;
    }
  }
  atomic_store(&beats->stores_left, left);
}

/* With the lock held: a write succeeded. */
static void beats_written(const bw_config_t *cfg, const beats_batch_t *b) {
  for (size_t i = 0; i < b->n; i++) {
    beats_slot_t *s =
        beats_find(&b->beats[i].worker, false, b->at, beats_refresh_ms(cfg));
    if (s != NULL && s->flushed_ms < b->beats[i].at)
      s->flushed_ms = b->beats[i].at;
  }
  atomic_store(&beats->written_at_ms, b->at);
}

/* Moves heartbeats into workers.last_heartbeat; a grader found missing
 * (the reaper forgot it) loses its confirmation, so its next call asks
 * the database and gets 401. */
static void beats_store(bw_db_t *db, const bw_config_t *cfg,
                        const beats_batch_t *b) {
  for (size_t i = 0; i < b->nstores; i++) {
    bool found;
    beats_slot_t *s;
    if (bw_worker_store_beat(db, &b->stores[i].worker, b->stores[i].at, &found,
                             NULL) < 0) {
      atomic_store(&beats->stores_left, true);
      return;
    }
    if (!beats_lock())
      return;
    s = beats_find(&b->stores[i].worker, false, b->at, beats_refresh_ms(cfg));
    if (s != NULL) {
      s->stored_ms =
          s->stored_ms > b->stores[i].at ? s->stored_ms : b->stores[i].at;
      s->verified_ms = found ? bw_db_now_ms() : 0;
    }
    beats_unlock();
  }
}

/* Takes the turn to write; false when another live process has it. */
static bool beats_take_turn(void) {
  int32_t self = (int32_t)getpid(), holder = atomic_load(&beats->writer);
  if (holder != 0 && holder != self && !(kill(holder, 0) < 0 && errno == ESRCH))
    return false;
  return atomic_compare_exchange_strong(&beats->writer, &holder, self);
}

static int beats_oid_cmp(const void *a, const void *b) {
  return bson_oid_compare(a, b);
}

/* Asks the database, in one read, whether the ids the cache answered for
 * lately are still registered: one the reaper forgot (or a wiped
 * database) loses its confirmation, so its next call asks and gets 401
 * within an interval. */
static void beats_confirm(bw_db_t *db, const bw_config_t *cfg) {
  static bson_oid_t ids[BEATS_SLOTS];
  static bool found[BEATS_SLOTS];
  int64_t start, refresh = beats_refresh_ms(cfg);
  size_t n = 0;

  if (!beats_lock())
    return;
  start = bw_db_now_ms();
  for (int i = 0; i < BEATS_SLOTS; i++) {
    const beats_slot_t *s = &beats->slots[i];
    if (s->used && s->verified_ms != 0 && start - s->used_ms < refresh)
      bson_oid_copy(&s->worker, &ids[n++]);
  }
  beats_unlock();
  if (n == 0)
    return;
  qsort(ids, n, sizeof *ids, beats_oid_cmp);
  if (bw_worker_registered_among(db, ids, n, found, NULL) < 0 || !beats_lock())
    return;
  for (size_t i = 0; i < n; i++) {
    beats_slot_t *s = beats_find(&ids[i], false, start, refresh);
    /* One confirmed after the read began may have registered since. */
    if (s != NULL && found[i] && s->verified_ms < start)
      s->verified_ms = start;
    else if (s != NULL && !found[i] && s->verified_ms < start)
      s->verified_ms = 0;
  }
  beats_unlock();
}

static void beats_write(bw_db_t *db, const bw_config_t *cfg, bool force) {
  static bw_worker_beat_t collected[BEATS_SLOTS];
  beats_batch_t b = {.beats = collected};
  int64_t now, every = bw_worker_flush_ms(cfg);
  bool write, confirm;
  bw_error_t error;

  if (beats == NULL)
    return;
  now = bw_db_now_ms();
  write = beats_active(cfg, now) &&
          (force || now >= atomic_load(&beats->next_write_ms));
  confirm = !force && beats_trusting(cfg, now) &&
            now >= atomic_load(&beats->next_confirm_ms);
  if (!(write || confirm) || !beats_take_turn())
    return;
  if (confirm) {
    atomic_store(&beats->next_confirm_ms, now + cfg->heartbeat * 1000LL);
    if (bw_db_reachable())
      beats_confirm(db, cfg);
  }
  if (write)
    atomic_store(&beats->next_write_ms, now + every);
  if (write && bw_db_reachable() && beats_lock()) {
    beats_collect(cfg, &b);
    beats_unlock();
    /* Kept in the table until a write succeeds: the next one retries. */
    if (bw_worker_beats_insert(db, &beats->pool, b.at, every, b.beats, b.n,
                               &error) < 0)
      bw_log_warn("heartbeats: %zu not written yet: %s", b.n, error.message);
    else if (beats_lock()) {
      beats_written(cfg, &b);
      beats_unlock();
      beats_store(db, cfg, &b);
    }
  }
  atomic_store(&beats->writer, 0);
}

void bw_beats_tick(bw_db_t *db, const bw_config_t *cfg) {
  beats_write(db, cfg, false);
}

void bw_beats_flush(bw_db_t *db, const bw_config_t *cfg) {
  beats_write(db, cfg, true);
}

int bw_beats_pending(void) {
  int n = 0;
  if (beats == NULL || !beats_lock())
    return -1;
  for (int i = 0; i < BEATS_SLOTS; i++)
    n += beats->slots[i].used &&
         beats->slots[i].beat_ms > beats->slots[i].flushed_ms;
  beats_unlock();
  return n;
}
