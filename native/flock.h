/* The lock core: no Node-API here, so it is unit-testable in plain C (ctest)
 * and shared by the POSIX and Win32 implementations. The build file picks one
 * of flock_posix.c / flock_win32.c; nothing below is #ifdef'd per platform.
 *
 * Every function returns 0 (or a count) on success and a negative code on
 * failure. "Would block" is always SF_WOULD_BLOCK, whatever the OS said; other
 * codes are platform-specific and sf_error_name() names them the way Node's
 * fs errors do ("ENOENT", "EACCES", ...). */
#ifndef SESSION_FLOCK_H
#define SESSION_FLOCK_H

#include <stddef.h>
#include <stdint.h>

#define SF_WOULD_BLOCK (-0x7f000001) /* the lock is held by another descriptor */
#define SF_REPLACED    (-0x7f000002) /* the path no longer names the locked file */
#define SF_CANCELLED   (-0x7f000003) /* a wait was given up before it was granted */
#define SF_NO_MEMORY   (-0x7f000004)
#define SF_NOT_REGULAR (-0x7f000005) /* a FIFO, device or socket: not a lock file */
#define SF_NOT_EMPTY   (-0x7f000006) /* locked, but the file holds data: no record was written */

typedef struct sf_file sf_file_t; /* one open descriptor / HANDLE of a lock file */

#define SF_OPEN_CREATE 1 /* create the lock file if missing (else ENOENT) */

/* Opens `path` (UTF-8) read-write for locking: close-on-exec / non-inheritable,
 * never through a symlink (ELOOP), only a regular file (SF_NOT_REGULAR), with
 * permissions `mode` when SF_OPEN_CREATE in `flags` creates it. */
int sf_open(const char *path, int mode, int flags, sf_file_t **out);

/* One attempt: 0 when the lock is now held through `f`, SF_WOULD_BLOCK when
 * another descriptor holds a conflicting lock. Upgrading or downgrading a lock
 * already held through `f` is allowed (not atomic on POSIX). */
int sf_try_lock(sf_file_t *f, int shared);

/* Blocks the calling thread until the lock is granted (0), sf_cancel_wait()
 * takes effect (SF_CANCELLED), or an error. Call it only on a thread you own. */
int sf_wait_lock(sf_file_t *f, int shared);

/* Asks a blocked sf_wait_lock() on `f` to return SF_CANCELLED. Returns 0 when
 * the request reached the wait (a wait not started yet returns SF_CANCELLED;
 * one that was interrupted may still report a grant that won the race);
 * SF_WOULD_BLOCK when it cannot interrupt it: POSIX flock() never can, and
 * Windows' CancelSynchronousIo can miss (under Wine it never interrupts). The
 * wait then ends only when the lock is granted, and the caller must release
 * that late grant. Safe from any thread: it touches the waiting thread, never
 * the descriptor. */
int sf_cancel_wait(sf_file_t *f);

int sf_unlock(sf_file_t *f);

/* 0 when `path` still names the file behind `f` and the file has a link;
 * SF_REPLACED when it was unlinked, renamed over or replaced. */
int sf_same_file(sf_file_t *f, const char *path);

/* Closes the descriptor (releasing any lock held through it) and frees `f`. */
int sf_close(sf_file_t *f);

/* The identity of a lock file as text, for keying one lock per file whatever
 * path names it: the same file always gives the same text. sf_file_key() reads
 * it from an open file (POSIX: kept from open, no system call); sf_path_key()
 * from the file `path` itself names (a symlink is not followed), without
 * opening it for locking. Both write at most SF_KEY_MAX bytes with the NUL and
 * return the length, 0 when the filesystem gives no stable identity (inode 0),
 * or a negative code. */
#define SF_KEY_MAX 64
int sf_file_key(sf_file_t *f, char *out);
int sf_path_key(const char *path, char *out);

/* The holder record is the lock file's own content while it is held.
 * sf_write_record() writes `len` bytes at offset 0 through `f`, which holds
 * the lock. Unless `replace` is set it writes only into an empty file and
 * returns SF_NOT_EMPTY, touching nothing, when the file holds anything; with
 * `replace` it overwrites and truncates to `len` (the caller has checked that
 * what is there may be replaced). sf_clear_record() truncates to 0. */
int sf_write_record(sf_file_t *f, const char *data, size_t len, int replace);
int sf_clear_record(sf_file_t *f);

/* Unlinks the file that `path` names if it is the file behind `f` (which holds
 * the lock, so that a waiter on it wakes, sees the path gone and reopens):
 * 0 when removed, SF_REPLACED when the path names another file or nothing. */
int sf_remove_locked(sf_file_t *f, const char *path);

/* One line of JSON: `fields` (the record's fixed part, from `{` through the
 * opening quote of the nonce's text) followed by `serial`, the ISO 8601 time
 * `createdAt` and the epoch ms `acquiredAt` of `ms`, and the closing brace and
 * newline. Returns its length, or SF_NO_MEMORY when it does not fit in `cap`. */
#define SF_RECORD_TIME_MAX 96
int sf_format_record(char *out, size_t cap, const char *fields, size_t fields_len, double serial, double ms);

/* The OS-level descriptor (fd or HANDLE) for inheriting into a child. */
intptr_t sf_native_handle(sf_file_t *f);
/* Makes the descriptor inheritable by children (1) or not (0). */
int sf_set_inheritable(sf_file_t *f, int inheritable);

/* The one place where an OS error number (errno, or GetLastError() on Windows)
 * becomes a code of this header: every way of saying "someone else holds it"
 * is SF_WOULD_BLOCK, an interrupted wait (Windows only) is SF_CANCELLED, the
 * rest is the negated number. */
int sf_fold_os_error(int os_error);

/* "ENOENT"-style name of a negative code from this header, or NULL. */
const char *sf_error_name(int code);
/* The OS's own error number behind a code (errno or GetLastError()). */
int sf_error_errno(int code);

/* Keeps the code of this module (the addon) mapped for the rest of the
 * process, whatever unloads it: its wait threads are process-wide and may
 * outlive every env that loaded it (a parked flock() cannot be interrupted).
 * Idempotent; 0 or a negative code. */
int sf_pin_module(void);

/* Whole milliseconds since the Unix epoch, on the clock Date.now() reads, so a
 * wait thread can say when the kernel granted its lock. */
double sf_wall_clock_ms(void);

/* Threads and a mutex, so binding.c can run waits on threads it owns. */
typedef struct sf_mutex sf_mutex_t;
sf_mutex_t *sf_mutex_new(void);
void sf_mutex_lock(sf_mutex_t *m);
void sf_mutex_unlock(sf_mutex_t *m);
void sf_mutex_free(sf_mutex_t *m);

/* Runs fn(arg) on a wait thread (thread_pool.c): an idle one that finished
 * earlier work if there is one, else a new detached thread. Idle threads
 * linger briefly, so a lock handed back and forth does not pay for creating
 * and tearing down a thread on every wait. */
int sf_thread_start(void (*fn)(void *), void *arg);

/* What thread_pool.c needs from each platform: a detached thread, a name for
 * it (best effort), and one process-wide lock and condition. */
int sf_thread_spawn(void (*fn)(void *), void *arg);
void sf_thread_set_name(const char *name);
void sf_pool_lock(void);
void sf_pool_unlock(void);
/* With the pool lock held: waits for sf_pool_wake() or `ms`; 1 on timeout, else 0. */
int sf_pool_wait(int ms);
void sf_pool_wake(void);

#endif
