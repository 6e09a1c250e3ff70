#include "process.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <linux/close_range.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define TICK_MS 100
/* After the command exits, how long its pipes may stay open (held by
 * something it left behind) before we stop reading. */
#define DRAIN_GRACE_MS 500
/* After SIGKILL, how long we keep reading before giving up on the pipes. */
#define KILL_GRACE_MS 5000

typedef struct supervision {
  const gr_process_spec_t *spec;
  pid_t pid;
  int fds[2]; /* stdout, stderr read ends; -1 once closed */
  bool reaped, killed;
  int status;
  long long started, deadline, reaped_at, killed_at;
} supervision_t;

long long gr_monotonic_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The environment minus BROADWAY_*; the array is new, the strings are the
 * process's own. */
static char **child_environment(void) {
  size_t n = 0, kept = 0, i;
  char **env;

  while (environ[n] != NULL)
    n++;
  env = calloc(n + 1, sizeof *env);
  if (env == NULL)
    return NULL;
  for (i = 0; i < n; i++)
    if (strncmp(environ[i], "BROADWAY_", 9) != 0)
      env[kept++] = environ[i];
  return env;
}

/* posix_spawn with the pipes as stdout and stderr.  Returns 0 or an errno
 * (posix_spawn's own convention; gr_process_run turns it into BW_ESYS). */
static int spawn(const gr_process_spec_t *spec, int out_w, int err_w,
                 pid_t *pid) {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  sigset_t none, all;
  char **env = child_environment();
  int rc;

  if (env == NULL)
    return ENOMEM;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_w, 1);
  posix_spawn_file_actions_adddup2(&actions, err_w, 2);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  posix_spawnattr_init(&attr);
  /* Own group so one kill(-pgid) reaches all it forks; signals unblocked
   * and defaulted because the grader blocks TERM/INT and ignores PIPE. */
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP |
                                      POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  rc = posix_spawn(pid, spec->argv[0], &actions, &attr, spec->argv, env);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  free(env);
  return rc;
}

/* In the forked child: only async-signal-safe calls.  Returns only on
 * failure, with errno set. */
static void confined_child(const gr_process_spec_t *spec, int out_w, int err_w,
                           char **env) {
  const gr_confine_t *c = spec->confine;
  struct rlimit core = {0, 0}, fsize = {c->fsize, c->fsize},
                nofile = {c->nofile, c->nofile};
  struct sigaction dfl;
  sigset_t none;
  int null_fd;

  for (size_t i = 0; i < c->n_cgroup_fds; i++)
    if (write(c->cgroup_fds[i], "0", 1) != 1)
      return;
  if (setpgid(0, 0) != 0 || setrlimit(RLIMIT_CORE, &core) != 0 ||
      (c->fsize > 0 && setrlimit(RLIMIT_FSIZE, &fsize) != 0) ||
      (c->nofile > 0 && setrlimit(RLIMIT_NOFILE, &nofile) != 0))
    return;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; sig++)
    sigaction(sig, &dfl, NULL); /* KILL, STOP and RT internals refuse: fine */
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  if ((null_fd = open("/dev/null", O_RDONLY)) < 0 || dup2(null_fd, 0) < 0 ||
      dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0)
    return;
  /* Every descriptor but 0-2 closes at exec, the status pipe included. */
  if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
    return;
  execve(spec->argv[0], spec->argv, env);
}

/* fork + confined_child; the child's errno comes back through a pipe that
 * exec closes.  Returns 0 or an errno. */
static int spawn_confined(const gr_process_spec_t *spec, int out_w, int err_w,
                          pid_t *pid) {
  char **env = child_environment();
  int status_pipe[2], err = 0;
  ssize_t n;

  if (env == NULL)
    return ENOMEM;
  if (pipe2(status_pipe, O_CLOEXEC) != 0) {
    err = errno;
    free(env);
    return err;
  }
  *pid = fork();
  if (*pid == 0) {
    confined_child(spec, out_w, err_w, env);
    err = errno;
    n = write(status_pipe[1], &err, sizeof err);
    _exit(127);
  }
  err = *pid < 0 ? errno : 0;
  close(status_pipe[1]);
  free(env);
  if (*pid > 0) {
    do
      n = read(status_pipe[0], &err, sizeof err);
    while (n < 0 && errno == EINTR);
    if (n == (ssize_t)sizeof err)
      waitpid(*pid, NULL, 0); /* it failed before exec */
    else
      err = 0;
  }
  close(status_pipe[0]);
  return err;
}

static void kill_everything(supervision_t *sv) {
  if (sv->killed)
    return;
  sv->killed = true;
  sv->killed_at = gr_monotonic_ms();
  if (sv->spec->before_kill != NULL)
    sv->spec->before_kill(sv->spec->kill_arg);
  /* The group outlives its leader while members remain, so this is safe
   * even after the leader was reaped. */
  kill(-sv->pid, SIGKILL);
}

static void close_fd(supervision_t *sv, int i) {
  if (sv->fds[i] >= 0)
    close(sv->fds[i]);
  sv->fds[i] = -1;
}

static void read_ready(supervision_t *sv, int i) {
  char buf[65536];
  ssize_t n = read(sv->fds[i], buf, sizeof buf);

  if (n > 0 && sv->spec->on_output != NULL)
    sv->spec->on_output(sv->spec->output_arg, i + 1, buf, (size_t)n);
  else if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
    close_fd(sv, i);
}

static void wait_for_output(supervision_t *sv, int timeout_ms) {
  struct pollfd pfd[2];
  int n = 0, i;

  for (i = 0; i < 2; i++)
    if (sv->fds[i] >= 0) {
      pfd[n].fd = sv->fds[i];
      pfd[n].events = POLLIN;
      pfd[n].revents = 0;
      n++;
    }
  if (poll(pfd, (nfds_t)n, timeout_ms) <= 0)
    return;
  for (i = 0; i < n; i++)
    if (pfd[i].revents != 0)
      read_ready(sv, pfd[i].fd == sv->fds[0] ? 0 : 1);
}

static void try_reap(supervision_t *sv) {
  if (!sv->reaped && waitpid(sv->pid, &sv->status, WNOHANG) == sv->pid) {
    sv->reaped = true;
    sv->reaped_at = gr_monotonic_ms();
  }
}

/* One turn of the loop: checks the clocks, reads, reaps.  Returns false
 * when supervision is over. */
static bool supervise_step(supervision_t *sv, gr_process_result_t *result) {
  long long now = gr_monotonic_ms();
  bool pipes_open = sv->fds[0] >= 0 || sv->fds[1] >= 0;
  int wait_ms = TICK_MS;

  if (sv->reaped && !pipes_open)
    return false;
  if (!sv->killed && sv->spec->timeout_ms > 0 && now >= sv->deadline) {
    result->timed_out = true;
    kill_everything(sv);
  }
  if (!sv->killed && sv->spec->should_abandon != NULL &&
      sv->spec->should_abandon(sv->spec->abandon_arg)) {
    result->abandoned = true;
    kill_everything(sv);
  }
  if (!sv->killed && sv->spec->over_limit != NULL &&
      (result->over_limit = sv->spec->over_limit(sv->spec->limit_arg)) != 0)
    kill_everything(sv);
  if ((sv->reaped && now - sv->reaped_at > DRAIN_GRACE_MS) ||
      (sv->killed && now - sv->killed_at > KILL_GRACE_MS)) {
    kill(-sv->pid, SIGKILL); /* whatever still holds the pipes */
    close_fd(sv, 0);
    close_fd(sv, 1);
    return false;
  }
  if (!sv->killed && sv->spec->timeout_ms > 0 && sv->deadline - now < wait_ms)
    wait_ms = (int)(sv->deadline - now) + 1;
  if (pipes_open)
    wait_for_output(sv, wait_ms);
  else
    poll(NULL, 0, 10);
  try_reap(sv);
  return true;
}

static void finish(supervision_t *sv, gr_process_result_t *result) {
  if (!sv->reaped) {
    waitpid(sv->pid, &sv->status, 0); /* after SIGKILL: not long */
    sv->reaped_at = gr_monotonic_ms();
  }
  close_fd(sv, 0);
  close_fd(sv, 1);
  if (WIFEXITED(sv->status))
    result->exit_code = WEXITSTATUS(sv->status);
  else if (WIFSIGNALED(sv->status))
    result->exit_code = 128 + WTERMSIG(sv->status);
  else
    result->exit_code = -1;
  result->duration_ms = sv->reaped_at - sv->started;
}

int gr_process_run(const gr_process_spec_t *spec, gr_process_result_t *result,
                   bw_error_t *error) {
  supervision_t sv = {.spec = spec, .fds = {-1, -1}};
  int out[2], err[2], rc;

  if (pipe2(out, O_CLOEXEC) != 0)
    return bw_error_sys(error, errno);
  if (pipe2(err, O_CLOEXEC) != 0) {
    rc = bw_error_sys(error, errno);
    close(out[0]);
    close(out[1]);
    return rc;
  }
  rc = spec->confine != NULL ? spawn_confined(spec, out[1], err[1], &sv.pid)
                             : spawn(spec, out[1], err[1], &sv.pid);
  close(out[1]);
  close(err[1]);
  if (rc != 0) {
    close(out[0]);
    close(err[0]);
    return bw_error_sys(error, rc);
  }
  sv.fds[0] = out[0];
  sv.fds[1] = err[0];
  fcntl(out[0], F_SETFL, O_NONBLOCK);
  fcntl(err[0], F_SETFL, O_NONBLOCK);
  memset(result, 0, sizeof *result);
  sv.started = gr_monotonic_ms();
  sv.deadline = sv.started + spec->timeout_ms;
  while (supervise_step(&sv, result))
    ;
  finish(&sv, result);
  return 0;
}
