/*
 * THE join: dot-store join of registers, set elements and existence entries,
 * max-join of counters, field by field.
 *
 * Dot-store rule, for stores S, T with contexts cS, cT:
 *   keep e  if  dot(e) ∈ S ∩ T,  or  dot(e) ∈ S \ cT,  or  dot(e) ∈ T \ cS.
 * Equal dots carry equal payloads (a dot names one entry forever), so an entry
 * present on both sides keeps the local copy.
 *
 * The arrays are joined in place, because the join is the engine's hot path:
 *  1. count the n entries `from` brings (read-only), grow the array to
 *     old + 2n and copy them to [old + n, old + 2n) (failure here leaves
 *     `into` untouched);
 *  2. drop the local entries the join removes and compact the rest to the
 *     front;
 *  3. put the staged entries in place: dot lists merge the two sorted runs
 *     backwards into [0, kept + n); registers and sets, whose arrays may be
 *     long while a delta brings one or two entries, find each staged entry's
 *     place by binary search and move the run after it once. The staged run
 *     lies past [0, kept + n), so it is never overwritten before it is read.
 *
 * Registers and sets look for what a small delta removes instead of walking
 * every entry (see `removal` below and crdt/setindex.c).
 */
#include "crdt/crdt_int.h"

/* ---- plain dot lists (set elements) ---- */

/* into := join of the dot lists, as dot stores without payload. */
static int dots_join(cs_dot **dots, size_t *n, size_t *cap, const cs_dot *f, size_t fn,
                     const cs_dotset *ictx, const cs_dotset *fctx, size_t *dropped) {
  size_t i, j, nnew = 0, old = *n, keep = 0, w;
  cs_dot *d;
  int rc;

  for (i = 0, j = 0; j < fn; j++) {
    while (i < old && cs__dot_cmp(&(*dots)[i], &f[j]) < 0)
      i++;
    if (i < old && cs__dot_cmp(&(*dots)[i], &f[j]) == 0)
      continue;
    if (!cs__dotset_contains(ictx, f[j]))
      nnew++;
  }
  if (nnew && (rc = cs__array_grow((void **)dots, cap, old + 2 * nnew, sizeof **dots)))
    return rc;
  d = *dots;
  /* stage the new dots in the tail, past the merged result's end */
  for (i = 0, j = 0, w = old + nnew; j < fn; j++) {
    while (i < old && cs__dot_cmp(&d[i], &f[j]) < 0)
      i++;
    if (i < old && cs__dot_cmp(&d[i], &f[j]) == 0)
      continue;
    if (!cs__dotset_contains(ictx, f[j]))
      d[w++] = f[j];
  }
  /* compact local survivors */
  for (i = 0, j = 0; i < old; i++) {
    bool both;
    while (j < fn && cs__dot_cmp(&f[j], &d[i]) < 0)
      j++;
    both = j < fn && cs__dot_cmp(&f[j], &d[i]) == 0;
    if (both || !cs__dotset_contains(fctx, d[i]))
      d[keep++] = d[i];
    else
      (*dropped)++;
  }
  /* merge backwards */
  {
    size_t a = keep, b = nnew;
    w = keep + nnew;
    while (b > 0) {
      if (a > 0 && cs__dot_cmp(&d[a - 1], &d[old + nnew + b - 1]) > 0)
        d[--w] = d[--a];
      else
        d[--w] = d[old + nnew + --b];
    }
  }
  *n = keep + nnew;
  return 0;
}

/* ---- what a join may remove ---- */

/* Contexts of up to this many dots are listed dot by dot. */
#define REMOVAL_LIST_MAX 64

/*
 * The local entries a join may remove: budget counts them (UINT64_MAX when
 * unknown); when `listed`, dots[] are the candidates themselves: the dots of
 * from's context that the local context has seen and from does not hold.
 * Only an entry with one of those dots can go (a dot names one entry), so a
 * join stops looking once `budget` entries are gone, and a large set finds
 * the candidates through its index instead of walking every element.
 */
typedef struct removal {
  uint64_t budget;
  bool listed;
  size_t n;
  cs_dot dots[REMOVAL_LIST_MAX];
} removal;

/* ---- registers ---- */

/* The value type of a register entry the join has just removed. */
#define REG_GONE 0xff

/* Marks entry i removed (until compaction) and counts it. */
static void reg_drop(cs_reg_entry *e, size_t i, size_t *dropped, size_t *first_gone) {
  cs__val_dispose(&e[i].val);
  e[i].val.type = REG_GONE;
  (*dropped)++;
  if (i < *first_gone)
    *first_gone = i;
}

/* The first entry of e[lo, hi) whose dot is >= d. */
static size_t entry_lower(const cs_reg_entry *e, size_t lo, size_t hi, cs_dot d) {
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (cs__dot_cmp(&e[mid].dot, &d) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/*
 * Registers join as dot stores. Entries are sorted by dot, so from's few
 * entries and the listed removal candidates are found by binary search: a
 * register with many siblings (a value written by many replicas at once)
 * takes each new write in O(log n) plus one block move. Unlisted contexts
 * (whole states) walk every local entry.
 */
static int reg_join(cs_reg *into, const cs_dotset *ictx, const cs_reg *from, const cs_dotset *fctx,
                    size_t *dropped, const removal *rm) {
  size_t j, nnew = 0, old = into->len, keep, staged = 0, lo = 0, first_gone = SIZE_MAX, need;
  size_t fn = from ? from->len : 0;
  cs_reg_entry *e = into->entries, *t = NULL, few[4];
  int rc = 0;

  /* count from's entries that are new here (not ours, not seen) */
  for (j = 0; j < fn; j++) {
    size_t i = entry_lower(e, lo, old, from->entries[j].dot);
    lo = i;
    if (i < old && cs__dot_cmp(&e[i].dot, &from->entries[j].dot) == 0)
      continue;
    if (!cs__dotset_contains(ictx, from->entries[j].dot))
      nnew++;
  }
  /* New entries are staged beside the array (on the stack for the usual one
   * or two), so that the register keeps no room it will not use. */
  if (nnew <= sizeof few / sizeof few[0])
    t = few;
  else if ((t = cs__calloc(nnew, sizeof *t)) == NULL)
    return CS_ENOMEM;
  /* Room for the new entries, less the ones a listed removal will drop
   * (a write usually replaces one entry: no growth). Listed dots are unique
   * and never from's, so each match is one distinct entry dropped. */
  need = old + nnew;
  if (nnew && *dropped < rm->budget && rm->listed) {
    size_t ndrop = 0;
    for (size_t k = 0; k < rm->n; k++) {
      size_t i = entry_lower(e, 0, old, rm->dots[k]);
      ndrop += i < old && cs__dot_cmp(&e[i].dot, &rm->dots[k]) == 0;
    }
    if (ndrop > rm->budget - *dropped)
      ndrop = (size_t)(rm->budget - *dropped);
    need -= ndrop;
  }
  if (nnew && (rc = cs__array_grow((void **)&into->entries, &into->cap, need,
                                   sizeof *into->entries)))
    goto fail;
  e = into->entries;
  for (j = 0, lo = 0; j < fn && staged < nnew; j++) {
    const cs_reg_entry *s = &from->entries[j];
    size_t i = entry_lower(e, lo, old, s->dot);
    lo = i;
    if ((i < old && cs__dot_cmp(&e[i].dot, &s->dot) == 0) || cs__dotset_contains(ictx, s->dot))
      continue;
    t[staged].dot = s->dot;
    t[staged].hlc = s->hlc;
    if ((rc = cs__val_copy(&t[staged].val, &s->val)))
      goto fail;
    staged++;
  }
  /* Local entries whose dot fctx has seen and from lacks go; an entry from
   * also holds stays. A gone entry keeps its dot (the array stays sorted for
   * the searches that follow) and gets the value type GONE until
   * compaction. */
  if (*dropped < rm->budget && rm->listed) {
    for (size_t k = 0; k < rm->n && *dropped < rm->budget; k++) {
      size_t i = entry_lower(e, 0, old, rm->dots[k]);
      if (i == old || cs__dot_cmp(&e[i].dot, &rm->dots[k]) != 0)
        continue; /* listed dots are never from's: no pairing to check */
      if (e[i].val.type != REG_GONE)
        reg_drop(e, i, dropped, &first_gone);
    }
  } else if (*dropped < rm->budget) {
    for (size_t i = 0, jm = 0; i < old; i++) {
      bool both;
      while (jm < fn && cs__dot_cmp(&from->entries[jm].dot, &e[i].dot) < 0)
        jm++;
      both = jm < fn && cs__dot_cmp(&from->entries[jm].dot, &e[i].dot) == 0;
      if (!both && cs__dotset_contains(fctx, e[i].dot))
        reg_drop(e, i, dropped, &first_gone);
    }
  }
  keep = old;
  if (first_gone != SIZE_MAX) {
    keep = first_gone;
    for (size_t i = first_gone; i < old; i++)
      if (e[i].val.type != REG_GONE)
        e[keep++] = e[i];
  }
  /* new entries in from the back: binary search, one block move each */
  for (size_t a = keep, b = staged; b > 0; b--) {
    size_t p = entry_lower(e, 0, a, t[b - 1].dot);
    memmove(&e[p + b], &e[p], (a - p) * sizeof *e);
    e[p + b - 1] = t[b - 1];
    a = p;
  }
  into->len = keep + staged;
  if (t != few)
    cs__free(t);
  return 0;
fail:
  while (staged > 0)
    cs__val_dispose(&t[--staged].val);
  if (t != few)
    cs__free(t);
  return rc;
}

/* ---- sets ---- */

static void elem_dispose(cs_set_elem *x) {
  cs__val_dispose(&x->val);
  cs__free(x->dots);
  memset(x, 0, sizeof *x);
}

/* A new element made of the dots of s that ictx has not seen; ok=false when
 * none is left (nothing allocated). */
static int elem_import(cs_set_elem *out, bool *ok, const cs_set_elem *s, const cs_dotset *ictx) {
  size_t n = 0;
  int rc;

  memset(out, 0, sizeof *out);
  *ok = false;
  for (size_t k = 0; k < s->ndots; k++)
    if (!cs__dotset_contains(ictx, s->dots[k]))
      n++;
  if (n == 0)
    return 0;
  if ((rc = cs__array_grow((void **)&out->dots, &out->cap, n, sizeof *out->dots)))
    return rc;
  for (size_t k = 0; k < s->ndots; k++)
    if (!cs__dotset_contains(ictx, s->dots[k]))
      out->dots[out->ndots++] = s->dots[k];
  if ((rc = cs__val_copy(&out->val, &s->val))) {
    cs__free(out->dots);
    memset(out, 0, sizeof *out);
    return rc;
  }
  *ok = true;
  return 0;
}

/* The first element of e[lo, hi) whose value is >= v. */
static size_t elem_lower(const cs_set_elem *e, size_t lo, size_t hi, const cs_val *v) {
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (cs__val_cmp(&e[mid].val, v) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static bool sorted_has(const size_t *a, size_t n, size_t v) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (a[mid] < v)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < n && a[lo] == v;
}

/* Drops the elements of e[first, old) left without dots; the new length. */
static size_t compact_elems(cs_set_elem *e, size_t first, size_t old) {
  size_t keep = first;
  if (first == SIZE_MAX)
    return old;
  for (size_t i = first; i < old; i++) {
    if (e[i].ndots == 0) {
      elem_dispose(&e[i]);
      continue;
    }
    if (keep != i)
      e[keep] = e[i];
    keep++;
  }
  return keep;
}

/*
 * Sets join per element. from's elements (a delta names few) are found by
 * binary search; the local-only elements lose the dots fctx removes, looked
 * for only while the removal budget is not spent: through the set's dot
 * index when the set is large and the candidates are listed, else by a walk
 * that stops once the budget is spent. Whole states (unknown budget) walk
 * every element, as they must.
 */
static int set_join(cs_set *into, const cs_dotset *ictx, const cs_set *from, const cs_dotset *fctx,
                    size_t *dropped, const removal *rm) {
  size_t j, nnew = 0, npaired = 0, old = into->len, keep = 0, staged = 0, lo = 0;
  size_t fn = from ? from->len : 0;
  size_t paired_small[8], *paired = paired_small; /* local elements from pairs, ascending */
  bool new_small[8], *is_new = new_small;
  cs_set_elem *e = into->elems, *t = NULL;
  size_t first_empty = SIZE_MAX; /* the lowest element left without dots */
  int rc = 0;

  if (fn > 8 && (!(paired = cs__malloc(fn * sizeof *paired)) ||
                 !(is_new = cs__malloc(fn * sizeof *is_new)))) {
    rc = CS_ENOMEM;
    goto done;
  }
  /* Pair from's elements with ours (both sorted); count the others, an
   * upper bound: some may bring no unseen dot. */
  for (j = 0; j < fn; j++) {
    size_t i = elem_lower(e, lo, old, &from->elems[j].val);
    is_new[j] = !(i < old && cs__val_cmp(&e[i].val, &from->elems[j].val) == 0);
    if (is_new[j]) {
      nnew++;
      lo = i;
    } else {
      paired[npaired++] = i;
      lo = i + 1;
    }
  }
  if (nnew &&
      (rc = cs__array_grow((void **)&into->elems, &into->cap, old + 2 * nnew, sizeof *into->elems)))
    goto done;
  e = into->elems;
  t = e + old + nnew;
  for (j = 0; j < fn; j++) {
    bool ok;
    if (!is_new[j])
      continue;
    if ((rc = elem_import(&t[staged], &ok, &from->elems[j], ictx)))
      goto fail;
    if (ok)
      staged++;
  }
  /* Join the paired elements, then take fctx's dots out of the local-only
   * ones. A failure here leaves a valid, partially joined set. */
  for (j = 0, npaired = 0; j < fn; j++) {
    size_t i;
    if (is_new[j])
      continue;
    i = paired[npaired++];
    if ((rc = dots_join(&e[i].dots, &e[i].ndots, &e[i].cap, from->elems[j].dots,
                        from->elems[j].ndots, ictx, fctx, dropped)))
      goto fail;
    if (e[i].ndots == 0 && i < first_empty)
      first_empty = i;
  }
  /* An index costs a pass and a copy of every value: the first searches of
   * a freshly loaded set walk it, and a failed build is only a walk too. */
  if (*dropped < rm->budget && rm->listed && old >= cs__set_index_min && !into->index &&
      into->walks++ >= 2)
    (void)cs__set_index_build(into);
  if (*dropped < rm->budget && rm->listed && into->index) {
    for (size_t k = 0; k < rm->n && *dropped < rm->budget; k++) {
      size_t i = cs__set_index_find(into, rm->dots[k]);
      if (i == old || sorted_has(paired, npaired, i))
        continue; /* nobody holds it here, or joined above */
      if ((rc = dots_join(&e[i].dots, &e[i].ndots, &e[i].cap, NULL, 0, ictx, fctx, dropped)))
        goto fail;
      if (e[i].ndots == 0 && i < first_empty)
        first_empty = i;
    }
  } else if (*dropped < rm->budget) {
    for (size_t i = 0; i < old && *dropped < rm->budget; i++) {
      if (sorted_has(paired, npaired, i))
        continue;
      if ((rc = dots_join(&e[i].dots, &e[i].ndots, &e[i].cap, NULL, 0, ictx, fctx, dropped)))
        goto fail;
      if (e[i].ndots == 0 && i < first_empty)
        first_empty = i;
    }
  }
  /* The index learns every dot from brings (those it did not add are
   * answered "nobody" by the holder check). */
  for (j = 0; into->index && j < fn; j++)
    for (size_t k = 0; k < from->elems[j].ndots; k++)
      cs__set_index_add(into, from->elems[j].dots[k], &from->elems[j].val);
  keep = compact_elems(e, first_empty, old);
  /* Insert the staged elements from the back: each one's place by binary
   * search, the run after it moved in one block (it never reaches the
   * staging area, which lies past keep + staged). */
  for (size_t a = keep, b = staged; b > 0; b--) {
    size_t p = elem_lower(e, 0, a, &t[b - 1].val);
    memmove(&e[p + b], &e[p], (a - p) * sizeof *e);
    e[p + b - 1] = t[b - 1];
    a = p;
  }
  into->len = keep + staged;
  goto done;
fail:
  /* What was joined stays (minus elements left empty); the index may lack
   * dots joined before the failure, so it goes. */
  while (staged > 0)
    elem_dispose(&t[--staged]);
  into->len = compact_elems(e, first_empty, old);
  cs__set_index_free(into);
done:
  if (paired != paired_small)
    cs__free(paired);
  if (is_new != new_small)
    cs__free(is_new);
  return rc;
}

/* ---- counters: per replica, max of each total ---- */

static int ctr_join(cs_ctr *into, const cs_ctr *from) {
  size_t i, j, nnew = 0, old = into->len, fn = from ? from->len : 0;
  cs_ctr_entry *e;
  int rc;

  for (i = 0, j = 0; j < fn; j++) {
    while (i < old && into->entries[i].replica < from->entries[j].replica)
      i++;
    if (i < old && into->entries[i].replica == from->entries[j].replica) {
      cs_ctr_entry *x = &into->entries[i];
      if (from->entries[j].pos > x->pos)
        x->pos = from->entries[j].pos;
      if (from->entries[j].neg > x->neg)
        x->neg = from->entries[j].neg;
    } else {
      nnew++;
    }
  }
  if (nnew == 0)
    return 0;
  if ((rc = cs__array_grow((void **)&into->entries, &into->cap, old + nnew, sizeof *into->entries)))
    return rc;
  e = into->entries;
  {
    size_t a = old, b = fn, w = old + nnew;
    while (b > 0) {
      const cs_ctr_entry *s = &from->entries[b - 1];
      if (a > 0 && e[a - 1].replica > s->replica)
        e[--w] = e[--a];
      else if (a > 0 && e[a - 1].replica == s->replica)
        b--; /* already maxed above; the local entry moves when reached */
      else {
        e[--w] = *s;
        b--;
      }
    }
  }
  into->len = old + nnew;
  return 0;
}

/* ---- fields ---- */

static void field_reset(cs_field *f, uint8_t kind) {
  char *name = f->name;
  f->name = NULL;
  cs__field_dispose(f);
  f->name = name;
  f->kind = kind;
}

/* Joins `from` (NULL: an empty field of into's kind) into `into`. */
static int field_join(cs_field *into, const cs_dotset *ictx, const cs_field *from,
                      const cs_dotset *fctx, size_t *dropped, const removal *rm) {
  if (from && from->kind != into->kind) {
    /* Deterministic: the lower kind number wins; the other side counts as an
     * empty field of the winning kind. */
    if (from->kind > into->kind)
      from = NULL;
    else
      field_reset(into, from->kind);
  }
  switch (into->kind) {
  case CS_KIND_REG:
    return reg_join(&into->u.reg, ictx, from ? &from->u.reg : NULL, fctx, dropped, rm);
  case CS_KIND_SET:
    return set_join(&into->u.set, ictx, from ? &from->u.set : NULL, fctx, dropped, rm);
  case CS_KIND_CTR:
    return ctr_join(&into->u.ctr, from ? &from->u.ctr : NULL);
  default:
    return cs__error(CS_EINTERNAL, "field '%s': unknown kind %u", into->name, into->kind);
  }
}

static int exist_join(cs_doc *into, const cs_dotset *ictx, const cs_doc *from,
                      const cs_dotset *fctx, size_t *dropped);

#define FIELDS_ON_STACK 16

static int fields_join(cs_doc *into, const cs_dotset *ictx, const cs_doc *from,
                       const cs_dotset *fctx, const removal *rm) {
  static const removal unknown = {UINT64_MAX, false, 0, {{0, 0}}};
  size_t dropped = 0, ignored = 0;
  cs_field *staged = NULL;
  size_t nstaged = 0, staged_cap = 0, old = into->nfields, keep = 0;
  /* match[j]: where `from`'s field j is in `into`, or `old` when into lacks
   * it. Each of `from`'s fields (few, for a delta) is looked up once, by
   * binary search, so that local-only fields are passed without comparing
   * their names. Both arrays are sorted by name: matches increase. */
  size_t match_stack[FIELDS_ON_STACK], *match = match_stack;
  size_t i, j;
  int rc = 0;

  if (from->nfields > FIELDS_ON_STACK &&
      (match = cs__malloc(from->nfields * sizeof *match)) == NULL)
    return CS_ENOMEM;
  for (j = 0; j < from->nfields; j++) {
    size_t k = cs__doc_field_lower(into, from->fields[j].name);
    const char *name = from->fields[j].name;
    match[j] = k < old && (into->fields[k].name == name || strcmp(into->fields[k].name, name) == 0)
                   ? k
                   : old;
  }
  /* Fields only `from` has: joined into fresh fields first, so that a
   * failure leaves `into` as it was. */
  for (j = 0; j < from->nfields; j++) {
    cs_field nf;
    if (match[j] != old)
      continue;
    memset(&nf, 0, sizeof nf);
    nf.kind = from->fields[j].kind;
    if ((rc = field_join(&nf, ictx, &from->fields[j], fctx, &ignored, &unknown))) {
      cs__field_dispose(&nf);
      goto done;
    }
    if (cs__field_is_empty(&nf)) {
      cs__field_dispose(&nf);
      continue;
    }
    if (!(nf.name = cs__name_dup(from->fields[j].name))) {
      cs__field_dispose(&nf);
      rc = CS_ENOMEM;
      goto done;
    }
    if ((rc = cs__array_grow((void **)&staged, &staged_cap, nstaged + 1, sizeof *staged))) {
      cs__field_dispose(&nf);
      goto done;
    }
    staged[nstaged++] = nf;
  }
  if (nstaged && (rc = cs__array_grow((void **)&into->fields, &into->fields_cap, old + nstaged,
                                      sizeof *into->fields)))
    goto done;
  /* pass 1: the fields both sides have */
  for (j = 0; j < from->nfields; j++)
    if (match[j] != old &&
        (rc = field_join(&into->fields[match[j]], ictx, &from->fields[j], fctx, &dropped, rm)))
      goto done;
  if ((rc = exist_join(into, ictx, from, fctx, &dropped)))
    goto done;
  /* pass 2: local-only fields lose the entries whose dots `from`'s context
   * names without holding them. Once that many entries are gone, no other
   * entry can match (a dot names one entry), so a delta that overwrote one
   * register entry skips the other fields entirely. */
  if (dropped < rm->budget) {
    size_t jm = 0;
    for (i = 0; i < old && dropped < rm->budget; i++) {
      /* skip the paired fields, already joined (unpaired ones match `old`) */
      while (jm < from->nfields && (match[jm] < i || match[jm] == old))
        jm++;
      if (jm < from->nfields && match[jm] == i)
        continue;
      if ((rc = field_join(&into->fields[i], ictx, NULL, fctx, &dropped, rm)))
        goto done;
    }
  }
  for (i = 0; i < old; i++) {
    if (cs__field_is_empty(&into->fields[i])) {
      cs__field_dispose(&into->fields[i]);
      continue;
    }
    if (keep != i)
      into->fields[keep] = into->fields[i];
    keep++;
  }
  {
    cs_field *f = into->fields;
    size_t a = keep, b = nstaged, w = keep + nstaged;
    while (b > 0) {
      if (a > 0 && strcmp(f[a - 1].name, staged[b - 1].name) > 0)
        f[--w] = f[--a];
      else
        f[--w] = staged[--b];
    }
  }
  into->nfields = keep + nstaged;
  nstaged = 0;
done:
  for (i = 0; i < nstaged; i++)
    cs__field_dispose(&staged[i]);
  cs__free(staged);
  if (match != match_stack)
    cs__free(match);
  return rc;
}

/* ---- existence entries (rarely more than one or two: a fresh array) ---- */

static int exist_join(cs_doc *into, const cs_dotset *ictx, const cs_doc *from,
                      const cs_dotset *fctx, size_t *dropped) {
  cs_exist_entry *out = NULL;
  size_t n = 0, cap = 0, i = 0, j = 0;
  int rc = 0;

  if (into->nexist == 0 && from->nexist == 0)
    return 0;
  /* Common case (a field write to a live document): nothing new arrives, so
   * the local entries are only filtered, in place. */
  {
    bool brings = false;
    for (j = 0; j < from->nexist && !brings; j++) {
      bool local = false;
      for (size_t k = 0; k < into->nexist; k++)
        if (cs__dot_cmp(&into->exist[k].dot, &from->exist[j].dot) == 0)
          local = true;
      brings = !local && !cs__dotset_contains(ictx, from->exist[j].dot);
    }
    if (!brings) {
      for (i = 0; i < into->nexist; i++) {
        cs_exist_entry *x = &into->exist[i];
        bool both = false;
        for (size_t k = 0; k < from->nexist; k++)
          if (cs__dot_cmp(&from->exist[k].dot, &x->dot) == 0)
            both = true;
        if (both || !cs__dotset_contains(fctx, x->dot)) {
          into->exist[n++] = *x;
        } else {
          cs__exist_entry_dispose(x);
          (*dropped)++;
        }
      }
      into->nexist = n;
      return 0;
    }
    j = 0;
  }
  if ((rc = cs__array_grow((void **)&out, &cap, into->nexist + from->nexist, sizeof *out)))
    goto done;
  /* First copy what `from` brings; only then move local entries over, so
   * that a failure leaves `into` intact. */
  for (; j < from->nexist; j++) {
    const cs_exist_entry *s = &from->exist[j];
    bool local = false;
    for (size_t k = 0; k < into->nexist; k++)
      if (cs__dot_cmp(&into->exist[k].dot, &s->dot) == 0)
        local = true;
    if (local || cs__dotset_contains(ictx, s->dot))
      continue;
    if ((rc = cs__exist_entry_copy(&out[n], s))) {
      cs__exist_entry_dispose(&out[n]);
      goto done;
    }
    n++;
  }
  for (i = 0; i < into->nexist; i++) {
    cs_exist_entry *x = &into->exist[i];
    bool both = false;
    for (size_t k = 0; k < from->nexist; k++)
      if (cs__dot_cmp(&from->exist[k].dot, &x->dot) == 0)
        both = true;
    if (both || !cs__dotset_contains(fctx, x->dot)) {
      out[n++] = *x;
    } else {
      cs__exist_entry_dispose(x);
      (*dropped)++;
    }
  }
  /* few entries: insertion sort by dot */
  for (size_t a = 1; a < n; a++) {
    cs_exist_entry t = out[a];
    size_t b = a;
    while (b > 0 && cs__dot_cmp(&out[b - 1].dot, &t.dot) > 0) {
      out[b] = out[b - 1];
      b--;
    }
    out[b] = t;
  }
  cs__free(into->exist);
  into->exist = out;
  into->nexist = n;
  into->exist_cap = cap;
  out = NULL;
done:
  if (out) {
    for (size_t k = 0; k < n; k++)
      cs__exist_entry_dispose(&out[k]);
    cs__free(out);
  }
  return rc;
}

/* Is dot d an entry of `from`? */
static bool doc_holds(const cs_doc *from, cs_dot d) {
  for (size_t i = 0; i < from->nfields; i++) {
    const cs_field *f = &from->fields[i];
    if (f->kind == CS_KIND_REG) {
      for (size_t k = 0; k < f->u.reg.len; k++)
        if (cs__dot_cmp(&f->u.reg.entries[k].dot, &d) == 0)
          return true;
    } else if (f->kind == CS_KIND_SET) {
      for (size_t k = 0; k < f->u.set.len; k++)
        for (size_t q = 0; q < f->u.set.elems[k].ndots; q++)
          if (cs__dot_cmp(&f->u.set.elems[k].dots[q], &d) == 0)
            return true;
    }
  }
  for (size_t i = 0; i < from->nexist; i++)
    if (cs__dot_cmp(&from->exist[i].dot, &d) == 0)
      return true;
  return false;
}

/*
 * What `from` can remove locally (see `removal`). A small context is listed
 * dot by dot, keeping the dots the local context has seen (a local entry
 * carries only such dots) that from does not hold: an action's own dot that
 * names no entry, or a dot the local replica never saw, costs no search. A
 * larger one gives the count of its dots that from does not hold. Both rely
 * on dots being unique within a document (one dot, one entry), which
 * decoders check.
 */
static void removal_of(removal *rm, const cs_doc *from, const cs_dotset *fctx,
                       const cs_dotset *ictx) {
  uint64_t total = cs__dotset_count(fctx), held = 0;

  rm->listed = false;
  rm->n = 0;
  if (total <= REMOVAL_LIST_MAX) {
    rm->listed = true;
    for (size_t i = 0; i < fctx->vv_len; i++)
      for (uint64_t c = 1; c <= fctx->vv[i].max; c++) {
        cs_dot d = {fctx->vv[i].replica, c};
        if (cs__dotset_contains(ictx, d) && !doc_holds(from, d))
          rm->dots[rm->n++] = d;
      }
    for (size_t i = 0; i < fctx->extra_len; i++)
      if (cs__dotset_contains(ictx, fctx->extra[i]) && !doc_holds(from, fctx->extra[i]))
        rm->dots[rm->n++] = fctx->extra[i];
    rm->budget = rm->n;
    return;
  }
  rm->budget = total;
  if (total == UINT64_MAX)
    return;
  for (size_t i = 0; i < from->nfields; i++) {
    const cs_field *f = &from->fields[i];
    if (f->kind == CS_KIND_REG) {
      for (size_t k = 0; k < f->u.reg.len; k++)
        held += cs__dotset_contains(fctx, f->u.reg.entries[k].dot);
    } else if (f->kind == CS_KIND_SET) {
      for (size_t k = 0; k < f->u.set.len; k++)
        for (size_t q = 0; q < f->u.set.elems[k].ndots; q++)
          held += cs__dotset_contains(fctx, f->u.set.elems[k].dots[q]);
    }
  }
  for (size_t i = 0; i < from->nexist; i++)
    held += cs__dotset_contains(fctx, from->exist[i].dot);
  rm->budget = total - held;
}

int cs__doc_join(cs_doc *into, const cs_dotset *into_ctx, const cs_doc *from,
                 const cs_dotset *from_ctx) {
  removal rm;
  removal_of(&rm, from, from_ctx, into_ctx);
  return fields_join(into, into_ctx, from, from_ctx, &rm);
}
