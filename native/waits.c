/* Waits on addon-owned threads: one thread per wait blocks in sf_wait_lock(),
 * checks the grant's identity and writes the record off the event loop, then
 * reports through a threadsafe function. A wait never keeps the loop alive. */
#include <stdlib.h>
#include <string.h>

#include "binding.h"

/* The data of a threadsafe-function call that is a grant's AFTER_GRANT call. */
static char after_grant;

/* One wait: shared by its thread and its threadsafe function's finalizer. */
typedef struct {
  handle_t *h;
  instance_t *inst;
  napi_threadsafe_function tsfn;
  /* The caller's context, `this` of the completion callback; JS thread only. */
  napi_ref context;
  double id;     /* the handle's id, the callback's first argument */
  int refs;      /* the thread and the tsfn finalizer */
  int shared;
  /* Under h->mu: */
  int tsfn_gone; /* the env destroyed the tsfn: never call it */
  int woken;     /* the event loop was woken before the identity check (see wait_thread) */
  int finished;  /* `result` is final */
  int result;
  double granted_at;   /* sf_wall_clock_ms() when the kernel granted the lock */
  int loop_came_early; /* the loop ran the wake before `result` was final */
  char *path;    /* for the identity check right after the grant */
  char *record_fields; /* the record's fixed part, or NULL for no record */
  size_t record_fields_len;
  double serial;       /* the record's nonce counter */
} wait_t;

/* Writes the record of a grant at `ms` through `file` (only into an empty file):
 * 0, SF_NOT_EMPTY, or a negative code. */
int write_record(sf_file_t *file, const char *fields, size_t fields_len, double serial, double ms) {
  char stack[1024];
  size_t cap = fields_len + SF_RECORD_TIME_MAX;
  char *text = cap <= sizeof stack ? stack : malloc(cap);
  if (text == NULL) return SF_NO_MEMORY;
  int len = sf_format_record(text, cap, fields, fields_len, serial, ms);
  int r = len < 0 ? len : sf_write_record(file, text, (size_t)len, 0);
  if (text != stack) free(text);
  return r;
}

static void wait_unref_locked(wait_t *w, int *free_wait, int *free_handle) {
  *free_wait = --w->refs == 0;
  *free_handle = *free_wait && handle_unref_locked(w->h);
}

static void wait_release(wait_t *w) {
  handle_t *h = w->h;
  int free_wait, free_handle;
  sf_mutex_lock(h->mu);
  wait_unref_locked(w, &free_wait, &free_handle);
  sf_mutex_unlock(h->mu);
  if (free_wait) {
    free(w->path);
    free(w->record_fields);
    free(w);
  }
  if (free_handle) handle_free(h);
}

static void wait_thread(void *arg) {
  wait_t *w = arg;
  handle_t *h = w->h;
  /* h->file cannot change while h->waiting is set: close is deferred to us.
   * A wait given up before this thread got here is not started at all. */
  sf_mutex_lock(h->mu);
  int given_up = h->cancelled;
  sf_mutex_unlock(h->mu);
  int r = given_up ? SF_CANCELLED : sf_wait_lock(h->file, w->shared);
  int record_written = 0;

  if (r == 0) {
    w->granted_at = sf_wall_clock_ms();
    /* Granted: wake the event loop now, and check the identity while it wakes up
     * (waking an idle loop takes far longer than one lstat). The wake delivers
     * nothing by itself: wait_deliver() waits for the result below. */
    sf_mutex_lock(h->mu);
    if (!w->tsfn_gone) w->woken = napi_call_threadsafe_function(w->tsfn, NULL, napi_tsfn_nonblocking) == napi_ok;
    sf_mutex_unlock(h->mu);
    /* The identity check runs here, off the event loop, while the lock is held:
     * 0 then means granted on the file the path still names. On any other code
     * the caller closes the descriptor, which lets go of a stale grant. */
    r = sf_same_file(h->file, w->path);
    /* The record goes in before the event loop hears of the grant, so the woken waiter
     * has nothing left to write: a late grant nobody wants writes none. */
    sf_mutex_lock(h->mu);
    int wanted = !h->cancelled;
    sf_mutex_unlock(h->mu);
    if (r == 0 && wanted && w->record_fields != NULL) {
      int written = write_record(h->file, w->record_fields, w->record_fields_len, w->serial, w->granted_at);
      if (written == 0) record_written = 1;
      else if (written == SF_NOT_EMPTY) r = SF_NOT_EMPTY;
    }
  }

  sf_mutex_lock(h->mu);
  if ((r == 0 || r == SF_NOT_EMPTY || r == SF_REPLACED) && h->cancelled) {
    /* The late grant: nobody wants it any more, so it must not stay held, nor named. */
    if (record_written) sf_clear_record(h->file);
    sf_unlock(h->file);
    r = SF_CANCELLED;
  }
  h->waiting = 0;
  h->cancelled = 0;
  if (h->close_when_done) {
    sf_close(h->file);
    h->file = NULL;
    h->close_when_done = 0;
  }
  w->result = r;
  w->finished = 1;
  if (!w->tsfn_gone) {
    /* Unless the early wake is still queued (it then delivers the result), deliver it. */
    if (!w->woken || w->loop_came_early) napi_call_threadsafe_function(w->tsfn, NULL, napi_tsfn_nonblocking);
    /* Queued behind the delivery, so the loop runs it after the acquirer's code (see waitLock). */
    if (r == 0 || r == SF_NOT_EMPTY) napi_call_threadsafe_function(w->tsfn, &after_grant, napi_tsfn_nonblocking);
    napi_release_threadsafe_function(w->tsfn, napi_tsfn_release);
  }
  sf_mutex_unlock(h->mu);
  wait_release(w);
}

/* The AFTER_GRANT call of a granted wait; it lets go of the context. */
static void wait_after_grant(napi_env env, napi_value callback, wait_t *w) {
  if (w->context == NULL) return;
  napi_value recv = NULL, argv[4];
  napi_status context_status = napi_get_reference_value(env, w->context, &recv);
  napi_delete_reference(env, w->context);
  w->context = NULL;
  if (context_status != napi_ok || recv == NULL) return;
  NAPI_BUG(napi_create_double(env, w->id, &argv[0]));
  argv[1] = make_int(env, AFTER_GRANT);
  NAPI_BUG(napi_create_double(env, 0, &argv[2]));
  NAPI_BUG(napi_get_undefined(env, &argv[3]));
  napi_call_function(env, recv, callback, 4, argv, NULL);
}

static void wait_deliver(napi_env env, napi_value callback, void *context, void *data) {
  if (env == NULL) return;
  wait_t *w = context;
  if (data == &after_grant) {
    wait_after_grant(env, callback, w);
    return;
  }
  /* An early wake (see wait_thread) may come before the result is final: the
   * thread then calls again once it is. */
  sf_mutex_lock(w->h->mu);
  int finished = w->finished, r = w->result;
  if (!finished) w->loop_came_early = 1;
  sf_mutex_unlock(w->h->mu);
  if (!finished) return;
  w->inst->waits_in_flight--;
  int granted = r == 0 || r == SF_NOT_EMPTY;
  napi_value recv = NULL, argv[4];
  napi_status context_status = napi_get_reference_value(env, w->context, &recv);
  /* A grant's context serves its AFTER_GRANT call too. */
  if (!granted) {
    napi_delete_reference(env, w->context);
    w->context = NULL;
  }
  /* Reading the context, making the path string and the call fail only when no
   * JavaScript can run any more: the env's cleanup hook then closes the
   * descriptor, and nothing is left to tell. */
  if (context_status != napi_ok || recv == NULL) return;
  NAPI_BUG(napi_create_double(env, w->id, &argv[0]));
  argv[1] = make_int(env, r);
  /* The grant's time from the wait thread: reading the clock on an event loop
   * that just woke up costs more than the rest of the handoff's JavaScript. */
  NAPI_BUG(napi_create_double(env, granted ? w->granted_at : 0, &argv[2]));
  if (granted) NAPI_BUG(napi_get_undefined(env, &argv[3]));
  else if (napi_create_string_utf8(env, w->path, NAPI_AUTO_LENGTH, &argv[3]) != napi_ok) return;
  napi_call_function(env, recv, callback, 4, argv, NULL);
}

static void wait_tsfn_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  wait_t *w = data;
  /* Never delivered (the env went away, the thread did not start, or the last
   * call failed): the context is let go here. */
  if (w->context != NULL && env != NULL) napi_delete_reference(env, w->context);
  w->context = NULL;
  sf_mutex_lock(w->h->mu);
  w->tsfn_gone = 1;
  sf_mutex_unlock(w->h->mu);
  wait_release(w);
}

/* Starts the wait of waitLock() (see binding.c) for the handle in `slot`. */
napi_value wait_start(napi_env env, instance_t *inst, handle_t *h, uint32_t slot, int shared, napi_value path,
                      napi_value context, napi_value done, const char *fields, size_t fields_len, double serial) {
  sf_mutex_lock(h->mu);
  int busy = 0;
  file_if_idle(h, &busy);
  sf_mutex_unlock(h->mu);
  if (busy != 0) return make_int(env, busy);

  wait_t *w = calloc(1, sizeof *w);
  if (w == NULL) return make_int(env, SF_NO_MEMORY);
  w->path = get_utf8(env, path);
  if (fields != NULL && (w->record_fields = malloc(fields_len)) != NULL) memcpy(w->record_fields, fields, fields_len);
  if (w->path == NULL || (fields != NULL && w->record_fields == NULL)) {
    free(w->path);
    free(w->record_fields);
    free(w);
    return make_int(env, SF_NO_MEMORY);
  }
  w->record_fields_len = fields_len;
  w->serial = serial;
  w->h = h;
  w->inst = inst;
  w->shared = shared;
  w->refs = 2;
  w->id = id_of(inst, slot);
  napi_value name;
#define UNDO_WAIT (free(w->path), free(w->record_fields), free(w))
  NAPI_TRY(napi_create_string_utf8(env, "session-flock:wait", NAPI_AUTO_LENGTH, &name), UNDO_WAIT);
  NAPI_TRY(napi_create_reference(env, context, 1, &w->context), UNDO_WAIT);
#undef UNDO_WAIT
#define UNDO_WAIT (napi_delete_reference(env, w->context), free(w->path), free(w->record_fields), free(w))
  NAPI_TRY(napi_create_threadsafe_function(env, done, NULL, name, 0, 1, w, wait_tsfn_finalize, w,
                                           wait_deliver, &w->tsfn),
           UNDO_WAIT);
#undef UNDO_WAIT
  /* From here the tsfn finalizer owns one reference to w. */
  NAPI_BUG(napi_unref_threadsafe_function(env, w->tsfn));
  inst->waits_in_flight++;

  sf_mutex_lock(h->mu);
  h->refs++;
  h->waiting = 1;
  h->cancelled = 0;
  sf_mutex_unlock(h->mu);
  int r = sf_thread_start(wait_thread, w);
  if (r != 0) {
    sf_mutex_lock(h->mu);
    h->waiting = 0;
    sf_mutex_unlock(h->mu);
    inst->waits_in_flight--;
    napi_threadsafe_function tsfn = w->tsfn;
    wait_release(w); /* the thread's share; the tsfn finalizer drops the other */
    /* Fails only if the env already closed the tsfn, which then finalizes anyway. */
    napi_release_threadsafe_function(tsfn, napi_tsfn_abort);
  }
  return make_int(env, r);
}

