/*
 * Reads, atomic write batches, compaction and space accounting on an open
 * cs_db. Every RocksDB errptr becomes a cs error here and is freed at once.
 */
#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>

#include "storage/storage_int.h"

/*
 * RocksDB counts key comparisons, block reads and more in a per-thread perf
 * context unless told not to (its default level counts), which costs a
 * thread-local access in every comparison a memtable insert makes: about a
 * tenth of writing a merged sync's batch. Nothing here reads those counters,
 * so a thread that reads or writes a store turns them off, once.
 */
void cs__db_thread_init(void) {
  static _Thread_local bool done;
  if (CS__UNLIKELY(!done)) {
    rocksdb_set_perf_level(1); /* rocksdb::PerfLevel::kDisable */
    done = true;
  }
}

static int cf_check(const cs_db *db, cs_cf cf, const char *op) {
  if ((unsigned)cf >= CS_CF__COUNT)
    return cs__error(CS_EINVAL, "%s on database '%s': no column family %d", op, db->path, (int)cf);
  return 0;
}

int cs__db_get_with(cs_db *db, cs_cf cf, const void *key, size_t klen, cs_db_value_fn fn,
                    void *payload) {
  rocksdb_pinnableslice_t *ps = NULL;
  const char *v;
  size_t vlen = 0;
  char *err = NULL;
  int rc;

  if ((rc = cf_check(db, cf, "get")) != 0)
    return rc;
  cs__db_thread_init();
  ps = rocksdb_get_pinned_cf(db->rdb, db->ropts, db->cf[cf], key, klen, &err);
  if (err)
    return cs__db_rocks_error(db, "get", cf, err);
  if (!ps)
    return CS_ENOTFOUND; /* absence is an answer: no message */
  v = rocksdb_pinnableslice_value(ps, &vlen);
  rc = fn((const uint8_t *)v, vlen, payload);
  rocksdb_pinnableslice_destroy(ps);
  return rc;
}

static int copy_value(const uint8_t *v, size_t len, void *payload) {
  return cs__buf_put(payload, v, len);
}

int cs__db_get(cs_buf *out, cs_db *db, cs_cf cf, const void *key, size_t klen) {
  cs__buf_clear(out);
  return cs__db_get_with(db, cf, key, klen, copy_value, out);
}

/*
 * RocksDB's batched MultiGet: it sorts the keys, reads each block once for
 * all the keys it holds and pins the values in place (the older per-key
 * rocksdb_multi_get_cf does a Get per key and copies every value twice).
 * fn reads each value where it is pinned.
 */
int cs__db_multi_get_with(cs_db *db, cs_cf cf, const cs_bytes *keys, size_t n, cs_db_multi_fn fn,
                          void *payload) {
  const char **kp = NULL;
  size_t *ks = NULL;
  rocksdb_pinnableslice_t **vals = NULL;
  char **errs = NULL;
  int rc;

  if ((rc = cf_check(db, cf, "multi-get")) != 0 || n == 0)
    return rc;
  cs__db_thread_init();
  kp = cs__calloc(n, sizeof(*kp));
  ks = cs__calloc(n, sizeof(*ks));
  vals = cs__calloc(n, sizeof(*vals));
  errs = cs__calloc(n, sizeof(*errs));
  if (!kp || !ks || !vals || !errs) {
    rc = CS_ENOMEM;
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    kp[i] = (const char *)keys[i].ptr;
    ks[i] = keys[i].len;
  }
  rocksdb_batched_multi_get_cf(db->rdb, db->ropts, db->cf[cf], n, kp, ks, vals, errs, false);
  /* Every error is looked at (and freed) before any value is passed on. */
  for (size_t i = 0; i < n; i++)
    if (errs[i]) {
      if (rc == 0) {
        int r = cs__db_rocks_error(db, "multi-get", cf, errs[i]);
        rc = cs__error_wrap(r, "key %zu of %zu: ", i, n);
      } else {
        rocksdb_free(errs[i]);
      }
    }
  for (size_t i = 0; i < n; i++) {
    if (rc == 0) {
      size_t vlen = 0;
      const char *v = vals[i] ? rocksdb_pinnableslice_value(vals[i], &vlen) : NULL;
      rc = fn(i, (const uint8_t *)v, vlen, payload);
    }
    if (vals[i])
      rocksdb_pinnableslice_destroy(vals[i]);
  }
done:
  cs__free(kp);
  cs__free(ks);
  cs__free(vals);
  cs__free(errs);
  return rc;
}

typedef struct copy_many {
  cs_buf *out;
  bool *found;
} copy_many;

static int copy_one(size_t i, const uint8_t *v, size_t len, void *payload) {
  copy_many *c = payload;
  if (!v)
    return 0;
  c->found[i] = true;
  return cs__buf_put(&c->out[i], v, len);
}

int cs__db_multi_get(cs_buf *out, bool *found, cs_db *db, cs_cf cf, const cs_bytes *keys,
                     size_t n) {
  copy_many c = {out, found};
  for (size_t i = 0; i < n; i++) {
    cs__buf_clear(&out[i]);
    found[i] = false;
  }
  return cs__db_multi_get_with(db, cf, keys, n, copy_one, &c);
}

/* ---- write batches ---- */

/*
 * A batch's ops live in one buffer that doubles as it grows, copying itself
 * each time: a sync or a batch of 50,000 edits spent 7% of its time there.
 * A cleared batch keeps its buffer, and holds nothing of the database it
 * was written to (ops name families by number), so the process keeps a few
 * of up to CS_SPARE_BATCH_BYTES for the next writes to fill without growing.
 * cs_release_memory() frees them.
 */
static rocksdb_writebatch_t *spares[CS_SPARE_BATCHES];

static rocksdb_writebatch_t *spare_take(void) {
  for (int i = 0; i < CS_SPARE_BATCHES; i++) {
    rocksdb_writebatch_t *rb = __atomic_exchange_n(&spares[i], NULL, __ATOMIC_ACQUIRE);
    if (rb)
      return rb;
  }
  return NULL;
}

/* The batch's size now, and the most it held before (cs__wbatch_clear keeps
 * the buffer): what its buffer has room for. */
static size_t wbatch_peak(cs_wbatch *b) {
  size_t size = 0;
  (void)rocksdb_writebatch_data(b->rb, &size);
  if (size > b->peak)
    b->peak = size;
  return b->peak;
}

/* Keeps a batch if there is room; false when the caller must destroy it. */
static bool spare_give(rocksdb_writebatch_t *rb, size_t peak) {
  if (peak > CS_SPARE_BATCH_BYTES)
    return false;
  rocksdb_writebatch_clear(rb);
  for (int i = 0; i < CS_SPARE_BATCHES; i++) {
    rocksdb_writebatch_t *none = NULL;
    if (__atomic_compare_exchange_n(&spares[i], &none, rb, false, __ATOMIC_RELEASE,
                                    __ATOMIC_RELAXED))
      return true;
  }
  return false;
}

size_t cs__wbatch_release_spares(void) {
  size_t n = 0;
  rocksdb_writebatch_t *rb;
  while ((rb = spare_take()) != NULL) {
    rocksdb_writebatch_destroy(rb);
    n++;
  }
  return n;
}

int cs__wbatch_new(cs_wbatch **out, cs_db *db) {
  cs_wbatch *b = cs__calloc(1, sizeof(*b));
  *out = NULL;
  if (!b)
    return CS_ENOMEM;
  b->db = db;
  if ((b->rb = spare_take()) == NULL)
    b->rb = rocksdb_writebatch_create();
  *out = b;
  return 0;
}

void cs__wbatch_free(cs_wbatch *b) {
  if (!b)
    return;
  if (b->rb && !spare_give(b->rb, wbatch_peak(b)))
    rocksdb_writebatch_destroy(b->rb);
  cs__free(b);
}

void cs__wbatch_clear(cs_wbatch *b) {
  (void)wbatch_peak(b);
  rocksdb_writebatch_clear(b->rb);
  b->count = 0;
  b->err = 0;
  memset(b->bytes, 0, sizeof(b->bytes));
}

size_t cs__wbatch_count(const cs_wbatch *b) {
  return b->count;
}

/* Checks an op before it joins the batch; a failure sticks to the batch. */
static bool wbatch_check(cs_wbatch *b, cs_cf cf, size_t klen, size_t vlen) {
  if (b->err)
    return false; /* the batch already failed; cs__db_write reports it */
  if ((unsigned)cf >= CS_CF__COUNT) {
    b->err = cs__error(CS_EINVAL, "write batch op %zu: no column family %d", b->count, (int)cf);
    return false;
  }
  if (klen > UINT32_MAX || vlen > UINT32_MAX) {
    b->err = cs__error(CS_ETOOBIG, "write batch op %zu, family '%s': key %zu / value %zu bytes",
                       b->count, cs__cf_name(cf), klen, vlen);
    return false;
  }
  b->count++;
  b->bytes[cf] += klen + vlen;
  return true;
}

void cs__wbatch_put(cs_wbatch *b, cs_cf cf, const void *key, size_t klen, const void *val,
                    size_t vlen) {
  if (wbatch_check(b, cf, klen, vlen))
    rocksdb_writebatch_put_cf(b->rb, b->db->cf[cf], key, klen, val, vlen);
}

void cs__wbatch_delete(cs_wbatch *b, cs_cf cf, const void *key, size_t klen) {
  if (wbatch_check(b, cf, klen, 0))
    rocksdb_writebatch_delete_cf(b->rb, b->db->cf[cf], key, klen);
}

void cs__wbatch_delete_range(cs_wbatch *b, cs_cf cf, const void *begin, size_t blen,
                             const void *end, size_t elen) {
  if (wbatch_check(b, cf, blen, elen))
    rocksdb_writebatch_delete_range_cf(b->rb, b->db->cf[cf], begin, blen, end, elen);
}

/*
 * A batch lands whole in memtables, however large: a sync that merges
 * 50,000 actions leaves megabytes there, held until later writes fill the
 * budget. After a write of a memtable's worth or more, the families it
 * wrote a noticeable share into are flushed in the background, which gives
 * the memory back (the W1 bench's peak fell from 148 to 115 MiB, its
 * timings unchanged). The flush is advice: if it cannot start, RocksDB
 * flushes when it must.
 */
static void flush_large(cs_db *db, const cs_wbatch *b) {
  rocksdb_flushoptions_t *fo = NULL;
  size_t total = 0;
  for (int i = 0; i < CS_CF__COUNT; i++)
    total += b->bytes[i];
  if (total < CS_MEMTABLE_BYTES)
    return;
  for (int i = 0; i < CS_CF__COUNT; i++) {
    char *err = NULL;
    if (b->bytes[i] < CS_MEMTABLE_BYTES / 16)
      continue;
    if (!fo && !(fo = rocksdb_flushoptions_create()))
      return;
    rocksdb_flushoptions_set_wait(fo, 0);
    rocksdb_flush_cf(db->rdb, fo, db->cf[i], &err);
    rocksdb_free(err);
  }
  if (fo)
    rocksdb_flushoptions_destroy(fo);
}

/* Countdown to an injected write failure; 0 means never. */
static unsigned long write_fail_countdown;
static atomic_ulong synced_writes;

unsigned long cs__db_synced_writes(void) {
  return atomic_load(&synced_writes);
}

void cs__db_write_fail_after(unsigned long n) {
  write_fail_countdown = n;
}

int cs__db_write(cs_db *db, cs_wbatch *b, bool sync) {
  char *err = NULL;

  if (b->err)
    return cs__error(b->err,
                     "write batch of %zu ops on '%s' not applied: an earlier put or delete "
                     "failed (%s)",
                     b->count, db->path, cs_strerror(b->err));
  if (b->db != db)
    return cs__error(CS_EINVAL, "write batch made for '%s' written to '%s'", b->db->path, db->path);
  if (CS__UNLIKELY(write_fail_countdown != 0) && --write_fail_countdown == 0)
    return cs__error(CS_EIO, "write of %zu ops on '%s' failed: injected failure", b->count,
                     db->path);
  cs__db_thread_init();
  rocksdb_write(db->rdb, sync ? db->wopts_sync : db->wopts_fast, b->rb, &err);
  if (err)
    return cs__db_rocks_error(db, sync ? "write (sync)" : "write", -1, err);
  if (sync)
    atomic_fetch_add(&synced_writes, 1);
  flush_large(db, b);
  return 0;
}

/* ---- space ---- */

int cs__db_compact(cs_db *db, cs_cf cf) {
  rocksdb_flushoptions_t *fo = NULL;
  rocksdb_compactoptions_t *co = NULL;
  char *err = NULL;
  int rc;

  if ((rc = cf_check(db, cf, "compact")) != 0)
    return rc;
  fo = rocksdb_flushoptions_create();
  rocksdb_flushoptions_set_wait(fo, 1);
  /* Every family, not just cf: a WAL file is kept until each family with
   * writes in it has flushed, so a rarely written family (meta) would keep
   * the deleted bytes on disk in the WAL. */
  for (int i = 0; i < CS_CF__COUNT; i++) {
    rocksdb_flush_cf(db->rdb, fo, db->cf[i], &err);
    if (err) {
      rc = cs__db_rocks_error(db, "flush", i, err);
      goto done;
    }
  }
  for (size_t i = 0; i < db->nextra; i++) {
    rocksdb_flush_cf(db->rdb, fo, db->extra[i], &err);
    if (err) {
      rc = cs__db_rocks_error(db, "flush", -1, err);
      goto done;
    }
  }
  co = rocksdb_compactoptions_create();
  /* kForceOptimized: rewrite the last level too, so that tombstones and the
   * values they cover are dropped even when all data already sits there. */
  rocksdb_compactoptions_set_bottommost_level_compaction(co, 3);
  rocksdb_compact_range_cf_opt(db->rdb, db->cf[cf], co, NULL, 0, NULL, 0);
done:
  if (co)
    rocksdb_compactoptions_destroy(co);
  rocksdb_flushoptions_destroy(fo);
  return rc;
}

/* Bytes of the write-ahead log files (NNNNNN.log) in the database directory. */
static int wal_bytes(uint64_t *out, const cs_db *db) {
  DIR *d = opendir(db->path);
  struct dirent *e;
  cs_buf name = CS_BUF_INIT;
  struct stat st;
  int rc = 0;

  *out = 0;
  if (!d)
    return cs__error(CS_EIO, "size of database '%s': opendir: %s", db->path, strerror(errno));
  while ((e = readdir(d)) != NULL) {
    size_t len = strlen(e->d_name);
    if (len < 5 || strcmp(e->d_name + len - 4, ".log") != 0)
      continue;
    cs__buf_clear(&name);
    if ((rc = cs__buf_printf(&name, "%s/%s", db->path, e->d_name)) != 0)
      goto done;
    /* A WAL file may vanish between readdir and stat (purged): not an error. */
    if (stat(name.ptr, &st) == 0)
      *out += (uint64_t)st.st_size;
  }
done:
  closedir(d);
  cs_buf_dispose(&name);
  return rc;
}

int cs__db_size(uint64_t *out, cs_db *db) {
  uint64_t total = 0, v;

  *out = 0;
  for (int i = 0; i < CS_CF__COUNT; i++) {
    /* live-sst-files-size: files of the current version only, not obsolete
     * files a compaction is about to delete. */
    if (rocksdb_property_int_cf(db->rdb, db->cf[i], "rocksdb.live-sst-files-size", &v) != 0)
      return cs__error(CS_EIO,
                       "database '%s', family '%s': property live-sst-files-size "
                       "unavailable",
                       db->path, cs__cf_name((cs_cf)i));
    total += v;
  }
  for (size_t i = 0; i < db->nextra; i++)
    if (rocksdb_property_int_cf(db->rdb, db->extra[i], "rocksdb.live-sst-files-size", &v) == 0)
      total += v;
  int rc = wal_bytes(&v, db);
  if (rc)
    return rc;
  *out = total + v;
  return 0;
}
