#include "listen.h"

#include <errno.h>
#include <fcgiapp.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <netdb.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"

#define LISTEN_BACKLOG 1024

static bool is_listening_socket(int fd) {
  int on = 0;
  socklen_t len = sizeof on;

  return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on;
}

/* systemd socket activation: LISTEN_PID is us, the socket is fd 3. */
static int inherited_fd(void) {
  const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");

  if (pid != NULL && fds != NULL && atol(pid) == (long)getpid() &&
      atoi(fds) >= 1 && is_listening_socket(3))
    return 3;
  if (is_listening_socket(0))
    return 0;
  return -1;
}

/* Is a server already accepting on this socket?  (A file left behind by a
 * killed server refuses connections; that one we may replace.) */
static bool socket_in_use(const char *path) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  bool in_use;

  if (fd < 0)
    return false;
  memcpy(sa.sun_path, path, strlen(path) + 1);
  in_use = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
  close(fd);
  return in_use;
}

/* The owner and group the socket gets: listen_owner/listen_group, else the
 * service's user and group. */
static int socket_ids(const bw_config_t *cfg, uid_t *uid, gid_t *gid,
                      bw_error_t *error) {
  int rc = bw_daemon_ids(cfg, uid, gid, error);

  if (rc < 0)
    return rc;
  if (cfg->listen_owner[0] != '\0') {
    struct passwd *pw = getpwnam(cfg->listen_owner);
    if (pw == NULL)
      return bw_error_set(error, BW_EINVAL, "listen_owner: no such user \"%s\"",
                          cfg->listen_owner);
    *uid = pw->pw_uid;
  }
  if (cfg->listen_group[0] != '\0') {
    struct group *gr = getgrnam(cfg->listen_group);
    if (gr == NULL)
      return bw_error_set(error, BW_EINVAL,
                          "listen_group: no such group \"%s\"",
                          cfg->listen_group);
    *gid = gr->gr_gid;
  }
  return 0;
}

/* The socket's directory, when missing: private (0700) unless the socket
 * is meant for its group (0750) or everyone (0755). */
static int make_socket_dir(const char *path, const bw_config_t *cfg, uid_t uid,
                           gid_t gid, bw_error_t *error) {
  char copy[BW_PATH_MAX];
  mode_t mode = (cfg->listen_mode & 007)   ? 0755
                : (cfg->listen_mode & 070) ? 0750
                                           : 0700;
  const char *dir;

  snprintf(copy, sizeof copy, "%s", path);
  dir = dirname(copy);
  if (mkdir(dir, mode) < 0) {
    if (errno == EEXIST)
      return 0;
    return bw_error_set(error, BW_EINVAL, "listen: cannot create %s: %s", dir,
                        strerror(errno));
  }
  chmod(dir, mode); /* past the umask */
  if (geteuid() == 0 && chown(dir, uid, gid) < 0)
    bw_log_warn("listen: cannot chown %s: %s", dir, strerror(errno));
  return 0;
}

static int open_unix(bw_listen_t *out, const char *path, const bw_config_t *cfg,
                     bw_error_t *error) {
  struct sockaddr_un sa;
  mode_t old_mask;
  uid_t uid;
  gid_t gid;
  int fd, rc;

  /* libfcgi reads "host:port" as TCP */
  if (path[0] == '\0' || strlen(path) >= sizeof sa.sun_path ||
      strchr(path, ':') != NULL)
    return bw_error_set(error, BW_EINVAL,
                        "listen: a socket path must be 1 to %zu bytes with "
                        "no ':': %s",
                        sizeof sa.sun_path - 1, path);
  if ((rc = socket_ids(cfg, &uid, &gid, error)) < 0 ||
      (rc = make_socket_dir(path, cfg, uid, gid, error)) < 0)
    return rc;
  if (socket_in_use(path))
    return bw_error_set(error, BW_EINVAL,
                        "listen: another server is already listening on %s",
                        path);
  if (unlink(path) < 0 && errno != ENOENT)
    return bw_error_set(error, BW_EINVAL, "listen: cannot remove stale %s: %s",
                        path, strerror(errno));
  old_mask = umask(077); /* no moment with a socket open to all */
  fd = FCGX_OpenSocket(path, LISTEN_BACKLOG);
  umask(old_mask);
  if (fd < 0)
    return bw_error_set(error, BW_EINVAL, "listen: cannot listen on %s", path);
  snprintf(out->unlink_path, sizeof out->unlink_path, "%s", path);
  if ((geteuid() == 0 && chown(path, uid, gid) < 0) ||
      chmod(path, (mode_t)cfg->listen_mode) < 0) {
    rc = errno;
    close(fd);
    unlink(path);
    out->unlink_path[0] = '\0';
    return bw_error_set(error, BW_EINVAL,
                        "listen_mode: cannot set owner and mode of %s: %s",
                        path, strerror(rc));
  }
  return fd;
}

/* "HOST:PORT", "[V6]:PORT" or ":PORT" (every address). */
static int open_tcp(const char *spec, bw_error_t *error) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC,
                           .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
  char host[256];
  const char *colon = strrchr(spec, ':'), *port;
  struct addrinfo *res = NULL;
  size_t len;
  int fd = -1, on = 1, gai;

  if (colon == NULL || colon[1] == '\0')
    return bw_error_set(error, BW_EINVAL,
                        "listen: expected unix:PATH or HOST:PORT, got \"%s\"",
                        spec);
  port = colon + 1;
  len = (size_t)(colon - spec);
  if (len >= 2 && spec[0] == '[' && spec[len - 1] == ']') {
    spec++;
    len -= 2;
  }
  if (len >= sizeof host)
    return bw_error_set(error, BW_EINVAL, "listen: host too long");
  memcpy(host, spec, len);
  host[len] = '\0';
  gai = getaddrinfo(len ? host : NULL, port, &hints, &res);
  if (gai != 0)
    return bw_error_set(error, BW_EINVAL, "listen: %s:%s: %s", host, port,
                        gai_strerror(gai));
  fd = socket(res->ai_family, res->ai_socktype, res->ai_protocol);
  if (fd >= 0) {
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 ||
        listen(fd, LISTEN_BACKLOG) < 0) {
      int saved = errno;
      close(fd);
      fd = -1;
      errno = saved;
    }
  }
  freeaddrinfo(res);
  if (fd < 0)
    return bw_error_set(error, BW_EINVAL, "listen: cannot listen on %s: %s",
                        colon == spec ? port : host, strerror(errno));
  return fd;
}

int bw_listen_open(bw_listen_t *out, const bw_config_t *cfg,
                   bw_error_t *error) {
  int fd = inherited_fd();

  memset(out, 0, sizeof *out);
  out->fd = -1;
  if (fd >= 0) {
    snprintf(out->name, sizeof out->name, "inherited socket (fd %d)", fd);
  } else {
    if (strncmp(cfg->listen, "unix:", 5) == 0)
      fd = open_unix(out, cfg->listen + 5, cfg, error);
    else if (cfg->listen[0] == '/')
      fd = open_unix(out, cfg->listen, cfg, error);
    else
      fd = open_tcp(cfg->listen, error);
    if (fd < 0)
      return fd;
    snprintf(out->name, sizeof out->name, "%s", cfg->listen);
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  out->fd = fd;
  return 0;
}

void bw_listen_close(bw_listen_t *l) {
  if (l->fd >= 0)
    close(l->fd);
  l->fd = -1;
  /* Only a file we made, and not one a newer server made in its place. */
  if (l->unlink_path[0] != '\0' && !socket_in_use(l->unlink_path))
    unlink(l->unlink_path);
  l->unlink_path[0] = '\0';
}

bool bw_listen_changed(const bw_config_t *a, const bw_config_t *b) {
  return strcmp(a->listen, b->listen) != 0 ||
         strcmp(a->listen_owner, b->listen_owner) != 0 ||
         strcmp(a->listen_group, b->listen_group) != 0 ||
         a->listen_mode != b->listen_mode || strcmp(a->user, b->user) != 0 ||
         strcmp(a->group, b->group) != 0;
}
