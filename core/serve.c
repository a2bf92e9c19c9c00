/*
 * Serving sync requests: authorization by trusted keys (per model, read and
 * write), the answer to a sync or a pull, and the HTTP status of a failure.
 * The embedded server (peer.c) and the in-process peer both come here.
 */
#include <jansson.h>
#include <stdlib.h>

#include "core/engine.h"

/* ----------------------------------------------------------- authorization */

typedef struct access {
  json_t *rights; /* NULL: everything allowed */
} access;

static bool rights_allow(const access *ac, const char *what, const char *model) {
  json_t *list;
  size_t i;
  json_t *x;
  if (!ac->rights)
    return true;
  list = json_object_get(ac->rights, what);
  json_array_foreach(list, i, x) {
    const char *m = json_string_value(x);
    if (m && (strcmp(m, "*") == 0 || strcmp(m, model) == 0))
      return true;
  }
  return false;
}

static int access_load(access *out, cs_store *s, const uint8_t *key) {
  char hex[2 * CS_PUBKEY_LEN + 1];
  cs_buf k = CS_BUF_INIT, v = CS_BUF_INIT;
  int rc;

  out->rights = NULL;
  cs__hex_encode(hex, key, CS_PUBKEY_LEN);
  if ((rc = cs__buf_printf(&k, "trust/%s", hex)) != 0)
    goto done;
  rc = cs__db_get(&v, s->db, CS_CF_META, k.ptr, k.size);
  if (rc == CS_ENOTFOUND)
    rc = cs__error(CS_EAUTH, "key %.16s... is not trusted by this store", hex);
  else if (rc == 0 && (out->rights = json_loadb(v.ptr, v.size, 0, NULL)) == NULL)
    rc = cs__error(CS_ECORRUPT, "trust record of key %.16s... is not JSON", hex);
done:
  cs_buf_dispose(&k);
  cs_buf_dispose(&v);
  return rc;
}

/* The meta key of a key's trust record, from its hex in either case: the
 * record is always named by the lowercase hex the server looks up. */
static int trust_key(cs_buf *out, const char *hex, const char *what) {
  uint8_t pk[CS_PUBKEY_LEN];
  char canon[2 * CS_PUBKEY_LEN + 1];
  if (!hex || cs__hex_decode(pk, CS_PUBKEY_LEN, hex) != 0)
    return cs__error(CS_EINVAL, "%s: '%.80s' is not a public key (64 hex digits)", what,
                     hex ? hex : "");
  cs__hex_encode(canon, pk, CS_PUBKEY_LEN);
  return cs__buf_printf(out, "trust/%s", canon);
}

int cs__trust_normalize(cs_store *s) {
  static const char prefix[] = "trust/", upper[] = "trust0"; /* '/' + 1 */
  cs_iter *it = NULL;
  cs_wbatch *b = NULL;
  cs_buf key = CS_BUF_INIT, have = CS_BUF_INIT;
  size_t moved = 0;
  int rc;

  if ((rc = cs__wbatch_new(&b, s->db)) != 0 ||
      (rc = cs__iter_new(&it, s->db, CS_CF_META, prefix, strlen(prefix), upper, strlen(upper))) != 0)
    goto done;
  for (cs__iter_seek(it, prefix, strlen(prefix)); cs__iter_valid(it); cs__iter_next(it)) {
    cs_bytes k = cs__iter_key(it), v = cs__iter_value(it);
    char hex[2 * CS_PUBKEY_LEN + 1];
    bool has_upper = false;
    if (k.len != strlen(prefix) + 2 * CS_PUBKEY_LEN)
      continue;
    memcpy(hex, k.ptr + strlen(prefix), 2 * CS_PUBKEY_LEN);
    hex[2 * CS_PUBKEY_LEN] = 0;
    for (size_t i = 0; i < 2 * CS_PUBKEY_LEN; i++)
      has_upper |= hex[i] >= 'A' && hex[i] <= 'F';
    cs__buf_clear(&key);
    if (!has_upper || trust_key(&key, hex, "trust") != 0)
      continue;
    /* A record an older build wrote under upper-case hex, which the
     * server never looked up: the key's one record from now on (unless
     * the lower-case one exists, which is the one the server used). */
    cs__buf_clear(&have);
    if (cs__db_get(&have, s->db, CS_CF_META, key.ptr, key.size) == CS_ENOTFOUND)
      cs__wbatch_put(b, CS_CF_META, key.ptr, key.size, v.ptr, v.len);
    cs__wbatch_delete(b, CS_CF_META, k.ptr, k.len);
    moved++;
  }
  if ((rc = cs__iter_status(it)) == 0 && moved)
    rc = cs__db_write(s->db, b, true);
done:
  cs__iter_free(it);
  cs__wbatch_free(b);
  cs_buf_dispose(&key);
  cs_buf_dispose(&have);
  return rc;
}

int cs_untrust(cs_store *s, const char *hex) {
  cs_buf key = CS_BUF_INIT, val = CS_BUF_INIT;
  cs_wbatch *b = NULL;
  int rc;

  if ((rc = trust_key(&key, hex, "untrust")) != 0)
    goto done;
  CS_LOCK(s);
  rc = cs__db_get(&val, s->db, CS_CF_META, key.ptr, key.size);
  if (rc == CS_ENOTFOUND)
    rc = cs__error(CS_ENOTFOUND, "untrust: key %.16s... is not trusted by this store", hex);
  else if (rc == 0 && (rc = cs__wbatch_new(&b, s->db)) == 0) {
    cs__wbatch_delete(b, CS_CF_META, key.ptr, key.size);
    rc = cs__db_write(s->db, b, true);
  }
  CS_UNLOCK(s);
done:
  cs__wbatch_free(b);
  cs_buf_dispose(&key);
  cs_buf_dispose(&val);
  return rc;
}

int cs_trust(cs_store *s, const char *hex, const char *const *read, size_t nread,
             const char *const *write, size_t nwrite) {
  json_t *rec = NULL, *r = json_array(), *w = json_array();
  cs_buf key = CS_BUF_INIT, val = CS_BUF_INIT;
  cs_wbatch *b = NULL;
  int rc;

  if ((rc = trust_key(&key, hex, "trust")) != 0)
    goto done;
  for (size_t i = 0; i < nread; i++)
    json_array_append_new(r, json_string(read[i]));
  for (size_t i = 0; i < nwrite; i++)
    json_array_append_new(w, json_string(write[i]));
  rec = json_pack("{s:O, s:O}", "read", r, "write", w);
  if (!rec) {
    rc = cs__error(CS_ENOMEM, "out of memory recording trust");
    goto done;
  }
  CS_LOCK(s);
  if ((rc = cs__json_dump(&val, rec)) == 0 && (rc = cs__wbatch_new(&b, s->db)) == 0) {
    cs__wbatch_put(b, CS_CF_META, key.ptr, key.size, val.ptr, val.size);
    rc = cs__db_write(s->db, b, true);
  }
  CS_UNLOCK(s);
done:
  json_decref(rec);
  json_decref(r);
  json_decref(w);
  cs__wbatch_free(b);
  cs_buf_dispose(&key);
  cs_buf_dispose(&val);
  return rc;
}

/* ----------------------------------------------------------------- serving */

static int status_of(int rc) {
  switch (rc) {
  case CS_ECORRUPT:
  case CS_EVERSION:
  case CS_EINVAL:
    return 400;
  case CS_EAUTH:
    return 403;
  case CS_ENOTFOUND:
    return 404;
  case CS_ECLOCK:
    return 409;
  case CS_ETOOBIG:
    return 413;
  case CS_EBUSY:
    return 503;
  default:
    return 500;
  }
}

/* The answer to a merged sync request: our knowledge of every model the key
 * may read, with the actions the requester lacks (or states when our log no
 * longer holds them). */
static int serve_sync(cs_buf *response, cs_store *s, const cs_sync_msg *req, const access *ac) {
  cs_msg_builder b;
  int rc;

  if ((rc = cs__builder_init(&b, s, CS_MSG_SYNC_RESPONSE)) != 0)
    goto done;
  for (size_t i = 0; i < s->nmodels; i++) {
    cs_model *m = &s->models[i];
    const cs_wire_model *theirs = NULL;
    static const cs_dotset empty = CS_DOTSET_INIT;
    const cs_dotset *knows;
    if (!rights_allow(ac, "read", m->name))
      continue;
    for (size_t j = 0; j < req->nmodels; j++)
      if (strcmp(req->models[j].name, m->name) == 0)
        theirs = &req->models[j];
    knows = theirs ? &theirs->knowledge : &empty;
    if ((rc = cs__builder_model(&b, s, m, knows, true)) != 0)
      goto done;
  }
  rc = cs__builder_encode(response, NULL, &b);
done:
  cs__builder_dispose(&b);
  return rc;
}

static int serve_pull(cs_buf *response, cs_store *s, const cs_sync_msg *req, const access *ac) {
  cs_sync_msg resp = {0};
  size_t cap = 0;
  int rc = 0;

  resp.type = CS_MSG_PULL_RESPONSE;
  resp.sender = s->self;
  resp.clock = cs__clock_tick(&s->clock, cs__now_ms());
  resp.cursor = s->cursor;
  resp.flags = CS_MSG_F_STATES;
  if (req->cursor > s->cursor) {
    rc = cs__error(CS_EINVAL, "cursor %llu was never issued here (the latest is %llu)",
                   (unsigned long long)req->cursor, (unsigned long long)s->cursor);
    goto done;
  }
  for (size_t i = 0; i < s->nmodels; i++) {
    cs_model *m = &s->models[i];
    cs_wire_model *wm;
    bool wanted = req->nmodels == 0;
    for (size_t j = 0; j < req->nmodels && !wanted; j++)
      wanted = strcmp(req->models[j].name, m->name) == 0;
    if (!wanted || !rights_allow(ac, "read", m->name))
      continue;
    if (m->missing.vv_len || m->missing.extra_len) {
      /* Its documents lack the effect of actions its knowledge claims:
       * whole states of them would hand the damage on. */
      rc = cs__error(CS_EBUSY,
                     "model '%s' awaits %llu action dot(s) it knows of but never received; "
                     "its next full sync with a replica that has them repairs it: pull again "
                     "after that",
                     m->name, (unsigned long long)cs__dotset_count(&m->missing));
      goto done;
    }
    if ((rc = cs__msg_add_model(&wm, &resp, &cap, m->name)) != 0 ||
        (rc = cs__dotset_copy(&wm->knowledge, &m->knowledge)) != 0 ||
        (rc = cs__collect_states(wm, s, m, req->cursor)) != 0)
      goto done;
  }
  rc = cs__codec_encode_msg(response, &resp);
done:
  cs__sync_msg_dispose(&resp);
  return rc;
}

/*
 * A request is decoded, checked and merged part by part (cs_msg_sink): the
 * header settles who sends what where, each section whether the key may
 * write it. A sync request is merged as it is read; a pull is only checked.
 */
typedef struct serving {
  cs_store *store;
  const char *path;
  const uint8_t *sender_key;
  bool allow_any;
  access ac;
  cs_merger mg;
  bool merging;   /* a sync request */
  bool may_write; /* the section being read */
} serving;

static int serving_header(void *arg, const cs_sync_msg *msg) {
  serving *sv = arg;
  int rc;
  if (sv->sender_key && msg->sender != cs__replica_id(sv->sender_key))
    return cs__error(CS_EAUTH, "message claims sender %016llx but is signed by another key",
                     (unsigned long long)msg->sender);
  if (sv->sender_key && !sv->allow_any && (rc = access_load(&sv->ac, sv->store, sv->sender_key)))
    return rc;
  if (strcmp(sv->path, "/v1/sync") == 0 && msg->type == CS_MSG_SYNC_REQUEST)
    sv->merging = true;
  else if (!(strcmp(sv->path, "/v1/pull") == 0 && msg->type == CS_MSG_PULL_REQUEST))
    return cs__error(CS_EINVAL, "message type %d does not belong on %s", msg->type, sv->path);
  return cs__merge_header(&sv->mg, msg);
}

static int serving_section(void *arg, cs_wire_model *wm) {
  serving *sv = arg;
  if (!sv->merging)
    return cs__validate_section(wm);
  sv->may_write = rights_allow(&sv->ac, "write", wm->name);
  return cs__merge_section(&sv->mg, wm);
}

/* The whole request is refused when any section writes a model the key may
 * not write (nothing is written before the end). */
static int refuse_write(const cs_wire_model *wm) {
  return cs__error(CS_EAUTH, "this key may not write model '%s'", wm->name);
}

static int serving_action(void *arg, cs_wire_model *wm, size_t j, cs_wire_action *a) {
  serving *sv = arg;
  if (!sv->merging)
    return cs__validate_action(sv->store, wm, j, a, sv->mg.limit);
  if (!sv->may_write)
    return refuse_write(wm);
  return cs__merge_action(&sv->mg, wm, j, a);
}

static int serving_section_end(void *arg, cs_wire_model *wm) {
  serving *sv = arg;
  if (!sv->merging)
    return cs__validate_states(sv->store, wm, sv->mg.limit);
  if (wm->nstates && !sv->may_write)
    return refuse_write(wm);
  return cs__merge_section_end(&sv->mg, wm);
}

int cs__store_serve(cs_buf *response, int *http_status, cs_store *s, const char *path,
                    const uint8_t *reqb, size_t len, const uint8_t *sender_key, bool allow_any) {
  cs_sync_msg req = {0};
  serving sv;
  cs_msg_sink sink = {
      serving_header, serving_section, serving_action, serving_section_end, &sv, NULL};
  int rc;

  *http_status = 200;
  memset(&sv, 0, sizeof(sv));
  sv.path = path;
  sv.sender_key = sender_key;
  sv.allow_any = allow_any;
  CS_LOCK(s);
  sv.store = s;
  if ((rc = cs__merge_begin(&sv.mg, s)) == 0) {
    sink.pool = sv.mg.pool; /* the merge's: see cs_action_pool */
    rc = cs__codec_decode_msg_sink(&req, reqb, len, &sink);
  }
  if (rc == 0) {
    if (sv.merging) {
      /* Durable whatever the store's durability (which is for local
       * actions): the answer acknowledges what was merged. */
      rc = cs__merge_finish(NULL, &sv.mg, &req, req.sender, true);
      /* The merged documents are written: free them before the answer. */
      cs__merge_dispose(&sv.mg);
      if (rc == 0)
        rc = serve_sync(response, s, &req, &sv.ac);
    } else
      rc = serve_pull(response, s, &req, &sv.ac);
  }
  cs__merge_dispose(&sv.mg);
  CS_UNLOCK(s);
  if (rc)
    *http_status = status_of(rc);
  json_decref(sv.ac.rights);
  cs__sync_msg_dispose(&req);
  return rc;
}
