/*
 * Serving and maintenance: trust, serve, cleanup, check.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define NOPTS(a) (sizeof(a) / sizeof((a)[0]))

static int is_hex_key(const char *k) {
  size_t n = 0;
  for (; k[n]; n++) {
    char c = k[n];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
      return 0;
  }
  return n == 64;
}

static json_t *list_json(char **items, size_t n) {
  json_t *a = json_array();
  for (size_t i = 0; i < n; i++)
    json_array_append_new(a, json_string(items[i]));
  return a;
}

int cmd_trust(cli_ctx *ctx, int argc, char **argv) {
  cli_opt opts[] = {{"read", 1, NULL, 0}, {"write", 1, NULL, 0}};
  const char *pos[1];
  int n = 0;
  int rc = cli_parse(ctx, argc, argv, opts, NOPTS(opts), pos, &n, 1);
  if (rc != 0)
    return rc;
  if (n != 1)
    return cli_usage_error(ctx, "expected KEY (see cosmicsync trust --help)");
  if (!is_hex_key(pos[0]))
    return cli_usage_error(ctx, "bad key '%s': expected 64 hex digits (cosmicsync id prints one)",
                           pos[0]);
  char *all[] = {"*", NULL};
  char **rd = NULL, **wr = NULL;
  size_t nrd = 0, nwr = 0;
  cs_store *store = NULL;
  if (!opts[0].seen && !opts[1].seen) {
    rd = all;
    wr = all;
    nrd = nwr = 1;
  } else {
    if (opts[0].seen && !(rd = cli_split_list(opts[0].value, &nrd))) {
      rc = cli_usage_error(ctx, "bad model list '%s': expected M1,M2,... or *", opts[0].value);
      goto done;
    }
    if (opts[1].seen && !(wr = cli_split_list(opts[1].value, &nwr))) {
      rc = cli_usage_error(ctx, "bad model list '%s': expected M1,M2,... or *", opts[1].value);
      goto done;
    }
  }
  if ((rc = cli_open_store(&store, ctx)) != 0)
    goto done;
  rc = cs_trust(store, pos[0], (const char *const *)rd, nrd, (const char *const *)wr, nwr);
  if (rc < 0) {
    rc = cli_lib_error(ctx, rc, "trust");
    goto done;
  }
  json_t *o = json_object();
  json_object_set_new(o, "trusted", json_string(pos[0]));
  json_object_set_new(o, "read", list_json(rd, nrd));
  json_object_set_new(o, "write", list_json(wr, nwr));
  rc = cli_print_json(ctx, o);
done:
  if (store)
    cs_store_close(store);
  if (rd != all)
    free(rd);
  if (wr != all)
    free(wr);
  return rc;
}

int cmd_untrust(cli_ctx *ctx, int argc, char **argv) {
  const char *pos[1];
  int n = 0;
  int rc = cli_parse(ctx, argc, argv, NULL, 0, pos, &n, 1);
  cs_store *store = NULL;
  if (rc != 0)
    return rc;
  if (n != 1)
    return cli_usage_error(ctx, "expected KEY (see cosmicsync untrust --help)");
  if (!is_hex_key(pos[0]))
    return cli_usage_error(ctx, "bad key '%s': expected 64 hex digits (cosmicsync id prints one)",
                           pos[0]);
  if ((rc = cli_open_store(&store, ctx)) != 0)
    return rc;
  rc = cs_untrust(store, pos[0]);
  if (rc < 0)
    rc = cli_lib_error(ctx, rc, NULL);
  else {
    json_t *o = json_object();
    json_object_set_new(o, "untrusted", json_string(pos[0]));
    rc = cli_print_json(ctx, o);
  }
  cs_store_close(store);
  return rc;
}

/* "HOST:PORT", "[V6]:PORT", ":PORT" or "PORT" into host (in buf) and port. */
static int parse_listen(cli_ctx *ctx, const char *spec, char *host, size_t hostlen,
                        uint16_t *port) {
  const char *p = spec, *colon = NULL;
  size_t hl = 0;
  if (spec[0] == '[') {
    const char *close = strchr(spec, ']');
    if (!close || close[1] != ':')
      return cli_usage_error(ctx, "bad listen address '%s': expected [ADDR]:PORT", spec);
    p = spec + 1;
    hl = (size_t)(close - p);
    colon = close + 1;
  } else {
    colon = strrchr(spec, ':');
    if (colon) {
      hl = (size_t)(colon - spec);
    } else {
      colon = spec - 1; /* only a port */
    }
  }
  if (hl >= hostlen)
    return cli_usage_error(ctx, "bad listen address '%s': host too long", spec);
  if (hl) {
    memcpy(host, p, hl);
    host[hl] = '\0';
  } else {
    snprintf(host, hostlen, "127.0.0.1");
  }
  const char *ps = colon + 1;
  char *end = NULL;
  errno = 0;
  long v = strtol(ps, &end, 10);
  if (!ps[0] || *end || errno || v < 0 || v > 65535)
    return cli_usage_error(ctx, "bad listen address '%s': expected HOST:PORT with PORT 0-65535",
                           spec);
  *port = (uint16_t)v;
  return 0;
}

static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig) { stop_signal = sig; }

int cmd_serve(cli_ctx *ctx, int argc, char **argv) {
  cli_opt opts[] = {{"listen", 1, NULL, 0}, {"allow-any", 0, NULL, 0}};
  const char *pos[1];
  int n = 0;
  int rc = cli_parse(ctx, argc, argv, opts, NOPTS(opts), pos, &n, 0);
  if (rc != 0)
    return rc;
  char host[256];
  uint16_t port = 8787;
  snprintf(host, sizeof(host), "127.0.0.1");
  if (opts[0].seen && (rc = parse_listen(ctx, opts[0].value, host, sizeof(host), &port)) != 0)
    return rc;

  cs_store *store;
  if ((rc = cli_open_store(&store, ctx)) != 0)
    return rc;
  char key[65];
  if ((rc = cs_store_public_key(key, store)) < 0) {
    rc = cli_lib_error(ctx, rc, "public key");
    cs_store_close(store);
    return rc;
  }

  /* Block the stop signals before the server starts its threads, so that they
   * inherit the mask and the signals reach this thread in sigsuspend(). */
  sigset_t stopset, oldmask;
  sigemptyset(&stopset);
  sigaddset(&stopset, SIGINT);
  sigaddset(&stopset, SIGTERM);
  sigprocmask(SIG_BLOCK, &stopset, &oldmask);
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  cs_server_options so = CS_SERVER_OPTIONS_INIT;
  so.listen_host = host;
  so.port = port;
  so.allow_any = opts[1].seen;
  cs_server *server = NULL;
  rc = cs_server_start(&server, store, &so);
  if (rc < 0) {
    char what[320];
    snprintf(what, sizeof(what), "listen on %s:%u", host, (unsigned)port);
    rc = cli_lib_error(ctx, rc, what);
    cs_store_close(store);
    sigprocmask(SIG_SETMASK, &oldmask, NULL);
    return rc;
  }
  unsigned bound = cs_server_port(server);
  int v6 = strchr(host, ':') != NULL;
  char url[320];
  snprintf(url, sizeof(url), "http://%s%s%s:%u", v6 ? "[" : "", host, v6 ? "]" : "", bound);
  if (so.allow_any)
    fprintf(stderr,
            "cosmicsync: serve: WARNING: --allow-any: every peer may read and write every\n"
            "cosmicsync: serve: WARNING: model, signed or not. Use it for experiments only.\n");
  fprintf(stderr, "cosmicsync: serve: listening on %s\n", url);
  fprintf(stderr, "cosmicsync: serve: server key %s\n", key);
  fprintf(stderr, "cosmicsync: serve: store %s; stop with Ctrl-C (SIGINT) or SIGTERM\n",
          ctx->db);
  json_t *o = json_object();
  json_object_set_new(o, "listening", json_string(url));
  json_object_set_new(o, "port", json_integer(bound));
  json_object_set_new(o, "key", json_string(key));
  char *line = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  if (line) {
    printf("%s\n", line);
    free(line);
  }
  fflush(stdout);
  fflush(stderr);

  sigset_t waitmask = oldmask;
  sigdelset(&waitmask, SIGINT);
  sigdelset(&waitmask, SIGTERM);
  while (!stop_signal)
    sigsuspend(&waitmask);

  fprintf(stderr, "cosmicsync: serve: %s received, finishing in-flight requests\n",
          stop_signal == SIGINT ? "SIGINT" : "SIGTERM");
  cs_server_stop(server);
  cs_store_close(store);
  sigprocmask(SIG_SETMASK, &oldmask, NULL);
  fprintf(stderr, "cosmicsync: serve: stopped\n");
  return CLI_EXIT_OK;
}

int cmd_cleanup(cli_ctx *ctx, int argc, char **argv) {
  cs_store *store;
  int rc = cli_open_no_args(&store, ctx, argc, argv);
  if (rc != 0)
    return rc;
  cs_cleanup_stats st;
  memset(&st, 0, sizeof(st));
  rc = cs_cleanup(&st, store);
  if (rc < 0) {
    rc = cli_lib_error(ctx, rc, "cleanup");
  } else {
    json_t *o = json_object();
    json_object_set_new(o, "log_entries_deleted", json_integer((json_int_t)st.log_entries_deleted));
    json_object_set_new(o, "documents_purged", json_integer((json_int_t)st.documents_purged));
    json_object_set_new(o, "conflicts_dropped", json_integer((json_int_t)st.conflicts_dropped));
    json_object_set_new(o, "bytes_before", json_integer((json_int_t)st.bytes_before));
    json_object_set_new(o, "bytes_after", json_integer((json_int_t)st.bytes_after));
    json_int_t freed = st.bytes_before > st.bytes_after
                           ? (json_int_t)(st.bytes_before - st.bytes_after)
                           : 0;
    json_object_set_new(o, "bytes_freed", json_integer(freed));
    rc = cli_print_json(ctx, o);
  }
  cs_store_close(store);
  return rc;
}

int cmd_check(cli_ctx *ctx, int argc, char **argv) {
  cs_store *store;
  int rc = cli_open_no_args(&store, ctx, argc, argv);
  if (rc != 0)
    return rc;
  cs_buf report = CS_BUF_INIT;
  rc = cs_check(&report, store);
  /* The report is printed in every case: on corruption it names the bad keys. */
  if (report.ptr && report.size)
    cli_print_json_text(ctx, report.ptr);
  if (rc < 0)
    rc = cli_lib_error(ctx, rc, NULL);
  else
    fprintf(stderr, "cosmicsync: check: store %s is consistent\n", ctx->db);
  cs_buf_dispose(&report);
  cs_store_close(store);
  return rc;
}
