/* bench.c - shared helpers of the benchmark programs; see bench.h. */
#include "bench.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

long bench_backoff_next(long last_ms) {
  if (last_ms < 5)
    return 5;
  return last_ms >= 100 ? 200 : last_ms * 2;
}

void bench_samples_init(bench_samples_t *s) {
  s->v = NULL;
  s->n = 0;
  s->cap = 0;
}

void bench_samples_cleanup(bench_samples_t *s) {
  free(s->v);
  bench_samples_init(s);
}

int bench_samples_add(bench_samples_t *s, double seconds) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 1024;
    double *bigger = realloc(s->v, cap * sizeof *bigger);
    if (!bigger)
      return -1;
    s->v = bigger;
    s->cap = cap;
  }
  s->v[s->n++] = seconds;
  return 0;
}

int bench_samples_merge(bench_samples_t *to, const bench_samples_t *from) {
  for (size_t i = 0; i < from->n; i++)
    if (bench_samples_add(to, from->v[i]) < 0)
      return -1;
  return 0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

double bench_samples_pct(bench_samples_t *s, double p) {
  if (s->n == 0)
    return 0;
  qsort(s->v, s->n, sizeof *s->v, cmp_double);
  size_t rank = (size_t)(p / 100.0 * (double)s->n + 0.999999);
  if (rank < 1)
    rank = 1;
  if (rank > s->n)
    rank = s->n;
  return s->v[rank - 1];
}

double bench_samples_mean(const bench_samples_t *s) {
  double sum = 0;
  for (size_t i = 0; i < s->n; i++)
    sum += s->v[i];
  return s->n ? sum / (double)s->n : 0;
}

static char result_prefix[64];

void bench_result_prefix(const char *prefix) {
  snprintf(result_prefix, sizeof result_prefix, "%s", prefix ? prefix : "");
}

void bench_result(const char *key, const char *fmt, ...) {
  va_list ap;
  printf("RESULT %s%s ", result_prefix, key);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  putchar('\n');
  fflush(stdout);
}

void bench_result_latency(const char *key, bench_samples_t *s) {
  char name[128];
  snprintf(name, sizeof name, "%s_p50_ms", key);
  bench_result(name, "%.3f", bench_samples_pct(s, 50) * 1e3);
  snprintf(name, sizeof name, "%s_p99_ms", key);
  bench_result(name, "%.3f", bench_samples_pct(s, 99) * 1e3);
  snprintf(name, sizeof name, "%s_mean_ms", key);
  bench_result(name, "%.3f", bench_samples_mean(s) * 1e3);
  snprintf(name, sizeof name, "%s_n", key);
  bench_result(name, "%zu", s->n);
}

char *bench_config_alloc(int students) {
  static const char head[] =
      "{\"env\":{\"ASSIGNMENT\":\"bench\"},"
      "\"student_pipeline\":[{\"image\":\"bench/grade:1\","
      "\"env\":{\"NETID\":\"$NETID\",\"DIR\":\"/sub/${NETID}/$ASSIGNMENT\"},"
      "\"timeout\":30}],\"students\":[";
  size_t cap = sizeof head + (size_t)students * 32 + 8, len;
  char *buf = malloc(cap);
  if (!buf)
    return NULL;
  len = (size_t)snprintf(buf, cap, "%s", head);
  for (int i = 0; i < students; i++)
    len += (size_t)snprintf(buf + len, cap - len, "%s{\"NETID\":\"s%06d\"}",
                            i ? "," : "", i);
  snprintf(buf + len, cap - len, "]}");
  return buf;
}

long bench_env_long(const char *name, long fallback) {
  const char *text = getenv(name);
  char *end;
  if (!text || !*text)
    return fallback;
  errno = 0;
  long v = strtol(text, &end, 10);
  return errno || *end ? fallback : v;
}

/* One line of /proc/<pid>/stat, what groups_cpu_ticks needs of it. */
typedef struct proc_stat {
  long pid, ppid, pgrp;
  bool postgres;
  long long ticks; /* utime + stime */
} proc_stat_t;

#define MAX_PROCS 8192

static bool read_proc_stat(const char *pid, proc_stat_t *out) {
  char path[300], text[1024], *p, *comm;
  unsigned long long ut, st;
  FILE *f;

  snprintf(path, sizeof path, "/proc/%s/stat", pid);
  if ((f = fopen(path, "r")) == NULL)
    return false;
  p = fgets(text, sizeof text, f) ? strrchr(text, ')') : NULL;
  fclose(f);
  comm = strchr(text, '(');
  /* after "pid (comm)": state ppid pgrp ... utime(14) stime(15) */
  if (p == NULL || comm == NULL ||
      sscanf(p + 2, "%*c %ld %ld %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
             &out->ppid, &out->pgrp, &ut, &st) != 4)
    return false;
  *p = '\0';
  out->pid = atol(pid);
  out->postgres = strcmp(comm + 1, "postgres") == 0;
  out->ticks = (long long)(ut + st);
  return true;
}

static bool in_groups(const long *pgids, int n, long pgrp) {
  for (int i = 0; i < n; i++)
    if (pgrp == pgids[i])
      return true;
  return false;
}

long long bench_groups_cpu_ticks(const long *pgids, int n_pgids) {
  static proc_stat_t procs[MAX_PROCS];
  DIR *proc = opendir("/proc");
  struct dirent *e;
  long long total = 0;
  int n = 0;

  while (proc != NULL && n < MAX_PROCS && (e = readdir(proc)) != NULL)
    if (e->d_name[0] >= '0' && e->d_name[0] <= '9' &&
        read_proc_stat(e->d_name, &procs[n]))
      n++;
  if (proc != NULL)
    closedir(proc);
  for (int i = 0; i < n; i++) {
    bool counted = in_groups(pgids, n_pgids, procs[i].pgrp);
    for (int j = 0; !counted && j < n; j++)
      counted = procs[j].pid == procs[i].ppid && procs[j].postgres &&
                in_groups(pgids, n_pgids, procs[j].pgrp);
    if (counted)
      total += procs[i].ticks;
  }
  return total;
}
