/* fault.h - what fault-injection tests need beyond stack.h: finding the
 * processes of a running stack, a stack that can be SIGKILLed as a whole and
 * started again on the same data dir, a FerretDB of the test's own that it
 * can kill and restart, and the response headers of a request.
 *
 * Processes are found through /proc: a stack's process group is the one led
 * by the run script, recognised by BROADWAY_DATA=<its data dir> in its
 * environment; inside it, each program by its command name (comm).
 *
 * Ownership: *_start() allocates, *_stop() frees; strings returned by the
 * accessors live as long as the object. */
#ifndef BW_TEST_FAULT_H
#define BW_TEST_FAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* ---- processes ---------------------------------------------------------- */

/* The process group of the stack whose data dir is `data_dir` (the pid of
 * its run script), or -1 when no such stack runs. */
pid_t bw_fault_stack_pgid(const char *data_dir);

/* Live (non-zombie) processes of group `pgid` whose comm is `comm`
 * ("broadway-fcgi", "ferretdb", "nginx", "broadway-reape" - comm is cut at 15
 * characters).  Fills at most `max` pids; returns how many there are. */
int bw_fault_group_find(pid_t pgid, const char *comm, pid_t *pids, int max);

/* The FastCGI parent of group `pgid` (-1 if none) and its live children, the
 * workers: fills at most `max`; returns how many there are. */
pid_t bw_fault_fcgi_parent(pid_t pgid);
int bw_fault_fcgi_workers(pid_t pgid, pid_t *pids, int max);

/* true while any non-zombie process of group `pgid` is alive. */
bool bw_fault_group_alive(pid_t pgid);

/* Processes, in any group, that still run with `data_dir` in their command
 * line or BROADWAY_DATA=<data_dir> in their environment, except the caller.
 * Fills at most `max` pids; returns how many there are. */
int bw_fault_data_dir_users(const char *data_dir, pid_t *pids, int max);

/* SIGTERM to group `pgid`, SIGKILL after `grace_s` seconds; returns once
 * none of it is left (5 s more at most), reaping those that are the
 * caller's children.  false when it took the SIGKILL. */
bool bw_fault_group_stop(pid_t pgid, int grace_s);

/* SIGKILLs, and names on stderr, every process bw_fault_data_dir_users()
 * finds: a stack that stopped cleanly leaves none. */
void bw_fault_kill_data_dir_users(const char *data_dir);

/* ---- a stack that can be killed as a whole and started again ------------ */

typedef struct bw_fault_stack bw_fault_stack_t;

typedef struct bw_fault_stack_opts {
  const char *label;       /* part of the data dir name */
  int heartbeat;           /* BROADWAY_HEARTBEAT; 0: default */
  int workers;             /* BROADWAY_WORKERS; 0: default */
  const char *config_text; /* written to <data>/test.conf; NULL: none */
  const char *mongo_uri;   /* BROADWAY_MONGO_URI; NULL: embedded FerretDB */
} bw_fault_stack_opts_t;

/* Starts scripts/broadway-run (found like stack.h does) in a new process
 * group on a fresh data dir under /tmp and a free port of 25000-25999, and
 * waits (60 s) for its ready line.  NULL after printing the log. */
bw_fault_stack_t *bw_fault_stack_start(const bw_fault_stack_opts_t *opts);

/* Starts the run script again on the same data dir, port and token (after a
 * kill).  Returns 0 once ready, -1 after printing the log. */
int bw_fault_stack_restart(bw_fault_stack_t *s);

/* SIGKILL to the whole process group, then waits (10 s) until none of it
 * is left.  Returns 0, or -1 when something survived. */
int bw_fault_stack_kill9(bw_fault_stack_t *s);

/* SIGTERM to the group (SIGKILL after 10 s), removes the data dir unless
 * keep_data, frees.  Safe with NULL. */
void bw_fault_stack_stop(bw_fault_stack_t *s, bool keep_data);

const char *bw_fault_stack_url(const bw_fault_stack_t *s);
const char *bw_fault_stack_token(const bw_fault_stack_t *s);
const char *bw_fault_stack_data_dir(const bw_fault_stack_t *s);
pid_t bw_fault_stack_pgid_of(const bw_fault_stack_t *s);
void bw_fault_stack_print_log(const bw_fault_stack_t *s);

/* ---- a FerretDB of the test's own --------------------------------------- */

typedef struct bw_fault_ferretdb bw_fault_ferretdb_t;

/* Starts bin/ferretdb (under $BROADWAY_BIN, else ./bin) on a fresh dir with
 * the flags scripts/broadway-run uses, in a process group of its own, and
 * waits for its socket.  NULL on failure. */
bw_fault_ferretdb_t *bw_fault_ferretdb_start(void);

/* kill -9, and wait until it is gone.  From any process. */
void bw_fault_ferretdb_kill9(bw_fault_ferretdb_t *f);

/* Starts it again on the same socket and data.  Returns 0 once the socket
 * is there, -1 otherwise.  From any process: the new one lives on after
 * the caller (its pid is kept in <dir>/ferretdb.pid). */
int bw_fault_ferretdb_restart(bw_fault_ferretdb_t *f);

/* Kills it (by the pid file) and removes its dir. Safe with NULL. */
void bw_fault_ferretdb_stop(bw_fault_ferretdb_t *f);

/* mongodb://<socket>/ for BROADWAY_MONGO_URI. */
const char *bw_fault_ferretdb_uri(const bw_fault_ferretdb_t *f);

/* ---- HTTP and database odds and ends ------------------------------------ */

/* GET url with `authorization` (may be NULL); copies the value of response
 * header `name` (case-insensitive) to out ("" when absent).  Returns the
 * HTTP status, 0 when no response came. */
long bw_fault_http_header(const char *url, const char *authorization,
                          const char *name, char *out, size_t cap);

/* A text that changes when any document of any collection of `db_name`
 * is inserted, deleted or changed: per collection (sorted by name) its
 * count and an order-independent hash of its documents' bytes.  For
 * asserting that a rejected request changed nothing at all (but for the
 * `refused` note a refused result leaves on its hand-out for the job's
 * diagnostics, which is left out of the hash).  Returns 0, or
 * -1 after printing the driver error. */
int bw_fault_db_fingerprint(const char *mongo_uri, const char *db_name,
                            char *out, size_t cap);

/* Runs `argv` (argv[0] a path) to completion with extra environment
 * `env` (NULL-terminated "NAME=value" list, may be NULL), output appended
 * to `log_path` (NULL: /dev/null).  Returns its exit status, -1 if it could
 * not run or was killed. */
int bw_fault_run(char *const argv[], char *const env[], const char *log_path);

/* The directory of the service's binaries: $BROADWAY_BIN, else "bin". */
const char *bw_fault_bin_dir(void);

#endif
