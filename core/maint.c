/* "Clean up old offline data" (garbage collection) and the store check. */
#include <jansson.h>

#include "core/engine.h"

void cs_release_memory(void) {
  cs__wbatch_release_spares();
  cs__heap_trim();
}

typedef struct peer_acks {
  cs_dotset *acks;
  size_t len, cap;
} peer_acks;

static void acks_dispose(peer_acks *p) {
  for (size_t i = 0; i < p->len; i++)
    cs__dotset_dispose(&p->acks[i]);
  cs__free(p->acks);
  memset(p, 0, sizeof(*p));
}

/* What every known peer has acknowledged of `model` (one dot set per peer). */
static int load_acks(peer_acks *out, cs_store *s, const char *model) {
  cs_iter *it = NULL;
  int rc;

  if ((rc = cs__iter_new(&it, s->db, CS_CF_PEERS, NULL, 0, NULL, 0)) != 0)
    return rc;
  for (; cs__iter_valid(it); cs__iter_next(it)) {
    cs_bytes k = cs__iter_key(it), v = cs__iter_value(it);
    size_t pos = 0;
    uint64_t peer;
    char *name = NULL;
    if ((rc = cs__key_read_u64(&peer, k.ptr, k.len, &pos)) != 0 ||
        (rc = cs__key_read_name(&name, k.ptr, k.len, &pos)) != 0)
      goto done;
    if (strcmp(name, model) == 0) {
      if ((rc = cs__array_grow((void **)&out->acks, &out->cap, out->len + 1, sizeof(cs_dotset))) ==
          0) {
        memset(&out->acks[out->len], 0, sizeof(cs_dotset));
        rc = cs__codec_decode_dotset(&out->acks[out->len], v.ptr, v.len);
        if (rc == 0)
          out->len++;
      }
    }
    cs__free(name);
    if (rc)
      goto done;
  }
  rc = cs__iter_status(it);
done:
  cs__iter_free(it);
  return rc;
}

static bool all_have(const peer_acks *p, cs_replica r, uint64_t first, uint64_t last) {
  for (size_t i = 0; i < p->len; i++)
    for (uint64_t c = first; c <= last; c++)
      if (!cs__dotset_contains(&p->acks[i], (cs_dot){r, c}))
        return false;
  return p->len > 0;
}

/*
 * Puts into b the deletion of the model's log runs every peer has; their
 * dots join the floor.
 *
 * Deleted documents are kept, even once every peer has seen the deletion: a
 * later write to the instance (or a restore) brings back the fields and
 * counters the delete kept, and a write made concurrently with the delete
 * may still arrive. A store that had purged the document would read it
 * without them, and diverge (docs/semantics.md, "Existence, delete and
 * restore").
 */
static int gc_model(cs_cleanup_stats *st, cs_store *s, cs_model *m, cs_wbatch *b) {
  peer_acks acks = {0};
  cs_buf lo = CS_BUF_INIT, hi = CS_BUF_INIT;
  cs_iter *it = NULL;
  int rc;

  if ((rc = load_acks(&acks, s, m->name)) != 0 || acks.len == 0)
    goto done;
  /* Log entries every peer has. */
  if ((rc = cs__key_name(&lo, m->name)) != 0 || (rc = cs__key_name(&hi, m->name)) != 0 ||
      (rc = cs__key_u64(&hi, UINT64_MAX)) != 0 || (rc = cs__key_u64(&hi, UINT64_MAX)) != 0 ||
      (rc = cs__buf_putc(&hi, 0)) != 0 ||
      (rc = cs__iter_new(&it, s->db, CS_CF_LOG, lo.ptr, lo.size, hi.ptr, hi.size)) != 0)
    goto done;
  for (; cs__iter_valid(it); cs__iter_next(it)) {
    cs_bytes k = cs__iter_key(it), v = cs__iter_value(it);
    cs_sync_msg seg;
    bool all = true;
    if ((rc = cs__segment_decode(&seg, v.ptr, v.len)) != 0)
      goto done;
    /* A run goes when every peer has every action of it. */
    const cs_wire_model *sm = &seg.models[0];
    for (size_t j = 0; j < sm->nactions && all; j++)
      all = all_have(&acks, sm->actions[j].origin, sm->actions[j].first, sm->actions[j].last);
    if (all) {
      cs__wbatch_delete(b, CS_CF_LOG, k.ptr, k.len);
      for (size_t j = 0; j < sm->nactions && rc == 0; j++)
        for (uint64_t c = sm->actions[j].first; c <= sm->actions[j].last && rc == 0; c++)
          rc = cs__dotset_add(&m->floor, (cs_dot){sm->actions[j].origin, c});
      st->log_entries_deleted += sm->nactions;
    }
    cs__sync_msg_dispose(&seg);
    if (rc)
      goto done;
  }
  rc = cs__iter_status(it);
done:
  cs__iter_free(it);
  acks_dispose(&acks);
  cs_buf_dispose(&lo);
  cs_buf_dispose(&hi);
  return rc;
}

/* Index entries whose document no longer has that conflict. */
static int gc_conflicts(cs_cleanup_stats *st, cs_store *s, cs_wbatch *b) {
  cs_iter *it = NULL;
  int rc;

  if ((rc = cs__iter_new(&it, s->db, CS_CF_CONFLICTS, NULL, 0, NULL, 0)) != 0)
    return rc;
  for (; cs__iter_valid(it); cs__iter_next(it)) {
    cs_bytes k = cs__iter_key(it), v = cs__iter_value(it);
    char *model = NULL, *instance = NULL, *field = NULL;
    cs_doc doc = CS_DOC_INIT;
    cs_conflict_list l = {0};
    bool open = false;
    size_t pos = 0;
    cs_model *m;
    if ((rc = cs__key_read_name(&model, v.ptr, v.len, &pos)) == 0 &&
        (rc = cs__key_read_name(&instance, v.ptr, v.len, &pos)) == 0 &&
        (m = cs__model_find(s, model)) != NULL) {
      rc = cs__doc_read(&doc, NULL, s, model, instance);
      if (rc == 0 && (rc = cs__doc_conflicts_of(&l, &doc, m, instance)) == 0)
        for (size_t i = 0; i < l.len; i++)
          open |= k.len == CS_CONFLICT_ID_LEN && memcmp(l.items[i].id, k.ptr, k.len) == 0;
      if (rc == CS_ENOTFOUND)
        rc = 0;
    }
    if (rc == 0 && !open) {
      cs__wbatch_delete(b, CS_CF_CONFLICTS, k.ptr, k.len);
      cs__conflicts_changed(s);
      st->conflicts_dropped++;
    }
    cs__conflict_list_dispose(&l);
    cs__doc_dispose(&doc);
    cs__free(model);
    cs__free(instance);
    cs__free(field);
    if (rc)
      break;
  }
  if (rc == 0)
    rc = cs__iter_status(it);
  cs__iter_free(it);
  return rc;
}

int cs_cleanup(cs_cleanup_stats *out, cs_store *s) {
  cs_cleanup_stats st = {0};
  cs_wbatch *b = NULL;
  int rc;

  CS_LOCK(s);
  if ((rc = cs__db_size(&st.bytes_before, s->db)) != 0 || (rc = cs__wbatch_new(&b, s->db)) != 0)
    goto done;
  for (size_t i = 0; i < s->nmodels; i++) {
    size_t dropped = 0;
    if ((rc = gc_model(&st, s, &s->models[i], b)) != 0 ||
        (rc = cs__changes_trim(&dropped, s, &s->models[i], NULL, 0, b)) != 0)
      goto done;
  }
  if ((rc = gc_conflicts(&st, s, b)) != 0)
    goto done;
  for (size_t i = 0; i < s->nmodels; i++) {
    cs_buf key = CS_BUF_INIT, val = CS_BUF_INIT;
    if ((rc = cs__buf_printf(&key, "floor/%s", s->models[i].name)) == 0 &&
        (rc = cs__codec_encode_dotset(&val, &s->models[i].floor)) == 0)
      cs__wbatch_put(b, CS_CF_META, key.ptr, key.size, val.ptr, val.size);
    cs_buf_dispose(&key);
    cs_buf_dispose(&val);
    if (rc)
      goto done;
  }
  if ((rc = cs__db_write(s->db, b, true)) != 0)
    goto done;
  for (int cf = 0; cf < CS_CF__COUNT; cf++)
    if ((rc = cs__db_compact(s->db, (cs_cf)cf)) != 0)
      goto done;
  rc = cs__db_size(&st.bytes_after, s->db);
done:
  if (rc) /* the floors grew in memory: re-read what is stored */
    for (size_t i = 0; i < s->nmodels; i++)
      cs__model_reload(s, &s->models[i]);
  CS_UNLOCK(s);
  cs__wbatch_free(b);
  if (out)
    *out = st;
  return rc;
}

/* ------------------------------------------------------------------ check */

static void report_bad(json_t *errors, const char *cf, cs_bytes key) {
  char *hex = cs__malloc(key.len * 2 + 1);
  if (!hex)
    return;
  cs__hex_encode(hex, key.ptr, key.len);
  json_array_append_new(
      errors, json_pack("{s:s, s:s, s:s}", "family", cf, "key", hex, "error", cs_errmsg()));
  cs__free(hex);
}

/* A change index entry: its key, then every name of its value. */
static int check_change(cs_bytes k, cs_bytes v) {
  cs_change_cursor c;
  char *name = NULL;
  uint64_t cursor;
  size_t pos = 0;
  int rc;
  if ((rc = cs__key_read_name(&name, k.ptr, k.len, &pos)) != 0 ||
      (rc = cs__key_read_u64(&cursor, k.ptr, k.len, &pos)) != 0)
    goto done;
  if (pos != k.len) {
    rc = cs__error(CS_ECORRUPT, "change index key of %zu bytes, expected %zu", k.len, pos);
    goto done;
  }
  if ((rc = cs__change_cursor_init(&c, v.ptr, v.len)) != 0)
    goto done;
  for (char *inst = NULL; (rc = cs__change_cursor_next(&inst, &c)) == 1;)
    cs__free(inst);
done:
  cs__free(name);
  return rc;
}

int cs_check(cs_buf *report, cs_store *s) {
  static const cs_cf checked[] = {CS_CF_DOCS, CS_CF_LOG, CS_CF_OUTBOX, CS_CF_CHANGES};
  json_t *errors = json_array(), *counts = json_object(), *violations = json_array(), *rep = NULL;
  cs_iter *it = NULL;
  int rc = 0;

  CS_LOCK(s);
  for (size_t f = 0; f < sizeof(checked) / sizeof(checked[0]); f++) {
    cs_cf cf = checked[f];
    size_t n = 0;
    if ((rc = cs__iter_new(&it, s->db, cf, NULL, 0, NULL, 0)) != 0)
      goto done;
    for (; cs__iter_valid(it); cs__iter_next(it), n++) {
      cs_bytes k = cs__iter_key(it), v = cs__iter_value(it);
      int bad = 0;
      if (cf == CS_CF_DOCS) {
        char *model = NULL, *instance = NULL;
        size_t pos = 0;
        cs_doc doc = CS_DOC_INIT;
        bad = cs__key_read_name(&model, k.ptr, k.len, &pos);
        if (!bad)
          bad = cs__key_read_name(&instance, k.ptr, k.len, &pos);
        if (!bad)
          bad = cs__doc_value_decode(&doc, NULL, v.ptr, v.len, model, instance);
        cs__doc_dispose(&doc);
        cs__free(model);
        cs__free(instance);
      } else if (cf == CS_CF_CHANGES) {
        bad = check_change(k, v);
      } else if (cf == CS_CF_LOG) {
        cs_sync_msg seg;
        if ((bad = cs__segment_decode(&seg, v.ptr, v.len)) == 0)
          cs__sync_msg_dispose(&seg);
      } else {
        cs_outbox_cursor c;
        cs_outbox_view ov;
        const uint8_t *rec;
        uint64_t seq;
        size_t len;
        bad = k.len != 8 || cs__outbox_cursor(&c, cs__get_be64(k.ptr), v.ptr, v.len) != 0;
        while (!bad && (bad = cs__outbox_next(&c, &seq, &rec, &len)) == 1)
          bad = cs__outbox_decode(&ov, rec, len);
      }
      if (bad)
        report_bad(errors, cs__cf_name(cf), k);
    }
    if ((rc = cs__iter_status(it)) != 0)
      goto done;
    cs__iter_free(it);
    it = NULL;
    json_object_set_new(counts, cs__cf_name(cf), json_integer((json_int_t)n));
  }
  if ((rc = cs__check_invariants(violations, s)) != 0)
    goto done;
  rep = json_pack("{s:O, s:O, s:O, s:b}", "counts", counts, "errors", errors, "violations",
                  violations, "ok", json_array_size(errors) == 0 && json_array_size(violations) == 0);
  if (!rep || (rc = cs__json_dump(report, rep)) != 0) {
    rc = rc ? rc : cs__error(CS_ENOMEM, "out of memory writing the check report");
    goto done;
  }
  if (json_array_size(errors))
    rc = cs__error(CS_ECORRUPT, "store '%s': %zu record(s) failed to decode; first: %s", s->path,
                   json_array_size(errors),
                   json_string_value(json_object_get(json_array_get(errors, 0), "error")));
  else if (json_array_size(violations)) {
    json_t *v0 = json_array_get(violations, 0);
    rc = cs__error(CS_ECORRUPT, "store '%s': %zu invariant violation(s); first, model '%s' (%s): %s",
                   s->path, json_array_size(violations),
                   json_string_value(json_object_get(v0, "model")),
                   json_string_value(json_object_get(v0, "rule")),
                   json_string_value(json_object_get(v0, "detail")));
  }
done:
  cs__iter_free(it);
  CS_UNLOCK(s);
  json_decref(errors);
  json_decref(counts);
  json_decref(violations);
  json_decref(rep);
  return rc;
}

/* ------------------------------------------------------------- invariants */

/* Hands fn every action of model m's log, run by run in key order. */
static int each_logged(cs_store *s, const cs_model *m,
                       int (*fn)(void *arg, const cs_wire_action *a, uint64_t run_last),
                       void *arg) {
  cs_buf lo = CS_BUF_INIT, hi = CS_BUF_INIT;
  cs_iter *it = NULL;
  int rc;

  if ((rc = cs__key_name(&lo, m->name)) != 0 || (rc = cs__key_name(&hi, m->name)) != 0 ||
      (rc = cs__key_u64(&hi, UINT64_MAX)) != 0 || (rc = cs__key_u64(&hi, UINT64_MAX)) != 0 ||
      (rc = cs__buf_putc(&hi, 0)) != 0 ||
      (rc = cs__iter_new(&it, s->db, CS_CF_LOG, lo.ptr, lo.size, hi.ptr, hi.size)) != 0)
    goto done;
  for (; cs__iter_valid(it) && rc == 0; cs__iter_next(it)) {
    cs_bytes k = cs__iter_key(it), v = cs__iter_value(it);
    size_t pos = lo.size;
    uint64_t origin, last;
    cs_sync_msg seg;
    if ((rc = cs__key_read_u64(&origin, k.ptr, k.len, &pos)) != 0 ||
        (rc = cs__key_read_u64(&last, k.ptr, k.len, &pos)) != 0 ||
        (rc = cs__segment_decode(&seg, v.ptr, v.len)) != 0) {
      cs__error_wrap(rc, "model '%s', log run of origin %016llx: ", m->name,
                     (unsigned long long)origin);
      break;
    }
    for (size_t j = 0; j < seg.models[0].nactions && rc == 0; j++)
      rc = fn(arg, &seg.models[0].actions[j], last);
    cs__sync_msg_dispose(&seg);
  }
  if (rc == 0)
    rc = cs__iter_status(it);
done:
  cs__iter_free(it);
  cs_buf_dispose(&lo);
  cs_buf_dispose(&hi);
  return rc;
}

typedef struct servable {
  cs_dotset dots; /* every logged action's dots, then the floor joined */
  uint64_t twice; /* logged dots met a second time */
} servable;

static int add_logged(void *arg, const cs_wire_action *a, uint64_t run_last) {
  servable *sv = arg;
  int rc = 0;
  (void)run_last;
  for (uint64_t c = a->first; c <= a->last && rc == 0; c++) {
    cs_dot d = {a->origin, c};
    if (cs__dotset_contains(&sv->dots, d))
      sv->twice++;
    else
      rc = cs__dotset_add(&sv->dots, d);
  }
  return rc;
}

/* What model m can serve: every logged action's dots and its floor. */
static int servable_dots(servable *out, cs_store *s, const cs_model *m) {
  int rc;
  memset(out, 0, sizeof(*out));
  if ((rc = each_logged(s, m, add_logged, out)) == 0)
    rc = cs__dotset_join(&out->dots, &m->floor);
  return rc;
}

/* Missing dots beyond this are not listed (a knowledge that large was
 * claimed by a hostile peer, not lost by a relay); check names them. */
#define GAPS_MAX ((size_t)1 << 20)

int cs__gaps_scan(cs_store *s) {
  static const char marker[] = "gaps_scanned";
  cs_buf v = CS_BUF_INIT;
  cs_wbatch *b = NULL;
  int rc = cs__db_get(&v, s->db, CS_CF_META, marker, strlen(marker));

  cs_buf_dispose(&v);
  if (rc != CS_ENOTFOUND)
    return rc;
  if ((rc = cs__wbatch_new(&b, s->db)) != 0)
    return rc;
  for (size_t i = 0; i < s->nmodels && rc == 0; i++) {
    cs_model *m = &s->models[i];
    servable sv;
    cs_dotset gap = CS_DOTSET_INIT;
    if ((rc = servable_dots(&sv, s, m)) == 0) {
      rc = cs__dotset_subtract(&gap, &m->knowledge, &sv.dots, GAPS_MAX);
      if (rc == CS_ETOOBIG)
        rc = 0, cs__dotset_clear(&gap);
    } else if (rc == CS_ECORRUPT || rc == CS_EVERSION) {
      /* A log run that does not decode: the store still opens (check names
       * the record); the model is not scanned. */
      rc = 0;
      cs__dotset_clear(&gap);
    }
    if (rc == 0 && (gap.vv_len || gap.extra_len)) {
      cs__dotset_dispose(&m->missing);
      m->missing = gap;
      memset(&gap, 0, sizeof(gap));
      m->dirty_missing = true;
      rc = cs__store_put_meta(s, b, &m, 1);
    }
    cs__dotset_dispose(&gap);
    cs__dotset_dispose(&sv.dots);
  }
  if (rc == 0) {
    cs__wbatch_put(b, CS_CF_META, marker, strlen(marker), "\1", 1);
    rc = cs__db_write(s->db, b, true);
  }
  cs__wbatch_free(b);
  if (rc)
    cs__error_wrap(rc, "store '%s': looking for causal gaps left by older builds: ", s->path);
  return rc;
}

/* The second pass of the check: each logged action's context. */
typedef struct ctx_check {
  const cs_dotset *servable;
  uint64_t unservable; /* actions whose context the store cannot serve */
  cs_dot first_bad;
} ctx_check;

static int check_logged_ctx(void *arg, const cs_wire_action *a, uint64_t run_last) {
  ctx_check *cc = arg;
  (void)run_last;
  if (!cs__dotset_subset(&a->ctx, cc->servable) && cc->unservable++ == 0)
    cc->first_bad = (cs_dot){a->origin, a->first};
  return 0;
}

static void violation(json_t *list, const char *model, const char *rule, const char *fmt, ...) {
  char text[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof(text), fmt, ap);
  va_end(ap);
  json_array_append_new(list,
                        json_pack("{s:s, s:s, s:s}", "model", model, "rule", rule, "detail", text));
}

/* Two entries of one replica in one register (or the existence entries):
 * a replica's later write covers its earlier one, so they cannot both be
 * siblings. Returns the field's name ("" for existence) or NULL. */
static const char *same_replica_siblings(const cs_doc *d) {
  for (size_t e = 1; e < d->nexist; e++)
    if (d->exist[e].dot.replica == d->exist[e - 1].dot.replica)
      return "";
  for (size_t f = 0; f < d->nfields; f++) {
    const cs_reg *r = &d->fields[f].u.reg;
    if (d->fields[f].kind != CS_KIND_REG)
      continue;
    for (size_t e = 1; e < r->len; e++)
      if (r->entries[e].dot.replica == r->entries[e - 1].dot.replica)
        return d->fields[f].name;
  }
  return NULL;
}

int cs__check_invariants(json_t *out, cs_store *s) {
  cs_iter *it = NULL;
  int rc = 0;

  for (size_t i = 0; i < s->nmodels && rc == 0; i++) {
    const cs_model *m = &s->models[i];
    servable sv;
    cs_dotset unexplained = CS_DOTSET_INIT, extra = CS_DOTSET_INIT;
    ctx_check cc = {0};
    if ((rc = servable_dots(&sv, s, m)) != 0) {
      cs__dotset_dispose(&sv.dots);
      /* A run that does not decode is listed among the errors already; the
       * model's log rules cannot be judged without it. */
      if (rc == CS_ECORRUPT || rc == CS_EVERSION) {
        rc = 0;
        continue;
      }
      break;
    }
    cc.servable = &sv.dots;
    if ((rc = each_logged(s, m, check_logged_ctx, &cc)) == 0 &&
        (rc = cs__dotset_subtract(&unexplained, &m->knowledge, &sv.dots, GAPS_MAX)) == CS_ETOOBIG)
      rc = 0; /* counted below as "more than" */
    if (rc == 0)
      rc = cs__dotset_subtract(&extra, &sv.dots, &m->knowledge, GAPS_MAX);
    if (rc == CS_ETOOBIG)
      rc = 0;
    if (rc == 0) {
      uint64_t nu = cs__dotset_count(&unexplained), nm = cs__dotset_count(&m->missing);
      if (nm)
        violation(out, m->name, "missing",
                  "%llu dot(s) of the knowledge await their actions (a causal gap an older "
                  "build merged); the next full sync with a replica that has them repairs it",
                  (unsigned long long)nm);
      if (!cs__dotset_subset(&unexplained, &m->missing))
        violation(out, m->name, "knowledge",
                  "the knowledge holds %s%llu dot(s) that neither the log nor the floor holds, "
                  "and not all are listed as missing: the store claims what it cannot serve",
                  nu >= GAPS_MAX ? "more than " : "", (unsigned long long)nu);
      if (extra.vv_len || extra.extra_len)
        violation(out, m->name, "log",
                  "the log or floor holds %llu dot(s) the knowledge lacks",
                  (unsigned long long)cs__dotset_count(&extra));
      if (sv.twice)
        violation(out, m->name, "log", "%llu logged dot(s) are logged twice",
                  (unsigned long long)sv.twice);
      if (cc.unservable)
        violation(out, m->name, "gap",
                  "%llu logged action(s) cover dots the store cannot serve, the first of "
                  "origin %016llx at dot %llu: serving them would hand on a causal gap",
                  (unsigned long long)cc.unservable, (unsigned long long)cc.first_bad.replica,
                  (unsigned long long)cc.first_bad.counter);
    }
    cs__dotset_dispose(&sv.dots);
    cs__dotset_dispose(&unexplained);
    cs__dotset_dispose(&extra);
  }
  /* Log runs of a model the store has no knowledge of: written without the
   * meta records of their batch. */
  if (rc == 0 && (rc = cs__iter_new(&it, s->db, CS_CF_LOG, NULL, 0, NULL, 0)) == 0) {
    char *last = NULL;
    for (; cs__iter_valid(it); cs__iter_next(it)) {
      cs_bytes k = cs__iter_key(it);
      char *model = NULL;
      size_t pos = 0;
      if (cs__key_read_name(&model, k.ptr, k.len, &pos) == 0 &&
          (!last || strcmp(model, last) != 0) && !cs__model_find(s, model))
        violation(out, model, "log", "log runs of a model this store has no knowledge of");
      cs__free(last);
      last = model;
    }
    cs__free(last);
    rc = cs__iter_status(it);
    cs__iter_free(it);
    it = NULL;
  }
  /* Documents: of a known model, with no two siblings from one replica. */
  if (rc == 0 && (rc = cs__iter_new(&it, s->db, CS_CF_DOCS, NULL, 0, NULL, 0)) == 0) {
    for (; cs__iter_valid(it); cs__iter_next(it)) {
      cs_bytes k = cs__iter_key(it), v = cs__iter_value(it);
      char *model = NULL, *instance = NULL;
      size_t pos = 0;
      cs_doc doc = CS_DOC_INIT;
      const char *field;
      if (cs__key_read_name(&model, k.ptr, k.len, &pos) == 0 &&
          cs__key_read_name(&instance, k.ptr, k.len, &pos) == 0 && !cs__model_find(s, model))
        violation(out, model, "knowledge",
                  "instance '%s' is stored, but this store has no knowledge of its model",
                  instance);
      else if (model && instance &&
               cs__doc_value_decode(&doc, NULL, v.ptr, v.len, model, instance) == 0 &&
               (field = same_replica_siblings(&doc)) != NULL)
        violation(out, model, "siblings",
                  "instance '%s', %s%s%s: two entries written by one replica, which never "
                  "writes concurrently with itself (an action applied without one it followed)",
                  instance, *field ? "field '" : "existence", field, *field ? "'" : "");
      cs__doc_dispose(&doc);
      cs__free(model);
      cs__free(instance);
    }
    rc = cs__iter_status(it);
  }
  cs__iter_free(it);
  return rc;
}
