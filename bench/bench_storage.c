/*
 * The storage layer's physical limits on this machine: what RocksDB (through
 * storage/) can do for W1-sized documents before any CRDT or codec work. The
 * engine's benchmarks are read against these figures.
 *
 *   10,000 documents of 210 bytes: individual puts (WAL, no fsync), a sample
 *   of individual fsync'd puts, one WriteBatch; gets and multi-gets (after a
 *   flush, from SST files with a warm block cache); 100,000 read-modify-writes
 *   of random documents, 1,000 per batch. Median of CS_BENCH_RUNS (5) runs,
 *   each on a fresh database under $TMPDIR.
 */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "storage/storage.h"

#define DOCS 10000
#define DOC_BYTES 210
#define SYNC_PUTS 500
#define RMW_OPS 100000
#define RMW_BATCH 1000
#define MGET_GROUP 100

enum { M_PUT, M_PUT_SYNC, M_BATCH, M_GET, M_MGET, M_RMW, M_BYTES, M__COUNT };
static const char *const metric_key[M__COUNT] = {
    "put_wal_per_s",  "put_sync_per_s", "batch_put_per_s",   "get_per_s",
    "multiget_per_s", "rmw_per_s",      "disk_bytes_per_doc"};
static const char *const metric_text[M__COUNT] = {
    "individual puts, WAL, no fsync", "individual puts, fsync each",
    "one WriteBatch of 10,000 puts",  "point gets (random)",
    "multi-get, 100 keys per call",   "read-modify-write, 1,000 per batch",
    "bytes on disk per document"};

static uint64_t rng = 0x243f6a8885a308d3ull;
static uint64_t next_rand(void) {
  uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rm_one(const char *p, const struct stat *sb, int f, struct FTW *w) {
  (void)sb;
  (void)f;
  (void)w;
  return remove(p);
}

static void die(const char *what, int rc) {
  fprintf(stderr, "bench_storage: %s: %s (%s)\n", what, cs_strerror(rc), cs_errmsg());
  exit(1);
}

/* A document-like value: mostly text, so compression behaves as on JSON-ish state. */
static void doc_value(uint8_t *v, unsigned i, unsigned version) {
  int n = snprintf((char *)v, DOC_BYTES,
                   "{\"name\":\"user %u\",\"email\":\"user%u@example.org\",\"v\":%u,"
                   "\"interests\":[\"hiking\",\"chess\"],\"bio\":\"",
                   i, i, version);
  for (int j = n; j < DOC_BYTES; j++)
    v[j] = (uint8_t)('a' + next_rand() % 26);
}

static void key_of(cs_buf *k, unsigned i) {
  char inst[32];
  snprintf(inst, sizeof(inst), "profile_%06u", i);
  cs__buf_clear(k);
  cs__key_doc(k, "UserProfile", inst);
}

static cs_db *fresh_db(char *dir, size_t cap) {
  const char *base = getenv("TMPDIR");
  char path[300];
  cs_db *db = NULL;
  bool moved;
  int rc;
  snprintf(dir, cap, "%s/cs_bench_storage_XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(dir))
    die("mkdtemp", CS_EIO);
  snprintf(path, sizeof(path), "%s/db", dir);
  if ((rc = cs__db_open(&db, &moved, path, NULL)) != 0)
    die("open", rc);
  return db;
}

static void one_run(double out[M__COUNT]) {
  char dir[256];
  cs_db *db;
  cs_wbatch *b = NULL;
  cs_buf k = CS_BUF_INIT, v = CS_BUF_INIT;
  uint8_t val[DOC_BYTES];
  double t;
  int rc;

  /* (a) individual puts, each its own atomic write, WAL on, no fsync. */
  db = fresh_db(dir, sizeof(dir));
  cs__wbatch_new(&b, db);
  t = now_s();
  for (unsigned i = 0; i < DOCS; i++) {
    key_of(&k, i);
    doc_value(val, i, 0);
    cs__wbatch_clear(b);
    cs__wbatch_put(b, CS_CF_DOCS, k.ptr, k.size, val, DOC_BYTES);
    if ((rc = cs__db_write(db, b, false)) != 0)
      die("put", rc);
  }
  out[M_PUT] = DOCS / (now_s() - t);

  /* fsync'd puts: a sample, since each waits for the disk. */
  t = now_s();
  for (unsigned i = 0; i < SYNC_PUTS; i++) {
    key_of(&k, DOCS + i);
    doc_value(val, i, 0);
    cs__wbatch_clear(b);
    cs__wbatch_put(b, CS_CF_DOCS, k.ptr, k.size, val, DOC_BYTES);
    if ((rc = cs__db_write(db, b, true)) != 0)
      die("sync put", rc);
  }
  out[M_PUT_SYNC] = SYNC_PUTS / (now_s() - t);
  cs__wbatch_free(b);
  cs__db_close(db);
  nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);

  /* (b) the same documents in one batch, on a fresh database. */
  db = fresh_db(dir, sizeof(dir));
  cs__wbatch_new(&b, db);
  t = now_s();
  cs__wbatch_clear(b);
  for (unsigned i = 0; i < DOCS; i++) {
    key_of(&k, i);
    doc_value(val, i, 0);
    cs__wbatch_put(b, CS_CF_DOCS, k.ptr, k.size, val, DOC_BYTES);
  }
  if ((rc = cs__db_write(db, b, false)) != 0)
    die("batch", rc);
  out[M_BATCH] = DOCS / (now_s() - t);

  /* Reads from SST files (flushed), block cache warm after the first pass. */
  if ((rc = cs__db_compact(db, CS_CF_DOCS)) != 0)
    die("compact", rc);
  uint64_t size = 0;
  if ((rc = cs__db_size(&size, db)) != 0)
    die("size", rc);
  out[M_BYTES] = (double)size / DOCS;
  t = now_s();
  for (unsigned i = 0; i < DOCS; i++) {
    key_of(&k, (unsigned)(next_rand() % DOCS));
    if ((rc = cs__db_get(&v, db, CS_CF_DOCS, k.ptr, k.size)) != 0)
      die("get", rc);
  }
  out[M_GET] = DOCS / (now_s() - t);

  {
    cs_buf keys[MGET_GROUP], vals[MGET_GROUP];
    cs_bytes kv[MGET_GROUP];
    bool found[MGET_GROUP];
    memset(keys, 0, sizeof(keys));
    memset(vals, 0, sizeof(vals));
    t = now_s();
    for (unsigned g = 0; g < DOCS / MGET_GROUP; g++) {
      for (unsigned j = 0; j < MGET_GROUP; j++) {
        key_of(&keys[j], (unsigned)(next_rand() % DOCS));
        kv[j] = (cs_bytes){(const uint8_t *)keys[j].ptr, keys[j].size};
      }
      if ((rc = cs__db_multi_get(vals, found, db, CS_CF_DOCS, kv, MGET_GROUP)) != 0)
        die("multi-get", rc);
      for (unsigned j = 0; j < MGET_GROUP; j++)
        if (!found[j])
          die("multi-get miss", CS_EINTERNAL);
    }
    out[M_MGET] = DOCS / (now_s() - t);
    for (unsigned j = 0; j < MGET_GROUP; j++) {
      cs_buf_dispose(&keys[j]);
      cs_buf_dispose(&vals[j]);
    }
  }

  /* Read-modify-write of random documents, 1,000 per atomic batch. */
  t = now_s();
  cs__wbatch_clear(b);
  for (unsigned i = 0; i < RMW_OPS; i++) {
    key_of(&k, (unsigned)(next_rand() % DOCS));
    if ((rc = cs__db_get(&v, db, CS_CF_DOCS, k.ptr, k.size)) != 0)
      die("rmw get", rc);
    v.ptr[v.size - 1] = (char)('a' + i % 26);
    cs__wbatch_put(b, CS_CF_DOCS, k.ptr, k.size, v.ptr, v.size);
    if (cs__wbatch_count(b) == RMW_BATCH) {
      if ((rc = cs__db_write(db, b, false)) != 0)
        die("rmw write", rc);
      cs__wbatch_clear(b);
    }
  }
  out[M_RMW] = RMW_OPS / (now_s() - t);

  cs__db_close(db);
  nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  cs__wbatch_free(b);
  cs_buf_dispose(&k);
  cs_buf_dispose(&v);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(void) {
  const char *env = getenv("CS_BENCH_RUNS");
  int runs = env && atoi(env) > 0 ? atoi(env) : 5;
  double(*res)[M__COUNT] = calloc((size_t)runs, sizeof(*res));
  double med[M__COUNT], lo[M__COUNT], hi[M__COUNT], col[64];

  if (runs > 64)
    runs = 64;
  for (int r = 0; r < runs; r++)
    one_run(res[r]);
  for (int m = 0; m < M__COUNT; m++) {
    for (int r = 0; r < runs; r++)
      col[r] = res[r][m];
    qsort(col, (size_t)runs, sizeof(double), cmp_double);
    med[m] = col[runs / 2];
    lo[m] = col[0];
    hi[m] = col[runs - 1];
  }

  printf("storage (RocksDB via storage/), %d documents of %d bytes, median of %d runs\n", DOCS,
         DOC_BYTES, runs);
  printf("%-36s %12s %12s %12s\n", "operation", "median", "min", "max");
  printf("%-36s %12s %12s %12s\n", "------------------------------------", "------------",
         "------------", "------------");
  for (int m = 0; m < M__COUNT; m++)
    printf("%-36s %12.0f %12.0f %12.0f %s\n", metric_text[m], med[m], lo[m], hi[m],
           m == M_BYTES ? "bytes" : "ops/s");
  for (int m = 0; m < M__COUNT; m++)
    printf("RESULT storage_%s=%.0f\n", metric_key[m], med[m]);
  free(res);
  return 0;
}
