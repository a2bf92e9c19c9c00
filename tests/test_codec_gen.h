/*
 * Seeded generators of canonical codec inputs (documents, dot sets, actions,
 * sync messages) for the codec's property tests and fuzz corpus. Header-only
 * so that each test program and the corpus writer include it as is.
 */
#ifndef CS_TEST_CODEC_GEN_H
#define CS_TEST_CODEC_GEN_H

#include <stdio.h>
#include <stdlib.h>

#include "core/codec.h"

typedef struct gen_rng {
  uint64_t s;
} gen_rng;

static inline uint64_t gen_next(gen_rng *r) {
  /* splitmix64 */
  uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static inline uint64_t gen_below(gen_rng *r, uint64_t n) {
  return n ? gen_next(r) % n : 0;
}
static inline bool gen_chance(gen_rng *r, unsigned pct) {
  return gen_below(r, 100) < pct;
}

/* Seed from CS_SEED when set, else from the clock; printed by the caller. */
static inline uint64_t gen_seed(void) {
  const char *s = getenv("CS_SEED");
  if (s && *s)
    return strtoull(s, NULL, 0);
  return (uint64_t)cs__now_ms() * 2654435761u ^ (uint64_t)cs__mono_ms();
}

/* Iterations scaled down ~10x when CS_TEST_SCALE=small. */
static inline int gen_scale(int n) {
  const char *s = getenv("CS_TEST_SCALE");
  return s && strcmp(s, "small") == 0 ? (n + 9) / 10 : n;
}

/* A few replicas, including the extremes of the id range. */
static const cs_replica gen_replicas[] = {
    0, 1, 7, 0x1234567890abcdefull, 0xfffffffffffffffeull, 0xffffffffffffffffull};
#define GEN_NREP (sizeof(gen_replicas) / sizeof(gen_replicas[0]))

static const char *const gen_fields[] = {"a", "age",  "bio",  "city", "email", "interests",
                                         "n", "name", "tags", "x",    "zz",    "\xc3\xa9t\xc3\xa9"};
#define GEN_NFIELDS (sizeof(gen_fields) / sizeof(gen_fields[0]))

static inline cs_replica gen_replica(gen_rng *r) {
  return gen_replicas[gen_below(r, GEN_NREP)];
}

static inline uint64_t gen_counter(gen_rng *r) {
  switch (gen_below(r, 6)) {
  case 0:
    return 1 + gen_below(r, 3);
  case 1:
    return 1 + gen_below(r, 200);
  case 2:
    return 1 + gen_below(r, 70000);
  case 3:
    return 1 + gen_below(r, 5000000000ull);
  case 4:
    return UINT64_MAX - gen_below(r, 3);
  default:
    return 1 + gen_below(r, 30);
  }
}

static inline cs_hlc gen_hlc(gen_rng *r) {
  switch (gen_below(r, 4)) {
  case 0:
    return CS_HLC_MAKE(1700000000000ull + gen_below(r, 5000), gen_below(r, 3));
  case 1:
    return CS_HLC_MAKE(gen_below(r, 1ull << 48), gen_below(r, 65536));
  case 2:
    return gen_below(r, 4);
  default:
    return CS_HLC_MAKE(1700000000000ull + gen_below(r, 50), 0);
  }
}

static inline void gen_val(gen_rng *r, cs_val *v) {
  static const char alpha[] = "abcdefghijklmnopqrstuvwxyz";
  memset(v, 0, sizeof(*v));
  switch (gen_below(r, 7)) {
  case 0:
    v->type = CS_VAL_NULL;
    break;
  case 1:
    v->type = CS_VAL_BOOL;
    v->u.b = gen_chance(r, 50);
    break;
  case 2: {
    static const int64_t edges[] = {0,         1,         -1,        31,
                                    -32,       -33,       127,       128,
                                    255,       256,       -128,      -129,
                                    32767,     -32768,    -32769,    65535,
                                    65536,     INT32_MIN, INT32_MAX, (int64_t)INT32_MIN - 1,
                                    INT64_MIN, INT64_MAX};
    v->type = CS_VAL_INT;
    v->u.i = gen_chance(r, 50) ? edges[gen_below(r, sizeof(edges) / sizeof(edges[0]))]
                               : (int64_t)gen_next(r) >> gen_below(r, 64);
    break;
  }
  case 3: {
    uint64_t bits = gen_next(r);
    v->type = CS_VAL_DOUBLE;
    if (gen_chance(r, 50)) {
      v->u.d = (double)(int64_t)gen_below(r, 2000) / 8.0 - 100.0;
    } else {
      memcpy(&v->u.d, &bits, 8);
    }
    break;
  }
  case 4:
  case 5: {
    size_t len = gen_chance(r, 90) ? gen_below(r, 12) : gen_below(r, 400);
    char s[400];
    for (size_t i = 0; i < len; i++)
      s[i] = alpha[gen_below(r, 26)];
    if (cs__val_str(v, s, len) != 0)
      abort();
    break;
  }
  default: {
    size_t len = gen_below(r, 40);
    uint8_t s[40];
    for (size_t i = 0; i < len; i++)
      s[i] = (uint8_t)gen_below(r, 256);
    if (cs__val_bytes(v, s, len) != 0)
      abort();
    break;
  }
  }
}

static int gen_cmp_dot(const void *a, const void *b) {
  return cs__dot_cmp(a, b);
}

/* Sorts and dedupes dots[] (n items) in place; returns the new count. */
static inline size_t gen_sort_dots(cs_dot *dots, size_t n) {
  size_t m = 0;
  qsort(dots, n, sizeof(cs_dot), gen_cmp_dot);
  for (size_t i = 0; i < n; i++)
    if (m == 0 || cs__dot_cmp(&dots[m - 1], &dots[i]) != 0)
      dots[m++] = dots[i];
  return m;
}

/* The compact dot set holding exactly dots[] (sorted, unique) plus, per
 * replica in prefix[] (may be NULL), every dot 1..prefix. */
static inline void gen_dotset_of(cs_dotset *out, const cs_dot *dots, size_t n) {
  memset(out, 0, sizeof(*out));
  out->vv = cs__malloc((n + 1) * sizeof(cs_vv_entry));
  out->extra = cs__malloc((n + 1) * sizeof(cs_dot));
  out->vv_cap = out->extra_cap = n + 1;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    uint64_t m = 0;
    while (j < n && dots[j].replica == dots[i].replica)
      j++;
    for (size_t k = i; k < j && dots[k].counter == m + 1; k++)
      m++;
    if (m)
      out->vv[out->vv_len++] = (cs_vv_entry){dots[i].replica, m};
    for (size_t k = i; k < j; k++)
      if (dots[k].counter > m)
        out->extra[out->extra_len++] = dots[k];
    i = j;
  }
}

/* A random dot set; sometimes with long prefixes (version vector entries). */
static inline void gen_dotset(gen_rng *r, cs_dotset *out, size_t max_dots) {
  size_t n = gen_below(r, max_dots + 1), m = 0;
  cs_dot *dots = cs__malloc((n + 1) * sizeof(cs_dot));
  for (size_t i = 0; i < n; i++)
    dots[i] = (cs_dot){gen_replica(r), gen_counter(r)};
  m = gen_sort_dots(dots, n);
  gen_dotset_of(out, dots, m);
  cs__free(dots);
  /* Long prefixes: raise some version vector entries. */
  for (size_t i = 0; i < out->vv_len; i++)
    if (gen_chance(r, 30)) {
      uint64_t lim = UINT64_MAX;
      for (size_t k = 0; k < out->extra_len; k++)
        if (out->extra[k].replica == out->vv[i].replica) {
          lim = out->extra[k].counter - 2;
          break;
        }
      if (lim > out->vv[i].max)
        out->vv[i].max += gen_below(r, lim - out->vv[i].max);
    }
}

/* Dots for a document's entries: the action's own run (when own) else random. */
typedef struct gen_dots {
  cs_replica origin;
  uint64_t next, last; /* own dots left: next..last */
  bool own;
} gen_dots;

static inline cs_dot gen_entry_dot(gen_rng *r, gen_dots *g) {
  if (g->own && g->next <= g->last && gen_chance(r, 85))
    return (cs_dot){g->origin, g->next++};
  return (cs_dot){gen_replica(r), gen_counter(r)};
}

static int gen_cmp_reg(const void *a, const void *b) {
  return cs__dot_cmp(&((const cs_reg_entry *)a)->dot, &((const cs_reg_entry *)b)->dot);
}
static int gen_cmp_elem(const void *a, const void *b) {
  return cs__val_cmp(&((const cs_set_elem *)a)->val, &((const cs_set_elem *)b)->val);
}
static int gen_cmp_ctr(const void *a, const void *b) {
  cs_replica x = ((const cs_ctr_entry *)a)->replica, y = ((const cs_ctr_entry *)b)->replica;
  return x < y ? -1 : x > y;
}
static int gen_cmp_exist(const void *a, const void *b) {
  return cs__dot_cmp(&((const cs_exist_entry *)a)->dot, &((const cs_exist_entry *)b)->dot);
}

static inline void gen_doc(gen_rng *r, cs_doc *d, gen_dots *g) {
  size_t nx = gen_below(r, 3);
  memset(d, 0, sizeof(*d));
  d->exist = cs__calloc(nx + 1, sizeof(cs_exist_entry));
  d->exist_cap = nx + 1;
  for (size_t i = 0; i < nx; i++) {
    cs_exist_entry *x = &d->exist[d->nexist];
    x->dot = gen_entry_dot(r, g);
    x->hlc = gen_hlc(r);
    x->alive = gen_chance(r, 50);
    if (!x->alive)
      gen_dotset(r, &x->observed, 4);
    /* drop duplicates of a dot */
    bool dup = false;
    for (size_t k = 0; k < d->nexist; k++)
      dup |= cs__dot_cmp(&d->exist[k].dot, &x->dot) == 0;
    if (dup)
      cs__dotset_dispose(&x->observed);
    else
      d->nexist++;
  }
  qsort(d->exist, d->nexist, sizeof(cs_exist_entry), gen_cmp_exist);
  d->fields = cs__calloc(GEN_NFIELDS, sizeof(cs_field));
  d->fields_cap = GEN_NFIELDS;
  for (size_t f = 0; f < GEN_NFIELDS; f++) {
    cs_field *fl;
    size_t n;
    if (!gen_chance(r, 25))
      continue;
    fl = &d->fields[d->nfields++];
    fl->name = cs__strdup(gen_fields[f]);
    fl->kind = (uint8_t)(1 + gen_below(r, 3));
    n = gen_below(r, 4);
    if (fl->kind == CS_KIND_REG) {
      cs_reg *rg = &fl->u.reg;
      rg->entries = cs__calloc(n + 1, sizeof(cs_reg_entry));
      rg->cap = n + 1;
      for (size_t i = 0; i < n; i++) {
        cs_reg_entry *en = &rg->entries[rg->len];
        bool dup = false;
        en->dot = gen_entry_dot(r, g);
        for (size_t k = 0; k < rg->len; k++)
          dup |= cs__dot_cmp(&rg->entries[k].dot, &en->dot) == 0;
        if (dup)
          continue;
        en->hlc = gen_hlc(r);
        gen_val(r, &en->val);
        rg->len++;
      }
      qsort(rg->entries, rg->len, sizeof(cs_reg_entry), gen_cmp_reg);
    } else if (fl->kind == CS_KIND_SET) {
      cs_set *s = &fl->u.set;
      s->elems = cs__calloc(n + 1, sizeof(cs_set_elem));
      s->cap = n + 1;
      for (size_t i = 0; i < n; i++) {
        cs_set_elem *el = &s->elems[s->len];
        bool dup = false;
        size_t nd = 1 + gen_below(r, 3);
        gen_val(r, &el->val);
        for (size_t k = 0; k < s->len; k++)
          dup |= cs__val_cmp(&s->elems[k].val, &el->val) == 0;
        if (dup) {
          cs__val_dispose(&el->val);
          continue;
        }
        el->dots = cs__malloc(nd * sizeof(cs_dot));
        for (size_t k = 0; k < nd; k++)
          el->dots[k] = gen_entry_dot(r, g);
        el->ndots = el->cap = gen_sort_dots(el->dots, nd);
        s->len++;
      }
      qsort(s->elems, s->len, sizeof(cs_set_elem), gen_cmp_elem);
    } else {
      cs_ctr *c = &fl->u.ctr;
      c->entries = cs__calloc(n + 1, sizeof(cs_ctr_entry));
      c->cap = n + 1;
      for (size_t i = 0; i < n; i++) {
        cs_ctr_entry *en = &c->entries[c->len];
        bool dup = false;
        en->replica = gen_replica(r);
        for (size_t k = 0; k < c->len; k++)
          dup |= c->entries[k].replica == en->replica;
        if (dup)
          continue;
        en->pos = gen_counter(r) - 1;
        en->neg = gen_chance(r, 50) ? 0 : gen_counter(r);
        c->len++;
      }
      qsort(c->entries, c->len, sizeof(cs_ctr_entry), gen_cmp_ctr);
    }
  }
  /* gen_fields is sorted by strcmp, so the fields are. */
}

/* A random action of `origin` whose dots start at first. */
static inline void gen_action(gen_rng *r, cs_wire_action *a, cs_replica origin, uint64_t first) {
  gen_dots g;
  size_t ncov = gen_below(r, 4), n = 0;
  cs_dot *dots;
  memset(a, 0, sizeof(*a));
  a->origin = origin;
  a->first = first;
  a->last = first + (gen_chance(r, 70) ? 0 : gen_below(r, 4));
  a->hlc = gen_hlc(r);
  g = (gen_dots){origin, first, a->last, true};
  switch (gen_below(r, 5)) {
  case 0: { /* one register write (the short form) */
    cs_field *fl;
    a->doc.fields = fl = cs__calloc(1, sizeof(cs_field));
    a->doc.nfields = a->doc.fields_cap = 1;
    fl->name = cs__strdup(gen_fields[gen_below(r, GEN_NFIELDS)]);
    fl->kind = CS_KIND_REG;
    fl->u.reg.entries = cs__calloc(1, sizeof(cs_reg_entry));
    fl->u.reg.len = fl->u.reg.cap = 1;
    fl->u.reg.entries[0].dot = (cs_dot){origin, first};
    fl->u.reg.entries[0].hlc = a->hlc;
    gen_val(r, &fl->u.reg.entries[0].val);
    break;
  }
  case 1: { /* one set add (the short form) */
    cs_field *fl;
    a->doc.fields = fl = cs__calloc(1, sizeof(cs_field));
    a->doc.nfields = a->doc.fields_cap = 1;
    fl->name = cs__strdup(gen_fields[gen_below(r, GEN_NFIELDS)]);
    fl->kind = CS_KIND_SET;
    fl->u.set.elems = cs__calloc(1, sizeof(cs_set_elem));
    fl->u.set.len = fl->u.set.cap = 1;
    gen_val(r, &fl->u.set.elems[0].val);
    fl->u.set.elems[0].dots = cs__malloc(sizeof(cs_dot));
    fl->u.set.elems[0].dots[0] = (cs_dot){origin, first};
    fl->u.set.elems[0].ndots = fl->u.set.elems[0].cap = 1;
    break;
  }
  case 2: /* nothing but a context (a remove) */
    break;
  default:
    gen_doc(r, &a->doc, &g);
    break;
  }
  dots = cs__malloc((ncov + a->last - a->first + 2) * sizeof(cs_dot));
  for (uint64_t c = a->first; c <= a->last; c++)
    dots[n++] = (cs_dot){origin, c};
  for (size_t i = 0; i < ncov; i++) {
    cs_dot d = {gen_replica(r),
                gen_chance(r, 30) && first > 1 ? 1 + gen_below(r, first - 1) : gen_counter(r)};
    if (d.replica == origin && d.counter >= first && d.counter <= a->last + 3)
      continue;
    dots[n++] = d;
  }
  n = gen_sort_dots(dots, n);
  gen_dotset_of(&a->ctx, dots, n);
  cs__free(dots);
}

static int gen_cmp_strp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A random canonical sync message. */
static inline void gen_msg(gen_rng *r, cs_sync_msg *m) {
  static const char *const models[] = {"Note", "UserProfile", "Z", "a-model"};
  memset(m, 0, sizeof(*m));
  m->type = (uint8_t)(1 + gen_below(r, 4));
  m->sender = gen_replica(r);
  m->clock = gen_hlc(r);
  m->cursor = gen_chance(r, 50) ? 0 : gen_counter(r);
  m->flags = gen_chance(r, 20) ? CS_MSG_F_STATES : 0;
  m->models = cs__calloc(4, sizeof(cs_wire_model));
  for (size_t i = 0; i < 4; i++) {
    cs_wire_model *wm;
    size_t ni;
    if (!gen_chance(r, 50))
      continue;
    wm = &m->models[m->nmodels++];
    wm->name = cs__strdup(models[i]);
    gen_dotset(r, &wm->knowledge, 6);
    ni = gen_below(r, 6);
    wm->instances = cs__calloc(ni + 1, sizeof(char *));
    for (size_t k = 0; k < ni; k++) {
      char name[32];
      snprintf(name, sizeof(name), "inst_%u", (unsigned)gen_below(r, 40));
      bool dup = false;
      for (size_t q = 0; q < wm->ninstances; q++)
        dup |= strcmp(wm->instances[q], name) == 0;
      if (!dup)
        wm->instances[wm->ninstances++] = cs__strdup(name);
    }
    if (wm->ninstances) {
      size_t na = gen_below(r, 8), ns = gen_below(r, wm->ninstances + 1);
      char **sorted;
      wm->actions = cs__calloc(na + 1, sizeof(cs_wire_action));
      /* Per origin (in replica order), increasing dot ranges. */
      for (size_t o = 0; o < GEN_NREP && wm->nactions < na; o++) {
        uint64_t next = 1 + gen_below(r, 100);
        size_t k = gen_below(r, na - wm->nactions + 1);
        for (size_t q = 0; q < k; q++) {
          cs_wire_action *a = &wm->actions[wm->nactions++];
          gen_action(r, a, gen_replicas[o], next);
          a->instance = (uint32_t)gen_below(r, wm->ninstances);
          next = a->last + 1 + (gen_chance(r, 80) ? 0 : gen_below(r, 5));
        }
      }
      /* States: a sorted subset of the instances. */
      sorted = cs__malloc(wm->ninstances * sizeof(char *));
      memcpy(sorted, wm->instances, wm->ninstances * sizeof(char *));
      qsort(sorted, wm->ninstances, sizeof(char *), gen_cmp_strp);
      wm->states = cs__calloc(ns + 1, sizeof(cs_wire_state));
      for (size_t k = 0; k < wm->ninstances && wm->nstates < ns; k++) {
        cs_wire_state *st;
        gen_dots g = {0, 0, 0, false};
        if (!gen_chance(r, 60))
          continue;
        st = &wm->states[wm->nstates++];
        for (uint32_t q = 0; q < wm->ninstances; q++)
          if (wm->instances[q] == sorted[k])
            st->instance = q;
        gen_doc(r, &st->doc, &g);
      }
      cs__free(sorted);
    }
  }
}

/* Equality of decoded actions and messages, field by field. */
static inline bool action_equal(const cs_wire_action *a, const cs_wire_action *b) {
  return a->instance == b->instance && a->origin == b->origin && a->first == b->first &&
         a->last == b->last && a->hlc == b->hlc && cs__doc_equal(&a->doc, &b->doc) &&
         cs__dotset_equal(&a->ctx, &b->ctx);
}

static inline bool msg_equal(const cs_sync_msg *a, const cs_sync_msg *b) {
  if (a->type != b->type || a->sender != b->sender || a->clock != b->clock ||
      a->cursor != b->cursor || a->flags != b->flags || a->nmodels != b->nmodels)
    return false;
  for (size_t i = 0; i < a->nmodels; i++) {
    const cs_wire_model *x = &a->models[i], *y = &b->models[i];
    if (strcmp(x->name, y->name) || !cs__dotset_equal(&x->knowledge, &y->knowledge) ||
        x->ninstances != y->ninstances || x->nactions != y->nactions || x->nstates != y->nstates)
      return false;
    for (size_t k = 0; k < x->ninstances; k++)
      if (strcmp(x->instances[k], y->instances[k]))
        return false;
    for (size_t k = 0; k < x->nactions; k++)
      if (!action_equal(&x->actions[k], &y->actions[k]))
        return false;
    for (size_t k = 0; k < x->nstates; k++)
      if (x->states[k].instance != y->states[k].instance ||
          !cs__doc_equal(&x->states[k].doc, &y->states[k].doc))
        return false;
  }
  return true;
}

/* On failure: the seed and iteration first (to replay), then the message. */
#define CHECK(cond, seed, iter, ...)                                                               \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "seed %llu (replay with CS_SEED=%llu), iteration %d\n",                      \
              (unsigned long long)(seed), (unsigned long long)(seed), (iter));                     \
      cr_assert(0, __VA_ARGS__);                                                                   \
    }                                                                                              \
  } while (0)

#endif /* CS_TEST_CODEC_GEN_H */
