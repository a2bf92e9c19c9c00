/* Conflict listing and conflict ids: the id bytes are a cross-replica (and
 * cross-implementation) contract, so they are rebuilt here independently. */
#include <criterion/criterion.h>
#include <sodium.h>
#include <string.h>

#include "crdt/crdt.h"

static void blake2b(uint8_t *out, size_t outlen, const uint8_t *in, size_t inlen) {
  crypto_generichash(out, outlen, in, inlen, NULL, 0);
}

/* Records the last input so the test can see the exact bytes hashed. */
static uint8_t last_in[1024];
static size_t last_len;
static void recording_hash(uint8_t *out, size_t outlen, const uint8_t *in, size_t inlen) {
  cr_assert_leq(inlen, sizeof last_in);
  memcpy(last_in, in, inlen);
  last_len = inlen;
  blake2b(out, outlen, in, inlen);
}

static void put32(uint8_t **p, uint32_t v) {
  (*p)[0] = (uint8_t)(v >> 24), (*p)[1] = (uint8_t)(v >> 16), (*p)[2] = (uint8_t)(v >> 8),
  (*p)[3] = (uint8_t)v;
  *p += 4;
}
static void put64(uint8_t **p, uint64_t v) {
  put32(p, (uint32_t)(v >> 32));
  put32(p, (uint32_t)v);
}
static void putstr(uint8_t **p, const char *s) {
  put32(p, (uint32_t)strlen(s));
  memcpy(*p, s, strlen(s));
  *p += strlen(s);
}

/* A document whose register `city` holds the given (dot, value) siblings. */
static void reg_doc(cs_doc *d, const cs_dot *dots, const char *const *vals, size_t n) {
  cs_delta x;
  cs_dotset ctx = CS_DOTSET_INIT;
  memset(d, 0, sizeof *d);
  for (size_t i = 0; i < n; i++) {
    cs_doc frag = CS_DOC_INIT;
    cs_val v;
    /* each sibling written by its own replica, unseen by the others */
    cr_assert_eq(cs__delta_init(&x, &ctx, dots[i].replica, 100 + i), 0);
    x.next = x.first = dots[i].counter;
    cr_assert_eq(cs__val_str(&v, vals[i], strlen(vals[i])), 0);
    cr_assert_eq(cs__delta_reg_set(&x, &frag, "city", &v), 0);
    cr_assert_eq(cs__doc_join(d, &ctx, &x.doc, &x.ctx), 0);
    cs__val_dispose(&v);
    cs__delta_dispose(&x);
  }
  cs__dotset_dispose(&ctx);
}

Test(crdt_conflict, value_id_hashes_the_documented_bytes) {
  cs_dot dots[2] = {{0x0102030405060708ull, 9}, {2, 1}};
  const char *vals[2] = {"Paris", "Lyon"};
  cs_doc d;
  cs_conflict_list l = {0};
  uint8_t want[256], *p = want, id[16];

  reg_doc(&d, dots, vals, 2);
  cr_assert_eq(cs__doc_conflicts(&l, &d, "UserProfile", "profile_123", NULL, NULL, recording_hash),
               0);
  cr_assert_eq(l.len, 1);
  putstr(&p, "UserProfile");
  putstr(&p, "profile_123");
  putstr(&p, "city");
  *p++ = 1; /* VALUE */
  put32(&p, 2);
  put64(&p, 2); /* sorted by dot: replica 2 first */
  put64(&p, 1);
  put64(&p, 0x0102030405060708ull);
  put64(&p, 9);
  cr_expect_eq(last_len, (size_t)(p - want));
  cr_expect_eq(memcmp(last_in, want, (size_t)(p - want)), 0);
  blake2b(id, sizeof id, want, (size_t)(p - want));
  cr_expect_eq(memcmp(l.items[0].id, id, 16), 0);
  cr_expect_eq(l.items[0].dots[0].replica, 2);
  cs__conflict_list_dispose(&l);
  cs__doc_dispose(&d);
}

Test(crdt_conflict, id_changes_with_siblings_model_and_instance) {
  cs_dot dots[3] = {{1, 1}, {2, 1}, {3, 1}};
  const char *vals[3] = {"a", "b", "c"};
  cs_doc d2, d3;
  cs_conflict_list l2 = {0}, l3 = {0}, lm = {0}, li = {0};
  reg_doc(&d2, dots, vals, 2);
  reg_doc(&d3, dots, vals, 3);
  cr_assert_eq(cs__doc_conflicts(&l2, &d2, "M", "i", NULL, NULL, blake2b), 0);
  cr_assert_eq(cs__doc_conflicts(&l3, &d3, "M", "i", NULL, NULL, blake2b), 0);
  cr_assert_eq(cs__doc_conflicts(&lm, &d2, "N", "i", NULL, NULL, blake2b), 0);
  cr_assert_eq(cs__doc_conflicts(&li, &d2, "M", "j", NULL, NULL, blake2b), 0);
  cr_assert_eq(l2.len, 1);
  cr_assert_eq(l3.len, 1);
  cr_expect_neq(memcmp(l2.items[0].id, l3.items[0].id, 16), 0);
  cr_expect_neq(memcmp(l2.items[0].id, lm.items[0].id, 16), 0);
  cr_expect_neq(memcmp(l2.items[0].id, li.items[0].id, 16), 0);
  cs__conflict_list_dispose(&l2);
  cs__conflict_list_dispose(&l3);
  cs__conflict_list_dispose(&lm);
  cs__conflict_list_dispose(&li);
  cs__doc_dispose(&d2);
  cs__doc_dispose(&d3);
}

Test(crdt_conflict, mixed_types_with_equal_bits_are_a_conflict) {
  /* "7" the string and 7 the int differ: different types are different values */
  cs_doc d = CS_DOC_INIT;
  cs_dotset ctx = CS_DOTSET_INIT;
  cs_delta x;
  cs_val v;
  cs_conflict_list l = {0};
  cr_assert_eq(cs__delta_init(&x, &ctx, 1, 10), 0);
  v = cs__val_int(7);
  cr_assert_eq(cs__delta_reg_set(&x, &d, "n", &v), 0);
  cr_assert_eq(cs__doc_join(&d, &ctx, &x.doc, &x.ctx), 0);
  cs__delta_dispose(&x);
  cr_assert_eq(cs__delta_init(&x, &ctx, 2, 10), 0);
  cr_assert_eq(cs__val_str(&v, "7", 1), 0);
  cr_assert_eq(cs__delta_reg_set(&x, &(cs_doc)CS_DOC_INIT, "n", &v), 0);
  cr_assert_eq(cs__doc_join(&d, &ctx, &x.doc, &x.ctx), 0);
  cs__val_dispose(&v);
  cs__delta_dispose(&x);
  cr_assert_eq(cs__doc_conflicts(&l, &d, "M", "i", NULL, NULL, blake2b), 0);
  cr_expect_eq(l.len, 1);
  cs__conflict_list_dispose(&l);
  cs__doc_dispose(&d);
  cs__dotset_dispose(&ctx);
}

Test(crdt_conflict, delete_update_lists_existence_then_unobserved_dots) {
  /* create (1,1) + city (1,2) on A; B (2) sees it and edits city -> (2,1);
   * A deletes without seeing B's edit -> (1,3) observing {(1,2)}. */
  cs_doc a = CS_DOC_INIT, b = CS_DOC_INIT;
  cs_dotset ca = CS_DOTSET_INIT, cb = CS_DOTSET_INIT;
  cs_delta x;
  cs_val v;
  cs_conflict_list l = {0};
  uint64_t f, t;

  cr_assert_eq(cs__delta_init(&x, &ca, 1, 10), 0);
  cr_assert_eq(cs__delta_exist(&x, &a, true), 0);
  cr_assert_eq(cs__val_str(&v, "Rome", 4), 0);
  cr_assert_eq(cs__delta_reg_set(&x, &a, "city", &v), 0);
  cs__val_dispose(&v);
  cr_assert_eq(cs__delta_finish(&x, &f, &t), 0);
  cr_assert_eq(cs__doc_join(&a, &ca, &x.doc, &x.ctx), 0);
  cr_assert_eq(cs__dotset_join(&ca, &x.ctx), 0);
  cs__delta_dispose(&x);
  cr_assert_eq(cs__doc_copy(&b, &a), 0);
  cr_assert_eq(cs__dotset_copy(&cb, &ca), 0);

  cr_assert_eq(cs__delta_init(&x, &cb, 2, 20), 0);
  cr_assert_eq(cs__val_str(&v, "Milan", 5), 0);
  cr_assert_eq(cs__delta_reg_set(&x, &b, "city", &v), 0);
  cs__val_dispose(&v);
  cr_assert_eq(cs__doc_join(&b, &cb, &x.doc, &x.ctx), 0);
  cr_assert_eq(cs__dotset_join(&cb, &x.ctx), 0);
  cs__delta_dispose(&x);

  cr_assert_eq(cs__delta_init(&x, &ca, 1, 30), 0);
  cr_assert_eq(cs__delta_exist(&x, &a, false), 0);
  cr_assert(cs__dotset_contains(&x.doc.exist[0].observed, (cs_dot){1, 2}));
  cr_assert_eq(cs__doc_join(&a, &ca, &x.doc, &x.ctx), 0);
  cr_assert_eq(cs__dotset_join(&ca, &x.ctx), 0);
  cs__delta_dispose(&x);

  cr_assert_eq(cs__doc_join(&a, &ca, &b, &cb), 0);
  cr_assert_eq(cs__doc_conflicts(&l, &a, "M", "i", NULL, NULL, blake2b), 0);
  cr_assert_eq(l.len, 1);
  cr_expect_eq(l.items[0].kind, CS_CONFLICT_DELETE_UPDATE);
  cr_assert_eq(l.items[0].ndots, 2);
  cr_expect_eq(l.items[0].dots[0].replica, 1); /* the delete entry */
  cr_expect_eq(l.items[0].dots[0].counter, 3);
  cr_expect_eq(l.items[0].dots[1].replica, 2); /* B's unobserved edit */
  cr_expect_eq(l.items[0].dots[1].counter, 1);
  cs__conflict_list_dispose(&l);
  cs__doc_dispose(&a);
  cs__doc_dispose(&b);
  cs__dotset_dispose(&ca);
  cs__dotset_dispose(&cb);
}

Test(crdt_conflict, listing_survives_allocation_failures) {
  cs_dot dots[2] = {{1, 1}, {2, 1}};
  const char *vals[2] = {"a", "b"};
  cs_doc d;
  int fails = 0;
  reg_doc(&d, dots, vals, 2);
  for (unsigned long n = 1; n < 10; n++) {
    cs_conflict_list l = {0};
    int rc;
    cs__alloc_fail_after(n);
    rc = cs__doc_conflicts(&l, &d, "M", "i", NULL, NULL, blake2b);
    cs__alloc_fail_after(0);
    cr_expect(rc == 0 || rc == CS_ENOMEM);
    /* a failure lists nothing; a success lists the one conflict */
    cr_expect_eq(l.len, rc == 0 ? 1u : 0u, "allocation %lu: %d, %zu listed", n, rc, l.len);
    fails += rc != 0;
    cs__conflict_list_dispose(&l);
    if (rc == 0)
      break;
  }
  cr_expect_gt(fails, 0, "no allocation failed");
  cs__doc_dispose(&d);
}
