/* The wait threads: reused while idle, so that a lock handed back and forth
 * between processes pays neither thread creation when a wait starts nor
 * thread teardown (a stack unmap, with its TLB shootdown) right after a grant.
 * Platform-neutral: it uses only what flock.h asks of each platform. */
#include <stdlib.h>

#include "flock.h"

#define SF_IDLE_MS 2000  /* how long an idle thread waits for the next wait */
#define SF_MAX_IDLE 8    /* idle threads beyond this exit at once */

typedef struct sf_task {
  void (*fn)(void *);
  void *arg;
  struct sf_task *next;
} sf_task_t;

/* All under the pool lock. */
static sf_task_t *handed;  /* tasks given to idle threads, not yet taken */
static int handed_count;
static int idle_count;     /* threads waiting for a task */

static void run(sf_task_t *task) {
  void (*fn)(void *) = task->fn;
  void *arg = task->arg;
  free(task);
  sf_thread_set_name("sflock-wait");
  fn(arg);
}

static void pool_thread(void *first) {
  run(first);
  for (;;) {
    sf_thread_set_name("sflock-idle");
    sf_pool_lock();
    if (idle_count >= SF_MAX_IDLE) {
      sf_pool_unlock();
      return;
    }
    idle_count++;
    while (handed == NULL) {
      if (sf_pool_wait(SF_IDLE_MS) && handed == NULL) {
        idle_count--;
        sf_pool_unlock();
        return;
      }
    }
    sf_task_t *task = handed;
    handed = task->next;
    handed_count--;
    idle_count--;
    sf_pool_unlock();
    run(task);
  }
}

int sf_thread_start(void (*fn)(void *), void *arg) {
  sf_task_t *task = malloc(sizeof *task);
  if (task == NULL) return SF_NO_MEMORY;
  task->fn = fn;
  task->arg = arg;
  task->next = NULL;
  sf_pool_lock();
  if (idle_count > handed_count) {
    /* An idle thread takes it: idle threads leave only when nothing is handed. */
    task->next = handed;
    handed = task;
    handed_count++;
    sf_pool_wake();
    sf_pool_unlock();
    return 0;
  }
  sf_pool_unlock();
  int r = sf_thread_spawn(pool_thread, task);
  if (r != 0) free(task);
  return r;
}
