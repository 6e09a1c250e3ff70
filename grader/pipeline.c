#include "pipeline.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cgroup.h"
#include "error.h"
#include "log.h"
#include "process.h"
#include "runner.h"
#include "workdir.h"

#define DEFAULT_TIMEOUT_MS 30000
/* How often a running stage's counters (its cgroups, /job) are read. */
#define LIMIT_CHECK_MS 50
/* Open files a stage may hold (RLIMIT_NOFILE). */
#define STAGE_NOFILE 1024

/* A stage parsed from the job, owning the arrays the runner borrows. */
typedef struct parsed_stage {
  gr_stage_t stage;
  gr_argv_t env, entry_point;
  gr_limits_t limits;
} parsed_stage_t;

/* Everything a running stage's callbacks need. */
typedef struct stage_run {
  const gr_options_t *opt;
  gr_session_t *session;
  gr_job_outcome_t *job;
  gr_stage_outcome_t *stage;
  gr_workdir_t *dir;
  char container[96];
  gr_cgroup_t cgroup;
  bool has_cgroup;
  unsigned long long output; /* bytes of stdout + stderr so far */
  long long checked_ms;      /* when over_limit last read the counters */
} stage_run_t;

static void note_to_logs(gr_job_outcome_t *job, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void note_to_logs(gr_job_outcome_t *job, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  int n;

  n = snprintf(line, sizeof line, "broadway-grader: ");
  va_start(ap, fmt);
  vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
  va_end(ap);
  strncat(line, "\n", sizeof line - strlen(line) - 1);
  gr_tail_append(&job->log_err, line, strlen(line));
}

/* --- parsing a stage --------------------------------------------------- */

static bool valid_env_entry(const char *entry) {
  const char *eq = strchr(entry, '=');
  return eq != NULL && eq != entry;
}

/* env as the protocol sends it (["NAME=value", ...]), or as an object,
 * which older APIs sent. */
static int parse_env(json_object *value, gr_argv_t *out, bw_error_t *error) {
  size_t i, n;

  if (json_object_is_type(value, json_type_object)) {
    json_object_object_foreach(value, name, item) {
      char *entry;
      if (asprintf(&entry, "%s=%s", name, json_object_get_string(item)) < 0)
        return bw_error_set(error, BW_ENOMEM, "out of memory");
      if (name[0] == '\0' || gr_argv_push(out, entry) != 0) {
        free(entry);
        return bw_error_set(error, BW_EINVAL, "env: bad entry");
      }
      free(entry);
    }
    return 0;
  }
  if (!json_object_is_type(value, json_type_array))
    return bw_error_set(error, BW_EINVAL,
                        "env: expected a list of NAME=value strings");
  n = json_object_array_length(value);
  for (i = 0; i < n; i++) {
    json_object *item = json_object_array_get_idx(value, i);
    if (!json_object_is_type(item, json_type_string) ||
        !valid_env_entry(json_object_get_string(item)))
      return bw_error_set(error, BW_EINVAL,
                          "env[%zu]: expected a NAME=value string", i);
    if (gr_argv_push(out, json_object_get_string(item)) != 0)
      return bw_error_set(error, BW_ENOMEM, "out of memory");
  }
  return 0;
}

static int parse_entry_point(json_object *value, gr_argv_t *out,
                             bw_error_t *error) {
  size_t i, n;

  if (!json_object_is_type(value, json_type_array))
    return bw_error_set(error, BW_EINVAL,
                        "entry_point: expected a list of strings");
  n = json_object_array_length(value);
  for (i = 0; i < n; i++) {
    json_object *item = json_object_array_get_idx(value, i);
    if (!json_object_is_type(item, json_type_string))
      return bw_error_set(error, BW_EINVAL,
                          "entry_point[%zu]: expected a string", i);
    if (gr_argv_push(out, json_object_get_string(item)) != 0)
      return bw_error_set(error, BW_ENOMEM, "out of memory");
  }
  return 0;
}

static int parse_timeout(json_object *value, int *timeout_ms,
                         bw_error_t *error) {
  double seconds;

  if (!json_object_is_type(value, json_type_int) &&
      !json_object_is_type(value, json_type_double))
    return bw_error_set(error, BW_EINVAL, "timeout: expected a number");
  seconds = json_object_get_double(value);
  if (!(seconds > 0))
    return bw_error_set(error, BW_EINVAL, "timeout: expected a number > 0");
  *timeout_ms = seconds * 1000 >= INT_MAX ? INT_MAX : (int)(seconds * 1000);
  if (*timeout_ms < 1)
    *timeout_ms = 1;
  return 0;
}

static void parsed_stage_cleanup(parsed_stage_t *ps) {
  gr_argv_cleanup(&ps->env);
  gr_argv_cleanup(&ps->entry_point);
}

/* Returns 0, or BW_EINVAL or BW_ENOMEM with the reason (the field) in
 * error: the stage is then not run. */
static int parse_stage(const gr_options_t *opt, json_object *json,
                       parsed_stage_t *ps, bw_error_t *error) {
  json_object *value;
  gr_stage_t *st = &ps->stage;
  int rc;

  memset(ps, 0, sizeof *ps);
  st->timeout_ms = DEFAULT_TIMEOUT_MS;
  if (!json_object_is_type(json, json_type_object))
    return bw_error_set(error, BW_EINVAL, "expected an object");
  if (!json_object_object_get_ex(json, "image", &value) ||
      !json_object_is_type(value, json_type_string) ||
      json_object_get_string_len(value) == 0)
    return bw_error_set(error, BW_EINVAL, "image: expected a non-empty string");
  st->image = json_object_get_string(value);
  if (json_object_object_get_ex(json, "env", &value) && value != NULL &&
      (rc = parse_env(value, &ps->env, error)) != 0)
    return rc;
  if (json_object_object_get_ex(json, "entry_point", &value) && value != NULL &&
      (rc = parse_entry_point(value, &ps->entry_point, error)) != 0)
    return rc;
  if (json_object_object_get_ex(json, "timeout", &value) && value != NULL &&
      (rc = parse_timeout(value, &st->timeout_ms, error)) != 0)
    return rc;
  if (json_object_object_get_ex(json, "host_name", &value) &&
      json_object_is_type(value, json_type_string))
    st->host_name = json_object_get_string(value);
  if (json_object_object_get_ex(json, "enable_networking", &value))
    st->networking = json_object_get_boolean(value);
  if (opt->enforce) {
    if ((rc = gr_limits_of_stage(json, &opt->limits, &ps->limits, error)) != 0)
      return rc;
    st->limits = &ps->limits;
  }
  st->env = (const char **)ps->env.v;
  st->n_env = ps->env.n;
  /* An empty entry_point is no entry_point. */
  st->entry_point =
      ps->entry_point.n > 0 ? (const char **)ps->entry_point.v : NULL;
  st->n_entry_point = ps->entry_point.n;
  return 0;
}

/* --- running a stage --------------------------------------------------- */

static void on_output(void *arg, int stream, const char *data, size_t len) {
  stage_run_t *run = arg;

  run->output += len;
  if (stream == GR_STDOUT) {
    gr_tail_append(&run->stage->out, data, len);
    gr_tail_append(&run->job->log_out, data, len);
  } else {
    gr_tail_append(&run->stage->err, data, len);
    gr_tail_append(&run->job->log_err, data, len);
  }
}

static bool should_abandon(void *arg) {
  stage_run_t *run = arg;
  return gr_session_stopping(run->session);
}

static void before_kill(void *arg) {
  stage_run_t *run = arg;
  gr_runner_kill(run->opt, run->container);
}

/* Polled while the stage runs: the limit it went over, or 0.  Output is
 * counted as it comes; the cgroups' counters and /job are read every
 * LIMIT_CHECK_MS.  Going over pids (a fork refused) or memory (a process
 * OOM-killed) stops the whole stage: what is left would not be graded on
 * what the student wrote. */
static int over_limit(void *arg) {
  stage_run_t *run = arg;
  gr_cgroup_usage_t usage;
  long long now;

  if (run->output > run->stage->limits.output)
    return GR_KILLED_OUTPUT;
  now = gr_monotonic_ms();
  if (now - run->checked_ms < LIMIT_CHECK_MS)
    return 0;
  run->checked_ms = now;
  if (gr_workdir_full(run->dir))
    return GR_KILLED_DISK;
  if (!run->has_cgroup)
    return 0;
  gr_cgroup_usage(&run->cgroup, &usage);
  return usage.oom_kills > 0      ? GR_KILLED_MEMORY
         : usage.pids_refused > 0 ? GR_KILLED_PIDS
                                  : 0;
}

/* Before the stage starts: /job resized to its disk limit, its cgroups
 * made, its rlimits in `confine`.  Returns 0, or a BW_E* code with the
 * reason in error (BW_ETOOBIG and killed_by disk when /job already holds
 * more than it may). */
static int confine_stage(stage_run_t *run, const gr_limits_t *limits,
                         gr_confine_t *confine, bw_error_t *error) {
  bw_error_t bound_error;
  int rc;

  if (run->opt->bound_job &&
      (rc = gr_workdir_bound(run->dir, limits->disk, &bound_error)) != 0) {
    if (rc == BW_ETOOBIG)
      run->stage->killed_by = GR_KILLED_DISK;
    return bw_error_set(error, rc, "cannot make /job %llu bytes: %.300s",
                        (unsigned long long)limits->disk, bound_error.message);
  }
  if (run->opt->cgroup_version > 0) {
    if ((rc = gr_cgroup_create(&run->cgroup, limits, error)) != 0)
      return rc;
    run->has_cgroup = true;
    confine->cgroup_fds = run->cgroup.procs_fds;
    confine->n_cgroup_fds = (size_t)run->cgroup.n_dirs;
  }
  confine->fsize = limits->disk;
  confine->nofile = STAGE_NOFILE;
  return 0;
}

/* After the stage: what it used, and the limit it was stopped at (or
 * hit on its way out), if any.  A timeout counts as the CPU limit's when
 * the stage was compute-bound: held to its share in at least half of the
 * periods it ran, or (on a busy machine, where it may not even get its
 * share: 0.38 of 0.5 CPUs was seen under `make test-san`) using at least a
 * quarter of what `cpus` allowed over its run.  More CPU would have helped
 * it, not more time. */
static gr_killed_by_t stage_verdict(stage_run_t *run,
                                    const gr_process_result_t *result) {
  gr_cgroup_usage_t usage = {0};
  gr_killed_by_t by = (gr_killed_by_t)result->over_limit;

  if (run->has_cgroup) {
    gr_cgroup_usage(&run->cgroup, &usage);
    run->stage->cpu_ms = usage.cpu_ns / 1000000;
    run->stage->memory_peak = usage.memory_peak;
  }
  if (by != GR_KILLED_NONE)
    return by;
  if (usage.oom_kills > 0)
    return GR_KILLED_MEMORY;
  if (usage.pids_refused > 0)
    return GR_KILLED_PIDS;
  if (gr_workdir_full(run->dir))
    return GR_KILLED_DISK;
  if (!result->timed_out)
    return GR_KILLED_NONE;
  return (usage.periods > 0 && usage.throttled * 2 >= usage.periods) ||
                 (double)usage.cpu_ns * 4 >=
                     run->stage->limits.cpus * 1e6 * (double)result->duration_ms
             ? GR_KILLED_CPU
             : GR_KILLED_TIMEOUT;
}

/* Adds a stage outcome to the job.  Returns it, or NULL (ENOMEM). */
static gr_stage_outcome_t *add_stage(const gr_options_t *opt,
                                     gr_job_outcome_t *job, const char *image) {
  gr_stage_outcome_t *grown, *st;

  grown = realloc(job->stages, (job->n_stages + 1) * sizeof *grown);
  if (grown == NULL)
    return NULL;
  job->stages = grown;
  st = &job->stages[job->n_stages];
  memset(st, 0, sizeof *st);
  st->exit_code = -1;
  st->cpu_ms = st->memory_peak = -1;
  st->image = strdup(image ? image : "");
  if (st->image == NULL || gr_tail_init(&st->out, opt->tail_bytes) != 0 ||
      gr_tail_init(&st->err, opt->tail_bytes) != 0) {
    free(st->image);
    gr_tail_cleanup(&st->out);
    return NULL;
  }
  job->n_stages++;
  return st;
}

/* Runs one parsed stage.  Returns true when the job may go on. */
static bool run_stage(stage_run_t *run, const gr_stage_t *stage,
                      const char *job_dir, size_t index) {
  gr_stage_outcome_t *out = run->stage;
  gr_process_spec_t spec = {0};
  gr_process_result_t result;
  gr_confine_t confine = {0};
  gr_argv_t argv;
  char why[512];
  bw_error_t error;
  int rc;

  gr_argv_init(&argv);
  rc = gr_runner_command(run->opt, stage, job_dir, run->container, &argv,
                         &error);
  if (rc == GR_RUNNER_NOTHING) {
    out->exit_code = 0;
    out->note = strdup("no entry_point: nothing to run");
    gr_argv_cleanup(&argv);
    return true;
  }
  if (rc < 0) {
    out->error = strdup(error.message);
    note_to_logs(run->job, "stage %zu: %s", index, error.message);
    gr_argv_cleanup(&argv);
    return false;
  }
  spec.argv = argv.v;
  spec.timeout_ms = stage->timeout_ms;
  spec.on_output = on_output;
  spec.output_arg = spec.abandon_arg = spec.kill_arg = spec.limit_arg = run;
  spec.should_abandon = should_abandon;
  spec.before_kill = before_kill;
  out->timeout_ms = stage->timeout_ms;
  if (stage->limits != NULL) {
    out->limited = true;
    out->limits = *stage->limits;
    spec.over_limit = over_limit;
    if (confine_stage(run, stage->limits, &confine, &error) != 0) {
      out->error = strdup(error.message);
      note_to_logs(run->job, "stage %zu: %s", index, error.message);
      gr_argv_cleanup(&argv);
      if (run->has_cgroup)
        gr_cgroup_destroy(&run->cgroup);
      return false;
    }
    if (run->opt->runner == GR_RUNNER_BWRAP)
      spec.confine = &confine;
  }
  rc = gr_process_run(&spec, &result, &error);
  gr_argv_cleanup(&argv);
  if (rc == 0)
    out->killed_by = stage_verdict(run, &result);
  if (run->has_cgroup)
    gr_cgroup_destroy(&run->cgroup);
  if (rc != 0) {
    snprintf(why, sizeof why, "cannot start %.300s: %.150s",
             run->opt->runner_bin, error.message);
    out->error = strdup(why);
    note_to_logs(run->job, "stage %zu: %s", index, why);
    return false;
  }
  out->exit_code = result.exit_code;
  out->timed_out = result.timed_out;
  out->duration_ms = result.duration_ms;
  if (result.abandoned)
    run->job->abandoned = true;
  if (result.timed_out && out->killed_by != GR_KILLED_CPU)
    out->killed_by = GR_KILLED_TIMEOUT;
  if (result.timed_out)
    note_to_logs(run->job, "stage %zu (%s) timed out after %d ms: killed",
                 index, stage->image, stage->timeout_ms);
  else if (out->killed_by != GR_KILLED_NONE && !result.abandoned)
    note_to_logs(run->job, "stage %zu (%s) stopped: over its %s limit", index,
                 stage->image, gr_killed_by_name(out->killed_by));
  return !result.abandoned && !result.timed_out &&
         out->killed_by == GR_KILLED_NONE && result.exit_code == 0;
}

/* Parses and runs stage `index`.  Returns true when the job may go on. */
static bool run_stage_at(const gr_options_t *opt, gr_session_t *session,
                         gr_job_outcome_t *job, const char *job_id,
                         gr_workdir_t *dir, json_object *json, size_t index) {
  stage_run_t run = {.opt = opt, .session = session, .job = job, .dir = dir};
  json_object *image = NULL;
  parsed_stage_t ps;
  bw_error_t error;
  bool go_on;

  if (json_object_is_type(json, json_type_object))
    json_object_object_get_ex(json, "image", &image);
  run.stage = add_stage(opt, job,
                        json_object_is_type(image, json_type_string)
                            ? json_object_get_string(image)
                            : "");
  if (run.stage == NULL)
    return false;
  snprintf(run.container, sizeof run.container, "broadway-%s-%zu-%d", job_id,
           index, (int)getpid());
  if (parse_stage(opt, json, &ps, &error) != 0) {
    char full[600];
    snprintf(full, sizeof full, "stages[%zu].%s", index, error.message);
    run.stage->error = strdup(full);
    note_to_logs(job, "%s", full);
    parsed_stage_cleanup(&ps);
    return false;
  }
  go_on = run_stage(&run, &ps.stage, dir->path, index);
  parsed_stage_cleanup(&ps);
  return go_on;
}

/* --- the job ----------------------------------------------------------- */

static int outcome_init(const gr_options_t *opt, gr_job_outcome_t *job) {
  memset(job, 0, sizeof *job);
  if (gr_tail_init(&job->log_out, opt->logs_bytes) != 0 ||
      gr_tail_init(&job->log_err, opt->logs_bytes) != 0)
    return BW_ENOMEM;
  return 0;
}

void gr_outcome_cleanup(gr_job_outcome_t *job) {
  size_t i;

  for (i = 0; i < job->n_stages; i++) {
    gr_stage_outcome_t *st = &job->stages[i];
    free(st->image);
    free(st->error);
    free(st->note);
    gr_tail_cleanup(&st->out);
    gr_tail_cleanup(&st->err);
  }
  free(job->stages);
  gr_tail_cleanup(&job->log_out);
  gr_tail_cleanup(&job->log_err);
  memset(job, 0, sizeof *job);
}

/* Returns 0, BW_ENOMEM or BW_ESYS (the reason in error). */
static int write_roster(const gr_workdir_t *dir, json_object *job,
                        bw_error_t *error) {
  json_object *students;
  const char *text;
  size_t len;

  if (!json_object_object_get_ex(job, "students", &students))
    return 0;
  text = json_object_to_json_string_length(
      students, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
  return text ? gr_workdir_write(dir, "roster.json", text, len, error)
              : bw_error_set(error, BW_ENOMEM, "out of memory");
}

/* Runs the stages in dir; returns true when all of them succeeded. */
static bool run_stages(const gr_options_t *opt, gr_session_t *session,
                       gr_job_outcome_t *job, const char *job_id,
                       gr_workdir_t *dir, json_object *stages) {
  size_t i, n;

  if (!json_object_is_type(stages, json_type_array) ||
      json_object_array_length(stages) == 0) {
    note_to_logs(job, "stages: expected a non-empty list");
    return false;
  }
  n = json_object_array_length(stages);
  for (i = 0; i < n && !job->abandoned; i++) {
    if (gr_session_stopping(session)) {
      job->abandoned = true;
      break;
    }
    if (!run_stage_at(opt, session, job, job_id, dir,
                      json_object_array_get_idx(stages, i), i))
      return false;
  }
  return !job->abandoned;
}

int gr_pipeline_run(const gr_options_t *opt, gr_session_t *session,
                    const char *job_id, json_object *job,
                    gr_job_outcome_t *outcome) {
  json_object *stages = NULL;
  gr_workdir_t dir;
  bw_error_t error;
  int rc;

  if ((rc = outcome_init(opt, outcome)) != 0)
    return rc;
  rc = gr_workdir_create(&dir, opt->work_dir, &error);
  if (rc != 0) {
    bw_log_error("job %s: cannot make a folder in %s: %s", job_id,
                 opt->work_dir, error.message);
    note_to_logs(outcome, "cannot make the job folder: %s", error.message);
    return rc;
  }
  /* /job is bounded before the roster goes in: it counts too. */
  rc = opt->bound_job ? gr_workdir_bound(&dir, opt->limits.disk, &error) : 0;
  if (rc != 0)
    note_to_logs(outcome, "cannot bound /job: %s", error.message);
  else if (write_roster(&dir, job, &error) != 0)
    note_to_logs(outcome, "cannot write /job/roster.json: %s", error.message);
  else {
    json_object_object_get_ex(job, "stages", &stages);
    outcome->success = run_stages(opt, session, outcome, job_id, &dir, stages);
  }
  if (gr_workdir_remove(&dir, &error) != 0)
    bw_log_warn("job %s: could not remove all of %s: %s", job_id, dir.path,
                error.message);
  return 0;
}

/* --- the result -------------------------------------------------------- */

static json_object *text_json(const gr_tail_t *tail, size_t max) {
  char *text = gr_tail_text(tail, max);
  json_object *json = text ? json_object_new_string(text) : NULL;

  free(text);
  return json;
}

static json_object *limits_json(const gr_limits_t *l) {
  json_object *json = json_object_new_object();

  json_object_object_add(json, "memory",
                         json_object_new_int64((int64_t)l->memory));
  json_object_object_add(json, "cpus", json_object_new_double(l->cpus));
  json_object_object_add(json, "pids", json_object_new_int64(l->pids));
  json_object_object_add(json, "disk", json_object_new_int64((int64_t)l->disk));
  json_object_object_add(json, "output",
                         json_object_new_int64((int64_t)l->output));
  return json;
}

static json_object *stage_json(const gr_stage_outcome_t *st, size_t max) {
  json_object *info = json_object_new_object();

  if (info == NULL)
    return NULL;
  json_object_object_add(info, "image", json_object_new_string(st->image));
  json_object_object_add(info, "exit_code", json_object_new_int(st->exit_code));
  json_object_object_add(info, "timed_out",
                         json_object_new_boolean(st->timed_out));
  json_object_object_add(info, "duration_ms",
                         json_object_new_int64(st->duration_ms));
  json_object_object_add(info, "stdout", text_json(&st->out, max));
  json_object_object_add(info, "stderr", text_json(&st->err, max));
  if (st->error != NULL)
    json_object_object_add(info, "error", json_object_new_string(st->error));
  if (st->note != NULL)
    json_object_object_add(info, "note", json_object_new_string(st->note));
  if (st->killed_by != GR_KILLED_NONE) {
    json_object_object_add(
        info, "killed_by",
        json_object_new_string(gr_killed_by_name(st->killed_by)));
    json_object_object_add(
        info, "limit",
        gr_killed_by_limit(st->killed_by, &st->limits, st->timeout_ms));
  }
  if (st->limited)
    json_object_object_add(info, "limits", limits_json(&st->limits));
  if (st->cpu_ms >= 0)
    json_object_object_add(info, "cpu_ms", json_object_new_int64(st->cpu_ms));
  if (st->memory_peak >= 0)
    json_object_object_add(info, "memory_peak",
                           json_object_new_int64(st->memory_peak));
  return info;
}

json_object *gr_outcome_result(const gr_job_outcome_t *job, size_t stage_max,
                               size_t log_max) {
  json_object *result = json_object_new_object();
  json_object *info = json_object_new_array();
  json_object *logs = json_object_new_object();
  size_t i;

  if (result == NULL || info == NULL || logs == NULL) {
    json_object_put(result);
    json_object_put(info);
    json_object_put(logs);
    return NULL;
  }
  for (i = 0; i < job->n_stages; i++)
    json_object_array_add(info, stage_json(&job->stages[i], stage_max));
  json_object_object_add(logs, "stdout", text_json(&job->log_out, log_max));
  json_object_object_add(logs, "stderr", text_json(&job->log_err, log_max));
  json_object_object_add(result, "success",
                         json_object_new_boolean(job->success));
  json_object_object_add(result, "info", info);
  json_object_object_add(result, "logs", logs);
  return result;
}
