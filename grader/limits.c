#include "limits.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "validate.h"

void gr_limits_default(gr_limits_t *limits) {
  limits->memory = (uint64_t)1 << 30;
  limits->cpus = 1;
  limits->pids = 256;
  limits->disk = (uint64_t)1 << 30;
  limits->output = (uint64_t)64 << 20;
}

/* A size key of the stage, capped; `*out` keeps the cap when absent. */
static int size_key(json_object *stage, const char *key, uint64_t cap,
                    uint64_t *out, bw_error_t *error) {
  json_object *value;
  uint64_t bytes;

  *out = cap;
  if (!json_object_object_get_ex(stage, key, &value) || value == NULL)
    return 0;
  if (!bw_validate_size(value, &bytes) || bytes == 0)
    return bw_error_set(error, BW_EINVAL,
                        "%s: expected bytes, or a size such as \"512m\"", key);
  if (bytes < cap)
    *out = bytes;
  return 0;
}

static int number_key(json_object *stage, const char *key, double cap,
                      double *out, bw_error_t *error) {
  json_object *value;
  double n;

  *out = cap;
  if (!json_object_object_get_ex(stage, key, &value) || value == NULL)
    return 0;
  if (!json_object_is_type(value, json_type_int) &&
      !json_object_is_type(value, json_type_double))
    return bw_error_set(error, BW_EINVAL, "%s: expected a number", key);
  n = json_object_get_double(value);
  if (!(n > 0))
    return bw_error_set(error, BW_EINVAL, "%s: expected a number > 0", key);
  if (n < cap)
    *out = n;
  return 0;
}

int gr_limits_of_stage(json_object *stage, const gr_limits_t *caps,
                       gr_limits_t *out, bw_error_t *error) {
  double pids;

  if (size_key(stage, "memory", caps->memory, &out->memory, error) ||
      number_key(stage, "cpus", caps->cpus, &out->cpus, error) ||
      number_key(stage, "pids", (double)caps->pids, &pids, error) ||
      size_key(stage, "disk", caps->disk, &out->disk, error) ||
      size_key(stage, "output", caps->output, &out->output, error))
    return BW_EINVAL;
  out->pids = pids < 1 ? 1 : (long)pids;
  return 0;
}

const char *gr_killed_by_name(gr_killed_by_t reason) {
  static const char *const names[] = {
      [GR_KILLED_MEMORY] = "memory", [GR_KILLED_PIDS] = "pids",
      [GR_KILLED_CPU] = "cpu",       [GR_KILLED_DISK] = "disk",
      [GR_KILLED_OUTPUT] = "output", [GR_KILLED_TIMEOUT] = "timeout"};
  return reason == GR_KILLED_NONE ? NULL : names[reason];
}

json_object *gr_killed_by_limit(gr_killed_by_t reason,
                                const gr_limits_t *limits, int timeout_ms) {
  switch (reason) {
  case GR_KILLED_MEMORY:
    return json_object_new_int64((int64_t)limits->memory);
  case GR_KILLED_PIDS:
    return json_object_new_int64(limits->pids);
  case GR_KILLED_CPU:
    return json_object_new_double(limits->cpus);
  case GR_KILLED_DISK:
    return json_object_new_int64((int64_t)limits->disk);
  case GR_KILLED_OUTPUT:
    return json_object_new_int64((int64_t)limits->output);
  case GR_KILLED_TIMEOUT:
    return json_object_new_double(timeout_ms / 1000.0);
  default:
    return NULL;
  }
}
