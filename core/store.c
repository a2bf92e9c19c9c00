/* Opening and closing a store: identity, format version, models and meta records. */
#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>

#include "core/engine.h"

/* ------------------------------------------------------------------ models */

static int model_cmp_name(const void *key, const void *elem) {
  return strcmp((const char *)key, ((const cs_model *)elem)->name);
}

cs_model *cs__model_find(cs_store *s, const char *name) {
  if (s->nmodels == 0)
    return NULL; /* bsearch on a NULL array is undefined even for n == 0 */
  return bsearch(name, s->models, s->nmodels, sizeof(cs_model), model_cmp_name);
}

static void model_dispose(cs_model *m);

int cs__model_get(cs_model **out, cs_store *s, const char *name) {
  size_t lo = 0, hi = s->nmodels;
  cs_model *m;
  char *copy;
  int rc;

  if ((m = cs__model_find(s, name)) != NULL) {
    *out = m;
    return 0;
  }
  if (name[0] == '\0')
    return cs__error(CS_EINVAL, "model name is empty");
  size_t len = strlen(name), bad;
  if (len > CS_WIRE_MAX_NAME)
    return cs__error(CS_EINVAL, "model name is longer than %d bytes", CS_WIRE_MAX_NAME);
  if ((bad = cs__utf8_check(name, len)) < len)
    return cs__error(CS_EINVAL, "model name is not UTF-8 (byte %zu)", bad);
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (strcmp(s->models[mid].name, name) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  /* The name first: once the array has grown (and maybe moved) nothing may
   * fail, since callers re-point what they hold only on success. */
  if ((copy = cs__strdup(name)) == NULL)
    return CS_ENOMEM;
  if ((rc = cs__array_grow((void **)&s->models, &s->models_cap, s->nmodels + 1,
                           sizeof(cs_model))) != 0) {
    cs__free(copy);
    return rc;
  }
  memmove(&s->models[lo + 1], &s->models[lo], (s->nmodels - lo) * sizeof(cs_model));
  m = &s->models[lo];
  memset(m, 0, sizeof(*m));
  m->name = copy;
  s->nmodels++;
  *out = m;
  return 0;
}

void cs__model_drop(cs_store *s, const char *name) {
  cs_model *m = cs__model_find(s, name);
  size_t i;
  if (!m)
    return;
  i = (size_t)(m - s->models);
  model_dispose(m);
  memmove(&s->models[i], &s->models[i + 1], (s->nmodels - i - 1) * sizeof(cs_model));
  s->nmodels--;
}

static void model_dispose(cs_model *m) {
  for (size_t i = 0; i < m->nfields; i++)
    cs__free(m->fields[i].name);
  cs__free(m->fields);
  cs__dotset_dispose(&m->knowledge);
  cs__dotset_dispose(&m->floor);
  cs__dotset_dispose(&m->missing);
  cs__free(m->name);
}

static int field_cmp_name(const void *key, const void *elem) {
  return strcmp((const char *)key, ((const cs_schema_field *)elem)->name);
}

cs_schema_field *cs__schema_field(cs_model *m, const char *name) {
  if (m->nfields == 0)
    return NULL;
  return bsearch(name, m->fields, m->nfields, sizeof(cs_schema_field), field_cmp_name);
}

int cs__schema_field_set(cs_model *m, const char *name, uint8_t kind, uint8_t policy) {
  cs_schema_field *f = cs__schema_field(m, name);
  size_t lo = 0, hi = m->nfields;
  int rc;

  if (f) {
    f->kind = kind;
    f->policy = policy;
    m->dirty_schema = true;
    return 0;
  }
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (strcmp(m->fields[mid].name, name) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  if ((rc = cs__array_grow((void **)&m->fields, &m->fields_cap, m->nfields + 1,
                           sizeof(cs_schema_field))) != 0)
    return rc;
  memmove(&m->fields[lo + 1], &m->fields[lo], (m->nfields - lo) * sizeof(cs_schema_field));
  f = &m->fields[lo];
  if ((f->name = cs__strdup(name)) == NULL) {
    memmove(&m->fields[lo], &m->fields[lo + 1], (m->nfields - lo) * sizeof(cs_schema_field));
    return CS_ENOMEM;
  }
  f->kind = kind;
  f->policy = policy;
  m->nfields++;
  m->dirty_schema = true;
  return 0;
}

bool cs__field_is_silent(const char *field, void *model) {
  cs_schema_field *f = cs__schema_field((cs_model *)model, field);
  return f && f->policy == CS_POLICY_SILENT;
}

/* ------------------------------------------------------------ meta records */

static int meta_put_u64(cs_wbatch *b, const char *key, uint64_t v) {
  uint8_t be[8];
  cs__put_be64(be, v);
  cs__wbatch_put(b, CS_CF_META, key, strlen(key), be, 8);
  return 0;
}

static int schema_to_json(cs_buf *out, const cs_model *m) {
  json_t *arr = json_array();
  int rc = CS_ENOMEM;

  if (!arr)
    return cs__error(CS_ENOMEM, "out of memory encoding schema");
  for (size_t i = 0; i < m->nfields; i++) {
    json_t *f = json_pack("{s:s, s:i, s:i}", "name", m->fields[i].name, "kind",
                          (int)m->fields[i].kind, "policy", (int)m->fields[i].policy);
    if (!f || json_array_append_new(arr, f) != 0)
      goto done;
  }
  rc = cs__json_dump(out, arr);
done:
  if (rc == CS_ENOMEM && cs_errcode() != CS_ENOMEM)
    cs__error(CS_ENOMEM, "out of memory encoding schema");
  json_decref(arr);
  return rc;
}

int cs__store_put_meta(cs_store *s, cs_wbatch *b, cs_model *const *models, size_t n) {
  cs_buf key = CS_BUF_INIT, val = CS_BUF_INIT;
  int rc = 0;

  meta_put_u64(b, "clock", s->clock.last);
  meta_put_u64(b, "cursor", s->cursor);
  meta_put_u64(b, "outbox_seq", s->outbox_seq);
  for (size_t i = 0; i < n; i++) {
    cs_model *m = models[i];
    cs__buf_clear(&key);
    cs__buf_clear(&val);
    if ((rc = cs__buf_printf(&key, "knowledge/%s", m->name)) != 0 ||
        (rc = cs__codec_encode_dotset(&val, &m->knowledge)) != 0)
      goto done;
    cs__wbatch_put(b, CS_CF_META, key.ptr, key.size, val.ptr, val.size);
    if (m->dirty_schema) {
      cs__buf_clear(&key);
      cs__buf_clear(&val);
      if ((rc = cs__buf_printf(&key, "schema/%s", m->name)) != 0 ||
          (rc = schema_to_json(&val, m)) != 0)
        goto done;
      cs__wbatch_put(b, CS_CF_META, key.ptr, key.size, val.ptr, val.size);
    }
    if (m->dirty_missing) {
      /* Cleared here: a write that fails reloads the model, flag and all. */
      m->dirty_missing = false;
      cs__buf_clear(&key);
      cs__buf_clear(&val);
      if ((rc = cs__buf_printf(&key, "missing/%s", m->name)) != 0)
        goto done;
      if (m->missing.vv_len == 0 && m->missing.extra_len == 0)
        cs__wbatch_delete(b, CS_CF_META, key.ptr, key.size);
      else if ((rc = cs__codec_encode_dotset(&val, &m->missing)) != 0)
        goto done;
      else
        cs__wbatch_put(b, CS_CF_META, key.ptr, key.size, val.ptr, val.size);
    }
  }
done:
  cs_buf_dispose(&key);
  cs_buf_dispose(&val);
  return rc;
}

static int meta_get_u64(uint64_t *out, cs_store *s, const char *key) {
  cs_buf v = CS_BUF_INIT;
  int rc = cs__db_get(&v, s->db, CS_CF_META, key, strlen(key));
  if (rc == 0) {
    if (v.size != 8)
      rc = cs__error(CS_ECORRUPT, "store '%s': meta record '%s' has %zu bytes, expected 8",
                     s->path, key, v.size);
    else
      *out = cs__get_be64((const uint8_t *)v.ptr);
  } else if (rc == CS_ENOTFOUND) {
    *out = 0;
    rc = 0;
  }
  cs_buf_dispose(&v);
  return rc;
}

static int load_schema(cs_model *m, const char *path, const cs_bytes *val) {
  json_error_t jerr;
  json_t *arr = json_loadb((const char *)val->ptr, val->len, 0, &jerr);
  size_t i;
  json_t *f;
  int rc = 0;

  if (!json_is_array(arr)) {
    json_decref(arr);
    return cs__error(CS_ECORRUPT, "store '%s': schema of model '%s' is not a JSON array", path,
                     m->name);
  }
  json_array_foreach(arr, i, f) {
    const char *name = json_string_value(json_object_get(f, "name"));
    json_int_t kind = json_integer_value(json_object_get(f, "kind"));
    json_int_t policy = json_integer_value(json_object_get(f, "policy"));
    if (!name || kind < 0 || kind > CS_KIND_CTR || policy < 0 || policy > CS_POLICY_SILENT) {
      rc = cs__error(CS_ECORRUPT, "store '%s': schema of model '%s', field %zu is malformed",
                     path, m->name, i);
      break;
    }
    if ((rc = cs__schema_field_set(m, name, (uint8_t)kind, (uint8_t)policy)) != 0)
      break;
  }
  m->dirty_schema = false;
  json_decref(arr);
  return rc;
}

/* Loads every "schema/", "knowledge/", "floor/" and "missing/" record. */
static int load_models(cs_store *s) {
  static const char *const prefixes[] = {"schema/", "knowledge/", "floor/", "missing/"};
  cs_iter *it = NULL;
  char *name = NULL;
  int rc = 0;

  for (size_t p = 0; p < 4 && rc == 0; p++) {
    size_t plen = strlen(prefixes[p]);
    char upper[32];
    memcpy(upper, prefixes[p], plen);
    upper[plen - 1]++; /* '/' + 1: the end of the prefix range */
    if ((rc = cs__iter_new(&it, s->db, CS_CF_META, prefixes[p], plen, upper, plen)) != 0)
      break;
    for (; cs__iter_valid(it) && rc == 0; cs__iter_next(it)) {
      cs_bytes k = cs__iter_key(it), v = cs__iter_value(it);
      cs_model *m;
      cs__free(name);
      if ((name = cs__strndup((const char *)k.ptr + plen, k.len - plen)) == NULL ||
          (rc = cs__model_get(&m, s, name)) != 0) {
        rc = rc ? rc : CS_ENOMEM;
        break;
      }
      if (p == 0)
        rc = load_schema(m, s->path, &v);
      else {
        cs_dotset *set = p == 1 ? &m->knowledge : p == 2 ? &m->floor : &m->missing;
        cs__dotset_dispose(set);
        if ((rc = cs__codec_decode_dotset(set, v.ptr, v.len)) != 0)
          cs__error_wrap(rc, "store '%s': meta record '%s%s': ", s->path, prefixes[p], name);
      }
    }
    if (rc == 0)
      rc = cs__iter_status(it);
    cs__iter_free(it);
    it = NULL;
  }
  cs__free(name);
  return rc;
}

void cs__model_reload(cs_store *s, cs_model *m) {
  static const char *const what[] = {"knowledge/", "floor/", "missing/"};
  cs_buf skey = CS_BUF_INIT, sval = CS_BUF_INIT;

  /* The schema too: an operation that failed may have inferred field types. */
  for (size_t i = 0; i < m->nfields; i++)
    cs__free(m->fields[i].name);
  m->nfields = 0;
  m->dirty_schema = false;
  if (cs__buf_printf(&skey, "schema/%s", m->name) == 0 &&
      cs__db_get(&sval, s->db, CS_CF_META, skey.ptr, skey.size) == 0)
    load_schema(m, s->path, &(cs_bytes){(const uint8_t *)sval.ptr, sval.size});
  cs_buf_dispose(&skey);
  cs_buf_dispose(&sval);
  m->dirty_missing = false;
  for (int i = 0; i < 3; i++) {
    cs_dotset *set = i == 0 ? &m->knowledge : i == 1 ? &m->floor : &m->missing;
    cs_buf key = CS_BUF_INIT, val = CS_BUF_INIT;
    cs__dotset_dispose(set); /* the decoder starts from empty */
    if (cs__buf_printf(&key, "%s%s", what[i], m->name) == 0 &&
        cs__db_get(&val, s->db, CS_CF_META, key.ptr, key.size) == 0)
      cs__codec_decode_dotset(set, (const uint8_t *)val.ptr, val.size);
    cs_buf_dispose(&key);
    cs_buf_dispose(&val);
  }
}

/* A new replica identity: a fresh Ed25519 key pair. Used for new stores and
 * for stores restored from a copy, which must never write under the identity
 * of the replica they were copied from. */
static int mint_identity(cs_store *s, cs_wbatch *b) {
  uint8_t rec[CS_PUBKEY_LEN + CS_SECKEY_LEN];
  int rc;

  if ((rc = cs__keypair_generate(&s->key)) != 0)
    return rc;
  memcpy(rec, s->key.pk, CS_PUBKEY_LEN);
  memcpy(rec + CS_PUBKEY_LEN, s->key.sk, CS_SECKEY_LEN);
  cs__wbatch_put(b, CS_CF_META, "identity", 8, rec, sizeof(rec));
  return 0;
}

static int load_identity(cs_store *s, bool moved) {
  cs_buf v = CS_BUF_INIT;
  cs_wbatch *b = NULL;
  int rc;

  /* The storage layer has checked the format (cs__db_open). */
  rc = cs__db_get(&v, s->db, CS_CF_META, "identity", 8);
  if (rc && rc != CS_ENOTFOUND)
    goto done;
  if (rc == 0 && v.size != CS_PUBKEY_LEN + CS_SECKEY_LEN) {
    rc = cs__error(CS_ECORRUPT, "store '%s': identity record has %zu bytes", s->path, v.size);
    goto done;
  }
  if (rc == 0 && !moved) {
    memcpy(s->key.pk, v.ptr, CS_PUBKEY_LEN);
    memcpy(s->key.sk, v.ptr + CS_PUBKEY_LEN, CS_SECKEY_LEN);
  } else {
    /* New store, or a copy of one restored elsewhere: a new identity. */
    if ((rc = cs__wbatch_new(&b, s->db)) != 0)
      goto done;
    if ((rc = mint_identity(s, b)) != 0 || (rc = cs__db_write(s->db, b, true)) != 0 ||
        (rc = cs__db_mark_home(s->db)) != 0)
      goto done;
  }
  rc = 0;
  s->self = cs__replica_id(s->key.pk);
done:
  cs__wbatch_free(b);
  cs_buf_dispose(&v);
  return rc;
}

int cs_store_open(cs_store **out, const char *path, const cs_store_options *opts) {
  cs_store_options defaults = CS_STORE_OPTIONS_INIT;
  cs_db_options dbo = CS_DB_OPTIONS_INIT;
  cs_store *s = NULL;
  bool moved = false;
  int rc;

  *out = NULL;
  if (!path || !*path)
    return cs__error(CS_EINVAL, "store path is empty");
  if (opts && opts->version != CS_STORE_OPTIONS_VERSION)
    return cs__error(CS_EVERSION, "cs_store_options version %u is not supported (expected %d)",
                     opts->version, CS_STORE_OPTIONS_VERSION);
  if ((rc = cs__crypto_init()) != 0)
    return rc;
  if ((s = cs__calloc(1, sizeof(*s))) == NULL)
    return CS_ENOMEM;
  s->opts = opts ? *opts : defaults;
  pthread_mutex_init(&s->lock, NULL);
  if ((s->path = cs__strdup(path)) == NULL) {
    rc = CS_ENOMEM;
    goto fail;
  }
  dbo.create_if_missing = s->opts.create_if_missing != 0;
  if ((rc = cs__db_open(&s->db, &moved, path, &dbo)) != 0 || (rc = load_identity(s, moved)) != 0)
    goto fail;
  s->clock.max_skew_ms = s->opts.max_clock_skew_ms;
  if ((rc = meta_get_u64(&s->clock.last, s, "clock")) != 0 ||
      (rc = meta_get_u64(&s->cursor, s, "cursor")) != 0 ||
      (rc = meta_get_u64(&s->outbox_seq, s, "outbox_seq")) != 0 || (rc = load_models(s)) != 0 ||
      (rc = cs__gaps_scan(s)) != 0 || (rc = cs__trust_normalize(s)) != 0 ||
      (rc = cs__outbox_load(s)) != 0)
    goto fail;
  *out = s;
  return 0;
fail:
  cs_store_close(s);
  return rc;
}

void cs_store_close(cs_store *s) {
  if (!s)
    return;
  for (size_t i = 0; i < s->nmodels; i++)
    model_dispose(&s->models[i]);
  cs__free(s->models);
  cs_buf_dispose(&s->conflicts_json);
  if (s->db)
    cs__db_close(s->db);
  pthread_mutex_destroy(&s->lock);
  sodium_memzero(s->key.sk, sizeof(s->key.sk));
  cs__free(s->path);
  cs__free(s);
}

int cs_store_public_key(char out[65], cs_store *s) {
  cs__hex_encode(out, s->key.pk, CS_PUBKEY_LEN);
  return 0;
}

/* ------------------------------------------------------------------ schema */

int cs_define_model(cs_store *s, const char *model, const cs_field_def *fields, size_t n) {
  cs_wbatch *b = NULL;
  cs_model *m = NULL;
  int rc;

  if (!model || (n && !fields))
    return cs__error(CS_EINVAL, "cs_define_model: model and fields are required");
  CS_LOCK(s);
  if ((rc = cs__model_get(&m, s, model)) != 0)
    goto done;
  /* Validate everything before changing anything. */
  for (size_t i = 0; i < n; i++) {
    const cs_field_def *f = &fields[i];
    cs_schema_field *old;
    if (!f->name || !*f->name) {
      rc = cs__error(CS_EINVAL, "model '%s': field %zu has no name", model, i);
      goto done;
    }
    if (cs__utf8_check(f->name, strlen(f->name)) < strlen(f->name)) {
      rc = cs__error(CS_EINVAL, "model '%s': the name of field %zu is not UTF-8", model, i);
      goto done;
    }
    if (f->type < CS_FIELD_AUTO || f->type > CS_FIELD_COUNTER) {
      rc = cs__error(CS_EINVAL, "model '%s', field '%s': unknown type %d", model, f->name,
                     (int)f->type);
      goto done;
    }
    if (f->policy != CS_POLICY_SURFACE && f->policy != CS_POLICY_SILENT) {
      rc = cs__error(CS_EINVAL, "model '%s', field '%s': unknown conflict policy %d", model,
                     f->name, (int)f->policy);
      goto done;
    }
    old = cs__schema_field(m, f->name);
    if (old && old->kind && f->type != CS_FIELD_AUTO && old->kind != (uint8_t)f->type) {
      static const char *const names[] = {"auto", "register", "set", "counter"};
      rc = cs__error(CS_EINVAL, "model '%s', field '%s' is already a %s; cannot make it a %s",
                     model, f->name, names[old->kind], names[f->type]);
      goto done;
    }
  }
  for (size_t i = 0; i < n; i++) {
    cs_schema_field *old = cs__schema_field(m, fields[i].name);
    uint8_t kind = fields[i].type != CS_FIELD_AUTO ? (uint8_t)fields[i].type
                                                    : (old ? old->kind : 0);
    if ((rc = cs__schema_field_set(m, fields[i].name, kind, (uint8_t)fields[i].policy)) != 0)
      goto done;
  }
  m->dirty_schema = true;
  if ((rc = cs__wbatch_new(&b, s->db)) != 0 || (rc = cs__store_put_meta(s, b, &m, 1)) != 0 ||
      (rc = cs__db_write(s->db, b, true)) != 0)
    goto done;
  m->dirty_schema = false;
done:
  if (rc && m) /* the fields set above were not written */
    cs__model_reload(s, m);
  cs__wbatch_free(b);
  CS_UNLOCK(s);
  return rc;
}
