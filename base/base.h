/*
 * The foundation shared by every layer: errors with context, allocation,
 * growable buffers, byte order and time. Depends on libc only.
 */
#ifndef CS_BASE_H
#define CS_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cosmicsync.h"

#if defined(__GNUC__)
#define CS__PRINTF(f, a) __attribute__((format(printf, f, a)))
#define CS__LIKELY(x) __builtin_expect(!!(x), 1)
#define CS__UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define CS__PRINTF(f, a)
#define CS__LIKELY(x) (x)
#define CS__UNLIKELY(x) (x)
#endif

/* CS__ASAN: built with AddressSanitizer (clang and gcc spell it apart). */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CS__ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(CS__ASAN)
#define CS__ASAN 1
#endif

/* ---- errors ---- */

/*
 * Sets this thread's error (code and formatted message) and returns `code`, so
 * that a failure reads `return cs__error(CS_EINVAL, "field '%s': ...", f);`.
 */
int cs__error(int code, const char *fmt, ...) CS__PRINTF(2, 3);

/*
 * Prefixes the current message with more context ("store '/x': " + message)
 * and returns `code`. Used while an error travels up; never makes it vaguer.
 */
int cs__error_wrap(int code, const char *fmt, ...) CS__PRINTF(2, 3);

/* ---- allocation: every allocation in the library goes through here ---- */

/* Each sets CS_ENOMEM with a message and returns NULL on failure. */
void *cs__malloc(size_t size);
void *cs__calloc(size_t n, size_t size);
void *cs__realloc(void *ptr, size_t size);
/* Grows an array to hold at least `need` items of `item` bytes; 0 or CS_ENOMEM. */
int cs__array_grow(void **ptr, size_t *cap, size_t need, size_t item);
char *cs__strdup(const char *s);
char *cs__strndup(const char *s, size_t n);
void cs__free(void *ptr);

/*
 * Shared names (base/names.c), for names that repeat across many objects
 * (field names). cs__name_dupn returns a NUL-terminated copy of s[0..len):
 * while a process-wide table has room, the one shared copy of that name
 * (equal names, equal pointers; never freed, never to be written), otherwise
 * a private one. cs__name_dup returns a shared name itself. cs__name_free
 * frees private copies only. Thread-safe; NULL (CS_ENOMEM) on failure.
 */
char *cs__name_dupn(const char *s, size_t len);
char *cs__name_dup(const char *s);
void cs__name_free(char *name);
bool cs__name_shared(const char *name);

/*
 * Test hook: make the n-th allocation from now fail (0 disables). Lets tests
 * drive every out-of-memory path. Not thread-safe; tests only.
 */
void cs__alloc_fail_after(unsigned long n);
/* Returns the allocator's free memory to the system (glibc: malloc_trim). */
void cs__heap_trim(void);

/* ---- buffers ---- */

int cs__buf_grow(cs_buf *buf, size_t need_total);
/* Appends len bytes and keeps the buffer NUL-terminated. Inline: keys,
 * records and JSON are built from many small pieces; only growing the
 * buffer is a call. */
static inline int cs__buf_put(cs_buf *buf, const void *data, size_t len) {
  if (CS__UNLIKELY(buf->size + len + 1 > buf->asize)) {
    int rc = cs__buf_grow(buf, buf->size + len);
    if (rc)
      return rc;
  }
  if (len)
    memcpy(buf->ptr + buf->size, data, len);
  buf->size += len;
  buf->ptr[buf->size] = '\0';
  return 0;
}
static inline int cs__buf_putc(cs_buf *buf, char c) { return cs__buf_put(buf, &c, 1); }
int cs__buf_puts(cs_buf *buf, const char *s);
int cs__buf_printf(cs_buf *buf, const char *fmt, ...) CS__PRINTF(2, 3);
void cs__buf_clear(cs_buf *buf);
/* Hands the bytes to the caller (who frees them with cs__free); buf is reset. */
char *cs__buf_detach(cs_buf *buf, size_t *out_len);

/* ---- byte order (keys are big-endian so that iteration order is numeric) ---- */

static inline void cs__put_be64(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; i--) {
    p[i] = (uint8_t)v;
    v >>= 8;
  }
}
static inline uint64_t cs__get_be64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = (v << 8) | p[i];
  return v;
}
static inline void cs__put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}
static inline uint32_t cs__get_be32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* ---- time ---- */

/* Milliseconds since the Unix epoch (wall clock). */
uint64_t cs__now_ms(void);
/* Milliseconds from a monotonic clock (for timeouts and backoff). */
uint64_t cs__mono_ms(void);

/* ---- hex ---- */

/* Writes 2*len hex digits and a NUL to out. */
void cs__hex_encode(char *out, const uint8_t *in, size_t len);
/* Decodes exactly 2*len hex digits; 0 or CS_EINVAL. */
int cs__hex_decode(uint8_t *out, size_t len, const char *hex);

/* ---- text ---- */

/* v in decimal (out holds CS_DEC_MAX bytes: 20 digits, sign, NUL); returns
 * the length, as snprintf's "%llu" / "%lld" would write it. */
#define CS_DEC_MAX 22
size_t cs__fmt_u64(char *out, uint64_t v);
size_t cs__fmt_i64(char *out, int64_t v);

/* The offset of the first byte that is not part of well-formed UTF-8 (no
 * overlong forms, surrogates or code points above U+10FFFF; NUL counts as
 * invalid since names and strings are C strings), or len when all is. */
size_t cs__utf8_check(const char *p, size_t len);

#endif /* CS_BASE_H */
