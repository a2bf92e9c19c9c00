/* Key layouts: round trips, ordering inputs, malformed keys. */
#include "test_storage_util.h"

#include <criterion/criterion.h>

Test(storage_keys, layouts_round_trip) {
  cs_buf k = CS_BUF_INIT;
  size_t pos = 0;
  char *a = NULL, *b = NULL;
  uint64_t x = 0, y = 0;

  cr_assert_eq(cs__key_doc(&k, "UserProfile", "profile_123"), 0);
  cr_expect_eq(k.size, 2 + 11 + 2 + 11);
  cr_expect_eq((uint8_t)k.ptr[0], 0);
  cr_expect_eq((uint8_t)k.ptr[1], 11);
  cr_assert_eq(cs__key_read_name(&a, (uint8_t *)k.ptr, k.size, &pos), 0);
  cr_assert_eq(cs__key_read_name(&b, (uint8_t *)k.ptr, k.size, &pos), 0);
  cr_expect_str_eq(a, "UserProfile");
  cr_expect_str_eq(b, "profile_123");
  cr_expect_eq(pos, k.size);
  cs__free(a);
  cs__free(b);

  cs__buf_clear(&k);
  pos = 0;
  cr_assert_eq(cs__key_log(&k, "M", 0x0102030405060708ull, UINT64_MAX), 0);
  cr_expect_eq(k.size, 3 + 16);
  cr_expect_eq((uint8_t)k.ptr[3], 0x01);
  cr_expect_eq((uint8_t)k.ptr[10], 0x08);
  cr_assert_eq(cs__key_read_name(&a, (uint8_t *)k.ptr, k.size, &pos), 0);
  cr_assert_eq(cs__key_read_u64(&x, (uint8_t *)k.ptr, k.size, &pos), 0);
  cr_assert_eq(cs__key_read_u64(&y, (uint8_t *)k.ptr, k.size, &pos), 0);
  cr_expect_str_eq(a, "M");
  cr_expect_eq(x, 0x0102030405060708ull);
  cr_expect_eq(y, UINT64_MAX);
  cs__free(a);

  cs__buf_clear(&k);
  pos = 0;
  cr_assert_eq(cs__key_peer(&k, 42, "Post"), 0);
  cr_assert_eq(cs__key_read_u64(&x, (uint8_t *)k.ptr, k.size, &pos), 0);
  cr_assert_eq(cs__key_read_name(&a, (uint8_t *)k.ptr, k.size, &pos), 0);
  cr_expect_eq(x, 42);
  cr_expect_str_eq(a, "Post");
  cs__free(a);

  cs__buf_clear(&k);
  pos = 0;
  cr_assert_eq(cs__key_change(&k, "", 5), 0);
  cr_expect_eq(k.size, 10);
  cr_assert_eq(cs__key_read_name(&a, (uint8_t *)k.ptr, k.size, &pos), 0);
  cr_expect_str_eq(a, "");
  cs__free(a);
  cs_buf_dispose(&k);
}

/* Property: random names and numbers survive the round trip; every strict
 * prefix of a key fails to read with CS_ECORRUPT. */
Test(storage_keys, random_keys_round_trip_and_prefixes_fail) {
  uint64_t seed = st_seed(), rs = seed;
  unsigned rounds = st_scale(2000);
  cs_buf k = CS_BUF_INIT;
  char name[300];

  for (unsigned r = 0; r < rounds; r++) {
    size_t len = st_rand(&rs) % sizeof(name);
    for (size_t i = 0; i < len; i++)
      name[i] = (char)(1 + st_rand(&rs) % 255);
    name[len] = '\0';
    uint64_t c = st_rand(&rs);
    cs__buf_clear(&k);
    cr_assert_eq(cs__key_change(&k, name, c), 0);
    for (size_t cut = 0; cut <= k.size; cut++) {
      size_t pos = 0;
      char *got = NULL;
      uint64_t gc = 0;
      int rc = cs__key_read_name(&got, (uint8_t *)k.ptr, cut, &pos);
      if (rc == 0)
        rc = cs__key_read_u64(&gc, (uint8_t *)k.ptr, cut, &pos);
      if (cut < k.size) {
        cr_assert_eq(rc, CS_ECORRUPT, "seed %llu round %u: prefix %zu of %zu read",
                     (unsigned long long)seed, r, cut, k.size);
      } else {
        cr_assert_eq(rc, 0, "seed %llu round %u", (unsigned long long)seed, r);
        cr_assert_str_eq(got, name, "seed %llu round %u", (unsigned long long)seed, r);
        cr_assert_eq(gc, c);
      }
      cs__free(got);
    }
  }
  cs_buf_dispose(&k);
}

Test(storage_keys, malformed_keys_name_the_offset) {
  size_t pos = 0;
  char *s = (char *)1;
  uint64_t v = 7;
  const uint8_t one[1] = {0};
  const uint8_t beyond[5] = {0, 9, 'a', 'b', 'c'};
  const uint8_t nul[4] = {0, 2, 'a', 0};
  const uint8_t two[12] = {0, 2, 'a', 'b', 1, 2, 3};

  cr_expect_eq(cs__key_read_name(&s, one, 1, &pos), CS_ECORRUPT);
  cr_expect_null(s);
  cr_expect(strstr(cs_errmsg(), "offset 0") != NULL, "%s", cs_errmsg());
  cr_expect_eq(pos, 0, "a failed read does not advance");
  cr_expect_eq(cs__key_read_name(&s, beyond, 5, &pos), CS_ECORRUPT);
  cr_expect(strstr(cs_errmsg(), "claims 9 bytes, 3 remain") != NULL, "%s", cs_errmsg());
  cr_expect_eq(cs__key_read_name(&s, nul, 4, &pos), CS_ECORRUPT);
  cr_expect(strstr(cs_errmsg(), "NUL") != NULL, "%s", cs_errmsg());
  cr_assert_eq(cs__key_read_name(&s, two, 7, &pos), 0);
  cs__free(s);
  cr_expect_eq(pos, 4);
  cr_expect_eq(cs__key_read_u64(&v, two, 7, &pos), CS_ECORRUPT);
  cr_expect(strstr(cs_errmsg(), "offset 4") != NULL, "%s", cs_errmsg());
  cr_expect_eq(v, 0);
  pos = 99;
  cr_expect_eq(cs__key_read_u64(&v, two, 7, &pos), CS_ECORRUPT);
}

Test(storage_keys, long_names_are_refused) {
  cs_buf k = CS_BUF_INIT;
  char *big = malloc(70000);
  memset(big, 'x', 69999);
  big[69999] = '\0';
  cr_expect_eq(cs__key_name(&k, big), CS_ETOOBIG);
  cr_expect(strstr(cs_errmsg(), "69999") != NULL, "%s", cs_errmsg());
  big[65535] = '\0';
  cr_expect_eq(cs__key_name(&k, big), 0);
  cr_expect_eq(k.size, 65537);
  free(big);
  cs_buf_dispose(&k);
}

Test(storage_keys, family_names) {
  const char *want[] = {"meta",      "docs",     "log",   "outbox",
                        "conflicts", "baseline", "peers", "changes"};
  for (int i = 0; i < CS_CF__COUNT; i++)
    cr_expect_str_eq(cs__cf_name((cs_cf)i), want[i]);
  cr_expect_str_eq(cs__cf_name(CS_CF__COUNT), "?");
}
