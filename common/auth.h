/* auth.h - who may call: the cluster token, and the worker id header.
 *
 * Token comparison is constant-time in the length of the expected token, so
 * response timing says nothing about how much of a guess was right.  Nothing
 * here logs; never log a token. */
#ifndef BW_AUTH_H
#define BW_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "db.h"
#include "error.h"

/* true when `given` equals `expected`, in time independent of where they
 * differ.  NULL `given` is false; an empty or NULL `expected` (no cluster
 * token configured) matches nothing. */
bool bw_auth_token_equal(const char *given, const char *expected);

/* The Authorization header value ("<token>" or "Bearer <token>", NULL when
 * absent) against the cluster token.  "Bearer" is matched in any case and
 * followed by one or more blanks; an empty header counts as missing.  Returns 0
 * or BW_EAUTH with a message that never contains the token. */
int bw_auth_check(const char *authorization, const char *token,
                  bw_error_t *error);

/* The 2019 API's format rule (PROTOCOL-LATER.md §2.2): the header starts
 * with exactly "Bearer " and the token after it holds no space (split on
 * single spaces it gives exactly 2 parts). */
bool bw_auth_bearer_format(const char *authorization);

/* The 2019 API's check of the cluster token: 0, or BW_EAUTH "invalid token
 * format" (bw_auth_bearer_format) / "invalid token". */
int bw_auth_check_bearer(const char *authorization, const char *token,
                         bw_error_t *error);

/* The worker_id header (NULL when absent), parsed into *out (hex digits of
 * either case).  Returns 0, or BW_EINVAL "worker_id: missing" /
 * "worker_id: expected 24 hex digits". */
int bw_auth_worker_id(const char *header, bson_oid_t *out, bw_error_t *error);

#endif
