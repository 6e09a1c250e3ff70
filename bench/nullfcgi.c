/* nullfcgi.c - the HTTP baseline's FastCGI program: the same process model
 * as broadway-fcgi (a parent forking N workers that poll one non-blocking
 * listening socket and race to accept), and a handler that does no work:
 * it reads the request body, as every real handler must, and answers
 * 200 {"status":"success","data":null}.
 *
 *   bw-nullfcgi SOCKET WORKERS
 *
 * Runs in the foreground until SIGTERM/SIGINT, then stops its workers. */
#include <errno.h>
#include <fcgiapp.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_WORKERS 256

static const char reply[] = "Status: 200 OK\r\n"
                            "Content-Type: application/json\r\n"
                            "\r\n"
                            "{\"status\":\"success\",\"data\":null}";

static volatile sig_atomic_t stopping;

static void on_stop(int signo) {
  (void)signo;
  stopping = 1;
}

static void serve_one(FCGX_Request *req) {
  char buf[16384];
  while (FCGX_GetStr(buf, sizeof buf, req->in) > 0) {
  }
  FCGX_PutStr(reply, (int)sizeof reply - 1, req->out);
}

static int worker_run(int fd) {
  FCGX_Request req;
  struct pollfd pfd = {.fd = fd, .events = POLLIN};

  prctl(PR_SET_PDEATHSIG, SIGTERM);
  FCGX_InitRequest(&req, fd, 0);
  while (!stopping) {
    if (poll(&pfd, 1, 500) <= 0)
      continue;
    if (FCGX_Accept_r(&req) < 0)
      continue; /* another worker won the race (EAGAIN) */
    serve_one(&req);
    FCGX_Finish_r(&req);
  }
  FCGX_Free(&req, 1);
  return 0;
}

static int open_socket(const char *path) {
  int fd;
  unlink(path);
  fd = FCGX_OpenSocket(path, 1024);
  if (fd < 0)
    return -1;
  chmod(path, 0600);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

int main(int argc, char **argv) {
  pid_t pids[MAX_WORKERS];
  struct sigaction sa;
  sigset_t stops, waiting;
  int fd, n;

  if (argc != 3 || (n = atoi(argv[2])) < 1 || n > MAX_WORKERS) {
    fprintf(stderr, "usage: bw-nullfcgi SOCKET WORKERS(1-%d)\n", MAX_WORKERS);
    return 2;
  }
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  /* Stop signals are let in only inside sigsuspend: none can slip in
   * between the check of `stopping` and the wait. */
  sigemptyset(&stops);
  sigaddset(&stops, SIGTERM);
  sigaddset(&stops, SIGINT);
  sigprocmask(SIG_BLOCK, &stops, &waiting);
  if (FCGX_Init() != 0 || (fd = open_socket(argv[1])) < 0) {
    fprintf(stderr, "bw-nullfcgi: cannot listen on %s: %s\n", argv[1],
            strerror(errno));
    return 1;
  }
  for (int i = 0; i < n; i++) {
    pids[i] = fork();
    if (pids[i] == 0) {
      sigprocmask(SIG_SETMASK, &waiting, NULL);
      _exit(worker_run(fd));
    }
  }
  while (!stopping)
    sigsuspend(&waiting);
  for (int i = 0; i < n; i++)
    if (pids[i] > 0)
      kill(pids[i], SIGTERM);
  for (int i = 0; i < n; i++)
    if (pids[i] > 0)
      waitpid(pids[i], NULL, 0);
  unlink(argv[1]);
  return 0;
}
