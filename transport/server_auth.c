/*
 * Request authentication on the server: header syntax, trusted key, time
 * window, signature, then the replay cache. The nonce is recorded only after
 * the signature verifies, so forged requests cannot fill the cache or burn a
 * legitimate client's nonce; check-and-record is one locked step, so two
 * copies of one request racing on two threads cannot both pass.
 */
#include <inttypes.h>
#include <stdlib.h>

#include "transport/server_int.h"

static const char *hdr(struct MHD_Connection *conn, const char *name) {
  return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

static bool parse_time(uint64_t *out, const char *s) {
  uint64_t v = 0;
  size_t n = 0;
  for (; s[n]; n++) {
    if (s[n] < '0' || s[n] > '9' || n >= 19)
      return false;
    v = v * 10 + (uint64_t)(s[n] - '0');
  }
  *out = v;
  return n > 0;
}

int cs__server_authenticate(enum MHD_Result *out_queued, uint8_t out_sender[CS_PUBKEY_LEN],
                            bool *out_signed, struct MHD_Connection *conn, cs_http_server *s,
                            const char *path, const char *body, size_t len) {
  const char *key_h = hdr(conn, "X-CS-Key"), *time_h = hdr(conn, "X-CS-Time");
  const char *nonce_h = hdr(conn, "X-CS-Nonce"), *sig_h = hdr(conn, "X-CS-Signature");
  uint8_t nonce[CS_NONCE_LEN], sig[CS_SIG_LEN];
  const char *nonce_echo = "";
  const uint8_t *b = (const uint8_t *)(body ? body : "");
  cs_buf msg = CS_BUF_INIT;
  uint64_t t, now;
  int rc = CS_EAUTH;

  *out_signed = false;
  *out_queued = MHD_YES;
  if (!key_h && !time_h && !nonce_h && !sig_h) {
    if (s->opts.allow_any) {
      rc = 0;
      goto done;
    }
    *out_queued = cs__server_refuse(conn, s, 401, "unsigned", "",
                                    "request carries no X-CS-Key, X-CS-Time, X-CS-Nonce, "
                                    "X-CS-Signature headers");
    goto done;
  }
#define MALFORMED(what)                                                                            \
  do {                                                                                             \
    *out_queued = cs__server_refuse(conn, s, 401, "unsigned", nonce_echo, "%s", what);             \
    goto done;                                                                                     \
  } while (0)
  if (!nonce_h || cs__hex_decode(nonce, sizeof(nonce), nonce_h) != 0)
    MALFORMED("header X-CS-Nonce: missing or not 32 hex digits");
  nonce_echo = nonce_h;
  if (!key_h || cs__hex_decode(out_sender, CS_PUBKEY_LEN, key_h) != 0)
    MALFORMED("header X-CS-Key: missing or not 64 hex digits");
  if (!time_h || !parse_time(&t, time_h))
    MALFORMED("header X-CS-Time: missing or not a decimal millisecond count");
  if (!sig_h || cs__hex_decode(sig, sizeof(sig), sig_h) != 0)
    MALFORMED("header X-CS-Signature: missing or not 128 hex digits");
#undef MALFORMED
  if (!s->opts.allow_any && !s->opts.trust(out_sender, s->opts.trust_payload)) {
    *out_queued = cs__server_refuse(conn, s, 401, "unknown key", nonce_echo,
                                    "key %s is not trusted by this server", key_h);
    goto done;
  }
  now = cs__now_ms();
  if (t + s->opts.max_clock_skew_ms < now || t > now + s->opts.max_clock_skew_ms) {
    bool behind = t < now;
    *out_queued = cs__server_refuse(
        conn, s, 401, "stale", nonce_echo,
        "X-CS-Time %" PRIu64 " is %" PRIu64 " ms %s the server clock (allowed: %" PRIu64 " ms)", t,
        behind ? now - t : t - now, behind ? "behind" : "ahead of", s->opts.max_clock_skew_ms);
    goto done;
  }
  if (cs__http_request_string(&msg, "POST", path, b, len, t, nonce_h) != 0) {
    *out_queued = MHD_NO;
    goto done;
  }
  if (cs__sign_verify(sig, (const uint8_t *)msg.ptr, msg.size, out_sender) != 0) {
    *out_queued = cs__server_refuse(conn, s, 401, "bad signature", nonce_echo,
                                    "signature does not match key %.16s... over POST %s with "
                                    "this body, time and nonce",
                                    key_h, path);
    goto done;
  }
  if (cs__replay_check(s->replay, nonce, t, now) != 0) {
    *out_queued = cs__server_refuse(conn, s, 401, "replay", nonce_echo, "%s", cs_errmsg());
    goto done;
  }
  *out_signed = true;
  rc = 0;
done:
  cs_buf_dispose(&msg);
  return rc;
}
