/* stack.c - start and stop the real stack for integration tests.  See
 * stack.h for what a test can rely on. */
#include "stack.h"

#include "fault.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <mongoc/mongoc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PORT_FIRST 23000
#define PORT_LAST 23999
#define READY_MARK "broadway: ready on "
#define READY_TIMEOUT_S 60
#define TERM_GRACE_S 10
#define MAX_STACKS 8

struct bw_test_stack {
  pid_t owner; /* the process that started it: the only one that stops it */
  pid_t pid;   /* the run script, leader of the stack's process group */
  bool running;
  int port;
  int heartbeat;
  char data_dir[PATH_MAX];
  char log_path[PATH_MAX + 16];
  char url[256];
  char token[65];
  char mongo_uri[PATH_MAX * 3 + 64];
  char db_name[64];
  bool external_mongo;
};

static bw_test_stack_t *live_stacks[MAX_STACKS];

static bool port_taken_by_us(int port) {
  for (int i = 0; i < MAX_STACKS; i++)
    if (live_stacks[i] && live_stacks[i]->port == port)
      return true;
  return false;
}

static int pick_free_port(void) {
  return bw_test_free_port(PORT_FIRST, PORT_LAST, port_taken_by_us);
}

static void set_mongo_uri(bw_test_stack_t *s) {
  const char *external = getenv("BROADWAY_MONGO_URI");
  if (external && *external) {
    s->external_mongo = true;
    snprintf(s->mongo_uri, sizeof s->mongo_uri, "%s", external);
    char suffix[9];
    bw_test_random_hex(suffix, 8);
    snprintf(s->db_name, sizeof s->db_name, "itest_%s", suffix);
    return;
  }
  const char *db = getenv("BROADWAY_DB");
  snprintf(s->db_name, sizeof s->db_name, "%s", db && *db ? db : "broadway");
  char sock[PATH_MAX + 32];
  snprintf(sock, sizeof sock, "%s/run/ferretdb.sock", s->data_dir);
  bw_test_socket_uri(sock, s->mongo_uri, sizeof s->mongo_uri);
}

void bw_test_stack_setenv(const char *data_dir, int port, const char *token,
                          const bw_test_stack_opts_t *opts,
                          const char *config_path) {
  setenv("BROADWAY_DATA", data_dir, 1);
  bw_test_set_env_int("BROADWAY_PORT", port);
  setenv("BROADWAY_HOST", "127.0.0.1", 1);
  setenv("BROADWAY_TOKEN", token, 1);
  if (opts->heartbeat > 0)
    bw_test_set_env_int("BROADWAY_HEARTBEAT", opts->heartbeat);
  if (opts->workers > 0)
    bw_test_set_env_int("BROADWAY_WORKERS", opts->workers);
  if (config_path)
    setenv("BROADWAY_CONFIG", config_path, 1);
  else
    unsetenv("BROADWAY_CONFIG");
}

/* In the child: own process group, output to the log, the stack's
 * environment, then the script.  Never returns. */
static void exec_stack(const bw_test_stack_t *s, const char *script,
                       const bw_test_stack_opts_t *opts,
                       const char *config_path) {
  setpgid(0, 0);
  bw_test_redirect_output(s->log_path);
  bw_test_stack_setenv(s->data_dir, s->port, s->token, opts, config_path);
  setenv("BROADWAY_LOG_STDOUT", "0", 1); /* programs log to <data>/log/ */
  if (s->external_mongo)
    setenv("BROADWAY_DB", s->db_name, 1);
  if (!getenv("BROADWAY_BIN")) {
    char bin[PATH_MAX];
    snprintf(bin, sizeof bin, "%s", script);
    char *scripts_dir = strstr(bin, "/scripts/broadway-run");
    if (scripts_dir) { /* <repo>/scripts/broadway-run -> <repo>/bin */
      strcpy(scripts_dir, "/bin");
      setenv("BROADWAY_BIN", bin, 1);
    }
  }
  signal(SIGPIPE, SIG_DFL);
  execl(script, script, (char *)NULL);
  fprintf(stderr, "itest: cannot run %s: %s\n", script, strerror(errno));
  _exit(127);
}

/* Takes the URL from the ready line of the log: true once it is there. */
static bool parse_ready_line(bw_test_stack_t *s) {
  char *log = bw_test_read_file(s->log_path, NULL);
  char *mark = log ? strstr(log, READY_MARK) : NULL;
  if (mark) {
    char *url = mark + strlen(READY_MARK);
    size_t n = strcspn(url, " \t\r\n");
    while (n > 0 && url[n - 1] == '/')
      n--; /* so tests can append "/api/..." */
    snprintf(s->url, sizeof s->url, "%.*s", (int)n, url);
  }
  free(log);
  return mark != NULL;
}

/* The last `lines` lines of a file to stderr. */
static void print_tail(const char *path, int lines) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return;
  char *ring[64] = {0};
  char buf[2048];
  int n = 0;
  if (lines > 64)
    lines = 64;
  while (fgets(buf, sizeof buf, f)) {
    free(ring[n % lines]);
    ring[n % lines] = strdup(buf);
    n++;
  }
  fclose(f);
  fprintf(stderr, "---- %s (last %d lines) ----\n", path, lines);
  for (int i = n > lines ? n - lines : 0; i < n; i++)
    fputs(ring[i % lines] ? ring[i % lines] : "", stderr);
  for (int i = 0; i < lines; i++)
    free(ring[i]);
}

static bool file_contains(const char *path, const char *needle) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return false;
  size_t keep = strlen(needle), len = 0;
  char buf[65536];
  bool found = false;
  size_t n;
  /* Chunks overlap by the needle's length so no match is cut in two. */
  while (!found && (n = fread(buf + len, 1, sizeof buf - 1 - len, f)) > 0) {
    len += n;
    buf[len] = '\0';
    found = memmem(buf, len, needle, keep) != NULL;
    if (len > keep) {
      memmove(buf, buf + len - keep, keep);
      len = keep;
    }
  }
  fclose(f);
  return found;
}

bool bw_test_stack_logs_contain(const bw_test_stack_t *s, const char *needle) {
  char dir[PATH_MAX + 8];
  snprintf(dir, sizeof dir, "%s/log", s->data_dir);
  DIR *d = opendir(dir);
  if (!d)
    return false;
  bool found = false;
  struct dirent *e;
  while (!found && (e = readdir(d))) {
    if (e->d_name[0] == '.')
      continue;
    char path[PATH_MAX + 300];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    found = file_contains(path, needle);
  }
  closedir(d);
  return found;
}

void bw_test_stack_print_log(const bw_test_stack_t *s) {
  if (!s)
    return;
  char *log = bw_test_read_file(s->log_path, NULL);
  fprintf(stderr, "---- %s ----\n%s\n", s->log_path, log ? log : "(no log)");
  free(log);
  /* broadway-run keeps each program's own log in <data>/log/. */
  const char *names[] = {"postgres", "ferretdb", "fcgi",
                         "reaper",   "nginx",    "nginx-error"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/log/%s.log", s->data_dir, names[i]);
    print_tail(path, 25);
  }
  fprintf(stderr, "---- end of logs ----\n");
}

/* Waits for the ready line; false if the script died or time ran out. */
static bool wait_ready(bw_test_stack_t *s) {
  double deadline = bw_test_now() + READY_TIMEOUT_S;
  while (bw_test_now() < deadline) {
    if (parse_ready_line(s))
      return true;
    int status;
    if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
      fprintf(stderr, "itest: broadway-run exited (status %d) before ready\n",
              WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status));
      s->pid = -s->pid; /* reaped: the group may still hold children */
      return false;
    }
    bw_test_sleep_ms(100);
  }
  fprintf(stderr, "itest: no \"%s\" in the log after %d s\n", READY_MARK,
          READY_TIMEOUT_S);
  return false;
}

static void remember(bw_test_stack_t *s, bool live) {
  for (int i = 0; i < MAX_STACKS; i++) {
    if (live && !live_stacks[i]) {
      live_stacks[i] = s;
      return;
    }
    if (!live && live_stacks[i] == s)
      live_stacks[i] = NULL;
  }
}

bw_test_stack_t *bw_test_stack_start(const bw_test_stack_opts_t *opts) {
  bw_test_stack_opts_t defaults = {0};
  if (!opts)
    opts = &defaults;
  char script[PATH_MAX];
  if (!bw_test_find_run_script(script)) {
    fprintf(stderr, "itest: scripts/broadway-run not found (set BROADWAY_BIN "
                    "to the repo's bin/ or BROADWAY_RUN to the script)\n");
    return NULL;
  }
  bw_test_stack_t *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  s->owner = getpid();
  s->heartbeat = opts->heartbeat > 0 ? opts->heartbeat : 10;
  snprintf(s->data_dir, sizeof s->data_dir, "/tmp/itest-%s-XXXXXX",
           opts->label ? opts->label : "stack");
  s->port = pick_free_port();
  if (!mkdtemp(s->data_dir) || s->port < 0) {
    fprintf(stderr, "itest: no data dir or no free port: %s\n",
            strerror(errno));
    free(s);
    return NULL;
  }
  snprintf(s->log_path, sizeof s->log_path, "%s/stack.log", s->data_dir);
  snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d", s->port);
  bw_test_random_hex(s->token, 32);
  set_mongo_uri(s);

  char config_path[PATH_MAX + 16];
  bool with_config = opts->config_text != NULL;
  if (with_config) {
    snprintf(config_path, sizeof config_path, "%s/test.conf", s->data_dir);
    if (bw_test_write_file(config_path, opts->config_text) != 0) {
      fprintf(stderr, "itest: cannot write %s\n", config_path);
      free(s);
      return NULL;
    }
  }

  fflush(NULL); /* or the child's exit would flush our buffers twice */
  s->pid = fork();
  if (s->pid < 0) {
    free(s);
    return NULL;
  }
  if (s->pid == 0)
    exec_stack(s, script, opts, with_config ? config_path : NULL);
  setpgid(s->pid, s->pid); /* also here: no race with an early kill */
  s->running = true;
  remember(s, true);
  if (!wait_ready(s)) {
    bw_test_stack_print_log(s);
    bw_test_stack_stop(s, true);
    return NULL;
  }
  return s;
}

/* Processes that escaped the group (daemonised) but still run from our data
 * dir are killed too.  fault.c finds processes through /proc; its code
 * serves here as well. */
static void stop_processes(bw_test_stack_t *s) {
  pid_t pgid = s->pid > 0 ? s->pid : -s->pid;
  if (!bw_fault_group_stop(pgid, TERM_GRACE_S))
    fprintf(stderr, "itest: stack %s ignored SIGTERM for %d s: SIGKILL\n",
            s->data_dir, TERM_GRACE_S);
  if (s->pid > 0)
    waitpid(s->pid, NULL, 0);
  bw_fault_kill_data_dir_users(s->data_dir);
  s->running = false;
}

static void drop_external_db(const bw_test_stack_t *s) {
  mongoc_init();
  mongoc_client_t *client = mongoc_client_new(s->mongo_uri);
  if (!client)
    return;
  mongoc_database_t *db = mongoc_client_get_database(client, s->db_name);
  mongoc_database_drop(db, NULL);
  mongoc_database_destroy(db);
  mongoc_client_destroy(client);
}

/* Sanitizer reports in the programs' logs; prints where they are. */
static bool sanitizer_reported(const bw_test_stack_t *s) {
  static const char *const marks[] = {"ERROR: AddressSanitizer",
                                      "ERROR: LeakSanitizer", "runtime error:"};
  for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++) {
    if (bw_test_stack_logs_contain(s, marks[i])) {
      fprintf(stderr, "itest: \"%s\" in the stack's logs under %s/log\n",
              marks[i], s->data_dir);
      return true;
    }
  }
  return false;
}

bool bw_test_stack_stop(bw_test_stack_t *s, bool keep_data) {
  if (!s || s->owner != getpid())
    return true;
  if (s->running)
    stop_processes(s);
  remember(s, false);
  bool clean = !sanitizer_reported(s);
  if (keep_data || !clean) {
    fprintf(stderr, "itest: kept the stack's data dir for inspection: %s\n",
            s->data_dir);
  } else {
    if (s->external_mongo)
      drop_external_db(s);
    bw_test_remove_tree(s->data_dir);
  }
  free(s);
  return clean;
}

void bw_test_stack_stop_all(void) {
  for (int i = 0; i < MAX_STACKS; i++)
    if (live_stacks[i] && live_stacks[i]->owner == getpid())
      bw_test_stack_stop(live_stacks[i], true);
}

const char *bw_test_stack_url(const bw_test_stack_t *s) {
  return s->url;
}

const char *bw_test_stack_token(const bw_test_stack_t *s) {
  return s->token;
}

const char *bw_test_stack_data_dir(const bw_test_stack_t *s) {
  return s->data_dir;
}

const char *bw_test_stack_mongo_uri(const bw_test_stack_t *s) {
  return s->mongo_uri;
}

const char *bw_test_stack_db_name(const bw_test_stack_t *s) {
  return s->db_name;
}

int bw_test_stack_port(const bw_test_stack_t *s) {
  return s->port;
}

int bw_test_stack_heartbeat(const bw_test_stack_t *s) {
  return s->heartbeat;
}

/* FerretDB has no endSessions, which every client sends when destroyed: a
 * warning per test that says nothing.  Everything else is logged as usual. */
static void log_quietly(mongoc_log_level_t level, const char *domain,
                        const char *message, void *data) {
  if (strstr(message, "endSessions"))
    return;
  mongoc_log_default_handler(level, domain, message, data);
}

mongoc_client_t *bw_test_db_connect(const char *mongo_uri) {
  mongoc_init();
  mongoc_log_set_handler(log_quietly, NULL);
  bson_error_t err;
  mongoc_uri_t *uri = mongoc_uri_new_with_error(mongo_uri, &err);
  if (!uri) {
    fprintf(stderr, "itest: bad mongo uri %s: %s\n", mongo_uri, err.message);
    return NULL;
  }
  mongoc_client_t *client = mongoc_client_new_from_uri(uri);
  mongoc_uri_destroy(uri);
  if (client)
    mongoc_client_set_error_api(client, MONGOC_ERROR_API_VERSION_2);
  return client;
}

/* Every collection of the database, whatever the schema has grown to
 * (the queue alone is queue_00, queue_01, ...). */
int bw_test_db_reset(const bw_test_stack_t *s) {
  mongoc_client_t *client = bw_test_db_connect(s->mongo_uri);
  if (!client)
    return -1;
  int rc = 0;
  bson_t empty = BSON_INITIALIZER;
  bson_error_t err;
  mongoc_database_t *db = mongoc_client_get_database(client, s->db_name);
  char **names = mongoc_database_get_collection_names_with_opts(db, NULL, &err);
  if (!names) {
    fprintf(stderr, "itest: listing collections: %s\n", err.message);
    rc = -1;
  }
  for (size_t i = 0; names && names[i] && rc == 0; i++) {
    mongoc_collection_t *coll = mongoc_database_get_collection(db, names[i]);
    if (!mongoc_collection_delete_many(coll, &empty, NULL, NULL, &err)) {
      fprintf(stderr, "itest: emptying %s: %s\n", names[i], err.message);
      rc = -1;
    }
    mongoc_collection_destroy(coll);
  }
  bson_strfreev(names);
  mongoc_database_destroy(db);
  bson_destroy(&empty);
  mongoc_client_destroy(client);
  return rc;
}

static int64_t count_one(mongoc_client_t *client, const char *db_name,
                         const char *name) {
  mongoc_collection_t *coll =
      mongoc_client_get_collection(client, db_name, name);
  bson_t empty = BSON_INITIALIZER;
  bson_error_t err;
  int64_t n =
      mongoc_collection_count_documents(coll, &empty, NULL, NULL, NULL, &err);
  if (n < 0)
    fprintf(stderr, "itest: counting %s: %s\n", name, err.message);
  bson_destroy(&empty);
  mongoc_collection_destroy(coll);
  return n;
}

/* "queue" counts every queue partition (queue_00, queue_01, ...). */
long long bw_test_db_count(const bw_test_stack_t *s, const char *name) {
  mongoc_client_t *client = bw_test_db_connect(s->mongo_uri);
  int64_t n = 0;
  if (!client)
    return -1;
  if (strcmp(name, "queue") != 0) {
    n = count_one(client, s->db_name, name);
  } else {
    bson_error_t err;
    mongoc_database_t *db = mongoc_client_get_database(client, s->db_name);
    char **names =
        mongoc_database_get_collection_names_with_opts(db, NULL, &err);
    for (size_t i = 0; names && names[i] && n >= 0; i++)
      if (strncmp(names[i], "queue_", 6) == 0) {
        int64_t k = count_one(client, s->db_name, names[i]);
        n = k < 0 ? k : n + k;
      }
    bson_strfreev(names);
    mongoc_database_destroy(db);
  }
  mongoc_client_destroy(client);
  return (long long)n;
}
