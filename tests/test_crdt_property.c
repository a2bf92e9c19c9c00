/*
 * Property test of the CRDT core: random replicas, operations and delivery
 * orders over a network that delays, reorders, duplicates and drops (and
 * re-sends what it dropped), with occasional whole-state transfers. At
 * quiescence every replica must hold byte-identical documents, knowledge and
 * conflict lists, and they must agree with an independent oracle.
 *
 * The oracle never calls the join. It keeps a log of operations, each with
 * the set of operations its replica had applied when it was made (`seen`:
 * an explicit set rather than a vector clock, because reordered delivery
 * leaves gaps a vector cannot express), and derives the expected state from
 * that log alone:
 *  - register: the writes no later write overwrote are the siblings; a write
 *    overwrites the siblings of its own view; the visible sibling has the
 *    largest (hlc, replica);
 *  - set: an add survives unless an operation that saw it touched the
 *    element (add, remove, or an assign that did not keep it) — add wins;
 *  - counter: the sum of all increments;
 *  - existence: like a register of alive/dead, alive when every sibling is
 *    alive; delete/update when dead and (an alive sibling exists, or a
 *    surviving field write is outside what the deletes observed).
 *
 * Seeds: CS_SEED=<n> sets the first schedule's seed (schedule i uses n + i;
 * by default it varies from run to run and is printed);
 * CS_SOAK=<N> runs N schedules; CS_TEST_SCALE=small runs a tenth. A failure
 * prints "seed=<s>" and the command that replays exactly that schedule;
 * CS_TRACE=1 prints the schedule's operations and deliveries.
 */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crdt/crdt.h"

#define MAX_REPS 8
#define MAX_OPS 40
#define NDOCS 2
#define NREGS 2
#define NELEMS 4
#define NVALS 3
#define MAX_MSGS 4096

static const char *const reg_names[NREGS] = {"a", "b"};
static const char *const set_name = "s";
static const char *const ctr_name = "c";
static const char *const doc_names[NDOCS] = {"d0", "d1"};

static void blake2b(uint8_t *out, size_t outlen, const uint8_t *in, size_t inlen) {
  crypto_generichash(out, outlen, in, inlen, NULL, 0);
}

/* ---- deterministic randomness ---- */

static uint64_t rnd(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static unsigned below(uint64_t *s, unsigned n) {
  return (unsigned)(rnd(s) % n);
}

/* ---- values of the small pools (equal values recur on purpose) ---- */

static cs_val pool_val(int i) {
  cs_val v;
  if (i == 2)
    return cs__val_int(7);
  cr_assert_eq(cs__val_str(&v, i == 0 ? "red" : "green", i == 0 ? 3 : 5), 0);
  return v;
}
static int val_index(const cs_val *v) {
  for (int i = 0; i < NVALS; i++) {
    cs_val p = pool_val(i);
    bool eq = cs__val_equal(&p, v);
    cs__val_dispose(&p);
    if (eq)
      return i;
  }
  return -1;
}
static cs_val elem_val(int i) {
  return cs__val_int(100 + i);
}

/* ---- the log the oracle reads ---- */

typedef struct op {
  int replica, doc;
  cs_hlc hlc;
  uint64_t seen; /* ops applied at the replica before this one */
  bool exist_write, exist_alive;
  uint64_t obs_reg[NREGS];         /* deletes: register writes observed */
  uint64_t obs_set[NELEMS];        /* deletes: set adds observed */
  int reg_field, reg_val;          /* -1: no register write */
  uint8_t set_touch, set_add;      /* element masks */
  uint64_t reg_cover, exist_cover; /* the writes this op overwrote */
  uint64_t set_cover[NELEMS];      /* the adds this op removed, per element */
  bool ctr_write;
  int64_t ctr_by;
  cs_delta delta;
} op;

typedef struct sim_rep {
  cs_replica id;
  cs_dotset ctx;
  cs_doc docs[NDOCS];
  cs_clock clock;
  int64_t skew;
  uint64_t seen;
} sim_rep;

typedef struct msg {
  int dst, op;
} msg;

typedef struct sim {
  uint64_t seed, rng;
  int nreps, nops, target_ops;
  sim_rep reps[MAX_REPS];
  op ops[MAX_OPS];
  msg flight[MAX_MSGS], dropped[MAX_MSGS];
  int nflight, ndropped;
  uint64_t now;
  char why[512];
} sim;

#define BIT(i) (1ull << (i))

static bool fail(sim *s, const char *fmt, ...) CS__PRINTF(2, 3);
static bool fail(sim *s, const char *fmt, ...) {
  va_list ap;
  if (s->why[0])
    return false;
  va_start(ap, fmt);
  vsnprintf(s->why, sizeof s->why, fmt, ap);
  va_end(ap);
  return false;
}

/* ---- the oracle ---- */

/*
 * What an operation overwrote is what its replica could see when it was made:
 * the surviving entries of the view `seen`. The oracle records that at op
 * time (cover masks below, computed by these same functions on the smaller,
 * earlier view), so an entry survives in a view S when no operation of S
 * covered it. With causal delivery this is "not causally dominated"; with
 * reordered delivery it is what a replica can actually know.
 */
static uint64_t oracle_reg(const sim *s, int doc, int f, uint64_t S) {
  uint64_t W = 0, C = 0;
  for (int o = 0; o < s->nops; o++)
    if ((S & BIT(o)) && s->ops[o].doc == doc && s->ops[o].reg_field == f) {
      W |= BIT(o);
      C |= s->ops[o].reg_cover;
    }
  return W & ~C;
}

static uint64_t oracle_exist(const sim *s, int doc, uint64_t S) {
  uint64_t W = 0, C = 0;
  for (int o = 0; o < s->nops; o++)
    if ((S & BIT(o)) && s->ops[o].doc == doc && s->ops[o].exist_write) {
      W |= BIT(o);
      C |= s->ops[o].exist_cover;
    }
  return W & ~C;
}

/* The adds of element x that survive in view S. */
static uint64_t oracle_set(const sim *s, int doc, int x, uint64_t S) {
  uint64_t A = 0, C = 0;
  for (int o = 0; o < s->nops; o++)
    if ((S & BIT(o)) && s->ops[o].doc == doc) {
      if (s->ops[o].set_add & BIT(x))
        A |= BIT(o);
      C |= s->ops[o].set_cover[x];
    }
  return A & ~C;
}

static uint8_t oracle_members(const sim *s, int doc, uint64_t S) {
  uint8_t m = 0;
  for (int x = 0; x < NELEMS; x++)
    if (oracle_set(s, doc, x, S))
      m |= (uint8_t)(1u << x);
  return m;
}

static bool oracle_alive(const sim *s, int doc, uint64_t S) {
  uint64_t E = oracle_exist(s, doc, S);
  if (!E)
    return false;
  for (int o = 0; o < s->nops; o++)
    if ((E & BIT(o)) && !s->ops[o].exist_alive)
      return false;
  return true;
}

static bool oracle_delete_update(const sim *s, int doc, uint64_t S) {
  uint64_t E = oracle_exist(s, doc, S), obs_reg[NREGS] = {0}, obs_set[NELEMS] = {0};
  bool dead = false, alive = false;
  for (int o = 0; o < s->nops; o++) {
    if (!(E & BIT(o)))
      continue;
    if (s->ops[o].exist_alive) {
      alive = true;
      continue;
    }
    dead = true;
    for (int f = 0; f < NREGS; f++)
      obs_reg[f] |= s->ops[o].obs_reg[f];
    for (int x = 0; x < NELEMS; x++)
      obs_set[x] |= s->ops[o].obs_set[x];
  }
  if (!dead)
    return false;
  if (alive)
    return true;
  for (int f = 0; f < NREGS; f++)
    if (oracle_reg(s, doc, f, S) & ~obs_reg[f])
      return true;
  for (int x = 0; x < NELEMS; x++)
    if (oracle_set(s, doc, x, S) & ~obs_set[x])
      return true;
  return false;
}

static int oracle_distinct_values(const sim *s, uint64_t M) {
  bool v[NVALS] = {false};
  int n = 0;
  for (int o = 0; o < s->nops; o++)
    if ((M & BIT(o)) && !v[s->ops[o].reg_val]) {
      v[s->ops[o].reg_val] = true;
      n++;
    }
  return n;
}

/* ---- replicas and network ---- */

static uint64_t wall(const sim *s, const sim_rep *r) {
  return (uint64_t)((int64_t)s->now + r->skew);
}

static bool tracing;

static void deliver(sim *s, int dst, int o) {
  sim_rep *r = &s->reps[dst];
  op *p = &s->ops[o];
  if (tracing)
    fprintf(stderr, "deliver op %d to replica %d\n", o, dst);
  cr_assert_eq(cs__clock_observe(&r->clock, p->hlc, wall(s, r)), 0, "%s", cs_errmsg());
  cr_assert_eq(cs__doc_join(&r->docs[p->doc], &r->ctx, &p->delta.doc, &p->delta.ctx), 0);
  cr_assert_eq(cs__dotset_join(&r->ctx, &p->delta.ctx), 0);
  r->seen |= BIT(o);
}

/* Whole-state transfer: every document of src joined with src's knowledge as
 * the context, the knowledge joined once after the batch. */
static void transfer(sim *s, int src, int dst) {
  sim_rep *a = &s->reps[src], *b = &s->reps[dst];
  for (int k = 0; k < NDOCS; k++)
    cr_assert_eq(cs__doc_join(&b->docs[k], &b->ctx, &a->docs[k], &a->ctx), 0);
  cr_assert_eq(cs__dotset_join(&b->ctx, &a->ctx), 0);
  b->seen |= a->seen;
  if (tracing)
    fprintf(stderr, "transfer %d -> %d\n", src, dst);
}

static void send(sim *s, int dst, int o) {
  cr_assert_lt(s->nflight, MAX_MSGS);
  s->flight[s->nflight++] = (msg){dst, o};
}

static void network_step(sim *s, bool may_drop) {
  int i = (int)below(&s->rng, (unsigned)s->nflight);
  msg m = s->flight[i];
  unsigned r = below(&s->rng, 100);
  if (may_drop && r < 8) {
    s->dropped[s->ndropped++] = m;
  } else {
    deliver(s, m.dst, m.op);
    if (r < 15 && may_drop)
      return; /* duplicated: stays in flight, arrives again later */
  }
  s->flight[i] = s->flight[--s->nflight];
}

/* ---- operations ---- */

static void set_of_doc_check(sim *s, const cs_doc *d, int doc, uint64_t view, const char *when) {
  cs_field *f = cs__doc_field(d, set_name);
  uint8_t m = 0;
  if (f)
    for (size_t i = 0; i < f->u.set.len; i++)
      m |= (uint8_t)(1u << (f->u.set.elems[i].val.u.i - 100));
  if (m != oracle_members(s, doc, view))
    fail(s, "%s: set members %#x, oracle %#x (doc %d)", when, m, oracle_members(s, doc, view), doc);
}

static void make_op(sim *s) {
  int ri = (int)below(&s->rng, (unsigned)s->nreps), doc = (int)below(&s->rng, NDOCS);
  sim_rep *r = &s->reps[ri];
  cs_doc *d = &r->docs[doc];
  int o = s->nops++;
  op *p = &s->ops[o];
  unsigned kind = below(&s->rng, 100);
  cs_delta *dl = &p->delta;
  uint64_t first, last;
  bool need_exist = !cs__doc_alive(d);
  cs_conflict_list cl = {0};

  memset(p, 0, sizeof *p);
  p->replica = ri;
  p->doc = doc;
  p->reg_field = -1;
  p->seen = r->seen;
  s->now += 1 + below(&s->rng, 3);
  p->hlc = cs__clock_tick(&r->clock, wall(s, r));
  cr_assert_eq(cs__delta_init(dl, &r->ctx, r->id, p->hlc), 0);
  /* the replica's view must match the oracle's view of what it has seen */
  if (cs__doc_alive(d) != oracle_alive(s, doc, p->seen))
    fail(s, "op %d: replica %d sees doc %d alive=%d, oracle says %d", o, ri, doc, cs__doc_alive(d),
         oracle_alive(s, doc, p->seen));
  set_of_doc_check(s, d, doc, p->seen, "before op");

  if (kind >= 88) { /* resolve a conflict, if any */
    cr_assert_eq(cs__doc_conflicts(&cl, d, "M", doc_names[doc], NULL, NULL, blake2b), 0);
    if (cl.len == 0)
      kind = 0;
  }
  if (kind < 35) { /* register write */
    int f = (int)below(&s->rng, NREGS), v = (int)below(&s->rng, NVALS);
    cs_val val = pool_val(v);
    if (need_exist) {
      cr_assert_eq(cs__delta_exist(dl, d, true), 0);
      p->exist_write = p->exist_alive = true;
    }
    cr_assert_eq(cs__delta_reg_set(dl, d, reg_names[f], &val), 0);
    cs__val_dispose(&val);
    p->reg_field = f;
    p->reg_val = v;
  } else if (kind < 65) { /* set add / remove / assign */
    unsigned how = below(&s->rng, 3);
    uint8_t view = oracle_members(s, doc, p->seen);
    if (need_exist) {
      cr_assert_eq(cs__delta_exist(dl, d, true), 0);
      p->exist_write = p->exist_alive = true;
    }
    if (how < 2) {
      int x = (int)below(&s->rng, NELEMS);
      cs_val e = elem_val(x);
      if (how == 0) {
        cr_assert_eq(cs__delta_set_add(dl, d, set_name, &e), 0);
        p->set_add = (uint8_t)(1u << x);
      } else {
        cr_assert_eq(cs__delta_set_remove(dl, d, set_name, &e), 0);
      }
      p->set_touch = (uint8_t)(1u << x);
    } else {
      uint8_t list = (uint8_t)below(&s->rng, 1u << NELEMS);
      cs_val es[NELEMS + 1];
      size_t n = 0;
      for (int x = NELEMS - 1; x >= 0; x--) /* unsorted on purpose */
        if (list & (1u << x))
          es[n++] = elem_val(x);
      if (n)
        es[n] = es[0], n++; /* and one duplicate */
      cr_assert_eq(cs__delta_set_assign(dl, d, set_name, es, n), 0);
      p->set_add = (uint8_t)(list & ~view);
      p->set_touch = (uint8_t)(((1u << NELEMS) - 1) & ~(list & view));
    }
  } else if (kind < 75) { /* counter */
    int64_t by = (int64_t)below(&s->rng, 7) - 3;
    if (need_exist) {
      cr_assert_eq(cs__delta_exist(dl, d, true), 0);
      p->exist_write = p->exist_alive = true;
    }
    cr_assert_eq(cs__delta_ctr_add(dl, d, ctr_name, by), 0);
    p->ctr_write = true;
    p->ctr_by = by;
  } else if (kind < 88) { /* delete, or restore / create when not alive */
    bool alive = !cs__doc_alive(d) && below(&s->rng, 2);
    cr_assert_eq(cs__delta_exist(dl, d, alive), 0);
    p->exist_write = true;
    p->exist_alive = alive;
  } else { /* resolution: an ordinary write */
    cs_conflict *c = &cl.items[below(&s->rng, (unsigned)cl.len)];
    if (c->kind == CS_CONFLICT_VALUE) {
      cs_field *f = cs__doc_field(d, c->field);
      int fi = strcmp(c->field, "a") == 0 ? 0 : 1;
      int v = below(&s->rng, 3) == 0
                  ? (int)below(&s->rng, NVALS)
                  : val_index(&f->u.reg.entries[below(&s->rng, (unsigned)f->u.reg.len)].val);
      cs_val val = pool_val(v);
      cr_assert_eq(cs__delta_reg_set(dl, d, c->field, &val), 0);
      cs__val_dispose(&val);
      p->reg_field = fi;
      p->reg_val = v;
    } else {
      bool alive = below(&s->rng, 2);
      cr_assert_eq(cs__delta_exist(dl, d, alive), 0);
      p->exist_write = true;
      p->exist_alive = alive;
    }
  }
  cs__conflict_list_dispose(&cl);
  /* what the op overwrote: the surviving entries it touched in its view */
  if (p->reg_field >= 0)
    p->reg_cover = oracle_reg(s, doc, p->reg_field, p->seen);
  if (p->exist_write)
    p->exist_cover = oracle_exist(s, doc, p->seen);
  for (int x = 0; x < NELEMS; x++)
    if (p->set_touch & (1u << x))
      p->set_cover[x] = oracle_set(s, doc, x, p->seen);
  if (p->exist_write && !p->exist_alive) {
    /* what a delete observes, from the oracle's view of the replica */
    for (int f = 0; f < NREGS; f++)
      p->obs_reg[f] = oracle_reg(s, doc, f, p->seen);
    for (int x = 0; x < NELEMS; x++)
      p->obs_set[x] = oracle_set(s, doc, x, p->seen);
  }
  cr_assert_eq(cs__delta_finish(dl, &first, &last), 0);
  if (first > last || first != cs__dotset_next(&r->ctx, r->id).counter)
    fail(s, "op %d: action dots %llu..%llu", o, (unsigned long long)first,
         (unsigned long long)last);
  /* apply locally (the replica has seen its own op), then broadcast */
  cr_assert_eq(cs__doc_join(d, &r->ctx, &dl->doc, &dl->ctx), 0);
  cr_assert_eq(cs__dotset_join(&r->ctx, &dl->ctx), 0);
  r->seen |= BIT(o);
  if (tracing)
    fprintf(stderr,
            "op %d: replica %d doc %d seen=%#llx exist=%d/%d reg=%d:%d set add=%#x touch=%#x "
            "ctr=%d:%lld\n",
            o, ri, doc, (unsigned long long)p->seen, p->exist_write, p->exist_alive, p->reg_field,
            p->reg_val, p->set_add, p->set_touch, p->ctr_write, (long long)p->ctr_by);
  for (int k = 0; k < s->nreps; k++)
    if (k != ri)
      send(s, k, o);
}

/* ---- algebraic laws on live states ---- */

typedef struct state {
  cs_doc doc;
  cs_dotset ctx;
} state;

static void state_copy(state *out, const cs_doc *d, const cs_dotset *c) {
  memset(out, 0, sizeof *out);
  cr_assert_eq(cs__doc_copy(&out->doc, d), 0);
  cr_assert_eq(cs__dotset_copy(&out->ctx, c), 0);
}
static void state_join(state *x, const state *y) {
  cr_assert_eq(cs__doc_join(&x->doc, &x->ctx, &y->doc, &y->ctx), 0);
  cr_assert_eq(cs__dotset_join(&x->ctx, &y->ctx), 0);
}
static bool state_eq(const state *x, const state *y) {
  return cs__doc_equal(&x->doc, &y->doc) && cs__dotset_equal(&x->ctx, &y->ctx);
}
static void state_dispose(state *x) {
  cs__doc_dispose(&x->doc);
  cs__dotset_dispose(&x->ctx);
}

static void check_laws(sim *s) {
  int doc = (int)below(&s->rng, NDOCS);
  sim_rep *ra = &s->reps[below(&s->rng, (unsigned)s->nreps)];
  sim_rep *rb = &s->reps[below(&s->rng, (unsigned)s->nreps)];
  sim_rep *rc = &s->reps[below(&s->rng, (unsigned)s->nreps)];
  state a, b, c, ab, ba, aa, ab_c, bc, a_bc;
  state_copy(&a, &ra->docs[doc], &ra->ctx);
  state_copy(&b, &rb->docs[doc], &rb->ctx);
  state_copy(&c, &rc->docs[doc], &rc->ctx);
  state_copy(&aa, &a.doc, &a.ctx);
  state_join(&aa, &a);
  if (!state_eq(&aa, &a))
    fail(s, "join is not idempotent (doc %d)", doc);
  state_copy(&ab, &a.doc, &a.ctx);
  state_join(&ab, &b);
  state_copy(&ba, &b.doc, &b.ctx);
  state_join(&ba, &a);
  if (!state_eq(&ab, &ba))
    fail(s, "join is not commutative (doc %d)", doc);
  state_copy(&ab_c, &ab.doc, &ab.ctx);
  state_join(&ab_c, &c);
  state_copy(&bc, &b.doc, &b.ctx);
  state_join(&bc, &c);
  state_copy(&a_bc, &a.doc, &a.ctx);
  state_join(&a_bc, &bc);
  if (!state_eq(&ab_c, &a_bc))
    fail(s, "join is not associative (doc %d)", doc);
  state_dispose(&a);
  state_dispose(&b);
  state_dispose(&c);
  state_dispose(&aa);
  state_dispose(&ab);
  state_dispose(&ba);
  state_dispose(&ab_c);
  state_dispose(&bc);
  state_dispose(&a_bc);
}

/* ---- checks at quiescence ---- */

static bool same_conflicts(const cs_conflict_list *x, const cs_conflict_list *y) {
  if (x->len != y->len)
    return false;
  for (size_t i = 0; i < x->len; i++) {
    const cs_conflict *p = &x->items[i], *q = &y->items[i];
    if (p->kind != q->kind || p->ndots != q->ndots || memcmp(p->id, q->id, sizeof p->id) ||
        memcmp(p->dots, q->dots, p->ndots * sizeof *p->dots) ||
        (p->field == NULL) != (q->field == NULL) || (p->field && strcmp(p->field, q->field)))
      return false;
  }
  return true;
}

static void check_doc_against_oracle(sim *s, int doc, const cs_doc *d, const cs_conflict_list *cl) {
  uint64_t all = s->nops == 64 ? ~0ull : BIT(s->nops) - 1;
  bool du = oracle_delete_update(s, doc, all), seen_du = false;
  int64_t sum = 0;
  bool any_ctr = false;
  cs_field *f;

  if (cs__doc_alive(d) != oracle_alive(s, doc, all))
    fail(s, "doc %d: alive=%d, oracle %d", doc, cs__doc_alive(d), oracle_alive(s, doc, all));
  if ((int)d->nexist != __builtin_popcountll(oracle_exist(s, doc, all)))
    fail(s, "doc %d: %zu existence entries, oracle %d", doc, d->nexist,
         __builtin_popcountll(oracle_exist(s, doc, all)));
  for (int fi = 0; fi < NREGS; fi++) {
    uint64_t M = oracle_reg(s, doc, fi, all);
    const cs_reg_entry *vis;
    int best = -1;
    bool want_conflict = oracle_distinct_values(s, M) > 1, got_conflict = false;
    f = cs__doc_field(d, reg_names[fi]);
    if (!M) {
      if (f)
        fail(s, "doc %d field %s: present, oracle has no write", doc, reg_names[fi]);
      continue;
    }
    if (!f || f->kind != CS_KIND_REG) {
      fail(s, "doc %d field %s: missing", doc, reg_names[fi]);
      continue;
    }
    if ((int)f->u.reg.len != __builtin_popcountll(M))
      fail(s, "doc %d field %s: %zu siblings, oracle %d", doc, reg_names[fi], f->u.reg.len,
           __builtin_popcountll(M));
    for (int o = 0; o < s->nops; o++) {
      if (!(M & BIT(o)))
        continue;
      if (best < 0 || s->ops[o].hlc > s->ops[best].hlc ||
          (s->ops[o].hlc == s->ops[best].hlc &&
           s->reps[s->ops[o].replica].id > s->reps[s->ops[best].replica].id))
        best = o;
    }
    vis = cs__reg_visible(&f->u.reg);
    if (!vis || val_index(&vis->val) != s->ops[best].reg_val)
      fail(s, "doc %d field %s: visible value %d, oracle %d", doc, reg_names[fi],
           vis ? val_index(&vis->val) : -1, s->ops[best].reg_val);
    for (size_t i = 0; i < cl->len; i++)
      if (cl->items[i].kind == CS_CONFLICT_VALUE && strcmp(cl->items[i].field, reg_names[fi]) == 0)
        got_conflict = true;
    if (got_conflict != want_conflict)
      fail(s, "doc %d field %s: value conflict %d, oracle %d", doc, reg_names[fi], got_conflict,
           want_conflict);
  }
  f = cs__doc_field(d, set_name);
  for (int x = 0; x < NELEMS; x++) {
    uint64_t M = oracle_set(s, doc, x, all);
    size_t ndots = 0;
    if (f) {
      for (size_t i = 0; i < f->u.set.len; i++)
        if (f->u.set.elems[i].val.u.i == 100 + x)
          ndots = f->u.set.elems[i].ndots;
    }
    if ((int)ndots != __builtin_popcountll(M))
      fail(s, "doc %d set element %d: %zu dots, oracle %d surviving adds", doc, x, ndots,
           __builtin_popcountll(M));
  }
  for (int o = 0; o < s->nops; o++)
    if (s->ops[o].doc == doc && s->ops[o].ctr_write) {
      sum += s->ops[o].ctr_by;
      any_ctr = true;
    }
  f = cs__doc_field(d, ctr_name);
  if (any_ctr != (f != NULL) || (f && cs__ctr_value(&f->u.ctr) != sum))
    fail(s, "doc %d counter: %lld, oracle %lld", doc, f ? (long long)cs__ctr_value(&f->u.ctr) : -1,
         (long long)sum);
  for (size_t i = 0; i < cl->len; i++)
    if (cl->items[i].kind == CS_CONFLICT_DELETE_UPDATE)
      seen_du = true;
  if (seen_du != du)
    fail(s, "doc %d: delete/update conflict %d, oracle %d", doc, seen_du, du);
}

static void check_quiescent(sim *s) {
  cs_conflict_list ref[NDOCS];
  for (int k = 0; k < NDOCS; k++) {
    memset(&ref[k], 0, sizeof ref[k]);
    cr_assert_eq(
        cs__doc_conflicts(&ref[k], &s->reps[0].docs[k], "M", doc_names[k], NULL, NULL, blake2b), 0);
    check_doc_against_oracle(s, k, &s->reps[0].docs[k], &ref[k]);
  }
  for (int i = 1; i < s->nreps; i++) {
    if (!cs__dotset_equal(&s->reps[0].ctx, &s->reps[i].ctx))
      fail(s, "replica %d knowledge differs from replica 0", i);
    for (int k = 0; k < NDOCS; k++) {
      cs_conflict_list cl = {0};
      if (!cs__doc_equal(&s->reps[0].docs[k], &s->reps[i].docs[k]))
        fail(s, "replica %d doc %d differs from replica 0", i, k);
      cr_assert_eq(
          cs__doc_conflicts(&cl, &s->reps[i].docs[k], "M", doc_names[k], NULL, NULL, blake2b), 0);
      if (!same_conflicts(&cl, &ref[k]))
        fail(s, "replica %d doc %d: conflict list differs from replica 0", i, k);
      cs__conflict_list_dispose(&cl);
    }
  }
  for (int k = 0; k < NDOCS; k++)
    cs__conflict_list_dispose(&ref[k]);
}

/* ---- one schedule ---- */

static bool run_schedule(uint64_t seed, char *why, size_t whylen) {
  static sim s; /* large; one schedule at a time */
  bool laws_done = false;
  memset(&s, 0, sizeof s);
  s.seed = s.rng = seed;
  s.nreps = 2 + (int)below(&s.rng, MAX_REPS - 1);
  s.target_ops = 4 + (int)below(&s.rng, MAX_OPS - 4);
  s.now = 1700000000000ull;
  for (int i = 0; i < s.nreps; i++) {
    s.reps[i].id = rnd(&s.rng);
    s.reps[i].clock.max_skew_ms = 3600000;
    s.reps[i].skew = (int64_t)below(&s.rng, 5) - 2; /* a few ms apart: hlc ties happen */
  }
  while (s.nops < s.target_ops || s.nflight || s.ndropped) {
    unsigned r = below(&s.rng, 100);
    bool ops_left = s.nops < s.target_ops;
    if (ops_left && (r < 35 || s.nflight == 0)) {
      make_op(&s);
    } else if (r < 38) {
      /* usually to the replica furthest behind, sometimes to anyone */
      int src = (int)below(&s.rng, (unsigned)s.nreps), dst = 0;
      for (int k = 1; k < s.nreps; k++)
        if (__builtin_popcountll(s.reps[k].seen) < __builtin_popcountll(s.reps[dst].seen))
          dst = k;
      if (below(&s.rng, 4) == 0)
        dst = (int)below(&s.rng, (unsigned)s.nreps);
      transfer(&s, src, dst);
    } else if (s.ndropped && (r < 45 || (!ops_left && s.nflight == 0))) {
      /* re-send a dropped message */
      int i = (int)below(&s.rng, (unsigned)s.ndropped);
      send(&s, s.dropped[i].dst, s.dropped[i].op);
      s.dropped[i] = s.dropped[--s.ndropped];
    } else if (s.nflight) {
      network_step(&s, ops_left);
    }
    if (!laws_done && s.nops >= s.target_ops / 2 && below(&s.rng, 4) == 0) {
      check_laws(&s);
      laws_done = true;
    }
    if (s.why[0])
      break;
  }
  if (!s.why[0])
    check_quiescent(&s);
  for (int o = 0; o < s.nops; o++)
    cs__delta_dispose(&s.ops[o].delta);
  for (int i = 0; i < s.nreps; i++) {
    cs__dotset_dispose(&s.reps[i].ctx);
    for (int k = 0; k < NDOCS; k++)
      cs__doc_dispose(&s.reps[i].docs[k]);
  }
  if (s.why[0]) {
    snprintf(why, whylen, "%s", s.why);
    return false;
  }
  return true;
}

Test(crdt_property, replicas_converge_and_agree_with_oracle, .timeout = 0) {
  const char *seed_env = getenv("CS_SEED"), *soak = getenv("CS_SOAK");
  const char *scale = getenv("CS_TEST_SCALE");
  /* A new first seed each run unless chosen: the same schedules again and
   * again find nothing new. */
  uint64_t base = seed_env ? strtoull(seed_env, NULL, 10)
                           : ((uint64_t)time(NULL) * 1000003u) ^ ((uint64_t)getpid() << 16);
  long n = 10000;
  char why[512];

  cr_assert_neq(sodium_init(), -1);
  tracing = getenv("CS_TRACE") != NULL;
  if (scale && strcmp(scale, "small") == 0)
    n = 1000;
  if (soak)
    n = strtol(soak, NULL, 10);
  fprintf(stderr, "crdt_property: %ld schedules from seed %llu (set CS_SEED to choose it)\n", n,
          (unsigned long long)base);
  for (long i = 0; i < n; i++) {
    uint64_t seed = base + (uint64_t)i;
    if (!run_schedule(seed, why, sizeof why)) {
      fprintf(stderr, "seed=%llu: %s\nreplay: CS_SEED=%llu CS_SOAK=1 ./tests/test_crdt_property\n",
              (unsigned long long)seed, why, (unsigned long long)seed);
      cr_assert_fail("seed=%llu (schedule %ld of %ld): %s", (unsigned long long)seed, i, n, why);
    }
  }
}
