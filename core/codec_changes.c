/*
 * A change index entry's value (docs/storage-format.md, "changes"): the
 * instance names one flush wrote, as a list, or, as written before format
 * 3, a single name as the whole value. Names never contain NUL, so a value
 * that starts with a zero byte is a list. Read from disk: every name is
 * checked (length, NUL, strictly increasing in document key order).
 */
#include "core/codec.h"

#define LIST_MARK 0x00
#define LIST_VERSION 0x01

int cs__change_list_start(cs_buf *val) {
  cs__buf_clear(val);
  if (cs__buf_putc(val, (char)LIST_MARK) != 0 || cs__buf_putc(val, (char)LIST_VERSION) != 0)
    return CS_ENOMEM;
  return 0;
}

int cs__change_list_add(cs_buf *val, const char *instance) {
  size_t len = strlen(instance);
  uint8_t hdr[2];
  int rc;
  if (len == 0 || len > UINT16_MAX)
    return cs__error(CS_EINVAL, "instance name of %zu bytes in a change index entry", len);
  hdr[0] = (uint8_t)(len >> 8);
  hdr[1] = (uint8_t)len;
  if ((rc = cs__buf_put(val, hdr, 2)) != 0)
    return rc;
  return cs__buf_put(val, instance, len);
}

int cs__change_cursor_init(cs_change_cursor *c, const uint8_t *v, size_t len) {
  c->v = v;
  c->len = len;
  c->pos = 0;
  c->single = len == 0 || v[0] != LIST_MARK;
  if (c->single)
    return 0;
  if (len < 2)
    return cs__error(CS_ECORRUPT, "change index entry of %zu bytes: list version missing", len);
  if (v[1] != LIST_VERSION)
    return cs__error(CS_ECORRUPT, "change index entry of %zu bytes: unknown list version %u", len,
                     v[1]);
  c->pos = 2;
  c->prev = NULL;
  c->prev_len = 0;
  return 0;
}

/* Document key order (cs__key_doc): by length, then bytes. */
static int cmp_names(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
  if (alen != blen)
    return alen < blen ? -1 : 1;
  return memcmp(a, b, alen);
}

int cs__change_cursor_next(char **out, cs_change_cursor *c) {
  *out = NULL;
  if (c->single) {
    if (c->pos)
      return 0;
    c->pos = 1;
    if (c->len == 0)
      return cs__error(CS_ECORRUPT, "change index entry is empty");
    if (memchr(c->v, '\0', c->len))
      return cs__error(CS_ECORRUPT, "change index entry's name contains a NUL byte");
    if ((*out = cs__strndup((const char *)c->v, c->len)) == NULL)
      return CS_ENOMEM;
    return 1;
  }
  if (c->pos == c->len)
    return 0;
  size_t p = c->pos, n;
  if (c->len - p < 2)
    return cs__error(CS_ECORRUPT,
                     "change index entry of %zu bytes: name length cut short at offset %zu", c->len,
                     p);
  n = ((size_t)c->v[p] << 8) | c->v[p + 1];
  if (n == 0 || c->len - p - 2 < n)
    return cs__error(CS_ECORRUPT,
                     "change index entry of %zu bytes: name at offset %zu claims %zu bytes, %zu "
                     "remain",
                     c->len, p, n, c->len - p - 2);
  const uint8_t *name = c->v + p + 2;
  if (memchr(name, '\0', n))
    return cs__error(CS_ECORRUPT,
                     "change index entry of %zu bytes: name at offset %zu contains a NUL byte",
                     c->len, p);
  if (c->prev && cmp_names(c->prev, c->prev_len, name, n) >= 0)
    return cs__error(CS_ECORRUPT,
                     "change index entry of %zu bytes: name at offset %zu is not after the one "
                     "before it",
                     c->len, p);
  if ((*out = cs__strndup((const char *)name, n)) == NULL)
    return CS_ENOMEM;
  c->prev = name;
  c->prev_len = n;
  c->pos = p + 2 + n;
  return 1;
}
