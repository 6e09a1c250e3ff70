#include "pool.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "listen.h"
#include "log.h"
#include "worker_loop.h"

#define POOL_MAX_WORKERS 256
/* Workers of earlier generations still finishing a request after reloads. */
#define POOL_MAX_RETIRING (4 * POOL_MAX_WORKERS)
#define POOL_QUICK_DEATH_MS 1000
#define POOL_BACKOFF_MAX_MS 5000
#define POOL_IDLE_WAIT_MS 60000

typedef struct pool_slot {
  pid_t pid;         /* 0 when no worker runs in this slot */
  long long started; /* ms, monotonic */
  long long respawn; /* ms, monotonic: when an empty slot is refilled */
  int quick_deaths;  /* deaths in a row within POOL_QUICK_DEATH_MS */
} pool_slot_t;

/* A worker of an earlier generation (before a reload or a log reopen): told
 * to stop, it finishes its request and exits; killed past `deadline`. */
typedef struct pool_retiring {
  pid_t pid;
  long long deadline; /* ms, monotonic */
} pool_retiring_t;

typedef struct pool {
  int listen_fd;
  bw_config_t cfg; /* the generation being served; workers get a copy */
  bw_courses_t *courses; /* its courses file (NULL: none); owned here,
                            workers get the copy fork gives them */
  const char *config_path;
  bw_fcgi_load_fn load;
  pid_t self;
  sigset_t signals; /* blocked for good; taken with sigtimedwait */
  int count;
  pool_slot_t slots[POOL_MAX_WORKERS];
  int retiring_count;
  pool_retiring_t retiring[POOL_MAX_RETIRING];
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
  static const int taken[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1};

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
   * repeat, and LeakSanitizer checks each worker on the way out.  SIGUSR1
   * is the parent's (reopen the log): a worker that gets it anyway, from a
   * kill of the whole group, must not die of it. */
  if (pid == 0) {
    signal(SIGUSR1, SIG_IGN);
    exit(bw_fcgi_worker_run(pool->listen_fd, &pool->cfg, pool->courses,
                            pool->self));
  }
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

/* Forgets a retiring worker that has exited; false when pid is none. */
static bool pool_forget_retiring(pool_t *pool, pid_t pid) {
  for (int i = 0; i < pool->retiring_count; i++)
    if (pool->retiring[i].pid == pid) {
      pool->retiring[i] = pool->retiring[--pool->retiring_count];
      return true;
    }
  return false;
}

/* Collects every worker that has exited.  Returns how many are left,
 * retiring ones included. */
static int pool_reap(pool_t *pool, bool stopping) {
  int status, alive = 0;
  pid_t pid;

  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    pool_slot_t *slot = pool_find(pool, pid);
    if (slot == NULL) {
      pool_forget_retiring(pool, pid);
      continue;
    }
    slot->pid = 0;
    if (!stopping) {
      log_death(pid, status);
      pool_schedule_respawn(slot);
    }
  }
  for (int i = 0; i < pool->count; i++)
    alive += pool->slots[i].pid != 0;
  return alive + pool->retiring_count;
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
  for (int i = 0; i < pool->retiring_count; i++)
    kill(pool->retiring[i].pid, sig);
}

static void pool_stop(pool_t *pool) {
  long long grace = (long long)pool->cfg.stop_timeout * 1000;
  long long deadline = now_ms() + grace;
  int alive = pool_reap(pool, true);

  bw_log_info("stopping %d workers", alive);
  pool_kill_all(pool, SIGTERM);
  while (alive > 0 && now_ms() < deadline) {
    pool_wait(pool, deadline - now_ms());
    alive = pool_reap(pool, true);
  }
  if (alive > 0) {
    bw_log_warn("%d workers still busy after %lld ms (stop_timeout): "
                "killing them",
                alive, grace);
    pool_kill_all(pool, SIGKILL);
    while (waitpid(-1, NULL, 0) > 0)
      ;
  }
}

/* Kills the retiring workers past their deadline; returns ms until the
 * next deadline (POOL_IDLE_WAIT_MS when none). */
static long long pool_expire_retiring(pool_t *pool) {
  long long now = now_ms(), wait = POOL_IDLE_WAIT_MS;

  for (int i = 0; i < pool->retiring_count; i++) {
    pool_retiring_t *r = &pool->retiring[i];
    if (r->deadline <= now) {
      bw_log_warn("worker %d still busy after stop_timeout: killing it",
                  (int)r->pid);
      kill(r->pid, SIGKILL);
      r->deadline = now + POOL_IDLE_WAIT_MS; /* reaped on its SIGCHLD */
    } else if (r->deadline - now < wait) {
      wait = r->deadline - now;
    }
  }
  return wait;
}

/* A new generation of workers: the running ones are told to stop (each
 * finishes the request it serves; the listening socket stays open, so the
 * next requests wait in its backlog for the new workers, and none fails),
 * and every slot is filled again with cfg as it is now. */
static void pool_replace_workers(pool_t *pool) {
  long long deadline = now_ms() + (long long)pool->cfg.stop_timeout * 1000;

  for (int i = 0; i < POOL_MAX_WORKERS; i++) {
    pool_slot_t *slot = &pool->slots[i];
    if (slot->pid != 0) {
      if (pool->retiring_count == POOL_MAX_RETIRING) {
        kill(slot->pid, SIGKILL); /* reloads faster than requests end */
      } else {
        kill(slot->pid, SIGTERM);
        pool->retiring[pool->retiring_count++] =
            (pool_retiring_t){.pid = slot->pid, .deadline = deadline};
      }
    }
    memset(slot, 0, sizeof *slot);
  }
  pool->count = pool->cfg.workers;
}

/* SIGHUP: the config file and the courses file again.  A config or a
 * courses file that does not load changes nothing; the socket and the user
 * stay as they are (they take a restart). */
static void pool_reload(pool_t *pool) {
  static bw_config_t next;
  bw_error_t error = {.code = 0, .message = ""};
  bw_courses_t *courses = NULL;

  if (pool->load(&next, pool->config_path, &error) < 0 ||
      bw_courses_load(next.courses_file, &courses, &error) < 0) {
    bw_log_error("reload: %s; keeping the running configuration",
                 error.message);
    return;
  }
  if (bw_listen_changed(&pool->cfg, &next)) {
    bw_log_warn("reload: listen, listen_*, user and group take a restart; "
                "keeping %s",
                pool->cfg.listen);
    memcpy(next.listen, pool->cfg.listen, sizeof next.listen);
    memcpy(next.listen_owner, pool->cfg.listen_owner, sizeof next.listen_owner);
    memcpy(next.listen_group, pool->cfg.listen_group, sizeof next.listen_group);
    next.listen_mode = pool->cfg.listen_mode;
    memcpy(next.user, pool->cfg.user, sizeof next.user);
    memcpy(next.group, pool->cfg.group, sizeof next.group);
  }
  if (strcmp(next.log_file, pool->cfg.log_file) != 0 &&
      bw_daemon_log(&next, &error) < 0) {
    bw_log_error("reload: %s; keeping the running configuration",
                 error.message);
    bw_courses_free(courses);
    return;
  }
  pool->cfg = next;
  bw_courses_free(pool->courses);
  pool->courses = courses;
  bw_log_info("reload: %d workers with the new configuration, %zu courses",
              pool->cfg.workers, bw_courses_count(courses));
  pool_replace_workers(pool);
}

/* SIGUSR1: logrotate moved the file.  The workers write to the file they
 * inherited, so they are replaced (gracefully) to pick up the new one. */
static void pool_reopen_log(pool_t *pool) {
  bw_error_t error = {.code = 0, .message = ""};

  if (pool->cfg.log_file[0] == '\0')
    return;
  if (bw_daemon_log(&pool->cfg, &error) < 0) {
    bw_log_error("%s; still writing to the old file", error.message);
    return;
  }
  bw_log_info("log reopened");
  pool_replace_workers(pool);
}

int bw_fcgi_pool_run(int listen_fd, const char *listen_name,
                     const bw_config_t *cfg, bw_courses_t *courses,
                     bw_fcgi_load_fn load, const char *config_path) {
  static pool_t pool;
  int sig = 0;

  memset(&pool, 0, sizeof pool);
  pool.listen_fd = listen_fd;
  pool.cfg = *cfg;
  pool.courses = courses;
  pool.load = load;
  pool.config_path = config_path;
  pool.self = getpid();
  pool.count = cfg->workers;
  pool_block_signals(&pool);
  bw_log_info("serving %s with %d workers", listen_name, pool.count);
  while (sig != SIGTERM && sig != SIGINT) {
    long long wait, expire;
    if (sig == SIGHUP)
      pool_reload(&pool);
    else if (sig == SIGUSR1)
      pool_reopen_log(&pool);
    pool_reap(&pool, false);
    wait = pool_fill(&pool);
    expire = pool_expire_retiring(&pool);
    sig = pool_wait(&pool, wait < expire ? wait : expire);
  }
  bw_log_info("%s: stopping", strsignal(sig));
  pool_stop(&pool);
  bw_courses_free(pool.courses);
  bw_log_info("stopped");
  return 0;
}
