/* Growable buffers (cs_buf). */
#include <stdio.h>

#include "base/base.h"

void cs_buf_dispose(cs_buf *buf) {
  if (!buf)
    return;
  cs__free(buf->ptr);
  buf->ptr = NULL;
  buf->size = buf->asize = 0;
}

int cs__buf_grow(cs_buf *buf, size_t need_total) {
  size_t cap = buf->asize;
  char *p;

  if (need_total + 1 <= cap)
    return 0;
  if (cap < 64)
    cap = 64;
  while (cap < need_total + 1) {
    if (cap > SIZE_MAX / 2)
      return cs__error(CS_ENOMEM, "buffer of %zu bytes is too large", need_total);
    cap *= 2;
  }
  p = cs__realloc(buf->ptr, cap);
  if (!p)
    return CS_ENOMEM;
  buf->ptr = p;
  buf->asize = cap;
  return 0;
}

int cs__buf_puts(cs_buf *buf, const char *s) { return cs__buf_put(buf, s, strlen(s)); }

int cs__buf_printf(cs_buf *buf, const char *fmt, ...) {
  va_list ap;
  size_t room = buf->asize > buf->size ? buf->asize - buf->size : 0;
  int n, rc;

  /* One pass when the text fits in the room already there (it usually
   * does), a second into a grown buffer when it did not. */
  va_start(ap, fmt);
  n = vsnprintf(room ? buf->ptr + buf->size : NULL, room, fmt, ap);
  va_end(ap);
  if (n < 0)
    return cs__error(CS_EINTERNAL, "bad format string '%s'", fmt);
  if ((size_t)n >= room) {
    if ((rc = cs__buf_grow(buf, buf->size + (size_t)n)) != 0) {
      if (room)
        buf->ptr[buf->size] = '\0';
      return rc;
    }
    va_start(ap, fmt);
    vsnprintf(buf->ptr + buf->size, (size_t)n + 1, fmt, ap);
    va_end(ap);
  }
  buf->size += (size_t)n;
  return 0;
}

void cs__buf_clear(cs_buf *buf) {
  buf->size = 0;
  if (buf->ptr)
    buf->ptr[0] = '\0';
}

char *cs__buf_detach(cs_buf *buf, size_t *out_len) {
  char *p = buf->ptr;
  if (out_len)
    *out_len = buf->size;
  buf->ptr = NULL;
  buf->size = buf->asize = 0;
  return p;
}
