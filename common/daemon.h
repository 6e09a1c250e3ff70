/* daemon.h - what a service program (the FastCGI pool, the reaper) does
 * before it serves, as an installed system service: its log file, its data
 * dir, and giving up root.
 *
 * Order: bw_daemon_log (as root, so /var/log may be written), create the
 * data dir, open sockets, then bw_daemon_drop, then bw_daemon_check_data_dir
 * (as the user that will write there).  Messages name the config key. */
#ifndef BW_DAEMON_H
#define BW_DAEMON_H

#include <stdbool.h>
#include <sys/types.h>

#include "config.h"
#include "error.h"

/* The uid and gid of cfg->user / cfg->group ("" : the caller's own).
 * Returns 0 or BW_EINVAL naming `user` or `group`. */
int bw_daemon_ids(const bw_config_t *cfg, uid_t *uid, gid_t *gid,
                  bw_error_t *error);

/* When cfg->log_file is set: makes it stderr (appending), owned by the
 * service's user when we are root, so a reopen after dropping root works.
 * Returns 0 or BW_EINVAL naming log_file. */
int bw_daemon_log(const bw_config_t *cfg, bw_error_t *error);

/* Creates cfg->data_dir (0700) when missing, owned by the service's user
 * when we are root.  Returns 0 or BW_EINVAL naming data_dir (also for a
 * relative data_dir while the working directory is /). */
int bw_daemon_make_data_dir(const bw_config_t *cfg, bw_error_t *error);

/* When root and cfg->user is set: takes that user's groups, gid and uid for
 * good.  Not root: `user` is ignored (with a warning when it names someone
 * else).  Returns 0 or BW_EINVAL naming user. */
int bw_daemon_drop(const bw_config_t *cfg, bw_error_t *error);

/* Fails (BW_EINVAL naming data_dir) when the data dir cannot be written by
 * the user we now are. */
int bw_daemon_check_data_dir(const bw_config_t *cfg, bw_error_t *error);

#endif
