/* pool.h - the FastCGI parent: forks cfg->workers worker processes on the
 * listening socket, forks a new one for each that dies, and on SIGTERM,
 * SIGINT or SIGHUP stops them all.
 *
 * The parent never touches the database and never accepts a connection: a
 * worker that crashes takes only its own request with it.  Workers stay in
 * the parent's process group, so a kill of the group reaches them too. */
#ifndef BW_FCGI_POOL_H
#define BW_FCGI_POOL_H

#include "config.h"

/* Runs until a stop signal, then gives workers a few seconds to finish the
 * request they are serving, kills what is left, and returns 0. */
int bw_fcgi_pool_run(int listen_fd, const bw_config_t *cfg);

#endif
