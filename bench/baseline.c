/* C baseline for the benchmark: open + flock(LOCK_EX) + flock(LOCK_UN) + close per
 * lock, the floor any flock-based library pays. Same modes and line protocol as
 * worker.mjs (uncontended | serve | contend). Compiled by run.mjs when `cc` exists. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
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

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  const char *mode = argv[1];
  snprintf(lock_path, sizeof lock_path, "%s.lock", argv[2]);
  char line[256];
  if (strcmp(mode, "uncontended") == 0 && argc >= 5) {
    long max_iters = atol(argv[3]);
    long long limit = now_ns() + atoll(argv[4]) * 1000000LL;
    for (int i = 0; i < 200; i++) unlock_close(lock_open());
    long long t0 = now_ns();
    long iters = 0;
    while (iters < max_iters) {
      unlock_close(lock_open());
      iters++;
      if ((iters & 63) == 0 && now_ns() > limit) break;
    }
    long long ns = now_ns() - t0;
    printf("{\"iters\":%ld,\"ms\":%.3f,\"usPerOp\":%.4f}\n", iters, ns / 1e6, ns / 1e3 / iters);
    return 0;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (strcmp(mode, "serve") == 0) {
    int fd = -1;
    while (fgets(line, sizeof line, stdin) != NULL) {
      if (strncmp(line, "acquire", 7) == 0) {
        printf("waiting\n");
        fd = lock_open();
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
