/* progress.h - how `broadway run --wait` shows a run advancing: one bar
 * redrawn in place on a terminal, one plain line every few seconds
 * otherwise (a log, a CI job).  Pure: counts in, text out. */
#ifndef BW_CLI_PROGRESS_H
#define BW_CLI_PROGRESS_H

#include <stddef.h>

typedef struct cli_counts {
  int total, succeeded, failed, running, queued, cancelled;
} cli_counts_t;

typedef struct cli_progress {
  double started;    /* when watching began (seconds, monotonic) */
  int done_at_start; /* jobs already final then: the rate counts only ours */
} cli_progress_t;

/* Jobs per second since watching began, and the seconds left at that rate
 * (-1 when unknown). */
void cli_progress_rate(const cli_progress_t *p, const cli_counts_t *c,
                       double now, double *rate, double *eta);

/* The bar (width columns of it) with counts, rate and ETA, into out. */
void cli_progress_bar(const cli_progress_t *p, const cli_counts_t *c,
                      const char *state, double now, int width, char *out,
                      size_t size);

/* The same as one plain line. */
void cli_progress_line(const cli_progress_t *p, const cli_counts_t *c,
                       const char *state, double now, char *out, size_t size);

#endif
