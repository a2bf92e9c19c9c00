/*
 * The action decoder (docs/wire-format.md section 6): an action record's
 * dot range, tag, stamp, document and covered dots, on top of the readers
 * of core/codec_dec.c, built in arrays from the decoder's action pool
 * (cs_action_pool) when it has some.
 */
#include <stdlib.h>

#include "core/codec_dec.h"

#define TRY(x) CS__TRY(x)

/*
 * ctx := covered ∪ {origin: first..last}, keeping the set compact: when the
 * origin's contiguous prefix reaches first - 1 the range extends it (and
 * swallows extras it meets), otherwise the range becomes extras.
 */
static int ctx_add_own(cs_dotset *s, cs_replica r, uint64_t first, uint64_t last) {
  size_t vi = 0, ja, jb, span = (size_t)(last - first + 1);
  uint64_t m = 0;
  int rc;
  while (vi < s->vv_len && s->vv[vi].replica < r)
    vi++;
  if (vi < s->vv_len && s->vv[vi].replica == r)
    m = s->vv[vi].max;
  for (ja = 0; ja < s->extra_len && s->extra[ja].replica < r; ja++)
    ;
  for (jb = ja; jb < s->extra_len && s->extra[jb].replica == r; jb++)
    ;
  if (m + 1 == first) {
    size_t k = ja;
    m = last;
    while (k < jb && s->extra[k].counter == m + 1)
      m = s->extra[k++].counter;
    if (k > ja) {
      memmove(&s->extra[ja], &s->extra[k], (s->extra_len - k) * sizeof(cs_dot));
      s->extra_len -= k - ja;
    }
    if (vi < s->vv_len && s->vv[vi].replica == r) {
      s->vv[vi].max = m;
      return 0;
    }
    if ((rc = cs__array_grow((void **)&s->vv, &s->vv_cap, s->vv_len + 1, sizeof(cs_vv_entry))))
      return rc;
    memmove(&s->vv[vi + 1], &s->vv[vi], (s->vv_len - vi) * sizeof(cs_vv_entry));
    s->vv[vi] = (cs_vv_entry){r, m};
    s->vv_len++;
    return 0;
  }
  if ((rc = cs__array_grow((void **)&s->extra, &s->extra_cap, s->extra_len + span, sizeof(cs_dot))))
    return rc;
  while (ja < jb && s->extra[ja].counter < first)
    ja++;
  memmove(&s->extra[ja + span], &s->extra[ja], (s->extra_len - ja) * sizeof(cs_dot));
  for (size_t k = 0; k < span; k++)
    s->extra[ja + k] = (cs_dot){r, first + k};
  s->extra_len += span;
  return 0;
}

/* State of the covered-dots reader within one action (order checks). */
typedef struct cov_state {
  long prev_r;
  uint64_t max, prev_c;
} cov_state;

/* One covered item (see CS__ITEM_LIM and the encoder's covered_items). */
static int dec_item(cs__dec *d, cs_wire_action *a, cov_state *cs, uint32_t oridx) {
  cs_dotset *s = &a->ctx;
  uint64_t w, q, code, c, x, *cur = NULL;
  uint32_t r;
  bool vv;
  int rc;
  if ((rc = cs__dec_uint(d, &w, "covered dot")) != 0)
    return rc;
  if (d->nreps == 0)
    return cs__dec_fail(d, "covered dot but the replica table is empty");
  vv = w & 1;
  q = w >> 1;
  r = (uint32_t)(q % d->nreps);
  code = q / d->nreps;
  if (code > CS__ITEM_LIM)
    return cs__dec_fail(d, "covered dot: counter code %llu not in its shortest form",
                        (unsigned long long)code);
  if (code == CS__ITEM_LIM) {
    if ((rc = cs__dec_uint(d, &x, "covered dot counter")) != 0)
      return rc;
    if (x > UINT64_MAX - CS__ITEM_LIM)
      return cs__dec_fail(d, "covered dot counter overflows");
    code += x;
  }
  d->rep_used[r] = 1;
  if ((long)r < cs->prev_r)
    return cs__dec_fail(d, "covered dots unsorted (replica index %u after %ld)", r, cs->prev_r);
  if ((long)r != cs->prev_r)
    cs->max = cs->prev_c = 0;
  else if (vv)
    return cs__dec_fail(d, "covered dots: prefix entry of replica index %u not first", r);
  cs->prev_r = r;
  if (vv) {
    if (code == 0)
      return cs__dec_fail(d, "covered dots: empty prefix of replica index %u", r);
    if (r == oridx && code >= a->first)
      return cs__dec_fail(d, "covered prefix 1..%llu repeats one of the action's own dots",
                          (unsigned long long)code);
    cs->max = cs->prev_c = code;
    if ((rc = cs__array_grow((void **)&s->vv, &s->vv_cap, s->vv_len + 1, sizeof(cs_vv_entry))))
      return rc;
    s->vv[s->vv_len++] = (cs_vv_entry){d->reps[r], code};
    return 0;
  }
  c = code;
  if (d->use_cur) {
    bool found;
    if (!(cur = cs__dotcur_at(&d->cur, a->instance, r, &found)))
      return CS_ENOMEM;
    if (found)
      c = *cur + (uint64_t)cs__unzigzag(code);
  }
  if (r == oridx && c >= a->first && c <= a->last)
    return cs__dec_fail(d, "covered dot %llu repeats one of the action's own dots",
                        (unsigned long long)c);
  if (c <= cs->max || c - cs->max == 1 || c <= cs->prev_c)
    return cs__dec_fail(d,
                        "covered dot %llu of replica index %u: unsorted, duplicate or not compact",
                        (unsigned long long)c, r);
  cs->prev_c = c;
  if (cur)
    *cur = c;
  if ((rc = cs__array_grow((void **)&s->extra, &s->extra_cap, s->extra_len + 1, sizeof(cs_dot))))
    return rc;
  s->extra[s->extra_len++] = (cs_dot){d->reps[r], c};
  return 0;
}

/* The covered dots of an action as its tag code says (a list, exactly one
 * single dot, or none), then its own dots. */
static int dec_covered(cs__dec *d, cs_wire_action *a, uint32_t oridx, int code) {
  cov_state cs = {-1, 0, 0};
  size_t n = 0;
  int rc = 0;
  cs__action_pool_ctx(d->pool, &a->ctx);
  /* The covered dots are mostly single dots, and the action's own dot joins
   * them: one allocation holds both. */
  if (code == CS__CODE_REG1_ONE || code == CS__CODE_EMPTY_ONE) {
    TRY(cs__array_grow((void **)&a->ctx.extra, &a->ctx.extra_cap, 2, sizeof(cs_dot)));
    TRY(dec_item(d, a, &cs, oridx));
    if (a->ctx.vv_len) {
      rc = cs__dec_fail(d, "covered prefix where the tag promises one single dot");
      goto done;
    }
  } else if (code != CS__CODE_ADD1_NONE) {
    TRY(cs__dec_count(d, &n, 1, "covered dots"));
    if ((code == CS__CODE_ADD1_LIST && n == 0) ||
        ((code == CS__CODE_REG1_LIST || code == CS__CODE_EMPTY_LIST) && n == 1)) {
      /* n == 1 is refused only when that one item is a single dot (below). */
      if (n == 0) {
        rc = cs__dec_fail(d, "empty covered list where the tag has a short form");
        goto done;
      }
    }
    /* n is checked against the input only at a byte an item: reserve for a
     * short list, let a long one grow as its items prove to be there. */
    TRY(cs__array_grow((void **)&a->ctx.extra, &a->ctx.extra_cap, (n < 16 ? n : 16) + 1,
                       sizeof(cs_dot)));
    for (size_t i = 0; i < n; i++)
      TRY(dec_item(d, a, &cs, oridx));
    if (n == 1 && a->ctx.extra_len == 1 &&
        (code == CS__CODE_REG1_LIST || code == CS__CODE_EMPTY_LIST)) {
      rc = cs__dec_fail(d, "one covered dot written as a list where the tag has a short form");
      goto done;
    }
  }
  if (d->use_cur)
    TRY(cs__dotcur_set(&d->cur, a->instance, oridx, a->last));
  TRY(ctx_add_own(&a->ctx, d->reps[oridx], a->first, a->last));
done:
  return rc;
}

/* A one-entry document for the REG1 / ADD1 shapes. */
static int one_field(cs__dec *d, cs_wire_action *a, uint64_t fi, int shape) {
  cs_field *fl;
  cs_dot own = {a->origin, a->first};
  int rc = 0;
  if (!(fl = cs__action_pool_field(d->pool)) && !(fl = cs__calloc(1, sizeof(cs_field))))
    return CS_ENOMEM;
  a->doc.fields = fl;
  a->doc.nfields = a->doc.fields_cap = 1;
  if (!(fl->name = cs__dec_field_name(d, fi)))
    return CS_ENOMEM;
  if (shape == CS__SHAPE_REG1) {
    fl->kind = CS_KIND_REG;
    if (!(fl->u.reg.entries = cs__action_pool_reg(d->pool)) &&
        !(fl->u.reg.entries = cs__calloc(1, sizeof(cs_reg_entry))))
      return CS_ENOMEM;
    fl->u.reg.len = fl->u.reg.cap = 1;
    fl->u.reg.entries[0].dot = own;
    fl->u.reg.entries[0].hlc = a->hlc;
    return cs__dec_val(d, &fl->u.reg.entries[0].val, "register value");
  }
  fl->kind = CS_KIND_SET;
  if (!(fl->u.set.elems = cs__action_pool_elem(d->pool)) &&
      !(fl->u.set.elems = cs__calloc(1, sizeof(cs_set_elem))))
    return CS_ENOMEM;
  fl->u.set.len = fl->u.set.cap = 1;
  if ((rc = cs__dec_val(d, &fl->u.set.elems[0].val, "set element")) != 0)
    return rc;
  if (!fl->u.set.elems[0].dots && !(fl->u.set.elems[0].dots = cs__malloc(sizeof(cs_dot))))
    return CS_ENOMEM;
  fl->u.set.elems[0].dots[0] = own;
  fl->u.set.elems[0].ndots = fl->u.set.elems[0].cap = 1;
  return 0;
}

/* One action record (the caller read the instance). On failure the caller
 * disposes *a. */
int cs__dec_action(cs__dec *d, cs_wire_action *a, uint64_t prev_last, uint32_t oridx) {
  uint64_t tag, fi, gap = 0, extent = 0;
  int code, shape, rc = 0;
  const cs_field *probe;
  a->origin = d->reps[oridx];
  TRY(cs__dec_uint(d, &tag, "action tag"));
  if (tag == CS__CODE_RANGE) {
    TRY(cs__dec_uint(d, &gap, "action dot gap"));
    TRY(cs__dec_uint(d, &extent, "action dot span"));
    if (gap == 0 && extent == 0) {
      rc = cs__dec_fail(d, "action: explicit dot range that is the implied one");
      goto done;
    }
    if (extent >= CS_WIRE_MAX_SPAN) {
      rc = cs__dec_fail(d, "action with %llu dots exceeds the limit of %u",
                        (unsigned long long)extent + 1, CS_WIRE_MAX_SPAN);
      goto done;
    }
    TRY(cs__dec_uint(d, &tag, "action tag"));
  }
  code = (int)(tag & 7);
  fi = tag >> CS__TAG_FIELD_SHIFT;
  switch (code) {
  case CS__CODE_REG1_LIST:
  case CS__CODE_REG1_ONE:
    shape = CS__SHAPE_REG1;
    break;
  case CS__CODE_ADD1_LIST:
  case CS__CODE_ADD1_NONE:
    shape = CS__SHAPE_ADD1;
    break;
  case CS__CODE_EMPTY_LIST:
  case CS__CODE_EMPTY_ONE:
    shape = CS__SHAPE_EMPTY;
    break;
  case CS__CODE_GENERAL_LIST:
    shape = CS__SHAPE_GENERAL;
    break;
  default:
    rc = cs__dec_fail(d, "action tag %llu: misplaced dot range prefix", (unsigned long long)tag);
    goto done;
  }
  if ((shape == CS__SHAPE_REG1 || shape == CS__SHAPE_ADD1) && fi >= d->nflds) {
    rc = cs__dec_fail(d, "field index %llu out of range (table has %zu)", (unsigned long long)fi,
                      d->nflds);
    goto done;
  }
  if ((shape == CS__SHAPE_EMPTY || shape == CS__SHAPE_GENERAL) && fi) {
    rc = cs__dec_fail(d, "action tag %llu: field index on a shape without one",
                      (unsigned long long)tag);
    goto done;
  }
  if (shape == CS__SHAPE_REG1 || shape == CS__SHAPE_ADD1)
    d->fld_used[fi] = 1;
  if (prev_last >= UINT64_MAX - 1 - extent || gap > UINT64_MAX - 1 - extent - prev_last) {
    rc = cs__dec_fail(d, "action dot counter overflows");
    goto done;
  }
  if (extent + 1 > d->dot_budget) {
    rc = cs__dec_fail(d, "actions claim more dots than a message of %zu bytes can carry",
                      (size_t)(d->end - d->base));
    goto done;
  }
  d->dot_budget -= extent + 1;
  a->first = prev_last + 1 + gap;
  a->last = a->first + extent;
  TRY(cs__dec_hlc(d, &a->hlc, "action stamp"));
  if (shape == CS__SHAPE_REG1 || shape == CS__SHAPE_ADD1) {
    TRY(one_field(d, a, fi, shape));
  } else if (shape == CS__SHAPE_GENERAL) {
    cs__dot_prev pv = {true, oridx, a->first - 1};
    size_t at = (size_t)(d->p - d->base);
    TRY(cs__dec_doc(d, &a->doc, &pv));
    if (cs__wire_action_shape(a, &probe) != CS__SHAPE_GENERAL) {
      d->item = at;
      rc = cs__dec_fail(d, "action document written in full where a short form exists");
      goto done;
    }
  }
  TRY(dec_covered(d, a, oridx, code));
done:
  return rc;
}

int cs__codec_decode_action(cs_wire_action *a, char **instance, const uint8_t *p, size_t len) {
  cs__dec d;
  uint32_t oridx = 0;
  int rc;
  memset(a, 0, sizeof(*a));
  *instance = NULL;
  cs__dec_init(&d, p, len);
  TRY(cs__dec_frame(&d, len, CS__WIRE_ACTION, "action"));
  TRY(cs__dec_tables(&d));
  TRY(cs__dec_name_dup(&d, instance, "instance"));
  TRY(cs__dec_ridx(&d, &oridx, "action origin"));
  TRY(cs__dec_action(&d, a, 0, oridx));
  TRY(cs__dec_end(&d));
done:
  if (rc) {
    cs__wire_action_dispose(a);
    cs__free(*instance);
    *instance = NULL;
  }
  cs__dec_dispose(&d);
  return rc;
}
