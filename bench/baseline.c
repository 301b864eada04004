/* C baselines for the benchmark: open + flock(LOCK_EX) + flock(LOCK_UN) + close per
 * lock, the floor any flock-based library pays. Same modes and line protocol as
 * worker.mjs (uncontended | serve | contend), plus uncontended-record (the
 * holder record's system calls added to each loop) and serve-thread: the waiter's main
 * thread sleeps in epoll_wait while a wait thread blocks in flock and wakes it through
 * an eventfd, which is what an addon over an event loop does at best (libuv's async
 * handles are an eventfd on Linux). Compiled by run.mjs when `cc` exists (Linux). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static char lock_path[4096];

static int lock_open(void) {
  int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) { perror("open"); exit(1); }
  while (flock(fd, LOCK_EX) != 0) {
    perror("flock");
    exit(1);
  }
  return fd;
}

static void unlock_close(int fd) {
  flock(fd, LOCK_UN);
  close(fd);
}

/* The holder record's system calls, as session-flock makes them per hold: through the
 * locked descriptor, an fstat (is the file empty?) and a pwrite at offset 0; before the
 * unlock, an ftruncate to 0. */
static const char record_text[] =
    "{\"pid\":12345,\"hostname\":\"host\",\"owner\":null,\"mode\":\"exclusive\","
    "\"process\":{\"argv0\":\"node\",\"title\":\"node\"},\"node\":\"v20.20.2\",\"nonce\":\"0123456789ab-1\","
    "\"createdAt\":\"2026-12-01T00:00:00.000Z\",\"acquiredAt\":1764547200000}\n";

static void record_write(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0 || (st.st_size == 0 && pwrite(fd, record_text, sizeof record_text - 1, 0) != (ssize_t)(sizeof record_text - 1))) {
    perror("record");
    exit(1);
  }
}

static void record_clear(int fd) {
  if (ftruncate(fd, 0) != 0) { perror("ftruncate"); exit(1); }
}

/* One long-lived wait thread (as the addon's pooled ones): each job is open + a
 * blocking flock, then one eventfd write that wakes the main thread's epoll loop. */
static pthread_mutex_t job_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t job_cv = PTHREAD_COND_INITIALIZER;
static int job_pending;
static int granted_fd = -1;
static int wake_fd;

static void *wait_thread(void *arg) {
  (void)arg;
  for (;;) {
    pthread_mutex_lock(&job_mu);
    while (!job_pending) pthread_cond_wait(&job_cv, &job_mu);
    job_pending = 0;
    pthread_mutex_unlock(&job_mu);
    __atomic_store_n(&granted_fd, lock_open(), __ATOMIC_RELEASE);
    uint64_t one = 1;
    if (write(wake_fd, &one, sizeof one) != sizeof one) { perror("eventfd write"); exit(1); }
  }
  return NULL;
}

static int epoll_fd = -1;

/* Lazily starts the wait thread and its epoll loop; exits on failure. */
static void start_wait_thread(void) {
  wake_fd = eventfd(0, EFD_CLOEXEC);
  epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = wake_fd};
  pthread_t thread;
  if (wake_fd < 0 || epoll_fd < 0 || epoll_ctl(epoll_fd, EPOLL_CTL_ADD, wake_fd, &ev) != 0 ||
      pthread_create(&thread, NULL, wait_thread, NULL) != 0) {
    perror("wait thread");
    exit(1);
  }
}

/* serve: the main thread itself blocks in flock (two processes ping-ponging flock). */
static int acquire_direct(void) {
  printf("waiting\n");
  return lock_open();
}

/* serve-thread: the wait thread blocks in flock; the main thread sleeps in epoll_wait. */
static int acquire_via_thread(void) {
  if (epoll_fd < 0) start_wait_thread();
  pthread_mutex_lock(&job_mu);
  job_pending = 1;
  pthread_cond_signal(&job_cv);
  pthread_mutex_unlock(&job_mu);
  printf("waiting\n");
  struct epoll_event got;
  while (epoll_wait(epoll_fd, &got, 1, -1) != 1) {}
  uint64_t count;
  if (read(wake_fd, &count, sizeof count) != sizeof count) { perror("eventfd read"); exit(1); }
  return __atomic_load_n(&granted_fd, __ATOMIC_ACQUIRE); /* stored before the eventfd write that woke us */
}

static int serve(int (*acquire)(void)) {
  char line[256];
  int fd = -1;
  while (fgets(line, sizeof line, stdin) != NULL) {
    if (strncmp(line, "acquire", 7) == 0) {
      fd = acquire();
      printf("acquired %lld\n", now_ns());
    } else if (strncmp(line, "release", 7) == 0) {
      long long t = now_ns();
      unlock_close(fd);
      printf("released %lld\n", t);
    } else if (strncmp(line, "exit", 4) == 0) {
      return 0;
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  const char *mode = argv[1];
  snprintf(lock_path, sizeof lock_path, "%s.lock", argv[2]);
  char line[256];
  int with_record = strcmp(mode, "uncontended-record") == 0;
  if ((with_record || strcmp(mode, "uncontended") == 0) && argc >= 5) {
    long max_iters = atol(argv[3]);
    long long limit = now_ns() + atoll(argv[4]) * 1000000LL;
    for (int i = 0; i < 200; i++) unlock_close(lock_open());
    long long t0 = now_ns();
    long iters = 0;
    while (iters < max_iters) {
      int fd = lock_open();
      if (with_record) record_write(fd);
      if (with_record) record_clear(fd);
      unlock_close(fd);
      iters++;
      if ((iters & 63) == 0 && now_ns() > limit) break;
    }
    long long ns = now_ns() - t0;
    printf("{\"iters\":%ld,\"ms\":%.3f,\"usPerOp\":%.4f}\n", iters, ns / 1e6, ns / 1e3 / iters);
    return 0;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (strcmp(mode, "serve") == 0) return serve(acquire_direct);
  if (strcmp(mode, "serve-thread") == 0) return serve(acquire_via_thread);
  if (strcmp(mode, "contend") == 0 && argc >= 5) {
    const char *counter = argv[3];
    long n = atol(argv[4]);
    printf("ready\n");
    while (fgets(line, sizeof line, stdin) != NULL && strncmp(line, "go", 2) != 0) {}
    for (long i = 0; i < n; i++) {
      int fd = lock_open();
      int c = open(counter, O_RDWR | O_CREAT, 0600);
      char buf[32] = {0};
      ssize_t r = read(c, buf, sizeof buf - 1);
      long value = r > 0 ? atol(buf) : 0;
      int len = snprintf(buf, sizeof buf, "%ld", value + 1);
      if (pwrite(c, buf, len, 0) != len || ftruncate(c, len) != 0) { perror("write"); return 1; }
      close(c);
      unlock_close(fd);
    }
    printf("done\n");
    return 0;
  }
  return 2;
}
