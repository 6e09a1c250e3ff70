#include "cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* v1 hierarchies a stage needs, in the order of host.base. */
static const char *const v1_controllers[] = {"memory", "pids", "cpu",
                                             "cpuacct"};
#define N_V1 (sizeof v1_controllers / sizeof *v1_controllers)
#define CPU_PERIOD_US 100000
#define DESTROY_TRIES 250 /* x 20 ms */

/* Set by gr_cgroup_setup() before any thread runs; read-only after. */
static struct {
  int version;
  /* The grader's group in each hierarchy: v1 memory, pids, cpu, cpuacct
   * (one path twice when co-mounted); v2 only [0]. */
  char base[N_V1][PATH_MAX];
} host;

static unsigned long stage_counter; /* atomic: slots create groups */

/* ---- small file helpers ------------------------------------------------- */

/* Returns 0, BW_ENOTFOUND when the kernel has no such file (a controller
 * or an accounting it lacks), or BW_ESYS; strerror(errno) in error. */
static int write_file(const char *dir, const char *name, const char *text,
                      bw_error_t *error) {
  char path[PATH_MAX + 64];
  int fd, rc = 0;

  snprintf(path, sizeof path, "%s/%s", dir, name);
  fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT
               ? bw_error_set(error, BW_ENOTFOUND, "%s", strerror(errno))
               : bw_error_sys(error, errno);
  if (write(fd, text, strlen(text)) < 0)
    rc = bw_error_sys(error, errno);
  close(fd);
  return rc;
}

/* Reads dir/name into buf (NUL-terminated).  Returns bytes or BW_ESYS. */
static ssize_t read_file(const char *dir, const char *name, char *buf,
                         size_t cap) {
  char path[PATH_MAX + 64];
  ssize_t n;
  int fd;

  snprintf(path, sizeof path, "%s/%s", dir, name);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return BW_ESYS;
  n = read(fd, buf, cap - 1);
  close(fd);
  buf[n > 0 ? n : 0] = '\0';
  return n < 0 ? BW_ESYS : n;
}

/* The number after "key " in a "key value" file; a NULL key reads a file
 * holding one number.  -1 when absent. */
static long long read_number(const char *dir, const char *name,
                             const char *key) {
  char buf[4096], *p = buf;
  size_t len = key ? strlen(key) : 0;

  if (read_file(dir, name, buf, sizeof buf) <= 0)
    return -1;
  while (key != NULL && p != NULL &&
         !(strncmp(p, key, len) == 0 && p[len] == ' ')) {
    p = strchr(p, '\n');
    p = p ? p + 1 : NULL;
  }
  return p == NULL ? -1 : strtoll(p + len, NULL, 10);
}

static bool has_word(const char *list, const char *word, const char *seps) {
  size_t len = strlen(word);

  for (const char *p = list; *p != '\0';) {
    size_t n = strcspn(p, seps);
    if (n == len && strncmp(p, word, len) == 0)
      return true;
    p += n;
    p += strspn(p, seps);
  }
  return false;
}

/* ---- finding the grader's groups ---------------------------------------- */

/* The path of the grader's group in the hierarchy whose controller list
 * contains `controller` ("" for v2's "0::"), from /proc/self/cgroup.
 * Returns 0, BW_ENOTFOUND (or BW_ETOOBIG: longer than cap) or BW_ESYS. */
static int own_group(const char *controller, char *out, size_t cap) {
  char line[PATH_MAX + 128];
  FILE *f = fopen("/proc/self/cgroup", "r");
  int rc = BW_ENOTFOUND;

  if (f == NULL)
    return BW_ESYS;
  while (rc != 0 && fgets(line, sizeof line, f) != NULL) {
    char *list = strchr(line, ':'), *path;
    if (list == NULL || (path = strchr(++list, ':')) == NULL)
      continue;
    *path++ = '\0';
    path[strcspn(path, "\n")] = '\0';
    if (controller[0] == '\0' ? (line[0] == '0' && list[0] == '\0')
                              : has_word(list, controller, ","))
      rc = snprintf(out, cap, "%s", path) < (int)cap ? 0 : BW_ETOOBIG;
  }
  fclose(f);
  return rc;
}

/* Where the hierarchy of `controller` (v1, fstype "cgroup") or the v2
 * hierarchy (controller NULL) is mounted, and the group path the mount
 * shows as its root (a container may see only a subtree).  Returns as
 * own_group. */
static int find_mount(const char *controller, char *point, char *root,
                      size_t cap) {
  char line[4 * PATH_MAX];
  FILE *f = fopen("/proc/self/mountinfo", "r");
  int rc = BW_ENOTFOUND;

  if (f == NULL)
    return BW_ESYS;
  while (rc != 0 && fgets(line, sizeof line, f) != NULL) {
    char r[PATH_MAX], p[PATH_MAX], type[64], opts[1024];
    const char *dash = strstr(line, " - ");
    if (dash == NULL || sscanf(line, "%*s %*s %*s %4095s %4095s", r, p) != 2 ||
        sscanf(dash + 3, "%63s %*s %1023s", type, opts) != 2)
      continue;
    if (controller == NULL
            ? strcmp(type, "cgroup2") == 0
            : strcmp(type, "cgroup") == 0 && has_word(opts, controller, ","))
      rc = snprintf(point, cap, "%s", p) < (int)cap &&
                   snprintf(root, cap, "%s", r) < (int)cap
               ? 0
               : BW_ETOOBIG;
  }
  fclose(f);
  return rc;
}

/* mount point + the group path below the mount's root.  Returns as
 * own_group. */
static int group_dir(const char *controller, char *out, size_t cap) {
  char point[PATH_MAX], root[PATH_MAX], own[PATH_MAX];
  const char *rel;
  size_t root_len;
  int rc;

  if ((rc = find_mount(controller, point, root, sizeof point)) != 0 ||
      (rc = own_group(controller ? controller : "", own, sizeof own)) != 0)
    return rc;
  root_len = strcmp(root, "/") == 0 ? 0 : strlen(root);
  rel = strncmp(own, root, root_len) == 0 ? own + root_len : own;
  return snprintf(out, cap, "%s%s", point, strcmp(rel, "/") == 0 ? "" : rel) <
                 (int)cap
             ? 0
             : BW_ETOOBIG;
}

/* ---- leftovers of dead graders ------------------------------------------ */

static void kill_members(const char *dir) {
  char buf[65536];

  if (write_file(dir, "cgroup.kill", "1", NULL) == 0)
    return;
  if (read_file(dir, "cgroup.procs", buf, sizeof buf) <= 0)
    return;
  for (char *p = buf; *p != '\0';) {
    long pid = strtol(p, &p, 10);
    if (pid > 0)
      kill((pid_t)pid, SIGKILL);
    while (*p == '\n')
      p++;
    if (pid <= 0)
      break;
  }
}

/* Kills what is in dir and removes it, retrying while dying processes
 * still hold it.  Returns 0 or BW_ESYS (strerror in error). */
static int remove_group(const char *dir, bw_error_t *error) {
  struct timespec pause = {0, 20 * 1000 * 1000};

  for (int i = 0; i < DESTROY_TRIES; i++) {
    if (rmdir(dir) == 0 || errno == ENOENT)
      return 0;
    if (errno != EBUSY)
      return bw_error_sys(error, errno);
    kill_members(dir);
    nanosleep(&pause, NULL);
  }
  return bw_error_sys(error, EBUSY);
}

/* Groups broadway-<pid>-<n> whose grader is gone. */
static void sweep(const char *base) {
  DIR *dir = opendir(base);
  struct dirent *e;
  char path[PATH_MAX + 300];

  if (dir == NULL)
    return;
  while ((e = readdir(dir)) != NULL) {
    long pid;
    if (sscanf(e->d_name, "broadway-%ld-", &pid) != 1 || pid <= 0 ||
        kill((pid_t)pid, 0) == 0 || errno != ESRCH)
      continue;
    snprintf(path, sizeof path, "%s/%s", base, e->d_name);
    if (remove_group(path, NULL) == 0)
      bw_log_info("removed cgroup %s left by a grader that died", path);
  }
  closedir(dir);
}

/* ---- setup -------------------------------------------------------------- */

/* v2: the controllers must reach our group, and our group must hand them
 * to its children, which it may only do once no process is in it: the
 * grader moves what is in its group into a leaf next to the stages. */
static int setup_v2(bw_error_t *error) {
  char buf[4096], leaf[PATH_MAX + 64];
  const char *base = host.base[0];
  static const char *const needed[] = {"memory", "pids", "cpu"};
  bw_error_t write_error;
  int rc;

  /* no cgroup v2 at all: no message, the v1 one says it */
  if ((rc = group_dir(NULL, host.base[0], sizeof host.base[0])) != 0)
    return rc;
  if ((rc = read_file(base, "cgroup.controllers", buf, sizeof buf)) < 0)
    return rc;
  for (size_t i = 0; i < 3; i++)
    if (!has_word(buf, needed[i], " \n"))
      return bw_error_set(error, BW_ENOTFOUND,
                          "cgroup v2 at %.300s lacks the %s controller "
                          "(delegate it: systemd Delegate=yes)",
                          base, needed[i]);
  read_file(base, "cgroup.subtree_control", buf, sizeof buf);
  if (has_word(buf, "memory", " \n") && has_word(buf, "pids", " \n") &&
      has_word(buf, "cpu", " \n"))
    return 2;
  snprintf(leaf, sizeof leaf, "%s/broadway-%d-grader", base, (int)getpid());
  if (read_file(base, "cgroup.procs", buf, sizeof buf) > 0) {
    if (mkdir(leaf, 0755) != 0 && errno != EEXIST)
      return bw_error_set(error, BW_ESYS, "cgroup v2: cannot create %.300s: %s",
                          leaf, strerror(errno));
    for (char *p = buf; *p != '\0' && *p != '\n';) {
      char pid[32];
      size_t n = strcspn(p, "\n");
      snprintf(pid, sizeof pid, "%.*s", (int)n, p);
      write_file(leaf, "cgroup.procs", pid, NULL);
      p += n + (p[n] == '\n');
    }
  }
  if ((rc = write_file(base, "cgroup.subtree_control", "+memory +pids +cpu",
                       &write_error)) != 0)
    return bw_error_set(error, rc,
                        "cgroup v2: cannot enable memory, pids and cpu for the "
                        "children of %.300s: %s (is the group delegated to "
                        "this user?)",
                        base, write_error.message);
  return 2;
}

/* v1: each hierarchy mounted, our group in it writable. */
static int setup_v1(bw_error_t *error) {
  char probe[PATH_MAX + 64];
  int rc;

  for (size_t i = 0; i < N_V1; i++) {
    if ((rc = group_dir(v1_controllers[i], host.base[i],
                        sizeof host.base[i])) != 0)
      return bw_error_set(error, rc,
                          "no cgroup v2 with memory, pids and cpu, and no "
                          "cgroup v1 %s hierarchy mounted",
                          v1_controllers[i]);
    snprintf(probe, sizeof probe, "%s/broadway-%d-probe", host.base[i],
             (int)getpid());
    if (mkdir(probe, 0755) != 0)
      return bw_error_set(error, BW_ESYS,
                          "cgroup v1 %s: cannot create a group in %.300s: %s",
                          v1_controllers[i], host.base[i], strerror(errno));
    rmdir(probe);
  }
  return 1;
}

int gr_cgroup_setup(bw_error_t *error) {
  bw_error_t v2 = {.message = ""}, v1;

  memset(&host, 0, sizeof host);
  host.version = setup_v2(&v2);
  if (host.version < 0) {
    memset(&host, 0, sizeof host);
    host.version = setup_v1(&v1);
    if (host.version < 0)
      return v2.message[0] != '\0'
                 ? bw_error_set(error, v1.code, "%.250s; %.250s", v2.message,
                                v1.message)
                 : bw_error_set(error, v1.code, "%s", v1.message);
  }
  for (size_t i = 0; i < (host.version == 2 ? 1 : N_V1); i++)
    sweep(host.base[i]);
  return host.version;
}

/* ---- one stage ---------------------------------------------------------- */

static int set_limits_v1(const gr_cgroup_t *cg, const gr_limits_t *l,
                         bw_error_t *error) {
  char mem[32], pids[32], quota[32], period[32];
  bw_error_t e;
  int rc;

  snprintf(mem, sizeof mem, "%llu", (unsigned long long)l->memory);
  snprintf(pids, sizeof pids, "%ld", l->pids);
  snprintf(quota, sizeof quota, "%lld",
           (long long)(l->cpus * CPU_PERIOD_US + 0.5));
  snprintf(period, sizeof period, "%d", CPU_PERIOD_US);
  /* memsw (memory + swap) only exists with swap accounting; without it
   * there is no swap to limit. */
  if ((rc = write_file(cg->dirs[0], "memory.limit_in_bytes", mem, &e)) != 0 ||
      ((rc = write_file(cg->dirs[0], "memory.memsw.limit_in_bytes", mem, &e)) !=
           0 &&
       rc != BW_ENOTFOUND))
    return bw_error_set(error, rc, "memory limit: %s", e.message);
  if ((rc = write_file(cg->dirs[1], "pids.max", pids, &e)) != 0 ||
      (rc = write_file(cg->dirs[2], "cpu.cfs_period_us", period, &e)) != 0 ||
      (rc = write_file(cg->dirs[2], "cpu.cfs_quota_us", quota, &e)) != 0)
    return bw_error_set(error, rc, "pids or cpu limit: %s", e.message);
  return 0;
}

static int set_limits_v2(const gr_cgroup_t *cg, const gr_limits_t *l,
                         bw_error_t *error) {
  char mem[32], pids[32], cpu[64];
  bw_error_t e;
  int rc;

  snprintf(mem, sizeof mem, "%llu", (unsigned long long)l->memory);
  snprintf(pids, sizeof pids, "%ld", l->pids);
  snprintf(cpu, sizeof cpu, "%lld %d",
           (long long)(l->cpus * CPU_PERIOD_US + 0.5), CPU_PERIOD_US);
  if ((rc = write_file(cg->dirs[0], "memory.max", mem, &e)) != 0 ||
      ((rc = write_file(cg->dirs[0], "memory.swap.max", "0", &e)) != 0 &&
       rc != BW_ENOTFOUND) ||
      (rc = write_file(cg->dirs[0], "pids.max", pids, &e)) != 0 ||
      (rc = write_file(cg->dirs[0], "cpu.max", cpu, &e)) != 0)
    return bw_error_set(error, rc, "cgroup limits: %s", e.message);
  return 0;
}

int gr_cgroup_create(gr_cgroup_t *cg, const gr_limits_t *limits,
                     bw_error_t *error) {
  unsigned long n = __atomic_fetch_add(&stage_counter, 1, __ATOMIC_RELAXED);
  int rc = 0;

  memset(cg, 0, sizeof *cg);
  cg->n_dirs = host.version == 2 ? 1 : (int)N_V1;
  for (int i = 0; i < GR_CGROUP_DIRS; i++)
    cg->procs_fds[i] = -1;
  for (int i = 0; i < cg->n_dirs && rc == 0; i++) {
    snprintf(cg->dirs[i], sizeof cg->dirs[i], "%.3900s/broadway-%d-%lu",
             host.base[i], (int)getpid(), n);
    /* co-mounted hierarchies (cpu,cpuacct) share one directory */
    if (mkdir(cg->dirs[i], 0755) != 0 && errno != EEXIST) {
      rc = bw_error_set(error, BW_ESYS, "cannot create cgroup %.300s: %s",
                        cg->dirs[i], strerror(errno));
      cg->dirs[i][0] = '\0';
    }
  }
  if (rc == 0)
    rc = host.version == 2 ? set_limits_v2(cg, limits, error)
                           : set_limits_v1(cg, limits, error);
  for (int i = 0; i < cg->n_dirs && rc == 0; i++) {
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/cgroup.procs", cg->dirs[i]);
    if ((cg->procs_fds[i] = open(path, O_WRONLY | O_CLOEXEC)) < 0)
      rc = bw_error_set(error, BW_ESYS, "%.300s: %s", path, strerror(errno));
  }
  if (rc != 0)
    gr_cgroup_destroy(cg);
  return rc;
}

void gr_cgroup_usage(const gr_cgroup_t *cg, gr_cgroup_usage_t *u) {
  const char *mem = cg->dirs[0];
  const char *pids = cg->dirs[host.version == 2 ? 0 : 1];
  const char *cpu = cg->dirs[host.version == 2 ? 0 : 2];
  long long v;

  memset(u, 0, sizeof *u);
  u->memory_peak = -1;
  if (host.version == 2) {
    u->oom_kills = read_number(mem, "memory.events", "oom_kill");
    v = read_number(cpu, "cpu.stat", "usage_usec");
    u->cpu_ns = v < 0 ? 0 : v * 1000;
    u->memory_peak = read_number(mem, "memory.peak", NULL);
  } else {
    u->oom_kills = read_number(mem, "memory.oom_control", "oom_kill");
    u->cpu_ns = read_number(cg->dirs[3], "cpuacct.usage", NULL);
    u->memory_peak = read_number(mem, "memory.max_usage_in_bytes", NULL);
  }
  u->pids_refused = read_number(pids, "pids.events", "max");
  u->periods = read_number(cpu, "cpu.stat", "nr_periods");
  u->throttled = read_number(cpu, "cpu.stat", "nr_throttled");
  /* a counter the kernel does not have counts as nothing happened */
  if (u->oom_kills < 0)
    u->oom_kills = 0;
  if (u->pids_refused < 0)
    u->pids_refused = 0;
  if (u->cpu_ns < 0)
    u->cpu_ns = 0;
  if (u->periods < 0)
    u->periods = 0;
  if (u->throttled < 0)
    u->throttled = 0;
}

int gr_cgroup_destroy(gr_cgroup_t *cg) {
  bw_error_t e;
  int rc = 0;

  for (int i = 0; i < GR_CGROUP_DIRS; i++) {
    if (cg->procs_fds[i] >= 0)
      close(cg->procs_fds[i]);
    cg->procs_fds[i] = -1;
  }
  for (int i = cg->n_dirs - 1; i >= 0; i--) {
    int r;
    if (cg->dirs[i][0] == '\0')
      continue;
    r = remove_group(cg->dirs[i], &e);
    if (r != 0) {
      bw_log_error("cannot remove cgroup %s: %s", cg->dirs[i], e.message);
      rc = r;
    }
    cg->dirs[i][0] = '\0';
  }
  return rc;
}
