/* The codec's shared pieces: disposal of decoded structures, the action
 * pool and the dot cursor. */
#include "core/codec_int.h"

/* Under AddressSanitizer the arrays waiting in an action pool are poisoned:
 * code that kept a pointer into a dropped action fails there at once
 * instead of reading the next action's data. */
#ifdef CS__ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

void cs__wire_action_dispose(cs_wire_action *a) {
  if (!a)
    return;
  cs__doc_dispose(&a->doc);
  cs__dotset_dispose(&a->ctx);
  memset(a, 0, sizeof(*a));
}

void cs__action_pool_put(cs_action_pool *p, cs_wire_action *a) {
  cs_doc *doc = &a->doc;
  cs_field *f = doc->fields;
  bool kept = false;
  if (p && f && doc->nfields == 1 && doc->fields_cap == 1 && doc->nexist == 0 &&
      p->nfield < CS_ACTION_POOL_MAX) {
    if (f->kind == CS_KIND_REG && f->u.reg.len == 1 && f->u.reg.cap == 1 &&
        p->nreg < CS_ACTION_POOL_MAX) {
      cs__val_dispose(&f->u.reg.entries[0].val);
      p->reg[p->nreg++] = f->u.reg.entries;
      POISON(f->u.reg.entries, sizeof(cs_reg_entry));
      kept = true;
    } else if (f->kind == CS_KIND_SET && f->u.set.len == 1 && f->u.set.cap == 1 &&
               !f->u.set.index && f->u.set.elems[0].cap == 1 && p->nelem < CS_ACTION_POOL_MAX) {
      cs__val_dispose(&f->u.set.elems[0].val);
      p->elem[p->nelem++] = f->u.set.elems;
      POISON(f->u.set.elems[0].dots, sizeof(cs_dot));
      POISON(f->u.set.elems, sizeof(cs_set_elem));
      kept = true;
    }
  }
  if (kept) {
    cs__name_free(f->name);
    p->field[p->nfield++] = f;
    POISON(f, sizeof(*f));
    doc->fields = NULL;
    doc->nfields = doc->fields_cap = 0;
  }
  if (p && a->ctx.extra && p->nextra < CS_ACTION_POOL_MAX) {
    p->extra_cap[p->nextra] = a->ctx.extra_cap;
    p->extra[p->nextra++] = a->ctx.extra;
    POISON(a->ctx.extra, a->ctx.extra_cap * sizeof(cs_dot));
    a->ctx.extra = NULL;
    a->ctx.extra_len = a->ctx.extra_cap = 0;
  }
  if (p && a->ctx.vv && p->nvv < CS_ACTION_POOL_MAX) {
    p->vv_cap[p->nvv] = a->ctx.vv_cap;
    p->vv[p->nvv++] = a->ctx.vv;
    POISON(a->ctx.vv, a->ctx.vv_cap * sizeof(cs_vv_entry));
    a->ctx.vv = NULL;
    a->ctx.vv_len = a->ctx.vv_cap = 0;
  }
  cs__wire_action_dispose(a);
}

cs_field *cs__action_pool_field(cs_action_pool *p) {
  cs_field *f;
  if (!p || !p->nfield)
    return NULL;
  f = p->field[--p->nfield];
  UNPOISON(f, sizeof(*f));
  memset(f, 0, sizeof(*f));
  return f;
}

cs_reg_entry *cs__action_pool_reg(cs_action_pool *p) {
  cs_reg_entry *e;
  if (!p || !p->nreg)
    return NULL;
  e = p->reg[--p->nreg];
  UNPOISON(e, sizeof(*e));
  memset(e, 0, sizeof(*e));
  return e;
}

cs_set_elem *cs__action_pool_elem(cs_action_pool *p) {
  cs_set_elem *el;
  cs_dot *dots;
  if (!p || !p->nelem)
    return NULL;
  el = p->elem[--p->nelem];
  UNPOISON(el, sizeof(*el));
  dots = el->dots;
  UNPOISON(dots, sizeof(cs_dot));
  memset(el, 0, sizeof(*el));
  el->dots = dots;
  return el;
}

void cs__action_pool_ctx(cs_action_pool *p, cs_dotset *ctx) {
  if (p && !ctx->extra && p->nextra) {
    p->nextra--;
    ctx->extra = p->extra[p->nextra];
    ctx->extra_cap = p->extra_cap[p->nextra];
    UNPOISON(ctx->extra, ctx->extra_cap * sizeof(cs_dot));
  }
  if (p && !ctx->vv && p->nvv) {
    p->nvv--;
    ctx->vv = p->vv[p->nvv];
    ctx->vv_cap = p->vv_cap[p->nvv];
    UNPOISON(ctx->vv, ctx->vv_cap * sizeof(cs_vv_entry));
  }
}

void cs__action_pool_dispose(cs_action_pool *p) {
  if (!p)
    return;
  while (p->nfield)
    cs__free(cs__action_pool_field(p));
  while (p->nreg)
    cs__free(cs__action_pool_reg(p));
  while (p->nelem) {
    cs_set_elem *el = cs__action_pool_elem(p);
    cs__free(el->dots);
    cs__free(el);
  }
  while (p->nextra || p->nvv) {
    cs_dotset ctx = CS_DOTSET_INIT;
    cs__action_pool_ctx(p, &ctx);
    cs__dotset_dispose(&ctx);
  }
}

static void wire_model_dispose(cs_wire_model *m) {
  cs__free(m->name);
  cs__dotset_dispose(&m->knowledge);
  for (size_t i = 0; !m->instances_inline && i < m->ninstances; i++)
    cs__free(m->instances[i]);
  cs__free(m->instances);
  for (size_t i = 0; m->actions && i < m->nactions; i++) /* none kept when streamed */
    cs__wire_action_dispose(&m->actions[i]);
  cs__free(m->actions);
  for (size_t i = 0; i < m->nstates; i++)
    cs__doc_dispose(&m->states[i].doc);
  cs__free(m->states);
  memset(m, 0, sizeof(*m));
}

void cs__sync_msg_dispose(cs_sync_msg *msg) {
  if (!msg)
    return;
  for (size_t i = 0; i < msg->nmodels; i++)
    wire_model_dispose(&msg->models[i]);
  cs__free(msg->models);
  memset(msg, 0, sizeof(*msg));
}

/* The compact shape an action takes on the wire (CS__SHAPE_*); *out is its
 * one field for REG1 and ADD1. */
int cs__wire_action_shape(const cs_wire_action *a, const cs_field **out) {
  const cs_doc *d = &a->doc;
  cs_dot own = {a->origin, a->first};
  *out = NULL;
  if (d->nexist)
    return CS__SHAPE_GENERAL;
  if (d->nfields == 0)
    return CS__SHAPE_EMPTY;
  if (d->nfields != 1)
    return CS__SHAPE_GENERAL;
  *out = &d->fields[0];
  if ((*out)->kind == CS_KIND_REG && (*out)->u.reg.len == 1 &&
      cs__dot_cmp(&(*out)->u.reg.entries[0].dot, &own) == 0 &&
      (*out)->u.reg.entries[0].hlc == a->hlc)
    return CS__SHAPE_REG1;
  if ((*out)->kind == CS_KIND_SET && (*out)->u.set.len == 1 && (*out)->u.set.elems[0].ndots == 1 &&
      cs__dot_cmp(&(*out)->u.set.elems[0].dots[0], &own) == 0)
    return CS__SHAPE_ADD1;
  return CS__SHAPE_GENERAL;
}

/* ---- dot cursor: open addressing, linear probing, grown at half load ---- */

/* Keys differ mostly in their high half (the instance): mix every bit into
 * the low ones before masking. */
static size_t dotcur_slot(uint64_t key, size_t cap) {
  uint64_t h = key;
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
  return (size_t)(h ^ (h >> 31)) & (cap - 1);
}

size_t cs__dotcur_dense_max = (size_t)1 << 18;

int cs__dotcur_plan(cs__dotcur *c, size_t ninstances, size_t nreps) {
  if (c->dense || nreps == 0 || ninstances == 0 || ninstances > cs__dotcur_dense_max / nreps)
    return 0;
  if (!(c->dense = cs__calloc(ninstances * nreps, sizeof(uint64_t))))
    return CS_ENOMEM;
  c->dense_reps = nreps;
  c->dense_len = ninstances * nreps;
  return 0;
}

/* The dense slot of a key, or NULL when it has none. */
static uint64_t *dotcur_dense(const cs__dotcur *c, uint32_t instance, uint32_t ridx) {
  size_t i;
  if (!c->dense || ridx >= c->dense_reps)
    return NULL;
  i = (size_t)instance * c->dense_reps + ridx;
  return i < c->dense_len ? &c->dense[i] : NULL;
}

uint64_t *cs__dotcur_at(cs__dotcur *c, uint32_t instance, uint32_t ridx, bool *found) {
  uint64_t key = (((uint64_t)instance << 32) | ridx) + 1, *v = dotcur_dense(c, instance, ridx);
  size_t i;

  if (v) {
    *found = *v != 0;
    return v;
  }

  if ((c->len + 1) * 2 > c->cap) {
    size_t ncap = c->cap ? c->cap * 2 : 256;
    cs__dotcur_ent *ne = cs__calloc(ncap, sizeof(*ne));
    if (!ne)
      return NULL;
    for (size_t j = 0; j < c->cap; j++) {
      if (!c->ents[j].key)
        continue;
      for (i = dotcur_slot(c->ents[j].key, ncap); ne[i].key; i = (i + 1) & (ncap - 1))
        ;
      ne[i] = c->ents[j];
    }
    cs__free(c->ents);
    c->ents = ne;
    c->cap = ncap;
  }
  for (i = dotcur_slot(key, c->cap); c->ents[i].key && c->ents[i].key != key;
       i = (i + 1) & (c->cap - 1))
    ;
  *found = c->ents[i].key != 0;
  if (!*found) {
    c->ents[i].key = key;
    c->ents[i].val = 0;
    c->len++;
  }
  return &c->ents[i].val;
}

int cs__dotcur_set(cs__dotcur *c, uint32_t instance, uint32_t ridx, uint64_t counter) {
  bool found;
  uint64_t *v = cs__dotcur_at(c, instance, ridx, &found);
  if (!v)
    return CS_ENOMEM;
  *v = counter;
  return 0;
}

void cs__dotcur_dispose(cs__dotcur *c) {
  cs__free(c->ents);
  cs__free(c->dense);
  memset(c, 0, sizeof(*c));
}
