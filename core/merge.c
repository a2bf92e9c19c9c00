/*
 * Building and merging sync messages: what a peer lacks (log runs or whole
 * states), validation of what a peer sent beyond the codec's checks, and the
 * one-write merge. Shared by the serving side (serve.c) and the client
 * (sync.c); see sync.c for the protocol.
 */
#include <jansson.h>
#include <stdlib.h>

#include "core/engine.h"

/* ------------------------------------------------------------ peer records */

int cs__peer_ack_get(cs_dotset *out, cs_store *s, cs_replica peer, const char *model) {
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

int cs__peer_ack_put(cs_wbatch *b, cs_replica peer, const char *model, const cs_dotset *ack) {
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
int cs__collect_actions(cs_wire_model *wm, size_t *n_out, cs_store *s, cs_model *m,
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
int cs__collect_states(cs_wire_model *wm, cs_store *s, cs_model *m, uint64_t since) {
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

int cs__msg_add_model(cs_wire_model **out, cs_sync_msg *msg, size_t *cap, const char *name) {
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

static bool text_ok(const char *p, size_t len) {
  return cs__utf8_check(p, len) == len;
}

/* The first name or string of a document that is not UTF-8, or NULL. */
static const char *doc_bad_text(const cs_doc *d) {
  for (size_t f = 0; f < d->nfields; f++) {
    const cs_field *fl = &d->fields[f];
    if (!text_ok(fl->name, strlen(fl->name)))
      return "a field name";
    if (fl->kind == CS_KIND_REG) {
      for (size_t e = 0; e < fl->u.reg.len; e++)
        if (fl->u.reg.entries[e].val.type == CS_VAL_STR &&
            !text_ok(fl->u.reg.entries[e].val.u.s.ptr, fl->u.reg.entries[e].val.u.s.len))
          return "a string value";
    } else if (fl->kind == CS_KIND_SET) {
      for (size_t e = 0; e < fl->u.set.len; e++)
        if (fl->u.set.elems[e].val.type == CS_VAL_STR &&
            !text_ok(fl->u.set.elems[e].val.u.s.ptr, fl->u.set.elems[e].val.u.s.len))
          return "a string element";
    }
  }
  return NULL;
}

/* Is every entry of a whole state under a dot its sender's knowledge has?
 * The join relies on it: a local entry's dot is always in the local
 * context, which is how a small delta knows which entries it can remove. */
static bool state_within(const cs_doc *d, const cs_dotset *k) {
  for (size_t i = 0; i < d->nexist; i++)
    if (!cs__dotset_contains(k, d->exist[i].dot))
      return false;
  for (size_t f = 0; f < d->nfields; f++) {
    const cs_field *fl = &d->fields[f];
    if (fl->kind == CS_KIND_REG) {
      for (size_t e = 0; e < fl->u.reg.len; e++)
        if (!cs__dotset_contains(k, fl->u.reg.entries[e].dot))
          return false;
    } else if (fl->kind == CS_KIND_SET) {
      for (size_t e = 0; e < fl->u.set.len; e++)
        for (size_t q = 0; q < fl->u.set.elems[e].ndots; q++)
          if (!cs__dotset_contains(k, fl->u.set.elems[e].dots[q]))
            return false;
    }
  }
  return true;
}

/* Names and strings are UTF-8 (a document shown as JSON could not hold
 * them otherwise); whole states stay within their sender's knowledge. */
static int validate_section(const cs_wire_model *wm) {
  const char *bad;
  if (!text_ok(wm->name, strlen(wm->name)))
    return cs__error(CS_ECORRUPT, "a model name is not UTF-8");
  for (size_t i = 0; i < wm->ninstances; i++)
    if (!text_ok(wm->instances[i], strlen(wm->instances[i])))
      return cs__error(CS_ECORRUPT, "model '%s': instance %zu's name is not UTF-8", wm->name, i);
  for (size_t j = 0; j < wm->nactions; j++)
    if ((bad = doc_bad_text(&wm->actions[j].doc)) != NULL)
      return cs__error(CS_ECORRUPT, "model '%s', action %zu: %s is not UTF-8", wm->name, j, bad);
  for (size_t j = 0; j < wm->nstates; j++) {
    const char *inst = wm->instances[wm->states[j].instance];
    if ((bad = doc_bad_text(&wm->states[j].doc)) != NULL)
      return cs__error(CS_ECORRUPT, "model '%s', state of '%s': %s is not UTF-8", wm->name, inst,
                       bad);
    if (!state_within(&wm->states[j].doc, &wm->knowledge))
      return cs__error(CS_ECORRUPT,
                       "model '%s', state of '%s': an entry under a dot the sender's knowledge "
                       "lacks",
                       wm->name, inst);
  }
  return 0;
}

/* Checks what the codec cannot: text, clocks against ours, that every
 * action only writes entries under its own dots and every state stays
 * within its sender's knowledge. Runs before anything changes. */
int cs__validate_msg(cs_store *s, const cs_sync_msg *msg) {
  uint64_t now = cs__now_ms(), limit = now + s->opts.max_clock_skew_ms;
  int rc;

  if (CS_HLC_MS(msg->clock) > limit)
    return cs__error(CS_ECLOCK,
                     "peer %016llx: its clock is %llu ms ahead of ours (the limit is %llu ms)",
                     (unsigned long long)msg->sender,
                     (unsigned long long)(CS_HLC_MS(msg->clock) - now),
                     (unsigned long long)s->opts.max_clock_skew_ms);
  for (size_t i = 0; i < msg->nmodels; i++) {
    const cs_wire_model *wm = &msg->models[i];
    if ((rc = validate_section(wm)) != 0)
      return rc;
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
  cs_doc_slot **slots = NULL;
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
  /* Every instance of the section is in the cache now, and nothing else
   * joins it: look each one up once, not once per action. */
  if (wm->ninstances && (slots = cs__calloc(wm->ninstances, sizeof(*slots))) == NULL) {
    rc = CS_ENOMEM;
    goto done;
  }
  if ((rc = cs__cache_slots(slots, c, wm->instances, wm->ninstances)) != 0)
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
    slot = slots[a->instance];
    if ((rc = cs__doc_join(&slot->doc, &m->knowledge, &a->doc, &a->ctx)) != 0 ||
        (rc = cs__dotset_join(&m->knowledge, &a->ctx)) != 0)
      goto done;
    slot->dirty = true;
    cs__clock_observe(&s->clock, a->hlc, cs__now_ms());
    if (seg.wm.nactions && seg.origin != a->origin &&
        (rc = cs__segment_flush(&seg, ms->batch, m->name)) != 0)
      goto done;
    if ((rc = cs__segment_add(&seg, ms->batch, m->name, a, instance)) != 0)
      goto done;
    ms->applied++;
  }
  if ((rc = cs__segment_flush(&seg, ms->batch, m->name)) != 0)
    goto done;
  if (wm->nstates) {
    /* Whole states join against the sender's knowledge, all against our
     * context from before them; the contexts are joined afterwards. */
    for (size_t j = 0; j < wm->nstates; j++) {
      cs_doc_slot *slot = slots[wm->states[j].instance];
      if ((rc = cs__doc_join(&slot->doc, &m->knowledge, &wm->states[j].doc, &wm->knowledge)) != 0)
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
  cs__free(slots);
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
int cs__merge_msg(size_t *out_applied, cs_store *s, cs_sync_msg *msg, cs_replica ack_peer,
                     bool durable) {
  merge_state ms = {0};
  size_t nm = msg->nmodels;
  int rc;

  ms.store = s;
  if ((rc = cs__wbatch_new(&ms.batch, s->db)) != 0)
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
    if (ack_peer && (rc = cs__peer_ack_put(ms.batch, ack_peer, ms.models[i]->name,
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

