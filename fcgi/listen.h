/* listen.h - the FastCGI listening socket of the pool.
 *
 * In order of preference: a socket systemd passed (LISTEN_FDS, fd 3), a
 * listening socket on fd 0 (spawn-fcgi, mod_fcgid: the FastCGI convention),
 * else one opened from cfg->listen: "unix:PATH" (owner listen_owner, group
 * listen_group, mode listen_mode; its directory is created when missing) or
 * "HOST:PORT" (TCP, for a web server on another machine).  Every socket is
 * non-blocking (workers race to accept) and close-on-exec.
 *
 * bw_listen_open() fills a caller-owned bw_listen_t; bw_listen_close()
 * closes it and removes a unix socket file it created. */
#ifndef BW_FCGI_LISTEN_H
#define BW_FCGI_LISTEN_H

#include <stdbool.h>

#include "config.h"
#include "error.h"

typedef struct bw_listen {
  int fd;
  char name[BW_PATH_MAX + 8];    /* for logs: "unix:/run/..", "fd 0", ... */
  char unlink_path[BW_PATH_MAX]; /* the socket file we made, else "" */
} bw_listen_t;

/* Returns 0, or BW_EINVAL with `listen` (or listen_owner, listen_group)
 * named in the message. */
int bw_listen_open(bw_listen_t *out, const bw_config_t *cfg, bw_error_t *error);
void bw_listen_close(bw_listen_t *l);

/* true when the settings that shape the socket or the process identity
 * differ: those need a restart, a reload keeps the old ones. */
bool bw_listen_changed(const bw_config_t *a, const bw_config_t *b);

#endif
