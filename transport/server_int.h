/* Internals shared by server.c and server_auth.c; not for other layers. */
#ifndef CS_TRANSPORT_SERVER_INT_H
#define CS_TRANSPORT_SERVER_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include <microhttpd.h>

#include "transport/transport.h"

/* Nonces remembered at most; see cs__replay_new for what happens beyond. */
#define CS__REPLAY_CAPACITY ((size_t)1 << 17)

struct cs_http_server {
  struct MHD_Daemon *daemon;
  cs_keypair key;
  char key_hex[2 * CS_PUBKEY_LEN + 1];
  cs_http_server_options opts; /* defaults filled in; listen_host not kept */
  char *host;
  uint16_t port;
  cs_http_handler handler;
  void *payload;
  cs_replay_cache *replay;
  atomic_uint in_flight;   /* requests begun and not yet answered */
  atomic_uint connections; /* open connections, for max_connections */
  pthread_mutex_t mu;      /* with `idle`: stop waits for in_flight == 0 */
  pthread_cond_t idle;
};

/* Queues a signed JSON error {"error": error, "reason": printf(fmt)}. */
enum MHD_Result cs__server_refuse(struct MHD_Connection *conn, cs_http_server *s, int status,
                                  const char *error, const char *nonce_hex, const char *fmt, ...)
    CS__PRINTF(6, 7);

/*
 * Checks the request's signature headers against the body. Returns 0 when the
 * handler may run (`*out_signed` says whether a verified key is in
 * `out_sender`); otherwise the refusal is queued, its MHD result is in
 * `*out_queued`, and a negative code is returned.
 */
int cs__server_authenticate(enum MHD_Result *out_queued, uint8_t out_sender[CS_PUBKEY_LEN],
                            bool *out_signed, struct MHD_Connection *conn, cs_http_server *s,
                            const char *path, const char *body, size_t len);

#endif
