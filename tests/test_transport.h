/*
 * Shared fixtures for the transport suites: a recording handler, a trust
 * list, raw libcurl requests (to send what our client never would) and a
 * tiny raw TCP server that answers one connection with canned bytes.
 * Everything listens on 127.0.0.1 only.
 */
#ifndef CS_TEST_TRANSPORT_H
#define CS_TEST_TRANSPORT_H

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "transport/transport.h"

static inline bool scale_small(void) {
  const char *s = getenv("CS_TEST_SCALE");
  return s && strcmp(s, "small") == 0;
}

static inline void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* ---- recording handler: echoes the body with a prefix, counts calls ---- */

typedef struct recorder {
  atomic_int calls;
  atomic_int finished;
  int status;   /* answer status; 0 means 200 */
  int sleep_ms; /* delay before answering */
  bool last_signed;
  uint8_t last_key[CS_PUBKEY_LEN];
  char last_path[64];
} recorder;

static inline void record_handler(cs_http_response *resp, const cs_http_request *req,
                                  void *payload) {
  recorder *r = payload;
  atomic_fetch_add(&r->calls, 1);
  if (r->sleep_ms)
    sleep_ms(r->sleep_ms);
  r->last_signed = req->sender_key != NULL;
  if (req->sender_key)
    memcpy(r->last_key, req->sender_key, CS_PUBKEY_LEN);
  snprintf(r->last_path, sizeof(r->last_path), "%s", req->path);
  resp->status = r->status ? r->status : 200;
  if (resp->status == 200) {
    cs__buf_puts(&resp->body, "echo:");
    cs__buf_put(&resp->body, req->body, req->body_len);
  } else {
    cs__buf_puts(&resp->body, "{\"error\": \"busy\", \"reason\": \"try later\"}");
    resp->content_type = "application/json";
  }
  atomic_fetch_add(&r->finished, 1);
}

/* ---- trust list ---- */

typedef struct trust_list {
  const cs_keypair *keys[4];
  int n;
} trust_list;

static inline bool trust_fn(const uint8_t pk[CS_PUBKEY_LEN], void *payload) {
  trust_list *t = payload;
  for (int i = 0; i < t->n; i++)
    if (memcmp(t->keys[i]->pk, pk, CS_PUBKEY_LEN) == 0)
      return true;
  return false;
}

static inline char *base_url(char *buf, size_t cap, uint16_t port) {
  snprintf(buf, cap, "http://127.0.0.1:%u", (unsigned)port);
  return buf;
}

/* ---- raw libcurl requests ---- */

typedef struct raw_result {
  long status;
  CURLcode cc;
  char body[4096];
  size_t body_len;
} raw_result;

static inline size_t raw_write(char *d, size_t s, size_t n, void *u) {
  raw_result *r = u;
  size_t len = s * n, room = sizeof(r->body) - 1 - r->body_len;
  memcpy(r->body + r->body_len, d, len < room ? len : room);
  r->body_len += len < room ? len : room;
  r->body[r->body_len] = '\0';
  return len;
}

/*
 * Sends method path with the given extra header lines (NULL-terminated) and
 * body through libcurl, without any signing of its own.
 */
static inline raw_result raw_request(uint16_t port, const char *method, const char *path,
                                     const char *const *headers, const void *body, size_t len) {
  raw_result r;
  char url[128];
  struct curl_slist *h = NULL;
  CURL *c = curl_easy_init();

  memset(&r, 0, sizeof(r));
  snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", (unsigned)port, path);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  if (body) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
  }
  h = curl_slist_append(h, "Expect:");
  for (int i = 0; headers && headers[i]; i++)
    h = curl_slist_append(h, headers[i]);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, raw_write);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
  r.cc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  return r;
}

/* Header lines for a request signed by `key` at time t (ms). */
typedef struct signed_lines {
  char key[100], time[60], nonce[80], sig[180];
  const char *list[5];
} signed_lines;

static inline void sign_lines(signed_lines *out, const cs_keypair *key, const char *path,
                              const void *body, size_t len, uint64_t t) {
  cs_http_sig_headers sh;
  cr_assert_eq(cs__http_sign_request(&sh, key, "POST", path, body, len, t), 0);
  snprintf(out->key, sizeof(out->key), "X-CS-Key: %s", sh.key);
  snprintf(out->time, sizeof(out->time), "X-CS-Time: %s", sh.time);
  snprintf(out->nonce, sizeof(out->nonce), "X-CS-Nonce: %s", sh.nonce);
  snprintf(out->sig, sizeof(out->sig), "X-CS-Signature: %s", sh.sig);
  out->list[0] = out->key;
  out->list[1] = out->time;
  out->list[2] = out->nonce;
  out->list[3] = out->sig;
  out->list[4] = NULL;
}

/* ---- a raw TCP server that answers one connection with canned bytes ---- */

typedef struct canned_server {
  int fd;
  uint16_t port;
  const char *reply; /* sent after the request headers (and body) arrive */
  size_t reply_len;
  int hold_ms; /* wait before closing */
  pthread_t thread;
} canned_server;

static inline void *canned_main(void *arg) {
  canned_server *s = arg;
  int c = accept(s->fd, NULL, NULL);
  char buf[8192];
  size_t got = 0;
  if (c < 0)
    return NULL;
  /* Read until the end of the headers plus whatever body is in flight. */
  while (got < sizeof(buf) - 1) {
    ssize_t n = recv(c, buf + got, sizeof(buf) - 1 - got, 0);
    if (n <= 0)
      break;
    got += (size_t)n;
    buf[got] = '\0';
    char *end = strstr(buf, "\r\n\r\n");
    if (end) {
      char *cl = strstr(buf, "Content-Length:");
      size_t need = cl ? strtoul(cl + 15, NULL, 10) : 0;
      if (got >= (size_t)(end + 4 - buf) + need)
        break;
    }
  }
  if (send(c, s->reply, s->reply_len, MSG_NOSIGNAL) < 0) {
    /* the client went away: nothing to do */
  }
  if (s->hold_ms)
    sleep_ms(s->hold_ms);
  close(c);
  return NULL;
}

static inline void canned_start(canned_server *s, const char *reply, size_t len) {
  struct sockaddr_in a;
  socklen_t al = sizeof(a);
  int one = 1;
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  s->fd = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert(s->fd >= 0);
  setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  cr_assert_eq(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
  cr_assert_eq(listen(s->fd, 4), 0);
  getsockname(s->fd, (struct sockaddr *)&a, &al);
  s->port = ntohs(a.sin_port);
  s->reply = reply;
  s->reply_len = len;
  s->hold_ms = 0;
  pthread_create(&s->thread, NULL, canned_main, s);
}

static inline void canned_stop(canned_server *s) {
  pthread_join(s->thread, NULL);
  close(s->fd);
}

/* A loopback port with nothing listening: bind, read the port, close. */
static inline uint16_t dead_port(void) {
  struct sockaddr_in a;
  socklen_t al = sizeof(a);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, (struct sockaddr *)&a, sizeof(a));
  getsockname(fd, (struct sockaddr *)&a, &al);
  close(fd);
  return ntohs(a.sin_port);
}

#define expect_msg(substr)                                                                         \
  cr_expect(strstr(cs_errmsg(), substr) != NULL, "message '%s' lacks '%s'", cs_errmsg(), substr)

#endif
