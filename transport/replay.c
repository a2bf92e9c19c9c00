/*
 * The replay cache: a ring of recent nonces in arrival order plus an
 * open-addressing index over them (linear probing, backward-shift deletion,
 * so no tombstones pile up). Lookups hash the nonce with a random SipHash key
 * so that a sender cannot choose nonces that collide on purpose.
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
  entry *ring; /* capacity entries; live ones are head .. head+count-1 */
  size_t capacity, head, count;
  uint32_t *index;   /* ring positions, or EMPTY */
  size_t index_mask; /* index size - 1 (a power of two, at least 2*capacity) */
  uint64_t window_ms;
  /* Any timestamp <= floor_ms is refused: a nonce that old may have been
   * forgotten to keep the cache bounded. */
  uint64_t floor_ms;
  bool floor_set;
  uint8_t hash_key[crypto_shorthash_KEYBYTES];
};

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
  if (!(r = cs__calloc(1, sizeof(*r))) || !(r->ring = cs__calloc(capacity, sizeof(entry))) ||
      !(r->index = cs__malloc(isize * sizeof(uint32_t)))) {
    rc = CS_ENOMEM;
    goto done;
  }
  memset(r->index, 0xff, isize * sizeof(uint32_t));
  r->capacity = capacity;
  r->index_mask = isize - 1;
  r->window_ms = window_ms;
  randombytes_buf(r->hash_key, sizeof(r->hash_key));
  pthread_mutex_init(&r->mu, NULL);
  *out = r;
  r = NULL;
done:
  if (r) {
    cs__free(r->ring);
    cs__free(r->index);
    cs__free(r);
  }
  return rc;
}

void cs__replay_free(cs_replay_cache *r) {
  if (!r)
    return;
  pthread_mutex_destroy(&r->mu);
  cs__free(r->ring);
  cs__free(r->index);
  cs__free(r);
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
    if (memcmp(r->ring[pos].nonce, nonce, CS_NONCE_LEN) == 0) {
      *found = true;
      return i;
    }
    i = (i + 1) & r->index_mask;
  }
}

/* Drops the oldest ring entry and its index slot. */
static void pop_oldest(cs_replay_cache *r) {
  bool found;
  size_t hole = find(r, r->ring[r->head].nonce, &found);

  if (found) {
    /* Backward-shift: move later members of the probe run into the hole when
     * their home slot does not lie cyclically in (hole, j]. */
    size_t j = hole;
    r->index[hole] = EMPTY;
    for (;;) {
      j = (j + 1) & r->index_mask;
      if (r->index[j] == EMPTY)
        break;
      size_t home = slot_of(r, r->ring[r->index[j]].nonce);
      bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
      if (!stays) {
        r->index[hole] = r->index[j];
        r->index[j] = EMPTY;
        hole = j;
      }
    }
  }
  r->head = (r->head + 1) % r->capacity;
  r->count--;
}

int cs__replay_check(cs_replay_cache *r, const uint8_t nonce[CS_NONCE_LEN], uint64_t time_ms,
                     uint64_t now_ms) {
  bool found;
  size_t slot;
  int rc = 0;

  pthread_mutex_lock(&r->mu);
  /* Prune by time. Arrival order is nearly time order; an entry that is not
   * yet expired at the head only delays pruning of the ones behind it. */
  while (r->count && r->ring[r->head].time_ms + r->window_ms < now_ms)
    pop_oldest(r);
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
                   r->ring[r->index[slot]].time_ms);
    goto done;
  }
  if (r->count == r->capacity) {
    entry *old = &r->ring[r->head];
    if (!r->floor_set || old->time_ms > r->floor_ms)
      r->floor_ms = old->time_ms;
    r->floor_set = true;
    pop_oldest(r);
    slot = find(r, nonce, &found); /* the shift may have moved the free slot */
  }
  {
    size_t pos = (r->head + r->count) % r->capacity;
    memcpy(r->ring[pos].nonce, nonce, CS_NONCE_LEN);
    r->ring[pos].time_ms = time_ms;
    r->index[slot] = (uint32_t)pos;
    r->count++;
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
