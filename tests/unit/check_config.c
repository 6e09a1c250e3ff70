/* check_config.c - common/config.c: defaults, the file layer (comments,
 * errors with file:line: key), the environment layer winning over the file,
 * values derived once data_dir is final (socket path, token file, the
 * FerretDB URI), bw_config_set's checks, and that broadway.conf documents
 * every option with the built-in default. */
#define _XOPEN_SOURCE 700
#include <check.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "../lib/suite.h"

static const char *const env_vars[] = {"BROADWAY_PORT",      "BROADWAY_HOST",
                                       "BROADWAY_DATA",      "BROADWAY_TOKEN",
                                       "BROADWAY_HEARTBEAT", "BROADWAY_WORKERS",
                                       "BROADWAY_MONGO_URI", "BROADWAY_DB",
                                       "BROADWAY_POLL_WAIT"};

/* Every option, as named in the file. */
static const char *const all_keys[] = {"port",
                                       "listen_host",
                                       "data_dir",
                                       "token",
                                       "mongo_uri",
                                       "db_name",
                                       "socket_path",
                                       "workers",
                                       "listen",
                                       "listen_owner",
                                       "listen_group",
                                       "listen_mode",
                                       "user",
                                       "group",
                                       "log_file",
                                       "stop_timeout",
                                       "reaper_timeout_ms",
                                       "heartbeat",
                                       "queue_empty_code",
                                       "max_attempts",
                                       "claim_grace",
                                       "default_timeout",
                                       "max_timeout",
                                       "db_timeout_ms",
                                       "max_body",
                                       "max_students",
                                       "max_stages",
                                       "max_env",
                                       "max_env_name",
                                       "max_env_value",
                                       "max_string",
                                       "max_info_bytes",
                                       "max_logs_bytes",
                                       "max_depth",
                                       "queue_partitions",
                                       "forget_workers",
                                       "poll_wait",
                                       "stream_keepalive",
                                       "default_memory",
                                       "max_memory",
                                       "default_cpus",
                                       "max_cpus",
                                       "default_pids",
                                       "max_pids",
                                       "default_disk",
                                       "max_disk",
                                       "default_output",
                                       "max_output"};

static char repo_conf[PATH_MAX]; /* <repo>/broadway.conf, found in main() */
static char old_cwd[PATH_MAX];
static char tmp_dir[PATH_MAX]; /* each test runs in a fresh directory */

/* Each test starts with no BROADWAY_* variable, in an empty directory (so a
 * var/token of a running service cannot leak in). */
static void setup(void) {
  size_t i;
  for (i = 0; i < sizeof env_vars / sizeof env_vars[0]; i++)
    unsetenv(env_vars[i]);
  ck_assert_ptr_nonnull(getcwd(old_cwd, sizeof old_cwd));
  strcpy(tmp_dir, "/tmp/cfg-test-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(tmp_dir));
  ck_assert_int_eq(chdir(tmp_dir), 0);
}

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static void teardown(void) {
  ck_assert_int_eq(chdir(old_cwd), 0);
  nftw(tmp_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Writes `text` to <tmp_dir>/<name>, returns the path (static buffer). */
static const char *write_file(const char *name, const char *text) {
  static char path[PATH_MAX + 64];
  FILE *f;
  snprintf(path, sizeof path, "%s/%s", tmp_dir, name);
  f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
  return path;
}

static void load_ok(bw_config_t *cfg, const char *path) {
  bw_error_t error = {0};
  int rc = bw_config_load(cfg, path, &error);
  ck_assert_msg(rc == 0, "%s", error.message);
}

static void expect_load_error(const char *path, const char *message) {
  bw_config_t cfg;
  bw_error_t error = {0};
  ck_assert_int_eq(bw_config_load(&cfg, path, &error), BW_EINVAL);
  ck_assert_str_eq(error.message, message);
}

static void expect_set_error(const char *key, const char *value,
                             const char *message) {
  bw_config_t cfg;
  bw_error_t error = {0};
  bw_config_init(&cfg);
  ck_assert_int_eq(bw_config_set(&cfg, key, value, &error), BW_EINVAL);
  ck_assert_str_eq(error.message, message);
}

/* What the FerretDB URI must be for an absolute data dir. */
static void expected_uri(char *out, size_t size, const char *abs_data_dir) {
  char path[PATH_MAX + 64];
  size_t i, n = 0;
  snprintf(path, sizeof path, "%s/run/ferretdb.sock", abs_data_dir);
  n = (size_t)snprintf(out, size, "mongodb://");
  for (i = 0; path[i] != '\0' && n + 4 < size; i++) {
    if (path[i] == '/')
      n += (size_t)snprintf(out + n, size - n, "%%2F");
    else
      out[n++] = path[i];
  }
  out[n] = '\0';
}

/* ---- defaults --------------------------------------------------------- */

START_TEST(test_init_defaults) {
  bw_config_t cfg;
  bw_config_init(&cfg);
  ck_assert_int_eq(cfg.port, 1470);
  ck_assert_str_eq(cfg.listen_host, "127.0.0.1");
  ck_assert_str_eq(cfg.data_dir, "var");
  ck_assert_str_eq(cfg.token, "");
  ck_assert_str_eq(cfg.mongo_uri, "");
  ck_assert_str_eq(cfg.db_name, "broadway");
  ck_assert_str_eq(cfg.socket_path, "var/run/fcgi.sock");
  ck_assert_int_eq(cfg.workers, 4);
  ck_assert_int_eq(cfg.heartbeat, 10);
  ck_assert_int_eq(cfg.queue_empty_code, 498);
  ck_assert_int_eq(cfg.max_attempts, 3);
  ck_assert_int_eq(cfg.claim_grace, 60);
  ck_assert_int_eq(cfg.default_timeout, 30);
  ck_assert_int_eq(cfg.max_timeout, 86400);
  ck_assert_int_eq(cfg.db_timeout_ms, 5000);
  ck_assert_uint_eq(cfg.max_body, 64u << 20);
  ck_assert_int_eq(cfg.max_students, 100000);
  ck_assert_int_eq(cfg.max_stages, 64);
  ck_assert_int_eq(cfg.max_env, 1024);
  ck_assert_uint_eq(cfg.max_env_name, 256);
  ck_assert_uint_eq(cfg.max_env_value, 65536);
  ck_assert_uint_eq(cfg.max_string, 4096);
  ck_assert_uint_eq(cfg.max_info_bytes, 4u << 20);
  ck_assert_uint_eq(cfg.max_logs_bytes, 4u << 20);
  ck_assert_int_eq(cfg.max_depth, 32);
  ck_assert_int_eq(cfg.queue_partitions, 16);
  ck_assert_int_eq(cfg.forget_workers, 86400);
}
END_TEST

START_TEST(test_load_without_file) {
  bw_config_t cfg;
  char uri[BW_PATH_MAX], abs[PATH_MAX + 8];
  load_ok(&cfg, NULL);
  ck_assert_int_eq(cfg.port, 1470);
  ck_assert_str_eq(cfg.data_dir, "var");
  ck_assert_str_eq(cfg.socket_path, "var/run/fcgi.sock");
  ck_assert_str_eq(cfg.token, "");
  snprintf(abs, sizeof abs, "%s/var", tmp_dir);
  expected_uri(uri, sizeof uri, abs);
  ck_assert_str_eq(cfg.mongo_uri, uri);
  load_ok(&cfg, "");
  ck_assert_str_eq(cfg.mongo_uri, uri);
}
END_TEST

/* ---- the file --------------------------------------------------------- */

START_TEST(test_file_values_comments_blanks) {
  bw_config_t cfg;
  const char *path =
      write_file("b.conf", "# a comment\n"
                           "\n"
                           "   port   =   2000   \n"
                           "heartbeat=3 # seconds\n"
                           "\tlisten_host = 0.0.0.0\n"
                           "token = a#b   # '#' inside a value stays\n"
                           "max_body = 1024\r\n"
                           "db_name = other\n"
                           "mongo_uri = mongodb://h:1/?x=y\n"
                           "# port = 9\n");
  load_ok(&cfg, path);
  ck_assert_int_eq(cfg.port, 2000);
  ck_assert_int_eq(cfg.heartbeat, 3);
  ck_assert_str_eq(cfg.listen_host, "0.0.0.0");
  ck_assert_str_eq(cfg.token, "a#b");
  ck_assert_uint_eq(cfg.max_body, 1024);
  ck_assert_str_eq(cfg.db_name, "other");
  ck_assert_str_eq(cfg.mongo_uri, "mongodb://h:1/?x=y");
}
END_TEST

START_TEST(test_file_unknown_key) {
  const char *path = write_file("b.conf", "port = 1\n\nfoo = 2\n");
  char message[PATH_MAX + 64];
  snprintf(message, sizeof message, "%s:3: foo: unknown key", path);
  expect_load_error(path, message);
}
END_TEST

START_TEST(test_file_missing_equals) {
  const char *path = write_file("b.conf", "# x\nport 1470\n");
  char message[PATH_MAX + 64];
  snprintf(message, sizeof message, "%s:2: expected `key = value`", path);
  expect_load_error(path, message);
}
END_TEST

START_TEST(test_file_bad_values) {
  const char *path = write_file("b.conf", "port = abc\n");
  char message[PATH_MAX + 128];
  snprintf(message, sizeof message,
           "%s:1: port: expected an integer in 1..65535, got \"abc\"", path);
  expect_load_error(path, message);
  path = write_file("b.conf", "workers = 4\nport = 70000\n");
  snprintf(message, sizeof message,
           "%s:2: port: expected an integer in 1..65535, got \"70000\"", path);
  expect_load_error(path, message);
  path = write_file("b.conf", "max_body =\n");
  snprintf(message, sizeof message,
           "%s:1: max_body: expected an integer >= 1, got \"\"", path);
  expect_load_error(path, message);
}
END_TEST

START_TEST(test_file_missing) {
  char path[PATH_MAX + 32], message[PATH_MAX + 64];
  snprintf(path, sizeof path, "%s/nope.conf", tmp_dir);
  snprintf(message, sizeof message, "%s: No such file or directory", path);
  expect_load_error(path, message);
}
END_TEST

/* ---- the environment -------------------------------------------------- */

START_TEST(test_env_wins_over_file) {
  bw_config_t cfg;
  const char *path = write_file(
      "b.conf", "port = 1000\nlisten_host = 10.0.0.1\ndata_dir = /from/file\n"
                "token = filetoken\nheartbeat = 5\nworkers = 2\n"
                "mongo_uri = mongodb://file\ndb_name = filedb\n"
                "poll_wait = 3\n");
  setenv("BROADWAY_PORT", "2000", 1);
  setenv("BROADWAY_HOST", "0.0.0.0", 1);
  setenv("BROADWAY_DATA", "/from/env", 1);
  setenv("BROADWAY_TOKEN", "envtoken", 1);
  setenv("BROADWAY_HEARTBEAT", "1", 1);
  setenv("BROADWAY_WORKERS", "8", 1);
  setenv("BROADWAY_MONGO_URI", "mongodb://env:27017", 1);
  setenv("BROADWAY_DB", "envdb", 1);
  setenv("BROADWAY_POLL_WAIT", "0", 1);
  load_ok(&cfg, path);
  ck_assert_int_eq(cfg.poll_wait, 0);
  ck_assert_int_eq(cfg.port, 2000);
  ck_assert_str_eq(cfg.listen_host, "0.0.0.0");
  ck_assert_str_eq(cfg.data_dir, "/from/env");
  ck_assert_str_eq(cfg.token, "envtoken");
  ck_assert_int_eq(cfg.heartbeat, 1);
  ck_assert_int_eq(cfg.workers, 8);
  ck_assert_str_eq(cfg.mongo_uri, "mongodb://env:27017");
  ck_assert_str_eq(cfg.db_name, "envdb");
  ck_assert_str_eq(cfg.socket_path, "/from/env/run/fcgi.sock");
}
END_TEST

START_TEST(test_file_used_when_env_unset) {
  bw_config_t cfg;
  const char *path = write_file("b.conf", "port = 1000\nworkers = 2\n");
  setenv("BROADWAY_WORKERS", "", 1); /* empty counts as unset */
  load_ok(&cfg, path);
  ck_assert_int_eq(cfg.port, 1000);
  ck_assert_int_eq(cfg.workers, 2);
}
END_TEST

START_TEST(test_env_bad_value) {
  setenv("BROADWAY_PORT", "x", 1);
  expect_load_error(NULL, "BROADWAY_PORT: port: expected an integer in "
                          "1..65535, got \"x\"");
}
END_TEST

START_TEST(test_env_bad_poll_wait) {
  setenv("BROADWAY_POLL_WAIT", "-1", 1);
  expect_load_error(NULL, "BROADWAY_POLL_WAIT: poll_wait: expected an integer "
                          "in 0..3600, got \"-1\"");
}
END_TEST

START_TEST(test_env_bad_heartbeat) {
  setenv("BROADWAY_HEARTBEAT", "0", 1);
  expect_load_error(NULL, "BROADWAY_HEARTBEAT: heartbeat: expected an integer "
                          "in 1..86400, got \"0\"");
}
END_TEST

/* ---- derived from data_dir -------------------------------------------- */

START_TEST(test_socket_path_follows_final_data_dir) {
  bw_config_t cfg;
  const char *path = write_file("b.conf", "data_dir = /from/file/\n");
  load_ok(&cfg, path);
  ck_assert_str_eq(cfg.data_dir, "/from/file");
  ck_assert_str_eq(cfg.socket_path, "/from/file/run/fcgi.sock");
  setenv("BROADWAY_DATA", "rel/dir", 1);
  load_ok(&cfg, path);
  ck_assert_str_eq(cfg.socket_path, "rel/dir/run/fcgi.sock");
}
END_TEST

START_TEST(test_socket_path_from_file_kept) {
  bw_config_t cfg;
  const char *path =
      write_file("b.conf", "socket_path = /run/b.sock\ndata_dir = /d\n");
  setenv("BROADWAY_DATA", "/e", 1);
  load_ok(&cfg, path);
  ck_assert_str_eq(cfg.socket_path, "/run/b.sock");
}
END_TEST

START_TEST(test_listen_follows_socket_path) {
  bw_config_t cfg;
  load_ok(&cfg, NULL);
  ck_assert_str_eq(cfg.listen, "unix:var/run/fcgi.sock");
  ck_assert_int_eq(cfg.listen_mode, 0600);
  load_ok(&cfg, write_file("b.conf", "socket_path = /run/b.sock\n"));
  ck_assert_str_eq(cfg.listen, "unix:/run/b.sock");
}
END_TEST

/* listen = unix:PATH is the socket path for scripts that read socket_path;
 * HOST:PORT leaves socket_path alone. */
START_TEST(test_listen_sets_socket_path) {
  bw_config_t cfg;
  load_ok(&cfg, write_file("b.conf", "listen = unix:/run/x/f.sock\n"
                                     "listen_mode = 0660\n"));
  ck_assert_str_eq(cfg.socket_path, "/run/x/f.sock");
  ck_assert_int_eq(cfg.listen_mode, 0660);
  load_ok(&cfg, write_file("c.conf", "listen = 10.0.0.2:9000\n"));
  ck_assert_str_eq(cfg.listen, "10.0.0.2:9000");
  ck_assert_str_eq(cfg.socket_path, "var/run/fcgi.sock");
}
END_TEST

START_TEST(test_default_path) {
  const char *path = bw_config_default_path();
  /* In an empty directory: the installed config, if this machine has one. */
  ck_assert(path == NULL || strcmp(path, BW_SYSTEM_CONFIG) == 0);
  write_file("broadway.conf", "workers = 2\n");
  ck_assert_str_eq(bw_config_default_path(), "broadway.conf");
}
END_TEST

START_TEST(test_token_file) {
  bw_config_t cfg;
  write_file("token", "s3cret\r\n");
  setenv("BROADWAY_DATA", tmp_dir, 1);
  load_ok(&cfg, NULL);
  ck_assert_str_eq(cfg.token, "s3cret");
}
END_TEST

START_TEST(test_token_env_wins_over_token_file) {
  bw_config_t cfg;
  write_file("token", "fromfile\n");
  setenv("BROADWAY_DATA", tmp_dir, 1);
  setenv("BROADWAY_TOKEN", "fromenv", 1);
  load_ok(&cfg, NULL);
  ck_assert_str_eq(cfg.token, "fromenv");
}
END_TEST

START_TEST(test_token_file_after_env_data_dir) {
  bw_config_t cfg;
  char conf_text[PATH_MAX + 32];
  const char *path;
  ck_assert_int_eq(mkdir("other", 0700), 0);
  write_file("other/token", "other-token\n");
  write_file("token", "wrong-token\n");
  snprintf(conf_text, sizeof conf_text, "data_dir = %s\n", tmp_dir);
  path = write_file("b.conf", conf_text);
  setenv("BROADWAY_DATA", "other", 1);
  load_ok(&cfg, path);
  ck_assert_str_eq(cfg.token, "other-token");
}
END_TEST

START_TEST(test_no_token_file) {
  bw_config_t cfg;
  setenv("BROADWAY_DATA", tmp_dir, 1);
  load_ok(&cfg, NULL);
  ck_assert_str_eq(cfg.token, "");
}
END_TEST

START_TEST(test_token_file_too_long) {
  char token[400], message[PATH_MAX + 64];
  bw_error_t error = {0};
  bw_config_t cfg;
  memset(token, 'k', sizeof token - 1);
  token[sizeof token - 1] = '\0';
  write_file("token", token);
  setenv("BROADWAY_DATA", tmp_dir, 1);
  snprintf(message, sizeof message, "%s/token: longer than 255 bytes", tmp_dir);
  ck_assert_int_eq(bw_config_load(&cfg, NULL, &error), BW_EINVAL);
  ck_assert_str_eq(error.message, message);
  ck_assert_ptr_null(strstr(error.message, "kkkk"));
}
END_TEST

START_TEST(test_ferretdb_uri_absolute_encoded) {
  bw_config_t cfg;
  setenv("BROADWAY_DATA", "/srv/b w/da~ta_1.x", 1);
  load_ok(&cfg, NULL);
  ck_assert_str_eq(
      cfg.mongo_uri,
      "mongodb://%2Fsrv%2Fb%20w%2Fda~ta_1.x%2Frun%2Fferretdb.sock");
}
END_TEST

START_TEST(test_ferretdb_uri_relative_data_dir) {
  bw_config_t cfg;
  char uri[BW_PATH_MAX], abs[PATH_MAX + 16];
  setenv("BROADWAY_DATA", "./state", 1);
  ck_assert_int_eq(mkdir("state", 0700), 0);
  load_ok(&cfg, NULL); /* exists: resolved by realpath, "./" gone */
  snprintf(abs, sizeof abs, "%s/state", tmp_dir);
  expected_uri(uri, sizeof uri, abs);
  ck_assert_str_eq(cfg.mongo_uri, uri);
  ck_assert_str_eq(cfg.data_dir, "./state");
}
END_TEST

START_TEST(test_mongo_uri_from_file_kept) {
  bw_config_t cfg;
  const char *path = write_file("b.conf", "mongo_uri = mongodb://db:27017\n");
  load_ok(&cfg, path);
  ck_assert_str_eq(cfg.mongo_uri, "mongodb://db:27017");
}
END_TEST

START_TEST(test_default_timeout_over_max) {
  const char *path =
      write_file("b.conf", "max_timeout = 50\ndefault_timeout = 100\n");
  expect_load_error(path, "default_timeout: 100 is over max_timeout 50");
}
END_TEST

/* ---- bw_config_set ---------------------------------------------------- */

START_TEST(test_set_each_type) {
  bw_config_t cfg;
  bw_error_t error;
  bw_config_init(&cfg);
  ck_assert_int_eq(bw_config_set(&cfg, "max_students", "5", &error), 0);
  ck_assert_int_eq(cfg.max_students, 5);
  ck_assert_int_eq(bw_config_set(&cfg, "max_env_value", "123456", &error), 0);
  ck_assert_uint_eq(cfg.max_env_value, 123456);
  ck_assert_int_eq(bw_config_set(&cfg, "max_body", "8589934592", &error), 0);
  ck_assert_uint_eq(cfg.max_body, 8589934592ull);
  ck_assert_int_eq(bw_config_set(&cfg, "socket_path", "/s", &error), 0);
  ck_assert_str_eq(cfg.socket_path, "/s");
  ck_assert_int_eq(bw_config_set(&cfg, "queue_empty_code", "418", &error), 0);
  ck_assert_int_eq(cfg.queue_empty_code, 418);
}
END_TEST

START_TEST(test_set_errors) {
  char long_host[100];
  memset(long_host, 'h', 64);
  long_host[64] = '\0';
  expect_set_error("nope", "1", "nope: unknown key");
  expect_set_error("max_body", "-1",
                   "max_body: expected an integer >= 1, got \"-1\"");
  expect_set_error("max_body", "12abc",
                   "max_body: expected an integer >= 1, got \"12abc\"");
  expect_set_error("workers", "0",
                   "workers: expected an integer in 1..256, got \"0\"");
  expect_set_error("workers", "+4",
                   "workers: expected an integer in 1..256, got \"+4\"");
  expect_set_error("listen_mode", "0680",
                   "listen_mode: expected an octal mode such as 0660, got "
                   "\"0680\"");
  expect_set_error("listen_mode", "01777",
                   "listen_mode: expected an octal mode such as 0660, got "
                   "\"01777\"");
  expect_set_error("listen_mode", "",
                   "listen_mode: expected an octal mode such as 0660, got "
                   "\"\"");
  expect_set_error("workers", "257",
                   "workers: expected an integer in 1..256, got \"257\"");
  expect_set_error("workers", "\t4",
                   "workers: expected an integer in 1..256, got \"\t4\"");
  expect_set_error("port", "99999999999999999999",
                   "port: expected an integer in 1..65535, got "
                   "\"99999999999999999999\"");
  expect_set_error("listen_host", long_host,
                   "listen_host: longer than 63 bytes");
  expect_set_error("data_dir", "", "data_dir: must not be empty");
  expect_set_error("db_name", "", "db_name: must not be empty");
}
END_TEST

START_TEST(test_set_token_error_hides_token) {
  char token[300];
  bw_config_t cfg;
  bw_error_t error;
  memset(token, 's', sizeof token - 1);
  token[sizeof token - 1] = '\0';
  bw_config_init(&cfg);
  ck_assert_int_eq(bw_config_set(&cfg, "token", token, &error), BW_EINVAL);
  ck_assert_str_eq(error.message, "token: longer than 255 bytes");
}
END_TEST

/* ---- broadway.conf ---------------------------------------------------- */

START_TEST(test_repo_conf_matches_defaults) {
  bw_config_t from_file, built_in;
  ck_assert_msg(repo_conf[0] != '\0', "broadway.conf not found");
  load_ok(&from_file, repo_conf);
  load_ok(&built_in, NULL);
  ck_assert_int_eq(memcmp(&from_file, &built_in, sizeof from_file), 0);
}
END_TEST

START_TEST(test_repo_conf_documents_every_key) {
  char text[65536], pattern[64];
  size_t i, n;
  FILE *f = fopen(repo_conf, "r");
  ck_assert_ptr_nonnull(f);
  n = fread(text, 1, sizeof text - 1, f);
  text[n] = '\0';
  fclose(f);
  for (i = 0; i < sizeof all_keys / sizeof all_keys[0]; i++) {
    bw_config_t cfg;
    bw_error_t error;
    snprintf(pattern, sizeof pattern, "\n%s =", all_keys[i]);
    if (strstr(text, pattern) == NULL) {
      snprintf(pattern, sizeof pattern, "\n# %s =", all_keys[i]);
      ck_assert_msg(strstr(text, pattern) != NULL, "%s not in broadway.conf",
                    all_keys[i]);
    }
    /* and the key list here is the real one */
    bw_config_init(&cfg);
    error.message[0] = '\0';
    bw_config_set(&cfg, all_keys[i], "x", &error);
    ck_assert_ptr_null(strstr(error.message, "unknown key"));
  }
}
END_TEST

static Suite *config_suite(void) {
  Suite *s = suite_create("config");
  TCase *defaults = tcase_create("defaults");
  TCase *file = tcase_create("file");
  TCase *env = tcase_create("environment");
  TCase *derived = tcase_create("derived");
  TCase *set = tcase_create("set");
  TCase *repo = tcase_create("broadway_conf");
  TCase *all[] = {defaults, file, env, derived, set, repo};
  size_t i;

  for (i = 0; i < sizeof all / sizeof all[0]; i++)
    tcase_add_checked_fixture(all[i], setup, teardown);

  tcase_add_test(defaults, test_init_defaults);
  tcase_add_test(defaults, test_load_without_file);

  tcase_add_test(file, test_file_values_comments_blanks);
  tcase_add_test(file, test_file_unknown_key);
  tcase_add_test(file, test_file_missing_equals);
  tcase_add_test(file, test_file_bad_values);
  tcase_add_test(file, test_file_missing);

  tcase_add_test(env, test_env_wins_over_file);
  tcase_add_test(env, test_file_used_when_env_unset);
  tcase_add_test(env, test_env_bad_value);
  tcase_add_test(env, test_env_bad_heartbeat);
  tcase_add_test(env, test_env_bad_poll_wait);

  tcase_add_test(derived, test_socket_path_follows_final_data_dir);
  tcase_add_test(derived, test_socket_path_from_file_kept);
  tcase_add_test(derived, test_listen_follows_socket_path);
  tcase_add_test(derived, test_listen_sets_socket_path);
  tcase_add_test(derived, test_default_path);
  tcase_add_test(derived, test_token_file);
  tcase_add_test(derived, test_token_env_wins_over_token_file);
  tcase_add_test(derived, test_token_file_after_env_data_dir);
  tcase_add_test(derived, test_no_token_file);
  tcase_add_test(derived, test_token_file_too_long);
  tcase_add_test(derived, test_ferretdb_uri_absolute_encoded);
  tcase_add_test(derived, test_ferretdb_uri_relative_data_dir);
  tcase_add_test(derived, test_mongo_uri_from_file_kept);
  tcase_add_test(derived, test_default_timeout_over_max);

  tcase_add_test(set, test_set_each_type);
  tcase_add_test(set, test_set_errors);
  tcase_add_test(set, test_set_token_error_hides_token);

  tcase_add_test(repo, test_repo_conf_matches_defaults);
  tcase_add_test(repo, test_repo_conf_documents_every_key);

  for (i = 0; i < sizeof all / sizeof all[0]; i++)
    suite_add_tcase(s, all[i]);
  return s;
}

/* The tests chdir into temporary directories, so the repository's
 * broadway.conf is located first: in the working directory (make runs the
 * tests from the repository root), else next to this source file. */
static void find_repo_conf(void) {
  char here[PATH_MAX + 32], *slash;
  if (realpath("broadway.conf", repo_conf) != NULL)
    return;
  snprintf(here, sizeof here, "%s", __FILE__);
  slash = strstr(here, "tests/unit/");
  if (slash != NULL) {
    strcpy(slash, "broadway.conf");
    if (realpath(here, repo_conf) != NULL)
      return;
  }
  repo_conf[0] = '\0';
}

int main(void) {
  find_repo_conf();
  return bw_test_main(config_suite());
}
