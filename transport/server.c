/*
 * The HTTP server (libmicrohttpd): routes, body accumulation with a size cap,
 * request authentication, the handler call, and response signing. The
 * signature checks themselves live in server_auth.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include <arpa/inet.h>
#include <time.h>

#include "transport/server_int.h"

/* Per-request state, MHD's con_cls. */
typedef struct req_ctx {
  cs_buf body;
  bool too_big;
} req_ctx;

/* Appends s to out, JSON-escaped when `escape`; 0 or CS_ENOMEM. */
static int json_escape(cs_buf *out, const char *s, bool escape) {
  int rc = 0;
  if (!escape)
    return cs__buf_puts(out, s);
  for (; *s && !rc; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\')
      rc = cs__buf_printf(out, "\\%c", ch);
    else if (ch < 0x20)
      rc = cs__buf_printf(out, "\\u%04x", ch);
    else
      rc = cs__buf_putc(out, (char)ch);
  }
  return rc;
}

static void free_body(void *p) {
  cs__free(p);
}

/*
 * Queues `body` (ownership taken; NULL for empty) with the response signature
 * over (status, body, request nonce). Every answer goes through here so that
 * every answer is signed.
 */
static enum MHD_Result respond(struct MHD_Connection *conn, cs_http_server *s, int status,
                               const char *ctype, char *body, size_t len, const char *nonce_hex) {
  struct MHD_Response *r;
  cs_buf msg = CS_BUF_INIT;
  uint8_t sig[CS_SIG_LEN];
  char sig_hex[2 * CS_SIG_LEN + 1];
  enum MHD_Result ok = MHD_NO;

  if (cs__http_response_string(&msg, status, (const uint8_t *)(body ? body : ""), len, nonce_hex) !=
      0) {
    cs__free(body);
    goto done;
  }
  cs__sign(sig, (const uint8_t *)msg.ptr, msg.size, &s->key);
  cs__hex_encode(sig_hex, sig, sizeof(sig));
  if (body)
    r = MHD_create_response_from_buffer_with_free_callback(len, body, free_body);
  else
    r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
  if (!r) {
    cs__free(body);
    goto done;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
  MHD_add_response_header(r, "X-CS-Key", s->key_hex);
  MHD_add_response_header(r, "X-CS-Signature", sig_hex);
  ok = MHD_queue_response(conn, (unsigned)status, r);
  MHD_destroy_response(r);
done:
  cs_buf_dispose(&msg);
  return ok;
}

enum MHD_Result cs__server_refuse(struct MHD_Connection *conn, cs_http_server *s, int status,
                                  const char *error, const char *nonce_hex, const char *fmt, ...) {
  cs_buf out = CS_BUF_INIT;
  va_list ap;
  char tmp[512];
  size_t len;
  char *body;

  va_start(ap, fmt);
  vsnprintf(tmp, sizeof(tmp), fmt, ap);
  va_end(ap);
  if (json_escape(&out, "{\"error\": \"", false) || json_escape(&out, error, true) ||
      json_escape(&out, "\", \"reason\": \"", false) || json_escape(&out, tmp, true) ||
      json_escape(&out, "\"}", false)) {
    cs_buf_dispose(&out);
    return MHD_NO; /* out of memory: MHD closes the connection */
  }
  body = cs__buf_detach(&out, &len);
  return respond(conn, s, status, "application/json", body, len, nonce_hex);
}

static enum MHD_Result serve_health(struct MHD_Connection *conn, cs_http_server *s) {
  cs_buf out = CS_BUF_INIT;
  size_t len;
  char *body;

  if (cs__buf_printf(&out, "{\"status\":\"ok\",\"key\":\"%s\"}", s->key_hex) != 0)
    return MHD_NO;
  body = cs__buf_detach(&out, &len);
  return respond(conn, s, 200, "application/json", body, len, "");
}

/* The request's nonce header when well-formed (to bind our answer to it). */
static const char *request_nonce(struct MHD_Connection *conn) {
  const char *n = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-CS-Nonce");
  uint8_t raw[CS_NONCE_LEN];
  if (!n || cs__hex_decode(raw, sizeof(raw), n) != 0)
    return "";
  return n;
}

static enum MHD_Result call_handler(struct MHD_Connection *conn, cs_http_server *s, const char *url,
                                    req_ctx *ctx) {
  cs_http_request req;
  cs_http_response resp = {200, CS_BUF_INIT, NULL};
  uint8_t sender[CS_PUBKEY_LEN];
  bool signed_req = false;
  const char *nonce = request_nonce(conn);
  size_t len;
  char *body;
  enum MHD_Result queued;

  if (cs__server_authenticate(&queued, sender, &signed_req, conn, s, url, ctx->body.ptr,
                              ctx->body.size) != 0)
    return queued; /* refused: the answer is already queued */
  req.method = "POST";
  req.path = url;
  req.body = (const uint8_t *)(ctx->body.ptr ? ctx->body.ptr : "");
  req.body_len = ctx->body.size;
  req.sender_key = signed_req ? sender : NULL;
  s->handler(&resp, &req, s->payload);
  if (resp.status < 100 || resp.status > 599) {
    cs_buf_dispose(&resp.body);
    return cs__server_refuse(conn, s, 500, "internal", nonce, "handler returned status %d",
                             resp.status);
  }
  body = cs__buf_detach(&resp.body, &len);
  return respond(conn, s, resp.status,
                 resp.content_type ? resp.content_type : "application/msgpack", body, len, nonce);
}

static bool is_post_route(const char *url) {
  return strcmp(url, "/v1/sync") == 0 || strcmp(url, "/v1/pull") == 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
  cs_http_server *s = cls;
  req_ctx *ctx = *con_cls;

  if (!ctx) {
    const char *cl;
    if (!(ctx = cs__calloc(1, sizeof(*ctx))))
      return MHD_NO;
    *con_cls = ctx;
    atomic_fetch_add(&s->in_flight, 1);
    /* Route before reading any body: a refusal now means the body is never
     * read (MHD closes the connection after the answer). */
    if (strcmp(url, "/v1/health") == 0) {
      if (strcmp(method, "GET") != 0)
        return cs__server_refuse(conn, s, 405, "method not allowed", request_nonce(conn),
                                 "%s %s: only GET is allowed", method, url);
      return serve_health(conn, s);
    }
    if (!is_post_route(url))
      return cs__server_refuse(conn, s, 404, "not found", request_nonce(conn), "no endpoint at %s",
                               url);
    if (strcmp(method, "POST") != 0)
      return cs__server_refuse(conn, s, 405, "method not allowed", request_nonce(conn),
                               "%s %s: only POST is allowed", method, url);
    cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
      char *end;
      errno = 0;
      unsigned long long n = strtoull(cl, &end, 10);
      if (errno || *end || n > s->opts.max_body)
        return cs__server_refuse(conn, s, 413, "too large", request_nonce(conn),
                                 "body of %s bytes exceeds the limit of %zu", cl, s->opts.max_body);
    }
    return MHD_YES;
  }
  if (*upload_data_size) {
    /* A body without Content-Length (chunked) that grows past the limit is
     * read and dropped, not kept: MHD cannot answer in the middle of it. */
    if (!ctx->too_big && ctx->body.size + *upload_data_size > s->opts.max_body) {
      ctx->too_big = true;
      cs_buf_dispose(&ctx->body);
    }
    if (!ctx->too_big && cs__buf_put(&ctx->body, upload_data, *upload_data_size) != 0)
      return MHD_NO;
    *upload_data_size = 0;
    return MHD_YES;
  }
  if (ctx->too_big)
    return cs__server_refuse(conn, s, 413, "too large", request_nonce(conn),
                             "body exceeds the limit of %zu bytes", s->opts.max_body);
  return call_handler(conn, s, url, ctx);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  cs_http_server *s = cls;
  req_ctx *ctx = *con_cls;
  if (!ctx)
    return;
  cs_buf_dispose(&ctx->body);
  cs__free(ctx);
  *con_cls = NULL;
  pthread_mutex_lock(&s->mu);
  if (atomic_fetch_sub(&s->in_flight, 1) == 1)
    pthread_cond_broadcast(&s->idle);
  pthread_mutex_unlock(&s->mu);
}

/* Connection limit: refused at accept time so the peer sees a prompt close. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen) {
  cs_http_server *s = cls;
  return atomic_load(&s->connections) < s->opts.max_connections ? MHD_YES : MHD_NO;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
  cs_http_server *s = cls;
  if (toe == MHD_CONNECTION_NOTIFY_STARTED)
    atomic_fetch_add(&s->connections, 1);
  else
    atomic_fetch_sub(&s->connections, 1);
}

/* Our own listening socket, so that a bind failure can say why. */
static int open_listener(int *out, uint16_t *out_port, const char *host, uint16_t port) {
  struct addrinfo hints = {0}, *ai = NULL;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  char portstr[8];
  int fd = -1, one = 1, rc = 0, gai;

  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
  if ((gai = getaddrinfo(host, portstr, &hints, &ai)) != 0) {
    rc = cs__error(CS_ENETWORK, "cannot listen on %s:%u: %s", host, (unsigned)port,
                   gai_strerror(gai));
    goto done;
  }
  fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 128) != 0 ||
      getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
    rc =
        cs__error(CS_ENETWORK, "cannot listen on %s:%u: %s", host, (unsigned)port, strerror(errno));
    goto done;
  }
  if (ss.ss_family == AF_INET)
    *out_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  else
    *out_port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  *out = fd;
  fd = -1;
done:
  if (fd >= 0)
    close(fd);
  if (ai)
    freeaddrinfo(ai);
  return rc;
}

int cs__http_server_start(cs_http_server **out, const cs_keypair *key,
                          const cs_http_server_options *opts, cs_http_handler handler,
                          void *payload) {
  cs_http_server_options defaults = CS_HTTP_SERVER_OPTIONS_INIT;
  cs_http_server *s = NULL;
  int rc = 0, fd = -1;
  unsigned threads;

  *out = NULL;
  if (!opts)
    opts = &defaults;
  if (opts->version != CS_HTTP_SERVER_OPTIONS_VERSION) {
    rc = cs__error(CS_EVERSION, "http server options: version %u, expected %u", opts->version,
                   CS_HTTP_SERVER_OPTIONS_VERSION);
    goto done;
  }
  if (!key || !handler || (!opts->allow_any && !opts->trust)) {
    rc = cs__error(CS_EINVAL, "http server: %s is required",
                   !key       ? "a key"
                   : !handler ? "a handler"
                              : "a trust callback (or allow_any)");
    goto done;
  }
  if ((rc = cs__crypto_init()) != 0)
    goto done;
  if (!(s = cs__calloc(1, sizeof(*s)))) {
    rc = CS_ENOMEM;
    goto done;
  }
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->idle, NULL);
  s->key = *key;
  cs__hex_encode(s->key_hex, key->pk, CS_PUBKEY_LEN);
  s->opts = *opts;
  s->opts.listen_host = NULL;
  if (!opts->max_body)
    s->opts.max_body = defaults.max_body;
  if (!opts->max_connections)
    s->opts.max_connections = defaults.max_connections;
  if (!opts->timeout_s)
    s->opts.timeout_s = defaults.timeout_s;
  if (!opts->max_clock_skew_ms)
    s->opts.max_clock_skew_ms = defaults.max_clock_skew_ms;
  threads = opts->threads ? opts->threads : defaults.threads;
  s->handler = handler;
  s->payload = payload;
  if (!(s->host = cs__strdup(opts->listen_host ? opts->listen_host : "127.0.0.1"))) {
    rc = CS_ENOMEM;
    goto done;
  }
  if ((rc = cs__replay_new(&s->replay, CS__REPLAY_CAPACITY, s->opts.max_clock_skew_ms)) != 0)
    goto done;
  if ((rc = open_listener(&fd, &s->port, s->host, opts->port)) != 0)
    goto done;
  /* MHD splits its own connection limit across pool threads; ours (on_accept)
   * is global, so MHD's is set high enough never to bind first. */
  s->daemon = MHD_start_daemon(
      MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC, 0, on_accept, s, on_request, s,
      MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_THREAD_POOL_SIZE, threads,
      MHD_OPTION_CONNECTION_LIMIT, (s->opts.max_connections + 1) * threads,
      MHD_OPTION_CONNECTION_TIMEOUT, s->opts.timeout_s, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
      s, MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_END);
  if (!s->daemon) {
    rc = cs__error(CS_ENETWORK, "cannot serve on %s:%u: libmicrohttpd failed to start", s->host,
                   (unsigned)s->port);
    goto done;
  }
  fd = -1; /* the daemon owns it now */
  *out = s;
  s = NULL;
done:
  if (fd >= 0)
    close(fd);
  if (s) {
    cs__replay_free(s->replay);
    cs__free(s->host);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->idle);
    cs__free(s);
  }
  return rc;
}

uint16_t cs__http_server_port(const cs_http_server *s) {
  return s->port;
}

void cs__http_server_stop(cs_http_server *s) {
  MHD_socket lfd;
  struct timespec deadline;

  if (!s)
    return;
  /* Close the door first, then let requests already inside get their answer.
   * The wait is bounded by the connection timeout: a stuck handler must not
   * keep the process from exiting forever. */
  lfd = MHD_quiesce_daemon(s->daemon);
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += (time_t)s->opts.timeout_s + 1;
  pthread_mutex_lock(&s->mu);
  while (atomic_load(&s->in_flight) > 0) {
    if (pthread_cond_timedwait(&s->idle, &s->mu, &deadline) == ETIMEDOUT)
      break;
  }
  pthread_mutex_unlock(&s->mu);
  MHD_stop_daemon(s->daemon);
  /* Only now: libmicrohttpd's threads may use the socket until they stop. */
  if (lfd != MHD_INVALID_SOCKET)
    close(lfd);
  cs__replay_free(s->replay);
  cs__free(s->host);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->idle);
  cs__free(s);
}
