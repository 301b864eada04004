/* C tests of the POSIX lock core (native/flock_posix.c), run by ctest, one
 * configuration with -fsanitize=address,undefined. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static char dir[256];
static char lock_path[320];

static void path_in_dir(char *out, const char *name) { snprintf(out, 320, "%s/%s", dir, name); }

#include "lock_cases.h"

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

typedef struct {
  sf_file_t *f;
  int shared;
  int result;
  int done;
  sf_mutex_t *mu;
} waiter_t;

static void wait_main(void *p) {
  waiter_t *w = p;
  int r = sf_wait_lock(w->f, w->shared);
  sf_mutex_lock(w->mu);
  w->result = r;
  w->done = 1;
  sf_mutex_unlock(w->mu);
}

static int is_done(waiter_t *w) {
  sf_mutex_lock(w->mu);
  int d = w->done;
  sf_mutex_unlock(w->mu);
  return d;
}

static int wait_done(waiter_t *w, int ms) {
  for (int i = 0; i < ms && !is_done(w); i += 5) sleep_ms(5);
  return is_done(w);
}

static void test_wait_thread(void) {
  sf_file_t *a = must_open(lock_path), *b = must_open(lock_path);
  CHECK_EQ(sf_try_lock(a, 0), 0);
  waiter_t w = {b, 0, 1, 0, sf_mutex_new()};
  CHECK_TRUE(w.mu != NULL);
  CHECK_EQ(sf_thread_start(wait_main, &w), 0);
  sleep_ms(100);
  CHECK_EQ(is_done(&w), 0);
  /* POSIX flock cannot be interrupted: cancel says so, and the wait goes on */
  CHECK_EQ(sf_cancel_wait(b), SF_WOULD_BLOCK);
  sleep_ms(50);
  CHECK_EQ(is_done(&w), 0);
  CHECK_EQ(sf_unlock(a), 0);
  CHECK_TRUE(wait_done(&w, 5000));
  CHECK_EQ(w.result, 0);
  CHECK_EQ(sf_try_lock(a, 1), SF_WOULD_BLOCK);
  sf_close(b);
  CHECK_EQ(sf_try_lock(a, 1), 0);
  sf_close(a);
  sf_mutex_free(w.mu);
  sleep_ms(20); /* let the detached thread finish before ASan's leak check */
}

static void test_identity(void) {
  char p[320], other[320];
  path_in_dir(p, "ident.lock");
  path_in_dir(other, "other.lock");
  sf_file_t *a = must_open(p);
  CHECK_EQ(sf_same_file(a, p), 0);
  CHECK_EQ(unlink(p), 0);
  CHECK_EQ(sf_same_file(a, p), SF_REPLACED);
  sf_file_t *n = must_open(p); /* a new file at the old name */
  CHECK_EQ(sf_same_file(a, p), SF_REPLACED);
  CHECK_EQ(sf_same_file(n, p), 0);
  sf_close(n);
  sf_close(a);

  a = must_open(p);
  sf_close(must_open(other));
  CHECK_EQ(rename(other, p), 0); /* renamed over */
  CHECK_EQ(sf_same_file(a, p), SF_REPLACED);
  sf_close(a);
  unlink(p);
}

static void test_errors(void) {
  sf_file_t *f = NULL;
  char p[320];
  path_in_dir(p, "missing.lock");
  int r = sf_open(p, 0600, 0, &f);
  CHECK_NAME(r, "ENOENT");
  path_in_dir(p, "no/such/dir.lock");
  CHECK_NAME(sf_open(p, 0600, SF_OPEN_CREATE, &f), "ENOENT");
  CHECK_NAME(sf_open(dir, 0600, 0, &f), "EISDIR");
  path_in_dir(p, "link.lock");
  CHECK_EQ(symlink(lock_path, p), 0);
  CHECK_NAME(sf_open(p, 0600, SF_OPEN_CREATE, &f), "ELOOP");
  path_in_dir(p, "fifo");
  CHECK_EQ(mkfifo(p, 0600), 0);
  r = sf_open(p, 0600, 0, &f);
  CHECK_EQ(r, SF_NOT_REGULAR);
  CHECK_NAME(r, "EFTYPE");
  CHECK_EQ(sf_open("/dev/null", 0600, 0, &f), SF_NOT_REGULAR);
  /* a socket: open() says ENXIO, but it is just another kind of not-a-file */
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  path_in_dir(p, "sock");
  size_t len = strlen(p);
  CHECK_TRUE(len < sizeof addr.sun_path);
  memcpy(addr.sun_path, p, len < sizeof addr.sun_path ? len + 1 : 0);
  int sock = socket(AF_UNIX, SOCK_STREAM, 0);
  CHECK_TRUE(sock >= 0);
  CHECK_EQ(bind(sock, (struct sockaddr *)&addr, sizeof addr), 0);
  CHECK_EQ(sf_open(p, 0600, SF_OPEN_CREATE, &f), SF_NOT_REGULAR);
  close(sock);
#ifdef __linux__
  /* kernel views that say S_IFREG: /proc (this process may write its own comm) and /sys */
  CHECK_EQ(sf_open("/proc/self/comm", 0600, 0, &f), SF_NOT_REGULAR);
  int sys_fd = open("/sys/kernel/mm/transparent_hugepage/enabled", O_RDWR);
  if (sys_fd >= 0) {
    close(sys_fd);
    CHECK_EQ(sf_open("/sys/kernel/mm/transparent_hugepage/enabled", 0600, 0, &f), SF_NOT_REGULAR);
  }
#endif
  /* the one place where "someone else holds it" is folded */
  CHECK_EQ(sf_fold_os_error(EWOULDBLOCK), SF_WOULD_BLOCK);
  CHECK_EQ(sf_fold_os_error(EAGAIN), SF_WOULD_BLOCK);
  CHECK_EQ(sf_fold_os_error(EACCES), SF_WOULD_BLOCK);
  CHECK_EQ(sf_fold_os_error(ENOLCK), -ENOLCK);
  CHECK_NAME(SF_WOULD_BLOCK, "EWOULDBLOCK");
  CHECK_NAME(SF_REPLACED, "ESTALE");
  CHECK_NAME(SF_CANCELLED, "ECANCELED");
  CHECK_NAME(SF_NO_MEMORY, "ENOMEM");
  CHECK_EQ(sf_error_errno(-ENOENT), ENOENT);
  CHECK_EQ(sf_error_errno(SF_WOULD_BLOCK), 0);
  /* permissions of a new lock file */
  path_in_dir(p, "mode.lock");
  CHECK_EQ(sf_open(p, 0640, SF_OPEN_CREATE, &f), 0);
  struct stat st;
  CHECK_EQ(stat(p, &st), 0);
  CHECK_EQ(st.st_mode & 0777, 0640 & ~0022);
  sf_close(f);
}

static void test_cloexec(void) {
  sf_file_t *a = must_open(lock_path);
  int fd = (int)sf_native_handle(a);
  CHECK_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
  CHECK_EQ(sf_set_inheritable(a, 1), 0);
  CHECK_EQ(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
  CHECK_EQ(sf_set_inheritable(a, 0), 0);
  CHECK_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
  sf_close(a);
}

int main(void) {
  umask(0022);
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/sf-core-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (mkdtemp(dir) == NULL) return 2;
  path_in_dir(lock_path, "a.lock");
  RUN(test_exclusive_conflict);
  RUN(test_shared);
  RUN(test_close_releases);
  RUN(test_keys);
  RUN(test_wall_clock);
  RUN(test_record_in_lock_file);
  RUN(test_wait_thread);
  RUN(test_identity);
  RUN(test_errors);
  RUN(test_cloexec);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  DONE();
}
