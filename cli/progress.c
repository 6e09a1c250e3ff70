#include "progress.h"

#include <stdio.h>
#include <string.h>

static int progress_done(const cli_counts_t *c) {
  return c->succeeded + c->failed + c->cancelled;
}

void cli_progress_rate(const cli_progress_t *p, const cli_counts_t *c,
                       double now, double *rate, double *eta) {
  double elapsed = now - p->started;
  int ours = progress_done(c) - p->done_at_start,
      left = c->total - progress_done(c);
  *rate = elapsed > 0.5 && ours > 0 ? ours / elapsed : 0;
  *eta = *rate > 0 ? left / *rate : -1;
}

static void progress_eta(double eta, char *out, size_t size) {
  long s = (long)(eta + 0.5);
  if (eta < 0)
    snprintf(out, size, "?");
  else if (s >= 3600)
    snprintf(out, size, "%ldh%02ldm", s / 3600, s / 60 % 60);
  else if (s >= 60)
    snprintf(out, size, "%ldm%02lds", s / 60, s % 60);
  else
    snprintf(out, size, "%lds", s);
}

void cli_progress_bar(const cli_progress_t *p, const cli_counts_t *c,
                      const char *state, double now, int width, char *out,
                      size_t size) {
  char bar[256], eta_text[32];
  double rate, eta;
  int done = progress_done(c), filled, failed;

  if (width > (int)sizeof bar - 1)
    width = (int)sizeof bar - 1;
  filled = c->total > 0 ? (int)((long)done * width / c->total) : 0;
  failed = c->total > 0 ? (int)((long)c->failed * width / c->total) : 0;
  for (int i = 0; i < width; i++)
    bar[i] = i < failed ? 'x' : i < filled ? '#' : '.';
  bar[width] = '\0';
  cli_progress_rate(p, c, now, &rate, &eta);
  progress_eta(eta, eta_text, sizeof eta_text);
  snprintf(out, size,
           "[%s] %d/%d done  %d failed  %d running  %d queued  %.1f/s  ETA %s"
           "  %s",
           bar, done, c->total, c->failed, c->running, c->queued, rate,
           eta_text, state);
}

void cli_progress_line(const cli_progress_t *p, const cli_counts_t *c,
                       const char *state, double now, char *out, size_t size) {
  char eta_text[32];
  double rate, eta;
  cli_progress_rate(p, c, now, &rate, &eta);
  progress_eta(eta, eta_text, sizeof eta_text);
  snprintf(out, size,
           "%s: %d/%d done, %d failed, %d running, %d queued, %.1f jobs/s, "
           "ETA %s",
           state, progress_done(c), c->total, c->failed, c->running, c->queued,
           rate, eta_text);
}
