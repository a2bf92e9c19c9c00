/*
 * Private to the codec (core/codec_*.c): the frame kinds, the action tag
 * layout, the integer transforms and the per-document dot cursor that the
 * encoder and the decoder must apply identically. Not for other layers.
 */
#ifndef CS_CODEC_INT_H
#define CS_CODEC_INT_H

#include "core/codec.h"

/* Byte 1 of a frame: the sync message types (1..4) or one of these. */
enum { CS__WIRE_DOC = 16, CS__WIRE_ACTION = 17, CS__WIRE_DOTSET = 18 };

#define CS__WIRE_SUM_LEN 16 /* BLAKE2b-128 trailer of a sync message */

/* Action tag = field index << 3 | CS__TAG_SPAN? | shape. */
enum {
  CS__SHAPE_REG1 = 0,    /* one register write with the action's first dot and stamp */
  CS__SHAPE_ADD1 = 1,    /* one set element with the action's first dot */
  CS__SHAPE_EMPTY = 2,   /* no entries (a remove, a counter-free clear) */
  CS__SHAPE_GENERAL = 3, /* a full document follows */
};
#define CS__TAG_SPAN 4u

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
typedef struct cs__dotcur {
  uint64_t *keys; /* (instance << 32 | replica index) + 1; 0 = free */
  uint64_t *vals;
  size_t cap, len;
} cs__dotcur;

/* true and *out set when the key has a cursor. */
bool cs__dotcur_get(const cs__dotcur *c, uint32_t instance, uint32_t ridx, uint64_t *out);
int cs__dotcur_set(cs__dotcur *c, uint32_t instance, uint32_t ridx, uint64_t counter);
void cs__dotcur_dispose(cs__dotcur *c);

#endif /* CS_CODEC_INT_H */
