#include "longpoll.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "qsignal.h"
#include "job.h"
#include "beats.h"

/* How often the host reads the queue signal while long polls wait and jobs
 * are being queued: what a job queued through another API host (or by the
 * reaper) may wait before it is seen.  A read (an indexed `_id` lookup on
 * the embedded PostgreSQL backend) costs FerretDB + PostgreSQL about 1.6 ms
 * of CPU, so this cadence is kept for busy times only (see
 * LONGPOLL_QUIET_MS): at 50 ms a job queued through another host was
 * handed out 62 ms p50 after its start request was sent (lanes add a read
 * to the push and to the poll), at 25 ms 47 ms (docs/BENCHMARKS.md). */
#define LONGPOLL_SIGNAL_MS 25
/* The same while only SSE streams wait (fcgi/stream.h), no long poll: a
 * move made through another host reaches them up to this late (one made
 * through this host comes at once, by datagram).  Waiting streams cost
 * less than as many waiting polls (docs/BENCHMARKS.md). */
#define LONGPOLL_STREAM_SIGNAL_MS 100
/* Both of those only while jobs are being queued: after LONGPOLL_BUSY_MS
 * without a push seen (here, or as a change of the signal), every
 * LONGPOLL_QUIET_MS instead.  Idle waiting is what costs: 200 idle graders
 * cost the stack 2.2 % of a core at 150 ms (4.9 % at a constant 50 ms,
 * docs/BENCHMARKS.md); the first job of a burst queued through another
 * host waits up to 150 ms for the read (the p99 target of a hand-out is
 * 250 ms), the next ones 25. */
#define LONGPOLL_QUIET_MS 150
#define LONGPOLL_BUSY_MS 60000
/* How often the host scans the queue whatever the signal says: a bump that
 * failed, or a scan that lost every race on a page, is not a lost job. */
#define LONGPOLL_RECHECK_MS 5000
/* How recent a signal read must be for a new poll to trust "the queue is
 * empty" and park without scanning it.  Not a matter of correctness: a
 * parked poll makes the host read the signal again, which compares it with
 * the value on the shared page, however old.  Longer than a burst of polls
 * keeps the reader busy (200 graders whose waits end together). */
#define LONGPOLL_KNOWN_MS 1000
/* Parked requests per process (long polls and streams together):
 * BW_LONGPOLL_MAX, longpoll.h. */
#define LONGPOLL_MAX BW_LONGPOLL_MAX
/* FastCGI processes per host that can be woken (more still work: they
 * hear of jobs by the signal reads alone). */
#define LONGPOLL_PROCS 64
/* Moved jobs a process remembers between two ticks (bw_longpoll_take_hints);
 * more are not lost, only looked at with the next recheck. */
#define LONGPOLL_HINTS 64

/* What the FastCGI processes of one host share (a file-backed page). */
typedef struct longpoll_shared {
  _Atomic int64_t next_check_ms; /* the next signal read is due then */
  _Atomic int64_t checked_ms;    /* when the signal was last read */
  _Atomic int64_t next_recheck_ms;
  _Atomic uint64_t signal;     /* its value then */
  _Atomic uint64_t generation; /* moves on whenever something was queued */
  _Atomic uint64_t empty_generation; /* a scan found the queue empty then */
  _Atomic int64_t pushed_ms;         /* a push was last seen then */
  _Atomic int32_t pids[LONGPOLL_PROCS];    /* processes that can be woken */
  _Atomic int32_t waiting[LONGPOLL_PROCS]; /* their parked requests */
  /* Added for streams; at the end, so a page of an older build still
   * lines up (the file is grown to this size). */
  _Atomic uint64_t jobs_signal; /* the "jobs" signal's value when read */
  _Atomic uint64_t moved; /* moves on whenever either signal moved */
  _Atomic int32_t polling[LONGPOLL_PROCS]; /* parked polls of waiting[] */
} longpoll_shared_t;

typedef struct longpoll_slot {
  FCGX_Request *fcgx;
  bw_request_t req;
  bson_oid_t worker_id;
  int64_t deadline_ms;
  struct timespec start;
} longpoll_slot_t;

static struct {
  const bw_config_t *cfg;
  bw_db_t *db;
  longpoll_shared_t *shared;
  longpoll_slot_t *slots; /* oldest first */
  int n;
  int watchers;  /* other parked requests waiting for the signals (streams) */
  int wake_fd;   /* datagrams here: 'w' "look at the queue", 'm' "moved" */
  int me;        /* this process's index in shared->pids, -1: none */
  bool look;     /* look at the queue on this tick */
  bson_oid_t hints[LONGPOLL_HINTS]; /* jobs named as moved since the tick */
  int n_hints;
  unsigned long inode; /* of the shared page: names the wake sockets */
} lp = {.wake_fd = -1, .me = -1};

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- waking the host's processes ------------------------------------- */

/* Process `pid`'s wake socket: "<socket_path>.w<pid>", beside the FastCGI
 * socket (private like it).  False when the path does not fit. */
static bool longpoll_wake_addr(int32_t pid, struct sockaddr_un *addr,
                               socklen_t *len) {
  int n;
  memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  n = snprintf(addr->sun_path, sizeof addr->sun_path, "%s.w%d",
               lp.cfg->socket_path, (int)pid);
  *len = (socklen_t)sizeof *addr;
  return n > 0 && (size_t)n < sizeof addr->sun_path;
}

/* A datagram socket others can wake this process through, and a slot in
 * the shared page's list (taking over one whose process is gone). */
static void longpoll_register(void) {
  struct sockaddr_un addr;
  socklen_t len;
  int32_t self = (int32_t)getpid();

  if (!longpoll_wake_addr(self, &addr, &len))
    return; /* too long a path: this process hears of jobs by reads only */
  lp.wake_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  unlink(addr.sun_path); /* a stale one of a killed process of this pid */
  if (lp.wake_fd < 0 || bind(lp.wake_fd, (struct sockaddr *)&addr, len) < 0) {
    bw_log_warn("longpoll: wake socket: %s", strerror(errno));
    if (lp.wake_fd >= 0)
      close(lp.wake_fd);
    lp.wake_fd = -1;
    return;
  }
  for (int i = 0; i < LONGPOLL_PROCS && lp.me < 0; i++) {
    int32_t pid = atomic_load(&lp.shared->pids[i]);
    if ((pid == 0 || (kill(pid, 0) < 0 && errno == ESRCH)) &&
        atomic_compare_exchange_strong(&lp.shared->pids[i], &pid, self)) {
      atomic_store(&lp.shared->waiting[i], 0);
      atomic_store(&lp.shared->polling[i], 0);
      lp.me = i;
    }
  }
}

static void longpoll_unregister(void) {
  struct sockaddr_un addr;
  socklen_t len;

  if (lp.me >= 0) {
    atomic_store(&lp.shared->waiting[lp.me], 0);
    atomic_store(&lp.shared->polling[lp.me], 0);
    atomic_store(&lp.shared->pids[lp.me], 0);
    lp.me = -1;
  }
  if (lp.wake_fd >= 0) {
    close(lp.wake_fd);
    if (longpoll_wake_addr((int32_t)getpid(), &addr, &len))
      unlink(addr.sun_path);
  }
  lp.wake_fd = -1;
}

static void longpoll_count_waiting(void) {
  if (lp.me < 0)
    return;
  atomic_store(&lp.shared->waiting[lp.me], lp.n + lp.watchers);
  atomic_store(&lp.shared->polling[lp.me], lp.n);
}

/* Sends the datagram what[0..len) to every other process of the host with
 * waiters. */
static void longpoll_send_all(const void *what, size_t len) {
  for (int i = 0; i < LONGPOLL_PROCS && lp.wake_fd >= 0; i++) {
    int32_t pid = atomic_load(&lp.shared->pids[i]);
    struct sockaddr_un addr;
    socklen_t alen;
    if (i == lp.me || pid == 0 || atomic_load(&lp.shared->waiting[i]) == 0 ||
        !longpoll_wake_addr(pid, &addr, &alen))
      continue;
    /* Full (EAGAIN): it has wake-ups pending already.  Gone: free the slot. */
    if (sendto(lp.wake_fd, what, len, MSG_DONTWAIT, (struct sockaddr *)&addr,
               alen) < 0 &&
        (errno == ENOENT || errno == ECONNREFUSED))
      atomic_compare_exchange_strong(&lp.shared->pids[i], &pid, 0);
  }
}

/* Job `job` (NULL: not known) is to be looked at on this tick. */
static void longpoll_hint(const bson_oid_t *job) {
  for (int i = 0; i < lp.n_hints; i++)
    if (bson_oid_equal(&lp.hints[i], job))
      return;
  if (lp.n_hints < LONGPOLL_HINTS)
    bson_oid_copy(job, &lp.hints[lp.n_hints++]);
}

/* A job was handed out or ended (or queued: see below): streams look
 * again.  Every other process with waiters gets a datagram 'm' followed
 * by the job's 12 bytes when it is known, which wakes it without making
 * it scan the queue. */
static void longpoll_notify_moved(const bson_oid_t *job) {
  uint8_t msg[1 + sizeof job->bytes] = {'m'};

  atomic_fetch_add(&lp.shared->moved, 1);
  if (job != NULL) {
    memcpy(msg + 1, job->bytes, sizeof job->bytes);
    longpoll_hint(job);
  }
  longpoll_send_all(msg, job != NULL ? sizeof msg : 1);
}

/* Something was queued: this process looks on its tick, and every other
 * one with waiters gets a datagram 'w'.  A push also moves queued jobs'
 * positions, so streams look again too. */
static void longpoll_notify_all(void) {
  lp.look = true;
  atomic_store(&lp.shared->pushed_ms, now_ms());
  atomic_fetch_add(&lp.shared->generation, 1);
  atomic_fetch_add(&lp.shared->moved, 1);
  longpoll_send_all("w", 1);
}

/* This process bumped a signal (qsignal.h's hook). */
static void longpoll_on_bump(enum bw_qsignal_kind kind, const bson_oid_t *job) {
  if (lp.shared == NULL)
    return;
  if (kind == BW_QSIGNAL_QUEUE)
    longpoll_notify_all();
  else
    longpoll_notify_moved(job);
}

/* ---- start, stop ------------------------------------------------------ */

static longpoll_shared_t *longpoll_map(const char *socket_path) {
  char path[BW_PATH_MAX + 16];
  struct stat st;
  void *page;
  int fd;

  snprintf(path, sizeof path, "%s.longpoll", socket_path);
  fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0 || fstat(fd, &st) < 0 ||
      ((size_t)st.st_size < sizeof(longpoll_shared_t) &&
       ftruncate(fd, (off_t)sizeof(longpoll_shared_t)) < 0)) {
    bw_log_warn("longpoll: %s: %s; polls answer at once", path,
                strerror(errno));
    if (fd >= 0)
      close(fd);
    return NULL;
  }
  page = mmap(NULL, sizeof(longpoll_shared_t), PROT_READ | PROT_WRITE,
              MAP_SHARED, fd, 0);
  close(fd);
  return page == MAP_FAILED ? NULL : page;
}

/* The page outlives the processes, and CLOCK_MONOTONIC starts again at a
 * reboot: a time still ahead of now by more than its period is from an
 * older boot, and would stop the signal reads until that time came. */
static void longpoll_forget_future(void) {
  longpoll_shared_t *s = lp.shared;
  int64_t now = now_ms();
  if (atomic_load(&s->next_check_ms) > now + LONGPOLL_QUIET_MS)
    atomic_store(&s->next_check_ms, 0);
  if (atomic_load(&s->next_recheck_ms) > now + LONGPOLL_RECHECK_MS)
    atomic_store(&s->next_recheck_ms, 0);
  if (atomic_load(&s->checked_ms) > now)
    atomic_store(&s->checked_ms, 0);
  if (atomic_load(&s->pushed_ms) > now)
    atomic_store(&s->pushed_ms, 0);
}

int bw_longpoll_start(const bw_config_t *cfg, bw_db_t *db) {
  lp.cfg = cfg;
  lp.db = db;
  lp.n = 0;
  lp.watchers = 0;
  /* Mapped even with poll_wait 0: streams wait here too. */
  lp.shared = longpoll_map(cfg->socket_path);
  if (lp.shared == NULL)
    return -1;
  lp.slots = calloc(LONGPOLL_MAX, sizeof *lp.slots);
  if (lp.slots == NULL) {
    munmap(lp.shared, sizeof *lp.shared);
    lp.shared = NULL;
    return -1;
  }
  longpoll_forget_future();
  longpoll_register();
  bw_qsignal_set_local_hook(longpoll_on_bump);
  return 0;
}

/* Finishes slot i (answered or not: a hung-up one is not), and forgets it. */
static void longpoll_finish(int i) {
  longpoll_slot_t *slot = &lp.slots[i];

  bw_request_finish(&slot->req, lp.cfg->max_body, &slot->start);
  free(slot->fcgx);
  memmove(&lp.slots[i], &lp.slots[i + 1],
          (size_t)(lp.n - i - 1) * sizeof *lp.slots);
  lp.n--;
  longpoll_count_waiting();
}

static void longpoll_reply_empty(longpoll_slot_t *slot) {
  bw_request_reply_error(&slot->req, BW_EEMPTY, "queue is empty",
                         lp.cfg->queue_empty_code);
}

void bw_longpoll_stop(void) {
  while (lp.n > 0) {
    longpoll_reply_empty(&lp.slots[0]);
    longpoll_finish(0);
  }
  bw_qsignal_set_local_hook(NULL);
  free(lp.slots);
  lp.slots = NULL;
  if (lp.shared != NULL) {
    longpoll_unregister();
    munmap(lp.shared, sizeof *lp.shared);
  }
  lp.shared = NULL;
}

/* ---- a poll ----------------------------------------------------------- */

int bw_longpoll_wait_for(const bw_request_t *req, const bw_config_t *cfg,
                         bw_error_t *error) {
  char text[16];
  int found = bw_request_query_param(req, "wait", text, sizeof text, error);
  long wait;
  char *end;

  if (found < 0)
    return found;
  if (!found)
    return cfg->poll_wait;
  errno = 0;
  wait = strtol(text, &end, 10);
  if (text[0] < '0' || text[0] > '9' || *end != '\0' || errno != 0)
    return bw_error_set(error, BW_EINVAL,
                        "wait: expected a whole number of seconds");
  return wait < cfg->poll_wait ? (int)wait : cfg->poll_wait;
}

/* Takes the request over; false when it cannot wait here. */
static bool longpoll_park(bw_request_t *req, const bson_oid_t *worker_id,
                          int wait) {
  longpoll_slot_t *slot;

  if (lp.shared == NULL || wait <= 0 || lp.n + lp.watchers >= LONGPOLL_MAX)
    return false;
  slot = &lp.slots[lp.n++];
  slot->fcgx = req->fcgx;
  slot->req = *req;
  bson_oid_copy(worker_id, &slot->worker_id);
  slot->deadline_ms = now_ms() + (int64_t)wait * 1000;
  clock_gettime(CLOCK_MONOTONIC, &slot->start);
  req->parked = true;
  longpoll_count_waiting();
  return true;
}

/* The host saw the queue empty, and nothing was queued since as far as a
 * recent signal read tells: a new waiter needs no scan of its own. */
static bool longpoll_known_empty(void) {
  longpoll_shared_t *s = lp.shared;
  return s != NULL &&
         atomic_load(&s->empty_generation) == atomic_load(&s->generation) &&
         now_ms() - atomic_load(&s->checked_ms) <= LONGPOLL_KNOWN_MS;
}

int bw_longpoll_poll(bw_request_t *req, const bson_oid_t *worker_id, int wait,
                     bw_error_t *error) {
  uint64_t before = lp.shared ? atomic_load(&lp.shared->generation) : 0;
  json_object *job = NULL;
  int rc;

  if (wait > 0 && longpoll_known_empty() &&
      longpoll_park(req, worker_id, wait))
    return 0;
  rc = bw_job_poll(lp.db, lp.cfg, worker_id, BW_GEN_SEED, &job, error);
  if (rc == 0) {
    bw_request_reply_success(req, job);
    return 0;
  }
  if (rc != BW_EEMPTY)
    return rc;
  /* Empty as of `before`: a push since then has moved the generation on. */
  if (lp.shared != NULL)
    atomic_store(&lp.shared->empty_generation, before);
  return longpoll_park(req, worker_id, wait) ? 0 : rc;
}

/* ---- other waiters (streams) ------------------------------------------ */

bool bw_longpoll_available(void) { return lp.shared != NULL; }

int bw_longpoll_parked(void) { return lp.n; }

int bw_longpoll_parked_all(void) {
  int n = 0;
  if (lp.shared == NULL)
    return -1;
  for (int i = 0; i < LONGPOLL_PROCS; i++) {
    int32_t pid = atomic_load(&lp.shared->pids[i]);
    if (pid != 0 && !(kill(pid, 0) < 0 && errno == ESRCH))
      n += atomic_load(&lp.shared->polling[i]);
  }
  return n;
}

void bw_longpoll_watchers(int n) {
  lp.watchers = n;
  if (lp.shared != NULL)
    longpoll_count_waiting();
}

uint64_t bw_longpoll_moved(void) {
  return lp.shared != NULL ? atomic_load(&lp.shared->moved) : 0;
}

int bw_longpoll_take_hints(bson_oid_t *out, int max) {
  int n = lp.n_hints < max ? lp.n_hints : max;
  memcpy(out, lp.hints, (size_t)n * sizeof *out);
  lp.n_hints = 0;
  return n;
}

/* ---- the worker loop's side -------------------------------------------- */

int bw_longpoll_pollfds(struct pollfd *fds, int max) {
  int n = 0;

  if (lp.wake_fd >= 0 && n < max)
    fds[n++] = (struct pollfd){.fd = lp.wake_fd, .events = POLLIN};
  for (int i = 0; i < lp.n && n < max; i++)
    fds[n++] = (struct pollfd){.fd = lp.slots[i].fcgx->ipcFd,
                               .events = POLLRDHUP};
  return n;
}

/* Whether this process is the one that reads the signal on time: the
 * first in the list with waiters.  The others read it only when it is
 * overdue (that one is busy or gone), so the host wakes one process per
 * read, not all. */
static bool longpoll_first_waiting(void) {
  for (int i = 0; i < LONGPOLL_PROCS; i++)
    if (atomic_load(&lp.shared->waiting[i]) > 0)
      return i == lp.me;
  return true;
}

/* How often the host reads the signals now: LONGPOLL_QUIET_MS after
 * LONGPOLL_BUSY_MS without a push; else LONGPOLL_SIGNAL_MS while any of its
 * processes holds a long poll, LONGPOLL_STREAM_SIGNAL_MS while only streams
 * wait. */
static int64_t longpoll_signal_period(void) {
  if (now_ms() - atomic_load(&lp.shared->pushed_ms) >= LONGPOLL_BUSY_MS)
    return LONGPOLL_QUIET_MS;
  if (lp.n > 0)
    return LONGPOLL_SIGNAL_MS;
  for (int i = 0; i < LONGPOLL_PROCS; i++)
    if (atomic_load(&lp.shared->polling[i]) > 0)
      return LONGPOLL_SIGNAL_MS;
  return LONGPOLL_STREAM_SIGNAL_MS;
}

int bw_longpoll_timeout_ms(void) {
  int64_t now = now_ms(), until, every;

  if (lp.n + lp.watchers == 0 || lp.shared == NULL)
    return -1;
  every = longpoll_signal_period();
  until = atomic_load(&lp.shared->next_check_ms);
  if (!longpoll_first_waiting())
    until += 2 * every;
  for (int i = 0; i < lp.n; i++)
    if (lp.slots[i].deadline_ms < until)
      until = lp.slots[i].deadline_ms;
  if (until - now > 3 * every)
    return (int)(3 * every);
  return until > now ? (int)(until - now) : 0;
}

/* Reads the queue signal if it is this process's turn (the host reads it
 * once per longpoll_signal_period(), whoever wins the turn). */
static void longpoll_check_signal(void) {
  longpoll_shared_t *s = lp.shared;
  int64_t now = now_ms(), due = atomic_load(&s->next_check_ms),
          every = longpoll_signal_period();
  bw_qsignal_values_t values;

  if (!longpoll_first_waiting())
    due += 2 * every;
  if (now < due)
    return;
  due = atomic_load(&s->next_check_ms);
  if (!atomic_compare_exchange_strong(&s->next_check_ms, &due, now + every))
    return;
  if (bw_db_reachable() && bw_qsignal_read(lp.db, &values, NULL) == 0) {
    atomic_store(&s->checked_ms, now_ms());
    bool queued = values.queue != atomic_exchange(&s->signal, values.queue);
    bool moved = values.jobs != atomic_exchange(&s->jobs_signal, values.jobs);
    if (queued)
      longpoll_notify_all();
    if (moved)
      longpoll_notify_moved(values.has_job ? &values.job : NULL);
  }
  if (now >= atomic_load(&s->next_recheck_ms)) {
    atomic_store(&s->next_recheck_ms, now + LONGPOLL_RECHECK_MS);
    atomic_fetch_add(&s->generation, 1);
    lp.look = true;
  }
}

/* The grader behind slot i is gone (nginx closed the connection). */
static bool longpoll_hung_up(int i) {
  struct pollfd pfd = {.fd = lp.slots[i].fcgx->ipcFd, .events = POLLRDHUP};
  return poll(&pfd, 1, 0) > 0 &&
         (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

/* Hands jobs to waiters, oldest first, until the queue is empty.  When the
 * waiters ran out first, the other processes' waiters look too. */
static void longpoll_wake(void) {
  uint64_t before = atomic_load(&lp.shared->generation);
  int handed = 0;

  while (lp.n > 0) {
    longpoll_slot_t *slot = &lp.slots[0];
    json_object *job = NULL;
    bw_error_t error;
    int rc;

    if (longpoll_hung_up(0)) {
      longpoll_finish(0);
      continue;
    }
    /* Checked again as a fresh poll would be: the grader may have been
     * forgotten (and registered anew) while it waited. */
    rc = bw_beats_check(lp.db, lp.cfg, &slot->worker_id, &error);
    if (rc == 0)
      rc = bw_job_poll(lp.db, lp.cfg, &slot->worker_id, BW_GEN_SEED, &job,
                        &error);
    if (rc == BW_EEMPTY) {
      atomic_store(&lp.shared->empty_generation, before);
      return;
    }
    if (rc == BW_EAUTH) {
      bw_request_reply_error(&slot->req, rc, error.message,
                             lp.cfg->queue_empty_code);
      longpoll_finish(0);
      continue;
    }
    if (rc == 0)
      bw_request_reply_success(&slot->req, job);
    else
      bw_request_reply_error(&slot->req, rc, error.message,
                             lp.cfg->queue_empty_code);
    longpoll_finish(0);
    if (rc < 0)
      return; /* the database failed: the others wait for the next look */
    handed++;
  }
  if (handed > 0)
    longpoll_notify_all();
  lp.look = false;
}

void bw_longpoll_tick(const struct pollfd *fds, int n) {
  int first = lp.wake_fd >= 0 ? 1 : 0;
  char sink[64];
  int64_t now;

  if (first && n > 0 && (fds[0].revents & POLLIN)) {
    ssize_t got;
    /* One datagram a call: 'w', or 'm' and maybe a job's 12 bytes. */
    while ((got = recv(lp.wake_fd, sink, sizeof sink, MSG_DONTWAIT)) > 0) {
      bson_oid_t job;
      if (sink[0] == 'w')
        lp.look = true;
      if (sink[0] == 'm' && got == 1 + (ssize_t)sizeof job.bytes) {
        memcpy(job.bytes, sink + 1, sizeof job.bytes);
        longpoll_hint(&job);
      }
    }
  }
  /* Hung up while parked: finish from the newest, so indexes hold. */
  for (int i = (n - first < lp.n ? n - first : lp.n) - 1; i >= 0; i--)
    if (fds[first + i].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
      longpoll_finish(i);
  if (lp.n + lp.watchers == 0 || lp.shared == NULL) {
    lp.look = false;
    return;
  }
  longpoll_check_signal();
  if (lp.look) {
    lp.look = false;
    longpoll_wake();
  }
  now = now_ms();
  for (int i = lp.n - 1; i >= 0; i--)
    if (now >= lp.slots[i].deadline_ms) {
      longpoll_reply_empty(&lp.slots[i]);
      longpoll_finish(i);
    }
}
