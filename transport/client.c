/*
 * The HTTP client (libcurl). One easy handle per client: curl keeps the
 * connection in the handle's cache between requests, which is what makes
 * keep-alive work. A client is therefore not thread-safe; use one per thread.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <strings.h>

#include <curl/curl.h>
#include <jansson.h>

#include "transport/transport.h"

/* Responses larger than this are refused (CS_ETOOBIG) instead of buffered. */
#define CS__MAX_RESPONSE ((size_t)256 << 20)
/* Bodies above this go with "Expect: 100-continue", so that a server that
 * refuses them (413, 401 on headers) answers before we send the bytes. */
#define CS__EXPECT_ABOVE ((size_t)64 << 10)

struct cs_http_client {
  CURL *curl;
  char *base_url;
  cs_keypair key;
  bool has_key;
  bool pin_server;
  uint8_t server_key[CS_PUBKEY_LEN];
  cs_http_client_options opts;
  char errbuf[CURL_ERROR_SIZE];
  cs_buf url;  /* reused scratch */
  cs_buf body; /* response body, reused */
  /* Headers of the last response (reset on every status line, so that a
   * "100 Continue" does not leave stale values). */
  char resp_key[2 * CS_PUBKEY_LEN + 1];
  char resp_sig[2 * CS_SIG_LEN + 1];
  bool resp_key_seen, resp_sig_seen, too_big;
  unsigned long connects;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_status = CURLE_FAILED_INIT;

static void curl_init_once(void) {
  curl_status = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t on_body(char *data, size_t size, size_t n, void *userdata) {
  cs_http_client *c = userdata;
  size_t len = size * n;
  if (c->body.size + len > CS__MAX_RESPONSE) {
    c->too_big = true;
    return 0; /* makes curl fail with CURLE_WRITE_ERROR */
  }
  if (cs__buf_put(&c->body, data, len) != 0)
    return 0;
  return len;
}

/* Copies a header value (trimmed) into dst when it fits, else marks it bad. */
static void take_header(char *dst, size_t cap, bool *seen, const char *v, size_t vlen) {
  while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
    vlen--;
  while (vlen && *v == ' ') {
    v++;
    vlen--;
  }
  *seen = true;
  if (vlen >= cap) {
    dst[0] = '\0';
    return;
  }
  memcpy(dst, v, vlen);
  dst[vlen] = '\0';
}

static size_t on_header(char *data, size_t size, size_t n, void *userdata) {
  cs_http_client *c = userdata;
  size_t len = size * n;
  if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
    c->resp_key_seen = c->resp_sig_seen = false;
    c->resp_key[0] = c->resp_sig[0] = '\0';
  } else if (len > 9 && strncasecmp(data, "X-CS-Key:", 9) == 0) {
    take_header(c->resp_key, sizeof(c->resp_key), &c->resp_key_seen, data + 9, len - 9);
  } else if (len > 15 && strncasecmp(data, "X-CS-Signature:", 15) == 0) {
    take_header(c->resp_sig, sizeof(c->resp_sig), &c->resp_sig_seen, data + 15, len - 15);
  }
  return len;
}

int cs__http_client_new(cs_http_client **out, const char *base_url, const cs_keypair *key,
                        const cs_http_client_options *opts) {
  cs_http_client_options defaults = CS_HTTP_CLIENT_OPTIONS_INIT;
  cs_http_client *c = NULL;
  size_t blen;
  int rc = 0;

  *out = NULL;
  if (!opts)
    opts = &defaults;
  if (opts->version != CS_HTTP_CLIENT_OPTIONS_VERSION) {
    rc = cs__error(CS_EVERSION, "http client options: version %u, expected %u", opts->version,
                   CS_HTTP_CLIENT_OPTIONS_VERSION);
    goto done;
  }
  if (!base_url ||
      (strncmp(base_url, "http://", 7) != 0 && strncmp(base_url, "https://", 8) != 0) ||
      strlen(base_url) <= (base_url[4] == 's' ? 8u : 7u)) {
    rc = cs__error(CS_EINVAL, "base url '%s': expected http://host[:port] or https://host[:port]",
                   base_url ? base_url : "(null)");
    goto done;
  }
  pthread_once(&curl_once, curl_init_once);
  if (curl_status != CURLE_OK) {
    rc = cs__error(CS_EINTERNAL, "libcurl: curl_global_init failed: %s",
                   curl_easy_strerror(curl_status));
    goto done;
  }
  if ((rc = cs__crypto_init()) != 0)
    goto done;
  if (!(c = cs__calloc(1, sizeof(*c)))) {
    rc = CS_ENOMEM;
    goto done;
  }
  c->opts = *opts;
  c->opts.ca_file = NULL;
  c->opts.server_key = NULL;
  if (c->opts.connect_timeout_ms <= 0)
    c->opts.connect_timeout_ms = defaults.connect_timeout_ms;
  if (c->opts.timeout_ms <= 0)
    c->opts.timeout_ms = defaults.timeout_ms;
  if (opts->server_key) {
    if (cs__hex_decode(c->server_key, CS_PUBKEY_LEN, opts->server_key) != 0) {
      rc = cs__error_wrap(CS_EINVAL, "http client option server_key: ");
      goto done;
    }
    c->pin_server = true;
  }
  if (key) {
    c->key = *key;
    c->has_key = true;
  }
  if (!(c->base_url = cs__strdup(base_url))) {
    rc = CS_ENOMEM;
    goto done;
  }
  blen = strlen(c->base_url);
  while (blen && c->base_url[blen - 1] == '/')
    c->base_url[--blen] = '\0';
  if (!(c->curl = curl_easy_init())) {
    rc = cs__error(CS_EINTERNAL, "libcurl: curl_easy_init failed");
    goto done;
  }
  curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, c->opts.connect_timeout_ms);
  curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, c->opts.timeout_ms);
  curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->errbuf);
  curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, c);
  curl_easy_setopt(c->curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c->curl, CURLOPT_HEADERDATA, c);
  curl_easy_setopt(c->curl, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
  /* Certificate checks stay on (curl's default); never turned off here. */
  curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYHOST, 2L);
  if (opts->ca_file && curl_easy_setopt(c->curl, CURLOPT_CAINFO, opts->ca_file) != CURLE_OK) {
    rc = cs__error(CS_EINVAL, "http client: cannot use CA file '%s'", opts->ca_file);
    goto done;
  }
  *out = c;
  c = NULL;
done:
  cs__http_client_free(c);
  return rc;
}

void cs__http_client_free(cs_http_client *c) {
  if (!c)
    return;
  if (c->curl)
    curl_easy_cleanup(c->curl);
  cs__free(c->base_url);
  cs_buf_dispose(&c->url);
  cs_buf_dispose(&c->body);
  cs__free(c);
}

/* The server's {"error","reason"} as one phrase, or a slice of the raw body. */
static void error_text(char *out, size_t cap, const char *body, size_t len, char *err_tok,
                       size_t tokcap) {
  json_t *j = body && len ? json_loadb(body, len, 0, NULL) : NULL;
  const char *e = j ? json_string_value(json_object_get(j, "error")) : NULL;
  const char *r = j ? json_string_value(json_object_get(j, "reason")) : NULL;

  err_tok[0] = '\0';
  if (e || r) {
    snprintf(out, cap, "%s%s%s", e ? e : "", e && r ? ": " : "", r ? r : "");
    snprintf(err_tok, tokcap, "%s", e ? e : r);
  } else {
    snprintf(out, cap, "%.*s", (int)(len > 200 ? 200 : len), body ? body : "");
  }
  json_decref(j);
}

static bool starts_with(const char *s, const char *prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int map_status(const char *what, long status, const char *body, size_t len) {
  char text[600], tok[64];
  error_text(text, sizeof(text), body, len, tok, sizeof(tok));
  if (status == 401 || status == 403)
    return cs__error(CS_EAUTH, "%s: refused with %ld (%s)", what, status, text);
  if (status == 413)
    return cs__error(CS_ETOOBIG, "%s: refused with 413 (%s)", what, text);
  if (status == 409 && (starts_with(tok, "clock") || strstr(text, "clock")))
    return cs__error(CS_ECLOCK, "%s: refused with 409 (%s)", what, text);
  if (status == 400 && (starts_with(tok, "corrupt") || strstr(text, "corrupt")))
    return cs__error(CS_ECORRUPT, "%s: refused with 400 (%s)", what, text);
  if (status >= 400 && status < 500)
    return cs__error(CS_EINVAL, "%s: refused with %ld (%s)", what, status, text);
  if (status == 503)
    return cs__error(CS_EBUSY, "%s: server busy, 503 (%s)", what, text);
  if (status >= 500)
    return cs__error(CS_EINTERNAL, "%s: server error %ld (%s)", what, status, text);
  return cs__error(CS_ENETWORK, "%s: unexpected status %ld", what, status);
}

static int map_curl_error(cs_http_client *c, const char *what, CURLcode cc) {
  const char *detail = c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc);
  long oserr = 0;
  curl_off_t expected = -1;

  curl_easy_getinfo(c->curl, CURLINFO_OS_ERRNO, &oserr);
  switch (cc) {
  case CURLE_OPERATION_TIMEDOUT: {
    curl_off_t connect_us = 0;
    curl_easy_getinfo(c->curl, CURLINFO_CONNECT_TIME_T, &connect_us);
    if (connect_us == 0)
      return cs__error(CS_ETIMEOUT, "%s: could not connect within %ld ms (%s)", what,
                       c->opts.connect_timeout_ms, detail);
    return cs__error(CS_ETIMEOUT, "%s: no complete response within %ld ms (%s)", what,
                     c->opts.timeout_ms, detail);
  }
  case CURLE_COULDNT_CONNECT:
    return cs__error(CS_ENETWORK, "%s: %s (%s)", what,
                     oserr == ECONNREFUSED ? "connection refused" : "cannot connect", detail);
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
    return cs__error(CS_ENETWORK, "%s: cannot resolve host (%s)", what, detail);
  case CURLE_PARTIAL_FILE:
    curl_easy_getinfo(c->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &expected);
    return cs__error(CS_ENETWORK,
                     "%s: response truncated: got %zu of %lld body bytes before the "
                     "connection closed",
                     what, c->body.size, (long long)expected);
  case CURLE_GOT_NOTHING:
    return cs__error(CS_ENETWORK, "%s: server closed the connection without answering (%s)", what,
                     detail);
  case CURLE_SEND_ERROR:
  case CURLE_RECV_ERROR:
    return cs__error(CS_ENETWORK, "%s: connection %s (%s)", what,
                     oserr == ECONNRESET ? "reset by peer" : "failed", detail);
  case CURLE_WRITE_ERROR:
    if (c->too_big)
      return cs__error(CS_ETOOBIG, "%s: response larger than %zu bytes", what, CS__MAX_RESPONSE);
    return cs__error(CS_ENOMEM, "%s: cannot buffer the response", what);
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_CERTPROBLEM:
    return cs__error(CS_EAUTH, "%s: TLS certificate not accepted (%s)", what, detail);
  default:
    return cs__error(CS_ENETWORK, "%s: %s", what, detail);
  }
}

/* Response headers and signature: pinned key if any, over (status, body, nonce). */
static int verify_response(cs_http_client *c, const char *what, long status, const char *nonce) {
  uint8_t pk[CS_PUBKEY_LEN], sig[CS_SIG_LEN];
  cs_buf msg = CS_BUF_INIT;
  int rc;

  if (!c->resp_key_seen || !c->resp_sig_seen) {
    rc = cs__error(CS_EAUTH, "%s: response is not signed (no %s header)", what,
                   !c->resp_key_seen ? "X-CS-Key" : "X-CS-Signature");
    goto done;
  }
  if (cs__hex_decode(pk, sizeof(pk), c->resp_key) != 0 ||
      cs__hex_decode(sig, sizeof(sig), c->resp_sig) != 0) {
    rc = cs__error(CS_EAUTH, "%s: response header %s is malformed", what,
                   cs__hex_decode(pk, sizeof(pk), c->resp_key) ? "X-CS-Key" : "X-CS-Signature");
    goto done;
  }
  if (c->pin_server && memcmp(pk, c->server_key, CS_PUBKEY_LEN) != 0) {
    rc = cs__error(CS_EAUTH, "%s: response signed by key %.16s..., expected the server key", what,
                   c->resp_key);
    goto done;
  }
  if ((rc = cs__http_response_string(&msg, (int)status,
                                     (const uint8_t *)(c->body.ptr ? c->body.ptr : ""),
                                     c->body.size, nonce)) != 0)
    goto done;
  if (cs__sign_verify(sig, (const uint8_t *)msg.ptr, msg.size, pk) != 0) {
    rc = cs__error(CS_EAUTH, "%s: bad response signature (body, status or nonce altered)", what);
    goto done;
  }
done:
  cs_buf_dispose(&msg);
  return rc;
}

static int perform(cs_buf *response, int *out_status, cs_http_client *c, const char *method,
                   const char *path, const uint8_t *body, size_t len) {
  struct curl_slist *hdrs = NULL, *h;
  cs_http_sig_headers sh;
  char line[200], what[300];
  long status = 0;
  CURLcode cc;
  int rc;

  if (out_status)
    *out_status = 0;
  if (!path || path[0] != '/') {
    rc = cs__error(CS_EINVAL, "http %s: path '%s' must start with '/'", method,
                   path ? path : "(null)");
    goto done;
  }
  cs__buf_clear(&c->url);
  if ((rc = cs__buf_printf(&c->url, "%s%s", c->base_url, path)) != 0)
    goto done;
  snprintf(what, sizeof(what), "%s %s", method, c->url.ptr);
  cs__buf_clear(&c->body);
  c->errbuf[0] = '\0';
  c->too_big = false;
  c->resp_key_seen = c->resp_sig_seen = false;
  sh.nonce[0] = '\0';
  curl_easy_setopt(c->curl, CURLOPT_URL, c->url.ptr);
  if (strcmp(method, "POST") == 0) {
    const char *fixed[] = {"Content-Type: application/msgpack", "Accept: application/msgpack",
                           len > CS__EXPECT_ABOVE ? "Expect: 100-continue" : "Expect:"};
    for (size_t i = 0; i < 3; i++) {
      if (!(h = curl_slist_append(hdrs, fixed[i])))
        goto nomem;
      hdrs = h;
    }
    if (c->has_key) {
      if ((rc = cs__http_sign_request(&sh, &c->key, method, path, body, len, cs__now_ms())) != 0)
        goto done;
      const char *names[] = {"X-CS-Key", "X-CS-Time", "X-CS-Nonce", "X-CS-Signature"};
      const char *vals[] = {sh.key, sh.time, sh.nonce, sh.sig};
      for (size_t i = 0; i < 4; i++) {
        snprintf(line, sizeof(line), "%s: %s", names[i], vals[i]);
        if (!(h = curl_slist_append(hdrs, line)))
          goto nomem;
        hdrs = h;
      }
    }
    curl_easy_setopt(c->curl, CURLOPT_POST, 1L);
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body ? (const char *)body : "");
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
  } else {
    curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
  }
  curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hdrs);
  cc = curl_easy_perform(c->curl);
  curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
  {
    long nc = 0;
    curl_easy_getinfo(c->curl, CURLINFO_NUM_CONNECTS, &nc);
    c->connects += (unsigned long)nc;
  }
  if (cc != CURLE_OK) {
    rc = map_curl_error(c, what, cc);
    goto done;
  }
  curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
  if (out_status)
    *out_status = (int)status;
  if (status != 200) {
    rc = map_status(what, status, c->body.ptr, c->body.size);
    goto done;
  }
  if (strcmp(method, "POST") == 0 && (rc = verify_response(c, what, status, sh.nonce)) != 0)
    goto done;
  cs__buf_clear(response);
  if ((rc = cs__buf_put(response, c->body.ptr ? c->body.ptr : "", c->body.size)) != 0)
    goto done;
  goto done;
nomem:
  rc = cs__error(CS_ENOMEM, "%s: cannot build request headers", method);
done:
  curl_slist_free_all(hdrs);
  return rc;
}

int cs__http_post(cs_buf *response, int *out_status, cs_http_client *c, const char *path,
                  const uint8_t *body, size_t len) {
  return perform(response, out_status, c, "POST", path, body, len);
}

int cs__http_get(cs_buf *response, int *out_status, cs_http_client *c, const char *path) {
  return perform(response, out_status, c, "GET", path, NULL, 0);
}

unsigned long cs__http_client_connections(const cs_http_client *c) {
  return c->connects;
}
