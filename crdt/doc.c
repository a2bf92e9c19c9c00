/* Documents: ownership, deep copies, exact equality and field lookup. */
#include "crdt/crdt_int.h"

static void reg_dispose(cs_reg *r) {
  for (size_t i = 0; i < r->len; i++)
    cs__val_dispose(&r->entries[i].val);
  cs__free(r->entries);
}

static void set_dispose(cs_set *s) {
  for (size_t i = 0; i < s->len; i++) {
    cs__val_dispose(&s->elems[i].val);
    cs__free(s->elems[i].dots);
  }
  cs__free(s->elems);
  cs__set_index_free(s);
}

void cs__field_dispose(cs_field *f) {
  cs__name_free(f->name);
  switch (f->kind) {
  case CS_KIND_REG:
    reg_dispose(&f->u.reg);
    break;
  case CS_KIND_SET:
    set_dispose(&f->u.set);
    break;
  case CS_KIND_CTR:
    cs__free(f->u.ctr.entries);
    break;
  default:
    break;
  }
  memset(f, 0, sizeof *f);
}

void cs__exist_entry_dispose(cs_exist_entry *e) {
  cs__dotset_dispose(&e->observed);
}

int cs__exist_entry_copy(cs_exist_entry *dst, const cs_exist_entry *src) {
  cs_dotset empty = CS_DOTSET_INIT;

  dst->dot = src->dot;
  dst->hlc = src->hlc;
  dst->alive = src->alive;
  dst->observed = empty;
  return cs__dotset_copy(&dst->observed, &src->observed);
}

void cs__doc_dispose(cs_doc *doc) {
  for (size_t i = 0; i < doc->nfields; i++)
    cs__field_dispose(&doc->fields[i]);
  cs__free(doc->fields);
  for (size_t i = 0; i < doc->nexist; i++)
    cs__exist_entry_dispose(&doc->exist[i]);
  cs__free(doc->exist);
  memset(doc, 0, sizeof *doc);
}

static int reg_copy(cs_reg *dst, const cs_reg *src) {
  int rc;

  memset(dst, 0, sizeof *dst);
  if ((rc = cs__array_grow((void **)&dst->entries, &dst->cap, src->len, sizeof *dst->entries)))
    return rc;
  for (; dst->len < src->len; dst->len++) {
    cs_reg_entry *d = &dst->entries[dst->len];
    const cs_reg_entry *s = &src->entries[dst->len];
    d->dot = s->dot;
    d->hlc = s->hlc;
    if ((rc = cs__val_copy(&d->val, &s->val)))
      return rc;
  }
  return 0;
}

static int set_copy(cs_set *dst, const cs_set *src) {
  int rc;

  memset(dst, 0, sizeof *dst);
  if ((rc = cs__array_grow((void **)&dst->elems, &dst->cap, src->len, sizeof *dst->elems)))
    return rc;
  for (; dst->len < src->len; dst->len++) {
    cs_set_elem *d = &dst->elems[dst->len];
    const cs_set_elem *s = &src->elems[dst->len];
    memset(d, 0, sizeof *d);
    if ((rc = cs__array_grow((void **)&d->dots, &d->cap, s->ndots, sizeof *d->dots)))
      return rc;
    if ((rc = cs__val_copy(&d->val, &s->val))) {
      cs__free(d->dots);
      return rc;
    }
    if (s->ndots) /* a delta's element may have none (dots NULL) */
      memcpy(d->dots, s->dots, s->ndots * sizeof *d->dots);
    d->ndots = s->ndots;
  }
  return 0;
}

int cs__field_copy(cs_field *dst, const cs_field *src) {
  int rc = 0;

  memset(dst, 0, sizeof *dst);
  dst->kind = src->kind;
  switch (src->kind) {
  case CS_KIND_REG:
    rc = reg_copy(&dst->u.reg, &src->u.reg);
    break;
  case CS_KIND_SET:
    rc = set_copy(&dst->u.set, &src->u.set);
    break;
  case CS_KIND_CTR:
    rc = cs__array_grow((void **)&dst->u.ctr.entries, &dst->u.ctr.cap, src->u.ctr.len,
                        sizeof *dst->u.ctr.entries);
    if (!rc && src->u.ctr.len) {
      memcpy(dst->u.ctr.entries, src->u.ctr.entries, src->u.ctr.len * sizeof *dst->u.ctr.entries);
      dst->u.ctr.len = src->u.ctr.len;
    }
    break;
  default:
    rc = cs__error(CS_EINTERNAL, "field '%s': unknown kind %u", src->name, src->kind);
    break;
  }
  if (!rc && !(dst->name = cs__name_dup(src->name)))
    rc = CS_ENOMEM;
  if (rc)
    cs__field_dispose(dst);
  return rc;
}

int cs__doc_copy(cs_doc *dst, const cs_doc *src) {
  cs_doc tmp = CS_DOC_INIT;
  int rc;

  if ((rc =
           cs__array_grow((void **)&tmp.fields, &tmp.fields_cap, src->nfields, sizeof *tmp.fields)))
    goto done;
  for (; tmp.nfields < src->nfields; tmp.nfields++)
    if ((rc = cs__field_copy(&tmp.fields[tmp.nfields], &src->fields[tmp.nfields])))
      goto done;
  if ((rc = cs__array_grow((void **)&tmp.exist, &tmp.exist_cap, src->nexist, sizeof *tmp.exist)))
    goto done;
  for (; tmp.nexist < src->nexist; tmp.nexist++)
    if ((rc = cs__exist_entry_copy(&tmp.exist[tmp.nexist], &src->exist[tmp.nexist]))) {
      cs__exist_entry_dispose(&tmp.exist[tmp.nexist]);
      goto done;
    }
  cs__doc_dispose(dst);
  *dst = tmp;
  memset(&tmp, 0, sizeof tmp);
done:
  cs__doc_dispose(&tmp);
  return rc;
}

static bool field_equal(const cs_field *a, const cs_field *b) {
  if (a->kind != b->kind || strcmp(a->name, b->name) != 0)
    return false;
  switch (a->kind) {
  case CS_KIND_REG:
    if (a->u.reg.len != b->u.reg.len)
      return false;
    for (size_t i = 0; i < a->u.reg.len; i++) {
      const cs_reg_entry *x = &a->u.reg.entries[i], *y = &b->u.reg.entries[i];
      if (cs__dot_cmp(&x->dot, &y->dot) || x->hlc != y->hlc || x->val.type != y->val.type ||
          !cs__val_equal(&x->val, &y->val))
        return false;
    }
    return true;
  case CS_KIND_SET:
    if (a->u.set.len != b->u.set.len)
      return false;
    for (size_t i = 0; i < a->u.set.len; i++) {
      const cs_set_elem *x = &a->u.set.elems[i], *y = &b->u.set.elems[i];
      if (x->ndots != y->ndots || !cs__val_equal(&x->val, &y->val) ||
          (x->ndots && memcmp(x->dots, y->dots, x->ndots * sizeof *x->dots) != 0))
        return false;
    }
    return true;
  case CS_KIND_CTR:
    if (a->u.ctr.len != b->u.ctr.len)
      return false;
    for (size_t i = 0; i < a->u.ctr.len; i++) {
      const cs_ctr_entry *x = &a->u.ctr.entries[i], *y = &b->u.ctr.entries[i];
      if (x->replica != y->replica || x->pos != y->pos || x->neg != y->neg)
        return false;
    }
    return true;
  default:
    return false;
  }
}

bool cs__doc_equal(const cs_doc *a, const cs_doc *b) {
  if (a->nfields != b->nfields || a->nexist != b->nexist)
    return false;
  for (size_t i = 0; i < a->nfields; i++)
    if (!field_equal(&a->fields[i], &b->fields[i]))
      return false;
  for (size_t i = 0; i < a->nexist; i++) {
    const cs_exist_entry *x = &a->exist[i], *y = &b->exist[i];
    if (cs__dot_cmp(&x->dot, &y->dot) || x->hlc != y->hlc || x->alive != y->alive ||
        !cs__dotset_equal(&x->observed, &y->observed))
      return false;
  }
  return true;
}

/* Field names are mostly the process's shared copies (base/names.c): the
 * same pointer is the same name, found without comparing bytes. Names in a
 * document are unique, so a match is the lower bound. */
size_t cs__doc_field_lower(const cs_doc *doc, const char *name) {
  size_t lo = 0, hi = doc->nfields;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = doc->fields[mid].name == name ? 0 : strcmp(doc->fields[mid].name, name);
    if (c == 0)
      return mid;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

cs_field *cs__doc_field(const cs_doc *doc, const char *name) {
  size_t i = cs__doc_field_lower(doc, name);
  return (i < doc->nfields &&
          (doc->fields[i].name == name || strcmp(doc->fields[i].name, name) == 0))
             ? &doc->fields[i]
             : NULL;
}

int cs__doc_field_insert(cs_field **out, cs_doc *doc, const char *name, uint8_t kind) {
  size_t i = cs__doc_field_lower(doc, name);
  char *copy;
  int rc;

  if ((rc = cs__array_grow((void **)&doc->fields, &doc->fields_cap, doc->nfields + 1,
                           sizeof *doc->fields)))
    return rc;
  if (!(copy = cs__name_dup(name)))
    return CS_ENOMEM;
  memmove(&doc->fields[i + 1], &doc->fields[i], (doc->nfields - i) * sizeof *doc->fields);
  memset(&doc->fields[i], 0, sizeof doc->fields[i]);
  doc->fields[i].name = copy;
  doc->fields[i].kind = kind;
  doc->nfields++;
  *out = &doc->fields[i];
  return 0;
}

void cs__doc_field_remove(cs_doc *doc, size_t i) {
  cs__field_dispose(&doc->fields[i]);
  memmove(&doc->fields[i], &doc->fields[i + 1], (doc->nfields - i - 1) * sizeof *doc->fields);
  doc->nfields--;
}

bool cs__doc_alive(const cs_doc *doc) {
  if (doc->nexist == 0)
    return false;
  for (size_t i = 0; i < doc->nexist; i++)
    if (!doc->exist[i].alive)
      return false;
  return true;
}

bool cs__doc_empty(const cs_doc *doc) {
  return doc->nexist == 0;
}

const cs_reg_entry *cs__reg_visible(const cs_reg *r) {
  const cs_reg_entry *best = NULL;

  for (size_t i = 0; i < r->len; i++) {
    const cs_reg_entry *e = &r->entries[i];
    if (!best || e->hlc > best->hlc || (e->hlc == best->hlc && e->dot.replica > best->dot.replica))
      best = e;
  }
  return best;
}

int64_t cs__ctr_value(const cs_ctr *c) {
  uint64_t sum = 0;

  /* Unsigned arithmetic wraps without undefined behaviour. */
  for (size_t i = 0; i < c->len; i++)
    sum += c->entries[i].pos - c->entries[i].neg;
  return (int64_t)sum;
}
