/* check_cli.c - bin/broadway, run as course staff run it (a child process
 * with BROADWAY_API / BROADWAY_TOKEN or a config file), against the real
 * stack: what it prints, its exit status, and its message for each way a
 * call fails (401, 404, 409, 503, connection refused, bad usage). */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/fault.h"
#include "../lib/itest.h"

typedef struct cli_out {
  int status; /* exit status, -1 if killed */
  char *out, *err;
} cli_out_t;

static void cli_out_free(cli_out_t *o) {
  free(o->out);
  free(o->err);
}

/* Runs bin/broadway with args; `env` overrides (NULL-terminated "N=V"). */
static cli_out_t cli(const char *const *env, const char *const *args) {
  char dir[] = "/tmp/cli-XXXXXX", out_path[64], err_path[64], bin[4096];
  cli_out_t o = {-1, NULL, NULL};
  const char *argv[16];
  int n = 0, status;
  pid_t pid;

  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(out_path, sizeof out_path, "%s/out", dir);
  snprintf(err_path, sizeof err_path, "%s/err", dir);
  snprintf(bin, sizeof bin, "%s/broadway", bw_fault_bin_dir());
  argv[n++] = bin;
  while (*args && n < 15)
    argv[n++] = *args++;
  argv[n] = NULL;
  pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    setenv("BROADWAY_API", bw_test_stack_url(bw_itest_stack()), 1);
    setenv("BROADWAY_TOKEN", bw_test_stack_token(bw_itest_stack()), 1);
    setenv("XDG_CONFIG_HOME", dir, 1);
    for (; env && *env; env++)
      putenv((char *)*env);
    if (!freopen(out_path, "w", stdout) || !freopen(err_path, "w", stderr))
      _exit(126);
    execv(bin, (char *const *)argv);
    _exit(127);
  }
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  o.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  o.out = bw_test_read_file(out_path, NULL);
  o.err = bw_test_read_file(err_path, NULL);
  bw_test_remove_tree(dir);
  return o;
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define ASSERT_HAS(text, needle)                                               \
  ck_assert_msg((text) && strstr((text), (needle)), "\"%s\" not in: %s",       \
                (needle), (text) ? (text) : "(null)")

/* A grader in a child: takes every job for `seconds` and reports it
 * (failing the students whose NETID is in `fail`, with some output). */
static pid_t fake_grader(const char *fail, double seconds) {
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    bw_test_client_t g;
    double end = bw_test_now() + seconds;
    bw_itest_client(&g);
    if (bw_test_http_register(&g, "fake-grader", NULL) != 200)
      _exit(1);
    while (bw_test_now() < end) {
      bw_test_http_resp_t r = {0};
      char id[25], path[96], body[512];
      json_object *student;
      const char *netid;
      bool ok;
      if (bw_test_http_poll(&g, &r, id) != 200) {
        bw_test_http_resp_cleanup(&r);
        bw_test_sleep_ms(50);
        continue;
      }
      bw_test_http_get_job(&g, id, &r);
      student = bw_test_json_get(bw_test_http_data(&r), "student");
      netid = student ? bw_test_json_str(student, "NETID") : "post";
      ok = strstr(fail, netid ? netid : "?") == NULL;
      snprintf(body, sizeof body,
               "{\"success\": %s, \"info\": [{\"image\": \"grader\", "
               "\"exit_code\": %d, \"duration_ms\": 12, \"stdout\": "
               "\"line 1\\nline 2\\ngrading %s\\n\", \"stderr\": \"%s\"}]}",
               ok ? "true" : "false", ok ? 0 : 1, netid ? netid : "?",
               ok ? "" : "assertion failed: sort");
      snprintf(path, sizeof path, "/api/v1/grading_job/%s", id);
      bw_test_http_call(&g, "POST", path, body, NULL);
      bw_test_http_resp_cleanup(&r);
    }
    _exit(0);
  }
  return pid;
}

/* SIGKILL: the child inherited itest's SIGTERM handler (stop the stack). */
static void stop(pid_t pid) {
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

static char *config_file(int students, bool post) {
  static char path[64];
  char *config =
      bw_itest_run_config(students, "{\"image\": \"grader\"}", false, post);
  snprintf(path, sizeof path, "/tmp/cli-config-%d.json", (int)getpid());
  ck_assert_int_eq(bw_test_write_file(path, config), 0);
  free(config);
  return path;
}

static void first_line(const char *text, char run[25]) {
  ck_assert_ptr_nonnull(text);
  snprintf(run, 25, "%.24s", text);
  ck_assert_msg(bw_test_is_oid(run) && text[24] == '\n',
                "first line is not a run id: %s", text);
}

START_TEST(run_wait_then_read_commands) {
  pid_t g = fake_grader("s1 s3", 60);
  char run[25], job[25];
  cli_out_t o = cli(
      NULL, ARGS("run", config_file(5, true), "--wait", "--interval", "0.5"));
  json_object *failed;

  ck_assert_msg(o.status == 0, "exit %d: %s %s", o.status, o.out, o.err);
  first_line(o.out, run);
  ASSERT_HAS(o.out, "done");
  ASSERT_HAS(o.out, "jobs/s");
  ASSERT_HAS(o.out, "succeeded");
  cli_out_free(&o);

  o = cli(NULL, ARGS("status", run));
  ck_assert_int_eq(o.status, 0);
  ASSERT_HAS(o.out, "succeeded");
  ASSERT_HAS(o.out, "4 succeeded, 2 failed");
  cli_out_free(&o);
  o = cli(NULL, ARGS("status", run, "--json"));
  ck_assert_int_eq(o.status, 0);
  failed = json_tokener_parse(o.out);
  ck_assert_str_eq(bw_test_json_str(failed, "state"), "succeeded");
  json_object_put(failed);
  cli_out_free(&o);

  o = cli(NULL, ARGS("failed", run, "--json"));
  ck_assert_int_eq(o.status, 0);
  failed = json_tokener_parse(o.out);
  ck_assert_msg(failed && json_object_array_length(failed) == 2, "%s", o.out);
  ck_assert_str_eq(
      bw_test_json_str(
          bw_test_json_get(json_object_array_get_idx(failed, 0), "student"),
          "NETID"),
      "s1");
  ASSERT_HAS(bw_test_json_str(json_object_array_get_idx(failed, 0), "output"),
             "assertion failed: sort");
  ASSERT_HAS(bw_test_json_str(json_object_array_get_idx(failed, 0), "reason"),
             "exited 1");
  snprintf(job, sizeof job, "%s",
           bw_test_json_str(json_object_array_get_idx(failed, 0), "job_id"));
  json_object_put(failed);
  cli_out_free(&o);
  o = cli(NULL, ARGS("failed", run));
  ASSERT_HAS(o.out, "\"NETID\":\"s3\"");
  ASSERT_HAS(o.out, "| assertion failed: sort");
  cli_out_free(&o);

  o = cli(NULL, ARGS("logs", job));
  ck_assert_int_eq(o.status, 0);
  ASSERT_HAS(o.out, "stage 0: grader  exit 1");
  ASSERT_HAS(o.out, "grading s1");
  cli_out_free(&o);

  o = cli(NULL, ARGS("runs", "--state", "succeeded"));
  ck_assert_int_eq(o.status, 0);
  ASSERT_HAS(o.out, run);
  cli_out_free(&o);
  o = cli(NULL, ARGS("workers"));
  ASSERT_HAS(o.out, "fake-grader");
  ASSERT_HAS(o.out, "1 alive");
  cli_out_free(&o);
  o = cli(NULL, ARGS("queue", "--json"));
  ck_assert_int_eq(o.status, 0);
  ASSERT_HAS(o.out, "\"waiting\":0");
  cli_out_free(&o);

  /* Retry: the two failed students again (they fail again). */
  o = cli(NULL, ARGS("retry", run, "--failed"));
  ck_assert_int_eq(o.status, 0);
  ASSERT_HAS(o.out, "2 job(s) queued again (round 1)");
  cli_out_free(&o);
  stop(g);
}
END_TEST

START_TEST(run_wait_exit_status_and_cancel) {
  char run[25];
  cli_out_t o;
  pid_t g = fake_grader("post", 60);

  /* The post-processing job fails: so does the run, and --wait says so. */
  o = cli(NULL, ARGS("run", config_file(2, true), "--wait", "--interval", "1"));
  ck_assert_msg(o.status == 1, "exit %d: %s", o.status, o.out);
  ASSERT_HAS(o.out, "failed");
  cli_out_free(&o);
  stop(g);

  /* No grader: cancel it while it waits. */
  o = cli(NULL, ARGS("run", config_file(3, false)));
  ck_assert_int_eq(o.status, 0);
  first_line(o.out, run);
  cli_out_free(&o);
  o = cli(NULL, ARGS("cancel", run));
  ck_assert_int_eq(o.status, 0);
  ASSERT_HAS(o.out, "cancelled");
  cli_out_free(&o);
  o = cli(NULL, ARGS("status", run));
  ASSERT_HAS(o.out, "3 cancelled");
  cli_out_free(&o);
  /* 409: said plainly, exit 4. */
  o = cli(NULL, ARGS("cancel", run));
  ck_assert_int_eq(o.status, 4);
  ASSERT_HAS(o.err, "409");
  ASSERT_HAS(o.err, "already cancelled");
  cli_out_free(&o);
  o = cli(NULL, ARGS("retry", run));
  ck_assert_int_eq(o.status, 4);
  ASSERT_HAS(o.err, "cancelled");
  cli_out_free(&o);
}
END_TEST

START_TEST(errors_are_explained) {
  char refused[64];
  int port = bw_test_free_port(20000, 30000, NULL);
  cli_out_t o;

  o = cli(ARGS("BROADWAY_TOKEN=wrong"), ARGS("runs"));
  ck_assert_int_eq(o.status, 4);
  ASSERT_HAS(o.err, "refused the token (401");
  ASSERT_HAS(o.err, "BROADWAY_TOKEN");
  cli_out_free(&o);

  o = cli(NULL, ARGS("status", "0123456789abcdef01234567"));
  ck_assert_int_eq(o.status, 4);
  ASSERT_HAS(o.err, "not found (404)");
  ASSERT_HAS(o.err, "grading run 0123456789abcdef01234567 not found");
  cli_out_free(&o);

  snprintf(refused, sizeof refused, "BROADWAY_API=http://127.0.0.1:%d", port);
  o = cli(ARGS(refused), ARGS("workers"));
  ck_assert_int_eq(o.status, 3);
  ASSERT_HAS(o.err, "cannot reach the API");
  ASSERT_HAS(o.err, "BROADWAY_API");
  cli_out_free(&o);

  o = cli(NULL, ARGS("status", "nope"));
  ck_assert_int_eq(o.status, 2);
  ASSERT_HAS(o.err, "expected 24 hex digits");
  cli_out_free(&o);
  o = cli(NULL, ARGS("frobnicate"));
  ck_assert_int_eq(o.status, 2);
  ASSERT_HAS(o.err, "unknown command");
  cli_out_free(&o);
  o = cli(NULL, ARGS("runs", "--state", "done"));
  ck_assert_int_eq(o.status, 4);
  ASSERT_HAS(o.err, "state: expected");
  cli_out_free(&o);
}
END_TEST

/* The token and URL from $XDG_CONFIG_HOME/broadway/config, no variables. */
START_TEST(config_file_is_read) {
  char dir[] = "/tmp/cli-xdg-XXXXXX", path[128], text[1024], xdg[160];
  cli_out_t o;

  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/broadway", dir);
  ck_assert_int_eq(mkdir(path, 0700), 0);
  snprintf(path, sizeof path, "%s/broadway/config", dir);
  snprintf(text, sizeof text, "# staff\napi = %s\ntoken = %s\n",
           bw_test_stack_url(bw_itest_stack()),
           bw_test_stack_token(bw_itest_stack()));
  ck_assert_int_eq(bw_test_write_file(path, text), 0);
  snprintf(xdg, sizeof xdg, "XDG_CONFIG_HOME=%s", dir);
  o = cli(ARGS("BROADWAY_API=", "BROADWAY_TOKEN=", xdg), ARGS("queue"));
  ck_assert_msg(o.status == 0, "exit %d: %s", o.status, o.err);
  ASSERT_HAS(o.out, "0 waiting");
  cli_out_free(&o);
  bw_test_remove_tree(dir);
}
END_TEST

/* The database stops answering (stopped, as a hung machine would be): 503,
 * said as such (exit 4).  (A killed FerretDB would take the whole `make
 * run` stack down with it: broadway-run supervises its children.) */
START_TEST(database_down_is_503) {
  pid_t pgid = bw_fault_stack_pgid(bw_test_stack_data_dir(bw_itest_stack())),
        ferretdb;
  cli_out_t o;

  ck_assert_int_gt(pgid, 0);
  ck_assert_int_eq(bw_fault_group_find(pgid, "ferretdb", &ferretdb, 1), 1);
  ck_assert_int_eq(kill(ferretdb, SIGSTOP), 0);
  o = cli(NULL, ARGS("runs"));
  kill(ferretdb, SIGCONT);
  ck_assert_msg(o.status == 4, "exit %d: %s %s", o.status, o.out, o.err);
  ASSERT_HAS(o.err, "(503)");
  ASSERT_HAS(o.err, "database");
  cli_out_free(&o);
}
END_TEST

static Suite *cli_suite(void) {
  Suite *s = suite_create("cli");
  TCase *tc = bw_itest_tcase(s, "commands", 90, true);
  tcase_add_test(tc, run_wait_then_read_commands);
  tcase_add_test(tc, run_wait_exit_status_and_cancel);
  tcase_add_test(tc, errors_are_explained);
  tcase_add_test(tc, config_file_is_read);
  /* Last: it leaves the stack without its database. */
  tc = bw_itest_tcase(s, "outage", 90, false);
  tcase_add_test(tc, database_down_is_503);
  return s;
}

int main(void) {
  bw_test_stack_opts_t opts = {.label = "cli"};
  return bw_itest_main(cli_suite(), &opts);
}
