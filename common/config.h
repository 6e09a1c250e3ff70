/* config.h - every tunable of the service, in one struct.
 *
 * bw_config_load() fills a caller-owned bw_config_t in three layers: the
 * built-in defaults, then the config file (`broadway.conf`, documented
 * in-line; `key = value`, `#` comments), then environment overrides
 * (BROADWAY_*), which win.  Nothing in the struct is heap-allocated, so it can
 * be copied freely and needs no cleanup. */
#ifndef BW_CONFIG_H
#define BW_CONFIG_H

#include <stddef.h>

#include "error.h"

#define BW_PATH_MAX 1024

typedef struct bw_config {
  /* where and who */
  int port;                    /* BROADWAY_PORT, 1470: nginx listen port */
  char listen_host[64];        /* BROADWAY_HOST, 127.0.0.1 */
  char data_dir[BW_PATH_MAX];  /* BROADWAY_DATA, "var" */
  char token[256];             /* BROADWAY_TOKEN, else <data_dir>/token */
  char mongo_uri[BW_PATH_MAX]; /* BROADWAY_MONGO_URI, else embedded FerretDB */
  char db_name[64];            /* BROADWAY_DB, "broadway" */
  char socket_path[BW_PATH_MAX]; /* FastCGI socket, <data_dir>/run/fcgi.sock */
  int workers;                   /* BROADWAY_WORKERS, 4 FastCGI processes */
  char courses_file[BW_PATH_MAX]; /* BROADWAY_COURSES, "": no courses (the
                                     2019 API's course tokens, course.h) */

  /* deployment (names as php-fpm has them; see fcgi/listen.h) */
  char listen[BW_PATH_MAX];   /* "unix:PATH" or "HOST:PORT"; "" until loaded,
                                 then unix:<socket_path> unless the file set
                                 it */
  char listen_owner[64];      /* "": the user the pool runs as */
  char listen_group[64];      /* "": that user's group */
  int listen_mode;            /* 0600: of the unix socket */
  char user[64];              /* "": when started as root, stay root */
  char group[64];             /* "": the user's primary group */
  char log_file[BW_PATH_MAX]; /* "": stderr; else appended, reopened on
                                 SIGUSR1 */
  int stop_timeout;           /* 10 s: requests in flight finish on stop and
                                 reload, then workers are killed */
  int reaper_timeout_ms;      /* 60000: a reaper pass's database call may take
                                 this long before it counts as slow */
  int socket_timeout_ms;      /* 0: db_timeout_ms; not a file key (the reaper
                                 sets it to reaper_timeout_ms) */

  /* protocol */
  int heartbeat;        /* BROADWAY_HEARTBEAT, 10 s between grader heartbeats */
  int queue_empty_code; /* 498 */
  int max_attempts;     /* 3 hand-outs of a job before it fails */
  int claim_grace; /* 60 s: a claim with no hand-out after this is re-queued */
  int default_timeout;  /* 30 s stage timeout when a stage gives none */
  int max_timeout;      /* 86400 s: the largest stage timeout accepted */
  int db_timeout_ms;    /* 5000: no database call blocks a request longer */
  int queue_partitions; /* 16 queue collections: see queue.h for why */
  int forget_workers;   /* 86400 s: the reaper deletes graders silent longer */
  int poll_wait; /* BROADWAY_POLL_WAIT, 18 s an empty-queue poll may wait */
  int stream_keepalive; /* 20 s between an SSE stream's keep-alive comments */
  int keep_output;      /* 0 (forever): stage output kept this long (retain.h) */

  /* limits on what clients send */
  size_t max_body;       /* 64 MiB: larger bodies get 413 (nginx and us) */
  int max_students;      /* 100000 per run */
  int max_stages;        /* 64 per pipeline */
  int max_env;           /* 1024 entries per env object */
  size_t max_env_name;   /* 256 bytes */
  size_t max_env_value;  /* 65536 bytes */
  size_t max_string;     /* 4096 bytes: image, host_name, entry_point items */
  size_t max_info_bytes; /* 4 MiB: a result's `info`, serialised */
  size_t max_logs_bytes; /* 4 MiB: a result's `logs`, serialised */
  int max_depth;         /* 32: JSON nesting depth */

  /* what a stage may use on a grader (its keys memory, cpus, pids, disk,
   * output): the default when a stage gives none, and the most it may ask */
  size_t default_memory; /* 1 GiB of RAM, no swap */
  size_t max_memory;     /* 16 GiB */
  double default_cpus;   /* 1 CPU */
  double max_cpus;       /* 64 CPUs */
  int default_pids;      /* 256 processes and threads */
  int max_pids;          /* 65536 */
  size_t default_disk;   /* 1 GiB: the size of /job */
  size_t max_disk;       /* 64 GiB */
  size_t default_output; /* 64 MiB of stdout + stderr */
  size_t max_output;     /* 4 GiB */
} bw_config_t;

/* Defaults only; never fails, touches no file.  socket_path is
 * "var/run/fcgi.sock" and mongo_uri "" (only bw_config_load derives them). */
void bw_config_init(bw_config_t *cfg);

/* Defaults, then `path` (NULL or "" to skip the file), then the environment.
 * Reads <data_dir>/token when BROADWAY_TOKEN is unset and the file exists.
 * Returns 0, or BW_EINVAL with the file, line and key in error->message.
 *
 * In order: an empty BROADWAY_* variable counts as unset.  Once data_dir is
 * final (after the environment): socket_path, unless the file set it,
 * becomes <data_dir>/run/fcgi.sock; token, if still empty (neither
 * BROADWAY_TOKEN nor a `token` line), is read from <data_dir>/token with
 * trailing blanks and newlines removed; mongo_uri, if still empty, becomes
 * the embedded FerretDB's mongodb://<percent-encoded absolute
 * <data_dir>/run/ferretdb.sock> (data_dir itself is left as given).  A
 * trailing '/' of data_dir is dropped.  default_timeout > max_timeout is an
 * error, and so is a default_<limit> over its max_<limit>.  A '#' starts a
 * comment at the start of a line or after a blank. Messages never contain the
 * token. */
int bw_config_load(bw_config_t *cfg, const char *path, bw_error_t *error);

/* Sets one option by its file name (`heartbeat`, `max_body`, ...).
 * Returns 0, or BW_EINVAL for an unknown key or a bad value. */
int bw_config_set(bw_config_t *cfg, const char *key, const char *value,
                  bw_error_t *error);

/* The config file a program reads when given no -c: ./broadway.conf when
 * it exists (a source tree, `make run`), else BW_SYSTEM_CONFIG when it
 * exists (an installed service), else NULL (defaults and environment). */
#define BW_SYSTEM_CONFIG "/etc/broadway/broadway.conf"
const char *bw_config_default_path(void);

#endif
