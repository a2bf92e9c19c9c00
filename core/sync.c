/*
 * The sync protocol (docs/guide.md, "How sync works").
 *
 * A sends, per model, its knowledge and the logged actions the peer lacks;
 * B validates the whole message, merges it in one write, and answers with its
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

/* ------------------------------------------------------------ peer records */

static int peer_ack_get(cs_dotset *out, cs_store *s, cs_replica peer, const char *model) {
  cs_buf key = CS_BUF_INIT, val = CS_BUF_INIT;
  int rc;

  if ((rc = cs__key_peer(&key, peer, model)) != 0)
    goto done;
  rc = cs__db_get(&val, s->db, CS_CF_PEERS, key.ptr, key.size);
  if (rc == 0)
    rc = cs__codec_decode_dotset(out, (const uint8_t *)val.ptr, val.size);
  else if (rc == CS_ENOTFOUND)
    rc = 0;
done:
  cs_buf_dispose(&key);
  cs_buf_dispose(&val);
  return rc;
}

static int peer_ack_put(cs_wbatch *b, cs_replica peer, const char *model, const cs_dotset *ack) {
  cs_buf key = CS_BUF_INIT, val = CS_BUF_INIT;
  int rc;
  if ((rc = cs__key_peer(&key, peer, model)) == 0 && (rc = cs__codec_encode_dotset(&val, ack)) == 0)
    cs__wbatch_put(b, CS_CF_PEERS, key.ptr, key.size, val.ptr, val.size);
  cs_buf_dispose(&key);
  cs_buf_dispose(&val);
  return rc;
}

/* ---------------------------------------------------------- building msgs */

/* Adds to wm every logged action of model m that `peer_knows` does not cover. */
static int collect_actions(cs_wire_model *wm, size_t *n_out, cs_store *s, cs_model *m,
                           const cs_dotset *peer_knows) {
  cs_buf lo = CS_BUF_INIT, hi = CS_BUF_INIT, seek = CS_BUF_INIT;
  size_t inst_cap = wm->ninstances, act_cap = wm->nactions;
  cs_intern table = {0};
  cs_iter *it = NULL;
  int rc;

  /* Existing table entries (none in practice) keep their indexes. */
  if ((rc = cs__key_name(&lo, m->name)) != 0 || (rc = cs__key_name(&hi, m->name)) != 0 ||
      (rc = cs__key_u64(&hi, UINT64_MAX)) != 0 || (rc = cs__key_u64(&hi, UINT64_MAX)) != 0 ||
      (rc = cs__buf_putc(&hi, 0)) != 0)
    goto done;
  if ((rc = cs__iter_new(&it, s->db, CS_CF_LOG, lo.ptr, lo.size, hi.ptr, hi.size)) != 0)
    goto done;
  cs__iter_seek(it, lo.ptr, lo.size);
  while (cs__iter_valid(it)) {
    cs_bytes k = cs__iter_key(it), v = cs__iter_value(it);
    size_t pos = lo.size;
    uint64_t origin, last, known;
    cs_wire_action *a;
    char *instance = NULL;

    if ((rc = cs__key_read_u64(&origin, k.ptr, k.len, &pos)) != 0 ||
        (rc = cs__key_read_u64(&last, k.ptr, k.len, &pos)) != 0)
      goto done;
    known = cs__dotset_max(peer_knows, origin);
    if (last <= known) {
      /* The peer has this origin up to `known`: skip to what follows. */
      if (known == UINT64_MAX)
        break;
      cs__buf_clear(&seek);
      if ((rc = cs__buf_put(&seek, lo.ptr, lo.size)) != 0 ||
          (rc = cs__key_u64(&seek, origin)) != 0 || (rc = cs__key_u64(&seek, known + 1)) != 0)
        goto done;
      cs__iter_seek(it, seek.ptr, seek.size);
      continue;
    }
    /* A run of this origin's actions: send those the peer lacks. */
    cs_sync_msg seg;
    if ((rc = cs__segment_decode(&seg, v.ptr, v.len)) != 0) {
      cs__error_wrap(rc, "log of model '%s', origin %016llx, run ending at dot %llu: ", m->name,
                     (unsigned long long)origin, (unsigned long long)last);
      goto done;
    }
    cs_wire_model *sm = &seg.models[0];
    for (size_t j = 0; j < sm->nactions && rc == 0; j++) {
      cs_wire_action *sa = &sm->actions[j];
      bool all_known = true;
      for (uint64_t c = sa->first; c <= sa->last && all_known; c++)
        all_known = cs__dotset_contains(peer_knows, (cs_dot){sa->origin, c});
      if (all_known)
        continue;
      if ((rc = cs__array_grow((void **)&wm->actions, &act_cap, wm->nactions + 1,
                               sizeof(cs_wire_action))) != 0)
        break;
      a = &wm->actions[wm->nactions];
      *a = *sa;
      memset(sa, 0, sizeof(*sa)); /* moved */
      wm->nactions++;
      if ((instance = cs__strdup(sm->instances[a->instance])) == NULL)
        rc = CS_ENOMEM;
      else
        rc = cs__intern(&a->instance, &table, wm, &inst_cap, instance);
    }
    cs__sync_msg_dispose(&seg);
    if (rc)
      goto done;
    cs__iter_next(it);
  }
  rc = cs__iter_status(it);
done:
  if (n_out)
    *n_out = wm->nactions;
  cs__intern_dispose(&table);
  cs__iter_free(it);
  cs_buf_dispose(&lo);
  cs_buf_dispose(&hi);
  cs_buf_dispose(&seek);
  return rc;
}

static int cmp_instance_states(const void *a, const void *b, void *names) {
  char **n = names;
  return strcmp(n[((const cs_wire_state *)a)->instance], n[((const cs_wire_state *)b)->instance]);
}

/* qsort has no context pointer in C11: sort indexes by name with a small
 * merge sort instead. */
static void sort_states(cs_wire_state *st, size_t n, char **names, cs_wire_state *tmp) {
  if (n < 2)
    return;
  size_t h = n / 2;
  sort_states(st, h, names, tmp);
  sort_states(st + h, n - h, names, tmp);
  size_t i = 0, j = h, k = 0;
  while (i < h && j < n)
    tmp[k++] = cmp_instance_states(&st[i], &st[j], names) <= 0 ? st[i++] : st[j++];
  while (i < h)
    tmp[k++] = st[i++];
  while (j < n)
    tmp[k++] = st[j++];
  memcpy(st, tmp, n * sizeof(*st));
}

/*
 * Adds whole document states of model m to wm: every document when
 * since == 0 and `all`, else those changed after cursor `since`.
 */
static int collect_states(cs_wire_model *wm, cs_store *s, cs_model *m, uint64_t since) {
  cs_buf lo = CS_BUF_INIT, hi = CS_BUF_INIT;
  size_t inst_cap = wm->ninstances, st_cap = 0;
  cs_intern table = {0};
  cs_wire_state *tmp = NULL;
  cs_iter *it = NULL;
  int rc;

  if ((rc = cs__key_change(&lo, m->name, since + 1)) != 0 ||
      (rc = cs__key_change(&hi, m->name, UINT64_MAX)) != 0 ||
      (rc = cs__iter_new(&it, s->db, CS_CF_CHANGES, lo.ptr, lo.size, hi.ptr, hi.size)) != 0)
    goto done;
  for (; cs__iter_valid(it); cs__iter_next(it)) {
    cs_bytes v = cs__iter_value(it);
    char *instance = cs__strndup((const char *)v.ptr, v.len);
    cs_wire_state *st;
    if (!instance) {
      rc = CS_ENOMEM;
      goto done;
    }
    if ((rc = cs__array_grow((void **)&wm->states, &st_cap, wm->nstates + 1,
                             sizeof(cs_wire_state))) != 0) {
      cs__free(instance);
      goto done;
    }
    st = &wm->states[wm->nstates];
    memset(st, 0, sizeof(*st));
    if ((rc = cs__doc_read(&st->doc, NULL, s, m->name, instance)) != 0) {
      cs__free(instance);
      goto done;
    }
    wm->nstates++;
    if ((rc = cs__intern(&st->instance, &table, wm, &inst_cap, instance)) != 0)
      goto done;
  }
  if ((rc = cs__iter_status(it)) != 0)
    goto done;
  if (wm->nstates > 1) {
    if ((tmp = cs__calloc(wm->nstates, sizeof(*tmp))) == NULL) {
      rc = CS_ENOMEM;
      goto done;
    }
    sort_states(wm->states, wm->nstates, wm->instances, tmp);
  }
done:
  cs__free(tmp);
  cs__intern_dispose(&table);
  cs__iter_free(it);
  cs_buf_dispose(&lo);
  cs_buf_dispose(&hi);
  return rc;
}

static int msg_add_model(cs_wire_model **out, cs_sync_msg *msg, size_t *cap, const char *name) {
  cs_wire_model *wm;
  int rc;
  if ((rc = cs__array_grow((void **)&msg->models, cap, msg->nmodels + 1, sizeof(*wm))) != 0)
    return rc;
  wm = &msg->models[msg->nmodels];
  memset(wm, 0, sizeof(*wm));
  if ((wm->name = cs__strdup(name)) == NULL)
    return CS_ENOMEM;
  msg->nmodels++;
  *out = wm;
  return 0;
}

/* ----------------------------------------------------------- validation */

/* Dots an action may own beyond one per entry (a dot taken for an action
 * that names no entry, writes replaced within the action). */
#define CS_ACTION_SLACK_DOTS 4096

static size_t count_entries(const cs_doc *d) {
  size_t n = d->nexist;
  for (size_t f = 0; f < d->nfields; f++) {
    const cs_field *fl = &d->fields[f];
    if (fl->kind == CS_KIND_REG)
      n += fl->u.reg.len;
    else if (fl->kind == CS_KIND_SET)
      for (size_t e = 0; e < fl->u.set.len; e++)
        n += fl->u.set.elems[e].ndots;
  }
  return n;
}

/* Checks what the codec cannot: clocks against ours, and that every action
 * only writes entries under its own dots. Runs before anything changes. */
static int validate_msg(cs_store *s, const cs_sync_msg *msg) {
  uint64_t now = cs__now_ms(), limit = now + s->opts.max_clock_skew_ms;

  if (CS_HLC_MS(msg->clock) > limit)
    return cs__error(CS_ECLOCK,
                     "peer %016llx: its clock is %llu ms ahead of ours (the limit is %llu ms)",
                     (unsigned long long)msg->sender,
                     (unsigned long long)(CS_HLC_MS(msg->clock) - now),
                     (unsigned long long)s->opts.max_clock_skew_ms);
  for (size_t i = 0; i < msg->nmodels; i++) {
    const cs_wire_model *wm = &msg->models[i];
    for (size_t j = 0; j < wm->nactions; j++) {
      const cs_wire_action *a = &wm->actions[j];
      const cs_doc *d = &a->doc;
      if (CS_HLC_MS(a->hlc) > limit)
        return cs__error(CS_ECLOCK,
                         "model '%s', action %zu (origin %016llx): stamped %llu ms ahead of our "
                         "clock (the limit is %llu ms)",
                         wm->name, j, (unsigned long long)a->origin,
                         (unsigned long long)(CS_HLC_MS(a->hlc) - now),
                         (unsigned long long)s->opts.max_clock_skew_ms);
      /* Bound the range before walking it: a forged action could claim
       * 2^60 dots that a compact context makes look plausible. */
      size_t entries = count_entries(d);
      if (a->last < a->first || a->last - a->first >= entries + CS_ACTION_SLACK_DOTS)
        return cs__error(CS_ECORRUPT,
                         "model '%s', action %zu: %llu dots for %zu entries is not plausible",
                         wm->name, j, (unsigned long long)(a->last - a->first + 1), entries);
      for (uint64_t c = a->first; c <= a->last; c++)
        if (!cs__dotset_contains(&a->ctx, (cs_dot){a->origin, c}))
          return cs__error(CS_ECORRUPT, "model '%s', action %zu: context lacks its own dot %llu",
                           wm->name, j, (unsigned long long)c);
      /* Every entry under one of the action's own dots, each dot used once
       * (the join relies on a dot naming a single entry). */
      size_t span = (size_t)(a->last - a->first + 1);
      uint8_t *seen = cs__calloc((span + 7) / 8, 1);
      if (!seen)
        return CS_ENOMEM;
      bool ok = true;
#define OWN_DOT(dt)                                                                                \
  ((dt).replica == a->origin && (dt).counter >= a->first && (dt).counter <= a->last &&           \
   !(seen[((dt).counter - a->first) / 8] & (1u << (((dt).counter - a->first) % 8))) &&            \
   (seen[((dt).counter - a->first) / 8] |= (uint8_t)(1u << (((dt).counter - a->first) % 8))))
      for (size_t e = 0; e < d->nexist && ok; e++)
        ok = OWN_DOT(d->exist[e].dot);
      for (size_t f = 0; f < d->nfields && ok; f++) {
        const cs_field *fl = &d->fields[f];
        if (fl->kind == CS_KIND_REG) {
          for (size_t e = 0; e < fl->u.reg.len && ok; e++)
            ok = OWN_DOT(fl->u.reg.entries[e].dot);
        } else if (fl->kind == CS_KIND_SET) {
          for (size_t e = 0; e < fl->u.set.len && ok; e++)
            for (size_t k = 0; k < fl->u.set.elems[e].ndots && ok; k++)
              ok = OWN_DOT(fl->u.set.elems[e].dots[k]);
        } else if (fl->kind == CS_KIND_CTR) {
          for (size_t e = 0; e < fl->u.ctr.len && ok; e++)
            ok = fl->u.ctr.entries[e].replica == a->origin;
        }
      }
#undef OWN_DOT
      cs__free(seen);
      if (!ok)
        goto foreign;
      continue;
    foreign:
      return cs__error(CS_ECORRUPT,
                       "model '%s', action %zu (origin %016llx, dots %llu..%llu): writes an entry "
                       "under a dot that is not its own, or under one dot twice",
                       wm->name, j, (unsigned long long)a->origin, (unsigned long long)a->first,
                       (unsigned long long)a->last);
    }
  }
  return 0;
}

/* ---------------------------------------------------------------- merging */

typedef struct merge_state {
  cs_store *store;
  cs_wbatch *batch;
  cs_doc_cache *caches;
  size_t ncaches;
  cs_model **models;
  size_t applied;
  bool floor_dirty;
} merge_state;

static void merge_dispose(merge_state *ms) {
  for (size_t i = 0; i < ms->ncaches; i++)
    cs__cache_dispose(&ms->caches[i]);
  cs__free(ms->caches);
  cs__free(ms->models);
  cs__wbatch_free(ms->batch);
}

/* Merges one model section. Applied actions are moved out of `wm` into the
 * log, one run per origin (the message is dropped afterwards anyway). */
static int merge_section(merge_state *ms, cs_wire_model *wm, cs_doc_cache *c) {
  cs_store *s = ms->store;
  cs_model *m = c->model;
  cs_dotset before = CS_DOTSET_INIT;
  cs_segment seg;
  int rc;

  cs__segment_init(&seg);
  /*
   * Duplicates are judged against what we knew BEFORE this message. Within
   * it, an action applied first may cover the dots of another (a delete
   * covering the existence entry an increment wrote): those dots are then
   * known, but the other action's own effects (its counter entries, the
   * entries its context removes) are not applied yet. A sender always sends
   * every action whose dots we lacked, so a dot known before the message
   * means its action was applied.
   */
  if ((rc = cs__dotset_copy(&before, &m->knowledge)) != 0 ||
      (rc = cs__cache_prefetch(c, s, wm->instances, wm->ninstances)) != 0)
    goto done;
  for (size_t j = 0; j < wm->nactions; j++) {
    cs_wire_action *a = &wm->actions[j];
    const char *instance = wm->instances[a->instance];
    cs_doc_slot *slot;
    bool all_known = true;
    for (uint64_t k = a->first; k <= a->last && all_known; k++)
      all_known = cs__dotset_contains(&before, (cs_dot){a->origin, k});
    if (all_known)
      continue; /* a duplicate: joins are idempotent, skip the work */
    if ((rc = cs__cache_get(&slot, c, s, instance)) != 0 ||
        (rc = cs__doc_join(&slot->doc, &m->knowledge, &a->doc, &a->ctx)) != 0 ||
        (rc = cs__dotset_join(&m->knowledge, &a->ctx)) != 0)
      goto done;
    slot->dirty = true;
    cs__clock_observe(&s->clock, a->hlc, cs__now_ms());
    if (seg.wm.nactions && seg.origin != a->origin &&
        (rc = cs__segment_flush(&seg, ms->batch, m->name)) != 0)
      goto done;
    if ((rc = cs__segment_add(&seg, a, instance)) != 0)
      goto done;
    ms->applied++;
  }
  if ((rc = cs__segment_flush(&seg, ms->batch, m->name)) != 0)
    goto done;
  if (wm->nstates) {
    /* Whole states join against the sender's knowledge, all against our
     * context from before them; the contexts are joined afterwards. */
    for (size_t j = 0; j < wm->nstates; j++) {
      cs_doc_slot *slot;
      if ((rc = cs__cache_get(&slot, c, s, wm->instances[wm->states[j].instance])) != 0 ||
          (rc = cs__doc_join(&slot->doc, &m->knowledge, &wm->states[j].doc, &wm->knowledge)) != 0)
        goto done;
      slot->dirty = true;
      ms->applied++;
    }
  }
  if (wm->nstates || !cs__dotset_subset(&wm->knowledge, &m->knowledge)) {
    /* What the sender knows without having sent it as actions can only be
     * claimed when states were sent; otherwise knowledge grows by the
     * actions' contexts alone (already joined above). */
    if (wm->nstates) {
      if ((rc = cs__dotset_join(&m->knowledge, &wm->knowledge)) != 0 ||
          (rc = cs__dotset_join(&m->floor, &wm->knowledge)) != 0)
        goto done;
      ms->floor_dirty = true;
    }
  }
done:
  cs__segment_dispose(&seg);
  cs__dotset_dispose(&before);
  return rc;
}

static int put_floor(cs_wbatch *b, const cs_model *m) {
  cs_buf key = CS_BUF_INIT, val = CS_BUF_INIT;
  int rc;
  if ((rc = cs__buf_printf(&key, "floor/%s", m->name)) == 0 &&
      (rc = cs__codec_encode_dotset(&val, &m->floor)) == 0)
    cs__wbatch_put(b, CS_CF_META, key.ptr, key.size, val.ptr, val.size);
  cs_buf_dispose(&key);
  cs_buf_dispose(&val);
  return rc;
}

/*
 * Merges a validated message into the store in one write.
 * `ack_peer` != 0: record each section's knowledge as what that peer has.
 * `durable`: fsync the write. A server must (its answer acknowledges what it
 * merged); a client merging an answer need not: if the write is lost, the
 * acknowledgement recorded in the same batch is lost with it, and the next
 * sync asks for the same actions again.
 */
static int merge_msg(size_t *out_applied, cs_store *s, cs_sync_msg *msg, cs_replica ack_peer,
                     bool durable) {
  merge_state ms = {0};
  size_t nm = msg->nmodels;
  int rc;

  ms.store = s;
  if ((rc = cs__wbatch_new(&ms.batch)) != 0)
    goto done;
  if ((ms.caches = cs__calloc(nm ? nm : 1, sizeof(cs_doc_cache))) == NULL ||
      (ms.models = cs__calloc(nm ? nm : 1, sizeof(cs_model *))) == NULL) {
    rc = CS_ENOMEM;
    goto done;
  }
  /* Create every model first: creating one may move the others in memory. */
  for (size_t i = 0; i < nm; i++) {
    cs_model *m;
    if ((rc = cs__model_get(&m, s, msg->models[i].name)) != 0)
      goto done;
  }
  for (size_t i = 0; i < nm; i++) {
    ms.models[i] = cs__model_find(s, msg->models[i].name);
    if ((rc = cs__cache_init(&ms.caches[i], ms.models[i], msg->models[i].ninstances)) != 0)
      goto fail;
    ms.ncaches++;
  }
  for (size_t i = 0; i < nm; i++)
    if ((rc = merge_section(&ms, &msg->models[i], &ms.caches[i])) != 0)
      goto fail;
  for (size_t i = 0; i < nm; i++) {
    if ((rc = cs__cache_flush(&ms.caches[i], s, ms.batch)) != 0)
      goto fail;
    if (ack_peer && (rc = peer_ack_put(ms.batch, ack_peer, ms.models[i]->name,
                                       &msg->models[i].knowledge)) != 0)
      goto fail;
    if (ms.floor_dirty && (rc = put_floor(ms.batch, ms.models[i])) != 0)
      goto fail;
  }
  if ((rc = cs__store_put_meta(s, ms.batch, ms.models, nm)) != 0 ||
      (rc = cs__db_write(s->db, ms.batch, durable)) != 0)
    goto fail;
  if (out_applied)
    *out_applied = ms.applied;
  goto done;
fail:
  for (size_t i = 0; i < ms.ncaches; i++)
    cs__model_reload(s, ms.models[i]);
done:
  merge_dispose(&ms);
  return rc;
}

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
      (rc = cs__wbatch_new(&b)) == 0) {
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
  if ((rc = merge_msg(NULL, s, req, req->sender, s->opts.durability == CS_DURABILITY_SYNC)) != 0)
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
    if ((rc = msg_add_model(&wm, &resp, &cap, m->name)) != 0 ||
        (rc = cs__dotset_copy(&wm->knowledge, &m->knowledge)) != 0)
      goto done;
    if (!cs__dotset_subset(&m->floor, knows)) {
      /* Our log no longer holds everything they lack: send states. */
      resp.flags |= CS_MSG_F_STATES;
      rc = collect_states(wm, s, m, 0);
    } else
      rc = collect_actions(wm, NULL, s, m, knows);
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
    if ((rc = msg_add_model(&wm, &resp, &cap, m->name)) != 0 ||
        (rc = cs__dotset_copy(&wm->knowledge, &m->knowledge)) != 0 ||
        (rc = collect_states(wm, s, m, req->cursor)) != 0)
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
    rc = validate_msg(s, &req);
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

/* ------------------------------------------------------------ the client */

static bool pk_found(const cs_sync_msg *msg, const char *model) {
  for (size_t j = 0; j < msg->nmodels; j++)
    if (strcmp(msg->models[j].name, model) == 0)
      return true;
  return false;
}

/* A sync request: our knowledge of every model, with the actions the peer
 * lacks as far as we know what it has (nothing known: knowledge only). */
static int build_request(cs_buf *out, size_t *out_sent, cs_store *s, cs_replica peer,
                         const cs_sync_msg *peer_knows) {
  cs_sync_msg req = {0};
  size_t cap = 0, sent = 0;
  int rc = 0;

  req.type = CS_MSG_SYNC_REQUEST;
  req.sender = s->self;
  req.clock = cs__clock_tick(&s->clock, cs__now_ms());
  for (size_t i = 0; i < s->nmodels; i++) {
    cs_model *m = &s->models[i];
    cs_dotset ack = CS_DOTSET_INIT;
    cs_wire_model *wm;
    size_t n = 0;
    if ((rc = msg_add_model(&wm, &req, &cap, m->name)) != 0 ||
        (rc = cs__dotset_copy(&wm->knowledge, &m->knowledge)) != 0)
      goto done;
    if (peer_knows) {
      const cs_wire_model *pk = NULL;
      for (size_t j = 0; j < peer_knows->nmodels; j++)
        if (strcmp(peer_knows->models[j].name, m->name) == 0)
          pk = &peer_knows->models[j];
      if (pk)
        rc = cs__dotset_copy(&ack, &pk->knowledge);
    } else if (peer)
      rc = peer_ack_get(&ack, s, peer, m->name);
    /* A model missing from the peer's answer is one it does not share with
     * us: nothing to send for it in a later round. */
    if (rc == 0 && (peer || peer_knows) && !(peer_knows && !pk_found(peer_knows, m->name)))
      rc = collect_actions(wm, &n, s, m, &ack);
    cs__dotset_dispose(&ack);
    if (rc)
      goto done;
    sent += n;
  }
  rc = cs__codec_encode_msg(out, &req);
  *out_sent = sent;
done:
  cs__sync_msg_dispose(&req);
  return rc;
}

/* Flushes a run [lo, hi] of acknowledged outbox sequence numbers: one
 * range tombstone instead of a delete per entry. */
static void outbox_drop_run(cs_wbatch *b, uint64_t lo, uint64_t hi) {
  uint8_t begin[8], end[8];
  cs__put_be64(begin, lo);
  cs__put_be64(end, hi + 1);
  if (hi == lo)
    cs__wbatch_delete(b, CS_CF_OUTBOX, begin, 8);
  else
    cs__wbatch_delete_range(b, CS_CF_OUTBOX, begin, 8, end, 8);
}

/* Drops outbox entries that the peer's answer says it has. */
static int outbox_ack(size_t *out_dropped, cs_store *s, const cs_sync_msg *resp) {
  cs_iter *it = NULL;
  cs_wbatch *b = NULL;
  size_t dropped = 0;
  uint64_t run_lo = 0, run_hi = 0;
  int rc;

  if ((rc = cs__wbatch_new(&b)) != 0 ||
      (rc = cs__iter_new(&it, s->db, CS_CF_OUTBOX, NULL, 0, NULL, 0)) != 0)
    goto done;
  for (; cs__iter_valid(it); cs__iter_next(it)) {
    cs_bytes k = cs__iter_key(it), v = cs__iter_value(it);
    cs_outbox_view ov;
    bool acked = false;
    if (k.len != 8) {
      rc = cs__error(CS_ECORRUPT, "outbox key of %zu bytes (expected 8)", k.len);
      goto done;
    }
    if ((rc = cs__outbox_decode(&ov, v.ptr, v.len)) != 0)
      goto done;
    for (size_t i = 0; i < resp->nmodels && !acked; i++) {
      const char *name = resp->models[i].name;
      if (strlen(name) != ov.model_len || memcmp(name, ov.model, ov.model_len) != 0)
        continue;
      acked = true;
      for (uint64_t c = ov.first; c <= ov.last && acked; c++)
        acked = cs__dotset_contains(&resp->models[i].knowledge, (cs_dot){ov.origin, c});
    }
    uint64_t seq = cs__get_be64(k.ptr);
    if (acked) {
      if (run_lo && seq == run_hi + 1)
        run_hi = seq;
      else {
        if (run_lo)
          outbox_drop_run(b, run_lo, run_hi);
        run_lo = run_hi = seq;
      }
      dropped++;
    } else if (run_lo) {
      outbox_drop_run(b, run_lo, run_hi);
      run_lo = 0;
    }
  }
  if (run_lo)
    outbox_drop_run(b, run_lo, run_hi);
  if ((rc = cs__iter_status(it)) == 0 && dropped)
    rc = cs__db_write(s->db, b, false);
done:
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
 * answer's knowledge always tells what is still missing. */
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

static int exchange(cs_sync_msg *out, size_t *bytes_in, cs_peer *peer, const char *path,
                    const cs_buf *req, uint8_t want_type) {
  cs_buf resp = CS_BUF_INIT;
  int rc;

  if (!peer || peer->version != CS_PEER_VERSION || !peer->exchange)
    return cs__error(CS_EINVAL, "peer is not a version %d cs_peer", CS_PEER_VERSION);
  if ((rc = peer->exchange(peer, &resp, path, (const uint8_t *)req->ptr, req->size)) != 0)
    goto done;
  *bytes_in += resp.size;
  if ((rc = cs__codec_decode_msg(out, (const uint8_t *)resp.ptr, resp.size)) != 0) {
    cs__error_wrap(rc, "peer's answer: ");
    goto done;
  }
  if (out->type != want_type)
    rc = cs__error(CS_ECORRUPT, "peer answered with message type %d, expected %d", out->type,
                   want_type);
done:
  cs_buf_dispose(&resp);
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
  cs_buf req = CS_BUF_INIT;
  bool have_prev = false;
  int rc = 0;

  if (!out)
    out = &local;
  for (int round = 0; round < 3; round++) {
    size_t sent = 0, applied = 0, dropped = 0;
    cs__buf_clear(&req);
    CS_LOCK(s);
    rc = build_request(&req, &sent, s, have_prev ? 0 : memo_get(peer), have_prev ? &prev : NULL);
    CS_UNLOCK(s);
    if (rc)
      goto done;
    out->bytes_sent += req.size;
    cs__sync_msg_dispose(&resp);
    memset(&resp, 0, sizeof(resp));
    if ((rc = exchange(&resp, &out->bytes_received, peer, "/v1/sync", &req,
                       CS_MSG_SYNC_RESPONSE)) != 0)
      goto done;
    CS_LOCK(s);
    rc = validate_msg(s, &resp);
    if (rc == 0)
      rc = merge_msg(&applied, s, &resp, resp.sender, false);
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
  CS_LOCK(s);
  rc = finish_result(out, s);
  CS_UNLOCK(s);
done:
  cs__sync_msg_dispose(&resp);
  cs__sync_msg_dispose(&prev);
  cs_buf_dispose(&req);
  cs_sync_result_dispose(&local);
  return rc;
}

/* ----------------------------------------------------------- partial sync */

static int pcursor_key(cs_buf *key, cs_replica peer, const char *model) {
  return cs__buf_printf(key, "pcursor/%016llx/%s", (unsigned long long)peer, model);
}

int cs_partial_sync(cs_sync_result *out, cs_store *s, cs_peer *peer, uint64_t since,
                    const char *const *models, size_t nmodels) {
  cs_sync_result local = CS_SYNC_RESULT_INIT;
  cs_sync_msg req = {0}, resp = {0};
  cs_buf reqb = CS_BUF_INIT, key = CS_BUF_INIT, val = CS_BUF_INIT;
  cs_wbatch *b = NULL;
  size_t cap = 0, applied = 0;
  int rc = 0;

  if (!out)
    out = &local;
  req.type = CS_MSG_PULL_REQUEST;
  req.cursor = since;
  for (size_t i = 0; i < nmodels; i++) {
    cs_wire_model *wm;
    bool dup = false;
    if (!models[i] || !*models[i]) {
      rc = cs__error(CS_EINVAL, "partialSync: model %zu is empty", i);
      goto done;
    }
    for (size_t j = 0; j < i; j++)
      dup |= strcmp(models[i], models[j]) == 0;
    if (!dup && (rc = msg_add_model(&wm, &req, &cap, models[i])) != 0)
      goto done;
  }
  /* The codec wants sections sorted by name. */
  for (size_t i = 1; i < req.nmodels; i++)
    for (size_t j = i; j > 0 && strcmp(req.models[j - 1].name, req.models[j].name) > 0; j--) {
      cs_wire_model t = req.models[j];
      req.models[j] = req.models[j - 1];
      req.models[j - 1] = t;
    }
  CS_LOCK(s);
  req.sender = s->self;
  req.clock = cs__clock_tick(&s->clock, cs__now_ms());
  CS_UNLOCK(s);
  if ((rc = cs__codec_encode_msg(&reqb, &req)) != 0)
    goto done;
  out->bytes_sent += reqb.size;
  if ((rc = exchange(&resp, &out->bytes_received, peer, "/v1/pull", &reqb,
                     CS_MSG_PULL_RESPONSE)) != 0)
    goto done;
  CS_LOCK(s);
  /* A cursor is only good for the peer (and models) that issued it: a wrong
   * one would make us claim knowledge of documents we never received. */
  for (size_t i = 0; i < resp.nmodels && rc == 0 && since > 0; i++) {
    uint64_t issued = 0;
    cs__buf_clear(&key);
    cs__buf_clear(&val);
    if ((rc = pcursor_key(&key, resp.sender, resp.models[i].name)) != 0)
      break;
    rc = cs__db_get(&val, s->db, CS_CF_META, key.ptr, key.size);
    if (rc == 0 && val.size == 8)
      issued = cs__get_be64((const uint8_t *)val.ptr);
    if (rc == CS_ENOTFOUND || rc == 0) {
      rc = 0;
      if (since > issued)
        rc = cs__error(CS_EINVAL,
                       "partialSync: cursor %llu was not issued to this store by peer %016llx for "
                       "model '%s' (last issued: %llu); pass 0 for a full pull",
                       (unsigned long long)since, (unsigned long long)resp.sender,
                       resp.models[i].name, (unsigned long long)issued);
    }
  }
  if (rc == 0)
    rc = validate_msg(s, &resp);
  if (rc == 0)
    rc = merge_msg(&applied, s, &resp, 0, false);
  if (rc == 0 && (rc = cs__wbatch_new(&b)) == 0) {
    uint8_t be[8];
    cs__put_be64(be, resp.cursor);
    for (size_t i = 0; i < resp.nmodels && rc == 0; i++) {
      cs__buf_clear(&key);
      if ((rc = pcursor_key(&key, resp.sender, resp.models[i].name)) == 0)
        cs__wbatch_put(b, CS_CF_META, key.ptr, key.size, be, 8);
    }
    if (rc == 0)
      rc = cs__db_write(s->db, b, false);
  }
  if (rc == 0) {
    out->received += applied;
    out->synced_count += applied;
    out->cursor = resp.cursor;
    rc = finish_result(out, s);
  }
  CS_UNLOCK(s);
done:
  cs__wbatch_free(b);
  cs__sync_msg_dispose(&req);
  cs__sync_msg_dispose(&resp);
  cs_buf_dispose(&reqb);
  cs_buf_dispose(&key);
  cs_buf_dispose(&val);
  cs_sync_result_dispose(&local);
  return rc;
}

void cs_sync_result_dispose(cs_sync_result *r) {
  if (r)
    cs_buf_dispose(&r->conflicts);
}
