/* dblimit.c - the database baseline: what one job costs the service in the
 * database, with no HTTP, by the same common/ code the FastCGI handlers
 * call.  Per job, like a grader's poll + result through the API:
 *
 *   bw_worker_check + bw_job_poll            (GET  /api/v1/grading_job)
 *   bw_worker_check + bw_job_report          (POST /api/v1/grading_job/{id})
 *
 * with G processes in parallel (one database client each, as each FastCGI
 * worker has one) against the same embedded FerretDB as the stack, each
 * heartbeating at the configured interval like a grader.
 *
 *   bw-dblimit run --procs G --jobs N [--waiting W] [--max-seconds T]
 *                                         drain N jobs of a run of N + W
 *                                         students (W stay queued), or
 *                                         stop after T seconds
 *   bw-dblimit create --students S        time and peak memory of each
 *                                         step of creating and starting a
 *                                         run, as the handlers do it
 *   bw-dblimit fairness --procs G --jobs N --students S
 *                                         two courses: hand-outs until an
 *                                         S-job run is out behind course
 *                                         "a"'s two N-job runs (issue 14)
 *
 * Results are prefixed "db_" (--label L: "L_").
 *
 * The database is found as the service finds it: bw_config_load() with the
 * stack's BROADWAY_DATA (or BROADWAY_MONGO_URI / BROADWAY_DB).
 *
 * Where the time goes: the binary is linked with -Wl,--wrap for the driver
 * calls common/ makes (see the Makefile's bench block), so every database
 * call of the measured loop is counted and timed by kind, without touching
 * common/.  That gives the round trips one job costs and the time of each. */
#include <getopt.h>
#include <json-c/json.h>
#include <mongoc/mongoc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "config.h"
#include "db.h"
#include "job.h"
#include "lane.h"
#include "queue.h"
#include "run.h"
#include "json.h"
#include "validate.h"
#include "worker.h"

#define MAX_PROCS 256

/* ---- counting the driver calls --------------------------------------- */

/* One kind of call on one collection ("find jobs", "insert claims"); the
 * queue partitions count as one collection, "queue". */
typedef struct op_stat {
  char name[48];
  long calls;
  double seconds;
} op_stat_t;

#define MAX_STATS 48
#define MAX_CURSORS 16

/* Per process; copied to shared memory when a child ends. */
static op_stat_t op_stats[MAX_STATS];
static int op_count;
/* Open cursors, so the round trips of cursor_next / cursor_destroy are
 * charged to the find that opened them. */
static struct {
  const mongoc_cursor_t *cursor;
  op_stat_t *stat;
} open_cursors[MAX_CURSORS];

static op_stat_t *op_stat(const char *op, const mongoc_collection_t *coll) {
  static op_stat_t overflow = {"other", 0, 0};
  char name[48], cname[32];
  const char *n =
      coll ? mongoc_collection_get_name((mongoc_collection_t *)(uintptr_t)coll)
           : "?";
  snprintf(cname, sizeof cname, "%s", n);
  if (strncmp(cname, "queue_", 6) == 0)
    cname[5] = '\0';
  snprintf(name, sizeof name, "%s %s", op, cname);
  for (int i = 0; i < op_count; i++)
    if (strcmp(op_stats[i].name, name) == 0)
      return &op_stats[i];
  if (op_count == MAX_STATS)
    return &overflow;
  snprintf(op_stats[op_count].name, sizeof op_stats[op_count].name, "%s", name);
  return &op_stats[op_count++];
}

static op_stat_t *cursor_stat(const mongoc_cursor_t *cursor, bool forget) {
  for (int i = 0; i < MAX_CURSORS; i++)
    if (open_cursors[i].cursor == cursor) {
      op_stat_t *s = open_cursors[i].stat;
      if (forget)
        open_cursors[i].cursor = NULL;
      return s;
    }
  return op_stat("cursor", NULL);
}

static void cursor_remember(const mongoc_cursor_t *cursor, op_stat_t *s) {
  for (int i = 0; i < MAX_CURSORS; i++)
    if (open_cursors[i].cursor == NULL) {
      open_cursors[i].cursor = cursor;
      open_cursors[i].stat = s;
      return;
    }
}

#define TIMED(stat, call)                                                      \
  do {                                                                         \
    op_stat_t *s_ = (stat);                                                    \
    double t_ = bw_test_now();                                                 \
    call;                                                                      \
    s_->seconds += bw_test_now() - t_;                                         \
  } while (0)

/* The body of a wrapper: counts one call of `op` on collection `coll`,
 * times `call` and returns its `type` result. */
#define COUNT_AND_RETURN(type, op, coll, call)                                 \
  do {                                                                         \
    op_stat_t *c_ = op_stat(op, coll);                                         \
    type r_;                                                                   \
    c_->calls++;                                                               \
    TIMED(c_, r_ = (call));                                                    \
    return r_;                                                                 \
  } while (0)

bool __real_mongoc_collection_insert_one(mongoc_collection_t *, const bson_t *,
                                         const bson_t *, bson_t *,
                                         bson_error_t *);
mongoc_cursor_t *
__real_mongoc_collection_find_with_opts(mongoc_collection_t *, const bson_t *,
                                        const bson_t *,
                                        const mongoc_read_prefs_t *);
bool __real_mongoc_cursor_next(mongoc_cursor_t *, const bson_t **);
void __real_mongoc_cursor_destroy(mongoc_cursor_t *);
bool __real_mongoc_collection_update_one(mongoc_collection_t *, const bson_t *,
                                         const bson_t *, const bson_t *,
                                         bson_t *, bson_error_t *);
bool __real_mongoc_collection_delete_one(mongoc_collection_t *, const bson_t *,
                                         const bson_t *, bson_t *,
                                         bson_error_t *);
bool __real_mongoc_collection_find_and_modify_with_opts(
    mongoc_collection_t *, const bson_t *,
    const mongoc_find_and_modify_opts_t *, bson_t *, bson_error_t *);
uint32_t __real_mongoc_bulk_operation_execute(mongoc_bulk_operation_t *,
                                              bson_t *, bson_error_t *);

bool __wrap_mongoc_collection_insert_one(mongoc_collection_t *c,
                                         const bson_t *doc, const bson_t *opts,
                                         bson_t *reply, bson_error_t *error);
mongoc_cursor_t *__wrap_mongoc_collection_find_with_opts(
    mongoc_collection_t *c, const bson_t *filter, const bson_t *opts,
    const mongoc_read_prefs_t *prefs);
bool __wrap_mongoc_cursor_next(mongoc_cursor_t *cursor, const bson_t **doc);
void __wrap_mongoc_cursor_destroy(mongoc_cursor_t *cursor);
bool __wrap_mongoc_collection_update_one(mongoc_collection_t *c,
                                         const bson_t *filter,
                                         const bson_t *update,
                                         const bson_t *opts, bson_t *reply,
                                         bson_error_t *error);
bool __wrap_mongoc_collection_delete_one(mongoc_collection_t *c,
                                         const bson_t *filter,
                                         const bson_t *opts, bson_t *reply,
                                         bson_error_t *error);
bool __wrap_mongoc_collection_find_and_modify_with_opts(
    mongoc_collection_t *c, const bson_t *query,
    const mongoc_find_and_modify_opts_t *opts, bson_t *reply,
    bson_error_t *error);
uint32_t __wrap_mongoc_bulk_operation_execute(mongoc_bulk_operation_t *bulk,
                                              bson_t *reply,
                                              bson_error_t *error);

bool __wrap_mongoc_collection_insert_one(mongoc_collection_t *c,
                                         const bson_t *doc, const bson_t *opts,
                                         bson_t *reply, bson_error_t *error) {
  COUNT_AND_RETURN(
      bool, "insert", c,
      __real_mongoc_collection_insert_one(c, doc, opts, reply, error));
}

mongoc_cursor_t *__wrap_mongoc_collection_find_with_opts(
    mongoc_collection_t *c, const bson_t *filter, const bson_t *opts,
    const mongoc_read_prefs_t *prefs) {
  op_stat_t *s = op_stat("find", c);
  mongoc_cursor_t *cursor;
  s->calls++;
  TIMED(s, cursor =
               __real_mongoc_collection_find_with_opts(c, filter, opts, prefs));
  cursor_remember(cursor, s);
  return cursor;
}

bool __wrap_mongoc_cursor_next(mongoc_cursor_t *cursor, const bson_t **doc) {
  bool ok;
  TIMED(cursor_stat(cursor, false),
        ok = __real_mongoc_cursor_next(cursor, doc));
  return ok;
}

void __wrap_mongoc_cursor_destroy(mongoc_cursor_t *cursor) {
  TIMED(cursor_stat(cursor, true), __real_mongoc_cursor_destroy(cursor));
}

bool __wrap_mongoc_collection_update_one(mongoc_collection_t *c,
                                         const bson_t *filter,
                                         const bson_t *update,
                                         const bson_t *opts, bson_t *reply,
                                         bson_error_t *error) {
  COUNT_AND_RETURN(bool, "update", c,
                   __real_mongoc_collection_update_one(c, filter, update, opts,
                                                       reply, error));
}

bool __wrap_mongoc_collection_delete_one(mongoc_collection_t *c,
                                         const bson_t *filter,
                                         const bson_t *opts, bson_t *reply,
                                         bson_error_t *error) {
  COUNT_AND_RETURN(
      bool, "delete", c,
      __real_mongoc_collection_delete_one(c, filter, opts, reply, error));
}

bool __wrap_mongoc_collection_find_and_modify_with_opts(
    mongoc_collection_t *c, const bson_t *query,
    const mongoc_find_and_modify_opts_t *opts, bson_t *reply,
    bson_error_t *error) {
  COUNT_AND_RETURN(bool, "findAndModify", c,
                   __real_mongoc_collection_find_and_modify_with_opts(
                       c, query, opts, reply, error));
}

/* The bulk's collection is not reachable through the public API. */
uint32_t __wrap_mongoc_bulk_operation_execute(mongoc_bulk_operation_t *bulk,
                                              bson_t *reply,
                                              bson_error_t *error) {
  COUNT_AND_RETURN(uint32_t, "bulk", NULL,
                   __real_mongoc_bulk_operation_execute(bulk, reply, error));
}

/* ---- shared state of one measurement --------------------------------- */

typedef struct shared {
  atomic_int done;     /* results accepted */
  atomic_int errors;   /* calls that failed unexpectedly */
  atomic_long empties; /* polls that found nothing (held by others) */
  _Atomic double t_end;
  _Atomic double deadline; /* stop here even if jobs remain (--max-seconds) */
  op_stat_t stats[MAX_PROCS][MAX_STATS]; /* each child's, at its end */
  atomic_long n_poll, n_report;
  double lat[]; /* poll latencies, then report latencies: 2 * cap */
} shared_t;

typedef struct dbjob {
  bw_config_t cfg;
  int procs, jobs;
  int waiting; /* extra students left in the queue while measuring */
  double max_seconds;
  size_t cap; /* latency slots of each kind */
  shared_t *sh;
} dbjob_t;

static void record(dbjob_t *d, bool poll, double seconds) {
  atomic_long *n = poll ? &d->sh->n_poll : &d->sh->n_report;
  long i = atomic_fetch_add(n, 1);
  if ((size_t)i < d->cap)
    d->sh->lat[(poll ? 0 : d->cap) + (size_t)i] = seconds;
}

/* ---- one grader process ---------------------------------------------- */

/* One job, as the API would do it.  Returns 1 done, 0 queue empty, <0. */
static int dbjob_step(dbjob_t *d, bw_db_t *db, const bson_oid_t *wid,
                      json_object *result) {
  json_object *job = NULL, *id;
  bson_oid_t job_id;
  bw_error_t error;
  double t = bw_test_now(), polled;
  int rc = bw_worker_check(db, wid, &error);

  if (rc == 0)
    rc = bw_job_poll(db, &d->cfg, wid, BW_GEN_SEED, &job, &error);
  if (rc == BW_EEMPTY)
    return 0;
  polled = bw_test_now();
  if (rc == 0 && (!json_object_object_get_ex(job, "job_id", &id) ||
                  !bw_db_oid_parse(json_object_get_string(id), &job_id)))
    rc = bw_error_set(&error, BW_EINTERNAL, "hand-out without job_id");
  if (rc == 0) {
    record(d, true, polled - t);
    rc = bw_worker_check(db, wid, &error);
  }
  if (rc == 0)
    rc = bw_job_report(db, &d->cfg, &job_id, wid, result, &error);
  json_object_put(job);
  if (rc < 0) {
    fprintf(stderr, "bw-dblimit: %s\n", error.message);
    return rc;
  }
  record(d, false, bw_test_now() - polled);
  if (atomic_fetch_add(&d->sh->done, 1) + 1 == d->jobs)
    atomic_store(&d->sh->t_end, bw_test_now());
  return 1;
}

static json_object *dbjob_result(const bw_config_t *cfg) {
  json_object *body = json_tokener_parse(
      "{\"success\":true,\"info\":[{\"stage\":0,\"exit_code\":0}],"
      "\"logs\":{\"stdout\":\"ok\\n\",\"stderr\":\"\"}}");
  json_object *result = NULL;
  bw_error_t error;
  if (!body || bw_validate_result(body, cfg, &result, &error) < 0)
    result = NULL;
  json_object_put(body);
  return result;
}

static int child_run(dbjob_t *d, int index, int ready_fd, int go_fd) {
  bw_db_t *db;
  bw_error_t error;
  char wid_hex[25], byte = 0;
  bson_oid_t wid;
  json_object *result = dbjob_result(&d->cfg);
  int rc = 0;

  if (!result || bw_db_open(&db, &d->cfg, &error) < 0 ||
      bw_worker_register(db, "bench-db", wid_hex, &error) < 0 ||
      !bw_db_oid_parse(wid_hex, &wid)) {
    fprintf(stderr, "bw-dblimit: child: %s\n", error.message);
    atomic_fetch_add(&d->sh->errors, 1);
    byte = 1;
    (void)!write(ready_fd, &byte, 1);
    return 1;
  }
  op_count = 0; /* count the measured loop only */
  (void)!write(ready_fd, &byte, 1);
  (void)!read(go_fd, &byte, 1); /* EOF when the parent says go */
  /* Heartbeats at the configured interval, as the e2e graders send them
   * (else the reaper re-queues our jobs after 2 intervals). */
  double next_beat = bw_test_now() + d->cfg.heartbeat;
  long backoff = 0;
  while (atomic_load(&d->sh->done) < d->jobs &&
         bw_test_now() < atomic_load(&d->sh->deadline)) {
    if (bw_test_now() >= next_beat) {
      bw_worker_heartbeat(db, &wid, NULL);
      next_beat += d->cfg.heartbeat;
    }
    rc = dbjob_step(d, db, &wid, result);
    if (rc < 0) {
      atomic_fetch_add(&d->sh->errors, 1);
      break;
    }
    if (rc == 0) {
      atomic_fetch_add(&d->sh->empties, 1);
      bw_test_sleep_ms(backoff);
    }
    backoff = rc == 0 ? bench_backoff_next(backoff) : 0;
  }
  memcpy(d->sh->stats[index], op_stats, (size_t)op_count * sizeof *op_stats);
  json_object_put(result);
  bw_db_close(db);
  return rc < 0 ? 1 : 0;
}

/* ---- the parent ------------------------------------------------------ */

static int create_started_run(const bw_config_t *cfg, int students,
                              bson_oid_t *out) {
  bson_oid_t run;
  char *text = bench_config_alloc(students);
  json_object *body = NULL, *config = NULL;
  bw_json_items_t *list = NULL;
  bw_error_t error = {0};
  bw_db_t *db = NULL;
  int rc = -1;

  if (text &&
      bw_json_parse_body_lazy(text, strlen(text), cfg->max_depth, "students",
                              &body, &list, &error) == 0 &&
      bw_validate_run_config(body, list, cfg, &config, &error) == 0 &&
      bw_db_open(&db, cfg, &error) == 0 &&
      bw_run_create(db, config, list, &run, &error) == 0 &&
      bw_run_start(db, &run, &error) == 0)
    rc = 0;
  if (rc < 0)
    fprintf(stderr, "bw-dblimit: creating the run: %s\n", error.message);
  else if (out != NULL)
    bson_oid_copy(&run, out);
  bw_db_close(db);
  json_object_put(config);
  json_object_put(body);
  bw_json_items_free(list);
  free(text);
  return rc;
}

static void report(dbjob_t *d, double seconds) {
  shared_t *sh = d->sh;
  int done = atomic_load(&sh->done);
  bench_samples_t poll = {0}, rep = {0};
  size_t np = (size_t)atomic_load(&sh->n_poll),
         nr = (size_t)atomic_load(&sh->n_report);
  char key[64];

  for (size_t i = 0; i < np && i < d->cap; i++)
    bench_samples_add(&poll, sh->lat[i]);
  for (size_t i = 0; i < nr && i < d->cap; i++)
    bench_samples_add(&rep, sh->lat[d->cap + i]);
  bench_result("procs", "%d", d->procs);
  bench_result("waiting", "%d", d->waiting);
  bench_result("jobs", "%d", done);
  bench_result("seconds", "%.3f", seconds);
  bench_result("jobs_per_s", "%.1f", seconds > 0 ? done / seconds : 0);
  bench_result_latency("poll", &poll);
  bench_result_latency("report", &rep);
  bench_result("empty_polls", "%ld", atomic_load(&sh->empties));
  bench_result("errors", "%d", atomic_load(&sh->errors));
  /* Round trips and database time per job, by kind of call. */
  op_stat_t all[MAX_STATS];
  int n = 0;
  for (int p = 0; p < d->procs; p++)
    for (int i = 0; i < MAX_STATS && sh->stats[p][i].name[0]; i++) {
      int j = 0;
      while (j < n && strcmp(all[j].name, sh->stats[p][i].name) != 0)
        j++;
      if (j == n && n == MAX_STATS)
        continue;
      if (j == n)
        all[n++] = (op_stat_t){.calls = 0};
      snprintf(all[j].name, sizeof all[j].name, "%s", sh->stats[p][i].name);
      all[j].calls += sh->stats[p][i].calls;
      all[j].seconds += sh->stats[p][i].seconds;
    }
  for (int i = 0; i < n && done > 0; i++) {
    char *space = strchr(all[i].name, ' ');
    if (space)
      *space = '_';
    snprintf(key, sizeof key, "op_%.47s", all[i].name);
    /* calls per job, ms per call, ms per job */
    bench_result(key, "%.2f %.3f %.3f", (double)all[i].calls / done,
                 all[i].calls ? all[i].seconds / (double)all[i].calls * 1e3 : 0,
                 all[i].seconds / done * 1e3);
  }
  bench_samples_cleanup(&poll);
  bench_samples_cleanup(&rep);
}

static int cmd_run(dbjob_t *d) {
  pid_t pids[MAX_PROCS];
  int ready[2], go[2], failed = 0;
  size_t size;
  char byte;

  d->cap = (size_t)d->jobs + (size_t)d->procs * 4;
  size = sizeof(shared_t) + 2 * d->cap * sizeof(double);
  d->sh = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
               -1, 0);
  if (d->sh == MAP_FAILED || pipe(ready) < 0 || pipe(go) < 0)
    return 1;
  memset(d->sh, 0, sizeof(shared_t));
  if (create_started_run(&d->cfg, d->jobs + d->waiting, NULL) < 0)
    return 1;
  bw_lane_share_turns(); /* the processes take turns as one pool's do */
  fflush(NULL);
  for (int i = 0; i < d->procs; i++) {
    pids[i] = fork();
    if (pids[i] == 0) {
      close(ready[0]);
      close(go[1]);
      _exit(child_run(d, i, ready[1], go[0]));
    }
  }
  close(ready[1]);
  close(go[0]);
  for (int i = 0; i < d->procs; i++)
    if (read(ready[0], &byte, 1) != 1 || byte != 0)
      failed = 1;
  double t0 = bw_test_now();
  atomic_store(&d->sh->deadline, t0 + d->max_seconds);
  close(go[1]); /* every child's read returns: go */
  for (int i = 0; i < d->procs; i++) {
    int status;
    waitpid(pids[i], &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      failed = 1;
  }
  double t_end = atomic_load(&d->sh->t_end);
  report(d, (t_end > 0 ? t_end : bw_test_now()) - t0);
  /* Stopped by --max-seconds: the rate stands, the run is unfinished. */
  bench_result("capped", "%d", atomic_load(&d->sh->done) < d->jobs);
  struct rusage ru; /* the children's CPU: the client side of the database */
  getrusage(RUSAGE_CHILDREN, &ru);
  bench_result("client_cpu_s", "%.3f",
               (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                   (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
  failed |= atomic_load(&d->sh->errors) > 0;
  munmap(d->sh, size);
  return failed;
}

/* Peak resident memory of this process so far, kB. */
static long vm_hwm_kb(void) {
  char line[256];
  long kb = -1;
  FILE *f = fopen("/proc/self/status", "r");
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmHWM: %ld", &kb) == 1)
      break;
  if (f)
    fclose(f);
  return kb;
}

/* What POST grading_run + POST grading_run/{id} cost without HTTP, step by
 * step as the handlers take them, with the peak memory after each step:
 * where the time and the memory of a large run go. */
static int cmd_create(dbjob_t *d, int students) {
  static const char *steps[] = {"body", "parse", "validate", "create", "start"};
  double t[5];
  long hwm[5];
  char *text, key[64];
  bson_oid_t run;
  json_object *body = NULL, *config = NULL;
  bw_json_items_t *list = NULL;
  bw_error_t error = {0};
  bw_db_t *db = NULL;
  int rc = -1;

  hwm[0] = vm_hwm_kb();
  t[0] = bw_test_now();
  text = bench_config_alloc(students);
  if (text && bw_db_open(&db, &d->cfg, &error) == 0) {
    bench_result("hwm_before_kb", "%ld", vm_hwm_kb());
    t[0] = bw_test_now();
    if (bw_json_parse_body_lazy(text, strlen(text), d->cfg.max_depth,
                                "students", &body, &list, &error) == 0) {
      t[1] = bw_test_now(), hwm[1] = vm_hwm_kb();
      if (bw_validate_run_config(body, list, &d->cfg, &config, &error) == 0) {
        t[2] = bw_test_now(), hwm[2] = vm_hwm_kb();
        if (bw_run_create(db, config, list, &run, &error) == 0) {
          t[3] = bw_test_now(), hwm[3] = vm_hwm_kb();
          if (bw_run_start(db, &run, &error) == 0) {
            t[4] = bw_test_now(), hwm[4] = vm_hwm_kb();
            rc = 0;
          }
        }
      }
    }
  }
  if (rc == 0) {
    bench_result("students", "%d", students);
    bench_result("body_bytes", "%zu", strlen(text));
    for (int i = 1; i < 5; i++) {
      snprintf(key, sizeof key, "%s_ms", steps[i]);
      bench_result(key, "%.1f", (t[i] - t[i - 1]) * 1e3);
      snprintf(key, sizeof key, "%s_hwm_kb", steps[i]);
      bench_result(key, "%ld", hwm[i]);
    }
  } else {
    fprintf(stderr, "bw-dblimit: create: %s\n", error.message);
  }
  json_object_put(config);
  json_object_put(body);
  bw_json_items_free(list);
  bw_db_close(db);
  free(text);
  return rc < 0;
}

/* ---- fairness across courses ------------------------------------------ */

/* What the fairness processes share (mapped before they fork). */
typedef struct fair_shared {
  atomic_long handouts;   /* every hand-out so far */
  atomic_long small_last; /* the hand-out number of the small run's last */
  atomic_int small_out;
  atomic_int errors;
  atomic_bool small_known;
  char small_hex[25];
} fair_shared_t;

/* Puts a run's lane and waiting entries in `course` (no route makes
 * courses on this branch: issue 14's g3-course adds them). */
static int fair_set_course(bw_db_t *db, const bson_oid_t *run,
                           const char *course) {
  bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set;
  bson_error_t driver;
  char hex[25];
  bool ok;

  bson_oid_to_string(run, hex);
  BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
  BSON_APPEND_UTF8(&set, "course", course);
  bson_append_document_end(&update, &set);
  BSON_APPEND_UTF8(&filter, "_id", hex);
  ok = mongoc_collection_update_one(bw_db_coll(db, BW_COLL_LANES), &filter,
                                    &update, NULL, NULL, &driver);
  bson_reinit(&filter);
  BSON_APPEND_OID(&filter, "run_id", run);
  for (int p = 0; ok && p < bw_db_queue_partitions(db); p++)
    ok = mongoc_collection_update_many(bw_db_queue(db, p), &filter, &update,
                                       NULL, NULL, &driver);
  bson_destroy(&filter);
  bson_destroy(&update);
  return ok ? 0 : -1;
}

static void fair_child(const bw_config_t *cfg, fair_shared_t *f, int small,
                       double deadline) {
  bw_db_t *db;
  bw_error_t error;
  char wid_hex[25];
  bson_oid_t wid, job_id;
  json_object *result = dbjob_result(cfg);

  if (!result || bw_db_open(&db, cfg, &error) < 0 ||
      bw_worker_register(db, "bench-fair", wid_hex, &error) < 0 ||
      !bw_db_oid_parse(wid_hex, &wid))
    _exit(1);
  while (atomic_load(&f->small_out) < small && bw_test_now() < deadline) {
    json_object *job = NULL, *id;
    int rc = bw_job_poll(db, cfg, &wid, BW_GEN_SEED, &job, &error);
    if (rc == BW_EEMPTY) {
      bw_test_sleep_ms(5);
      continue;
    }
    if (rc == 0 && (!json_object_object_get_ex(job, "job_id", &id) ||
                    !bw_db_oid_parse(json_object_get_string(id), &job_id)))
      rc = BW_EINTERNAL;
    if (rc == 0) {
      long n = atomic_fetch_add(&f->handouts, 1) + 1;
      /* The run id is in the job's env (GRADING_RUN_ID). */
      if (atomic_load(&f->small_known) &&
          strstr(json_object_to_json_string(job), f->small_hex) != NULL) {
        long last = atomic_load(&f->small_last);
        while (n > last &&
               !atomic_compare_exchange_weak(&f->small_last, &last, n))
          ;
        atomic_fetch_add(&f->small_out, 1);
      }
      rc = bw_job_report(db, cfg, &job_id, &wid, result, &error);
    }
    json_object_put(job);
    if (rc < 0) {
      fprintf(stderr, "bw-dblimit: fairness: %s\n", error.message);
      atomic_fetch_add(&f->errors, 1);
      break;
    }
  }
  json_object_put(result);
  bw_db_close(db);
  _exit(0);
}

/* Course "a" has two runs of --jobs, already being drained by --procs
 * processes (through common/, the pool's shared turn counter); then a
 * --students run of course "" is queued.  Hand-outs from its start to its
 * last job's: courses take turns, so about 2 x S + G, where runs alone
 * taking turns would give 3 x S + G. */
static int cmd_fairness(dbjob_t *d, int small) {
  enum { UNDER_WAY = 50 };
  fair_shared_t *f = mmap(NULL, sizeof *f, PROT_READ | PROT_WRITE,
                          MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  bson_oid_t a1, a2, s;
  bw_db_t *db = NULL;
  bw_error_t error;
  pid_t pids[MAX_PROCS];
  double deadline = bw_test_now() + d->max_seconds;
  long sent = 0, mark, last;
  int rc = 0;

  if (f == MAP_FAILED || bw_db_open(&db, &d->cfg, &error) < 0) {
    fprintf(stderr, "bw-dblimit: fairness: no shared memory or database\n");
    return 1;
  }
  memset(f, 0, sizeof *f);
  bw_lane_share_turns(); /* as the FastCGI parent does */
  if (create_started_run(&d->cfg, d->jobs, &a1) < 0 ||
      create_started_run(&d->cfg, d->jobs, &a2) < 0 ||
      fair_set_course(db, &a1, "a") < 0 || fair_set_course(db, &a2, "a") < 0) {
    fprintf(stderr, "bw-dblimit: fairness: could not set up course a\n");
    return 1;
  }
  for (int i = 0; i < d->procs; i++) {
    pids[i] = fork();
    if (pids[i] == 0)
      fair_child(&d->cfg, f, small, deadline);
  }
  while (atomic_load(&f->handouts) < UNDER_WAY && bw_test_now() < deadline)
    bw_test_sleep_ms(2);
  /* Created and started here: its id is known before its jobs can be. */
  {
    char *text = bench_config_alloc(small);
    json_object *body = NULL, *config = NULL;
    bw_json_items_t *list = NULL;
    if (bw_json_parse_body_lazy(text, strlen(text), d->cfg.max_depth,
                                "students", &body, &list, &error) < 0 ||
        bw_validate_run_config(body, list, &d->cfg, &config, &error) < 0 ||
        bw_run_create(db, config, list, &s, &error) < 0)
      rc = 1;
    json_object_put(config);
    json_object_put(body);
    bw_json_items_free(list);
    free(text);
  }
  if (rc == 0) {
    bson_oid_to_string(&s, f->small_hex);
    atomic_store(&f->small_known, true);
    sent = atomic_load(&f->handouts);
    rc = bw_run_start(db, &s, &error) < 0;
  }
  mark = atomic_load(&f->handouts);
  for (int i = 0; i < d->procs; i++) {
    int status;
    if (rc != 0)
      kill(pids[i], SIGTERM);
    waitpid(pids[i], &status, 0);
  }
  last = atomic_load(&f->small_last);
  bench_result("graders", "%d", d->procs);
  bench_result("small_out", "%d", atomic_load(&f->small_out));
  bench_result("handouts", "%ld",
               atomic_load(&f->small_out) < small ? -1L
               : last > mark                      ? last - mark
                                                  : 0L);
  bench_result("handouts_from_sent", "%ld",
               atomic_load(&f->small_out) < small ? -1L : last - sent);
  bench_result("bound", "%d", small * 3 + d->procs);
  bench_result("bound_courses", "%d", small * 2 + d->procs);
  if (atomic_load(&f->errors) > 0 || atomic_load(&f->small_out) < small) {
    fprintf(stderr, "bw-dblimit: fairness: %d errors, %d of %d out\n",
            atomic_load(&f->errors), atomic_load(&f->small_out), small);
    rc = 1;
  }
  bw_db_close(db);
  munmap(f, sizeof *f);
  return rc;
}

int main(int argc, char **argv) {
  static const struct option longopts[] = {
      {"procs", required_argument, NULL, 'p'},
      {"jobs", required_argument, NULL, 'j'},
      {"waiting", required_argument, NULL, 'w'},
      {"max-seconds", required_argument, NULL, 'm'},
      {"label", required_argument, NULL, 'l'},
      {"students", required_argument, NULL, 's'},
      {NULL, 0, NULL, 0}};
  dbjob_t d = {.procs = 16, .jobs = 2000, .max_seconds = 1e9};
  const char *label = "db";
  char prefix[64];
  int students = 100;
  const char *cmd = argc > 1 ? argv[1] : "";
  bw_error_t error;
  int ch, rc;

  while ((ch = getopt_long(argc - 1, argv + 1, "", longopts, NULL)) != -1) {
    if (ch == 'p')
      d.procs = atoi(optarg);
    else if (ch == 'j')
      d.jobs = atoi(optarg);
    else if (ch == 'w')
      d.waiting = atoi(optarg);
    else if (ch == 'm')
      d.max_seconds = atof(optarg);
    else if (ch == 'l')
      label = optarg;
    else if (ch == 's')
      students = atoi(optarg);
    else
      return 2;
  }
  snprintf(prefix, sizeof prefix, "%s_", label);
  bench_result_prefix(prefix);
  if (d.procs < 1 || d.procs > MAX_PROCS || d.jobs < 1 || d.waiting < 0 ||
      d.max_seconds <= 0 || students < 1) {
    fprintf(stderr, "bw-dblimit: --procs 1..%d, --jobs >= 1\n", MAX_PROCS);
    return 2;
  }
  if (bw_config_load(&d.cfg, getenv("BROADWAY_CONFIG"), &error) < 0) {
    fprintf(stderr, "bw-dblimit: config: %s\n", error.message);
    return 2;
  }
  if (strcmp(cmd, "run") == 0)
    rc = cmd_run(&d);
  else if (strcmp(cmd, "create") == 0)
    rc = cmd_create(&d, students);
  else if (strcmp(cmd, "fairness") == 0)
    rc = cmd_fairness(&d, students);
  else {
    fprintf(stderr, "usage: bw-dblimit run --procs G --jobs N [--waiting W] "
                    "[--max-seconds T] [--label L]\n"
                    "       bw-dblimit create --students S [--label L]\n"
                    "       bw-dblimit fairness --procs G --jobs N "
                    "--students S [--label L]\n");
    rc = 2;
  }
  mongoc_cleanup();
  return rc;
}
