/*
 * Storage: one RocksDB database per store, one column family per kind of
 * record (docs/storage-format.md). This layer moves bytes: it knows key
 * layouts, atomic write batches, iteration and space accounting, not the
 * engine or the codec's meaning. RocksDB's `char **errptr` errors are turned
 * into cs errors here (CS_EIO with RocksDB's text and the operation) and freed
 * at once.
 */
#ifndef CS_STORAGE_H
#define CS_STORAGE_H

#include "base/base.h"

typedef enum cs_cf {
  CS_CF_META = 0,   /* metadata: format version, identity, clock, schema, counters */
  CS_CF_DOCS,       /* (model, instance) -> encoded document state */
  CS_CF_LOG,        /* (model, origin, last dot) -> a run of that origin's actions */
  CS_CF_OUTBOX,     /* local sequence -> queued local action (not yet acknowledged) */
  CS_CF_CONFLICTS,  /* conflict id -> (model, instance, field) */
  CS_CF_BASELINE,   /* (model, instance) -> storeLocally JSON */
  CS_CF_PEERS,      /* (peer replica id, model) -> acknowledged knowledge */
  CS_CF_CHANGES,    /* (model, change cursor) -> the instances one flush wrote */
  CS_CF__COUNT
} cs_cf;

/* The column family's name in RocksDB ("meta", "docs", "log", ...). */
const char *cs__cf_name(cs_cf cf);

typedef struct cs_db cs_db;

typedef struct cs_db_options {
  unsigned version;
  bool create_if_missing;
  size_t block_cache_bytes; /* 0: RocksDB's default */
} cs_db_options;
#define CS_DB_OPTIONS_VERSION 1
#define CS_DB_OPTIONS_INIT {CS_DB_OPTIONS_VERSION, true, 0}

/*
 * Opens (creating when allowed) the database at `path` with every column
 * family. `*out_moved` is set true when the database directory is not the one
 * it was created in (restored from a copy or backup: its identity file names
 * another device/inode), or when it is new; the engine then mints a new
 * replica identity and calls cs__db_mark_home(). Errors: CS_EIO (with
 * RocksDB's message and the path), CS_ENOTFOUND when missing and not
 * create_if_missing.
 */
int cs__db_open(cs_db **out, bool *out_moved, const char *path, const cs_db_options *opts);
void cs__db_close(cs_db *db);
const char *cs__db_path(const cs_db *db);
/* Records this directory (device, inode) as the database's home. */
int cs__db_mark_home(cs_db *db);

/* Point read. CS_ENOTFOUND (no message set: absence is an answer) when absent. */
int cs__db_get(cs_buf *out, cs_db *db, cs_cf cf, const void *key, size_t klen);

/* Point read without a copy: fn sees the value where RocksDB holds it, valid
 * only during the call; its result is returned. CS_ENOTFOUND as above. */
typedef int (*cs_db_value_fn)(const uint8_t *value, size_t len, void *payload);
int cs__db_get_with(cs_db *db, cs_cf cf, const void *key, size_t klen, cs_db_value_fn fn,
                    void *payload);

/*
 * Multi-get: n keys of one column family at once (RocksDB MultiGet).
 * out[i] is filled, found[i] set; returns 0 unless a read failed.
 */
int cs__db_multi_get(cs_buf *out, bool *found, cs_db *db, cs_cf cf, const cs_bytes *keys,
                     size_t n);
/* The same without copies: fn gets, for each i in the caller's order, the
 * value of keys[i] (v NULL: not found) where RocksDB pins it, valid only
 * during that call, until fn returns non-zero (returned as it is). No value
 * is passed on when a read failed. */
typedef int (*cs_db_multi_fn)(size_t i, const uint8_t *v, size_t len, void *payload);
int cs__db_multi_get_with(cs_db *db, cs_cf cf, const cs_bytes *keys, size_t n, cs_db_multi_fn fn,
                          void *payload);

/* An atomic write batch for database `db` (written only there). */
typedef struct cs_wbatch cs_wbatch;
int cs__wbatch_new(cs_wbatch **out, cs_db *db);
/* Frees the cleared batches the process keeps for reuse (see storage/rw.c);
 * returns how many there were. */
size_t cs__wbatch_release_spares(void);
void cs__wbatch_free(cs_wbatch *b);
void cs__wbatch_clear(cs_wbatch *b);
void cs__wbatch_put(cs_wbatch *b, cs_cf cf, const void *key, size_t klen, const void *val,
                    size_t vlen);
void cs__wbatch_delete(cs_wbatch *b, cs_cf cf, const void *key, size_t klen);
/* Deletes every key in [begin, end) of a column family (one tombstone). */
void cs__wbatch_delete_range(cs_wbatch *b, cs_cf cf, const void *begin, size_t blen,
                             const void *end, size_t elen);
size_t cs__wbatch_count(const cs_wbatch *b);
/* Applies the whole batch or none of it. sync=true fsyncs the WAL first. */
int cs__db_write(cs_db *db, cs_wbatch *b, bool sync);
/* Tests: the nth write from now (1: the next) fails with CS_EIO before
 * RocksDB sees it, as a full disk would fail it; 0 turns this off. */
void cs__db_write_fail_after(unsigned long n);
/* Tests: how many writes with sync=true succeeded in this process. */
unsigned long cs__db_synced_writes(void);

/* Forward iteration over [lower, upper) of one column family (upper NULL: to the end). */
typedef struct cs_iter cs_iter;
int cs__iter_new(cs_iter **out, cs_db *db, cs_cf cf, const void *lower, size_t llen,
                 const void *upper, size_t ulen);
void cs__iter_free(cs_iter *it);
bool cs__iter_valid(const cs_iter *it);
void cs__iter_next(cs_iter *it);
void cs__iter_seek(cs_iter *it, const void *key, size_t klen);
cs_bytes cs__iter_key(const cs_iter *it);
cs_bytes cs__iter_value(const cs_iter *it);
/* CS_EIO when iteration stopped on an error (checked after the loop). */
int cs__iter_status(const cs_iter *it);

/* Flushes memtables and compacts a column family (so GC shows as space). */
int cs__db_compact(cs_db *db, cs_cf cf);
/* Live bytes on disk of the whole database (SST files + WAL + memtables). */
int cs__db_size(uint64_t *out, cs_db *db);

/* ---- key layouts (big-endian, length-prefixed names: see docs/storage-format.md) ---- */

/* Appends u16 length + bytes. Names are at most 65535 bytes. */
int cs__key_name(cs_buf *key, const char *name);
int cs__key_u64(cs_buf *key, uint64_t v);

/* (model, instance) for CS_CF_DOCS and CS_CF_BASELINE. */
int cs__key_doc(cs_buf *key, const char *model, const char *instance);
/* (model, origin, first) for CS_CF_LOG. */
int cs__key_log(cs_buf *key, const char *model, uint64_t origin, uint64_t first);
/* (model, cursor) for CS_CF_CHANGES. */
int cs__key_change(cs_buf *key, const char *model, uint64_t cursor);
/* (peer, model) for CS_CF_PEERS. */
int cs__key_peer(cs_buf *key, uint64_t peer, const char *model);

/*
 * Reads a length-prefixed name at *pos of key; advances *pos. The returned
 * pointer is a fresh copy (cs__free). CS_ECORRUPT naming the offset when the
 * key is malformed.
 */
int cs__key_read_name(char **out, const uint8_t *key, size_t klen, size_t *pos);
int cs__key_read_u64(uint64_t *out, const uint8_t *key, size_t klen, size_t *pos);


/* ---- additions (storage layer) ---- */

/*
 * The storage format this build writes into meta "format" (u32 BE) on a new
 * database. cs__db_open refuses a newer one with CS_EVERSION and raises an
 * older one (docs/storage-format.md, "Format version rule"): 2 added the
 * version 3 outbox runs and the binary conflict records, and reads every
 * layout of 1, so 1 becomes 2 with no record rewritten; 3 lists the
 * documents of a flush in one change index entry and stores log runs
 * without the message checksum, and reads the one-name entries and the
 * checksummed runs of 1 and 2, so those too become 3 with no record
 * rewritten.
 */
#define CS_STORAGE_FORMAT 4u

/*
 * Thread-safety: one cs_db may be used from several threads at once (get,
 * multi-get, write, iterators, compact, size); RocksDB serialises writes.
 * A cs_wbatch or cs_iter belongs to one thread at a time. cs__db_close must
 * not race with any other call on the same cs_db.
 */

#endif /* CS_STORAGE_H */
