/* A tiny assertion kit for the C tests of the lock core. */
#ifndef SF_TEST_CHECK_H
#define SF_TEST_CHECK_H
#include <stdio.h>
#include <stdlib.h>

#include "flock.h"

static int sf_test_failures = 0;
static int sf_test_checks = 0;

#define CHECK_EQ(actual, expected)                                                           \
  do {                                                                                       \
    long long a_ = (long long)(actual), e_ = (long long)(expected);                          \
    sf_test_checks++;                                                                        \
    if (a_ != e_) {                                                                          \
      const char *an_ = sf_error_name((int)a_), *en_ = sf_error_name((int)e_);               \
      fprintf(stderr, "%s:%d: %s == %lld (%s), expected %s == %lld (%s)\n", __FILE__,        \
              __LINE__, #actual, a_, an_ ? an_ : "-", #expected, e_, en_ ? en_ : "-");       \
      sf_test_failures++;                                                                    \
    }                                                                                        \
  } while (0)

#define CHECK_TRUE(cond) CHECK_EQ(!!(cond), 1)

#define CHECK_NAME(code, name)                                                                 \
  do {                                                                                         \
    const char *n_ = sf_error_name(code);                                                      \
    sf_test_checks++;                                                                          \
    if (n_ == NULL || strcmp(n_, name) != 0) {                                                 \
      fprintf(stderr, "%s:%d: sf_error_name(%s = %d) is %s, expected %s\n", __FILE__, __LINE__, \
              #code, (int)(code), n_ ? n_ : "NULL", name);                                     \
      sf_test_failures++;                                                                      \
    }                                                                                          \
  } while (0)

#define RUN(test)                                                  \
  do {                                                             \
    int before_ = sf_test_failures;                                \
    test();                                                        \
    printf("%s %s\n", sf_test_failures == before_ ? "ok  " : "FAIL", #test); \
    fflush(stdout);                                                \
  } while (0)

#define DONE()                                                                          \
  do {                                                                                  \
    printf("%d checks, %d failed\n", sf_test_checks, sf_test_failures);                 \
    return sf_test_failures == 0 ? 0 : 1;                                               \
  } while (0)

#endif
