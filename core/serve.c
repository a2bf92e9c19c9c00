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

int cs_trust(cs_store *s, const char *hex, const char *const *read, size_t nread,
             const char *const *write, size_t nwrite) {
  uint8_t pk[CS_PUBKEY_LEN];
  json_t *rec = NULL, *r = json_array(), *w = json_array();
  cs_buf key = CS_BUF_INIT, val = CS_BUF_INIT;
  cs_wbatch *b = NULL;
  int rc;

  if (!hex || (rc = cs__hex_decode(pk, CS_PUBKEY_LEN, hex)) != 0) {
    rc = cs__error(CS_EINVAL, "trust: '%s' is not a public key (64 hex digits)", hex ? hex : "");
    goto done;
  }
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
  if ((rc = cs__buf_printf(&key, "trust/%s", hex)) == 0 && (rc = cs__json_dump(&val, rec)) == 0 &&
      (rc = cs__wbatch_new(&b, s->db)) == 0) {
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

static int serve_sync(cs_buf *response, cs_store *s, cs_sync_msg *req, const access *ac) {
  cs_sync_msg resp = {0};
  size_t cap = 0;
  int rc;

  /* Refuse the whole request when any section writes a model it may not. */
  for (size_t i = 0; i < req->nmodels; i++)
    if ((req->models[i].nactions || req->models[i].nstates) &&
        !rights_allow(ac, "write", req->models[i].name))
      return cs__error(CS_EAUTH, "this key may not write model '%s'", req->models[i].name);
  if ((rc = cs__merge_msg(NULL, s, req, req->sender, s->opts.durability == CS_DURABILITY_SYNC)) != 0)
    return rc;
  resp.type = CS_MSG_SYNC_RESPONSE;
  resp.sender = s->self;
  resp.clock = cs__clock_tick(&s->clock, cs__now_ms());
  for (size_t i = 0; i < s->nmodels; i++) {
    cs_model *m = &s->models[i];
    const cs_wire_model *theirs = NULL;
    static const cs_dotset empty = CS_DOTSET_INIT;
    const cs_dotset *knows;
    cs_wire_model *wm;
    if (!rights_allow(ac, "read", m->name))
      continue;
    for (size_t j = 0; j < req->nmodels; j++)
      if (strcmp(req->models[j].name, m->name) == 0)
        theirs = &req->models[j];
    knows = theirs ? &theirs->knowledge : &empty;
    if ((rc = cs__msg_add_model(&wm, &resp, &cap, m->name)) != 0 ||
        (rc = cs__dotset_copy(&wm->knowledge, &m->knowledge)) != 0)
      goto done;
    if (!cs__dotset_subset(&m->floor, knows)) {
      /* Our log no longer holds everything they lack: send states. */
      resp.flags |= CS_MSG_F_STATES;
      rc = cs__collect_states(wm, s, m, 0);
    } else
      rc = cs__collect_actions(wm, NULL, s, m, knows);
    if (rc)
      goto done;
  }
  rc = cs__codec_encode_msg(response, &resp);
done:
  cs__sync_msg_dispose(&resp);
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

int cs__store_serve(cs_buf *response, int *http_status, cs_store *s, const char *path,
                    const uint8_t *reqb, size_t len, const uint8_t *sender_key, bool allow_any) {
  cs_sync_msg req = {0};
  access ac = {NULL};
  int rc;

  *http_status = 200;
  if ((rc = cs__codec_decode_msg(&req, reqb, len)) != 0)
    goto done;
  if (sender_key && req.sender != cs__replica_id(sender_key)) {
    rc = cs__error(CS_EAUTH, "message claims sender %016llx but is signed by another key",
                   (unsigned long long)req.sender);
    goto done;
  }
  CS_LOCK(s);
  if (sender_key && !allow_any)
    rc = access_load(&ac, s, sender_key);
  if (rc == 0)
    rc = cs__validate_msg(s, &req);
  if (rc == 0) {
    if (strcmp(path, "/v1/sync") == 0 && req.type == CS_MSG_SYNC_REQUEST)
      rc = serve_sync(response, s, &req, &ac);
    else if (strcmp(path, "/v1/pull") == 0 && req.type == CS_MSG_PULL_REQUEST)
      rc = serve_pull(response, s, &req, &ac);
    else
      rc = cs__error(CS_EINVAL, "message type %d does not belong on %s", req.type, path);
  }
  CS_UNLOCK(s);
done:
  if (rc)
    *http_status = status_of(rc);
  json_decref(ac.rights);
  cs__sync_msg_dispose(&req);
  return rc;
}

