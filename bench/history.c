/* history.c - the `history` phase of the benchmark (issue 9): what the
 * everyday requests cost with a semester of finished jobs stored, against
 * the same requests on an empty database, in the same run.
 *
 *   bw-history measure --label L [--reps R] [--reads K]
 *       over HTTP (BENCH_URL, BENCH_TOKEN), one client registered as a
 *       grader: R times create+start a run of 400 students; drain them
 *       (poll + result of every job); create, start and drain a run of 30;
 *       read its status and its jobs K times.  Prints RESULT
 *       history_<L>_{create_start,poll,result,status,job}_p50_ms.
 *   bw-history fill --jobs N
 *       straight through the driver (the database the service uses:
 *       bw_config_load, BROADWAY_DATA / BROADWAY_CONFIG): clones every
 *       document of the finished runs already stored (those `measure` left:
 *       written by the API itself, so the shapes are the API's) with fresh
 *       run and job ids and dates moved a day and more into the past, until
 *       at least N more jobs are stored.  Prints RESULT history_fill_jobs
 *       and history_fill_s.
 *
 * Filling through the API would take N x (poll + result), ~1 hour for
 * 200,000 jobs here; cloning inserts the same documents in bulk. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "client.h"
#include "config.h"
#include "db.h"

#define QUEUE_EMPTY 498
#define BIG_RUN 400
#define SMALL_RUN 30
#define DAY_MS 86400000LL

static const char result_body[] =
    "{\"success\":true,\"info\":[{\"stage\":0,\"exit_code\":0}],"
    "\"logs\":{\"stdout\":\"ok\\n\",\"stderr\":\"\"}}";

/* ---- measure --------------------------------------------------------- */

typedef struct measure {
  bench_client_t c;
  int heartbeat;        /* seconds, from registration */
  double next_beat;     /* when the next heartbeat is due */
  bench_samples_t create_start, poll, result, status, job;
  char (*job_ids)[25]; /* of the last drain */
  size_t n_jobs;
} measure_t;

/* POST grading_run then POST grading_run/{id}: the run id in run_id. */
static int create_and_start(measure_t *m, int students, char run_id[25]) {
  char *config = bench_config_alloc(students), path[128];
  double t = bw_test_now();
  long status = config ? bench_client_request(&m->c, "POST",
                                              "/api/v1/grading_run", config,
                                              strlen(config))
                       : 0;
  free(config);
  if (status != 200 ||
      !bench_client_find_string(&m->c, "grading_run_id", run_id, 25)) {
    fprintf(stderr, "bw-history: create: HTTP %ld %s\n", status, m->c.error);
    return -1;
  }
  snprintf(path, sizeof path, "/api/v1/grading_run/%s", run_id);
  status = bench_client_request(&m->c, "POST", path, "", 0);
  if (status != 200) {
    fprintf(stderr, "bw-history: start: HTTP %ld %s\n", status, m->c.error);
    return -1;
  }
  return bench_samples_add(&m->create_start, bw_test_now() - t);
}

/* Polls and reports until the queue is empty, keeping the job ids. */
static int drain(measure_t *m) {
  char path[128];
  m->n_jobs = 0;
  for (;;) {
    /* A long drain must not get this grader declared dead (then its job
     * goes back to the queue and the result gets 409). */
    if (bw_test_now() >= m->next_beat) {
      bench_client_request(&m->c, "POST", "/api/v1/heartbeat", "", 0);
      m->next_beat = bw_test_now() + m->heartbeat / 2.0;
    }
    double t = bw_test_now();
    long status =
        bench_client_request(&m->c, "GET", "/api/v1/grading_job", NULL, 0);
    double polled = bw_test_now();
    if (status == QUEUE_EMPTY)
      return 0;
    if (status != 200 || !bench_client_find_string(&m->c, "job_id",
                                                   m->job_ids[m->n_jobs], 25)) {
      fprintf(stderr, "bw-history: poll: HTTP %ld %s\n", status, m->c.error);
      return -1;
    }
    bench_samples_add(&m->poll, polled - t);
    snprintf(path, sizeof path, "/api/v1/grading_job/%s",
             m->job_ids[m->n_jobs]);
    status = bench_client_request(&m->c, "POST", path, result_body,
                                  sizeof result_body - 1);
    bench_samples_add(&m->result, bw_test_now() - polled);
    if (status != 200) {
      fprintf(stderr, "bw-history: result: HTTP %ld %s\n", status, m->c.error);
      return -1;
    }
    if (m->n_jobs < BIG_RUN)
      m->n_jobs++;
  }
}

/* GET path `reads` times into s. */
static int read_many(measure_t *m, bench_samples_t *s, const char *prefix,
                     const char *run_id, int reads) {
  char path[128];
  for (int i = 0; i < reads; i++) {
    const char *id = run_id ? run_id : m->job_ids[(size_t)i % m->n_jobs];
    snprintf(path, sizeof path, "%s%s", prefix, id);
    double t = bw_test_now();
    long status = bench_client_request(&m->c, "GET", path, NULL, 0);
    bench_samples_add(s, bw_test_now() - t);
    if (status != 200) {
      fprintf(stderr, "bw-history: GET %s: HTTP %ld %s\n", path, status,
              m->c.error);
      return -1;
    }
  }
  return 0;
}

static int measure_steps(measure_t *m, int reps, int reads) {
  char run_id[25];
  if (bench_client_register(&m->c, "bench-history", &m->heartbeat) != 200) {
    fprintf(stderr, "bw-history: register: %s\n", m->c.error);
    return -1;
  }
  m->next_beat = bw_test_now() + m->heartbeat / 2.0;
  for (int r = 0; r < reps; r++)
    if (create_and_start(m, BIG_RUN, run_id) < 0 || drain(m) < 0)
      return -1;
  if (create_and_start(m, SMALL_RUN, run_id) < 0 || drain(m) < 0 ||
      m->n_jobs == 0)
    return -1;
  if (read_many(m, &m->status, "/api/v1/grading_run/", run_id, reads) < 0 ||
      read_many(m, &m->job, "/api/v1/grading_job/", NULL, reads) < 0)
    return -1;
  return 0;
}

static int cmd_measure(const char *label, int reps, int reads) {
  measure_t m;
  const char *url = getenv("BENCH_URL"), *token = getenv("BENCH_TOKEN");
  bench_samples_t *all[] = {&m.create_start, &m.poll, &m.result, &m.status,
                            &m.job};
  const char *keys[] = {"create_start", "poll", "result", "status", "job"};
  char prefix[64];
  int rc;

  memset(&m, 0, sizeof m);
  if (!url || !token || bench_client_init(&m.c, url, token) < 0) {
    fprintf(stderr, "bw-history: BENCH_URL and BENCH_TOKEN are needed\n");
    return 1;
  }
  for (size_t i = 0; i < 5; i++)
    bench_samples_init(all[i]);
  m.job_ids = calloc(BIG_RUN + 1, sizeof *m.job_ids);
  rc = m.job_ids ? measure_steps(&m, reps, reads) : -1;
  snprintf(prefix, sizeof prefix, "history_%s_", label);
  bench_result_prefix(prefix);
  for (size_t i = 0; rc == 0 && i < 5; i++)
    bench_result_latency(keys[i], all[i]);
  bench_result_prefix("");
  for (size_t i = 0; i < 5; i++)
    bench_samples_cleanup(all[i]);
  free(m.job_ids);
  bench_client_cleanup(&m.c);
  return rc == 0 ? 0 : 1;
}

/* ---- fill ------------------------------------------------------------ */

/* What is cloned: every collection a finished run leaves documents in
 * (queue partitions, active and workers hold only live state). */
static const bw_coll_t cloned[] = {BW_COLL_RUNS,     BW_COLL_ROSTERS,
                                   BW_COLL_JOBS,     BW_COLL_CLAIMS,
                                   BW_COLL_OUTCOMES, BW_COLL_RESULTS,
                                   BW_COLL_MARKS,    BW_COLL_COUNTERS};
#define N_CLONED (sizeof cloned / sizeof cloned[0])

typedef struct docs {
  bson_t **v;
  size_t n, cap;
} docs_t;

static void docs_add(const bson_t *doc, void *ctx) {
  docs_t *d = ctx;
  if (d->n == d->cap) {
    d->cap = d->cap ? d->cap * 2 : 256;
    d->v = realloc(d->v, d->cap * sizeof *d->v);
    if (!d->v)
      abort();
  }
  d->v[d->n++] = bson_copy(doc);
}

/* The template: old ids (runs' and jobs' _id) and their replacements. */
typedef struct idmap {
  char (*old)[25];
  bson_oid_t *fresh;
  size_t n;
} idmap_t;

static int idmap_cmp(const void *a, const void *b) {
  return memcmp(a, b, 24);
}

/* The index of the old id `hex` starts with (map->old is sorted), or -1. */
static int idmap_find(const idmap_t *map, const char *hex) {
  const char(*hit)[25] =
      bsearch(hex, map->old, map->n, sizeof *map->old, idmap_cmp);
  return hit ? (int)(hit - map->old) : -1;
}

/* A string with every old id in it replaced by its new one. */
static void clone_string(const idmap_t *map, const char *s, char *out,
                         size_t size) {
  snprintf(out, size, "%s", s);
  for (char *p = out; strlen(p) >= 24; p++) {
    int i = idmap_find(map, p);
    if (i >= 0) {
      char hex[25];
      bson_oid_to_string(&map->fresh[i], hex);
      memcpy(p, hex, 24);
      p += 23;
    }
  }
}

/* A top-level `at` with `minute` (bw_db_append_at) is written again with
 * it, so the time buckets move with the date. */
static void clone_into(const idmap_t *map, bson_iter_t *it, bson_t *out,
                       int64_t shift_ms, bool top) {
  int64_t at = -1;
  unsigned buckets = 0;
  while (bson_iter_next(it)) {
    const char *key = bson_iter_key(it);
    bson_iter_t child;
    bson_t sub;
    char hex[25], text[256];
    int i;
    if (top && (strcmp(key, "minute") == 0 || strcmp(key, "day") == 0)) {
      buckets |= key[0] == 'm' ? BW_DB_BY_MINUTE : BW_DB_BY_DAY;
      continue;
    }
    if (top && strcmp(key, "at") == 0 && BSON_ITER_HOLDS_DATE_TIME(it)) {
      at = bson_iter_date_time(it) - shift_ms;
      continue;
    }
    switch (bson_iter_type(it)) {
    case BSON_TYPE_OID:
      bson_oid_to_string(bson_iter_oid(it), hex);
      i = idmap_find(map, hex);
      BSON_APPEND_OID(out, key, i >= 0 ? &map->fresh[i] : bson_iter_oid(it));
      break;
    case BSON_TYPE_UTF8:
      if (strlen(bson_iter_utf8(it, NULL)) < sizeof text) {
        clone_string(map, bson_iter_utf8(it, NULL), text, sizeof text);
        BSON_APPEND_UTF8(out, key, text);
      } else {
        bson_append_iter(out, key, -1, it);
      }
      break;
    case BSON_TYPE_DATE_TIME:
      BSON_APPEND_DATE_TIME(out, key, bson_iter_date_time(it) - shift_ms);
      break;
    case BSON_TYPE_DOCUMENT:
    case BSON_TYPE_ARRAY:
      bson_iter_recurse(it, &child);
      if (BSON_ITER_HOLDS_ARRAY(it))
        BSON_APPEND_ARRAY_BEGIN(out, key, &sub);
      else
        BSON_APPEND_DOCUMENT_BEGIN(out, key, &sub);
      clone_into(map, &child, &sub, shift_ms, false);
      if (BSON_ITER_HOLDS_ARRAY(it))
        bson_append_array_end(out, &sub);
      else
        bson_append_document_end(out, &sub);
      break;
    default:
      bson_append_iter(out, key, -1, it);
    }
  }
  if (at >= 0)
    bw_db_append_at(out, at, buckets);
}

static int insert_clones(mongoc_collection_t *coll, const docs_t *d,
                         const idmap_t *map, int64_t shift_ms) {
  bson_t **copies = calloc(d->n, sizeof *copies), reply;
  bson_error_t err;
  bool ok;

  if (!copies)
    return -1;
  for (size_t i = 0; i < d->n; i++) {
    bson_iter_t it;
    copies[i] = bson_new();
    bson_iter_init(&it, d->v[i]);
    clone_into(map, &it, copies[i], shift_ms, true);
  }
  ok = d->n == 0 ||
       mongoc_collection_insert_many(coll, (const bson_t **)copies, d->n, NULL,
                                     &reply, &err);
  if (d->n > 0)
    bson_destroy(&reply);
  if (!ok)
    fprintf(stderr, "bw-history: insert: %s\n", err.message);
  for (size_t i = 0; i < d->n; i++)
    bson_destroy(copies[i]);
  free(copies);
  return ok ? 0 : -1;
}

static int load_template(bw_db_t *db, docs_t *tmpl, idmap_t *map) {
  bw_error_t error;
  bson_t empty = BSON_INITIALIZER;
  for (size_t c = 0; c < N_CLONED; c++)
    if (bw_db_each(bw_db_coll(db, cloned[c]), &empty, NULL, docs_add, &tmpl[c],
                   &error) < 0) {
      fprintf(stderr, "bw-history: reading the template: %s\n",
              error.message);
      return -1;
    }
  map->n = tmpl[0].n + tmpl[2].n; /* runs and jobs */
  map->old = calloc(map->n + 1, sizeof *map->old);
  map->fresh = calloc(map->n + 1, sizeof *map->fresh);
  if (!map->old || !map->fresh)
    return -1;
  for (size_t i = 0, k = 0; i < 2; i++) {
    const docs_t *d = &tmpl[i == 0 ? 0 : 2];
    for (size_t j = 0; j < d->n; j++)
      if (!bw_db_get_oid_hex(d->v[j], "_id", map->old[k++]))
        return -1;
  }
  qsort(map->old, map->n, sizeof *map->old, idmap_cmp);
  return 0;
}

static int cmd_fill(long jobs) {
  bw_config_t cfg;
  bw_error_t error;
  bw_db_t *db = NULL;
  docs_t tmpl[N_CLONED];
  idmap_t map = {0};
  long done = 0;
  int rc = -1;
  double t = bw_test_now();

  memset(tmpl, 0, sizeof tmpl);
  if (bw_config_load(&cfg, getenv("BROADWAY_CONFIG"), &error) < 0 ||
      bw_db_open(&db, &cfg, &error) < 0) {
    fprintf(stderr, "bw-history: %s\n", error.message);
    return 1;
  }
  if (load_template(db, tmpl, &map) == 0 && tmpl[2].n > 0)
    rc = 0;
  for (long round = 1; rc == 0 && done < jobs; round++) {
    for (size_t i = 0; i < map.n; i++)
      bson_oid_init(&map.fresh[i], NULL);
    for (size_t c = 0; rc == 0 && c < N_CLONED; c++)
      rc = insert_clones(bw_db_coll(db, cloned[c]), &tmpl[c], &map,
                         DAY_MS + round * 60000LL);
    done += (long)tmpl[2].n;
    if (round % 20 == 0)
      fprintf(stderr, "bw-history: %ld jobs stored (%.0f s)\n", done,
              bw_test_now() - t);
  }
  if (rc == 0) {
    bench_result("history_fill_jobs", "%ld", done);
    bench_result("history_fill_s", "%.1f", bw_test_now() - t);
  }
  for (size_t c = 0; c < N_CLONED; c++) {
    for (size_t i = 0; i < tmpl[c].n; i++)
      bson_destroy(tmpl[c].v[i]);
    free(tmpl[c].v);
  }
  free(map.old);
  free(map.fresh);
  bw_db_close(db);
  return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  static const struct option longopts[] = {{"label", 1, NULL, 'l'},
                                           {"reps", 1, NULL, 'r'},
                                           {"reads", 1, NULL, 'k'},
                                           {"jobs", 1, NULL, 'j'},
                                           {NULL, 0, NULL, 0}};
  const char *cmd = argc > 1 ? argv[1] : "", *label = "empty";
  int reps = 3, reads = 50, ch;
  long jobs = 20000;

  while ((ch = getopt_long(argc - 1, argv + 1, "", longopts, NULL)) != -1) {
    if (ch == 'l')
      label = optarg;
    else if (ch == 'r')
      reps = atoi(optarg);
    else if (ch == 'k')
      reads = atoi(optarg);
    else if (ch == 'j')
      jobs = atol(optarg);
    else
      return 2;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  if (strcmp(cmd, "measure") == 0 && reps > 0 && reads > 0)
    return cmd_measure(label, reps, reads);
  if (strcmp(cmd, "fill") == 0 && jobs > 0)
    return cmd_fill(jobs);
  fprintf(stderr, "usage: bw-history measure --label L [--reps R] [--reads K]"
                  "\n       bw-history fill --jobs N\n");
  return 2;
}
