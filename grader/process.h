/* process.h - running one command under supervision: its output read as it
 * comes, a deadline, and killing everything it started.
 *
 * The command runs in a process group of its own (pgid = its pid), with
 * stdin from /dev/null, default signal handling, no inherited descriptors
 * and the grader's environment minus every BROADWAY_* variable (the token
 * stays with the grader).  On the deadline, or when the caller asks to
 * abandon, or over a limit, `before_kill` runs (e.g. `docker kill`), then
 * the whole group gets SIGKILL.  A confined command is started with fork()
 * rather than posix_spawn(), to join its control groups before exec.  stdout
 * and stderr are read concurrently with poll(), so a stage that fills one pipe
 * while we wait on the other cannot deadlock. */
#ifndef GR_PROCESS_H
#define GR_PROCESS_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

enum { GR_STDOUT = 1, GR_STDERR = 2 };

/* What the child takes on before exec: it joins control groups (descriptors
 * of their cgroup.procs, open for writing) and gets resource limits: no
 * core files, `fsize` bytes per file written, `nofile` open files. */
typedef struct gr_confine {
  const int *cgroup_fds;
  size_t n_cgroup_fds;
  unsigned long long fsize;
  unsigned long nofile;
} gr_confine_t;

typedef struct gr_process_spec {
  char *const *argv; /* argv[0] is an absolute path */
  int timeout_ms;    /* <= 0: no deadline */
  /* Called with each chunk read; stream is GR_STDOUT or GR_STDERR.  NULL:
   * the output is discarded. */
  void (*on_output)(void *arg, int stream, const char *data, size_t len);
  void *output_arg;
  /* Polled every 100 ms; true kills the command (result->abandoned). */
  bool (*should_abandon)(void *arg);
  void *abandon_arg;
  /* Called before the group kill, on timeout, abandon or a limit. */
  void (*before_kill)(void *arg);
  void *kill_arg;
  /* Called at every turn of the loop (after each read, at least every
   * 100 ms): non-zero kills the command and becomes result->over_limit. */
  int (*over_limit)(void *arg);
  void *limit_arg;
  const gr_confine_t *confine; /* NULL: none */
} gr_process_spec_t;

typedef struct gr_process_result {
  int exit_code; /* exit status, or 128 + signal number */
  bool timed_out;
  bool abandoned;
  int over_limit;        /* what spec->over_limit said when it killed */
  long long duration_ms; /* spawn to exit */
} gr_process_result_t;

/* Runs the command to its end.  Returns 0 once it was reaped, or BW_ESYS
 * with strerror(errno) in `error` (may be NULL) when it could not be
 * started (result untouched then). */
int gr_process_run(const gr_process_spec_t *spec, gr_process_result_t *result,
                   bw_error_t *error);

/* Milliseconds on the monotonic clock. */
long long gr_monotonic_ms(void);

#endif
