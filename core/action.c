/*
 * Local actions: create / update / delete applied at once (optimistic), logged
 * as deltas and queued in the outbox, all in one atomic write per commit.
 */
#include <jansson.h>

#include "core/engine.h"

/* ------------------------------------------------------- the local context */

int cs__local_begin(cs_local_ctx *lc, cs_store *s) {
  memset(lc, 0, sizeof(*lc));
  lc->store = s;
  lc->cursor0 = s->cursor;
  lc->outbox_seq0 = s->outbox_seq;
  return cs__wbatch_new(&lc->batch, s->db);
}

/* What memory holds must again be what is stored: the models' schema,
 * knowledge and floor, and the store's counters. */
static void local_rollback(cs_local_ctx *lc) {
  for (size_t i = 0; i < lc->ncaches; i++)
    cs__model_reload(lc->store, lc->caches[i].model);
  lc->store->cursor = lc->cursor0;
  lc->store->outbox_seq = lc->outbox_seq0;
}

void cs__local_dispose(cs_local_ctx *lc) {
  if (lc->store && !lc->committed)
    local_rollback(lc);
  for (size_t i = 0; i < lc->ncaches; i++) {
    cs__cache_dispose(&lc->caches[i]);
    cs__segment_dispose(&lc->segs[i]);
  }
  if (lc->outbox)
    cs__outbox_run_dispose(lc->outbox);
  cs__free(lc->outbox);
  cs__free(lc->caches);
  cs__free(lc->segs);
  cs__wbatch_free(lc->batch);
  memset(lc, 0, sizeof(*lc));
}

int cs__local_cache(cs_doc_cache **out, cs_local_ctx *lc, const char *model) {
  cs_model *m;
  int rc;

  for (size_t i = 0; i < lc->ncaches; i++)
    if (strcmp(lc->caches[i].model->name, model) == 0) {
      *out = &lc->caches[i];
      return 0;
    }
  /* Models may move when a new one is inserted: remember where the caches'
   * models are, and re-point the caches afterwards. */
  size_t *at = cs__calloc(lc->ncaches ? lc->ncaches : 1, sizeof(size_t));
  if (!at)
    return CS_ENOMEM;
  size_t before = lc->store->nmodels;
  for (size_t i = 0; i < lc->ncaches; i++)
    at[i] = (size_t)(lc->caches[i].model - lc->store->models);
  if ((rc = cs__model_get(&m, lc->store, model)) != 0) {
    cs__free(at);
    return rc;
  }
  for (size_t i = 0; i < lc->ncaches; i++) {
    size_t k = at[i], added = (size_t)(m - lc->store->models);
    if (lc->store->nmodels > before && k >= added)
      k++; /* inserted before it */
    lc->caches[i].model = &lc->store->models[k];
  }
  cs__free(at);
  if ((rc = cs__array_grow((void **)&lc->caches, &lc->caches_cap, lc->ncaches + 1,
                           sizeof(cs_doc_cache))) != 0 ||
      (rc = cs__array_grow((void **)&lc->segs, &lc->segs_cap, lc->ncaches + 1,
                           sizeof(cs_segment))) != 0 ||
      (rc = cs__cache_init(&lc->caches[lc->ncaches], m, 64)) != 0)
    return rc;
  cs__segment_init(&lc->segs[lc->ncaches]);
  *out = &lc->caches[lc->ncaches++];
  return 0;
}

static int outbox_put(cs_local_ctx *lc, const char *model, const char *instance,
                      const char *type, const char *data_json, uint64_t first, uint64_t last,
                      cs_hlc hlc) {
  cs_store *s = lc->store;
  cs_outbox_rec r = {cs__outbox_type(type), s->self, first, last, CS_HLC_MS(hlc),
                     model, instance, data_json};
  int rc;

  if (!lc->outbox && (lc->outbox = cs__calloc(1, sizeof(*lc->outbox))) == NULL)
    return CS_ENOMEM;
  if ((rc = cs__outbox_run_add(lc->outbox, s->outbox_seq + 1, &r)) != 0)
    return rc;
  s->outbox_seq++;
  /* A full run is put now; the rest at commit. */
  if (lc->outbox->n == CS_OUTBOX_RUN_MAX)
    cs__outbox_run_put(lc->outbox, lc->batch, lc->outbox->first);
  return 0;
}

int cs__local_apply(cs_local_ctx *lc, cs_doc_cache *c, cs_doc_slot *slot, cs_delta *d,
                    const char *type, const char *data_json) {
  cs_store *s = lc->store;
  cs_model *m = c->model;
  cs_wire_action wa;
  uint64_t first, last;
  int rc;

  if ((rc = cs__delta_finish(d, &first, &last)) != 0 ||
      (rc = cs__doc_join(&slot->doc, &m->knowledge, &d->doc, &d->ctx)) != 0 ||
      (rc = cs__dotset_join(&m->knowledge, &d->ctx)) != 0)
    goto done;
  slot->dirty = true;
  /* The action joins its model's log run; the run is written at commit. */
  memset(&wa, 0, sizeof(wa));
  wa.origin = s->self;
  wa.first = first;
  wa.last = last;
  wa.hlc = d->hlc;
  wa.doc = d->doc;
  wa.ctx = d->ctx;
  memset(&d->doc, 0, sizeof(d->doc));
  memset(&d->ctx, 0, sizeof(d->ctx));
  if ((rc = cs__segment_add(&lc->segs[c - lc->caches], lc->batch, m->name, &wa,
                             slot->instance)) != 0) {
    d->doc = wa.doc;
    d->ctx = wa.ctx;
    goto done;
  }
  if ((rc = outbox_put(lc, m->name, slot->instance, type, data_json, first, last, d->hlc)) == 0)
    lc->actions++;
done:
  return rc;
}

int cs__local_commit(cs_local_ctx *lc) {
  cs_store *s = lc->store;
  cs_model **models = NULL;
  int rc = 0;

  if (lc->actions == 0)
    return 0;
  if ((models = cs__calloc(lc->ncaches, sizeof(cs_model *))) == NULL) {
    rc = CS_ENOMEM;
    goto done;
  }
  for (size_t i = 0; i < lc->ncaches; i++) {
    models[i] = lc->caches[i].model;
    if ((rc = cs__cache_flush(&lc->caches[i], s, lc->batch)) != 0 ||
        (rc = cs__segment_flush(&lc->segs[i], lc->batch, models[i]->name)) != 0)
      goto done;
  }
  if (lc->outbox)
    cs__outbox_run_put(lc->outbox, lc->batch, lc->outbox->first);
  for (size_t i = 0; i < lc->ncaches; i++)
    cs__cache_drop_docs(&lc->caches[i]);
  if ((rc = cs__store_put_meta(s, lc->batch, models, lc->ncaches)) != 0 ||
      (rc = cs__db_write(s->db, lc->batch, s->opts.durability == CS_DURABILITY_SYNC)) != 0)
    goto done;
  for (size_t i = 0; i < lc->ncaches; i++)
    models[i]->dirty_schema = false;
  s->outbox_len += lc->actions;
  lc->committed = true;
done:
  cs__free(models);
  return rc;
}

/* -------------------------------------------------------- JSON actions */

static int check_name(const char *what, const char *name) {
  size_t len, bad;
  if (!name || !*name)
    return cs__error(CS_EINVAL, "%s is empty", what);
  if ((len = strlen(name)) > CS_WIRE_MAX_NAME)
    return cs__error(CS_EINVAL, "%s is longer than %d bytes", what, CS_WIRE_MAX_NAME);
  if ((bad = cs__utf8_check(name, len)) < len)
    return cs__error(CS_EINVAL, "%s is not UTF-8 (byte %zu)", what, bad);
  return 0;
}

/* The kind a JSON value asks for, or 0 when it fits none. */
static uint8_t kind_of_json(const json_t *v) {
  if (json_is_array(v))
    return CS_KIND_SET;
  if (json_is_object(v)) {
    if (json_object_get(v, "$inc"))
      return CS_KIND_CTR;
    if (json_object_get(v, "$add") || json_object_get(v, "$remove"))
      return CS_KIND_SET;
    if (json_object_get(v, "$bytes"))
      return CS_KIND_REG;
    return 0;
  }
  return CS_KIND_REG;
}

static const char *kind_name(uint8_t k) {
  return k == CS_KIND_REG ? "register" : k == CS_KIND_SET ? "set" : k == CS_KIND_CTR ? "counter"
                                                                                    : "unknown";
}

/* The kind a field has: schema first, then the document, then the value. */
static int field_kind(uint8_t *out, cs_model *m, const cs_doc *doc, const char *field,
                      const json_t *v) {
  cs_schema_field *sf = cs__schema_field(m, field);
  cs_field *df = cs__doc_field(doc, field);
  uint8_t want = kind_of_json(v), have = sf && sf->kind ? sf->kind : df ? df->kind : 0;

  if (json_is_object(v)) {
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x) {
      if (strcmp(k, "$inc") && strcmp(k, "$add") && strcmp(k, "$remove") && strcmp(k, "$bytes"))
        return cs__error(CS_EINVAL, "model '%s', field '%s': unknown operator '%s'", m->name,
                         field, k);
    }
    if (json_object_size(v) > 1 && (json_object_get(v, "$inc") || json_object_get(v, "$bytes")))
      return cs__error(CS_EINVAL, "model '%s', field '%s': $inc and $bytes stand alone", m->name,
                       field);
  }
  if (!want)
    return cs__error(CS_EINVAL, "model '%s', field '%s': unsupported value", m->name, field);
  if (have && have != want)
    return cs__error(CS_EINVAL, "model '%s', field '%s' is a %s; the value given is for a %s",
                     m->name, field, kind_name(have), kind_name(want));
  *out = want;
  return 0;
}

static int json_elems(cs_val **out, size_t *n, const json_t *arr, const char *field) {
  size_t i;
  json_t *x;
  int rc = 0;

  *out = NULL;
  *n = 0;
  if (!json_is_array(arr))
    return cs__error(CS_EINVAL, "field '%s': expected an array of scalars", field);
  if (json_array_size(arr) == 0)
    return 0;
  if ((*out = cs__calloc(json_array_size(arr), sizeof(cs_val))) == NULL)
    return CS_ENOMEM;
  json_array_foreach(arr, i, x) {
    if ((rc = cs__json_to_val(&(*out)[i], x, field)) != 0)
      break;
    (*n)++;
  }
  return rc;
}

static void vals_free(cs_val *v, size_t n) {
  for (size_t i = 0; i < n; i++)
    cs__val_dispose(&v[i]);
  cs__free(v);
}

/* Adds one field's change to the delta (the value was validated by field_kind). */
static int delta_field(cs_delta *d, const cs_doc *doc, const char *field, uint8_t kind,
                       const json_t *v) {
  cs_val val, *elems = NULL;
  size_t n = 0;
  int rc = 0;

  switch (kind) {
  case CS_KIND_REG:
    if ((rc = cs__json_to_val(&val, v, field)) != 0)
      return rc;
    rc = cs__delta_reg_set(d, doc, field, &val);
    cs__val_dispose(&val);
    return rc;
  case CS_KIND_SET:
    if (json_is_array(v)) {
      if ((rc = json_elems(&elems, &n, v, field)) == 0)
        rc = cs__delta_set_assign(d, doc, field, elems, n);
      vals_free(elems, n);
      return rc;
    }
    if (json_object_get(v, "$add")) {
      if ((rc = json_elems(&elems, &n, json_object_get(v, "$add"), field)) == 0)
        for (size_t i = 0; i < n && rc == 0; i++)
          rc = cs__delta_set_add(d, doc, field, &elems[i]);
      vals_free(elems, n);
      if (rc)
        return rc;
    }
    if (json_object_get(v, "$remove")) {
      if ((rc = json_elems(&elems, &n, json_object_get(v, "$remove"), field)) == 0)
        for (size_t i = 0; i < n && rc == 0; i++)
          rc = cs__delta_set_remove(d, doc, field, &elems[i]);
      vals_free(elems, n);
    }
    return rc;
  case CS_KIND_CTR: {
    json_t *inc = json_object_get(v, "$inc");
    if (!json_is_integer(inc))
      return cs__error(CS_EINVAL, "field '%s': $inc takes an integer", field);
    return cs__delta_ctr_add(d, doc, field, json_integer_value(inc));
  }
  }
  return cs__error(CS_EINTERNAL, "field '%s': unknown kind %d", field, kind);
}

static const char *action_type_name(cs_action_type t) {
  return t == CS_ACTION_CREATE ? "create" : t == CS_ACTION_UPDATE ? "update" : "delete";
}

int cs__local_json_action(cs_local_ctx *lc, const cs_action *a) {
  cs_store *s = lc->store;
  json_t *data = NULL;
  json_error_t jerr;
  cs_doc_cache *c;
  cs_doc_slot *slot;
  cs_delta d;
  bool delta_live = false, alive;
  uint8_t *kinds = NULL;
  const char *k;
  json_t *v;
  size_t i;
  int rc;

  if (!a)
    return cs__error(CS_EINVAL, "action is NULL");
  if (a->type < CS_ACTION_CREATE || a->type > CS_ACTION_DELETE)
    return cs__error(CS_EINVAL, "unknown action type %d", (int)a->type);
  if ((rc = check_name("model name", a->model)) != 0 ||
      (rc = check_name("instance id", a->instance)) != 0)
    return rc;
  if (a->type != CS_ACTION_DELETE) {
    if (!a->data)
      return cs__error(CS_EINVAL, "%s of '%s/%s': data is required", action_type_name(a->type),
                       a->model, a->instance);
    data = json_loads(a->data, JSON_REJECT_DUPLICATES, &jerr);
    if (!data)
      return cs__error(CS_EINVAL, "%s of '%s/%s': bad JSON at line %d, column %d: %s",
                       action_type_name(a->type), a->model, a->instance, jerr.line, jerr.column,
                       jerr.text);
    if (!json_is_object(data)) {
      rc = cs__error(CS_EINVAL, "%s of '%s/%s': data must be a JSON object",
                     action_type_name(a->type), a->model, a->instance);
      goto done;
    }
  }
  if ((rc = cs__local_cache(&c, lc, a->model)) != 0 ||
      (rc = cs__cache_get(&slot, c, s, a->instance)) != 0)
    goto done;
  alive = slot->exists && cs__doc_alive(&slot->doc);
  if (a->type == CS_ACTION_CREATE && alive) {
    rc = cs__error(CS_EEXISTS, "create of '%s/%s': the instance exists (use update)", a->model,
                   a->instance);
    goto done;
  }
  if (a->type == CS_ACTION_DELETE && !alive) {
    rc = cs__error(CS_ENOTFOUND, "delete of '%s/%s': instance not found", a->model, a->instance);
    goto done;
  }
  /* Validate every field before building anything. */
  if (data && json_object_size(data)) {
    if ((kinds = cs__calloc(json_object_size(data), 1)) == NULL) {
      rc = CS_ENOMEM;
      goto done;
    }
    i = 0;
    json_object_foreach(data, k, v) {
      if ((rc = check_name("field name", k)) != 0 ||
          (rc = field_kind(&kinds[i++], c->model, &slot->doc, k, v)) != 0)
        goto done;
    }
  }
  if ((rc = cs__delta_init(&d, &c->model->knowledge, s->self,
                           cs__clock_tick(&s->clock, cs__now_ms()))) != 0)
    goto done;
  delta_live = true;
  if (a->type == CS_ACTION_DELETE)
    rc = cs__delta_exist(&d, &slot->doc, false);
  else if (!alive)
    rc = cs__delta_exist(&d, &slot->doc, true);
  i = 0;
  if (data)
    json_object_foreach(data, k, v) {
      if (rc)
        break;
      rc = delta_field(&d, &slot->doc, k, kinds[i++], v);
    }
  if (rc == 0)
    rc = cs__local_apply(lc, c, slot, &d, action_type_name(a->type), a->data);
  /* Fields typed by their first value keep that type from now on. */
  i = 0;
  if (rc == 0 && data)
    json_object_foreach(data, k, v) {
      cs_schema_field *sf = cs__schema_field(c->model, k);
      uint8_t kind = kinds[i++];
      if ((!sf || !sf->kind) &&
          (rc = cs__schema_field_set(c->model, k, kind, sf ? sf->policy : CS_POLICY_SURFACE)) != 0)
        break;
    }
done:
  if (delta_live)
    cs__delta_dispose(&d);
  cs__free(kinds);
  json_decref(data);
  return rc;
}

int cs_queue_offline_action(cs_store *s, const cs_action *a) {
  cs_local_ctx lc;
  int rc;

  CS_LOCK(s);
  if ((rc = cs__local_begin(&lc, s)) == 0 && (rc = cs__local_json_action(&lc, a)) == 0)
    rc = cs__local_commit(&lc);
  cs__local_dispose(&lc);
  CS_UNLOCK(s);
  return rc;
}

/* ------------------------------------------------------------ typed batch */

struct cs_batch {
  cs_local_ctx lc;
};

int cs_batch_begin(cs_batch **out, cs_store *s) {
  cs_batch *b = cs__calloc(1, sizeof(*b));
  int rc;
  *out = NULL;
  if (!b)
    return CS_ENOMEM;
  CS_LOCK(s);
  if ((rc = cs__local_begin(&b->lc, s)) != 0) {
    CS_UNLOCK(s);
    cs__free(b);
    return rc;
  }
  *out = b;
  return 0;
}

/* One typed action on one field: kind-checked, applied to the batch. */
static int batch_one(cs_batch *b, const char *model, const char *instance, const char *field,
                     uint8_t kind, int op, const cs_val *v, int64_t by) {
  cs_store *s = b->lc.store;
  cs_doc_cache *c;
  cs_doc_slot *slot;
  cs_schema_field *sf;
  cs_field *df;
  cs_delta d;
  int rc;

  if ((rc = check_name("model name", model)) != 0 ||
      (rc = check_name("instance id", instance)) != 0 ||
      (rc = check_name("field name", field)) != 0 ||
      (rc = cs__local_cache(&c, &b->lc, model)) != 0 ||
      (rc = cs__cache_get(&slot, c, s, instance)) != 0)
    return rc;
  sf = cs__schema_field(c->model, field);
  df = cs__doc_field(&slot->doc, field);
  if ((sf && sf->kind && sf->kind != kind) || (df && df->kind != kind))
    return cs__error(CS_EINVAL, "model '%s', field '%s' is a %s, not a %s", model, field,
                     kind_name(sf && sf->kind ? sf->kind : df->kind), kind_name(kind));
  if ((rc = cs__delta_init(&d, &c->model->knowledge, s->self,
                           cs__clock_tick(&s->clock, cs__now_ms()))) != 0)
    return rc;
  if (!(slot->exists && cs__doc_alive(&slot->doc)))
    rc = cs__delta_exist(&d, &slot->doc, true);
  if (rc == 0) {
    switch (op) {
    case 0:
      rc = cs__delta_reg_set(&d, &slot->doc, field, v);
      break;
    case 1:
      rc = cs__delta_set_add(&d, &slot->doc, field, v);
      break;
    case 2:
      rc = cs__delta_set_remove(&d, &slot->doc, field, v);
      break;
    default:
      rc = cs__delta_ctr_add(&d, &slot->doc, field, by);
    }
  }
  if (rc == 0)
    rc = cs__local_apply(&b->lc, c, slot, &d, "update", NULL);
  if (rc == 0 && (!sf || !sf->kind))
    rc = cs__schema_field_set(c->model, field, kind, sf ? sf->policy : CS_POLICY_SURFACE);
  cs__delta_dispose(&d);
  return rc;
}

int cs_batch_set_int(cs_batch *b, const char *model, const char *instance, const char *field,
                     int64_t value) {
  cs_val v = cs__val_int(value);
  return batch_one(b, model, instance, field, CS_KIND_REG, 0, &v, 0);
}

static int batch_str(cs_batch *b, const char *model, const char *instance, const char *field,
                     uint8_t kind, int op, const char *str) {
  cs_val v;
  int rc;
  size_t len, bad;
  if (!str)
    return cs__error(CS_EINVAL, "field '%s': value is NULL", field ? field : "");
  len = strlen(str);
  if ((bad = cs__utf8_check(str, len)) < len)
    return cs__error(CS_EINVAL, "field '%s': value is not UTF-8 (byte %zu)", field ? field : "",
                     bad);
  if ((rc = cs__val_str(&v, str, len)) != 0)
    return rc;
  rc = batch_one(b, model, instance, field, kind, op, &v, 0);
  cs__val_dispose(&v);
  return rc;
}

int cs_batch_set_str(cs_batch *b, const char *model, const char *instance, const char *field,
                     const char *value) {
  return batch_str(b, model, instance, field, CS_KIND_REG, 0, value);
}

int cs_batch_set_add(cs_batch *b, const char *model, const char *instance, const char *field,
                     const char *element) {
  return batch_str(b, model, instance, field, CS_KIND_SET, 1, element);
}

int cs_batch_set_remove(cs_batch *b, const char *model, const char *instance, const char *field,
                        const char *element) {
  return batch_str(b, model, instance, field, CS_KIND_SET, 2, element);
}

int cs_batch_counter_add(cs_batch *b, const char *model, const char *instance, const char *field,
                         int64_t by) {
  return batch_one(b, model, instance, field, CS_KIND_CTR, 3, NULL, by);
}

int cs_batch_action(cs_batch *b, const cs_action *a) { return cs__local_json_action(&b->lc, a); }

int cs_batch_commit(cs_batch *b) {
  cs_store *s;
  int rc;
  if (!b)
    return cs__error(CS_EINVAL, "batch is NULL");
  s = b->lc.store;
  rc = cs__local_commit(&b->lc);
  cs__local_dispose(&b->lc);
  CS_UNLOCK(s);
  cs__free(b);
  return rc;
}

void cs_batch_abort(cs_batch *b) {
  cs_store *s;
  if (!b)
    return;
  s = b->lc.store;
  cs__local_dispose(&b->lc);
  CS_UNLOCK(s);
  cs__free(b);
}
