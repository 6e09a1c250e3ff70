#include "auth.h"

#include <string.h>
#include <strings.h>

bool bw_auth_token_equal(const char *given, const char *expected) {
  /* volatile: keeps the compiler from turning the loop into an early-exit
   * comparison. */
  volatile unsigned char diff;
  size_t expected_len, given_len, i;

  if (given == NULL || expected == NULL || expected[0] == '\0')
    return false; /* an unset cluster token lets nobody in */
  expected_len = strlen(expected);
  given_len = strlen(given);
  diff = given_len != expected_len;
  /* Always expected_len rounds; past the end of `given` compare against its
   * terminating NUL, so a short guess costs the same as a long one. */
  for (i = 0; i < expected_len; i++) {
    size_t j = i < given_len ? i : given_len;
    diff |= (unsigned char)(given[j] ^ expected[i]);
  }
  return diff == 0;
}

/* "Bearer <token>" (any case, any run of blanks) -> "<token>". */
static const char *strip_bearer(const char *value) {
  if (strncasecmp(value, "bearer", 6) != 0 ||
      (value[6] != ' ' && value[6] != '\t'))
    return value;
  value += 6;
  while (*value == ' ' || *value == '\t')
    value++;
  return value;
}

int bw_auth_check(const char *authorization, const char *token,
                  bw_error_t *error) {
  if (authorization == NULL || authorization[0] == '\0')
    return bw_error_set(error, BW_EAUTH, "Authorization: missing");
  if (!bw_auth_token_equal(strip_bearer(authorization), token))
    return bw_error_set(error, BW_EAUTH, "Authorization: invalid token");
  return 0;
}

bool bw_auth_bearer_format(const char *authorization) {
  return authorization != NULL &&
         strncmp(authorization, "Bearer ", 7) == 0 &&
         strchr(authorization + 7, ' ') == NULL;
}

int bw_auth_check_bearer(const char *authorization, const char *token,
                         bw_error_t *error) {
  if (!bw_auth_bearer_format(authorization))
    return bw_error_set(error, BW_EAUTH, "invalid token format");
  if (!bw_auth_token_equal(authorization + 7, token))
    return bw_error_set(error, BW_EAUTH, "invalid token");
  return 0;
}

int bw_auth_worker_id(const char *header, bson_oid_t *out, bw_error_t *error) {
  if (header == NULL || header[0] == '\0')
    return bw_error_set(error, BW_EINVAL, "worker_id: missing");
  if (!bw_db_oid_parse(header, out))
    return bw_error_set(error, BW_EINVAL, "worker_id: expected 24 hex digits");
  return 0;
}
