/*
 * The JSON boundary: values in and documents out through jansson, plus a
 * direct writer for the hot path (conflict records rendered at every merge)
 * whose output is byte for byte what jansson's compact, key-sorted dump of
 * the same value would be (tests/test_engine.c checks it on random values).
 */
#include <jansson.h>
#include <locale.h>
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
    return json_stringn(cs__val_data(v), v->len);
  case CS_VAL_BYTES: {
    char *hex = cs__malloc((size_t)v->len * 2 + 1);
    json_t *o;
    if (!hex)
      return NULL;
    cs__hex_encode(hex, (const uint8_t *)cs__val_data(v), v->len);
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

/* ------------------------------------------------------- direct writer */

static bool needs_escape(uint8_t c) { return c < 0x20 || c == '"' || c == '\\'; }

int cs__json_put_str(cs_buf *out, const char *s, size_t len) {
  static const char hex[] = "0123456789ABCDEF"; /* jansson's case */
  size_t run = 0, clean = 0;
  int rc;

  /* Most strings (names, ids, short values) have nothing to escape: they go
   * in with one copy. */
  while (clean < len && !needs_escape((uint8_t)s[clean]))
    clean++;
  if (clean == len) {
    if ((rc = cs__buf_grow(out, out->size + len + 2)) != 0)
      return rc;
    out->ptr[out->size] = '"';
    if (len)
      memcpy(out->ptr + out->size + 1, s, len);
    out->ptr[out->size + len + 1] = '"';
    out->size += len + 2;
    out->ptr[out->size] = '\0';
    return 0;
  }
  rc = cs__buf_putc(out, '"');
  for (size_t i = clean; i < len && rc == 0; i++) {
    uint8_t c = (uint8_t)s[i];
    char esc[7] = {'\\', 0};
    size_t n = 2;
    if (!needs_escape(c))
      continue;
    switch (c) {
    case '"':
    case '\\':
      esc[1] = (char)c;
      break;
    case '\b':
      esc[1] = 'b';
      break;
    case '\f':
      esc[1] = 'f';
      break;
    case '\n':
      esc[1] = 'n';
      break;
    case '\r':
      esc[1] = 'r';
      break;
    case '\t':
      esc[1] = 't';
      break;
    default:
      memcpy(esc + 1, "u00", 3);
      esc[4] = hex[c >> 4];
      esc[5] = hex[c & 15];
      n = 6;
    }
    if ((rc = cs__buf_put(out, s + run, i - run)) == 0)
      rc = cs__buf_put(out, esc, n);
    run = i + 1;
  }
  if (rc == 0 && (rc = cs__buf_put(out, s + run, len - run)) == 0)
    rc = cs__buf_putc(out, '"');
  return rc;
}

/* A double as jansson writes it: %.17g, ".0" when it would read back as an
 * integer, the exponent without '+' or leading zeros. */
static int put_double(cs_buf *out, double d) {
  char buf[40], *e;
  int n;
  if (!isfinite(d))
    return cs__buf_puts(out, "null");
  n = snprintf(buf, sizeof(buf) - 2, "%.17g", d);
  if (n < 0 || (size_t)n >= sizeof(buf) - 2)
    return cs__error(CS_EINTERNAL, "formatting a double");
  /* An app may have set a locale whose decimal point is not '.'. */
  const char *point = localeconv()->decimal_point;
  if (point && point[0] && (point[0] != '.' || point[1])) {
    char *p = strstr(buf, point);
    if (p) {
      size_t plen = strlen(point);
      *p = '.';
      memmove(p + 1, p + plen, strlen(p + plen) + 1);
    }
  }
  if (!strchr(buf, '.') && !strchr(buf, 'e'))
    memcpy(buf + n, ".0", 3);
  if ((e = strchr(buf, 'e')) != NULL) {
    char *from = e + 1, *to = e + 1;
    if (*from == '+')
      from++;
    else if (*from == '-')
      from++, to++;
    while (*from == '0' && from[1])
      from++;
    memmove(to, from, strlen(from) + 1);
  }
  return cs__buf_puts(out, buf);
}

int cs__json_put_val(cs_buf *out, const cs_val *v) {
  switch (v->type) {
  case CS_VAL_NULL:
    return cs__buf_puts(out, "null");
  case CS_VAL_BOOL:
    return cs__buf_puts(out, v->u.b ? "true" : "false");
  case CS_VAL_INT: {
    char dec[CS_DEC_MAX];
    return cs__buf_put(out, dec, cs__fmt_i64(dec, v->u.i));
  }
  case CS_VAL_DOUBLE:
    return put_double(out, v->u.d);
  case CS_VAL_STR:
    return cs__json_put_str(out, cs__val_data(v), v->len);
  case CS_VAL_BYTES: {
    char *hex = cs__malloc((size_t)v->len * 2 + 1);
    int rc;
    if (!hex)
      return CS_ENOMEM;
    cs__hex_encode(hex, (const uint8_t *)cs__val_data(v), v->len);
    if ((rc = cs__buf_puts(out, "{\"$bytes\":\"")) == 0 && (rc = cs__buf_puts(out, hex)) == 0)
      rc = cs__buf_puts(out, "\"}");
    cs__free(hex);
    return rc;
  }
  }
  return cs__buf_puts(out, "null");
}
