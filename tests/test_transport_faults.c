/* Network faults, forged answers, graceful stop, concurrency and limits. */
#include "test_transport.h"

static cs_keypair client_key, server_key;

static void keys(void) {
  cr_assert_eq(cs__keypair_generate(&client_key), 0);
  cr_assert_eq(cs__keypair_generate(&server_key), 0);
}

static cs_http_server *start(recorder *rec, cs_http_server_options *o) {
  cs_http_server *s;
  o->allow_any = true;
  cr_assert_eq(cs__http_server_start(&s, &server_key, o, record_handler, rec), 0, "%s",
               cs_errmsg());
  return s;
}

static cs_http_client *client_for(uint16_t port, long timeout_ms) {
  cs_http_client *c;
  cs_http_client_options o = CS_HTTP_CLIENT_OPTIONS_INIT;
  char url[64];
  o.timeout_ms = timeout_ms;
  o.connect_timeout_ms = 2000;
  cr_assert_eq(cs__http_client_new(&c, base_url(url, sizeof(url), port), &client_key, &o), 0);
  return c;
}

Test(transport_faults, connection_refused_is_network_error) {
  cs_buf resp = CS_BUF_INIT;
  int status = -1;
  keys();
  cs_http_client *c = client_for(dead_port(), 3000);
  cr_expect_eq(cs__http_post(&resp, &status, c, "/v1/sync", (const uint8_t *)"x", 1), CS_ENETWORK);
  cr_expect_eq(status, 0);
  expect_msg("connection refused");
  expect_msg("/v1/sync");
  cs__http_client_free(c);
  cs_buf_dispose(&resp);
}

Test(transport_faults, slow_handler_past_timeout_is_timeout) {
  recorder rec = {0};
  cs_http_server_options o = CS_HTTP_SERVER_OPTIONS_INIT;
  cs_buf resp = CS_BUF_INIT;
  keys();
  rec.sleep_ms = 1500;
  cs_http_server *s = start(&rec, &o);
  cs_http_client *c = client_for(cs__http_server_port(s), 300);
  cr_expect_eq(cs__http_post(&resp, NULL, c, "/v1/sync", (const uint8_t *)"x", 1), CS_ETIMEOUT);
  expect_msg("no complete response within 300 ms");
  cs__http_client_free(c);
  cs__http_server_stop(s);
  cs_buf_dispose(&resp);
}

Test(transport_faults, truncated_response_is_network_error) {
  static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n"
                              "Content-Type: application/msgpack\r\n\r\n0123456789";
  canned_server cs;
  cs_buf resp = CS_BUF_INIT;
  keys();
  canned_start(&cs, reply, sizeof(reply) - 1);
  cs_http_client *c = client_for(cs.port, 5000);
  cr_expect_eq(cs__http_post(&resp, NULL, c, "/v1/sync", (const uint8_t *)"x", 1), CS_ENETWORK);
  expect_msg("truncated");
  expect_msg("got 10 of 1000");
  cr_expect_eq(resp.size, 0, "a partial body must not be handed out");
  cs__http_client_free(c);
  canned_stop(&cs);
  cs_buf_dispose(&resp);
}

Test(transport_faults, response_with_bad_signature_is_refused) {
  char reply[600], khex[65], zeros[129];
  canned_server cs;
  cs_buf resp = CS_BUF_INIT;
  keys();
  cs__hex_encode(khex, server_key.pk, CS_PUBKEY_LEN);
  memset(zeros, '0', 128);
  zeros[128] = '\0';
  snprintf(reply, sizeof(reply),
           "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-CS-Key: %s\r\nX-CS-Signature: %s\r\n"
           "Connection: close\r\n\r\nhi",
           khex, zeros);
  canned_start(&cs, reply, strlen(reply));
  cs_http_client *c = client_for(cs.port, 5000);
  cr_expect_eq(cs__http_post(&resp, NULL, c, "/v1/sync", (const uint8_t *)"x", 1), CS_EAUTH);
  expect_msg("bad response signature");
  cr_expect_eq(resp.size, 0);
  cs__http_client_free(c);
  canned_stop(&cs);
  cs_buf_dispose(&resp);
}

Test(transport_faults, unsigned_response_is_refused) {
  static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi";
  canned_server cs;
  cs_buf resp = CS_BUF_INIT;
  keys();
  canned_start(&cs, reply, sizeof(reply) - 1);
  cs_http_client *c = client_for(cs.port, 5000);
  cr_expect_eq(cs__http_post(&resp, NULL, c, "/v1/sync", (const uint8_t *)"x", 1), CS_EAUTH);
  expect_msg("not signed");
  cs__http_client_free(c);
  canned_stop(&cs);
  cs_buf_dispose(&resp);
}

/* A genuine signature replayed from another request (other nonce) must fail. */
Test(transport_faults, response_signed_for_another_nonce_is_refused) {
  char reply[600], khex[65], shex[129];
  uint8_t sig[CS_SIG_LEN];
  cs_buf msg = CS_BUF_INIT, resp = CS_BUF_INIT;
  canned_server cs;
  keys();
  cr_assert_eq(cs__http_response_string(&msg, 200, (const uint8_t *)"hi", 2,
                                        "00000000000000000000000000000000"),
               0);
  cs__sign(sig, (const uint8_t *)msg.ptr, msg.size, &server_key);
  cs__hex_encode(shex, sig, CS_SIG_LEN);
  cs__hex_encode(khex, server_key.pk, CS_PUBKEY_LEN);
  snprintf(reply, sizeof(reply),
           "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-CS-Key: %s\r\nX-CS-Signature: %s\r\n"
           "Connection: close\r\n\r\nhi",
           khex, shex);
  canned_start(&cs, reply, strlen(reply));
  cs_http_client *c = client_for(cs.port, 5000);
  cr_expect_eq(cs__http_post(&resp, NULL, c, "/v1/sync", (const uint8_t *)"x", 1), CS_EAUTH);
  expect_msg("bad response signature");
  cs__http_client_free(c);
  canned_stop(&cs);
  cs_buf_dispose(&msg);
  cs_buf_dispose(&resp);
}

Test(transport_faults, server_errors_map_to_codes) {
  struct {
    const char *status_line, *body;
    int code;
    const char *msg;
  } cases[] = {
      {"500 Internal Server Error", "{\"error\": \"internal\", \"reason\": \"boom\"}", CS_EINTERNAL,
       "boom"},
      {"409 Conflict", "{\"error\": \"clock\", \"reason\": \"ahead\"}", CS_ECLOCK, "ahead"},
      {"400 Bad Request", "{\"error\": \"corrupt\", \"reason\": \"offset 7\"}", CS_ECORRUPT,
       "offset 7"},
      {"403 Forbidden", "{\"error\": \"forbidden\", \"reason\": \"model x\"}", CS_EAUTH, "model x"},
      {"404 Not Found", "not json at all", CS_EINVAL, "not json at all"},
  };
  keys();
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    canned_server cs;
    cs_buf resp = CS_BUF_INIT;
    int status = 0;
    char reply[512];
    snprintf(reply, sizeof(reply),
             "HTTP/1.1 %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
             cases[i].status_line, strlen(cases[i].body), cases[i].body);
    canned_start(&cs, reply, strlen(reply));
    cs_http_client *c = client_for(cs.port, 5000);
    cr_expect_eq(cs__http_post(&resp, &status, c, "/v1/sync", (const uint8_t *)"x", 1),
                 cases[i].code, "case %zu: %s", i, cs_errmsg());
    cr_expect_gt(status, 0);
    expect_msg(cases[i].msg);
    cs__http_client_free(c);
    canned_stop(&cs);
    cs_buf_dispose(&resp);
  }
}

/* ---- graceful stop ---- */

typedef struct post_job {
  cs_http_client *c;
  int rc;
  cs_buf resp;
} post_job;

static void *post_main(void *arg) {
  post_job *j = arg;
  j->rc = cs__http_post(&j->resp, NULL, j->c, "/v1/sync", (const uint8_t *)"slow", 4);
  return NULL;
}

Test(transport_faults, stop_waits_for_in_flight_request) {
  recorder rec = {0};
  cs_http_server_options o = CS_HTTP_SERVER_OPTIONS_INIT;
  post_job j = {0};
  pthread_t t;
  keys();
  rec.sleep_ms = 700;
  cs_http_server *s = start(&rec, &o);
  uint16_t port = cs__http_server_port(s);
  j.c = client_for(port, 10000);
  pthread_create(&t, NULL, post_main, &j);
  for (int i = 0; i < 400 && atomic_load(&rec.calls) == 0; i++)
    sleep_ms(5);
  cr_assert_eq(atomic_load(&rec.calls), 1, "the slow request never reached the handler");
  uint64_t t0 = cs__mono_ms();
  cs__http_server_stop(s);
  uint64_t waited = cs__mono_ms() - t0;
  pthread_join(t, NULL);
  cr_expect_eq(j.rc, 0, "in-flight request lost: %s", cs_errmsg());
  cr_expect_str_eq(j.resp.ptr ? j.resp.ptr : "", "echo:slow");
  cr_expect_geq(waited, 300, "stop returned after %llu ms, before the handler finished",
                (unsigned long long)waited);
  /* And the port is closed afterwards. */
  cs_buf resp = CS_BUF_INIT;
  cs_http_client *c = client_for(port, 2000);
  cr_expect_eq(cs__http_post(&resp, NULL, c, "/v1/sync", (const uint8_t *)"x", 1), CS_ENETWORK);
  cs__http_client_free(c);
  cs__http_client_free(j.c);
  cs_buf_dispose(&j.resp);
  cs_buf_dispose(&resp);
}

/* ---- concurrency ---- */

typedef struct worker {
  uint16_t port;
  int n, failures, id;
  char first_error[256];
} worker;

static void *worker_main(void *arg) {
  worker *w = arg;
  cs_http_client *c;
  cs_http_client_options o = CS_HTTP_CLIENT_OPTIONS_INIT;
  cs_buf resp = CS_BUF_INIT;
  char url[64], body[64];
  if (cs__http_client_new(&c, base_url(url, sizeof(url), w->port), &client_key, &o) != 0) {
    w->failures = w->n;
    return NULL;
  }
  for (int i = 0; i < w->n; i++) {
    int len = snprintf(body, sizeof(body), "w%d-r%d", w->id, i);
    int rc = cs__http_post(&resp, NULL, c, "/v1/sync", (const uint8_t *)body, (size_t)len);
    if (rc != 0 || resp.size != (size_t)len + 5 || memcmp(resp.ptr + 5, body, (size_t)len) != 0) {
      if (!w->failures++)
        snprintf(w->first_error, sizeof(w->first_error), "%s", rc ? cs_errmsg() : "wrong echo");
    }
  }
  cs__http_client_free(c);
  cs_buf_dispose(&resp);
  return NULL;
}

Test(transport_faults, concurrent_clients_all_succeed) {
  recorder rec = {0};
  cs_http_server_options o = CS_HTTP_SERVER_OPTIONS_INIT;
  enum { THREADS = 8 };
  worker w[THREADS];
  pthread_t t[THREADS];
  int per = scale_small() ? 20 : 200;
  keys();
  o.allow_any = false;
  trust_list tl = {{&client_key}, 1};
  o.trust = trust_fn;
  o.trust_payload = &tl;
  cs_http_server *s;
  cr_assert_eq(cs__http_server_start(&s, &server_key, &o, record_handler, &rec), 0);
  for (int i = 0; i < THREADS; i++) {
    w[i] = (worker){cs__http_server_port(s), per, 0, i, ""};
    pthread_create(&t[i], NULL, worker_main, &w[i]);
  }
  for (int i = 0; i < THREADS; i++) {
    pthread_join(t[i], NULL);
    cr_expect_eq(w[i].failures, 0, "thread %d: %d failures, first: %s", i, w[i].failures,
                 w[i].first_error);
  }
  cr_expect_eq(atomic_load(&rec.calls), THREADS * per);
  cs__http_server_stop(s);
}

Test(transport_faults, connection_limit_is_enforced) {
  recorder rec = {0};
  cs_http_server_options o = CS_HTTP_SERVER_OPTIONS_INIT;
  cs_buf resp = CS_BUF_INIT;
  int held[2];
  keys();
  o.max_connections = 2;
  o.threads = 1;
  cs_http_server *s = start(&rec, &o);
  uint16_t port = cs__http_server_port(s);
  for (int i = 0; i < 2; i++) {
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    held[i] = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_eq(connect(held[i], (struct sockaddr *)&a, sizeof(a)), 0);
  }
  sleep_ms(200); /* let the server accept both */
  cs_http_client *c = client_for(port, 3000);
  int rc = cs__http_post(&resp, NULL, c, "/v1/sync", (const uint8_t *)"x", 1);
  cr_expect_eq(rc, CS_ENETWORK, "third connection accepted: rc %d %s", rc, cs_errmsg());
  /* Refused at accept: the peer sees a reset or an empty answer. */
  cr_expect(strstr(cs_errmsg(), "reset by peer") || strstr(cs_errmsg(), "without answering"), "%s",
            cs_errmsg());
  cr_expect_eq(atomic_load(&rec.calls), 0);
  close(held[0]);
  close(held[1]);
  sleep_ms(200); /* let the server see them close */
  cr_expect_eq(cs__http_post(&resp, NULL, c, "/v1/sync", (const uint8_t *)"x", 1), 0, "%s",
               cs_errmsg());
  cs__http_client_free(c);
  cs__http_server_stop(s);
  cs_buf_dispose(&resp);
}
