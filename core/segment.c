/*
 * Log segments. The log holds, per model and origin replica, runs of that
 * origin's actions; a run is stored as one record keyed by (model, origin,
 * last dot of the run) whose value is a log run frame (cs__codec_encode_run:
 * a sync request without its checksum) with one model section.
 *
 * Why runs: a local batch or a merged message writes one log record per
 * origin instead of one per action (a RocksDB put and an encoding each).
 * Why the last dot: a peer that has origin o up to n lacks exactly the
 * actions above n, and every run holding one has its key above n, so serving
 * the peer is still one seek per origin.
 */
#include "core/engine.h"

static uint64_t hash_name(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++)
    h = (h ^ (uint8_t)*s) * 1099511628211ull;
  return h;
}

void cs__intern_dispose(cs_intern *t) {
  cs__free(t->names);
  cs__free(t->idx);
  memset(t, 0, sizeof(*t));
}

/* Interns `name`; `owned` is name itself (taken: kept or freed) or NULL (a
 * copy is made if the name is new). `borrow`: the table keeps name itself,
 * which its owner keeps alive and frees (owned is NULL). */
static int intern(uint32_t *out, cs_intern *t, cs_wire_model *wm, size_t *wm_cap, const char *name,
                  char *owned, bool borrow) {
  size_t i;
  int rc;

  if ((wm->ninstances + 1) * 2 > t->cap) {
    size_t ncap = t->cap ? t->cap * 2 : 64;
    char **nn = cs__calloc(ncap, sizeof(char *));
    uint32_t *ni = cs__calloc(ncap, sizeof(uint32_t));
    if (!nn || !ni) {
      cs__free(nn);
      cs__free(ni);
      cs__free(owned);
      return CS_ENOMEM;
    }
    for (size_t j = 0; j < t->cap; j++) {
      if (!t->names[j])
        continue;
      i = hash_name(t->names[j]) & (ncap - 1);
      while (nn[i])
        i = (i + 1) & (ncap - 1);
      nn[i] = t->names[j];
      ni[i] = t->idx[j];
    }
    cs__free(t->names);
    cs__free(t->idx);
    t->names = nn;
    t->idx = ni;
    t->cap = ncap;
  }
  i = hash_name(name) & (t->cap - 1);
  while (t->names[i]) {
    if (strcmp(t->names[i], name) == 0) {
      *out = t->idx[i];
      cs__free(owned);
      return 0;
    }
    i = (i + 1) & (t->cap - 1);
  }
  if ((rc = cs__array_grow((void **)&wm->instances, wm_cap, wm->ninstances + 1, sizeof(char *))) !=
      0) {
    cs__free(owned);
    return rc;
  }
  if (borrow)
    owned = (char *)name;
  else if (!owned && !(owned = cs__strdup(name)))
    return CS_ENOMEM;
  wm->instances[wm->ninstances] = owned;
  t->names[i] = owned;
  t->idx[i] = (uint32_t)wm->ninstances;
  *out = (uint32_t)wm->ninstances++;
  return 0;
}

int cs__intern(uint32_t *out, cs_intern *t, cs_wire_model *wm, size_t *wm_cap, char *name) {
  return intern(out, t, wm, wm_cap, name, name, false);
}

int cs__intern_copy(uint32_t *out, cs_intern *t, cs_wire_model *wm, size_t *wm_cap,
                    const char *name) {
  return intern(out, t, wm, wm_cap, name, NULL, false);
}

bool cs__intern_find(uint32_t *out, const cs_intern *t, const char *name) {
  if (!t->cap)
    return false;
  for (size_t i = hash_name(name) & (t->cap - 1); t->names[i]; i = (i + 1) & (t->cap - 1))
    if (strcmp(t->names[i], name) == 0) {
      *out = t->idx[i];
      return true;
    }
  return false;
}

void cs__segment_init(cs_segment *seg) {
  memset(seg, 0, sizeof(*seg));
}

/* Empties the run, keeping its arrays for the next one. */
static void segment_clear(cs_segment *seg) {
  if (seg->table.cap)
    memset(seg->table.names, 0, seg->table.cap * sizeof(*seg->table.names));
  for (size_t i = 0; !seg->borrow && i < seg->wm.ninstances; i++)
    cs__free(seg->wm.instances[i]);
  seg->wm.ninstances = 0;
  for (size_t i = 0; i < seg->wm.nactions; i++)
    cs__action_pool_put(seg->pool, &seg->wm.actions[i]);
  seg->wm.nactions = 0;
}

void cs__segment_dispose(cs_segment *seg) {
  segment_clear(seg);
  cs__intern_dispose(&seg->table);
  cs__free(seg->wm.instances);
  cs__free(seg->wm.actions);
  memset(seg, 0, sizeof(*seg));
}

int cs__segment_add(cs_segment *seg, cs_wbatch *b, const char *model, cs_wire_action *a,
                    const char *instance) {
  cs_wire_action *slot;
  int rc;

  if (seg->wm.nactions && seg->origin != a->origin)
    return cs__error(CS_EINTERNAL, "log segment of origin %016llx given an action of %016llx",
                     (unsigned long long)seg->origin, (unsigned long long)a->origin);
  seg->origin = a->origin;
  if ((rc = cs__array_grow((void **)&seg->wm.actions, &seg->act_cap, seg->wm.nactions + 1,
                           sizeof(cs_wire_action))) != 0)
    return rc;
  slot = &seg->wm.actions[seg->wm.nactions];
  *slot = *a;
  memset(a, 0, sizeof(*a)); /* the segment owns the document and context now */
  if ((rc = intern(&slot->instance, &seg->table, &seg->wm, &seg->inst_cap, instance, NULL,
                   seg->borrow))) {
    *a = *slot; /* give them back */
    memset(slot, 0, sizeof(*slot));
    return rc;
  }
  seg->wm.nactions++;
  return seg->wm.nactions < CS_SEGMENT_MAX_ACTIONS ? 0 : cs__segment_flush(seg, b, model);
}

int cs__segment_flush(cs_segment *seg, cs_wbatch *b, const char *model) {
  cs_sync_msg msg;
  cs_buf key = CS_BUF_INIT, val = CS_BUF_INIT;
  int rc;

  if (seg->wm.nactions == 0)
    return 0;
  memset(&msg, 0, sizeof(msg));
  msg.type = CS_MSG_SYNC_REQUEST;
  msg.sender = seg->origin;
  msg.models = &seg->wm;
  msg.nmodels = 1;
  seg->wm.name = (char *)model; /* borrowed for the encoding only */
  rc = cs__codec_encode_run(&val, &msg);
  seg->wm.name = NULL;
  if (rc == 0 &&
      (rc = cs__key_log(&key, model, seg->origin, seg->wm.actions[seg->wm.nactions - 1].last)) == 0)
    cs__wbatch_put(b, CS_CF_LOG, key.ptr, key.size, val.ptr, val.size);
  cs_buf_dispose(&key);
  cs_buf_dispose(&val);
  if (rc == 0)
    seg->count += seg->wm.nactions;
  /* The next run starts empty (same origin or another). */
  segment_clear(seg);
  return rc;
}

int cs__segment_decode(cs_sync_msg *out, const uint8_t *p, size_t len) {
  int rc = cs__codec_decode_run_sink(out, p, len, NULL);
  if (rc == 0 &&
      (out->nmodels != 1 || out->models[0].nactions == 0 || out->models[0].nstates != 0)) {
    cs__sync_msg_dispose(out);
    rc = cs__error(CS_ECORRUPT, "log segment: expected one model section of actions");
  }
  for (size_t i = 0; rc == 0 && i < out->models[0].nactions; i++)
    if (out->models[0].actions[i].origin != out->sender) {
      cs__sync_msg_dispose(out);
      rc = cs__error(CS_ECORRUPT, "log segment: an action of another origin");
    }
  return rc;
}

typedef struct segment_walk {
  cs_segment_fn fn;
  void *arg;
  cs_replica sender;
} segment_walk;

static int walk_header(void *arg, const cs_sync_msg *msg) {
  ((segment_walk *)arg)->sender = msg->sender;
  return 0;
}

static int walk_action(void *arg, cs_wire_model *wm, size_t index, cs_wire_action *a) {
  segment_walk *w = arg;
  (void)index;
  if (a->origin != w->sender)
    return cs__error(CS_ECORRUPT, "log segment: an action of another origin");
  return w->fn(w->arg, wm, a);
}

static int walk_section_end(void *arg, cs_wire_model *wm) {
  (void)arg;
  if (wm->nactions == 0 || wm->nstates != 0)
    return cs__error(CS_ECORRUPT, "log segment: expected one model section of actions");
  return 0;
}

int cs__segment_each(const uint8_t *p, size_t len, cs_segment_fn fn, void *arg) {
  segment_walk w = {fn, arg, 0};
  cs_msg_sink sink = {walk_header, NULL, walk_action, walk_section_end, &w, NULL};
  cs_sync_msg msg;
  int rc = cs__codec_decode_run_sink(&msg, p, len, &sink);
  /* A second section's actions may have gone to fn already: the caller
   * fails as a whole. */
  if (rc == 0 && msg.nmodels != 1)
    rc = cs__error(CS_ECORRUPT, "log segment: expected one model section of actions");
  cs__sync_msg_dispose(&msg);
  return rc;
}
