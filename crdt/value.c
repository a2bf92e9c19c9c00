/* Scalars: ownership, copies and the total order used for canonical sets. */
#include "crdt/crdt.h"

void cs__val_dispose(cs_val *v) {
  if ((v->type == CS_VAL_STR || v->type == CS_VAL_BYTES) && !v->inl)
    cs__free(v->u.ptr);
  v->type = CS_VAL_NULL;
  v->inl = false;
  v->len = 0;
  v->u.i = 0;
}

static int val_blob(cs_val *out, uint8_t type, const void *p, size_t len) {
  char *copy;

  if (len > UINT32_MAX - 1)
    return cs__error(CS_ETOOBIG, "value of %zu bytes exceeds the 4 GiB limit", len);
  if (len <= CS_VAL_INLINE) {
    copy = out->u.in;
    out->inl = true;
  } else if ((copy = cs__malloc(len + 1)) != NULL) {
    out->u.ptr = copy;
    out->inl = false;
  } else
    return CS_ENOMEM;
  if (len)
    memcpy(copy, p, len);
  copy[len] = '\0';
  out->type = type;
  out->len = (uint32_t)len;
  return 0;
}

int cs__val_str(cs_val *out, const char *s, size_t len) {
  return val_blob(out, CS_VAL_STR, s, len);
}

int cs__val_bytes(cs_val *out, const void *p, size_t len) {
  return val_blob(out, CS_VAL_BYTES, p, len);
}

int cs__val_copy(cs_val *dst, const cs_val *src) {
  if (src->type == CS_VAL_STR || src->type == CS_VAL_BYTES)
    return val_blob(dst, src->type, cs__val_data(src), src->len);
  *dst = *src;
  return 0;
}

/*
 * Maps a double's bits to an unsigned key whose order is IEEE 754 totalOrder:
 * negatives reversed below positives, -0 before +0, NaNs at the ends. Bit
 * equality is the only equality, so the order is total and canonical.
 */
static uint64_t double_key(double d) {
  uint64_t bits;

  memcpy(&bits, &d, sizeof bits);
  return (bits & 0x8000000000000000ull) ? ~bits : bits | 0x8000000000000000ull;
}

int cs__val_cmp(const cs_val *a, const cs_val *b) {
  if (a->type != b->type)
    return a->type < b->type ? -1 : 1;
  switch (a->type) {
  case CS_VAL_BOOL:
    return (int)a->u.b - (int)b->u.b;
  case CS_VAL_INT:
    return a->u.i < b->u.i ? -1 : a->u.i > b->u.i;
  case CS_VAL_DOUBLE: {
    uint64_t ka = double_key(a->u.d), kb = double_key(b->u.d);
    return ka < kb ? -1 : ka > kb;
  }
  case CS_VAL_STR:
  case CS_VAL_BYTES: {
    uint32_t n = a->len < b->len ? a->len : b->len;
    int c = n ? memcmp(cs__val_data(a), cs__val_data(b), n) : 0;
    if (c)
      return c < 0 ? -1 : 1;
    return a->len < b->len ? -1 : a->len > b->len;
  }
  default: /* NULL (and unknown tags, which never reach a document) */
    return 0;
  }
}

bool cs__val_equal(const cs_val *a, const cs_val *b) {
  return cs__val_cmp(a, b) == 0;
}
