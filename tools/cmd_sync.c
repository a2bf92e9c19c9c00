/*
 * Commands that talk to peers or about what syncing produced: sync,
 * partial-sync, conflicts, resolve, status.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define NOPTS(a) (sizeof(a) / sizeof((a)[0]))

/* {"synced", "sent", "received", ..., "conflicts": [...]} from a sync result. */
static json_t *result_json(const cs_sync_result *r, int partial) {
  json_t *o = json_object();
  json_object_set_new(o, "synced", json_integer((json_int_t)r->synced_count));
  json_object_set_new(o, "sent", json_integer((json_int_t)r->sent));
  json_object_set_new(o, "received", json_integer((json_int_t)r->received));
  json_object_set_new(o, "bytes_sent", json_integer((json_int_t)r->bytes_sent));
  json_object_set_new(o, "bytes_received", json_integer((json_int_t)r->bytes_received));
  if (partial)
    json_object_set_new(o, "cursor", json_integer((json_int_t)r->cursor));
  json_t *c = NULL;
  if (r->conflicts.ptr && r->conflicts.size)
    c = json_loads(r->conflicts.ptr, 0, NULL);
  if (!json_is_array(c)) {
    json_decref(c);
    c = json_array();
  }
  json_object_set_new(o, "conflicts", c);
  return o;
}

static int run_sync(cli_ctx *ctx, const char *peer_name, int partial, uint64_t since,
                    const char *const *models, size_t nmodels) {
  cs_store *store = NULL, *other = NULL;
  cs_peer *peer = NULL;
  cs_sync_result res = CS_SYNC_RESULT_INIT;
  int rc = cli_open_store(&store, ctx);
  if (rc != 0)
    return rc;
  if ((rc = cli_open_peer(&peer, &other, ctx, store, peer_name)) != 0)
    goto done;
  uint64_t t0 = cli_now_ms();
  cli_progress(ctx, "%s with %s ...", partial ? "pulling changes" : "syncing", peer_name);
  if (partial)
    rc = cs_partial_sync(&res, store, peer, since, models, nmodels);
  else
    rc = cs_sync(&res, store, peer);
  cli_record_sync(ctx, peer_name, rc, rc == 0 ? &res : NULL, partial);
  if (rc < 0) {
    rc = cli_lib_error(ctx, rc, peer_name);
    goto done;
  }
  cli_progress(ctx, "done in %" PRIu64 " ms: %zu sent, %zu received, %zu open conflict(s)",
               cli_now_ms() - t0, res.sent, res.received, res.conflict_count);
  rc = cli_print_json(ctx, result_json(&res, partial));
done:
  cs_sync_result_dispose(&res);
  if (peer)
    cs_peer_free(peer);
  if (other)
    cs_store_close(other);
  cs_store_close(store);
  return rc;
}

int cmd_sync(cli_ctx *ctx, int argc, char **argv) {
  cli_opt opts[] = {{"models", 1, NULL, 0}};
  const char *pos[1];
  int n = 0;
  int rc = cli_parse(ctx, argc, argv, opts, NOPTS(opts), pos, &n, 1);
  if (rc != 0)
    return rc;
  if (n != 1)
    return cli_usage_error(ctx, "expected PEER (see cosmicsync sync --help)");
  if (opts[0].seen)
    return cli_usage_error(ctx, "sync exchanges every model the peer allows; to pull only "
                                "some models use: cosmicsync partial-sync PEER --since CURSOR "
                                "--models %s",
                           opts[0].value);
  return run_sync(ctx, pos[0], 0, 0, NULL, 0);
}

int cmd_partial_sync(cli_ctx *ctx, int argc, char **argv) {
  cli_opt opts[] = {{"since", 1, NULL, 0}, {"models", 1, NULL, 0}};
  const char *pos[1];
  int n = 0;
  int rc = cli_parse(ctx, argc, argv, opts, NOPTS(opts), pos, &n, 1);
  if (rc != 0)
    return rc;
  if (n != 1)
    return cli_usage_error(ctx, "expected PEER --since CURSOR (see cosmicsync partial-sync "
                                "--help)");
  if (!opts[0].seen)
    return cli_usage_error(ctx, "--since CURSOR is required (0 for everything, or 'last')");
  uint64_t since = 0;
  const char *s = opts[0].value;
  if (strcmp(s, "last") == 0) {
    since = CS_SINCE_LAST; /* the store keeps a cursor per peer and model */
  } else {
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!s[0] || s[0] == '-' || *end || errno)
      return cli_usage_error(ctx, "bad cursor '%s': expected a number a peer returned, or 'last'",
                             s);
    since = v;
  }
  char **models = NULL;
  size_t nmodels = 0;
  if (opts[1].seen) {
    models = cli_split_list(opts[1].value, &nmodels);
    if (!models)
      return cli_usage_error(ctx, "bad model list '%s': expected M1,M2,...", opts[1].value);
    if (nmodels == 1 && strcmp(models[0], "*") == 0) {
      free(models);
      models = NULL;
      nmodels = 0;
    }
  }
  rc = run_sync(ctx, pos[0], 1, since, (const char *const *)models, nmodels);
  free(models);
  return rc;
}

int cmd_conflicts(cli_ctx *ctx, int argc, char **argv) {
  cs_store *store;
  int rc = cli_open_no_args(&store, ctx, argc, argv);
  if (rc != 0)
    return rc;
  cs_buf out = CS_BUF_INIT;
  rc = cs_list_conflicts(&out, store);
  if (rc < 0)
    rc = cli_lib_error(ctx, rc, "conflicts");
  else
    cli_print_json_text(ctx, out.ptr && out.size ? out.ptr : "[]");
  cs_buf_dispose(&out);
  cs_store_close(store);
  return rc;
}

int cmd_resolve(cli_ctx *ctx, int argc, char **argv) {
  cli_opt opts[] = {{"pick", 1, NULL, 0},
                    {"value", 1, NULL, 0},
                    {"keep-deleted", 0, NULL, 0},
                    {"restore", 0, NULL, 0}};
  const char *pos[1];
  int n = 0;
  int rc = cli_parse(ctx, argc, argv, opts, NOPTS(opts), pos, &n, 1);
  if (rc != 0)
    return rc;
  if (n != 1 || !pos[0][0])
    return cli_usage_error(ctx, "expected a conflict ID (see cosmicsync conflicts)");
  int given = opts[0].seen + opts[1].seen + opts[2].seen + opts[3].seen;
  if (given != 1)
    return cli_usage_error(ctx,
                           "give exactly one of --pick N, --value JSON, --keep-deleted, --restore");
  cs_resolution r;
  memset(&r, 0, sizeof(r));
  json_t *o = json_object();
  if (opts[0].seen) {
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(opts[0].value, &end, 10);
    if (!opts[0].value[0] || opts[0].value[0] == '-' || *end || errno) {
      json_decref(o);
      return cli_usage_error(ctx, "bad sibling index '%s': expected 0, 1, ...", opts[0].value);
    }
    r.kind = CS_RESOLVE_PICK;
    r.pick = (size_t)v;
    json_object_set_new(o, "pick", json_integer((json_int_t)v));
  } else if (opts[1].seen) {
    json_t *v = cli_parse_json(ctx, opts[1].value, "the value");
    if (!v) {
      json_decref(o);
      fprintf(stderr, "cosmicsync: resolve: hint: a string value needs JSON quotes, e.g. "
                      "--value '\"Hamburg\"'\n");
      return CLI_EXIT_USAGE;
    }
    r.kind = CS_RESOLVE_VALUE;
    r.value_json = opts[1].value;
    json_object_set_new(o, "value", v);
  } else if (opts[2].seen) {
    r.kind = CS_RESOLVE_KEEP_DELETED;
    json_object_set_new(o, "keep_deleted", json_true());
  } else {
    r.kind = CS_RESOLVE_RESTORE;
    json_object_set_new(o, "restore", json_true());
  }
  cs_store *store;
  if ((rc = cli_open_store(&store, ctx)) != 0) {
    json_decref(o);
    return rc;
  }
  rc = cs_resolve_conflict(store, pos[0], &r);
  if (rc < 0) {
    json_decref(o);
    rc = cli_lib_error(ctx, rc, NULL);
  } else {
    json_object_set_new(o, "resolved", json_string(pos[0]));
    rc = cli_print_json(ctx, o);
    fprintf(stderr, "cosmicsync: resolve: resolved locally; sync to spread the resolution\n");
  }
  cs_store_close(store);
  return rc;
}

int cmd_status(cli_ctx *ctx, int argc, char **argv) {
  cs_store *store;
  int rc = cli_open_no_args(&store, ctx, argc, argv);
  if (rc != 0)
    return rc;
  json_t *st = cli_load_status(ctx);
  json_t *o = json_object();
  char key[65];
  size_t pending = 0, nconf = 0;
  cs_buf conf = CS_BUF_INIT;
  if ((rc = cs_store_public_key(key, store)) < 0) {
    rc = cli_lib_error(ctx, rc, "public key");
    goto done;
  }
  if ((rc = cs_outbox_count(&pending, store)) < 0) {
    rc = cli_lib_error(ctx, rc, "outbox");
    goto done;
  }
  if ((rc = cs_list_conflicts(&conf, store)) < 0) {
    rc = cli_lib_error(ctx, rc, "conflicts");
    goto done;
  }
  json_t *c = json_loads(conf.ptr && conf.size ? conf.ptr : "[]", 0, NULL);
  nconf = json_is_array(c) ? json_array_size(c) : 0;
  json_decref(c);

  /* The state as a scheduler would report it, from the last recorded attempt. */
  json_t *last = json_object_get(st, "last_attempt");
  const char *state = "idle";
  if (json_is_object(last) && !json_is_true(json_object_get(last, "ok"))) {
    json_t *err = json_object_get(st, "last_error");
    json_int_t code = json_integer_value(json_object_get(err, "code"));
    state = (code == CS_ENETWORK || code == CS_ETIMEOUT) ? "offline" : "error";
  }
  json_object_set_new(o, "db", json_string(ctx->db));
  json_object_set_new(o, "replica", json_string(key));
  json_object_set_new(o, "state", json_string(state));
  json_object_set_new(o, "pending", json_integer((json_int_t)pending));
  json_object_set_new(o, "open_conflicts", json_integer((json_int_t)nconf));
  json_t *ls = json_object_get(st, "last_success");
  json_object_set(o, "last_sync", json_is_object(ls) ? ls : json_null());
  json_t *le = json_object_get(st, "last_error");
  json_object_set(o, "last_error", json_is_object(le) ? le : json_null());
  json_t *peers = json_object_get(st, "peers");
  if (json_is_object(peers))
    json_object_set(o, "peers", peers);
  else
    json_object_set_new(o, "peers", json_object());
  rc = cli_print_json(ctx, o);
  o = NULL;
done:
  json_decref(o);
  json_decref(st);
  cs_buf_dispose(&conf);
  cs_store_close(store);
  return rc;
}
