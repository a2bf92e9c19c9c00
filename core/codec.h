/*
 * The delta codec: the wire and log format of cosmicsync (docs/wire-format.md).
 * msgpack-based, versioned, checksummed (BLAKE2b), canonical, and decoded by a
 * strict validating reader: every count and length is checked against the
 * bytes that remain before anything is allocated, nesting and totals are
 * bounded, and a bad input fails with CS_ECORRUPT / CS_EVERSION and a message
 * naming what and where (byte offset), leaving the output empty.
 */
#ifndef CS_CODEC_H
#define CS_CODEC_H

#include "crdt/crdt.h"

#define CS_WIRE_VERSION 1

/* Limits enforced by the decoder (documented in docs/wire-format.md). */
#define CS_WIRE_MAX_MESSAGE (64u << 20) /* bytes */
#define CS_WIRE_MAX_NAME 1024           /* model, instance, field name bytes */
#define CS_WIRE_MAX_VALUE (1u << 20)    /* string / bytes value */
#define CS_WIRE_MAX_DEPTH 16            /* msgpack nesting */

typedef enum cs_msg_type {
  CS_MSG_SYNC_REQUEST = 1,  /* knowledge + actions the peer lacks */
  CS_MSG_SYNC_RESPONSE = 2, /* knowledge + actions + states the requester lacks */
  CS_MSG_PULL_REQUEST = 3,  /* partial sync: cursor + model list */
  CS_MSG_PULL_RESPONSE = 4, /* partial sync: states changed after cursor + new cursor */
} cs_msg_type;

/*
 * One local action on one document, as logged and exchanged: its delta (a
 * small document state plus its context) and the dots it created.
 */
typedef struct cs_wire_action {
  uint32_t instance; /* index into the model's instance table */
  cs_replica origin;
  uint64_t first, last; /* origin's dots first..last, first >= 1 */
  cs_hlc hlc;
  cs_doc doc;
  cs_dotset ctx;
} cs_wire_action;

/* A whole document state (joined with the model section's knowledge). */
typedef struct cs_wire_state {
  uint32_t instance;
  cs_doc doc;
} cs_wire_state;

/* Hands `fn` each action of a section in order; stops at fn's nonzero code
 * and returns it. */
typedef int (*cs_action_fn)(void *fnarg, const cs_wire_action *a);

/*
 * A run of one origin's consecutive actions, described by what the
 * collecting pass of the encoder needs from them: how many there are and
 * exactly the replicas and field names they mention (sorted, as in a
 * table). A cs_tables_fn borrows it for the call.
 */
typedef struct cs_run_tables {
  cs_replica origin;
  size_t nactions;
  const cs_replica *reps;
  size_t nreps;
  char *const *fields;
  size_t nfields;
} cs_run_tables;

typedef int (*cs_tables_fn)(void *fnarg, const cs_run_tables *t);

/*
 * Actions a sender reads as it encodes them (from its log) instead of
 * holding them all decoded. The encoder calls `each` twice, to collect its
 * tables and to write: both calls must give the same actions in the same
 * order (sorted by origin, then dots), with instance indexes into the
 * section's table, complete once the first call returns. In the collecting
 * call `tables` is set, and the source may describe a run with it instead
 * of handing over each action (it then interns the run's instances itself);
 * in the writing call `tables` is NULL and every action goes through fn.
 */
typedef struct cs_action_source {
  int (*each)(void *arg, cs_action_fn fn, cs_tables_fn tables, void *fnarg);
  void *arg;
} cs_action_source;

typedef struct cs_wire_model {
  char *name;
  cs_dotset knowledge; /* sender's knowledge of the model */
  char **instances;    /* instance table; names unique */
  size_t ninstances;
  bool instances_inline;   /* decoded: the names live in the allocation of
                              `instances` (not freed one by one) */
  cs_wire_action *actions; /* sorted by (origin, first) */
  size_t nactions;
  const cs_action_source *source; /* encoding only: actions come from here
                                     (`actions` empty) */
  cs_wire_state *states;          /* sorted by instance name */
  size_t nstates;
} cs_wire_model;

typedef struct cs_sync_msg {
  uint8_t type;          /* cs_msg_type */
  cs_replica sender;     /* replica id of the sender */
  cs_hlc clock;          /* sender's clock when sending (skew check) */
  uint64_t cursor;       /* PULL_REQUEST: since; PULL_RESPONSE: new cursor */
  uint32_t flags;        /* CS_MSG_F_* */
  cs_wire_model *models; /* sorted by name, names unique */
  size_t nmodels;
} cs_sync_msg;

/* The section carries states because the sender could not serve actions
 * (its log was compacted past the peer's knowledge). */
#define CS_MSG_F_STATES 1u

void cs__sync_msg_dispose(cs_sync_msg *msg);

/* Encodes msg (which must be canonical: sorted, unique) into out (appended). */
int cs__codec_encode_msg(cs_buf *out, const cs_sync_msg *msg);
/* Strict decode of untrusted bytes. On failure *out is zeroed. */
int cs__codec_decode_msg(cs_sync_msg *out, const uint8_t *p, size_t len);

/*
 * A log run as the store keeps it: a sync request (msg->type must be
 * CS_MSG_SYNC_REQUEST) in frame kind 19, without the checksum, which
 * RocksDB's block checksums make redundant on disk. Only the store's own
 * records are read with cs__codec_decode_run_sink, which also reads runs
 * written before, as checksummed sync requests. The message decoders refuse
 * kind 19 by its type ("unknown message type 19"), whatever the checksum.
 */
int cs__codec_encode_run(cs_buf *out, const cs_sync_msg *msg);

/*
 * The arrays of dropped one-field actions (the shape most actions have: one
 * field of one register entry or set element, and a context of a few dots),
 * kept for a decoder to build later actions in instead of allocating. A
 * streamed decode keeps one of its own; a merge shares one between its
 * decoder and the log runs it builds, which drop up to 256 actions at once.
 */
#define CS_ACTION_POOL_MAX 256
typedef struct cs_action_pool {
  cs_field *field[CS_ACTION_POOL_MAX];   /* arrays of one field, emptied */
  cs_reg_entry *reg[CS_ACTION_POOL_MAX]; /* arrays of one entry, emptied */
  cs_set_elem *elem[CS_ACTION_POOL_MAX]; /* one element, emptied but for its dots array (cap 1) */
  cs_dot *extra[CS_ACTION_POOL_MAX];     /* context arrays, with their capacities */
  size_t extra_cap[CS_ACTION_POOL_MAX];
  cs_vv_entry *vv[CS_ACTION_POOL_MAX];
  size_t vv_cap[CS_ACTION_POOL_MAX];
  size_t nfield, nreg, nelem, nextra, nvv;
} cs_action_pool;

/* Disposes *a (zeroed), keeping in p (when not NULL) what arrays it has room
 * for. */
void cs__action_pool_put(cs_action_pool *p, cs_wire_action *a);
/* An array the pool keeps, zeroed (an element keeps its dots array of
 * one), or NULL when it has none (p may be NULL). */
cs_field *cs__action_pool_field(cs_action_pool *p);
cs_reg_entry *cs__action_pool_reg(cs_action_pool *p);
cs_set_elem *cs__action_pool_elem(cs_action_pool *p);
/* Gives an empty context (no arrays) the pool's context arrays, if any. */
void cs__action_pool_ctx(cs_action_pool *p, cs_dotset *ctx);
/* Frees what p keeps (p itself is the caller's). */
void cs__action_pool_dispose(cs_action_pool *p);

/*
 * Where a streamed decode hands what it reads, in input order. A nonzero
 * return stops the decode with that code. Each callback may be NULL.
 *   header:      the message's type, sender, clock, cursor and flags are set;
 *   section:     a model section's name, knowledge and instance table are;
 *   action:      one action of that section (the callback may move its
 *                document and context out, leaving them zeroed; whatever is
 *                left is disposed after the call);
 *   section_end: the section's states are decoded (wm->states).
 * The message keeps everything but the actions: wm->actions stays empty and
 * wm->nactions counts the actions handed over.
 */
typedef struct cs_msg_sink {
  int (*header)(void *arg, const cs_sync_msg *msg);
  int (*section)(void *arg, cs_wire_model *wm);
  int (*action)(void *arg, cs_wire_model *wm, size_t index, cs_wire_action *a);
  int (*section_end)(void *arg, cs_wire_model *wm);
  void *arg;
  /* Where the decoder keeps dropped actions' arrays and takes new ones
   * from; the caller's, and it must outlive the decode (NULL: a pool of
   * the decoder's own, for this decode). */
  cs_action_pool *pool;
} cs_msg_sink;

/* cs__codec_decode_msg, handing actions to `sink` instead of keeping them:
 * a message of any size is decoded in the memory of one action. The
 * checksum is verified before any callback runs. */
int cs__codec_decode_msg_sink(cs_sync_msg *out, const uint8_t *p, size_t len,
                              const cs_msg_sink *sink);
/* The same for a stored log run (cs__codec_encode_run); sink may be NULL. */
int cs__codec_decode_run_sink(cs_sync_msg *out, const uint8_t *p, size_t len,
                              const cs_msg_sink *sink);

/*
 * What a log run (a sync message of one model section holding one origin's
 * actions) tells without decoding its actions: its tables, its instance
 * table and the first dot of its first action. `simple` is false when the
 * message has another shape (several sections or groups, a knowledge, an
 * origin other than its sender); the rest is then empty. What follows the
 * first action's dot range is not read (a run with states still peeks as
 * simple: cs__segment_decode refuses it). The bytes are read with the
 * decoder's bounds but not checksummed, nor the instance names checked for
 * duplicates, so the caller decodes the run in full before using its
 * actions, and on a failure decodes it to report the damage (the full
 * decode names it better). Either frame of a run is read.
 *
 * Returns 0, CS_ECORRUPT or CS_ENOMEM; on failure *out is empty. Everything
 * in *out (t.reps, t.fields, instances) is owned by it: free it with
 * cs__run_peek_dispose.
 */
typedef struct cs_run_peek {
  bool simple;
  cs_run_tables t;
  char **instances; /* one allocation: the names live in it */
  size_t ninstances;
  uint64_t first;
} cs_run_peek;

int cs__codec_peek_run(cs_run_peek *out, const uint8_t *p, size_t len);
void cs__run_peek_dispose(cs_run_peek *pk);

/* A change index entry (core/codec_changes.c): the instance names one flush
 * wrote, or, as written before format 3, a single name. */
int cs__change_list_start(cs_buf *val);
int cs__change_list_add(cs_buf *val, const char *instance);
typedef struct cs_change_cursor {
  const uint8_t *v; /* borrowed: must outlive the cursor */
  size_t len, pos;
  bool single;         /* the layout before format 3 */
  const uint8_t *prev; /* the name read last (in v), for the order check */
  size_t prev_len;
} cs_change_cursor;
int cs__change_cursor_init(cs_change_cursor *c, const uint8_t *v, size_t len);
/* 1 and the next name in *out (the caller frees it with cs__free), 0 at
 * the end, or CS_ECORRUPT (names empty, cut short, holding NUL or out of
 * key order) or CS_ENOMEM. */
int cs__change_cursor_next(char **out, cs_change_cursor *c);

/* A document state alone (the documents column family). Versioned, no checksum
 * beyond RocksDB's own block checksums. */
int cs__codec_encode_doc(cs_buf *out, const cs_doc *doc);
int cs__codec_decode_doc(cs_doc *out, const uint8_t *p, size_t len);

/* A logged action with its instance name inline (the log column family). */
int cs__codec_encode_action(cs_buf *out, const cs_wire_action *a, const char *instance);
/* On success *instance is owned by the caller (cs__free); a->instance is 0. */
int cs__codec_decode_action(cs_wire_action *a, char **instance, const uint8_t *p, size_t len);
void cs__wire_action_dispose(cs_wire_action *a);

/* A causal context alone (model knowledge, peers' acknowledged knowledge). */
int cs__codec_encode_dotset(cs_buf *out, const cs_dotset *s);
int cs__codec_decode_dotset(cs_dotset *out, const uint8_t *p, size_t len);

/* Added by the codec: the most dots one action may own (last - first + 1),
 * so that a decoder never loops over a range an attacker chose. */
#define CS_WIRE_MAX_SPAN (1u << 16)

#endif /* CS_CODEC_H */
