/*
 * Compact dot sets (causal contexts): a version vector plus the dots seen out
 * of order. Canonical form, kept after every change:
 *  - vv sorted by replica, each max >= 1, one entry per replica;
 *  - extra sorted by (replica, counter), no duplicates, each counter above
 *    its replica's max + 1 (a dot max + 1 would have been folded in).
 * Canonical form makes equality a plain comparison of the arrays.
 */
#include "crdt/crdt.h"

void cs__dotset_dispose(cs_dotset *s) {
  cs__free(s->vv);
  cs__free(s->extra);
  memset(s, 0, sizeof *s);
}

void cs__dotset_clear(cs_dotset *s) {
  s->vv_len = 0;
  s->extra_len = 0;
}

int cs__dotset_copy(cs_dotset *dst, const cs_dotset *src) {
  int rc;

  if (dst == src)
    return 0;
  if ((rc = cs__array_grow((void **)&dst->vv, &dst->vv_cap, src->vv_len, sizeof *dst->vv)))
    return rc;
  if ((rc = cs__array_grow((void **)&dst->extra, &dst->extra_cap, src->extra_len,
                           sizeof *dst->extra)))
    return rc;
  if (src->vv_len)
    memcpy(dst->vv, src->vv, src->vv_len * sizeof *dst->vv);
  if (src->extra_len)
    memcpy(dst->extra, src->extra, src->extra_len * sizeof *dst->extra);
  dst->vv_len = src->vv_len;
  dst->extra_len = src->extra_len;
  return 0;
}

/* Index of the first vv entry with replica >= r. */
static size_t vv_lower(const cs_dotset *s, cs_replica r) {
  size_t lo = 0, hi = s->vv_len;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (s->vv[mid].replica < r)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Index of the first extra dot >= d. */
static size_t extra_lower(const cs_dotset *s, cs_dot d) {
  size_t lo = 0, hi = s->extra_len;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (cs__dot_cmp(&s->extra[mid], &d) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

uint64_t cs__dotset_max(const cs_dotset *s, cs_replica r) {
  size_t i = vv_lower(s, r);
  return (i < s->vv_len && s->vv[i].replica == r) ? s->vv[i].max : 0;
}

bool cs__dotset_contains_slow(const cs_dotset *s, cs_dot d) {
  size_t i;

  if (d.counter <= cs__dotset_max(s, d.replica))
    return true;
  if (s->extra_len == 0)
    return false;
  i = extra_lower(s, d);
  return i < s->extra_len && cs__dot_cmp(&s->extra[i], &d) == 0;
}

bool cs__dotset_any_in(const cs_dotset *s, cs_replica r, uint64_t lo, uint64_t hi) {
  size_t i;
  if (lo > hi)
    return false;
  if (lo <= cs__dotset_max(s, r))
    return true;
  i = extra_lower(s, (cs_dot){r, lo});
  return i < s->extra_len && s->extra[i].replica == r && s->extra[i].counter <= hi;
}

int cs__dotset_add(cs_dotset *s, cs_dot d) {
  size_t vi = vv_lower(s, d.replica), xi, xend;
  uint64_t max = (vi < s->vv_len && s->vv[vi].replica == d.replica) ? s->vv[vi].max : 0;
  int rc;

  if (d.counter <= max)
    return 0;
  xi = extra_lower(s, d);
  if (d.counter > max + 1) {
    if (xi < s->extra_len && cs__dot_cmp(&s->extra[xi], &d) == 0)
      return 0;
    if ((rc =
             cs__array_grow((void **)&s->extra, &s->extra_cap, s->extra_len + 1, sizeof *s->extra)))
      return rc;
    memmove(&s->extra[xi + 1], &s->extra[xi], (s->extra_len - xi) * sizeof *s->extra);
    s->extra[xi] = d;
    s->extra_len++;
    return 0;
  }
  /* d is max + 1: extend the vector and fold in the extras that now follow. */
  if (max == 0) {
    if ((rc = cs__array_grow((void **)&s->vv, &s->vv_cap, s->vv_len + 1, sizeof *s->vv)))
      return rc;
    memmove(&s->vv[vi + 1], &s->vv[vi], (s->vv_len - vi) * sizeof *s->vv);
    s->vv[vi].replica = d.replica;
    s->vv_len++;
  }
  max = d.counter;
  xend = xi;
  while (xend < s->extra_len && s->extra[xend].replica == d.replica &&
         s->extra[xend].counter == max + 1) {
    max++;
    xend++;
  }
  s->vv[vi].max = max;
  if (xend > xi) {
    memmove(&s->extra[xi], &s->extra[xend], (s->extra_len - xend) * sizeof *s->extra);
    s->extra_len -= xend - xi;
  }
  return 0;
}

/*
 * into := into ∪ from. Merges both vectors (by max) and both extra lists
 * (sorted merge) into fresh arrays, then normalises per replica in one pass:
 * extras at or below the max are dropped, an extra at max + 1 extends it.
 */
int cs__dotset_join(cs_dotset *into, const cs_dotset *from) {
  cs_vv_entry *vv = NULL;
  cs_dot *ex = NULL;
  size_t vv_cap = 0, ex_cap = 0, nv = 0, nx = 0;
  size_t i = 0, j = 0, a = 0, b = 0;
  int rc = 0;

  if (from->vv_len == 0 && from->extra_len == 0)
    return 0;
  /* Fast path, common for a batch context already known: nothing new. */
  if (cs__dotset_subset(from, into))
    return 0;
  /* A delta's context names a handful of dots: adding them one by one
   * extends the vector in place and allocates nothing. */
  {
    /* cost stays <= 17: a sum of untrusted maxima must not wrap. */
    uint64_t cost = from->extra_len > 16 ? 17 : from->extra_len;
    for (size_t k = 0; k < from->vv_len && cost <= 16; k++) {
      uint64_t have = cs__dotset_max(into, from->vv[k].replica);
      if (from->vv[k].max > have)
        cost = from->vv[k].max - have > 16 ? 17 : cost + (from->vv[k].max - have);
    }
    if (cost <= 16) {
      for (size_t k = 0; k < from->vv_len; k++) {
        cs_replica r = from->vv[k].replica;
        /* Counted up to the max, never past it: max may be 2^64 - 1. */
        for (uint64_t c = cs__dotset_max(into, r); c < from->vv[k].max;)
          if ((rc = cs__dotset_add(into, (cs_dot){r, ++c})))
            return rc;
      }
      for (size_t k = 0; k < from->extra_len; k++)
        if ((rc = cs__dotset_add(into, from->extra[k])))
          return rc;
      return 0;
    }
  }
  if ((rc = cs__array_grow((void **)&vv, &vv_cap,
                           into->vv_len + from->vv_len + into->extra_len + from->extra_len,
                           sizeof *vv)))
    goto done;
  if ((rc = cs__array_grow((void **)&ex, &ex_cap, into->extra_len + from->extra_len + 1,
                           sizeof *ex)))
    goto done;
  for (;;) {
    /* The next replica present in any of the four sorted inputs. */
    cs_replica r = UINT64_MAX;
    bool any = false;
    uint64_t max = 0;
    if (i < into->vv_len && (!any || into->vv[i].replica < r))
      r = into->vv[i].replica, any = true;
    if (j < from->vv_len && (!any || from->vv[j].replica < r))
      r = from->vv[j].replica, any = true;
    if (a < into->extra_len && (!any || into->extra[a].replica < r))
      r = into->extra[a].replica, any = true;
    if (b < from->extra_len && (!any || from->extra[b].replica < r))
      r = from->extra[b].replica, any = true;
    if (!any)
      break;
    if (i < into->vv_len && into->vv[i].replica == r)
      max = into->vv[i++].max;
    if (j < from->vv_len && from->vv[j].replica == r) {
      if (from->vv[j].max > max)
        max = from->vv[j].max;
      j++;
    }
    for (;;) {
      bool ha = a < into->extra_len && into->extra[a].replica == r;
      bool hb = b < from->extra_len && from->extra[b].replica == r;
      uint64_t c;
      if (!ha && !hb)
        break;
      if (ha && (!hb || into->extra[a].counter <= from->extra[b].counter))
        c = into->extra[a++].counter;
      else
        c = from->extra[b++].counter;
      if (c <= max)
        continue;
      if (c == max + 1) {
        max = c;
        continue;
      }
      if (nx > 0 && ex[nx - 1].replica == r && ex[nx - 1].counter == c)
        continue;
      ex[nx].replica = r;
      ex[nx].counter = c;
      nx++;
    }
    /* The merged extras arrive in ascending order, so one pass folds every
     * dot that became contiguous; those kept lie above max + 1. */
    if (max > 0) {
      vv[nv].replica = r;
      vv[nv].max = max;
      nv++;
    }
  }
  cs__free(into->vv);
  cs__free(into->extra);
  into->vv = vv;
  into->vv_len = nv;
  into->vv_cap = vv_cap;
  into->extra = ex;
  into->extra_len = nx;
  into->extra_cap = ex_cap;
  vv = NULL;
  ex = NULL;
done:
  cs__free(vv);
  cs__free(ex);
  return rc;
}

cs_dot cs__dotset_next(const cs_dotset *s, cs_replica r) {
  cs_dot d;
  uint64_t hi = cs__dotset_max(s, r);
  size_t i = extra_lower(s, (cs_dot){r, UINT64_MAX});

  /* extra_lower lands after r's extras (none has counter UINT64_MAX in
   * practice); the one before, if of r, is r's highest out-of-order dot. */
  if (i < s->extra_len && s->extra[i].replica == r)
    hi = s->extra[i].counter;
  else if (i > 0 && s->extra[i - 1].replica == r && s->extra[i - 1].counter > hi)
    hi = s->extra[i - 1].counter;
  d.replica = r;
  d.counter = hi + 1;
  return d;
}

bool cs__dotset_equal(const cs_dotset *a, const cs_dotset *b) {
  return a->vv_len == b->vv_len && a->extra_len == b->extra_len &&
         (a->vv_len == 0 || memcmp(a->vv, b->vv, a->vv_len * sizeof *a->vv) == 0) &&
         (a->extra_len == 0 || memcmp(a->extra, b->extra, a->extra_len * sizeof *a->extra) == 0);
}

/*
 * In canonical form, b never holds max_b + 1 as an extra, so a vector entry
 * of a above b's max already names a dot b lacks: comparing maxima suffices
 * for the vectors; a's extras are looked up one by one.
 */
bool cs__dotset_subset(const cs_dotset *a, const cs_dotset *b) {
  size_t j = 0;

  for (size_t i = 0; i < a->vv_len; i++) {
    while (j < b->vv_len && b->vv[j].replica < a->vv[i].replica)
      j++;
    if (j == b->vv_len || b->vv[j].replica != a->vv[i].replica || b->vv[j].max < a->vv[i].max)
      return false;
  }
  for (size_t i = 0; i < a->extra_len; i++)
    if (!cs__dotset_contains(b, a->extra[i]))
      return false;
  return true;
}

uint64_t cs__dotset_count(const cs_dotset *s) {
  uint64_t n = s->extra_len;
  for (size_t i = 0; i < s->vv_len; i++) {
    if (s->vv[i].max > UINT64_MAX - n)
      return UINT64_MAX;
    n += s->vv[i].max;
  }
  return n;
}

uint64_t cs__dotset_count_beyond(const cs_dotset *now, const cs_dotset *before) {
  uint64_t n = 0;
  for (size_t i = 0; i < now->vv_len; i++) {
    uint64_t had = cs__dotset_max(before, now->vv[i].replica);
    uint64_t d = now->vv[i].max > had ? now->vv[i].max - had : 0;
    if (d > UINT64_MAX - n)
      return UINT64_MAX;
    n += d;
  }
  /* Out-of-order dots of before that now holds in its vector were counted
   * by the vector's growth already. */
  if (now->extra_len > UINT64_MAX - n)
    return UINT64_MAX;
  n += now->extra_len;
  return n >= before->extra_len ? n - before->extra_len : 0;
}

/* Adds the dots of r in lo..hi that `skip` lacks to out, counting them in
 * *n; stops with CS_ETOOBIG past `limit`. */
static int add_range_minus(cs_dotset *out, size_t *n, size_t limit, cs_replica r, uint64_t lo,
                           uint64_t hi, const cs_dotset *skip) {
  int rc;
  if (lo > hi)
    return 0;
  for (uint64_t c = lo;; c++) {
    if (!cs__dotset_contains(skip, (cs_dot){r, c})) {
      if (++*n > limit)
        return cs__error(CS_ETOOBIG, "a dot set difference holds more than %zu dots", limit);
      if ((rc = cs__dotset_add(out, (cs_dot){r, c})) != 0)
        return rc;
    }
    if (c == hi)
      return 0;
  }
}

int cs__dotset_subtract(cs_dotset *out, const cs_dotset *a, const cs_dotset *b, size_t limit) {
  size_t n = 0;
  int rc = 0;

  cs__dotset_clear(out);
  for (size_t i = 0; i < a->vv_len && rc == 0; i++) {
    cs_replica r = a->vv[i].replica;
    uint64_t have = cs__dotset_max(b, r);
    if (a->vv[i].max > have)
      rc = add_range_minus(out, &n, limit, r, have + 1, a->vv[i].max, b);
  }
  for (size_t i = 0; i < a->extra_len && rc == 0; i++)
    rc = add_range_minus(out, &n, limit, a->extra[i].replica, a->extra[i].counter,
                         a->extra[i].counter, b);
  return rc;
}

void cs__dotset_truncate(cs_dotset *s, cs_replica r, uint64_t max) {
  size_t vi = vv_lower(s, r), lo, hi;

  if (vi < s->vv_len && s->vv[vi].replica == r && s->vv[vi].max > max) {
    if (max == 0) {
      memmove(&s->vv[vi], &s->vv[vi + 1], (s->vv_len - vi - 1) * sizeof *s->vv);
      s->vv_len--;
    } else
      s->vv[vi].max = max;
  }
  if (max == UINT64_MAX || s->extra_len == 0)
    return;
  lo = extra_lower(s, (cs_dot){r, max + 1});
  for (hi = lo; hi < s->extra_len && s->extra[hi].replica == r; hi++)
    ;
  if (hi > lo) {
    memmove(&s->extra[lo], &s->extra[hi], (s->extra_len - hi) * sizeof *s->extra);
    s->extra_len -= hi - lo;
  }
}

int cs__dotset_remove(cs_dotset *s, cs_dot d) {
  uint64_t max = cs__dotset_max(s, d.replica);
  size_t xi;
  int rc;

  if (d.counter > max) {
    xi = extra_lower(s, d);
    if (xi < s->extra_len && cs__dot_cmp(&s->extra[xi], &d) == 0) {
      memmove(&s->extra[xi], &s->extra[xi + 1], (s->extra_len - xi - 1) * sizeof *s->extra);
      s->extra_len--;
    }
    return 0;
  }
  /* Split the vector entry: 1..d-1 stays, d+1..max become extras (those
   * above max, already extras, stay). */
  xi = vv_lower(s, d.replica);
  if (d.counter == 1) {
    memmove(&s->vv[xi], &s->vv[xi + 1], (s->vv_len - xi - 1) * sizeof *s->vv);
    s->vv_len--;
  } else
    s->vv[xi].max = d.counter - 1;
  for (uint64_t c = d.counter + 1; c <= max && c != 0; c++)
    if ((rc = cs__dotset_add(s, (cs_dot){d.replica, c})) != 0)
      return rc;
  return 0;
}
