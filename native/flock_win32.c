/* LockFileEx implementation of flock.h for Windows (built with MSVC by
 * node-gyp, or with mingw-w64 by CMakeLists.txt).
 *
 * One fixed byte range far past any data is locked, the same for shared and
 * exclusive, so Windows' mandatory byte-range locking never blocks reads or
 * writes of the file's real contents by other handles.
 *
 * Handles are synchronous (no FILE_FLAG_OVERLAPPED), and a wait is one
 * blocking LockFileEx on the addon's wait thread: the lock manager wakes it
 * when the range is free, with no polling, on Windows and under Wine alike
 * (Wine never queues an overlapped lock request: it answers STATUS_PENDING and
 * never completes it). Giving up asks CancelSynchronousIo to interrupt that
 * call; when it cannot (it may miss a call not yet in the kernel, and under
 * Wine it never interrupts one), the wait ends at the grant, which the caller
 * releases at once: the same contract as a parked flock() on POSIX.
 *
 * Windows serializes all I/O on a synchronous handle, so no other thread may
 * use a handle while a wait is blocked on it (any unlock, query or close would
 * block until the wait ends). Wine does not serialize, so this must hold by
 * construction: binding.c never lets another thread touch a file while its
 * wait runs (see file_if_idle() there), and sf_cancel_wait() touches the
 * waiting thread, never the handle. */
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef _WIN32_WINNT
#define _WIN32_WINNT 0x0A00 /* Node 20 needs Windows 10; FileIdInfo needs 8 */
#endif
#include "flock.h"

#include <windows.h>
#include <process.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The range: offset 0x7FFFFFFF00000000 (8 EiB - 4 GiB), one byte. Within the
 * signed 64-bit range every file system accepts, and no file reaches it. */
#define SF_RANGE_OFFSET_LOW 0x00000000UL
#define SF_RANGE_OFFSET_HIGH 0x7FFFFFFFUL
#define SF_RANGE_LENGTH 1UL

/* Windows reserves bit 29 of an error code for applications; codes that no
 * Win32 error stands for live there. */
#define SF_WIN_EISDIR (-(int)(0x20000000 | 21))

#define SF_HELD_NONE 0
#define SF_HELD_SHARED 1
#define SF_HELD_EXCLUSIVE 2

struct sf_file {
  HANDLE h;
  int held;            /* SF_HELD_*: what this handle holds, so that relocking
                          never stacks a second lock on the range */
  SRWLOCK cancel_lock; /* the cancel section: guards the two fields below */
  DWORD waiter;        /* id of the thread inside this file's blocking LockFileEx, or 0 */
  int cancel_pending;  /* sf_cancel_wait() came: the current or next wait gives up */
};

/* How often sf_cancel_wait() asks CancelSynchronousIo before it leaves the
 * wait to end at the grant. It misses (ERROR_NOT_FOUND) a call that has not
 * reached the kernel yet, so it yields and asks again, as Microsoft's sample
 * for cancelling synchronous I/O does; a few tries cover that window, and
 * the caller's thread (the event loop) is never held for long. */
#define SF_CANCEL_TRIES 4

struct sf_mutex {
  SRWLOCK lock;
};

/* The one place where the ways Windows says "someone else holds it" become one
 * code: ERROR_LOCK_VIOLATION from a fail-immediately request, or
 * ERROR_IO_PENDING should a request ever be left pending. A blocking wait that
 * CancelSynchronousIo interrupted fails with ERROR_OPERATION_ABORTED: the one
 * outcome of a wait that only real Windows produces. */
int sf_fold_os_error(int os_error) {
  DWORD err = (DWORD)os_error;
  if (err == ERROR_LOCK_VIOLATION || err == ERROR_IO_PENDING) return SF_WOULD_BLOCK;
  if (err == ERROR_OPERATION_ABORTED) return SF_CANCELLED;
  if (err == ERROR_NOT_ENOUGH_MEMORY || err == ERROR_OUTOFMEMORY) return SF_NO_MEMORY;
  return err == 0 ? -(int)ERROR_GEN_FAILURE : -(int)err;
}

static int sf_last_error(void) {
  return sf_fold_os_error((int)GetLastError());
}

/* UTF-8 -> a wide path for CreateFileW; absolute paths of MAX_PATH or more get
 * the \\?\ prefix (after normalisation by GetFullPathNameW). */
static int sf_wide_path(const char *path, wchar_t **out) {
  int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, -1, NULL, 0);
  if (n <= 0) return sf_last_error();
  wchar_t *w = malloc((size_t)n * sizeof *w);
  if (w == NULL) return SF_NO_MEMORY;
  if (MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, -1, w, n) <= 0) {
    int r = sf_last_error();
    free(w);
    return r;
  }
  if (n - 1 < MAX_PATH || wcsncmp(w, L"\\\\?\\", 4) == 0) {
    *out = w;
    return 0;
  }
  DWORD full_len = GetFullPathNameW(w, 0, NULL, NULL);
  if (full_len == 0) {
    int r = sf_last_error();
    free(w);
    return r;
  }
  /* room for \\?\UNC\ (8) in place of \\ (2) */
  wchar_t *full = malloc(((size_t)full_len + 8) * sizeof *full);
  if (full == NULL) {
    free(w);
    return SF_NO_MEMORY;
  }
  DWORD got = GetFullPathNameW(w, full_len, full + 6, NULL);
  free(w);
  if (got == 0 || got >= full_len) {
    int r = got == 0 ? sf_last_error() : -(int)ERROR_FILENAME_EXCED_RANGE;
    free(full);
    return r;
  }
  wchar_t *p = full + 6;
  if (p[0] == L'\\' && p[1] == L'\\') {
    /* \\server\share\... -> \\?\UNC\server\share\... */
    memcpy(full, L"\\\\?\\UNC", 7 * sizeof(wchar_t));
    memmove(full + 7, p + 1, ((size_t)got) * sizeof(wchar_t)); /* keeps one '\' and the NUL */
    *out = full;
    return 0;
  }
  memmove(full + 4, p, ((size_t)got + 1) * sizeof(wchar_t));
  memcpy(full, L"\\\\?\\", 4 * sizeof(wchar_t));
  *out = full;
  return 0;
}

/* Is `w` (which CreateFileW refused with ERROR_ACCESS_DENIED) a directory? */
static int sf_is_directory(const wchar_t *w) {
  DWORD attrs = GetFileAttributesW(w);
  return attrs != INVALID_FILE_ATTRIBUTES && (attrs & FILE_ATTRIBUTE_DIRECTORY) &&
         !(attrs & FILE_ATTRIBUTE_REPARSE_POINT);
}

/* A freshly opened handle is only usable when it is a plain disk file. */
static int sf_check_regular(HANDLE h) {
  DWORD type = GetFileType(h);
  if (type != FILE_TYPE_DISK) return (type == FILE_TYPE_UNKNOWN && GetLastError() != NO_ERROR) ? sf_last_error() : SF_NOT_REGULAR;
  BY_HANDLE_FILE_INFORMATION info;
  if (!GetFileInformationByHandle(h, &info)) return sf_last_error();
  if (info.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT) return -(int)ERROR_CANT_RESOLVE_FILENAME; /* ELOOP */
  if (info.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) return SF_WIN_EISDIR;
  if (info.dwFileAttributes & FILE_ATTRIBUTE_DEVICE) return SF_NOT_REGULAR;
  return 0;
}

int sf_open(const char *path, int mode, int flags, sf_file_t **out) {
  wchar_t *w = NULL;
  int r = sf_wide_path(path, &w);
  if (r != 0) return r;
  sf_file_t *f = calloc(1, sizeof *f);
  if (f == NULL) {
    free(w);
    return SF_NO_MEMORY;
  }
  f->h = INVALID_HANDLE_VALUE;
  InitializeSRWLock(&f->cancel_lock);

  SECURITY_ATTRIBUTES sa;
  sa.nLength = sizeof sa;
  sa.lpSecurityDescriptor = NULL;
  sa.bInheritHandle = FALSE; /* never inherited by a child */
  DWORD attrs = FILE_ATTRIBUTE_NORMAL;
  /* Like libuv: a new file created without an owner write bit is read-only. */
  if ((flags & SF_OPEN_CREATE) && !(mode & 0200)) attrs = FILE_ATTRIBUTE_READONLY;
  HANDLE h = CreateFileW(w, GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, &sa,
                         (flags & SF_OPEN_CREATE) ? OPEN_ALWAYS : OPEN_EXISTING,
                         attrs | FILE_FLAG_OPEN_REPARSE_POINT, NULL);
  if (h == INVALID_HANDLE_VALUE) {
    DWORD err = GetLastError();
    r = (err == ERROR_ACCESS_DENIED && sf_is_directory(w)) ? SF_WIN_EISDIR : sf_fold_os_error((int)err);
    free(f);
    free(w);
    return r;
  }
  free(w);
  r = sf_check_regular(h);
  if (r != 0) {
    CloseHandle(h);
    free(f);
    return r;
  }
  f->h = h;
  *out = f;
  return 0;
}

/* On a synchronous handle the OVERLAPPED only says where the range starts. */
static void sf_range(OVERLAPPED *ov) {
  memset(ov, 0, sizeof *ov);
  ov->Offset = SF_RANGE_OFFSET_LOW;
  ov->OffsetHigh = SF_RANGE_OFFSET_HIGH;
}

/* One LockFileEx: fail-immediately, or blocking until granted (or interrupted). */
static int sf_lock_range(sf_file_t *f, int shared, DWORD extra_flags) {
  OVERLAPPED ov;
  sf_range(&ov);
  DWORD flags = extra_flags | (shared ? 0 : LOCKFILE_EXCLUSIVE_LOCK);
  if (LockFileEx(f->h, flags, 0, SF_RANGE_LENGTH, 0, &ov)) return 0;
  return sf_last_error();
}

static int sf_unlock_range(sf_file_t *f) {
  OVERLAPPED ov;
  sf_range(&ov);
  if (UnlockFileEx(f->h, 0, SF_RANGE_LENGTH, 0, &ov)) return 0;
  DWORD err = GetLastError();
  return err == ERROR_NOT_LOCKED ? 0 : sf_fold_os_error((int)err);
}

/* Relocking in another mode lets go first (not atomic, as with flock(2)):
 * a handle's own locks stack and an exclusive one conflicts even with them. */
static int sf_prepare_mode(sf_file_t *f, int want) {
  if (f->held == SF_HELD_NONE || f->held == want) return 0;
  int r = sf_unlock_range(f);
  if (r == 0) f->held = SF_HELD_NONE;
  return r;
}

/* A cancel that found no wait to interrupt is spent by whatever comes next. */
static void sf_forget_cancel(sf_file_t *f) {
  AcquireSRWLockExclusive(&f->cancel_lock);
  f->cancel_pending = 0;
  ReleaseSRWLockExclusive(&f->cancel_lock);
}

int sf_try_lock(sf_file_t *f, int shared) {
  int want = shared ? SF_HELD_SHARED : SF_HELD_EXCLUSIVE;
  sf_forget_cancel(f);
  if (f->held == want) return 0;
  int r = sf_prepare_mode(f, want);
  if (r != 0) return r;
  r = sf_lock_range(f, shared, LOCKFILE_FAIL_IMMEDIATELY);
  if (r == 0) f->held = want;
  return r;
}

int sf_wait_lock(sf_file_t *f, int shared) {
  int want = shared ? SF_HELD_SHARED : SF_HELD_EXCLUSIVE;
  if (f->held == want) {
    sf_forget_cancel(f);
    return 0;
  }
  int r = sf_prepare_mode(f, want);
  if (r != 0) return r;

  /* The cancel section: while `waiter` is set, this thread does no I/O but
   * the LockFileEx below, so CancelSynchronousIo aimed at it can only ever
   * interrupt that call. */
  AcquireSRWLockExclusive(&f->cancel_lock);
  int given_up = f->cancel_pending;
  f->cancel_pending = 0;
  if (!given_up) f->waiter = GetCurrentThreadId();
  ReleaseSRWLockExclusive(&f->cancel_lock);
  if (given_up) return SF_CANCELLED; /* a cancel made before this thread got here */

  r = sf_lock_range(f, shared, 0); /* blocks; ERROR_OPERATION_ABORTED -> SF_CANCELLED */

  AcquireSRWLockExclusive(&f->cancel_lock);
  f->waiter = 0;
  f->cancel_pending = 0; /* a cancel that lost the race to the grant is spent */
  ReleaseSRWLockExclusive(&f->cancel_lock);
  if (r == 0) f->held = want;
  return r;
}

int sf_cancel_wait(sf_file_t *f) {
  int r = 0;
  AcquireSRWLockExclusive(&f->cancel_lock);
  f->cancel_pending = 1;
  if (f->waiter != 0) {
    /* The waiter cannot leave its wait while we hold the section, so its id
     * names a live thread that is in (or just before) that LockFileEx. */
    r = SF_WOULD_BLOCK;
    HANDLE thread = OpenThread(THREAD_TERMINATE, FALSE, f->waiter);
    for (int i = 0; thread != NULL && i < SF_CANCEL_TRIES; i++) {
      if (CancelSynchronousIo(thread)) {
        r = 0;
        break;
      }
      if (GetLastError() != ERROR_NOT_FOUND) break;
      SwitchToThread();
    }
    if (thread != NULL) CloseHandle(thread);
  }
  ReleaseSRWLockExclusive(&f->cancel_lock);
  return r;
}

int sf_unlock(sf_file_t *f) {
  sf_forget_cancel(f);
  if (f->held == SF_HELD_NONE) return 0;
  int r = sf_unlock_range(f);
  if (r == 0) f->held = SF_HELD_NONE;
  return r;
}

/* FileIdInfo (128-bit ids, ReFS-safe) where available, else the classic index. */
static int sf_file_id(HANDLE h, ULONGLONG *volume, BYTE id[16]) {
  FILE_ID_INFO info;
  if (GetFileInformationByHandleEx(h, FileIdInfo, &info, sizeof info)) {
    *volume = info.VolumeSerialNumber;
    memcpy(id, info.FileId.Identifier, 16);
    return 0;
  }
  BY_HANDLE_FILE_INFORMATION bh;
  if (!GetFileInformationByHandle(h, &bh)) return sf_last_error();
  *volume = bh.dwVolumeSerialNumber;
  memset(id, 0, 16);
  memcpy(id, &bh.nFileIndexLow, 4);
  memcpy(id + 4, &bh.nFileIndexHigh, 4);
  return 0;
}

/* 1 when the file behind `h` is being deleted or has no name left. */
static int sf_is_unlinked(HANDLE h, int *out) {
  FILE_STANDARD_INFO st;
  if (!GetFileInformationByHandleEx(h, FileStandardInfo, &st, sizeof st)) return sf_last_error();
  *out = st.DeletePending || st.NumberOfLinks == 0;
  return 0;
}

int sf_same_file(sf_file_t *f, const char *path) {
  int gone = 0;
  int r = sf_is_unlinked(f->h, &gone);
  if (r != 0) return r;
  if (gone) return SF_REPLACED;

  wchar_t *w = NULL;
  r = sf_wide_path(path, &w);
  if (r != 0) return r;
  HANDLE named = CreateFileW(w, 0, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL, OPEN_EXISTING,
                             FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT, NULL);
  DWORD err = named == INVALID_HANDLE_VALUE ? GetLastError() : 0;
  free(w);
  if (named == INVALID_HANDLE_VALUE) {
    if (err == ERROR_FILE_NOT_FOUND || err == ERROR_PATH_NOT_FOUND) return SF_REPLACED;
    /* Opening a name whose file is delete-pending is refused: look again. */
    if (err == ERROR_ACCESS_DENIED && sf_is_unlinked(f->h, &gone) == 0 && gone) return SF_REPLACED;
    return sf_fold_os_error((int)err);
  }
  ULONGLONG held_volume = 0, named_volume = 0;
  BYTE held_id[16], named_id[16];
  r = sf_file_id(f->h, &held_volume, held_id);
  if (r == 0) r = sf_file_id(named, &named_volume, named_id);
  CloseHandle(named);
  if (r != 0) return r;
  if (held_volume != named_volume || memcmp(held_id, named_id, 16) != 0) return SF_REPLACED;
  return 0;
}

/* The volume serial and the 64-bit file index, in decimal: what libuv's stat gives as
 * st_dev and st_ino, so the text matches the "dev:ino" of earlier versions of this
 * package, which shared a process's queues with keys made that way. */
static int sf_key_of(HANDLE h, char *out) {
  BY_HANDLE_FILE_INFORMATION info;
  if (!GetFileInformationByHandle(h, &info)) return sf_last_error();
  unsigned long long index = ((unsigned long long)info.nFileIndexHigh << 32) | info.nFileIndexLow;
  if (index == 0) return 0;
  return snprintf(out, SF_KEY_MAX, "%lu:%llu", (unsigned long)info.dwVolumeSerialNumber, index);
}

int sf_file_key(sf_file_t *f, char *out) {
  return sf_key_of(f->h, out);
}

int sf_path_key(const char *path, char *out) {
  wchar_t *w = NULL;
  int r = sf_wide_path(path, &w);
  if (r != 0) return r;
  HANDLE named = CreateFileW(w, 0, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL, OPEN_EXISTING,
                             FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT, NULL);
  r = named == INVALID_HANDLE_VALUE ? sf_last_error() : sf_key_of(named, out);
  if (named != INVALID_HANDLE_VALUE) CloseHandle(named);
  free(w);
  return r;
}

/* The record lives at offset 0, far below the locked range, so others can read it. */
static int sf_write_at(HANDLE h, const char *data, size_t len) {
  for (size_t done = 0; done < len;) {
    OVERLAPPED ov;
    memset(&ov, 0, sizeof ov);
    ov.Offset = (DWORD)done;
    DWORD n = 0;
    DWORD chunk = len - done > 0x40000000 ? 0x40000000 : (DWORD)(len - done);
    if (!WriteFile(h, data + done, chunk, &n, &ov)) return sf_last_error();
    if (n == 0) return -(int)ERROR_WRITE_FAULT;
    done += n;
  }
  return 0;
}

static int sf_set_length(HANDLE h, size_t len) {
  FILE_END_OF_FILE_INFO end;
  end.EndOfFile.QuadPart = (LONGLONG)len;
  return SetFileInformationByHandle(h, FileEndOfFileInfo, &end, sizeof end) ? 0 : sf_last_error();
}

int sf_write_record(sf_file_t *f, const char *data, size_t len, int replace) {
  if (!replace) {
    LARGE_INTEGER size;
    if (!GetFileSizeEx(f->h, &size)) return sf_last_error();
    if (size.QuadPart != 0) return SF_NOT_EMPTY;
  }
  int r = sf_write_at(f->h, data, len);
  return r == 0 && replace ? sf_set_length(f->h, len) : r;
}

int sf_clear_record(sf_file_t *f) {
  return sf_set_length(f->h, 0);
}

/* FileDispositionInfoEx (Windows 10 1607 and later; the SDK headers declare it only for
 * newer _WIN32_WINNT targets): with POSIX semantics the name goes at once, even while a
 * reader or a virus scanner still has the file open, so the next acquirer can create the
 * file again at once; the classic disposition keeps the name until the last handle closes. Wine 8
 * refuses the Ex class (ERROR_INVALID_PARAMETER), so under Wine the classic one runs. */
#define SF_FILE_DISPOSITION_INFO_EX ((FILE_INFO_BY_HANDLE_CLASS)21)
#define SF_DISPOSITION_DELETE 0x1
#define SF_DISPOSITION_POSIX_SEMANTICS 0x2
#define SF_DISPOSITION_IGNORE_READONLY 0x10

static int sf_delete_by_handle(HANDLE h) {
  struct {
    DWORD Flags;
  } posix = {SF_DISPOSITION_DELETE | SF_DISPOSITION_POSIX_SEMANTICS | SF_DISPOSITION_IGNORE_READONLY};
  if (SetFileInformationByHandle(h, SF_FILE_DISPOSITION_INFO_EX, &posix, sizeof posix)) return 0;
  DWORD err = GetLastError();
  if (err != ERROR_INVALID_PARAMETER && err != ERROR_NOT_SUPPORTED && err != ERROR_INVALID_FUNCTION) return sf_fold_os_error((int)err);
  FILE_DISPOSITION_INFO classic = {TRUE};
  return SetFileInformationByHandle(h, FileDispositionInfo, &classic, sizeof classic) ? 0 : sf_last_error();
}

int sf_remove_locked(sf_file_t *f, const char *path) {
  wchar_t *w = NULL;
  int r = sf_wide_path(path, &w);
  if (r != 0) return r;
  /* The lock's handle has no DELETE access (holding it would refuse every opener that
   * does not share delete), so a second handle deletes, once it is shown to be the
   * same file: nothing can replace the file between the check and the delete. */
  HANDLE named = CreateFileW(w, DELETE | FILE_READ_ATTRIBUTES, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                             OPEN_EXISTING, FILE_FLAG_OPEN_REPARSE_POINT, NULL);
  DWORD err = named == INVALID_HANDLE_VALUE ? GetLastError() : 0;
  free(w);
  if (named == INVALID_HANDLE_VALUE) {
    return (err == ERROR_FILE_NOT_FOUND || err == ERROR_PATH_NOT_FOUND) ? SF_REPLACED : sf_fold_os_error((int)err);
  }
  ULONGLONG held_volume = 0, named_volume = 0;
  BYTE held_id[16], named_id[16];
  r = sf_file_id(f->h, &held_volume, held_id);
  if (r == 0) r = sf_file_id(named, &named_volume, named_id);
  if (r == 0) r = held_volume == named_volume && memcmp(held_id, named_id, 16) == 0 ? sf_delete_by_handle(named) : SF_REPLACED;
  CloseHandle(named);
  return r;
}

int sf_close(sf_file_t *f) {
  /* Closing releases the locks, but the docs warn that this may happen only
   * after a while ("depends upon available system resources"): let go first. */
  if (f->held != SF_HELD_NONE) sf_unlock_range(f);
  int r = CloseHandle(f->h) ? 0 : sf_last_error();
  free(f);
  return r;
}

intptr_t sf_native_handle(sf_file_t *f) {
  return (intptr_t)f->h;
}

int sf_set_inheritable(sf_file_t *f, int inheritable) {
  return SetHandleInformation(f->h, HANDLE_FLAG_INHERIT, inheritable ? HANDLE_FLAG_INHERIT : 0) ? 0 : sf_last_error();
}

const char *sf_error_name(int code) {
  switch (code) {
    case SF_WOULD_BLOCK: return "EWOULDBLOCK";
    case SF_REPLACED: return "ESTALE";
    case SF_CANCELLED: return "ECANCELED";
    case SF_NO_MEMORY: return "ENOMEM";
    case SF_NOT_REGULAR: return "EFTYPE";
    case SF_NOT_EMPTY: return "ENOTEMPTY";
    case SF_WIN_EISDIR: return "EISDIR";
  }
  if (code >= 0) return NULL;
  switch ((DWORD)-code) {
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
    case ERROR_INVALID_DRIVE:
    case ERROR_INVALID_NAME:
    case ERROR_BAD_PATHNAME:
    case ERROR_BAD_NETPATH:
    case ERROR_BAD_NET_NAME:
    case ERROR_DIRECTORY:
      return "ENOENT";
    case ERROR_ACCESS_DENIED:
    case ERROR_CANT_ACCESS_FILE:
    case ERROR_NETWORK_ACCESS_DENIED:
      return "EACCES";
    case ERROR_PRIVILEGE_NOT_HELD:
    case ERROR_DELETE_PENDING:
      return "EPERM";
    case ERROR_SHARING_VIOLATION:
    case ERROR_LOCK_VIOLATION:
    case ERROR_BUSY:
    case ERROR_PIPE_BUSY:
      return "EBUSY";
    case ERROR_FILENAME_EXCED_RANGE:
    case ERROR_BUFFER_OVERFLOW:
      return "ENAMETOOLONG";
    case ERROR_TOO_MANY_OPEN_FILES: return "EMFILE";
    case ERROR_NOT_SUPPORTED:
    case ERROR_INVALID_FUNCTION:
    case ERROR_CALL_NOT_IMPLEMENTED:
      return "ENOTSUP";
    case ERROR_NOT_LOCKED:
    case ERROR_LOCK_FAILED:
      return "ENOLCK";
    case ERROR_WRITE_PROTECT: return "EROFS";
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY:
      return "ENOMEM";
    case ERROR_INVALID_HANDLE: return "EBADF";
    case ERROR_INVALID_PARAMETER:
    case ERROR_NO_UNICODE_TRANSLATION:
    case ERROR_INVALID_REPARSE_DATA:
      return "EINVAL";
    case ERROR_ALREADY_EXISTS:
    case ERROR_FILE_EXISTS:
      return "EEXIST";
    case ERROR_DISK_FULL:
    case ERROR_HANDLE_DISK_FULL:
      return "ENOSPC";
    case ERROR_CANT_RESOLVE_FILENAME:
      return "ELOOP";
    case ERROR_OPERATION_ABORTED: return "ECANCELED";
    case ERROR_NOT_SAME_DEVICE: return "EXDEV";
    case ERROR_IO_DEVICE:
    case ERROR_CRC:
    case ERROR_GEN_FAILURE:
      return "EIO";
    case ERROR_NOT_READY: return "ENXIO";
  }
  return NULL;
}

int sf_error_errno(int code) {
  if (code <= SF_WOULD_BLOCK) return 0;
  if (code == SF_WIN_EISDIR) return ERROR_ACCESS_DENIED;
  return -code;
}

/* Pinning rather than joining the threads at env teardown: a wait thread can
 * stay in LockFileEx until the lock is granted (a cancel may not interrupt
 * it), so it may outlive every env that loaded the addon. A module pinned by
 * GetModuleHandleExW stays loaded until the process ends, whatever
 * FreeLibrary calls follow. */
int sf_pin_module(void) {
  static const char anchor = 0; /* an address inside this module */
  HMODULE self = NULL;
  if (!GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_PIN, (LPCWSTR)&anchor, &self))
    return sf_last_error();
  return 0;
}

sf_mutex_t *sf_mutex_new(void) {
  sf_mutex_t *m = malloc(sizeof *m);
  if (m != NULL) InitializeSRWLock(&m->lock);
  return m;
}

void sf_mutex_lock(sf_mutex_t *m) { AcquireSRWLockExclusive(&m->lock); }
void sf_mutex_unlock(sf_mutex_t *m) { ReleaseSRWLockExclusive(&m->lock); }
void sf_mutex_free(sf_mutex_t *m) { free(m); }

typedef struct {
  void (*fn)(void *);
  void *arg;
} sf_thread_spawn_t;

static unsigned __stdcall sf_thread_main(void *p) {
  sf_thread_spawn_t start = *(sf_thread_spawn_t *)p;
  free(p);
  start.fn(start.arg);
  return 0;
}

int sf_thread_spawn(void (*fn)(void *), void *arg) {
  sf_thread_spawn_t *start = malloc(sizeof *start);
  if (start == NULL) return SF_NO_MEMORY;
  start->fn = fn;
  start->arg = arg;
  /* A waiter only sits in one wait; a small stack keeps many of them cheap. */
  uintptr_t t = _beginthreadex(NULL, 64 * 1024, sf_thread_main, start, STACK_SIZE_PARAM_IS_A_RESERVATION, NULL);
  if (t == 0) {
    free(start);
    return -(int)(GetLastError() != 0 ? GetLastError() : ERROR_NOT_ENOUGH_MEMORY);
  }
  CloseHandle((HANDLE)t); /* detached */
  return 0;
}

void sf_thread_set_name(const char *name) {
  (void)name; /* SetThreadDescription is Windows 10+ only; names are a Linux diagnostic */
}

static SRWLOCK sf_pool_srw = SRWLOCK_INIT;
static CONDITION_VARIABLE sf_pool_cv = CONDITION_VARIABLE_INIT;

void sf_pool_lock(void) { AcquireSRWLockExclusive(&sf_pool_srw); }
void sf_pool_unlock(void) { ReleaseSRWLockExclusive(&sf_pool_srw); }
void sf_pool_wake(void) { WakeAllConditionVariable(&sf_pool_cv); }

double sf_wall_clock_ms(void) {
  /* FILETIME counts 100 ns intervals from 1601; 11644473600000 ms separate it from 1970. */
  /* The precise clock: the plain one moves in 15.6 ms steps, behind what Date.now() says. */
  FILETIME now;
  GetSystemTimePreciseAsFileTime(&now);
  ULONGLONG ticks = ((ULONGLONG)now.dwHighDateTime << 32) | now.dwLowDateTime;
  return (double)(ticks / 10000ULL) - 11644473600000.0;
}

int sf_pool_wait(int ms) {
  return !SleepConditionVariableSRW(&sf_pool_cv, &sf_pool_srw, (DWORD)ms, 0) && GetLastError() == ERROR_TIMEOUT;
}
