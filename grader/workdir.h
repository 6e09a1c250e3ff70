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

#include <stddef.h>

typedef struct gr_workdir {
  char path[4096];
  int lock_fd; /* the folder, opened and flock'ed; -1 if none */
} gr_workdir_t;

/* Creates and locks <base>/broadway-job-XXXXXX.  Returns 0 or -errno. */
int gr_workdir_create(gr_workdir_t *dir, const char *base);

/* Writes `len` bytes to <dir>/<name> (mode 0644).  Returns 0 or -errno. */
int gr_workdir_write(const gr_workdir_t *dir, const char *name,
                     const char *data, size_t len);

/* Removes the folder and everything below it, then drops the lock.
 * Returns 0 or -errno (what could not be removed stays; the caller logs
 * it). */
int gr_workdir_remove(gr_workdir_t *dir);

/* Removes the job folders in `base` that no grader holds (left by one that
 * was killed) and that are older than a minute (a folder is created before
 * it is locked).  Returns how many were removed. */
int gr_workdir_sweep(const char *base);

#endif
