/* Node-API glue over flock.h: unpacks each call's arguments, calls the lock
 * core, and packs the answer; the handle table is handles.c's, the waits
 * waits.c's. Argument validation and error objects live in TypeScript; this
 * file only asserts. */
#include <stdlib.h>
#include <string.h>

#include "binding.h"

napi_value failed_call(napi_env env, napi_status status, const char *call) {
  if (status != napi_pending_exception && status != napi_cannot_run_js) {
    bool pending = true;
    if (napi_is_exception_pending(env, &pending) == napi_ok && !pending) {
      napi_throw_error(env, "ERR_SESSION_FLOCK_NODE_API", call);
    }
  }
  return NULL;
}

napi_value make_int(napi_env env, int value) {
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
char *get_utf8(napi_env env, napi_value value) {
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

  handle_t *h = handle_new(file);
  if (h == NULL) return make_int(env, SF_NO_MEMORY);
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

/* Sets `slot` and `h` from the handle id in argv[index] (needs `inst`). A closed id
 * returns `if_closed` at once: what the call gives on a closed handle. */
#define HANDLE_ARG(index, slot, h, if_closed)                           \
  do {                                                                  \
    double id_ = 0;                                                     \
    ASSERT(napi_get_value_double(env, argv[index], &id_) == napi_ok);   \
    (slot) = slot_of(inst, id_);                                        \
    if ((slot) == NO_SLOT) return make_int(env, (if_closed));           \
    (h) = inst->slots[slot].h;                                          \
  } while (0)

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

/* tryLock(h, shared: boolean, path: string, recordFields: Buffer | null, serial: number,
 * now: number): 0 when the lock is now held through h and `path` still names its file
 * (with the record of a grant at `now`, epoch ms, written if one was asked for); NOT_EMPTY
 * when it is held but the file holds data, so no record was written; REPLACED when the
 * lock was taken on a file the path no longer names (close and reopen); WOULD_BLOCK; or a
 * negative code. */
static napi_value js_try_lock(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  instance_t *inst;
  ASSERT(get_args(env, info, 6, argv, &inst) == 6);
  uint32_t slot;
  handle_t *h;
  HANDLE_ARG(0, slot, h, SF_CANCELLED);
  bool shared = false;
  double serial = 0, now = 0;
  const char *fields = NULL;
  size_t fields_len = 0;
  ASSERT(napi_get_value_bool(env, argv[1], &shared) == napi_ok);
  ASSERT(get_record_fields(env, argv[3], &fields, &fields_len));
  ASSERT(napi_get_value_double(env, argv[4], &serial) == napi_ok);
  ASSERT(napi_get_value_double(env, argv[5], &now) == napi_ok);
  char *path = get_utf8(env, argv[2]);
  if (path == NULL) return make_int(env, SF_NO_MEMORY);
  sf_mutex_lock(h->mu);
  int r;
  sf_file_t *file = file_if_idle(h, &r);
  if (file != NULL) r = sf_try_lock(file, shared);
  /* A record that cannot be written (a full disk) costs the holder nothing but the diagnostics. */
  if (r == 0) r = sf_same_file(file, path);
  if (r == 0 && fields != NULL && write_record(file, fields, fields_len, serial, now) == SF_NOT_EMPTY) r = SF_NOT_EMPTY;
  sf_mutex_unlock(h->mu);
  free(path);
  return make_int(env, r);
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
 * grant and `path` is undefined, else 0 and the path. A granted wait calls done
 * once more, with code AFTER_GRANT, in the same turn of the event loop but after
 * the promises the first call resolved have run (another item of the same
 * threadsafe-function dispatch, each of which ends with its microtasks). */
static napi_value js_wait_lock(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  instance_t *inst;
  ASSERT(get_args(env, info, 7, argv, &inst) == 7);
  uint32_t slot;
  handle_t *h;
  HANDLE_ARG(0, slot, h, SF_CANCELLED);
  bool shared = false;
  const char *fields = NULL;
  size_t fields_len = 0;
  double serial = 0;
  ASSERT(napi_get_value_bool(env, argv[1], &shared) == napi_ok);
  ASSERT(get_record_fields(env, argv[5], &fields, &fields_len));
  ASSERT(napi_get_value_double(env, argv[6], &serial) == napi_ok);
  return wait_start(env, inst, h, slot, shared, argv[2], argv[3], argv[4], fields, fields_len, serial);
}

/* unlock(h): 0 | negative code */
static napi_value js_unlock(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  instance_t *inst;
  ASSERT(get_args(env, info, 1, argv, &inst) == 1);
  uint32_t slot;
  handle_t *h;
  HANDLE_ARG(0, slot, h, 0);
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
  uint32_t slot;
  handle_t *h;
  HANDLE_ARG(0, slot, h, 0);
  (void)h;
  return make_int(env, handle_close_slot(inst, slot));
}

/* Calls op(file, text) with the file of handle argv[0], unless a wait owns it
 * (file_if_idle), and argv[1] as UTF-8: the shape of sameFile and writeRecord. */
static napi_value with_file_and_text(napi_env env, napi_callback_info info, int (*op)(sf_file_t *, const char *)) {
  napi_value argv[2];
  instance_t *inst;
  ASSERT(get_args(env, info, 2, argv, &inst) == 2);
  uint32_t slot;
  handle_t *h;
  HANDLE_ARG(0, slot, h, SF_CANCELLED);
  char *text = get_utf8(env, argv[1]);
  if (text == NULL) return make_int(env, SF_NO_MEMORY);
  sf_mutex_lock(h->mu);
  int r;
  sf_file_t *file = file_if_idle(h, &r);
  if (file != NULL) r = op(file, text);
  sf_mutex_unlock(h->mu);
  free(text);
  return make_int(env, r);
}

/* sameFile(h, path): 0 | REPLACED | negative code */
static napi_value js_same_file(napi_env env, napi_callback_info info) {
  return with_file_and_text(env, info, sf_same_file);
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
  uint32_t slot;
  handle_t *h;
  HANDLE_ARG(0, slot, h, SF_CANCELLED);
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
  uint32_t slot;
  handle_t *h;
  HANDLE_ARG(0, slot, h, 0);
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

static int write_whole_record(sf_file_t *file, const char *text) {
  return sf_write_record(file, text, strlen(text), 1);
}

/* writeRecord(h, text: string): 0 | negative code. Replaces whatever the file holds
 * (the caller has read it and found it replaceable) with `text`. */
static napi_value js_write_record(napi_env env, napi_callback_info info) {
  return with_file_and_text(env, info, write_whole_record);
}

/* setInheritable(h, inheritable: boolean): native descriptor number | negative code */
static napi_value js_set_inheritable(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  instance_t *inst;
  ASSERT(get_args(env, info, 2, argv, &inst) == 2);
  uint32_t slot;
  handle_t *h;
  HANDLE_ARG(0, slot, h, SF_CANCELLED);
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
      {"AFTER_GRANT", AFTER_GRANT},
      {"RELEASE_CLEAR_RECORD", RELEASE_CLEAR_RECORD},
      {"RELEASE_REMOVE_FILE", RELEASE_REMOVE_FILE},
      {"RELEASE_SHARED", RELEASE_SHARED},
      /* Bumped whenever the functions above change shape; src/file/binding.ts refuses another. */
      {"INTERFACE_VERSION", SF_INTERFACE_VERSION},
  };
  for (size_t i = 0; i < sizeof constants / sizeof constants[0]; i++) {
    NAPI_TRY(napi_set_named_property(env, exports, constants[i].name, make_int(env, constants[i].value)), (void)0);
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
