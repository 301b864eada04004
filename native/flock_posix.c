/* flock(2) implementation of flock.h for Linux, macOS and the BSDs. */
#define _GNU_SOURCE
#include "flock.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct sf_file {
  int fd;
  /* Identity of the opened file, from the fstat that open does anyway: it cannot
   * change while the descriptor is open (nor can the inode number be reused), so
   * the identity check after locking needs only one lstat of the path. */
  dev_t dev;
  ino_t ino;
  /* Whether the file was empty at open, while nothing has been tried through the
   * descriptor but one lock that succeeded: the record of an uncontended acquire (open,
   * then lock, in one synchronous run) then needs no fstat of its own. Another holder can
   * only have come and gone in between by emptying the file before its unlock, or by dying
   * in those microseconds, leaving a record that this one's overwrites and then empties. */
  int empty_at_open;
};

struct sf_mutex {
  pthread_mutex_t m;
};

/* The one place where the ways an OS says "someone else holds it" become one code. */
int sf_fold_os_error(int err) {
  if (err == EWOULDBLOCK || err == EAGAIN || err == EACCES) return SF_WOULD_BLOCK;
  return -err;
}

/* open() refuses a socket with ENXIO (Linux) or EOPNOTSUPP (macOS), and a
 * device without a driver with ENXIO: like a FIFO or a device, not a lock file. */
static int sf_open_refused(const char *path, int err) {
  struct stat st;
  if ((err == ENXIO || err == EOPNOTSUPP) && lstat(path, &st) == 0 &&
      (S_ISSOCK(st.st_mode) || S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)))
    return SF_NOT_REGULAR;
  return -err;
}

#ifdef __linux__
#include <sys/sysmacros.h>
#include <sys/vfs.h>

/* Files of /proc, /sys and the kernel filesystems mounted below them say
 * S_IFREG, but they are views of kernel state that a lock protects nothing
 * in. statfs(2) f_type magic numbers (linux/magic.h). */
static int sf_statfs_says_kernel_view(int fd);

/* Kernel filesystems have no block device (major 0), so a file on a block device
 * needs no statfs; nor does one on the device this thread last found to be an
 * ordinary filesystem (tmpfs, overlay: major 0 too). Only that answer is kept:
 * a kernel view is asked about every time, so no file is ever refused on an old
 * answer; a device number freed by an unmount and reused by a new proc or sysfs
 * mount is the one way an old answer could let a kernel view through. */
static int sf_is_kernel_view(int fd, dev_t dev) {
  static _Thread_local dev_t ordinary_anonymous_dev;
  static _Thread_local int ordinary_known;
  if (major(dev) != 0 || (ordinary_known && dev == ordinary_anonymous_dev)) return 0;
  if (sf_statfs_says_kernel_view(fd)) return 1;
  ordinary_anonymous_dev = dev;
  ordinary_known = 1;
  return 0;
}

static int sf_statfs_says_kernel_view(int fd) {
  static const uint32_t kernel_filesystems[] = {
      0x9fa0,     /* proc */
      0x62656572, /* sysfs */
      0x27e0eb,   /* cgroup */
      0x63677270, /* cgroup2 */
      0x64626720, /* debugfs */
      0x74726163, /* tracefs */
      0x73636673, /* securityfs */
      0x6165676c, /* pstore */
      0xcafe4a11, /* bpf */
      0x62656570, /* configfs */
      0xde5e81e4, /* efivarfs */
      0x65735543, /* fusectl */
      0x42494e4d, /* binfmt_misc */
  };
  struct statfs fs;
  if (fstatfs(fd, &fs) != 0) return 0;
  for (size_t i = 0; i < sizeof kernel_filesystems / sizeof kernel_filesystems[0]; i++) {
    if ((uint32_t)fs.f_type == kernel_filesystems[i]) return 1;
  }
  return 0;
}
#else
/* macOS and the BSDs have no such views among their regular files. */
static int sf_is_kernel_view(int fd, dev_t dev) {
  (void)fd;
  (void)dev;
  return 0;
}
#endif

int sf_open(const char *path, int mode, int flags, sf_file_t **out) {
  sf_file_t *f = malloc(sizeof *f);
  if (f == NULL) return SF_NO_MEMORY;
  int fd;
  do {
    fd = open(path, O_RDWR | ((flags & SF_OPEN_CREATE) ? O_CREAT : 0) | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK, (mode_t)mode);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    int err = errno;
    free(f);
    return sf_open_refused(path, err);
  }
  /* O_NONBLOCK only keeps open() of a FIFO from hanging; a FIFO or device is
   * still refused below, since locking one says nothing about a session file.
   * It stays set: flock() blocks or not by LOCK_NB alone, and reads and writes
   * of a regular file ignore it, so clearing it would cost two system calls per
   * acquire for nothing (the descriptor is only locked, checked and closed, or
   * handed as is to `session-flock run`'s command). */
  struct stat st;
  int not_usable = fstat(fd, &st) != 0 ? -errno : (S_ISREG(st.st_mode) && !sf_is_kernel_view(fd, st.st_dev) ? 0 : SF_NOT_REGULAR);
  if (not_usable != 0) {
    close(fd);
    free(f);
    return not_usable;
  }
  f->fd = fd;
  f->dev = st.st_dev;
  f->ino = st.st_ino;
  f->empty_at_open = st.st_size == 0;
  *out = f;
  return 0;
}

static int sf_flock(int fd, int op) {
  int r;
  do {
    r = flock(fd, op);
  } while (r != 0 && errno == EINTR && !(op & LOCK_NB));
  return r == 0 ? 0 : sf_fold_os_error(errno);
}

int sf_try_lock(sf_file_t *f, int shared) {
  int r = sf_flock(f->fd, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB);
  if (r != 0) f->empty_at_open = 0;
  return r;
}

int sf_wait_lock(sf_file_t *f, int shared) {
  f->empty_at_open = 0;
  return sf_flock(f->fd, shared ? LOCK_SH : LOCK_EX);
}

int sf_cancel_wait(sf_file_t *f) {
  (void)f;
  return SF_WOULD_BLOCK;
}

int sf_unlock(sf_file_t *f) {
  f->empty_at_open = 0;
  return flock(f->fd, LOCK_UN) == 0 ? 0 : -errno;
}

/* One lstat: when the path names the very inode that was opened (kept open, so
 * its number cannot have been reused), that inode has a link, and nothing else
 * needs checking; an unlinked, renamed-over or replaced file fails the match. */
int sf_same_file(sf_file_t *f, const char *path) {
  struct stat named;
  if (lstat(path, &named) != 0) return errno == ENOENT ? SF_REPLACED : -errno;
  if (named.st_dev != f->dev || named.st_ino != f->ino) return SF_REPLACED;
  return 0;
}

static int sf_key_of(dev_t dev, ino_t ino, char *out) {
  if (ino == 0) return 0;
  return snprintf(out, SF_KEY_MAX, "%llu:%llu", (unsigned long long)dev, (unsigned long long)ino);
}

int sf_file_key(sf_file_t *f, char *out) {
  return sf_key_of(f->dev, f->ino, out);
}

int sf_path_key(const char *path, char *out) {
  struct stat st;
  if (lstat(path, &st) != 0) return -errno;
  return sf_key_of(st.st_dev, st.st_ino, out);
}

static int sf_pwrite_all(int fd, const char *data, size_t len) {
  for (size_t done = 0; done < len;) {
    ssize_t n = pwrite(fd, data + done, len - done, (off_t)done);
    if (n > 0) done += (size_t)n;
    else if (n == 0) return -EIO;
    else if (errno != EINTR) return -errno;
  }
  return 0;
}

static int sf_truncate(int fd, off_t length) {
  int r;
  do {
    r = ftruncate(fd, length);
  } while (r != 0 && errno == EINTR);
  return r == 0 ? 0 : -errno;
}

int sf_write_record(sf_file_t *f, const char *data, size_t len, int replace) {
  if (!replace && !f->empty_at_open) {
    struct stat st;
    if (fstat(f->fd, &st) != 0) return -errno;
    if (st.st_size != 0) return SF_NOT_EMPTY;
  }
  f->empty_at_open = 0;
  int r = sf_pwrite_all(f->fd, data, len);
  return r == 0 && replace ? sf_truncate(f->fd, (off_t)len) : r;
}

int sf_clear_record(sf_file_t *f) {
  return sf_truncate(f->fd, 0);
}

/* The lstat and the unlink are two calls; only a process that removes lock
 * files without holding them (which nothing may do) could slip between. */
int sf_remove_locked(sf_file_t *f, const char *path) {
  int r = sf_same_file(f, path);
  if (r != 0) return r;
  if (unlink(path) == 0) return 0;
  return errno == ENOENT ? SF_REPLACED : -errno;
}

int sf_close(sf_file_t *f) {
  int r = close(f->fd);
  int err = errno;
  free(f);
  /* POSIX leaves the descriptor closed even when close() reports EINTR. */
  return (r == 0 || err == EINTR) ? 0 : -err;
}

intptr_t sf_native_handle(sf_file_t *f) {
  return f->fd;
}

int sf_set_inheritable(sf_file_t *f, int inheritable) {
  int flags = fcntl(f->fd, F_GETFD);
  if (flags < 0) return -errno;
  flags = inheritable ? (flags & ~FD_CLOEXEC) : (flags | FD_CLOEXEC);
  return fcntl(f->fd, F_SETFD, flags) == 0 ? 0 : -errno;
}

const char *sf_error_name(int code) {
  switch (code) {
    case SF_WOULD_BLOCK: return "EWOULDBLOCK";
    case SF_REPLACED: return "ESTALE";
    case SF_CANCELLED: return "ECANCELED";
    case SF_NO_MEMORY: return "ENOMEM";
    case SF_NOT_REGULAR: return "EFTYPE";
    case SF_NOT_EMPTY: return "ENOTEMPTY";
  }
  switch (-code) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EIO: return "EIO";
    case EBADF: return "EBADF";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case ENODEV: return "ENODEV";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case EINVAL: return "EINVAL";
    case ENFILE: return "ENFILE";
    case EMFILE: return "EMFILE";
    case ETXTBSY: return "ETXTBSY";
    case ENOSPC: return "ENOSPC";
    case EROFS: return "EROFS";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ENOLCK: return "ENOLCK";
    case ENOSYS: return "ENOSYS";
    case ELOOP: return "ELOOP";
    case EOPNOTSUPP: return "EOPNOTSUPP";
#if defined(ENOTSUP) && ENOTSUP != EOPNOTSUPP
    case ENOTSUP: return "ENOTSUP";
#endif
    case EDEADLK: return "EDEADLK";
    case EINTR: return "EINTR";
    case ENXIO: return "ENXIO";
    case EOVERFLOW: return "EOVERFLOW";
    case EDQUOT: return "EDQUOT";
    case ESTALE: return "ESTALE";
  }
  return NULL;
}

int sf_error_errno(int code) {
  return code <= SF_WOULD_BLOCK ? 0 : -code;
}

/* Pinning rather than joining the threads at env teardown: a thread parked in
 * flock() cannot be interrupted, so it may outlive every env for as long as
 * another process holds the lock. dladdr() finds the file this code was loaded
 * from, and dlopen() of that already-loaded object (RTLD_NOLOAD) with
 * RTLD_NODELETE makes a later dlclose() leave it mapped; the handle it returns
 * is never closed, which holds a reference of its own. */
static const char sf_module_anchor = 0; /* an address inside this module */
static pthread_once_t sf_pin_once = PTHREAD_ONCE_INIT;
static int sf_pin_result = 0;

static void sf_pin_now(void) {
  Dl_info info;
  if (dladdr(&sf_module_anchor, &info) == 0 || info.dli_fname == NULL) {
    sf_pin_result = -ENOENT;
    return;
  }
  if (dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE) == NULL) sf_pin_result = -ENOENT;
}

int sf_pin_module(void) {
  pthread_once(&sf_pin_once, sf_pin_now);
  return sf_pin_result;
}

sf_mutex_t *sf_mutex_new(void) {
  sf_mutex_t *m = malloc(sizeof *m);
  if (m != NULL && pthread_mutex_init(&m->m, NULL) != 0) {
    free(m);
    return NULL;
  }
  return m;
}

void sf_mutex_lock(sf_mutex_t *m) { pthread_mutex_lock(&m->m); }
void sf_mutex_unlock(sf_mutex_t *m) { pthread_mutex_unlock(&m->m); }

void sf_mutex_free(sf_mutex_t *m) {
  pthread_mutex_destroy(&m->m);
  free(m);
}

typedef struct {
  void (*fn)(void *);
  void *arg;
} sf_thread_spawn_t;

static void *sf_thread_main(void *p) {
  sf_thread_spawn_t start = *(sf_thread_spawn_t *)p;
  free(p);
  start.fn(start.arg);
  return NULL;
}

int sf_thread_spawn(void (*fn)(void *), void *arg) {
  sf_thread_spawn_t *start = malloc(sizeof *start);
  if (start == NULL) return SF_NO_MEMORY;
  start->fn = fn;
  start->arg = arg;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  /* A waiter only sits in flock(); a small stack keeps many of them cheap. */
  pthread_attr_setstacksize(&attr, 64 * 1024);
  pthread_t thread;
  int r = pthread_create(&thread, &attr, sf_thread_main, start);
  pthread_attr_destroy(&attr);
  if (r != 0) {
    free(start);
    return -r;
  }
  return 0;
}

void sf_thread_set_name(const char *name) {
#ifdef __linux__
  /* So that tests and operators can count wait threads in /proc/<pid>/task. */
  pthread_setname_np(pthread_self(), name);
#else
  (void)name;
#endif
}

static pthread_mutex_t sf_pool_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sf_pool_cond = PTHREAD_COND_INITIALIZER;

void sf_pool_lock(void) { pthread_mutex_lock(&sf_pool_mutex); }
void sf_pool_unlock(void) { pthread_mutex_unlock(&sf_pool_mutex); }
void sf_pool_wake(void) { pthread_cond_broadcast(&sf_pool_cond); }

double sf_wall_clock_ms(void) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  return (double)now.tv_sec * 1000.0 + (double)(now.tv_nsec / 1000000L);
}

int sf_pool_wait(int ms) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += ms / 1000;
  until.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  return pthread_cond_timedwait(&sf_pool_cond, &sf_pool_mutex, &until) == ETIMEDOUT;
}
