/*
 * The encoder (docs/wire-format.md): values, documents, dot sets and actions;
 * sync messages are in core/codec_enc_msg.c. Two passes: the first collects
 * the replica ids and field names that the value mentions into sorted tables,
 * the second writes msgpack items through msgpack-c's packer into the
 * caller's cs_buf. Errors are sticky (cs__enc.rc) so that the writing code
 * reads straight; the caller's buffer is cut back to its old size on failure.
 */
#include <msgpack.h>
#include <stdlib.h>

#include "core/codec_enc.h"

/* msgpack-c write callback appending to a cs_buf; grows only when needed. */
static int enc_write(void *data, const char *p, size_t len) {
  cs_buf *b = data;
  if (CS__UNLIKELY(b->size + len + 1 > b->asize) && cs__buf_grow(b, b->size + len) != 0)
    return -1;
  memcpy(b->ptr + b->size, p, len);
  b->size += len;
  return 0;
}

void cs__enc_init(cs__enc *e, cs_buf *out) {
  memset(e, 0, sizeof(*e));
  e->out = out;
  msgpack_packer_init(&e->pk, out, enc_write);
}

static void enc_dispose(cs__enc *e) {
  if (e->reps != e->reps_small)
    cs__free(e->reps);
  if (e->rep_list != e->rep_list_small)
    cs__free(e->rep_list);
  if (e->own_names)
    for (size_t i = 0; i < e->flds_cap; i++)
      cs__free((char *)e->flds[i].name);
  cs__free(e->flds);
  if (e->fld_list != e->fld_list_small)
    cs__free(e->fld_list);
  cs__free(e->items);
  cs__dotcur_dispose(&e->cur);
}

void cs__enc_fail(cs__enc *e, int code, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  if (e->rc)
    return;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  e->rc = cs__error(code, "encode: %s", msg);
}

/* ---- pass 1: tables ---- */

static size_t hash_u64(uint64_t k) {
  k = (k ^ (k >> 30)) * 0xbf58476d1ce4e5b9ull;
  k = (k ^ (k >> 27)) * 0x94d049bb133111ebull;
  return (size_t)(k ^ (k >> 31));
}

static size_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++)
    h = (h ^ (uint8_t)*s) * 1099511628211ull;
  return (size_t)(h ^ (h >> 29));
}

static rep_slot *rep_find(const cs__enc *e, uint64_t r) {
  static rep_slot none;
  size_t m = e->reps_cap - 1;
  if (!e->reps_cap) /* only after a failure: the value is not written */
    return &none;
  for (size_t i = hash_u64(r) & m;; i = (i + 1) & m)
    if (!e->reps[i].used || e->reps[i].key == r)
      return &e->reps[i];
}

static void rep_add(cs__enc *e, uint64_t r) {
  rep_slot *s;
  if (e->rc || (e->nreps && r == e->last_rep)) /* runs of one replica are common */
    return;
  if (!e->reps_cap) {
    e->reps = e->reps_small; /* zeroed by cs__enc_init */
    e->reps_cap = CS__ENC_SMALL;
  } else if ((e->nreps + 1) * 2 > e->reps_cap) {
    size_t ncap = e->reps_cap * 2;
    rep_slot *old = e->reps;
    size_t ocap = e->reps_cap;
    if (!(e->reps = cs__calloc(ncap, sizeof(rep_slot)))) {
      e->reps = old;
      e->rc = CS_ENOMEM;
      return;
    }
    e->reps_cap = ncap;
    for (size_t i = 0; i < ocap; i++)
      if (old[i].used)
        *rep_find(e, old[i].key) = old[i];
    if (old != e->reps_small)
      cs__free(old);
  }
  s = rep_find(e, r);
  if (!s->used) {
    s->used = true;
    s->key = r;
    e->nreps++;
  }
  e->last_rep = r;
}

static fld_slot *fld_find(const cs__enc *e, const char *name) {
  static fld_slot none;
  size_t m = e->flds_cap - 1;
  if (!e->flds_cap) /* only after a failure: the value is not written */
    return &none;
  for (size_t i = hash_str(name) & m;; i = (i + 1) & m)
    if (!e->flds[i].name || strcmp(e->flds[i].name, name) == 0)
      return &e->flds[i];
}

static void fld_add(cs__enc *e, const char *name) {
  fld_slot *s;
  size_t len;
  if (e->rc)
    return;
  if ((e->nflds + 1) * 2 > e->flds_cap) {
    size_t ncap = e->flds_cap ? e->flds_cap * 2 : 16;
    fld_slot *old = e->flds;
    size_t ocap = e->flds_cap;
    if (!(e->flds = cs__calloc(ncap, sizeof(fld_slot)))) {
      e->flds = old;
      e->rc = CS_ENOMEM;
      return;
    }
    e->flds_cap = ncap;
    for (size_t i = 0; i < ocap; i++)
      if (old[i].name)
        *fld_find(e, old[i].name) = old[i];
    cs__free(old);
  }
  s = fld_find(e, name);
  if (!s->name) {
    /* Checked once per distinct name, not per use. */
    len = strlen(name);
    if (len == 0 || len > CS_WIRE_MAX_NAME) {
      cs__enc_fail(e, CS_ETOOBIG, "field name of %zu bytes (must be 1..%d)", len, CS_WIRE_MAX_NAME);
      return;
    }
    if (e->own_names && (name = cs__strdup(name)) == NULL) {
      e->rc = CS_ENOMEM;
      return;
    }
    s->name = name;
    e->nflds++;
  }
}

void cs__enc_collect_dotset(cs__enc *e, const cs_dotset *s) {
  for (size_t i = 0; i < s->vv_len; i++)
    rep_add(e, s->vv[i].replica);
  for (size_t i = 0; i < s->extra_len; i++)
    if (i == 0 || s->extra[i].replica != s->extra[i - 1].replica)
      rep_add(e, s->extra[i].replica);
}

static void collect_doc(cs__enc *e, const cs_doc *d, bool fields) {
  for (size_t i = 0; i < d->nexist; i++) {
    rep_add(e, d->exist[i].dot.replica);
    cs__enc_collect_dotset(e, &d->exist[i].observed);
  }
  for (size_t f = 0; f < d->nfields; f++) {
    const cs_field *fl = &d->fields[f];
    if (fields)
      fld_add(e, fl->name);
    if (fl->kind == CS_KIND_REG) {
      for (size_t i = 0; i < fl->u.reg.len; i++)
        rep_add(e, fl->u.reg.entries[i].dot.replica);
    } else if (fl->kind == CS_KIND_SET) {
      for (size_t i = 0; i < fl->u.set.len; i++)
        for (size_t k = 0; k < fl->u.set.elems[i].ndots; k++)
          rep_add(e, fl->u.set.elems[i].dots[k].replica);
    } else if (fl->kind == CS_KIND_CTR) {
      for (size_t i = 0; i < fl->u.ctr.len; i++)
        rep_add(e, fl->u.ctr.entries[i].replica);
    }
  }
}

void cs__enc_collect_doc(cs__enc *e, const cs_doc *d) { collect_doc(e, d, true); }

/* A standalone document's field table is its fields, in their order (both
 * sort by bytes): field f is entry f, and no name is hashed. */
static void doc_field_table(cs__enc *e, const cs_doc *d) {
  if (e->rc)
    return;
  if (d->nfields <= CS__ENC_SMALL)
    e->fld_list = e->fld_list_small;
  else if ((e->fld_list = cs__malloc(d->nfields * sizeof(char *))) == NULL) {
    e->rc = CS_ENOMEM;
    return;
  }
  for (size_t f = 0; f < d->nfields; f++) {
    const char *name = d->fields[f].name;
    size_t len = strlen(name);
    if (len == 0 || len > CS_WIRE_MAX_NAME) {
      cs__enc_fail(e, CS_ETOOBIG, "field name of %zu bytes (must be 1..%d)", len, CS_WIRE_MAX_NAME);
      return;
    }
    if (f && strcmp(d->fields[f - 1].name, name) >= 0) {
      cs__enc_fail(e, CS_EINVAL, "fields not sorted: '%s' after '%s'", name, d->fields[f - 1].name);
      return;
    }
    e->fld_list[f] = name;
  }
  e->nflds = d->nfields;
  e->doc_order = true;
}

void cs__enc_collect_action(cs__enc *e, const cs_wire_action *a) {
  rep_add(e, a->origin);
  cs__enc_collect_doc(e, &a->doc);
  cs__enc_collect_dotset(e, &a->ctx);
}

void cs__enc_collect_run(cs__enc *e, const cs_run_tables *t) {
  for (size_t i = 0; i < t->nreps; i++)
    rep_add(e, t->reps[i]);
  for (size_t i = 0; i < t->nfields; i++)
    fld_add(e, t->fields[i]);
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static int cmp_name(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorts the collected tables and numbers the hash entries by their rank. */
void cs__enc_tables_finish(cs__enc *e) {
  size_t n = 0;
  if (e->rc)
    return;
  e->rep_list = e->nreps <= CS__ENC_SMALL / 2 ? e->rep_list_small
                                               : cs__malloc(e->nreps * sizeof(uint64_t));
  if (!e->doc_order)
    e->fld_list = e->nflds <= CS__ENC_SMALL ? e->fld_list_small
                                            : cs__malloc(e->nflds * sizeof(char *));
  if (!e->rep_list || !e->fld_list) {
    e->rc = CS_ENOMEM;
    return;
  }
  for (size_t i = 0; i < e->reps_cap; i++)
    if (e->reps[i].used)
      e->rep_list[n++] = e->reps[i].key;
  if (e->nreps)
    qsort(e->rep_list, e->nreps, sizeof(uint64_t), cmp_u64);
  for (size_t i = 0; i < e->nreps; i++)
    rep_find(e, e->rep_list[i])->idx = (uint32_t)i;
  if (e->doc_order)
    return;
  n = 0;
  for (size_t i = 0; i < e->flds_cap; i++)
    if (e->flds[i].name)
      e->fld_list[n++] = e->flds[i].name;
  if (e->nflds)
    qsort(e->fld_list, e->nflds, sizeof(char *), cmp_name);
  for (size_t i = 0; i < e->nflds; i++)
    fld_find(e, e->fld_list[i])->idx = (uint32_t)i;
}

uint32_t cs__enc_rep_idx(const cs__enc *e, uint64_t r) {
  return rep_find(e, r)->idx;
}

/* ---- pass 2: items ---- */

/* The slow path of cs__enc_put_u: room for the widest integer. */
bool cs__enc_room_u(cs__enc *e) {
  if (cs__buf_grow(e->out, e->out->size + 9) != 0) {
    e->rc = CS_ENOMEM;
    return false;
  }
  return true;
}

/*
 * A str (or bin) item, header and bytes in one copy: the header msgpack-c's
 * msgpack_pack_str / msgpack_pack_bin write (fixstr up to 31 bytes, then
 * the 8, 16 and 32-bit lengths; bin has no fix form), which is the
 * shortest and the only one the reader accepts. Callers keep len within
 * the wire limits (names 1 KiB, values 1 MiB).
 */
static void put_raw(cs__enc *e, bool bin, const char *s, size_t len) {
  cs_buf *b = e->out;
  uint8_t *p;
  size_t n;
  if (e->rc)
    return;
  if (CS__UNLIKELY(b->size + len + 6 > b->asize) && cs__buf_grow(b, b->size + len + 5) != 0) {
    e->rc = CS_ENOMEM;
    return;
  }
  p = (uint8_t *)b->ptr + b->size;
  if (!bin && len < 32) {
    p[0] = (uint8_t)(0xa0 | len);
    n = 1;
  } else if (len < 256) {
    p[0] = bin ? 0xc4 : 0xd9;
    p[1] = (uint8_t)len;
    n = 2;
  } else if (len < 65536) {
    p[0] = bin ? 0xc5 : 0xda;
    p[1] = (uint8_t)(len >> 8);
    p[2] = (uint8_t)len;
    n = 3;
  } else {
    p[0] = bin ? 0xc6 : 0xdb;
    cs__put_be32(p + 1, (uint32_t)len);
    n = 5;
  }
  if (len)
    memcpy(p + n, s, len);
  b->size += n + len;
}

static void put_str(cs__enc *e, const char *s, size_t len) { put_raw(e, false, s, len); }

void cs__enc_put_name(cs__enc *e, const char *what, const char *s) {
  size_t len = strlen(s);
  if (len == 0 || len > CS_WIRE_MAX_NAME)
    cs__enc_fail(e, CS_ETOOBIG, "%s name of %zu bytes (must be 1..%d)", what, len, CS_WIRE_MAX_NAME);
  put_str(e, s, len);
}

void cs__enc_put_tables(cs__enc *e) {
  if (e->rc) /* the tables may be half built */
    return;
  cs__enc_put_u(e, e->nreps);
  for (size_t i = 0; i < e->nreps; i++)
    cs__enc_put_u(e, e->rep_list[i]);
  cs__enc_put_u(e, e->nflds);
  for (size_t i = 0; i < e->nflds; i++)
    put_str(e, e->fld_list[i], strlen(e->fld_list[i]));
}

void cs__enc_put_val(cs__enc *e, const cs_val *v) {
  int r = 0;
  if (e->rc)
    return;
  switch (v->type) {
  case CS_VAL_NULL:
    r = msgpack_pack_nil(&e->pk);
    break;
  case CS_VAL_BOOL:
    r = v->u.b ? msgpack_pack_true(&e->pk) : msgpack_pack_false(&e->pk);
    break;
  case CS_VAL_INT:
    r = msgpack_pack_int64(&e->pk, v->u.i);
    break;
  case CS_VAL_DOUBLE:
    r = msgpack_pack_double(&e->pk, v->u.d);
    break;
  case CS_VAL_STR:
  case CS_VAL_BYTES:
    if (v->len > CS_WIRE_MAX_VALUE) {
      cs__enc_fail(e, CS_ETOOBIG, "value of %u bytes (the limit is %u)", v->len, CS_WIRE_MAX_VALUE);
      return;
    }
    put_raw(e, v->type == CS_VAL_BYTES, cs__val_data(v), v->len);
    return;
  default:
    cs__enc_fail(e, CS_EINVAL, "value of unknown type %u", v->type);
    return;
  }
  if (r)
    e->rc = CS_ENOMEM;
}

/*
 * Stamps: relative to the previous stamp written. Same millisecond: the
 * counter's signed change (mode 0); a new millisecond with counter 0 (the
 * common case of a fresh tick): the millisecond change alone (mode 1);
 * otherwise the millisecond change and the counter (mode 2).
 */
static void put_hlc(cs__enc *e, cs_hlc h) {
  uint64_t pm = CS_HLC_MS(e->hlc), hm = CS_HLC_MS(h);
  int64_t pc = (int64_t)(e->hlc & 0xffff), hc = (int64_t)(h & 0xffff);
  if (hm == pm) {
    cs__enc_put_u(e, cs__zigzag(hc - pc) << 2);
  } else if (hc == 0) {
    cs__enc_put_u(e, cs__zigzag((int64_t)(hm - pm)) << 2 | 1);
  } else {
    cs__enc_put_u(e, cs__zigzag((int64_t)(hm - pm)) << 2 | 2);
    cs__enc_put_u(e, (uint64_t)hc);
  }
  e->hlc = h;
}

/* A dot: replica index, then the counter, written as the distance from the
 * previous dot of the same document when that one has the same replica
 * (runs of consecutive dots cost one byte each). */
static void put_dot(cs__enc *e, cs__dot_prev *pv, cs_dot d) {
  uint32_t r = cs__enc_rep_idx(e, d.replica);
  if (d.counter == 0)
    cs__enc_fail(e, CS_EINVAL, "dot of replica %016llx with counter 0", (unsigned long long)d.replica);
  cs__enc_put_u(e, r);
  if (pv->valid && pv->ridx == r)
    cs__enc_put_u(e, cs__zigzag((int64_t)(d.counter - pv->counter - 1)));
  else
    cs__enc_put_u(e, d.counter);
  pv->valid = true;
  pv->ridx = r;
  pv->counter = d.counter;
}

void cs__enc_put_dotset(cs__enc *e, const cs_dotset *s) {
  size_t i = 0, j = 0, groups = 0;
  /* Count the replicas first: the count precedes the entries. */
  while (i < s->vv_len || j < s->extra_len) {
    cs_replica r = (i < s->vv_len && (j >= s->extra_len || s->vv[i].replica <= s->extra[j].replica))
                       ? s->vv[i].replica
                       : s->extra[j].replica;
    if (i < s->vv_len && s->vv[i].replica == r)
      i++;
    while (j < s->extra_len && s->extra[j].replica == r)
      j++;
    groups++;
  }
  cs__enc_put_u(e, groups);
  i = j = 0;
  while (i < s->vv_len || j < s->extra_len) {
    cs_replica r = (i < s->vv_len && (j >= s->extra_len || s->vv[i].replica <= s->extra[j].replica))
                       ? s->vv[i].replica
                       : s->extra[j].replica;
    uint64_t max = 0, prev;
    size_t j0 = j;
    if (i < s->vv_len && s->vv[i].replica == r)
      max = s->vv[i++].max;
    while (j < s->extra_len && s->extra[j].replica == r)
      j++;
    cs__enc_put_u(e, cs__enc_rep_idx(e, r));
    cs__enc_put_u(e, max);
    cs__enc_put_u(e, j - j0);
    if (j > j0 && max >= UINT64_MAX - 1) {
      cs__enc_fail(e, CS_EINVAL, "dot set: replica %016llx has extras above counter %llu",
           (unsigned long long)r, (unsigned long long)max);
      return;
    }
    /* Extras lie above max + 1 (else the set would have folded them), in
     * increasing order: write the gaps minus their minimum. */
    prev = max + 1;
    for (size_t k = j0; k < j; k++) {
      uint64_t c = s->extra[k].counter;
      if (c <= prev) {
        cs__enc_fail(e, CS_EINVAL, "dot set not compact: replica %016llx extra dot %llu",
             (unsigned long long)r, (unsigned long long)c);
        return;
      }
      cs__enc_put_u(e, c - prev - 1);
      prev = c;
    }
  }
}

void cs__enc_put_doc(cs__enc *e, const cs_doc *d, cs__dot_prev *pv) {
  uint32_t prev_f = 0;
  cs__enc_put_u(e, d->nexist);
  for (size_t i = 0; i < d->nexist && !e->rc; i++) {
    const cs_exist_entry *x = &d->exist[i];
    if (i && cs__dot_cmp(&d->exist[i - 1].dot, &x->dot) >= 0)
      cs__enc_fail(e, CS_EINVAL, "existence entries not sorted at %zu", i);
    put_dot(e, pv, x->dot);
    put_hlc(e, x->hlc);
    if (x->alive) {
      if (x->observed.vv_len || x->observed.extra_len)
        cs__enc_fail(e, CS_EINVAL, "alive existence entry %zu has observed dots", i);
      if (!e->rc && msgpack_pack_true(&e->pk))
        e->rc = CS_ENOMEM;
    } else {
      if (!e->rc && msgpack_pack_false(&e->pk))
        e->rc = CS_ENOMEM;
      cs__enc_put_dotset(e, &x->observed);
    }
  }
  cs__enc_put_u(e, d->nfields);
  for (size_t f = 0; f < d->nfields && !e->rc; f++) {
    const cs_field *fl = &d->fields[f];
    uint32_t fi = e->doc_order ? (uint32_t)f : fld_find(e, fl->name)->idx;
    if (f && fi <= prev_f)
      cs__enc_fail(e, CS_EINVAL, "fields not sorted: '%s' after '%s'", fl->name, d->fields[f - 1].name);
    prev_f = fi;
    if (fl->kind < CS_KIND_REG || fl->kind > CS_KIND_CTR)
      cs__enc_fail(e, CS_EINVAL, "field '%s' of unknown kind %u", fl->name, fl->kind);
    cs__enc_put_u(e, (uint64_t)fi << 2 | fl->kind);
    if (fl->kind == CS_KIND_REG) {
      const cs_reg *r = &fl->u.reg;
      cs__enc_put_u(e, r->len);
      for (size_t i = 0; i < r->len; i++) {
        if (i && cs__dot_cmp(&r->entries[i - 1].dot, &r->entries[i].dot) >= 0)
          cs__enc_fail(e, CS_EINVAL, "field '%s': register entries not sorted at %zu", fl->name, i);
        put_dot(e, pv, r->entries[i].dot);
        put_hlc(e, r->entries[i].hlc);
        cs__enc_put_val(e, &r->entries[i].val);
      }
    } else if (fl->kind == CS_KIND_SET) {
      const cs_set *s = &fl->u.set;
      cs__enc_put_u(e, s->len);
      for (size_t i = 0; i < s->len; i++) {
        const cs_set_elem *el = &s->elems[i];
        if (i && cs__val_cmp(&s->elems[i - 1].val, &el->val) >= 0)
          cs__enc_fail(e, CS_EINVAL, "field '%s': set elements not sorted at %zu", fl->name, i);
        cs__enc_put_val(e, &el->val);
        cs__enc_put_u(e, el->ndots);
        for (size_t k = 0; k < el->ndots; k++) {
          if (k && cs__dot_cmp(&el->dots[k - 1], &el->dots[k]) >= 0)
            cs__enc_fail(e, CS_EINVAL, "field '%s': element %zu dots not sorted", fl->name, i);
          put_dot(e, pv, el->dots[k]);
        }
      }
    } else if (fl->kind == CS_KIND_CTR) {
      const cs_ctr *c = &fl->u.ctr;
      cs__enc_put_u(e, c->len);
      for (size_t i = 0; i < c->len; i++) {
        if (i && c->entries[i - 1].replica >= c->entries[i].replica)
          cs__enc_fail(e, CS_EINVAL, "field '%s': counter entries not sorted at %zu", fl->name, i);
        cs__enc_put_u(e, cs__enc_rep_idx(e, c->entries[i].replica));
        cs__enc_put_u(e, c->entries[i].pos);
        cs__enc_put_u(e, c->entries[i].neg);
      }
    }
  }
}

static void push_item(cs__enc *e, uint32_t ridx, bool vv, uint64_t c) {
  if (e->rc)
    return;
  if (e->nitems == e->items_cap &&
      (e->rc = cs__array_grow((void **)&e->items, &e->items_cap, e->nitems + 1, sizeof(cov_item))))
    return;
  e->items[e->nitems++] = (cov_item){ridx, vv, c};
}

/*
 * The covered dots of an action: its context minus its own dots first..last
 * (implied), in compact form: per replica an optional "all of 1..max" item,
 * then single dots above max + 1.
 */
static void covered_items(cs__enc *e, const cs_wire_action *a) {
  const cs_dotset *s = &a->ctx;
  size_t i = 0, j = 0;
  uint64_t own = 0;
  e->nitems = 0;
  while ((i < s->vv_len || j < s->extra_len) && !e->rc) {
    cs_replica r = (i < s->vv_len && (j >= s->extra_len || s->vv[i].replica <= s->extra[j].replica))
                       ? s->vv[i].replica
                       : s->extra[j].replica;
    uint64_t m = 0;
    size_t j0 = j;
    uint32_t ri = cs__enc_rep_idx(e, r);
    if (i < s->vv_len && s->vv[i].replica == r)
      m = s->vv[i++].max;
    while (j < s->extra_len && s->extra[j].replica == r)
      j++;
    if (r != a->origin) {
      if (m)
        push_item(e, ri, true, m);
      for (size_t k = j0; k < j; k++)
        push_item(e, ri, false, s->extra[k].counter);
      continue;
    }
    if (m >= a->first) {
      uint64_t top = m < a->last ? m : a->last;
      own += top - a->first + 1;
      if (a->first > 1)
        push_item(e, ri, true, a->first - 1);
      if (m > a->last) {
        if (m - a->last > CS_WIRE_MAX_SPAN) {
          cs__enc_fail(e, CS_ETOOBIG, "action context covers %llu of its origin's later dots",
               (unsigned long long)(m - a->last));
          return;
        }
        for (uint64_t k = 0; k < m - a->last; k++)
          push_item(e, ri, false, a->last + 1 + k);
      }
    } else if (m) {
      push_item(e, ri, true, m);
    }
    for (size_t k = j0; k < j; k++) {
      uint64_t c = s->extra[k].counter;
      if (c >= a->first && c <= a->last)
        own++;
      else
        push_item(e, ri, false, c);
    }
  }
  if (!e->rc && own != a->last - a->first + 1)
    cs__enc_fail(e, CS_EINVAL, "action of %016llx dots %llu..%llu: its context lacks some of its own dots",
         (unsigned long long)a->origin, (unsigned long long)a->first, (unsigned long long)a->last);
}

/* One covered item (see CS__ITEM_LIM); single dots are written relative to
 * the document's dot cursor when it has one. */
static void put_item(cs__enc *e, const cs_wire_action *a, const cov_item *it) {
  uint64_t code = it->counter, *cur = NULL;
  bool found;
  if (!it->vv && e->use_cur && !e->rc) {
    if (!(cur = cs__dotcur_at(&e->cur, a->instance, it->ridx, &found)))
      e->rc = CS_ENOMEM;
    else if (found)
      code = cs__zigzag((int64_t)(it->counter - *cur));
  }
  cs__enc_put_u(e, ((code < CS__ITEM_LIM ? code : CS__ITEM_LIM) * e->nreps + it->ridx) << 1 | it->vv);
  if (code >= CS__ITEM_LIM)
    cs__enc_put_u(e, code - CS__ITEM_LIM);
  if (cur)
    *cur = it->counter;
}

/* One action record; prev_last is the last dot of the previous action of the
 * same origin in the stream (0 for the first). */
void cs__enc_put_action(cs__enc *e, const cs_wire_action *a, uint64_t prev_last, bool with_instance) {
  const cs_field *fl;
  int shape = cs__wire_action_shape(a, &fl), code;
  uint64_t tag;
  uint32_t oridx = cs__enc_rep_idx(e, a->origin);
  cs__dot_prev pv = {true, oridx, a->first - 1};
  bool one;

  if (a->first == 0 || a->last < a->first || a->first <= prev_last) {
    cs__enc_fail(e, CS_EINVAL, "action of %016llx with dots %llu..%llu after dot %llu",
         (unsigned long long)a->origin, (unsigned long long)a->first, (unsigned long long)a->last,
         (unsigned long long)prev_last);
    return;
  }
  if (a->last - a->first >= CS_WIRE_MAX_SPAN) {
    cs__enc_fail(e, CS_ETOOBIG, "action with %llu dots (the limit is %u)",
         (unsigned long long)(a->last - a->first + 1), CS_WIRE_MAX_SPAN);
    return;
  }
  covered_items(e, a);
  if (e->rc)
    return;
  one = e->nitems == 1 && !e->items[0].vv;
  switch (shape) {
  case CS__SHAPE_REG1:
    code = one ? CS__CODE_REG1_ONE : CS__CODE_REG1_LIST;
    break;
  case CS__SHAPE_ADD1:
    code = e->nitems ? CS__CODE_ADD1_LIST : CS__CODE_ADD1_NONE;
    break;
  case CS__SHAPE_EMPTY:
    code = one ? CS__CODE_EMPTY_ONE : CS__CODE_EMPTY_LIST;
    break;
  default:
    code = CS__CODE_GENERAL_LIST;
    break;
  }
  tag = (uint64_t)code;
  if (shape == CS__SHAPE_REG1 || shape == CS__SHAPE_ADD1)
    tag |= (uint64_t)fld_find(e, fl->name)->idx << CS__TAG_FIELD_SHIFT;
  if (with_instance) {
    /* Instance tables list instances in first-use order: a new one is the
     * next index (code 0), an older one a distance back. */
    uint64_t next = e->inst_next, k = a->instance <= next ? next - a->instance : a->instance;
    if (k < CS__INST_ONE) {
      cs__enc_put_u(e, k);
    } else if (k < CS__INST_PAIR_END) {
      cs__enc_put_u(e, CS__INST_ONE + ((k - CS__INST_ONE) >> 7));
      cs__enc_put_u(e, (k - CS__INST_ONE) & 127);
    } else {
      cs__enc_put_u(e, CS__INST_ESCAPE);
      cs__enc_put_u(e, k - CS__INST_PAIR_END);
    }
    if (a->instance >= e->inst_next)
      e->inst_next = (uint64_t)a->instance + 1;
  }
  if (a->first != prev_last + 1 || a->last != a->first) {
    cs__enc_put_u(e, CS__CODE_RANGE);
    cs__enc_put_u(e, a->first - prev_last - 1);
    cs__enc_put_u(e, a->last - a->first);
  }
  cs__enc_put_u(e, tag);
  put_hlc(e, a->hlc);
  if (shape == CS__SHAPE_REG1)
    cs__enc_put_val(e, &fl->u.reg.entries[0].val);
  else if (shape == CS__SHAPE_ADD1)
    cs__enc_put_val(e, &fl->u.set.elems[0].val);
  else if (shape == CS__SHAPE_GENERAL)
    cs__enc_put_doc(e, &a->doc, &pv);
  if (code == CS__CODE_REG1_ONE || code == CS__CODE_EMPTY_ONE) {
    put_item(e, a, &e->items[0]);
  } else if (code != CS__CODE_ADD1_NONE) {
    cs__enc_put_u(e, e->nitems);
    for (size_t i = 0; i < e->nitems && !e->rc; i++)
      put_item(e, a, &e->items[i]);
  }
  if (e->use_cur && !e->rc)
    e->rc = cs__dotcur_set(&e->cur, a->instance, oridx, a->last);
}

void cs__enc_put_frame(cs__enc *e, uint8_t type) {
  uint8_t hdr[2] = {CS_WIRE_VERSION, type};
  if (!e->rc && enc_write(e->out, (const char *)hdr, 2) != 0)
    e->rc = CS_ENOMEM;
}

/* Ends an encoding: NUL-terminates the buffer, or cuts it back on failure. */
int cs__enc_end(cs__enc *e, size_t start) {
  int rc = e->rc;
  if (rc) {
    e->out->size = start;
    if (e->out->ptr)
      e->out->ptr[start] = '\0';
  } else if (e->out->ptr) {
    e->out->ptr[e->out->size] = '\0';
  }
  enc_dispose(e);
  return rc;
}

int cs__codec_encode_doc(cs_buf *out, const cs_doc *doc) {
  cs__enc e;
  size_t start = out->size;
  cs__dot_prev pv = {false, 0, 0};
  cs__enc_init(&e, out);
  collect_doc(&e, doc, false);
  doc_field_table(&e, doc);
  cs__enc_tables_finish(&e);
  cs__enc_put_frame(&e, CS__WIRE_DOC);
  cs__enc_put_tables(&e);
  cs__enc_put_doc(&e, doc, &pv);
  return cs__enc_end(&e, start);
}

int cs__codec_encode_dotset(cs_buf *out, const cs_dotset *s) {
  cs__enc e;
  size_t start = out->size;
  cs__enc_init(&e, out);
  cs__enc_collect_dotset(&e, s);
  cs__enc_tables_finish(&e);
  cs__enc_put_frame(&e, CS__WIRE_DOTSET);
  cs__enc_put_tables(&e);
  cs__enc_put_dotset(&e, s);
  return cs__enc_end(&e, start);
}

int cs__codec_encode_action(cs_buf *out, const cs_wire_action *a, const char *instance) {
  cs__enc e;
  size_t start = out->size;
  cs__enc_init(&e, out);
  cs__enc_collect_action(&e, a);
  cs__enc_tables_finish(&e);
  if (e.nreps > CS__MAX_REPLICAS)
    cs__enc_fail(&e, CS_ETOOBIG, "%zu replicas in one action", e.nreps);
  cs__enc_put_frame(&e, CS__WIRE_ACTION);
  cs__enc_put_tables(&e);
  cs__enc_put_name(&e, "instance", instance);
  cs__enc_put_u(&e, e.rc ? 0 : cs__enc_rep_idx(&e, a->origin));
  cs__enc_put_action(&e, a, 0, false);
  return cs__enc_end(&e, start);
}

