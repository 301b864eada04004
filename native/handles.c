/* Each env's table of handles: ids that name a slot and its occupant's
 * generation, and the handles themselves, shared with their wait threads. */
#include <stdlib.h>

#include "binding.h"

/* A handle for an open file, or NULL when out of memory (the file is then closed). */
handle_t *handle_new(sf_file_t *file) {
  handle_t *h = calloc(1, sizeof *h);
  sf_mutex_t *mu = h != NULL ? sf_mutex_new() : NULL;
  if (mu == NULL) {
    free(h);
    sf_close(file);
    return NULL;
  }
  h->mu = mu;
  h->file = file;
  h->refs = 1;
  return h;
}

/* Called with h->mu held; returns whether the caller must free h. */
int handle_unref_locked(handle_t *h) {
  return --h->refs == 0;
}

void handle_free(handle_t *h) {
  sf_mutex_free(h->mu);
  free(h);
}

/* A slot for `h`, or NO_SLOT when out of memory or slots. */
uint32_t slot_take(instance_t *inst, handle_t *h) {
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

double id_of(instance_t *inst, uint32_t slot) {
  return (double)inst->slots[slot].generation * SLOT_LIMIT + slot;
}

/* The slot an id names while its handle is open, else NO_SLOT (closed, or never one). */
uint32_t slot_of(instance_t *inst, double id) {
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
int handle_close_slot(instance_t *inst, uint32_t slot) {
  handle_t *h = inst->slots[slot].h;
  slot_free(inst, slot);
  sf_mutex_lock(h->mu);
  int r = handle_close_locked(h);
  int last = handle_unref_locked(h);
  sf_mutex_unlock(h->mu);
  if (last) handle_free(h);
  return r;
}

void env_cleanup(void *arg) {
  instance_t *inst = arg;
  for (uint32_t slot = 0; slot < inst->capacity; slot++) {
    if (inst->slots[slot].h != NULL) handle_close_slot(inst, slot);
  }
  free(inst->slots);
  free(inst);
}

/* The file of an open handle that no wait owns, or NULL with the code to return. */
sf_file_t *file_if_idle(handle_t *h, int *code) {
  if (h->file == NULL) *code = SF_CANCELLED;
  else if (h->waiting) *code = SF_WOULD_BLOCK;
  else return h->file;
  return NULL;
}

