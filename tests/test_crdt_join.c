/* The join, the mutators and conflict detection, on the product guide's
 * scenarios and on targeted edge cases. */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crdt/crdt_int.h"

static void blake2b(uint8_t *out, size_t outlen, const uint8_t *in, size_t inlen) {
  crypto_generichash(out, outlen, in, inlen, NULL, 0);
}

/* One replica of one model holding one document. */
typedef struct rep {
  cs_replica id;
  cs_dotset ctx;
  cs_doc doc;
  cs_clock clock;
  uint64_t now;
} rep;

static void rep_init(rep *r, cs_replica id) {
  memset(r, 0, sizeof *r);
  r->id = id;
  r->clock.max_skew_ms = 60000;
  r->now = 1000000;
}

static void rep_dispose(rep *r) {
  cs__dotset_dispose(&r->ctx);
  cs__doc_dispose(&r->doc);
}

static void begin(cs_delta *d, rep *r) {
  r->now += 10;
  cr_assert_eq(cs__delta_init(d, &r->ctx, r->id, cs__clock_tick(&r->clock, r->now)), 0);
}

/* Applies a finished delta to a replica (local or received). */
static void apply(rep *r, const cs_delta *d) {
  cr_assert_eq(cs__doc_join(&r->doc, &r->ctx, &d->doc, &d->ctx), 0, "%s", cs_errmsg());
  cr_assert_eq(cs__dotset_join(&r->ctx, &d->ctx), 0);
}

static void commit(rep *r, cs_delta *d) {
  uint64_t first, last;
  cr_assert_eq(cs__delta_finish(d, &first, &last), 0);
  cr_assert_leq(first, last);
  apply(r, d);
}

/* Full state exchange both ways: each joins the other's document. */
static void exchange(rep *a, rep *b) {
  cs_doc da = CS_DOC_INIT;
  cs_dotset ca = CS_DOTSET_INIT;
  cr_assert_eq(cs__doc_copy(&da, &a->doc), 0);
  cr_assert_eq(cs__dotset_copy(&ca, &a->ctx), 0);
  cr_assert_eq(cs__doc_join(&a->doc, &a->ctx, &b->doc, &b->ctx), 0);
  cr_assert_eq(cs__dotset_join(&a->ctx, &b->ctx), 0);
  cr_assert_eq(cs__doc_join(&b->doc, &b->ctx, &da, &ca), 0);
  cr_assert_eq(cs__dotset_join(&b->ctx, &ca), 0);
  cs__doc_dispose(&da);
  cs__dotset_dispose(&ca);
}

static cs_val str(const char *s) {
  cs_val v;
  cr_assert_eq(cs__val_str(&v, s, strlen(s)), 0);
  return v;
}

static void set_str(rep *r, const char *field, const char *s) {
  cs_delta d;
  cs_val v = str(s);
  begin(&d, r);
  if (cs__doc_empty(&r->doc) || !cs__doc_alive(&r->doc))
    cr_assert_eq(cs__delta_exist(&d, &r->doc, true), 0);
  cr_assert_eq(cs__delta_reg_set(&d, &r->doc, field, &v), 0, "%s", cs_errmsg());
  commit(r, &d);
  cs__delta_dispose(&d);
  cs__val_dispose(&v);
}

static const char *visible_str(const rep *r, const char *field) {
  cs_field *f = cs__doc_field(&r->doc, field);
  const cs_reg_entry *e;
  if (!f || f->kind != CS_KIND_REG)
    return NULL;
  e = cs__reg_visible(&f->u.reg);
  return e ? cs__val_data(&e->val) : NULL;
}

static bool has_elem(const rep *r, const char *field, const char *s) {
  cs_field *f = cs__doc_field(&r->doc, field);
  if (!f)
    return false;
  for (size_t i = 0; i < f->u.set.len; i++)
    if (strcmp(cs__val_data(&f->u.set.elems[i].val), s) == 0)
      return f->u.set.elems[i].ndots > 0;
  return false;
}

static void conflicts(cs_conflict_list *out, const rep *r) {
  memset(out, 0, sizeof *out);
  cr_assert_eq(cs__doc_conflicts(out, &r->doc, "UserProfile", "profile_123", NULL, NULL, blake2b),
               0);
}

/* Creates profile_123 on a with a name, city and interests, then b gets it. */
static void seed_profile(rep *a, rep *b) {
  cs_delta d;
  cs_val v[2];
  begin(&d, a);
  cr_assert_eq(cs__delta_exist(&d, &a->doc, true), 0);
  v[0] = str("Ada");
  cr_assert_eq(cs__delta_reg_set(&d, &a->doc, "name", &v[0]), 0);
  cs__val_dispose(&v[0]);
  v[0] = str("Berlin");
  cr_assert_eq(cs__delta_reg_set(&d, &a->doc, "city", &v[0]), 0);
  cs__val_dispose(&v[0]);
  v[0] = str("hiking");
  v[1] = str("chess");
  cr_assert_eq(cs__delta_set_assign(&d, &a->doc, "interests", v, 2), 0);
  cs__val_dispose(&v[0]);
  cs__val_dispose(&v[1]);
  commit(a, &d);
  cs__delta_dispose(&d);
  exchange(a, b);
  cr_assert(cs__doc_equal(&a->doc, &b->doc));
}

Test(crdt_guide, concurrent_set_add_and_remove_keep_both_without_conflict) {
  rep a, b;
  cs_delta da, db;
  cs_val photo = str("photography"), hiking = str("hiking");
  cs_conflict_list la, lb;
  rep_init(&a, 1);
  rep_init(&b, 2);
  seed_profile(&a, &b);

  begin(&da, &a);
  cr_assert_eq(cs__delta_set_add(&da, &a.doc, "interests", &photo), 0);
  commit(&a, &da);
  begin(&db, &b);
  cr_assert_eq(cs__delta_set_remove(&db, &b.doc, "interests", &hiking), 0);
  commit(&b, &db);
  /* deltas cross */
  apply(&a, &db);
  apply(&b, &da);

  cr_expect(cs__doc_equal(&a.doc, &b.doc));
  cr_expect(has_elem(&a, "interests", "photography"));
  cr_expect(has_elem(&a, "interests", "chess"));
  cr_expect_not(has_elem(&a, "interests", "hiking"));
  conflicts(&la, &a);
  conflicts(&lb, &b);
  cr_expect_eq(la.len, 0);
  cr_expect_eq(lb.len, 0);
  cs__conflict_list_dispose(&la);
  cs__conflict_list_dispose(&lb);
  cs__delta_dispose(&da);
  cs__delta_dispose(&db);
  cs__val_dispose(&photo);
  cs__val_dispose(&hiking);
  rep_dispose(&a);
  rep_dispose(&b);
}

Test(crdt_guide, concurrent_city_edits_make_one_value_conflict_everywhere) {
  rep a, b;
  cs_conflict_list la, lb;
  rep_init(&a, 1);
  rep_init(&b, 2);
  seed_profile(&a, &b);
  set_str(&a, "city", "Paris");
  set_str(&b, "city", "Lyon");
  exchange(&a, &b);

  cr_assert(cs__doc_equal(&a.doc, &b.doc));
  cr_expect_str_eq(visible_str(&a, "city"), visible_str(&b, "city"));
  /* b wrote later (same wall clock progression, larger replica on ties) */
  conflicts(&la, &a);
  conflicts(&lb, &b);
  cr_assert_eq(la.len, 1);
  cr_assert_eq(lb.len, 1);
  cr_expect_eq(la.items[0].kind, CS_CONFLICT_VALUE);
  cr_expect_str_eq(la.items[0].field, "city");
  cr_expect_eq(la.items[0].ndots, 2);
  cr_expect_eq(memcmp(la.items[0].id, lb.items[0].id, CS_CONFLICT_ID_LEN), 0);
  cs__conflict_list_dispose(&la);
  cs__conflict_list_dispose(&lb);

  /* resolve on a by picking a sibling value ("Paris"), then exchange */
  set_str(&a, "city", "Paris");
  conflicts(&la, &a);
  cr_expect_eq(la.len, 0);
  cs__conflict_list_dispose(&la);
  exchange(&a, &b);
  conflicts(&lb, &b);
  cr_expect_eq(lb.len, 0);
  cr_expect_str_eq(visible_str(&b, "city"), "Paris");
  cr_expect(cs__doc_equal(&a.doc, &b.doc));
  cs__conflict_list_dispose(&lb);
  rep_dispose(&a);
  rep_dispose(&b);
}

Test(crdt_guide, concurrent_equal_values_are_not_a_conflict) {
  rep a, b;
  cs_conflict_list l;
  rep_init(&a, 1);
  rep_init(&b, 2);
  seed_profile(&a, &b);
  set_str(&a, "city", "Oslo");
  set_str(&b, "city", "Oslo");
  exchange(&a, &b);
  cr_expect_eq(cs__doc_field(&a.doc, "city")->u.reg.len, 2); /* siblings kept */
  conflicts(&l, &a);
  cr_expect_eq(l.len, 0);
  cs__conflict_list_dispose(&l);
  rep_dispose(&a);
  rep_dispose(&b);
}

static bool silent_city(const char *field, void *payload) {
  (void)payload;
  return strcmp(field, "city") == 0;
}

Test(crdt_guide, silent_field_never_surfaces) {
  rep a, b;
  cs_conflict_list l = {0};
  rep_init(&a, 1);
  rep_init(&b, 2);
  seed_profile(&a, &b);
  set_str(&a, "city", "Paris");
  set_str(&b, "city", "Lyon");
  exchange(&a, &b);
  cr_assert_eq(cs__doc_conflicts(&l, &a.doc, "UserProfile", "p", silent_city, NULL, blake2b), 0);
  cr_expect_eq(l.len, 0);
  cs__conflict_list_dispose(&l);
  rep_dispose(&a);
  rep_dispose(&b);
}

static void delete_doc(rep *r) {
  cs_delta d;
  begin(&d, r);
  cr_assert_eq(cs__delta_exist(&d, &r->doc, false), 0);
  commit(r, &d);
  cs__delta_dispose(&d);
}

static void delete_vs_update(rep *a, rep *b) {
  cs_conflict_list la, lb;
  rep_init(a, 1);
  rep_init(b, 2);
  seed_profile(a, b);
  delete_doc(a);
  cr_expect_not(cs__doc_alive(&a->doc));
  set_str(b, "city", "Rome");
  exchange(a, b);
  cr_assert(cs__doc_equal(&a->doc, &b->doc));
  cr_expect_not(cs__doc_alive(&a->doc));
  cr_expect_str_eq(visible_str(a, "city"), "Rome"); /* the edit is kept */
  cr_expect_str_eq(visible_str(a, "name"), "Ada");
  conflicts(&la, a);
  conflicts(&lb, b);
  cr_assert_eq(la.len, 1);
  cr_assert_eq(lb.len, 1);
  cr_expect_eq(la.items[0].kind, CS_CONFLICT_DELETE_UPDATE);
  cr_expect_null(la.items[0].field);
  cr_expect_eq(la.items[0].ndots, 2); /* the delete entry and b's city write */
  cr_expect_eq(memcmp(la.items[0].id, lb.items[0].id, CS_CONFLICT_ID_LEN), 0);
  cs__conflict_list_dispose(&la);
  cs__conflict_list_dispose(&lb);
}

Test(crdt_guide, delete_vs_update_conflicts_and_restore_clears_it) {
  rep a, b;
  cs_delta d;
  cs_conflict_list l;
  delete_vs_update(&a, &b);
  begin(&d, &b);
  cr_assert_eq(cs__delta_exist(&d, &b.doc, true), 0);
  commit(&b, &d);
  cs__delta_dispose(&d);
  cr_expect(cs__doc_alive(&b.doc));
  conflicts(&l, &b);
  cr_expect_eq(l.len, 0);
  cs__conflict_list_dispose(&l);
  exchange(&a, &b);
  cr_expect(cs__doc_alive(&a.doc));
  cr_expect_str_eq(visible_str(&a, "city"), "Rome");
  conflicts(&l, &a);
  cr_expect_eq(l.len, 0);
  cs__conflict_list_dispose(&l);
  rep_dispose(&a);
  rep_dispose(&b);
}

Test(crdt_guide, delete_vs_update_keep_deleted_clears_it) {
  rep a, b;
  cs_conflict_list l;
  delete_vs_update(&a, &b);
  delete_doc(&b);
  conflicts(&l, &b);
  cr_expect_eq(l.len, 0);
  cs__conflict_list_dispose(&l);
  exchange(&a, &b);
  cr_expect_not(cs__doc_alive(&a.doc));
  cr_expect(cs__doc_equal(&a.doc, &b.doc));
  conflicts(&l, &a);
  cr_expect_eq(l.len, 0);
  cs__conflict_list_dispose(&l);
  rep_dispose(&a);
  rep_dispose(&b);
}

Test(crdt_guide, concurrent_delete_and_create_is_a_conflict) {
  rep a, b;
  cs_delta d;
  cs_conflict_list l;
  rep_init(&a, 1);
  rep_init(&b, 2);
  seed_profile(&a, &b);
  delete_doc(&a);
  delete_doc(&b);
  exchange(&a, &b);
  conflicts(&l, &a);
  cr_expect_eq(l.len, 0); /* two deletes agree */
  cs__conflict_list_dispose(&l);
  begin(&d, &b); /* b re-creates while a deletes again */
  cr_assert_eq(cs__delta_exist(&d, &b.doc, true), 0);
  commit(&b, &d);
  cs__delta_dispose(&d);
  delete_doc(&a);
  exchange(&a, &b);
  cr_expect_not(cs__doc_alive(&a.doc));
  conflicts(&l, &a);
  cr_assert_eq(l.len, 1);
  cr_expect_eq(l.items[0].kind, CS_CONFLICT_DELETE_UPDATE);
  cs__conflict_list_dispose(&l);
  rep_dispose(&a);
  rep_dispose(&b);
}

Test(crdt_guide, concurrent_counter_increments_add_up) {
  rep a, b;
  cs_delta d;
  uint64_t first, last;
  rep_init(&a, 1);
  rep_init(&b, 2);
  seed_profile(&a, &b);
  begin(&d, &a);
  cr_assert_eq(cs__delta_ctr_add(&d, &a.doc, "visits", 5), 0);
  cr_assert_eq(cs__delta_ctr_add(&d, &a.doc, "visits", -2), 0);
  cr_assert_eq(cs__delta_finish(&d, &first, &last), 0);
  cr_expect_eq(first, last); /* counter-only action still owns one dot */
  cr_expect(cs__dotset_contains(&d.ctx, (cs_dot){1, first}));
  apply(&a, &d);
  cs__delta_dispose(&d);
  begin(&d, &b);
  cr_assert_eq(cs__delta_ctr_add(&d, &b.doc, "visits", 10), 0);
  commit(&b, &d);
  cs__delta_dispose(&d);
  exchange(&a, &b);
  exchange(&a, &b); /* idempotent */
  cr_expect_eq(cs__ctr_value(&cs__doc_field(&a.doc, "visits")->u.ctr), 13);
  cr_expect(cs__doc_equal(&a.doc, &b.doc));
  rep_dispose(&a);
  rep_dispose(&b);
}

Test(crdt_mutate, writing_wrong_kind_is_rejected_with_field_name) {
  rep a, b;
  cs_delta d;
  cs_val v = str("x");
  rep_init(&a, 1);
  rep_init(&b, 2);
  seed_profile(&a, &b);
  begin(&d, &a);
  cr_expect_eq(cs__delta_set_add(&d, &a.doc, "city", &v), CS_EINVAL);
  cr_expect(strstr(cs_errmsg(), "'city'") != NULL, "%s", cs_errmsg());
  cr_expect_eq(cs__delta_ctr_add(&d, &a.doc, "interests", 1), CS_EINVAL);
  cr_expect_eq(cs__delta_reg_set(&d, &a.doc, "interests", &v), CS_EINVAL);
  cr_expect_eq(d.doc.nfields, 0);
  cs__delta_dispose(&d);
  cs__val_dispose(&v);
  rep_dispose(&a);
  rep_dispose(&b);
}

Test(crdt_mutate, second_write_in_one_action_wins_and_dots_are_consecutive) {
  rep a;
  cs_delta d;
  cs_val v1 = str("one"), v2 = str("two");
  uint64_t first, last;
  rep_init(&a, 9);
  begin(&d, &a);
  cr_assert_eq(cs__delta_exist(&d, &a.doc, true), 0);
  cr_assert_eq(cs__delta_reg_set(&d, &a.doc, "f", &v1), 0);
  cr_assert_eq(cs__delta_reg_set(&d, &a.doc, "f", &v2), 0);
  cr_assert_eq(cs__delta_finish(&d, &first, &last), 0);
  cr_expect_eq(first, 1);
  cr_expect_eq(last, 3);
  apply(&a, &d);
  cr_expect_str_eq(visible_str(&a, "f"), "two");
  cr_expect_eq(cs__doc_field(&a.doc, "f")->u.reg.len, 1);
  cs__delta_dispose(&d);
  /* the next action continues the counter */
  begin(&d, &a);
  cr_assert_eq(cs__delta_reg_clear(&d, &a.doc, "f"), 0);
  cr_assert_eq(cs__delta_finish(&d, &first, &last), 0);
  cr_expect_eq(first, 4);
  cr_expect_eq(last, 4);
  apply(&a, &d);
  cr_expect_null(cs__doc_field(&a.doc, "f")); /* emptied field is removed */
  cs__delta_dispose(&d);
  cs__val_dispose(&v1);
  cs__val_dispose(&v2);
  rep_dispose(&a);
}

Test(crdt_mutate, set_assign_computes_the_diff) {
  rep a, b;
  cs_delta d;
  cs_val v[3];
  rep_init(&a, 1);
  rep_init(&b, 2);
  seed_profile(&a, &b); /* interests = {hiking, chess} */
  v[0] = str("chess");
  v[1] = str("go");
  v[2] = str("go");
  begin(&d, &a);
  cr_assert_eq(cs__delta_set_assign(&d, &a.doc, "interests", v, 3), 0);
  /* only "go" is new: the delta carries just it */
  cr_expect_eq(cs__doc_field(&d.doc, "interests")->u.set.len, 1);
  commit(&a, &d);
  cs__delta_dispose(&d);
  cr_expect(has_elem(&a, "interests", "chess"));
  cr_expect(has_elem(&a, "interests", "go"));
  cr_expect_not(has_elem(&a, "interests", "hiking"));
  for (int i = 0; i < 3; i++)
    cs__val_dispose(&v[i]);
  rep_dispose(&a);
  rep_dispose(&b);
}

Test(crdt_join, duplicate_and_old_deltas_change_nothing) {
  rep a, b;
  cs_delta d1, d2;
  cs_val v1 = str("x"), v2 = str("y");
  rep_init(&a, 1);
  rep_init(&b, 2);
  begin(&d1, &a);
  cr_assert_eq(cs__delta_exist(&d1, &a.doc, true), 0);
  cr_assert_eq(cs__delta_reg_set(&d1, &a.doc, "f", &v1), 0);
  commit(&a, &d1);
  begin(&d2, &a);
  cr_assert_eq(cs__delta_reg_set(&d2, &a.doc, "f", &v2), 0);
  commit(&a, &d2);
  /* b receives them out of order, then duplicated */
  apply(&b, &d2);
  apply(&b, &d1);
  apply(&b, &d1);
  apply(&b, &d2);
  cr_expect(cs__doc_equal(&a.doc, &b.doc));
  cr_expect(cs__dotset_equal(&a.ctx, &b.ctx));
  cr_expect_str_eq(visible_str(&b, "f"), "y");
  cr_expect_eq(cs__doc_field(&b.doc, "f")->u.reg.len, 1);
  cs__delta_dispose(&d1);
  cs__delta_dispose(&d2);
  cs__val_dispose(&v1);
  cs__val_dispose(&v2);
  rep_dispose(&a);
  rep_dispose(&b);
}

Test(crdt_join, kind_mismatch_keeps_lower_kind_both_ways) {
  rep a, b, a2, b2;
  cs_delta d;
  cs_val v = str("x");
  rep_init(&a, 1);
  rep_init(&b, 2);
  begin(&d, &a);
  cr_assert_eq(cs__delta_reg_set(&d, &a.doc, "f", &v), 0);
  commit(&a, &d);
  cs__delta_dispose(&d);
  begin(&d, &b);
  cr_assert_eq(cs__delta_set_add(&d, &b.doc, "f", &v), 0);
  commit(&b, &d);
  cs__delta_dispose(&d);
  rep_init(&a2, 1);
  rep_init(&b2, 2);
  cr_assert_eq(cs__doc_copy(&a2.doc, &a.doc), 0);
  cr_assert_eq(cs__dotset_copy(&a2.ctx, &a.ctx), 0);
  cr_assert_eq(cs__doc_copy(&b2.doc, &b.doc), 0);
  cr_assert_eq(cs__dotset_copy(&b2.ctx, &b.ctx), 0);
  exchange(&a, &b);
  exchange(&b2, &a2);
  cr_expect(cs__doc_equal(&a.doc, &b.doc));
  cr_expect(cs__doc_equal(&a.doc, &b2.doc));
  cr_expect_eq(cs__doc_field(&a.doc, "f")->kind, CS_KIND_REG);
  cs__val_dispose(&v);
  rep_dispose(&a);
  rep_dispose(&b);
  rep_dispose(&a2);
  rep_dispose(&b2);
}

Test(crdt_join, survives_every_allocation_failure) {
  rep a, b;
  rep_init(&a, 1);
  rep_init(&b, 2);
  seed_profile(&a, &b);
  set_str(&a, "city", "Paris");
  set_str(&b, "city", "Lyon");
  delete_doc(&b);
  cs_doc want = CS_DOC_INIT;
  int fails = 0;
  cr_assert_eq(cs__doc_copy(&want, &a.doc), 0);
  cr_assert_eq(cs__doc_join(&want, &a.ctx, &b.doc, &b.ctx), 0);
  for (unsigned long n = 1; n < 200; n++) {
    cs_doc x = CS_DOC_INIT;
    int rc;
    cr_assert_eq(cs__doc_copy(&x, &a.doc), 0);
    cs__alloc_fail_after(n);
    rc = cs__doc_join(&x, &a.ctx, &b.doc, &b.ctx);
    cs__alloc_fail_after(0);
    cr_expect(rc == 0 || rc == CS_ENOMEM);
    fails += rc != 0;
    /* the join that got all it asked for is the join */
    if (rc == 0)
      cr_expect(cs__doc_equal(&x, &want), "allocation %lu: the join differs", n);
    cs__doc_dispose(&x); /* must not leak or double free (sanitizer run) */
    if (rc == 0)
      break;
  }
  cr_expect_gt(fails, 0, "no allocation failed");
  cs__doc_dispose(&want);
  rep_dispose(&a);
  rep_dispose(&b);
}

/* Every allocation failure inside a mutator returns CS_ENOMEM and leaves a
 * delta that can still be disposed (the sanitizer run checks for leaks and
 * double frees). */
Test(crdt_mutate, mutators_survive_every_allocation_failure) {
  rep a, b;
  cs_val v[3];
  rep_init(&a, 1);
  rep_init(&b, 2);
  seed_profile(&a, &b);
  v[0] = str("go");
  v[1] = str("chess");
  v[2] = str("a-long-enough-value");
  int fails = 0;
  for (int which = 0; which < 7; which++) {
    for (unsigned long n = 1; n < 64; n++) {
      cs_delta d;
      int rc;
      begin(&d, &a);
      cs__alloc_fail_after(n);
      switch (which) {
      case 0:
        rc = cs__delta_reg_set(&d, &a.doc, "city", &v[2]);
        break;
      case 1:
        rc = cs__delta_set_add(&d, &a.doc, "interests", &v[0]);
        break;
      case 2:
        rc = cs__delta_set_remove(&d, &a.doc, "interests", &v[1]);
        break;
      case 3:
        rc = cs__delta_set_assign(&d, &a.doc, "interests", v, 3);
        break;
      case 4:
        rc = cs__delta_ctr_add(&d, &a.doc, "visits", 3);
        break;
      case 5:
        rc = cs__delta_exist(&d, &a.doc, false);
        break;
      default:
        rc = cs__delta_reg_clear(&d, &a.doc, "city");
        break;
      }
      cs__alloc_fail_after(0);
      cr_expect(rc == 0 || rc == CS_ENOMEM, "mutator %d, failure at %lu: %d", which, n, rc);
      fails += rc != 0;
      cs__delta_dispose(&d);
      if (rc == 0)
        break;
    }
  }
  cr_expect_gt(fails, 7, "only %d allocations failed", fails);
  for (int i = 0; i < 3; i++)
    cs__val_dispose(&v[i]);
  rep_dispose(&a);
  rep_dispose(&b);
}

/*
 * Large sets find the elements a remove names through their dot index; the
 * same joins done by walking the set must give the same documents. Three
 * replicas edit a set of several hundred elements (adds, re-adds, removes of
 * present elements, several per action) and deliver random actions to random
 * replicas, duplicates included; every replica has a twin that receives the
 * same actions joined without the index. Seeded: CS_SEED replays.
 */
typedef struct twin_rep {
  rep r, walk; /* index used / never used */
} twin_rep;

static uint64_t lx_next(uint64_t *x) {
  *x ^= *x << 13;
  *x ^= *x >> 7;
  *x ^= *x << 17;
  return *x;
}

static void twin_apply(twin_rep *t, const cs_delta *d, uint64_t seed, int step) {
  cs__set_index_min = 1;
  apply(&t->r, d);
  cs__set_index_min = SIZE_MAX;
  apply(&t->walk, d);
  cs__set_index_min = 256;
  if (!cs__doc_equal(&t->r.doc, &t->walk.doc)) {
    fprintf(stderr, "seed %llu (replay with CS_SEED=%llu), step %d\n", (unsigned long long)seed,
            (unsigned long long)seed, step);
    cr_assert(0, "index and walk disagree");
  }
}

Test(crdt_join, large_set_index_agrees_with_walk) {
  enum { NREP = 3, UNIVERSE = 700, STEPS = 3000, LOGMAX = STEPS + 1 };
  const char *env = getenv("CS_SEED");
  uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL), x = seed | 1;
  twin_rep reps[NREP];
  cs_delta *log = calloc(LOGMAX, sizeof *log);
  int nlog = 0;
  char name[16];

  cr_assert_not_null(log);
  for (int i = 0; i < NREP; i++) {
    rep_init(&reps[i].r, 0x100 + (cs_replica)i);
    rep_init(&reps[i].walk, 0x100 + (cs_replica)i);
  }
  /* Replica 0 starts with most of the universe, in one action. */
  cs_delta *d0 = &log[nlog++];
  begin(d0, &reps[0].r);
  for (int k = 0; k < UNIVERSE; k += 1 + (k % 3 == 0)) {
    cs_val v;
    snprintf(name, sizeof name, "e%04d", k);
    cr_assert_eq(cs__val_str(&v, name, strlen(name)), 0);
    cr_assert_eq(cs__delta_set_add(d0, &reps[0].r.doc, "members", &v), 0);
    cs__val_dispose(&v);
  }
  cr_assert_eq(cs__delta_finish(d0, &(uint64_t){0}, &(uint64_t){0}), 0);
  for (int i = 0; i < NREP; i++)
    twin_apply(&reps[i], d0, seed, -1);
  for (int step = 0; step < STEPS; step++) {
    uint64_t r = lx_next(&x);
    twin_rep *t = &reps[r % NREP];
    if ((r >> 8) % 3 != 0 || nlog == LOGMAX) {
      /* deliver a random action (maybe again) to a random replica */
      twin_apply(&reps[(r >> 16) % NREP], &log[(r >> 24) % (uint64_t)nlog], seed, step);
      continue;
    }
    cs_delta *d = &log[nlog++];
    begin(d, &t->r);
    for (int ops = 1 + (int)((r >> 32) % 3); ops > 0; ops--) {
      uint64_t q = lx_next(&x);
      const cs_field *f = cs__doc_field(&t->r.doc, "members");
      cs_val v;
      if (q % 2 == 0 && f && f->u.set.len > 0) {
        const cs_set_elem *el = &f->u.set.elems[(q >> 8) % f->u.set.len];
        cr_assert_eq(cs__delta_set_remove(d, &t->r.doc, "members", &el->val), 0);
        continue;
      }
      snprintf(name, sizeof name, "e%04d", (int)((q >> 8) % UNIVERSE));
      cr_assert_eq(cs__val_str(&v, name, strlen(name)), 0);
      cr_assert_eq(cs__delta_set_add(d, &t->r.doc, "members", &v), 0);
      cs__val_dispose(&v);
    }
    cr_assert_eq(cs__delta_finish(d, &(uint64_t){0}, &(uint64_t){0}), 0);
    twin_apply(t, d, seed, step);
  }
  /* Everyone gets everything: all converge. */
  for (int i = 0; i < NREP; i++)
    for (int k = 0; k < nlog; k++)
      twin_apply(&reps[i], &log[k], seed, STEPS + k);
  for (int i = 1; i < NREP; i++)
    cr_expect(cs__doc_equal(&reps[0].r.doc, &reps[i].r.doc), "replica %d differs (seed %llu)", i,
              (unsigned long long)seed);
  for (int k = 0; k < nlog; k++)
    cs__delta_dispose(&log[k]);
  free(log);
  for (int i = 0; i < NREP; i++) {
    rep_dispose(&reps[i].r);
    rep_dispose(&reps[i].walk);
  }
}
