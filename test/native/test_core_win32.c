/* C tests of native/flock_win32.c, cross-built with mingw-w64 and run under
 * Wine by scripts/test-windows.sh. Paths live in a fresh folder under %TEMP%. */
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <string.h>

#include "check.h"

static char dir[MAX_PATH];
static char lock_path[MAX_PATH + 32];

static void path_in_dir(char *out, const char *name) {
  snprintf(out, MAX_PATH + 32, "%s\\%s", dir, name);
}

#include "lock_cases.h"

typedef struct {
  sf_file_t *f;
  int shared;
  volatile LONG result;
  volatile LONG done;
} waiter_t;

static void wait_main(void *p) {
  waiter_t *w = p;
  InterlockedExchange(&w->result, sf_wait_lock(w->f, w->shared));
  InterlockedExchange(&w->done, 1);
}

static int wait_done(waiter_t *w, int ms) {
  for (int i = 0; i < ms && !w->done; i += 5) Sleep(5);
  return w->done;
}

static void test_wait_granted(void) {
  sf_file_t *a = must_open(lock_path), *b = must_open(lock_path);
  CHECK_EQ(sf_try_lock(a, 0), 0);
  waiter_t w = {b, 0, 1, 0};
  CHECK_EQ(sf_thread_start(wait_main, &w), 0);
  Sleep(100);
  CHECK_EQ(w.done, 0); /* still waiting */
  CHECK_EQ(sf_unlock(a), 0);
  CHECK_TRUE(wait_done(&w, 5000));
  CHECK_EQ(w.result, 0);
  CHECK_EQ(sf_try_lock(a, 1), SF_WOULD_BLOCK);
  sf_close(b);
  CHECK_EQ(sf_try_lock(a, 1), 0);
  sf_close(a);
}

static void test_wait_cancelled(void) {
  sf_file_t *a = must_open(lock_path), *b = must_open(lock_path);
  CHECK_EQ(sf_try_lock(a, 0), 0);
  waiter_t w = {b, 0, 1, 0};
  CHECK_EQ(sf_thread_start(wait_main, &w), 0);
  Sleep(100);
  int cancel = sf_cancel_wait(b);
  if (cancel == 0) {
    /* CancelSynchronousIo interrupted the blocking LockFileEx (Windows) */
    CHECK_TRUE(wait_done(&w, 5000));
    CHECK_EQ(w.result, SF_CANCELLED);
    CHECK_EQ(sf_unlock(a), 0);
  } else {
    /* it could not (Wine): the wait goes on and ends at the grant, which the
     * caller releases at once, exactly as with a parked flock() */
    CHECK_EQ(cancel, SF_WOULD_BLOCK);
    printf("     the cancel could not interrupt the wait: it ends at the grant\n");
    Sleep(100);
    CHECK_EQ(w.done, 0);
    CHECK_EQ(sf_unlock(a), 0);
    CHECK_TRUE(wait_done(&w, 5000));
    CHECK_EQ(w.result, 0);
    CHECK_EQ(sf_unlock(b), 0);
  }
  /* the given-up wait left nothing held behind */
  sf_file_t *c = must_open(lock_path);
  CHECK_EQ(sf_try_lock(c, 0), 0);
  sf_close(c);
  /* a cancel that comes before the wait starts still ends it */
  CHECK_EQ(sf_try_lock(a, 0), 0);
  CHECK_EQ(sf_cancel_wait(b), 0);
  CHECK_EQ(sf_wait_lock(b, 0), SF_CANCELLED);
  /* ... and is spent: the next wait is real */
  waiter_t w2 = {b, 1, 1, 0};
  CHECK_EQ(sf_thread_start(wait_main, &w2), 0);
  Sleep(100);
  CHECK_EQ(w2.done, 0);
  sf_close(a);
  CHECK_TRUE(wait_done(&w2, 5000));
  CHECK_EQ(w2.result, 0);
  sf_close(b);
}

/* The outcomes of a blocking LockFileEx and of a try, through the one mapping
 * every wait and try result goes through. ERROR_OPERATION_ABORTED, a wait that
 * CancelSynchronousIo interrupted, is the only one Wine never produces. */
static void test_error_mapping(void) {
  CHECK_EQ(sf_fold_os_error(ERROR_OPERATION_ABORTED), SF_CANCELLED);
  CHECK_NAME(sf_fold_os_error(ERROR_OPERATION_ABORTED), "ECANCELED");
  CHECK_EQ(sf_fold_os_error(ERROR_LOCK_VIOLATION), SF_WOULD_BLOCK);
  CHECK_EQ(sf_fold_os_error(ERROR_IO_PENDING), SF_WOULD_BLOCK);
  CHECK_EQ(sf_fold_os_error(ERROR_NOT_ENOUGH_MEMORY), SF_NO_MEMORY);
  CHECK_EQ(sf_fold_os_error(ERROR_INVALID_HANDLE), -ERROR_INVALID_HANDLE);
  CHECK_NAME(sf_fold_os_error(ERROR_INVALID_HANDLE), "EBADF");
  CHECK_TRUE(sf_fold_os_error(0) < 0); /* a failure that says nothing is still a failure */
}

/* Wine cannot show some identity changes (see docs/readme/windows.md). */
static int under_wine(void) {
  HMODULE ntdll = GetModuleHandleA("ntdll.dll");
  return ntdll != NULL && GetProcAddress(ntdll, "wine_get_version") != NULL;
}

static void skip(const char *what) {
  printf("     skipped under Wine: %s\n", what);
}

static void test_identity(void) {
  char p[MAX_PATH + 32], other[MAX_PATH + 32], away[MAX_PATH + 32];
  path_in_dir(p, "ident.lock");
  path_in_dir(other, "other.lock");
  path_in_dir(away, "away.lock");
  sf_file_t *a = must_open(p);
  CHECK_EQ(sf_same_file(a, p), 0);
  /* renamed away: the name is gone */
  CHECK_TRUE(MoveFileExA(p, away, MOVEFILE_REPLACE_EXISTING));
  CHECK_EQ(sf_same_file(a, p), SF_REPLACED);
  /* a new file under the old name: another identity */
  sf_file_t *n = must_open(p);
  CHECK_EQ(sf_same_file(n, p), 0);
  CHECK_EQ(sf_same_file(a, p), SF_REPLACED);
  sf_close(n);
  sf_close(a);

  if (under_wine()) {
    skip("delete-pending (Wine reports DeletePending=0 and keeps the name)");
    skip("rename over an open file (Wine refuses it: ERROR_ACCESS_DENIED)");
    return;
  }
  a = must_open(p);
  CHECK_TRUE(DeleteFileA(p));
  CHECK_EQ(sf_same_file(a, p), SF_REPLACED);
  sf_close(a);

  a = must_open(p);
  sf_file_t *o = must_open(other);
  sf_close(o);
  CHECK_TRUE(MoveFileExA(other, p, MOVEFILE_REPLACE_EXISTING));
  CHECK_EQ(sf_same_file(a, p), SF_REPLACED);
  sf_close(a);
  DeleteFileA(p);
}

static void test_errors(void) {
  sf_file_t *f = NULL;
  char p[MAX_PATH + 32];
  path_in_dir(p, "missing.lock");
  int r = sf_open(p, 0600, 0, &f);
  CHECK_NAME(r, "ENOENT");
  path_in_dir(p, "no\\such\\dir.lock");
  r = sf_open(p, 0600, SF_OPEN_CREATE, &f);
  CHECK_NAME(r, "ENOENT");
  r = sf_open(dir, 0600, SF_OPEN_CREATE, &f);
  CHECK_NAME(r, "EISDIR");
  CHECK_EQ(sf_error_errno(r), ERROR_ACCESS_DENIED);
  r = sf_open("NUL", 0600, SF_OPEN_CREATE, &f);
  CHECK_EQ(r, SF_NOT_REGULAR);
  CHECK_NAME(r, "EFTYPE");
  r = sf_open("\xff\xfe invalid utf-8", 0600, SF_OPEN_CREATE, &f);
  CHECK_NAME(r, "EINVAL");
  CHECK_NAME(SF_WOULD_BLOCK, "EWOULDBLOCK");
  CHECK_NAME(SF_REPLACED, "ESTALE");
  CHECK_NAME(SF_CANCELLED, "ECANCELED");
  CHECK_NAME(-ERROR_SHARING_VIOLATION, "EBUSY");
  CHECK_NAME(-ERROR_FILENAME_EXCED_RANGE, "ENAMETOOLONG");
  CHECK_NAME(-ERROR_TOO_MANY_OPEN_FILES, "EMFILE");
  CHECK_NAME(-ERROR_NOT_SUPPORTED, "ENOTSUP");
  CHECK_NAME(-ERROR_WRITE_PROTECT, "EROFS");
  CHECK_EQ(sf_error_errno(-ERROR_FILE_NOT_FOUND), ERROR_FILE_NOT_FOUND);
  CHECK_EQ(sf_error_errno(SF_WOULD_BLOCK), 0);

  /* a symlink is refused (when this Windows/Wine lets us make one) */
  char link[MAX_PATH + 32];
  path_in_dir(link, "link.lock");
  if (under_wine()) {
    skip("symlink -> ELOOP (Wine 8 follows its symlinks even with FILE_FLAG_OPEN_REPARSE_POINT)");
  } else if (CreateSymbolicLinkA(link, lock_path, 0x2 /* ALLOW_UNPRIVILEGED_CREATE */)) {
    r = sf_open(link, 0600, SF_OPEN_CREATE, &f);
    CHECK_NAME(r, "ELOOP");
    DeleteFileA(link);
  } else {
    printf("     (symlink case skipped: CreateSymbolicLink error %lu)\n", GetLastError());
  }
}

static void test_long_path(void) {
  char p[1024];
  int n = snprintf(p, sizeof p, "%s\\", dir);
  for (int i = 0; i < 3; i++) {
    n += snprintf(p + n, sizeof p - n, "%0100d", i);
    CHECK_TRUE(CreateDirectoryA(p, NULL) || GetLastError() == ERROR_ALREADY_EXISTS ||
               GetLastError() == ERROR_FILENAME_EXCED_RANGE || GetLastError() == ERROR_PATH_NOT_FOUND);
    n += snprintf(p + n, sizeof p - n, "\\");
  }
  /* CreateDirectoryA itself is limited to MAX_PATH; use the wide \\?\ form. */
  wchar_t w[1100] = L"\\\\?\\";
  int len = 4;
  n = snprintf(p, sizeof p, "%s", dir);
  for (int i = 0; i < 3; i++) n += snprintf(p + n, sizeof p - n, "\\%0100d", i);
  len += MultiByteToWideChar(CP_UTF8, 0, p, -1, w + 4, 1000) - 1;
  (void)len;
  /* make each level */
  for (wchar_t *s = w + 4 + strlen(dir) + 1; *s; s++) {
    if (*s == L'\\') {
      *s = 0;
      CreateDirectoryW(w, NULL);
      *s = L'\\';
    }
  }
  CreateDirectoryW(w, NULL);
  snprintf(p + n, sizeof p - n, "\\long.lock");
  CHECK_TRUE(strlen(p) > MAX_PATH);
  sf_file_t *a = NULL, *b = NULL;
  CHECK_EQ(sf_open(p, 0600, SF_OPEN_CREATE, &a), 0);
  CHECK_EQ(sf_open(p, 0600, 0, &b), 0);
  if (a != NULL && b != NULL) {
    CHECK_EQ(sf_try_lock(a, 0), 0);
    CHECK_EQ(sf_try_lock(b, 0), SF_WOULD_BLOCK);
    CHECK_EQ(sf_same_file(a, p), 0);
  }
  if (a) sf_close(a);
  if (b) sf_close(b);
}

static void test_inheritable(void) {
  sf_file_t *a = must_open(lock_path);
  DWORD flags = 0;
  CHECK_TRUE(GetHandleInformation((HANDLE)sf_native_handle(a), &flags));
  CHECK_EQ(flags & HANDLE_FLAG_INHERIT, 0);
  CHECK_EQ(sf_set_inheritable(a, 1), 0);
  CHECK_TRUE(GetHandleInformation((HANDLE)sf_native_handle(a), &flags));
  CHECK_EQ(flags & HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT);
  CHECK_EQ(sf_set_inheritable(a, 0), 0);
  CHECK_TRUE(GetHandleInformation((HANDLE)sf_native_handle(a), &flags));
  CHECK_EQ(flags & HANDLE_FLAG_INHERIT, 0);
  sf_close(a);
}

static void test_mutex(void) {
  sf_mutex_t *m = sf_mutex_new();
  CHECK_TRUE(m != NULL);
  sf_mutex_lock(m);
  sf_mutex_unlock(m);
  sf_mutex_free(m);
}

int main(void) {
  char tmp[MAX_PATH];
  GetTempPathA(sizeof tmp, tmp);
  /* Wine reuses pids: add the tick count, and start from an empty folder. */
  snprintf(dir, sizeof dir, "%ssf-core-%lu-%llu", tmp, GetCurrentProcessId(), (unsigned long long)GetTickCount64());
  if (!CreateDirectoryA(dir, NULL)) {
    fprintf(stderr, "cannot create %s (%lu)\n", dir, GetLastError());
    return 2;
  }
  path_in_dir(lock_path, "a.lock");
  RUN(test_exclusive_conflict);
  RUN(test_shared);
  RUN(test_close_releases);
  RUN(test_keys);
  RUN(test_wall_clock);
  RUN(test_record_in_lock_file);
  RUN(test_wait_granted);
  RUN(test_wait_cancelled);
  RUN(test_error_mapping);
  RUN(test_identity);
  RUN(test_errors);
  RUN(test_long_path);
  RUN(test_inheritable);
  RUN(test_mutex);
  DONE();
}
