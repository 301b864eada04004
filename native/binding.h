/* Internal to the addon: what its three files share. handles.c keeps each env's
 * table of handles, waits.c runs waits on addon-owned threads, binding.c is the
 * Node-API glue. The lock core they drive is flock.h. */
#ifndef SF_BINDING_H
#define SF_BINDING_H

#define NAPI_VERSION 8
#include <node_api.h>
#include <stdint.h>

#include "flock.h"
#include "interface_version.h"

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

/* Returns NULL to JavaScript for a failed Node-API call (see NAPI_BUG). */
napi_value failed_call(napi_env env, napi_status status, const char *call);

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
/* The second call of a granted wait's done(), once the acquirer's code has run (see waitLock). */
#define AFTER_GRANT (-0x7e000001)

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


/* handles.c */
handle_t *handle_new(sf_file_t *file);
void handle_free(handle_t *h);
int handle_unref_locked(handle_t *h);
uint32_t slot_take(instance_t *inst, handle_t *h);
double id_of(instance_t *inst, uint32_t slot);
uint32_t slot_of(instance_t *inst, double id);
int handle_close_slot(instance_t *inst, uint32_t slot);
sf_file_t *file_if_idle(handle_t *h, int *code);
void env_cleanup(void *arg);

/* waits.c */
int write_record(sf_file_t *file, const char *fields, size_t fields_len, double serial, double ms);
/* Starts the wait of waitLock() for `h`, the handle in `slot`: 0 or a negative code, as a JS number. */
napi_value wait_start(napi_env env, instance_t *inst, handle_t *h, uint32_t slot, int shared, napi_value path,
                      napi_value context, napi_value done, const char *fields, size_t fields_len, double serial);

/* binding.c */
napi_value make_int(napi_env env, int value);
char *get_utf8(napi_env env, napi_value value);

#endif
