/*
 * The bounded msgpack reader under the decoder. It never trusts a length: each
 * read checks the bytes that remain, only the canonical (shortest) encoding of
 * an integer or a length is accepted, and containers (arrays, maps, ext) are
 * refused outright, since the format has none. Every failure is CS_ECORRUPT
 * with the decoding context and the item's byte offset.
 */
#include <stdio.h>

#include "core/codec_dec.h"

int cs__dec_fail(cs__dec *d, const char *fmt, ...) {
  char msg[384], prefix[320] = "";
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (d->model && d->action >= 0)
    snprintf(prefix, sizeof(prefix), "model '%.200s', action %ld: ", d->model, d->action);
  else if (d->model && d->state >= 0)
    snprintf(prefix, sizeof(prefix), "model '%.200s', state %ld: ", d->model, d->state);
  else if (d->model)
    snprintf(prefix, sizeof(prefix), "model '%.200s': ", d->model);
  return cs__error(CS_ECORRUPT, "%s%s at offset %zu", prefix, msg, d->item);
}

static const char *type_name(uint8_t b) {
  if (b <= 0x7f || (b >= 0xcc && b <= 0xcf))
    return "unsigned integer";
  if (b >= 0xe0 || (b >= 0xd0 && b <= 0xd3))
    return "negative integer";
  if ((b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf)
    return "map";
  if ((b >= 0x90 && b <= 0x9f) || b == 0xdc || b == 0xdd)
    return "array";
  if ((b >= 0xa0 && b <= 0xbf) || (b >= 0xd9 && b <= 0xdb))
    return "string";
  if (b >= 0xc4 && b <= 0xc6)
    return "binary";
  if (b == 0xc0)
    return "nil";
  if (b == 0xc2 || b == 0xc3)
    return "boolean";
  if (b == 0xca || b == 0xcb)
    return "float";
  if (b == 0xc1)
    return "reserved byte 0xc1";
  return "extension";
}

static int need(cs__dec *d, size_t n, const char *what) {
  if ((size_t)(d->end - d->p) < n)
    return cs__dec_fail(d, "truncated: %s needs %zu bytes, %zu remain", what, n,
                        (size_t)(d->end - d->p));
  return 0;
}

/* A big-endian integer of n = 1, 2, 4 or 8 bytes (msgpack has no other). */
static inline uint64_t get_be(const uint8_t *p, int n) {
  switch (n) {
  case 1:
    return p[0];
  case 2:
    return (uint64_t)p[0] << 8 | p[1];
  case 4:
    return cs__get_be32(p);
  default:
    return cs__get_be64(p);
  }
}

int cs__dec_uint_slow(cs__dec *d, uint64_t *out, const char *what) {
  uint8_t b;
  int n;
  uint64_t v, min;
  /* Defined on failure too: at -O3, gcc cannot tell that callers read it
   * only on success (-Wmaybe-uninitialized in cs__dec_count, dec_hlc). */
  *out = 0;
  d->item = (size_t)(d->p - d->base);
  if (CS__UNLIKELY(d->p >= d->end))
    return cs__dec_fail(d, "truncated: expected %s", what);
  b = *d->p;
  if (CS__LIKELY(b <= 0x7f)) {
    d->p++;
    *out = b;
    return 0;
  }
  switch (b) {
  case 0xcc:
    n = 1;
    min = 0x80;
    break;
  case 0xcd:
    n = 2;
    min = 0x100;
    break;
  case 0xce:
    n = 4;
    min = 0x10000;
    break;
  case 0xcf:
    n = 8;
    min = 0x100000000ull;
    break;
  default:
    return cs__dec_fail(d, "%s: expected unsigned integer, found %s (0x%02x)", what, type_name(b),
                        b);
  }
  if ((size_t)(d->end - d->p) < (size_t)n + 1)
    return cs__dec_fail(d, "truncated: %s needs %d bytes, %zu remain", what, n + 1,
                        (size_t)(d->end - d->p));
  v = get_be(d->p + 1, n);
  if (v < min)
    return cs__dec_fail(d, "%s: integer %llu not in its shortest encoding", what,
                        (unsigned long long)v);
  d->p += n + 1;
  *out = v;
  return 0;
}

int cs__dec_count(cs__dec *d, size_t *out, size_t min_bytes, const char *what) {
  uint64_t v;
  int rc = cs__dec_uint(d, &v, what);
  if (rc)
    return rc;
  /* Every item takes at least min_bytes: a count the rest of the input cannot
   * hold is refused before anything is allocated for it. */
  if (v > (uint64_t)(d->end - d->p) / min_bytes)
    return cs__dec_fail(d,
                        "%s: count %llu exceeds what the remaining %zu bytes can hold (truncated?)",
                        what, (unsigned long long)v, (size_t)(d->end - d->p));
  *out = (size_t)v;
  return 0;
}

/* A str or bin header of the expected family; *len checked against input. */
static int raw_header(cs__dec *d, uint32_t *len, bool bin, uint32_t max, const char *what) {
  uint8_t b;
  int n;
  uint64_t l;
  /* As in cs__dec_uint (cs__dec_name_dup, cs__dec_val). */
  *len = 0;
  d->item = (size_t)(d->p - d->base);
  if (d->p >= d->end)
    return cs__dec_fail(d, "truncated: expected %s", what);
  b = *d->p;
  if (!bin && b >= 0xa0 && b <= 0xbf) {
    n = 0;
    l = b & 0x1f;
  } else if ((!bin && b >= 0xd9 && b <= 0xdb) || (bin && b >= 0xc4 && b <= 0xc6)) {
    n = 1 << (b - (bin ? 0xc4 : 0xd9));
    if ((size_t)(d->end - d->p) < (size_t)n + 1)
      return cs__dec_fail(d, "truncated: %s length needs %d bytes", what, n);
    l = get_be(d->p + 1, n);
    /* Shortest form only: str 0..31 is a fixstr; str8/bin8 below 256; ... */
    if ((n == 1 && !bin && l < 32) || (n == 2 && l < 256) || (n == 4 && l < 65536))
      return cs__dec_fail(d, "%s: length %llu not in its shortest encoding", what,
                          (unsigned long long)l);
  } else {
    return cs__dec_fail(d, "%s: expected %s, found %s (0x%02x)", what, bin ? "binary" : "string",
                        type_name(b), b);
  }
  if (l > max)
    return cs__dec_fail(d, "%s: %llu bytes exceed the limit of %u", what, (unsigned long long)l,
                        max);
  if (l > (uint64_t)(d->end - d->p) - 1 - (uint64_t)n)
    return cs__dec_fail(d, "truncated: %s of %llu bytes, %zu remain", what, (unsigned long long)l,
                        (size_t)(d->end - d->p) - 1 - (size_t)n);
  d->p += 1 + n;
  *len = (uint32_t)l;
  return 0;
}

int cs__dec_name(cs__dec *d, const uint8_t **ptr, uint32_t *len, const char *what) {
  const uint8_t *p = d->p;
  uint8_t head = p < d->end ? *p : 0;
  int rc;
  /* Most names are a fixstr of 1..31 bytes: its header is the one byte. */
  if (CS__LIKELY(head > 0xa0 && head <= 0xbf)) {
    uint32_t n = head & 0x1fu;
    if (CS__LIKELY(n < (size_t)(d->end - p) && !memchr(p + 1, 0, n))) {
      d->item = (size_t)(p - d->base);
      *ptr = p + 1;
      *len = n;
      d->p = p + 1 + n;
      return 0;
    }
  }
  *ptr = NULL;
  rc = raw_header(d, len, false, CS_WIRE_MAX_NAME, what);
  if (rc)
    return rc;
  if (*len == 0)
    return cs__dec_fail(d, "%s: empty name", what);
  if (memchr(d->p, 0, *len))
    return cs__dec_fail(d, "%s: name contains a NUL byte", what);
  *ptr = d->p;
  d->p += *len;
  return 0;
}

int cs__dec_name_dup(cs__dec *d, char **out, const char *what) {
  const uint8_t *p;
  uint32_t len;
  int rc = cs__dec_name(d, &p, &len, what);
  if (rc)
    return rc;
  if (!(*out = cs__strndup((const char *)p, len)))
    return CS_ENOMEM;
  return 0;
}

int cs__dec_val(cs__dec *d, cs_val *out, const char *what) {
  uint8_t b;
  uint32_t len;
  int rc;
  memset(out, 0, sizeof(*out));
  d->item = (size_t)(d->p - d->base);
  if (d->p >= d->end)
    return cs__dec_fail(d, "truncated: expected %s", what);
  b = *d->p;
  if (b <= 0x7f || (b >= 0xcc && b <= 0xcf)) {
    uint64_t u;
    if ((rc = cs__dec_uint(d, &u, what)) != 0)
      return rc;
    if (u > (uint64_t)INT64_MAX)
      return cs__dec_fail(d, "%s: integer %llu does not fit a signed 64-bit value", what,
                          (unsigned long long)u);
    out->type = CS_VAL_INT;
    out->u.i = (int64_t)u;
    return 0;
  }
  if (b >= 0xe0) {
    d->p++;
    out->type = CS_VAL_INT;
    out->u.i = (int8_t)b;
    return 0;
  }
  if (b >= 0xd0 && b <= 0xd3) {
    int n = 1 << (b - 0xd0);
    int64_t v, lo;
    if ((size_t)(d->end - d->p) < (size_t)n + 1)
      return cs__dec_fail(d, "truncated: %s needs %d bytes", what, n + 1);
    v = (int64_t)get_be(d->p + 1, n);
    /* sign-extend from n bytes */
    if (n < 8 && (v & ((int64_t)1 << (n * 8 - 1))))
      v -= (int64_t)1 << (n * 8);
    lo = n == 1 ? -32 : n == 2 ? -128 : n == 4 ? -32768 : -2147483648ll;
    /* Canonical: negative, and too small for the next shorter format. */
    if (v >= lo)
      return cs__dec_fail(d, "%s: integer %lld not in its shortest encoding", what, (long long)v);
    d->p += n + 1;
    out->type = CS_VAL_INT;
    out->u.i = v;
    return 0;
  }
  switch (b) {
  case 0xc0:
    d->p++;
    out->type = CS_VAL_NULL;
    return 0;
  case 0xc2:
  case 0xc3:
    d->p++;
    out->type = CS_VAL_BOOL;
    out->u.b = b == 0xc3;
    return 0;
  case 0xcb: {
    uint64_t bits;
    if ((rc = need(d, 9, what)) != 0)
      return rc;
    bits = get_be(d->p + 1, 8);
    memcpy(&out->u.d, &bits, 8);
    out->type = CS_VAL_DOUBLE;
    d->p += 9;
    return 0;
  }
  default:
    break;
  }
  if ((b >= 0xa0 && b <= 0xbf) || (b >= 0xd9 && b <= 0xdb) || (b >= 0xc4 && b <= 0xc6)) {
    bool bin = b >= 0xc4 && b <= 0xc6;
    if ((rc = raw_header(d, &len, bin, CS_WIRE_MAX_VALUE, what)) != 0 ||
        (rc = bin ? cs__val_bytes(out, d->p, len) : cs__val_str(out, (const char *)d->p, len)) != 0)
      return rc;
    d->p += len;
    return 0;
  }
  return cs__dec_fail(d, "%s: bad value type %s (0x%02x)", what, type_name(b), b);
}

int cs__dec_bool(cs__dec *d, bool *out, const char *what) {
  d->item = (size_t)(d->p - d->base);
  if (d->p >= d->end)
    return cs__dec_fail(d, "truncated: expected %s", what);
  if (*d->p != 0xc2 && *d->p != 0xc3)
    return cs__dec_fail(d, "%s: expected boolean, found %s (0x%02x)", what, type_name(*d->p),
                        *d->p);
  *out = *d->p++ == 0xc3;
  return 0;
}

/* Inverse of the encoder's put_hlc; refuses the non-canonical choices. */
int cs__dec_hlc(cs__dec *d, cs_hlc *out, const char *what) {
  uint64_t z, pm = CS_HLC_MS(d->hlc), pc = d->hlc & 0xffff, ms, c;
  int64_t delta;
  int rc = cs__dec_uint(d, &z, what);
  if (rc)
    return rc;
  if (z >> 2 > (1ull << 50))
    return cs__dec_fail(d, "%s: stamp change out of range", what);
  delta = cs__unzigzag(z >> 2);
  switch (z & 3) {
  case 0:
    c = pc + (uint64_t)delta;
    if ((int64_t)pc + delta < 0 || (int64_t)pc + delta > 0xffff)
      return cs__dec_fail(d, "%s: stamp counter out of range", what);
    ms = pm;
    break;
  case 1:
  case 2:
    if (delta == 0)
      return cs__dec_fail(d, "%s: stamp with a zero millisecond change in mode %d", what,
                          (int)(z & 3));
    ms = pm + (uint64_t)delta;
    if ((int64_t)pm + delta < 0 || ms >= (1ull << 48))
      return cs__dec_fail(d, "%s: stamp milliseconds out of range", what);
    c = 0;
    if ((z & 3) == 2) {
      if ((rc = cs__dec_uint(d, &c, what)) != 0)
        return rc;
      if (c == 0 || c > 0xffff)
        return cs__dec_fail(d, "%s: stamp counter %llu out of range 1..65535", what,
                            (unsigned long long)c);
    }
    break;
  default:
    return cs__dec_fail(d, "%s: bad stamp mode 3", what);
  }
  *out = CS_HLC_MAKE(ms, c);
  d->hlc = *out;
  return 0;
}
