/*
 * Field names in decoding. A decoder looks each table entry's shared copy up
 * once and hands it to every field that names it, but a name that did not
 * fit in the shared table must be a private copy per field, since each field
 * frees its own. Documents reuse the last field table of equal bytes (the
 * memo), and a streamed decode builds each action in the arrays of dropped
 * ones (cs_action_pool): neither may change any outcome, and the pool must
 * be used, poisoned under ASan and whole after any allocation failure.
 * Seeded: CS_SEED replays a run; the seed is printed when a check fails.
 */
#include <criterion/criterion.h>
#include <stdio.h>

#include "core/codec_dec.h"
#include "test_codec_gen.h"

#ifdef CS__ASAN
#include <sanitizer/asan_interface.h>
#endif

/* Every field name of every action and state of m, shared or not. */
static size_t names_of(const cs_sync_msg *m, const char **out, size_t max, size_t *shared) {
  size_t n = 0;
  *shared = 0;
  for (size_t i = 0; i < m->nmodels; i++) {
    const cs_wire_model *wm = &m->models[i];
    for (size_t k = 0; k < wm->nactions + wm->nstates; k++) {
      const cs_doc *d = k < wm->nactions ? &wm->actions[k].doc : &wm->states[k - wm->nactions].doc;
      for (size_t f = 0; f < d->nfields && n < max; f++) {
        *shared += cs__name_shared(d->fields[f].name);
        out[n++] = d->fields[f].name;
      }
    }
  }
  return n;
}

static void round_trips(bool table_full) {
  uint64_t seed = gen_seed();
  gen_rng r = {seed};
  int n = gen_scale(300);
  static const char *names[1 << 14];
  for (int it = 0; it < n; it++) {
    cs_sync_msg m, back;
    cs_buf b = CS_BUF_INIT;
    size_t count, shared;
    gen_msg(&r, &m);
    CHECK(cs__codec_encode_msg(&b, &m) == 0, seed, it, "encode: %s", cs_errmsg());
    CHECK(cs__codec_decode_msg(&back, (const uint8_t *)b.ptr, b.size) == 0, seed, it, "decode: %s",
          cs_errmsg());
    CHECK(msg_equal(&m, &back), seed, it, "decoded message differs");
    count = names_of(&back, names, sizeof(names) / sizeof(names[0]), &shared);
    if (table_full) {
      CHECK(shared == 0, seed, it, "%zu of %zu names shared with the table full", shared, count);
      for (size_t i = 0; i < count; i++)
        for (size_t j = i + 1; j < count; j++)
          CHECK(names[i] != names[j], seed, it, "fields %zu and %zu hold one private copy", i, j);
    } else
      CHECK(shared == count, seed, it, "%zu of %zu names shared", shared, count);
    cs__sync_msg_dispose(&m);
    cs__sync_msg_dispose(&back); /* a copy held twice is freed twice */
    cs_buf_dispose(&b);
  }
}

Test(codec_names, decoded_field_names_are_shared) {
  round_trips(false);
}

Test(codec_names, with_the_shared_table_full_each_field_has_its_own_copy) {
  char buf[32];
  size_t refused = 0;
  /* More distinct names than the table has slots: later names are private. */
  for (size_t i = 0; i < 10000; i++) {
    snprintf(buf, sizeof(buf), "filler_%zu", i);
    char *p = cs__name_dup(buf);
    cr_assert_not_null(p);
    if (!cs__name_shared(p)) {
      cs__name_free(p);
      refused++;
    }
  }
  cr_assert(refused > 1000, "the table took all but %zu names", refused);
  round_trips(true);
}

/* Decodes p[0..len) once with the memo empty and once after decoding
 * `prime`: the same code, message and document. */
static void same_with_memo(const cs_buf *prime, const uint8_t *p, size_t len, uint64_t seed,
                           int it) {
  cs_doc cold, warm, t;
  char msg[512];
  int rc_cold, rc_warm;
  cs__dec_memo_forget();
  rc_cold = cs__codec_decode_doc(&cold, p, len);
  snprintf(msg, sizeof(msg), "%s", cs_errmsg());
  cs__dec_memo_forget();
  if (cs__codec_decode_doc(&t, (const uint8_t *)prime->ptr, prime->size) == 0)
    cs__doc_dispose(&t);
  rc_warm = cs__codec_decode_doc(&warm, p, len);
  CHECK(rc_warm == rc_cold, seed, it, "code %d with the memo, %d without (%s)", rc_warm, rc_cold,
        msg);
  if (rc_cold)
    CHECK(strcmp(cs_errmsg(), msg) == 0, seed, it, "message '%s' with the memo, '%s' without",
          cs_errmsg(), msg);
  else
    CHECK(cs__doc_equal(&cold, &warm), seed, it, "the memo changes the document");
  cs__doc_dispose(&cold);
  cs__doc_dispose(&warm);
}

Test(codec_names, the_field_table_memo_changes_no_outcome) {
  uint64_t seed = gen_seed();
  gen_rng r = {seed};
  int n = gen_scale(500);
  for (int it = 0; it < n; it++) {
    cs_doc d;
    cs_buf b = CS_BUF_INIT, other = CS_BUF_INIT;
    gen_dots g = {0, 0, 0, false};
    gen_doc(&r, &d, &g);
    CHECK(cs__codec_encode_doc(&b, &d) == 0, seed, it, "encode: %s", cs_errmsg());
    cs__doc_dispose(&d);
    gen_doc(&r, &d, &g);
    CHECK(cs__codec_encode_doc(&other, &d) == 0, seed, it, "encode: %s", cs_errmsg());
    cs__doc_dispose(&d);
    const uint8_t *p = (const uint8_t *)b.ptr;
    same_with_memo(&b, p, b.size, seed, it);     /* the same table */
    same_with_memo(&other, p, b.size, seed, it); /* most often another */
    for (size_t len = 0; len < b.size; len++)    /* cut anywhere */
      same_with_memo(&b, p, len, seed, it);
    for (int k = 0; k < 16; k++) { /* one byte changed anywhere */
      uint8_t *bad = malloc(b.size);
      size_t at = gen_below(&r, b.size);
      memcpy(bad, p, b.size);
      bad[at] = (uint8_t)(bad[at] + 1 + gen_below(&r, 255));
      same_with_memo(&b, bad, b.size, seed, it);
      free(bad);
    }
    cs_buf_dispose(&b);
    cs_buf_dispose(&other);
  }
}

/* A sink that leaves each action where it is (so that the decoder reuses its
 * arrays for the next one) and checks it against the whole decode's. */
typedef struct compare_sink {
  const cs_sync_msg *whole;
  size_t section, seen, one_field;
  bool differs;
  /* the pool's fields before the decode, and how many actions used one */
  cs_field *pooled[CS_ACTION_POOL_MAX];
  size_t npooled, from_pool;
} compare_sink;

static int compare_section(void *arg, cs_wire_model *wm) {
  compare_sink *c = arg;
  (void)wm;
  c->section = c->seen++;
  return 0;
}

static int compare_action(void *arg, cs_wire_model *wm, size_t index, cs_wire_action *a) {
  compare_sink *c = arg;
  const cs_field *f;
  int shape = cs__wire_action_shape(a, &f);
  (void)wm;
  if (!action_equal(a, &c->whole->models[c->section].actions[index]))
    c->differs = true;
  c->one_field += shape == CS__SHAPE_REG1 || shape == CS__SHAPE_ADD1;
  for (size_t i = 0; i < c->npooled; i++)
    c->from_pool += a->doc.fields == c->pooled[i];
  return 0;
}

/* One generated message decoded whole and streamed (from `pool`, NULL for
 * the decoder's own): the same actions. Returns how many had one field;
 * *from_pool (when not NULL) gets how many were built in a field the pool
 * held before. */
static size_t streamed_same(gen_rng *r, uint64_t seed, int it, cs_action_pool *pool,
                            size_t *from_pool) {
  cs_sync_msg m, whole, streamed;
  cs_buf b = CS_BUF_INIT;
  static compare_sink c;
  cs_msg_sink sink = {NULL, compare_section, compare_action, NULL, &c, pool};
  memset(&c, 0, sizeof(c));
  c.whole = &whole;
  for (size_t i = 0; pool && i < pool->nfield; i++)
    c.pooled[c.npooled++] = pool->field[i];
  gen_msg(r, &m);
  CHECK(cs__codec_encode_msg(&b, &m) == 0, seed, it, "encode: %s", cs_errmsg());
  CHECK(cs__codec_decode_msg(&whole, (const uint8_t *)b.ptr, b.size) == 0, seed, it, "decode: %s",
        cs_errmsg());
  CHECK(cs__codec_decode_msg_sink(&streamed, (const uint8_t *)b.ptr, b.size, &sink) == 0, seed, it,
        "streamed decode: %s", cs_errmsg());
  CHECK(!c.differs, seed, it, "a streamed action differs from the whole decode's");
  cs__sync_msg_dispose(&m);
  cs__sync_msg_dispose(&whole);
  cs__sync_msg_dispose(&streamed);
  cs_buf_dispose(&b);
  if (from_pool)
    *from_pool += c.from_pool;
  return c.one_field;
}

Test(codec_names, streamed_actions_reusing_arrays_decode_the_same) {
  uint64_t seed = gen_seed();
  gen_rng r = {seed};
  int n = gen_scale(2000);
  size_t one_field = 0;
  for (int it = 0; it < n; it++)
    one_field += streamed_same(&r, seed, it, NULL, NULL);
  cr_assert(one_field > (size_t)n, "only %zu one-field actions in %d messages (seed %llu)",
            one_field, n, (unsigned long long)seed);
}

/* A one-field action as the decoder builds it: a register entry or a set
 * element holding a value long enough to be allocated, and a context. */
static void one_field_action(cs_wire_action *a, bool set) {
  static const char v[] = "a value longer than the inline bytes";
  cs_field *f = cs__calloc(1, sizeof(*f));
  memset(a, 0, sizeof(*a));
  a->origin = 7;
  a->first = a->last = 1;
  f->name = cs__name_dupn("f", 1);
  if (set) {
    f->kind = CS_KIND_SET;
    f->u.set.elems = cs__calloc(1, sizeof(cs_set_elem));
    f->u.set.len = f->u.set.cap = 1;
    cs__val_str(&f->u.set.elems[0].val, v, sizeof(v) - 1);
    f->u.set.elems[0].dots = cs__malloc(sizeof(cs_dot));
    f->u.set.elems[0].dots[0] = (cs_dot){7, 1};
    f->u.set.elems[0].ndots = f->u.set.elems[0].cap = 1;
  } else {
    f->kind = CS_KIND_REG;
    f->u.reg.entries = cs__calloc(1, sizeof(cs_reg_entry));
    f->u.reg.len = f->u.reg.cap = 1;
    f->u.reg.entries[0].dot = (cs_dot){7, 1};
    cs__val_str(&f->u.reg.entries[0].val, v, sizeof(v) - 1);
  }
  a->doc.fields = f;
  a->doc.nfields = a->doc.fields_cap = 1;
  cs__dotset_add(&a->ctx, (cs_dot){7, 1});
  cs__dotset_add(&a->ctx, (cs_dot){9, 4});
}

Test(codec_names, the_action_pool_keeps_one_field_arrays_up_to_its_size) {
  cs_action_pool *p = cs__calloc(1, sizeof(*p));
  cs_wire_action a;
  for (int i = 0; i < CS_ACTION_POOL_MAX + 40; i++) {
    one_field_action(&a, i % 2 == 1);
    cs__action_pool_put(p, &a);
    cr_assert_null(a.doc.fields, "the action is left zeroed");
  }
  cr_expect_eq(p->nfield, CS_ACTION_POOL_MAX);
  cr_expect_eq(p->nreg, CS_ACTION_POOL_MAX / 2);
  cr_expect_eq(p->nelem, CS_ACTION_POOL_MAX / 2);
  cr_expect_eq(p->nextra + p->nvv, 2 * CS_ACTION_POOL_MAX, "%zu extras, %zu vv", p->nextra, p->nvv);
#ifdef CS__ASAN
  /* Kept arrays are poisoned: a pointer someone kept into them fails. */
  cr_expect(__asan_address_is_poisoned(p->field[0]));
  cr_expect(__asan_address_is_poisoned(p->reg[0]));
  cr_expect(__asan_address_is_poisoned(p->elem[0]));
  cr_expect(__asan_address_is_poisoned(p->extra[0]));
#endif
  while (p->nelem) {
    cs_set_elem *el = cs__action_pool_elem(p);
    cr_expect(el->dots != NULL && el->cap == 0 && el->ndots == 0, "an element keeps its dots");
    cs__free(el->dots);
    cs__free(el);
  }
  cr_expect_eq(p->nelem, 0);
  cs__action_pool_dispose(p);
  cr_expect_eq(p->nfield + p->nreg + p->nelem + p->nextra + p->nvv, 0);

  /* Only the one-field shape is kept; a document of two fields is freed. */
  one_field_action(&a, false);
  cs__array_grow((void **)&a.doc.fields, &a.doc.fields_cap, 2, sizeof(cs_field));
  memset(&a.doc.fields[1], 0, sizeof(cs_field));
  a.doc.fields[1].name = cs__name_dupn("g", 1);
  a.doc.fields[1].kind = CS_KIND_CTR;
  a.doc.nfields = 2;
  cs__action_pool_put(p, &a);
  cr_expect_eq(p->nfield + p->nreg + p->nelem, 0);
  /* Without a pool, put only disposes. */
  one_field_action(&a, true);
  cs__action_pool_put(NULL, &a);
  cr_expect_null(a.doc.fields);
  cs__action_pool_dispose(p);
  cs__free(p);
}

/* A merge hands its pool to its decoder: a streamed decode that starts with
 * a full pool builds every action in its arrays and decodes the same. */
/* Fills p with one-field arrays, as a written log run leaves it. */
static void fill_pool(cs_action_pool *p, gen_rng *r) {
  cs_wire_action a;
  while (p->nfield < CS_ACTION_POOL_MAX) {
    one_field_action(&a, gen_chance(r, 50));
    cs__action_pool_put(p, &a);
  }
}

Test(codec_names, a_decode_from_a_full_pool_decodes_the_same) {
  uint64_t seed = gen_seed();
  gen_rng r = {seed};
  int n = gen_scale(500);
  size_t one_field = 0, from_pool = 0;
  cs_action_pool *p = cs__calloc(1, sizeof(*p));
  for (int it = 0; it < n; it++) {
    fill_pool(p, &r);
    one_field += streamed_same(&r, seed, it, p, &from_pool);
  }
  /* Every one-field action takes a field from the pool (which the previous
   * one gave back, so most are fields it held before the decode). */
  cr_expect(from_pool * 2 > one_field,
            "%zu of %zu one-field actions built in pooled fields (seed %llu)", from_pool, one_field,
            (unsigned long long)seed);
  cs__action_pool_dispose(p);
  cs__free(p);
}

/* Each allocation of a streamed decode that takes its arrays from a full
 * pool may fail: the decode reports CS_ENOMEM, frees what it built, and
 * leaves the pool whole. */
Test(codec_names, every_allocation_failure_of_a_pooled_decode_is_reported) {
  uint64_t seed = gen_seed();
  gen_rng r = {seed};
  cs_action_pool *p = cs__calloc(1, sizeof(*p));
  cs_sync_msg m, out;
  cs_buf b = CS_BUF_INIT;
  int fails = 0, rc;
  size_t actions = 0;
  do { /* a message with a few actions */
    cs_buf_dispose(&b);
    gen_msg(&r, &m);
    actions = 0;
    for (size_t i = 0; i < m.nmodels; i++)
      actions += m.models[i].nactions;
    cr_assert_eq(cs__codec_encode_msg(&b, &m), 0, "%s", cs_errmsg());
    cs__sync_msg_dispose(&m);
  } while (actions < 4);
  for (unsigned long n = 1;; n++) {
    compare_sink c;
    cs_msg_sink sink = {NULL, compare_section, compare_action, NULL, &c, p};
    memset(&c, 0, sizeof(c));
    cr_assert_eq(cs__codec_decode_msg(&m, (const uint8_t *)b.ptr, b.size), 0);
    c.whole = &m;
    fill_pool(p, &r);
    cs__alloc_fail_after(n);
    rc = cs__codec_decode_msg_sink(&out, (const uint8_t *)b.ptr, b.size, &sink);
    cs__alloc_fail_after(0);
    cs__sync_msg_dispose(&out);
    cs__sync_msg_dispose(&m);
    cr_assert(p->nfield <= CS_ACTION_POOL_MAX && p->nreg + p->nelem <= 2 * CS_ACTION_POOL_MAX);
    if (rc == 0) {
      cr_assert_not(c.differs, "seed %llu", (unsigned long long)seed);
      break;
    }
    cr_assert_eq(rc, CS_ENOMEM, "allocation %lu: %d %s (seed %llu)", n, rc, cs_errmsg(),
                 (unsigned long long)seed);
    fails++;
  }
  cr_expect_gt(fails, 0, "no allocation of the decode failed (seed %llu)",
               (unsigned long long)seed);
  cs_buf_dispose(&b);
  cs__action_pool_dispose(p);
  cs__free(p);
}
