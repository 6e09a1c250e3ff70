/* bench.h - what every benchmark program shares: latency samples with
 * percentiles, the run config the benchmarks submit, and result lines the
 * bench/run-bench script collects.
 *
 * Output convention: every figure a program measures is printed on stdout as
 * one line "RESULT <key> <value>" (bench_result), so run-bench can grep the
 * figures it tabulates; everything else (progress, diagnostics) goes to
 * stderr.
 *
 * Ownership: bench_samples_init/bench_samples_cleanup pair; bench_config_alloc
 * returns a malloc'd string the caller frees. */
#ifndef BENCH_BENCH_H
#define BENCH_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The clock and sleep are the test library's: bw_test_now(),
 * bw_test_sleep_ms() (bench links tests/lib/util.o). */
#include "../tests/lib/util.h"

/* The next wait after an empty poll, given the last one (0 after a poll
 * that got a job): 5 ms doubling to 200 ms.  Graders back off too (from
 * 200 ms); without it, pollers idling at the end of a drain would take the
 * database from the last reporters. */
long bench_backoff_next(long last_ms);

/* A growable array of latencies, in seconds. */
typedef struct bench_samples {
  double *v;
  size_t n, cap;
} bench_samples_t;

void bench_samples_init(bench_samples_t *s);
void bench_samples_cleanup(bench_samples_t *s);
/* Returns 0, or -1 when out of memory (the sample is dropped). */
int bench_samples_add(bench_samples_t *s, double seconds);
/* Appends every sample of `from` to `to`.  Returns 0 or -1. */
int bench_samples_merge(bench_samples_t *to, const bench_samples_t *from);
/* The p-th percentile (0..100, nearest rank) in seconds; sorts s in place.
 * 0 when there are no samples. */
double bench_samples_pct(bench_samples_t *s, double p);
double bench_samples_mean(const bench_samples_t *s);

/* Prints "RESULT <prefix><key> <value>" on stdout and flushes; the prefix
 * is "" until bench_result_prefix() sets one. */
void bench_result_prefix(const char *prefix);
void bench_result(const char *key, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The four usual lines for a latency: <key>_p50_ms, _p99_ms, _mean_ms, _n. */
void bench_result_latency(const char *key, bench_samples_t *s);

/* A grading run config with `students` students, each {"NETID": "s<i>"},
 * and one student stage whose env refers to the student (so every hand-out
 * resolves an env, as a real run does).  NULL when out of memory. */
char *bench_config_alloc(int students);

/* An integer from the environment, or `fallback` when unset or not a number. */
long bench_env_long(const char *name, long fallback);

/* CPU ticks (user + system, sysconf(_SC_CLK_TCK) a second) used so far by
 * every process in the process groups `pgids`, and by the children of a
 * postgres process in them: the embedded PostgreSQL's backends each start
 * a session of their own (setsid), so they are found as the postmaster's
 * children (as bench/run-bench does).  At most BENCH_MAX_PGIDS groups. */
#define BENCH_MAX_PGIDS 4
long long bench_groups_cpu_ticks(const long *pgids, int n_pgids);

#endif
