#include "error.h"

#include <stdio.h>
#include <string.h>

int bw_error_set(bw_error_t *error, int code, const char *fmt, ...) {
  if (error != NULL) {
    va_list ap;
    va_start(ap, fmt);
    error->code = code;
    vsnprintf(error->message, sizeof error->message, fmt, ap);
    va_end(ap);
  }
  return code;
}

int bw_error_sys(bw_error_t *error, int errnum) {
  return bw_error_set(error, BW_ESYS, "%s", strerror(errnum));
}

int bw_error_http_status(int code, int queue_empty_code) {
  switch (code) {
  case BW_OK:
    return 200;
  case BW_EINVAL:
    return 400;
  case BW_EAUTH:
    return 401;
  case BW_ENOTFOUND:
    return 404;
  case BW_ECONFLICT:
    return 409;
  case BW_ETOOBIG:
    return 413;
  case BW_EEMPTY:
    return queue_empty_code;
  case BW_EDB:
    return 503;
  default:
    return 500;
  }
}

const char *bw_error_name(int code) {
  switch (code) {
  case BW_OK:
    return "OK";
  case BW_ENOMEM:
    return "ENOMEM";
  case BW_EINVAL:
    return "EINVAL";
  case BW_ENOTFOUND:
    return "ENOTFOUND";
  case BW_ECONFLICT:
    return "ECONFLICT";
  case BW_EDUP:
    return "EDUP";
  case BW_EDB:
    return "EDB";
  case BW_EEMPTY:
    return "EEMPTY";
  case BW_EAUTH:
    return "EAUTH";
  case BW_ETOOBIG:
    return "ETOOBIG";
  case BW_ESYS:
    return "ESYS";
  default:
    return "EINTERNAL";
  }
}
