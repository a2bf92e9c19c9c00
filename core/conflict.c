/*
 * Conflicts: the index of open conflicts, their JSON form, and resolution.
 *
 * The CRDT core says which conflicts a document has and names them; the
 * engine keeps an index (id -> model, instance, field) updated in the same
 * write as every document change, so listing them is a scan of the index.
 */
#include <jansson.h>

#include "core/engine.h"

bool cs__doc_may_conflict(const cs_doc *doc) {
  if (doc->nexist > 1)
    return true;
  for (size_t i = 0; i < doc->nexist; i++)
    if (!doc->exist[i].alive)
      return true;
  for (size_t i = 0; i < doc->nfields; i++)
    if (doc->fields[i].kind == CS_KIND_REG && doc->fields[i].u.reg.len > 1)
      return true;
  return false;
}

int cs__doc_conflicts_of(cs_conflict_list *out, const cs_doc *doc, cs_model *m,
                         const char *instance) {
  return cs__doc_conflicts(out, doc, m->name, instance, cs__field_is_silent, m, cs__blake2b);
}

/* `"key":` with the separator before it unless first. Keys are this file's
 * own literals, with nothing to escape. */
static int put_key(cs_buf *out, const char *key, bool first) {
  int rc = first ? cs__buf_putc(out, '"') : cs__buf_put(out, ",\"", 2);
  if (rc == 0)
    rc = cs__buf_put(out, key, strlen(key));
  return rc ? rc : cs__buf_put(out, "\":", 2);
}

static int put_name(cs_buf *out, const char *key, const char *name) {
  int rc = put_key(out, key, false);
  return rc ? rc : cs__json_put_str(out, name, strlen(name));
}

/* One sibling: {"deleted"?, "replica", "time", "value"?} in key order. */
static int put_sibling(cs_buf *out, int deleted, uint64_t replica, uint64_t time_ms,
                       const cs_val *val) {
  char text[96];
  uint8_t be[8];
  size_t n = 0;
  int rc;

  /* Written by hand: a listing writes thousands of these. */
  text[n++] = '{';
  if (deleted >= 0) {
    const char *d = deleted ? "\"deleted\":true," : "\"deleted\":false,";
    memcpy(text + n, d, strlen(d));
    n += strlen(d);
  }
  memcpy(text + n, "\"replica\":\"", 11);
  n += 11;
  cs__put_be64(be, replica);
  cs__hex_encode(text + n, be, 8);
  n += 16;
  memcpy(text + n, "\",\"time\":", 9);
  n += 9;
  n += cs__fmt_u64(text + n, time_ms);
  rc = cs__buf_put(out, text, n);
  if (rc == 0 && val && (rc = put_key(out, "value", false)) == 0)
    rc = cs__json_put_val(out, val);
  return rc ? rc : cs__buf_putc(out, '}');
}

/* Did the delete of conflict c miss a write to field f (a dot of c's list)? */
static bool field_updated(const cs_field *f, const cs_conflict *c) {
  for (size_t k = 0; k < c->ndots; k++) {
    if (f->kind == CS_KIND_REG) {
      for (size_t e = 0; e < f->u.reg.len; e++)
        if (cs__dot_cmp(&f->u.reg.entries[e].dot, &c->dots[k]) == 0)
          return true;
    } else if (f->kind == CS_KIND_SET) {
      for (size_t e = 0; e < f->u.set.len; e++)
        for (size_t d = 0; d < f->u.set.elems[e].ndots; d++)
          if (cs__dot_cmp(&f->u.set.elems[e].dots[d], &c->dots[k]) == 0)
            return true;
    }
  }
  return false;
}

/*
 * The conflict index record (docs/storage-format.md): the names, then what
 * the conflict's JSON is made of, in binary, from which listing renders the
 * JSON without the document. Records of earlier builds hold the JSON itself
 * (it starts with '{'). The binary part:
 *
 *   u8 2 (version), u8 kind, u32 BE n, then n siblings:
 *     u8 flags (1: has a "deleted" key, 2: deleted), u64 BE replica,
 *     u64 BE time (ms), and for a value conflict its value: u8 type, then
 *     bool u8 | int u64 BE | double u64 BE (bits) | str, bytes: u32 BE
 *     length + bytes | null: nothing;
 *   value conflict: u32 BE index of the visible sibling (n: none);
 *   delete/update: u32 BE m, m field names (u32 BE length + bytes).
 */
#define RECORD_V2 2

static int put_u8(cs_buf *out, uint8_t v) { return cs__buf_put(out, &v, 1); }

static int put_u32(cs_buf *out, uint32_t v) {
  uint8_t b[4];
  cs__put_be32(b, v);
  return cs__buf_put(out, b, 4);
}

static int put_u64(cs_buf *out, uint64_t v) {
  uint8_t b[8];
  cs__put_be64(b, v);
  return cs__buf_put(out, b, 8);
}

static int put_bytes(cs_buf *out, const char *p, size_t len) {
  int rc = put_u32(out, (uint32_t)len);
  return rc ? rc : cs__buf_put(out, p, len);
}

static int put_value(cs_buf *out, const cs_val *v) {
  uint64_t bits;
  int rc = put_u8(out, v->type);
  if (rc)
    return rc;
  switch (v->type) {
  case CS_VAL_BOOL:
    return put_u8(out, v->u.b ? 1 : 0);
  case CS_VAL_INT:
    return put_u64(out, (uint64_t)v->u.i);
  case CS_VAL_DOUBLE:
    memcpy(&bits, &v->u.d, 8);
    return put_u64(out, bits);
  case CS_VAL_STR:
  case CS_VAL_BYTES:
    return put_bytes(out, cs__val_data(v), v->len);
  default:
    return 0;
  }
}

int cs__conflict_record(cs_buf *out, const cs_doc *doc, const cs_conflict *c) {
  bool value = c->kind == CS_CONFLICT_VALUE;
  const cs_field *f = value && c->field ? cs__doc_field(doc, c->field) : NULL;
  size_t start = out->size, n = value ? (f ? f->u.reg.len : 0) : doc->nexist;
  int rc;

  if ((rc = put_u8(out, RECORD_V2)) != 0 || (rc = put_u8(out, (uint8_t)c->kind)) != 0 ||
      (rc = put_u32(out, (uint32_t)n)) != 0)
    goto done;
  for (size_t i = 0; i < n && rc == 0; i++) {
    if (value) {
      const cs_reg_entry *e = &f->u.reg.entries[i];
      if ((rc = put_u8(out, 0)) == 0 && (rc = put_u64(out, e->dot.replica)) == 0 &&
          (rc = put_u64(out, CS_HLC_MS(e->hlc))) == 0)
        rc = put_value(out, &e->val);
    } else {
      const cs_exist_entry *e = &doc->exist[i];
      if ((rc = put_u8(out, (uint8_t)(1 | (e->alive ? 0 : 2)))) == 0 &&
          (rc = put_u64(out, e->dot.replica)) == 0)
        rc = put_u64(out, CS_HLC_MS(e->hlc));
    }
  }
  if (rc == 0 && value) {
    const cs_reg_entry *vis = f ? cs__reg_visible(&f->u.reg) : NULL;
    rc = put_u32(out, (uint32_t)(vis ? (size_t)(vis - f->u.reg.entries) : n));
  } else if (rc == 0) {
    /* The fields written concurrently with the delete (dots past the
     * existence entries in the conflict's dot list). */
    uint32_t m = 0;
    for (size_t i = 0; i < doc->nfields; i++)
      m += field_updated(&doc->fields[i], c);
    rc = put_u32(out, m);
    for (size_t i = 0; i < doc->nfields && rc == 0; i++)
      if (field_updated(&doc->fields[i], c))
        rc = put_bytes(out, doc->fields[i].name, strlen(doc->fields[i].name));
  }
done:
  if (rc) {
    out->size = start;
    return cs__error_wrap(rc, "recording a conflict: ");
  }
  return 0;
}

/* A bounded reader over a record's binary part (untrusted: it is on disk). */
typedef struct rec_reader {
  const uint8_t *p, *end;
  bool bad;
} rec_reader;

static const uint8_t *take(rec_reader *r, size_t n) {
  const uint8_t *at = r->p;
  if (r->bad || (size_t)(r->end - r->p) < n) {
    r->bad = true;
    return NULL;
  }
  r->p += n;
  return at;
}

static uint8_t get_u8(rec_reader *r) {
  const uint8_t *p = take(r, 1);
  return p ? *p : 0;
}

static uint32_t get_u32(rec_reader *r) {
  const uint8_t *p = take(r, 4);
  return p ? cs__get_be32(p) : 0;
}

static uint64_t get_u64(rec_reader *r) {
  const uint8_t *p = take(r, 8);
  return p ? cs__get_be64(p) : 0;
}

/* A value pointing into the record (never disposed). */
static cs_val get_value(rec_reader *r) {
  cs_val v;
  uint64_t bits;
  memset(&v, 0, sizeof(v));
  v.type = get_u8(r);
  switch (v.type) {
  case CS_VAL_NULL:
    break;
  case CS_VAL_BOOL:
    v.u.b = get_u8(r) != 0;
    break;
  case CS_VAL_INT:
    v.u.i = (int64_t)get_u64(r);
    break;
  case CS_VAL_DOUBLE:
    bits = get_u64(r);
    memcpy(&v.u.d, &bits, 8);
    break;
  case CS_VAL_STR:
  case CS_VAL_BYTES:
    v.len = get_u32(r); /* a view into the record, not owned */
    v.u.ptr = (char *)take(r, v.len);
    break;
  default:
    r->bad = true;
  }
  return v;
}

/*
 * One conflict as the JSON object cs_list_conflicts shows, keys in order,
 * from its index record: written directly rather than built as a jansson
 * tree and dumped, since a list may hold thousands.
 */
static int render_record(cs_buf *out, const uint8_t *id_raw, const char *model,
                         const char *instance, const char *field, const uint8_t *p, size_t len) {
  char id[2 * CS_CONFLICT_ID_LEN + 1];
  rec_reader r = {p, p + len, false};
  size_t start = out->size;
  uint8_t kind;
  uint32_t n;
  bool value;
  int rc;

  cs__hex_encode(id, id_raw, CS_CONFLICT_ID_LEN);
  (void)get_u8(&r); /* the version, checked by the caller */
  kind = get_u8(&r);
  n = get_u32(&r);
  value = kind == CS_CONFLICT_VALUE;
  if (kind != CS_CONFLICT_VALUE && kind != CS_CONFLICT_DELETE_UPDATE)
    r.bad = true;
  if (r.bad)
    goto bad;
  if ((rc = cs__buf_puts(out, "{\"field\":")) != 0 ||
      (rc = value ? cs__json_put_str(out, field, strlen(field)) : cs__buf_puts(out, "null")) !=
          0 ||
      (rc = put_name(out, "id", id)) != 0 || (rc = put_name(out, "instance", instance)) != 0 ||
      (rc = put_name(out, "kind", value ? "value" : "delete_update")) != 0 ||
      (rc = put_name(out, "model", model)) != 0 || (rc = put_key(out, "siblings", false)) != 0 ||
      (rc = cs__buf_putc(out, '[')) != 0)
    goto done;
  {
    const uint8_t *first = r.p;
    for (uint32_t i = 0; i < n && rc == 0 && !r.bad; i++) {
      uint8_t flags = get_u8(&r);
      uint64_t replica = get_u64(&r), time_ms = get_u64(&r);
      cs_val v;
      memset(&v, 0, sizeof(v));
      if (value)
        v = get_value(&r);
      if (r.bad)
        break;
      if (i == 0 || (rc = cs__buf_putc(out, ',')) == 0)
        rc = put_sibling(out, flags & 1 ? (flags & 2) != 0 : -1, replica, time_ms,
                         value ? &v : NULL);
    }
    if (r.bad)
      goto bad;
    if (rc == 0 && value) {
      uint32_t vis = get_u32(&r);
      if (r.bad || vis > n)
        goto bad;
      if ((rc = cs__buf_puts(out, "],\"visible\":")) == 0 && vis == n)
        rc = cs__buf_puts(out, "null");
      else if (rc == 0) {
        /* Walk to the visible sibling again. */
        rec_reader w = {first, r.end, false};
        cs_val v;
        memset(&v, 0, sizeof(v));
        for (uint32_t i = 0; i <= vis; i++) {
          (void)take(&w, 17);
          v = get_value(&w);
        }
        rc = cs__json_put_val(out, &v);
      }
    } else if (rc == 0) {
      uint32_t m = get_u32(&r);
      rc = cs__buf_puts(out, "],\"updated_fields\":[");
      for (uint32_t i = 0; i < m && rc == 0 && !r.bad; i++) {
        uint32_t l = get_u32(&r);
        const uint8_t *name = take(&r, l);
        if (name && (i == 0 || (rc = cs__buf_putc(out, ',')) == 0))
          rc = cs__json_put_str(out, (const char *)name, l);
      }
      if (r.bad)
        goto bad;
      if (rc == 0)
        rc = cs__buf_puts(out, "],\"visible\":null");
    }
  }
  if (rc == 0 && r.p != r.end)
    goto bad;
  if (rc == 0)
    rc = cs__buf_putc(out, '}');
done:
  if (rc) {
    out->size = start;
    if (out->ptr)
      out->ptr[start] = '\0';
  }
  return rc;
bad:
  out->size = start;
  if (out->ptr)
    out->ptr[start] = '\0';
  return cs__error(CS_ECORRUPT, "conflict index record %s of '%s/%s': damaged at byte %zu", id,
                   model, instance, (size_t)(r.p - p));
}

/* One index record: (model, instance, field) as three length-prefixed names. */
static int index_read(char **model, char **instance, char **field, cs_bytes v) {
  size_t pos = 0;
  int rc;
  *model = *instance = *field = NULL;
  if ((rc = cs__key_read_name(model, v.ptr, v.len, &pos)) != 0 ||
      (rc = cs__key_read_name(instance, v.ptr, v.len, &pos)) != 0 ||
      (rc = cs__key_read_name(field, v.ptr, v.len, &pos)) != 0)
    return cs__error_wrap(rc, "conflict index record: ");
  return 0;
}

/*
 * Every open conflict as a JSON array. Each index record carries what its
 * conflict's JSON is made of, recorded when the conflict appeared (it is a
 * function of the siblings, which the id names), so listing decodes no
 * document. The
 * array is kept until the index changes: a sync that opens or closes no
 * conflict lists them all for the cost of a copy.
 */
static int render_list(cs_buf *out, size_t *out_count, cs_store *s) {
  cs_iter *it = NULL;
  bool first = true;
  int rc;

  *out_count = 0;
  if ((rc = cs__buf_putc(out, '[')) != 0 ||
      (rc = cs__iter_new(&it, s->db, CS_CF_CONFLICTS, NULL, 0, NULL, 0)) != 0)
    goto done;
  for (; cs__iter_valid(it); cs__iter_next(it)) {
    cs_bytes k = cs__iter_key(it), v = cs__iter_value(it);
    size_t pos = 0;
    char *names[3] = {NULL, NULL, NULL};
    for (int i = 0; i < 3 && rc == 0; i++)
      rc = cs__key_read_name(&names[i], v.ptr, v.len, &pos);
    if (rc == 0 && (pos >= v.len || k.len != CS_CONFLICT_ID_LEN ||
                    (v.ptr[pos] != '{' && v.ptr[pos] != RECORD_V2)))
      rc = cs__error(CS_ECORRUPT, "conflict index record of %zu bytes (key of %zu) is damaged",
                     v.len, k.len);
    if (rc == 0 && !first)
      rc = cs__buf_putc(out, ',');
    if (rc == 0 && v.ptr[pos] == '{') /* an earlier build's record: the JSON itself */
      rc = cs__buf_put(out, v.ptr + pos, v.len - pos);
    else if (rc == 0)
      rc = render_record(out, k.ptr, names[0], names[1], names[2], v.ptr + pos, v.len - pos);
    for (int i = 0; i < 3; i++)
      cs__free(names[i]);
    if (rc) {
      cs__error_wrap(rc, "conflict index: ");
      goto done;
    }
    first = false;
    (*out_count)++;
  }
  if ((rc = cs__iter_status(it)) == 0)
    rc = cs__buf_putc(out, ']');
done:
  cs__iter_free(it);
  return rc;
}

void cs__conflicts_changed(cs_store *s) {
  s->conflicts_cached = false;
  cs_buf_dispose(&s->conflicts_json);
}

int cs__conflict_list_json(cs_buf *out, size_t *out_count, cs_store *s) {
  int rc;
  if (!s->conflicts_cached) {
    cs_buf_dispose(&s->conflicts_json);
    if ((rc = render_list(&s->conflicts_json, &s->nconflicts, s)) != 0) {
      cs_buf_dispose(&s->conflicts_json);
      return rc;
    }
    s->conflicts_cached = true;
  }
  *out_count = s->nconflicts;
  return cs__buf_put(out, s->conflicts_json.ptr, s->conflicts_json.size);
}

int cs_list_conflicts(cs_buf *out, cs_store *s) {
  size_t n;
  int rc;
  CS_LOCK(s);
  rc = cs__conflict_list_json(out, &n, s);
  CS_UNLOCK(s);
  return rc;
}

static int resolution_delta(cs_delta *d, const cs_doc *doc, const cs_conflict *c,
                            const cs_resolution *r, const char *id) {
  const cs_field *f = c->field ? cs__doc_field(doc, c->field) : NULL;
  json_t *j;
  cs_val v;
  int rc;

  switch (r->kind) {
  case CS_RESOLVE_PICK:
    if (c->kind != CS_CONFLICT_VALUE || !f)
      return cs__error(CS_EINVAL, "conflict %s is a delete/update conflict: resolve it with "
                                  "keep-deleted or restore",
                       id);
    if (r->pick >= f->u.reg.len)
      return cs__error(CS_EINVAL, "conflict %s has %zu siblings; cannot pick %zu", id,
                       f->u.reg.len, r->pick);
    return cs__delta_reg_set(d, doc, c->field, &f->u.reg.entries[r->pick].val);
  case CS_RESOLVE_VALUE:
    if (c->kind != CS_CONFLICT_VALUE)
      return cs__error(CS_EINVAL, "conflict %s is a delete/update conflict: resolve it with "
                                  "keep-deleted or restore",
                       id);
    if (!r->value_json || (j = json_loads(r->value_json, JSON_DECODE_ANY, NULL)) == NULL)
      return cs__error(CS_EINVAL, "conflict %s: the new value is not JSON", id);
    rc = cs__json_to_val(&v, j, c->field);
    json_decref(j);
    if (rc)
      return rc;
    rc = cs__delta_reg_set(d, doc, c->field, &v);
    cs__val_dispose(&v);
    return rc;
  case CS_RESOLVE_KEEP_DELETED:
  case CS_RESOLVE_RESTORE:
    if (c->kind != CS_CONFLICT_DELETE_UPDATE)
      return cs__error(CS_EINVAL, "conflict %s is a value conflict: resolve it with pick or value",
                       id);
    return cs__delta_exist(d, doc, r->kind == CS_RESOLVE_RESTORE);
  }
  return cs__error(CS_EINVAL, "unknown resolution kind %d", (int)r->kind);
}

int cs_resolve_conflict(cs_store *s, const char *id, const cs_resolution *r) {
  uint8_t raw[CS_CONFLICT_ID_LEN];
  char *model = NULL, *instance = NULL, *field = NULL;
  cs_buf val = CS_BUF_INIT;
  cs_conflict_list l = {0};
  cs_local_ctx lc;
  cs_doc_cache *c;
  cs_doc_slot *slot;
  cs_delta d;
  bool begun = false, delta_live = false;
  const cs_conflict *hit = NULL;
  char data[96];
  int rc;

  if (!id || cs__hex_decode(raw, CS_CONFLICT_ID_LEN, id) != 0)
    return cs__error(CS_EINVAL, "'%s' is not a conflict id (%d hex digits)", id ? id : "",
                     2 * CS_CONFLICT_ID_LEN);
  if (!r)
    return cs__error(CS_EINVAL, "conflict %s: resolution is NULL", id);
  CS_LOCK(s);
  rc = cs__db_get(&val, s->db, CS_CF_CONFLICTS, raw, CS_CONFLICT_ID_LEN);
  if (rc == CS_ENOTFOUND) {
    rc = cs__error(CS_ENOTFOUND, "no open conflict has id %s", id);
    goto done;
  }
  if (rc || (rc = index_read(&model, &instance, &field, (cs_bytes){(const uint8_t *)val.ptr,
                                                                  val.size})) != 0)
    goto done;
  if ((rc = cs__local_begin(&lc, s)) != 0)
    goto done;
  begun = true;
  if ((rc = cs__local_cache(&c, &lc, model)) != 0 ||
      (rc = cs__cache_get(&slot, c, s, instance)) != 0 ||
      (rc = cs__doc_conflicts_of(&l, &slot->doc, c->model, instance)) != 0)
    goto done;
  for (size_t i = 0; i < l.len; i++)
    if (memcmp(l.items[i].id, raw, CS_CONFLICT_ID_LEN) == 0)
      hit = &l.items[i];
  if (!hit) {
    rc = cs__error(CS_ENOTFOUND, "conflict %s is no longer open", id);
    goto done;
  }
  if ((rc = cs__delta_init(&d, &c->model->knowledge, s->self,
                           cs__clock_tick(&s->clock, cs__now_ms()))) != 0)
    goto done;
  delta_live = true;
  if ((rc = resolution_delta(&d, &slot->doc, hit, r, id)) != 0)
    goto done;
  snprintf(data, sizeof(data), "{\"conflict\":\"%s\",\"resolution\":%d}", id, (int)r->kind);
  if ((rc = cs__local_apply(&lc, c, slot, &d, "resolve", data)) != 0)
    goto done;
  rc = cs__local_commit(&lc);
done:
  if (delta_live)
    cs__delta_dispose(&d);
  if (begun)
    cs__local_dispose(&lc);
  CS_UNLOCK(s);
  cs__conflict_list_dispose(&l);
  cs__free(model);
  cs__free(instance);
  cs__free(field);
  cs_buf_dispose(&val);
  return rc;
}
