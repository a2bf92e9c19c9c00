/*
 * The change index (CS_CF_CHANGES, docs/storage-format.md): "which documents
 * of a model changed after cursor C" is a range scan from (model, C + 1).
 *
 * A flush of cached documents takes one cursor and writes one entry that
 * lists every document it wrote; each document's stored value carries that
 * cursor. The entries a document was listed in before are not touched: a
 * name is live in an entry only while the document's cursor is the entry's.
 * Readers skip the others, and cs_cleanup rewrites entries without them.
 * So a flush of n documents costs one index write instead of a delete and
 * a put per document.
 *
 * The entry layout is read and written by core/codec_changes.c.
 */
#include <stdlib.h>

#include "core/engine.h"

static int entry_error(int rc, const char *model, uint64_t cursor) {
  return cs__error_wrap(rc, "change index of model '%s', cursor %llu: ", model,
                        (unsigned long long)cursor);
}

static int key_error(int rc, const char *model) {
  return cs__error_wrap(rc, "change index of model '%s': ", model);
}

/* The cursor of a key in the scanned model's range (klen: such a key's). */
static int key_cursor(uint64_t *out, cs_bytes k, size_t klen) {
  size_t pos = klen - 8;
  if (k.len != klen)
    return cs__error(CS_ECORRUPT, "change index key of %zu bytes, expected %zu", k.len, klen);
  return cs__key_read_u64(out, k.ptr, k.len, &pos);
}

/* Calls fn on each of model m's entries from cursor `from` on, in cursor
 * order, and names the entry in the error that stops the scan. */
typedef int (*entry_fn)(void *arg, uint64_t cursor, cs_bytes key, cs_bytes value);

static int each_entry(cs_store *s, const cs_model *m, uint64_t from, entry_fn fn, void *arg) {
  cs_buf lo = CS_BUF_INIT, hi = CS_BUF_INIT;
  cs_iter *it = NULL;
  int rc;

  if ((rc = cs__key_change(&lo, m->name, from)) != 0 ||
      (rc = cs__key_change(&hi, m->name, UINT64_MAX)) != 0 ||
      (rc = cs__iter_new(&it, s->db, CS_CF_CHANGES, lo.ptr, lo.size, hi.ptr, hi.size)) != 0)
    goto done;
  for (; cs__iter_valid(it); cs__iter_next(it)) {
    cs_bytes k = cs__iter_key(it);
    uint64_t cursor = 0;
    if ((rc = key_cursor(&cursor, k, lo.size)) != 0) {
      key_error(rc, m->name);
      goto done;
    }
    if ((rc = fn(arg, cursor, k, cs__iter_value(it))) != 0) {
      entry_error(rc, m->name, cursor);
      goto done;
    }
  }
  rc = cs__iter_status(it);
done:
  cs__iter_free(it);
  cs_buf_dispose(&lo);
  cs_buf_dispose(&hi);
  return rc;
}

/* ------------------------------------------------------------ reading */

typedef struct read_at {
  cs_doc *out;     /* NULL: the cursor only */
  uint64_t cursor; /* the entry's */
  bool live;
  const char *model, *instance;
} read_at;

static int read_at_value(const uint8_t *p, size_t len, void *payload) {
  read_at *r = payload;
  if (len < 8)
    return cs__error(CS_ECORRUPT, "document '%s/%s': stored value has %zu bytes", r->model,
                     r->instance, len);
  r->live = (cs__get_be64(p) & ~CS_CURSOR_SOLE) == r->cursor;
  if (!r->live || !r->out)
    return 0;
  return cs__doc_value_decode(r->out, NULL, p, len, r->model, r->instance);
}

/* Is the entry at `cursor` the document's latest? Reads it into *out (may
 * be NULL) when so. A document that is gone is not live. */
static int doc_live(bool *live, cs_doc *out, cs_store *s, const char *model, const char *instance,
                    uint64_t cursor) {
  cs_buf key = CS_BUF_INIT;
  read_at r = {out, cursor, false, model, instance};
  int rc;

  if ((rc = cs__key_doc(&key, model, instance)) == 0)
    rc = cs__db_get_with(s->db, CS_CF_DOCS, key.ptr, key.size, read_at_value, &r);
  if (rc == CS_ENOTFOUND)
    rc = 0;
  *live = rc == 0 && r.live;
  cs_buf_dispose(&key);
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

/* What a scan for states gathers. */
typedef struct collecting {
  cs_wire_model *wm;
  size_t st_cap, inst_cap;
  cs_intern table;
  cs_store *s;
  const cs_model *m;
} collecting;

/* The states of one entry's live documents, added to the section. */
static int collect_entry(void *arg, uint64_t cursor, cs_bytes k, cs_bytes v) {
  collecting *cl = arg;
  cs_wire_model *wm = cl->wm;
  cs_change_cursor c;
  char *instance;
  int rc;

  (void)k;
  if ((rc = cs__change_cursor_init(&c, v.ptr, v.len)) != 0)
    return rc;
  while ((rc = cs__change_cursor_next(&instance, &c)) == 1) {
    cs_wire_state *st;
    bool live;
    if ((rc = cs__array_grow((void **)&wm->states, &cl->st_cap, wm->nstates + 1,
                             sizeof(cs_wire_state))) != 0)
      break;
    st = &wm->states[wm->nstates];
    memset(st, 0, sizeof(*st));
    if ((rc = doc_live(&live, &st->doc, cl->s, cl->m->name, instance, cursor)) != 0 || !live) {
      cs__doc_dispose(&st->doc);
      if (rc)
        break;
      cs__free(instance);
      continue;
    }
    wm->nstates++;
    /* The table takes the name, on failure too. */
    rc = cs__intern(&st->instance, &cl->table, wm, &cl->inst_cap, instance);
    instance = NULL;
    if (rc)
      break;
  }
  cs__free(instance);
  return rc;
}

int cs__collect_states(cs_wire_model *wm, cs_store *s, cs_model *m, uint64_t since) {
  collecting cl = {wm, 0, wm->ninstances, {0}, s, m};
  cs_wire_state *tmp = NULL;
  int rc;

  if ((rc = each_entry(s, m, since + 1, collect_entry, &cl)) != 0)
    goto done;
  if (wm->nstates > 1) {
    if ((tmp = cs__calloc(wm->nstates, sizeof(*tmp))) == NULL) {
      rc = CS_ENOMEM;
      goto done;
    }
    sort_states(wm->states, wm->nstates, wm->instances, tmp);
  }
  /* No name repeats: an entry's names are strictly in order, and a name is
   * live in one entry only (its document has one cursor). */
done:
  cs__free(tmp);
  cs__intern_dispose(&cl.table);
  return rc;
}

/* ------------------------------------------------------------ cleanup */

static int cmp_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* What a trim needs besides the entry. */
typedef struct trimming {
  size_t *dropped;
  cs_store *s;
  const char *model;
  char *const *gone;
  size_t ngone;
  cs_wbatch *b;
} trimming;

/* Rewrites one entry with its live names only, or deletes it when none is
 * left. *dropped counts the names taken out. */
static int trim_entry(void *arg, uint64_t cursor, cs_bytes k, cs_bytes v) {
  trimming *t = arg;
  cs_buf keep = CS_BUF_INIT;
  cs_change_cursor c;
  size_t live_n = 0, dead_n = 0;
  char *instance;
  int rc;

  if ((rc = cs__change_cursor_init(&c, v.ptr, v.len)) != 0 ||
      (rc = cs__change_list_start(&keep)) != 0)
    goto done;
  while ((rc = cs__change_cursor_next(&instance, &c)) == 1) {
    bool live = false;
    if (t->ngone && bsearch(&instance, t->gone, t->ngone, sizeof(char *), cmp_name))
      rc = 0;
    else
      rc = doc_live(&live, NULL, t->s, t->model, instance, cursor);
    if (rc == 0) {
      if (live) {
        live_n++;
        rc = cs__change_list_add(&keep, instance);
      } else
        dead_n++;
    }
    cs__free(instance);
    if (rc)
      goto done;
  }
  if (rc)
    goto done;
  if (live_n == 0)
    cs__wbatch_delete(t->b, CS_CF_CHANGES, k.ptr, k.len);
  else if (dead_n)
    cs__wbatch_put(t->b, CS_CF_CHANGES, k.ptr, k.len, keep.ptr, keep.size);
  *t->dropped += dead_n;
done:
  cs_buf_dispose(&keep);
  return rc;
}

int cs__changes_trim(size_t *dropped, cs_store *s, const cs_model *m, char *const *gone,
                     size_t ngone, cs_wbatch *b) {
  trimming t = {dropped, s, m->name, gone, ngone, b};
  return each_entry(s, m, 0, trim_entry, &t);
}
