/* pool.h - the FastCGI parent: forks cfg->workers worker processes on the
 * listening socket and forks a new one for each that dies.
 *
 * Signals (the parent's pid never changes):
 *   SIGTERM, SIGINT  stop: workers finish the request they serve (within
 *                    stop_timeout, then they are killed); returns 0.
 *   SIGHUP           reload: the config file is read again (`load`), and
 *                    the courses file it names (course.h); a new
 *                    generation of workers starts with them while the old
 *                    one finishes its requests, so no request fails.  A
 *                    config or courses file that does not load is logged
 *                    and changes nothing.
 *   SIGUSR1          reopen log_file (logrotate), and replace the workers
 *                    the same way so they write to the new file.
 *
 * The parent never touches the database and never accepts a connection: a
 * worker that crashes takes only its own request with it.  Workers stay in
 * the parent's process group, so a kill of the group reaches them too. */
#ifndef BW_FCGI_POOL_H
#define BW_FCGI_POOL_H

#include "config.h"
#include "course.h"
#include "error.h"

/* Loads and checks a config (bw_config_load plus what the pool needs). */
typedef int (*bw_fcgi_load_fn)(bw_config_t *cfg, const char *path,
                               bw_error_t *error);

/* Runs until a stop signal.  cfg is copied; courses (cfg's courses file as
 * loaded at start, NULL for none) is taken over and freed here;
 * config_path (NULL: none) is what `load` reads again on SIGHUP;
 * listen_name is for the log. */
int bw_fcgi_pool_run(int listen_fd, const char *listen_name,
                     const bw_config_t *cfg, bw_courses_t *courses,
                     bw_fcgi_load_fn load, const char *config_path);

#endif
