/*
 * Private to storage/: the cs_db and cs_wbatch layouts shared by db.c,
 * batch.c and iter.c. Nothing outside storage/ includes this.
 */
#ifndef CS_STORAGE_INT_H
#define CS_STORAGE_INT_H

#include <rocksdb/c.h>

#include "storage/storage.h"

struct cs_db {
  rocksdb_t *rdb;
  char *path;
  rocksdb_options_t *opts;       /* database-wide options (also the default family's) */
  rocksdb_options_t *cf_opts[2]; /* [0] plain families, [1] with a bloom filter */
  rocksdb_block_based_table_options_t *table_opts[2];
  rocksdb_cache_t *cache; /* one block cache shared by every family */
  rocksdb_column_family_handle_t *cf[CS_CF__COUNT];
  /* Families RocksDB lists that are not ours ("default", ones a newer
   * version added): opened because RocksDB requires it, never used. */
  rocksdb_column_family_handle_t **extra;
  size_t nextra;
  rocksdb_readoptions_t *ropts;
  rocksdb_writeoptions_t *wopts_sync, *wopts_fast;
};

/*
 * A write batch is RocksDB's own, built against the column family handles of
 * the database it was made for (a copy of the ops would hold a large
 * batch's bytes twice while it is written).
 */
/* The memtable size of each family. */
#define CS_MEMTABLE_BYTES (4u << 20)

/* Cleared batches kept for reuse by the process, and the most bytes of ops
 * a kept one may have held (its buffer may be up to twice that). */
#define CS_SPARE_BATCHES 2
#define CS_SPARE_BATCH_BYTES (16u << 20)

struct cs_wbatch {
  cs_db *db;
  size_t count;
  size_t bytes[CS_CF__COUNT]; /* key and value bytes put per family */
  int err;     /* sticky: first failure of a void put/delete, reported by cs__db_write */
  size_t peak; /* the most bytes rb held before a clear: its buffer is that large */
  rocksdb_writebatch_t *rb;
};

/* Turns this thread's RocksDB perf counters off (rw.c), before its first
 * read or write of a store. */
void cs__db_thread_init(void);

/* Turns a RocksDB errptr into CS_EIO naming op, family, path; frees it. */
int cs__db_rocks_error(const cs_db *db, const char *op, int cf, char *err);

#endif /* CS_STORAGE_INT_H */
