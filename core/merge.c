/*
 * Building and merging sync messages: what a peer lacks (log runs or whole
 * states), and the one-write merge of what a peer sent, part by part as it
 * is decoded (checked by validate.c). Shared by the serving side (serve.c)
 * and the client (sync.c); see sync.c for the protocol.
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

/* A test switch: when false, the collecting pass decodes every run. */
bool cs__log_runs_by_tables = true;

/*
 * The collecting pass over a run the peer lacks entirely (it has none of
 * the run's dots first..last) needs only the run's tables and instance
 * table: its actions are not decoded. *taken is false when the run must be
 * read action by action: it has another shape, the peer has part of it, or
 * its bytes do not read (the full decode then reports the damage).
 */
static int collect_run(bool *taken, cs_log_source *ls, cs_tables_fn tables, void *fnarg,
                       cs_replica origin, uint64_t last, cs_bytes v) {
  cs_run_peek pk;
  int rc = cs__codec_peek_run(&pk, (const uint8_t *)v.ptr, v.len);

  *taken = false;
  if (rc != 0) {
    if (rc != CS_ENOMEM)
      rc = 0;
    goto done;
  }
  if (!pk.simple || pk.t.origin != origin ||
      cs__dotset_any_in(&ls->peer_knows, origin, pk.first, last))
    goto done;
  for (size_t i = 0; i < pk.ninstances && rc == 0; i++) {
    uint32_t idx;
    rc = cs__intern_copy(&idx, &ls->table, ls->wm, &ls->inst_cap, pk.instances[i]);
  }
  if (rc == 0)
    rc = tables(fnarg, &pk.t);
  if (rc == 0)
    ls->count += pk.t.nactions;
  *taken = true;
done:
  cs__run_peek_dispose(&pk);
  return rc;
}

/* Names the log run a failure came from. */
static void run_error(int rc, const cs_model *m, uint64_t origin, uint64_t last) {
  cs__error_wrap(rc, "log of model '%s', origin %016llx, run ending at dot %llu: ", m->name,
                 (unsigned long long)origin, (unsigned long long)last);
}

/* One action of a log run: to the encoder, unless the peer has it. */
static int serve_logged(void *arg, const cs_wire_model *sm, cs_wire_action *a) {
  cs_log_source *ls = arg;
  const char *name = sm->instances[a->instance];
  bool all_known = true;
  int rc = 0;

  for (uint64_t c = a->first; c <= a->last && all_known; c++)
    all_known = cs__dotset_contains(&ls->peer_knows, (cs_dot){a->origin, c});
  if (all_known)
    return 0;
  if (ls->first_pass) {
    rc = cs__intern_copy(&a->instance, &ls->table, ls->wm, &ls->inst_cap, name);
    ls->count++;
  } else if (!cs__intern_find(&a->instance, &ls->table, name)) {
    rc = cs__error(CS_EINTERNAL, "log of model '%s': instance '%s' appeared between passes",
                   ls->model->name, name);
  }
  if (rc == 0)
    rc = ls->fn(ls->fnarg, a);
  ls->failed = rc != 0;
  return rc;
}

/*
 * Hands fn every logged action of the source's model that the peer lacks;
 * in the collecting pass (tables set), a run the peer lacks entirely goes
 * to `tables` instead, described by its tables.
 */
static int log_each(void *arg, cs_action_fn fn, cs_tables_fn tables, void *fnarg) {
  cs_log_source *ls = arg;
  cs_store *s = ls->store;
  cs_model *m = ls->model;
  const cs_dotset *peer_knows = &ls->peer_knows;
  cs_buf lo = CS_BUF_INIT, hi = CS_BUF_INIT, seek = CS_BUF_INIT;
  bool first_pass = ls->passes++ == 0;
  cs_iter *it = NULL;
  int rc;

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
    /* A run of this origin's actions: hand over those the peer lacks. */
    if (first_pass && tables && cs__log_runs_by_tables) {
      bool taken;
      if ((rc = collect_run(&taken, ls, tables, fnarg, origin, last, v)) != 0) {
        run_error(rc, m, origin, last);
        goto done;
      }
      if (taken) {
        cs__iter_next(it);
        continue;
      }
    }
    ls->fn = fn;
    ls->fnarg = fnarg;
    ls->first_pass = first_pass;
    ls->failed = false;
    if ((rc = cs__segment_each(v.ptr, v.len, serve_logged, ls)) != 0) {
      if (!ls->failed)
        run_error(rc, m, origin, last);
      goto done;
    }
    cs__iter_next(it);
  }
  rc = cs__iter_status(it);
done:
  cs__iter_free(it);
  cs_buf_dispose(&lo);
  cs_buf_dispose(&hi);
  cs_buf_dispose(&seek);
  return rc;
}

void cs__log_source_init(cs_log_source *ls, cs_wire_model *wm, cs_store *s, cs_model *m,
                         cs_dotset *peer_knows) {
  memset(ls, 0, sizeof(*ls));
  ls->src.each = log_each;
  ls->src.arg = ls;
  ls->store = s;
  ls->model = m;
  ls->wm = wm;
  ls->peer_knows = *peer_knows;
  memset(peer_knows, 0, sizeof(*peer_knows));
  ls->inst_cap = wm->ninstances;
  wm->source = &ls->src;
}

void cs__log_source_dispose(cs_log_source *ls) {
  cs__intern_dispose(&ls->table);
  cs__dotset_dispose(&ls->peer_knows);
  memset(ls, 0, sizeof(*ls));
}

int cs__builder_init(cs_msg_builder *b, cs_store *s, uint8_t type) {
  memset(b, 0, sizeof(*b));
  b->msg.type = type;
  b->msg.sender = s->self;
  b->msg.clock = cs__clock_tick(&s->clock, cs__now_ms());
  /* The log sources point at their sections: size the sections once. */
  if (cs__array_grow((void **)&b->msg.models, &b->cap, s->nmodels, sizeof(cs_wire_model)) != 0 ||
      (b->srcs = cs__calloc(s->nmodels ? s->nmodels : 1, sizeof(*b->srcs))) == NULL)
    return CS_ENOMEM;
  return 0;
}

/* Test switches that bring back what builds before storage format 4 did, to
 * make the damaged stores the field has: false sends logged actions even
 * when the log lacks some of what the peer lacks (a causal gap), and takes
 * such messages. */
bool cs__relay_states = true;
bool cs__refuse_gaps = true;

int cs__knowledge_served(cs_dotset *out, const cs_model *m) {
  const cs_dotset *g = &m->missing;
  int rc;

  if ((rc = cs__dotset_copy(out, &m->knowledge)) != 0)
    return rc;
  /* A vector entry of the missing set means its first dots are missing. */
  for (size_t i = 0; i < g->vv_len; i++)
    cs__dotset_truncate(out, g->vv[i].replica, 0);
  for (size_t i = 0; i < g->extra_len; i++)
    cs__dotset_truncate(out, g->extra[i].replica, g->extra[i].counter - 1);
  return 0;
}

int cs__builder_model(cs_msg_builder *b, cs_store *s, cs_model *m, const cs_dotset *peer_knows,
                      bool states) {
  cs_dotset k = CS_DOTSET_INIT;
  cs_wire_model *wm;
  int rc;

  if ((rc = cs__msg_add_model(&wm, &b->msg, &b->cap, m->name)) != 0 ||
      (rc = cs__knowledge_served(&wm->knowledge, m)) != 0 || !peer_knows)
    return rc;
  if (!cs__dotset_subset(&m->missing, peer_knows))
    return 0; /* see the declaration: nothing until the store has them */
  if (cs__relay_states && !cs__dotset_subset(&m->floor, peer_knows)) {
    /* The log no longer holds (or never held) all that the peer lacks. */
    if (!states)
      return 0;
    b->msg.flags |= CS_MSG_F_STATES;
    return cs__collect_states(wm, s, m, 0);
  }
  if ((rc = cs__dotset_copy(&k, peer_knows)) == 0)
    cs__log_source_init(&b->srcs[b->nsrc++], wm, s, m, &k);
  cs__dotset_dispose(&k); /* emptied when taken */
  return rc;
}

int cs__builder_encode(cs_buf *out, size_t *out_sent, cs_msg_builder *b) {
  int rc = cs__codec_encode_msg(out, &b->msg);
  if (rc == 0 && out_sent) {
    *out_sent = 0;
    for (size_t i = 0; i < b->nsrc; i++)
      *out_sent += b->srcs[i].count;
  }
  return rc;
}

void cs__builder_dispose(cs_msg_builder *b) {
  for (size_t i = 0; i < b->nsrc; i++)
    cs__log_source_dispose(&b->srcs[i]);
  cs__free(b->srcs);
  cs__sync_msg_dispose(&b->msg);
  memset(b, 0, sizeof(*b));
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

/* ---------------------------------------------------------------- merging */

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

/* The pool holds what a whole log run drops when it is written. */
_Static_assert(CS_ACTION_POOL_MAX >= CS_SEGMENT_MAX_ACTIONS, "a pool holds a run's actions");

int cs__merge_begin(cs_merger *mg, cs_store *s) {
  memset(mg, 0, sizeof(*mg));
  mg->store = s;
  mg->limit = cs__stamp_limit(s);
  mg->cursor0 = s->cursor;
  cs__segment_init(&mg->seg);
  mg->seg.borrow = true; /* runs are flushed before their section ends */
  if (!(mg->pool = cs__calloc(1, sizeof(*mg->pool))))
    return CS_ENOMEM;
  mg->seg.pool = mg->pool;
  return cs__wbatch_new(&mg->batch, s->db);
}

/* Drops what the section being merged holds (its log run is in the batch). */
static void section_clear(cs_merger *mg) {
  cs__free(mg->slots);
  mg->slots = NULL;
  cs__segment_dispose(&mg->seg);
  mg->seg.borrow = true;
  mg->seg.pool = mg->pool;
  cs__dotset_dispose(&mg->before);
}

void cs__merge_dispose(cs_merger *mg) {
  section_clear(mg);
  /* Not finished: what memory holds of the models must again be what is
   * stored, and the models the message brought are forgotten. */
  if (!mg->finished && mg->store) {
    mg->store->cursor = mg->cursor0;
    for (size_t i = 0; i < mg->ncaches; i++)
      cs__model_reload(mg->store, mg->caches[i].model);
    for (size_t i = 0; i < mg->ncreated; i++)
      cs__model_drop(mg->store, mg->created[i]);
  }
  for (size_t i = 0; i < mg->ncreated; i++)
    cs__free((char *)mg->created[i]);
  for (size_t i = 0; i < mg->ncaches; i++)
    cs__cache_dispose(&mg->caches[i]);
  cs__free(mg->caches);
  cs__free(mg->names);
  cs__free(mg->created);
  cs__wbatch_free(mg->batch);
  cs__action_pool_dispose(mg->pool);
  cs__free(mg->pool);
  memset(mg, 0, sizeof(*mg));
}

int cs__merge_header(cs_merger *mg, const cs_sync_msg *msg) {
  return cs__validate_header(mg->store, msg, mg->limit);
}

/*
 * The actions of a section may only cover dots this store knew before the
 * message or that the section's own actions bring: a context reaching past
 * both (a causal gap) would make us claim knowledge of actions we never
 * applied and cannot serve, skip them as duplicates when they come, and keep
 * entries they removed. The knowledge grew by the applied actions' contexts;
 * it must have grown by exactly their new dots (their contexts hold their
 * own dots: cs__validate_action).
 */
static int check_gap(const cs_merger *mg, const cs_model *m, const cs_wire_model *wm) {
  /* Counted as growth, not as two totals: a knowledge of 2^64 dots (claimed
   * by a states message) must not make every later section look wrong. */
  uint64_t grew = cs__dotset_count_beyond(&m->knowledge, &mg->before);
  char n[24] = "too many";

  if (grew == mg->fresh || !cs__refuse_gaps)
    return 0;
  if (grew != UINT64_MAX && grew > mg->fresh)
    snprintf(n, sizeof(n), "%llu", (unsigned long long)(grew - mg->fresh));
  return cs__error(CS_ECORRUPT,
                   "model '%s': the actions' contexts cover %s dot(s) that neither this store "
                   "nor the message holds (a causal gap); the sender must send those actions "
                   "too, or whole states",
                   wm->name, n);
}

/* Whole states of every document, joined against a knowledge that holds
 * missing dots: the documents now have those actions' effects. */
static int states_repair(cs_model *m, const cs_dotset *theirs) {
  cs_dotset left = CS_DOTSET_INIT;
  int rc = cs__dotset_subtract(&left, &m->missing, theirs, SIZE_MAX);
  if (rc == 0) {
    cs__dotset_dispose(&m->missing);
    m->missing = left;
    m->dirty_missing = true;
  } else
    cs__dotset_dispose(&left);
  return rc;
}

int cs__merge_section(cs_merger *mg, cs_wire_model *wm) {
  cs_store *s = mg->store;
  cs_doc_cache *c;
  cs_model *m;
  int rc;

  section_clear(mg);
  if ((rc = cs__validate_section(wm)) != 0)
    return rc;
  if ((rc = cs__array_grow((void **)&mg->caches, &mg->caches_cap, mg->ncaches + 1,
                           sizeof(cs_doc_cache))) != 0 ||
      (rc = cs__array_grow((void **)&mg->names, &mg->names_cap, mg->ncaches + 1,
                           sizeof(char *))) != 0 ||
      (rc = cs__array_grow((void **)&mg->created, &mg->created_cap, mg->ncreated + 1,
                           sizeof(char *))) != 0)
    return rc;
  if (!cs__model_find(s, wm->name)) {
    /* Its own copy of the name: a refused message is freed before the
     * merger that drops its models. */
    char *name = cs__strdup(wm->name);
    if (!name)
      return CS_ENOMEM;
    if ((rc = cs__model_get(&m, s, wm->name)) != 0) {
      cs__free(name);
      return rc;
    }
    mg->created[mg->ncreated++] = name;
  }
  m = cs__model_find(s, wm->name);
  /* Creating a model may move the others in memory: find them again (by
   * the names the message holds, which stay put). */
  for (size_t i = 0; i < mg->ncaches; i++)
    mg->caches[i].model = cs__model_find(s, mg->names[i]);
  c = &mg->caches[mg->ncaches];
  if ((rc = cs__cache_init(c, m, wm->ninstances)) != 0)
    return rc;
  mg->names[mg->ncaches++] = wm->name;
  /*
   * Duplicates are judged against what we knew BEFORE this message. Within
   * it, an action applied first may cover the dots of another (a delete
   * covering the existence entry an increment wrote): those dots are then
   * known, but the other action's own effects (its counter entries, the
   * entries its context removes) are not applied yet. A sender always sends
   * every action whose dots we lacked, so a dot known before the message
   * means its action was applied.
   */
  if ((rc = cs__dotset_copy(&mg->before, &m->knowledge)) != 0)
    return rc;
  mg->issued = cs__dotset_max(&mg->before, s->self);
  mg->fresh = 0;
  if ((rc = cs__validate_own_dots(s, mg->issued, &wm->knowledge, wm->name, SIZE_MAX)) != 0 ||
      (rc = cs__cache_prefetch(c, s, wm->instances, wm->ninstances)) != 0)
    return rc;
  /* Every instance of the section is in the cache now, and nothing else
   * joins it: look each one up once, not once per action. */
  if (wm->ninstances && (mg->slots = cs__calloc(wm->ninstances, sizeof(*mg->slots))) == NULL)
    return CS_ENOMEM;
  return cs__cache_slots(mg->slots, c, wm->instances, wm->ninstances);
}

int cs__merge_action(cs_merger *mg, cs_wire_model *wm, size_t j, cs_wire_action *a) {
  cs_doc_cache *c = &mg->caches[mg->ncaches - 1];
  cs_model *m = c->model;
  cs_doc_slot *slot;
  bool missing = false, has_missing = m->missing.vv_len || m->missing.extra_len;
  uint64_t fresh = 0;
  int rc;

  if ((rc = cs__validate_action(mg->store, wm, j, a, mg->limit)) != 0)
    return rc;
  if ((rc = cs__validate_own_dots(mg->store, mg->issued, &a->ctx, wm->name, j)) != 0)
    return rc;
  /* first..last ends at last, even at counter 2^64 - 1 (no k <= last). */
  for (uint64_t k = a->first;; k++) {
    cs_dot d = {a->origin, k};
    if (!cs__dotset_contains(&mg->before, d))
      fresh++;
    else if (has_missing && cs__dotset_contains(&m->missing, d))
      missing = true;
    if (k == a->last)
      break;
  }
  if (fresh == 0 && !missing)
    return 0; /* a duplicate: joins are idempotent, skip the work */
  mg->fresh += fresh;
  slot = mg->slots[a->instance];
  if ((rc = cs__doc_join(&slot->doc, &m->knowledge, &a->doc, &a->ctx)) != 0 ||
      (rc = cs__dotset_join(&m->knowledge, &a->ctx)) != 0)
    return rc;
  slot->dirty = true;
  if (missing) {
    /* An action this store knew of without having it: applied now (the
     * join against the whole knowledge adds none of what others covered). */
    for (uint64_t k = a->first;; k++) {
      if ((rc = cs__dotset_remove(&m->missing, (cs_dot){a->origin, k})) != 0)
        return rc;
      if (k == a->last)
        break;
    }
    m->dirty_missing = true;
  }
  if (a->hlc > mg->max_hlc)
    mg->max_hlc = a->hlc;
  if (missing || cs__dotset_next(&mg->before, a->origin).counter - 1 > a->last) {
    /* Below a dot of its origin known already (a missing action, or one a
     * peer sent out of order): a log run keyed by its last dot would come
     * before a run that holds earlier actions, and the log could no longer
     * be served in order. Its dots join the floor instead: a peer that
     * lacks them is sent whole states. */
    for (uint64_t k = a->first;; k++) {
      if ((rc = cs__dotset_add(&m->floor, (cs_dot){a->origin, k})) != 0)
        return rc;
      if (k == a->last)
        break;
    }
    mg->floor_dirty = true;
    mg->applied++;
    return 0;
  }
  /* Applied actions go to the log, one run per origin. */
  if (mg->seg.wm.nactions && mg->seg.origin != a->origin &&
      (rc = cs__segment_flush(&mg->seg, mg->batch, m->name)) != 0)
    return rc;
  if ((rc = cs__segment_add(&mg->seg, mg->batch, m->name, a, wm->instances[a->instance])) != 0)
    return rc;
  mg->applied++;
  return 0;
}

int cs__merge_section_end(cs_merger *mg, cs_wire_model *wm) {
  cs_doc_cache *c = &mg->caches[mg->ncaches - 1];
  cs_model *m = c->model;
  int rc;

  if ((rc = cs__segment_flush(&mg->seg, mg->batch, m->name)) != 0 ||
      (rc = check_gap(mg, m, wm)) != 0 ||
      (rc = cs__validate_states(mg->store, wm, mg->limit)) != 0)
    return rc;
  if (wm->nstates) {
    /* Whole states join against the sender's knowledge, all against our
     * context from before them; the contexts are joined afterwards. What
     * the sender knows without having sent it as actions can only be
     * claimed with states; otherwise knowledge grows by the actions'
     * contexts alone (joined already). */
    for (size_t j = 0; j < wm->nstates; j++) {
      cs_doc_slot *slot = mg->slots[wm->states[j].instance];
      cs_hlc latest = cs__doc_latest_stamp(&wm->states[j].doc);
      if (latest > mg->max_hlc)
        mg->max_hlc = latest;
      if ((rc = cs__doc_join(&slot->doc, &m->knowledge, &wm->states[j].doc, &wm->knowledge)) != 0)
        return rc;
      slot->dirty = true;
      mg->applied++;
    }
    if ((rc = cs__dotset_join(&m->knowledge, &wm->knowledge)) != 0 ||
        (rc = cs__dotset_join(&m->floor, &wm->knowledge)) != 0)
      return rc;
    mg->floor_dirty = true;
    if ((m->missing.vv_len || m->missing.extra_len) && !mg->states_partial &&
        (rc = states_repair(m, &wm->knowledge)) != 0)
      return rc;
  }
  section_clear(mg);
  return 0;
}

int cs__merge_finish(size_t *out_applied, cs_merger *mg, const cs_sync_msg *msg,
                     cs_replica ack_peer, bool durable) {
  cs_store *s = mg->store;
  cs_model **models = NULL;
  int rc = 0;

  if (mg->ncaches &&
      (models = cs__calloc(mg->ncaches, sizeof(cs_model *))) == NULL)
    return CS_ENOMEM;
  for (size_t i = 0; i < mg->ncaches; i++) {
    const cs_wire_model *wm = &msg->models[i];
    models[i] = mg->caches[i].model;
    if ((rc = cs__cache_flush(&mg->caches[i], s, mg->batch)) != 0)
      goto done;
    if (ack_peer &&
        (rc = cs__peer_ack_put(mg->batch, ack_peer, models[i]->name, &wm->knowledge)) != 0)
      goto done;
    if (mg->floor_dirty && (rc = put_floor(mg->batch, models[i])) != 0)
      goto done;
  }
  if (mg->max_hlc)
    cs__clock_observe(&s->clock, mg->max_hlc, cs__now_ms());
  for (size_t i = 0; i < mg->ncaches; i++)
    cs__cache_drop_docs(&mg->caches[i]);
  if ((rc = cs__store_put_meta(s, mg->batch, models, mg->ncaches)) != 0 ||
      (rc = cs__db_write(s->db, mg->batch, durable)) != 0)
    goto done;
  mg->finished = true;
  if (out_applied)
    *out_applied = mg->applied;
done:
  cs__free(models);
  return rc;
}

/* The decoder's callbacks for a merge. */
static int sink_header(void *arg, const cs_sync_msg *msg) { return cs__merge_header(arg, msg); }
static int sink_section(void *arg, cs_wire_model *wm) { return cs__merge_section(arg, wm); }
static int sink_action(void *arg, cs_wire_model *wm, size_t j, cs_wire_action *a) {
  return cs__merge_action(arg, wm, j, a);
}
static int sink_section_end(void *arg, cs_wire_model *wm) { return cs__merge_section_end(arg, wm); }

void cs__merge_sink(cs_msg_sink *out, cs_merger *mg) {
  out->header = sink_header;
  out->section = sink_section;
  out->action = sink_action;
  out->section_end = sink_section_end;
  out->arg = mg;
  out->pool = mg->pool;
}

int cs__merge_msg(size_t *out_applied, cs_store *s, cs_sync_msg *msg, cs_replica ack_peer,
                  bool durable, bool states_partial) {
  cs_merger mg;
  int rc;

  if ((rc = cs__merge_begin(&mg, s)) != 0 || (rc = cs__merge_header(&mg, msg)) != 0)
    goto done;
  mg.states_partial = states_partial;
  for (size_t i = 0; i < msg->nmodels; i++) {
    cs_wire_model *wm = &msg->models[i];
    if ((rc = cs__merge_section(&mg, wm)) != 0)
      goto done;
    for (size_t j = 0; j < wm->nactions; j++)
      if ((rc = cs__merge_action(&mg, wm, j, &wm->actions[j])) != 0)
        goto done;
    if ((rc = cs__merge_section_end(&mg, wm)) != 0)
      goto done;
  }
  rc = cs__merge_finish(out_applied, &mg, msg, ack_peer, durable);
done:
  cs__merge_dispose(&mg);
  return rc;
}
