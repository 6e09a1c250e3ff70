/* stack.c - start and stop the real stack for integration tests.  See
 * stack.h for what a test can rely on. */
#include "stack.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <mongoc/mongoc.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
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

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
  }
}

/* Random hex from /dev/urandom (rand() as a fallback keeps tests running on
 * a machine without it; the token only has to differ between stacks). */
static void random_hex(char *out, size_t digits) {
  unsigned char buf[64];
  size_t n = (digits + 1) / 2;
  if (n > sizeof buf)
    n = sizeof buf;
  FILE *f = fopen("/dev/urandom", "rb");
  if (!f || fread(buf, 1, n, f) != n) {
    srand((unsigned)(time(NULL) ^ getpid()));
    for (size_t i = 0; i < n; i++)
      buf[i] = (unsigned char)rand();
  }
  if (f)
    fclose(f);
  for (size_t i = 0; i < digits && i / 2 < n; i++)
    out[i] = "0123456789abcdef"[(buf[i / 2] >> ((i % 2) ? 0 : 4)) & 0xf];
  out[digits] = '\0';
}

static bool is_executable(const char *path) {
  return access(path, X_OK) == 0;
}

/* Looks for scripts/broadway-run in `start` and the directories above it. */
static bool find_script_above(const char *start, char out[PATH_MAX]) {
  char dir[PATH_MAX];
  if (!start || !realpath(start, dir))
    return false;
  for (;;) {
    snprintf(out, PATH_MAX, "%.*s/scripts/broadway-run", PATH_MAX - 30, dir);
    if (is_executable(out))
      return true;
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
      return false;
    *slash = '\0';
  }
}

static bool find_run_script(char out[PATH_MAX]) {
  const char *explicit_path = getenv("BROADWAY_RUN");
  if (explicit_path && *explicit_path) {
    snprintf(out, PATH_MAX, "%s", explicit_path);
    return is_executable(out);
  }
  return find_script_above(getenv("BROADWAY_BIN"), out) ||
         find_script_above(".", out);
}

static bool port_taken_by_us(int port) {
  for (int i = 0; i < MAX_STACKS; i++)
    if (live_stacks[i] && live_stacks[i]->port == port)
      return true;
  return false;
}

/* A port of our range that nothing listens on right now.  Binding without
 * SO_REUSEADDR also skips ports with connections lingering in TIME_WAIT. */
static int pick_free_port(void) {
  int span = PORT_LAST - PORT_FIRST + 1;
  int offset = (int)((unsigned)getpid() * 7919u + (unsigned)time(NULL)) % span;
  for (int i = 0; i < span; i++) {
    int port = PORT_FIRST + (offset + i) % span;
    if (port_taken_by_us(port))
      continue;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
      return -1;
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0;
    close(fd);
    if (ok)
      return port;
  }
  return -1;
}

static void percent_encode(const char *in, char *out, size_t cap) {
  size_t o = 0;
  for (const unsigned char *p = (const unsigned char *)in; *p && o + 4 < cap;
       p++) {
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
        (*p >= '0' && *p <= '9') || strchr("-._~", *p))
      out[o++] = (char)*p;
    else
      o += (size_t)snprintf(out + o, cap - o, "%%%02X", *p);
  }
  out[o] = '\0';
}

static void set_mongo_uri(bw_test_stack_t *s) {
  const char *external = getenv("BROADWAY_MONGO_URI");
  if (external && *external) {
    s->external_mongo = true;
    snprintf(s->mongo_uri, sizeof s->mongo_uri, "%s", external);
    char suffix[9];
    random_hex(suffix, 8);
    snprintf(s->db_name, sizeof s->db_name, "itest_%s", suffix);
    return;
  }
  const char *db = getenv("BROADWAY_DB");
  snprintf(s->db_name, sizeof s->db_name, "%s", db && *db ? db : "broadway");
  char sock[PATH_MAX + 32], encoded[PATH_MAX * 3];
  snprintf(sock, sizeof sock, "%s/run/ferretdb.sock", s->data_dir);
  percent_encode(sock, encoded, sizeof encoded);
  snprintf(s->mongo_uri, sizeof s->mongo_uri,
           "mongodb://%s/?serverSelectionTimeoutMS=10000", encoded);
}

static int write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f)
    return -1;
  int rc = fputs(text, f) < 0 ? -1 : 0;
  return fclose(f) == 0 ? rc : -1;
}

static void set_env_int(const char *name, int value) {
  char buf[32];
  snprintf(buf, sizeof buf, "%d", value);
  setenv(name, buf, 1);
}

/* In the child: own process group, output to the log, the stack's
 * environment, then the script.  Never returns. */
static void exec_stack(const bw_test_stack_t *s, const char *script,
                       const bw_test_stack_opts_t *opts,
                       const char *config_path) {
  setpgid(0, 0);
  int log = open(s->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
  int null = open("/dev/null", O_RDONLY);
  if (log < 0 || null < 0)
    _exit(126);
  dup2(null, STDIN_FILENO);
  dup2(log, STDOUT_FILENO);
  dup2(log, STDERR_FILENO);
  for (int fd = 3; fd < 1024; fd++)
    close(fd);
  setenv("BROADWAY_DATA", s->data_dir, 1);
  set_env_int("BROADWAY_PORT", s->port);
  setenv("BROADWAY_HOST", "127.0.0.1", 1);
  setenv("BROADWAY_TOKEN", s->token, 1);
  setenv("BROADWAY_LOG_STDOUT", "0", 1); /* programs log to <data>/log/ */
  if (opts->heartbeat > 0)
    set_env_int("BROADWAY_HEARTBEAT", opts->heartbeat);
  if (opts->workers > 0)
    set_env_int("BROADWAY_WORKERS", opts->workers);
  if (config_path)
    setenv("BROADWAY_CONFIG", config_path, 1);
  else
    unsetenv("BROADWAY_CONFIG");
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

/* Reads the whole log; caller frees.  NULL when it cannot be read. */
static char *read_log(const bw_test_stack_t *s) {
  FILE *f = fopen(s->log_path, "rb");
  if (!f)
    return NULL;
  size_t cap = 8192, len = 0;
  char *buf = malloc(cap);
  size_t n;
  while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
    len += n;
    if (cap - len < 4096) {
      char *bigger = realloc(buf, cap * 2);
      if (!bigger) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = bigger;
      cap *= 2;
    }
  }
  fclose(f);
  if (buf)
    buf[len] = '\0';
  return buf;
}

/* Takes the URL from the ready line of the log: true once it is there. */
static bool parse_ready_line(bw_test_stack_t *s) {
  char *log = read_log(s);
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
  char *log = read_log(s);
  fprintf(stderr, "---- %s ----\n%s\n", s->log_path, log ? log : "(no log)");
  free(log);
  /* broadway-run keeps each program's own log in <data>/log/. */
  const char *names[] = {"ferretdb", "fcgi", "reaper", "nginx", "nginx-error"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/log/%s.log", s->data_dir, names[i]);
    print_tail(path, 25);
  }
  fprintf(stderr, "---- end of logs ----\n");
}

/* Waits for the ready line; false if the script died or time ran out. */
static bool wait_ready(bw_test_stack_t *s) {
  double deadline = now_s() + READY_TIMEOUT_S;
  while (now_s() < deadline) {
    if (parse_ready_line(s))
      return true;
    int status;
    if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
      fprintf(stderr, "itest: broadway-run exited (status %d) before ready\n",
              WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status));
      s->pid = -s->pid; /* reaped: the group may still hold children */
      return false;
    }
    sleep_ms(100);
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
  if (!find_run_script(script)) {
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
  random_hex(s->token, 32);
  set_mongo_uri(s);

  char config_path[PATH_MAX + 16];
  bool with_config = opts->config_text != NULL;
  if (with_config) {
    snprintf(config_path, sizeof config_path, "%s/test.conf", s->data_dir);
    if (write_file(config_path, opts->config_text) != 0) {
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

/* true while any process of group `pgid` is alive (zombies do not count:
 * once the script is gone its orphans are reaped by someone else). */
static bool group_alive(pid_t pgid) {
  DIR *proc = opendir("/proc");
  if (!proc)
    return kill(-pgid, 0) == 0;
  bool alive = false;
  struct dirent *e;
  while (!alive && (e = readdir(proc))) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9')
      continue;
    char path[300], stat[512];
    snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
    FILE *f = fopen(path, "r");
    if (!f)
      continue;
    size_t n = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[n] = '\0';
    char *rest = strrchr(stat, ')');
    char state;
    int ppid, pgrp;
    if (rest && sscanf(rest + 1, " %c %d %d", &state, &ppid, &pgrp) == 3)
      alive = pgrp == pgid && state != 'Z' && state != 'X';
  }
  closedir(proc);
  return alive;
}

/* Processes that escaped the group (daemonised) but run from our data dir:
 * still ours, found by the unique path in their command line.  Killed by
 * pid and reported, since a clean stop should not leave any. */
static void kill_leftovers(const bw_test_stack_t *s) {
  DIR *proc = opendir("/proc");
  if (!proc)
    return;
  struct dirent *e;
  while ((e = readdir(proc))) {
    pid_t pid = (pid_t)atoi(e->d_name);
    if (pid <= 0 || pid == getpid())
      continue;
    char path[300], cmd[4096];
    snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
    FILE *f = fopen(path, "rb");
    if (!f)
      continue;
    size_t n = fread(cmd, 1, sizeof cmd - 1, f);
    fclose(f);
    for (size_t i = 0; i < n; i++)
      if (cmd[i] == '\0')
        cmd[i] = ' ';
    cmd[n] = '\0';
    if (n > 0 && strstr(cmd, s->data_dir)) {
      fprintf(stderr, "itest: process %d outlived its stack: %s\n", pid, cmd);
      kill(pid, SIGKILL);
    }
  }
  closedir(proc);
}

static void reap_script(bw_test_stack_t *s) {
  if (s->pid > 0 && waitpid(s->pid, NULL, WNOHANG) == s->pid)
    s->pid = -s->pid;
}

static bool wait_group_gone(bw_test_stack_t *s, double seconds) {
  pid_t pgid = s->pid > 0 ? s->pid : -s->pid;
  double deadline = now_s() + seconds;
  for (;;) {
    reap_script(s);
    if (!group_alive(pgid))
      return true;
    if (now_s() >= deadline)
      return false;
    sleep_ms(50);
  }
}

static void stop_processes(bw_test_stack_t *s) {
  pid_t pgid = s->pid > 0 ? s->pid : -s->pid;
  kill(-pgid, SIGTERM);
  if (!wait_group_gone(s, TERM_GRACE_S)) {
    fprintf(stderr, "itest: stack %s ignored SIGTERM for %d s: SIGKILL\n",
            s->data_dir, TERM_GRACE_S);
    kill(-pgid, SIGKILL);
    wait_group_gone(s, 5);
  }
  if (s->pid > 0)
    waitpid(s->pid, NULL, 0);
  kill_leftovers(s);
  s->running = false;
}

static int remove_entry(const char *path, const struct stat *sb, int flag,
                        struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  remove(path);
  return 0;
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
    nftw(s->data_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
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

/* A client of its own for the calling process (mongoc clients must not
 * cross a fork). */
static mongoc_client_t *connect_db(const bw_test_stack_t *s) {
  mongoc_init();
  mongoc_log_set_handler(log_quietly, NULL);
  bson_error_t err;
  mongoc_uri_t *uri = mongoc_uri_new_with_error(s->mongo_uri, &err);
  if (!uri) {
    fprintf(stderr, "itest: bad mongo uri %s: %s\n", s->mongo_uri, err.message);
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
  mongoc_client_t *client = connect_db(s);
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
  mongoc_client_t *client = connect_db(s);
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
