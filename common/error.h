/* error.h - the one error convention of the project.
 *
 * Every fallible function returns 0 (or a non-negative count) on success and a
 * negative BW_E* code on failure, libuv style.  Functions that can explain a
 * failure to a user take a `bw_error_t *error` as their last argument; on
 * failure they fill it with the code and a message that names the offending
 * field (the message goes straight into the JSend reply).  `error` may be NULL
 * when the caller does not need the text.  bw_error_t is a plain value: the
 * caller owns it, usually on the stack. */
#ifndef BW_ERROR_H
#define BW_ERROR_H

#include <stdarg.h>
#include <stddef.h>

enum {
  BW_OK = 0,
  BW_ENOMEM = -1,    /* allocation failed                         -> 500 */
  BW_EINVAL = -2,    /* the client sent something wrong            -> 400 */
  BW_ENOTFOUND = -3, /* no such run / job / worker                 -> 404 */
  BW_ECONFLICT = -4, /* valid request, wrong state (not owner ...) -> 409 */
  BW_EDUP = -5,      /* a unique key was already taken (internal)       */
  BW_EDB = -6,       /* database unreachable or failed             -> 503 */
  BW_EEMPTY = -7,    /* the queue has nothing to hand out          -> 498 */
  BW_EAUTH = -8,     /* bad token or unknown worker                -> 401 */
  BW_ETOOBIG = -9,   /* over a configured limit                    -> 413 */
  BW_EINTERNAL = -10, /* a bug or an impossible state              -> 500 */
  BW_ESYS = -11       /* a system call or the network failed     -> 500 */
};

typedef struct bw_error {
  int code;
  char message[512];
} bw_error_t;

/* Fills `error` (if not NULL) and returns `code`, so a failure is one line:
 *   return bw_error_set(error, BW_EINVAL, "students[%d]: expected an object",
 * i); */
int bw_error_set(bw_error_t *error, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* bw_error_set(error, BW_ESYS, "%s", strerror(errnum)): for a failed
 * system call whose callers print only the reason (the grader's logs).
 * BW_ESYS is the grader's: the service never returns it to a client. */
int bw_error_sys(bw_error_t *error, int errnum);

/* The HTTP status that a BW_E* code maps to (queue_empty_code for BW_EEMPTY
 * comes from the config, so it is passed in). */
int bw_error_http_status(int code, int queue_empty_code);

/* A short constant name for logs: "EINVAL", ... */
const char *bw_error_name(int code);

#endif
