/* check_grader.c - bin/broadway-grader against the real stack, running real
 * pipelines with the bwrap runner in a busybox image that this test builds
 * with scripts/make-busybox-image.
 *
 * What a course would see: a run with a pre-processing job, four students
 * and a post-processing job whose stages pass files through /job, read the
 * roster, print their hostname and find no network interface but loopback;
 * one student's stage outlives its timeout and fails only that student's
 * job.  Then what an operator would see: a grader killed mid-job (its job
 * finishes on the other grader), a grader stopped with SIGTERM (its job is
 * not reported, it comes back through the reaper), and a database wiped
 * under a running grader (it registers again and goes on).
 *
 * The stack runs with a 1 s heartbeat so the reaper acts within seconds.
 * Graders are children of the forked test, started with PR_SET_PDEATHSIG so
 * that a test that dies never leaves one polling. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/http.h"
#include "../lib/itest.h"
#include "../lib/stack.h"

#define HEARTBEAT_S 1
#define RUN_LIMIT_S 90
#define MAX_GRADERS 4
#define STUDENT_TIMEOUT_S 5
#define STRINGIFY(x) #x
#define TEXT(x) STRINGIFY(x)

/* Set once in main(), before the tests fork. */
static char grader_bin[PATH_MAX];
static char scratch_dir[PATH_MAX]; /* /tmp/grader-itest-XXXXXX */
static char images_dir[PATH_MAX + 16];

/* ---- graders ------------------------------------------------------------ */

typedef struct grader {
  pid_t pid;
  char name[16];
  char log[PATH_MAX + 64];
  char work_dir[PATH_MAX + 64];
  const char *const *env; /* "NAME=value" set over the defaults, or NULL */
} grader_t;

static grader_t *live_graders[MAX_GRADERS];

static void print_grader_log(const grader_t *g) {
  char line[1024];
  FILE *f = fopen(g->log, "r");

  if (f == NULL)
    return;
  fprintf(stderr, "---- grader %s log (%s)\n", g->name, g->log);
  while (fgets(line, sizeof line, f) != NULL)
    fputs(line, stderr);
  fclose(f);
}

static void forget_grader(const grader_t *g) {
  for (int i = 0; i < MAX_GRADERS; i++)
    if (live_graders[i] == g)
      live_graders[i] = NULL;
}

/* Waits up to `seconds` for the grader to exit; returns its wait status, or
 * -1 if it is still running. */
static int wait_grader(grader_t *g, double seconds) {
  double deadline = bw_test_now() + seconds;
  int status;

  for (;;) {
    pid_t r = waitpid(g->pid, &status, WNOHANG);
    if (r != 0) {
      forget_grader(g);
      g->pid = 0;
      return r > 0 ? status : 0; /* r < 0: reaped already */
    }
    if (bw_test_now() >= deadline)
      return -1;
    bw_test_sleep_ms(50);
  }
}

/* A test that failed exits through here with graders still running: show
 * what they logged, then stop them. */
static void stop_live_graders(void) {
  for (int i = 0; i < MAX_GRADERS; i++) {
    grader_t *g = live_graders[i];
    if (g == NULL || g->pid <= 0)
      continue;
    print_grader_log(g);
    kill(g->pid, SIGTERM);
    if (wait_grader(g, 10) == -1) {
      kill(g->pid, SIGKILL);
      waitpid(g->pid, NULL, 0);
    }
  }
}

static void exec_grader(const grader_t *g, const bw_test_stack_t *stack) {
  int fd = open(g->log, O_WRONLY | O_CREAT | O_APPEND, 0600);

  /* Dies with the test, whatever kills it. */
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (fd < 0)
    _exit(126);
  dup2(fd, 1);
  dup2(fd, 2);
  setenv("BROADWAY_API", bw_test_stack_url(stack), 1);
  setenv("BROADWAY_TOKEN", bw_test_stack_token(stack), 1);
  setenv("BROADWAY_RUNNER", "bwrap", 1);
  setenv("BROADWAY_IMAGES", images_dir, 1);
  setenv("BROADWAY_WORK_DIR", g->work_dir, 1);
  setenv("BROADWAY_HOSTNAME", g->name, 1);
  /* Only root can bound /job (and, on cgroup v1, make cgroups): elsewhere
   * the grader would refuse to start. */
  if (geteuid() != 0)
    setenv("BROADWAY_LIMITS", "off", 1);
  for (const char *const *e = g->env; e != NULL && *e != NULL; e++)
    putenv((char *)*e);
  execl(grader_bin, grader_bin, (char *)NULL);
  _exit(127);
}

/* A grader with `env` ("NAME=value", NULL-terminated) over the defaults. */
static void start_grader_with(grader_t *g, const char *name,
                              const char *const *env) {
  static bool atexit_set;
  int slot = -1;

  memset(g, 0, sizeof *g);
  g->env = env;
  snprintf(g->name, sizeof g->name, "%s", name);
  snprintf(g->log, sizeof g->log, "%s/%s-%d.log", scratch_dir, name,
           (int)getpid());
  snprintf(g->work_dir, sizeof g->work_dir, "%s/work-%s-%d", scratch_dir, name,
           (int)getpid());
  ck_assert_int_eq(mkdir(g->work_dir, 0700), 0);
  for (int i = 0; i < MAX_GRADERS && slot < 0; i++)
    if (live_graders[i] == NULL)
      slot = i;
  ck_assert_int_ge(slot, 0);
  if (!atexit_set)
    atexit(stop_live_graders);
  atexit_set = true;
  fflush(NULL);
  g->pid = fork();
  ck_assert_int_ge(g->pid, 0);
  if (g->pid == 0)
    exec_grader(g, bw_itest_stack());
  live_graders[slot] = g;
}

static void start_grader(grader_t *g, const char *name) {
  start_grader_with(g, name, NULL);
}

/* SIGTERM; the grader must exit 0 within 10 s. */
static void stop_grader(grader_t *g) {
  ck_assert_int_gt(g->pid, 0);
  kill(g->pid, SIGTERM);
  int status = wait_grader(g, 10);
  if (status == -1)
    print_grader_log(g);
  ck_assert_msg(status != -1, "grader %s ignored SIGTERM", g->name);
  ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                "grader %s: wait status %d after SIGTERM", g->name, status);
}

static void kill_grader(grader_t *g) {
  kill(g->pid, SIGKILL);
  waitpid(g->pid, NULL, 0);
  forget_grader(g);
  g->pid = 0;
}

/* The worker id the grader logged at registration ("" if none yet);
 * `nth` 1 is the first registration, 2 the next. */
static void grader_worker_id(const grader_t *g, int nth, char id[25]) {
  char line[1024];
  FILE *f = fopen(g->log, "r");

  id[0] = '\0';
  if (f == NULL)
    return;
  while (nth > 0 && fgets(line, sizeof line, f) != NULL) {
    const char *at = strstr(line, "registered as worker ");
    if (at != NULL && --nth == 0)
      snprintf(id, 25, "%.24s", at + strlen("registered as worker "));
  }
  fclose(f);
}

static bool log_contains(const grader_t *g, const char *needle) {
  char line[1024];
  bool found = false;
  FILE *f = fopen(g->log, "r");

  if (f == NULL)
    return false;
  while (!found && fgets(line, sizeof line, f) != NULL)
    found = strstr(line, needle) != NULL;
  fclose(f);
  return found;
}

static void wait_registered(const grader_t *g, int nth, char id[25]) {
  double deadline = bw_test_now() + 20;
  do {
    grader_worker_id(g, nth, id);
    if (id[0] != '\0')
      return;
    bw_test_sleep_ms(50);
  } while (bw_test_now() < deadline);
  print_grader_log(g);
  ck_abort_msg("grader %s did not register", g->name);
}

/* Job folders the grader left in its work dir. */
static int leftover_folders(const grader_t *g) {
  char cmd[PATH_MAX + 128];
  snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s')\"", g->work_dir);
  return system(cmd) == 0 ? 0 : 1;
}

/* ---- the API side --------------------------------------------------------
 */

static void start_run(const bw_test_client_t *c, const char *config,
                      char run_id[25]) {
  long status = bw_test_http_create_run(c, config, run_id);
  ck_assert_msg(status == 200, "creating the run: HTTP %ld", status);
  status = bw_test_http_start_run(c, run_id);
  ck_assert_msg(status == 200, "starting the run: HTTP %ld", status);
}

/* GET the run into resp; returns its state ("" if none). */
static const char *run_state(const bw_test_client_t *c, const char *run_id,
                             bw_test_http_resp_t *resp) {
  bw_test_http_resp_cleanup(resp);
  bw_test_http_run_status(c, run_id, resp);
  const char *state = bw_test_json_str(bw_test_http_data(resp), "state");
  return state ? state : "";
}

/* Waits for the run to finish; leaves its final read in resp. */
static void wait_run_finished(const bw_test_client_t *c, const char *run_id,
                              bw_test_http_resp_t *resp) {
  double deadline = bw_test_now() + RUN_LIMIT_S;
  const char *state;

  do {
    state = run_state(c, run_id, resp);
    if (strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0)
      return;
    bw_test_sleep_ms(200);
  } while (bw_test_now() < deadline);
  ck_abort_msg("run %s not finished after %d s (state \"%s\"): %s", run_id,
               RUN_LIMIT_S, state, BW_BODY(resp));
}

/* The run's jobs[] entry whose type is `type` and (for students) whose
 * NETID is `netid`. */
static json_object *find_job(bw_test_http_resp_t *run, const char *type,
                             const char *netid) {
  json_object *jobs = bw_test_json_get(bw_test_http_data(run), "jobs");
  size_t n = jobs ? json_object_array_length(jobs) : 0;

  for (size_t i = 0; i < n; i++) {
    json_object *job = json_object_array_get_idx(jobs, i);
    const char *t = bw_test_json_str(job, "type");
    const char *who =
        bw_test_json_str(bw_test_json_get(job, "student"), "NETID");
    if (t && strcmp(t, type) == 0 &&
        (netid == NULL || (who && strcmp(who, netid) == 0)))
      return job;
  }
  ck_abort_msg("no %s job %s in %s", type, netid ? netid : "", BW_BODY(run));
  return NULL;
}

/* GET /api/v1/grading_job/{id} of that job into resp; returns its data. */
static json_object *read_job(const bw_test_client_t *c, json_object *job,
                             bw_test_http_resp_t *resp) {
  const char *id = bw_test_json_str(job, "job_id");
  ck_assert_ptr_nonnull(id);
  bw_test_http_resp_cleanup(resp);
  bw_test_http_get_job(c, id, resp);
  BW_ASSERT_SUCCESS(resp, 200);
  return bw_test_http_data(resp);
}

static json_object *stage_info(json_object *job, size_t i) {
  json_object *info = bw_test_json_get(job, "info");
  ck_assert_msg(info != NULL && json_object_is_type(info, json_type_array),
                "no info[]: %s", json_object_to_json_string(job));
  ck_assert_msg(i < json_object_array_length(info), "no info[%zu]: %s", i,
                json_object_to_json_string(job));
  return json_object_array_get_idx(info, i);
}

static bool job_success(json_object *job) {
  json_object *s = bw_test_json_get(job, "success");
  return s != NULL && json_object_get_boolean(s);
}

static void assert_stage_stdout(json_object *job, size_t i,
                                const char *expected) {
  const char *out = bw_test_json_str(stage_info(job, i), "stdout");
  ck_assert_msg(out != NULL && strcmp(out, expected) == 0,
                "stage %zu stdout \"%s\", expected \"%s\"", i,
                out ? out : "(none)", expected);
}

/* stdout of stage i is `first_line` "\n" then a JSON value equal to the
 * `expected` JSON text. */
static void assert_stdout_line_then_json(json_object *job, size_t i,
                                         const char *first_line,
                                         const char *expected) {
  const char *out = bw_test_json_str(stage_info(job, i), "stdout");
  size_t len = strlen(first_line);

  ck_assert_ptr_nonnull(out);
  ck_assert_msg(strncmp(out, first_line, len) == 0 && out[len] == '\n',
                "stage %zu stdout \"%s\" does not start with \"%s\"", i, out,
                first_line);
  json_object *got = json_tokener_parse(out + len + 1);
  json_object *want = json_tokener_parse(expected);
  ck_assert_msg(got != NULL && bw_test_json_equal(got, want),
                "stage %zu: \"%s\" is not the JSON %s", i, out + len + 1,
                expected);
  json_object_put(got);
  json_object_put(want);
}

/* The interfaces this process sees, as the stages list them. */
static void host_interfaces(char *out, size_t cap) {
  FILE *p =
      popen("tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort", "r");
  size_t n = p ? fread(out, 1, cap - 1, p) : 0;
  out[n] = '\0';
  if (p)
    pclose(p);
}

/* ---- the run of issue 4 ------------------------------------------------- */

#define ROSTER                                                                 \
  "[{\"NETID\": \"alice\"}, {\"NETID\": \"bob\"}, {\"NETID\": \"carol\"},"     \
  " {\"NETID\": \"dave\"}]"

#define SH(cmd) "\"entry_point\": [\"/bin/sh\", \"-c\", \"" cmd "\"]"

/* Each stage's output is what the test asserts; `carol` sleeps past the
 * stage timeout, in a child and a grandchild, which must all be killed. */
// clang-format off
static const char full_run[] =
    "{\"students\": " ROSTER ","
    " \"env\": {\"ASSIGNMENT\": \"mp1\"},"
    " \"pre_processing_pipeline\": ["
    "  {\"image\": \"bbox:1\", \"host_name\": \"pre-host\", "
    SH("echo pre-ok > /job/pre.txt; cp /job/roster.json /job/seen.json;"
       " hostname") "},"
    "  {\"image\": \"bbox:1\", " SH("cat /job/pre.txt /job/seen.json") "}],"
    " \"student_pipeline\": ["
    "  {\"image\": \"bbox:1\", \"host_name\": \"grader-box\","
    "   \"env\": {\"WHO\": \"$NETID\"}, "
    SH("hostname; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ';"
       " echo $WHO:$ASSIGNMENT > /job/answer") "},"
    "  {\"image\": \"bbox:1\", \"timeout\": " TEXT(STUDENT_TIMEOUT_S) ", "
    SH("cat /job/answer; [ $NETID != carol ] ||"
       " { (sleep 120 &); sleep 120; }") "},"
    "  {\"image\": \"bbox:1\", " SH("echo third") "}],"
    " \"post_processing_pipeline\": ["
    "  {\"image\": \"bbox:1\", \"host_name\": \"post-host\", "
    SH("hostname; cat /job/roster.json") "}]}";
// clang-format on

static void assert_student(const bw_test_client_t *c, bw_test_http_resp_t *run,
                           const char *netid) {
  bw_test_http_resp_t r = {0};
  char answer[64];
  json_object *job = read_job(c, find_job(run, "student", netid), &r);

  ck_assert_msg(job_success(job), "%s failed: %s", netid, BW_BODY(&r));
  ck_assert_int_eq(json_object_array_length(bw_test_json_get(job, "info")), 3);
  assert_stage_stdout(job, 0, "grader-box\nlo\n");
  snprintf(answer, sizeof answer, "%s:mp1\n", netid);
  assert_stage_stdout(job, 1, answer);
  assert_stage_stdout(job, 2, "third\n");
  json_object *info = stage_info(job, 0);
  ck_assert_str_eq(bw_test_json_str(info, "image"), "bbox:1");
  ck_assert_int_eq(bw_test_json_int(info, "exit_code"), 0);
  ck_assert(!json_object_get_boolean(bw_test_json_get(info, "timed_out")));
  ck_assert_int_ge(bw_test_json_int(info, "duration_ms"), 0);
  ck_assert_str_eq(bw_test_json_str(info, "stderr"), "");
  /* logs: the job's whole output, stage after stage. */
  char logs[256];
  snprintf(logs, sizeof logs, "grader-box\nlo\n%s:mp1\nthird\n", netid);
  ck_assert_str_eq(bw_test_json_str(bw_test_json_get(job, "logs"), "stdout"),
                   logs);
  bw_test_http_resp_cleanup(&r);
}

/* carol's second stage timed out: her job failed there, the third stage
 * never ran. */
static void assert_timed_out_student(const bw_test_client_t *c,
                                     bw_test_http_resp_t *run) {
  bw_test_http_resp_t r = {0};
  json_object *job = read_job(c, find_job(run, "student", "carol"), &r);

  ck_assert_msg(!job_success(job), "carol succeeded: %s", BW_BODY(&r));
  ck_assert_int_eq(json_object_array_length(bw_test_json_get(job, "info")), 2);
  json_object *info = stage_info(job, 1);
  ck_assert_msg(json_object_get_boolean(bw_test_json_get(info, "timed_out")),
                "stage 1 not timed out: %s", BW_BODY(&r));
  ck_assert_int_ne(bw_test_json_int(info, "exit_code"), 0);
  long long ms = bw_test_json_int(info, "duration_ms");
  ck_assert_msg(ms >= STUDENT_TIMEOUT_S * 1000 &&
                    ms < STUDENT_TIMEOUT_S * 1000 + 15000,
                "timed out after %lld ms", ms);
  assert_stage_stdout(job, 1, "carol:mp1\n");
  bw_test_http_resp_cleanup(&r);
}

START_TEST(test_full_run_with_two_graders) {
  bw_test_client_t c;
  bw_test_http_resp_t run = {0}, r = {0};
  grader_t a, b;
  char run_id[25];

  bw_itest_client(&c);
  start_grader(&a, "a");
  start_grader(&b, "b");
  start_run(&c, full_run, run_id);
  wait_run_finished(&c, run_id, &run);

  json_object *data = bw_test_http_data(&run);
  ck_assert_str_eq(bw_test_json_str(data, "state"), "succeeded");
  ck_assert(json_object_get_boolean(bw_test_json_get(data, "success")));
  json_object *counts = bw_test_json_get(data, "counts");
  ck_assert_int_eq(bw_test_json_int(counts, "succeeded"), 5);
  ck_assert_int_eq(bw_test_json_int(counts, "failed"), 1);

  json_object *pre = read_job(&c, find_job(&run, "pre", NULL), &r);
  ck_assert_msg(job_success(pre), "pre failed: %s", BW_BODY(&r));
  assert_stage_stdout(pre, 0, "pre-host\n");
  assert_stdout_line_then_json(pre, 1, "pre-ok", ROSTER);

  assert_student(&c, &run, "alice");
  assert_student(&c, &run, "bob");
  assert_student(&c, &run, "dave");
  assert_timed_out_student(&c, &run);

  json_object *post = read_job(&c, find_job(&run, "post", NULL), &r);
  ck_assert_msg(job_success(post), "post failed: %s", BW_BODY(&r));
  assert_stdout_line_then_json(post, 0, "post-host", ROSTER);

  stop_grader(&a);
  stop_grader(&b);
  ck_assert_msg(!leftover_folders(&a) && !leftover_folders(&b),
                "job folders left in %s or %s", a.work_dir, b.work_dir);
  bw_test_http_resp_cleanup(&run);
  bw_test_http_resp_cleanup(&r);
}
END_TEST

/* enable_networking: the stage shares the grader's network namespace. */
START_TEST(test_networking_on_request) {
  static const char config[] =
      "{\"students\": [{\"NETID\": \"n\"}],"
      " \"student_pipeline\": [{\"image\": \"bbox:1\","
      "  \"enable_networking\": true,"
      "  " SH(
          "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort") "}]}";
  bw_test_client_t c;
  bw_test_http_resp_t run = {0}, r = {0};
  char run_id[25], expected[4096];
  grader_t g;

  bw_itest_client(&c);
  start_grader(&g, "net");
  start_run(&c, config, run_id);
  wait_run_finished(&c, run_id, &run);
  json_object *job = read_job(&c, find_job(&run, "student", "n"), &r);
  host_interfaces(expected, sizeof expected);
  ck_assert_msg(job_success(job), "failed: %s", BW_BODY(&r));
  assert_stage_stdout(job, 0, expected);
  stop_grader(&g);
  bw_test_http_resp_cleanup(&run);
  bw_test_http_resp_cleanup(&r);
}
END_TEST

/* ---- graders that go away ----------------------------------------------- */

static const char slow_run[] =
    "{\"students\": [{\"NETID\": \"slow\"}],"
    " \"student_pipeline\": [{\"image\": \"bbox:1\", \"timeout\": 60,"
    "  " SH("echo start; sleep 3; echo done $NETID") "}]}";

/* Waits until the run's only student job is running; returns its holder. */
static void wait_job_running(const bw_test_client_t *c, const char *run_id,
                             char holder[25]) {
  bw_test_http_resp_t run = {0};
  double deadline = bw_test_now() + 30;

  for (;;) {
    run_state(c, run_id, &run);
    json_object *job = find_job(&run, "student", NULL);
    const char *state = bw_test_json_str(job, "state");
    const char *worker = bw_test_json_str(job, "worker_id");
    if (state && strcmp(state, "running") == 0 && worker) {
      snprintf(holder, 25, "%s", worker);
      break;
    }
    ck_assert_msg(bw_test_now() < deadline, "job never ran: %s", BW_BODY(&run));
    bw_test_sleep_ms(100);
  }
  bw_test_http_resp_cleanup(&run);
}

static void assert_slow_job_done_by(const bw_test_client_t *c,
                                    const char *run_id, const char *worker) {
  bw_test_http_resp_t run = {0}, r = {0};

  wait_run_finished(c, run_id, &run);
  json_object *job = read_job(c, find_job(&run, "student", NULL), &r);
  ck_assert_msg(job_success(job), "failed: %s", BW_BODY(&r));
  ck_assert_int_eq(bw_test_json_int(job, "attempts"), 2);
  ck_assert_str_eq(bw_test_json_str(job, "worker_id"), worker);
  /* One whole run on the second grader, not half of each. */
  assert_stage_stdout(job, 0, "start\ndone slow\n");
  bw_test_http_resp_cleanup(&run);
  bw_test_http_resp_cleanup(&r);
}

START_TEST(test_killed_grader_job_finishes_on_other) {
  bw_test_client_t c;
  grader_t a, b;
  char run_id[25], id_a[25], id_b[25], holder[25];

  bw_itest_client(&c);
  start_grader(&a, "a");
  start_grader(&b, "b");
  wait_registered(&a, 1, id_a);
  wait_registered(&b, 1, id_b);
  start_run(&c, slow_run, run_id);
  wait_job_running(&c, run_id, holder);
  grader_t *victim = strcmp(holder, id_a) == 0 ? &a : &b;
  grader_t *other = victim == &a ? &b : &a;
  const char *other_id = victim == &a ? id_b : id_a;
  ck_assert_msg(strcmp(holder, id_a) == 0 || strcmp(holder, id_b) == 0,
                "job held by %s, neither %s nor %s", holder, id_a, id_b);

  kill_grader(victim);
  assert_slow_job_done_by(&c, run_id, other_id);
  stop_grader(other);
}
END_TEST

START_TEST(test_sigterm_abandons_job_without_reporting) {
  bw_test_client_t c;
  bw_test_http_resp_t run = {0};
  grader_t a, b;
  char run_id[25], holder[25], id_b[25];

  bw_itest_client(&c);
  start_grader(&a, "a");
  start_run(&c, slow_run, run_id);
  wait_job_running(&c, run_id, holder);
  stop_grader(&a); /* exits 0, within seconds */
  ck_assert_msg(log_contains(&a, "abandoned"), "grader a did not abandon");
  ck_assert_msg(!leftover_folders(&a), "job folder left in %s", a.work_dir);

  /* Not reported: the job is still running (held by a dead grader) or back
   * in the queue, never finished. */
  run_state(&c, run_id, &run);
  const char *state =
      bw_test_json_str(find_job(&run, "student", NULL), "state");
  ck_assert_msg(strcmp(state, "running") == 0 || strcmp(state, "queued") == 0,
                "after SIGTERM the job is %s", state);

  start_grader(&b, "b");
  wait_registered(&b, 1, id_b);
  assert_slow_job_done_by(&c, run_id, id_b);
  stop_grader(&b);
  bw_test_http_resp_cleanup(&run);
}
END_TEST

/* The database forgets every worker under a running grader: its next call
 * gets 401, it registers again and keeps grading. */
START_TEST(test_reregisters_after_database_wipe) {
  static const char quick_run[] =
      "{\"students\": [{\"NETID\": \"q\"}],"
      " \"student_pipeline\": [{\"image\": \"bbox:1\", " SH("echo ok") "}]}";
  bw_test_client_t c;
  bw_test_http_resp_t run = {0};
  grader_t g;
  char run_id[25], first[25], second[25];

  bw_itest_client(&c);
  start_grader(&g, "g");
  wait_registered(&g, 1, first);
  ck_assert_int_eq(bw_test_db_reset(bw_itest_stack()), 0);
  wait_registered(&g, 2, second);
  ck_assert_str_ne(first, second);
  start_run(&c, quick_run, run_id);
  wait_run_finished(&c, run_id, &run);
  ck_assert_str_eq(bw_test_json_str(bw_test_http_data(&run), "state"),
                   "succeeded");
  stop_grader(&g);
  bw_test_http_resp_cleanup(&run);
}
END_TEST

/* ---- limits ------------------------------------------------------------- */

/* Every stage command below carries this word, so that a process left
 * behind by one is found by its command line. */
#define MARK "limits-itest-mark"
#define SPIN_TIMEOUT_S 4

/* Five hostile students next to three honest ones, in one pipeline with
 * small limits, on one grader with 2 slots.  Each hostile student is
 * stopped by its limit well before the timeout, except the CPU spinner,
 * which is held to half a CPU until its timeout. */
// clang-format off
static const char hostile_run[] =
    "{\"students\": [{\"NETID\": \"bomb\"}, {\"NETID\": \"h1\"},"
    " {\"NETID\": \"hog\"}, {\"NETID\": \"filler\"}, {\"NETID\": \"h2\"},"
    " {\"NETID\": \"flood\"}, {\"NETID\": \"spinner\"}, {\"NETID\": \"h3\"}],"
    " \"student_pipeline\": [{\"image\": \"bbox:1\","
    "  \"timeout\": " TEXT(SPIN_TIMEOUT_S) ", \"memory\": \"64m\","
    "  \"cpus\": 0.5, \"pids\": 32, \"disk\": \"16m\", \"output\": \"1m\", "
    SH(": " MARK "; case $NETID in"
       " bomb) f() { f | f & }; f; wait;;"
       " hog) x=0123456789abcdef; while :; do x=$x$x; done;;"
       " filler) cat /dev/zero > /job/fill; sleep 60;;"
       " flood) yes " MARK ";;"
       " spinner) while :; do :; done;;"
       " *) echo $NETID > /job/mine; cat /job/mine; id -u;;"
       " esac") "}]}";
// clang-format on

/* Enforcing limits takes root (CI runs as root); elsewhere these tests say
 * so and pass. */
static bool skipped_without_root(void) {
  if (geteuid() == 0)
    return false;
  fprintf(stderr, "limits: skipped: the grader enforces limits only as "
                  "root\n");
  return true;
}

/* `got` is the JSON value `text` (types too: 1.0 is not 1). */
static void assert_json_eq_text(json_object *got, const char *text) {
  json_object *want = json_tokener_parse(text);
  ck_assert_msg(want != NULL && bw_test_json_equal(got, want),
                "got %s, expected %s",
                got ? json_object_to_json_string(got) : "(absent)", text);
  json_object_put(want);
}

/* Processes whose command line holds MARK, other than this one. */
static int marked_processes(void) {
  DIR *proc = opendir("/proc");
  struct dirent *e;
  int found = 0;

  ck_assert_ptr_nonnull(proc);
  while ((e = readdir(proc)) != NULL) {
    char path[300], cmd[8192];
    size_t n;
    FILE *f;
    if (e->d_name[0] < '1' || e->d_name[0] > '9' || atoi(e->d_name) == getpid())
      continue;
    snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
    if ((f = fopen(path, "r")) == NULL)
      continue;
    n = fread(cmd, 1, sizeof cmd - 1, f);
    fclose(f);
    for (size_t i = 0; i < n; i++)
      if (cmd[i] == '\0')
        cmd[i] = ' ';
    cmd[n] = '\0';
    if (strstr(cmd, MARK) != NULL) {
      fprintf(stderr, "left behind: pid %s: %s\n", e->d_name, cmd);
      found++;
    }
  }
  closedir(proc);
  return found;
}

/* Mounts of this test's scratch folder (a job folder's tmpfs). */
static int scratch_mounts(void) {
  char line[4096];
  int found = 0;
  FILE *f = fopen("/proc/self/mountinfo", "r");

  ck_assert_ptr_nonnull(f);
  while (fgets(line, sizeof line, f) != NULL)
    found += strstr(line, scratch_dir) != NULL;
  fclose(f);
  return found;
}

/* cgroups the grader `pid` made for its stages (broadway-<pid>-<n>). */
static int grader_cgroups(pid_t pid) {
  char cmd[256];
  snprintf(cmd, sizeof cmd,
           "find /sys/fs/cgroup -maxdepth 8 -type d -name 'broadway-%d-*' "
           "2>/dev/null | grep -q .",
           (int)pid);
  return system(cmd) == 0;
}

/* Stops the grader and asserts it left nothing: folders, mounts, cgroups,
 * processes. */
static void stop_grader_clean(grader_t *g) {
  pid_t pid = g->pid;

  stop_grader(g);
  ck_assert_msg(!leftover_folders(g), "job folders left in %s", g->work_dir);
  ck_assert_int_eq(scratch_mounts(), 0);
  ck_assert_msg(!grader_cgroups(pid), "cgroups of grader %d left", (int)pid);
  ck_assert_int_eq(marked_processes(), 0);
}

/* The student's job failed at stage 0, stopped by `by` at `limit`, with
 * the run's status saying so; returns the stage's info. */
static json_object *assert_killed_by(const bw_test_client_t *c,
                                     bw_test_http_resp_t *run,
                                     const char *netid, const char *by,
                                     const char *limit,
                                     bw_test_http_resp_t *r) {
  json_object *entry = find_job(run, "student", netid);
  json_object *job = read_job(c, entry, r);
  json_object *info = stage_info(job, 0);
  char reason[128];

  ck_assert_msg(!job_success(job), "%s succeeded: %s", netid, BW_BODY(r));
  ck_assert_msg(bw_test_json_str(info, "killed_by") != NULL &&
                    strcmp(bw_test_json_str(info, "killed_by"), by) == 0,
                "%s: killed_by is not %s: %s", netid, by, BW_BODY(r));
  assert_json_eq_text(bw_test_json_get(info, "limit"), limit);
  snprintf(reason, sizeof reason, "stage 0 killed_by %s (%s)", by, limit);
  ck_assert_msg(bw_test_json_str(entry, "reason") != NULL &&
                    strcmp(bw_test_json_str(entry, "reason"), reason) == 0,
                "%s: the run status does not say \"%s\": %s", netid, reason,
                BW_BODY(run));
  return info;
}

/* Stopped by its limit, well before its timeout. */
static void assert_stopped_early(json_object *info, const char *netid) {
  long long ms = bw_test_json_int(info, "duration_ms");
  ck_assert_msg(ms < SPIN_TIMEOUT_S * 1000, "%s ran %lld ms: not stopped",
                netid, ms);
  ck_assert(!json_object_get_boolean(bw_test_json_get(info, "timed_out")));
}

static void assert_honest(const bw_test_client_t *c, bw_test_http_resp_t *run,
                          const char *netid) {
  bw_test_http_resp_t r = {0};
  char expected[64];
  json_object *job = read_job(c, find_job(run, "student", netid), &r);
  json_object *info = stage_info(job, 0);

  ck_assert_msg(job_success(job), "%s failed: %s", netid, BW_BODY(&r));
  snprintf(expected, sizeof expected, "%s\n1000\n", netid); /* uid 1000 */
  assert_stage_stdout(job, 0, expected);
  ck_assert_ptr_null(bw_test_json_get(info, "killed_by"));
  assert_json_eq_text(bw_test_json_get(info, "limits"),
                      "{\"memory\": 67108864, \"cpus\": 0.5, \"pids\": 32,"
                      " \"disk\": 16777216, \"output\": 1048576}");
  ck_assert_int_ge(bw_test_json_int(info, "cpu_ms"), 0);
  bw_test_http_resp_cleanup(&r);
}

/* The spinner used about half a CPU, as its cgroup counted it. */
static void assert_half_a_cpu(json_object *info) {
  double cpu = (double)bw_test_json_int(info, "cpu_ms");
  double wall = (double)bw_test_json_int(info, "duration_ms");

  ck_assert_msg(wall >= SPIN_TIMEOUT_S * 1000, "spun %g ms only", wall);
  /* The quota caps it at 0.5 (plus one period's slack); a loaded machine
   * gives it less (0.38 seen during make test-san next to other work). */
  ck_assert_msg(cpu / wall > 0.2 && cpu / wall < 0.6,
                "spinner used %g ms of CPU in %g ms: %.2f CPUs", cpu, wall,
                cpu / wall);
  fprintf(stderr,
          "limits: the spinner used %.0f ms of CPU in %.0f ms "
          "(%.3f CPUs at cpus 0.5)\n",
          cpu, wall, cpu / wall);
}

START_TEST(test_limits_stop_hostile_students_only) {
  static const char *const env[] = {"BROADWAY_SLOTS=2", NULL};
  static const char honest_run[] =
      "{\"students\": [{\"NETID\": \"later\"}],"
      " \"student_pipeline\": [{\"image\": \"bbox:1\", " SH(
          ": " MARK "; echo $NETID; id -u") "}]}";
  bw_test_client_t c;
  bw_test_http_resp_t run = {0}, r = {0};
  char run_id[25];
  grader_t g;

  if (skipped_without_root())
    return;
  bw_itest_client(&c);
  start_grader_with(&g, "lim", env);
  start_run(&c, hostile_run, run_id);
  wait_run_finished(&c, run_id, &run);
  json_object *counts = bw_test_json_get(bw_test_http_data(&run), "counts");
  ck_assert_int_eq(bw_test_json_int(counts, "succeeded"), 3);
  ck_assert_int_eq(bw_test_json_int(counts, "failed"), 5);

  assert_stopped_early(assert_killed_by(&c, &run, "bomb", "pids", "32", &r),
                       "bomb");
  json_object *hog =
      assert_killed_by(&c, &run, "hog", "memory", "67108864", &r);
  assert_stopped_early(hog, "hog");
  ck_assert_int_le(bw_test_json_int(hog, "memory_peak"), 64 << 20);
  assert_stopped_early(
      assert_killed_by(&c, &run, "filler", "disk", "16777216", &r), "filler");
  json_object *flood =
      assert_killed_by(&c, &run, "flood", "output", "1048576", &r);
  assert_stopped_early(flood, "flood");
  assert_half_a_cpu(assert_killed_by(&c, &run, "spinner", "cpu", "0.5", &r));
  assert_honest(&c, &run, "h1");
  assert_honest(&c, &run, "h2");
  assert_honest(&c, &run, "h3");

  /* The grader is alive and grades the next run, with the defaults. */
  ck_assert_int_eq(kill(g.pid, 0), 0);
  start_run(&c, honest_run, run_id);
  wait_run_finished(&c, run_id, &run);
  json_object *job = read_job(&c, find_job(&run, "student", "later"), &r);
  ck_assert_msg(job_success(job), "later failed: %s", BW_BODY(&r));
  assert_stage_stdout(job, 0, "later\n1000\n");
  assert_json_eq_text(bw_test_json_get(stage_info(job, 0), "limits"),
                      "{\"memory\": 1073741824, \"cpus\": 1.0, \"pids\": 256,"
                      " \"disk\": 1073741824, \"output\": 67108864}");
  stop_grader_clean(&g);
  bw_test_http_resp_cleanup(&run);
  bw_test_http_resp_cleanup(&r);
}
END_TEST

/* The docker runner passes the limits to docker, and stops a flood itself.
 * A fake docker CLI (first in PATH) records its arguments. */
START_TEST(test_docker_gets_the_limits) {
  static const char config[] =
      "{\"students\": [{\"NETID\": \"argv\"}, {\"NETID\": \"flood\"}],"
      " \"student_pipeline\": [{\"image\": \"course/grader:1\","
      "  \"memory\": \"64m\", \"cpus\": 0.5, \"pids\": 32, \"disk\": \"16m\","
      "  \"output\": \"1m\", " SH("true") "}]}";
  char bin_dir[PATH_MAX + 16], path_env[16384], log_env[PATH_MAX + 128];
  char script[PATH_MAX + 32], args[PATH_MAX + 64], expected[PATH_MAX + 256];
  const char *env[] = {"BROADWAY_RUNNER=docker", path_env, log_env, NULL};
  bw_test_client_t c;
  bw_test_http_resp_t run = {0}, r = {0};
  char run_id[25];
  grader_t g;

  if (skipped_without_root())
    return;
  snprintf(bin_dir, sizeof bin_dir, "%s/fake-docker-%d", scratch_dir,
           (int)getpid());
  ck_assert_int_eq(mkdir(bin_dir, 0700), 0);
  snprintf(script, sizeof script, "%s/docker", bin_dir);
  FILE *f = fopen(script, "w");
  ck_assert_ptr_nonnull(f);
  fputs("#!/bin/sh\n"
        "[ \"$1\" = kill ] && exit 0\n"
        "case \" $* \" in *NETID=flood*) exec yes " MARK ";; esac\n"
        "printf '%s\\n' \"$@\" > \"$FAKE_DOCKER_LOG\"\n",
        f);
  fclose(f);
  ck_assert_int_eq(chmod(script, 0755), 0);
  snprintf(path_env, sizeof path_env, "PATH=%s:%s", bin_dir, getenv("PATH"));
  snprintf(args, sizeof args, "%s/args", bin_dir);
  snprintf(log_env, sizeof log_env, "FAKE_DOCKER_LOG=%s", args);

  bw_itest_client(&c);
  start_grader_with(&g, "dock", env);
  start_run(&c, config, run_id);
  wait_run_finished(&c, run_id, &run);
  json_object *job = read_job(&c, find_job(&run, "student", "argv"), &r);
  ck_assert_msg(job_success(job), "argv failed: %s", BW_BODY(&r));
  static const char *const flags[] = {"--network=none",
                                      "--memory=67108864",
                                      "--memory-swap=67108864",
                                      "--cpus=0.500",
                                      "--pids-limit=32",
                                      "--ulimit=core=0:0",
                                      "--ulimit=fsize=16777216:16777216"};
  for (size_t i = 0; i < sizeof flags / sizeof *flags; i++) {
    snprintf(expected, sizeof expected, "grep -qx -- '%s' '%s'", flags[i],
             args);
    ck_assert_msg(system(expected) == 0, "docker was not given %s", flags[i]);
  }
  assert_killed_by(&c, &run, "flood", "output", "1048576", &r);
  stop_grader_clean(&g);
  bw_test_http_resp_cleanup(&run);
  bw_test_http_resp_cleanup(&r);
}
END_TEST

/* Asked for limits it cannot enforce, the grader does not start. */
START_TEST(test_refuses_to_start_without_enforcement) {
  static const char *const env[] = {"BROADWAY_WORK_DIR=/proc",
                                    "BROADWAY_LIMITS=on", NULL};
  grader_t g;

  start_grader_with(&g, "noenf", env);
  int status = wait_grader(&g, 20);
  ck_assert_msg(status != -1, "the grader started");
  ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 2, "wait status %d",
                status);
  ck_assert_msg(log_contains(&g, "cannot enforce the disk limit"),
                "no reason given");
}
END_TEST

/* ---- set-up ------------------------------------------------------------- */

/* Finds `relative` in `start` or a folder above it. */
static bool find_above(const char *start, const char *relative,
                       char out[PATH_MAX]) {
  char dir[PATH_MAX];

  if (start == NULL || realpath(start, dir) == NULL)
    return false;
  for (;;) {
    if ((size_t)snprintf(out, PATH_MAX, "%s/%s", dir, relative) < PATH_MAX &&
        access(out, X_OK) == 0)
      return true;
    char *slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir)
      return false;
    *slash = '\0';
  }
}

static int run_command(char *const argv[]) {
  pid_t pid = fork();
  int status;

  if (pid == 0) {
    execvp(argv[0], argv);
    _exit(127);
  }
  if (pid < 0 || waitpid(pid, &status, 0) != pid)
    return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The grader binary, the image, and proof that bwrap works here. */
static bool prepare(void) {
  const char *bin = getenv("BROADWAY_BIN");
  char script[PATH_MAX], image[PATH_MAX + 32], bwrap[] = "bwrap";

  if (!find_above(bin, "broadway-grader", grader_bin) &&
      !find_above(".", "bin/broadway-grader", grader_bin)) {
    fprintf(stderr, "check_grader: broadway-grader not found (BROADWAY_BIN)\n");
    return false;
  }
  if (!find_above(bin, "scripts/make-busybox-image", script) &&
      !find_above(".", "scripts/make-busybox-image", script)) {
    fprintf(stderr, "check_grader: scripts/make-busybox-image not found\n");
    return false;
  }
  snprintf(scratch_dir, sizeof scratch_dir, "/tmp/grader-itest-XXXXXX");
  if (mkdtemp(scratch_dir) == NULL)
    return false;
  snprintf(images_dir, sizeof images_dir, "%s/images", scratch_dir);
  snprintf(image, sizeof image, "%s/bbox:1", images_dir);
  if (run_command((char *[]){script, image, NULL}) != 0) {
    fprintf(stderr, "check_grader: %s %s failed\n", script, image);
    return false;
  }
  if (run_command((char *[]){bwrap, "--ro-bind", image, "/", "--proc", "/proc",
                             "--dev", "/dev", "--unshare-all", "--hostname",
                             "probe", "/bin/true", NULL}) != 0) {
    fprintf(stderr, "check_grader: bwrap cannot sandbox here (user or net "
                    "namespaces refused?); see the grader's README section\n");
    return false;
  }
  return true;
}

static Suite *grader_suite(void) {
  Suite *s = suite_create("grader");
  TCase *tc = bw_itest_tcase(s, "end to end", 180, true);
  tcase_add_test(tc, test_full_run_with_two_graders);
  tcase_add_test(tc, test_networking_on_request);
  tcase_add_test(tc, test_killed_grader_job_finishes_on_other);
  tcase_add_test(tc, test_sigterm_abandons_job_without_reporting);
  tcase_add_test(tc, test_reregisters_after_database_wipe);
  TCase *limits = bw_itest_tcase(s, "limits", 180, true);
  tcase_add_test(limits, test_limits_stop_hostile_students_only);
  tcase_add_test(limits, test_docker_gets_the_limits);
  tcase_add_test(limits, test_refuses_to_start_without_enforcement);
  return s;
}

int main(void) {
  bw_test_stack_opts_t opts = {.label = "grader", .heartbeat = HEARTBEAT_S};
  char cmd[PATH_MAX + 16];
  int rc;

  if (!prepare())
    return EXIT_FAILURE;
  rc = bw_itest_main(grader_suite(), &opts);
  if (rc == EXIT_SUCCESS) {
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", scratch_dir);
    if (system(cmd) != 0)
      fprintf(stderr, "check_grader: could not remove %s\n", scratch_dir);
  } else {
    fprintf(stderr, "check_grader: grader logs kept in %s\n", scratch_dir);
  }
  return rc;
}
