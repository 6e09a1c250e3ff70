#include "daemon.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

int bw_daemon_ids(const bw_config_t *cfg, uid_t *uid, gid_t *gid,
                  bw_error_t *error) {
  *uid = geteuid();
  *gid = getegid();
  if (cfg->user[0] != '\0') {
    struct passwd *pw = getpwnam(cfg->user);
    if (pw == NULL)
      return bw_error_set(error, BW_EINVAL, "user: no such user \"%s\"",
                          cfg->user);
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
  }
  if (cfg->group[0] != '\0') {
    struct group *gr = getgrnam(cfg->group);
    if (gr == NULL)
      return bw_error_set(error, BW_EINVAL, "group: no such group \"%s\"",
                          cfg->group);
    *gid = gr->gr_gid;
  }
  return 0;
}

/* As root, hands `path` to the service's user: what we create before
 * dropping root must stay ours after. */
static void give_to_service_user(const bw_config_t *cfg, const char *path) {
  uid_t uid;
  gid_t gid;

  if (geteuid() == 0 && bw_daemon_ids(cfg, &uid, &gid, NULL) == 0 &&
      chown(path, uid, gid) < 0)
    bw_log_warn("cannot give %s to uid %d: %s", path, (int)uid,
                strerror(errno));
}

int bw_daemon_log(const bw_config_t *cfg, bw_error_t *error) {
  if (cfg->log_file[0] == '\0')
    return 0;
  if (bw_log_open_file(cfg->log_file) < 0)
    return bw_error_set(error, BW_EINVAL, "log_file: cannot open %s: %s",
                        cfg->log_file, strerror(errno));
  give_to_service_user(cfg, cfg->log_file);
  return 0;
}

int bw_daemon_make_data_dir(const bw_config_t *cfg, bw_error_t *error) {
  char cwd[8];
  struct stat st;

  /* The default "var", started from / without a config (a unit file with
   * no -c and no /etc/broadway/broadway.conf), would be the system's /var. */
  if (cfg->data_dir[0] != '/' && getcwd(cwd, sizeof cwd) != NULL &&
      strcmp(cwd, "/") == 0)
    return bw_error_set(error, BW_EINVAL,
                        "data_dir: relative (\"%s\") while running in /: give "
                        "an absolute data_dir or -c CONFIG",
                        cfg->data_dir);
  if (stat(cfg->data_dir, &st) == 0) {
    if (!S_ISDIR(st.st_mode))
      return bw_error_set(error, BW_EINVAL, "data_dir: %s is not a directory",
                          cfg->data_dir);
    return 0;
  }
  if (mkdir(cfg->data_dir, 0700) < 0)
    return bw_error_set(error, BW_EINVAL, "data_dir: cannot create %s: %s",
                        cfg->data_dir, strerror(errno));
  give_to_service_user(cfg, cfg->data_dir);
  return 0;
}

int bw_daemon_drop(const bw_config_t *cfg, bw_error_t *error) {
  uid_t uid;
  gid_t gid;
  int rc = bw_daemon_ids(cfg, &uid, &gid, error);

  if (rc < 0 || cfg->user[0] == '\0')
    return rc;
  if (geteuid() != 0) {
    if (uid != geteuid())
      bw_log_warn("user: not started as root, staying uid %d (not %s)",
                  (int)geteuid(), cfg->user);
    return 0;
  }
  if (initgroups(cfg->user, gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
    return bw_error_set(error, BW_EINVAL, "user: cannot become %s: %s",
                        cfg->user, strerror(errno));
  /* setuid() from root drops the saved uid too: there is no way back. */
  if (uid != 0 && setuid(0) == 0)
    return bw_error_set(error, BW_EINVAL, "user: still able to regain root");
  return 0;
}

int bw_daemon_check_data_dir(const bw_config_t *cfg, bw_error_t *error) {
  if (access(cfg->data_dir, W_OK | X_OK) < 0)
    return bw_error_set(error, BW_EINVAL,
                        "data_dir: %s is not writable by uid %d: %s",
                        cfg->data_dir, (int)geteuid(), strerror(errno));
  return 0;
}
