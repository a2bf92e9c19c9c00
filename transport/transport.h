/*
 * Transport: moves bytes between peers over HTTP and proves who sent them.
 * The client is libcurl, the server libmicrohttpd, signatures Ed25519 from
 * libsodium. This layer knows nothing of the engine: the server hands each
 * authenticated request body to a handler callback and sends back what it
 * returns.
 *
 * Request signing (docs/wire-format.md, "HTTP"): the client signs
 *   "cosmicsync-v1\n" METHOD "\n" PATH "\n" hex(BLAKE2b-256(body)) "\n" TIME_MS "\n" NONCE_HEX
 * with its Ed25519 key and sends headers
 *   X-CS-Key: hex public key (64)   X-CS-Time: ms since epoch
 *   X-CS-Nonce: 32 hex digits       X-CS-Signature: hex signature (128)
 * The server signs its response as
 *   "cosmicsync-v1-response\n" STATUS "\n" hex(BLAKE2b-256(body)) "\n" REQUEST_NONCE_HEX
 * and sends X-CS-Key and X-CS-Signature back.
 */
#ifndef CS_TRANSPORT_H
#define CS_TRANSPORT_H

#include "base/base.h"

#define CS_PUBKEY_LEN 32
#define CS_SECKEY_LEN 64
#define CS_SIG_LEN 64

typedef struct cs_keypair {
  uint8_t pk[CS_PUBKEY_LEN];
  uint8_t sk[CS_SECKEY_LEN];
} cs_keypair;

/* Initialises libsodium once (thread-safe); CS_EINTERNAL when it cannot. */
int cs__crypto_init(void);
int cs__keypair_generate(cs_keypair *out);
/* Tests only: derive the next key pairs from seed, seed+1, ... (0: random again). */
void cs__keypair_test_seed(uint64_t seed);
/* The 64-bit replica id of a public key: first 8 bytes (big-endian) of BLAKE2b-256(pk). */
uint64_t cs__replica_id(const uint8_t pk[CS_PUBKEY_LEN]);
/* BLAKE2b with libsodium (crypto_generichash); matches cs_hash_fn. */
void cs__blake2b(uint8_t *out, size_t outlen, const uint8_t *in, size_t inlen);

/* ---------------------------------------------------------------- client */

typedef struct cs_http_client cs_http_client;

typedef struct cs_http_client_options {
  unsigned version;
  long connect_timeout_ms; /* default 5000 */
  long timeout_ms;         /* whole request; default 30000 */
  const char *ca_file;     /* extra CA bundle for HTTPS; NULL: system store */
  /* When set (hex, 64 digits), responses must be signed by this key. */
  const char *server_key;
} cs_http_client_options;
#define CS_HTTP_CLIENT_OPTIONS_VERSION 1
#define CS_HTTP_CLIENT_OPTIONS_INIT {CS_HTTP_CLIENT_OPTIONS_VERSION, 5000, 30000, NULL, NULL}

/*
 * A client for one base URL ("http://127.0.0.1:8787"), keeping its connection
 * alive between requests. Signs every request with `key` (copied). HTTPS
 * verifies certificates (always on). Errors: CS_EINVAL for a bad URL.
 */
int cs__http_client_new(cs_http_client **out, const char *base_url, const cs_keypair *key,
                        const cs_http_client_options *opts);
void cs__http_client_free(cs_http_client *c);

/*
 * POSTs body to base_url + path (application/msgpack) and fills `response`
 * with the response body when the status is 200 and its signature verifies.
 * Errors, each with a precise message:
 *  CS_ENETWORK  connection refused / reset, DNS, truncated body
 *  CS_ETIMEOUT  connect or total timeout
 *  CS_EAUTH     401/403 (message carries the server's reason), or a response
 *               whose signature is missing, bad, or from an unexpected key
 *  CS_ETOOBIG   413
 *  CS_EINVAL    other 4xx (server's reason)
 *  CS_ECLOCK    409 with reason "clock" (server refused our clock)
 *  CS_ECORRUPT  400 with reason "corrupt"
 *  CS_EBUSY     503;  CS_EINTERNAL other 5xx
 * `*out_status` gets the HTTP status (0 when none was received); may be NULL.
 */
int cs__http_post(cs_buf *response, int *out_status, cs_http_client *c, const char *path,
                  const uint8_t *body, size_t len);

/* GET base_url + path (used for /v1/health); same error mapping, no signature check. */
int cs__http_get(cs_buf *response, int *out_status, cs_http_client *c, const char *path);

/* ---------------------------------------------------------------- server */

typedef struct cs_http_request {
  const char *method;
  const char *path;
  const uint8_t *body;
  size_t body_len;
  /* The verified sender key, or NULL when the server allows anyone
   * (allow_any) and the request was unsigned. */
  const uint8_t *sender_key;
} cs_http_request;

/*
 * The handler's answer: status and body (a cs_buf the server frees). On an
 * error status the body should be a short JSON {"error": "...", "reason": "..."}.
 */
typedef struct cs_http_response {
  int status;
  cs_buf body;
  const char *content_type; /* static string; default application/msgpack */
} cs_http_response;

/* Called on a server thread; may be called concurrently from several threads. */
typedef void (*cs_http_handler)(cs_http_response *resp, const cs_http_request *req,
                                void *payload);

/* Is this public key trusted at all? (per-model rights are the handler's). */
typedef bool (*cs_http_trust_fn)(const uint8_t pk[CS_PUBKEY_LEN], void *payload);

typedef struct cs_http_server_options {
  unsigned version;
  const char *listen_host;   /* default "127.0.0.1" */
  uint16_t port;             /* 0: pick a free port (see cs__http_server_port) */
  size_t max_body;           /* default 8 MiB; larger: 413 */
  unsigned max_connections;  /* default 64; beyond: refused */
  unsigned timeout_s;        /* per connection idle/request timeout; default 30 */
  unsigned threads;          /* worker threads; default 4 */
  uint64_t max_clock_skew_ms; /* X-CS-Time window; default 300000 (5 min) */
  bool allow_any;            /* accept unsigned / untrusted requests (experiments only) */
  cs_http_trust_fn trust;    /* required unless allow_any */
  void *trust_payload;
} cs_http_server_options;
#define CS_HTTP_SERVER_OPTIONS_VERSION 1
#define CS_HTTP_SERVER_OPTIONS_INIT                                                                \
  {CS_HTTP_SERVER_OPTIONS_VERSION, "127.0.0.1", 0, 8u << 20, 64, 30, 4, 300000, false, NULL, NULL}

typedef struct cs_http_server cs_http_server;

/*
 * Starts serving: POST /v1/sync and POST /v1/pull (signed, passed to the
 * handler), GET /v1/health (unsigned; 200 {"status":"ok","key":"<hex>"}).
 * Refuses with a JSON body: 401 unsigned / bad signature / unknown key,
 * 401 replayed nonce (within the time window), 401 stale or future time,
 * 413 body too large, 404 unknown path, 405 wrong method. Signs every response
 * with `key`. CS_ENETWORK when it cannot listen (message names host:port).
 */
int cs__http_server_start(cs_http_server **out, const cs_keypair *key,
                          const cs_http_server_options *opts, cs_http_handler handler,
                          void *payload);
uint16_t cs__http_server_port(const cs_http_server *s);
/* Stops accepting, lets in-flight requests finish, frees. */
void cs__http_server_stop(cs_http_server *s);

/* ------------------------------------------- signing helpers (additions) */

/*
 * Notes on the client and server above:
 *  - cs__http_client_new accepts key == NULL: requests then go unsigned (only
 *    an allow_any server takes them); responses are still verified.
 *  - A client is not thread-safe (one libcurl handle); use one per thread.
 *  - The server answers refusals with {"error": TOKEN, "reason": TEXT} where
 *    TOKEN is one of "unsigned", "unknown key", "stale", "bad signature",
 *    "replay", "too large", "not found", "method not allowed", "internal".
 *  - max_connections counts open connections over all worker threads.
 */

#define CS_NONCE_LEN 16 /* bytes; 32 hex digits on the wire */

/* The request headers a signed request carries, as NUL-terminated text. */
typedef struct cs_http_sig_headers {
  char key[2 * CS_PUBKEY_LEN + 1];
  char time[21];
  char nonce[2 * CS_NONCE_LEN + 1];
  char sig[2 * CS_SIG_LEN + 1];
} cs_http_sig_headers;

/*
 * Signs a request as the client does (fresh random nonce, given time) and
 * fills `out` with the four header values. Exposed so that tests can craft
 * raw requests (replays, stale times). Errors: CS_EINTERNAL (crypto init),
 * CS_ENOMEM.
 */
int cs__http_sign_request(cs_http_sig_headers *out, const cs_keypair *key, const char *method,
                          const char *path, const uint8_t *body, size_t len, uint64_t time_ms);

/*
 * The exact byte strings that are signed (see the comment at the top).
 * Appended to `out` (caller owns it). `nonce_hex` may be "" for a response
 * to a request that carried no well-formed nonce.
 */
int cs__http_request_string(cs_buf *out, const char *method, const char *path,
                            const uint8_t *body, size_t len, uint64_t time_ms,
                            const char *nonce_hex);
int cs__http_response_string(cs_buf *out, int status, const uint8_t *body, size_t len,
                             const char *nonce_hex);

/* Ed25519 detached signature of msg with key->sk. */
void cs__sign(uint8_t sig[CS_SIG_LEN], const uint8_t *msg, size_t len, const cs_keypair *key);
/* 0 when sig is a valid signature of msg by pk; CS_EAUTH otherwise (message set). */
int cs__sign_verify(const uint8_t sig[CS_SIG_LEN], const uint8_t *msg, size_t len,
                    const uint8_t pk[CS_PUBKEY_LEN]);

/* Connections this client has opened so far (keep-alive checks, benchmarks). */
unsigned long cs__http_client_connections(const cs_http_client *c);

/* ------------------------------------------------ replay cache (additions) */

/*
 * Remembers request nonces for as long as their timestamp could still be
 * accepted (time + window), in at most `capacity` entries. When full it forgets
 * the entries with the earliest timestamps and from then on refuses any
 * timestamp not newer than the newest forgotten one, so a replay is always
 * caught, at the price of refusing delayed requests under heavy load. A
 * nonce stamped ahead (a client whose clock runs fast) is forgotten last, so
 * it never makes that floor pass the present. Thread-safe.
 */
typedef struct cs_replay_cache cs_replay_cache;
int cs__replay_new(cs_replay_cache **out, size_t capacity, uint64_t window_ms);
void cs__replay_free(cs_replay_cache *r);
/* Records the nonce: 0 when it is fresh, CS_EAUTH (message set) when seen
 * before or older than what the cache can vouch for. */
int cs__replay_check(cs_replay_cache *r, const uint8_t nonce[CS_NONCE_LEN], uint64_t time_ms,
                     uint64_t now_ms);
size_t cs__replay_count(cs_replay_cache *r);

#endif /* CS_TRANSPORT_H */
