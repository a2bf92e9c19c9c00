/*
 * The replay cache: recent nonces in a min-heap by timestamp plus an
 * open-addressing index over them (linear probing, backward-shift deletion,
 * so no tombstones pile up). Lookups hash the nonce with a random SipHash key
 * so that a sender cannot choose nonces that collide on purpose. The heap,
 * not arrival order, decides what goes first (expired, or evicted when full):
 * a nonce stamped ahead by a client whose clock runs fast is kept longest,
 * and cannot hold the others' expiry up or become the refusal floor.
 */
#include <inttypes.h>
#include <pthread.h>

#include <sodium.h>

#include "transport/transport.h"

#define EMPTY UINT32_MAX

typedef struct entry {
  uint8_t nonce[CS_NONCE_LEN];
  uint64_t time_ms;
} entry;

struct cs_replay_cache {
  pthread_mutex_t mu;
  entry *slots;      /* capacity entries, ids 0 .. capacity-1 */
  uint32_t *heap;    /* ids of the live entries, a min-heap on time_ms */
  uint32_t *free;    /* ids not in use (a stack) */
  size_t capacity, count, nfree;
  uint32_t *index;   /* entry ids, or EMPTY */
  size_t index_mask; /* index size - 1 (a power of two, at least 2*capacity) */
  uint64_t window_ms;
  /* Any timestamp <= floor_ms is refused: a nonce that old may have been
   * forgotten to keep the cache bounded. */
  uint64_t floor_ms;
  bool floor_set;
  uint8_t hash_key[crypto_shorthash_KEYBYTES];
};

static void free_parts(cs_replay_cache *r) {
  cs__free(r->slots);
  cs__free(r->heap);
  cs__free(r->free);
  cs__free(r->index);
  cs__free(r);
}

int cs__replay_new(cs_replay_cache **out, size_t capacity, uint64_t window_ms) {
  cs_replay_cache *r = NULL;
  size_t isize = 2;
  int rc = 0;

  *out = NULL;
  if (capacity == 0 || capacity > (size_t)1 << 30) {
    rc = cs__error(CS_EINVAL, "replay cache capacity %zu: expected 1 .. 2^30", capacity);
    goto done;
  }
  if ((rc = cs__crypto_init()) != 0)
    goto done;
  while (isize < 2 * capacity)
    isize *= 2;
  if (!(r = cs__calloc(1, sizeof(*r))) || !(r->slots = cs__calloc(capacity, sizeof(entry))) ||
      !(r->heap = cs__malloc(capacity * sizeof(uint32_t))) ||
      !(r->free = cs__malloc(capacity * sizeof(uint32_t))) ||
      !(r->index = cs__malloc(isize * sizeof(uint32_t)))) {
    rc = CS_ENOMEM;
    goto done;
  }
  memset(r->index, 0xff, isize * sizeof(uint32_t));
  for (size_t i = 0; i < capacity; i++)
    r->free[i] = (uint32_t)(capacity - 1 - i);
  r->nfree = capacity;
  r->capacity = capacity;
  r->index_mask = isize - 1;
  r->window_ms = window_ms;
  randombytes_buf(r->hash_key, sizeof(r->hash_key));
  pthread_mutex_init(&r->mu, NULL);
  *out = r;
  r = NULL;
done:
  if (r)
    free_parts(r);
  return rc;
}

void cs__replay_free(cs_replay_cache *r) {
  if (!r)
    return;
  pthread_mutex_destroy(&r->mu);
  free_parts(r);
}

static size_t slot_of(const cs_replay_cache *r, const uint8_t nonce[CS_NONCE_LEN]) {
  uint8_t h[crypto_shorthash_BYTES];
  crypto_shorthash(h, nonce, CS_NONCE_LEN, r->hash_key);
  return (size_t)cs__get_be64(h) & r->index_mask;
}

/* The index slot holding `nonce`, or the empty slot where it would go. */
static size_t find(const cs_replay_cache *r, const uint8_t nonce[CS_NONCE_LEN], bool *found) {
  size_t i = slot_of(r, nonce);
  for (;;) {
    uint32_t pos = r->index[i];
    if (pos == EMPTY) {
      *found = false;
      return i;
    }
    if (memcmp(r->slots[pos].nonce, nonce, CS_NONCE_LEN) == 0) {
      *found = true;
      return i;
    }
    i = (i + 1) & r->index_mask;
  }
}

static bool earlier(const cs_replay_cache *r, size_t a, size_t b) {
  return r->slots[r->heap[a]].time_ms < r->slots[r->heap[b]].time_ms;
}

static void swap_heap(cs_replay_cache *r, size_t a, size_t b) {
  uint32_t t = r->heap[a];
  r->heap[a] = r->heap[b];
  r->heap[b] = t;
}

static void sift_up(cs_replay_cache *r, size_t i) {
  while (i > 0 && earlier(r, i, (i - 1) / 2)) {
    swap_heap(r, i, (i - 1) / 2);
    i = (i - 1) / 2;
  }
}

static void sift_down(cs_replay_cache *r, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, m = i;
    if (l < r->count && earlier(r, l, m))
      m = l;
    if (l + 1 < r->count && earlier(r, l + 1, m))
      m = l + 1;
    if (m == i)
      return;
    swap_heap(r, i, m);
    i = m;
  }
}

/* The entry with the earliest timestamp. */
static const entry *earliest(const cs_replay_cache *r) {
  return &r->slots[r->heap[0]];
}

/* Drops the entry with the earliest timestamp and its index slot. */
static void pop_earliest(cs_replay_cache *r) {
  bool found;
  uint32_t id = r->heap[0];
  size_t hole = find(r, r->slots[id].nonce, &found);

  if (found) {
    /* Backward-shift: move later members of the probe run into the hole when
     * their home slot does not lie cyclically in (hole, j]. */
    size_t j = hole;
    r->index[hole] = EMPTY;
    for (;;) {
      j = (j + 1) & r->index_mask;
      if (r->index[j] == EMPTY)
        break;
      size_t home = slot_of(r, r->slots[r->index[j]].nonce);
      bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
      if (!stays) {
        r->index[hole] = r->index[j];
        r->index[j] = EMPTY;
        hole = j;
      }
    }
  }
  r->heap[0] = r->heap[--r->count];
  sift_down(r, 0);
  r->free[r->nfree++] = id;
}

int cs__replay_check(cs_replay_cache *r, const uint8_t nonce[CS_NONCE_LEN], uint64_t time_ms,
                     uint64_t now_ms) {
  bool found;
  size_t slot;
  int rc = 0;

  pthread_mutex_lock(&r->mu);
  /* Prune by time (saturating: a time near 2^64 never expires early). */
  while (r->count && earliest(r)->time_ms < now_ms &&
         now_ms - earliest(r)->time_ms > r->window_ms)
    pop_earliest(r);
  if (r->floor_set && time_ms <= r->floor_ms) {
    rc = cs__error(CS_EAUTH,
                   "replay: timestamp %" PRIu64 " is not newer than %" PRIu64
                   ", the oldest the replay cache still covers (cache full)",
                   time_ms, r->floor_ms);
    goto done;
  }
  slot = find(r, nonce, &found);
  if (found) {
    char hex[2 * CS_NONCE_LEN + 1];
    cs__hex_encode(hex, nonce, CS_NONCE_LEN);
    rc = cs__error(CS_EAUTH, "replay: nonce %s was already used at %" PRIu64, hex,
                   r->slots[r->index[slot]].time_ms);
    goto done;
  }
  if (r->count == r->capacity) {
    const entry *old = earliest(r);
    if (!r->floor_set || old->time_ms > r->floor_ms)
      r->floor_ms = old->time_ms;
    r->floor_set = true;
    pop_earliest(r);
    slot = find(r, nonce, &found); /* the shift may have moved the free slot */
  }
  {
    uint32_t id = r->free[--r->nfree];
    memcpy(r->slots[id].nonce, nonce, CS_NONCE_LEN);
    r->slots[id].time_ms = time_ms;
    r->index[slot] = id;
    r->heap[r->count++] = id;
    sift_up(r, r->count - 1);
  }
done:
  pthread_mutex_unlock(&r->mu);
  return rc;
}

size_t cs__replay_count(cs_replay_cache *r) {
  size_t n;
  pthread_mutex_lock(&r->mu);
  n = r->count;
  pthread_mutex_unlock(&r->mu);
  return n;
}
