/*
 * A dot index for large sets. A delta that removes an element carries only
 * the dots it removes, not the element: without an index, finding who holds
 * them is a walk over the whole set, and a set of n elements that receives
 * k removes costs O(n k). The index maps each dot to the value of the
 * element that held it when the dot was recorded; the element is then found
 * by binary search, and the answer checked (the element must still hold the
 * dot). Entries of dots that have since gone are left in place: a dot never
 * comes back, so a stale entry can only answer "nobody". The index is
 * rebuilt when stale entries outnumber live dots.
 */
#include "crdt/crdt_int.h"

size_t cs__set_index_min = 256;

typedef struct idx_slot {
  cs_dot dot; /* counter 0: empty */
  cs_val val; /* owned copy */
} idx_slot;

struct cs_set_index {
  idx_slot *slots;
  size_t cap, len; /* cap a power of two, len < cap / 2 */
};

static size_t dot_hash(cs_dot d) {
  uint64_t k = d.replica * 0x9e3779b97f4a7c15ull ^ d.counter;
  k = (k ^ (k >> 30)) * 0xbf58476d1ce4e5b9ull;
  k = (k ^ (k >> 27)) * 0x94d049bb133111ebull;
  return (size_t)(k ^ (k >> 31));
}

static idx_slot *slot_of(const struct cs_set_index *x, cs_dot d) {
  size_t m = x->cap - 1;
  for (size_t i = dot_hash(d) & m;; i = (i + 1) & m) {
    idx_slot *sl = &x->slots[i];
    if (sl->dot.counter == 0 || (sl->dot.replica == d.replica && sl->dot.counter == d.counter))
      return sl;
  }
}

static void index_free(struct cs_set_index *x) {
  if (!x)
    return;
  for (size_t i = 0; i < x->cap; i++)
    if (x->slots[i].dot.counter)
      cs__val_dispose(&x->slots[i].val);
  cs__free(x->slots);
  cs__free(x);
}

void cs__set_index_free(cs_set *s) {
  index_free(s->index);
  s->index = NULL;
}

static int grow(struct cs_set_index *x, size_t want) {
  size_t cap = 64;
  idx_slot *old = x->slots;
  size_t ocap = x->cap;
  while (cap < want * 2)
    cap *= 2;
  if (cap <= x->cap)
    return 0;
  if (!(x->slots = cs__calloc(cap, sizeof *x->slots))) {
    x->slots = old;
    return CS_ENOMEM;
  }
  x->cap = cap;
  for (size_t i = 0; i < ocap; i++)
    if (old[i].dot.counter)
      *slot_of(x, old[i].dot) = old[i];
  cs__free(old);
  return 0;
}

/* Records (d, val); a dot already present keeps its entry. */
static int put(struct cs_set_index *x, cs_dot d, const cs_val *val) {
  idx_slot *sl;
  int rc;
  if ((x->len + 1) * 2 > x->cap && (rc = grow(x, x->len + 1)) != 0)
    return rc;
  sl = slot_of(x, d);
  if (sl->dot.counter)
    return 0;
  if ((rc = cs__val_copy(&sl->val, val)) != 0)
    return rc;
  sl->dot = d;
  x->len++;
  return 0;
}

int cs__set_index_build(cs_set *s) {
  struct cs_set_index *x = cs__calloc(1, sizeof *x);
  size_t ndots = 0;
  int rc;

  cs__set_index_free(s);
  if (!x)
    return CS_ENOMEM;
  for (size_t i = 0; i < s->len; i++)
    ndots += s->elems[i].ndots;
  if ((rc = grow(x, ndots + 1)) != 0)
    goto fail;
  for (size_t i = 0; i < s->len; i++)
    for (size_t k = 0; k < s->elems[i].ndots; k++)
      if ((rc = put(x, s->elems[i].dots[k], &s->elems[i].val)) != 0)
        goto fail;
  s->index = x;
  return 0;
fail:
  index_free(x);
  return rc;
}

void cs__set_index_add(cs_set *s, cs_dot d, const cs_val *val) {
  if (!s->index)
    return;
  /* Mostly stale: start again next time one is needed. */
  if (s->index->len > 64 && s->index->len / 4 > s->len) {
    cs__set_index_free(s);
    return;
  }
  if (put(s->index, d, val) != 0)
    cs__set_index_free(s);
}

size_t cs__set_index_find(const cs_set *s, cs_dot d) {
  const idx_slot *sl;
  size_t lo = 0, hi = s->len;

  if (!s->index)
    return s->len;
  sl = slot_of(s->index, d);
  if (sl->dot.counter == 0)
    return s->len;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (cs__val_cmp(&s->elems[mid].val, &sl->val) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == s->len || cs__val_cmp(&s->elems[lo].val, &sl->val) != 0)
    return s->len;
  for (size_t k = 0; k < s->elems[lo].ndots; k++)
    if (s->elems[lo].dots[k].replica == d.replica && s->elems[lo].dots[k].counter == d.counter)
      return lo;
  return s->len;
}
