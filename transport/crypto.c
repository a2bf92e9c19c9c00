/* Keys, hashes and the request/response signing strings (libsodium). */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>

#include <sodium.h>

#include "transport/transport.h"

static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;
static int sodium_status = -1;

static void sodium_init_once(void) {
  sodium_status = sodium_init();
}

int cs__crypto_init(void) {
  pthread_once(&sodium_once, sodium_init_once);
  /* sodium_init returns 1 when already initialised by someone else: fine. */
  if (sodium_status < 0)
    return cs__error(CS_EINTERNAL, "libsodium: sodium_init failed");
  return 0;
}

/* Test hook: when non-zero, key pairs come from this counter, so that a
 * randomized test that makes stores is replayable from its seed. */
static _Atomic uint64_t test_key_seed;

void cs__keypair_test_seed(uint64_t seed) { test_key_seed = seed; }

int cs__keypair_generate(cs_keypair *out) {
  int rc = cs__crypto_init();
  if (rc)
    return rc;
  uint64_t seed = test_key_seed ? test_key_seed++ : 0;
  if (seed) {
    uint8_t bytes[crypto_sign_ed25519_SEEDBYTES] = {0};
    cs__put_be64(bytes, seed);
    if (crypto_sign_ed25519_seed_keypair(out->pk, out->sk, bytes) != 0)
      return cs__error(CS_EINTERNAL, "libsodium: cannot derive an Ed25519 key pair");
    return 0;
  }
  if (crypto_sign_ed25519_keypair(out->pk, out->sk) != 0)
    return cs__error(CS_EINTERNAL, "libsodium: cannot generate an Ed25519 key pair");
  return 0;
}

void cs__blake2b(uint8_t *out, size_t outlen, const uint8_t *in, size_t inlen) {
  /* crypto_generichash needs no sodium_init (no randomness involved). */
  crypto_generichash(out, outlen, in, inlen, NULL, 0);
}

uint64_t cs__replica_id(const uint8_t pk[CS_PUBKEY_LEN]) {
  uint8_t h[32];
  cs__blake2b(h, sizeof(h), pk, CS_PUBKEY_LEN);
  return cs__get_be64(h);
}

static void body_hash_hex(char out[65], const uint8_t *body, size_t len) {
  uint8_t h[32];
  cs__blake2b(h, sizeof(h), body, len);
  cs__hex_encode(out, h, sizeof(h));
}

int cs__http_request_string(cs_buf *out, const char *method, const char *path, const uint8_t *body,
                            size_t len, uint64_t time_ms, const char *nonce_hex) {
  char hash[65];
  body_hash_hex(hash, body, len);
  return cs__buf_printf(out, "cosmicsync-v1\n%s\n%s\n%s\n%" PRIu64 "\n%s", method, path, hash,
                        time_ms, nonce_hex);
}

int cs__http_response_string(cs_buf *out, int status, const uint8_t *body, size_t len,
                             const char *nonce_hex) {
  char hash[65];
  body_hash_hex(hash, body, len);
  return cs__buf_printf(out, "cosmicsync-v1-response\n%d\n%s\n%s", status, hash, nonce_hex);
}

void cs__sign(uint8_t sig[CS_SIG_LEN], const uint8_t *msg, size_t len, const cs_keypair *key) {
  crypto_sign_ed25519_detached(sig, NULL, msg, len, key->sk);
}

int cs__sign_verify(const uint8_t sig[CS_SIG_LEN], const uint8_t *msg, size_t len,
                    const uint8_t pk[CS_PUBKEY_LEN]) {
  if (crypto_sign_ed25519_verify_detached(sig, msg, len, pk) != 0) {
    char khex[2 * CS_PUBKEY_LEN + 1];
    cs__hex_encode(khex, pk, CS_PUBKEY_LEN);
    return cs__error(CS_EAUTH, "Ed25519 signature does not verify against key %.16s...", khex);
  }
  return 0;
}

int cs__http_sign_request(cs_http_sig_headers *out, const cs_keypair *key, const char *method,
                          const char *path, const uint8_t *body, size_t len, uint64_t time_ms) {
  uint8_t nonce[CS_NONCE_LEN], sig[CS_SIG_LEN];
  cs_buf msg = CS_BUF_INIT;
  int rc;

  if ((rc = cs__crypto_init()) != 0)
    goto done;
  randombytes_buf(nonce, sizeof(nonce));
  cs__hex_encode(out->nonce, nonce, sizeof(nonce));
  cs__hex_encode(out->key, key->pk, CS_PUBKEY_LEN);
  snprintf(out->time, sizeof(out->time), "%" PRIu64, time_ms);
  if ((rc = cs__http_request_string(&msg, method, path, body, len, time_ms, out->nonce)) != 0)
    goto done;
  cs__sign(sig, (const uint8_t *)msg.ptr, msg.size, key);
  cs__hex_encode(out->sig, sig, sizeof(sig));
done:
  cs_buf_dispose(&msg);
  return rc;
}
