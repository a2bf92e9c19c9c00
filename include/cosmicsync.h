/*
 * cosmicsync: an offline-first CRDT replication engine.
 *
 * This is the one public header. Anything not declared here is not API and may
 * change without notice.
 *
 * Conventions
 *  - Functions return 0 on success or a negative CS_E* code. The failing call
 *    also sets a message with context, read with cs_errmsg() on the same thread.
 *  - Output parameters come first and are named `out`.
 *  - Strings are NUL-terminated UTF-8. JSON crosses the API as text.
 *  - Returned memory is owned by the caller unless a comment says otherwise;
 *    each comment names the function that frees it.
 *  - A cs_store may be used from several threads at once; other handles belong
 *    to one thread at a time unless their comment says otherwise.
 */
#ifndef COSMICSYNC_H
#define COSMICSYNC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define CS_EXTERN __attribute__((visibility("default")))
#else
#define CS_EXTERN
#endif

#define CS_VERSION_MAJOR 0
#define CS_VERSION_MINOR 1
#define CS_VERSION_PATCH 0

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * The one error table: X(NAME, value, description). Callers branch on the
 * codes; the description is what cs_strerror() returns.
 */
#define CS_ERRNO_MAP(X)                                                        \
  X(NOTFOUND, -1, "not found")                                                 \
  X(INVAL, -2, "invalid input")                                              \
  X(CORRUPT, -3, "corrupt data")                                               \
  X(VERSION, -4, "unsupported format version")                                 \
  X(AUTH, -5, "authentication or authorization failed")                        \
  X(CLOCK, -6, "clock skew beyond the allowed maximum")                        \
  X(NETWORK, -7, "network failure")                                            \
  X(CONFLICT, -8, "conflict")                                                  \
  X(ITEROVER, -9, "iteration is over")                                         \
  X(NOMEM, -10, "out of memory")                                               \
  X(IO, -11, "storage input/output error")                                     \
  X(EXISTS, -12, "already exists")                                             \
  X(TOOBIG, -13, "too large")                                                  \
  X(TIMEOUT, -14, "timed out")                                               \
  X(BUSY, -15, "busy")                                                         \
  X(STATE, -16, "not allowed in the current state")                            \
  X(INTERNAL, -17, "internal error")

enum cs_error_code {
  CS_OK = 0,
#define CS__ERRNO_ENUM(name, value, text) CS_E##name = value,
  CS_ERRNO_MAP(CS__ERRNO_ENUM)
#undef CS__ERRNO_ENUM
};

/* A static description of an error code; never NULL. */
CS_EXTERN const char *cs_strerror(int code);

/*
 * The message of the last failed call on this thread ("delta 3, field
 * 'interests': expected array at offset 117"). Borrowed: valid until the next
 * cosmicsync call on this thread. Never NULL ("" when none).
 */
CS_EXTERN const char *cs_errmsg(void);

/* The code of the last failed call on this thread (0 when none). */
CS_EXTERN int cs_errcode(void);

/* Forget the last error of this thread. */
CS_EXTERN void cs_error_clear(void);

/* ------------------------------------------------------------------------ */
/* Buffers and byte views                                                    */
/* ------------------------------------------------------------------------ */

/*
 * A growable output buffer. Functions that return text or bytes fill one;
 * the caller owns it and frees it with cs_buf_dispose(). `ptr` is always
 * NUL-terminated after a successful fill (the NUL is not counted in `size`).
 */
typedef struct cs_buf {
  char *ptr;
  size_t size;  /* bytes in use */
  size_t asize; /* bytes allocated */
} cs_buf;

#define CS_BUF_INIT {NULL, 0, 0}

CS_EXTERN void cs_buf_dispose(cs_buf *buf);

/* A borrowed view of bytes. */
typedef struct cs_bytes {
  const uint8_t *ptr;
  size_t len;
} cs_bytes;

/* Frees memory that a cosmicsync function returned as a bare pointer. */
CS_EXTERN void cs_free(void *ptr);

/* CS_API_BODY */

#ifdef __cplusplus
}
#endif

#endif /* COSMICSYNC_H */
