/*
 * Conflict detection: the semantic conflicts a user must see, named by an id
 * every replica computes alike (see docs/semantics.md for the id bytes).
 */
#include <stdlib.h>

#include "crdt/crdt_int.h"

void cs__conflict_list_dispose(cs_conflict_list *l) {
  for (size_t i = 0; i < l->len; i++)
    cs__free(l->items[i].dots);
  cs__free(l->items);
  memset(l, 0, sizeof *l);
}

static int dot_qsort_cmp(const void *a, const void *b) {
  return cs__dot_cmp(a, b);
}

/*
 * Canonical bytes: u32 len + model, u32 len + instance, u32 len + field,
 * u8 kind, u32 number of dots, then per dot u64 replica and u64 counter, all
 * big-endian. Lengths make the concatenation unambiguous.
 */
static int conflict_id(uint8_t *out, const char *model, const char *instance, const char *field,
                       uint8_t kind, const cs_dot *dots, size_t ndots, cs_hash_fn hash) {
  size_t lm = strlen(model), li = strlen(instance), lf = field ? strlen(field) : 0;
  size_t total = 4 + lm + 4 + li + 4 + lf + 1 + 4 + 16 * ndots, off = 0;
  uint8_t *b;

  if (lm > UINT32_MAX || li > UINT32_MAX || lf > UINT32_MAX || ndots > UINT32_MAX)
    return cs__error(CS_ETOOBIG, "conflict in '%s'/'%s': name or sibling count too large", model,
                     instance);
  if (!(b = cs__malloc(total)))
    return CS_ENOMEM;
  cs__put_be32(b + off, (uint32_t)lm);
  memcpy(b + off + 4, model, lm);
  off += 4 + lm;
  cs__put_be32(b + off, (uint32_t)li);
  memcpy(b + off + 4, instance, li);
  off += 4 + li;
  cs__put_be32(b + off, (uint32_t)lf);
  if (lf)
    memcpy(b + off + 4, field, lf);
  off += 4 + lf;
  b[off++] = kind;
  cs__put_be32(b + off, (uint32_t)ndots);
  off += 4;
  for (size_t i = 0; i < ndots; i++, off += 16) {
    cs__put_be64(b + off, dots[i].replica);
    cs__put_be64(b + off + 8, dots[i].counter);
  }
  hash(out, CS_CONFLICT_ID_LEN, b, total);
  cs__free(b);
  return 0;
}

/* Appends a conflict; takes ownership of dots (freed on failure too). */
static int list_push(cs_conflict_list *l, cs_conflict_kind kind, const char *field, cs_dot *dots,
                     size_t ndots, const char *model, const char *instance, cs_hash_fn hash) {
  cs_conflict *c;
  int rc;

  if ((rc = cs__array_grow((void **)&l->items, &l->cap, l->len + 1, sizeof *l->items)))
    goto fail;
  c = &l->items[l->len];
  c->kind = kind;
  c->field = field;
  c->dots = dots;
  c->ndots = ndots;
  if ((rc = conflict_id(c->id, model, instance, field, (uint8_t)kind, dots, ndots, hash)))
    goto fail;
  l->len++;
  return 0;
fail:
  cs__free(dots);
  return rc;
}

/*
 * Delete/update: the document is not alive (some delete entry) and either a
 * concurrent create/restore survives beside it, or some field entry was
 * written without seeing every delete (its dot is outside the union of what
 * the deletes observed).
 */
static int delete_update(cs_conflict_list *out, const cs_doc *doc, const char *model,
                         const char *instance, cs_hash_fn hash) {
  cs_dotset seen = CS_DOTSET_INIT;
  cs_dot *dots = NULL;
  size_t n = 0, cap = 0, nexist;
  bool any_dead = false, any_alive = false;
  int rc = 0;

  for (size_t i = 0; i < doc->nexist; i++) {
    if (doc->exist[i].alive)
      any_alive = true;
    else
      any_dead = true;
  }
  if (!any_dead)
    return 0;
  for (size_t i = 0; i < doc->nexist; i++)
    if (!doc->exist[i].alive && (rc = cs__dotset_join(&seen, &doc->exist[i].observed)))
      goto done;
  if ((rc = cs__array_grow((void **)&dots, &cap, doc->nexist, sizeof *dots)))
    goto done;
  for (size_t i = 0; i < doc->nexist; i++)
    dots[n++] = doc->exist[i].dot;
  nexist = n;
  for (size_t i = 0; i < doc->nfields; i++) {
    const cs_field *f = &doc->fields[i];
    if (f->kind == CS_KIND_REG) {
      for (size_t k = 0; k < f->u.reg.len; k++) {
        if (cs__dotset_contains(&seen, f->u.reg.entries[k].dot))
          continue;
        if ((rc = cs__array_grow((void **)&dots, &cap, n + 1, sizeof *dots)))
          goto done;
        dots[n++] = f->u.reg.entries[k].dot;
      }
    } else if (f->kind == CS_KIND_SET) {
      for (size_t k = 0; k < f->u.set.len; k++)
        for (size_t q = 0; q < f->u.set.elems[k].ndots; q++) {
          if (cs__dotset_contains(&seen, f->u.set.elems[k].dots[q]))
            continue;
          if ((rc = cs__array_grow((void **)&dots, &cap, n + 1, sizeof *dots)))
            goto done;
          dots[n++] = f->u.set.elems[k].dots[q];
        }
    }
  }
  if (!any_alive && n == nexist)
    goto done; /* a clean delete */
  qsort(dots + nexist, n - nexist, sizeof *dots, dot_qsort_cmp);
  rc = list_push(out, CS_CONFLICT_DELETE_UPDATE, NULL, dots, n, model, instance, hash);
  dots = NULL;
done:
  cs__free(dots);
  cs__dotset_dispose(&seen);
  return rc;
}

int cs__doc_conflicts(cs_conflict_list *out, const cs_doc *doc, const char *model,
                      const char *instance, bool (*is_silent)(const char *field, void *payload),
                      void *payload, cs_hash_fn hash) {
  int rc;

  if ((rc = delete_update(out, doc, model, instance, hash)))
    return rc;
  for (size_t i = 0; i < doc->nfields; i++) {
    const cs_field *f = &doc->fields[i];
    const cs_reg *r = &f->u.reg;
    bool differ = false;
    cs_dot *dots;

    if (f->kind != CS_KIND_REG || r->len < 2)
      continue;
    /* Equal values written concurrently are agreement, not conflict. */
    for (size_t k = 1; k < r->len && !differ; k++)
      differ = !cs__val_equal(&r->entries[0].val, &r->entries[k].val) ||
               r->entries[0].val.type != r->entries[k].val.type;
    if (!differ || (is_silent && is_silent(f->name, payload)))
      continue;
    if (!(dots = cs__malloc(r->len * sizeof *dots)))
      return CS_ENOMEM;
    for (size_t k = 0; k < r->len; k++)
      dots[k] = r->entries[k].dot;
    if ((rc = list_push(out, CS_CONFLICT_VALUE, f->name, dots, r->len, model, instance, hash)))
      return rc;
  }
  return 0;
}
