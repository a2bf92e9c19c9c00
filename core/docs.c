/*
 * Documents in the store, and the per-operation document cache: an action
 * batch or a merged sync message reads and decodes each document once, joins
 * everything into it, and writes it once.
 *
 * A document's stored value is its change cursor (u64 BE) followed by the
 * codec's document encoding. A flush takes one cursor per model and lists the
 * documents it wrote in one change index entry there (core/changes.c), so
 * "changed since C" is a range scan.
 */
#include <stdlib.h>

#include "core/engine.h"

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (; *s; s++) {
    h ^= (uint8_t)*s;
    h *= 1099511628211ull;
  }
  return h ^ (h >> 32);
}

int cs__doc_value_decode(cs_doc *out, uint64_t *out_cursor, const uint8_t *p, size_t len,
                         const char *model, const char *instance) {
  int rc;
  if (len < 8)
    return cs__error(CS_ECORRUPT, "document '%s/%s': stored value has %zu bytes", model, instance,
                     len);
  if (out_cursor)
    *out_cursor = cs__get_be64(p);
  if ((rc = cs__codec_decode_doc(out, p + 8, len - 8)) != 0)
    return cs__error_wrap(rc, "document '%s/%s' (key docs/%s/%s): ", model, instance, model,
                          instance);
  return 0;
}

typedef struct doc_read_ctx {
  cs_doc *out;
  uint64_t *cursor;
  const char *model, *instance;
} doc_read_ctx;

static int doc_read_value(const uint8_t *p, size_t len, void *payload) {
  doc_read_ctx *r = payload;
  return cs__doc_value_decode(r->out, r->cursor, p, len, r->model, r->instance);
}

/* Decodes the stored value where RocksDB holds it: no copy. */
int cs__doc_read(cs_doc *out, uint64_t *out_cursor, cs_store *s, const char *model,
                 const char *instance) {
  cs_buf key = CS_BUF_INIT;
  doc_read_ctx r = {out, out_cursor, model, instance};
  int rc;

  if ((rc = cs__key_doc(&key, model, instance)) != 0)
    goto done;
  rc = cs__db_get_with(s->db, CS_CF_DOCS, key.ptr, key.size, doc_read_value, &r);
  if (rc == CS_ENOTFOUND)
    rc = cs__error(CS_ENOTFOUND, "instance '%s' of model '%s' not found", instance, model);
done:
  cs_buf_dispose(&key);
  return rc;
}

/* ------------------------------------------------------------------ cache */

int cs__cache_init(cs_doc_cache *c, cs_model *m, size_t expect) {
  size_t cap = 16;
  /* Room for `expect` documents under the 70% load that slot_new keeps. */
  while (cap * 7 < expect * 10)
    cap *= 2;
  memset(c, 0, sizeof(*c));
  c->model = m;
  if ((c->slots = cs__calloc(cap, sizeof(cs_doc_slot))) == NULL)
    return CS_ENOMEM;
  c->cap = cap;
  return 0;
}

void cs__cache_dispose(cs_doc_cache *c) {
  for (size_t i = 0; i < c->cap; i++) {
    cs_doc_slot *sl = &c->slots[i];
    if (!sl->instance)
      continue;
    if (sl->instance != sl->name)
      cs__free(sl->instance);
    cs__doc_dispose(&sl->doc);
    cs__conflict_list_dispose(&sl->before);
  }
  cs__free(c->slots);
  memset(c, 0, sizeof(*c));
}

void cs__cache_drop_docs(cs_doc_cache *c) {
  cs_model *m = c->model;
  cs__cache_dispose(c);
  c->model = m;
}

/* Each slot keeps its instance's hash, and a short name in itself: a probe
 * compares names only when the hashes agree, without reading elsewhere, and
 * growing rehashes nothing. */
static cs_doc_slot *slot_find(cs_doc_cache *c, const char *instance, uint32_t h, bool *found) {
  size_t i = h & (c->cap - 1);
  while (c->slots[i].instance) {
    if (c->slots[i].hash == h && strcmp(c->slots[i].instance, instance) == 0) {
      *found = true;
      return &c->slots[i];
    }
    i = (i + 1) & (c->cap - 1);
  }
  *found = false;
  return &c->slots[i];
}

static int cache_grow(cs_doc_cache *c) {
  cs_doc_slot *old = c->slots;
  size_t oldcap = c->cap;
  cs_doc_slot *ns = cs__calloc(oldcap * 2, sizeof(cs_doc_slot));

  if (!ns)
    return CS_ENOMEM;
  c->slots = ns;
  c->cap = oldcap * 2;
  for (size_t i = 0; i < oldcap; i++) {
    if (old[i].instance) {
      size_t j = old[i].hash & (c->cap - 1);
      while (ns[j].instance)
        j = (j + 1) & (c->cap - 1);
      ns[j] = old[i];
      if (old[i].instance == old[i].name)
        ns[j].instance = ns[j].name;
    }
  }
  cs__free(old);
  return 0;
}

/* Records the document's conflicts before the operation changes it, so that
 * the flush can update the conflict index by difference. */
static int slot_loaded(cs_doc_slot *sl, cs_doc_cache *c) {
  sl->loaded = true;
  if (sl->exists && cs__doc_may_conflict(&sl->doc)) {
    sl->had_conflicts = true;
    return cs__doc_conflicts_of(&sl->before, &sl->doc, c->model, sl->instance);
  }
  return 0;
}

static int slot_new(cs_doc_slot **out, cs_doc_cache *c, const char *instance) {
  bool found;
  uint32_t h = (uint32_t)hash_str(instance);
  cs_doc_slot *sl;

  if ((c->len + 1) * 10 > c->cap * 7) {
    int rc = cache_grow(c);
    if (rc)
      return rc;
  }
  sl = slot_find(c, instance, h, &found);
  if (!found) {
    size_t len = strlen(instance);
    memset(sl, 0, sizeof(*sl));
    if (len < sizeof(sl->name))
      sl->instance = memcpy(sl->name, instance, len + 1);
    else if ((sl->instance = cs__strdup(instance)) == NULL)
      return CS_ENOMEM;
    sl->hash = h;
    sl->len = (uint32_t)len;
    c->len++;
  }
  *out = sl;
  return 0;
}

int cs__cache_get(cs_doc_slot **out, cs_doc_cache *c, cs_store *s, const char *instance) {
  cs_doc_slot *sl;
  int rc;

  if ((rc = slot_new(&sl, c, instance)) != 0)
    return rc;
  if (!sl->loaded) {
    rc = cs__doc_read(&sl->doc, &sl->cursor, s, c->model->name, instance);
    if (rc == CS_ENOTFOUND) {
      cs__doc_dispose(&sl->doc);
      sl->exists = false;
      sl->cursor = 0;
      rc = 0;
    } else if (rc == 0)
      sl->exists = true;
    if (rc)
      return rc;
    if ((rc = slot_loaded(sl, c)) != 0)
      return rc;
  }
  *out = sl;
  return 0;
}

typedef struct prefetch {
  cs_doc_cache *c;
  cs_doc_slot **slots;
} prefetch;

static int prefetched(size_t i, const uint8_t *v, size_t len, void *payload) {
  prefetch *pf = payload;
  cs_doc_slot *sl = pf->slots[i];
  int rc;
  sl->exists = v != NULL;
  sl->cursor = 0;
  if (v && (rc = cs__doc_value_decode(&sl->doc, &sl->cursor, v, len, pf->c->model->name,
                                      sl->instance)) != 0)
    return rc;
  return slot_loaded(sl, pf->c);
}

int cs__cache_prefetch(cs_doc_cache *c, cs_store *s, char *const *instances, size_t n) {
  cs_buf keys = CS_BUF_INIT; /* all the keys, one after another */
  size_t *ends = NULL;
  cs_bytes *views = NULL;
  cs_doc_slot **slots = NULL;
  size_t m = 0;
  int rc = CS_ENOMEM;

  if (n == 0)
    return 0;
  if ((ends = cs__calloc(n, sizeof(*ends))) == NULL ||
      (views = cs__calloc(n, sizeof(*views))) == NULL ||
      (slots = cs__calloc(n, sizeof(*slots))) == NULL)
    goto done;
  /* Room for all n first: the slots taken below must not move. */
  while ((c->len + n) * 10 > c->cap * 7)
    if ((rc = cache_grow(c)) != 0)
      goto done;
  for (size_t i = 0; i < n; i++) {
    cs_doc_slot *sl;
    if ((rc = slot_new(&sl, c, instances[i])) != 0)
      goto done;
    if (sl->loaded)
      continue;
    if ((rc = cs__key_doc(&keys, c->model->name, instances[i])) != 0)
      goto done;
    sl->loaded = true; /* reserved: filled below */
    slots[m] = sl;
    ends[m++] = keys.size;
  }
  /* The buffer has stopped moving: point into it. */
  for (size_t i = 0; i < m; i++) {
    size_t start = i ? ends[i - 1] : 0;
    views[i].ptr = (const uint8_t *)keys.ptr + start;
    views[i].len = ends[i] - start;
  }
  prefetch pf = {c, slots};
  rc = cs__db_multi_get_with(s->db, CS_CF_DOCS, views, m, prefetched, &pf);
done:
  if (rc) {
    /* Slots reserved but not filled must be read again by cs__cache_get. */
    for (size_t i = 0; i < m; i++)
      if (slots[i] && !slots[i]->exists && slots[i]->doc.nexist == 0)
        slots[i]->loaded = false;
  }
  cs_buf_dispose(&keys);
  cs__free(ends);
  cs__free(views);
  cs__free(slots);
  return rc;
}

int cs__cache_slots(cs_doc_slot **out, cs_doc_cache *c, char *const *instances, size_t n) {
  for (size_t i = 0; i < n; i++) {
    bool found;
    cs_doc_slot *sl = slot_find(c, instances[i], (uint32_t)hash_str(instances[i]), &found);
    if (!found || !sl->loaded)
      return cs__error(CS_EINTERNAL, "instance '%s' was not read before use", instances[i]);
    out[i] = sl;
  }
  return 0;
}

static bool list_has(const cs_conflict_list *l, const uint8_t *id) {
  for (size_t i = 0; i < l->len; i++)
    if (memcmp(l->items[i].id, id, CS_CONFLICT_ID_LEN) == 0)
      return true;
  return false;
}

/*
 * Conflict index changes of a flush, held until every document is encoded
 * and then written in id order (ids are hashes: in document order they
 * would land all over the index). A change's record is at `off` in
 * `records`; a deletion has none. The records are a few hundred bytes
 * each, held once more than the batch holds them until the flush ends
 * (about 1.5 MB for the ~12k conflicts of a W1 merge side).
 */
typedef struct conflict_change {
  uint8_t id[CS_CONFLICT_ID_LEN];
  bool put;
  size_t off, len;
} conflict_change;

typedef struct conflict_changes {
  cs_buf records;
  conflict_change *items;
  size_t len, cap;
} conflict_changes;

static int change_add(conflict_changes *cc, const uint8_t *id, const cs_buf *record) {
  conflict_change *ch;
  int rc;
  if ((rc = cs__array_grow((void **)&cc->items, &cc->cap, cc->len + 1, sizeof(*cc->items))) != 0)
    return rc;
  ch = &cc->items[cc->len];
  memcpy(ch->id, id, CS_CONFLICT_ID_LEN);
  ch->put = record != NULL;
  ch->off = cc->records.size;
  ch->len = record ? record->size : 0;
  if (record && (rc = cs__buf_put(&cc->records, record->ptr, record->size)) != 0)
    return rc;
  cc->len++;
  return 0;
}

static int cmp_change(const void *a, const void *b) {
  return memcmp(((const conflict_change *)a)->id, ((const conflict_change *)b)->id,
                CS_CONFLICT_ID_LEN);
}

static void changes_write(conflict_changes *cc, cs_wbatch *b) {
  if (cc->len == 0)
    return; /* and qsort may not be given a null array */
  qsort(cc->items, cc->len, sizeof(*cc->items), cmp_change);
  for (size_t i = 0; i < cc->len; i++) {
    const conflict_change *ch = &cc->items[i];
    if (ch->put)
      cs__wbatch_put(b, CS_CF_CONFLICTS, ch->id, CS_CONFLICT_ID_LEN, cc->records.ptr + ch->off,
                     ch->len);
    else
      cs__wbatch_delete(b, CS_CF_CONFLICTS, ch->id, CS_CONFLICT_ID_LEN);
  }
}

static void changes_dispose(conflict_changes *cc) {
  cs_buf_dispose(&cc->records);
  cs__free(cc->items);
}

/* Updates the conflict index for one document: ids that appeared are put,
 * ids that disappeared are deleted. */
static int flush_conflicts(conflict_changes *cc, cs_doc_cache *c, cs_store *s, cs_doc_slot *sl) {
  cs_conflict_list now = {0};
  cs_buf val = CS_BUF_INIT;
  int rc = 0;

  if (cs__doc_may_conflict(&sl->doc) &&
      (rc = cs__doc_conflicts_of(&now, &sl->doc, c->model, sl->instance)) != 0)
    goto done;
  for (size_t i = 0; i < sl->before.len; i++)
    if (!list_has(&now, sl->before.items[i].id)) {
      if ((rc = change_add(cc, sl->before.items[i].id, NULL)) != 0)
        goto done;
      cs__conflicts_changed(s);
    }
  for (size_t i = 0; i < now.len; i++) {
    if (list_has(&sl->before, now.items[i].id))
      continue;
    cs__conflicts_changed(s);
    cs__buf_clear(&val);
    if ((rc = cs__key_name(&val, c->model->name)) != 0 ||
        (rc = cs__key_name(&val, sl->instance)) != 0 ||
        (rc = cs__key_name(&val, now.items[i].field ? now.items[i].field : "")) != 0 ||
        (rc = cs__conflict_record(&val, &sl->doc, &now.items[i])) != 0 ||
        (rc = change_add(cc, now.items[i].id, &val)) != 0)
      goto done;
  }
  /* The list now describes the stored state. */
  cs__conflict_list_dispose(&sl->before);
  sl->before = now;
  memset(&now, 0, sizeof(now));
done:
  cs__conflict_list_dispose(&now);
  cs_buf_dispose(&val);
  return rc;
}

/* Document key order (cs__key_doc): instance names by length, then bytes. */
static int cmp_slot_key(const void *a, const void *b) {
  const cs_doc_slot *x = *(cs_doc_slot *const *)a, *y = *(cs_doc_slot *const *)b;
  return x->len != y->len ? (x->len < y->len ? -1 : 1) : memcmp(x->instance, y->instance, x->len);
}

int cs__cache_flush(cs_doc_cache *c, cs_store *s, cs_wbatch *b) {
  cs_buf key = CS_BUF_INIT, val = CS_BUF_INIT;
  cs_buf names = CS_BUF_INIT;
  cs_doc_slot **order;
  conflict_changes cc = {CS_BUF_INIT, NULL, 0, 0};
  size_t n = 0;
  uint64_t cursor;
  uint8_t be[8];
  int rc = 0;

  /*
   * Each column family's keys go into the batch in ascending order: a
   * memtable inserts a key that follows the one it inserted last from where
   * that one went, instead of searching its skip list from the top. So the
   * documents go in key order. They all take one new change cursor, listed
   * in one change index entry; the entries that listed them before are left
   * for readers to skip (core/changes.c).
   */
  if ((order = cs__malloc((c->len ? c->len : 1) * sizeof(*order))) == NULL) {
    rc = CS_ENOMEM;
    goto done;
  }
  for (size_t i = 0; i < c->cap; i++)
    if (c->slots[i].instance && c->slots[i].dirty)
      order[n++] = &c->slots[i];
  if (n == 0)
    goto done;
  qsort(order, n, sizeof(*order), cmp_slot_key);
  /* A flush of one document (a commit of one local action, say) replaces
   * the entry that listed it alone, which its cursor word says without a
   * read: editing one document again and again keeps one entry for it. */
  if (n == 1 && (order[0]->cursor & CS_CURSOR_SOLE)) {
    if ((rc = cs__key_change(&key, c->model->name, order[0]->cursor & ~CS_CURSOR_SOLE)) != 0)
      goto done;
    cs__wbatch_delete(b, CS_CF_CHANGES, key.ptr, key.size);
  }
  cursor = ++s->cursor;
  cs__put_be64(be, n == 1 ? cursor | CS_CURSOR_SOLE : cursor);
  if ((rc = cs__change_list_start(&names)) != 0)
    goto done;
  for (size_t i = 0; i < n; i++) {
    cs_doc_slot *sl = order[i];
    cs__buf_clear(&key);
    cs__buf_clear(&val);
    if ((rc = cs__key_doc(&key, c->model->name, sl->instance)) != 0)
      goto done;
    if ((rc = cs__buf_put(&val, be, 8)) != 0 || (rc = cs__codec_encode_doc(&val, &sl->doc)) != 0 ||
        (rc = cs__change_list_add(&names, sl->instance)) != 0)
      goto done;
    cs__wbatch_put(b, CS_CF_DOCS, key.ptr, key.size, val.ptr, val.size);
    if ((sl->had_conflicts || cs__doc_may_conflict(&sl->doc)) &&
        (rc = flush_conflicts(&cc, c, s, sl)) != 0)
      goto done;
    /* Encoded into the batch: the decoded document goes now, so that the
     * documents and the batch that replaces them are not all in memory. */
    cs__doc_dispose(&sl->doc);
    cs__conflict_list_dispose(&sl->before);
    sl->dirty = false;
  }
  cs__buf_clear(&key);
  if ((rc = cs__key_change(&key, c->model->name, cursor)) != 0)
    goto done;
  cs__wbatch_put(b, CS_CF_CHANGES, key.ptr, key.size, names.ptr, names.size);
done:
  if (rc == 0)
    changes_write(&cc, b);
  changes_dispose(&cc);
  cs__free(order);
  cs_buf_dispose(&key);
  cs_buf_dispose(&val);
  cs_buf_dispose(&names);
  return rc;
}
