/*
 * The sync protocol (docs/guide.md, "How sync works").
 *
 * A sends, per model, its knowledge and the logged actions the peer lacks;
 * B validates and merges the message as it decodes it (one action in memory
 * at a time, core/merge.c), writes it in one batch, and answers with its
 * knowledge and the actions A lacks (or whole document states when its log no
 * longer holds them). A merges the answer in one write and records what B has
 * acknowledged. Actions are never echoed (A's own are in A's knowledge) and
 * never re-sent once acknowledged.
 *
 * The log is keyed by (model, origin, LAST dot of the action): a peer that
 * knows origin o up to n lacks exactly the actions whose key is above n, bar
 * the few it knows out of order, so serving one is a seek per origin.
 */
#include <jansson.h>
#include <stdlib.h>

#include "core/engine.h"

/* ------------------------------------------------------------ the client */

/* A sync request: our knowledge of every model, with what the peer lacks as
 * far as we know what it has (nothing known: knowledge only): logged actions,
 * read from the log as they are encoded, or whole states when the log does
 * not hold all of it (cs__builder_model, as a server answers). */
static int build_request(cs_buf *out, size_t *out_sent, cs_store *s, cs_replica peer,
                         const cs_sync_msg *peer_knows) {
  cs_msg_builder b;
  int rc;

  if ((rc = cs__builder_init(&b, s, CS_MSG_SYNC_REQUEST)) != 0)
    goto done;
  for (size_t i = 0; i < s->nmodels; i++) {
    cs_model *m = &s->models[i];
    cs_dotset ack = CS_DOTSET_INIT;
    const cs_dotset *knows = NULL;
    if (peer_knows) {
      /* A model missing from the peer's answer is one it does not share
       * with us: nothing to send for it in a later round. */
      for (size_t j = 0; j < peer_knows->nmodels; j++)
        if (strcmp(peer_knows->models[j].name, m->name) == 0)
          knows = &peer_knows->models[j].knowledge;
    } else if (peer) {
      if ((rc = cs__peer_ack_get(&ack, s, peer, m->name)) == 0)
        knows = &ack;
    }
    /* States only against what the peer said in this sync: an old
     * acknowledgement may be behind what the floor came from. */
    if (rc == 0)
      rc = cs__builder_model(&b, s, m, knows, peer_knows != NULL);
    cs__dotset_dispose(&ack);
    if (rc)
      goto done;
  }
  rc = cs__builder_encode(out, out_sent, &b);
done:
  cs__builder_dispose(&b);
  return rc;
}

/* Has the peer (per its answer) every dot of this outbox entry? */
static bool entry_acked(const cs_outbox_view *ov, const cs_sync_msg *resp) {
  for (size_t i = 0; i < resp->nmodels; i++) {
    const char *name = resp->models[i].name;
    if (strlen(name) != ov->model_len || memcmp(name, ov->model, ov->model_len) != 0)
      continue;
    for (uint64_t c = ov->first; c <= ov->last; c++)
      if (!cs__dotset_contains(&resp->models[i].knowledge, (cs_dot){ov->origin, c}))
        return false;
    return true;
  }
  return false;
}

/* Drops outbox entries that the peer's answer says it has: a record whose
 * entries all go is deleted, one that keeps some is rewritten. */
static int outbox_ack(size_t *out_dropped, cs_store *s, const cs_sync_msg *resp) {
  cs_outbox_run keep = {0};
  cs_iter *it = NULL;
  cs_wbatch *b = NULL;
  size_t dropped = 0;
  uint64_t first_kept = 0; /* the key of the first record left with entries */
  int rc;

  if ((rc = cs__wbatch_new(&b, s->db)) != 0 || (rc = cs__outbox_iter(&it, s)) != 0)
    goto done;
  for (; cs__iter_valid(it); cs__iter_next(it)) {
    cs_bytes k = cs__iter_key(it), v = cs__iter_value(it);
    cs_outbox_cursor c;
    const uint8_t *rec;
    uint64_t seq;
    size_t len, total = 0;
    if (k.len != 8) {
      rc = cs__error(CS_ECORRUPT, "outbox key of %zu bytes (expected 8)", k.len);
      goto done;
    }
    if ((rc = cs__outbox_cursor(&c, cs__get_be64(k.ptr), v.ptr, v.len)) != 0)
      goto done;
    keep.n = 0;
    while ((rc = cs__outbox_next(&c, &seq, &rec, &len)) == 1) {
      cs_outbox_view ov;
      total++;
      if ((rc = cs__outbox_decode(&ov, rec, len)) != 0) {
        cs__error_wrap(rc, "outbox entry %llu: ", (unsigned long long)seq);
        goto done;
      }
      if (entry_acked(&ov, resp))
        dropped++;
      else if ((rc = cs__outbox_run_add_raw(&keep, seq, rec, len)) != 0)
        goto done;
    }
    if (rc)
      goto done;
    if (keep.n == 0)
      cs__wbatch_delete(b, CS_CF_OUTBOX, k.ptr, 8);
    else {
      if (!first_kept)
        first_kept = c.key;
      if (keep.n < total)
        cs__outbox_run_put(&keep, b, c.key);
    }
  }
  if ((rc = cs__iter_status(it)) == 0 && dropped &&
      (rc = cs__db_write(s->db, b, false)) == 0) {
    /* The scan saw every live record: none is left below first_kept. */
    s->outbox_head = first_kept ? first_kept : s->outbox_seq + 1;
    s->outbox_len -= dropped;
  }
done:
  cs__outbox_run_dispose(&keep);
  cs__iter_free(it);
  cs__wbatch_free(b);
  *out_dropped = dropped;
  return rc;
}

/* Does the peer (per its answer) lack any action we hold? */
static bool peer_lacks_ours(cs_store *s, const cs_sync_msg *resp) {
  for (size_t i = 0; i < s->nmodels; i++) {
    const cs_dotset *theirs = NULL;
    for (size_t j = 0; j < resp->nmodels; j++)
      if (strcmp(resp->models[j].name, s->models[i].name) == 0)
        theirs = &resp->models[j].knowledge;
    if (!theirs)
      continue; /* a model the peer does not share with us */
    if (!cs__dotset_subset(&s->models[i].knowledge, theirs))
      return true;
  }
  return false;
}

/* Which peer pointer answered as which replica, to send actions in the first
 * round next time. A stale entry costs a round trip, never correctness: the
 * answer's knowledge always tells what is still missing, and a first round
 * the peer refuses is sent again without it. */
#define PEER_MEMO 8
static pthread_mutex_t memo_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
  const cs_peer *peer;
  cs_replica id;
} memo[PEER_MEMO];

static cs_replica memo_get(const cs_peer *p) {
  cs_replica id = 0;
  pthread_mutex_lock(&memo_lock);
  for (int i = 0; i < PEER_MEMO; i++)
    if (memo[i].peer == p)
      id = memo[i].id;
  pthread_mutex_unlock(&memo_lock);
  return id;
}

static void memo_put(const cs_peer *p, cs_replica id) {
  pthread_mutex_lock(&memo_lock);
  for (int i = 0; i < PEER_MEMO; i++)
    if (memo[i].peer == p) {
      memo[i].id = id;
      goto done;
    }
  memmove(&memo[1], &memo[0], (PEER_MEMO - 1) * sizeof(memo[0]));
  memo[0].peer = p;
  memo[0].id = id;
done:
  pthread_mutex_unlock(&memo_lock);
}

void cs__peer_forget(const cs_peer *p) {
  pthread_mutex_lock(&memo_lock);
  for (int i = 0; i < PEER_MEMO; i++)
    if (memo[i].peer == p)
      memo[i].peer = NULL;
  pthread_mutex_unlock(&memo_lock);
}

/* One round trip: the peer's answer as bytes. */
static int exchange_bytes(cs_buf *resp, size_t *bytes_in, cs_peer *peer, const char *path,
                          const cs_buf *req) {
  int rc;
  if (!peer || peer->version != CS_PEER_VERSION || !peer->exchange)
    return cs__error(CS_EINVAL, "peer is not a version %d cs_peer", CS_PEER_VERSION);
  if ((rc = peer->exchange(peer, resp, path, (const uint8_t *)req->ptr, req->size)) == 0)
    *bytes_in += resp->size;
  return rc;
}

static int wrong_type(uint8_t got, uint8_t want) {
  return cs__error(CS_ECORRUPT, "peer answered with message type %d, expected %d", got, want);
}

static int exchange(cs_sync_msg *out, size_t *bytes_in, cs_peer *peer, const char *path,
                    const cs_buf *req, uint8_t want_type) {
  cs_buf resp = CS_BUF_INIT;
  int rc;

  if ((rc = exchange_bytes(&resp, bytes_in, peer, path, req)) != 0)
    goto done;
  if ((rc = cs__codec_decode_msg(out, (const uint8_t *)resp.ptr, resp.size)) != 0) {
    cs__error_wrap(rc, "peer's answer: ");
    goto done;
  }
  if (out->type != want_type)
    rc = wrong_type(out->type, want_type);
done:
  cs_buf_dispose(&resp);
  return rc;
}

static int answer_header(void *arg, const cs_sync_msg *msg) {
  if (msg->type != CS_MSG_SYNC_RESPONSE)
    return wrong_type(msg->type, CS_MSG_SYNC_RESPONSE);
  return cs__merge_header(arg, msg);
}

/* Decodes, checks and merges the peer's answer as it is read (one action
 * at a time in memory); *resp keeps its knowledge, not its actions. */
static int merge_answer(size_t *applied, cs_sync_msg *resp, cs_store *s, const cs_buf *bytes) {
  cs_merger mg;
  cs_msg_sink sink;
  int rc;

  if ((rc = cs__merge_begin(&mg, s)) == 0) {
    cs__merge_sink(&sink, &mg);
    sink.header = answer_header;
    if ((rc = cs__codec_decode_msg_sink(resp, (const uint8_t *)bytes->ptr, bytes->size,
                                        &sink)) != 0)
      cs__error_wrap(rc, "peer's answer: ");
    else
      rc = cs__merge_finish(applied, &mg, resp, resp->sender, false);
  }
  cs__merge_dispose(&mg);
  return rc;
}

static int finish_result(cs_sync_result *out, cs_store *s) {
  if (!out)
    return 0;
  cs__buf_clear(&out->conflicts);
  return cs__conflict_list_json(&out->conflicts, &out->conflict_count, s);
}

int cs_sync(cs_sync_result *out, cs_store *s, cs_peer *peer) {
  cs_sync_result local = CS_SYNC_RESULT_INIT;
  cs_sync_msg resp = {0}, prev = {0};
  cs_buf req = CS_BUF_INIT, respb = CS_BUF_INIT;
  bool have_prev = false, want_result = out != NULL, retried = false;
  int rc = 0;

  if (!out)
    out = &local;
  for (int round = 0; round < 3; round++) {
    size_t sent = 0, applied = 0, dropped = 0;
    cs_replica known = have_prev ? 0 : memo_get(peer);
    cs__buf_clear(&req);
    CS_LOCK(s);
    rc = build_request(&req, &sent, s, known, have_prev ? &prev : NULL);
    CS_UNLOCK(s);
    if (rc)
      goto done;
    out->bytes_sent += req.size;
    cs__sync_msg_dispose(&resp);
    memset(&resp, 0, sizeof(resp));
    cs__buf_clear(&respb);
    if ((rc = exchange_bytes(&respb, &out->bytes_received, peer, "/v1/sync", &req)) != 0) {
      if (known)
        cs__peer_forget(peer);
      /* A first round sent against what the peer once acknowledged, and
       * refused: the peer may be another replica now, or have lost what it
       * acknowledged. Once more, with knowledge only. */
      if (known && rc == CS_ECORRUPT && !retried) {
        retried = true;
        round--;
        continue;
      }
      goto done;
    }
    CS_LOCK(s);
    rc = merge_answer(&applied, &resp, s, &respb);
    if (rc == 0)
      rc = outbox_ack(&dropped, s, &resp);
    bool again = rc == 0 && peer_lacks_ours(s, &resp);
    CS_UNLOCK(s);
    if (rc)
      goto done;
    memo_put(peer, resp.sender);
    out->sent += sent;
    out->received += applied;
    out->synced_count += applied + dropped;
    if (!again || (round > 0 && sent == 0))
      break;
    cs__sync_msg_dispose(&prev);
    prev = resp;
    memset(&resp, 0, sizeof(resp));
    have_prev = true;
  }
  /* The conflict list is rendered only for a caller who takes it. */
  if (want_result) {
    CS_LOCK(s);
    rc = finish_result(out, s);
    CS_UNLOCK(s);
  }
done:
  cs__sync_msg_dispose(&resp);
  cs__sync_msg_dispose(&prev);
  cs_buf_dispose(&req);
  cs_buf_dispose(&respb);
  cs_sync_result_dispose(&local);
  return rc;
}

/* ----------------------------------------------------------- partial sync */

static int pcursor_key(cs_buf *key, cs_replica peer, const char *model) {
  return cs__buf_printf(key, "pcursor/%016llx/%s", (unsigned long long)peer, model);
}

/* The last cursor this store took from `peer` for `model` (0: none). */
static int pcursor_get(uint64_t *out, cs_store *s, cs_replica peer, const char *model) {
  cs_buf key = CS_BUF_INIT, val = CS_BUF_INIT;
  int rc;

  *out = 0;
  if ((rc = pcursor_key(&key, peer, model)) == 0 &&
      (rc = cs__db_get(&val, s->db, CS_CF_META, key.ptr, key.size)) == 0) {
    if (val.size == 8)
      *out = cs__get_be64((const uint8_t *)val.ptr);
    else
      rc = cs__error(CS_ECORRUPT, "store '%s': meta record '%s' has %zu bytes, expected 8",
                     s->path, key.ptr, val.size);
  } else if (rc == CS_ENOTFOUND)
    rc = 0;
  cs_buf_dispose(&key);
  cs_buf_dispose(&val);
  return rc;
}

/* The replica a peer handle reaches, when this process or this store has met
 * it before (0: not known). */
static cs_replica peer_known(cs_store *s, const cs_peer *peer) {
  cs_buf key = CS_BUF_INIT, val = CS_BUF_INIT;
  cs_replica id = memo_get(peer);

  if (!id && cs__buf_puts(&key, "peerid/") == 0 && cs__peer_label(&key, peer) == 0 &&
      cs__db_get(&val, s->db, CS_CF_META, key.ptr, key.size) == 0 && val.size == 8)
    id = cs__get_be64((const uint8_t *)val.ptr);
  cs_buf_dispose(&key);
  cs_buf_dispose(&val);
  return id;
}

/* Where a CS_SINCE_LAST pull starts: the lowest cursor taken from the peer
 * for the models asked for (with none named, for every model this store
 * holds one of); 0 when a model asked for has none or the peer is unknown. */
static int last_cursor(uint64_t *out, cs_store *s, cs_replica peer, const cs_sync_msg *req) {
  cs_buf lo = CS_BUF_INIT, hi = CS_BUF_INIT;
  cs_iter *it = NULL;
  uint64_t min = UINT64_MAX;
  int rc = 0;

  *out = 0;
  if (!peer)
    return 0;
  for (size_t i = 0; i < req->nmodels && rc == 0; i++) {
    uint64_t c;
    if ((rc = pcursor_get(&c, s, peer, req->models[i].name)) == 0 && c < min)
      min = c;
  }
  if (req->nmodels == 0 && (rc = pcursor_key(&lo, peer, "")) == 0 &&
      (rc = cs__buf_put(&hi, lo.ptr, lo.size)) == 0) {
    hi.ptr[hi.size - 1]++; /* '/' + 1: the end of the prefix */
    if ((rc = cs__iter_new(&it, s->db, CS_CF_META, lo.ptr, lo.size, hi.ptr, hi.size)) == 0) {
      for (cs__iter_seek(it, lo.ptr, lo.size); cs__iter_valid(it); cs__iter_next(it)) {
        cs_bytes v = cs__iter_value(it);
        uint64_t c = v.len == 8 ? cs__get_be64(v.ptr) : 0;
        if (c < min)
          min = c;
      }
      rc = cs__iter_status(it);
    }
  }
  if (rc == 0 && min != UINT64_MAX)
    *out = min;
  cs__iter_free(it);
  cs_buf_dispose(&lo);
  cs_buf_dispose(&hi);
  return rc;
}

/*
 * One pull from `since` of the models req names (none: all). A section of a
 * model whose cursor from this peer is older than `since` would claim the
 * peer's knowledge of documents that changed before `since` and were never
 * received here: with `stale` NULL it refuses the answer; otherwise the
 * section is left out and its model named in *stale, to pull again from its
 * own cursor. *out_cursor gets the answer's cursor.
 */
static int pull_once(cs_sync_result *out, uint64_t *out_cursor, cs_store *s, cs_peer *peer,
                     cs_sync_msg *req, uint64_t since, cs_sync_msg *stale) {
  cs_sync_msg resp = {0};
  cs_buf reqb = CS_BUF_INIT, key = CS_BUF_INIT;
  cs_wbatch *b = NULL;
  size_t applied = 0, nfresh = 0, stale_cap = 0, all = 0;
  int rc = 0;

  req->cursor = since;
  CS_LOCK(s);
  req->sender = s->self;
  req->clock = cs__clock_tick(&s->clock, cs__now_ms());
  CS_UNLOCK(s);
  if ((rc = cs__codec_encode_msg(&reqb, req)) != 0)
    goto done;
  out->bytes_sent += reqb.size;
  if ((rc = exchange(&resp, &out->bytes_received, peer, "/v1/pull", &reqb,
                     CS_MSG_PULL_RESPONSE)) != 0)
    goto done;
  /* Only the models asked for: a section of another would be merged and
   * given a cursor this store never asked for. */
  for (size_t i = 0; i < resp.nmodels && req->nmodels > 0; i++) {
    bool asked = false;
    for (size_t j = 0; j < req->nmodels && !asked; j++)
      asked = strcmp(resp.models[i].name, req->models[j].name) == 0;
    if (!asked) {
      rc = cs__error(CS_ECORRUPT, "peer's answer: model '%.200s' was not asked for",
                     resp.models[i].name);
      goto done;
    }
  }
  all = resp.nmodels;
  CS_LOCK(s);
  /* A cursor is only good for the peer and models that issued it. The
   * sections it is good for go first, in order; the others after them. */
  for (size_t i = 0; i < resp.nmodels && rc == 0; i++) {
    uint64_t issued = 0;
    if ((rc = pcursor_get(&issued, s, resp.sender, resp.models[i].name)) != 0)
      break;
    if (since <= issued) {
      cs_wire_model t = resp.models[i];
      memmove(&resp.models[nfresh + 1], &resp.models[nfresh], (i - nfresh) * sizeof(t));
      resp.models[nfresh++] = t;
    } else if (!stale) {
      rc = cs__error(CS_EINVAL,
                     "partialSync: cursor %llu was not issued to this store by peer %016llx for "
                     "model '%s' (last issued: %llu); pass 0 for a full pull, or CS_SINCE_LAST",
                     (unsigned long long)since, (unsigned long long)resp.sender,
                     resp.models[i].name, (unsigned long long)issued);
    } else {
      cs_wire_model *wm;
      rc = cs__msg_add_model(&wm, stale, &stale_cap, resp.models[i].name);
    }
  }
  resp.nmodels = nfresh; /* the merge takes the good sections only */
  if (rc == 0)
    rc = cs__merge_msg(&applied, s, &resp, 0, false, since > 0);
  if (rc == 0 && (rc = cs__wbatch_new(&b, s->db)) == 0) {
    uint8_t be[8];
    cs__put_be64(be, resp.cursor);
    for (size_t i = 0; i < nfresh && rc == 0; i++) {
      cs__buf_clear(&key);
      if ((rc = pcursor_key(&key, resp.sender, resp.models[i].name)) == 0)
        cs__wbatch_put(b, CS_CF_META, key.ptr, key.size, be, 8);
    }
    /* Who answered at this URL or store: the next CS_SINCE_LAST starts from
     * its cursors, in a new process too. */
    cs__buf_clear(&key);
    cs__put_be64(be, resp.sender);
    if (rc == 0 && cs__buf_puts(&key, "peerid/") == 0 && cs__peer_label(&key, peer) == 0)
      cs__wbatch_put(b, CS_CF_META, key.ptr, key.size, be, 8);
    if (rc == 0)
      rc = cs__db_write(s->db, b, false);
  }
  CS_UNLOCK(s);
  if (rc == 0) {
    memo_put(peer, resp.sender);
    out->received += applied;
    out->synced_count += applied;
    *out_cursor = resp.cursor;
  }
done:
  if (all)
    resp.nmodels = all;
  cs__wbatch_free(b);
  cs__sync_msg_dispose(&resp);
  cs_buf_dispose(&reqb);
  cs_buf_dispose(&key);
  return rc;
}

int cs_partial_sync(cs_sync_result *out, cs_store *s, cs_peer *peer, uint64_t since,
                    const char *const *models, size_t nmodels) {
  cs_sync_result local = CS_SYNC_RESULT_INIT;
  cs_sync_msg req = {0}, stale = {0};
  bool last = since == CS_SINCE_LAST;
  uint64_t cursor = 0, again = 0;
  size_t cap = 0;
  int rc = 0;

  if (!out)
    out = &local;
  req.type = stale.type = CS_MSG_PULL_REQUEST;
  for (size_t i = 0; i < nmodels; i++) {
    cs_wire_model *wm;
    bool dup = false;
    if (!models[i] || !*models[i]) {
      rc = cs__error(CS_EINVAL, "partialSync: model %zu is empty", i);
      goto done;
    }
    for (size_t j = 0; j < i; j++)
      dup |= strcmp(models[i], models[j]) == 0;
    if (!dup && (rc = cs__msg_add_model(&wm, &req, &cap, models[i])) != 0)
      goto done;
  }
  /* The codec wants sections sorted by name. */
  for (size_t i = 1; i < req.nmodels; i++)
    for (size_t j = i; j > 0 && strcmp(req.models[j - 1].name, req.models[j].name) > 0; j--) {
      cs_wire_model t = req.models[j];
      req.models[j] = req.models[j - 1];
      req.models[j - 1] = t;
    }
  if (last) {
    CS_LOCK(s);
    rc = last_cursor(&since, s, peer_known(s, peer), &req);
    CS_UNLOCK(s);
    if (rc)
      goto done;
  }
  rc = pull_once(out, &cursor, s, peer, &req, since, last ? &stale : NULL);
  if (rc == CS_EINVAL && last && since > 0) {
    /* The cursor kept for the replica this URL or store reached before is
     * unknown to the one it reaches now (recreated, or a copy): a whole pull
     * is always right. */
    cs__peer_forget(peer);
    since = 0;
    rc = pull_once(out, &cursor, s, peer, &req, 0, &stale);
  }
  if (rc)
    goto done;
  if (stale.nmodels) {
    /* Models pulled from an older cursor, or never: each from the lowest of
     * their own cursors (the answer is theirs, sorted as it came). */
    CS_LOCK(s);
    rc = last_cursor(&again, s, memo_get(peer), &stale);
    CS_UNLOCK(s);
    if (rc == 0)
      rc = pull_once(out, &again, s, peer, &stale, again, NULL);
    if (rc)
      goto done;
    /* The cursor good for every model this call brought. */
    if (again < cursor)
      cursor = again;
  }
  out->cursor = cursor;
  CS_LOCK(s);
  rc = finish_result(out, s);
  CS_UNLOCK(s);
done:
  cs__sync_msg_dispose(&req);
  cs__sync_msg_dispose(&stale);
  cs_sync_result_dispose(&local);
  return rc;
}

void cs_sync_result_dispose(cs_sync_result *r) {
  if (r)
    cs_buf_dispose(&r->conflicts);
}
