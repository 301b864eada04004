/* Lock semantics every platform must share: two descriptors of one file, shared
 * and exclusive, unlock and close. Included by test_core.c and test_core_win32.c
 * after check.h and after they define `lock_path`. */
#ifndef SF_LOCK_CASES_H
#define SF_LOCK_CASES_H

#include <string.h>
#include <time.h>

static sf_file_t *must_open(const char *path) {
  sf_file_t *f = NULL;
  int r = sf_open(path, 0600, SF_OPEN_CREATE, &f);
  CHECK_EQ(r, 0);
  if (r != 0) exit(2);
  return f;
}

static void test_exclusive_conflict(void) {
  sf_file_t *a = must_open(lock_path), *b = must_open(lock_path);
  CHECK_EQ(sf_try_lock(a, 0), 0);
  CHECK_EQ(sf_try_lock(b, 0), SF_WOULD_BLOCK);
  CHECK_EQ(sf_try_lock(b, 1), SF_WOULD_BLOCK);
  CHECK_EQ(sf_try_lock(a, 0), 0); /* relocking does not stack */
  CHECK_EQ(sf_unlock(a), 0);
  CHECK_EQ(sf_try_lock(b, 0), 0); /* one unlock was enough */
  CHECK_EQ(sf_try_lock(a, 1), SF_WOULD_BLOCK);
  CHECK_EQ(sf_unlock(b), 0);
  CHECK_EQ(sf_unlock(b), 0); /* unlocking twice is fine */
  CHECK_EQ(sf_close(a), 0);
  CHECK_EQ(sf_close(b), 0);
}

static void test_shared(void) {
  sf_file_t *a = must_open(lock_path), *b = must_open(lock_path), *c = must_open(lock_path);
  CHECK_EQ(sf_try_lock(a, 1), 0);
  CHECK_EQ(sf_try_lock(b, 1), 0);
  CHECK_EQ(sf_try_lock(c, 0), SF_WOULD_BLOCK);
  CHECK_EQ(sf_unlock(a), 0);
  CHECK_EQ(sf_try_lock(c, 0), SF_WOULD_BLOCK);
  CHECK_EQ(sf_unlock(b), 0);
  CHECK_EQ(sf_try_lock(c, 0), 0);
  /* downgrade, then upgrade, through one handle */
  CHECK_EQ(sf_try_lock(c, 1), 0);
  CHECK_EQ(sf_try_lock(a, 1), 0);
  CHECK_EQ(sf_try_lock(c, 0), SF_WOULD_BLOCK);
  CHECK_EQ(sf_unlock(a), 0);
  CHECK_EQ(sf_try_lock(c, 0), 0);
  sf_close(a);
  sf_close(b);
  sf_close(c);
}

static void test_close_releases(void) {
  sf_file_t *a = must_open(lock_path), *b = must_open(lock_path);
  CHECK_EQ(sf_try_lock(a, 0), 0);
  CHECK_EQ(sf_try_lock(b, 0), SF_WOULD_BLOCK);
  CHECK_EQ(sf_close(a), 0);
  CHECK_EQ(sf_try_lock(b, 0), 0);
  sf_close(b);
}

/* One file, one key, from either descriptor or its path; another file, another key. */
static void test_keys(void) {
  char other[320], a_key[SF_KEY_MAX], b_key[SF_KEY_MAX], path_key[SF_KEY_MAX], other_key[SF_KEY_MAX];
  path_in_dir(other, "other.lock");
  sf_file_t *a = must_open(lock_path), *b = must_open(lock_path), *c = must_open(other);
  int n = sf_file_key(a, a_key);
  CHECK_TRUE(n > 0 && n < SF_KEY_MAX);
  CHECK_EQ(sf_file_key(b, b_key), n);
  CHECK_EQ(strcmp(a_key, b_key), 0);
  CHECK_EQ(sf_path_key(lock_path, path_key), n);
  CHECK_EQ(strcmp(a_key, path_key), 0);
  CHECK_TRUE(sf_file_key(c, other_key) > 0);
  CHECK_TRUE(strcmp(a_key, other_key) != 0);
  path_in_dir(other, "missing.lock");
  CHECK_NAME(sf_path_key(other, path_key), "ENOENT");
  sf_close(a);
  sf_close(b);
  sf_close(c);
}

static size_t read_small_file(const char *path, char *buf, size_t size) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return 0;
  size_t got = fread(buf, 1, size - 1, f);
  fclose(f);
  buf[got] = '\0';
  return got;
}

/* The record is the lock file's content: written through the holding descriptor only
 * into an empty file (unless replacing), readable through another descriptor while
 * held, emptied on demand; the file is removed only while its path names it. */
static void test_record_in_lock_file(void) {
  char path[320], buf[160], text[160], key[SF_KEY_MAX];
  path_in_dir(path, "rec.lock");
  sf_file_t *a = must_open(path), *b = must_open(path);
  CHECK_EQ(sf_try_lock(a, 0), 0);
  CHECK_EQ(sf_write_record(a, "{\"pid\":1}\n", 10, 0), 0);
  CHECK_EQ(read_small_file(path, buf, sizeof buf), 10);
  CHECK_EQ(strcmp(buf, "{\"pid\":1}\n"), 0);
  /* Something is there now: a plain write refuses and leaves it; a replace truncates. */
  CHECK_EQ(sf_write_record(a, "{}\n", 3, 0), SF_NOT_EMPTY);
  CHECK_EQ(read_small_file(path, buf, sizeof buf), 10);
  CHECK_EQ(sf_write_record(a, "{}\n", 3, 1), 0);
  CHECK_EQ(read_small_file(path, buf, sizeof buf), 3);
  CHECK_EQ(sf_clear_record(a), 0);
  CHECK_EQ(read_small_file(path, buf, sizeof buf), 0);
  /* The holder's grant fields: nonce serial, ISO 8601 time, epoch ms. */
  int n = sf_format_record(text, sizeof text, "{\"pid\":1,\"nonce\":\"x-", 20, 42, 1767225600123.0);
  CHECK_TRUE(n > 0);
  if (n > 0) {
    text[n] = '\0';
    CHECK_EQ(strcmp(text, "{\"pid\":1,\"nonce\":\"x-42\",\"createdAt\":\"2026-01-01T00:00:00.123Z\",\"acquiredAt\":1767225600123}\n"), 0);
  }
  CHECK_EQ(sf_format_record(text, 20, "{\"pid\":1,\"nonce\":\"x-", 20, 42, 0), SF_NO_MEMORY);
  n = sf_format_record(text, sizeof text, "{\"n\":\"", 6, 1, 951782400000.0); /* 2000-02-29, a leap day */
  CHECK_TRUE(n > 0);
  if (n > 0) text[n] = '\0';
  CHECK_TRUE(strstr(text, "2000-02-29T00:00:00.000Z") != NULL);
  /* Removal while held. The name goes at once on POSIX and with Windows' POSIX delete
   * semantics; with the classic disposition (Wine) only once every handle is closed. */
  CHECK_EQ(sf_remove_locked(a, path), 0);
  sf_close(a);
  sf_close(b);
  CHECK_NAME(sf_path_key(path, key), "ENOENT");
  /* A descriptor of a file the path no longer names removes nothing there. */
  sf_file_t *c = must_open(path);
  CHECK_EQ(sf_remove_locked(c, path), 0);
  sf_close(c);
  char moved[320];
  path_in_dir(moved, "rec.moved");
  sf_file_t *d = must_open(path);
  CHECK_EQ(rename(path, moved), 0);
  sf_file_t *e = must_open(path);
  CHECK_EQ(sf_remove_locked(d, path), SF_REPLACED);
  CHECK_EQ(sf_same_file(e, path), 0);
  sf_close(d);
  sf_close(e);
  remove(moved);
  remove(path);
}

/* The grant time a wait thread reports: whole ms, on the clock time() and Date.now() read. */
static void test_wall_clock(void) {
  long long before = (long long)time(NULL) * 1000;
  double ms = sf_wall_clock_ms();
  long long after = (long long)time(NULL) * 1000 + 1000;
  CHECK_TRUE(ms == (double)(long long)ms);
  CHECK_TRUE((long long)ms >= before && (long long)ms < after);
}

#endif
