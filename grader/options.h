/* options.h - the grader's configuration: flags, else BROADWAY_* variables,
 * else defaults.
 *
 * gr_options_load() fills a caller-owned gr_options_t; nothing in it is
 * heap-allocated, so it needs no cleanup.  The token never appears in a
 * message: `--help` and errors name where it comes from, not what it is. */
#ifndef GR_OPTIONS_H
#define GR_OPTIONS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "limits.h"

enum { GR_RUNNER_DOCKER, GR_RUNNER_BWRAP };

typedef struct gr_options {
  char api[1024];            /* BROADWAY_API, http://127.0.0.1:1470 */
  char token[256];           /* BROADWAY_TOKEN, else the token file */
  int runner;                /* BROADWAY_RUNNER: docker (default) | bwrap */
  char runner_bin[PATH_MAX]; /* docker or bwrap, found in PATH */
  char images[PATH_MAX];     /* BROADWAY_IMAGES: bwrap root filesystems */
  char work_dir[PATH_MAX];   /* BROADWAY_WORK_DIR, else $TMPDIR, else /tmp */
  char hostname[256];        /* BROADWAY_HOSTNAME, else gethostname() */
  int slots;                 /* BROADWAY_SLOTS, 1: jobs run at once */
  size_t tail_bytes;         /* BROADWAY_TAIL_BYTES, 64 KiB per stage stream */
  size_t logs_bytes;         /* BROADWAY_LOGS_BYTES, 1 MiB per job stream */
  /* BROADWAY_MEMORY, _CPUS, _PIDS, _DISK, _OUTPUT: a stage's limits when
   * it gives none, and the most it gets (gr_limits_default) */
  gr_limits_t limits;
  bool enforce; /* BROADWAY_LIMITS: on (default) | off */
  /* Found at start-up, not options: how limits are enforced here. */
  int cgroup_version; /* 1 or 2 (bwrap), 0 (docker, or limits off) */
  bool bound_job;     /* /job is a tmpfs of the stage's disk size */
  char ca_file[PATH_MAX];    /* BROADWAY_CA_FILE: CA bundle (PEM) the API's
                                HTTPS certificate is checked against; ""
                                for the system's */
} gr_options_t;

/* Parses argv and the environment.  Returns 0 to run, 1 when --help or
 * --version was printed, or after printing what is wrong to stderr a
 * negative BW_E* code: BW_EINVAL (a bad value), BW_ENOTFOUND (no token,
 * runner not in PATH), BW_ETOOBIG (a value too long), BW_ESYS (a file that
 * cannot be read). */
int gr_options_load(gr_options_t *opt, int argc, char **argv);

const char *gr_options_runner_name(int runner);

#endif
