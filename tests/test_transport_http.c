/* The signed HTTP round trip and every refusal, over real loopback sockets. */
#include "test_transport.h"

typedef struct fixture {
  cs_keypair server_key, client_key, stranger;
  trust_list trust;
  recorder rec;
  cs_http_server *server;
  cs_http_client *client;
  uint16_t port;
  char url[64];
} fixture;

static void fx_start(fixture *f, cs_http_server_options *opts) {
  cs_http_server_options o = CS_HTTP_SERVER_OPTIONS_INIT;
  memset(f, 0, sizeof(*f));
  cr_assert_eq(cs__keypair_generate(&f->server_key), 0);
  cr_assert_eq(cs__keypair_generate(&f->client_key), 0);
  cr_assert_eq(cs__keypair_generate(&f->stranger), 0);
  f->trust.keys[0] = &f->client_key;
  f->trust.n = 1;
  if (opts)
    o = *opts;
  o.trust = trust_fn;
  o.trust_payload = &f->trust;
  cr_assert_eq(cs__http_server_start(&f->server, &f->server_key, &o, record_handler, &f->rec), 0,
               "%s", cs_errmsg());
  f->port = cs__http_server_port(f->server);
  cr_assert_neq(f->port, 0);
  base_url(f->url, sizeof(f->url), f->port);
  cr_assert_eq(cs__http_client_new(&f->client, f->url, &f->client_key, NULL), 0, "%s", cs_errmsg());
}

static void fx_stop(fixture *f) {
  cs__http_client_free(f->client);
  cs__http_server_stop(f->server);
}

Test(transport_http, round_trip_passes_body_and_verified_key) {
  fixture f;
  cs_buf resp = CS_BUF_INIT;
  int status = -1;
  fx_start(&f, NULL);
  cr_assert_eq(cs__http_post(&resp, &status, f.client, "/v1/sync", (const uint8_t *)"hello", 5), 0,
               "%s", cs_errmsg());
  cr_expect_eq(status, 200);
  cr_expect_eq(resp.size, 10);
  cr_expect_str_eq(resp.ptr, "echo:hello");
  cr_expect_eq(atomic_load(&f.rec.calls), 1);
  cr_expect(f.rec.last_signed);
  cr_expect_eq(memcmp(f.rec.last_key, f.client_key.pk, CS_PUBKEY_LEN), 0);
  cr_expect_str_eq(f.rec.last_path, "/v1/sync");
  cr_assert_eq(cs__http_post(&resp, &status, f.client, "/v1/pull", NULL, 0), 0, "%s", cs_errmsg());
  cr_expect_str_eq(resp.ptr, "echo:");
  cr_expect_str_eq(f.rec.last_path, "/v1/pull");
  cs_buf_dispose(&resp);
  fx_stop(&f);
}

Test(transport_http, binary_body_round_trips_exactly) {
  fixture f;
  cs_buf resp = CS_BUF_INIT;
  uint8_t body[3000];
  for (size_t i = 0; i < sizeof(body); i++)
    body[i] = (uint8_t)(i * 7);
  fx_start(&f, NULL);
  cr_assert_eq(cs__http_post(&resp, NULL, f.client, "/v1/sync", body, sizeof(body)), 0, "%s",
               cs_errmsg());
  cr_assert_eq(resp.size, 5 + sizeof(body));
  cr_expect_eq(memcmp(resp.ptr + 5, body, sizeof(body)), 0);
  cs_buf_dispose(&resp);
  fx_stop(&f);
}

/* Many requests over one client must reuse one connection (keep-alive). */
Test(transport_http, keep_alive_reuses_one_connection) {
  fixture f;
  cs_buf resp = CS_BUF_INIT;
  int n = scale_small() ? 30 : 300;
  fx_start(&f, NULL);
  for (int i = 0; i < n; i++)
    cr_assert_eq(cs__http_post(&resp, NULL, f.client, "/v1/sync", (const uint8_t *)"k", 1), 0,
                 "request %d: %s", i, cs_errmsg());
  cr_expect_eq(atomic_load(&f.rec.calls), n);
  cr_expect_eq(cs__http_client_connections(f.client), 1);
  cs_buf_dispose(&resp);
  fx_stop(&f);
}

Test(transport_http, health_is_unsigned_get) {
  fixture f;
  cs_buf resp = CS_BUF_INIT;
  char want[200];
  fx_start(&f, NULL);
  cr_assert_eq(cs__http_get(&resp, NULL, f.client, "/v1/health"), 0, "%s", cs_errmsg());
  cs__hex_encode(want, f.server_key.pk, CS_PUBKEY_LEN);
  cr_expect(strstr(resp.ptr, "\"status\":\"ok\"") != NULL);
  cr_expect(strstr(resp.ptr, want) != NULL);
  raw_result r = raw_request(f.port, "GET", "/v1/health", NULL, NULL, 0);
  cr_expect_eq(r.status, 200);
  cs_buf_dispose(&resp);
  fx_stop(&f);
}

/* ---- refusals: the status, the JSON error, and the handler not called ---- */

static void expect_refused(fixture *f, raw_result r, long status, const char *error) {
  char tok[64];
  cr_expect_eq(r.cc, CURLE_OK, "curl: %s", curl_easy_strerror(r.cc));
  cr_expect_eq(r.status, status, "status %ld, expected %ld (%s)", r.status, status, r.body);
  snprintf(tok, sizeof(tok), "\"error\": \"%s\"", error);
  cr_expect(strstr(r.body, tok) != NULL, "body %s lacks %s", r.body, tok);
  cr_expect(strstr(r.body, "\"reason\": \"") != NULL, "body %s has no reason", r.body);
  cr_expect_eq(atomic_load(&f->rec.calls), 0, "the handler ran");
}

Test(transport_http, unsigned_request_is_refused) {
  fixture f;
  fx_start(&f, NULL);
  expect_refused(&f, raw_request(f.port, "POST", "/v1/sync", NULL, "x", 1), 401, "unsigned");
  fx_stop(&f);
}

Test(transport_http, partly_signed_request_is_refused) {
  fixture f;
  signed_lines sl;
  fx_start(&f, NULL);
  sign_lines(&sl, &f.client_key, "/v1/sync", "x", 1, cs__now_ms());
  sl.list[3] = NULL; /* no signature header */
  raw_result r = raw_request(f.port, "POST", "/v1/sync", sl.list, "x", 1);
  expect_refused(&f, r, 401, "unsigned");
  cr_expect(strstr(r.body, "X-CS-Signature") != NULL, "%s", r.body);
  fx_stop(&f);
}

Test(transport_http, bad_signature_is_refused) {
  fixture f;
  signed_lines sl;
  fx_start(&f, NULL);
  sign_lines(&sl, &f.client_key, "/v1/sync", "x", 1, cs__now_ms());
  /* Flip one hex digit of the signature. */
  size_t at = strlen("X-CS-Signature: ") + 5;
  sl.sig[at] = sl.sig[at] == '0' ? '1' : '0';
  expect_refused(&f, raw_request(f.port, "POST", "/v1/sync", sl.list, "x", 1), 401,
                 "bad signature");
  fx_stop(&f);
}

Test(transport_http, tampered_body_is_refused) {
  fixture f;
  signed_lines sl;
  fx_start(&f, NULL);
  sign_lines(&sl, &f.client_key, "/v1/sync", "amount=1", 8, cs__now_ms());
  expect_refused(&f, raw_request(f.port, "POST", "/v1/sync", sl.list, "amount=9", 8), 401,
                 "bad signature");
  fx_stop(&f);
}

Test(transport_http, signature_for_another_path_is_refused) {
  fixture f;
  signed_lines sl;
  fx_start(&f, NULL);
  sign_lines(&sl, &f.client_key, "/v1/pull", "x", 1, cs__now_ms());
  expect_refused(&f, raw_request(f.port, "POST", "/v1/sync", sl.list, "x", 1), 401,
                 "bad signature");
  fx_stop(&f);
}

Test(transport_http, unknown_key_is_refused) {
  fixture f;
  signed_lines sl;
  fx_start(&f, NULL);
  sign_lines(&sl, &f.stranger, "/v1/sync", "x", 1, cs__now_ms());
  expect_refused(&f, raw_request(f.port, "POST", "/v1/sync", sl.list, "x", 1), 401, "unknown key");
  /* Through our client too: CS_EAUTH carrying the server's reason. */
  cs_http_client *c;
  cs_buf resp = CS_BUF_INIT;
  int status = 0;
  cr_assert_eq(cs__http_client_new(&c, f.url, &f.stranger, NULL), 0);
  cr_expect_eq(cs__http_post(&resp, &status, c, "/v1/sync", (const uint8_t *)"x", 1), CS_EAUTH);
  cr_expect_eq(status, 401);
  expect_msg("unknown key");
  expect_msg("not trusted");
  cr_expect_eq(atomic_load(&f.rec.calls), 0);
  cs__http_client_free(c);
  cs_buf_dispose(&resp);
  fx_stop(&f);
}

Test(transport_http, replayed_request_is_refused) {
  fixture f;
  signed_lines sl;
  fx_start(&f, NULL);
  sign_lines(&sl, &f.client_key, "/v1/sync", "pay", 3, cs__now_ms());
  raw_result first = raw_request(f.port, "POST", "/v1/sync", sl.list, "pay", 3);
  cr_expect_eq(first.status, 200, "%s", first.body);
  cr_expect_eq(atomic_load(&f.rec.calls), 1);
  raw_result again = raw_request(f.port, "POST", "/v1/sync", sl.list, "pay", 3);
  cr_expect_eq(again.status, 401);
  cr_expect(strstr(again.body, "\"error\": \"replay\"") != NULL, "%s", again.body);
  cr_expect(strstr(again.body, "already used") != NULL, "%s", again.body);
  cr_expect_eq(atomic_load(&f.rec.calls), 1, "the handler ran for the replay");
  fx_stop(&f);
}

Test(transport_http, stale_timestamp_is_refused_with_the_amount) {
  fixture f;
  signed_lines sl;
  cs_http_server_options o = CS_HTTP_SERVER_OPTIONS_INIT;
  o.max_clock_skew_ms = 60000;
  fx_start(&f, &o);
  sign_lines(&sl, &f.client_key, "/v1/sync", "x", 1, cs__now_ms() - 120000);
  raw_result r = raw_request(f.port, "POST", "/v1/sync", sl.list, "x", 1);
  expect_refused(&f, r, 401, "stale");
  cr_expect(strstr(r.body, "behind") != NULL, "%s", r.body);
  cr_expect(strstr(r.body, "allowed: 60000 ms") != NULL, "%s", r.body);
  fx_stop(&f);
}

Test(transport_http, future_timestamp_is_refused) {
  fixture f;
  signed_lines sl;
  cs_http_server_options o = CS_HTTP_SERVER_OPTIONS_INIT;
  o.max_clock_skew_ms = 60000;
  fx_start(&f, &o);
  sign_lines(&sl, &f.client_key, "/v1/sync", "x", 1, cs__now_ms() + 600000);
  raw_result r = raw_request(f.port, "POST", "/v1/sync", sl.list, "x", 1);
  expect_refused(&f, r, 401, "stale");
  cr_expect(strstr(r.body, "ahead of") != NULL, "%s", r.body);
  fx_stop(&f);
}

Test(transport_http, oversized_body_gets_413) {
  fixture f;
  cs_http_server_options o = CS_HTTP_SERVER_OPTIONS_INIT;
  static uint8_t big[200000];
  cs_buf resp = CS_BUF_INIT;
  int status = 0;
  o.max_body = 1024;
  fx_start(&f, &o);
  /* Declared by Content-Length: refused before the body is read. */
  cr_expect_eq(cs__http_post(&resp, &status, f.client, "/v1/sync", big, sizeof(big)), CS_ETOOBIG,
               "%s", cs_errmsg());
  cr_expect_eq(status, 413);
  expect_msg("exceeds the limit of 1024");
  /* Exactly at the limit passes. */
  cr_expect_eq(cs__http_post(&resp, &status, f.client, "/v1/sync", big, 1024), 0, "%s",
               cs_errmsg());
  cr_expect_eq(atomic_load(&f.rec.calls), 1);
  cs_buf_dispose(&resp);
  fx_stop(&f);
}

Test(transport_http, chunked_body_over_the_limit_gets_413) {
  fixture f;
  cs_http_server_options o = CS_HTTP_SERVER_OPTIONS_INIT;
  static char big[5000];
  const char *h[] = {"Transfer-Encoding: chunked", NULL};
  o.max_body = 1024;
  fx_start(&f, &o);
  memset(big, 'a', sizeof(big));
  raw_result r = raw_request(f.port, "POST", "/v1/sync", h, big, sizeof(big));
  expect_refused(&f, r, 413, "too large");
  fx_stop(&f);
}

Test(transport_http, wrong_path_gets_404_and_wrong_method_405) {
  fixture f;
  cs_buf resp = CS_BUF_INIT;
  int status = 0;
  fx_start(&f, NULL);
  expect_refused(&f, raw_request(f.port, "POST", "/v1/nothing", NULL, "x", 1), 404, "not found");
  expect_refused(&f, raw_request(f.port, "GET", "/v1/sync", NULL, NULL, 0), 405,
                 "method not allowed");
  expect_refused(&f, raw_request(f.port, "POST", "/v1/health", NULL, "x", 1), 405,
                 "method not allowed");
  cr_expect_eq(cs__http_post(&resp, &status, f.client, "/v2/sync", (const uint8_t *)"x", 1),
               CS_EINVAL);
  cr_expect_eq(status, 404);
  expect_msg("no endpoint at /v2/sync");
  cs_buf_dispose(&resp);
  fx_stop(&f);
}

Test(transport_http, allow_any_accepts_unsigned_but_checks_signed) {
  fixture f;
  cs_http_server_options o = CS_HTTP_SERVER_OPTIONS_INIT;
  signed_lines sl;
  cs_http_client *anon;
  cs_buf resp = CS_BUF_INIT;
  o.allow_any = true;
  fx_start(&f, &o);
  raw_result r = raw_request(f.port, "POST", "/v1/sync", NULL, "u", 1);
  cr_expect_eq(r.status, 200, "%s", r.body);
  cr_expect_eq(atomic_load(&f.rec.calls), 1);
  cr_expect_not(f.rec.last_signed);
  /* A client without a key sends unsigned and still verifies the answer. */
  cr_assert_eq(cs__http_client_new(&anon, f.url, NULL, NULL), 0);
  cr_expect_eq(cs__http_post(&resp, NULL, anon, "/v1/sync", (const uint8_t *)"a", 1), 0, "%s",
               cs_errmsg());
  cr_expect_str_eq(resp.ptr, "echo:a");
  /* Untrusted but correctly signed: accepted, with the key. */
  sign_lines(&sl, &f.stranger, "/v1/sync", "s", 1, cs__now_ms());
  r = raw_request(f.port, "POST", "/v1/sync", sl.list, "s", 1);
  cr_expect_eq(r.status, 200);
  cr_expect(f.rec.last_signed);
  cr_expect_eq(memcmp(f.rec.last_key, f.stranger.pk, CS_PUBKEY_LEN), 0);
  /* Signed but forged: still refused. */
  int before = atomic_load(&f.rec.calls);
  sign_lines(&sl, &f.stranger, "/v1/sync", "s", 1, cs__now_ms());
  r = raw_request(f.port, "POST", "/v1/sync", sl.list, "t", 1);
  cr_expect_eq(r.status, 401);
  cr_expect(strstr(r.body, "bad signature") != NULL);
  cr_expect_eq(atomic_load(&f.rec.calls), before);
  cs__http_client_free(anon);
  cs_buf_dispose(&resp);
  fx_stop(&f);
}

Test(transport_http, pinned_server_key_must_match) {
  fixture f;
  cs_http_client *c;
  cs_http_client_options co = CS_HTTP_CLIENT_OPTIONS_INIT;
  cs_buf resp = CS_BUF_INIT;
  char hex[2 * CS_PUBKEY_LEN + 1];
  fx_start(&f, NULL);
  cs__hex_encode(hex, f.server_key.pk, CS_PUBKEY_LEN);
  co.server_key = hex;
  cr_assert_eq(cs__http_client_new(&c, f.url, &f.client_key, &co), 0);
  cr_expect_eq(cs__http_post(&resp, NULL, c, "/v1/sync", (const uint8_t *)"p", 1), 0, "%s",
               cs_errmsg());
  cs__http_client_free(c);
  /* Expect another server's key: the answer must be refused. */
  cs__hex_encode(hex, f.stranger.pk, CS_PUBKEY_LEN);
  cr_assert_eq(cs__http_client_new(&c, f.url, &f.client_key, &co), 0);
  cr_expect_eq(cs__http_post(&resp, NULL, c, "/v1/sync", (const uint8_t *)"p", 1), CS_EAUTH);
  expect_msg("expected the server key");
  cs__http_client_free(c);
  cs_buf_dispose(&resp);
  fx_stop(&f);
}

Test(transport_http, handler_status_503_maps_to_busy) {
  fixture f;
  cs_buf resp = CS_BUF_INIT;
  int status = 0;
  fx_start(&f, NULL);
  f.rec.status = 503;
  cr_expect_eq(cs__http_post(&resp, &status, f.client, "/v1/sync", (const uint8_t *)"b", 1),
               CS_EBUSY);
  cr_expect_eq(status, 503);
  expect_msg("try later");
  cs_buf_dispose(&resp);
  fx_stop(&f);
}

Test(transport_http, options_and_urls_are_validated) {
  cs_http_client *c;
  cs_http_server *s;
  cs_keypair k;
  cs_http_client_options co = CS_HTTP_CLIENT_OPTIONS_INIT;
  cs_http_server_options so = CS_HTTP_SERVER_OPTIONS_INIT;
  recorder rec = {0};
  cr_assert_eq(cs__keypair_generate(&k), 0);
  cr_expect_eq(cs__http_client_new(&c, "ftp://x", &k, NULL), CS_EINVAL);
  expect_msg("ftp://x");
  co.server_key = "abc";
  cr_expect_eq(cs__http_client_new(&c, "http://127.0.0.1:1", &k, &co), CS_EINVAL);
  expect_msg("server_key");
  cr_expect_eq(cs__http_server_start(&s, &k, &so, record_handler, &rec), CS_EINVAL);
  expect_msg("trust callback");
  so.allow_any = true;
  so.listen_host = "127.0.0.1";
  cr_assert_eq(cs__http_server_start(&s, &k, &so, record_handler, &rec), 0, "%s", cs_errmsg());
  /* The same port again: in use. */
  cs_http_server *s2 = NULL;
  char where[64];
  so.port = cs__http_server_port(s);
  snprintf(where, sizeof(where), "127.0.0.1:%u", (unsigned)so.port);
  cr_expect_eq(cs__http_server_start(&s2, &k, &so, record_handler, &rec), CS_ENETWORK);
  expect_msg(where);
  expect_msg("in use");
  cr_expect_null(s2);
  cs__http_server_stop(s);
}

/* Every allocation failure while setting up reports CS_ENOMEM and leaks nothing. */
Test(transport_http, setup_survives_allocation_failures) {
  cs_keypair k;
  recorder rec = {0};
  cs_http_server_options so = CS_HTTP_SERVER_OPTIONS_INIT;
  int rc = -1;
  cr_assert_eq(cs__keypair_generate(&k), 0);
  so.allow_any = true;
  for (unsigned long n = 1; n < 50 && rc != 0; n++) {
    cs_http_client *c = NULL;
    cs__alloc_fail_after(n);
    rc = cs__http_client_new(&c, "http://127.0.0.1:1", &k, NULL);
    cs__alloc_fail_after(0);
    if (rc == 0)
      cs__http_client_free(c);
    else
      cr_expect_eq(rc, CS_ENOMEM, "client, failure at allocation %lu: %s", n, cs_errmsg());
  }
  cr_expect_eq(rc, 0);
  rc = -1;
  for (unsigned long n = 1; n < 50 && rc != 0; n++) {
    cs_http_server *s = NULL;
    cs__alloc_fail_after(n);
    rc = cs__http_server_start(&s, &k, &so, record_handler, &rec);
    cs__alloc_fail_after(0);
    if (rc == 0)
      cs__http_server_stop(s);
    else
      cr_expect_eq(rc, CS_ENOMEM, "server, failure at allocation %lu: %s", n, cs_errmsg());
  }
  cr_expect_eq(rc, 0);
}

/*
 * Property: changing any one signed part of a genuine request (a body byte,
 * the path, the time, the nonce, the key — even to another trusted key — or
 * the signature) gets 401 and never reaches the handler. Seeded (CS_SEED).
 */
Test(transport_http, any_single_tampering_is_refused_property) {
  fixture f;
  const char *env = getenv("CS_SEED");
  uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL), x = seed | 1;
  int rounds = scale_small() ? 20 : 150;
  cs_keypair other;
  fx_start(&f, NULL);
  cr_assert_eq(cs__keypair_generate(&other), 0);
  f.trust.keys[1] = &other;
  f.trust.n = 2;
  for (int i = 0; i < rounds; i++) {
    uint8_t body[64];
    signed_lines sl;
    size_t len;
    const char *path = "/v1/sync";
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    len = 1 + x % sizeof(body);
    for (size_t k = 0; k < len; k++)
      body[k] = (uint8_t)(x >> (k % 56));
    sign_lines(&sl, &f.client_key, path, body, len, cs__now_ms());
    int what = (int)((x >> 8) % 6);
    switch (what) {
    case 0:
      body[(x >> 16) % len] ^= (uint8_t)(1u << ((x >> 24) % 8));
      break;
    case 1:
      path = "/v1/pull";
      break;
    case 2: {
      uint64_t t = strtoull(sl.time + strlen("X-CS-Time: "), NULL, 10) + 1 + (x >> 32) % 1000;
      snprintf(sl.time, sizeof(sl.time), "X-CS-Time: %llu", (unsigned long long)t);
      break;
    }
    case 3:
    case 5: {
      char *d =
          (what == 3 ? sl.nonce + strlen("X-CS-Nonce: ") : sl.sig + strlen("X-CS-Signature: "));
      size_t at = (x >> 16) % strlen(d);
      d[at] = d[at] == 'a' ? 'b' : 'a';
      break;
    }
    case 4: {
      char hex[2 * CS_PUBKEY_LEN + 1];
      cs__hex_encode(hex, other.pk, CS_PUBKEY_LEN);
      snprintf(sl.key, sizeof(sl.key), "X-CS-Key: %s", hex);
      break;
    }
    }
    raw_result r = raw_request(f.port, "POST", path, sl.list, body, len);
    cr_assert_eq(r.status, 401, "seed %llu round %d tampering %d: status %ld (%s)",
                 (unsigned long long)seed, i, what, r.status, r.body);
    cr_assert_eq(atomic_load(&f.rec.calls), 0, "seed %llu round %d: handler ran",
                 (unsigned long long)seed, i);
  }
  fx_stop(&f);
}
