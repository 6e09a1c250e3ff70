#include "workdir.h"

#include "error.h"

#include <dirent.h>
#include <limits.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define PREFIX "broadway-job-"
#define SWEEP_MIN_AGE_S 60

/* Returns the open, locked folder or BW_ESYS. */
static int lock_folder(int parent, const char *name, int how,
                       bw_error_t *error) {
  int fd =
      openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return bw_error_sys(error, errno);
  if (flock(fd, how) != 0) {
    int rc = bw_error_sys(error, errno);
    close(fd);
    return rc;
  }
  return fd;
}

int gr_workdir_create(gr_workdir_t *dir, const char *base, bw_error_t *error) {
  dir->lock_fd = -1;
  dir->mounted = false;
  if ((size_t)snprintf(dir->path, sizeof dir->path, "%s/" PREFIX "XXXXXX",
                       base) >= sizeof dir->path)
    return bw_error_sys(error, ENAMETOOLONG);
  if (mkdtemp(dir->path) == NULL)
    return bw_error_sys(error, errno);
  dir->lock_fd = lock_folder(AT_FDCWD, dir->path, LOCK_EX, error);
  if (dir->lock_fd < 0) {
    int rc = dir->lock_fd;
    rmdir(dir->path);
    return rc;
  }
  return 0;
}

int gr_workdir_bound(gr_workdir_t *dir, uint64_t bytes, bw_error_t *error) {
  char opts[64];

  snprintf(opts, sizeof opts, "size=%llu,mode=0700", (unsigned long long)bytes);
  if (!dir->mounted) {
    int fd;
    if (mount("tmpfs", dir->path, "tmpfs", MS_NOSUID | MS_NODEV, opts) != 0)
      return bw_error_sys(error, errno);
    dir->mounted = true;
    /* The lock moves to the tmpfs: a sweeping grader opens the path, which
     * now leads there, not to the folder under it. */
    fd = lock_folder(AT_FDCWD, dir->path, LOCK_EX, error);
    if (fd < 0)
      return fd;
    close(dir->lock_fd);
    dir->lock_fd = fd;
    return 0;
  }
  if (mount("tmpfs", dir->path, "tmpfs", MS_REMOUNT | MS_NOSUID | MS_NODEV,
            opts) != 0)
    return errno == EINVAL
               ? bw_error_set(error, BW_ETOOBIG, "it already holds more")
               : bw_error_sys(error, errno);
  return 0;
}

bool gr_workdir_full(const gr_workdir_t *dir) {
  struct statvfs st;

  return dir->mounted && statvfs(dir->path, &st) == 0 && st.f_bavail == 0;
}

int gr_workdir_probe_bound(const char *base, bw_error_t *error) {
  gr_workdir_t dir;
  int rc = gr_workdir_create(&dir, base, error);

  if (rc == 0) {
    rc = gr_workdir_bound(&dir, 1 << 20, error);
    gr_workdir_remove(&dir, NULL);
  }
  return rc;
}

int gr_workdir_write(const gr_workdir_t *dir, const char *name,
                     const char *data, size_t len, bw_error_t *error) {
  char path[4200];
  int fd, rc = 0;

  snprintf(path, sizeof path, "%s/%s", dir->path, name);
  fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0)
    return bw_error_sys(error, errno);
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      rc = bw_error_sys(error, errno);
      break;
    }
    data += n;
    len -= (size_t)n;
  }
  if (close(fd) != 0 && rc == 0)
    rc = bw_error_sys(error, errno);
  return rc;
}

static int remove_at(int parent, const char *name, bw_error_t *error);

/* Empties the open directory fd (consumed).  Returns 0 or BW_ESYS (the
 * first failure; it goes on with the rest). */
static int remove_children(int fd, bw_error_t *error) {
  DIR *dir;
  struct dirent *entry;
  int rc = 0;

  /* A stage may have made a folder read-only; as its owner we may undo
   * that, and must, to delete what is inside. */
  fchmod(fd, 0700);
  dir = fdopendir(fd);
  if (dir == NULL) {
    rc = bw_error_sys(error, errno);
    close(fd);
    return rc;
  }
  while ((entry = readdir(dir)) != NULL) {
    int r;
    if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
      continue;
    r = remove_at(dirfd(dir), entry->d_name, rc == 0 ? error : NULL);
    if (r != 0 && rc == 0)
      rc = r;
  }
  closedir(dir);
  return rc;
}

/* Returns 0 or BW_ESYS (the first failure). */
static int remove_at(int parent, const char *name, bw_error_t *error) {
  int fd, rc;

  if (unlinkat(parent, name, 0) == 0)
    return 0;
  if (errno != EISDIR && errno != EPERM)
    return bw_error_sys(error, errno);
  /* O_NOFOLLOW: a symlink is unlinked above, never entered. */
  fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return bw_error_sys(error, errno);
  rc = remove_children(fd, error);
  if (unlinkat(parent, name, AT_REMOVEDIR) != 0 && rc == 0)
    rc = bw_error_sys(error, errno);
  return rc;
}

int gr_workdir_remove(gr_workdir_t *dir, bw_error_t *error) {
  int rc = 0;

  /* Unmounting frees everything the stages wrote there at once. */
  if (dir->mounted && umount2(dir->path, MNT_DETACH) != 0)
    rc = bw_error_sys(error, errno);
  dir->mounted = false;
  if (rc == 0)
    rc = remove_at(AT_FDCWD, dir->path, error);

  if (dir->lock_fd >= 0)
    close(dir->lock_fd);
  dir->lock_fd = -1;
  return rc;
}

static int is_old_orphan(int base_fd, const char *name) {
  struct stat st;
  int fd;

  if (strncmp(name, PREFIX, strlen(PREFIX)) != 0 ||
      fstatat(base_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
      !S_ISDIR(st.st_mode) || time(NULL) - st.st_mtime < SWEEP_MIN_AGE_S)
    return 0;
  fd = lock_folder(base_fd, name, LOCK_EX | LOCK_NB, NULL);
  if (fd < 0)
    return 0; /* held: a live grader's job */
  close(fd);
  return 1;
}

int gr_workdir_sweep(const char *base) {
  DIR *dir = opendir(base);
  struct dirent *entry;
  int removed = 0;

  if (dir == NULL)
    return 0;
  while ((entry = readdir(dir)) != NULL) {
    char path[PATH_MAX + 300];
    if (!is_old_orphan(dirfd(dir), entry->d_name))
      continue;
    snprintf(path, sizeof path, "%s/%s", base, entry->d_name);
    umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW); /* its tmpfs, if any */
    if (remove_at(dirfd(dir), entry->d_name, NULL) == 0)
      removed++;
  }
  closedir(dir);
  return removed;
}
