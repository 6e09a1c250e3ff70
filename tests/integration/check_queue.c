/* check_queue.c - the exactly-once machinery of common/ (hand-outs, run
 * starts, reaping, finish tickets) hammered from many processes at once,
 * straight through libmongoc against the stack's real FerretDB (no HTTP: this
 * isolates the database layer, which is where FerretDB's unlocked findAndModify
 * could hand a job out twice). */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "db.h"
#include "finish.h"
#include "../lib/itest.h"
#include "job.h"
#include "json.h"
#include "queue.h"
#include "reap.h"
#include "run.h"
#include "validate.h"
#include "worker.h"

#define PROCS 8

static bw_config_t test_config(void) {
  bw_config_t cfg;
  bw_config_init(&cfg);
  bson_strncpy(cfg.mongo_uri, bw_test_stack_mongo_uri(bw_itest_stack()),
               sizeof cfg.mongo_uri);
  bson_strncpy(cfg.db_name, bw_test_stack_db_name(bw_itest_stack()),
               sizeof cfg.db_name);
  return cfg;
}

static bw_db_t *test_db(const bw_config_t *cfg) {
  bw_db_t *db = NULL;
  bw_error_t error;
  ck_assert_int_eq(bw_db_open(&db, cfg, &error), 0);
  return db;
}

static json_object *test_run_config(int students, bool post) {
  json_object *config = json_object_new_object(),
              *list = json_object_new_array();
  for (int i = 0; i < students; i++) {
    json_object *s = json_object_new_object();
    char netid[32];
    snprintf(netid, sizeof netid, "student%d", i);
    json_object_object_add(s, "NETID", json_object_new_string(netid));
    json_object_array_add(list, s);
  }
  json_object_object_add(config, "students", list);
  json_object_object_add(
      config, "student_pipeline",
      json_tokener_parse(
          "[{\"image\":\"grader\",\"env\":{\"N\":\"$NETID\"}}]"));
  if (post)
    json_object_object_add(config, "post_processing_pipeline",
                           json_tokener_parse("[{\"image\":\"post\"}]"));
  return config;
}

/* An id as the router passes it on: parsed once. */
static bson_oid_t test_oid(const char *hex) {
  bson_oid_t oid;
  ck_assert(bw_db_oid_parse(hex, &oid));
  return oid;
}

/* The calls with ids in text, as the tests keep them. */
static int test_status(bw_db_t *db, const char *run_id, json_object **out,
                       bw_error_t *error) {
  bson_oid_t run = test_oid(run_id);
  return bw_run_status(db, &run, out, error);
}

static int test_poll(bw_db_t *db, const bw_config_t *cfg, const char *worker,
                     json_object **out, bw_error_t *error) {
  bson_oid_t w = test_oid(worker);
  return bw_job_poll(db, cfg, &w, out, error);
}

static int test_report(bw_db_t *db, const bw_config_t *cfg, const char *job,
                       const char *worker, json_object *result,
                       bw_error_t *error) {
  bson_oid_t j = test_oid(job), w = test_oid(worker);
  return bw_job_report(db, cfg, &j, &w, result, error);
}

/* Creates the run as the API does: from the body's text, validated. */
static void test_create_run(bw_db_t *db, const bw_config_t *cfg, int students,
                            bool post, char run_id[25]) {
  json_object *built = test_run_config(students, post), *body, *config;
  const char *text = json_object_to_json_string(built);
  bw_json_items_t *list;
  bw_error_t error;
  bson_oid_t run;
  ck_assert_int_eq(bw_json_parse_body_lazy(text, strlen(text), cfg->max_depth,
                                           "students", &body, &list, &error),
                   0);
  ck_assert_int_eq(bw_validate_run_config(body, list, cfg, &config, &error), 0);
  ck_assert_int_eq(bw_run_create(db, config, list, &run, &error), 0);
  bson_oid_to_string(&run, run_id);
  json_object_put(config);
  json_object_put(body);
  bw_json_items_free(list);
  json_object_put(built);
}

static void test_create_started_run(bw_db_t *db, const bw_config_t *cfg,
                                    int students, bool post, char run_id[25]) {
  bw_error_t error;
  bson_oid_t run;
  test_create_run(db, cfg, students, post, run_id);
  run = test_oid(run_id);
  ck_assert_int_eq(bw_run_start(db, &run, &error), 0);
}

/* A child: registers, then takes jobs and reports success until the queue
 * has been empty for a while.  Writes each job id it got, one per line. */
static void drain_child(const bw_config_t *cfg, int out_fd) {
  bw_db_t *db = test_db(cfg);
  bw_error_t error;
  char worker[25];
  int empty = 0;
  json_object *ok = json_tokener_parse("{\"success\":true,\"info\":[]}");

  if (bw_worker_register(db, "drain", worker, &error) < 0)
    _exit(2);
  while (empty < 40) {
    json_object *job = NULL;
    int rc = test_poll(db, cfg, worker, &job, &error);
    if (rc == BW_EEMPTY) {
      empty++;
      usleep(20000);
      continue;
    }
    if (rc < 0)
      _exit(3);
    empty = 0;
    const char *id =
        json_object_get_string(json_object_object_get(job, "job_id"));
    char line[32];
    int n = snprintf(line, sizeof line, "%s\n", id);
    if (write(out_fd, line, (size_t)n) != n)
      _exit(4);
    if (test_report(db, cfg, id, worker, ok, &error) < 0)
      _exit(5);
    json_object_put(job);
  }
  json_object_put(ok);
  bw_db_close(db);
  _exit(0);
}

static int count_lines_unique(FILE *f, int *dups) {
  char line[64], **seen = NULL;
  int n = 0;
  *dups = 0;
  while (fgets(line, sizeof line, f)) {
    for (int i = 0; i < n; i++)
      if (strcmp(seen[i], line) == 0)
        (*dups)++;
    seen = realloc(seen, sizeof *seen * (size_t)(n + 1));
    seen[n++] = strdup(line);
  }
  for (int i = 0; i < n; i++)
    free(seen[i]);
  free(seen);
  return n;
}

static void wait_children(pid_t *pids, int n) {
  for (int i = 0; i < n; i++) {
    int status;
    ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "child %d exited with status %d", i, status);
  }
}

START_TEST(drain_from_many_processes_hands_each_job_out_once) {
  bw_config_t cfg = test_config();
  bw_db_t *db = test_db(&cfg);
  char run_id[25];
  pid_t pids[PROCS];
  FILE *log = tmpfile();
  json_object *status = NULL;
  bw_error_t error;
  int dups;

  test_create_started_run(db, &cfg, 500, true, run_id);
  for (int i = 0; i < PROCS; i++) {
    pids[i] = fork();
    if (pids[i] == 0)
      drain_child(&cfg, fileno(log));
  }
  wait_children(pids, PROCS);
  rewind(log);
  ck_assert_int_eq(count_lines_unique(log, &dups), 501); /* 500 + post */
  ck_assert_int_eq(dups, 0);
  ck_assert_int_eq(test_status(db, run_id, &status, &error), 0);
  ck_assert_str_eq(
      json_object_get_string(json_object_object_get(status, "state")),
      "succeeded");
  json_object *counts = json_object_object_get(status, "counts");
  ck_assert_int_eq(
      json_object_get_int(json_object_object_get(counts, "succeeded")), 501);
  json_object_put(status);
  fclose(log);
  bw_db_close(db);
}
END_TEST

START_TEST(concurrent_starts_start_a_run_once) {
  bw_config_t cfg = test_config();
  bw_db_t *db = test_db(&cfg);
  char run_id[25];
  pid_t pids[PROCS];
  int ok = 0;
  bw_error_t error;

  test_create_run(db, &cfg, 20, false, run_id);
  for (int i = 0; i < PROCS; i++) {
    pids[i] = fork();
    if (pids[i] == 0) {
      bw_db_t *mine = test_db(&cfg);
      bson_oid_t run = test_oid(run_id);
      int rc = bw_run_start(mine, &run, &error);
      _exit(rc == 0 ? 0 : rc == BW_EINVAL ? 1 : 2);
    }
  }
  for (int i = 0; i < PROCS; i++) {
    int status;
    waitpid(pids[i], &status, 0);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) <= 1);
    ok += WEXITSTATUS(status) == 0;
  }
  ck_assert_int_eq(ok, 1);
  ck_assert_int_eq(bw_test_db_count(bw_itest_stack(), "queue"), 20);
  bw_db_close(db);
}
END_TEST

/* A worker takes one job and "dies": its heartbeat is pushed into the past. */
static void test_kill_worker(bw_db_t *db, const char *worker) {
  bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set;
  bson_oid_t oid;
  bw_db_oid_parse(worker, &oid);
  BSON_APPEND_OID(&filter, "_id", &oid);
  BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
  BSON_APPEND_DATE_TIME(&set, "last_heartbeat", bw_db_now_ms() - 3600 * 1000);
  bson_append_document_end(&update, &set);
  ck_assert(mongoc_collection_update_one(bw_db_coll(db, BW_COLL_WORKERS),
                                         &filter, &update, NULL, NULL, NULL));
  bson_destroy(&filter);
  bson_destroy(&update);
}

START_TEST(reapers_and_a_late_result_race_and_one_wins) {
  bw_config_t cfg = test_config();
  bw_db_t *db = test_db(&cfg);
  char run_id[25], worker[25], job_id[64];
  json_object *job = NULL;
  pid_t pids[PROCS];
  bw_error_t error;
  int results = 0, requeues = 0;

  test_create_started_run(db, &cfg, 1, false, run_id);
  ck_assert_int_eq(bw_worker_register(db, "doomed", worker, &error), 0);
  ck_assert_int_eq(test_poll(db, &cfg, worker, &job, &error), 0);
  bson_strncpy(job_id,
               json_object_get_string(json_object_object_get(job, "job_id")),
               sizeof job_id);
  json_object_put(job);
  test_kill_worker(db, worker);

  /* Half the children reap, half send the dead worker's late result. */
  for (int i = 0; i < PROCS; i++) {
    pids[i] = fork();
    if (pids[i] == 0) {
      bw_db_t *mine = test_db(&cfg);
      if (i % 2 == 0) {
        bw_reap_stats_t stats;
        if (bw_reap_once(mine, &cfg, &stats, &error) < 0)
          _exit(9);
        _exit(stats.requeued > 0 ? 10 : 0);
      }
      json_object *ok = json_tokener_parse("{\"success\":true,\"info\":[]}");
      int rc = test_report(mine, &cfg, job_id, worker, ok, &error);
      _exit(rc == 0 ? 20 : rc == BW_ECONFLICT ? 0 : 29);
    }
  }
  for (int i = 0; i < PROCS; i++) {
    int status;
    waitpid(pids[i], &status, 0);
    ck_assert(WIFEXITED(status));
    ck_assert_msg(WEXITSTATUS(status) % 10 == 0, "child %d: %d", i,
                  WEXITSTATUS(status));
    requeues += WEXITSTATUS(status) == 10;
    results += WEXITSTATUS(status) == 20;
  }
  /* The result counts once (all four reports are the same worker's, so a
   * resend after the winning one is a 200 too) or the re-queue once. */
  ck_assert_msg((results >= 1 && requeues == 0) ||
                    (results == 0 && requeues == 1),
                "results %d requeues %d", results, requeues);
  ck_assert_int_eq(bw_test_db_count(bw_itest_stack(), "outcomes"), 1);
  ck_assert_int_eq(bw_test_db_count(bw_itest_stack(), "queue"), requeues);
  bw_db_close(db);
}
END_TEST

/* A poller that claimed attempt 1 of a job, dequeued it and died before
 * recording the hand-out, while the reaper was down far longer than its
 * claim window (a whole-stack outage): run repair must still re-queue the
 * job, or the run never finishes. */
START_TEST(an_orphan_claim_older_than_the_reaper_window_is_requeued) {
  bw_config_t cfg = test_config();
  bw_db_t *db = test_db(&cfg);
  char run_id[25], worker[25], entry[48];
  json_object *status = NULL, *job = NULL;
  bson_oid_t orphan, run, dead_worker;
  bw_reap_stats_t stats;
  bw_error_t error;

  test_create_started_run(db, &cfg, 2, false, run_id);
  ck_assert_int_eq(test_status(db, run_id, &status, &error), 0);
  bson_oid_init_from_string(
      &orphan,
      json_object_get_string(json_object_object_get(
          json_object_array_get_idx(json_object_object_get(status, "jobs"), 0),
          "job_id")));
  json_object_put(status);
  bson_oid_init_from_string(&run, run_id);
  bson_oid_init(&dead_worker, NULL);
  bw_queue_entry_id(&orphan, 1, entry);
  for (int p = 0; p < bw_db_queue_partitions(db); p++) {
    bson_t filter = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&filter, "_id", entry);
    mongoc_collection_delete_one(bw_db_queue(db, p), &filter, NULL, NULL, NULL);
    bson_destroy(&filter);
  }
  bw_handout_t h = {.attempt = 1, .type = "student", .student_count = 2};
  bson_oid_copy(&orphan, &h.job_id);
  bson_oid_copy(&run, &h.run_id);
  bson_t claim = BSON_INITIALIZER;
  BSON_APPEND_UTF8(&claim, "_id", entry);
  bw_handout_append(&claim, &h, NULL);
  BSON_APPEND_OID(&claim, "worker_id", &dead_worker);
  BSON_APPEND_DATE_TIME(&claim, "at",
                        bw_db_now_ms() - 10 * cfg.claim_grace * 1000LL);
  ck_assert(mongoc_collection_insert_one(bw_db_coll(db, BW_COLL_CLAIMS), &claim,
                                         NULL, NULL, NULL));
  bson_destroy(&claim);

  ck_assert_int_eq(bw_reap_once(db, &cfg, &stats, &error), 0);
  ck_assert_int_eq(stats.repaired, 1);
  ck_assert_int_eq(bw_reap_once(db, &cfg, &stats, &error), 0);
  ck_assert_int_eq(stats.repaired, 0);

  /* Both jobs are handed out now, the orphan as its attempt 2. */
  json_object *ok = json_tokener_parse("{\"success\":true,\"info\":[]}");
  ck_assert_int_eq(bw_worker_register(db, "live", worker, &error), 0);
  for (int i = 0; i < 2; i++) {
    ck_assert_int_eq(test_poll(db, &cfg, worker, &job, &error), 0);
    const char *id =
        json_object_get_string(json_object_object_get(job, "job_id"));
    ck_assert_int_eq(test_report(db, &cfg, id, worker, ok, &error), 0);
    json_object_put(job);
  }
  ck_assert_int_eq(test_poll(db, &cfg, worker, &job, &error), BW_EEMPTY);
  json_object_put(ok);
  ck_assert_int_eq(test_status(db, run_id, &status, &error), 0);
  ck_assert_str_eq(
      json_object_get_string(json_object_object_get(status, "state")),
      "succeeded");
  ck_assert_int_eq(
      json_object_get_int(json_object_object_get(
          json_object_array_get_idx(json_object_object_get(status, "jobs"), 0),
          "attempts")),
      2);
  json_object_put(status);
  bw_db_close(db);
}
END_TEST

/* ---- finish tickets (common/finish.c) -------------------------------- */

/* Counts the student jobs i of `jobs` (of `count`) with i % step == first,
 * in that order.  Returns how many of them saw themselves last, or -1. */
static int finish_share(bw_db_t *db, const bson_oid_t *run,
                        const bson_oid_t *jobs, int count, int first,
                        int step) {
  int lasts = 0;
  for (int i = first; i < count; i += step) {
    bool last;
    if (bw_finish_count(db, run, &jobs[i], i, count, &last, NULL) < 0)
      return -1;
    lasts += last;
  }
  return lasts;
}

/* 300 students (uneven buckets of 4 and 5) counted by 8 processes at once:
 * exactly one sees itself last, and every ticket is taken exactly once. */
START_TEST(finish_tickets_name_one_last_job_among_many_processes) {
  enum { COUNT = 300 };
  bw_config_t cfg = test_config();
  bson_oid_t run, jobs[COUNT];
  pid_t pids[PROCS];
  int lasts = 0;

  bson_oid_init(&run, NULL);
  for (int i = 0; i < COUNT; i++)
    bson_oid_init(&jobs[i], NULL);
  for (int i = 0; i < PROCS; i++) {
    pids[i] = fork();
    if (pids[i] == 0) {
      bw_db_t *mine = test_db(&cfg);
      int n = finish_share(mine, &run, jobs, COUNT, i, PROCS);
      bw_db_close(mine);
      _exit(n < 0 ? 9 : n);
    }
  }
  for (int i = 0; i < PROCS; i++) {
    int status;
    waitpid(pids[i], &status, 0);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) <= 1);
    lasts += WEXITSTATUS(status);
  }
  ck_assert_int_eq(lasts, 1);
  /* One ticket per job in its bucket, one per bucket in "all". */
  ck_assert_int_eq(bw_test_db_count(bw_itest_stack(), "marks"),
                   COUNT + BW_FINISH_BUCKETS);
}
END_TEST

/* The shared hint may lag (FerretDB's unlocked updates can set it back):
 * a process with no memory of its own tickets, starting from a hint reset
 * to 0, still takes the right tickets, and the last job is the last. */
START_TEST(finish_tickets_survive_a_hint_set_back) {
  enum { COUNT = 70 };
  bw_config_t cfg = test_config();
  bw_db_t *db = test_db(&cfg);
  bson_oid_t run, jobs[COUNT];
  bson_t filter = BSON_INITIALIZER;
  pid_t pid;
  int status;

  bson_oid_init(&run, NULL);
  for (int i = 0; i < COUNT; i++)
    bson_oid_init(&jobs[i], NULL);
  /* The first half, in this process, sees no last. */
  for (int i = 0; i < COUNT / 2; i++) {
    bool last = true;
    ck_assert_int_eq(bw_finish_count(db, &run, &jobs[i], i, COUNT, &last, NULL),
                     0);
    ck_assert(!last);
  }
  ck_assert(mongoc_collection_delete_many(bw_db_coll(db, BW_COLL_COUNTERS),
                                          &filter, NULL, NULL, NULL));
  bson_destroy(&filter);
  /* The second half in a fresh process: only the very last is last. */
  pid = fork();
  if (pid == 0) {
    bw_db_t *mine = test_db(&cfg);
    for (int i = COUNT / 2; i < COUNT; i++) {
      bool last;
      if (bw_finish_count(mine, &run, &jobs[i], i, COUNT, &last, NULL) < 0)
        _exit(9);
      if (last != (i == COUNT - 1))
        _exit(10 + (i == COUNT - 1));
    }
    bw_db_close(mine);
    _exit(0);
  }
  waitpid(pid, &status, 0);
  ck_assert(WIFEXITED(status));
  ck_assert_int_eq(WEXITSTATUS(status), 0);
  bw_db_close(db);
}
END_TEST

static Suite *queue_suite(void) {
  Suite *s = suite_create("queue");
  TCase *tc = bw_itest_tcase(s, "exactly-once", 240, true);
  tcase_add_test(tc, drain_from_many_processes_hands_each_job_out_once);
  tcase_add_test(tc, concurrent_starts_start_a_run_once);
  tcase_add_test(tc, reapers_and_a_late_result_race_and_one_wins);
  tcase_add_test(tc, an_orphan_claim_older_than_the_reaper_window_is_requeued);
  tcase_add_test(tc, finish_tickets_name_one_last_job_among_many_processes);
  tcase_add_test(tc, finish_tickets_survive_a_hint_set_back);
  return s;
}

int main(void) {
  bw_test_stack_opts_t opts = {.label = "queue"};
  return bw_itest_main(queue_suite(), &opts);
}
