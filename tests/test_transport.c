/* Keys, hashes, signing strings and the replay cache (no sockets). */
#include <inttypes.h>

#include "test_transport.h"

Test(transport_crypto, replica_id_is_first_8_bytes_of_blake2b_of_key) {
  cs_keypair k;
  uint8_t h[32];
  cr_assert_eq(cs__keypair_generate(&k), 0);
  cs__blake2b(h, 32, k.pk, CS_PUBKEY_LEN);
  uint64_t want = 0;
  for (int i = 0; i < 8; i++)
    want = want << 8 | h[i];
  cr_expect_eq(cs__replica_id(k.pk), want);
}

Test(transport_crypto, blake2b_matches_known_vector) {
  /* BLAKE2b-256 of the empty string (RFC 7693 parameters, 32-byte output). */
  uint8_t h[32];
  char hex[65];
  cs__blake2b(h, 32, (const uint8_t *)"", 0);
  cs__hex_encode(hex, h, 32);
  cr_expect_str_eq(hex, "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
}

Test(transport_crypto, keypairs_differ_and_sign_verify) {
  cs_keypair a, b;
  uint8_t sig[CS_SIG_LEN];
  const char *m = "hello";
  cr_assert_eq(cs__keypair_generate(&a), 0);
  cr_assert_eq(cs__keypair_generate(&b), 0);
  cr_expect_neq(memcmp(a.pk, b.pk, CS_PUBKEY_LEN), 0);
  cs__sign(sig, (const uint8_t *)m, 5, &a);
  cr_expect_eq(cs__sign_verify(sig, (const uint8_t *)m, 5, a.pk), 0);
  cr_expect_eq(cs__sign_verify(sig, (const uint8_t *)m, 5, b.pk), CS_EAUTH);
  expect_msg("does not verify");
  sig[10] ^= 1;
  cr_expect_eq(cs__sign_verify(sig, (const uint8_t *)m, 5, a.pk), CS_EAUTH);
}

Test(transport_sign, request_string_has_the_documented_shape) {
  cs_buf s = CS_BUF_INIT;
  uint8_t h[32];
  char hex[65], want[256];
  cs__blake2b(h, 32, (const uint8_t *)"abc", 3);
  cs__hex_encode(hex, h, 32);
  cr_assert_eq(cs__http_request_string(&s, "POST", "/v1/sync", (const uint8_t *)"abc", 3,
                                       1700000000123ull, "00112233445566778899aabbccddeeff"),
               0);
  snprintf(want, sizeof(want),
           "cosmicsync-v1\nPOST\n/v1/sync\n%s\n1700000000123\n00112233445566778899aabbccddeeff",
           hex);
  cr_expect_str_eq(s.ptr, want);
  cs__buf_clear(&s);
  cr_assert_eq(cs__http_response_string(&s, 200, (const uint8_t *)"abc", 3, "ff"), 0);
  snprintf(want, sizeof(want), "cosmicsync-v1-response\n200\n%s\nff", hex);
  cr_expect_str_eq(s.ptr, want);
  cs_buf_dispose(&s);
}

Test(transport_sign, signed_headers_verify_and_nonces_are_fresh) {
  cs_keypair k;
  cs_http_sig_headers a, b;
  uint8_t sig[CS_SIG_LEN], pk[CS_PUBKEY_LEN];
  cs_buf s = CS_BUF_INIT;
  cr_assert_eq(cs__keypair_generate(&k), 0);
  cr_assert_eq(cs__http_sign_request(&a, &k, "POST", "/v1/pull", (const uint8_t *)"x", 1, 42), 0);
  cr_assert_eq(cs__http_sign_request(&b, &k, "POST", "/v1/pull", (const uint8_t *)"x", 1, 42), 0);
  cr_expect_str_neq(a.nonce, b.nonce);
  cr_expect_eq(strlen(a.nonce), 32);
  cr_expect_eq(strlen(a.sig), 128);
  cr_expect_str_eq(a.time, "42");
  cr_assert_eq(cs__hex_decode(sig, CS_SIG_LEN, a.sig), 0);
  cr_assert_eq(cs__hex_decode(pk, CS_PUBKEY_LEN, a.key), 0);
  cr_assert_eq(
      cs__http_request_string(&s, "POST", "/v1/pull", (const uint8_t *)"x", 1, 42, a.nonce), 0);
  cr_expect_eq(cs__sign_verify(sig, (const uint8_t *)s.ptr, s.size, pk), 0);
  /* The same signature over another body must fail. */
  cs__buf_clear(&s);
  cr_assert_eq(
      cs__http_request_string(&s, "POST", "/v1/pull", (const uint8_t *)"y", 1, 42, a.nonce), 0);
  cr_expect_eq(cs__sign_verify(sig, (const uint8_t *)s.ptr, s.size, pk), CS_EAUTH);
  cs_buf_dispose(&s);
}

/* ---- replay cache ---- */

static void nonce_of(uint8_t n[CS_NONCE_LEN], uint64_t i) {
  memset(n, 0, CS_NONCE_LEN);
  cs__put_be64(n, i);
  cs__put_be64(n + 8, i * 0x9e3779b97f4a7c15ull);
}

Test(transport_replay, second_use_of_a_nonce_is_refused) {
  cs_replay_cache *r;
  uint8_t n[CS_NONCE_LEN];
  cr_assert_eq(cs__replay_new(&r, 16, 1000), 0);
  nonce_of(n, 1);
  cr_expect_eq(cs__replay_check(r, n, 5000, 5000), 0);
  cr_expect_eq(cs__replay_check(r, n, 5000, 5001), CS_EAUTH);
  expect_msg("already used");
  cs__replay_free(r);
}

Test(transport_replay, entries_are_pruned_after_the_window) {
  cs_replay_cache *r;
  uint8_t n[CS_NONCE_LEN];
  cr_assert_eq(cs__replay_new(&r, 64, 1000), 0);
  for (uint64_t i = 0; i < 10; i++) {
    nonce_of(n, i);
    cr_assert_eq(cs__replay_check(r, n, 10000 + i, 10000 + i), 0);
  }
  cr_expect_eq(cs__replay_count(r), 10);
  nonce_of(n, 100);
  cr_expect_eq(cs__replay_check(r, n, 20000, 20000), 0);
  cr_expect_eq(cs__replay_count(r), 1);
  cs__replay_free(r);
}

Test(transport_replay, full_cache_refuses_timestamps_it_forgot) {
  cs_replay_cache *r;
  uint8_t n[CS_NONCE_LEN];
  cr_assert_eq(cs__replay_new(&r, 4, 1000000), 0);
  for (uint64_t i = 0; i < 6; i++) {
    nonce_of(n, i);
    cr_assert_eq(cs__replay_check(r, n, 100 + i, 200), 0);
  }
  cr_expect_eq(cs__replay_count(r), 4);
  /* Nonce 0 (time 100) was forgotten: its replay must still be refused. */
  nonce_of(n, 0);
  cr_expect_eq(cs__replay_check(r, n, 100, 200), CS_EAUTH);
  expect_msg("cache full");
  /* A fresh nonce at an old-but-forgotten time is refused too; a newer one passes. */
  nonce_of(n, 77);
  cr_expect_eq(cs__replay_check(r, n, 101, 200), CS_EAUTH);
  cr_expect_eq(cs__replay_check(r, n, 150, 200), 0);
  cs__replay_free(r);
}

/* A nonce stamped ahead (within the skew) is forgotten last: the floor a
 * full cache sets never moves past requests stamped now. */
Test(transport_replay, a_nonce_stamped_ahead_does_not_refuse_the_present) {
  const uint64_t skew = 1000, now = 100000;
  cs_replay_cache *r;
  uint8_t n[CS_NONCE_LEN];
  cr_assert_eq(cs__replay_new(&r, 3, skew), 0);
  nonce_of(n, 1);
  cr_assert_eq(cs__replay_check(r, n, now + skew, now), 0); /* a client 1 s fast */
  for (uint64_t i = 2; i <= 4; i++) {
    nonce_of(n, i);
    cr_assert_eq(cs__replay_check(r, n, now + i, now + i), 0, "%s", cs_errmsg());
  }
  nonce_of(n, 5);
  cr_expect_eq(cs__replay_check(r, n, now + 5, now + 5), 0, "%s", cs_errmsg());
  /* The one stamped ahead is still remembered, and past its time too. */
  nonce_of(n, 1);
  cr_expect_eq(cs__replay_check(r, n, now + skew, now + 10), CS_EAUTH);
  expect_msg("already used");
  cr_expect_eq(cs__replay_check(r, n, now + skew, now + skew + 500), CS_EAUTH);
  /* It expires by its own time, not by when it arrived: later than the
   * nonces that came after it. */
  nonce_of(n, 6);
  cr_expect_eq(cs__replay_check(r, n, now + 1500, now + 1500), 0);
  cr_expect_eq(cs__replay_count(r), 2, "nonces 1 and 6 remain");
  cs__replay_free(r);
}

Test(transport_replay, bad_capacity_is_refused) {
  cs_replay_cache *r;
  cr_expect_eq(cs__replay_new(&r, 0, 10), CS_EINVAL);
  expect_msg("capacity");
  cr_expect_null(r);
}

/*
 * Property: against a model that remembers every nonce forever, the cache
 * never accepts a nonce twice, and it accepts every fresh nonce whose time is
 * newer than anything it had to forget. Seeded (CS_SEED), replayable.
 */
Test(transport_replay, never_accepts_a_nonce_twice_property) {
  const char *env = getenv("CS_SEED");
  uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
  int rounds = scale_small() ? 2000 : 20000;
  uint64_t x = seed | 1, now = 1000000;
  size_t cap = 64;
  cs_replay_cache *r;
  uint64_t *used_t = calloc((size_t)rounds, sizeof(uint64_t)), latest = 0;
  cr_assert_eq(cs__replay_new(&r, cap, 500), 0);
  for (int i = 0; i < rounds; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    now += x % 7;
    uint8_t n[CS_NONCE_LEN];
    int pick = i > 0 && x % 3 == 0 ? (int)((x >> 8) % (uint64_t)i) : i; /* reuse an old one? */
    /* fresh: up to 400 ms behind or ahead (a client whose clock is fast) */
    uint64_t t = pick == i ? now + 400 - (x >> 20) % 800 : used_t[pick];
    nonce_of(n, (uint64_t)pick);
    int rc = cs__replay_check(r, n, t, now);
    if (pick != i) {
      /* A replay: only a refusal is correct (the server refuses stale times
       * before asking, so model that: skip ones beyond the window). */
      if (t + 500 >= now && used_t[pick] != 0)
        cr_assert_eq(rc, CS_EAUTH, "seed %" PRIu64 ": nonce %d replayed at round %d accepted", seed,
                     pick, i);
      used_t[i] = 0;
    } else {
      used_t[i] = rc == 0 ? t : 0;
    }
    if (t > latest)
      latest = t;
    /* A fresh nonce newer than every timestamp seen is always taken: the
     * cache may only refuse what it has forgotten. */
    if (i % 10 == 0) {
      nonce_of(n, (uint64_t)rounds + (uint64_t)i);
      cr_assert_eq(cs__replay_check(r, n, latest + 1, now), 0,
                   "seed %" PRIu64 ": a fresh nonce at round %d refused: %s", seed, i, cs_errmsg());
      latest++;
    }
    cr_assert_leq(cs__replay_count(r), cap, "seed %" PRIu64, seed);
  }
  cs__replay_free(r);
  free(used_t);
}
