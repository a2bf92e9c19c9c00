/*
 * Shared names. A model's field names repeat in every document and action of
 * it: decoding 10,000 documents of nine fields would otherwise copy the same
 * nine strings 90,000 times, and each copy is an allocation to make and free
 * and a cold line to compare. Names up to NAME_MAX_LEN bytes are kept once
 * for the life of the process in a fixed arena; a name that does not fit (too
 * long, arena or table full) gets a private copy, so the table's size bounds
 * the memory, whatever peers send.
 *
 * Readers probe without the lock: a slot is published (release) only after
 * its name's bytes are written, and neither ever changes again. Names come
 * from peers too (decoded before the message is judged, and kept if it is
 * then refused): the hash is not keyed, so a probe gives up after
 * NAME_MAX_PROBE slots, and a name that would need more gets a private copy.
 * Names chosen to collide cost a lookup no more than that.
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "base/base.h"

#define NAME_ARENA (256u << 10)
#define NAME_SLOTS 8192u /* a power of two, filled to 3/4 at most */
#define NAME_MAX_LEN 128u
#define NAME_MAX_PROBE 32u

/* Each name: its length byte, its bytes, a NUL. */
static char arena[NAME_ARENA];
/* Offset + 1 of a name's length byte; 0 marks an empty slot. */
static uint32_t slots[NAME_SLOTS];
static size_t arena_used, slots_used;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static uint32_t name_hash(const char *s, size_t len) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < len; i++)
    h = (h ^ (uint8_t)s[i]) * 16777619u;
  return h;
}

/* The shared copy of s, or NULL; *at is the free slot the probe ended on,
 * or NAME_SLOTS when it gave up. */
static char *lookup(const char *s, size_t len, uint32_t h, size_t *at) {
  size_t i = h & (NAME_SLOTS - 1);
  uint32_t off;
  for (unsigned n = 0; n < NAME_MAX_PROBE; n++) {
    if ((off = __atomic_load_n(&slots[i], __ATOMIC_ACQUIRE)) == 0) {
      *at = i;
      return NULL;
    }
    char *p = &arena[off - 1];
    if ((uint8_t)p[0] == len && memcmp(p + 1, s, len) == 0)
      return p + 1;
    i = (i + 1) & (NAME_SLOTS - 1);
  }
  *at = NAME_SLOTS;
  return NULL;
}

static char *share(const char *s, size_t len) {
  uint32_t h = name_hash(s, len);
  size_t at;
  char *p = lookup(s, len, h, &at);
  if (p || len > NAME_MAX_LEN)
    return p;
  pthread_mutex_lock(&lock);
  /* Another thread may have added it since; the probe also finds the slot. */
  if (!(p = lookup(s, len, h, &at)) && at < NAME_SLOTS && slots_used < NAME_SLOTS / 4 * 3 &&
      arena_used + len + 2 <= NAME_ARENA) {
    p = &arena[arena_used];
    p[0] = (char)len;
    memcpy(p + 1, s, len);
    p[len + 1] = '\0';
    __atomic_store_n(&slots[at], (uint32_t)arena_used + 1, __ATOMIC_RELEASE);
    arena_used += len + 2;
    slots_used++;
    p++;
  }
  pthread_mutex_unlock(&lock);
  return p;
}

bool cs__name_shared(const char *name) {
  uintptr_t p = (uintptr_t)name, lo = (uintptr_t)arena;
  return p >= lo && p < lo + NAME_ARENA;
}

char *cs__name_dupn(const char *s, size_t len) {
  char *p = memchr(s, '\0', len) ? NULL : share(s, len);
  return p ? p : cs__strndup(s, len);
}

char *cs__name_dup(const char *s) {
  return cs__name_shared(s) ? (char *)s : cs__name_dupn(s, strlen(s));
}

void cs__name_free(char *name) {
  if (!cs__name_shared(name))
    cs__free(name);
}
