/* fault.c - see fault.h. */
#include "fault.h"

#include "http.h"
#include "stack.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <mongoc/mongoc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PORT_FIRST 25000
#define PORT_LAST 25999
#define READY_MARK "broadway: ready on "
#define READY_TIMEOUT_S 60
#define TERM_GRACE_S 10

/* ---- small helpers ------------------------------------------------------ */

/* true when the NUL-separated list buf[0..len) has an entry equal to s. */
static bool nul_list_has(const char *buf, size_t len, const char *s) {
  size_t slen = strlen(s);
  for (size_t i = 0; i < len;) {
    size_t n = strnlen(buf + i, len - i);
    if (n == slen && memcmp(buf + i, s, slen) == 0)
      return true;
    i += n + 1;
  }
  return false;
}

typedef struct proc_stat {
  char comm[32];
  char state;
  pid_t ppid;
  pid_t pgrp;
} proc_stat_t;

static bool read_proc_stat(pid_t pid, proc_stat_t *st) {
  char path[64], *buf;
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  if (!(buf = bw_test_read_file(path, NULL)))
    return false;
  char *open_paren = strchr(buf, '('), *close_paren = strrchr(buf, ')');
  bool ok = false;
  if (open_paren && close_paren && close_paren > open_paren) {
    size_t n = (size_t)(close_paren - open_paren - 1);
    if (n >= sizeof st->comm)
      n = sizeof st->comm - 1;
    memcpy(st->comm, open_paren + 1, n);
    st->comm[n] = '\0';
    int ppid, pgrp;
    ok = sscanf(close_paren + 1, " %c %d %d", &st->state, &ppid, &pgrp) == 3;
    st->ppid = ppid;
    st->pgrp = pgrp;
  }
  free(buf);
  return ok && st->state != 'Z' && st->state != 'X';
}

/* Calls fn(pid, stat, ctx) for every live process; stops when fn returns
 * true. */
static void each_process(bool (*fn)(pid_t, const proc_stat_t *, void *),
                         void *ctx) {
  DIR *proc = opendir("/proc");
  struct dirent *e;
  if (!proc)
    return;
  while ((e = readdir(proc))) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9')
      continue;
    pid_t pid = (pid_t)atoi(e->d_name);
    proc_stat_t st;
    if (read_proc_stat(pid, &st) && fn(pid, &st, ctx))
      break;
  }
  closedir(proc);
}

typedef struct pid_list {
  pid_t pgid;
  pid_t ppid; /* 0: any */
  const char *comm;
  const char *data_dir;
  pid_t *pids;
  int max;
  int n;
} pid_list_t;

static void pid_list_add(pid_list_t *l, pid_t pid) {
  if (l->n < l->max)
    l->pids[l->n] = pid;
  l->n++;
}

/* ---- processes ---------------------------------------------------------- */

static bool environ_has_data_dir(pid_t pid, const char *data_dir) {
  char path[64], entry[PATH_MAX + 32];
  size_t len;
  snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
  snprintf(entry, sizeof entry, "BROADWAY_DATA=%s", data_dir);
  char *env = bw_test_read_file(path, &len);
  bool found = env && nul_list_has(env, len, entry);
  free(env);
  return found;
}

static bool find_leader(pid_t pid, const proc_stat_t *st, void *ctx) {
  pid_list_t *l = ctx;
  if (st->pgrp != pid || !environ_has_data_dir(pid, l->data_dir))
    return false;
  pid_list_add(l, pid);
  return true;
}

pid_t bw_fault_stack_pgid(const char *data_dir) {
  pid_t pid = -1;
  pid_list_t l = {.data_dir = data_dir, .pids = &pid, .max = 1};
  each_process(find_leader, &l);
  return l.n > 0 ? pid : -1;
}

static bool match_group_comm(pid_t pid, const proc_stat_t *st, void *ctx) {
  pid_list_t *l = ctx;
  if (st->pgrp == l->pgid && (!l->comm || strcmp(st->comm, l->comm) == 0) &&
      (l->ppid == 0 || st->ppid == l->ppid))
    pid_list_add(l, pid);
  return false;
}

int bw_fault_group_find(pid_t pgid, const char *comm, pid_t *pids, int max) {
  pid_list_t l = {.pgid = pgid, .comm = comm, .pids = pids, .max = max};
  each_process(match_group_comm, &l);
  return l.n;
}

pid_t bw_fault_fcgi_parent(pid_t pgid) {
  pid_t pids[64];
  int n = bw_fault_group_find(pgid, "broadway-fcgi", pids, 64);
  for (int i = 0; i < n && i < 64; i++) {
    proc_stat_t st, parent;
    if (!read_proc_stat(pids[i], &st))
      continue;
    if (!read_proc_stat(st.ppid, &parent) ||
        strcmp(parent.comm, "broadway-fcgi") != 0)
      return pids[i];
  }
  return -1;
}

int bw_fault_fcgi_workers(pid_t pgid, pid_t *pids, int max) {
  pid_t parent = bw_fault_fcgi_parent(pgid);
  if (parent < 0)
    return 0;
  pid_list_t l = {.pgid = pgid,
                  .ppid = parent,
                  .comm = "broadway-fcgi",
                  .pids = pids,
                  .max = max};
  each_process(match_group_comm, &l);
  return l.n;
}

bool bw_fault_group_alive(pid_t pgid) {
  pid_t pid;
  return pgid > 0 && bw_fault_group_find(pgid, NULL, &pid, 1) > 0;
}

static bool match_data_dir(pid_t pid, const proc_stat_t *st, void *ctx) {
  pid_list_t *l = ctx;
  char path[64];
  size_t len;
  (void)st;
  if (pid == getpid())
    return false;
  snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
  char *cmd = bw_test_read_file(path, &len);
  bool found = false;
  if (cmd) {
    for (size_t i = 0; i < len; i++)
      if (cmd[i] == '\0')
        cmd[i] = ' ';
    found = strstr(cmd, l->data_dir) != NULL;
    free(cmd);
  }
  if (found || environ_has_data_dir(pid, l->data_dir))
    pid_list_add(l, pid);
  return false;
}

int bw_fault_data_dir_users(const char *data_dir, pid_t *pids, int max) {
  pid_list_t l = {.data_dir = data_dir, .pids = pids, .max = max};
  each_process(match_data_dir, &l);
  return l.n;
}

static bool wait_group_gone(pid_t pgid, double seconds) {
  double deadline = bw_test_now() + seconds;
  for (;;) {
    while (waitpid(-pgid, NULL, WNOHANG) > 0) {
    }
    if (!bw_fault_group_alive(pgid))
      return true;
    if (bw_test_now() >= deadline)
      return false;
    bw_test_sleep_ms(50);
  }
}

bool bw_fault_group_stop(pid_t pgid, int grace_s) {
  kill(-pgid, SIGTERM);
  if (wait_group_gone(pgid, grace_s))
    return true;
  kill(-pgid, SIGKILL);
  wait_group_gone(pgid, 5);
  return false;
}

void bw_fault_kill_data_dir_users(const char *data_dir) {
  pid_t pids[64];
  int n = bw_fault_data_dir_users(data_dir, pids, 64);
  for (int i = 0; i < n && i < 64; i++) {
    fprintf(stderr, "itest: process %d outlived its stack\n", (int)pids[i]);
    kill(pids[i], SIGKILL);
  }
}

/* ---- finding things ----------------------------------------------------- */

const char *bw_fault_bin_dir(void) {
  const char *bin = getenv("BROADWAY_BIN");
  return bin && *bin ? bin : "bin";
}

int bw_fault_run(char *const argv[], char *const env[], const char *log_path) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    bw_test_redirect_output(log_path);
    for (size_t i = 0; env && env[i]; i++)
      putenv(env[i]);
    signal(SIGPIPE, SIG_DFL);
    execv(argv[0], argv);
    _exit(127);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ---- a stack that can be killed as a whole ------------------------------ */

struct bw_fault_stack {
  pid_t pgid;
  int port;
  int heartbeat;
  int workers;
  int starts;
  bool has_config;
  char data_dir[PATH_MAX];
  char log_path[PATH_MAX + 32];
  char config_path[PATH_MAX + 32];
  char url[256];
  char token[65];
  char mongo_uri[PATH_MAX];
};

static void exec_script(const bw_fault_stack_t *s, const char *script) {
  setpgid(0, 0);
  bw_test_redirect_output(s->log_path);
  bw_test_stack_opts_t opts = {.heartbeat = s->heartbeat,
                               .workers = s->workers};
  bw_test_stack_setenv(s->data_dir, s->port, s->token, &opts,
                       s->has_config ? s->config_path : NULL);
  if (s->mongo_uri[0])
    setenv("BROADWAY_MONGO_URI", s->mongo_uri, 1);
  else
    unsetenv("BROADWAY_MONGO_URI");
  signal(SIGPIPE, SIG_DFL);
  execl(script, script, (char *)NULL);
  fprintf(stderr, "fault: cannot run %s: %s\n", script, strerror(errno));
  _exit(127);
}

static bool log_has_ready_line(const bw_fault_stack_t *s) {
  char *log = bw_test_read_file(s->log_path, NULL);
  bool ready = log && strstr(log, READY_MARK) != NULL;
  free(log);
  return ready;
}

void bw_fault_stack_print_log(const bw_fault_stack_t *s) {
  if (!s)
    return;
  char *log = bw_test_read_file(s->log_path, NULL);
  fprintf(stderr, "---- %s ----\n%s\n---- end of log ----\n", s->log_path,
          log ? log : "(no log)");
  free(log);
}

/* One start of the run script, logging to a new file per start so that the
 * ready line of an earlier start does not count. */
static int launch(bw_fault_stack_t *s) {
  char script[PATH_MAX];
  if (!bw_test_find_run_script(script)) {
    fprintf(stderr, "fault: scripts/broadway-run not found\n");
    return -1;
  }
  s->starts++;
  snprintf(s->log_path, sizeof s->log_path, "%s/stack-%d.log", s->data_dir,
           s->starts);
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0)
    exec_script(s, script);
  setpgid(pid, pid);
  s->pgid = pid;
  double deadline = bw_test_now() + READY_TIMEOUT_S;
  while (bw_test_now() < deadline) {
    if (log_has_ready_line(s))
      return 0;
    if (waitpid(pid, NULL, WNOHANG) == pid) {
      fprintf(stderr, "fault: broadway-run exited before it was ready\n");
      bw_fault_stack_print_log(s);
      return -1;
    }
    bw_test_sleep_ms(100);
  }
  fprintf(stderr, "fault: no ready line after %d s\n", READY_TIMEOUT_S);
  bw_fault_stack_print_log(s);
  return -1;
}

bw_fault_stack_t *bw_fault_stack_start(const bw_fault_stack_opts_t *opts) {
  bw_fault_stack_t *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  s->heartbeat = opts->heartbeat;
  s->workers = opts->workers;
  snprintf(s->data_dir, sizeof s->data_dir, "/tmp/fault-%s-XXXXXX",
           opts->label ? opts->label : "stack");
  s->port = bw_test_free_port(PORT_FIRST, PORT_LAST, NULL);
  if (!mkdtemp(s->data_dir) || s->port < 0) {
    fprintf(stderr, "fault: no data dir or no free port\n");
    free(s);
    return NULL;
  }
  snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d", s->port);
  bw_test_random_hex(s->token, 32);
  if (opts->mongo_uri)
    snprintf(s->mongo_uri, sizeof s->mongo_uri, "%s", opts->mongo_uri);
  if (opts->config_text) {
    s->has_config = true;
    snprintf(s->config_path, sizeof s->config_path, "%s/test.conf",
             s->data_dir);
    if (bw_test_write_file(s->config_path, opts->config_text) != 0) {
      free(s);
      return NULL;
    }
  }
  if (launch(s) != 0) {
    bw_fault_stack_stop(s, true);
    return NULL;
  }
  return s;
}

int bw_fault_stack_restart(bw_fault_stack_t *s) {
  return launch(s);
}

/* The group of the stack right now: a restart in another (forked) process
 * made a new one, so it is looked up rather than remembered. */
static pid_t current_pgid(const bw_fault_stack_t *s) {
  pid_t pgid = bw_fault_stack_pgid(s->data_dir);
  return pgid > 0 ? pgid : s->pgid;
}

int bw_fault_stack_kill9(bw_fault_stack_t *s) {
  pid_t pgid = current_pgid(s);
  kill(-pgid, SIGKILL);
  return wait_group_gone(pgid, 10) ? 0 : -1;
}

void bw_fault_stack_stop(bw_fault_stack_t *s, bool keep_data) {
  if (!s)
    return;
  pid_t pgid = current_pgid(s);
  if (pgid > 0 && bw_fault_group_alive(pgid))
    bw_fault_group_stop(pgid, TERM_GRACE_S);
  bw_fault_kill_data_dir_users(s->data_dir);
  if (keep_data)
    fprintf(stderr, "fault: kept the stack's data dir: %s\n", s->data_dir);
  else
    bw_test_remove_tree(s->data_dir);
  free(s);
}

const char *bw_fault_stack_url(const bw_fault_stack_t *s) {
  return s->url;
}

const char *bw_fault_stack_token(const bw_fault_stack_t *s) {
  return s->token;
}

const char *bw_fault_stack_data_dir(const bw_fault_stack_t *s) {
  return s->data_dir;
}

pid_t bw_fault_stack_pgid_of(const bw_fault_stack_t *s) {
  return current_pgid(s);
}

/* ---- a FerretDB of the test's own --------------------------------------- */

struct bw_fault_ferretdb {
  char dir[PATH_MAX];
  char sock[PATH_MAX + 32];
  char pid_path[PATH_MAX + 32];
  char uri[PATH_MAX * 3 + 64];
};

static pid_t ferretdb_pid(const bw_fault_ferretdb_t *f) {
  char *text = bw_test_read_file(f->pid_path, NULL);
  pid_t pid = text ? (pid_t)atoi(text) : -1;
  free(text);
  return pid > 0 ? pid : -1;
}

static bool pid_alive(pid_t pid) {
  proc_stat_t st;
  while (waitpid(pid, NULL, WNOHANG) > 0) {
  }
  return read_proc_stat(pid, &st);
}

/* Where the run script finds it: $BROADWAY_BIN/ferretdb, else the repo's
 * bin/ (a SAN build's bin dir has no FerretDB). */
static void ferretdb_exe(char exe[PATH_MAX]) {
  char script[PATH_MAX];
  snprintf(exe, PATH_MAX, "%.*s/ferretdb", PATH_MAX - 16, bw_fault_bin_dir());
  if (access(exe, X_OK) == 0 || !bw_test_find_run_script(script))
    return;
  char *tail = strstr(script, "/scripts/broadway-run");
  if (tail) {
    strcpy(tail, "/bin/ferretdb");
    snprintf(exe, PATH_MAX, "%s", script);
  }
}

static int ferretdb_launch(bw_fault_ferretdb_t *f) {
  char exe[PATH_MAX], sqlite[PATH_MAX + 32], listen[PATH_MAX * 2],
      state[PATH_MAX + 32], log_path[PATH_MAX + 32];
  ferretdb_exe(exe);
  snprintf(sqlite, sizeof sqlite, "--sqlite-url=file:%s/db/", f->dir);
  snprintf(listen, sizeof listen, "--listen-unix=%s", f->sock);
  snprintf(state, sizeof state, "--state-dir=%s/state", f->dir);
  snprintf(log_path, sizeof log_path, "%s/ferretdb.log", f->dir);
  unlink(f->sock); /* stale after a kill -9 */
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    setpgid(0, 0);
    bw_test_redirect_output(log_path);
    execl(exe, exe, "--handler=sqlite", sqlite, "--telemetry=disable",
          "--listen-addr=", listen, "--debug-addr=-", state,
          "--log-level=error", (char *)NULL);
    _exit(127);
  }
  setpgid(pid, pid);
  char text[32];
  snprintf(text, sizeof text, "%d\n", (int)pid);
  if (bw_test_write_file(f->pid_path, text) != 0)
    return -1;
  struct stat st;
  for (int i = 0; i < 300; i++) {
    if (stat(f->sock, &st) == 0 && S_ISSOCK(st.st_mode))
      return 0;
    if (!pid_alive(pid))
      break;
    bw_test_sleep_ms(100);
  }
  fprintf(stderr, "fault: FerretDB did not come up on %s\n", f->sock);
  return -1;
}

bw_fault_ferretdb_t *bw_fault_ferretdb_start(void) {
  bw_fault_ferretdb_t *f = calloc(1, sizeof *f);
  if (!f)
    return NULL;
  snprintf(f->dir, sizeof f->dir, "/tmp/fault-fdb-XXXXXX");
  if (!mkdtemp(f->dir)) {
    free(f);
    return NULL;
  }
  char sub[PATH_MAX + 16];
  snprintf(sub, sizeof sub, "%s/db", f->dir);
  mkdir(sub, 0700);
  snprintf(sub, sizeof sub, "%s/state", f->dir);
  mkdir(sub, 0700);
  snprintf(f->sock, sizeof f->sock, "%s/ferretdb.sock", f->dir);
  snprintf(f->pid_path, sizeof f->pid_path, "%s/ferretdb.pid", f->dir);
  bw_test_socket_uri(f->sock, f->uri, sizeof f->uri);
  if (ferretdb_launch(f) != 0) {
    bw_fault_ferretdb_stop(f);
    return NULL;
  }
  return f;
}

void bw_fault_ferretdb_kill9(bw_fault_ferretdb_t *f) {
  pid_t pid = ferretdb_pid(f);
  if (pid < 0)
    return;
  kill(pid, SIGKILL);
  for (int i = 0; i < 100 && pid_alive(pid); i++)
    bw_test_sleep_ms(50);
}

int bw_fault_ferretdb_restart(bw_fault_ferretdb_t *f) {
  return ferretdb_launch(f);
}

void bw_fault_ferretdb_stop(bw_fault_ferretdb_t *f) {
  if (!f)
    return;
  bw_fault_ferretdb_kill9(f);
  bw_test_remove_tree(f->dir);
  free(f);
}

const char *bw_fault_ferretdb_uri(const bw_fault_ferretdb_t *f) {
  return f->uri;
}

/* ---- HTTP and database odds and ends ------------------------------------ */

long bw_fault_http_header(const char *url, const char *authorization,
                          const char *name, char *out, size_t cap) {
  bw_test_http_req_t req = {.method = "GET", .url = url,
                            .authorization = authorization, .timeout_s = 30};
  bw_test_http_resp_t resp;
  long status = bw_test_http_send(&req, &resp);

  bw_test_http_header(&resp, name, out, cap);
  bw_test_http_resp_cleanup(&resp);
  return status;
}

/* FNV-1a of one document's bytes. */
static uint64_t doc_hash(const bson_t *doc) {
  const uint8_t *p = bson_get_data(doc);
  uint64_t h = 1469598103934665603ULL;
  for (uint32_t i = 0; i < doc->len; i++) {
    h ^= p[i];
    h *= 1099511628211ULL;
  }
  return h;
}

static int compare_strings(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends "name:count:hash;" for one collection. */
static int fingerprint_collection(mongoc_database_t *db, const char *name,
                                  char *out, size_t cap, size_t *len) {
  mongoc_collection_t *coll = mongoc_database_get_collection(db, name);
  bson_t empty = BSON_INITIALIZER;
  mongoc_cursor_t *cursor =
      mongoc_collection_find_with_opts(coll, &empty, NULL, NULL);
  const bson_t *doc;
  uint64_t sum = 0, count = 0;
  bson_error_t err;
  int rc = 0;
  while (mongoc_cursor_next(cursor, &doc)) {
    /* The note a refused result leaves on its hand-out (job.h) is the one
     * thing a rejected request may write: the job's diagnostics. */
    bson_t kept = BSON_INITIALIZER;
    bson_copy_to_excluding_noinit(doc, &kept, "refused", "refused_at", NULL);
    sum += doc_hash(&kept);
    bson_destroy(&kept);
    count++;
  }
  if (mongoc_cursor_error(cursor, &err)) {
    fprintf(stderr, "fault: reading %s: %s\n", name, err.message);
    rc = -1;
  }
  mongoc_cursor_destroy(cursor);
  bson_destroy(&empty);
  mongoc_collection_destroy(coll);
  if (*len < cap)
    *len +=
        (size_t)snprintf(out + *len, cap - *len, "%s:%llu:%016llx;", name,
                         (unsigned long long)count, (unsigned long long)sum);
  return rc;
}

int bw_fault_db_fingerprint(const char *mongo_uri, const char *db_name,
                            char *out, size_t cap) {
  mongoc_client_t *client = bw_test_db_connect(mongo_uri);
  bson_error_t err;
  size_t len = 0;
  int rc = 0;
  out[0] = '\0';
  if (!client)
    return -1;
  mongoc_database_t *db = mongoc_client_get_database(client, db_name);
  char **names = mongoc_database_get_collection_names_with_opts(db, NULL, &err);
  if (!names) {
    fprintf(stderr, "fault: listing collections: %s\n", err.message);
    rc = -1;
  }
  size_t n = 0;
  while (names && names[n])
    n++;
  if (n > 0)
    qsort(names, n, sizeof *names, compare_strings);
  for (size_t i = 0; rc == 0 && i < n; i++)
    rc = fingerprint_collection(db, names[i], out, cap, &len);
  bson_strfreev(names);
  mongoc_database_destroy(db);
  mongoc_client_destroy(client);
  return rc;
}
