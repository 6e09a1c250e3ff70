/* check_compat.c - the original 2018 graders, replayed request by request
 * over raw sockets through nginx, status lines included
 * (../shared/spec/PROTOCOL-LATER.md §1.2 and §3.1; PROTOCOL.md for v0.1).
 *
 * Each request is written as the graders' HTTP client (Tornado 5.1's
 * simple_httpclient) puts it on the wire: `Connection: close`, the raw
 * cluster token as `Authorization`, the worker id as `Worker_id`; and the
 * reply is read as bytes, so the status line is checked as such a client
 * parses it (Tornado cannot parse `HTTP/1.1 498` without a reason phrase).
 *
 * The stack's poll_wait is COMPAT_POLL_WAIT seconds, so empty-queue polls
 * (which these graders send without ?wait) end quickly.  Bounded: about 40 s
 * in all. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/itest.h"

#define COMPAT_POLL_WAIT 2

typedef struct raw_reply {
  int status;
  char status_line[128]; /* without the CRLF */
  char *text;            /* the whole reply */
  json_object *json;     /* the body parsed, or NULL */
} raw_reply_t;

static void raw_reply_cleanup(raw_reply_t *r) {
  free(r->text);
  json_object_put(r->json);
  memset(r, 0, sizeof *r);
}

/* Sends one request as Tornado 5.1 does and reads the reply to EOF. */
static void tornado_request(const char *method, const char *path,
                            const char *worker_id, const char *body,
                            raw_reply_t *r) {
  int port = bw_test_stack_port(bw_itest_stack());
  int fd = bw_test_connect_local(port);
  struct timeval tv = {.tv_sec = 30};
  char head[1024];
  size_t len = 0, cap = 0;
  int n;

  memset(r, 0, sizeof *r);
  ck_assert_int_ge(fd, 0);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  n = snprintf(head, sizeof head,
               "%s %s HTTP/1.1\r\nConnection: close\r\nHost: 127.0.0.1:%d\r\n"
               "Accept-Encoding: gzip\r\nAuthorization: %s\r\n",
               method, path, port, bw_test_stack_token(bw_itest_stack()));
  if (worker_id != NULL)
    n += snprintf(head + n, sizeof head - (size_t)n, "Worker_id: %s\r\n",
                  worker_id);
  if (body != NULL)
    n += snprintf(head + n, sizeof head - (size_t)n,
                  "Content-Type: application/json\r\nContent-Length: %zu\r\n",
                  strlen(body));
  n += snprintf(head + n, sizeof head - (size_t)n, "\r\n");
  ck_assert_int_eq(write(fd, head, (size_t)n), n);
  if (body != NULL && *body != '\0')
    ck_assert_int_eq(write(fd, body, strlen(body)), (ssize_t)strlen(body));
  for (;;) {
    char buf[4096];
    ssize_t got = read(fd, buf, sizeof buf);
    if (got <= 0)
      break;
    ck_assert_int_eq(bw_test_buf_append(&r->text, &len, &cap, buf, (size_t)got),
                     0);
  }
  close(fd);
  ck_assert_msg(r->text != NULL, "%s %s: no reply", method, path);
  size_t line = strcspn(r->text, "\r\n");
  snprintf(r->status_line, sizeof r->status_line, "%.*s", (int)line, r->text);
  sscanf(r->status_line, "HTTP/1.1 %d", &r->status);
  const char *start = strstr(r->text, "\r\n\r\n");
  if (start != NULL && start[4] != '\0')
    r->json = json_tokener_parse(start + 4);
}

static json_object *reply_data(const raw_reply_t *r) {
  return bw_test_json_get(r->json, "data");
}

/* The course side (a v0.1 course script) queues a run of `students`. */
static void course_queues_run(int students, char run_id[25]) {
  bw_test_client_t c;
  char *config = bw_itest_run_config(students, "{\"image\": \"bbox:1\"}",
                                     false, false);
  bw_itest_client(&c);
  ck_assert_int_eq(bw_test_http_create_and_start(&c, config, run_id), 200);
  free(config);
}

static json_object *client_job(const char *job_id, bw_test_http_resp_t *r) {
  bw_test_client_t c;
  bw_itest_client(&c);
  ck_assert_int_eq(bw_test_http_get_job(&c, job_id, r), 200);
  return bw_test_http_data(r);
}

static void expect_run_state(const char *run_id, const char *state) {
  bw_test_client_t c;
  bw_test_http_resp_t r;
  double deadline = bw_test_now() + 20;
  bw_itest_client(&c);
  for (;;) {
    ck_assert_int_eq(bw_test_http_run_status(&c, run_id, &r), 200);
    const char *now = bw_test_json_str(bw_test_http_data(&r), "state");
    bool done = now != NULL && strcmp(now, state) == 0;
    if (done || bw_test_now() > deadline) {
      ck_assert_msg(done, "run %s: %s", run_id, BW_BODY(&r));
      bw_test_http_resp_cleanup(&r);
      return;
    }
    bw_test_http_resp_cleanup(&r);
    bw_test_sleep_ms(100);
  }
}

/* A poll on an empty queue, as the 2018 graders send it (no ?wait): held
 * poll_wait seconds, then 498 with the reason phrase Tornado needs. */
static void expect_empty_poll(const char *worker_id) {
  raw_reply_t r;
  double t0 = bw_test_now();
  tornado_request("GET", "/api/v1/grading_job", worker_id, NULL, &r);
  double waited = bw_test_now() - t0;
  ck_assert_str_eq(r.status_line, "HTTP/1.1 498 Unknown");
  ck_assert_msg(waited >= COMPAT_POLL_WAIT - 0.5 && waited < COMPAT_POLL_WAIT + 8,
                "an empty-queue poll answered after %.2f s", waited);
  raw_reply_cleanup(&r);
}

/* Forks a child that queues a one-student run after `delay_ms`; returns its
 * pid.  The run id comes back through `fd`. */
static pid_t queue_later(int delay_ms, int fd) {
  fflush(NULL);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    char run_id[25];
    bw_test_sleep_ms(delay_ms);
    course_queues_run(1, run_id);
    _exit(write(fd, run_id, 24) == 24 ? 0 : 1);
  }
  return pid;
}

/* ---- every 498 -------------------------------------------------------- */

START_TEST(test_498_status_line_has_a_reason_phrase) {
  raw_reply_t r;
  tornado_request("GET", "/api/v1/grader_register", NULL, NULL, &r);
  ck_assert_str_eq(r.status_line, "HTTP/1.1 200 OK");
  char worker_id[25];
  snprintf(worker_id, sizeof worker_id, "%s",
           bw_test_json_str(reply_data(&r), "worker_id"));
  raw_reply_cleanup(&r);

  tornado_request("GET", "/api/v1/grading_job?wait=0", worker_id, NULL, &r);
  ck_assert_str_eq(r.status_line, "HTTP/1.1 498 Unknown");
  ck_assert_str_eq(bw_test_json_str(r.json, "status"), "fail");
  raw_reply_cleanup(&r);
  expect_empty_poll(worker_id);
}
END_TEST

/* ---- grader@52a6d7b (2018-12-30), Gen 2a: PROTOCOL-LATER.md §3.1 ------- */

START_TEST(test_grader_2018_12_sequence) {
  raw_reply_t r;
  char worker_id[25], job_id[25], run_id[25], path[128];

  /* 1. register with the hostname in the path (it may hold '/' and '.') */
  tornado_request("GET", "/api/v1/worker_register/grader-3.cs.illinois.edu",
                  NULL, NULL, &r);
  ck_assert_str_eq(r.status_line, "HTTP/1.1 200 OK");
  snprintf(worker_id, sizeof worker_id, "%s",
           bw_test_json_str(reply_data(&r), "worker_id"));
  ck_assert_int_eq(strlen(worker_id), 24);
  raw_reply_cleanup(&r);
  /* 2. the heartbeat thread's first beat: empty body */
  tornado_request("POST", "/api/v1/heartbeat", worker_id, "", &r);
  ck_assert_str_eq(r.status_line, "HTTP/1.1 200 OK");
  raw_reply_cleanup(&r);
  /* 3. poll: empty (it sleeps 5 s on 498 and polls again) */
  expect_empty_poll(worker_id);
  course_queues_run(1, run_id);
  tornado_request("GET", "/api/v1/grading_job", worker_id, NULL, &r);
  ck_assert_str_eq(r.status_line, "HTTP/1.1 200 OK");
  json_object *job = reply_data(&r);
  snprintf(job_id, sizeof job_id, "%s", bw_test_json_str(job, "job_id"));
  json_object *stage =
      json_object_array_get_idx(bw_test_json_get(job, "stages"), 0);
  ck_assert_str_eq(bw_test_json_str(stage, "image"), "bbox:1");
  ck_assert(json_object_is_type(bw_test_json_get(stage, "env"),
                                json_type_array)); /* "K=V" strings */
  ck_assert_ptr_null(bw_test_json_get(job, "students"));
  raw_reply_cleanup(&r);
  /* 4. the result as jobRunner.js reports it: results + logs */
  static const char result[] =
      "{\"success\": true, \"results\": [{\"timedOut\": false, \"message\": "
      "\"ok\", \"succeeded\": true, \"exitCode\": 0, \"duration\": 0.42}], "
      "\"logs\": {\"stdout\": \"grade: 100\\n\", \"stderr\": \"\"}}";
  snprintf(path, sizeof path, "/api/v1/grading_job/%s", job_id);
  tornado_request("POST", path, worker_id, result, &r);
  ck_assert_str_eq(r.status_line, "HTTP/1.1 200 OK");
  raw_reply_cleanup(&r);

  bw_test_http_resp_t view;
  job = client_job(job_id, &view);
  ck_assert_str_eq(bw_test_json_str(job, "state"), "succeeded");
  ck_assert_str_eq(json_object_to_json_string_ext(
                       bw_test_json_get(job, "results"), JSON_C_TO_STRING_PLAIN),
                   "[{\"timedOut\":false,\"message\":\"ok\",\"succeeded\":true,"
                   "\"exitCode\":0,\"duration\":0.42}]");
  ck_assert_str_eq(bw_test_json_str(bw_test_json_get(job, "logs"), "stdout"),
                   "grade: 100\n");
  bw_test_http_resp_cleanup(&view);
  expect_run_state(run_id, "succeeded");
  /* 3 again: the queue is empty once more */
  expect_empty_poll(worker_id);
}
END_TEST

/* ---- the 2018-11 grader (v0.1 API): long poll, info as an object ------- */

START_TEST(test_grader_2018_11_sequence) {
  raw_reply_t r;
  char worker_id[25], job_id[25], run_id[25] = "", path[128];
  int fds[2];

  tornado_request("GET", "/api/v1/grader_register", NULL, NULL, &r);
  ck_assert_str_eq(r.status_line, "HTTP/1.1 200 OK");
  snprintf(worker_id, sizeof worker_id, "%s",
           bw_test_json_str(reply_data(&r), "worker_id"));
  raw_reply_cleanup(&r);
  tornado_request("POST", "/api/v1/heartbeat", worker_id, "", &r);
  ck_assert_str_eq(r.status_line, "HTTP/1.1 200 OK");
  raw_reply_cleanup(&r);
  expect_empty_poll(worker_id);

  /* A job queued while the grader waits is handed over at once. */
  ck_assert_int_eq(pipe(fds), 0);
  pid_t course = queue_later(500, fds[1]);
  double t0 = bw_test_now();
  tornado_request("GET", "/api/v1/grading_job", worker_id, NULL, &r);
  double waited = bw_test_now() - t0;
  ck_assert_str_eq(r.status_line, "HTTP/1.1 200 OK");
  ck_assert_msg(waited < COMPAT_POLL_WAIT,
                "the job came after %.2f s, at the wait's end", waited);
  snprintf(job_id, sizeof job_id, "%s",
           bw_test_json_str(reply_data(&r), "job_id"));
  raw_reply_cleanup(&r);
  int status;
  ck_assert_int_eq(waitpid(course, &status, 0), course);
  ck_assert_int_eq(read(fds[0], run_id, 24), 24);
  close(fds[0]);
  close(fds[1]);

  static const char result[] =
      "{\"success\": false, \"info\": {\"stageResults\": [{\"image\": "
      "\"bbox:1\", \"exitCode\": 1}], \"stdout\": \"1 test failed\", "
      "\"stderr\": \"\"}}";
  snprintf(path, sizeof path, "/api/v1/grading_job/%s", job_id);
  tornado_request("POST", path, worker_id, result, &r);
  ck_assert_str_eq(r.status_line, "HTTP/1.1 200 OK");
  raw_reply_cleanup(&r);

  bw_test_http_resp_t view;
  json_object *job = client_job(job_id, &view);
  ck_assert_str_eq(bw_test_json_str(job, "state"), "failed");
  ck_assert_str_eq(json_object_to_json_string_ext(bw_test_json_get(job, "info"),
                                                  JSON_C_TO_STRING_PLAIN),
                   "{\"stageResults\":[{\"image\":\"bbox:1\",\"exitCode\":1}],"
                   "\"stdout\":\"1 test failed\",\"stderr\":\"\"}");
  bw_test_http_resp_cleanup(&view);
  /* A failed student job does not fail the run. */
  expect_run_state(run_id, "succeeded");
}
END_TEST

START_TEST(test_gen2a_register_path_rules) {
  raw_reply_t r;
  tornado_request("GET", "/api/v1/worker_register/rack/3/node-1.cs.edu", NULL,
                  NULL, &r);
  ck_assert_str_eq(r.status_line, "HTTP/1.1 200 OK");
  raw_reply_cleanup(&r);
  tornado_request("GET", "/api/v1/worker_register/node%281%29", NULL, NULL,
                  &r);
  ck_assert_int_eq(r.status, 400);
  ck_assert_ptr_nonnull(strstr(
      bw_test_json_str(bw_test_json_get(r.json, "data"), "message"),
      "hostname"));
  raw_reply_cleanup(&r);
}
END_TEST

/* ---- a refused result, and what the job then says ---------------------- */

static void refused_stack_start(void) {
  /* A hand-out is overdue after its stage's timeout (1 s) + claim_grace. */
  bw_test_stack_opts_t opts = {.label = "compat-refused",
                               .config_text = "claim_grace = 2\n"
                                              "poll_wait = 2\n"};
  bw_itest_push_stack(&opts);
}

START_TEST(test_refused_result_is_named_in_the_reason) {
  raw_reply_t r;
  bw_test_client_t c;
  char worker_id[25], job_id[25], run_id[25], path[128];
  char *config = bw_itest_run_config(
      1, "{\"image\": \"bbox:1\", \"timeout\": 1}", false, false);

  tornado_request("GET", "/api/v1/grader_register", NULL, NULL, &r);
  snprintf(worker_id, sizeof worker_id, "%s",
           bw_test_json_str(reply_data(&r), "worker_id"));
  raw_reply_cleanup(&r);
  bw_itest_client(&c);
  ck_assert_int_eq(bw_test_http_create_and_start(&c, config, run_id), 200);
  free(config);
  tornado_request("GET", "/api/v1/grading_job", worker_id, NULL, &r);
  ck_assert_int_eq(r.status, 200);
  snprintf(job_id, sizeof job_id, "%s",
           bw_test_json_str(reply_data(&r), "job_id"));
  raw_reply_cleanup(&r);
  /* A body no released grader sends: refused, the job still held. */
  snprintf(path, sizeof path, "/api/v1/grading_job/%s", job_id);
  tornado_request("POST", path, worker_id, "{\"success\": true, \"info\": {}}",
                  &r);
  ck_assert_int_eq(r.status, 400);
  raw_reply_cleanup(&r);

  /* The grader heartbeats on; the reaper takes the job back when it is
   * overdue, and says why. */
  double deadline = bw_test_now() + 40;
  const char *reason = NULL;
  bw_test_http_resp_t view;
  for (;;) {
    tornado_request("POST", "/api/v1/heartbeat", worker_id, "", &r);
    raw_reply_cleanup(&r);
    json_object *job = client_job(job_id, &view);
    reason = bw_test_json_str(job, "reason");
    if ((reason != NULL && reason[0] != '\0') || bw_test_now() > deadline)
      break;
    bw_test_http_resp_cleanup(&view);
    bw_test_sleep_ms(500);
  }
  ck_assert_msg(reason != NULL && strstr(reason, "result was refused") &&
                    strstr(reason, "info.stageResults: required") &&
                    !strstr(reason, "stopped heartbeating"),
                "reason: %s", BW_BODY(&view));
  bw_test_http_resp_cleanup(&view);
}
END_TEST

static Suite *compat_suite(void) {
  Suite *s = suite_create("compat");
  TCase *tc = bw_itest_tcase(s, "graders_2018", 60, true);
  tcase_add_test(tc, test_498_status_line_has_a_reason_phrase);
  tcase_add_test(tc, test_grader_2018_12_sequence);
  tcase_add_test(tc, test_grader_2018_11_sequence);
  tcase_add_test(tc, test_gen2a_register_path_rules);
  tc = bw_itest_tcase(s, "refused", 90, true);
  tcase_add_unchecked_fixture(tc, refused_stack_start, bw_itest_pop_stack);
  tcase_add_test(tc, test_refused_result_is_named_in_the_reason);
  return s;
}

int main(void) {
  bw_test_stack_opts_t opts = {.label = "compat",
                               .config_text = "poll_wait = 2\n"};
  return bw_itest_main(compat_suite(), &opts);
}
