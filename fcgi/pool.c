#include "pool.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "worker_loop.h"

#define POOL_MAX_WORKERS 256
#define POOL_STOP_GRACE_MS 5000 /* to finish the request in hand */
#define POOL_QUICK_DEATH_MS 1000
#define POOL_BACKOFF_MAX_MS 5000
#define POOL_IDLE_WAIT_MS 60000

typedef struct pool_slot {
  pid_t pid;         /* 0 when no worker runs in this slot */
  long long started; /* ms, monotonic */
  long long respawn; /* ms, monotonic: when an empty slot is refilled */
  int quick_deaths;  /* deaths in a row within POOL_QUICK_DEATH_MS */
} pool_slot_t;

typedef struct pool {
  int listen_fd;
  const bw_config_t *cfg;
  pid_t self;
  sigset_t signals; /* blocked for good; taken with sigtimedwait */
  int count;
  pool_slot_t slots[POOL_MAX_WORKERS];
} pool_t;

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The parent handles signals synchronously: every signal it cares about is
 * blocked and picked up by sigtimedwait(), so there are no handlers and no
 * races between "a worker died" and "we are stopping". */
static void pool_block_signals(pool_t *pool) {
  static const int taken[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP};

  sigemptyset(&pool->signals);
  for (size_t i = 0; i < sizeof taken / sizeof taken[0]; i++) {
    /* bash starts background jobs with SIGINT ignored; undo that so a
     * Ctrl-C reaches us like a SIGTERM does. */
    signal(taken[i], SIG_DFL);
    sigaddset(&pool->signals, taken[i]);
  }
  sigprocmask(SIG_BLOCK, &pool->signals, NULL);
}

static void pool_spawn(pool_t *pool, pool_slot_t *slot) {
  pid_t pid = fork();

  /* exit(), not _exit(): the parent has no stdio buffers or atexit work to
   * repeat, and LeakSanitizer checks each worker on the way out. */
  if (pid == 0)
    exit(bw_fcgi_worker_run(pool->listen_fd, pool->cfg, pool->self));
  if (pid < 0) {
    bw_log_error("fork: %s; retrying in 1 s", strerror(errno));
    slot->respawn = now_ms() + 1000;
    return;
  }
  slot->pid = pid;
  slot->started = now_ms();
}

static pool_slot_t *pool_find(pool_t *pool, pid_t pid) {
  for (int i = 0; i < pool->count; i++)
    if (pool->slots[i].pid == pid)
      return &pool->slots[i];
  return NULL;
}

static void log_death(pid_t pid, int status) {
  if (WIFSIGNALED(status))
    bw_log_warn("worker %d killed by signal %d (%s)", (int)pid,
                WTERMSIG(status), strsignal(WTERMSIG(status)));
  else
    bw_log_warn("worker %d exited with status %d", (int)pid,
                WEXITSTATUS(status));
}

/* A worker that dies right after starting (bad database URI, broken socket)
 * would otherwise be forked again in a tight loop: back off 0.1, 0.2, 0.4
 * ... up to 5 s while that goes on. */
static void pool_schedule_respawn(pool_slot_t *slot) {
  long long now = now_ms(), delay = 0;

  if (now - slot->started < POOL_QUICK_DEATH_MS) {
    if (slot->quick_deaths < 16)
      slot->quick_deaths++;
    delay = 100LL << (slot->quick_deaths - 1);
    if (delay > POOL_BACKOFF_MAX_MS)
      delay = POOL_BACKOFF_MAX_MS;
  } else {
    slot->quick_deaths = 0;
  }
  slot->respawn = now + delay;
}

/* Collects every worker that has exited.  Returns how many are left. */
static int pool_reap(pool_t *pool, bool stopping) {
  int status, alive = 0;
  pid_t pid;

  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    pool_slot_t *slot = pool_find(pool, pid);
    if (slot == NULL)
      continue;
    slot->pid = 0;
    if (!stopping) {
      log_death(pid, status);
      pool_schedule_respawn(slot);
    }
  }
  for (int i = 0; i < pool->count; i++)
    alive += pool->slots[i].pid != 0;
  return alive;
}

/* Forks the workers that are due; returns ms until the next one is. */
static long long pool_fill(pool_t *pool) {
  long long now = now_ms(), wait = POOL_IDLE_WAIT_MS;

  for (int i = 0; i < pool->count; i++) {
    pool_slot_t *slot = &pool->slots[i];
    if (slot->pid != 0)
      continue;
    if (slot->respawn <= now)
      pool_spawn(pool, slot);
    if (slot->pid == 0 && slot->respawn - now < wait)
      wait = slot->respawn - now;
  }
  return wait < 0 ? 0 : wait;
}

/* Waits up to `ms` for one of the pool's signals; returns it, or 0. */
static int pool_wait(pool_t *pool, long long ms) {
  struct timespec timeout = {.tv_sec = ms / 1000,
                             .tv_nsec = (ms % 1000) * 1000000};
  int sig = sigtimedwait(&pool->signals, NULL, &timeout);
  return sig < 0 ? 0 : sig;
}

static void pool_kill_all(pool_t *pool, int sig) {
  for (int i = 0; i < pool->count; i++)
    if (pool->slots[i].pid != 0)
      kill(pool->slots[i].pid, sig);
}

static void pool_stop(pool_t *pool) {
  long long deadline = now_ms() + POOL_STOP_GRACE_MS;
  int alive = pool_reap(pool, true);

  bw_log_info("stopping %d workers", alive);
  pool_kill_all(pool, SIGTERM);
  while (alive > 0 && now_ms() < deadline) {
    pool_wait(pool, deadline - now_ms());
    alive = pool_reap(pool, true);
  }
  if (alive > 0) {
    bw_log_warn("%d workers still busy after %d ms: killing them", alive,
                POOL_STOP_GRACE_MS);
    pool_kill_all(pool, SIGKILL);
    for (int i = 0; i < pool->count; i++)
      if (pool->slots[i].pid != 0)
        waitpid(pool->slots[i].pid, NULL, 0);
  }
}

int bw_fcgi_pool_run(int listen_fd, const bw_config_t *cfg) {
  static pool_t pool;
  int sig = 0;

  memset(&pool, 0, sizeof pool);
  pool.listen_fd = listen_fd;
  pool.cfg = cfg;
  pool.self = getpid();
  pool.count = cfg->workers < 1 ? 1 : cfg->workers;
  if (pool.count > POOL_MAX_WORKERS)
    pool.count = POOL_MAX_WORKERS;
  pool_block_signals(&pool);
  bw_log_info("serving %s with %d workers", cfg->socket_path, pool.count);
  while (sig != SIGTERM && sig != SIGINT && sig != SIGHUP) {
    pool_reap(&pool, false);
    sig = pool_wait(&pool, pool_fill(&pool));
  }
  bw_log_info("%s: stopping", strsignal(sig));
  pool_stop(&pool);
  bw_log_info("stopped");
  return 0;
}
