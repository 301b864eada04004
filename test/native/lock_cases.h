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

/* A record goes in through a temp file and out only while the path names the file written. */
static void test_replace_and_remove(void) {
  char path[320], temp[320], first[SF_KEY_MAX], second[SF_KEY_MAX], named[SF_KEY_MAX], buf[64];
  path_in_dir(path, "rec.json");
  path_in_dir(temp, "rec.json.tmp");
  int n = sf_replace_file(temp, path, "{\"a\":1}\n", 8, 0600, first);
  CHECK_TRUE(n > 0 && n < SF_KEY_MAX);
  CHECK_EQ(sf_path_key(path, named), n);
  CHECK_EQ(strcmp(named, first), 0);
  CHECK_NAME(sf_path_key(temp, named), "ENOENT");
  CHECK_EQ(read_small_file(path, buf, sizeof buf), 8);
  CHECK_EQ(strcmp(buf, "{\"a\":1}\n"), 0);

  /* Replaced again: a new file, which the first writer's key does not remove. */
  CHECK_TRUE(sf_replace_file(temp, path, "{}\n", 3, 0600, second) > 0);
  CHECK_TRUE(strcmp(first, second) != 0);
  CHECK_EQ(sf_remove_if_same(path, first), SF_REPLACED);
  CHECK_EQ(read_small_file(path, buf, sizeof buf), 3);
  CHECK_EQ(sf_remove_if_same(path, second), 0);
  CHECK_NAME(sf_path_key(path, named), "ENOENT");
  CHECK_EQ(sf_remove_if_same(path, second), SF_REPLACED);

  /* Without an owner write bit (a fileMode of 0400) it is still written, replaced and removed. */
  CHECK_TRUE(sf_replace_file(temp, path, "{}\n", 3, 0400, first) > 0);
  CHECK_TRUE(sf_replace_file(temp, path, "{ }\n", 4, 0400, second) > 0);
  CHECK_EQ(read_small_file(path, buf, sizeof buf), 4);
  CHECK_EQ(sf_remove_if_same(path, second), 0);
  CHECK_NAME(sf_path_key(path, named), "ENOENT");

  /* A temp name already taken (another writer's) is refused and left alone. */
  FILE *taken = fopen(temp, "wb");
  CHECK_TRUE(taken != NULL);
  if (taken != NULL) {
    fputs("x", taken);
    fclose(taken);
  }
  CHECK_NAME(sf_replace_file(temp, path, "{}\n", 3, 0600, first), "EEXIST");
  CHECK_EQ(read_small_file(temp, buf, sizeof buf), 1);
  CHECK_NAME(sf_path_key(path, named), "ENOENT");
  remove(temp);
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
