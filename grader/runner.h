/* runner.h - turning a stage into the command line that runs it in a
 * container: `docker run ...` or `bwrap ...`.
 *
 * Both runners give a stage the same world: the image as its root, the
 * job's folder read-write at /job, the stage's env and nothing else of the
 * grader's, the requested hostname, and no network but loopback unless the
 * stage enables networking.  What differs is kept here.
 *
 * Limits: docker enforces them itself (--memory with an equal
 * --memory-swap, --cpus, --pids-limit, --ulimit).  bwrap cannot: the
 * grader puts bwrap in the stage's control groups (cgroup.h) and gives it
 * rlimits (process.h); here the stage gets a /tmp of its disk size and runs
 * as uid/gid 1000 in a user namespace of its own, without capabilities, so
 * it can neither raise its rlimits nor leave its groups even when the
 * grader is root. */
#ifndef GR_RUNNER_H
#define GR_RUNNER_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "limits.h"
#include "options.h"

/* A growable NULL-terminated argv; the strings are owned copies. */
typedef struct gr_argv {
  char **v;
  size_t n, cap;
} gr_argv_t;

void gr_argv_init(gr_argv_t *argv);
void gr_argv_cleanup(gr_argv_t *argv);
int gr_argv_push(gr_argv_t *argv, const char *arg); /* 0 or BW_ENOMEM */

/* One stage as the grader runs it; the strings are borrowed from the job. */
typedef struct gr_stage {
  const char *image;
  const char **env; /* "NAME=value", validated */
  size_t n_env;
  const char **entry_point; /* NULL when the stage has none */
  size_t n_entry_point;
  const char *host_name; /* NULL: the runner's default */
  bool networking;
  int timeout_ms;
  const gr_limits_t *limits; /* NULL: not enforced (--limits off) */
} gr_stage_t;

enum { GR_RUNNER_RUN = 0, GR_RUNNER_NOTHING = 1 };

/* Fills `argv` with the command running `stage` with job_dir at /job.
 * `container` names the docker container (unused by bwrap).  Returns
 * GR_RUNNER_RUN, GR_RUNNER_NOTHING when there is nothing to run (bwrap and
 * no entry_point: a folder has no default command), or with the reason in
 * `error`: BW_EINVAL (an unsafe image name, an image without /job, /proc,
 * /dev or /tmp), BW_ENOTFOUND (an image not installed) or BW_ENOMEM. */
int gr_runner_command(const gr_options_t *opt, const gr_stage_t *stage,
                      const char *job_dir, const char *container,
                      gr_argv_t *argv, bw_error_t *error);

/* Stops the stage's container, for runners where killing the client does
 * not stop it (docker: `docker kill NAME`).  Waits 10 s at most. */
void gr_runner_kill(const gr_options_t *opt, const char *container);

#endif
