/* The JSON boundary: values in, documents out (jansson). */
#include <jansson.h>
#include <math.h>

#include "core/engine.h"

int cs__json_dump(cs_buf *out, const json_t *j) {
  char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
  int rc;
  if (!text)
    return cs__error(CS_ENOMEM, "out of memory writing JSON");
  rc = cs__buf_puts(out, text);
  free(text);
  return rc;
}

/*
 * A scalar JSON value as a cs_val. Bytes are written {"$bytes": "<hex>"}
 * since JSON has no byte strings. Arrays and other objects are not scalars.
 */
int cs__json_to_val(cs_val *out, const json_t *j, const char *field) {
  memset(out, 0, sizeof(*out));
  switch (json_typeof(j)) {
  case JSON_NULL:
    out->type = CS_VAL_NULL;
    return 0;
  case JSON_TRUE:
  case JSON_FALSE:
    out->type = CS_VAL_BOOL;
    out->u.b = json_is_true(j);
    return 0;
  case JSON_INTEGER:
    *out = cs__val_int(json_integer_value(j));
    return 0;
  case JSON_REAL:
    out->type = CS_VAL_DOUBLE;
    out->u.d = json_real_value(j);
    return 0;
  case JSON_STRING:
    if (json_string_length(j) > CS_WIRE_MAX_VALUE)
      return cs__error(CS_EINVAL, "field '%s': string of %zu bytes is longer than %u", field,
                       json_string_length(j), CS_WIRE_MAX_VALUE);
    return cs__val_str(out, json_string_value(j), json_string_length(j));
  case JSON_OBJECT: {
    json_t *hex = json_object_get(j, "$bytes");
    if (hex && json_object_size(j) == 1 && json_is_string(hex)) {
      size_t n = json_string_length(hex) / 2;
      uint8_t *raw = cs__malloc(n + 1);
      int rc;
      if (!raw)
        return CS_ENOMEM;
      rc = cs__hex_decode(raw, n, json_string_value(hex));
      if (rc == 0)
        rc = cs__val_bytes(out, raw, n);
      else
        cs__error_wrap(rc, "field '%s': $bytes: ", field);
      cs__free(raw);
      return rc;
    }
    return cs__error(CS_EINVAL,
                     "field '%s': nested objects are not supported (expected a scalar, an "
                     "array, or one of $add, $remove, $inc)",
                     field);
  }
  case JSON_ARRAY:
    return cs__error(CS_EINVAL, "field '%s': expected a scalar, got an array", field);
  }
  return cs__error(CS_EINVAL, "field '%s': unsupported JSON value", field);
}

json_t *cs__val_to_json(const cs_val *v) {
  switch (v->type) {
  case CS_VAL_NULL:
    return json_null();
  case CS_VAL_BOOL:
    return json_boolean(v->u.b);
  case CS_VAL_INT:
    return json_integer(v->u.i);
  case CS_VAL_DOUBLE:
    return isfinite(v->u.d) ? json_real(v->u.d) : json_null();
  case CS_VAL_STR:
    return json_stringn(v->u.s.ptr, v->u.s.len);
  case CS_VAL_BYTES: {
    char *hex = cs__malloc((size_t)v->u.s.len * 2 + 1);
    json_t *o;
    if (!hex)
      return NULL;
    cs__hex_encode(hex, (const uint8_t *)v->u.s.ptr, v->u.s.len);
    o = json_pack("{s:s}", "$bytes", hex);
    cs__free(hex);
    return o;
  }
  }
  return json_null();
}

static json_t *field_to_json(const cs_field *f) {
  switch (f->kind) {
  case CS_KIND_REG: {
    const cs_reg_entry *e = cs__reg_visible(&f->u.reg);
    return e ? cs__val_to_json(&e->val) : NULL;
  }
  case CS_KIND_SET: {
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < f->u.set.len; i++)
      if (f->u.set.elems[i].ndots &&
          json_array_append_new(arr, cs__val_to_json(&f->u.set.elems[i].val)) != 0) {
        json_decref(arr);
        return NULL;
      }
    return arr;
  }
  case CS_KIND_CTR:
    return json_integer(cs__ctr_value(&f->u.ctr));
  }
  return NULL;
}

json_t *cs__doc_to_json(const cs_doc *doc) {
  json_t *obj = json_object();
  for (size_t i = 0; obj && i < doc->nfields; i++) {
    json_t *v = field_to_json(&doc->fields[i]);
    if (!v)
      continue; /* an empty register shows nothing */
    if (json_object_set_new(obj, doc->fields[i].name, v) != 0) {
      json_decref(obj);
      return NULL;
    }
  }
  if (!obj)
    cs__error(CS_ENOMEM, "out of memory building JSON");
  return obj;
}
