/* check_stream.c - GET /api/v1/stream/<course>/<job> (Server-Sent Events,
 * PROTOCOL-LATER.md §2.10) read off a raw socket through nginx: headers,
 * events as they happen, keep-alives, the close after the final state,
 * auth and unknown jobs; a client that leaves frees its stream; streams
 * do not hold up long polls.
 *
 * The stack runs with stream_keepalive = 1 and poll_wait = 2, so no test
 * waits long: each is bounded by its TCase timeout (30 s; the whole binary
 * takes about 15 s).
 *
 * How a job moves here: the job test_job_* helpers are the one place that
 * makes, hands out and finishes a Gen 3 job; they go through common/ (the
 * functions the Gen 3 routes call) against the stack's database, so the
 * stream learns of each move the way it would from another API host: by
 * the signals (common/qsignal.h). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/itest.h"
#include "db.h"
#include "job.h"
#include "queue.h"
#include "worker.h"

#define COURSE "cs241"
/* How long an event may take to arrive here: generous, the machine is
 * shared (the service's own figure is in docs/BENCHMARKS.md). */
#define EVENT_WAIT_S 10.0

/* ---- the job, made and moved through common/ --------------------------- */

typedef struct test_job {
  bw_db_t *db;
  bw_config_t cfg;
  char run[25], job[25], worker[25];
} test_job_t;

/* A Gen 3 job of COURSE, waiting in the queue. */
static void test_job_make(test_job_t *t) {
  bw_test_client_t c;
  bw_test_http_resp_t resp = {0};
  bw_handout_t h;
  bw_error_t error;
  char *config = bw_itest_run_config(1, "{\"image\":\"x\"}", false, false);

  memset(t, 0, sizeof *t);
  t->cfg = bw_itest_config();
  ck_assert_int_eq(bw_db_open(&t->db, &t->cfg, &error), 0);
  bw_itest_client(&c);
  ck_assert_int_eq(bw_test_http_create_run(&c, config, t->run), 200);
  free(config);
  ck_assert_int_eq(bw_test_http_run_status(&c, t->run, &resp), 200);
  json_object *jobs = bw_test_json_get(bw_test_http_data(&resp), "jobs");
  snprintf(t->job, sizeof t->job, "%s",
           bw_test_json_str(json_object_array_get_idx(jobs, 0), "job_id"));
  bw_test_http_resp_cleanup(&resp);
  ck_assert(bw_test_is_oid(t->job));

  memset(&h, 0, sizeof h);
  ck_assert(bw_db_oid_parse(t->job, &h.job_id));
  ck_assert(bw_db_oid_parse(t->run, &h.run_id));
  snprintf(h.type, sizeof h.type, "student");
  h.attempt = 1;
  h.student_count = 1;
  h.gen = BW_GEN_3;
  snprintf(h.course, sizeof h.course, COURSE);
  ck_assert_int_eq(bw_queue_push(t->db, &h, NULL, &error), 0);
  ck_assert_int_eq(bw_worker_register(t->db, "g3", t->worker, &error), 0);
}

/* A grader takes it. */
static void test_job_take(test_job_t *t) {
  json_object *payload = NULL;
  bw_error_t error;
  bson_oid_t worker;

  ck_assert(bw_db_oid_parse(t->worker, &worker));
  ck_assert_int_eq(
      bw_job_poll(t->db, &t->cfg, &worker, BW_GEN_3, &payload, &error), 0);
  ck_assert_str_eq(bw_test_json_str(payload, "job_id"), t->job);
  json_object_put(payload);
}

/* Its grader's result. */
static void test_job_finish(test_job_t *t, bool success) {
  json_object *result = json_object_new_object();
  bson_oid_t job, worker;
  bw_error_t error;

  json_object_object_add(result, "success", json_object_new_boolean(success));
  json_object_object_add(result, "info", json_object_new_array());
  ck_assert(bw_db_oid_parse(t->job, &job));
  ck_assert(bw_db_oid_parse(t->worker, &worker));
  ck_assert_int_eq(
      bw_job_report(t->db, &t->cfg, &job, &worker, result, &error), 0);
  json_object_put(result);
}

static void test_job_cleanup(test_job_t *t) {
  bw_db_close(t->db);
  t->db = NULL;
}

/* A member's Authorization header. */
static const char *test_member_auth(char *out, size_t size) {
  snprintf(out, size, "Bearer %s", bw_test_stack_token(bw_itest_stack()));
  return out;
}

/* ---- a raw stream client ---------------------------------------------- */

typedef struct sse {
  int fd;
  char *raw; /* everything read so far, headers and chunk sizes included */
  size_t len, cap;
  bool eof;
} sse_t;

/* Sends the request (Connection: close: the end of the reply is the end
 * of the connection) and reads nothing yet. */
static void sse_open(sse_t *s, const char *path, const char *authorization) {
  int port = bw_test_stack_port(bw_itest_stack());
  char head[1024];
  int n;

  memset(s, 0, sizeof *s);
  s->fd = bw_test_connect_local(port);
  ck_assert_int_ge(s->fd, 0);
  n = snprintf(head, sizeof head,
               "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
               "Accept: text/event-stream\r\nConnection: close\r\n",
               path, port);
  if (authorization != NULL)
    n += snprintf(head + n, sizeof head - (size_t)n, "Authorization: %s\r\n",
                  authorization);
  n += snprintf(head + n, sizeof head - (size_t)n, "\r\n");
  ck_assert_int_eq(write(s->fd, head, (size_t)n), n);
}

static void sse_open_job(sse_t *s, const char *course, const char *job) {
  char path[256], auth[300];
  snprintf(path, sizeof path, "/api/v1/stream/%s/%s", course, job);
  sse_open(s, path, test_member_auth(auth, sizeof auth));
}

/* Reads until `needle` is in what came (NULL: until the end), the
 * connection ends, or `seconds` pass.  True when found (NULL: ended). */
static bool sse_read_until(sse_t *s, const char *needle, double seconds) {
  double deadline = bw_test_now() + seconds;

  for (;;) {
    if (needle != NULL && s->raw != NULL && strstr(s->raw, needle) != NULL)
      return true;
    if (s->eof)
      return needle == NULL;
    double left = deadline - bw_test_now();
    if (left <= 0)
      return false;
    struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
    if (poll(&pfd, 1, (int)(left * 1000) + 1) <= 0)
      continue;
    char buf[4096];
    ssize_t got = read(s->fd, buf, sizeof buf);
    if (got <= 0) {
      s->eof = true;
      continue;
    }
    ck_assert_int_eq(
        bw_test_buf_append(&s->raw, &s->len, &s->cap, buf, (size_t)got), 0);
  }
}

/* How many times `needle` occurs in what came. */
static int sse_count(const sse_t *s, const char *needle) {
  int n = 0;
  for (const char *p = s->raw; p != NULL && (p = strstr(p, needle)) != NULL;
       p += strlen(needle))
    n++;
  return n;
}

/* The body with the chunked framing taken off (caller frees). */
static char *sse_body(const sse_t *s) {
  const char *p = s->raw != NULL ? strstr(s->raw, "\r\n\r\n") : NULL;
  char *body = NULL;
  size_t len = 0, cap = 0;

  ck_assert_msg(p != NULL, "no headers: %s", s->raw ? s->raw : "(nothing)");
  p += 4;
  ck_assert_msg(strstr(s->raw, "Transfer-Encoding: chunked") != NULL,
                "not chunked: %s", s->raw);
  for (;;) {
    char *end;
    unsigned long size = strtoul(p, &end, 16);
    if (end == p || strncmp(end, "\r\n", 2) != 0 || size == 0)
      break;
    p = end + 2;
    if ((size_t)(s->raw + s->len - p) < size)
      break;
    ck_assert_int_eq(bw_test_buf_append(&body, &len, &cap, p, size), 0);
    p += size + 2;
  }
  if (body == NULL)
    body = strdup("");
  return body;
}

static void sse_close(sse_t *s) {
  if (s->fd >= 0)
    close(s->fd);
  free(s->raw);
  memset(s, 0, sizeof *s);
  s->fd = -1;
}

static int sse_status(const sse_t *s) {
  int status = 0;
  if (s->raw != NULL)
    sscanf(s->raw, "HTTP/1.1 %d", &status);
  return status;
}

#define EV_POSITION(n)                                                         \
  "event: status_update\ndata: {\"type\":\"position\",\"data\":" #n "}\n\n"
#define EV_STATE(s)                                                            \
  "event: status_update\ndata: {\"type\":\"state\",\"data\":\"" s "\"}\n\n"

/* ---- tests ------------------------------------------------------------- */

START_TEST(test_stream_follows_a_job_to_finished) {
  test_job_t t;
  sse_t s;

  test_job_make(&t);
  sse_open_job(&s, COURSE, t.job);
  ck_assert_msg(sse_read_until(&s, EV_POSITION(0), EVENT_WAIT_S),
                "no position event: %s", s.raw ? s.raw : "(nothing)");
  ck_assert_int_eq(sse_status(&s), 200);
  ck_assert_msg(strstr(s.raw, "\r\nContent-Type: text/event-stream\r\n") &&
                    strstr(s.raw, "\r\nCache-Control: no-cache\r\n") &&
                    strstr(s.raw, "\r\nX-Accel-Buffering: no\r\n") &&
                    !strstr(s.raw, "Content-Length"),
                "headers: %s", s.raw);

  test_job_take(&t);
  ck_assert_msg(sse_read_until(&s, EV_STATE("STARTED"), EVENT_WAIT_S),
                "no STARTED: %s", s.raw);
  ck_assert(!s.eof);
  test_job_finish(&t, true);
  ck_assert_msg(sse_read_until(&s, EV_STATE("FINISHED"), EVENT_WAIT_S),
                "no FINISHED: %s", s.raw);
  ck_assert_msg(sse_read_until(&s, NULL, EVENT_WAIT_S),
                "the stream stayed open after FINISHED: %s", s.raw);

  /* The whole body, in order, nothing else but keep-alives. */
  char *body = sse_body(&s);
  const char *a = strstr(body, EV_POSITION(0)), *b = strstr(body, EV_STATE("STARTED")),
             *c = strstr(body, EV_STATE("FINISHED"));
  ck_assert_msg(a && b && c && a < b && b < c, "body: %s", body);
  ck_assert_msg(strcmp(c + strlen(EV_STATE("FINISHED")), "") == 0,
                "something after FINISHED: %s", body);
  free(body);
  sse_close(&s);

  /* A job that has ended: its final state at once, then the end. */
  sse_open_job(&s, COURSE, t.job);
  ck_assert_msg(sse_read_until(&s, NULL, EVENT_WAIT_S), "still open: %s",
                s.raw);
  body = sse_body(&s);
  ck_assert_str_eq(body, EV_STATE("FINISHED"));
  free(body);
  sse_close(&s);
  test_job_cleanup(&t);
}
END_TEST

START_TEST(test_stream_failed_job) {
  test_job_t t;
  sse_t s;

  test_job_make(&t);
  test_job_take(&t);
  sse_open_job(&s, COURSE, t.job);
  ck_assert_msg(sse_read_until(&s, EV_STATE("STARTED"), EVENT_WAIT_S),
                "no STARTED: %s", s.raw ? s.raw : "(nothing)");
  test_job_finish(&t, false);
  ck_assert_msg(sse_read_until(&s, EV_STATE("FAILED"), EVENT_WAIT_S),
                "no FAILED: %s", s.raw);
  ck_assert_msg(sse_read_until(&s, NULL, EVENT_WAIT_S),
                "the stream stayed open after FAILED: %s", s.raw);
  ck_assert_int_eq(sse_count(&s, "FINISHED"), 0);
  sse_close(&s);
  test_job_cleanup(&t);
}
END_TEST

/* 401 with the JSend fail body: no token, a wrong one, a malformed one. */
START_TEST(test_stream_needs_a_member_token) {
  static const char *const bad[] = {NULL, "Bearer nope", "Bearer  x y"};
  test_job_t t;
  char path[128];

  test_job_make(&t);
  snprintf(path, sizeof path, "/api/v1/stream/%s/%s", COURSE, t.job);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    sse_t s;
    sse_open(&s, path, bad[i]);
    ck_assert(sse_read_until(&s, NULL, EVENT_WAIT_S));
    ck_assert_msg(sse_status(&s) == 401, "%s: %s", bad[i] ? bad[i] : "none",
                  s.raw);
    ck_assert_msg(strstr(s.raw, "application/json") &&
                      strstr(s.raw, "{\"status\":\"fail\",\"data\":{"
                                    "\"message\":"),
                  "%s", s.raw);
    sse_close(&s);
  }
  test_job_cleanup(&t);
}
END_TEST

/* Not a job of the course (unknown, malformed): 400 before any event. */
START_TEST(test_stream_unknown_job) {
  static const char *const jobs[] = {"0123456789abcdef01234567", "weird"};
  for (size_t i = 0; i < sizeof jobs / sizeof jobs[0]; i++) {
    sse_t s;
    sse_open_job(&s, COURSE, jobs[i]);
    ck_assert(sse_read_until(&s, NULL, EVENT_WAIT_S));
    ck_assert_msg(sse_status(&s) == 400 &&
                      strstr(s.raw, "grading job with the given ID not found"),
                  "%s: %s", jobs[i], s.raw);
    ck_assert_int_eq(sse_count(&s, "event:"), 0);
    sse_close(&s);
  }
}
END_TEST

/* stream_keepalive = 1 here: a comment every second while nothing moves. */
START_TEST(test_stream_keepalive) {
  test_job_t t;
  sse_t s;

  test_job_make(&t);
  sse_open_job(&s, COURSE, t.job);
  ck_assert(sse_read_until(&s, EV_POSITION(0), EVENT_WAIT_S));
  double start = bw_test_now();
  while (sse_count(&s, "\r\n:\n\n\r\n") < 3 && bw_test_now() - start < 10)
    sse_read_until(&s, "never", 0.5);
  ck_assert_msg(sse_count(&s, "\r\n:\n\n\r\n") >= 3,
                "keep-alives in %.1f s: %d: %s", bw_test_now() - start,
                sse_count(&s, "\r\n:\n\n\r\n"), s.raw);
  ck_assert(!s.eof);
  sse_close(&s);
  test_job_cleanup(&t);
}
END_TEST

/* The service's own log names each stream when it ends; a client that
 * went away ends its stream (nginx closes the connection, the worker sees
 * the hang-up) well before its job moves. */
START_TEST(test_stream_client_leaving_frees_it) {
  char log_path[1024], needle[128];
  test_job_t t;
  sse_t s;

  test_job_make(&t);
  snprintf(log_path, sizeof log_path, "%s/log/fcgi.log",
           bw_test_stack_data_dir(bw_itest_stack()));
  snprintf(needle, sizeof needle, "GET /api/v1/stream/%s/%s 200", COURSE,
           t.job);
  sse_open_job(&s, COURSE, t.job);
  ck_assert(sse_read_until(&s, EV_POSITION(0), EVENT_WAIT_S));
  sse_close(&s);
  double deadline = bw_test_now() + EVENT_WAIT_S;
  bool ended = false;
  while (!ended && bw_test_now() < deadline) {
    char *log = bw_test_read_file(log_path, NULL);
    ended = log != NULL && strstr(log, needle) != NULL;
    free(log);
    if (!ended)
      bw_test_sleep_ms(100);
  }
  ck_assert_msg(ended, "no \"%s\" in %s", needle, log_path);
  test_job_cleanup(&t);
}
END_TEST

/* 40 open streams in a 2-process pool: a long poll still gets a job
 * queued for it at once, and the streams still get their events. */
#define MANY_STREAMS 40
START_TEST(test_streams_do_not_hold_up_long_polls) {
  static sse_t s[MANY_STREAMS];
  bw_test_client_t grader;
  bw_test_http_resp_t resp = {0};
  char run[25], job[25];
  test_job_t t;

  test_job_make(&t);
  for (int i = 0; i < MANY_STREAMS; i++)
    sse_open_job(&s[i], COURSE, t.job);
  for (int i = 0; i < MANY_STREAMS; i++)
    ck_assert_msg(sse_read_until(&s[i], EV_POSITION(0), EVENT_WAIT_S),
                  "stream %d: %s", i, s[i].raw ? s[i].raw : "(nothing)");

  bw_itest_client(&grader);
  ck_assert_int_eq(bw_test_http_register(&grader, "seed", NULL), 200);
  pid_t child = fork();
  ck_assert_int_ge(child, 0);
  if (child == 0) {
    /* Queues a seed-era job while the grader's poll waits. */
    bw_test_client_t c;
    bw_test_sleep_ms(500);
    bw_itest_client(&c);
    char *config = bw_itest_run_config(1, "{\"image\":\"x\"}", false, false);
    _exit(bw_test_http_create_and_start(&c, config, run) == 200 ? 0 : 1);
  }
  double start = bw_test_now();
  long status = bw_test_http_poll_wait(&grader, 2, &resp, job);
  double took = bw_test_now() - start;
  int wstatus;
  waitpid(child, &wstatus, 0);
  ck_assert(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0);
  ck_assert_msg(status == 200 && took < 2.0,
                "long poll: %ld after %.2f s: %s", status, took, BW_BODY(&resp));
  bw_test_http_resp_cleanup(&resp);

  test_job_take(&t);
  for (int i = 0; i < MANY_STREAMS; i++) {
    ck_assert_msg(sse_read_until(&s[i], EV_STATE("STARTED"), EVENT_WAIT_S),
                  "stream %d: %s", i, s[i].raw);
    sse_close(&s[i]);
  }
  test_job_cleanup(&t);
}
END_TEST

static Suite *stream_suite(void) {
  Suite *s = suite_create("stream");
  TCase *tc = bw_itest_tcase(s, "stream", 30, true);
  tcase_add_test(tc, test_stream_follows_a_job_to_finished);
  tcase_add_test(tc, test_stream_failed_job);
  tcase_add_test(tc, test_stream_needs_a_member_token);
  tcase_add_test(tc, test_stream_unknown_job);
  tcase_add_test(tc, test_stream_keepalive);
  tcase_add_test(tc, test_stream_client_leaving_frees_it);
  tcase_add_test(tc, test_streams_do_not_hold_up_long_polls);
  return s;
}

int main(void) {
  bw_test_stack_opts_t opts = {
      .label = "stream",
      .workers = 2,
      .config_text = "stream_keepalive = 1\npoll_wait = 2\n"};
  return bw_itest_main(stream_suite(), &opts);
}
