#include "options.h"

#include <errno.h>
#include <json-c/json.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "validate.h"
#include "version.h"

static const char usage_text[] =
    "usage: broadway-grader [options]\n"
    "Registers with a Broadway API, polls it for grading jobs and runs them.\n"
    "Every option can also be given by the environment variable shown.\n"
    "  --api URL           BROADWAY_API     API base URL "
    "(http://127.0.0.1:1470)\n"
    "  --token TOKEN       BROADWAY_TOKEN   cluster token (prefer the "
    "variable:\n"
    "                                       flags are visible in ps)\n"
    "  --token-file PATH   BROADWAY_TOKEN_FILE  read the token from a file\n"
    "                                       (default $BROADWAY_DATA/token, "
    "var/token)\n"
    "  --runner NAME       BROADWAY_RUNNER  docker (default) or bwrap\n"
    "  --images DIR        BROADWAY_IMAGES  bwrap: image NAME is the root\n"
    "                                       filesystem DIR/NAME\n"
    "  --slots N           BROADWAY_SLOTS   jobs run at once (1)\n"
    "  --tail-bytes N      BROADWAY_TAIL_BYTES  kept per stage stdout/stderr\n"
    "                                       (65536; k/m suffixes)\n"
    "  --logs-bytes N      BROADWAY_LOGS_BYTES  kept per job stdout/stderr\n"
    "                                       (1m)\n"
    "  --hostname NAME     BROADWAY_HOSTNAME  name sent at registration\n"
    "  --work-dir DIR      BROADWAY_WORK_DIR  where job folders are made\n"
    "                                       ($TMPDIR or /tmp)\n"
    "Limits of each stage (the stage's own when lower; k/m/g suffixes):\n"
    "  --memory SIZE       BROADWAY_MEMORY  RAM, no swap (1g)\n"
    "  --cpus N            BROADWAY_CPUS    CPUs, fractions allowed (1)\n"
    "  --pids N            BROADWAY_PIDS    processes and threads (256)\n"
    "  --disk SIZE         BROADWAY_DISK    size of /job (1g)\n"
    "  --output SIZE       BROADWAY_OUTPUT  stdout+stderr before the stage "
    "is\n"
    "                                       stopped (64m)\n"
    "  --limits on|off     BROADWAY_LIMITS  off: do not enforce them (for "
    "hosts\n"
    "                                       without cgroups; the grader "
    "refuses\n"
    "                                       to start when on and it cannot)\n"
    "  --ca-file PATH      BROADWAY_CA_FILE  CA certificates (PEM) to check\n"
    "                                       an https:// API against (a self-\n"
    "                                       signed one: its own certificate)\n"
    "  --version, --help\n"
    "SIGTERM, SIGINT or SIGHUP: stop polling, abandon running jobs (the\n"
    "API's reaper re-queues them), exit 0.  "
    "BROADWAY_LOG=debug|info|warn|error.\n";

enum {
  OPT_API = 1,
  OPT_TOKEN,
  OPT_TOKEN_FILE,
  OPT_RUNNER,
  OPT_IMAGES,
  OPT_SLOTS,
  OPT_TAIL,
  OPT_LOGS,
  OPT_HOSTNAME,
  OPT_WORK_DIR,
  OPT_MEMORY,
  OPT_CPUS,
  OPT_PIDS,
  OPT_DISK,
  OPT_OUTPUT,
  OPT_LIMITS,
  OPT_CA_FILE,
  OPT_HELP,
  OPT_VERSION
};

/* The raw strings, flag over variable, before they are checked. */
typedef struct raw_options {
  const char *api, *token, *token_file, *runner, *images, *slots, *tail, *logs,
      *hostname, *work_dir, *memory, *cpus, *pids, *disk, *output, *limits,
      *ca_file;
} raw_options_t;

/* Returns 0 or BW_ETOOBIG (printed). */
static int copy_string(char *dst, size_t cap, const char *src,
                       const char *what) {
  if (strlen(src) >= cap) {
    fprintf(stderr, "broadway-grader: %s: too long\n", what);
    return BW_ETOOBIG;
  }
  strcpy(dst, src);
  return 0;
}

/* "65536", "64k", "1m": bytes.  Returns BW_EINVAL on anything else. */
static int parse_size(const char *text, size_t *out) {
  char *end;
  unsigned long long n;

  errno = 0;
  n = strtoull(text, &end, 10);
  if (errno != 0 || end == text || text[0] == '-')
    return BW_EINVAL;
  if (*end == 'k' || *end == 'K')
    n *= 1024, end++;
  else if (*end == 'm' || *end == 'M')
    n *= 1024 * 1024, end++;
  if (*end != '\0' || n > (1ULL << 32))
    return BW_EINVAL;
  *out = (size_t)n;
  return 0;
}

static int parse_slots(const char *text, int *out) {
  char *end;
  long n;

  errno = 0;
  n = strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || n < 1 || n > 1024)
    return BW_EINVAL;
  *out = (int)n;
  return 0;
}

/* Searches PATH like a shell, so the grader fails at start, not per job,
 * when the runner is not installed.  Returns 0 or BW_ENOTFOUND. */
static int find_in_path(const char *name, char *out, size_t cap) {
  const char *path = getenv("PATH");
  const char *p = path ? path : "/usr/local/bin:/usr/bin:/bin";

  while (*p != '\0') {
    size_t len = strcspn(p, ":");
    int n = snprintf(out, cap, "%.*s/%s", (int)len, p, name);
    if (len > 0 && n > 0 && (size_t)n < cap && access(out, X_OK) == 0)
      return 0;
    p += len;
    if (*p == ':')
      p++;
  }
  return BW_ENOTFOUND;
}

/* Returns 0, BW_ESYS when it cannot be read (printed if `required`) or
 * BW_EINVAL when it is empty. */
static int read_token_file(const char *path, char *out, size_t cap,
                           int required) {
  FILE *f = fopen(path, "r");
  size_t n;

  if (f == NULL) {
    if (required)
      fprintf(stderr, "broadway-grader: token file %s: %s\n", path,
              strerror(errno));
    return BW_ESYS;
  }
  n = fread(out, 1, cap - 1, f);
  fclose(f);
  out[n] = '\0';
  out[strcspn(out, "\r\n")] = '\0';
  return out[0] != '\0' ? 0 : BW_EINVAL;
}

static int load_token(gr_options_t *opt, const raw_options_t *raw) {
  char path[PATH_MAX];
  const char *data = getenv("BROADWAY_DATA");

  if (raw->token != NULL)
    return copy_string(opt->token, sizeof opt->token, raw->token, "token");
  if (raw->token_file != NULL)
    return read_token_file(raw->token_file, opt->token, sizeof opt->token, 1);
  /* Next to `make run`, the service keeps its token in <data>/token. */
  snprintf(path, sizeof path, "%s/token", data ? data : "var");
  if (read_token_file(path, opt->token, sizeof opt->token, 0) == 0)
    return 0;
  fprintf(stderr, "broadway-grader: no token: set BROADWAY_TOKEN or "
                  "--token-file\n");
  return BW_ENOTFOUND;
}

static int load_runner(gr_options_t *opt, const raw_options_t *raw) {
  const char *name = raw->runner ? raw->runner : "docker";
  struct stat st;

  if (strcmp(name, "docker") == 0)
    opt->runner = GR_RUNNER_DOCKER;
  else if (strcmp(name, "bwrap") == 0)
    opt->runner = GR_RUNNER_BWRAP;
  else {
    fprintf(stderr, "broadway-grader: runner: expected docker or bwrap\n");
    return BW_EINVAL;
  }
  if (find_in_path(name, opt->runner_bin, sizeof opt->runner_bin) != 0) {
    fprintf(stderr, "broadway-grader: runner %s: not found in PATH\n", name);
    return BW_ENOTFOUND;
  }
  if (opt->runner != GR_RUNNER_BWRAP)
    return 0;
  if (raw->images == NULL || raw->images[0] == '\0') {
    fprintf(stderr, "broadway-grader: the bwrap runner needs "
                    "BROADWAY_IMAGES (or --images)\n");
    return BW_EINVAL;
  }
  if (stat(raw->images, &st) != 0 || !S_ISDIR(st.st_mode)) {
    fprintf(stderr, "broadway-grader: images: %s is not a directory\n",
            raw->images);
    return BW_EINVAL;
  }
  return copy_string(opt->images, sizeof opt->images, raw->images, "images");
}

static int load_work_dir(gr_options_t *opt, const raw_options_t *raw) {
  const char *dir = raw->work_dir ? raw->work_dir : getenv("TMPDIR");
  struct stat st;

  if (dir == NULL || dir[0] == '\0')
    dir = "/tmp";
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
    fprintf(stderr, "broadway-grader: work dir %s is not a directory\n", dir);
    return BW_EINVAL;
  }
  /* docker -v SRC:DST splits on ':'; a job folder must not contain one. */
  if (opt->runner == GR_RUNNER_DOCKER && strchr(dir, ':') != NULL) {
    fprintf(stderr, "broadway-grader: work dir: ':' not allowed\n");
    return BW_EINVAL;
  }
  return copy_string(opt->work_dir, sizeof opt->work_dir, dir, "work dir");
}

static int load_numbers(gr_options_t *opt, const raw_options_t *raw) {
  opt->slots = 1;
  opt->tail_bytes = 64 * 1024;
  opt->logs_bytes = 1024 * 1024;
  if (raw->slots && parse_slots(raw->slots, &opt->slots) != 0) {
    fprintf(stderr, "broadway-grader: slots: expected 1 to 1024\n");
    return BW_EINVAL;
  }
  if (raw->tail && parse_size(raw->tail, &opt->tail_bytes) != 0) {
    fprintf(stderr, "broadway-grader: tail bytes: expected a size\n");
    return BW_EINVAL;
  }
  if (raw->logs && parse_size(raw->logs, &opt->logs_bytes) != 0) {
    fprintf(stderr, "broadway-grader: logs bytes: expected a size\n");
    return BW_EINVAL;
  }
  return 0;
}

/* A size as a stage writes it ("512m", bytes), > 0. */
static int parse_limit_size(const char *text, uint64_t *out) {
  json_object *value = json_object_new_string(text);
  bool ok = value != NULL && bw_validate_size(value, out) && *out > 0;

  json_object_put(value);
  return ok ? 0 : BW_EINVAL;
}

static int parse_number(const char *text, double min, double max, double *out) {
  char *end;

  errno = 0;
  *out = strtod(text, &end);
  return errno == 0 && end != text && *end == '\0' && *out >= min && *out <= max
             ? 0
             : BW_EINVAL;
}

static int load_limits(gr_options_t *opt, const raw_options_t *raw) {
  double pids;
  const char *bad = NULL;

  gr_limits_default(&opt->limits);
  opt->enforce = true;
  if (raw->memory && parse_limit_size(raw->memory, &opt->limits.memory) != 0)
    bad = "memory: expected a size such as 512m";
  else if (raw->cpus &&
           parse_number(raw->cpus, 0.01, 1024, &opt->limits.cpus) != 0)
    bad = "cpus: expected a number from 0.01 to 1024";
  else if (raw->pids && parse_number(raw->pids, 4, 1 << 22, &pids) != 0)
    bad = "pids: expected a number from 4";
  else if (raw->disk && parse_limit_size(raw->disk, &opt->limits.disk) != 0)
    bad = "disk: expected a size such as 1g";
  else if (raw->output &&
           parse_limit_size(raw->output, &opt->limits.output) != 0)
    bad = "output: expected a size such as 64m";
  else if (raw->limits && strcmp(raw->limits, "on") != 0 &&
           strcmp(raw->limits, "off") != 0)
    bad = "limits: expected on or off";
  if (bad != NULL) {
    fprintf(stderr, "broadway-grader: %s\n", bad);
    return BW_EINVAL;
  }
  if (raw->pids)
    opt->limits.pids = (long)pids;
  opt->enforce = raw->limits == NULL || strcmp(raw->limits, "on") == 0;
  return 0;
}

static int load_hostname(gr_options_t *opt, const raw_options_t *raw) {
  if (raw->hostname != NULL)
    return copy_string(opt->hostname, sizeof opt->hostname, raw->hostname,
                       "hostname");
  if (gethostname(opt->hostname, sizeof opt->hostname - 1) != 0)
    strcpy(opt->hostname, "unknown");
  opt->hostname[sizeof opt->hostname - 1] = '\0';
  return 0;
}

static int load_api(gr_options_t *opt, const raw_options_t *raw) {
  const char *api = raw->api ? raw->api : "http://127.0.0.1:1470";
  size_t len;
  int rc;

  if (strncmp(api, "http://", 7) != 0 && strncmp(api, "https://", 8) != 0) {
    fprintf(stderr, "broadway-grader: api: expected an http(s):// URL\n");
    return BW_EINVAL;
  }
  if ((rc = copy_string(opt->api, sizeof opt->api, api, "api")) != 0)
    return rc;
  len = strlen(opt->api);
  while (len > 0 && opt->api[len - 1] == '/')
    opt->api[--len] = '\0';
  return 0;
}

static int load_ca_file(gr_options_t *opt, const raw_options_t *raw) {
  if (raw->ca_file == NULL || raw->ca_file[0] == '\0')
    return 0;
  if (access(raw->ca_file, R_OK) != 0) {
    fprintf(stderr, "broadway-grader: ca file: cannot read %s: %s\n",
            raw->ca_file, strerror(errno));
    return BW_ESYS;
  }
  return copy_string(opt->ca_file, sizeof opt->ca_file, raw->ca_file,
                     "ca file");
}

static void raw_from_env(raw_options_t *raw) {
  raw->api = getenv("BROADWAY_API");
  raw->token = getenv("BROADWAY_TOKEN");
  raw->token_file = getenv("BROADWAY_TOKEN_FILE");
  raw->runner = getenv("BROADWAY_RUNNER");
  raw->images = getenv("BROADWAY_IMAGES");
  raw->slots = getenv("BROADWAY_SLOTS");
  raw->tail = getenv("BROADWAY_TAIL_BYTES");
  raw->logs = getenv("BROADWAY_LOGS_BYTES");
  raw->hostname = getenv("BROADWAY_HOSTNAME");
  raw->work_dir = getenv("BROADWAY_WORK_DIR");
  raw->memory = getenv("BROADWAY_MEMORY");
  raw->cpus = getenv("BROADWAY_CPUS");
  raw->pids = getenv("BROADWAY_PIDS");
  raw->disk = getenv("BROADWAY_DISK");
  raw->output = getenv("BROADWAY_OUTPUT");
  raw->limits = getenv("BROADWAY_LIMITS");
  raw->ca_file = getenv("BROADWAY_CA_FILE");
  if (raw->token != NULL && raw->token[0] == '\0')
    raw->token = NULL;
}

/* Returns 0, 1 for --help, BW_EINVAL for a bad flag. */
static int raw_from_argv(raw_options_t *raw, int argc, char **argv) {
  static const struct option longopts[] = {
      {"api", required_argument, NULL, OPT_API},
      {"token", required_argument, NULL, OPT_TOKEN},
      {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
      {"runner", required_argument, NULL, OPT_RUNNER},
      {"images", required_argument, NULL, OPT_IMAGES},
      {"slots", required_argument, NULL, OPT_SLOTS},
      {"tail-bytes", required_argument, NULL, OPT_TAIL},
      {"logs-bytes", required_argument, NULL, OPT_LOGS},
      {"hostname", required_argument, NULL, OPT_HOSTNAME},
      {"work-dir", required_argument, NULL, OPT_WORK_DIR},
      {"memory", required_argument, NULL, OPT_MEMORY},
      {"cpus", required_argument, NULL, OPT_CPUS},
      {"pids", required_argument, NULL, OPT_PIDS},
      {"disk", required_argument, NULL, OPT_DISK},
      {"output", required_argument, NULL, OPT_OUTPUT},
      {"limits", required_argument, NULL, OPT_LIMITS},
      {"ca-file", required_argument, NULL, OPT_CA_FILE},
      {"help", no_argument, NULL, OPT_HELP},
      {"version", no_argument, NULL, OPT_VERSION},
      {NULL, 0, NULL, 0}};
  const char **slot[] = {[OPT_API] = &raw->api,
                         [OPT_TOKEN] = &raw->token,
                         [OPT_TOKEN_FILE] = &raw->token_file,
                         [OPT_RUNNER] = &raw->runner,
                         [OPT_IMAGES] = &raw->images,
                         [OPT_SLOTS] = &raw->slots,
                         [OPT_TAIL] = &raw->tail,
                         [OPT_LOGS] = &raw->logs,
                         [OPT_HOSTNAME] = &raw->hostname,
                         [OPT_WORK_DIR] = &raw->work_dir,
                         [OPT_MEMORY] = &raw->memory,
                         [OPT_CPUS] = &raw->cpus,
                         [OPT_PIDS] = &raw->pids,
                         [OPT_DISK] = &raw->disk,
                         [OPT_OUTPUT] = &raw->output,
                         [OPT_LIMITS] = &raw->limits,
                         [OPT_CA_FILE] = &raw->ca_file};
  int c;

  optind = 1;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    if (c == OPT_HELP) {
      fputs(usage_text, stdout);
      return 1;
    }
    if (c == OPT_VERSION) {
      printf("broadway-grader %s\n", BW_VERSION);
      return 1;
    }
    if (c < OPT_API || c > OPT_CA_FILE) {
      fputs(usage_text, stderr);
      return BW_EINVAL;
    }
    *slot[c] = optarg;
  }
  if (optind < argc) {
    fprintf(stderr, "broadway-grader: unexpected argument %s\n", argv[optind]);
    return BW_EINVAL;
  }
  return 0;
}

int gr_options_load(gr_options_t *opt, int argc, char **argv) {
  raw_options_t raw;
  int rc;

  memset(opt, 0, sizeof *opt);
  raw_from_env(&raw);
  rc = raw_from_argv(&raw, argc, argv);
  if (rc != 0)
    return rc;
  if ((rc = load_api(opt, &raw)) != 0 || (rc = load_token(opt, &raw)) != 0 ||
      (rc = load_runner(opt, &raw)) != 0 ||
      (rc = load_work_dir(opt, &raw)) != 0 ||
      (rc = load_numbers(opt, &raw)) != 0 ||
      (rc = load_limits(opt, &raw)) != 0 ||
      (rc = load_hostname(opt, &raw)) != 0 ||
      (rc = load_ca_file(opt, &raw)) != 0)
    return rc;
  return 0;
}

const char *gr_options_runner_name(int runner) {
  return runner == GR_RUNNER_BWRAP ? "bwrap" : "docker";
}
