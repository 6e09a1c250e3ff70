/* main.c - `broadway`, course staff's command: start and watch runs, see
 * why students failed, cancel, retry, and look at runs, graders and the
 * queue.  Options, then one function per command; the API client is
 * api.c, the progress display progress.c.  See broadway.1. */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "progress.h"

typedef struct cli {
  cli_api_t api;
  bool json, wait, all, failed;
  const char *state;
  double interval; /* --wait: seconds between lines when not a terminal */
  int lines;       /* failed: how many last lines of output */
  const char *args[4];
  int nargs;
} cli_t;

static const char usage[] =
    "usage: broadway [--api URL] [--json] COMMAND ...\n"
    "  run CONFIG.json [--wait] [--interval S]  create and start a run\n"
    "  status RUN                     state and job counts\n"
    "  failed RUN [--lines N]         each failed student: env, reason, "
    "output\n"
    "  logs JOB                       a job's stages and output\n"
    "  cancel RUN                     stop a run\n"
    "  retry RUN [--failed|--all]     grade failed (or all) students again\n"
    "  runs [--state S]               the latest runs\n"
    "  workers                        the graders\n"
    "  queue                          jobs waiting and running\n"
    "Environment: BROADWAY_API, BROADWAY_TOKEN (or api = / token = in\n"
    "$XDG_CONFIG_HOME/broadway/config).  See broadway(1).\n";

static double cli_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void cli_print_json(json_object *data) {
  printf("%s\n",
         json_object_to_json_string_ext(
             data, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
}

static const char *str(json_object *o, const char *key) {
  json_object *v;
  return json_object_object_get_ex(o, key, &v) && v ? json_object_get_string(v)
                                                    : "";
}

static int num(json_object *o, const char *key) {
  json_object *v;
  return json_object_object_get_ex(o, key, &v) ? json_object_get_int(v) : 0;
}

static bool is_id(const char *s) {
  if (strlen(s) != 24)
    return false;
  for (int i = 0; i < 24; i++)
    if (!strchr("0123456789abcdefABCDEF", s[i]))
      return false;
  return true;
}

/* The one argument of a command, checked to be an id. */
static int cli_id_arg(const cli_t *cli, const char *what, const char **id) {
  if (cli->nargs != 1) {
    fprintf(stderr, "broadway: expected one %s id\n%s", what, usage);
    return CLI_USAGE;
  }
  if (!is_id(cli->args[0])) {
    fprintf(stderr, "broadway: %s id: expected 24 hex digits, got \"%s\"\n",
            what, cli->args[0]);
    return CLI_USAGE;
  }
  *id = cli->args[0];
  return CLI_OK;
}

static int cli_get(const cli_t *cli, const char *fmt, const char *arg,
                   json_object **data) {
  char path[512];
  snprintf(path, sizeof path, fmt, arg);
  return cli_api_call(&cli->api, "GET", path, NULL, data, NULL);
}

/* Prints a read command's answer as a person reads it; arg is the id the
 * command was given (NULL for those that take none). */
typedef void cli_table_fn(json_object *data, const char *arg);

/* The one shape of the read commands: GET, then the answer as it came with
 * --json, else the command's table. */
static int cli_read(const cli_t *cli, const char *fmt, const char *arg,
                    cli_table_fn *table) {
  json_object *data = NULL;
  int rc = cli_get(cli, fmt, arg, &data);
  if (rc != CLI_OK)
    return rc;
  if (cli->json)
    cli_print_json(data);
  else
    table(data, arg);
  json_object_put(data);
  return CLI_OK;
}

/* ---- status and run --wait ---------------------------------------------- */

static cli_counts_t cli_counts(json_object *status) {
  json_object *c = json_object_object_get(status, "counts");
  cli_counts_t n = {0};
  n.succeeded = num(c, "succeeded");
  n.failed = num(c, "failed");
  n.running = num(c, "running");
  n.queued = num(c, "queued");
  n.cancelled = num(c, "cancelled");
  n.total = n.succeeded + n.failed + n.running + n.queued + n.cancelled +
            num(c, "created");
  return n;
}

static bool cli_finished(const char *state) {
  return strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0 ||
         strcmp(state, "cancelled") == 0;
}

static void status_table(json_object *data, const char *id) {
  cli_counts_t n = cli_counts(data);
  printf("run %s: %s\n", id, str(data, "state"));
  printf("  jobs %d: %d succeeded, %d failed, %d running, %d queued, "
         "%d cancelled\n",
         n.total, n.succeeded, n.failed, n.running, n.queued, n.cancelled);
  if (str(data, "created_at")[0])
    printf("  created %s", str(data, "created_at"));
  if (str(data, "finished_at")[0])
    printf("  finished %s", str(data, "finished_at"));
  printf("\n");
}

static int cmd_status(cli_t *cli) {
  const char *id;
  int rc = cli_id_arg(cli, "run", &id);
  if (rc != CLI_OK)
    return rc;
  return cli_read(cli, "/api/v1/grading_run/%s", id, status_table);
}

static volatile sig_atomic_t cli_stop;
static void cli_on_signal(int sig) {
  (void)sig;
  cli_stop = 1;
}

static int cli_term_width(void) {
  struct winsize ws;
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 60)
    return ws.ws_col;
  return 80;
}

/* Watches the run until it ends; returns CLI_OK if it succeeded. */
static int cli_wait(const cli_t *cli, const char *run) {
  bool tty = isatty(STDOUT_FILENO);
  cli_progress_t p = {cli_now(), -1};
  double last_line = 0;
  char text[512], state[32] = "";
  int rc = CLI_OK;

  signal(SIGINT, cli_on_signal);
  while (!cli_stop) {
    json_object *data = NULL;
    cli_counts_t n;
    double now = cli_now();
    if ((rc = cli_get(cli, "/api/v1/grading_run/%s", run, &data)) != CLI_OK)
      return rc;
    n = cli_counts(data);
    snprintf(state, sizeof state, "%s", str(data, "state"));
    json_object_put(data);
    if (p.done_at_start < 0)
      p.done_at_start = n.succeeded + n.failed + n.cancelled;
    if (tty) {
      int width = cli_term_width() - 75;
      cli_progress_bar(&p, &n, state, now, width < 10 ? 10 : width, text,
                       sizeof text);
      printf("\r%s\033[K", text);
      fflush(stdout);
    } else if (cli_finished(state) || now - last_line >= cli->interval) {
      cli_progress_line(&p, &n, state, now, text, sizeof text);
      printf("%s\n", text);
      fflush(stdout);
      last_line = now;
    }
    if (cli_finished(state))
      break;
    usleep(tty ? 500000 : 1000000);
  }
  if (tty)
    printf("\n");
  if (cli_stop) {
    fprintf(stderr,
            "broadway: stopped watching; run %s goes on (broadway "
            "cancel %s stops it)\n",
            run, run);
    return CLI_RUN_FAILED;
  }
  printf("run %s %s\n", run, state);
  return strcmp(state, "succeeded") == 0 ? CLI_OK : CLI_RUN_FAILED;
}

static char *cli_read_file(const char *path) {
  FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
  char *text = NULL;
  size_t len = 0, cap = 0, got;

  if (f == NULL)
    return NULL;
  do {
    if (len + 4096 + 1 > cap) {
      char *grown = realloc(text, cap = cap * 2 + 8192);
      if (grown == NULL)
        break;
      text = grown;
    }
    got = fread(text + len, 1, cap - len - 1, f);
    len += got;
  } while (got > 0);
  if (text)
    text[len] = '\0';
  if (f != stdin)
    fclose(f);
  return text;
}

static int cmd_run(cli_t *cli) {
  json_object *data = NULL, *none = NULL;
  char run[25], path[128], *body;
  int rc;

  if (cli->nargs != 1) {
    fprintf(stderr, "broadway: run: expected one CONFIG.json\n%s", usage);
    return CLI_USAGE;
  }
  if ((body = cli_read_file(cli->args[0])) == NULL) {
    fprintf(stderr, "broadway: run: cannot read %s\n", cli->args[0]);
    return CLI_USAGE;
  }
  rc =
      cli_api_call(&cli->api, "POST", "/api/v1/grading_run", body, &data, NULL);
  free(body);
  if (rc != CLI_OK)
    return rc;
  snprintf(run, sizeof run, "%s", str(data, "grading_run_id"));
  json_object_put(data);
  /* The id first: whatever happens next, the run can be found. */
  printf("%s\n", run);
  fflush(stdout);
  snprintf(path, sizeof path, "/api/v1/grading_run/%s", run);
  rc = cli_api_call(&cli->api, "POST", path, NULL, &none, NULL);
  json_object_put(none);
  if (rc != CLI_OK || !cli->wait)
    return rc;
  return cli_wait(cli, run);
}

/* ---- failed and logs ---------------------------------------------------- */

/* The last `lines` lines of text, into out (a new json string). */
static json_object *cli_tail(const char *text, int lines) {
  const char *p = text + strlen(text);
  int seen = 0;
  if (p > text && p[-1] == '\n')
    p--;
  while (p > text) {
    if (p[-1] == '\n' && ++seen == lines)
      break;
    p--;
  }
  return json_object_new_string(p);
}

/* What the job printed last: its logs, else its last stage's output. */
static json_object *cli_job_output(json_object *job, int lines) {
  json_object *info = json_object_object_get(job, "info"), *last;
  char both[65536];
  const char *logs = str(job, "logs");
  size_t n = json_object_is_type(info, json_type_array)
                 ? json_object_array_length(info)
                 : 0;

  /* Graders send logs as {"stdout", "stderr"}; older ones as text. */
  if (n == 0 && json_object_is_type(json_object_object_get(job, "logs"),
                                    json_type_string))
    return cli_tail(logs, lines);
  if (n == 0)
    return json_object_new_string("");
  last = json_object_array_get_idx(info, n - 1);
  snprintf(both, sizeof both, "%s%s%s", str(last, "stdout"),
           str(last, "stderr")[0] ? "\n" : "", str(last, "stderr"));
  return cli_tail(both, lines);
}

static json_object *cli_failed_entry(const cli_t *cli, json_object *job) {
  json_object *entry = json_object_new_object(), *full = NULL;
  const char *id = str(job, "job_id");

  json_object_object_add(entry, "job_id", json_object_new_string(id));
  json_object_object_add(entry, "type",
                         json_object_new_string(str(job, "type")));
  json_object_object_add(
      entry, "student",
      json_object_get(json_object_object_get(job, "student")));
  json_object_object_add(entry, "reason",
                         json_object_new_string(str(job, "reason")));
  if (cli_get(cli, "/api/v1/grading_job/%s", id, &full) == CLI_OK) {
    json_object_object_add(entry, "output", cli_job_output(full, cli->lines));
    if (!str(job, "reason")[0]) {
      json_object *info = json_object_object_get(full, "info"), *last;
      size_t n = json_object_is_type(info, json_type_array)
                     ? json_object_array_length(info)
                     : 0;
      char why[128];
      if (n > 0) {
        last = json_object_array_get_idx(info, n - 1);
        snprintf(why, sizeof why, "stage %zu (%s) exited %s", n - 1,
                 str(last, "image"), str(last, "exit_code"));
        json_object_object_add(entry, "reason", json_object_new_string(why));
      }
    }
  }
  json_object_put(full);
  return entry;
}

static void cli_print_failed(json_object *e) {
  printf("== %s %s  %s\n", str(e, "type"), str(e, "job_id"),
         json_object_to_json_string_ext(json_object_object_get(e, "student"),
                                        JSON_C_TO_STRING_PLAIN));
  printf("   reason: %s\n", str(e, "reason")[0] ? str(e, "reason") : "?");
  if (str(e, "output")[0]) {
    const char *p = str(e, "output");
    printf("   output:\n");
    while (*p) {
      size_t len = strcspn(p, "\n");
      printf("     | %.*s\n", (int)len, p);
      p += len + (p[len] == '\n');
    }
  }
}

static int cmd_failed(cli_t *cli) {
  json_object *data = NULL, *jobs, *out = json_object_new_array();
  const char *id;
  int rc = cli_id_arg(cli, "run", &id);

  if (rc == CLI_OK)
    rc = cli_get(cli, "/api/v1/grading_run/%s", id, &data);
  if (rc != CLI_OK) {
    json_object_put(out);
    return rc;
  }
  jobs = json_object_object_get(data, "jobs");
  for (size_t i = 0; i < json_object_array_length(jobs); i++) {
    json_object *job = json_object_array_get_idx(jobs, i);
    if (strcmp(str(job, "state"), "failed") == 0)
      json_object_array_add(out, cli_failed_entry(cli, job));
  }
  if (cli->json)
    cli_print_json(out);
  else if (json_object_array_length(out) == 0)
    printf("run %s: no failed jobs\n", id);
  for (size_t i = 0; !cli->json && i < json_object_array_length(out); i++)
    cli_print_failed(json_object_array_get_idx(out, i));
  json_object_put(out);
  json_object_put(data);
  return CLI_OK;
}

static void logs_table(json_object *job, const char *id) {
  json_object *info;
  printf("job %s (%s) %s, attempt %s%s%s\n", id, str(job, "type"),
         str(job, "state"), str(job, "attempts"),
         str(job, "reason")[0] ? ": " : "", str(job, "reason"));
  info = json_object_object_get(job, "info");
  for (size_t i = 0; i < json_object_array_length(info); i++) {
    json_object *s = json_object_array_get_idx(info, i);
    printf("-- stage %zu: %s  exit %s  %s ms%s%s\n", i, str(s, "image"),
           str(s, "exit_code"), str(s, "duration_ms"),
           str(s, "killed_by")[0] ? "  killed_by " : "", str(s, "killed_by"));
    if (str(s, "stdout")[0])
      printf("%s%s", str(s, "stdout"),
             str(s, "stdout")[strlen(str(s, "stdout")) - 1] == '\n' ? ""
                                                                    : "\n");
    if (str(s, "stderr")[0])
      printf("[stderr]\n%s\n", str(s, "stderr"));
  }
  if (json_object_array_length(info) == 0 && str(job, "logs")[0])
    printf("-- logs\n%s\n", str(job, "logs"));
}

static int cmd_logs(cli_t *cli) {
  const char *id;
  int rc = cli_id_arg(cli, "job", &id);
  if (rc != CLI_OK)
    return rc;
  return cli_read(cli, "/api/v1/grading_job/%s", id, logs_table);
}

/* ---- cancel, retry ------------------------------------------------------ */

static int cmd_cancel(cli_t *cli) {
  json_object *data = NULL;
  char path[128];
  const char *id;
  int rc = cli_id_arg(cli, "run", &id);
  if (rc != CLI_OK)
    return rc;
  snprintf(path, sizeof path, "/api/v1/grading_run_cancel/%s", id);
  rc = cli_api_call(&cli->api, "POST", path, NULL, &data, NULL);
  json_object_put(data);
  if (rc == CLI_OK)
    printf("run %s cancelled: queued jobs dropped, running ones finish\n", id);
  return rc;
}

static int cmd_retry(cli_t *cli) {
  json_object *data = NULL;
  char path[160];
  const char *id;
  int rc = cli_id_arg(cli, "run", &id);
  if (rc != CLI_OK)
    return rc;
  snprintf(path, sizeof path, "/api/v1/grading_run_retry/%s?jobs=%s", id,
           cli->all ? "all" : "failed");
  rc = cli_api_call(&cli->api, "POST", path, NULL, &data, NULL);
  if (rc == CLI_OK && cli->json)
    cli_print_json(data);
  else if (rc == CLI_OK)
    printf("run %s: %d job(s) queued again (round %d)\n", id,
           num(data, "retried"), num(data, "round"));
  json_object_put(data);
  return rc;
}

/* ---- runs, workers, queue ----------------------------------------------- */

static void runs_table(json_object *data, const char *unused) {
  json_object *runs = json_object_object_get(data, "runs");
  (void)unused;
  printf("%-24s  %-15s  %5s  %5s  %5s  %s\n", "RUN", "STATE", "DONE", "FAIL",
         "JOBS", "CREATED");
  for (size_t i = 0; i < json_object_array_length(runs); i++) {
    json_object *r = json_object_array_get_idx(runs, i);
    cli_counts_t n = cli_counts(r);
    printf("%-24s  %-15s  %5d  %5d  %5d  %s\n", str(r, "grading_run_id"),
           str(r, "state"), n.succeeded + n.failed + n.cancelled, n.failed,
           n.total, str(r, "created_at"));
  }
  printf("(%zu of %d)\n", json_object_array_length(runs), num(data, "total"));
}

static int cmd_runs(cli_t *cli) {
  char query[128];
  snprintf(query, sizeof query, "/api/v1/grading_runs?counts=1&limit=50%s%s",
           cli->state ? "&state=" : "", cli->state ? cli->state : "");
  return cli_read(cli, "%s", query, runs_table);
}

static void workers_table(json_object *data, const char *unused) {
  json_object *list = json_object_object_get(data, "workers");
  (void)unused;
  printf("%-24s  %-20s  %-5s  %4s  %5s  %s\n", "WORKER", "HOSTNAME", "ALIVE",
         "JOBS", "DONE", "LAST SEEN");
  for (size_t i = 0; i < json_object_array_length(list); i++) {
    json_object *w = json_object_array_get_idx(list, i);
    printf("%-24s  %-20s  %-5s  %4zu  %5d  %s\n", str(w, "worker_id"),
           str(w, "hostname"), str(w, "alive"),
           json_object_array_length(json_object_object_get(w, "jobs")),
           num(w, "jobs_done"), str(w, "last_seen"));
  }
  printf("%d alive, %d dead\n", num(data, "alive"), num(data, "dead"));
}

static int cmd_workers(cli_t *cli) {
  return cli_read(cli, "/api/v1/workers", NULL, workers_table);
}

static void queue_table(json_object *data, const char *unused) {
  json_object *runs;
  (void)unused;
  printf("%d waiting, %d running, oldest waiting %.1f s\n",
         num(data, "waiting"), num(data, "running"),
         json_object_get_double(json_object_object_get(data, "oldest_wait_s")));
  runs = json_object_object_get(data, "runs");
  for (size_t i = 0; i < json_object_array_length(runs); i++) {
    json_object *r = json_object_array_get_idx(runs, i);
    printf("  run %s: %d waiting, %d running\n", str(r, "grading_run_id"),
           num(r, "waiting"), num(r, "running"));
  }
}

static int cmd_queue(cli_t *cli) {
  return cli_read(cli, "/api/v1/queue", NULL, queue_table);
}

/* ---- options ------------------------------------------------------------ */

static const struct {
  const char *name;
  int (*fn)(cli_t *);
} commands[] = {
    {"run", cmd_run},   {"status", cmd_status},   {"failed", cmd_failed},
    {"logs", cmd_logs}, {"cancel", cmd_cancel},   {"retry", cmd_retry},
    {"runs", cmd_runs}, {"workers", cmd_workers}, {"queue", cmd_queue}};

/* Options may come anywhere; what is left are the command and its args. */
static int cli_parse(cli_t *cli, int argc, char **argv, const char **command,
                     const char **url, const char **token) {
  *command = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
    bool takes = strcmp(a, "--api") == 0 || strcmp(a, "--token") == 0 ||
                 strcmp(a, "--state") == 0 || strcmp(a, "--interval") == 0 ||
                 strcmp(a, "--lines") == 0;
    if (takes && next == NULL) {
      fprintf(stderr, "broadway: %s needs a value\n", a);
      return CLI_USAGE;
    }
    if (strcmp(a, "--json") == 0)
      cli->json = true;
    else if (strcmp(a, "--wait") == 0)
      cli->wait = true;
    else if (strcmp(a, "--all") == 0)
      cli->all = true;
    else if (strcmp(a, "--failed") == 0)
      cli->failed = true;
    else if (strcmp(a, "--api") == 0)
      *url = argv[++i];
    else if (strcmp(a, "--token") == 0)
      *token = argv[++i];
    else if (strcmp(a, "--state") == 0)
      cli->state = argv[++i];
    else if (strcmp(a, "--interval") == 0)
      cli->interval = atof(argv[++i]);
    else if (strcmp(a, "--lines") == 0)
      cli->lines = atoi(argv[++i]);
    else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs(usage, stdout);
      exit(0);
    } else if (a[0] == '-' && a[1] != '\0') {
      fprintf(stderr, "broadway: unknown option %s\n%s", a, usage);
      return CLI_USAGE;
    } else if (*command == NULL)
      *command = a;
    else if (cli->nargs < 4)
      cli->args[cli->nargs++] = a;
  }
  if (cli->all && cli->failed) {
    fprintf(stderr, "broadway: retry: --failed and --all exclude each other\n");
    return CLI_USAGE;
  }
  return CLI_OK;
}

int main(int argc, char **argv) {
  cli_t cli = {.interval = 10, .lines = 10};
  const char *command = NULL, *url = NULL, *token = NULL;
  int rc = cli_parse(&cli, argc, argv, &command, &url, &token);

  if (rc != CLI_OK)
    return rc;
  if (command == NULL) {
    fputs(usage, stderr);
    return CLI_USAGE;
  }
  if (cli.interval <= 0 || cli.lines <= 0) {
    fprintf(stderr, "broadway: --interval and --lines must be positive\n");
    return CLI_USAGE;
  }
  if ((rc = cli_api_init(&cli.api, url, token)) != CLI_OK)
    return rc;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  rc = -1;
  for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
    if (strcmp(command, commands[i].name) == 0)
      rc = commands[i].fn(&cli);
  if (rc == -1) {
    fprintf(stderr, "broadway: unknown command \"%s\"\n%s", command, usage);
    rc = CLI_USAGE;
  }
  curl_global_cleanup();
  return rc;
}
