#include "config.h"
#include "text.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void bw_config_init(bw_config_t *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->port = 1470;
  snprintf(cfg->listen_host, sizeof cfg->listen_host, "127.0.0.1");
  snprintf(cfg->data_dir, sizeof cfg->data_dir, "var");
  snprintf(cfg->db_name, sizeof cfg->db_name, "broadway");
  snprintf(cfg->socket_path, sizeof cfg->socket_path, "var/run/fcgi.sock");
  cfg->workers = 4;
  cfg->listen_mode = 0600;
  cfg->stop_timeout = 10;
  cfg->reaper_timeout_ms = 60000;

  cfg->heartbeat = 10;
  cfg->queue_empty_code = 498;
  cfg->max_attempts = 3;
  cfg->claim_grace = 60;
  cfg->default_timeout = 30;
  cfg->max_timeout = 86400;
  cfg->db_timeout_ms = 5000;
  cfg->queue_partitions = 16;
  cfg->forget_workers = 86400;
  cfg->poll_wait = 18;
  cfg->stream_keepalive = 20;
  cfg->keep_output = 0;

  cfg->max_body = (size_t)64 << 20;
  cfg->max_students = 100000;
  cfg->max_stages = 64;
  cfg->max_env = 1024;
  cfg->max_env_name = 256;
  cfg->max_env_value = 65536;
  cfg->max_string = 4096;
  cfg->max_info_bytes = (size_t)4 << 20;
  cfg->max_logs_bytes = (size_t)4 << 20;
  cfg->max_depth = 32;

  cfg->default_memory = (size_t)1 << 30;
  cfg->max_memory = (size_t)16 << 30;
  cfg->default_cpus = 1;
  cfg->max_cpus = 64;
  cfg->default_pids = 256;
  cfg->max_pids = 65536;
  cfg->default_disk = (size_t)1 << 30;
  cfg->max_disk = (size_t)64 << 30;
  cfg->default_output = (size_t)64 << 20;
  cfg->max_output = (size_t)4 << 30;
}

/* ------------------------------------------------------------------------
 * One option: a table from the file's key to the struct field. */

enum option_type { OPT_INT, OPT_SIZE, OPT_STRING, OPT_CPUS, OPT_MODE };

typedef struct option {
  const char *key;
  enum option_type type;
  size_t offset;
  size_t size;   /* OPT_STRING: the buffer size */
  long long min; /* OPT_INT, OPT_SIZE */
  long long max;
} option_t;

#define INT_OPT(field, lo, hi)                                                 \
  { #field, OPT_INT, offsetof(bw_config_t, field), 0, lo, hi }
#define SIZE_OPT(field, lo)                                                    \
  { #field, OPT_SIZE, offsetof(bw_config_t, field), 0, lo, LLONG_MAX }
/* A fraction of CPUs, 0.01 to 1024. */
#define CPUS_OPT(field)                                                        \
  { #field, OPT_CPUS, offsetof(bw_config_t, field), 0, 0, 0 }
#define MODE_OPT(field)                                                        \
  { #field, OPT_MODE, offsetof(bw_config_t, field), 0, 0, 0777 }
#define STRING_OPT(field)                                                      \
  {                                                                            \
#field, OPT_STRING, offsetof(bw_config_t, field),                          \
        sizeof(((bw_config_t *)0)->field), 0, 0                                \
  }

static const option_t options[] = {
    INT_OPT(port, 1, 65535),
    STRING_OPT(listen_host),
    STRING_OPT(data_dir),
    STRING_OPT(token),
    STRING_OPT(mongo_uri),
    STRING_OPT(db_name),
    STRING_OPT(socket_path),
    INT_OPT(workers, 1, 256),
    STRING_OPT(courses_file),
    STRING_OPT(listen),
    STRING_OPT(listen_owner),
    STRING_OPT(listen_group),
    MODE_OPT(listen_mode),
    STRING_OPT(user),
    STRING_OPT(group),
    STRING_OPT(log_file),
    INT_OPT(stop_timeout, 1, 3600),
    INT_OPT(reaper_timeout_ms, 1, INT_MAX),
    INT_OPT(heartbeat, 1, 86400),
    INT_OPT(queue_empty_code, 200, 599),
    INT_OPT(max_attempts, 1, 1000),
    INT_OPT(claim_grace, 1, 86400),
    INT_OPT(default_timeout, 1, INT_MAX),
    INT_OPT(max_timeout, 1, INT_MAX),
    INT_OPT(db_timeout_ms, 1, INT_MAX),
    INT_OPT(queue_partitions, 1, 256),
    INT_OPT(forget_workers, 60, INT_MAX),
    INT_OPT(poll_wait, 0, 3600),
    INT_OPT(stream_keepalive, 1, 3600),
    INT_OPT(keep_output, 0, INT_MAX),
    SIZE_OPT(max_body, 1),
    INT_OPT(max_students, 1, INT_MAX),
    INT_OPT(max_stages, 1, INT_MAX),
    INT_OPT(max_env, 1, INT_MAX),
    SIZE_OPT(max_env_name, 1),
    SIZE_OPT(max_env_value, 1),
    SIZE_OPT(max_string, 1),
    SIZE_OPT(max_info_bytes, 1),
    SIZE_OPT(max_logs_bytes, 1),
    INT_OPT(max_depth, 1, 1000),
    SIZE_OPT(default_memory, 4 << 20),
    SIZE_OPT(max_memory, 4 << 20),
    CPUS_OPT(default_cpus),
    CPUS_OPT(max_cpus),
    INT_OPT(default_pids, 1, INT_MAX),
    INT_OPT(max_pids, 1, INT_MAX),
    SIZE_OPT(default_disk, 1 << 20),
    SIZE_OPT(max_disk, 1 << 20),
    SIZE_OPT(default_output, 1),
    SIZE_OPT(max_output, 1),
};

static const option_t *find_option(const char *key) {
  size_t i;
  for (i = 0; i < sizeof options / sizeof options[0]; i++)
    if (strcmp(options[i].key, key) == 0)
      return &options[i];
  return NULL;
}

/* A whole decimal integer in [min, max], nothing else on the line. */
static bool parse_integer(const char *value, long long min, long long max,
                          long long *out) {
  char *end;
  long long n;
  /* strtoll would also take leading blanks and '+': not in a config. */
  if (!(value[0] == '-' || (value[0] >= '0' && value[0] <= '9')))
    return false;
  errno = 0;
  n = strtoll(value, &end, 10);
  if (errno != 0 || *end != '\0' || n < min || n > max)
    return false;
  *out = n;
  return true;
}

static int set_string(bw_config_t *cfg, const option_t *opt, const char *value,
                      bw_error_t *error) {
  char *field = (char *)cfg + opt->offset;
  size_t len = strlen(value);

  if (len >= opt->size)
    return bw_error_set(error, BW_EINVAL, "%s: longer than %zu bytes", opt->key,
                        opt->size - 1);
  if (len == 0 && (strcmp(opt->key, "data_dir") == 0 ||
                   strcmp(opt->key, "listen_host") == 0 ||
                   strcmp(opt->key, "db_name") == 0))
    return bw_error_set(error, BW_EINVAL, "%s: must not be empty", opt->key);
  memcpy(field, value, len + 1);
  /* "var/" and "var" must give the same derived paths. */
  if (strcmp(opt->key, "data_dir") == 0)
    while (len > 1 && field[len - 1] == '/')
      field[--len] = '\0';
  return 0;
}

static int set_cpus(bw_config_t *cfg, const option_t *opt, const char *value,
                    bw_error_t *error) {
  char *end;
  double n;

  errno = 0;
  n = (value[0] >= '0' && value[0] <= '9') ? strtod(value, &end) : -1;
  if (n < 0.01 || n > 1024 || errno != 0 || *end != '\0')
    return bw_error_set(error, BW_EINVAL,
                        "%s: expected a number of CPUs in 0.01..1024, got "
                        "\"%s\"",
                        opt->key, value);
  *(double *)((char *)cfg + opt->offset) = n;
  return 0;
}

/* A file mode in octal, as chmod and php-fpm write it ("0660", "660"). */
static int set_mode(bw_config_t *cfg, const option_t *opt, const char *value,
                    bw_error_t *error) {
  char *end;
  long n;

  errno = 0;
  n = strtol(value, &end, 8);
  if (value[0] < '0' || value[0] > '7' || errno != 0 || *end != '\0' ||
      n < opt->min || n > opt->max)
    return bw_error_set(error, BW_EINVAL,
                        "%s: expected an octal mode such as 0660, got \"%s\"",
                        opt->key, value);
  *(int *)((char *)cfg + opt->offset) = (int)n;
  return 0;
}

int bw_config_set(bw_config_t *cfg, const char *key, const char *value,
                  bw_error_t *error) {
  const option_t *opt = find_option(key);
  long long n;

  if (opt == NULL)
    return bw_error_set(error, BW_EINVAL, "%s: unknown key", key);
  if (opt->type == OPT_STRING)
    return set_string(cfg, opt, value, error);
  if (opt->type == OPT_CPUS)
    return set_cpus(cfg, opt, value, error);
  if (opt->type == OPT_MODE)
    return set_mode(cfg, opt, value, error);
  if (!parse_integer(value, opt->min, opt->max, &n)) {
    if (opt->max == LLONG_MAX)
      return bw_error_set(error, BW_EINVAL,
                          "%s: expected an integer >= %lld, got \"%s\"", key,
                          opt->min, value);
    return bw_error_set(error, BW_EINVAL,
                        "%s: expected an integer in %lld..%lld, got \"%s\"",
                        key, opt->min, opt->max, value);
  }
  if (opt->type == OPT_INT)
    *(int *)((char *)cfg + opt->offset) = (int)n;
  else
    *(size_t *)((char *)cfg + opt->offset) = (size_t)n;
  return 0;
}

/* ------------------------------------------------------------------------
 * The file layer. */

/* A '#' at the start of a line or after a blank starts a comment, so values
 * such as tokens may still contain '#'. */
static void strip_comment(char *line) {
  char *p;
  for (p = line; *p != '\0'; p++)
    if (*p == '#' && (p == line || p[-1] == ' ' || p[-1] == '\t')) {
      *p = '\0';
      return;
    }
}

static int apply_line(bw_config_t *cfg, char *line, const char *path,
                      unsigned lineno, bw_error_t *error) {
  char *eq, *key, *value;
  bw_error_t why;
  int rc;

  strip_comment(line);
  key = bw_trim(line);
  if (key[0] == '\0')
    return 0;
  eq = strchr(key, '=');
  if (eq == NULL)
    return bw_error_set(error, BW_EINVAL, "%s:%u: expected `key = value`", path,
                        lineno);
  *eq = '\0';
  key = bw_trim(key);
  value = bw_trim(eq + 1);
  rc = bw_config_set(cfg, key, value, &why);
  if (rc < 0)
    return bw_error_set(error, rc, "%s:%u: %s", path, lineno, why.message);
  return 0;
}

static int apply_file(bw_config_t *cfg, const char *path, bw_error_t *error) {
  FILE *f = fopen(path, "r");
  char *line = NULL;
  size_t cap = 0;
  unsigned lineno = 0;
  int rc = 0;

  if (f == NULL)
    return bw_error_set(error, BW_EINVAL, "%s: %s", path, strerror(errno));
  while (rc == 0 && getline(&line, &cap, f) != -1)
    rc = apply_line(cfg, line, path, ++lineno, error);
  free(line);
  fclose(f);
  return rc;
}

/* ------------------------------------------------------------------------
 * The environment layer.  An empty variable counts as unset, so
 * `BROADWAY_MONGO_URI= make run` still means "use FerretDB". */

static const struct {
  const char *variable, *key;
} environment[] = {
    {"BROADWAY_PORT", "port"},           {"BROADWAY_HOST", "listen_host"},
    {"BROADWAY_DATA", "data_dir"},       {"BROADWAY_TOKEN", "token"},
    {"BROADWAY_HEARTBEAT", "heartbeat"}, {"BROADWAY_WORKERS", "workers"},
    {"BROADWAY_MONGO_URI", "mongo_uri"}, {"BROADWAY_DB", "db_name"},
    {"BROADWAY_POLL_WAIT", "poll_wait"}, {"BROADWAY_COURSES", "courses_file"},
};

static int apply_environment(bw_config_t *cfg, bw_error_t *error) {
  size_t i;
  for (i = 0; i < sizeof environment / sizeof environment[0]; i++) {
    const char *value = getenv(environment[i].variable);
    bw_error_t why;
    if (value == NULL || value[0] == '\0')
      continue;
    if (bw_config_set(cfg, environment[i].key, value, &why) < 0)
      return bw_error_set(error, BW_EINVAL, "%s: %s", environment[i].variable,
                          why.message);
  }
  return 0;
}

/* ------------------------------------------------------------------------
 * Values derived from data_dir once it is final. */

static int read_token_file(bw_config_t *cfg, bw_error_t *error) {
  char path[BW_PATH_MAX + 16], buf[sizeof cfg->token + 1];
  size_t len;
  FILE *f;

  snprintf(path, sizeof path, "%s/token", cfg->data_dir);
  f = fopen(path, "r");
  if (f == NULL)
    return 0; /* not generated yet: the start-up script makes one */
  len = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[len] = '\0';
  while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' ||
                     buf[len - 1] == ' ' || buf[len - 1] == '\t'))
    buf[--len] = '\0';
  if (len >= sizeof cfg->token)
    return bw_error_set(error, BW_EINVAL, "%s: longer than %zu bytes", path,
                        sizeof cfg->token - 1);
  memcpy(cfg->token, buf, len + 1);
  return 0;
}

/* data_dir as an absolute path: resolved when it exists, else joined to the
 * working directory (it may be created later by the start-up script). */
static int absolute_data_dir(const bw_config_t *cfg, char *out, size_t size) {
  char cwd[BW_PATH_MAX], *real = realpath(cfg->data_dir, NULL);
  int n;

  if (real != NULL) {
    n = snprintf(out, size, "%s", real);
    free(real);
  } else if (cfg->data_dir[0] == '/') {
    n = snprintf(out, size, "%s", cfg->data_dir);
  } else {
    if (getcwd(cwd, sizeof cwd) == NULL)
      return -1;
    n = snprintf(out, size, "%s/%s", cwd, cfg->data_dir);
  }
  return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* mongodb://%2Fabs%2Fvar%2Frun%2Fferretdb.sock: the driver reads a host
 * ending in ".sock" as a unix socket path, percent-encoded. */
static int ferretdb_uri(bw_config_t *cfg, bw_error_t *error) {
  static const char hex[] = "0123456789ABCDEF";
  char dir[BW_PATH_MAX], socket[BW_PATH_MAX + 32];
  size_t out = 0, i;
  const char *prefix = "mongodb://";

  if (absolute_data_dir(cfg, dir, sizeof dir) < 0)
    return bw_error_set(error, BW_EINVAL, "data_dir: path too long");
  snprintf(socket, sizeof socket, "%s/run/ferretdb.sock",
           strcmp(dir, "/") == 0 ? "" : dir);
  out = strlen(prefix);
  memcpy(cfg->mongo_uri, prefix, out);
  for (i = 0; socket[i] != '\0'; i++) {
    unsigned char c = (unsigned char)socket[i];
    bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                 (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
                 c == '~';
    if (out + 4 >= sizeof cfg->mongo_uri) {
      cfg->mongo_uri[0] = '\0';
      return bw_error_set(error, BW_EINVAL,
                          "data_dir: path too long for the FerretDB URI");
    }
    if (plain) {
      cfg->mongo_uri[out++] = (char)c;
    } else {
      cfg->mongo_uri[out++] = '%';
      cfg->mongo_uri[out++] = hex[c >> 4];
      cfg->mongo_uri[out++] = hex[c & 15];
    }
  }
  cfg->mongo_uri[out] = '\0';
  return 0;
}

static int derive_from_data_dir(bw_config_t *cfg, bool socket_path_set,
                                bw_error_t *error) {
  int rc;
  if (!socket_path_set) {
    int n = snprintf(cfg->socket_path, sizeof cfg->socket_path,
                     "%s/run/fcgi.sock", cfg->data_dir);
    if (n < 0 || (size_t)n >= sizeof cfg->socket_path)
      return bw_error_set(error, BW_EINVAL, "data_dir: path too long");
  }
  if (cfg->listen[0] == '\0') {
    int n =
        snprintf(cfg->listen, sizeof cfg->listen, "unix:%s", cfg->socket_path);
    if (n < 0 || (size_t)n >= sizeof cfg->listen)
      return bw_error_set(error, BW_EINVAL, "socket_path: path too long");
  } else if (strncmp(cfg->listen, "unix:", 5) == 0) {
    /* One socket path, whichever key named it (scripts read socket_path). */
    snprintf(cfg->socket_path, sizeof cfg->socket_path, "%s", cfg->listen + 5);
  }
  if (cfg->token[0] == '\0' && (rc = read_token_file(cfg, error)) < 0)
    return rc;
  if (cfg->mongo_uri[0] == '\0' && (rc = ferretdb_uri(cfg, error)) < 0)
    return rc;
  return 0;
}

/* A stage's default limit must be one a stage could ask for. */
static int check_limit_defaults(const bw_config_t *cfg, bw_error_t *error) {
  const char *over = cfg->default_memory > cfg->max_memory   ? "memory"
                     : cfg->default_cpus > cfg->max_cpus     ? "cpus"
                     : cfg->default_pids > cfg->max_pids     ? "pids"
                     : cfg->default_disk > cfg->max_disk     ? "disk"
                     : cfg->default_output > cfg->max_output ? "output"
                                                             : NULL;
  if (over != NULL)
    return bw_error_set(error, BW_EINVAL, "default_%s: over max_%s", over,
                        over);
  return 0;
}

const char *bw_config_default_path(void) {
  if (access("broadway.conf", F_OK) == 0)
    return "broadway.conf";
  if (access(BW_SYSTEM_CONFIG, F_OK) == 0)
    return BW_SYSTEM_CONFIG;
  return NULL;
}

int bw_config_load(bw_config_t *cfg, const char *path, bw_error_t *error) {
  int rc;

  bw_config_init(cfg);
  /* Empty marks "not set by the file": the default depends on data_dir,
   * which the environment may still change. */
  cfg->socket_path[0] = '\0';
  if (path != NULL && path[0] != '\0' &&
      (rc = apply_file(cfg, path, error)) < 0)
    return rc;
  if ((rc = apply_environment(cfg, error)) < 0)
    return rc;
  if (cfg->default_timeout > cfg->max_timeout)
    return bw_error_set(error, BW_EINVAL,
                        "default_timeout: %d is over max_timeout %d",
                        cfg->default_timeout, cfg->max_timeout);
  if ((rc = check_limit_defaults(cfg, error)) < 0)
    return rc;
  return derive_from_data_dir(cfg, cfg->socket_path[0] != '\0', error);
}
