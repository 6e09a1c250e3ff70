/* limits.h - what one stage may use: memory, CPUs, processes, the size of
 * /job and its output, and the names a stage stopped at a limit is reported
 * with (`"killed_by"`).
 *
 * A stage asks with its keys memory, cpus, pids, disk and output (the API
 * already checked them and filled in its defaults).  The grader's own values
 * (--memory ... or BROADWAY_MEMORY ...) are both the default for a stage
 * that says nothing (a run from an older API) and the most this machine
 * gives: the lower of the stage's and the grader's value wins. */
#ifndef GR_LIMITS_H
#define GR_LIMITS_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct gr_limits {
  uint64_t memory; /* bytes of RAM, no swap */
  double cpus;     /* CPUs' worth of time per period */
  long pids;       /* processes and threads at once */
  uint64_t disk;   /* bytes of /job (and of the stage's /tmp) */
  uint64_t output; /* bytes of stdout + stderr before the stage is stopped */
} gr_limits_t;

/* Why a stage was stopped; GR_KILLED_NONE when it ended by itself. */
typedef enum gr_killed_by {
  GR_KILLED_NONE,
  GR_KILLED_MEMORY,
  GR_KILLED_PIDS,
  GR_KILLED_CPU,
  GR_KILLED_DISK,
  GR_KILLED_OUTPUT,
  GR_KILLED_TIMEOUT
} gr_killed_by_t;

/* The grader's defaults: 1 GiB, 1 CPU, 256 pids, 1 GiB, 64 MiB. */
void gr_limits_default(gr_limits_t *limits);

/* The stage's limits: its keys where it has them, `caps` where not, never
 * more than `caps`.  Returns 0, or BW_EINVAL with "memory: expected ..." in
 * error (the API checks the same, so only a foreign API gets there). */
int gr_limits_of_stage(json_object *stage, const gr_limits_t *caps,
                       gr_limits_t *out, bw_error_t *error);

/* "memory", "pids", ... ; NULL for GR_KILLED_NONE. */
const char *gr_killed_by_name(gr_killed_by_t reason);

/* The limit that `reason` names, as JSON (bytes, CPUs, pids, or the
 * timeout in seconds); NULL for GR_KILLED_NONE. */
json_object *gr_killed_by_limit(gr_killed_by_t reason,
                                const gr_limits_t *limits, int timeout_ms);

#endif
