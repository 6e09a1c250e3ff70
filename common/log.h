/* log.h - one line per event on stderr: time, program, pid, level, text.
 * stderr may be a log file (bw_log_open_file: log_file of the config),
 * shared by the pool, its workers and the reaper.
 *
 * Never pass a token or a request body to these: what is logged is read by
 * people who must not be able to grade as the cluster. */
#ifndef BW_LOG_H
#define BW_LOG_H

enum { BW_LOG_DEBUG, BW_LOG_INFO, BW_LOG_WARN, BW_LOG_ERROR };

/* Program name shown in every line ("fcgi", "reaper", ...); the string must
 * outlive all logging (a literal). BROADWAY_LOG=debug|info|warn|error filters.
 */
void bw_log_init(const char *program);
void bw_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Opens `path` for appending (0640, created if missing) and makes it this
 * process's stderr, so every line, and what libraries print, lands there;
 * forked children inherit it.  Call it again to reopen after a rotation.
 * Returns 0, or -1 with stderr unchanged and errno set. */
int bw_log_open_file(const char *path);

#define bw_log_debug(...) bw_log(BW_LOG_DEBUG, __VA_ARGS__)
#define bw_log_info(...) bw_log(BW_LOG_INFO, __VA_ARGS__)
#define bw_log_warn(...) bw_log(BW_LOG_WARN, __VA_ARGS__)
#define bw_log_error(...) bw_log(BW_LOG_ERROR, __VA_ARGS__)

#endif
