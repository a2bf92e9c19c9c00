/*
 * The strict decoder (docs/wire-format.md). Everything is checked before it is
 * trusted: counts against the remaining bytes before allocating, table indexes
 * against the tables, order and uniqueness (so that only the canonical
 * encoding of a value is accepted), dot counters >= 1, kinds and types. On
 * failure the partly built output is freed and zeroed.
 */
#include <stdlib.h>

#include "core/codec_dec.h"

#define TRY(x) CS__TRY(x)

void cs__dec_init(cs__dec *d, const uint8_t *p, size_t len) {
  memset(d, 0, sizeof(*d));
  d->base = d->p = p;
  d->end = p + len;
  d->action = d->state = -1;
  /* A real action spends at least a byte per own dot (its entries). */
  d->dot_budget = (uint64_t)len + 64;
}

void cs__dec_dispose(cs__dec *d) {
  if (d->reps != d->reps_small)
    cs__free(d->reps);
  if (d->rep_used != d->rep_used_small)
    cs__free(d->rep_used);
  if (d->flds != d->flds_small)
    cs__free(d->flds);
  if (d->fld_lens != d->lens_small)
    cs__free(d->fld_lens);
  if (d->fld_used != d->fld_used_small)
    cs__free(d->fld_used);
  if (d->fld_shared != d->fld_shared_small)
    cs__free(d->fld_shared);
  cs__dotcur_dispose(&d->cur);
  if (d->own_pool) {
    cs__action_pool_dispose(d->pool);
    cs__free(d->pool);
  }
}

/* Version and kind bytes of a frame. */
int cs__dec_frame(cs__dec *d, size_t len, uint8_t want, const char *what) {
  if (len > CS_WIRE_MAX_MESSAGE)
    return cs__error(CS_ECORRUPT, "%s of %zu bytes exceeds the limit of %u at offset 0", what, len,
                     CS_WIRE_MAX_MESSAGE);
  if (len < 2)
    return cs__error(CS_ECORRUPT, "truncated: %s of %zu bytes has no header at offset 0", what,
                     len);
  if (d->p[0] != CS_WIRE_VERSION)
    return cs__error(CS_EVERSION, "%s: wire version %u, this build reads version %u at offset 0",
                     what, d->p[0], CS_WIRE_VERSION);
  d->item = 1;
  if (want && d->p[1] != want)
    return cs__dec_fail(d, "%s: frame kind %u, expected %u", what, d->p[1], want);
  d->p += 2;
  return 0;
}

int cs__dec_end(cs__dec *d) {
  d->item = (size_t)(d->p - d->base);
  if (d->p != d->end)
    return cs__dec_fail(d, "%zu trailing bytes", (size_t)(d->end - d->p));
  /* The encoder tables exactly what it refers to: an unused entry means the
   * input is not the canonical encoding of what it decodes to. */
  for (size_t i = 0; i < d->nreps; i++)
    if (!d->rep_used[i])
      return cs__dec_fail(d, "replica table entry %zu (%016llx) is never used", i,
                          (unsigned long long)d->reps[i]);
  for (size_t i = 0; i < d->nflds; i++)
    if (!d->fld_used[i])
      return cs__dec_fail(d, "field table entry %zu ('%.*s') is never used", i, (int)d->fld_lens[i],
                          (const char *)d->flds[i]);
  return 0;
}

static int cmp_bytes(const uint8_t *a, uint32_t al, const uint8_t *b, uint32_t bl) {
  int c = memcmp(a, b, al < bl ? al : bl);
  return c ? c : (al > bl) - (al < bl);
}

/*
 * The field table memo: the last documents' field table this thread read,
 * by its bytes. The documents of a model mostly carry the same table, and
 * reading it (sort checks, a shared-name lookup per field) is a good part of
 * a small document's decoding. Equal bytes read the same, and the names it
 * keeps are shared ones, which are never freed. A document that decoded
 * whole with at most CS__DEC_SMALL fields, all shared, is remembered.
 */
#define FLD_MEMO_BYTES 256

typedef struct fld_memo {
  size_t len, n; /* bytes of the table, count included; its entries */
  uint8_t bytes[FLD_MEMO_BYTES];
  uint16_t off[CS__DEC_SMALL]; /* each name's offset in bytes */
  uint32_t lens[CS__DEC_SMALL];
  char *shared[CS__DEC_SMALL];
} fld_memo;

static _Thread_local fld_memo memo;

static bool memo_take(cs__dec *d) {
  const uint8_t *start = d->p;
  if (memo.len == 0 || (size_t)(d->end - start) < memo.len || memcmp(start, memo.bytes, memo.len))
    return false;
  d->flds = d->flds_small;
  d->fld_lens = d->lens_small;
  d->fld_used = d->fld_used_small;
  d->fld_shared = d->fld_shared_small;
  for (size_t i = 0; i < memo.n; i++) {
    d->flds[i] = start + memo.off[i];
    d->fld_lens[i] = memo.lens[i];
    d->fld_shared[i] = memo.shared[i];
  }
  d->nflds = memo.n;
  d->p = start + memo.len;
  return true;
}

static void memo_keep(const cs__dec *d) {
  if (d->memo_hit || d->nflds > CS__DEC_SMALL || d->fld_table_len > FLD_MEMO_BYTES)
    return;
  for (size_t i = 0; i < d->nflds; i++)
    if (!d->fld_shared[i])
      return;
  memo.len = 0; /* not valid while it changes */
  memcpy(memo.bytes, d->fld_table, d->fld_table_len);
  for (size_t i = 0; i < d->nflds; i++) {
    memo.off[i] = (uint16_t)(d->flds[i] - d->fld_table);
    memo.lens[i] = d->fld_lens[i];
    memo.shared[i] = d->fld_shared[i];
  }
  memo.n = d->nflds;
  memo.len = d->fld_table_len;
}

void cs__dec_memo_forget(void) {
  memo.len = 0;
}

int cs__dec_tables(cs__dec *d) {
  size_t n;
  int rc;
  if ((rc = cs__dec_count(d, &n, 1, "replica table")) != 0)
    return rc;
  if (n <= CS__DEC_SMALL) {
    d->reps = d->reps_small;
    d->rep_used = d->rep_used_small;
  } else if (!(d->reps = cs__malloc(n * sizeof(uint64_t))) || !(d->rep_used = cs__calloc(n, 1)))
    return CS_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    if ((rc = cs__dec_uint(d, &d->reps[i], "replica id")) != 0)
      return rc;
    if (i && d->reps[i] <= d->reps[i - 1])
      return cs__dec_fail(d, "replica table: id %016llx not above %016llx (unsorted or duplicate)",
                          (unsigned long long)d->reps[i], (unsigned long long)d->reps[i - 1]);
    d->nreps = i + 1;
  }
  d->fld_table = d->p;
  if (d->use_memo && memo_take(d)) {
    d->fld_table_len = memo.len;
    d->memo_hit = true;
    return 0;
  }
  if ((rc = cs__dec_count(d, &n, 2, "field table")) != 0)
    return rc;
  if (n <= CS__DEC_SMALL) {
    d->flds = d->flds_small;
    d->fld_lens = d->lens_small;
    d->fld_used = d->fld_used_small;
    d->fld_shared = d->fld_shared_small;
  } else {
    d->flds = cs__malloc(n * sizeof(uint8_t *));
    d->fld_lens = cs__malloc(n * sizeof(uint32_t));
    d->fld_used = cs__calloc(n, 1);
    d->fld_shared = cs__calloc(n, sizeof(char *));
    if (!d->flds || !d->fld_lens || !d->fld_used || !d->fld_shared)
      return CS_ENOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    if ((rc = cs__dec_name(d, &d->flds[i], &d->fld_lens[i], "field name")) != 0)
      return rc;
    if (i && cmp_bytes(d->flds[i], d->fld_lens[i], d->flds[i - 1], d->fld_lens[i - 1]) <= 0)
      return cs__dec_fail(d, "field table: '%.*s' not after '%.*s' (unsorted or duplicate)",
                          (int)d->fld_lens[i], (const char *)d->flds[i], (int)d->fld_lens[i - 1],
                          (const char *)d->flds[i - 1]);
    d->nflds = i + 1;
  }
  d->fld_table_len = (size_t)(d->p - d->fld_table);
  return 0;
}

/* A message names the same few fields in thousands of actions: the shared
 * copy is looked up once per table entry. A private copy (the shared table
 * is full) is made each time, since every field frees its own. */
char *cs__dec_field_name(cs__dec *d, uint64_t fi) {
  char *name = d->fld_shared[fi];
  if (name)
    return name;
  name = cs__name_dupn((const char *)d->flds[fi], d->fld_lens[fi]);
  if (name && cs__name_shared(name))
    d->fld_shared[fi] = name;
  return name;
}

int cs__dec_ridx(cs__dec *d, uint32_t *out, const char *what) {
  uint64_t v;
  int rc = cs__dec_uint(d, &v, what);
  if (rc)
    return rc;
  if (v >= d->nreps)
    return cs__dec_fail(d, "%s: replica index %llu out of range (table has %zu)", what,
                        (unsigned long long)v, d->nreps);
  *out = (uint32_t)v;
  d->rep_used[v] = 1;
  return 0;
}

static int dec_dot(cs__dec *d, cs__dot_prev *pv, cs_dot *out, const char *what) {
  uint32_t r = 0;
  uint64_t code, c;
  int rc;
  if ((rc = cs__dec_ridx(d, &r, what)) != 0 || (rc = cs__dec_uint(d, &code, what)) != 0)
    return rc;
  if (pv->valid && pv->ridx == r)
    c = pv->counter + 1 + (uint64_t)cs__unzigzag(code);
  else
    c = code;
  if (c == 0)
    return cs__dec_fail(d, "%s: dot counter 0 (counters start at 1)", what);
  pv->valid = true;
  pv->ridx = r;
  pv->counter = c;
  out->replica = d->reps[r];
  out->counter = c;
  return 0;
}

int cs__dec_dotset(cs__dec *d, cs_dotset *out, const char *what) {
  size_t n, extra_cap = 0;
  int rc = 0;
  long prev_r = -1;
  memset(out, 0, sizeof(*out));
  TRY(cs__dec_count(d, &n, 3, what));
  if (n && !(out->vv = cs__malloc(n * sizeof(cs_vv_entry)))) {
    rc = CS_ENOMEM;
    goto done;
  }
  out->vv_cap = n;
  for (size_t i = 0; i < n; i++) {
    uint32_t r = 0;
    uint64_t max, prev;
    size_t nx;
    TRY(cs__dec_ridx(d, &r, what));
    if ((long)r <= prev_r) {
      rc = cs__dec_fail(d, "%s: replica index %u not above %ld (unsorted or duplicate)", what, r,
                        prev_r);
      goto done;
    }
    prev_r = r;
    TRY(cs__dec_uint(d, &max, what));
    TRY(cs__dec_count(d, &nx, 1, what));
    if (max == 0 && nx == 0) {
      rc = cs__dec_fail(d, "%s: entry of replica index %u holds no dots", what, r);
      goto done;
    }
    if (nx && max >= UINT64_MAX - 1) {
      rc = cs__dec_fail(d, "%s: extras above counter %llu", what, (unsigned long long)max);
      goto done;
    }
    if (max)
      out->vv[out->vv_len++] = (cs_vv_entry){d->reps[r], max};
    if (nx && (rc = cs__array_grow((void **)&out->extra, &extra_cap, out->extra_len + nx,
                                   sizeof(cs_dot))) != 0)
      goto done;
    out->extra_cap = extra_cap;
    prev = max + 1;
    for (size_t k = 0; k < nx; k++) {
      uint64_t gap;
      TRY(cs__dec_uint(d, &gap, what));
      if (gap >= UINT64_MAX - prev) {
        rc = cs__dec_fail(d, "%s: dot counter overflows", what);
        goto done;
      }
      prev += gap + 1;
      out->extra[out->extra_len++] = (cs_dot){d->reps[r], prev};
    }
  }
done:
  if (rc)
    cs__dotset_dispose(out);
  return rc;
}

static int dec_fields(cs__dec *d, cs_doc *doc, cs__dot_prev *pv) {
  size_t n;
  int rc = 0;
  long prev_f = -1;
  TRY(cs__dec_count(d, &n, 2, "field count"));
  if (n && !(doc->fields = cs__calloc(n, sizeof(cs_field)))) {
    rc = CS_ENOMEM;
    goto done;
  }
  doc->nfields = doc->fields_cap = n;
  for (size_t f = 0; f < n; f++) {
    cs_field *fl = &doc->fields[f];
    uint64_t head, fi;
    size_t ne;
    TRY(cs__dec_uint(d, &head, "field"));
    fi = head >> 2;
    if (fi >= d->nflds) {
      rc = cs__dec_fail(d, "field index %llu out of range (table has %zu)", (unsigned long long)fi,
                        d->nflds);
      goto done;
    }
    if ((long)fi <= prev_f) {
      rc = cs__dec_fail(d, "field '%.*s': fields unsorted or duplicate", (int)d->fld_lens[fi],
                        (const char *)d->flds[fi]);
      goto done;
    }
    prev_f = (long)fi;
    d->fld_used[fi] = 1;
    if ((head & 3) == 0) {
      rc = cs__dec_fail(d, "field '%.*s': bad kind 0", (int)d->fld_lens[fi],
                        (const char *)d->flds[fi]);
      goto done;
    }
    if (!(fl->name = cs__dec_field_name(d, fi))) {
      rc = CS_ENOMEM;
      goto done;
    }
    fl->kind = (uint8_t)(head & 3);
    if (fl->kind == CS_KIND_REG) {
      cs_reg *r = &fl->u.reg;
      TRY(cs__dec_count(d, &ne, 4, "register entries"));
      if (ne && !(r->entries = cs__calloc(ne, sizeof(cs_reg_entry)))) {
        rc = CS_ENOMEM;
        goto done;
      }
      r->cap = ne;
      for (size_t i = 0; i < ne; i++) {
        cs_reg_entry *en = &r->entries[i];
        TRY(dec_dot(d, pv, &en->dot, "register entry dot"));
        if (i && cs__dot_cmp(&r->entries[i - 1].dot, &en->dot) >= 0) {
          rc = cs__dec_fail(d, "field '%s': register entries unsorted or duplicate", fl->name);
          goto done;
        }
        TRY(cs__dec_hlc(d, &en->hlc, "register entry stamp"));
        TRY(cs__dec_val(d, &en->val, "register value"));
        r->len = i + 1;
      }
    } else if (fl->kind == CS_KIND_SET) {
      cs_set *s = &fl->u.set;
      TRY(cs__dec_count(d, &ne, 2, "set elements"));
      if (ne && !(s->elems = cs__calloc(ne, sizeof(cs_set_elem)))) {
        rc = CS_ENOMEM;
        goto done;
      }
      s->cap = ne;
      for (size_t i = 0; i < ne; i++) {
        cs_set_elem *el = &s->elems[i];
        size_t nd;
        s->len = i + 1;
        TRY(cs__dec_val(d, &el->val, "set element"));
        if (i && cs__val_cmp(&s->elems[i - 1].val, &el->val) >= 0) {
          rc = cs__dec_fail(d, "field '%s': set elements unsorted or duplicate", fl->name);
          goto done;
        }
        TRY(cs__dec_count(d, &nd, 2, "element dots"));
        if (nd && !(el->dots = cs__malloc(nd * sizeof(cs_dot)))) {
          rc = CS_ENOMEM;
          goto done;
        }
        el->cap = nd;
        for (size_t k = 0; k < nd; k++) {
          TRY(dec_dot(d, pv, &el->dots[k], "element dot"));
          if (k && cs__dot_cmp(&el->dots[k - 1], &el->dots[k]) >= 0) {
            rc = cs__dec_fail(d, "field '%s': element %zu dots unsorted or duplicate", fl->name, i);
            goto done;
          }
          el->ndots = k + 1;
        }
      }
    } else {
      cs_ctr *c = &fl->u.ctr;
      long prev_r = -1;
      TRY(cs__dec_count(d, &ne, 3, "counter entries"));
      if (ne && !(c->entries = cs__calloc(ne, sizeof(cs_ctr_entry)))) {
        rc = CS_ENOMEM;
        goto done;
      }
      c->cap = ne;
      for (size_t i = 0; i < ne; i++) {
        cs_ctr_entry *en = &c->entries[i];
        uint32_t r = 0;
        TRY(cs__dec_ridx(d, &r, "counter entry"));
        if ((long)r <= prev_r) {
          rc = cs__dec_fail(d, "field '%s': counter entries unsorted or duplicate", fl->name);
          goto done;
        }
        prev_r = r;
        en->replica = d->reps[r];
        TRY(cs__dec_uint(d, &en->pos, "counter increments"));
        TRY(cs__dec_uint(d, &en->neg, "counter decrements"));
        c->len = i + 1;
      }
    }
  }
done:
  return rc;
}

/* On failure the caller disposes *doc. */
int cs__dec_doc(cs__dec *d, cs_doc *doc, cs__dot_prev *pv) {
  size_t n;
  int rc = 0;
  TRY(cs__dec_count(d, &n, 4, "existence entries"));
  if (n && !(doc->exist = cs__calloc(n, sizeof(cs_exist_entry)))) {
    rc = CS_ENOMEM;
    goto done;
  }
  doc->exist_cap = n;
  for (size_t i = 0; i < n; i++) {
    cs_exist_entry *x = &doc->exist[i];
    doc->nexist = i + 1;
    TRY(dec_dot(d, pv, &x->dot, "existence dot"));
    if (i && cs__dot_cmp(&doc->exist[i - 1].dot, &x->dot) >= 0) {
      rc = cs__dec_fail(d, "existence entries unsorted or duplicate");
      goto done;
    }
    TRY(cs__dec_hlc(d, &x->hlc, "existence stamp"));
    TRY(cs__dec_bool(d, &x->alive, "existence flag"));
    if (!x->alive)
      TRY(cs__dec_dotset(d, &x->observed, "observed dots"));
  }
  TRY(dec_fields(d, doc, pv));
done:
  return rc;
}

int cs__codec_decode_doc(cs_doc *out, const uint8_t *p, size_t len) {
  cs__dec d;
  cs__dot_prev pv = {false, 0, 0};
  int rc;
  memset(out, 0, sizeof(*out));
  cs__dec_init(&d, p, len);
  d.use_memo = true;
  TRY(cs__dec_frame(&d, len, CS__WIRE_DOC, "document"));
  TRY(cs__dec_tables(&d));
  TRY(cs__dec_doc(&d, out, &pv));
  TRY(cs__dec_end(&d));
  memo_keep(&d);
done:
  if (rc) {
    cs__doc_dispose(out);
    memset(out, 0, sizeof(*out));
  }
  cs__dec_dispose(&d);
  return rc;
}

int cs__codec_decode_dotset(cs_dotset *out, const uint8_t *p, size_t len) {
  cs__dec d;
  int rc;
  memset(out, 0, sizeof(*out));
  cs__dec_init(&d, p, len);
  TRY(cs__dec_frame(&d, len, CS__WIRE_DOTSET, "dot set"));
  TRY(cs__dec_tables(&d));
  TRY(cs__dec_dotset(&d, out, "dot set"));
  TRY(cs__dec_end(&d));
done:
  if (rc) {
    cs__dotset_dispose(out);
    memset(out, 0, sizeof(*out));
  }
  cs__dec_dispose(&d);
  return rc;
}
