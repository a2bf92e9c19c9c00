/*
 * Private to the codec (core/codec_*.c): the frame kinds, the action tag
 * layout, the integer transforms and the per-document dot cursor that the
 * encoder and the decoder must apply identically. Not for other layers.
 */
#ifndef CS_CODEC_INT_H
#define CS_CODEC_INT_H

#include "core/codec.h"

/* Byte 1 of a frame: the sync message types (1..4) or one of these. */
enum { CS__WIRE_DOC = 16, CS__WIRE_ACTION = 17, CS__WIRE_DOTSET = 18, CS__WIRE_RUN = 19 };

#define CS__WIRE_SUM_LEN 16 /* BLAKE2b-128 trailer of a sync message */

/* The content shapes of an action (see cs__wire_action_shape). */
enum {
  CS__SHAPE_REG1 = 0,    /* one register write with the action's first dot and stamp */
  CS__SHAPE_ADD1 = 1,    /* one set element with the action's first dot */
  CS__SHAPE_EMPTY = 2,   /* no entries (a remove, a counter-free clear) */
  CS__SHAPE_GENERAL = 3, /* a full document follows */
};

/*
 * Action tag = field index << 3 | code. The code names the shape and how the
 * covered dots follow: a list (count, items), exactly one single dot (the
 * item alone), or none. CS__CODE_RANGE is a prefix: the dot range (gap,
 * extent) follows, then the real tag.
 */
enum {
  CS__CODE_REG1_LIST = 0,
  CS__CODE_REG1_ONE = 1,
  CS__CODE_ADD1_LIST = 2,
  CS__CODE_ADD1_NONE = 3,
  CS__CODE_EMPTY_LIST = 4,
  CS__CODE_EMPTY_ONE = 5,
  CS__CODE_GENERAL_LIST = 6,
  CS__CODE_RANGE = 7,
};
#define CS__TAG_FIELD_SHIFT 3

/*
 * An instance reference k (distance back from the next new index) costs 1
 * byte below 64 and 2 bytes below 8128 as a pair of fixints (lead item
 * 64..126 with the high bits, then the low 7 bits), where a msgpack uint16
 * would cost 3; larger k is lead item 127 then k - 8128.
 */
#define CS__INST_ONE 64u
#define CS__INST_PAIR_END (CS__INST_ONE + 63u * 128u) /* 8128 */
#define CS__INST_ESCAPE 127u

/* A covered item is one uint w = (min(code, LIM) * nreps + ridx) << 1 | prefix,
 * followed by code - LIM when code >= LIM. */
#define CS__ITEM_LIM (1ull << 24)
#define CS__MAX_REPLICAS (1ull << 26) /* bounded by CS_WIRE_MAX_MESSAGE anyway */

/* The shape an action takes (CS__SHAPE_*); *out is its field for REG1/ADD1. */
int cs__wire_action_shape(const cs_wire_action *a, const cs_field **out);
#define CS__TAG_FIELD_SHIFT 3

static inline uint64_t cs__zigzag(int64_t v) {
  return ((uint64_t)v << 1) ^ (uint64_t)(v < 0 ? -1 : 0);
}
static inline int64_t cs__unzigzag(uint64_t z) {
  return (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
}

/*
 * The dot cursor of a sync message: for (instance, replica index), the last
 * counter the stream mentioned (a covered dot or the action's last own dot).
 * A covered dot whose (instance, replica) has a cursor is written as a signed
 * distance from it: edits of one document tend to overwrite dots that are
 * close to each other (its creation dots, or its previous edit).
 */
typedef struct cs__dotcur_ent {
  uint64_t key; /* (instance << 32 | replica index) + 1; 0 = free */
  uint64_t val;
} cs__dotcur_ent;

typedef struct cs__dotcur {
  cs__dotcur_ent *ents;
  size_t cap, len;
  /* When a section's instance and replica tables are small enough (see
   * cs__dotcur_plan): the cursor of (instance, replica index) is
   * dense[instance * dense_reps + ridx], 0 for none (counters are >= 1),
   * and the hash table serves only keys outside it. */
  uint64_t *dense;
  size_t dense_reps, dense_len;
} cs__dotcur;

/* The most cursors held in a dense array: 2^18 (2 MiB). Tests move it to
 * write and read the same messages both ways. */
extern size_t cs__dotcur_dense_max;

/* Before a section: with ninstances x nreps within cs__dotcur_dense_max,
 * its cursors go into a dense array (direct indexing, allocated once)
 * instead of the hash table. 0 or CS_ENOMEM. */
int cs__dotcur_plan(cs__dotcur *c, size_t ninstances, size_t nreps);

int cs__dotcur_set(cs__dotcur *c, uint32_t instance, uint32_t ridx, uint64_t counter);
/* The key's cursor, made (0, *found false) when it has none: one probe for
 * a read and the write that follows it. Valid until the next call; NULL
 * (CS_ENOMEM) when the table cannot grow. */
uint64_t *cs__dotcur_at(cs__dotcur *c, uint32_t instance, uint32_t ridx, bool *found);
void cs__dotcur_dispose(cs__dotcur *c);

/* The previous dot written in a document (dots are relative to it). */
typedef struct cs__dot_prev {
  bool valid;
  uint32_t ridx;
  uint64_t counter;
} cs__dot_prev;

#endif /* CS_CODEC_INT_H */
