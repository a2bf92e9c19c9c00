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

/*
 * Gives the memory the process's allocator holds free back to the system
 * (malloc_trim on glibc; nothing elsewhere), after freeing the write batch
 * buffers that cosmicsync keeps for its next writes (two at most, of batches
 * that held up to 16 MiB each; a buffer can be up to twice that). cosmicsync never does this on its own: the memory a large
 * merge or batch freed stays with the allocator, for the next one to reuse
 * without faulting its pages in again. Call it
 * when the application goes idle or to the background after large syncs, if
 * resident memory matters more then. It walks the whole process's heap, not
 * only cosmicsync's, and other threads' allocations wait while it does; safe
 * from any thread.
 */
CS_EXTERN void cs_release_memory(void);

/* ------------------------------------------------------------------------ */
/* Stores                                                                    */
/* ------------------------------------------------------------------------ */

/* A local replica: one RocksDB database holding documents, log and outbox. */
typedef struct cs_store cs_store;

typedef enum cs_durability {
  /* fsync the write-ahead log on every commit: an acknowledged action
   * survives power loss. */
  CS_DURABILITY_SYNC = 0,
  /* write-ahead log without fsync: survives a process crash, not power loss. */
  CS_DURABILITY_FAST = 1,
} cs_durability;
/* Either way, what a store merges as a server is fsynced before it answers:
 * the answer acknowledges it, and the client then forgets it. A write that
 * fails with CS_EIO may still be in the log and come back when the store is
 * next opened (a failed fsync leaves that undecided): after reopening, read
 * before doing it again. */

typedef struct cs_store_options {
  unsigned version;
  cs_durability durability;   /* local actions; default CS_DURABILITY_SYNC */
  uint64_t max_clock_skew_ms; /* remote clocks further ahead are refused; default 60000 */
  int create_if_missing;      /* default 1 */
} cs_store_options;

#define CS_STORE_OPTIONS_VERSION 1
#define CS_STORE_OPTIONS_INIT {CS_STORE_OPTIONS_VERSION, CS_DURABILITY_SYNC, 60000, 1}

/*
 * Opens the store at `path`, creating it when allowed. A new store (or one
 * restored from a copy of another directory) gets a new replica identity.
 * The caller frees the store with cs_store_close(). Errors: CS_ENOTFOUND,
 * CS_EIO, CS_EVERSION (a store written by a newer format), CS_ECORRUPT.
 */
CS_EXTERN int cs_store_open(cs_store **out, const char *path, const cs_store_options *opts);
CS_EXTERN void cs_store_close(cs_store *store);

/* This replica's Ed25519 public key as 64 hex digits plus NUL. */
CS_EXTERN int cs_store_public_key(char out[65], cs_store *store);

/* ------------------------------------------------------------------------ */
/* Models                                                                    */
/* ------------------------------------------------------------------------ */

typedef enum cs_field_type {
  CS_FIELD_AUTO = 0,     /* taken from the first value written: array -> set */
  CS_FIELD_REGISTER = 1, /* scalar: multi-value register, last writer wins */
  CS_FIELD_SET = 2,      /* add-wins observed-remove set of scalars */
  CS_FIELD_COUNTER = 3,  /* PN-counter ({"$inc": n}) */
} cs_field_type;

typedef enum cs_conflict_policy {
  CS_POLICY_SURFACE = 0, /* concurrent different writes become a conflict */
  CS_POLICY_SILENT = 1,  /* plain last-writer-wins, never surfaces */
} cs_conflict_policy;

typedef struct cs_field_def {
  const char *name;
  cs_field_type type;
  cs_conflict_policy policy;
} cs_field_def;

/*
 * Declares (or extends) a model's schema. A field already declared with
 * another type, or already holding data of another type, is CS_EINVAL.
 * Fields not declared take their type from their first value.
 */
CS_EXTERN int cs_define_model(cs_store *store, const char *model, const cs_field_def *fields,
                              size_t nfields);

/* ------------------------------------------------------------------------ */
/* Local data and offline actions (the product guide's API)                  */
/* ------------------------------------------------------------------------ */

/*
 * storeLocally: caches `json` (an object) as the instance's baseline. The
 * baseline is visible in reads, never uploaded, and any replicated write to
 * the same field supersedes it.
 */
CS_EXTERN int cs_store_locally(cs_store *store, const char *model, const char *instance,
                               const char *json);

/*
 * getLocalData: the instance as this device sees it now (baseline, overlaid by
 * replicated state including this device's own queued edits) as a JSON
 * object, into `out` (caller disposes). CS_ENOTFOUND when the instance has
 * never been written nor stored locally, or has been deleted.
 */
CS_EXTERN int cs_get_local_data(cs_buf *out, cs_store *store, const char *model,
                                const char *instance);

typedef enum cs_action_type {
  CS_ACTION_CREATE = 1,
  CS_ACTION_UPDATE = 2, /* creates the instance when missing */
  CS_ACTION_DELETE = 3,
} cs_action_type;

typedef struct cs_action {
  cs_action_type type;
  const char *model;
  const char *instance;
  /* JSON object (create / update; NULL for delete). A field set to an array
   * assigns a set; {"$add": [...]}, {"$remove": [...]} edit one; {"$inc": n}
   * adds to a counter; other values set a register. */
  const char *data;
} cs_action;

/*
 * queueOfflineAction: applies the action at once (one atomic write, durable
 * per the store's durability) and puts it in the outbox. Bad JSON, unknown
 * operators, wrong types against the schema: CS_EINVAL with the field named,
 * and nothing changed. Creating an instance that exists and is not deleted:
 * CS_EEXISTS.
 */
CS_EXTERN int cs_queue_offline_action(cs_store *store, const cs_action *action);

/*
 * getQueuedActions: the outbox (local actions no upstream peer has
 * acknowledged yet), oldest first, as a JSON array of
 * {"seq", "type", "model", "instance", "data", "time"}.
 */
CS_EXTERN int cs_get_queued_actions(cs_buf *out, cs_store *store);

/* Number of actions in the outbox. */
CS_EXTERN int cs_outbox_count(size_t *out, cs_store *store);

/* ---- typed actions for hot paths: many actions, one commit ---- */

/*
 * A batch of local actions committed in one write (group commit: one fsync for
 * the whole batch in CS_DURABILITY_SYNC). Each call is one action, visible to
 * reads only after cs_batch_commit(). A batch holds the store's lock from
 * cs_batch_begin() to cs_batch_commit() / cs_batch_abort(): other threads'
 * calls on that store wait meanwhile. So the thread that began a batch ends
 * it, calls no other function of that store before (it would wait for
 * itself), and stops no scheduler or server of that store before (they may
 * be waiting for the store). A call that fails with CS_EINVAL leaves the
 * batch as it was; after any other error, abort the batch.
 */
typedef struct cs_batch cs_batch;

CS_EXTERN int cs_batch_begin(cs_batch **out, cs_store *store);
CS_EXTERN int cs_batch_set_int(cs_batch *b, const char *model, const char *instance,
                               const char *field, int64_t value);
CS_EXTERN int cs_batch_set_str(cs_batch *b, const char *model, const char *instance,
                               const char *field, const char *value);
CS_EXTERN int cs_batch_set_add(cs_batch *b, const char *model, const char *instance,
                               const char *field, const char *element);
CS_EXTERN int cs_batch_set_remove(cs_batch *b, const char *model, const char *instance,
                                  const char *field, const char *element);
CS_EXTERN int cs_batch_counter_add(cs_batch *b, const char *model, const char *instance,
                                   const char *field, int64_t by);
CS_EXTERN int cs_batch_action(cs_batch *b, const cs_action *action);
/* Commits every action of the batch in one write and frees the batch. */
CS_EXTERN int cs_batch_commit(cs_batch *b);
/* Drops the batch without writing anything and frees it. */
CS_EXTERN void cs_batch_abort(cs_batch *b);

/* Instance ids of a model that exist (not deleted), sorted, as a JSON array. */
CS_EXTERN int cs_list_instances(cs_buf *out, cs_store *store, const char *model);

/* ------------------------------------------------------------------------ */
/* Peers and sync                                                            */
/* ------------------------------------------------------------------------ */

/*
 * A peer is anything that can answer a sync request: another store in this
 * process, or a server over HTTP. It is a versioned table of functions, so an
 * application (or a test) can supply its own (a flaky network, a queue).
 */
typedef struct cs_peer cs_peer;
struct cs_peer {
  unsigned version; /* CS_PEER_VERSION */
  /* Sends one request (encoded sync message) and fills `response`. Returns 0
   * or a CS_E code with a message (CS_ENETWORK, CS_ETIMEOUT, CS_EAUTH, ...). */
  int (*exchange)(cs_peer *self, cs_buf *response, const char *path, const uint8_t *request,
                  size_t len);
  /* Frees the peer (may be NULL for peers owned elsewhere). */
  void (*free)(cs_peer *self);
};
#define CS_PEER_VERSION 1

/* A peer that is another open store in this process. `remote` must outlive
 * the peer. Free with cs_peer_free(). */
CS_EXTERN int cs_peer_local(cs_peer **out, cs_store *remote);

typedef struct cs_http_peer_options {
  unsigned version;
  long connect_timeout_ms; /* default 5000 */
  long timeout_ms;         /* default 30000 */
  const char *ca_file;     /* extra CA bundle for https; NULL: system store */
  const char *server_key;  /* hex public key the server must sign with; NULL: any */
} cs_http_peer_options;
#define CS_HTTP_PEER_OPTIONS_VERSION 1
#define CS_HTTP_PEER_OPTIONS_INIT {CS_HTTP_PEER_OPTIONS_VERSION, 5000, 30000, NULL, NULL}

/* A peer reached over HTTP(S) at `url` ("http://127.0.0.1:8787"); requests
 * are signed with `store`'s key. Threads may share it (a scheduler's and the
 * app's): it makes one exchange at a time. Free with cs_peer_free(). */
CS_EXTERN int cs_peer_http(cs_peer **out, cs_store *store, const char *url,
                           const cs_http_peer_options *opts);
CS_EXTERN void cs_peer_free(cs_peer *peer);

typedef struct cs_sync_result {
  size_t synced_count;   /* actions sent and acknowledged + actions applied here */
  size_t sent;           /* actions sent to the peer */
  size_t received;       /* actions (or states) applied from the peer */
  size_t bytes_sent, bytes_received;
  uint64_t cursor;       /* partial sync: the cursor to pass next time */
  size_t conflict_count; /* open conflicts after the sync */
  cs_buf conflicts;      /* JSON array of open conflicts (see cs_list_conflicts) */
} cs_sync_result;
#define CS_SYNC_RESULT_INIT {0, 0, 0, 0, 0, 0, 0, CS_BUF_INIT}
CS_EXTERN void cs_sync_result_dispose(cs_sync_result *r);

/*
 * sync: one exchange with `peer`, both directions: sends what the peer lacks,
 * merges its answer in one atomic write, records what each side has
 * acknowledged and drops acknowledged actions from the outbox. `out` may be
 * NULL, which also spares rendering the conflict list. Safe to repeat or
 * interrupt: joins are idempotent.
 */
CS_EXTERN int cs_sync(cs_sync_result *out, cs_store *store, cs_peer *peer);

/*
 * partialSync: brings only what changed on the peer after `since` (a cursor
 * the peer returned earlier in out->cursor; 0 = everything), for the listed
 * models (NULL/0 = all). One direction (pull). Cursors are the serving peer's
 * own change counter, never a wall-clock time: a cursor this store did not
 * receive from this peer for every model the answer holds is refused with
 * CS_EINVAL.
 *
 * `since` = CS_SINCE_LAST: the store keeps the cursor of every pull, per
 * peer and per model, and continues from there, model by model: a model it
 * never pulled from that peer (or one the peer gained since) comes whole, in
 * a second request when needed. The first pull from a peer this store cannot
 * name yet (a peer handle it has not exchanged with, and not the URL or store
 * of an earlier pull) is a full one, and so is one from a peer that no longer
 * knows the kept cursor (a store made anew at that URL or path).
 */
#define CS_SINCE_LAST UINT64_MAX
CS_EXTERN int cs_partial_sync(cs_sync_result *out, cs_store *store, cs_peer *peer,
                              uint64_t since, const char *const *models, size_t nmodels);

/* ------------------------------------------------------------------------ */
/* Conflicts                                                                 */
/* ------------------------------------------------------------------------ */

/*
 * Open conflicts as a JSON array (into `out`, caller disposes). A value
 * conflict: {"id", "model", "instance", "field", "kind": "value", "visible",
 * "siblings": [{"value", "replica", "time"}, ...]}. A delete/update conflict:
 * {"id", "model", "instance", "field": null, "kind": "delete_update",
 * "visible": null, "siblings": [{"deleted", "replica", "time"}, ...],
 * "updated_fields": [names written concurrently with the delete]}.
 * Every replica names a conflict with the same id.
 */
CS_EXTERN int cs_list_conflicts(cs_buf *out, cs_store *store);

typedef enum cs_resolution_kind {
  CS_RESOLVE_PICK = 1,         /* keep sibling `pick` (index in "siblings") */
  CS_RESOLVE_VALUE = 2,        /* write `value_json` */
  CS_RESOLVE_KEEP_DELETED = 3, /* delete_update: stay deleted */
  CS_RESOLVE_RESTORE = 4,      /* delete_update: bring the instance back */
} cs_resolution_kind;

typedef struct cs_resolution {
  cs_resolution_kind kind;
  size_t pick;
  const char *value_json;
} cs_resolution;

/*
 * resolveConflict: a local write that supersedes every sibling of the
 * conflict; it clears the conflict on every replica it reaches. Unknown id:
 * CS_ENOTFOUND; a resolution that does not fit the conflict's kind: CS_EINVAL.
 */
CS_EXTERN int cs_resolve_conflict(cs_store *store, const char *conflict_id,
                                  const cs_resolution *resolution);

/* ------------------------------------------------------------------------ */
/* Scheduler and status                                                      */
/* ------------------------------------------------------------------------ */

typedef enum cs_sync_state {
  CS_SYNC_OFFLINE = 0, /* no peer reachable (last attempt failed on the network) */
  CS_SYNC_IDLE = 1,
  CS_SYNC_SYNCING = 2,
  CS_SYNC_ERROR = 3, /* last attempt failed for another reason */
} cs_sync_state;

typedef struct cs_sync_status {
  cs_sync_state state;
  size_t pending;           /* outbox size */
  uint64_t last_success_ms; /* wall clock, 0 = never */
  uint64_t next_attempt_ms; /* monotonic ms of the next planned attempt (UINT64_MAX: none) */
  unsigned failures;        /* consecutive failures */
  int last_error;           /* CS_E code of the last failure, 0 = none */
  char last_error_msg[256];
} cs_sync_status;

typedef void (*cs_status_cb)(const cs_sync_status *status, void *payload);

typedef struct cs_scheduler_options {
  unsigned version;
  uint64_t interval_ms;   /* periodic sync; 0 = no periodic sync (manual only) */
  uint64_t backoff_base_ms; /* first retry delay; default 1000 */
  uint64_t backoff_max_ms;  /* cap, jitter included; default 300000 */
  double jitter;            /* 0..1, fraction of the delay randomised; default 0.2 */
} cs_scheduler_options;
#define CS_SCHEDULER_OPTIONS_VERSION 1
#define CS_SCHEDULER_OPTIONS_INIT {CS_SCHEDULER_OPTIONS_VERSION, 300000, 1000, 300000, 0.2}

typedef struct cs_scheduler cs_scheduler;

/* A scheduler syncing `store` with `peer` (both must outlive it). The status
 * callback (may be NULL) runs on the thread that runs the sync, without the
 * scheduler's lock: it may call cs_scheduler_status and cs_scheduler_stop
 * (from the background thread, the thread then ends once the callback
 * returns, and the next stop or free waits for it), but must not free the
 * scheduler. A time that does not fit in 64 bits means never. */
CS_EXTERN int cs_scheduler_new(cs_scheduler **out, cs_store *store, cs_peer *peer,
                               const cs_scheduler_options *opts, cs_status_cb cb,
                               void *payload);
CS_EXTERN void cs_scheduler_free(cs_scheduler *s);
/* Poll form: runs a sync if one is due at now_ms, in milliseconds of
 * CLOCK_MONOTONIC (the clock the first attempt is planned on: at once);
 * returns the sync's result code (0 when nothing was due). */
CS_EXTERN int cs_scheduler_tick(cs_scheduler *s, uint64_t now_ms);
/* Background form: a thread that ticks until cs_scheduler_stop(), which
 * waits for a sync under way. */
CS_EXTERN int cs_scheduler_start(cs_scheduler *s);
CS_EXTERN void cs_scheduler_stop(cs_scheduler *s);
/* Manual sync / on connection: the next tick (or the thread) syncs at once,
 * resetting the backoff. Thread-safe. */
CS_EXTERN void cs_scheduler_notify_online(cs_scheduler *s);
CS_EXTERN void cs_scheduler_status(cs_sync_status *out, cs_scheduler *s);

/* ------------------------------------------------------------------------ */
/* Maintenance                                                               */
/* ------------------------------------------------------------------------ */

typedef struct cs_cleanup_stats {
  size_t log_entries_deleted;
  size_t documents_purged; /* always 0: deleted instances are kept (see below) */
  size_t conflicts_dropped;
  uint64_t bytes_before, bytes_after;
} cs_cleanup_stats;

/* "Clean up old offline data": deletes log entries every known peer has
 * acknowledged, drops resolved conflicts, rewrites change index entries
 * without the names of documents changed again since, and compacts. Deleted
 * instances are kept: a write to one brings back what the delete kept, on
 * every replica alike (docs/semantics.md). */
CS_EXTERN int cs_cleanup(cs_cleanup_stats *out, cs_store *store);

/* Reads and decodes every document, log run, outbox record and change
 * index entry; fills `report` (JSON) and returns CS_ECORRUPT when anything
 * failed to decode (each bad key is named). */
CS_EXTERN int cs_check(cs_buf *report, cs_store *store);

/* ------------------------------------------------------------------------ */
/* Serving                                                                   */
/* ------------------------------------------------------------------------ */

/* Authorizes a peer key (hex, either case: one key has one record) to read
 * and write the listed models ("*" = all; NULL lists = none) when it syncs
 * with this store's server. Persistent; replaces the key's earlier rights. */
CS_EXTERN int cs_trust(cs_store *store, const char *public_key_hex, const char *const *read_models,
                       size_t nread, const char *const *write_models, size_t nwrite);
/* Revokes a key: a running server refuses its next request ("unknown key").
 * CS_ENOTFOUND when the key is not trusted. */
CS_EXTERN int cs_untrust(cs_store *store, const char *public_key_hex);

typedef struct cs_server_options {
  unsigned version;
  const char *listen_host; /* default "127.0.0.1" */
  uint16_t port;           /* default 8787; 0 = any free port */
  size_t max_body;         /* default 8 MiB */
  unsigned max_connections; /* default 64 */
  unsigned timeout_s;      /* default 30 */
  int allow_any;           /* accept any (even unsigned) peer: experiments only */
} cs_server_options;
#define CS_SERVER_OPTIONS_VERSION 1
#define CS_SERVER_OPTIONS_INIT {CS_SERVER_OPTIONS_VERSION, "127.0.0.1", 8787, 8u << 20, 64, 30, 0}

typedef struct cs_server cs_server;

/* Serves `store` over HTTP until cs_server_stop(). */
CS_EXTERN int cs_server_start(cs_server **out, cs_store *store, const cs_server_options *opts);
CS_EXTERN uint16_t cs_server_port(const cs_server *server);
/* Stops accepting, finishes in-flight merges, frees. */
CS_EXTERN void cs_server_stop(cs_server *server);

#ifdef __cplusplus
}
#endif

#endif /* COSMICSYNC_H */
