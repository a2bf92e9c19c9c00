/* Peers (in-process and HTTP) and the embedded server over a store. */
#include <jansson.h>

#include "core/engine.h"

/* ------------------------------------------------------- in-process peer */

typedef struct local_peer {
  cs_peer base;
  cs_store *remote;
} local_peer;

static int local_exchange(cs_peer *self, cs_buf *response, const char *path,
                          const uint8_t *request, size_t len) {
  local_peer *lp = (local_peer *)self;
  int status;
  /* The bytes go through the same decoder as over the network. */
  int rc = cs__store_serve(response, &status, lp->remote, path, request, len, NULL, true);
  if (rc)
    cs__error_wrap(rc, "peer store '%s': ", lp->remote->path);
  return rc;
}

static void local_free(cs_peer *self) { cs__free(self); }

int cs_peer_local(cs_peer **out, cs_store *remote) {
  local_peer *lp;
  *out = NULL;
  if (!remote)
    return cs__error(CS_EINVAL, "cs_peer_local: remote store is NULL");
  if ((lp = cs__calloc(1, sizeof(*lp))) == NULL)
    return CS_ENOMEM;
  lp->base.version = CS_PEER_VERSION;
  lp->base.exchange = local_exchange;
  lp->base.free = local_free;
  lp->remote = remote;
  *out = &lp->base;
  return 0;
}

void cs_peer_free(cs_peer *peer) {
  if (!peer)
    return;
  cs__peer_forget(peer);
  if (peer->free)
    peer->free(peer);
}

/* -------------------------------------------------------------- HTTP peer */

typedef struct http_peer {
  cs_peer base;
  /* One exchange at a time: the client (a curl handle) is not thread-safe,
   * and a scheduler's thread and the app's own cs_sync may share a peer. */
  pthread_mutex_t lock;
  cs_http_client *client;
  char *url;
} http_peer;

static int http_exchange(cs_peer *self, cs_buf *response, const char *path,
                         const uint8_t *request, size_t len) {
  http_peer *hp = (http_peer *)self;
  int status = 0, rc;
  /* The transport's message already names the method and URL. */
  pthread_mutex_lock(&hp->lock);
  rc = cs__http_post(response, &status, hp->client, path, request, len);
  pthread_mutex_unlock(&hp->lock);
  return rc;
}

static void http_free(cs_peer *self) {
  http_peer *hp = (http_peer *)self;
  pthread_mutex_destroy(&hp->lock);
  cs__http_client_free(hp->client);
  cs__free(hp->url);
  cs__free(hp);
}

int cs_peer_http(cs_peer **out, cs_store *store, const char *url,
                 const cs_http_peer_options *opts) {
  cs_http_client_options co = CS_HTTP_CLIENT_OPTIONS_INIT;
  http_peer *hp = NULL;
  int rc;

  *out = NULL;
  if (!store || !url)
    return cs__error(CS_EINVAL, "cs_peer_http: store and url are required");
  if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
    return cs__error(CS_EINVAL, "peer URL '%s' must start with http:// or https://", url);
  if (opts) {
    if (opts->version != CS_HTTP_PEER_OPTIONS_VERSION)
      return cs__error(CS_EVERSION, "cs_http_peer_options version %u is not supported",
                       opts->version);
    co.connect_timeout_ms = opts->connect_timeout_ms;
    co.timeout_ms = opts->timeout_ms;
    co.ca_file = opts->ca_file;
    co.server_key = opts->server_key;
  }
  if ((hp = cs__calloc(1, sizeof(*hp))) == NULL)
    return CS_ENOMEM;
  if ((hp->url = cs__strdup(url)) == NULL) {
    rc = CS_ENOMEM;
    goto fail;
  }
  /* Trailing slashes would double in the request path. */
  for (size_t n = strlen(hp->url); n > 0 && hp->url[n - 1] == '/'; n--)
    hp->url[n - 1] = '\0';
  if ((rc = cs__http_client_new(&hp->client, hp->url, &store->key, &co)) != 0)
    goto fail;
  pthread_mutex_init(&hp->lock, NULL);
  hp->base.version = CS_PEER_VERSION;
  hp->base.exchange = http_exchange;
  hp->base.free = http_free;
  *out = &hp->base;
  return 0;
fail:
  cs__free(hp->url);
  cs__free(hp);
  return rc;
}

/* ----------------------------------------------------------------- server */

struct cs_server {
  cs_store *store;
  cs_http_server *http;
  bool allow_any;
};

static bool server_trusts(const uint8_t pk[CS_PUBKEY_LEN], void *payload) {
  cs_server *srv = payload;
  char hex[2 * CS_PUBKEY_LEN + 1];
  cs_buf key = CS_BUF_INIT, val = CS_BUF_INIT;
  bool ok;

  cs__hex_encode(hex, pk, CS_PUBKEY_LEN);
  ok = cs__buf_printf(&key, "trust/%s", hex) == 0 &&
       cs__db_get(&val, srv->store->db, CS_CF_META, key.ptr, key.size) == 0;
  cs_buf_dispose(&key);
  cs_buf_dispose(&val);
  return ok;
}

static void server_handle(cs_http_response *resp, const cs_http_request *req, void *payload) {
  cs_server *srv = payload;
  int status = 200;
  int rc = cs__store_serve(&resp->body, &status, srv->store, req->path, req->body, req->body_len,
                           req->sender_key, srv->allow_any);

  resp->status = status;
  resp->content_type = "application/msgpack";
  if (rc) {
    static const char *const reasons[] = {"", "notfound", "invalid", "corrupt", "version", "auth",
                                          "clock", "network", "conflict", "iterover", "nomem",
                                          "io", "exists", "toobig", "timeout", "busy", "state",
                                          "internal"};
    const char *reason = rc < 0 && -rc < (int)(sizeof(reasons) / sizeof(reasons[0]))
                             ? reasons[-rc]
                             : "internal";
    /* The text may quote a peer's bytes, and JSON holds UTF-8 only. */
    char *text = cs__strdup(cs_errmsg());
    json_t *o = NULL;
    if (text) {
      size_t len = strlen(text), bad;
      while ((bad = cs__utf8_check(text, len)) < len)
        text[bad] = '?';
      o = json_pack("{s:s, s:s}", "error", reason, "reason", text);
      cs__free(text);
    }
    cs__buf_clear(&resp->body);
    if (o)
      cs__json_dump(&resp->body, o);
    json_decref(o);
    resp->content_type = "application/json";
  }
}

int cs_server_start(cs_server **out, cs_store *store, const cs_server_options *opts) {
  cs_server_options defaults = CS_SERVER_OPTIONS_INIT;
  cs_http_server_options ho = CS_HTTP_SERVER_OPTIONS_INIT;
  cs_server *srv;
  int rc;

  *out = NULL;
  if (!store)
    return cs__error(CS_EINVAL, "cs_server_start: store is NULL");
  if (!opts)
    opts = &defaults;
  if (opts->version != CS_SERVER_OPTIONS_VERSION)
    return cs__error(CS_EVERSION, "cs_server_options version %u is not supported", opts->version);
  if ((srv = cs__calloc(1, sizeof(*srv))) == NULL)
    return CS_ENOMEM;
  srv->store = store;
  srv->allow_any = opts->allow_any != 0;
  ho.listen_host = opts->listen_host ? opts->listen_host : "127.0.0.1";
  ho.port = opts->port;
  ho.max_body = opts->max_body ? opts->max_body : ho.max_body;
  ho.max_connections = opts->max_connections ? opts->max_connections : ho.max_connections;
  ho.timeout_s = opts->timeout_s ? opts->timeout_s : ho.timeout_s;
  ho.max_clock_skew_ms = store->opts.max_clock_skew_ms > ho.max_clock_skew_ms
                             ? store->opts.max_clock_skew_ms
                             : ho.max_clock_skew_ms;
  ho.allow_any = srv->allow_any;
  ho.trust = server_trusts;
  ho.trust_payload = srv;
  if ((rc = cs__http_server_start(&srv->http, &store->key, &ho, server_handle, srv)) != 0) {
    cs__free(srv);
    return rc;
  }
  *out = srv;
  return 0;
}

uint16_t cs_server_port(const cs_server *srv) { return cs__http_server_port(srv->http); }

void cs_server_stop(cs_server *srv) {
  if (!srv)
    return;
  cs__http_server_stop(srv->http);
  cs__free(srv);
}

int cs__peer_label(cs_buf *out, const cs_peer *p) {
  if (p && p->exchange == local_exchange)
    return cs__buf_printf(out, "store:%s", ((const local_peer *)p)->remote->path);
  if (p && p->exchange == http_exchange)
    return cs__buf_printf(out, "url:%s", ((const http_peer *)p)->url);
  return CS_ENOTFOUND;
}
