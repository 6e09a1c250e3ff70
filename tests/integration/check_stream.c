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
 * Jobs are made and moved through the 2019 API as its clients do
 * (broadway-on-demand's config and run routes, a 2019 grader's routes);
 * streams are read with a course's query token. */
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

#define COURSE "cs241"
#define COURSES                                                                \
  "{\"cs241\": {\"tokens\": [\"adm-241\"], \"query_tokens\": "             \
  "[\"view-241\"]}, \"cs225\": [\"adm-225\"]}\n"
#define ADMIN "Bearer adm-241"
#define VIEWER "Bearer view-241" /* a query token: enough for a stream */
#define OTHER "Bearer adm-225"
#define CONFIG                                                                 \
  "{\"student_pipeline\": [{\"image\": \"grader:1\", "                       \
  "\"entrypoint\": [\"/bin/grade\"], \"timeout\": 60}]}"
/* How long an event may take to arrive here: generous, the machine is
 * shared (the service's own figures are in docs/BENCHMARKS.md). */
#define EVENT_WAIT_S 10.0

static char courses_path[] = "/tmp/itest-stream-courses-XXXXXX";

/* ---- jobs, made and moved through the 2019 API ------------------------ */

static bw_test_client_t as(const char *authorization) {
  bw_test_client_t c;
  bw_test_client_init(&c, bw_test_stack_url(bw_itest_stack()), authorization);
  return c;
}

static void call_ok(const char *authorization, const char *method,
                    const char *path, const char *body,
                    bw_test_http_resp_t *r) {
  bw_test_client_t c = as(authorization);
  bw_test_http_resp_cleanup(r);
  bw_test_http_call(&c, method, path, body, r);
  BW_ASSERT_SUCCESS(r, 200);
}

/* A run of `students` (1 or 2) of course COURSE: its student jobs. */
static void test_jobs_make(int students, char jobs[][25]) {
  bw_test_http_resp_t r = {0};
  char path[128];

  call_ok(ADMIN, "POST", "/api/v1/grading_config/" COURSE "/mp1", CONFIG, &r);
  call_ok(ADMIN, "POST", "/api/v1/grading_run/" COURSE "/mp1",
          students == 1 ? "{\"students_env\": [{\"STUDENT_ID\": \"a\"}]}"
                        : "{\"students_env\": [{\"STUDENT_ID\": \"a\"}, "
                          "{\"STUDENT_ID\": \"b\"}]}",
          &r);
  snprintf(path, sizeof path, "/api/v1/grading_run_status/" COURSE "/%s",
           bw_test_json_str(bw_test_http_data(&r), "grading_run_id"));
  call_ok(ADMIN, "GET", path, NULL, &r);
  int n = 0;
  json_object_object_foreach(
      bw_test_json_get(bw_test_http_data(&r), "student_jobs_state"), id, st) {
    (void)st;
    ck_assert_int_lt(n, students);
    snprintf(jobs[n++], 25, "%s", id);
  }
  ck_assert_int_eq(n, students);
  bw_test_http_resp_cleanup(&r);
}

static void test_job_make(char job[25]) {
  char jobs[1][25];
  test_jobs_make(1, jobs);
  memcpy(job, jobs[0], 25);
}

/* A 2019 grader (cluster token, its own routes) takes a job: which one. */
static void test_job_take(char job[25]) {
  char auth[300];
  bw_test_http_resp_t r = {0};

  snprintf(auth, sizeof auth, "Bearer %s",
           bw_test_stack_token(bw_itest_stack()));
  call_ok(auth, "POST", "/api/v1/worker/g3-grader", "{\"hostname\": \"h\"}",
          &r);
  call_ok(auth, "GET", "/api/v1/grading_job/g3-grader", NULL, &r);
  snprintf(job, 25, "%s",
           bw_test_json_str(bw_test_http_data(&r), "grading_job_id"));
  bw_test_http_resp_cleanup(&r);
}

/* Its result. */
static void test_job_finish(const char *job, bool success) {
  char auth[300], body[256];
  bw_test_http_resp_t r = {0};

  snprintf(auth, sizeof auth, "Bearer %s",
           bw_test_stack_token(bw_itest_stack()));
  snprintf(body, sizeof body,
           "{\"grading_job_id\": \"%s\", \"success\": %s, \"results\": "
           "[{\"success\": %s}], \"logs\": {\"stdout\": \"o\", "
           "\"stderr\": \"e\"}}",
           job, success ? "true" : "false", success ? "true" : "false");
  call_ok(auth, "POST", "/api/v1/grading_job/g3-grader", body, &r);
  bw_test_http_resp_cleanup(&r);
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

static void sse_open_as(sse_t *s, const char *authorization,
                        const char *course, const char *job) {
  char path[256];
  snprintf(path, sizeof path, "/api/v1/stream/%s/%s", course, job);
  sse_open(s, path, authorization);
}

static void sse_open_job(sse_t *s, const char *course, const char *job) {
  sse_open_as(s, VIEWER, course, job);
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

/* Two jobs of one run: each stream starts with its position (0 and 1);
 * a grader takes one, whose stream says STARTED while the other one ends
 * up at position 0; the result: FINISHED, and the reply ends. */
START_TEST(test_stream_follows_a_job_to_finished) {
  char jobs[2][25], taken[25];
  sse_t s[2];

  test_jobs_make(2, jobs);
  sse_open_job(&s[0], COURSE, jobs[0]);
  sse_open_as(&s[1], ADMIN, COURSE, jobs[1]); /* a course token does too */
  for (int i = 0; i < 2; i++)
    ck_assert_msg(sse_read_until(&s[i], "}\n\n", EVENT_WAIT_S),
                  "no first event: %s", s[i].raw ? s[i].raw : "(nothing)");
  ck_assert_msg(sse_count(&s[0], EV_POSITION(0)) +
                        sse_count(&s[1], EV_POSITION(0)) ==
                    1 &&
                    sse_count(&s[0], EV_POSITION(1)) +
                            sse_count(&s[1], EV_POSITION(1)) ==
                        1,
                "positions: %s\n%s", s[0].raw, s[1].raw);
  ck_assert_int_eq(sse_status(&s[0]), 200);
  ck_assert_msg(
      strstr(s[0].raw, "\r\nContent-Type: text/event-stream\r\n") &&
          strstr(s[0].raw, "\r\nCache-Control: no-cache\r\n") &&
          strstr(s[0].raw, "\r\nX-Accel-Buffering: no\r\n") &&
          strstr(s[0].raw, "\r\nAccess-Control-Allow-Origin: *\r\n") &&
          !strstr(s[0].raw, "Content-Length"),
      "headers: %s", s[0].raw);

  test_job_take(taken);
  int t = strcmp(taken, jobs[0]) == 0 ? 0 : 1, o = 1 - t;
  ck_assert_str_eq(taken, jobs[t]);
  ck_assert_msg(sse_read_until(&s[t], EV_STATE("STARTED"), EVENT_WAIT_S),
                "no STARTED: %s", s[t].raw);
  /* The other one moved up to 0 (or was there already). */
  if (sse_count(&s[o], EV_POSITION(1)) == 1)
    ck_assert_msg(sse_read_until(&s[o], EV_POSITION(0), EVENT_WAIT_S),
                  "the other job did not move up: %s", s[o].raw);
  ck_assert(!s[t].eof);
  test_job_finish(taken, true);
  ck_assert_msg(sse_read_until(&s[t], EV_STATE("FINISHED"), EVENT_WAIT_S),
                "no FINISHED: %s", s[t].raw);
  ck_assert_msg(sse_read_until(&s[t], NULL, EVENT_WAIT_S),
                "the stream stayed open after FINISHED: %s", s[t].raw);

  /* The whole body, in order, nothing after FINISHED. */
  char *body = sse_body(&s[t]);
  const char *a = strstr(body, "\"type\":\"position\""),
             *b = strstr(body, EV_STATE("STARTED")),
             *c = strstr(body, EV_STATE("FINISHED"));
  ck_assert_msg(a && b && c && a < b && b < c, "body: %s", body);
  ck_assert_msg(strcmp(c + strlen(EV_STATE("FINISHED")), "") == 0,
                "something after FINISHED: %s", body);
  free(body);
  ck_assert(!s[o].eof);
  sse_close(&s[0]);
  sse_close(&s[1]);

  /* A job that has ended: its final state at once, then the end. */
  sse_open_job(&s[0], COURSE, taken);
  ck_assert_msg(sse_read_until(&s[0], NULL, EVENT_WAIT_S), "still open: %s",
                s[0].raw);
  body = sse_body(&s[0]);
  ck_assert_str_eq(body, EV_STATE("FINISHED"));
  free(body);
  sse_close(&s[0]);
}
END_TEST

START_TEST(test_stream_failed_job) {
  char job[25];
  sse_t s;

  test_job_make(job);
  test_job_take(job);
  sse_open_job(&s, COURSE, job);
  ck_assert_msg(sse_read_until(&s, EV_STATE("STARTED"), EVENT_WAIT_S),
                "no STARTED: %s", s.raw ? s.raw : "(nothing)");
  test_job_finish(job, false);
  ck_assert_msg(sse_read_until(&s, EV_STATE("FAILED"), EVENT_WAIT_S),
                "no FAILED: %s", s.raw);
  ck_assert_msg(sse_read_until(&s, NULL, EVENT_WAIT_S),
                "the stream stayed open after FAILED: %s", s.raw);
  ck_assert_int_eq(sse_count(&s, "FINISHED"), 0);
  sse_close(&s);
}
END_TEST

/* 401 with the JSend fail body: no token, a malformed one, a wrong one,
 * another course's, the cluster token. */
START_TEST(test_stream_needs_a_member_token) {
  char job[25], cluster[300];
  const char *bad[] = {NULL, "Bearer  x y", "Bearer nope", OTHER, cluster};

  snprintf(cluster, sizeof cluster, "Bearer %s",
           bw_test_stack_token(bw_itest_stack()));
  test_job_make(job);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    sse_t s;
    sse_open_as(&s, bad[i], COURSE, job);
    ck_assert(sse_read_until(&s, NULL, EVENT_WAIT_S));
    ck_assert_msg(sse_status(&s) == 401, "%zu: %s", i, s.raw);
    ck_assert_msg(strstr(s.raw, "application/json") &&
                      strstr(s.raw, "{\"status\":\"fail\",\"data\":{"
                                    "\"message\":"),
                  "%s", s.raw);
    sse_close(&s);
  }
}
END_TEST

/* Not a job of the course (unknown, malformed, another course's): the
 * same 400 before any event. */
START_TEST(test_stream_unknown_job) {
  char job[25];
  struct {
    const char *auth, *course, *job;
  } cases[] = {{VIEWER, COURSE, "0123456789abcdef01234567"},
               {VIEWER, COURSE, "weird"},
               {OTHER, "cs225", job}};

  test_job_make(job);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    sse_t s;
    sse_open_as(&s, cases[i].auth, cases[i].course, cases[i].job);
    ck_assert(sse_read_until(&s, NULL, EVENT_WAIT_S));
    ck_assert_msg(sse_status(&s) == 400 &&
                      strstr(s.raw, "grading job with the given ID not found"),
                  "%zu: %s", i, s.raw);
    ck_assert_int_eq(sse_count(&s, "event:"), 0);
    sse_close(&s);
  }
}
END_TEST

/* stream_keepalive = 1 here: a comment every second while nothing moves. */
START_TEST(test_stream_keepalive) {
  char job[25];
  sse_t s;

  test_job_make(job);
  sse_open_job(&s, COURSE, job);
  ck_assert(sse_read_until(&s, EV_POSITION(0), EVENT_WAIT_S));
  double start = bw_test_now();
  while (sse_count(&s, "\r\n:\n\n\r\n") < 3 && bw_test_now() - start < 10)
    sse_read_until(&s, "never", 0.5);
  ck_assert_msg(sse_count(&s, "\r\n:\n\n\r\n") >= 3,
                "keep-alives in %.1f s: %d: %s", bw_test_now() - start,
                sse_count(&s, "\r\n:\n\n\r\n"), s.raw);
  ck_assert(!s.eof);
  sse_close(&s);
}
END_TEST

/* The service's own log names each stream when it ends; a client that
 * went away ends its stream (nginx closes the connection, the worker sees
 * the hang-up) without its job moving. */
START_TEST(test_stream_client_leaving_frees_it) {
  char log_path[1024], needle[128], job[25];
  sse_t s;

  test_job_make(job);
  snprintf(log_path, sizeof log_path, "%s/log/fcgi.log",
           bw_test_stack_data_dir(bw_itest_stack()));
  snprintf(needle, sizeof needle, "GET /api/v1/stream/%s/%s 200", COURSE,
           job);
  sse_open_job(&s, COURSE, job);
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
}
END_TEST

/* 40 open streams in a 2-process pool: a long poll still gets a job
 * queued for it at once, and the streams still get their events. */
#define MANY_STREAMS 40
START_TEST(test_streams_do_not_hold_up_long_polls) {
  static sse_t s[MANY_STREAMS];
  bw_test_client_t grader;
  bw_test_http_resp_t resp = {0};
  char run[25], job[25], g3job[25];

  test_job_make(g3job);
  for (int i = 0; i < MANY_STREAMS; i++)
    sse_open_job(&s[i], COURSE, g3job);
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

  test_job_take(g3job);
  for (int i = 0; i < MANY_STREAMS; i++) {
    ck_assert_msg(sse_read_until(&s[i], EV_STATE("STARTED"), EVENT_WAIT_S),
                  "stream %d: %s", i, s[i].raw);
    sse_close(&s[i]);
  }
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
  char config[512];
  int fd = mkstemp(courses_path), rc;
  bw_test_stack_opts_t opts = {
      .label = "stream", .workers = 2, .config_text = config};

  if (fd < 0 || write(fd, COURSES, strlen(COURSES)) != (ssize_t)strlen(COURSES))
    return 1;
  close(fd);
  snprintf(config, sizeof config,
           "courses_file = %s\nstream_keepalive = 1\npoll_wait = 2\n",
           courses_path);
  rc = bw_itest_main(stream_suite(), &opts);
  unlink(courses_path);
  return rc;
}
