/* api.h - the broadway CLI's client of the JSON API: where the API is and
 * the token (flags, then BROADWAY_API / BROADWAY_TOKEN, then the config
 * file), one call = one request, and one clear message per way a call can
 * fail (connection refused, 401, 404, 409, 503, ...).
 *
 * Ownership: a successful call gives *data, a new json-c reference (the
 * JSend "data", possibly NULL), which the caller puts. */
#ifndef BW_CLI_API_H
#define BW_CLI_API_H

#include <json-c/json.h>
#include <stdbool.h>

/* Exit statuses of the broadway command (also in broadway.1). */
enum {
  CLI_OK = 0,
  CLI_RUN_FAILED = 1, /* run --wait: the run failed or was cancelled */
  CLI_USAGE = 2,
  CLI_UNREACHABLE = 3, /* no answer: connection refused, timeout, DNS */
  CLI_REFUSED = 4,     /* an HTTP error status: 4xx, 5xx */
};

typedef struct cli_api {
  char url[512];     /* base, without a trailing slash */
  char token[512];   /* "" when none was found */
  char source[1100]; /* where the token came from, for the 401 message */
} cli_api_t;

/* Fills api: explicit values (may be NULL) win over the environment, which
 * wins over $XDG_CONFIG_HOME/broadway/config (~/.config/broadway/config):
 * lines `api = URL` and `token = T` (# comments).  Returns 0, or CLI_USAGE
 * with a message on stderr (an unreadable or malformed file). */
int cli_api_init(cli_api_t *api, const char *url, const char *token);

/* METHOD path (with body, a JSON text, or NULL).  Returns CLI_OK and *data,
 * or CLI_UNREACHABLE / CLI_REFUSED after printing what went wrong and what
 * to do on stderr.  *status (may be NULL) gets the HTTP status (0: none). */
int cli_api_call(const cli_api_t *api, const char *method, const char *path,
                 const char *body, json_object **data, long *status);

#endif
