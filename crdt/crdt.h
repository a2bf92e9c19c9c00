/*
 * The CRDT core: clocks, dots, causal contexts, registers, sets, counters and
 * documents, with one join. Pure data: no I/O. Depends on base/ (errors and
 * allocation) and libc only.
 *
 * Model of causality (see docs/semantics.md)
 * -----------------------------------------
 * Each model (e.g. "UserProfile") is its own replicated universe. Every entry a
 * replica writes in a model gets a fresh dot (replica, n) where n counts that
 * replica's dots in that model: 1, 2, 3, ... A dot names exactly one entry of
 * exactly one document, forever.
 *
 * A causal context (cs_dotset) is a set of dots: "everything I have seen". The
 * store keeps one per model (its knowledge). A delta carries its own, small,
 * context: the dots it creates plus the dots it overwrites or removes.
 *
 * Join rule (dot stores): an entry survives a join when its dot is in both
 * stores, or in one store and not in the other side's context. Since a dot
 * belongs to one document, a context may hold dots of other documents: they
 * never match an entry here, so one batch context can serve every document of
 * a batch.
 *
 * Invariant: the dots of a state's (or delta's) entries are in its context.
 *
 * Canonical order: every array below is kept sorted (fields by name bytes,
 * register entries by dot, set elements by cs__val_cmp, dots by (replica,
 * counter), counter entries by replica), without duplicates, so that equal
 * states have equal memory images and encode to equal bytes.
 */
#ifndef CS_CRDT_H
#define CS_CRDT_H

#include "base/base.h"

/* ------------------------------------------------------------------------ */
/* Hybrid logical clock                                                      */
/* ------------------------------------------------------------------------ */

/* 48-bit milliseconds since the epoch << 16 | 16-bit logical counter. */
typedef uint64_t cs_hlc;

#define CS_HLC_MS(h) ((h) >> 16)
#define CS_HLC_MAKE(ms, c) (((uint64_t)(ms) << 16) | ((uint64_t)(c)&0xffffu))

typedef struct cs_clock {
  cs_hlc last;            /* the largest stamp sent or received */
  uint64_t max_skew_ms;   /* remote stamps further ahead of now are refused */
} cs_clock;

/* Stamp for a local event at wall time now_ms (send rule). Strictly
 * increasing. When the 16-bit counter would overflow, the millisecond part is
 * advanced instead. */
cs_hlc cs__clock_tick(cs_clock *clock, uint64_t now_ms);

/* Receive rule: fold a remote stamp in. Returns CS_ECLOCK with a message
 * (how far ahead, the limit) when remote is more than max_skew_ms ahead of
 * now_ms; the clock is then unchanged. */
int cs__clock_observe(cs_clock *clock, cs_hlc remote, uint64_t now_ms);

/* ------------------------------------------------------------------------ */
/* Dots and causal contexts                                                  */
/* ------------------------------------------------------------------------ */

/* Replica ids are 64-bit, derived from the replica's public key. */
typedef uint64_t cs_replica;

typedef struct cs_dot {
  cs_replica replica;
  uint64_t counter; /* >= 1 */
} cs_dot;

/* Dot order: by replica, then counter (inline: joins compare dots in their
 * innermost loops). */
static inline int cs__dot_cmp(const cs_dot *a, const cs_dot *b) {
  if (a->replica != b->replica)
    return a->replica < b->replica ? -1 : 1;
  if (a->counter != b->counter)
    return a->counter < b->counter ? -1 : 1;
  return 0;
}

/* replica has seen every dot 1..max of itself. */
typedef struct cs_vv_entry {
  cs_replica replica;
  uint64_t max;
} cs_vv_entry;

/*
 * A compact dot set: a version vector (sorted by replica, max >= 1) plus the
 * dots seen out of order (sorted, each above its replica's max). Compacted
 * after every change: an extra dot max+1 is folded into the vector.
 */
typedef struct cs_dotset {
  cs_vv_entry *vv;
  size_t vv_len, vv_cap;
  cs_dot *extra;
  size_t extra_len, extra_cap;
} cs_dotset;

#define CS_DOTSET_INIT {NULL, 0, 0, NULL, 0, 0}

void cs__dotset_dispose(cs_dotset *s);
void cs__dotset_clear(cs_dotset *s);
int cs__dotset_copy(cs_dotset *dst, const cs_dotset *src);
bool cs__dotset_contains_slow(const cs_dotset *s, cs_dot d);
/* Inline for the common case of a context over a few replicas and no dots
 * out of order (the joins ask this in their inner loops). */
static inline bool cs__dotset_contains(const cs_dotset *s, cs_dot d) {
  if (s->vv_len <= 4) {
    for (size_t i = 0; i < s->vv_len && s->vv[i].replica <= d.replica; i++)
      if (s->vv[i].replica == d.replica && d.counter <= s->vv[i].max)
        return true;
    if (s->extra_len == 0)
      return false;
  }
  return cs__dotset_contains_slow(s, d);
}
int cs__dotset_add(cs_dotset *s, cs_dot d);
/* true when s holds some dot of replica r with a counter in lo..hi. */
bool cs__dotset_any_in(const cs_dotset *s, cs_replica r, uint64_t lo, uint64_t hi);
/* into := into ∪ from */
int cs__dotset_join(cs_dotset *into, const cs_dotset *from);
/* The highest contiguous counter of replica r (0 when none). */
uint64_t cs__dotset_max(const cs_dotset *s, cs_replica r);
/* The dot a replica writes next in this context: (r, highest counter of r seen + 1). */
cs_dot cs__dotset_next(const cs_dotset *s, cs_replica r);
bool cs__dotset_equal(const cs_dotset *a, const cs_dotset *b);
/* true when every dot of a is in b */
bool cs__dotset_subset(const cs_dotset *a, const cs_dotset *b);
/* How many dots s holds (UINT64_MAX when that does not fit). */
uint64_t cs__dotset_count(const cs_dotset *s);
/* How many dots `now` holds beyond `before`, which it must contain
 * (UINT64_MAX when that does not fit): exact however large both are. */
uint64_t cs__dotset_count_beyond(const cs_dotset *now, const cs_dotset *before);
/* out := a \ b; CS_ETOOBIG (out partly filled) when that is more than
 * `limit` dots. */
int cs__dotset_subtract(cs_dotset *out, const cs_dotset *a, const cs_dotset *b, size_t limit);
/* Drops every dot of replica r above max. */
void cs__dotset_truncate(cs_dotset *s, cs_replica r, uint64_t max);
/* Drops one dot. Removing a dot below r's max moves the dots above it to
 * the out-of-order list: meant for small sets. */
int cs__dotset_remove(cs_dotset *s, cs_dot d);

/* ------------------------------------------------------------------------ */
/* Values                                                                    */
/* ------------------------------------------------------------------------ */

typedef enum cs_val_type {
  CS_VAL_NULL = 0,
  CS_VAL_BOOL = 1,
  CS_VAL_INT = 2,
  CS_VAL_DOUBLE = 3,
  CS_VAL_STR = 4,
  CS_VAL_BYTES = 5,
} cs_val_type;

/* STR and BYTES values of up to this many bytes live inside the cs_val. */
#define CS_VAL_INLINE 15

/*
 * A scalar. STR and BYTES hold `len` bytes, NUL-terminated for both: inline
 * in u.in when `inl` is set (short values, which most are: no allocation),
 * else at u.ptr, owned. Read them with cs__val_data.
 */
typedef struct cs_val {
  uint8_t type;
  bool inl;
  uint32_t len;
  union {
    bool b;
    int64_t i;
    double d;
    char *ptr;
    char in[CS_VAL_INLINE + 1];
  } u;
} cs_val;

static inline const char *cs__val_data(const cs_val *v) {
  return v->inl ? v->u.in : v->u.ptr;
}

void cs__val_dispose(cs_val *v);
int cs__val_copy(cs_val *dst, const cs_val *src);
/* Total order: by type, then value (ints numerically, doubles by their bit
 * pattern's total order, strings/bytes by memcmp then length). */
int cs__val_cmp(const cs_val *a, const cs_val *b);
bool cs__val_equal(const cs_val *a, const cs_val *b);
int cs__val_str(cs_val *out, const char *s, size_t len); /* copies */
int cs__val_bytes(cs_val *out, const void *p, size_t len);
static inline cs_val cs__val_int(int64_t i) {
  cs_val v = {.type = CS_VAL_INT, .u.i = i};
  return v;
}

/* ------------------------------------------------------------------------ */
/* Register, set, counter                                                    */
/* ------------------------------------------------------------------------ */

/* One write in a multi-value register. */
typedef struct cs_reg_entry {
  cs_dot dot;
  cs_hlc hlc;
  cs_val val;
} cs_reg_entry;

/* Multi-value register: the writes no later write has seen (siblings). The
 * visible value is the entry with the largest (hlc, dot.replica). */
typedef struct cs_reg {
  cs_reg_entry *entries; /* sorted by dot */
  size_t len, cap;
} cs_reg;

/* Add-wins observed-remove set element: present while it has dots. */
typedef struct cs_set_elem {
  cs_val val;
  cs_dot *dots; /* sorted */
  size_t ndots, cap;
} cs_set_elem;

typedef struct cs_set {
  cs_set_elem *elems; /* sorted by val */
  size_t len, cap;
  /* dot -> element, built by the join for large sets and kept with the set
   * in memory (never encoded or copied): see crdt/setindex.c. Only the join
   * adds dots to a set that has one. */
  struct cs_set_index *index;
  unsigned walks; /* searches made by walking, before an index pays */
} cs_set;

/* PN-counter: per replica, the totals of its increments and decrements. */
typedef struct cs_ctr_entry {
  cs_replica replica;
  uint64_t pos, neg;
} cs_ctr_entry;

typedef struct cs_ctr {
  cs_ctr_entry *entries; /* sorted by replica */
  size_t len, cap;
} cs_ctr;

/* ------------------------------------------------------------------------ */
/* Documents                                                                 */
/* ------------------------------------------------------------------------ */

typedef enum cs_field_kind {
  CS_KIND_REG = 1,
  CS_KIND_SET = 2,
  CS_KIND_CTR = 3,
} cs_field_kind;

typedef struct cs_field {
  char *name; /* from cs__name_dup: shared or owned; free with cs__name_free */
  uint8_t kind;
  union {
    cs_reg reg;
    cs_set set;
    cs_ctr ctr;
  } u;
} cs_field;

/*
 * Existence entry. A create, or a write to a document that is not alive,
 * writes alive=true. A delete writes alive=false and records in `observed`
 * the dots of every field entry (register entries and set element dots) the
 * deleter could see, so that field entries it did not see (concurrent
 * updates) are recognisable afterwards.
 */
typedef struct cs_exist_entry {
  cs_dot dot;
  cs_hlc hlc;
  bool alive;
  cs_dotset observed; /* empty when alive */
} cs_exist_entry;

typedef struct cs_doc {
  cs_field *fields; /* sorted by name (strcmp) */
  size_t nfields, fields_cap;
  cs_exist_entry *exist; /* multi-value, sorted by dot */
  size_t nexist, exist_cap;
} cs_doc;

#define CS_DOC_INIT {NULL, 0, 0, NULL, 0, 0}

void cs__doc_dispose(cs_doc *doc);
int cs__doc_copy(cs_doc *dst, const cs_doc *src);
bool cs__doc_equal(const cs_doc *a, const cs_doc *b);
/* The field named `name`, or NULL. */
cs_field *cs__doc_field(const cs_doc *doc, const char *name);

/*
 * Existence as seen: alive when there is at least one existence entry and
 * every existence entry is alive (a concurrent delete wins by default).
 */
bool cs__doc_alive(const cs_doc *doc);
/* true when the document has no existence entry at all (never created). */
bool cs__doc_empty(const cs_doc *doc);

/*
 * THE join. Joins (from, from_ctx) into (into, into_ctx): after it, `into`
 * holds the join of the two dot stores. into_ctx is only read: the caller
 * updates the context with cs__dotset_join(into_ctx, from_ctx) once it has
 * joined every document the context covers (so that a batch is joined against
 * the context from before the batch). Idempotent, commutative, associative.
 * Registers join as dot stores; sets per element as dot stores; counters per
 * replica by max; existence entries as a dot store (observed sets are joined
 * with their entry, equal dots carry equal observed sets). Fields present on
 * one side only are kept; a field left with no entries is removed. A field
 * whose kind differs on the two sides: the join keeps the kind of the lower
 * kind number with its entries and drops the other side's (deterministic).
 * Returns 0 or CS_ENOMEM (into may then be partially joined; callers work on
 * copies).
 */
int cs__doc_join(cs_doc *into, const cs_dotset *into_ctx, const cs_doc *from,
                 const cs_dotset *from_ctx);

/* ------------------------------------------------------------------------ */
/* Mutators: each adds to a delta (doc fragment + context)                   */
/* ------------------------------------------------------------------------ */

/*
 * A delta under construction, made on a replica whose model knowledge is
 * `ctx` and whose current document is `doc`. Each mutator takes fresh dots
 * from `next` (the caller initialises it to cs__dotset_next(ctx, self)), adds
 * its entries to delta.doc and the dots it creates or covers to delta.ctx. The
 * delta is a valid state: cs__doc_join(doc, ctx, &delta.doc, &delta.ctx)
 * applies it. Mutators read `doc` as it was before the delta: an action that
 * writes a field twice takes the last write.
 */
typedef struct cs_delta {
  cs_doc doc;
  cs_dotset ctx;
  cs_replica self;
  uint64_t next; /* next dot counter of `self` */
  cs_hlc hlc;    /* stamp of this action */
  uint64_t first; /* `next` at cs__delta_init: the action's first dot counter */
} cs_delta;

/* Starts a delta for replica self; next counter taken from ctx. */
int cs__delta_init(cs_delta *d, const cs_dotset *ctx, cs_replica self, cs_hlc hlc);
void cs__delta_dispose(cs_delta *d);

/*
 * Ends an action: every action owns at least one dot (a remove-only or
 * counter-only action takes one that names no entry) so that it can be logged
 * under (origin, first dot). Reports the action's dots first..last (all of
 * `self`, consecutive) and adds any it had to take to d->ctx.
 */
int cs__delta_finish(cs_delta *d, uint64_t *first, uint64_t *last);

/* Register write: one entry (new dot, d->hlc, v) covering every entry of the
 * field in doc. Fails with CS_EINVAL when the field exists with another kind. */
int cs__delta_reg_set(cs_delta *d, const cs_doc *doc, const char *field, const cs_val *v);
/* Set add: the element gets a new dot, covering its current dots. */
int cs__delta_set_add(cs_delta *d, const cs_doc *doc, const char *field, const cs_val *elem);
/* Set remove: covers the element's current dots (no-op when absent). */
int cs__delta_set_remove(cs_delta *d, const cs_doc *doc, const char *field, const cs_val *elem);
/* Set assign: adds the elements not present, removes those not listed. */
int cs__delta_set_assign(cs_delta *d, const cs_doc *doc, const char *field, const cs_val *elems,
                         size_t n);
/* Counter: adds `by` (may be negative) to self's entry. */
int cs__delta_ctr_add(cs_delta *d, const cs_doc *doc, const char *field, int64_t by);
/* Existence: alive=true (create / restore / first write) or alive=false
 * (delete: observed = dots of every field entry in doc). Covers every
 * existence entry of doc. */
int cs__delta_exist(cs_delta *d, const cs_doc *doc, bool alive);
/* Removes a register field entirely (covers its entries, writes nothing). */
int cs__delta_reg_clear(cs_delta *d, const cs_doc *doc, const char *field);

/* ------------------------------------------------------------------------ */
/* Reading and conflicts                                                     */
/* ------------------------------------------------------------------------ */

/* The visible entry of a register (largest (hlc, replica)); NULL when empty. */
const cs_reg_entry *cs__reg_visible(const cs_reg *r);
/* The value of a counter: sum(pos) - sum(neg), wrapping as int64. */
int64_t cs__ctr_value(const cs_ctr *c);

typedef enum cs_conflict_kind {
  CS_CONFLICT_VALUE = 1,        /* register siblings with different values */
  CS_CONFLICT_DELETE_UPDATE = 2, /* deleted while concurrently written */
} cs_conflict_kind;

#define CS_CONFLICT_ID_LEN 16 /* bytes of the BLAKE2b id (hex: 32 chars) */

/*
 * One conflict in a document. For VALUE, `field` names the register and the
 * siblings are its entries (sorted by dot). For DELETE_UPDATE, `field` is NULL
 * and `dots` lists the existence entries' dots then the unobserved field
 * entries' dots (sorted). Borrowed pointers into the document.
 */
typedef struct cs_conflict {
  cs_conflict_kind kind;
  const char *field;
  cs_dot *dots; /* owned by the list */
  size_t ndots;
  uint8_t id[CS_CONFLICT_ID_LEN];
} cs_conflict;

typedef struct cs_conflict_list {
  cs_conflict *items;
  size_t len, cap;
} cs_conflict_list;

/*
 * Lists the conflicts of one document, in field order (delete_update first).
 * `is_silent(field, payload)` returns true for fields whose policy is silent
 * (may be NULL). The id is BLAKE2b-128 over (model, instance, field or "",
 * kind, sorted sibling dots), so every replica names a conflict the same way;
 * the id hash is computed by the `hash` callback (the engine passes
 * libsodium's crypto_generichash) to keep this layer free of libraries.
 */
typedef void (*cs_hash_fn)(uint8_t *out, size_t outlen, const uint8_t *in, size_t inlen);

int cs__doc_conflicts(cs_conflict_list *out, const cs_doc *doc, const char *model,
                      const char *instance, bool (*is_silent)(const char *field, void *payload),
                      void *payload, cs_hash_fn hash);
void cs__conflict_list_dispose(cs_conflict_list *l);

#endif /* CS_CRDT_H */
