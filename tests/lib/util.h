/* util.h - the small system helpers that the test library (stack.c,
 * fault.c, http.c, itest.c) and the benchmark programs share, so that each
 * exists once: a monotonic clock, files, a free port, the run script, a
 * growable buffer, a connection to the stack.
 *
 * Nothing here needs Check, libcurl or libmongoc: bench/ links util.o alone.
 * Strings returned are caller-owned where said; nothing keeps state. */
#ifndef BW_TEST_UTIL_H
#define BW_TEST_UTIL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

/* Seconds on CLOCK_MONOTONIC, and a sleep that survives signals. */
double bw_test_now(void);
void bw_test_sleep_ms(long ms);

/* `digits` random hex digits (at most 128) and a NUL into out. */
void bw_test_random_hex(char *out, size_t digits);

/* RFC 3986 percent-encoding of everything but unreserved characters. */
void bw_test_percent_encode(const char *in, char *out, size_t cap);

/* mongodb://<percent-encoded socket path>/?serverSelectionTimeoutMS=10000 */
void bw_test_socket_uri(const char *sock, char *out, size_t cap);

/* Writes text to path (truncating).  Returns 0, or -1. */
int bw_test_write_file(const char *path, const char *text);

/* The whole file (also /proc files, whose size stat does not know),
 * NUL-terminated; caller frees.  *len (may be NULL) gets its size.  NULL
 * when it cannot be read. */
char *bw_test_read_file(const char *path, size_t *len);

/* rm -rf dir. */
void bw_test_remove_tree(const char *dir);

/* One line (printf format, newline added, cut at 255 bytes) written whole
 * with one write(2) to fd: processes sharing an O_APPEND event log never
 * interleave.  _exit(90) when the write fails (a forked helper's log is
 * its result). */
void bw_test_event(int fd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A port of first..last that nothing listens on right now, starting at a
 * place that depends on the pid and the time (so parallel binaries spread
 * out), skipping those `taken` (may be NULL) says are promised elsewhere.
 * Binding without SO_REUSEADDR also skips ports lingering in TIME_WAIT.
 * -1 when none is free. */
int bw_test_free_port(int first, int last, bool (*taken)(int port));

/* scripts/broadway-run: $BROADWAY_RUN, else the first directory at or above
 * $BROADWAY_BIN, then the current directory, that holds it. */
bool bw_test_find_run_script(char out[PATH_MAX]);

/* setenv(name, "<value>"). */
void bw_test_set_env_int(const char *name, int value);

/* In a forked child before exec: stdin from /dev/null, stdout and stderr
 * appended to log_path (NULL: /dev/null), every other fd closed.  _exits
 * 126 when it cannot. */
void bw_test_redirect_output(const char *log_path);

/* Appends n bytes to the growable *data (length *len, capacity *cap,
 * always NUL-terminated).  Returns 0, or -1 when out of memory. */
int bw_test_buf_append(char **data, size_t *len, size_t *cap, const char *src,
                       size_t n);

/* A TCP connection to 127.0.0.1:port, or -1. */
int bw_test_connect_local(int port);

#endif
