/* cgroup.h - a control group per stage, a child of the grader's own group,
 * holding the kernel's limits on memory (no swap), processes and CPU time,
 * and counting what the stage used.
 *
 * Two kinds of host:
 *   - cgroup v2 with the memory, pids and cpu controllers available in the
 *     grader's group (systemd: a unit with Delegate=yes, or a user's
 *     delegated slice).  The grader moves itself into a leaf "grader" child
 *     (a group with processes may not hand controllers to children), enables
 *     the controllers for its children, and makes one group per stage next
 *     to that leaf.
 *   - cgroup v1 with the memory, pids, cpu and cpuacct hierarchies mounted
 *     and the grader's group writable in each (as root).  A stage gets one
 *     group in each hierarchy.
 * gr_cgroup_setup() finds which one the host has, or says why neither.
 *
 * Groups are named broadway-<grader pid>-<n>; the setup removes those of
 * graders that are no longer running (killed with SIGKILL). */
#ifndef GR_CGROUP_H
#define GR_CGROUP_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "limits.h"

#define GR_CGROUP_DIRS 4

typedef struct gr_cgroup {
  char dirs[GR_CGROUP_DIRS][PATH_MAX]; /* the stage's groups */
  int n_dirs;
  int procs_fds[GR_CGROUP_DIRS]; /* their cgroup.procs, open for writing */
} gr_cgroup_t;

/* What a stage used, read from its groups. */
typedef struct gr_cgroup_usage {
  long long oom_kills;    /* processes the kernel killed at the memory limit */
  long long pids_refused; /* forks refused at the pids limit */
  long long cpu_ns;       /* CPU time of all its processes */
  long long periods;      /* CPU periods in which it ran */
  long long throttled;    /* ... and in which it used up its share */
  long long memory_peak;  /* bytes, or -1 when the kernel does not say */
} gr_cgroup_usage_t;

/* Once, before any thread starts.  Returns 1 (v1) or 2 (v2) when stages can
 * be confined, or with the reason in error: BW_ENOTFOUND (no usable
 * hierarchy, a controller missing), BW_ETOOBIG (a group path too long) or
 * BW_ESYS (a group could not be made). */
int gr_cgroup_setup(bw_error_t *error);

/* Makes the stage's groups with `limits`.  Returns 0 or BW_ESYS (error says
 * which file and why); on failure nothing is left. */
int gr_cgroup_create(gr_cgroup_t *cg, const gr_limits_t *limits,
                     bw_error_t *error);

/* Reads the counters; fields it cannot read stay 0 (peak -1). */
void gr_cgroup_usage(const gr_cgroup_t *cg, gr_cgroup_usage_t *usage);

/* Kills whatever is left in the groups and removes them.  Returns 0, or
 * BW_ESYS when a group could not be removed (logged). */
int gr_cgroup_destroy(gr_cgroup_t *cg);

#endif
