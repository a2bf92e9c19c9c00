/* Reading: getLocalData, storeLocally's baseline, the outbox, instance lists. */
#include <jansson.h>
#include <stdlib.h>

#include "core/engine.h"

static int read_baseline(json_t **out, cs_store *s, const char *model, const char *instance) {
  cs_buf key = CS_BUF_INIT, val = CS_BUF_INIT;
  int rc;

  *out = NULL;
  if ((rc = cs__key_doc(&key, model, instance)) != 0)
    goto done;
  rc = cs__db_get(&val, s->db, CS_CF_BASELINE, key.ptr, key.size);
  if (rc == 0) {
    *out = json_loadb(val.ptr, val.size, 0, NULL);
    if (!json_is_object(*out)) {
      json_decref(*out);
      *out = NULL;
      rc = cs__error(CS_ECORRUPT, "baseline of '%s/%s' (key baseline/%s/%s) is not a JSON object",
                     model, instance, model, instance);
    }
  }
done:
  cs_buf_dispose(&key);
  cs_buf_dispose(&val);
  return rc;
}

int cs_store_locally(cs_store *s, const char *model, const char *instance, const char *json) {
  cs_buf key = CS_BUF_INIT;
  cs_wbatch *b = NULL;
  json_error_t jerr;
  json_t *obj;
  int rc;

  if (!model || !*model || !instance || !*instance)
    return cs__error(CS_EINVAL, "storeLocally: model and instance are required");
  if (!json)
    return cs__error(CS_EINVAL, "storeLocally of '%s/%s': data is required", model, instance);
  obj = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
  if (!obj)
    return cs__error(CS_EINVAL, "storeLocally of '%s/%s': bad JSON at line %d, column %d: %s",
                     model, instance, jerr.line, jerr.column, jerr.text);
  if (!json_is_object(obj)) {
    json_decref(obj);
    return cs__error(CS_EINVAL, "storeLocally of '%s/%s': data must be a JSON object", model,
                     instance);
  }
  json_decref(obj);
  CS_LOCK(s);
  if ((rc = cs__key_doc(&key, model, instance)) == 0 && (rc = cs__wbatch_new(&b, s->db)) == 0) {
    cs__wbatch_put(b, CS_CF_BASELINE, key.ptr, key.size, json, strlen(json));
    rc = cs__db_write(s->db, b, s->opts.durability == CS_DURABILITY_SYNC);
  }
  CS_UNLOCK(s);
  cs__wbatch_free(b);
  cs_buf_dispose(&key);
  return rc;
}

int cs_get_local_data(cs_buf *out, cs_store *s, const char *model, const char *instance) {
  cs_doc doc = CS_DOC_INIT;
  json_t *base = NULL, *view = NULL;
  int rc, drc;

  if (!model || !*model || !instance || !*instance)
    return cs__error(CS_EINVAL, "getLocalData: model and instance are required");
  CS_LOCK(s);
  drc = cs__doc_read(&doc, NULL, s, model, instance);
  if (drc && drc != CS_ENOTFOUND) {
    rc = drc;
    goto done;
  }
  if (drc == 0 && !cs__doc_alive(&doc)) {
    rc = cs__error(CS_ENOTFOUND, "instance '%s' of model '%s' is deleted", instance, model);
    goto done;
  }
  rc = read_baseline(&base, s, model, instance);
  if (rc && rc != CS_ENOTFOUND)
    goto done;
  if (drc == CS_ENOTFOUND && rc == CS_ENOTFOUND) {
    rc = cs__error(CS_ENOTFOUND, "instance '%s' of model '%s' not found", instance, model);
    goto done;
  }
  /* Replicated fields supersede the baseline's. */
  view = base ? base : json_object();
  base = NULL;
  if (drc == 0) {
    json_t *rep = cs__doc_to_json(&doc);
    if (!rep || json_object_update(view, rep) != 0) {
      json_decref(rep);
      rc = cs__error(CS_ENOMEM, "out of memory building '%s/%s'", model, instance);
      goto done;
    }
    json_decref(rep);
  }
  rc = cs__json_dump(out, view);
done:
  CS_UNLOCK(s);
  json_decref(base);
  json_decref(view);
  cs__doc_dispose(&doc);
  return rc;
}

int cs_get_queued_actions(cs_buf *out, cs_store *s) {
  cs_iter *it = NULL;
  int rc;

  CS_LOCK(s);
  if ((rc = cs__buf_putc(out, '[')) != 0 ||
      (rc = cs__outbox_iter(&it, s)) != 0)
    goto done;
  for (bool first = true; cs__iter_valid(it); cs__iter_next(it)) {
    cs_bytes k = cs__iter_key(it), v = cs__iter_value(it);
    cs_outbox_cursor c;
    const uint8_t *rec;
    uint64_t seq;
    size_t len;
    if (k.len != 8) {
      rc = cs__error(CS_ECORRUPT, "outbox key of %zu bytes (expected 8)", k.len);
      goto done;
    }
    if ((rc = cs__outbox_cursor(&c, cs__get_be64(k.ptr), v.ptr, v.len)) != 0)
      goto done;
    while ((rc = cs__outbox_next(&c, &seq, &rec, &len)) == 1) {
      if ((!first && (rc = cs__buf_putc(out, ',')) != 0) ||
          (rc = cs__outbox_json(out, seq, rec, len)) != 0)
        goto done;
      first = false;
    }
    if (rc)
      goto done;
  }
  if ((rc = cs__iter_status(it)) == 0)
    rc = cs__buf_putc(out, ']');
done:
  cs__iter_free(it);
  CS_UNLOCK(s);
  return rc;
}

int cs_outbox_count(size_t *out, cs_store *s) {
  CS_LOCK(s);
  *out = s->outbox_len;
  CS_UNLOCK(s);
  return 0;
}

/* Instances of a model whose keys in `cf` start with the model's prefix. */
static int scan_instances(json_t *set, cs_store *s, cs_cf cf, const char *model, bool docs) {
  cs_buf prefix = CS_BUF_INIT, upper = CS_BUF_INIT;
  cs_iter *it = NULL;
  char *name = NULL;
  int rc;

  if ((rc = cs__key_name(&prefix, model)) != 0 || (rc = cs__key_name(&upper, model)) != 0)
    goto done;
  /* Every key of the model is below prefix + 0xff.. : bump the last length byte. */
  if ((rc = cs__buf_putc(&upper, (char)0xff)) != 0 || (rc = cs__buf_putc(&upper, (char)0xff)) != 0 ||
      (rc = cs__buf_putc(&upper, (char)0xff)) != 0)
    goto done;
  if ((rc = cs__iter_new(&it, s->db, cf, prefix.ptr, prefix.size, upper.ptr, upper.size)) != 0)
    goto done;
  for (; cs__iter_valid(it); cs__iter_next(it)) {
    cs_bytes k = cs__iter_key(it), v = cs__iter_value(it);
    size_t pos = prefix.size;
    cs__free(name);
    name = NULL;
    if ((rc = cs__key_read_name(&name, k.ptr, k.len, &pos)) != 0)
      goto done;
    if (docs) {
      cs_doc doc = CS_DOC_INIT;
      bool alive;
      if ((rc = cs__doc_value_decode(&doc, NULL, v.ptr, v.len, model, name)) != 0)
        goto done;
      alive = cs__doc_alive(&doc);
      cs__doc_dispose(&doc);
      if (!alive) {
        json_object_set_new(set, name, json_false());
        continue;
      }
    }
    if (!json_object_get(set, name))
      json_object_set_new(set, name, json_true());
  }
  rc = cs__iter_status(it);
done:
  cs__free(name);
  cs__iter_free(it);
  cs_buf_dispose(&prefix);
  cs_buf_dispose(&upper);
  return rc;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int cs_list_instances(cs_buf *out, cs_store *s, const char *model) {
  json_t *set = json_object(), *arr = json_array();
  const char *k;
  json_t *v;
  int rc;

  if (!model || !*model) {
    rc = cs__error(CS_EINVAL, "list: model is required");
    goto done;
  }
  if (!set || !arr) {
    rc = cs__error(CS_ENOMEM, "out of memory listing '%s'", model);
    goto done;
  }
  CS_LOCK(s);
  rc = scan_instances(set, s, CS_CF_DOCS, model, true);
  if (rc == 0)
    rc = scan_instances(set, s, CS_CF_BASELINE, model, false);
  CS_UNLOCK(s);
  if (rc)
    goto done;
  /* Object keys iterate in insertion order; sort by dumping sorted keys. */
  json_object_foreach(set, k, v) {
    if (json_is_true(v))
      json_array_append_new(arr, json_string(k));
  }
  {
    size_t n = json_array_size(arr);
    const char **names = cs__calloc(n ? n : 1, sizeof(char *));
    json_t *sorted = json_array();
    if (!names || !sorted) {
      cs__free(names);
      json_decref(sorted);
      rc = CS_ENOMEM;
      goto done;
    }
    for (size_t i = 0; i < n; i++)
      names[i] = json_string_value(json_array_get(arr, i));
    qsort(names, n, sizeof(char *), cmp_names);
    for (size_t i = 0; i < n; i++)
      json_array_append_new(sorted, json_string(names[i]));
    cs__free(names);
    rc = cs__json_dump(out, sorted);
    json_decref(sorted);
  }
done:
  json_decref(set);
  json_decref(arr);
  return rc;
}
