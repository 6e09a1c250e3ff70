#include "runner.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "process.h"

/* What a shell would use; --clearenv leaves bwrap stages without a PATH. */
/* The stage's uid and gid inside its user namespace: not 0, so it holds no
 * capability there. */
#define STAGE_ID "1000"

#define DEFAULT_PATH                                                           \
  "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

void gr_argv_init(gr_argv_t *argv) {
  memset(argv, 0, sizeof *argv);
}

void gr_argv_cleanup(gr_argv_t *argv) {
  size_t i;

  for (i = 0; i < argv->n; i++)
    free(argv->v[i]);
  free(argv->v);
  memset(argv, 0, sizeof *argv);
}

int gr_argv_push(gr_argv_t *argv, const char *arg) {
  if (argv->n + 2 > argv->cap) {
    size_t cap = argv->cap ? argv->cap * 2 : 32;
    char **grown = realloc(argv->v, cap * sizeof *grown);
    if (grown == NULL)
      return BW_ENOMEM;
    argv->v = grown;
    argv->cap = cap;
  }
  if ((argv->v[argv->n] = strdup(arg)) == NULL)
    return BW_ENOMEM;
  argv->v[++argv->n] = NULL;
  return 0;
}

static int push_format(gr_argv_t *argv, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int push_format(gr_argv_t *argv, const char *fmt, ...) {
  va_list ap;
  char *text;
  int rc;

  va_start(ap, fmt);
  rc = vasprintf(&text, fmt, ap);
  va_end(ap);
  if (rc < 0)
    return BW_ENOMEM;
  rc = gr_argv_push(argv, text);
  free(text);
  return rc;
}

/* Pushes a NULL-terminated list; returns 0 or BW_ENOMEM. */
static int push_all(gr_argv_t *argv, const char *const *args) {
  for (; *args != NULL; args++)
    if (gr_argv_push(argv, *args) != 0)
      return BW_ENOMEM;
  return 0;
}

static bool env_has(const gr_stage_t *stage, const char *prefix) {
  size_t i, len = strlen(prefix);

  for (i = 0; i < stage->n_env; i++)
    if (strncmp(stage->env[i], prefix, len) == 0)
      return true;
  return false;
}

/* --- docker ------------------------------------------------------------ */

static int docker_command(const gr_options_t *opt, const gr_stage_t *stage,
                          const char *job_dir, const char *container,
                          gr_argv_t *argv, bw_error_t *error) {
  const char *const head[] = {opt->runner_bin, "run", "--rm", NULL};
  size_t i;
  int rc = 0;

  /* The image is a positional argument: one starting with '-' would be
   * read as a flag.  Every flag below uses --flag=value for the same
   * reason. */
  if (stage->image[0] == '-')
    return bw_error_set(error, BW_EINVAL, "image: must not start with '-'");
  rc |= push_all(argv, head);
  rc |= push_format(argv, "--name=%s", container);
  if (!stage->networking)
    rc |= gr_argv_push(argv, "--network=none");
  if (stage->host_name != NULL)
    rc |= push_format(argv, "--hostname=%s", stage->host_name);
  rc |= push_format(argv, "--volume=%s:/job", job_dir);
  if (stage->limits != NULL) {
    const gr_limits_t *l = stage->limits;
    /* memory-swap is memory + swap: equal means no swap. */
    rc |= push_format(argv, "--memory=%llu", (unsigned long long)l->memory);
    rc |=
        push_format(argv, "--memory-swap=%llu", (unsigned long long)l->memory);
    rc |= push_format(argv, "--cpus=%.3f", l->cpus);
    rc |= push_format(argv, "--pids-limit=%ld", l->pids);
    rc |= gr_argv_push(argv, "--ulimit=core=0:0");
    rc |= push_format(argv, "--ulimit=fsize=%llu:%llu",
                      (unsigned long long)l->disk, (unsigned long long)l->disk);
  }
  for (i = 0; i < stage->n_env; i++)
    rc |= push_format(argv, "--env=%s", stage->env[i]);
  if (stage->entry_point != NULL)
    rc |= push_format(argv, "--entrypoint=%s", stage->entry_point[0]);
  rc |= gr_argv_push(argv, stage->image);
  for (i = 1; stage->entry_point != NULL && i < stage->n_entry_point; i++)
    rc |= gr_argv_push(argv, stage->entry_point[i]);
  return rc == 0 ? GR_RUNNER_RUN
                 : bw_error_set(error, BW_ENOMEM, "out of memory");
}

void gr_runner_kill(const gr_options_t *opt, const char *container) {
  char *argv[] = {(char *)opt->runner_bin, "kill", (char *)container, NULL};
  gr_process_spec_t spec = {.argv = argv, .timeout_ms = 10000};
  gr_process_result_t result;

  if (opt->runner != GR_RUNNER_DOCKER)
    return;
  if (gr_process_run(&spec, &result, NULL) != 0 || result.exit_code != 0)
    bw_log_debug("docker kill %s: no such container (already gone?)",
                 container);
}

/* --- bwrap ------------------------------------------------------------- */

/* The image name is a path below BROADWAY_IMAGES, taken as written
 * ("bbox:1"); nothing in it may climb out. */
static int check_image_name(const char *name, bw_error_t *error) {
  const char *p = name;

  if (name[0] == '\0' || name[0] == '/')
    return bw_error_set(error, BW_EINVAL, "image %s: must be a relative name",
                        name);
  while (*p != '\0') {
    size_t len = strcspn(p, "/");
    if (len == 2 && p[0] == '.' && p[1] == '.')
      return bw_error_set(error, BW_EINVAL, "image %s: '..' not allowed", name);
    p += len;
    if (*p == '/')
      p++;
  }
  return 0;
}

/* bwrap cannot create mount points in a read-only root, so an image folder
 * must already have them. */
static int check_image_dir(const char *dir, const char *name,
                           bw_error_t *error) {
  static const char *const mount_points[] = {"job", "proc", "dev", "tmp"};
  char path[PATH_MAX + 8];
  struct stat st;
  size_t i;

  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
    return bw_error_set(error, BW_ENOTFOUND,
                        "image %s: not found in BROADWAY_IMAGES", name);
  for (i = 0; i < sizeof mount_points / sizeof *mount_points; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, mount_points[i]);
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
      return bw_error_set(
          error, BW_EINVAL,
          "image %s: no /%s folder (bwrap needs /job, /proc, /dev "
          "and /tmp to exist in the image)",
          name, mount_points[i]);
  }
  return 0;
}

static int bwrap_env(const gr_stage_t *stage, gr_argv_t *argv) {
  size_t i;
  int rc = gr_argv_push(argv, "--clearenv");

  for (i = 0; i < stage->n_env; i++) {
    const char *eq = strchr(stage->env[i], '=');
    rc |= gr_argv_push(argv, "--setenv");
    rc |= push_format(argv, "%.*s", (int)(eq - stage->env[i]), stage->env[i]);
    rc |= gr_argv_push(argv, eq + 1);
  }
  if (!env_has(stage, "PATH=")) {
    rc |= gr_argv_push(argv, "--setenv");
    rc |= gr_argv_push(argv, "PATH");
    rc |= gr_argv_push(argv, DEFAULT_PATH);
  }
  return rc;
}

static int bwrap_command(const gr_options_t *opt, const gr_stage_t *stage,
                         const char *job_dir, gr_argv_t *argv,
                         bw_error_t *error) {
  /* --unshare-all: user (if possible; --unshare-user makes it certain),
   * ipc, pid, net, uts, cgroup.  The pid
   * namespace is what makes the kill complete: when bwrap dies
   * (--die-with-parent passes our SIGKILL on), its pid 1 dies and the kernel
   * kills everything else in the namespace, whatever session it set up. */
  const char *const sandbox[] = {"--proc",
                                 "/proc",
                                 "--dev",
                                 "/dev",
                                 "--unshare-all",
                                 "--unshare-user",
                                 "--uid",
                                 STAGE_ID,
                                 "--gid",
                                 STAGE_ID,
                                 "--die-with-parent",
                                 "--new-session",
                                 "--chdir",
                                 "/",
                                 NULL};
  char image_dir[PATH_MAX];
  size_t i;
  int rc = 0;

  if ((rc = check_image_name(stage->image, error)) != 0)
    return rc;
  if (snprintf(image_dir, sizeof image_dir, "%s/%s", opt->images,
               stage->image) >= (int)sizeof image_dir)
    return bw_error_set(error, BW_EINVAL, "image %s: name too long",
                        stage->image);
  if ((rc = check_image_dir(image_dir, stage->image, error)) != 0)
    return rc;
  if (stage->entry_point == NULL)
    return GR_RUNNER_NOTHING;
  rc |= gr_argv_push(argv, opt->runner_bin);
  rc |= push_all(argv, (const char *const[]){"--ro-bind", image_dir, "/",
                                             "--bind", job_dir, "/job", NULL});
  /* --size applies to the --tmpfs after it. */
  if (stage->limits != NULL) {
    rc |= gr_argv_push(argv, "--size");
    rc |= push_format(argv, "%llu", (unsigned long long)stage->limits->disk);
  }
  rc |= push_all(argv, (const char *const[]){"--tmpfs", "/tmp", NULL});
  rc |= push_all(argv, sandbox);
  if (stage->networking)
    rc |= gr_argv_push(argv, "--share-net");
  if (stage->host_name != NULL)
    rc |= push_all(argv,
                   (const char *const[]){"--hostname", stage->host_name, NULL});
  rc |= bwrap_env(stage, argv);
  rc |= gr_argv_push(argv, "--");
  for (i = 0; i < stage->n_entry_point; i++)
    rc |= gr_argv_push(argv, stage->entry_point[i]);
  return rc == 0 ? GR_RUNNER_RUN
                 : bw_error_set(error, BW_ENOMEM, "out of memory");
}

int gr_runner_command(const gr_options_t *opt, const gr_stage_t *stage,
                      const char *job_dir, const char *container,
                      gr_argv_t *argv, bw_error_t *error) {
  if (opt->runner == GR_RUNNER_BWRAP)
    return bwrap_command(opt, stage, job_dir, argv, error);
  return docker_command(opt, stage, job_dir, container, argv, error);
}
