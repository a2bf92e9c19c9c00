/*
 * Mutators: each local edit becomes a small delta (document fragment plus an
 * exact context: the dots it creates and the dots it covers). Applying the
 * delta with the ordinary join performs the edit, locally and remotely alike.
 */
#include <stdlib.h>

#include "crdt/crdt_int.h"

static const char *kind_name(uint8_t kind) {
  switch (kind) {
  case CS_KIND_REG:
    return "register";
  case CS_KIND_SET:
    return "set";
  case CS_KIND_CTR:
    return "counter";
  default:
    return "unknown kind";
  }
}

int cs__delta_init(cs_delta *d, const cs_dotset *ctx, cs_replica self, cs_hlc hlc) {
  memset(d, 0, sizeof *d);
  d->self = self;
  d->hlc = hlc;
  d->next = cs__dotset_next(ctx, self).counter;
  d->first = d->next;
  return 0;
}

void cs__delta_dispose(cs_delta *d) {
  cs__doc_dispose(&d->doc);
  cs__dotset_dispose(&d->ctx);
}

static int take_dot(cs_dot *out, cs_delta *d) {
  cs_dot dot = {d->self, d->next};
  int rc;

  if ((rc = cs__dotset_add(&d->ctx, dot)))
    return rc;
  d->next++;
  *out = dot;
  return 0;
}

int cs__delta_finish(cs_delta *d, uint64_t *first, uint64_t *last) {
  cs_dot dot;
  int rc;

  /* An action that created no entry still needs a dot of its own: the log
   * files it under (origin, first dot), and the dot in the context tells
   * receivers they have it. */
  if (d->next == d->first && (rc = take_dot(&dot, d)))
    return rc;
  *first = d->first;
  *last = d->next - 1;
  return 0;
}

/* The field of `doc` named `name`, checking its kind; *out NULL when absent. */
static int doc_field_of(cs_field **out, const cs_doc *doc, const char *name, uint8_t kind,
                        const char *where) {
  cs_field *f = cs__doc_field(doc, name);

  *out = NULL;
  if (f && f->kind != kind)
    return cs__error(CS_EINVAL, "field '%s' is a %s; %s needs a %s", name, kind_name(f->kind),
                     where, kind_name(kind));
  *out = f;
  return 0;
}

/* Checks the kind of `name` in the document and in the delta so far; returns
 * the document's field (or NULL) and the delta's (created when `make`). */
static int fields_for(cs_field **out_doc, cs_field **out_delta, cs_delta *d, const cs_doc *doc,
                      const char *name, uint8_t kind, bool make, const char *where) {
  int rc;

  if ((rc = doc_field_of(out_doc, doc, name, kind, where)))
    return rc;
  if ((rc = doc_field_of(out_delta, &d->doc, name, kind, where)))
    return rc;
  if (!*out_delta && make && (rc = cs__doc_field_insert(out_delta, &d->doc, name, kind)))
    return rc;
  /* an insert may have moved the delta's fields, never the document's */
  return 0;
}

static int cover_reg(cs_delta *d, const cs_field *f) {
  int rc;

  if (!f)
    return 0;
  for (size_t i = 0; i < f->u.reg.len; i++)
    if ((rc = cs__dotset_add(&d->ctx, f->u.reg.entries[i].dot)))
      return rc;
  return 0;
}

static void drop_empty_delta_field(cs_delta *d, const char *name) {
  size_t i = cs__doc_field_lower(&d->doc, name);
  if (i < d->doc.nfields && strcmp(d->doc.fields[i].name, name) == 0 &&
      cs__field_is_empty(&d->doc.fields[i]))
    cs__doc_field_remove(&d->doc, i);
}

int cs__delta_reg_set(cs_delta *d, const cs_doc *doc, const char *field, const cs_val *v) {
  cs_field *df, *xf;
  cs_reg_entry *e;
  cs_val copy;
  cs_dot dot;
  int rc;

  if ((rc = fields_for(&df, &xf, d, doc, field, CS_KIND_REG, true, "write")))
    goto done;
  if ((rc = cover_reg(d, df)))
    goto done;
  if ((rc = cs__val_copy(&copy, v)))
    goto done;
  if ((rc = cs__array_grow((void **)&xf->u.reg.entries, &xf->u.reg.cap, 1,
                           sizeof *xf->u.reg.entries)) ||
      (rc = take_dot(&dot, d))) {
    cs__val_dispose(&copy);
    goto done;
  }
  /* A second write in one action replaces the first: its dot stays in the
   * context with no entry, i.e. it is overwritten before anyone saw it. */
  for (size_t i = 0; i < xf->u.reg.len; i++)
    cs__val_dispose(&xf->u.reg.entries[i].val);
  e = &xf->u.reg.entries[0];
  e->dot = dot;
  e->hlc = d->hlc;
  e->val = copy;
  xf->u.reg.len = 1;
done:
  if (rc && (xf = cs__doc_field(&d->doc, field)) != NULL && cs__field_is_empty(xf))
    drop_empty_delta_field(d, field);
  return rc;
}

int cs__delta_reg_clear(cs_delta *d, const cs_doc *doc, const char *field) {
  cs_field *df, *xf;
  int rc;

  if ((rc = fields_for(&df, &xf, d, doc, field, CS_KIND_REG, false, "clear")))
    return rc;
  if ((rc = cover_reg(d, df)))
    return rc;
  if (xf) {
    for (size_t i = 0; i < xf->u.reg.len; i++)
      cs__val_dispose(&xf->u.reg.entries[i].val);
    xf->u.reg.len = 0;
    drop_empty_delta_field(d, field);
  }
  return 0;
}

/* Index of elem in a set (or its insertion point), *found telling which. */
static size_t set_find(const cs_set *s, const cs_val *v, bool *found) {
  size_t lo = 0, hi = s->len;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (cs__val_cmp(&s->elems[mid].val, v) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  *found = lo < s->len && cs__val_cmp(&s->elems[lo].val, v) == 0;
  return lo;
}

static int cover_elem(cs_delta *d, const cs_field *df, const cs_val *elem) {
  bool found;
  size_t i;
  int rc;

  if (!df)
    return 0;
  i = set_find(&df->u.set, elem, &found);
  if (!found)
    return 0;
  for (size_t k = 0; k < df->u.set.elems[i].ndots; k++)
    if ((rc = cs__dotset_add(&d->ctx, df->u.set.elems[i].dots[k])))
      return rc;
  return 0;
}

static int set_add_one(cs_delta *d, const cs_field *df, cs_field *xf, const cs_val *elem) {
  cs_set *s = &xf->u.set;
  cs_set_elem *x;
  bool found;
  size_t i;
  int rc;
  cs_dot dot;

  if ((rc = cover_elem(d, df, elem)))
    return rc;
  i = set_find(s, elem, &found);
  if (!found) {
    cs_set_elem ne;
    memset(&ne, 0, sizeof ne);
    if ((rc = cs__array_grow((void **)&ne.dots, &ne.cap, 1, sizeof *ne.dots)))
      return rc;
    if ((rc = cs__val_copy(&ne.val, elem)) ||
        (rc = cs__array_grow((void **)&s->elems, &s->cap, s->len + 1, sizeof *s->elems))) {
      cs__val_dispose(&ne.val);
      cs__free(ne.dots);
      return rc;
    }
    memmove(&s->elems[i + 1], &s->elems[i], (s->len - i) * sizeof *s->elems);
    s->elems[i] = ne;
    s->len++;
  }
  x = &s->elems[i];
  if ((rc = take_dot(&dot, d))) {
    if (x->ndots == 0) { /* just inserted: take it out again */
      cs__val_dispose(&x->val);
      cs__free(x->dots);
      memmove(&s->elems[i], &s->elems[i + 1], (s->len - i - 1) * sizeof *s->elems);
      s->len--;
    }
    return rc;
  }
  /* an earlier add of the same element in this action is superseded */
  x->dots[0] = dot;
  x->ndots = 1;
  return 0;
}

static void set_drop_from_delta(cs_field *xf, const cs_val *elem) {
  cs_set *s = &xf->u.set;
  bool found;
  size_t i = set_find(s, elem, &found);

  if (!found)
    return;
  cs__val_dispose(&s->elems[i].val);
  cs__free(s->elems[i].dots);
  memmove(&s->elems[i], &s->elems[i + 1], (s->len - i - 1) * sizeof *s->elems);
  s->len--;
}

int cs__delta_set_add(cs_delta *d, const cs_doc *doc, const char *field, const cs_val *elem) {
  cs_field *df, *xf;
  int rc;

  if ((rc = fields_for(&df, &xf, d, doc, field, CS_KIND_SET, true, "set add")))
    return rc;
  rc = set_add_one(d, df, xf, elem);
  drop_empty_delta_field(d, field);
  return rc;
}

int cs__delta_set_remove(cs_delta *d, const cs_doc *doc, const char *field, const cs_val *elem) {
  cs_field *df, *xf;
  int rc;

  if ((rc = fields_for(&df, &xf, d, doc, field, CS_KIND_SET, false, "set remove")))
    return rc;
  if ((rc = cover_elem(d, df, elem)))
    return rc;
  if (xf) {
    set_drop_from_delta(xf, elem);
    drop_empty_delta_field(d, field);
  }
  return 0;
}

static int val_ptr_cmp(const void *a, const void *b) {
  return cs__val_cmp(*(const cs_val *const *)a, *(const cs_val *const *)b);
}

int cs__delta_set_assign(cs_delta *d, const cs_doc *doc, const char *field, const cs_val *elems,
                         size_t n) {
  const cs_val **sorted = NULL;
  cs_field *df, *xf;
  size_t m = 0, j;
  int rc;

  if ((rc = fields_for(&df, &xf, d, doc, field, CS_KIND_SET, true, "set assign")))
    goto done;
  /* The list sorted and without duplicates, so that the diff against the
   * current (sorted) view is one merge walk. */
  if (n && !(sorted = cs__malloc(n * sizeof *sorted))) {
    rc = CS_ENOMEM;
    goto done;
  }
  for (size_t i = 0; i < n; i++)
    sorted[i] = &elems[i];
  if (n)
    qsort(sorted, n, sizeof *sorted, val_ptr_cmp);
  for (size_t i = 0; i < n; i++)
    if (m == 0 || cs__val_cmp(sorted[m - 1], sorted[i]) != 0)
      sorted[m++] = sorted[i];
  /* remove what the document has and the list lacks */
  if (df) {
    j = 0;
    for (size_t i = 0; i < df->u.set.len; i++) {
      const cs_val *v = &df->u.set.elems[i].val;
      while (j < m && cs__val_cmp(sorted[j], v) < 0)
        j++;
      if (j < m && cs__val_cmp(sorted[j], v) == 0)
        continue;
      if ((rc = cover_elem(d, df, v)))
        goto done;
      set_drop_from_delta(xf, v);
    }
  }
  /* earlier adds of this action that the list drops */
  for (size_t i = 0; i < xf->u.set.len;) {
    const cs_val *v = &xf->u.set.elems[i].val;
    if (bsearch(&v, sorted, m, sizeof *sorted, val_ptr_cmp)) {
      i++;
      continue;
    }
    set_drop_from_delta(xf, v);
  }
  /* add what the list has and the document lacks */
  for (size_t i = 0; i < m; i++) {
    bool found = false;
    if (df)
      set_find(&df->u.set, sorted[i], &found);
    if (found)
      continue;
    set_find(&xf->u.set, sorted[i], &found);
    if (found)
      continue;
    if ((rc = set_add_one(d, df, xf, sorted[i])))
      goto done;
  }
done:
  cs__free(sorted);
  if (cs__doc_field(&d->doc, field))
    drop_empty_delta_field(d, field);
  return rc;
}

int cs__delta_ctr_add(cs_delta *d, const cs_doc *doc, const char *field, int64_t by) {
  cs_field *df, *xf;
  cs_ctr_entry base = {d->self, 0, 0};
  int rc;

  if ((rc = fields_for(&df, &xf, d, doc, field, CS_KIND_CTR, true, "counter add")))
    return rc;
  /* The delta carries self's new totals (counters join by max). */
  if (xf->u.ctr.len == 1) {
    base = xf->u.ctr.entries[0];
  } else if (df) {
    for (size_t i = 0; i < df->u.ctr.len; i++)
      if (df->u.ctr.entries[i].replica == d->self)
        base = df->u.ctr.entries[i];
  }
  if (by >= 0)
    base.pos += (uint64_t)by;
  else
    base.neg += (uint64_t)(-(by + 1)) + 1; /* no overflow for INT64_MIN */
  if ((rc = cs__array_grow((void **)&xf->u.ctr.entries, &xf->u.ctr.cap, 1,
                           sizeof *xf->u.ctr.entries))) {
    drop_empty_delta_field(d, field);
    return rc;
  }
  xf->u.ctr.entries[0] = base;
  xf->u.ctr.len = 1;
  return 0;
}

/* The dots of every register entry and set element of doc, into out. */
static int observe_fields(cs_dotset *out, const cs_doc *doc) {
  int rc;

  for (size_t i = 0; i < doc->nfields; i++) {
    const cs_field *f = &doc->fields[i];
    if (f->kind == CS_KIND_REG) {
      for (size_t k = 0; k < f->u.reg.len; k++)
        if ((rc = cs__dotset_add(out, f->u.reg.entries[k].dot)))
          return rc;
    } else if (f->kind == CS_KIND_SET) {
      for (size_t k = 0; k < f->u.set.len; k++)
        for (size_t q = 0; q < f->u.set.elems[k].ndots; q++)
          if ((rc = cs__dotset_add(out, f->u.set.elems[k].dots[q])))
            return rc;
    }
  }
  return 0;
}

int cs__delta_exist(cs_delta *d, const cs_doc *doc, bool alive) {
  cs_exist_entry e;
  cs_dotset empty = CS_DOTSET_INIT;
  int rc;

  e.observed = empty;
  for (size_t i = 0; i < doc->nexist; i++)
    if ((rc = cs__dotset_add(&d->ctx, doc->exist[i].dot)))
      goto done;
  if (!alive) {
    /* What the deleter saw: the document plus this action's own writes. */
    if ((rc = observe_fields(&e.observed, doc)) || (rc = observe_fields(&e.observed, &d->doc)))
      goto done;
  }
  if ((rc = cs__array_grow((void **)&d->doc.exist, &d->doc.exist_cap, 1, sizeof *d->doc.exist)))
    goto done;
  if ((rc = take_dot(&e.dot, d)))
    goto done;
  e.hlc = d->hlc;
  e.alive = alive;
  /* a second existence write in one action replaces the first */
  for (size_t i = 0; i < d->doc.nexist; i++)
    cs__exist_entry_dispose(&d->doc.exist[i]);
  d->doc.exist[0] = e;
  d->doc.nexist = 1;
  e.observed = empty;
done:
  cs__dotset_dispose(&e.observed);
  return rc;
}
