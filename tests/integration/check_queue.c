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
#include "lane.h"
#include "queue.h"
#include "reap.h"
#include "run.h"
#include "validate.h"
#include "worker.h"

#define PROCS 8

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
  return bw_job_poll(db, cfg, &w, BW_GEN_SEED, out, error);
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
  bw_config_t cfg = bw_itest_config();
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
  bw_config_t cfg = bw_itest_config();
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
  bw_config_t cfg = bw_itest_config();
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
  bw_config_t cfg = bw_itest_config();
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
/* A grader child for the repair test: registers, then polls, heartbeats
 * while it holds each job (up to 20 ms), and reports; exits 1 if any
 * result is refused.  Stops after the queue was empty for 3 s. */
static void live_grader_child(const bw_config_t *cfg) {
  bw_db_t *db = test_db(cfg);
  json_object *ok = json_tokener_parse("{\"success\":true,\"info\":[]}");
  char worker[25];
  bw_error_t error;
  int empty = 0, refused = 0;
  bson_oid_t w;

  srand((unsigned)getpid());
  if (bw_worker_register(db, "live", worker, &error) < 0)
    _exit(2);
  w = test_oid(worker);
  while (empty < 30) {
    json_object *job = NULL;
    int rc = test_poll(db, cfg, worker, &job, &error);
    bw_worker_heartbeat(db, &w, &error);
    if (rc != 0) {
      empty++;
      usleep(100 * 1000);
      continue;
    }
    empty = 0;
    usleep((useconds_t)(rand() % 20) * 1000);
    bw_worker_heartbeat(db, &w, &error);
    if (test_report(
            db, cfg,
            json_object_get_string(json_object_object_get(job, "job_id")),
            worker, ok, &error) < 0)
      refused++;
    json_object_put(job);
  }
  json_object_put(ok);
  bw_db_close(db);
  _exit(refused ? 1 : 0);
}

/* Issue 11's `repaired 375`: a run whose state says "students" while its
 * starter is still queueing its jobs looks, to run repair, like one whose
 * starter died.  Here the window is held open (entries removed right after
 * the start): repair leaves the run alone while its phase is younger than
 * claim_grace, and queues every job once it is older (the starter died). */
START_TEST(repair_waits_for_a_phase_still_being_queued) {
  bw_config_t cfg = bw_itest_config();
  bw_db_t *db = test_db(&cfg);
  bw_reap_stats_t stats;
  bw_error_t error;
  char run_id[25], mark[64];
  bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set;

  test_create_started_run(db, &cfg, 20, false, run_id);
  for (int p = 0; p < bw_db_queue_partitions(db); p++) {
    bson_t all = BSON_INITIALIZER;
    ck_assert(mongoc_collection_delete_many(bw_db_queue(db, p), &all, NULL,
                                            NULL, NULL));
    bson_destroy(&all);
  }
  ck_assert_int_eq(bw_reap_once(db, &cfg, &stats, &error), 0);
  ck_assert_int_eq(stats.repaired, 0);

  snprintf(mark, sizeof mark, "%s:start", run_id);
  BSON_APPEND_UTF8(&filter, "_id", mark);
  BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
  BSON_APPEND_DATE_TIME(&set, "at",
                        bw_db_now_ms() - 2 * cfg.claim_grace * 1000LL);
  bson_append_document_end(&update, &set);
  ck_assert(mongoc_collection_update_one(bw_db_coll(db, BW_COLL_MARKS), &filter,
                                         &update, NULL, NULL, NULL));
  ck_assert_int_eq(bw_reap_once(db, &cfg, &stats, &error), 0);
  ck_assert_int_eq(stats.repaired, 20);
  ck_assert_int_eq(bw_reap_once(db, &cfg, &stats, &error), 0);
  ck_assert_int_eq(stats.repaired, 0);
  bson_destroy(&filter);
  bson_destroy(&update);
  bw_db_close(db);
}
END_TEST

/* A reaper child: passes back to back until killed; appends the counts of
 * every pass that did something ("repaired requeued failed") to out_fd. */
static void reaper_child(const bw_config_t *cfg, int out_fd) {
  bw_db_t *db = test_db(cfg);
  bw_reap_stats_t stats;
  bw_error_t error;
  char line[64];
  for (;;) {
    if (bw_reap_once(db, cfg, &stats, &error) < 0)
      continue;
    if (stats.repaired || stats.requeued || stats.failed) {
      int n = snprintf(line, sizeof line, "%d %d %d\n", stats.repaired,
                       stats.requeued, stats.failed);
      if (write(out_fd, line, (size_t)n) != n)
        _exit(1);
    }
  }
}


/* A canceller that took the run's end mark (control.h) and died before
 * writing the state: the reaper's repair finishes the cancel. */
START_TEST(repair_finishes_a_cancel_whose_canceller_died) {
  bw_config_t cfg = bw_itest_config();
  bw_db_t *db = test_db(&cfg);
  bw_reap_stats_t stats = {0};
  bw_error_t error;
  char run_id[25];
  bson_oid_t run;
  bson_t doc;

  test_create_started_run(db, &cfg, 3, false, run_id);
  run = test_oid(run_id);
  ck_assert_int_eq(bw_run_mark(db, &run, 0, "end", true, &error), 0);
  ck_assert_int_eq(bw_reap_repair(db, &cfg, &stats, &error), 0);
  ck_assert_int_ge(stats.repaired, 1);
  ck_assert_int_eq(bw_run_find(db, &run, false, &doc, &error), 0);
  ck_assert_str_eq(bw_db_get_utf8(&doc, "state", ""), "cancelled");
  bson_destroy(&doc);
  bw_db_close(db);
}
END_TEST

/* max_attempts counts from the attempt a hand-out's round began with: a job
 * staff retried (control.c) after it used up its attempts gets them again,
 * while a first-pass job is still given up at max_attempts. */
static bool test_abandon(bw_db_t *db, const bw_config_t *cfg, int attempt,
                         int first_attempt) {
  char run_id[25];
  bson_t job;
  bw_handout_t h = {.attempt = attempt,
                    .first_attempt = first_attempt,
                    .student_count = 1,
                    .index = 0,
                    .type = "student"};
  bw_error_t error;
  bool failed = true;

  /* The run's one student job (not polled: other tests' runs may wait in
   * the same queue). */
  test_create_started_run(db, cfg, 1, false, run_id);
  h.run_id = test_oid(run_id);
  ck_assert_int_eq(
      bw_db_find_by_oid(db, BW_COLL_JOBS, "run_id", &h.run_id, &job, &error), 0);
  ck_assert(bw_db_get_oid(&job, "_id", &h.job_id));
  bson_destroy(&job);
  ck_assert_int_eq(bw_job_abandon(db, cfg, &h, NULL, "test: the grader died",
                                  &failed, &error),
                   0);
  return failed;
}

START_TEST(a_retried_job_gets_its_attempts_again) {
  bw_config_t cfg = bw_itest_config();
  bw_db_t *db = test_db(&cfg);

  cfg.max_attempts = 2;
  ck_assert_msg(test_abandon(db, &cfg, 2, 0),
                "a first-pass job at max_attempts is given up");
  ck_assert_msg(!test_abandon(db, &cfg, 3, 3),
                "a retried job's first attempt is re-queued, though attempt "
                "3 is past max_attempts 2");
  ck_assert_msg(test_abandon(db, &cfg, 4, 3),
                "a retried job is given up after max_attempts of its round");
  bw_db_close(db);
}
END_TEST

/* Issue 11: with no fault, repair repairs nothing and no pass takes a job
 * from a grader that heartbeats and is within its deadline, while a large
 * run is being started (its jobs are queued after its state is written:
 * the reaper used to "repair" hundreds of them, `repaired 375`) and
 * graded. */
START_TEST(repair_never_takes_a_live_graders_job) {
  bw_config_t cfg = bw_itest_config();
  bw_db_t *db = test_db(&cfg);
  bw_reap_stats_t sum = {0};
  bw_error_t error;
  json_object *status = NULL;
  FILE *log = tmpfile();
  pid_t pids[4], reaper;
  char run_id[25], line[64];
  bson_oid_t run;
  bool done = false;

  test_create_run(db, &cfg, 1000, true, run_id);
  run = test_oid(run_id);
  fflush(NULL);
  if ((reaper = fork()) == 0)
    reaper_child(&cfg, fileno(log));
  usleep(300 * 1000);
  for (int i = 0; i < 4; i++)
    if ((pids[i] = fork()) == 0)
      live_grader_child(&cfg);
  ck_assert_int_eq(bw_run_start(db, &run, &error), 0);
  for (double end = bw_test_now() + 180; !done && bw_test_now() < end;) {
    usleep(500 * 1000);
    ck_assert_int_eq(test_status(db, run_id, &status, &error), 0);
    done =
        strcmp(json_object_get_string(json_object_object_get(status, "state")),
               "succeeded") == 0;
    json_object_put(status);
  }
  kill(reaper, SIGKILL);
  waitpid(reaper, NULL, 0);
  wait_children(pids, 4);
  rewind(log);
  while (fgets(line, sizeof line, log)) {
    int r, q, f;
    if (sscanf(line, "%d %d %d", &r, &q, &f) == 3) {
      sum.repaired += r;
      sum.requeued += q;
      sum.failed += f;
    }
  }
  fclose(log);
  fprintf(stderr, "repair test: repaired %d, re-queued %d, failed %d\n",
          sum.repaired, sum.requeued, sum.failed);
  ck_assert_msg(done, "the run did not succeed within 180 s");
  ck_assert_int_eq(sum.repaired, 0);
  ck_assert_int_eq(sum.requeued, 0);
  ck_assert_int_eq(sum.failed, 0);
  bw_db_close(db);
}
END_TEST

START_TEST(finish_tickets_name_one_last_job_among_many_processes) {
  enum { COUNT = 300 };
  bw_config_t cfg = bw_itest_config();
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
  bw_config_t cfg = bw_itest_config();
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

/* ---- fair share (common/lane.h) -------------------------------------- */

/* Makes a run's lane and waiting entries look like another course's or
 * generation's (no route makes such runs on this branch yet). */
static void fair_patch_run(bw_db_t *db, const char *run_id, const char *course,
                           int gen) {
  bson_oid_t run = test_oid(run_id);
  bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set;
  bson_error_t driver;

  BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
  BSON_APPEND_UTF8(&set, "course", course);
  BSON_APPEND_INT32(&set, "gen", gen);
  bson_append_document_end(&update, &set);
  BSON_APPEND_UTF8(&filter, "_id", run_id);
  ck_assert(mongoc_collection_update_one(bw_db_coll(db, BW_COLL_LANES),
                                         &filter, &update, NULL, NULL,
                                         &driver));
  bson_reinit(&filter);
  BSON_APPEND_OID(&filter, "run_id", &run);
  for (int p = 0; p < bw_db_queue_partitions(db); p++)
    ck_assert(mongoc_collection_update_many(bw_db_queue(db, p), &filter,
                                            &update, NULL, NULL, &driver));
  bson_destroy(&filter);
  bson_destroy(&update);
}

/* One poll of generation gen; on 0, run_id gets the job's run. */
static int fair_poll(bw_db_t *db, const bw_config_t *cfg, const char *worker,
                     int gen, char run_id[25]) {
  bson_oid_t w = test_oid(worker), job;
  json_object *payload = NULL, *view = NULL;
  bw_error_t error;
  int rc = bw_job_poll(db, cfg, &w, gen, &payload, &error);
  if (rc < 0)
    return rc;
  /* A 2019 job message names it grading_job_id (PROTOCOL-LATER.md §2.5). */
  json_object *id = json_object_object_get(payload, "job_id");
  if (id == NULL)
    id = json_object_object_get(payload, "grading_job_id");
  job = test_oid(json_object_get_string(id));
  ck_assert_int_eq(bw_job_get(db, &job, &view, &error), 0);
  bson_strncpy(run_id,
               json_object_get_string(json_object_object_get(view, "grading_run_id")),
               25);
  json_object_put(view);
  json_object_put(payload);
  return 0;
}

static int64_t fair_count(bw_db_t *db, mongoc_collection_t *coll) {
  bson_t empty = BSON_INITIALIZER;
  bson_error_t driver;
  int64_t n = mongoc_collection_count_documents(coll, &empty, NULL, NULL, NULL,
                                                &driver);
  bson_destroy(&empty);
  (void)db;
  ck_assert_int_ge(n, 0);
  return n;
}

/* Through nginx and the FastCGI pool: one grader, a 300-job run queued,
 * then a 5-job run; the small run is out within 5 x 2 runs + 1 grader
 * hand-outs of being queued (issue 14's bound). */
START_TEST(a_small_run_after_a_big_one_is_handed_out_within_the_bound) {
  bw_test_client_t c;
  char big[25], small[25], job_id[25];
  char *big_config = bw_itest_run_config(300, "{\"image\": \"g\"}", false, false),
       *small_config = bw_itest_run_config(5, "{\"image\": \"g\"}", false, false);
  int handouts = 0, small_out = 0;

  bw_itest_client(&c);
  ck_assert_int_eq(bw_test_http_register(&c, "fair", NULL), 200);
  ck_assert_int_eq(bw_test_http_create_and_start(&c, big_config, big), 200);
  ck_assert_int_eq(bw_test_http_create_and_start(&c, small_config, small), 200);
  while (small_out < 5 && handouts < 40) {
    bw_test_http_resp_t resp, view;
    ck_assert_int_eq(bw_test_http_poll(&c, &resp, job_id), 200);
    bw_test_http_resp_cleanup(&resp);
    handouts++;
    ck_assert_int_eq(bw_test_http_get_job(&c, job_id, &view), 200);
    if (strcmp(bw_test_json_str(bw_test_http_data(&view), "grading_run_id"),
               small) == 0)
      small_out++;
    bw_test_http_resp_cleanup(&view);
  }
  ck_assert_msg(small_out == 5 && handouts <= 5 * 2 + 1,
                "the 5-job run's jobs were out after %d hand-outs (%d of 5)",
                handouts, small_out);
  free(big_config);
  free(small_config);
}
END_TEST

/* Courses take turns, then the runs of a course: course "" (one run) and
 * course "b" (a big and a small run) alternate poll by poll, and b's small
 * run is out in its first 5 turns of b. */
START_TEST(courses_take_turns_then_the_runs_of_a_course) {
  bw_config_t cfg = bw_itest_config();
  bw_db_t *db = test_db(&cfg);
  char a[25], b1[25], b2[25], worker[25], got[25], prev_course = '?';
  bw_error_t error;
  int b2_out = 0;

  test_create_started_run(db, &cfg, 30, false, a);
  test_create_started_run(db, &cfg, 30, false, b1);
  test_create_started_run(db, &cfg, 5, false, b2);
  fair_patch_run(db, b1, "b", BW_GEN_SEED);
  fair_patch_run(db, b2, "b", BW_GEN_SEED);
  ck_assert_int_eq(bw_worker_register(db, "fair", worker, &error), 0);
  for (int i = 0; i < 20; i++) {
    char course;
    ck_assert_int_eq(fair_poll(db, &cfg, worker, BW_GEN_SEED, got), 0);
    course = strcmp(got, a) == 0 ? 'a' : 'b';
    ck_assert_msg(course != prev_course, "hand-out %d: course %c twice", i,
                  course);
    prev_course = course;
    b2_out += strcmp(got, b2) == 0;
  }
  ck_assert_int_eq(b2_out, 5);
  bw_db_close(db);
}
END_TEST

/* Pollers in PROCS processes while runs come and go (lanes opening and
 * closing under them): every job handed out once, and no lane left. */
START_TEST(no_job_is_handed_out_twice_while_lanes_open_and_close) {
  static const int sizes[] = {3, 1, 7, 2, 1, 5, 4, 2, 9, 1};
  bw_config_t cfg = bw_itest_config();
  bw_db_t *db = test_db(&cfg);
  char run_id[25];
  pid_t pids[PROCS];
  FILE *log = tmpfile();
  int dups, total = 0;

  test_create_started_run(db, &cfg, sizes[0], false, run_id);
  total += sizes[0];
  for (int i = 0; i < PROCS; i++) {
    pids[i] = fork();
    if (pids[i] == 0)
      drain_child(&cfg, fileno(log));
  }
  for (size_t r = 1; r < sizeof sizes / sizeof *sizes; r++) {
    usleep(30000);
    test_create_started_run(db, &cfg, sizes[r], false, run_id);
    total += sizes[r];
  }
  wait_children(pids, PROCS);
  rewind(log);
  ck_assert_int_eq(count_lines_unique(log, &dups), total);
  ck_assert_int_eq(dups, 0);
  /* Once no lane is young (lane.h), one poll closes every empty one. */
  char worker[25], got[25];
  bw_error_t error;
  usleep((BW_LANE_YOUNG_MS + 100) * 1000);
  ck_assert_int_eq(bw_worker_register(db, "fair", worker, &error), 0);
  ck_assert_int_eq(fair_poll(db, &cfg, worker, BW_GEN_SEED, got), BW_EEMPTY);
  ck_assert_int_eq(fair_count(db, bw_db_coll(db, BW_COLL_LANES)), 0);
  fclose(log);
  bw_db_close(db);
}
END_TEST

START_TEST(a_generation_never_takes_another_generations_entries) {
  bw_config_t cfg = bw_itest_config();
  bw_db_t *db = test_db(&cfg);
  char seed[25], gen3[25], worker[25], got[25];
  bw_error_t error;

  test_create_started_run(db, &cfg, 4, false, seed);
  test_create_started_run(db, &cfg, 4, false, gen3);
  fair_patch_run(db, gen3, "", BW_GEN_3);
  ck_assert_int_eq(bw_worker_register(db, "fair", worker, &error), 0);
  for (int i = 0; i < 4; i++) {
    ck_assert_int_eq(fair_poll(db, &cfg, worker, BW_GEN_SEED, got), 0);
    ck_assert_str_eq(got, seed);
  }
  ck_assert_int_eq(fair_poll(db, &cfg, worker, BW_GEN_SEED, got), BW_EEMPTY);
  for (int i = 0; i < 4; i++) {
    ck_assert_int_eq(fair_poll(db, &cfg, worker, BW_GEN_3, got), 0);
    ck_assert_str_eq(got, gen3);
  }
  ck_assert_int_eq(fair_poll(db, &cfg, worker, BW_GEN_3, got), BW_EEMPTY);
  bw_db_close(db);
}
END_TEST

/* An entry whose lane is gone (a lost race, or queued before lanes) is
 * still handed out: by the walk of every partition when no lane gives
 * anything, and in its turn once the reaper reopened its lane. */
START_TEST(an_entry_without_a_lane_is_still_handed_out) {
  bw_config_t cfg = bw_itest_config();
  bw_db_t *db = test_db(&cfg);
  char big[25], small[25], worker[25], got[25];
  bson_t empty = BSON_INITIALIZER;
  bw_error_t error;
  int opened, small_out = 0, handouts = 0;

  ck_assert_int_eq(bw_worker_register(db, "fair", worker, &error), 0);
  /* No lane at all: the walk. */
  test_create_started_run(db, &cfg, 3, false, small);
  ck_assert(mongoc_collection_delete_many(bw_db_coll(db, BW_COLL_LANES),
                                          &empty, NULL, NULL, NULL));
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(fair_poll(db, &cfg, worker, BW_GEN_SEED, got), 0);
    ck_assert_str_eq(got, small);
  }
  ck_assert_int_eq(fair_poll(db, &cfg, worker, BW_GEN_SEED, got), BW_EEMPTY);
  /* Beside a busy lane: the reaper gives it one back. */
  test_create_started_run(db, &cfg, 40, false, big);
  test_create_started_run(db, &cfg, 3, false, small);
  bson_t filter = BSON_INITIALIZER;
  BSON_APPEND_UTF8(&filter, "_id", small);
  ck_assert(mongoc_collection_delete_one(bw_db_coll(db, BW_COLL_LANES),
                                         &filter, NULL, NULL, NULL));
  bson_destroy(&filter);
  ck_assert_int_eq(bw_queue_adopt_strays(db, &opened, &error), 0);
  ck_assert_int_eq(opened, 1);
  while (small_out < 3 && handouts < 20) {
    ck_assert_int_eq(fair_poll(db, &cfg, worker, BW_GEN_SEED, got), 0);
    handouts++;
    small_out += strcmp(got, small) == 0;
  }
  ck_assert_msg(handouts <= 3 * 2 + 1, "%d hand-outs", handouts);
  bson_destroy(&empty);
  bw_db_close(db);
}
END_TEST

/* The ids of a run's jobs in roster order. */
static void fair_visit_job(const bson_t *doc, void *ctx) {
  bson_oid_t *ids = ctx, id;
  int64_t index = bw_db_get_int(doc, "index");
  if (bw_db_get_oid(doc, "_id", &id) && index >= 0 && index < 16)
    bson_oid_copy(&id, &ids[index]);
}

static void fair_job_ids(bw_db_t *db, const char *run_id, bson_oid_t ids[16]) {
  bson_oid_t run = test_oid(run_id);
  bson_t filter = BSON_INITIALIZER;
  bw_error_t error;
  BSON_APPEND_OID(&filter, "run_id", &run);
  ck_assert_int_eq(bw_db_each(bw_db_coll(db, BW_COLL_JOBS), &filter, NULL,
                              fair_visit_job, ids, &error),
                   0);
  bson_destroy(&filter);
}

START_TEST(queue_length_and_position_per_course) {
  bw_config_t cfg = bw_itest_config();
  bw_db_t *db = test_db(&cfg);
  char r1[25], r2[25];
  bson_oid_t j1[16], j2[16], nobody;
  bw_error_t error;
  int64_t n, pos;

  test_create_started_run(db, &cfg, 10, false, r1);
  usleep(5000); /* lanes in turn order by when they opened */
  test_create_started_run(db, &cfg, 4, false, r2);
  fair_job_ids(db, r1, j1);
  fair_job_ids(db, r2, j2);
  ck_assert_int_eq(bw_queue_course_length(db, "", &n, &error), 0);
  ck_assert_int_eq(n, 14);
  ck_assert_int_eq(bw_queue_course_length(db, "other", &n, &error), 0);
  ck_assert_int_eq(n, 0);
  /* r1, r2, r1, r2, r1, r2, r1, r2, then r1's other six. */
  ck_assert_int_eq(bw_queue_position(db, "", &j1[0], &pos, &error), 0);
  ck_assert_int_eq(pos, 0);
  ck_assert_int_eq(bw_queue_position(db, "", &j2[0], &pos, &error), 0);
  ck_assert_int_eq(pos, 1);
  ck_assert_int_eq(bw_queue_position(db, "", &j1[2], &pos, &error), 0);
  ck_assert_int_eq(pos, 4);
  ck_assert_int_eq(bw_queue_position(db, "", &j2[3], &pos, &error), 0);
  ck_assert_int_eq(pos, 7);
  ck_assert_int_eq(bw_queue_position(db, "", &j1[9], &pos, &error), 0);
  ck_assert_int_eq(pos, 13);
  /* Another course's job, or one not waiting: not found. */
  ck_assert_int_eq(bw_queue_position(db, "other", &j1[0], &pos, &error),
                   BW_ENOTFOUND);
  memset(&nobody, 0, sizeof nobody);
  ck_assert_int_eq(bw_queue_position(db, "", &nobody, &pos, &error),
                   BW_ENOTFOUND);
  fair_patch_run(db, r2, "b", BW_GEN_SEED);
  ck_assert_int_eq(bw_queue_course_length(db, "b", &n, &error), 0);
  ck_assert_int_eq(n, 4);
  ck_assert_int_eq(bw_queue_position(db, "b", &j2[3], &pos, &error), 0);
  ck_assert_int_eq(pos, 3);
  ck_assert_int_eq(bw_queue_position(db, "", &j1[9], &pos, &error), 0);
  ck_assert_int_eq(pos, 9);
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
  tcase_add_test(tc, repair_waits_for_a_phase_still_being_queued);
  tcase_add_test(tc, repair_never_takes_a_live_graders_job);
  tcase_add_test(tc, finish_tickets_name_one_last_job_among_many_processes);
  tcase_add_test(tc, finish_tickets_survive_a_hint_set_back);
  tcase_add_test(tc, a_retried_job_gets_its_attempts_again);
  tcase_add_test(tc, repair_finishes_a_cancel_whose_canceller_died);
  tc = bw_itest_tcase(s, "fair share", 120, true);
  tcase_add_test(tc, a_small_run_after_a_big_one_is_handed_out_within_the_bound);
  tcase_add_test(tc, courses_take_turns_then_the_runs_of_a_course);
  tcase_add_test(tc, no_job_is_handed_out_twice_while_lanes_open_and_close);
  tcase_add_test(tc, a_generation_never_takes_another_generations_entries);
  tcase_add_test(tc, an_entry_without_a_lane_is_still_handed_out);
  tcase_add_test(tc, queue_length_and_position_per_course);
  return s;
}

int main(void) {
  bw_test_stack_opts_t opts = {.label = "queue"};
  return bw_itest_main(queue_suite(), &opts);
}
