/* Unit tests for the CRDT core's building blocks: values, dot sets, clock,
 * and document copy/equality. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crdt/crdt.h"

static int test_scale(int n) {
  const char *s = getenv("CS_TEST_SCALE");
  return (s && strcmp(s, "small") == 0) ? (n / 10 > 0 ? n / 10 : 1) : n;
}

static uint64_t rng_next(uint64_t *s) {
  /* splitmix64: small, seedable, good enough for test schedules */
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* CS_SEED, or a seed that varies from run to run; printed either way. */
static uint64_t seed_from_env(void) {
  const char *s = getenv("CS_SEED");
  uint64_t seed = s ? strtoull(s, NULL, 10)
                    : ((uint64_t)time(NULL) * 1000003u) ^ ((uint64_t)getpid() << 16);
  fprintf(stderr, "crdt_basic: seed %llu (set CS_SEED to choose it)\n", (unsigned long long)seed);
  return seed;
}

/* ---- values ---- */

Test(crdt_val, order_is_by_type_then_value) {
  cs_val a, b, n = {0};
  cs_val i1 = cs__val_int(-5), i2 = cs__val_int(3);
  cr_assert_eq(cs__val_str(&a, "abc", 3), 0);
  cr_assert_eq(cs__val_str(&b, "abd", 3), 0);
  cr_expect_lt(cs__val_cmp(&a, &b), 0);
  cr_expect_gt(cs__val_cmp(&b, &a), 0);
  cr_expect_lt(cs__val_cmp(&i1, &i2), 0);
  cr_expect_lt(cs__val_cmp(&n, &i1), 0); /* NULL sorts first */
  cr_expect_lt(cs__val_cmp(&i2, &a), 0); /* INT before STR */
  cr_expect_eq(cs__val_data(&a)[3], '\0');
  cs__val_dispose(&a);
  cs__val_dispose(&b);
}

Test(crdt_val, strings_compare_prefix_first_then_length) {
  cs_val a, b;
  cr_assert_eq(cs__val_str(&a, "ab", 2), 0);
  cr_assert_eq(cs__val_str(&b, "abc", 3), 0);
  cr_expect_lt(cs__val_cmp(&a, &b), 0);
  cs__val_dispose(&b);
  cr_assert_eq(cs__val_bytes(&b, "ab", 2), 0);
  cr_expect_neq(cs__val_cmp(&a, &b), 0); /* same bytes, different type */
  cs__val_dispose(&a);
  cs__val_dispose(&b);
}

Test(crdt_val, doubles_follow_total_order) {
  double ds[] = {-1e300, -1.0, -0.0, 0.0, 1e-300, 1.0, 2.5, 1e300};
  for (size_t i = 0; i + 1 < sizeof ds / sizeof ds[0]; i++) {
    cs_val a = {.type = CS_VAL_DOUBLE, .u.d = ds[i]}, b = {.type = CS_VAL_DOUBLE, .u.d = ds[i + 1]};
    cr_expect_lt(cs__val_cmp(&a, &b), 0, "%g < %g", ds[i], ds[i + 1]);
    cr_expect_gt(cs__val_cmp(&b, &a), 0);
    cr_expect_eq(cs__val_cmp(&a, &a), 0);
  }
}

Test(crdt_val, copy_is_deep) {
  const char *texts[] = {"hello", "a string longer than fifteen bytes"};
  for (int i = 0; i < 2; i++) {
    cs_val a, b;
    cr_assert_eq(cs__val_str(&a, texts[i], strlen(texts[i])), 0);
    cr_assert_eq(cs__val_copy(&b, &a), 0);
    cr_expect_neq(cs__val_data(&a), cs__val_data(&b));
    cr_expect(cs__val_equal(&a, &b));
    cs__val_dispose(&a);
    cr_expect_str_eq(cs__val_data(&b), texts[i]);
    cs__val_dispose(&b);
  }
}

/* Up to CS_VAL_INLINE bytes live in the value; longer ones are allocated.
 * Either way: the same bytes, terminated, ordered and copied alike. */
Test(crdt_val, short_values_are_inline_long_ones_allocated) {
  char text[CS_VAL_INLINE + 2];
  memset(text, 'q', sizeof(text));
  for (size_t len = CS_VAL_INLINE - 1; len <= CS_VAL_INLINE + 1; len++) {
    cs_val a, b, c;
    cr_assert_eq(cs__val_str(&a, text, len), 0);
    cr_expect_eq(a.inl, len <= CS_VAL_INLINE, "len %zu", len);
    cr_expect_eq(a.len, len);
    cr_expect_eq(cs__val_data(&a)[len], '\0');
    cr_expect_eq(memcmp(cs__val_data(&a), text, len), 0);
    cr_assert_eq(cs__val_copy(&b, &a), 0);
    cr_expect_eq(b.inl, a.inl);
    cr_expect(cs__val_equal(&a, &b));
    /* a moved value stays valid: nothing points into the struct itself */
    c = b;
    memset(&b, 0x5a, sizeof(b));
    cr_expect(cs__val_equal(&a, &c));
    cs__val_dispose(&a);
    cs__val_dispose(&c);
    cr_expect_eq(c.type, CS_VAL_NULL);
  }
  cs_val x;
  cr_assert_eq(cs__val_bytes(&x, "\0a\0", 3), 0);
  cr_expect(x.inl && x.len == 3 && memcmp(cs__val_data(&x), "\0a\0", 4) == 0);
  cs__val_dispose(&x);
  /* A failed allocation of a long value reports it; a short one needs none. */
  cs__alloc_fail_after(1);
  cr_expect_eq(cs__val_str(&x, text, CS_VAL_INLINE + 1), CS_ENOMEM);
  cs__alloc_fail_after(1);
  cr_expect_eq(cs__val_str(&x, text, CS_VAL_INLINE), 0);
  cs__alloc_fail_after(0);
  cs__val_dispose(&x);
}

/* ---- dot sets ---- */

Test(crdt_dotset, compacts_out_of_order_dots) {
  cs_dotset s = CS_DOTSET_INIT;
  cr_assert_eq(cs__dotset_add(&s, (cs_dot){7, 3}), 0);
  cr_assert_eq(cs__dotset_add(&s, (cs_dot){7, 2}), 0);
  cr_expect_eq(s.vv_len, 0);
  cr_expect_eq(s.extra_len, 2);
  cr_expect_eq(cs__dotset_max(&s, 7), 0);
  cr_expect_eq(cs__dotset_next(&s, 7).counter, 4);
  cr_assert_eq(cs__dotset_add(&s, (cs_dot){7, 1}), 0);
  cr_expect_eq(s.vv_len, 1);
  cr_expect_eq(s.extra_len, 0);
  cr_expect_eq(cs__dotset_max(&s, 7), 3);
  cr_expect(cs__dotset_contains(&s, (cs_dot){7, 2}));
  cr_expect_not(cs__dotset_contains(&s, (cs_dot){7, 4}));
  cr_expect_not(cs__dotset_contains(&s, (cs_dot){8, 1}));
  cs__dotset_dispose(&s);
}

/* A naive model: a bit per (replica 0..3, counter 1..40). */
#define NREP 4
#define NCTR 40
typedef struct naive {
  bool has[NREP][NCTR + 1];
} naive;

static void random_dotset(cs_dotset *s, naive *m, uint64_t *rng) {
  int n = (int)(rng_next(rng) % 60);
  memset(m, 0, sizeof *m);
  for (int k = 0; k < n; k++) {
    cs_dot d = {rng_next(rng) % NREP, 1 + rng_next(rng) % NCTR};
    /* bias towards low counters so that vectors form */
    if (rng_next(rng) % 2)
      d.counter = 1 + rng_next(rng) % 8;
    cr_assert_eq(cs__dotset_add(s, d), 0);
    m->has[d.replica][d.counter] = true;
  }
}

static void check_canonical(const cs_dotset *s) {
  for (size_t i = 0; i < s->vv_len; i++) {
    cr_assert_geq(s->vv[i].max, 1);
    if (i)
      cr_assert_lt(s->vv[i - 1].replica, s->vv[i].replica);
  }
  for (size_t i = 0; i < s->extra_len; i++) {
    cr_assert_gt(s->extra[i].counter, cs__dotset_max(s, s->extra[i].replica) + 1);
    if (i)
      cr_assert_lt(cs__dot_cmp(&s->extra[i - 1], &s->extra[i]), 0);
  }
}

static void check_matches(const cs_dotset *s, const naive *m) {
  check_canonical(s);
  for (cs_replica r = 0; r < NREP; r++)
    for (uint64_t c = 1; c <= NCTR; c++) {
      /* the inline test (sets of up to 4 replicas) and the general one */
      cr_assert_eq(cs__dotset_contains(s, (cs_dot){r, c}), m->has[r][c], "dot (%llu,%llu)",
                   (unsigned long long)r, (unsigned long long)c);
      cr_assert_eq(cs__dotset_contains_slow(s, (cs_dot){r, c}), m->has[r][c], "dot (%llu,%llu)",
                   (unsigned long long)r, (unsigned long long)c);
    }
}

Test(crdt_dotset, random_add_join_subset_match_naive_model) {
  uint64_t seed = seed_from_env(), rng = seed;
  int iters = test_scale(2000);
  for (int it = 0; it < iters; it++) {
    cs_dotset a = CS_DOTSET_INIT, b = CS_DOTSET_INIT, c = CS_DOTSET_INIT;
    naive ma, mb, mu;
    bool sub = true;
    random_dotset(&a, &ma, &rng);
    random_dotset(&b, &mb, &rng);
    check_matches(&a, &ma);
    check_matches(&b, &mb);
    for (int r = 0; r < NREP; r++)
      for (int k = 1; k <= NCTR; k++) {
        mu.has[r][k] = ma.has[r][k] || mb.has[r][k];
        if (ma.has[r][k] && !mb.has[r][k])
          sub = false;
      }
    cr_assert_eq(cs__dotset_subset(&a, &b), sub, "seed=%llu iteration %d", (unsigned long long)seed,
                 it);
    cr_assert_eq(cs__dotset_copy(&c, &a), 0);
    cr_assert(cs__dotset_equal(&c, &a));
    cr_assert_eq(cs__dotset_join(&c, &b), 0);
    check_matches(&c, &mu);
    cr_assert(cs__dotset_subset(&a, &c));
    cr_assert(cs__dotset_subset(&b, &c));
    /* commutative: b ∪ a has the same canonical image */
    cr_assert_eq(cs__dotset_join(&b, &a), 0);
    cr_assert(cs__dotset_equal(&b, &c), "seed=%llu iteration %d", (unsigned long long)seed, it);
    /* idempotent */
    cr_assert_eq(cs__dotset_join(&c, &a), 0);
    cr_assert(cs__dotset_equal(&b, &c));
    for (cs_replica r = 0; r < NREP; r++) {
      uint64_t hi = 0;
      for (uint64_t k = 1; k <= NCTR; k++)
        if (mu.has[r][k])
          hi = k;
      cr_assert_eq(cs__dotset_next(&c, r).counter, hi + 1);
      /* any dot of r in lo..hi, against the model, ranges past the ends included */
      for (uint64_t lo = 1; lo <= NCTR + 1; lo++)
        for (uint64_t up = lo - 1; up <= NCTR + 1; up++) {
          bool any = false;
          for (uint64_t k = lo; k <= up && k <= NCTR; k++)
            any = any || ma.has[r][k];
          cr_assert_eq(cs__dotset_any_in(&a, r, lo, up), any,
                       "seed=%llu iteration %d: replica %llu, %llu..%llu",
                       (unsigned long long)seed, it, (unsigned long long)r,
                       (unsigned long long)lo, (unsigned long long)up);
        }
    }
    cs__dotset_dispose(&a);
    cs__dotset_dispose(&b);
    cs__dotset_dispose(&c);
  }
}

/* Difference, truncation, removal and count against the naive model. */
Test(crdt_dotset, subtract_truncate_remove_count_match_naive_model) {
  uint64_t seed = seed_from_env(), rng = seed;
  int iters = test_scale(2000);
  for (int it = 0; it < iters; it++) {
    cs_dotset a = CS_DOTSET_INIT, b = CS_DOTSET_INIT, d = CS_DOTSET_INIT;
    naive ma, mb, md;
    uint64_t n = 0;
    random_dotset(&a, &ma, &rng);
    random_dotset(&b, &mb, &rng);
    for (int r = 0; r < NREP; r++)
      for (int k = 1; k <= NCTR; k++) {
        md.has[r][k] = ma.has[r][k] && !mb.has[r][k];
        n += ma.has[r][k];
      }
    cr_assert_eq(cs__dotset_count(&a), n, "seed=%llu iteration %d", (unsigned long long)seed, it);
    cr_assert_eq(cs__dotset_subtract(&d, &a, &b, SIZE_MAX), 0);
    check_matches(&d, &md);
    /* past the limit: refused */
    if (cs__dotset_count(&d) > 0)
      cr_assert_eq(cs__dotset_subtract(&d, &a, &b, (size_t)cs__dotset_count(&d) - 1), CS_ETOOBIG);
    /* truncate a replica, remove one dot of another */
    cs_replica r = rng_next(&rng) % NREP, q = (r + 1) % NREP;
    uint64_t max = rng_next(&rng) % (NCTR + 1), c = 1 + rng_next(&rng) % NCTR;
    cs__dotset_truncate(&a, r, max);
    for (uint64_t k = max + 1; k <= NCTR; k++)
      ma.has[r][k] = false;
    cr_assert_eq(cs__dotset_remove(&a, (cs_dot){q, c}), 0);
    ma.has[q][c] = false;
    check_matches(&a, &ma);
    cs__dotset_dispose(&a);
    cs__dotset_dispose(&b);
    cs__dotset_dispose(&d);
  }
}

Test(crdt_dotset, count_saturates) {
  cs_vv_entry vv[2] = {{1, UINT64_MAX - 1}, {2, 5}};
  cs_dotset s = {vv, 2, 2, NULL, 0, 0};
  cr_expect_eq(cs__dotset_count(&s), UINT64_MAX);
  vv[0].max = 10;
  cr_expect_eq(cs__dotset_count(&s), 15);
}

Test(crdt_dotset, clear_keeps_memory_and_empties) {
  cs_dotset s = CS_DOTSET_INIT, e = CS_DOTSET_INIT;
  cr_assert_eq(cs__dotset_add(&s, (cs_dot){1, 1}), 0);
  cr_assert_eq(cs__dotset_add(&s, (cs_dot){1, 5}), 0);
  cs__dotset_clear(&s);
  cr_expect(cs__dotset_equal(&s, &e));
  cr_expect(cs__dotset_subset(&s, &e));
  cs__dotset_dispose(&s);
}

Test(crdt_dotset, join_fails_cleanly_without_memory) {
  cs_dotset a = CS_DOTSET_INIT, b = CS_DOTSET_INIT, before = CS_DOTSET_INIT;
  cr_assert_eq(cs__dotset_add(&a, (cs_dot){1, 1}), 0);
  cr_assert_eq(cs__dotset_add(&b, (cs_dot){2, 3}), 0);
  cr_assert_eq(cs__dotset_copy(&before, &a), 0);
  cs__alloc_fail_after(1);
  cr_expect_eq(cs__dotset_join(&a, &b), CS_ENOMEM);
  cs__alloc_fail_after(0);
  cr_expect(cs__dotset_equal(&a, &before));
  cs__dotset_dispose(&a);
  cs__dotset_dispose(&b);
  cs__dotset_dispose(&before);
}

/* Maxima near 2^64 (a peer may claim them): the join ends, and sums of
 * counts do not wrap into a small number. */
Test(crdt_dotset, join_near_the_top_of_the_counter_ends, .timeout = 10) {
  cs_vv_entry wrap[2] = {{7, 1}, {9, UINT64_MAX}}, top[1] = {{9, UINT64_MAX}};
  cs_dotset from = CS_DOTSET_INIT, into = CS_DOTSET_INIT;
  from.vv = wrap;
  from.vv_len = 2;
  cr_assert_eq(cs__dotset_join(&into, &from), 0);
  cr_expect_eq(cs__dotset_max(&into, 7), 1);
  cr_expect_eq(cs__dotset_max(&into, 9), UINT64_MAX);
  /* A few dots below the top: added one by one, up to it and no further. */
  cs__dotset_clear(&into);
  cs_vv_entry below[1] = {{9, UINT64_MAX - 3}};
  cs_dotset start = {below, 1, 1, NULL, 0, 0};
  cr_assert_eq(cs__dotset_join(&into, &start), 0);
  from.vv = top;
  from.vv_len = 1;
  cr_assert_eq(cs__dotset_join(&into, &from), 0);
  cr_expect_eq(cs__dotset_max(&into, 9), UINT64_MAX);
  cr_expect_eq(into.extra_len, 0);
  cs__dotset_dispose(&into);
}

/* ---- clock ---- */

Test(crdt_clock, tick_is_strictly_increasing) {
  cs_clock c = {0, 1000};
  cs_hlc a = cs__clock_tick(&c, 5000);
  cs_hlc b = cs__clock_tick(&c, 5000);
  cs_hlc d = cs__clock_tick(&c, 4000); /* wall clock went back */
  cs_hlc e = cs__clock_tick(&c, 6000);
  cr_expect_eq(a, CS_HLC_MAKE(5000, 0));
  cr_expect_eq(b, CS_HLC_MAKE(5000, 1));
  cr_expect_eq(d, CS_HLC_MAKE(5000, 2));
  cr_expect_eq(e, CS_HLC_MAKE(6000, 0));
}

Test(crdt_clock, counter_overflow_advances_milliseconds) {
  cs_clock c = {CS_HLC_MAKE(100, 0xffff), 1000};
  cs_hlc a = cs__clock_tick(&c, 50);
  cr_expect_eq(CS_HLC_MS(a), 101);
  cr_expect_eq(a & 0xffff, 0);
}

Test(crdt_clock, observe_moves_past_remote) {
  cs_clock c = {CS_HLC_MAKE(1000, 0), 60000};
  cr_assert_eq(cs__clock_observe(&c, CS_HLC_MAKE(1500, 7), 1200), 0);
  cr_expect_eq(c.last, CS_HLC_MAKE(1500, 8));
  cr_expect_gt(cs__clock_tick(&c, 1200), CS_HLC_MAKE(1500, 7));
  cr_assert_eq(cs__clock_observe(&c, CS_HLC_MAKE(100, 0), 9000), 0);
  cr_expect_eq(c.last, CS_HLC_MAKE(9000, 0));
}

Test(crdt_clock, observe_refuses_skewed_stamp) {
  cs_clock c = {CS_HLC_MAKE(1000, 0), 500};
  cr_expect_eq(cs__clock_observe(&c, CS_HLC_MAKE(1000 + 501, 0), 1000), CS_ECLOCK);
  cr_expect_eq(c.last, CS_HLC_MAKE(1000, 0));
  cr_expect(strstr(cs_errmsg(), "501 ms ahead") != NULL, "message: %s", cs_errmsg());
  cr_expect(strstr(cs_errmsg(), "500 ms") != NULL);
  cr_expect_eq(cs__clock_observe(&c, CS_HLC_MAKE(1000 + 500, 0), 1000), 0);
}

/* ---- documents ---- */

static void build_doc(cs_doc *d) {
  cs_field *f;
  /* Hand-built in canonical order: fields "age" (ctr), "city" (reg), "tags" (set). */
  d->fields = calloc(3, sizeof *d->fields);
  d->nfields = d->fields_cap = 3;
  f = &d->fields[0];
  f->name = strdup("age");
  f->kind = CS_KIND_CTR;
  f->u.ctr.entries = calloc(1, sizeof *f->u.ctr.entries);
  f->u.ctr.entries[0] = (cs_ctr_entry){1, 5, 2};
  f->u.ctr.len = f->u.ctr.cap = 1;
  f = &d->fields[1];
  f->name = strdup("city");
  f->kind = CS_KIND_REG;
  f->u.reg.entries = calloc(2, sizeof *f->u.reg.entries);
  f->u.reg.len = f->u.reg.cap = 2;
  f->u.reg.entries[0].dot = (cs_dot){1, 2};
  f->u.reg.entries[0].hlc = 10;
  cs__val_str(&f->u.reg.entries[0].val, "Paris", 5);
  f->u.reg.entries[1].dot = (cs_dot){2, 1};
  f->u.reg.entries[1].hlc = 11;
  cs__val_str(&f->u.reg.entries[1].val, "Lyon", 4);
  f = &d->fields[2];
  f->name = strdup("tags");
  f->kind = CS_KIND_SET;
  f->u.set.elems = calloc(1, sizeof *f->u.set.elems);
  f->u.set.len = f->u.set.cap = 1;
  cs__val_str(&f->u.set.elems[0].val, "x", 1);
  f->u.set.elems[0].dots = calloc(1, sizeof(cs_dot));
  f->u.set.elems[0].dots[0] = (cs_dot){1, 3};
  f->u.set.elems[0].ndots = f->u.set.elems[0].cap = 1;
  d->exist = calloc(1, sizeof *d->exist);
  d->nexist = d->exist_cap = 1;
  d->exist[0].dot = (cs_dot){1, 1};
  d->exist[0].alive = true;
}

Test(crdt_doc, copy_equal_and_lookup) {
  cs_doc a = CS_DOC_INIT, b = CS_DOC_INIT;
  build_doc(&a);
  cr_assert_eq(cs__doc_copy(&b, &a), 0);
  cr_expect(cs__doc_equal(&a, &b));
  cr_expect_not_null(cs__doc_field(&b, "city"));
  cr_expect_null(cs__doc_field(&b, "cit"));
  cr_expect_null(cs__doc_field(&b, "zzz"));
  cr_expect_str_eq(cs__val_data(&cs__reg_visible(&cs__doc_field(&b, "city")->u.reg)->val), "Lyon");
  cr_expect_eq(cs__ctr_value(&cs__doc_field(&b, "age")->u.ctr), 3);
  cr_expect(cs__doc_alive(&b));
  cr_expect_not(cs__doc_empty(&b));
  /* any difference breaks equality */
  cs__doc_field(&b, "tags")->u.set.elems[0].dots[0].counter = 4;
  cr_expect_not(cs__doc_equal(&a, &b));
  cs__doc_field(&b, "tags")->u.set.elems[0].dots[0].counter = 3;
  b.exist[0].alive = false;
  cr_expect_not(cs__doc_equal(&a, &b));
  cr_expect_not(cs__doc_alive(&b));
  cs__doc_dispose(&a);
  cs__doc_dispose(&b);
  cr_expect(cs__doc_empty(&a));
  cr_expect_not(cs__doc_alive(&a));
}

/* A delta may carry a set element without dots (its array NULL). */
Test(crdt_doc, copy_keeps_an_element_without_dots) {
  cs_doc a = CS_DOC_INIT, b = CS_DOC_INIT;
  build_doc(&a);
  cs_set_elem *el = &cs__doc_field(&a, "tags")->u.set.elems[0];
  free(el->dots);
  el->dots = NULL;
  el->ndots = el->cap = 0;
  cr_assert_eq(cs__doc_copy(&b, &a), 0);
  cr_expect(cs__doc_equal(&a, &b));
  cr_expect_eq(cs__doc_field(&b, "tags")->u.set.elems[0].ndots, 0);
  cs__doc_dispose(&a);
  cs__doc_dispose(&b);
}

Test(crdt_doc, copy_survives_every_allocation_failure) {
  cs_doc a = CS_DOC_INIT;
  build_doc(&a);
  for (unsigned long n = 1; n < 40; n++) {
    cs_doc b = CS_DOC_INIT;
    int rc;
    cs__alloc_fail_after(n);
    rc = cs__doc_copy(&b, &a);
    cs__alloc_fail_after(0);
    if (rc == 0) {
      cr_expect(cs__doc_equal(&a, &b));
      cs__doc_dispose(&b);
      break;
    }
    cr_expect_eq(rc, CS_ENOMEM);
    cr_expect(cs__doc_empty(&b));
  }
  cs__doc_dispose(&a);
}
