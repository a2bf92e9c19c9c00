/*
 * Private to the codec: the decoder's cursor over untrusted bytes and its
 * bounded readers (core/codec_read.c). Each reader returns 0 or CS_ECORRUPT
 * (CS_ENOMEM) with a message naming the decoding context and byte offset.
 */
#ifndef CS_CODEC_DEC_H
#define CS_CODEC_DEC_H

#include "core/codec_int.h"

#define CS__DEC_SMALL 16

typedef struct cs__dec {
  const uint8_t *base, *p, *end;
  size_t item;        /* offset of the item being read, for messages */
  const char *model;  /* context for messages (borrowed) */
  long action, state; /* -1 when not inside one */
  uint64_t *reps;     /* replica table (owned) */
  size_t nreps;
  const uint8_t **flds; /* field table: pointers into the input (owned array) */
  uint32_t *fld_lens;
  size_t nflds;
  uint8_t *rep_used, *fld_used; /* canonical tables hold only what is used */
  char **fld_shared;            /* each field name's shared copy, once looked up (owned array) */
  /* A document's tables are small: up to CS__DEC_SMALL entries they live
   * here, and decoding one allocates nothing for them (never copy a cs__dec). */
  uint64_t reps_small[CS__DEC_SMALL];
  const uint8_t *flds_small[CS__DEC_SMALL];
  uint32_t lens_small[CS__DEC_SMALL];
  uint8_t rep_used_small[CS__DEC_SMALL], fld_used_small[CS__DEC_SMALL];
  char *fld_shared_small[CS__DEC_SMALL];
  cs_hlc hlc; /* previous stamp */
  /* Own dots the actions may still claim: decoding materialises them (the
   * context holds them), so their total is bounded by the input size. */
  uint64_t dot_budget;
  cs__dotcur cur;
  bool use_cur;
  bool use_memo, memo_hit;  /* documents: see the field table memo */
  const uint8_t *fld_table; /* where the field table's bytes start */
  size_t fld_table_len;
  /* Where dropped actions' arrays wait for the next actions (see
   * cs_action_pool): the sink's, or one of this decoder's own. */
  cs_action_pool *pool;
  bool own_pool;
} cs__dec;

int cs__dec_fail(cs__dec *d, const char *fmt, ...) CS__PRINTF(2, 3);
/* An unsigned integer in its shortest form. Inline for the one-byte
 * integers that most are; every other case (and every failure) is read by
 * cs__dec_uint_slow. */
int cs__dec_uint_slow(cs__dec *d, uint64_t *out, const char *what);
static inline int cs__dec_uint(cs__dec *d, uint64_t *out, const char *what) {
  if (CS__LIKELY(d->p < d->end && *d->p <= 0x7f)) {
    d->item = (size_t)(d->p - d->base);
    *out = *d->p++;
    return 0;
  }
  return cs__dec_uint_slow(d, out, what);
}
/* A count of items taking at least min_bytes each, checked against the input. */
int cs__dec_count(cs__dec *d, size_t *out, size_t min_bytes, const char *what);
/* A name (1..CS_WIRE_MAX_NAME bytes, no NUL); *ptr points into the input. */
int cs__dec_name(cs__dec *d, const uint8_t **ptr, uint32_t *len, const char *what);
/* Field table entry fi (< nflds) as a name for a decoded field, which the
 * caller frees with cs__name_free; NULL when out of memory. */
char *cs__dec_field_name(cs__dec *d, uint64_t fi);
/* The same, copied; caller frees with cs__free. */
int cs__dec_name_dup(cs__dec *d, char **out, const char *what);
/* A value; STR/BYTES are copied (out owns them). */
int cs__dec_val(cs__dec *d, cs_val *out, const char *what);
int cs__dec_bool(cs__dec *d, bool *out, const char *what);
int cs__dec_hlc(cs__dec *d, cs_hlc *out, const char *what);

/* `TRY(call)`: on a nonzero code, keep it in rc and go to the cleanup label. */
#define CS__TRY(x)                                                                                 \
  do {                                                                                             \
    if ((rc = (x)) != 0)                                                                           \
      goto done;                                                                                   \
  } while (0)

/* Structure readers shared by core/codec_dec.c and core/codec_msg.c. */
void cs__dec_init(cs__dec *d, const uint8_t *p, size_t len);
void cs__dec_dispose(cs__dec *d);
/* Length limit, version byte (CS_EVERSION) and frame kind (0: any). */
int cs__dec_frame(cs__dec *d, size_t len, uint8_t want, const char *what);
/* No trailing bytes, every table entry used. */
int cs__dec_end(cs__dec *d);
int cs__dec_tables(cs__dec *d);
/* Empties this thread's field table memo (codec_dec.c), for tests. */
void cs__dec_memo_forget(void);
int cs__dec_ridx(cs__dec *d, uint32_t *out, const char *what);
/* On failure *out is freed and zeroed. */
int cs__dec_dotset(cs__dec *d, cs_dotset *out, const char *what);
/* On failure the caller disposes *doc. */
int cs__dec_doc(cs__dec *d, cs_doc *doc, cs__dot_prev *pv);
/* One action record (the caller read the instance); the caller disposes *a
 * on failure. */
int cs__dec_action(cs__dec *d, cs_wire_action *a, uint64_t prev_last, uint32_t oridx);

#endif /* CS_CODEC_DEC_H */
