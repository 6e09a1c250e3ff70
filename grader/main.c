/* broadway-grader: registers with the API, heartbeats, and runs grading
 * jobs in BROADWAY_SLOTS threads until SIGTERM or SIGINT.
 *
 * Threads: this one (registers, then waits), one for signals, one for
 * heartbeats, one per slot.  Signals are blocked everywhere and taken by
 * sigwait() in the signal thread, so no handler runs inside libcurl or
 * malloc; the stop it triggers wakes every sleeping thread at once. */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

#include "cgroup.h"
#include "error.h"
#include "log.h"
#include "options.h"
#include "session.h"
#include "slot.h"
#include "workdir.h"

typedef struct signal_waiter {
  gr_session_t *session;
  sigset_t set;
} signal_waiter_t;

static void *signal_main(void *arg) {
  signal_waiter_t *waiter = arg;
  int sig = 0;

  sigwait(&waiter->set, &sig);
  if (!gr_session_stopping(waiter->session))
    bw_log_info("signal %d: stopping; running jobs are abandoned, not "
                "reported",
                sig);
  gr_session_stop(waiter->session);
  return NULL;
}

/* Runs the heartbeat and n slot threads until the session stops.  Returns 0,
 * BW_ENOMEM or BW_ESYS (a thread could not start). */
static int run_slots(gr_session_t *session, int n) {
  pthread_t heartbeat, *threads = calloc((size_t)n, sizeof *threads);
  gr_slot_t *slots = calloc((size_t)n, sizeof *slots);
  int i, started = 0, rc = 0;

  if (threads == NULL || slots == NULL) {
    free(threads);
    free(slots);
    return BW_ENOMEM;
  }
  if (pthread_create(&heartbeat, NULL, gr_heartbeat_main, session) != 0) {
    free(threads);
    free(slots);
    return BW_ESYS;
  }
  for (i = 0; i < n; i++) {
    slots[i].session = session;
    slots[i].index = i;
    if (pthread_create(&threads[i], NULL, gr_slot_main, &slots[i]) != 0) {
      bw_log_error("cannot start slot %d; stopping", i);
      gr_session_stop(session);
      rc = BW_ESYS;
      break;
    }
    started++;
  }
  for (i = 0; i < started; i++)
    pthread_join(threads[i], NULL);
  /* Jobs first, heartbeats last: a job being killed is still ours until
   * its stages are gone. */
  gr_session_stop(session);
  pthread_join(heartbeat, NULL);
  free(threads);
  free(slots);
  return rc;
}

static int run(const gr_options_t *opt) {
  signal_waiter_t waiter;
  gr_session_t session;
  pthread_t signals;
  gr_http_t http;
  int rc;

  if ((rc = gr_session_init(&session, opt)) != 0)
    return rc;
  waiter.session = &session;
  sigemptyset(&waiter.set);
  sigaddset(&waiter.set, SIGTERM);
  sigaddset(&waiter.set, SIGINT);
  sigaddset(&waiter.set, SIGHUP); /* the terminal went away: same as TERM */
  pthread_sigmask(SIG_BLOCK, &waiter.set, NULL); /* inherited by threads */
  if (pthread_create(&signals, NULL, signal_main, &waiter) != 0) {
    gr_session_cleanup(&session);
    return BW_ESYS;
  }
  /* From here the signal thread uses session and waiter, which live in this
   * frame: every way out goes through its join below. */
  /* Stopped before registering (BW_ECONFLICT) is a clean stop: 0. */
  if ((rc = gr_http_init(&http, opt->api, opt->token)) == 0 &&
      gr_session_register(&session, &http) == 0)
    rc = run_slots(&session, opt->slots);
  gr_http_cleanup(&http);
  /* Wake the signal thread if the stop came from elsewhere. */
  if (pthread_kill(signals, SIGTERM) == 0)
    pthread_join(signals, NULL);
  gr_session_cleanup(&session);
  bw_log_info("stopped");
  return rc;
}

/* Finds how this host enforces the stages' limits, or says why it cannot.
 * Returns 0, or the failed check's BW_E* code (gr_workdir_probe_bound's or
 * gr_cgroup_setup's) after printing why (the grader must not start: a stage
 * it ran would be unbounded). */
static int setup_limits(gr_options_t *opt) {
  const gr_limits_t *l = &opt->limits;
  bw_error_t error;
  int rc;

  if (!opt->enforce) {
    bw_log_warn("limits off: stages run without memory, CPU, process, disk "
                "or output limits");
    return 0;
  }
  /* bwrap: the job folders' tmpfs are mounted in a mount namespace of the
   * grader's own, which the kernel tears down with the grader, so not even
   * a SIGKILL leaves them mounted.  (The docker daemon must see them: they
   * stay in the host's namespace.) */
  if (opt->runner == GR_RUNNER_BWRAP &&
      (unshare(CLONE_NEWNS) != 0 ||
       mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0))
    bw_log_debug("no private mount namespace: %s", strerror(errno));
  rc = gr_workdir_probe_bound(opt->work_dir, &error);
  opt->bound_job = rc == 0;
  if (!opt->bound_job && opt->runner == GR_RUNNER_DOCKER)
    bw_log_warn("disk: cannot mount a tmpfs on job folders (%s; it needs "
                "root): only each file is limited (--ulimit fsize)",
                error.message);
  if (!opt->bound_job && opt->runner == GR_RUNNER_BWRAP) {
    fprintf(stderr,
            "broadway-grader: cannot enforce the disk limit: mounting a tmpfs "
            "on a job folder in %s failed: %s (run the grader as root, or "
            "--limits off)\n",
            opt->work_dir, error.message);
    return rc;
  }
  if (opt->runner == GR_RUNNER_BWRAP) {
    rc = gr_cgroup_setup(&error);
    if (rc < 0) {
      fprintf(stderr,
              "broadway-grader: cannot enforce memory, CPU and process "
              "limits: %s (run the grader as root where cgroup v1 is "
              "mounted, in a delegated cgroup v2 group, or --limits off)\n",
              error.message);
      return rc;
    }
    opt->cgroup_version = rc;
  }
  bw_log_info("limits per stage at most: memory %llu, cpus %g, pids %ld, "
              "disk %llu, output %llu (cgroup v%d, /job %s)",
              (unsigned long long)l->memory, l->cpus, l->pids,
              (unsigned long long)l->disk, (unsigned long long)l->output,
              opt->cgroup_version, opt->bound_job ? "a tmpfs" : "a folder");
  return 0;
}

int main(int argc, char **argv) {
  gr_options_t opt;
  int rc;

  bw_log_init("grader");
  rc = gr_options_load(&opt, argc, argv);
  if (rc != 0)
    return rc > 0 ? 0 : 2;
  /* A peer closing a connection must be an error code, not our death. */
  signal(SIGPIPE, SIG_IGN);
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
    bw_log_error("libcurl failed to initialise");
    return 1;
  }
  gr_http_set_ca_file(opt.ca_file);
  bw_log_info("api %s, runner %s, %d slot(s), host %s", opt.api,
              gr_options_runner_name(opt.runner), opt.slots, opt.hostname);
  rc = gr_workdir_sweep(opt.work_dir);
  if (rc > 0)
    bw_log_info("removed %d job folder(s) left by graders that died", rc);
  if (setup_limits(&opt) != 0) {
    curl_global_cleanup();
    return 2;
  }
  rc = run(&opt);
  curl_global_cleanup();
  return rc == 0 ? 0 : 1;
}
