/* Node-API glue over flock.h: handle ids, waits on addon-owned threads,
 * and the env cleanup hook that closes a worker's descriptors. Argument
 * validation and error objects live in TypeScript; this file only asserts. */
#define NAPI_VERSION 8
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "flock.h"

/* When a Node-API call fails.
 *
 * While an env is being torn down (a worker terminated in the middle of an
 * addon call, or between two), every call that may run JavaScript or touch
 * objects (napi_create_function, napi_set_named_property,
 * napi_call_function, napi_create_threadsafe_function, ...) fails as a matter
 * of course with napi_pending_exception or napi_cannot_run_js. So a failure
 * returns to JavaScript: NAPI_TRY undoes what the function had done so far
 * and returns NULL, with the pending exception if there is one (what
 * JavaScript then sees, if any JavaScript still runs), else with an Error
 * naming the call.
 *
 * Only the calls in NAPI_BUG abort: napi_get_cb_info, napi_get_undefined,
 * napi_create_int32, napi_create_double, napi_create_string_latin1 and
 * napi_unref_threadsafe_function.
 * They never run JavaScript and only check that their arguments are not
 * NULL, so a failure of one of them can only be a bug in this file. */
#define NAPI_BUG(call)                                                     \
  do {                                                                     \
    if ((call) != napi_ok) napi_fatal_error(#call, NAPI_AUTO_LENGTH, "", 0); \
  } while (0)

static napi_value failed_call(napi_env env, napi_status status, const char *call) {
  if (status != napi_pending_exception && status != napi_cannot_run_js) {
    bool pending = true;
    if (napi_is_exception_pending(env, &pending) == napi_ok && !pending) {
      napi_throw_error(env, "ERR_SESSION_FLOCK_NODE_API", call);
    }
  }
  return NULL;
}

/* Evaluates `call`; on failure runs `undo` and returns to JavaScript. */
#define NAPI_TRY(call, undo)                                    \
  do {                                                          \
    napi_status status_ = (call);                               \
    if (status_ != napi_ok) {                                   \
      undo;                                                     \
      return failed_call(env, status_, "Node-API call failed: " #call); \
    }                                                           \
  } while (0)

/* Arguments come checked from src/file/binding.ts' callers: a mismatch is a bug there. */
#define ASSERT(cond)                                                             \
  do {                                                                           \
    if (!(cond)) {                                                               \
      napi_throw_type_error(env, "ERR_SESSION_FLOCK_ASSERT", "assertion failed: " #cond); \
      return NULL;                                                               \
    }                                                                            \
  } while (0)

typedef struct handle handle_t;

/* A handle reaches JavaScript as a number, not an object: an object with a
 * finalizer costs an allocation, a weak reference and a finalizer run per lock,
 * more than the system calls of an uncontended acquire. The number names a slot
 * of its env's table and the generation of the slot's occupant, so an id that
 * was closed never reaches the handle that took its slot later; JavaScript
 * closes every handle it opens (a leaked SessionLock is released by its
 * FinalizationRegistry), and the env's cleanup hook closes what is left. */
#define SLOT_BITS 22 /* over a million descriptors per env; ids stay below 2^53 */
#define SLOT_LIMIT ((uint32_t)1 << SLOT_BITS)
#define NO_SLOT UINT32_MAX

typedef struct {
  handle_t *h;          /* NULL when free */
  uint32_t generation;  /* of the current or next occupant; never 0 */
  uint32_t next_free;
} slot_t;

/* Per env (main thread or worker): the handles it opened, for the cleanup hook. */
typedef struct {
  slot_t *slots;
  uint32_t capacity;
  uint32_t free_head;
  int waits_in_flight;
} instance_t;

/* While `waiting` is set, only the wait thread touches `file`: every entry
 * point below goes through file_if_idle(), which refuses (tryLock says
 * WOULD_BLOCK, unlock does nothing, close is handed to the wait thread), and
 * only sf_cancel_wait(), which touches the waiting thread and not the
 * descriptor, is called meanwhile. Windows needs this: it serializes all I/O
 * on a synchronous handle, so any other call on it would block until the
 * wait ends (Wine does not, so no test there would notice). */
struct handle {
  sf_mutex_t *mu;         /* guards everything below against the wait thread */
  sf_file_t *file;        /* NULL once closed */
  int refs;               /* its slot until close(), plus one per wait not yet finished */
  int waiting;            /* a wait thread owns `file` (in or about to be in sf_wait_lock()) */
  int cancelled;          /* give up the current wait; a late grant is unlocked at once */
  int close_when_done;    /* close() came during a wait: the wait thread closes */
};

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

/* Called with h->mu held; returns whether the caller must free h. */
static int handle_unref_locked(handle_t *h) {
  return --h->refs == 0;
}

static void handle_free(handle_t *h) {
  sf_mutex_free(h->mu);
  free(h);
}

/* A slot for `h`, or NO_SLOT when out of memory or slots. */
static uint32_t slot_take(instance_t *inst, handle_t *h) {
  if (inst->free_head == NO_SLOT) {
    uint32_t capacity = inst->capacity == 0 ? 16 : inst->capacity * 2;
    if (capacity > SLOT_LIMIT) return NO_SLOT;
    slot_t *slots = realloc(inst->slots, capacity * sizeof *slots);
    if (slots == NULL) return NO_SLOT;
    for (uint32_t i = inst->capacity; i < capacity; i++) {
      slots[i].h = NULL;
      slots[i].generation = 1;
      slots[i].next_free = i + 1 < capacity ? i + 1 : NO_SLOT;
    }
    inst->slots = slots;
    inst->free_head = inst->capacity;
    inst->capacity = capacity;
  }
  uint32_t slot = inst->free_head;
  inst->free_head = inst->slots[slot].next_free;
  inst->slots[slot].h = h;
  return slot;
}

static void slot_free(instance_t *inst, uint32_t slot) {
  slot_t *s = &inst->slots[slot];
  s->h = NULL;
  s->generation = s->generation == (UINT32_MAX >> 1) ? 1 : s->generation + 1;
  s->next_free = inst->free_head;
  inst->free_head = slot;
}

static double id_of(instance_t *inst, uint32_t slot) {
  return (double)inst->slots[slot].generation * SLOT_LIMIT + slot;
}

/* The slot an id names while its handle is open, else NO_SLOT (closed, or never one). */
static uint32_t slot_of(instance_t *inst, double id) {
  if (!(id >= 1 && id < 9007199254740992.0)) return NO_SLOT;
  uint64_t n = (uint64_t)id;
  uint32_t slot = (uint32_t)(n & (SLOT_LIMIT - 1));
  uint64_t generation = n >> SLOT_BITS;
  if ((double)n != id || slot >= inst->capacity || inst->slots[slot].h == NULL) return NO_SLOT;
  return inst->slots[slot].generation == generation ? slot : NO_SLOT;
}

/* Closes now, or hands the close to the running wait thread: the descriptor
 * must outlive the flock() blocked on it, or its number could be reused. */
static int handle_close_locked(handle_t *h) {
  if (h->file == NULL) return 0;
  if (h->waiting) {
    h->cancelled = 1;
    h->close_when_done = 1;
    sf_cancel_wait(h->file);
    return 0;
  }
  int r = sf_close(h->file);
  h->file = NULL;
  return r;
}

/* Closes the handle in `slot` and frees the slot; the handle itself lives on
 * while a wait still references it. */
static int handle_close_slot(instance_t *inst, uint32_t slot) {
  handle_t *h = inst->slots[slot].h;
  slot_free(inst, slot);
  sf_mutex_lock(h->mu);
  int r = handle_close_locked(h);
  int last = handle_unref_locked(h);
  sf_mutex_unlock(h->mu);
  if (last) handle_free(h);
  return r;
}

static void env_cleanup(void *arg) {
  instance_t *inst = arg;
  for (uint32_t slot = 0; slot < inst->capacity; slot++) {
    if (inst->slots[slot].h != NULL) handle_close_slot(inst, slot);
  }
  free(inst->slots);
  free(inst);
}

/* The file of an open handle that no wait owns, or NULL with the code to return. */
static sf_file_t *file_if_idle(handle_t *h, int *code) {
  if (h->file == NULL) *code = SF_CANCELLED;
  else if (h->waiting) *code = SF_WOULD_BLOCK;
  else return h->file;
  return NULL;
}

static napi_value make_int(napi_env env, int value) {
  napi_value result;
  NAPI_BUG(napi_create_int32(env, value, &result));
  return result;
}

/* Reads up to `max` arguments; `inst` receives the instance. */
static size_t get_args(napi_env env, napi_callback_info info, size_t max, napi_value *argv, instance_t **inst) {
  size_t argc = max;
  void *data = NULL;
  NAPI_BUG(napi_get_cb_info(env, info, &argc, argv, NULL, &data));
  if (inst != NULL) *inst = data;
  return argc;
}

/* A malloc'd UTF-8 copy of a JS string; NULL when it is not one or out of memory. */
static char *get_utf8(napi_env env, napi_value value) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &len) != napi_ok) return NULL;
  char *s = malloc(len + 1);
  if (s != NULL && napi_get_value_string_utf8(env, value, s, len + 1, &len) != napi_ok) {
    free(s);
    s = NULL;
  }
  return s;
}

/* open(path: string, mode: number, create: boolean): handle id (>= 1) | negative code */
static napi_value js_open(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  instance_t *inst;
  ASSERT(get_args(env, info, 3, argv, &inst) == 3);
  int32_t mode = 0;
  bool create = false;
  ASSERT(napi_get_value_int32(env, argv[1], &mode) == napi_ok);
  ASSERT(napi_get_value_bool(env, argv[2], &create) == napi_ok);
  char *path = get_utf8(env, argv[0]);
  if (path == NULL) return make_int(env, SF_NO_MEMORY);

  sf_file_t *file = NULL;
  int r = sf_open(path, mode, create ? SF_OPEN_CREATE : 0, &file);
  free(path);
  if (r != 0) return make_int(env, r);

  handle_t *h = calloc(1, sizeof *h);
  sf_mutex_t *mu = h != NULL ? sf_mutex_new() : NULL;
  if (mu == NULL) {
    free(h);
    sf_close(file);
    return make_int(env, SF_NO_MEMORY);
  }
  h->mu = mu;
  h->file = file;
  h->refs = 1;
  uint32_t slot = slot_take(inst, h);
  if (slot == NO_SLOT) {
    sf_close(file);
    handle_free(h);
    return make_int(env, SF_NO_MEMORY);
  }
  napi_value id;
  NAPI_BUG(napi_create_double(env, id_of(inst, slot), &id));
  return id;
}

/* `slot` and `h` from the id in argv[index] (needs `inst`). A closed id returns
 * `if_closed` at once: what the call gives on a closed handle. */
#define HANDLE_ARG(index, if_closed)                                             \
  uint32_t slot = NO_SLOT;                                                       \
  do {                                                                           \
    double id_ = 0;                                                              \
    ASSERT(napi_get_value_double(env, argv[index], &id_) == napi_ok);            \
    slot = slot_of(inst, id_);                                                   \
    if (slot == NO_SLOT) return make_int(env, (if_closed));                      \
  } while (0);                                                                   \
  handle_t *h = inst->slots[slot].h

/* A record's fixed part from a Buffer argument (null or undefined: no record). */
static int get_record_fields(napi_env env, napi_value value, const char **data, size_t *len) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok) return 0;
  if (type == napi_null || type == napi_undefined) {
    *data = NULL;
    *len = 0;
    return 1;
  }
  void *bytes = NULL;
  if (napi_get_buffer_info(env, value, &bytes, len) != napi_ok) return 0;
  *data = bytes;
  return 1;
}

/* Writes the record of a grant at `ms` through `file` (only into an empty file):
 * 0, SF_NOT_EMPTY, or a negative code. */
static int write_record(sf_file_t *file, const char *fields, size_t fields_len, double serial, double ms) {
  char stack[1024];
  size_t cap = fields_len + SF_RECORD_TIME_MAX;
  char *text = cap <= sizeof stack ? stack : malloc(cap);
  if (text == NULL) return SF_NO_MEMORY;
  int len = sf_format_record(text, cap, fields, fields_len, serial, ms);
  int r = len < 0 ? len : sf_write_record(file, text, (size_t)len, 0);
  if (text != stack) free(text);
  return r;
}

/* tryLock(h, shared: boolean, path: string, recordFields: Buffer | null, serial: number):
 * the epoch ms of the grant when the lock is now held through h and `path` still names
 * its file (with the record written, if one was asked for); NOT_EMPTY when it is held
 * but the file holds data, so no record was written; REPLACED when the lock was taken
 * on a file the path no longer names (close and reopen); WOULD_BLOCK; or a negative code. */
static napi_value js_try_lock(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  instance_t *inst;
  ASSERT(get_args(env, info, 5, argv, &inst) == 5);
  HANDLE_ARG(0, SF_CANCELLED);
  bool shared = false;
  double serial = 0;
  const char *fields = NULL;
  size_t fields_len = 0;
  ASSERT(napi_get_value_bool(env, argv[1], &shared) == napi_ok);
  ASSERT(get_record_fields(env, argv[3], &fields, &fields_len));
  ASSERT(napi_get_value_double(env, argv[4], &serial) == napi_ok);
  char *path = get_utf8(env, argv[2]);
  if (path == NULL) return make_int(env, SF_NO_MEMORY);
  double result;
  sf_mutex_lock(h->mu);
  int r;
  sf_file_t *file = file_if_idle(h, &r);
  if (file != NULL) r = sf_try_lock(file, shared);
  if (r == 0) r = sf_same_file(file, path);
  if (r == 0) {
    result = sf_wall_clock_ms();
    /* A record that cannot be written (a full disk) costs the holder nothing but the diagnostics. */
    if (fields != NULL && write_record(file, fields, fields_len, serial, result) == SF_NOT_EMPTY) result = SF_NOT_EMPTY;
  } else {
    result = r;
  }
  sf_mutex_unlock(h->mu);
  free(path);
  napi_value value;
  NAPI_BUG(napi_create_double(env, result, &value));
  return value;
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
    napi_release_threadsafe_function(w->tsfn, napi_tsfn_release);
  }
  sf_mutex_unlock(h->mu);
  wait_release(w);
}

static void wait_deliver(napi_env env, napi_value callback, void *context, void *data) {
  if (env == NULL) return;
  (void)data;
  wait_t *w = context;
  /* An early wake (see wait_thread) may come before the result is final: the
   * thread then calls again once it is. */
  sf_mutex_lock(w->h->mu);
  int finished = w->finished, r = w->result;
  if (!finished) w->loop_came_early = 1;
  sf_mutex_unlock(w->h->mu);
  if (!finished) return;
  w->inst->waits_in_flight--;
  napi_value recv = NULL, argv[4];
  napi_status context_status = napi_get_reference_value(env, w->context, &recv);
  napi_delete_reference(env, w->context);
  w->context = NULL;
  /* Reading the context, making the path string and the call fail only when no
   * JavaScript can run any more: the env's cleanup hook then closes the
   * descriptor, and nothing is left to tell. */
  if (context_status != napi_ok || recv == NULL) return;
  NAPI_BUG(napi_create_double(env, w->id, &argv[0]));
  argv[1] = make_int(env, r);
  /* The grant's time from the wait thread: reading the clock on an event loop
   * that just woke up costs more than the rest of the handoff's JavaScript. */
  int granted = r == 0 || r == SF_NOT_EMPTY;
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

/* waitLock(h, shared: boolean, path: string, context, done, recordFields: Buffer | null,
 * serial: number): 0 | negative code.
 * The wait runs on its own thread and does not keep the event loop alive. It
 * ends with done.call(context, h, code, grantedAt, path): one function can serve
 * every wait, and no closure is made per wait. `code` is 0 (granted, `path`
 * still names the file, and the record is written if one was asked for),
 * NOT_EMPTY (granted, but the file holds data: no record was written),
 * REPLACED (granted on a file that was unlinked or replaced: close and retry),
 * CANCELLED, or an error; when granted, `grantedAt` is the epoch ms of the
 * grant and `path` is undefined, else 0 and the path. */
static napi_value js_wait_lock(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  instance_t *inst;
  ASSERT(get_args(env, info, 7, argv, &inst) == 7);
  HANDLE_ARG(0, SF_CANCELLED);
  bool shared = false;
  const char *fields = NULL;
  size_t fields_len = 0;
  double serial = 0;
  ASSERT(napi_get_value_bool(env, argv[1], &shared) == napi_ok);
  ASSERT(get_record_fields(env, argv[5], &fields, &fields_len));
  ASSERT(napi_get_value_double(env, argv[6], &serial) == napi_ok);

  sf_mutex_lock(h->mu);
  int busy = 0;
  file_if_idle(h, &busy);
  sf_mutex_unlock(h->mu);
  if (busy != 0) return make_int(env, busy);

  wait_t *w = calloc(1, sizeof *w);
  if (w == NULL) return make_int(env, SF_NO_MEMORY);
  w->path = get_utf8(env, argv[2]);
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
  NAPI_TRY(napi_create_reference(env, argv[3], 1, &w->context), UNDO_WAIT);
#undef UNDO_WAIT
#define UNDO_WAIT (napi_delete_reference(env, w->context), free(w->path), free(w->record_fields), free(w))
  NAPI_TRY(napi_create_threadsafe_function(env, argv[4], NULL, name, 0, 1, w, wait_tsfn_finalize, w,
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

/* unlock(h): 0 | negative code */
static napi_value js_unlock(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  instance_t *inst;
  ASSERT(get_args(env, info, 1, argv, &inst) == 1);
  HANDLE_ARG(0, 0);
  sf_mutex_lock(h->mu);
  int r;
  sf_file_t *file = file_if_idle(h, &r);
  r = file == NULL ? 0 : sf_unlock(file); /* a waiting handle holds nothing yet */
  sf_mutex_unlock(h->mu);
  return make_int(env, r);
}

/* close(h): 0 | negative code; idempotent; deferred while a wait runs. The id is
 * dead from here, whatever a wait still does with the descriptor. */
static napi_value js_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  instance_t *inst;
  ASSERT(get_args(env, info, 1, argv, &inst) == 1);
  HANDLE_ARG(0, 0);
  (void)h;
  return make_int(env, handle_close_slot(inst, slot));
}

/* sameFile(h, path): 0 | REPLACED | negative code */
static napi_value js_same_file(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  instance_t *inst;
  ASSERT(get_args(env, info, 2, argv, &inst) == 2);
  HANDLE_ARG(0, SF_CANCELLED);
  char *path = get_utf8(env, argv[1]);
  if (path == NULL) return make_int(env, SF_NO_MEMORY);
  sf_mutex_lock(h->mu);
  int r;
  sf_file_t *file = file_if_idle(h, &r);
  if (file != NULL) r = sf_same_file(file, path);
  sf_mutex_unlock(h->mu);
  free(path);
  return make_int(env, r);
}

static napi_value key_or_code(napi_env env, int r, const char *key) {
  if (r < 0) return make_int(env, r);
  napi_value result;
  NAPI_BUG(napi_create_string_latin1(env, key, (size_t)r, &result));
  return result;
}

/* fileKey(h): identity text ("" when the filesystem has none) | negative code */
static napi_value js_file_key(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  instance_t *inst;
  ASSERT(get_args(env, info, 1, argv, &inst) == 1);
  HANDLE_ARG(0, SF_CANCELLED);
  char key[SF_KEY_MAX];
  sf_mutex_lock(h->mu);
  int r;
  sf_file_t *file = file_if_idle(h, &r);
  if (file != NULL) r = sf_file_key(file, key);
  sf_mutex_unlock(h->mu);
  return key_or_code(env, r, key);
}

/* pathKey(path): identity text of the file the path names ("" when none) | negative code */
static napi_value js_path_key(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  ASSERT(get_args(env, info, 1, argv, NULL) == 1);
  char *path = get_utf8(env, argv[0]);
  if (path == NULL) return make_int(env, SF_NO_MEMORY);
  char key[SF_KEY_MAX];
  int r = sf_path_key(path, key);
  free(path);
  return key_or_code(env, r, key);
}

#define RELEASE_CLEAR_RECORD 1
#define RELEASE_REMOVE_FILE 2
#define RELEASE_SHARED 4

/* release(h, how: number, path: string): the close's 0 | negative code. Lets go of a
 * hold in one call: with CLEAR_RECORD the file is emptied, with REMOVE_FILE the path is
 * unlinked if it still names the file (else emptied), both while the lock is still held,
 * then the descriptor is closed. A SHARED hold does either only when it can take the lock
 * exclusively at once: other shared holders still hold the file, and may be named in it.
 * Failures before the close are not reported: the lock goes either way. */
static napi_value js_release(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  instance_t *inst;
  ASSERT(get_args(env, info, 3, argv, &inst) == 3);
  HANDLE_ARG(0, 0);
  int32_t how = 0;
  ASSERT(napi_get_value_int32(env, argv[1], &how) == napi_ok);
  char *path = NULL;
  if ((how & RELEASE_REMOVE_FILE) && (path = get_utf8(env, argv[2])) == NULL) how &= ~RELEASE_REMOVE_FILE;
  sf_mutex_lock(h->mu);
  int r;
  sf_file_t *file = file_if_idle(h, &r);
  if (file != NULL && (how & (RELEASE_CLEAR_RECORD | RELEASE_REMOVE_FILE))) {
    int alone = !(how & RELEASE_SHARED) || sf_try_lock(file, 0) == 0;
    int removed = alone && (how & RELEASE_REMOVE_FILE) && sf_remove_locked(file, path) == 0;
    if (alone && !removed && (how & RELEASE_CLEAR_RECORD)) sf_clear_record(file);
  }
  sf_mutex_unlock(h->mu);
  free(path);
  return make_int(env, handle_close_slot(inst, slot));
}

/* writeRecord(h, text: string): 0 | negative code. Replaces whatever the file holds
 * (the caller has read it and found it replaceable) with `text`. */
static napi_value js_write_record(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  instance_t *inst;
  ASSERT(get_args(env, info, 2, argv, &inst) == 2);
  HANDLE_ARG(0, SF_CANCELLED);
  char *text = get_utf8(env, argv[1]);
  if (text == NULL) return make_int(env, SF_NO_MEMORY);
  sf_mutex_lock(h->mu);
  int r;
  sf_file_t *file = file_if_idle(h, &r);
  if (file != NULL) r = sf_write_record(file, text, strlen(text), 1);
  sf_mutex_unlock(h->mu);
  free(text);
  return make_int(env, r);
}

/* setInheritable(h, inheritable: boolean): native descriptor number | negative code */
static napi_value js_set_inheritable(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  instance_t *inst;
  ASSERT(get_args(env, info, 2, argv, &inst) == 2);
  HANDLE_ARG(0, SF_CANCELLED);
  bool inheritable = false;
  ASSERT(napi_get_value_bool(env, argv[1], &inheritable) == napi_ok);
  sf_mutex_lock(h->mu);
  int r;
  sf_file_t *file = file_if_idle(h, &r);
  if (file != NULL) r = sf_set_inheritable(file, inheritable);
  double fd = r == 0 ? (double)sf_native_handle(file) : r;
  sf_mutex_unlock(h->mu);
  napi_value result;
  NAPI_BUG(napi_create_double(env, fd, &result));
  return result;
}

/* errorName(code): "ENOENT"-style string | undefined */
static napi_value js_error_name(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  ASSERT(get_args(env, info, 1, argv, NULL) == 1);
  int32_t code = 0;
  ASSERT(napi_get_value_int32(env, argv[0], &code) == napi_ok);
  const char *name = sf_error_name(code);
  napi_value result;
  if (name == NULL) NAPI_BUG(napi_get_undefined(env, &result));
  else NAPI_TRY(napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &result), (void)0);
  return result;
}

/* errorErrno(code): the OS error number (errno / GetLastError()) */
static napi_value js_error_errno(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  ASSERT(get_args(env, info, 1, argv, NULL) == 1);
  int32_t code = 0;
  ASSERT(napi_get_value_int32(env, argv[0], &code) == napi_ok);
  return make_int(env, sf_error_errno(code));
}

/* waitsInFlight(): waits this env started whose completion is not yet delivered */
static napi_value js_waits_in_flight(napi_env env, napi_callback_info info) {
  instance_t *inst;
  get_args(env, info, 0, NULL, &inst);
  return make_int(env, inst->waits_in_flight);
}

static napi_value init(napi_env env, napi_value exports) {
  /* Before any wait thread can exist: see sf_pin_module() in the platform file. */
  if (sf_pin_module() != 0) {
    napi_throw_error(env, "ERR_SESSION_FLOCK_PIN", "session-flock: cannot keep the addon loaded for its wait threads");
    return NULL;
  }
  instance_t *inst = calloc(1, sizeof *inst);
  if (inst == NULL) {
    napi_throw_error(env, "ENOMEM", "session-flock: out of memory");
    return NULL;
  }
  inst->free_head = NO_SLOT;
  NAPI_TRY(napi_add_env_cleanup_hook(env, env_cleanup, inst), free(inst));
  /* From here the cleanup hook frees inst, whatever fails below. */

  static const struct {
    const char *name;
    napi_callback fn;
  } functions[] = {
      {"open", js_open},
      {"tryLock", js_try_lock},
      {"waitLock", js_wait_lock},
      {"unlock", js_unlock},
      {"close", js_close},
      {"sameFile", js_same_file},
      {"fileKey", js_file_key},
      {"pathKey", js_path_key},
      {"release", js_release},
      {"writeRecord", js_write_record},
      {"setInheritable", js_set_inheritable},
      {"errorName", js_error_name},
      {"errorErrno", js_error_errno},
      {"waitsInFlight", js_waits_in_flight},
  };
  for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++) {
    napi_value fn;
    NAPI_TRY(napi_create_function(env, functions[i].name, NAPI_AUTO_LENGTH, functions[i].fn, inst, &fn), (void)0);
    NAPI_TRY(napi_set_named_property(env, exports, functions[i].name, fn), (void)0);
  }
  static const struct {
    const char *name;
    int value;
  } constants[] = {
      {"WOULD_BLOCK", SF_WOULD_BLOCK},
      {"REPLACED", SF_REPLACED},
      {"CANCELLED", SF_CANCELLED},
      {"NOT_REGULAR", SF_NOT_REGULAR},
      {"NOT_EMPTY", SF_NOT_EMPTY},
      {"RELEASE_CLEAR_RECORD", RELEASE_CLEAR_RECORD},
      {"RELEASE_REMOVE_FILE", RELEASE_REMOVE_FILE},
      {"RELEASE_SHARED", RELEASE_SHARED},
      /* Bumped whenever the functions above change shape; src/file/binding.ts refuses another. */
      {"INTERFACE_VERSION", 8},
  };
  for (size_t i = 0; i < sizeof constants / sizeof constants[0]; i++) {
    NAPI_TRY(napi_set_named_property(env, exports, constants[i].name, make_int(env, constants[i].value)), (void)0);
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
