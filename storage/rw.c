/*
 * Reads, atomic write batches, compaction and space accounting on an open
 * cs_db. Every RocksDB errptr becomes a cs error here and is freed at once.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

#include "storage/storage_int.h"

enum { OP_PUT = 1, OP_DELETE = 2, OP_DELETE_RANGE = 3 };
#define OP_HEADER 10 /* u8 kind, u8 family, u32 key length, u32 value length */

static int cf_check(const cs_db *db, cs_cf cf, const char *op) {
  if ((unsigned)cf >= CS_CF__COUNT)
    return cs__error(CS_EINVAL, "%s on database '%s': no column family %d", op, db->path, (int)cf);
  return 0;
}

int cs__db_get(cs_buf *out, cs_db *db, cs_cf cf, const void *key, size_t klen) {
  rocksdb_pinnableslice_t *ps = NULL;
  const char *v;
  size_t vlen = 0;
  char *err = NULL;
  int rc;

  cs__buf_clear(out);
  if ((rc = cf_check(db, cf, "get")) != 0)
    return rc;
  ps = rocksdb_get_pinned_cf(db->rdb, db->ropts, db->cf[cf], key, klen, &err);
  if (err)
    return cs__db_rocks_error(db, "get", cf, err);
  if (!ps)
    return CS_ENOTFOUND; /* absence is an answer: no message */
  v = rocksdb_pinnableslice_value(ps, &vlen);
  rc = cs__buf_put(out, v, vlen);
  rocksdb_pinnableslice_destroy(ps);
  return rc;
}

int cs__db_multi_get(cs_buf *out, bool *found, cs_db *db, cs_cf cf, const cs_bytes *keys,
                     size_t n) {
  const char **kp = NULL;
  size_t *ks = NULL, *vs = NULL;
  char **vals = NULL, **errs = NULL;
  const rocksdb_column_family_handle_t **cfs = NULL;
  int rc;

  for (size_t i = 0; i < n; i++) {
    cs__buf_clear(&out[i]);
    found[i] = false;
  }
  if ((rc = cf_check(db, cf, "multi-get")) != 0 || n == 0)
    return rc;
  kp = cs__calloc(n, sizeof(*kp));
  ks = cs__calloc(n, sizeof(*ks));
  vs = cs__calloc(n, sizeof(*vs));
  vals = cs__calloc(n, sizeof(*vals));
  errs = cs__calloc(n, sizeof(*errs));
  cfs = cs__calloc(n, sizeof(*cfs));
  if (!kp || !ks || !vs || !vals || !errs || !cfs) {
    rc = CS_ENOMEM;
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    kp[i] = (const char *)keys[i].ptr;
    ks[i] = keys[i].len;
    cfs[i] = db->cf[cf];
  }
  rocksdb_multi_get_cf(db->rdb, db->ropts, cfs, n, kp, ks, vals, vs, errs);
  for (size_t i = 0; i < n; i++) {
    if (errs[i]) {
      if (rc == 0) {
        int r = cs__db_rocks_error(db, "multi-get", cf, errs[i]);
        rc = cs__error_wrap(r, "key %zu of %zu: ", i, n);
      } else {
        rocksdb_free(errs[i]);
      }
    } else if (vals[i] && rc == 0) {
      found[i] = true;
      rc = cs__buf_put(&out[i], vals[i], vs[i]);
    }
    rocksdb_free(vals[i]);
  }
done:
  cs__free(kp);
  cs__free(ks);
  cs__free(vs);
  cs__free(vals);
  cs__free(errs);
  cs__free(cfs);
  return rc;
}

/* ---- write batches ---- */

int cs__wbatch_new(cs_wbatch **out) {
  cs_wbatch *b = cs__calloc(1, sizeof(*b));
  *out = NULL;
  if (!b)
    return CS_ENOMEM;
  b->rb = rocksdb_writebatch_create();
  *out = b;
  return 0;
}

void cs__wbatch_free(cs_wbatch *b) {
  if (!b)
    return;
  cs_buf_dispose(&b->ops);
  if (b->rb)
    rocksdb_writebatch_destroy(b->rb);
  cs__free(b);
}

void cs__wbatch_clear(cs_wbatch *b) {
  cs__buf_clear(&b->ops);
  b->count = 0;
  b->err = 0;
}

size_t cs__wbatch_count(const cs_wbatch *b) {
  return b->count;
}

static void wbatch_add(cs_wbatch *b, int kind, cs_cf cf, const void *key, size_t klen,
                       const void *val, size_t vlen) {
  uint8_t hdr[OP_HEADER];
  uint32_t k32 = (uint32_t)klen, v32 = (uint32_t)vlen;

  if (b->err)
    return; /* the batch already failed; cs__db_write reports it */
  if ((unsigned)cf >= CS_CF__COUNT) {
    b->err = cs__error(CS_EINVAL, "write batch op %zu: no column family %d", b->count, (int)cf);
    return;
  }
  if (klen > UINT32_MAX || vlen > UINT32_MAX) {
    b->err = cs__error(CS_ETOOBIG, "write batch op %zu, family '%s': key %zu / value %zu bytes",
                       b->count, cs__cf_name(cf), klen, vlen);
    return;
  }
  hdr[0] = (uint8_t)kind;
  hdr[1] = (uint8_t)cf;
  memcpy(hdr + 2, &k32, 4);
  memcpy(hdr + 6, &v32, 4);
  if (cs__buf_grow(&b->ops, b->ops.size + OP_HEADER + klen + vlen) != 0 ||
      cs__buf_put(&b->ops, hdr, OP_HEADER) != 0 || cs__buf_put(&b->ops, key, klen) != 0 ||
      cs__buf_put(&b->ops, val, vlen) != 0) {
    b->err = CS_ENOMEM;
    return;
  }
  b->count++;
}

void cs__wbatch_put(cs_wbatch *b, cs_cf cf, const void *key, size_t klen, const void *val,
                    size_t vlen) {
  wbatch_add(b, OP_PUT, cf, key, klen, val, vlen);
}

void cs__wbatch_delete(cs_wbatch *b, cs_cf cf, const void *key, size_t klen) {
  wbatch_add(b, OP_DELETE, cf, key, klen, NULL, 0);
}

void cs__wbatch_delete_range(cs_wbatch *b, cs_cf cf, const void *begin, size_t blen,
                             const void *end, size_t elen) {
  wbatch_add(b, OP_DELETE_RANGE, cf, begin, blen, end, elen);
}

int cs__db_write(cs_db *db, cs_wbatch *b, bool sync) {
  /* An empty batch has no buffer: no pointer arithmetic on NULL. */
  const uint8_t *p = (const uint8_t *)b->ops.ptr, *end = p ? p + b->ops.size : p;
  char *err = NULL;

  if (b->err)
    return cs__error(b->err,
                     "write batch of %zu ops on '%s' not applied: an earlier put or delete "
                     "failed (%s)",
                     b->count, db->path, cs_strerror(b->err));
  rocksdb_writebatch_clear(b->rb);
  while (p < end) {
    uint32_t klen, vlen;
    memcpy(&klen, p + 2, 4);
    memcpy(&vlen, p + 6, 4);
    const char *k = (const char *)p + OP_HEADER, *v = k + klen;
    rocksdb_column_family_handle_t *h = db->cf[p[1]];
    if (p[0] == OP_PUT)
      rocksdb_writebatch_put_cf(b->rb, h, k, klen, v, vlen);
    else if (p[0] == OP_DELETE_RANGE) /* "value" holds the end key */
      rocksdb_writebatch_delete_range_cf(b->rb, h, k, klen, v, vlen);
    else
      rocksdb_writebatch_delete_cf(b->rb, h, k, klen);
    p += OP_HEADER + klen + vlen;
  }
  rocksdb_write(db->rdb, sync ? db->wopts_sync : db->wopts_fast, b->rb, &err);
  /* Drop the copy now so that a large batch does not hold twice its memory. */
  rocksdb_writebatch_clear(b->rb);
  if (err)
    return cs__db_rocks_error(db, sync ? "write (sync)" : "write", -1, err);
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
