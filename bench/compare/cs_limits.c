/*
 * cs_limits: the physical limits the cosmicsync W1 figures are held against,
 * measured on the same documents in the same run:
 *   - msgpack-c: pack every initial W1 profile (8 scalars + interests array) and
 *     unpack the same bytes;
 *   - RocksDB: one WriteBatch putting all those packed documents, WAL on, first
 *     without fsync (CS_DURABILITY_FAST's promise) then with (SYNC).
 * Prints one JSON line per row.
 *
 *   cs_limits <w1.ops> <scratch-dir>
 */
#include <msgpack.h>
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opfile.h"

#ifndef CS_BENCH_ROCKSDB_VERSION
#define CS_BENCH_ROCKSDB_VERSION "unknown"
#endif

typedef struct packed {
  char key[64];
  size_t keylen;
  char *data;
  size_t len;
} packed;

/* Packs one document from its init ops [i, j): a map of fields, interests as an array. */
static void pack_doc(msgpack_sbuffer *sb, const bench_op *ops, size_t n) {
  msgpack_packer pk;
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  size_t scalars = 0, elems = 0;
  for (size_t k = 0; k < n; k++) *(ops[k].kind == 'S' ? &scalars : &elems) += 1;
  msgpack_pack_map(&pk, scalars + (elems ? 1 : 0));
  const char *set_field = NULL;
  for (size_t k = 0; k < n; k++) {
    const bench_op *op = &ops[k];
    if (op->kind != 'S') {
      set_field = op->field;
      continue;
    }
    msgpack_pack_str_with_body(&pk, op->field, strlen(op->field));
    if (op->vtype == 'i') msgpack_pack_int64(&pk, op->ival);
    else msgpack_pack_str_with_body(&pk, op->val, op->val_len);
  }
  if (elems) {
    msgpack_pack_str_with_body(&pk, set_field, strlen(set_field));
    msgpack_pack_array(&pk, elems);
    for (size_t k = 0; k < n; k++)
      if (ops[k].kind == 'A') msgpack_pack_str_with_body(&pk, ops[k].val, ops[k].val_len);
  }
}

static int rocks_row(const char *dir, packed *docs, size_t ndocs, size_t total, int sync) {
  char *err = NULL;
  rocksdb_options_t *opts = rocksdb_options_create();
  rocksdb_options_set_create_if_missing(opts, 1);
  char path[4096];
  snprintf(path, sizeof path, "%s/raw-%s", dir, sync ? "sync" : "wal");
  rocksdb_destroy_db(opts, path, &err);
  if (err) {
    rocksdb_free(err);
    err = NULL;
  }
  rocksdb_t *db = rocksdb_open(opts, path, &err);
  if (err) {
    fprintf(stderr, "cs_limits: rocksdb open %s: %s\n", path, err);
    rocksdb_free(err);
    rocksdb_options_destroy(opts);
    return -1;
  }
  rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
  rocksdb_writeoptions_set_sync(wo, (unsigned char)sync);
  double t0 = bench_now_ms();
  rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
  for (size_t i = 0; i < ndocs; i++)
    rocksdb_writebatch_put(wb, docs[i].key, docs[i].keylen, docs[i].data, docs[i].len);
  rocksdb_write(db, wo, wb, &err);
  double ms = bench_now_ms() - t0;
  rocksdb_writebatch_destroy(wb);
  int rc = 0;
  if (err) {
    fprintf(stderr, "cs_limits: rocksdb write: %s\n", err);
    rocksdb_free(err);
    rc = -1;
  }
  /* Read every document back: the "load" of the raw store. */
  rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
  double t1 = bench_now_ms();
  int same = 1;
  for (size_t i = 0; i < ndocs && rc == 0; i++) {
    size_t vlen = 0;
    char *v = rocksdb_get(db, ro, docs[i].key, docs[i].keylen, &vlen, &err);
    if (err) {
      rocksdb_free(err);
      err = NULL;
      same = 0;
    }
    if (!v || vlen != docs[i].len || memcmp(v, docs[i].data, vlen) != 0) same = 0;
    rocksdb_free(v);
  }
  double load_ms = bench_now_ms() - t1;
  rocksdb_readoptions_destroy(ro);
  rocksdb_writeoptions_destroy(wo);
  rocksdb_close(db);
  rocksdb_destroy_db(opts, path, &err);
  if (err) rocksdb_free(err);
  rocksdb_options_destroy(opts);
  if (rc == 0)
    printf("{\"contender\":\"rocksdb-writebatch%s\",\"version\":\"%s\",\"workload\":\"w1\","
           "\"ok\":true,\"limit\":true,\"edits\":%zu,\"merge_ms\":%.4f,\"merge_ops_s\":%.1f,"
           "\"bytes_per_edit\":%.2f,\"state_bytes\":%zu,\"load_ms\":%.4f,\"total_ms\":%.4f,"
           "\"converged\":%s,\"rss_kib\":%ld,"
           "\"note\":\"one WriteBatch of %zu packed documents, WAL on%s\"}\n",
           sync ? "-sync" : "", CS_BENCH_ROCKSDB_VERSION, ndocs, ms, ndocs / (ms / 1e3),
           (double)total / (double)ndocs, total, load_ms, ms + load_ms, same ? "true" : "false",
           bench_peak_rss_kib(), ndocs, sync ? ", fsync" : ", no fsync");
  return rc;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: cs_limits <w1.ops> <scratch-dir>\n");
    return 2;
  }
  bench_opfile f;
  if (bench_opfile_load(&f, argv[1]) != 0) return 1;
  const bench_phase *init = bench_opfile_phase(&f, "init");
  packed *docs = calloc(f.ndocs ? f.ndocs : 1, sizeof(packed));
  if (!docs) return 1;
  size_t ndocs = 0, total = 0;

  /* Pack every document into one buffer (no per-document allocation in the timing). */
  size_t *offs = calloc(f.ndocs + 1, sizeof(size_t));
  if (!offs) return 1;
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  double t0 = bench_now_ms();
  for (size_t i = 0; i < init->len;) {
    size_t j = i;
    while (j < init->len && init->ops[j].doc == init->ops[i].doc) j++;
    offs[ndocs] = sb.size;
    pack_doc(&sb, init->ops + i, j - i);
    packed *p = &docs[ndocs++];
    p->keylen = (size_t)snprintf(p->key, sizeof p->key, "%s", init->ops[i].doc_name);
    i = j;
  }
  double pack_ms = bench_now_ms() - t0;
  offs[ndocs] = sb.size;
  for (size_t i = 0; i < ndocs; i++) {
    docs[i].data = sb.data + offs[i];
    docs[i].len = offs[i + 1] - offs[i];
  }
  total = sb.size;

  double t2 = bench_now_ms();
  size_t objects = 0;
  for (size_t i = 0; i < ndocs; i++) {
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    if (msgpack_unpack_next(&u, docs[i].data, docs[i].len, &off) == MSGPACK_UNPACK_SUCCESS &&
        u.data.type == MSGPACK_OBJECT_MAP)
      objects += u.data.via.map.size;
    msgpack_unpacked_destroy(&u);
  }
  double unpack_ms = bench_now_ms() - t2;
  printf("{\"contender\":\"msgpack-c\",\"version\":\"%s\",\"workload\":\"w1\",\"ok\":true,"
         "\"limit\":true,\"edits\":%zu,\"local_ms\":%.4f,\"merge_ms\":%.4f,\"merge_ops_s\":%.1f,"
         "\"bytes_per_edit\":%.2f,\"state_bytes\":%zu,\"load_ms\":%.4f,\"total_ms\":%.4f,"
         "\"converged\":%s,\"rss_kib\":%ld,"
         "\"note\":\"pack then unpack %zu documents; merge = unpack, local = pack\"}\n",
         msgpack_version(), ndocs, pack_ms, unpack_ms, ndocs / (unpack_ms / 1e3),
         (double)total / (double)(ndocs ? ndocs : 1), total, unpack_ms, pack_ms + unpack_ms,
         objects > 0 ? "true" : "false", bench_peak_rss_kib(), ndocs);
  fflush(stdout);

  int rc = rocks_row(argv[2], docs, ndocs, total, 0);
  fflush(stdout);
  rc |= rocks_row(argv[2], docs, ndocs, total, 1);
  msgpack_sbuffer_destroy(&sb);
  free(offs);
  free(docs);
  bench_opfile_dispose(&f);
  return rc ? 1 : 0;
}
