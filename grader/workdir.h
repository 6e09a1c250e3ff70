/* workdir.h - the job's private folder, mounted at /job in every stage.
 *
 * Made with mkdtemp (mode 0700, so other local users cannot read a
 * student's files) and removed recursively when the job ends, whatever the
 * stages left in it: read-only folders, symlinks (removed, never followed).
 *
 * While a job runs, its grader holds an flock on the folder.  A grader
 * killed with SIGKILL cannot clean up, but the kernel drops its locks, so
 * the next grader to start on the same work dir knows which folders are
 * orphans without trusting pids (which mean nothing across pid
 * namespaces). */
#ifndef GR_WORKDIR_H
#define GR_WORKDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct gr_workdir {
  char path[4096];
  int lock_fd;  /* the folder, opened and flock'ed; -1 if none */
  bool mounted; /* a tmpfs is mounted on it (gr_workdir_bound) */
} gr_workdir_t;

/* Every function that fails returns BW_ESYS with strerror(errno) as the
 * message of `error` (which may be NULL), unless it says otherwise. */

/* Creates and locks <base>/broadway-job-XXXXXX.  Returns 0 or BW_ESYS. */
int gr_workdir_create(gr_workdir_t *dir, const char *base, bw_error_t *error);

/* Writes `len` bytes to <dir>/<name> (mode 0644).  Returns 0 or BW_ESYS. */
int gr_workdir_write(const gr_workdir_t *dir, const char *name,
                     const char *data, size_t len, bw_error_t *error);

/* Makes the folder a tmpfs of `bytes` (mode 0700), or resizes the one it
 * is: what a stage may write to /job.  Needs CAP_SYS_ADMIN (root).
 * Returns 0, BW_ETOOBIG when it already holds more than `bytes` (message
 * "it already holds more"), or BW_ESYS. */
int gr_workdir_bound(gr_workdir_t *dir, uint64_t bytes, bw_error_t *error);

/* True when the folder's tmpfs has no free block left. */
bool gr_workdir_full(const gr_workdir_t *dir);

/* Whether this process can bound job folders in `base`: mounts and
 * unmounts a tmpfs on a scratch folder.  Returns 0 or BW_ESYS. */
int gr_workdir_probe_bound(const char *base, bw_error_t *error);

/* Removes the folder and everything below it (unmounting its tmpfs), then
 * drops the lock.
 * Returns 0 or BW_ESYS, the first failure (what could not be removed stays;
 * the caller logs it). */
int gr_workdir_remove(gr_workdir_t *dir, bw_error_t *error);

/* Removes the job folders in `base` that no grader holds (left by one that
 * was killed) and that are older than a minute (a folder is created before
 * it is locked), unmounting their tmpfs.  Returns how many were removed. */
int gr_workdir_sweep(const char *base);

#endif
