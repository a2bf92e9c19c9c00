/*
 * The engine's private declarations, shared by the files of core/. Nothing
 * here is API.
 *
 * Locking: one mutex per store guards its in-memory state (models, clock,
 * counters) and orders its writes. Every public entry point takes it; a sync
 * releases it while the peer answers, so that two stores in one process can
 * sync with each other from two threads without deadlock.
 */
#ifndef CS_ENGINE_H
#define CS_ENGINE_H

#include <pthread.h>

#include "core/codec.h"
#include "crdt/crdt.h"
#include "storage/storage.h"
#include "transport/transport.h"

/* One field of a model's schema. */
typedef struct cs_schema_field {
  char *name;
  uint8_t kind;   /* cs_field_kind, 0 = not known yet */
  uint8_t policy; /* cs_conflict_policy */
} cs_schema_field;

/* Everything the store keeps in memory about one model. */
typedef struct cs_model {
  char *name;
  cs_schema_field *fields; /* sorted by name */
  size_t nfields, fields_cap;
  cs_dotset knowledge; /* every dot this store has seen in the model */
  cs_dotset floor;     /* dots known without a log entry (GC'd, or from states) */
  /* Dots of the knowledge whose action this store never applied and cannot
   * serve: covered by another action's context that an older build merged
   * with a causal gap. Empty but for stores that build damaged; filled at
   * open (cs__gaps_scan), emptied as the actions or whole states arrive
   * (docs/semantics.md, "What a replica knows and what it can serve"). */
  cs_dotset missing;
  bool dirty_schema, dirty_missing;
} cs_model;

struct cs_store {
  pthread_mutex_t lock;
  cs_db *db;
  char *path;
  cs_store_options opts;
  cs_keypair key;
  cs_replica self;
  cs_clock clock;
  uint64_t cursor;     /* last change cursor assigned */
  uint64_t outbox_seq; /* last outbox sequence assigned */
  /* Below outbox_head every outbox entry is gone: scans start there, so the
   * tombstones of acknowledged entries are never walked again. */
  uint64_t outbox_head;
  size_t outbox_len; /* live outbox entries */
  /* Every open conflict as a JSON array, rebuilt after the conflict index
   * changes (cs__conflicts_changed): a sync result lists them all. */
  cs_buf conflicts_json;
  size_t nconflicts;
  bool conflicts_cached;
  cs_model *models; /* sorted by name */
  size_t nmodels, models_cap;
};

/* ---- store.c ---- */
cs_model *cs__model_find(cs_store *s, const char *name);
int cs__model_get(cs_model **out, cs_store *s, const char *name); /* creates */
/* Forgets a model created in memory by an operation that then failed
 * (other models move: re-find them). */
void cs__model_drop(cs_store *s, const char *name);
cs_schema_field *cs__schema_field(cs_model *m, const char *name);
int cs__schema_field_set(cs_model *m, const char *name, uint8_t kind, uint8_t policy);
/* Re-reads a model's schema, knowledge and floor from the database, after
 * an operation failed: what memory holds must describe what is stored. */
void cs__model_reload(cs_store *s, cs_model *m);
bool cs__field_is_silent(const char *field, void *model);
/* Adds the store's meta records (clock, cursor, outbox seq, knowledge and
 * schema of the touched models) to a batch. */
int cs__store_put_meta(cs_store *s, cs_wbatch *b, cs_model *const *models, size_t n);

/* ---- docs.c: documents by (model, instance), a per-operation cache ---- */

/* Instance names shorter than this live in their slot. */
#define CS_SLOT_NAME 40

typedef struct cs_doc_slot {
  char *instance; /* name, or a heap copy when longer */
  uint32_t hash;  /* of instance, for the cache's probes */
  uint32_t len;   /* strlen(instance), for sorting by key */
  char name[CS_SLOT_NAME];
  cs_doc doc;
  uint64_t cursor; /* stored cursor word (CS_CURSOR_SOLE included; 0: new) */
  bool loaded, exists, dirty;
  bool had_conflicts; /* before this operation */
  cs_conflict_list before;
} cs_doc_slot;

typedef struct cs_doc_cache {
  cs_model *model;
  cs_doc_slot *slots; /* open addressing on instance */
  size_t cap, len;
} cs_doc_cache;

int cs__cache_init(cs_doc_cache *c, cs_model *m, size_t expect);
void cs__cache_dispose(cs_doc_cache *c);
/* The slot of an instance, reading the document from the store when needed. */
int cs__cache_get(cs_doc_slot **out, cs_doc_cache *c, cs_store *s, const char *instance);
/* Reads many instances at once (RocksDB multi-get) into the cache. */
int cs__cache_prefetch(cs_doc_cache *c, cs_store *s, char *const *instances, size_t n);
/* The slots of instances already read, in order: out[i] stays valid until
 * the cache gets another instance. */
int cs__cache_slots(cs_doc_slot **out, cs_doc_cache *c, char *const *instances, size_t n);
/* Writes every dirty document, one change index entry listing them all and
 * the conflict index changes into the batch, and frees each document once
 * written: the cache is done with afterwards (cs__cache_drop_docs). Takes
 * one new change cursor, when any document is dirty. */
int cs__cache_flush(cs_doc_cache *c, cs_store *s, cs_wbatch *b);
/* Frees what a flushed cache still holds before the batch is written, so
 * that it and the memtable the batch fills are not in memory at once. The
 * cache keeps its model and holds nothing more. */
void cs__cache_drop_docs(cs_doc_cache *c);

/* A document's stored cursor word: the change cursor, with this bit set
 * when the change index entry at that cursor lists the document alone (a
 * flush of one document wrote it). Cursors stay below 2^63. */
#define CS_CURSOR_SOLE (UINT64_C(1) << 63)

/* Reads one document (CS_ENOTFOUND when absent, CS_ECORRUPT naming the key).
 * *out_cursor (may be NULL) gets the stored cursor word, CS_CURSOR_SOLE
 * included. */
int cs__doc_read(cs_doc *out, uint64_t *out_cursor, cs_store *s, const char *model,
                 const char *instance);
int cs__doc_value_decode(cs_doc *out, uint64_t *out_cursor, const uint8_t *p, size_t len,
                         const char *model, const char *instance);

/* ---- json.c ---- */
typedef struct json_t json_t;
int cs__json_to_val(cs_val *out, const json_t *j, const char *field);
json_t *cs__val_to_json(const cs_val *v);
/* The JSON view of a document (visible values), or NULL on ENOMEM. */
json_t *cs__doc_to_json(const cs_doc *doc);
int cs__json_dump(cs_buf *out, const json_t *j);
/* Appends a JSON string (len bytes of UTF-8) or a value, written as
 * cs__json_dump writes the same thing. */
int cs__json_put_str(cs_buf *out, const char *s, size_t len);
int cs__json_put_val(cs_buf *out, const cs_val *v);

/* ---- action.c ---- */
/* Applies one JSON action to the cache as a delta, logs it and queues it. */
typedef struct cs_local_ctx {
  cs_store *store;
  cs_wbatch *batch;
  cs_doc_cache *caches;    /* one per model touched */
  struct cs_segment *segs; /* the log run of each cache's model */
  size_t ncaches, caches_cap, segs_cap;
  size_t actions;
  struct cs_outbox_run *outbox; /* the outbox entries not yet put */
  /* The store's counters when it began: unless it commits, they are put
   * back, so that a cursor or outbox number never names a write that did
   * not happen (a pull hands out the cursor). */
  uint64_t cursor0, outbox_seq0;
  bool committed;
} cs_local_ctx;

int cs__local_begin(cs_local_ctx *lc, cs_store *s);
/* Frees the context. Unless it committed, the models it touched are re-read
 * and the store's counters put back: nothing of it stays in memory. */
void cs__local_dispose(cs_local_ctx *lc);
int cs__local_cache(cs_doc_cache **out, cs_local_ctx *lc, const char *model);
/* Finishes a delta built on slot: joins it into the document, writes the log
 * and outbox entries. `type`/`data` describe the action for the outbox. */
int cs__local_apply(cs_local_ctx *lc, cs_doc_cache *c, cs_doc_slot *slot, cs_delta *d,
                    const char *type, const char *data_json);
int cs__local_commit(cs_local_ctx *lc);
int cs__local_json_action(cs_local_ctx *lc, const cs_action *a);

/* ---- outbox.c ---- */
/* An iterator over the live outbox records, in key order. */
int cs__outbox_iter(cs_iter **out, cs_store *s);
/* Finds outbox_head and outbox_len (at open). */
int cs__outbox_load(cs_store *s);
typedef struct cs_outbox_rec {
  int type; /* 1 create, 2 update, 3 delete, 4 resolve */
  cs_replica origin;
  uint64_t first, last, time_ms;
  const char *model, *instance, *data; /* data: JSON text or NULL */
} cs_outbox_rec;

/* A decoded record; the strings point into the record's bytes. */
typedef struct cs_outbox_view {
  int type;
  cs_replica origin;
  uint64_t first, last, time_ms;
  const char *model, *instance, *data;
  size_t model_len, instance_len, data_len;
} cs_outbox_view;

int cs__outbox_type(const char *name);

/* A run of outbox entries being built, put as one record (see outbox.c). */
#define CS_OUTBOX_RUN_MAX 256
typedef struct cs_outbox_run {
  cs_buf buf;
  uint32_t n;
  uint64_t first; /* the first entry's sequence number: the record's key */
  uint64_t last;  /* the last entry's */
  cs_buf scratch; /* one entry record being encoded */
} cs_outbox_run;

/* Appends entry `seq` (a record encoded, or to encode from rec). */
int cs__outbox_run_add(cs_outbox_run *run, uint64_t seq, const cs_outbox_rec *rec);
int cs__outbox_run_add_raw(cs_outbox_run *run, uint64_t seq, const uint8_t *p, size_t len);
/* Puts the run (if it has entries) under `key` and empties it. */
void cs__outbox_run_put(cs_outbox_run *run, cs_wbatch *b, uint64_t key);
void cs__outbox_run_dispose(cs_outbox_run *run);

/* Reads the entries of one stored record (a run, or a single record as
 * earlier builds wrote them, whose sequence number is its key). */
typedef struct cs_outbox_cursor {
  const uint8_t *p, *end;
  uint64_t key;
  uint32_t left;
  uint8_t version; /* 1: a single entry record; 2, 3: a run */
  bool started;
  uint64_t prev; /* the sequence number of the entry read last */
} cs_outbox_cursor;
int cs__outbox_cursor(cs_outbox_cursor *c, uint64_t key, const uint8_t *p, size_t len);
/* 1 with the next entry, 0 at the end, or an error code. */
int cs__outbox_next(cs_outbox_cursor *c, uint64_t *seq, const uint8_t **rec, size_t *len);
int cs__outbox_encode(cs_buf *out, const cs_outbox_rec *r);
int cs__outbox_decode(cs_outbox_view *out, const uint8_t *p, size_t len);
int cs__outbox_json(cs_buf *out, uint64_t seq, const uint8_t *p, size_t len);

/* ---- segment.c: the log as runs of one origin's actions ---- */

/* Instance name -> index in a model section's table (first-use order). */
typedef struct cs_intern {
  char **names; /* borrowed from the section's table */
  uint32_t *idx;
  size_t cap;
} cs_intern;

/* Interns `name` (taking ownership) into wm's instance table. */
int cs__intern(uint32_t *out, cs_intern *t, cs_wire_model *wm, size_t *wm_cap, char *name);
/* The same for a borrowed name, copied only when it is new to the table. */
int cs__intern_copy(uint32_t *out, cs_intern *t, cs_wire_model *wm, size_t *wm_cap,
                    const char *name);
/* The index of a name interned already. */
bool cs__intern_find(uint32_t *out, const cs_intern *t, const char *name);
void cs__intern_dispose(cs_intern *t);

typedef struct cs_segment {
  cs_wire_model wm; /* name unset; actions of one origin, ascending */
  cs_replica origin;
  size_t act_cap, inst_cap;
  cs_intern table;
  size_t count; /* actions flushed so far */
  /* Instance names given to cs__segment_add are kept as they are, not
   * copied: their owner keeps them until the run is flushed (a merge: the
   * names of the message section being merged). */
  bool borrow;
  /* Where the actions of a flushed run go (NULL: freed). */
  cs_action_pool *pool;
} cs_segment;

void cs__segment_init(cs_segment *seg);
void cs__segment_dispose(cs_segment *seg);
/* A run holds at most this many actions: a large batch or merge keeps only
 * one run decoded at a time, and a peer that lacks the tail of a run
 * decodes no more than this to find it. */
#define CS_SEGMENT_MAX_ACTIONS 256

/* Moves the action (its document and context) into the segment; a full run
 * is put into `b` as a log record of `model`. */
int cs__segment_add(cs_segment *seg, cs_wbatch *b, const char *model, cs_wire_action *a,
                    const char *instance);
/* Puts the run as one log record (model, origin, last dot); empties it. */
int cs__segment_flush(cs_segment *seg, cs_wbatch *b, const char *model);
/* Decodes a log record: one model section of one origin's actions. */
int cs__segment_decode(cs_sync_msg *out, const uint8_t *p, size_t len);
/* The same checks, with the actions handed to fn one at a time as they are
 * decoded (in the memory of one action, which fn may change but not keep).
 * wm is the run's section (its instance table). Stops at fn's nonzero
 * code. */
typedef int (*cs_segment_fn)(void *arg, const cs_wire_model *wm, cs_wire_action *a);
int cs__segment_each(const uint8_t *p, size_t len, cs_segment_fn fn, void *arg);

/* ---- merge.c: building and merging messages ---- */
int cs__peer_ack_get(cs_dotset *out, cs_store *s, cs_replica peer, const char *model);
int cs__peer_ack_put(cs_wbatch *b, cs_replica peer, const char *model, const cs_dotset *ack);
/*
 * The logged actions of model m that a peer lacks, read from the log as the
 * encoder writes them (cs_action_source): a message of any size is built
 * in the memory of one action. cs__log_source_init fills wm->source and
 * takes `peer_knows` (moved; the caller's is left empty). The source, and
 * the store's lock, must outlive the encoding.
 */
typedef struct cs_log_source {
  cs_action_source src;
  cs_store *store;
  cs_model *model;
  cs_wire_model *wm; /* its instance table is filled by the first pass */
  cs_dotset peer_knows;
  cs_intern table;
  size_t inst_cap;
  size_t count; /* actions handed over by the first pass */
  int passes;
  /* the pass under way: where its actions go */
  cs_action_fn fn;
  void *fnarg;
  bool first_pass;
  bool failed; /* a failure of the pass itself, not of the run's bytes */
} cs_log_source;

void cs__log_source_init(cs_log_source *ls, cs_wire_model *wm, cs_store *s, cs_model *m,
                         cs_dotset *peer_knows);
void cs__log_source_dispose(cs_log_source *ls);
/* When false (tests), the collecting pass decodes every run instead of
 * describing the runs a peer lacks entirely by their tables. */
extern bool cs__log_runs_by_tables;

/* A message being built from the store, at most one section per model, whose
 * sections may read their actions from the log as the message is encoded. */
typedef struct cs_msg_builder {
  cs_sync_msg msg;
  size_t cap;
  cs_log_source *srcs; /* one per model at most: the sections never move */
  size_t nsrc;
} cs_msg_builder;

/* Sets type, sender and a fresh clock stamp. */
int cs__builder_init(cs_msg_builder *b, cs_store *s, uint8_t type);
/*
 * Adds model m's section: the knowledge this store can serve (knowledge less
 * what it is missing, cs__knowledge_served), and what a peer that knows
 * `peer_knows` lacks: logged actions while the log holds all of that (the
 * floor is in peer_knows), whole states otherwise (nothing unless `states`:
 * peer_knows may be an old acknowledgement, and a peer refuses states of a
 * model its key may not write), and nothing while this store misses actions
 * the peer lacks too (relaying the actions that cover them would hand on a
 * causal gap). peer_knows NULL: knowledge only.
 */
int cs__builder_model(cs_msg_builder *b, cs_store *s, cs_model *m, const cs_dotset *peer_knows,
                      bool states);
/* Test switches (merge.c): false behaves as builds before storage format 4. */
extern bool cs__relay_states, cs__refuse_gaps;
/* What this store can serve of m: its knowledge, each origin with a missing
 * dot cut below the first one (so that a peer sends what follows). */
int cs__knowledge_served(cs_dotset *out, const cs_model *m);
/* Encodes the message; *out_sent (may be NULL) counts the actions sent. */
int cs__builder_encode(cs_buf *out, size_t *out_sent, cs_msg_builder *b);
void cs__builder_dispose(cs_msg_builder *b);
/* Adds whole states of model m's documents changed after cursor `since`. */
int cs__collect_states(cs_wire_model *wm, cs_store *s, cs_model *m, uint64_t since);

/* Puts into b model m's entries rewritten without the names whose document
 * has moved on to a later cursor, is gone, or is in `gone` (sorted by
 * strcmp: being purged by b); *dropped counts those names. */
int cs__changes_trim(size_t *dropped, cs_store *s, const cs_model *m, char *const *gone,
                     size_t ngone, cs_wbatch *b);
int cs__msg_add_model(cs_wire_model **out, cs_sync_msg *msg, size_t *cap, const char *name);

/*
 * Merging a peer's message in one write, part by part as it is decoded
 * (cs__merge_sink gives the decoder's callbacks): header, then per model
 * section: section, each action, section_end; then finish writes. Each part
 * is validated before it changes anything in memory, and nothing is written
 * before finish: a message refused half-way leaves the store as it was
 * (dispose restores the models' knowledge and drops the models it created).
 */
typedef struct cs_merger {
  cs_store *store;
  cs_wbatch *batch;
  cs_doc_cache *caches; /* one per section, in message order */
  const char **names;   /* their model names (the message's) */
  size_t ncaches, caches_cap, names_cap;
  const char **created; /* names (owned) of the models this merge created: dropped
                           unless it finishes */
  size_t ncreated, created_cap;
  size_t applied;
  uint64_t limit; /* the latest stamp accepted (cs__stamp_limit) */
  uint64_t cursor0; /* the store's change cursor before: put back unless finished */
  cs_hlc max_hlc; /* of the applied actions: observed at finish */
  bool floor_dirty, finished;
  /* The message's states are the documents changed after a pull cursor,
   * not every document: they cannot stand in for missing actions. */
  bool states_partial;
  /* the section being merged */
  cs_dotset before;    /* the model's knowledge before this message */
  uint64_t issued;     /* the highest dot of our own in it */
  uint64_t fresh;      /* dots of applied actions that `before` lacked */
  cs_doc_slot **slots; /* per instance of the section's table */
  cs_segment seg;      /* the log run being built */
  /* The arrays of the actions its runs drop, for its decoder to build the
   * next ones in (cs__merge_sink, and cs__store_serve's own sink, hand it
   * to the decoder). */
  cs_action_pool *pool;
} cs_merger;

int cs__merge_begin(cs_merger *mg, cs_store *s);
int cs__merge_header(cs_merger *mg, const cs_sync_msg *msg);
int cs__merge_section(cs_merger *mg, cs_wire_model *wm);
/* Moves an applied action's document and context into the log. */
int cs__merge_action(cs_merger *mg, cs_wire_model *wm, size_t index, cs_wire_action *a);
int cs__merge_section_end(cs_merger *mg, cs_wire_model *wm);
/* `ack_peer` != 0: record each section's knowledge as what that peer has.
 * `durable`: fsync the write. A server must (its answer acknowledges what
 * it merged); a client merging an answer need not: if the write is lost,
 * the acknowledgement recorded in the same batch is lost with it, and the
 * next sync asks for the same actions again. */
int cs__merge_finish(size_t *out_applied, cs_merger *mg, const cs_sync_msg *msg,
                     cs_replica ack_peer, bool durable);
void cs__merge_dispose(cs_merger *mg);
void cs__merge_sink(cs_msg_sink *out, cs_merger *mg);
/* All of it for a message decoded whole. */
int cs__merge_msg(size_t *out_applied, cs_store *s, cs_sync_msg *msg, cs_replica ack_peer,
                  bool durable, bool states_partial);

/* ---- maint.c ---- */
/* Once per store (meta "gaps_scanned"): lists as missing the dots of each
 * model's knowledge that neither its log nor its floor holds, which builds
 * before storage format 4 could leave (docs/semantics.md). */
int cs__gaps_scan(cs_store *s);
/* Appends to `out` (a JSON array) one object {model, rule, detail} per
 * broken invariant: missing dots, knowledge the store cannot serve, logged
 * actions whose contexts it cannot serve, dots logged twice, two register
 * entries of one replica. */
int cs__check_invariants(json_t *out, cs_store *s);

/* ---- validate.c: what the codec cannot check (see there) ---- */
uint64_t cs__stamp_limit(const cs_store *s);
int cs__validate_header(const cs_store *s, const cs_sync_msg *msg, uint64_t limit);
int cs__validate_section(const cs_wire_model *wm);
int cs__validate_action(const cs_store *s, const cs_wire_model *wm, size_t index,
                        const cs_wire_action *a, uint64_t limit);
int cs__validate_states(const cs_store *s, const cs_wire_model *wm, uint64_t limit);
/* The latest stamp of a document's entries (0: none). */
cs_hlc cs__doc_latest_stamp(const cs_doc *d);
/* A peer cannot know dots of this replica beyond the `issued` ones (the
 * highest this store gave in the model): claiming them would make it skip
 * or reuse its own dots. `action` is the index of the action whose context
 * d is, or SIZE_MAX for a section's knowledge. */
int cs__validate_own_dots(const cs_store *s, uint64_t issued, const cs_dotset *d,
                          const char *model, size_t action);

/* ---- serve.c / sync.c ---- */
/* Serves one request (SYNC or PULL) on `s`. sender_key NULL: trusted
 * in-process peer or allow-any. Fills response bytes; on failure sets
 * *http_status and the error. */
int cs__store_serve(cs_buf *response, int *http_status, cs_store *s, const char *path,
                    const uint8_t *req, size_t len, const uint8_t *sender_key, bool allow_any);

/* Renames trust records that older builds wrote under upper-case hex (and
 * the server never found) to the lower-case name it looks up (at open). */
int cs__trust_normalize(cs_store *s);

/* Forgets what sync remembered about a peer handle being freed. */
void cs__peer_forget(const cs_peer *p);
/* A name for the peer a handle reaches that outlives the handle: "store:"
 * and the path of an in-process peer, "url:" and the URL of an HTTP one;
 * CS_ENOTFOUND for peers of other kinds. */
int cs__peer_label(cs_buf *out, const cs_peer *p);

/* ---- conflict.c ---- */
int cs__doc_conflicts_of(cs_conflict_list *out, const cs_doc *doc, cs_model *m,
                         const char *instance);
bool cs__doc_may_conflict(const cs_doc *doc);
int cs__conflict_list_json(cs_buf *out, size_t *out_count, cs_store *s);
/* Drops the cached list: called by whoever puts a change to the conflict
 * index into a write batch (the list is rebuilt on next use). */
void cs__conflicts_changed(cs_store *s);
/* The part of a conflict index record after its names: what the JSON that
 * cs_list_conflicts shows is made of (appended to out). */
int cs__conflict_record(cs_buf *out, const cs_doc *doc, const cs_conflict *c);

#define CS_LOCK(s) pthread_mutex_lock(&(s)->lock)
#define CS_UNLOCK(s) pthread_mutex_unlock(&(s)->lock)

#endif /* CS_ENGINE_H */
