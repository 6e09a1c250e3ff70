/* process.h - running one command under supervision: its output read as it
 * comes, a deadline, and killing everything it started.
 *
 * The command runs in a process group of its own (pgid = its pid), with
 * stdin from /dev/null, default signal handling, no inherited descriptors
 * and the grader's environment minus every BROADWAY_* variable (the token
 * stays with the grader).  On the deadline, or when the caller asks to
 * abandon, `before_kill` runs (e.g. `docker kill`), then the whole group gets
 * SIGKILL.  stdout and stderr are read concurrently with poll(), so a stage
 * that fills one pipe while we wait on the other cannot deadlock. */
#ifndef GR_PROCESS_H
#define GR_PROCESS_H

#include <stdbool.h>
#include <stddef.h>

enum { GR_STDOUT = 1, GR_STDERR = 2 };

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
  /* Called before the group kill, on timeout or abandon. */
  void (*before_kill)(void *arg);
  void *kill_arg;
} gr_process_spec_t;

typedef struct gr_process_result {
  int exit_code; /* exit status, or 128 + signal number */
  bool timed_out;
  bool abandoned;
  long long duration_ms; /* spawn to exit */
} gr_process_result_t;

/* Runs the command to its end.  Returns 0 once it was reaped, or -errno
 * when it could not be started (result untouched then). */
int gr_process_run(const gr_process_spec_t *spec, gr_process_result_t *result);

/* Milliseconds on the monotonic clock. */
long long gr_monotonic_ms(void);

#endif
