/* stack.h - the real Broadway stack (FerretDB, FastCGI pool, nginx, reaper)
 * for integration tests, started through scripts/broadway-run.
 *
 * A test binary starts one stack in main(), before srunner_run_all(), and
 * stops it afterwards; the forked tests reach it through globals.  Each stack
 * gets a fresh data dir (/tmp/itest-<label>-XXXXXX), a free port in
 * 23000-23999, a random token, and its own process group, so stopping it
 * (SIGTERM to the group, SIGKILL after 10 s) leaves nothing behind.
 *
 * Where things are found: the run script is <repo>/scripts/broadway-run,
 * <repo> being the first directory above $BROADWAY_BIN (or the current
 * directory) that holds it; $BROADWAY_RUN overrides.  When
 * $BROADWAY_MONGO_URI is set the stack uses that MongoDB with a database of
 * its own instead of starting FerretDB.
 *
 * Ownership: bw_test_stack_start() allocates, bw_test_stack_stop() frees.
 * Strings returned by the accessors live as long as the stack. */
#ifndef BW_TEST_STACK_H
#define BW_TEST_STACK_H

#include <mongoc/mongoc.h>
#include <stdbool.h>

typedef struct bw_test_stack bw_test_stack_t;

typedef struct bw_test_stack_opts {
  const char *label; /* part of the data dir name; NULL: "stack" */
  int heartbeat;     /* BROADWAY_HEARTBEAT; 0: the service default */
  int workers;       /* BROADWAY_WORKERS; 0: the service default */
  /* When not NULL: written to <data>/test.conf, passed as BROADWAY_CONFIG. */
  const char *config_text;
} bw_test_stack_opts_t;

/* Starts the stack and waits (60 s at most) for "broadway: ready on" in its
 * log.  Returns the stack, or NULL after printing why and the log to stderr
 * (the data dir is then kept and its path printed).  opts may be NULL. */
bw_test_stack_t *bw_test_stack_start(const bw_test_stack_opts_t *opts);

/* In a forked child about to exec scripts/broadway-run: the environment
 * that gives it `data_dir`, `port` on 127.0.0.1, `token`, the heartbeat
 * and worker count of `opts`, and the config file (NULL: none).  fault.c
 * starts its stacks with it too. */
void bw_test_stack_setenv(const char *data_dir, int port, const char *token,
                          const bw_test_stack_opts_t *opts,
                          const char *config_path);

/* Stops the stack: SIGTERM to its process group, SIGKILL after 10 s.  Then
 * looks for sanitizer reports (ASan, UBSan, LeakSanitizer: a SAN=1 build)
 * in the programs' logs.  Removes the data dir unless `keep_data` (a test
 * failed) or a report was found: then prints its path.  Returns false when a
 * sanitizer report was found.  Safe with NULL.  Only the process that started
 * the stack acts, so a forked test that calls it (or exits through atexit)
 * cannot stop it. */
bool bw_test_stack_stop(bw_test_stack_t *stack, bool keep_data);

/* Stops every stack still running that this process started; for signal and
 * atexit paths. Keeps their data dirs. */
void bw_test_stack_stop_all(void);

const char *bw_test_stack_url(const bw_test_stack_t *stack); /* http://h:p */
const char *bw_test_stack_token(const bw_test_stack_t *stack);
const char *bw_test_stack_data_dir(const bw_test_stack_t *stack);
const char *bw_test_stack_mongo_uri(const bw_test_stack_t *stack);
const char *bw_test_stack_db_name(const bw_test_stack_t *stack);
int bw_test_stack_port(const bw_test_stack_t *stack);
int bw_test_stack_heartbeat(const bw_test_stack_t *stack); /* as configured */

/* Deletes every document of every collection of the service's database
 * (runs, rosters, jobs, the queue, claims, outcomes, marks, workers, ...)
 * through libmongoc, keeping the collections and their indexes, so a test
 * starts from an empty database.  Call it in the forked test (a checked
 * fixture): it makes its own client.  Returns 0, or -1 after printing the
 * driver error. */
int bw_test_db_reset(const bw_test_stack_t *stack);

/* A client of its own for the calling process (mongoc clients must not
 * cross a fork) on `mongo_uri`, with error API 2 and FerretDB's noise
 * filtered from the driver's log.  NULL after printing why. */
mongoc_client_t *bw_test_db_connect(const char *mongo_uri);

/* Number of documents in one collection (by name, e.g. "runs"; "queue" sums
 * the queue partitions queue_00, queue_01, ...), or -1 after
 * printing the driver error.  For asserting that a rejected request changed
 * nothing. */
long long bw_test_db_count(const bw_test_stack_t *stack, const char *coll);

/* true when any program log of the stack (the files in <data>/log, not the run
 * script's own output, which prints the token by design) contains `needle`.
 * For checking that no token is ever logged. */
bool bw_test_stack_logs_contain(const bw_test_stack_t *stack,
                                const char *needle);

/* The stack's log so far (<data>/stack.log) and the tail of each program's
 * log to stderr, for diagnosing. */
void bw_test_stack_print_log(const bw_test_stack_t *stack);

#endif
