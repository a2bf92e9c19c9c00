/*
 * Private to the encoder: its state and the item writers shared by
 * core/codec_enc.c (values, documents, dot sets, actions, tables) and
 * core/codec_enc_msg.c (sync messages, sections read from a source).
 * Errors are sticky in cs__enc.rc: a writer after a failure does nothing.
 */
#ifndef CS_CODEC_ENC_H
#define CS_CODEC_ENC_H

#include <msgpack.h>

#include "core/codec_int.h"

typedef struct rep_slot {
  uint64_t key;
  uint32_t idx;
  bool used;
} rep_slot;

typedef struct fld_slot {
  const char *name;
  uint32_t idx;
} fld_slot;

typedef struct cov_item {
  uint32_t ridx;
  bool vv;
  uint64_t counter;
} cov_item;

/* Tables this small live in the encoder itself: a document or action names
 * a few replicas and fields, and is encoded without allocating for them. */
#define CS__ENC_SMALL 16

typedef struct cs__enc {
  msgpack_packer pk;
  cs_buf *out;
  int rc;
  rep_slot *reps; /* hash set, cap a power of two; reps_small or heap */
  size_t reps_cap, nreps;
  uint64_t last_rep;  /* the replica added last (valid when nreps > 0) */
  uint64_t *rep_list; /* sorted table; rep_list_small or heap */
  fld_slot *flds;
  size_t flds_cap, nflds;
  const char **fld_list;
  cs_hlc hlc;         /* stamps are written relative to the previous one */
  cs__dotcur cur;     /* sync messages only */
  uint64_t inst_next; /* 1 + the highest instance index used so far */
  bool use_cur;
  cov_item *items;
  size_t items_cap, nitems;
  bool own_names; /* field names outlive the actions of a source: copy them */
  bool doc_order; /* a standalone document's table: field f is entry f */
  struct cs__src_groups *groups; /* per model section, for sections with a source */
  rep_slot reps_small[CS__ENC_SMALL];
  uint64_t rep_list_small[CS__ENC_SMALL / 2];
  const char *fld_list_small[CS__ENC_SMALL];
} cs__enc;

/* The origin groups of a section whose actions come from a source, counted
 * when collecting (a group's count is written before its actions). */
typedef struct cs__src_group {
  uint64_t origin;
  size_t n;
} cs__src_group;

typedef struct cs__src_groups {
  cs__src_group *g;
  size_t len, cap;
} cs__src_groups;

void cs__enc_init(cs__enc *e, cs_buf *out);
/* Ends an encoding: NUL-terminates the buffer, or cuts it back to `start`
 * on failure; frees the state. Returns the sticky code. */
int cs__enc_end(cs__enc *e, size_t start);
void cs__enc_fail(cs__enc *e, int code, const char *fmt, ...) CS__PRINTF(3, 4);

/* First pass: the replicas and field names an item mentions. */
void cs__enc_collect_dotset(cs__enc *e, const cs_dotset *s);
void cs__enc_collect_doc(cs__enc *e, const cs_doc *d);
void cs__enc_collect_action(cs__enc *e, const cs_wire_action *a);
/* Everything a run of actions mentions, from its tables alone. */
void cs__enc_collect_run(cs__enc *e, const cs_run_tables *t);
/* Sorts the collected tables and numbers their entries. */
void cs__enc_tables_finish(cs__enc *e);
uint32_t cs__enc_rep_idx(const cs__enc *e, uint64_t r);

/* Second pass: items. */

/* Grows the output for cs__enc_put_u; false (e->rc set) without memory. */
bool cs__enc_room_u(cs__enc *e);

/*
 * Unsigned integers are most of what the encoder writes, so they go straight
 * into the buffer rather than through the packer's callback, in the shortest
 * form: the bytes msgpack_pack_uint64 writes, and the only ones the reader
 * accepts (core/codec_read.c). The packer writes to the same buffer as it
 * goes and keeps nothing back, so the two interleave.
 */
static inline void cs__enc_put_u(cs__enc *e, uint64_t v) {
  cs_buf *b = e->out;
  uint8_t *p;
  if (e->rc)
    return;
  if (CS__UNLIKELY(b->size + 10 > b->asize) && !cs__enc_room_u(e))
    return;
  p = (uint8_t *)b->ptr + b->size;
  if (v < 0x80) {
    p[0] = (uint8_t)v;
    b->size += 1;
  } else if (v <= 0xff) {
    p[0] = 0xcc;
    p[1] = (uint8_t)v;
    b->size += 2;
  } else if (v <= 0xffff) {
    p[0] = 0xcd;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)v;
    b->size += 3;
  } else if (v <= 0xffffffffu) {
    p[0] = 0xce;
    cs__put_be32(p + 1, (uint32_t)v);
    b->size += 5;
  } else {
    p[0] = 0xcf;
    cs__put_be64(p + 1, v);
    b->size += 9;
  }
}

void cs__enc_put_name(cs__enc *e, const char *what, const char *s);
/* A scalar as msgpack (str, bin, int, float, bool, nil). */
void cs__enc_put_val(cs__enc *e, const cs_val *v);
void cs__enc_put_frame(cs__enc *e, uint8_t type);
void cs__enc_put_tables(cs__enc *e);
void cs__enc_put_dotset(cs__enc *e, const cs_dotset *s);
void cs__enc_put_doc(cs__enc *e, const cs_doc *d, cs__dot_prev *pv);
/* One action; with_instance: its instance reference (messages only). */
void cs__enc_put_action(cs__enc *e, const cs_wire_action *a, uint64_t prev_last,
                        bool with_instance);

#endif /* CS_CODEC_ENC_H */
