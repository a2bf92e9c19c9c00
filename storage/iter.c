/*
 * Forward iteration over [lower, upper) of one column family. RocksDB keeps
 * pointers to the bound slices, so the iterator owns copies of the bounds for
 * its whole life.
 */
#include "storage/storage_int.h"

struct cs_iter {
  cs_db *db;
  cs_cf cf;
  rocksdb_readoptions_t *ro;
  rocksdb_iterator_t *it;
  char *lower, *upper;
  size_t llen, ulen;
};

int cs__iter_new(cs_iter **out, cs_db *db, cs_cf cf, const void *lower, size_t llen,
                 const void *upper, size_t ulen) {
  cs_iter *it = NULL;
  int rc = 0;

  *out = NULL;
  if (!lower)
    llen = 0;
  if ((unsigned)cf >= CS_CF__COUNT)
    return cs__error(CS_EINVAL, "iterator on '%s': no column family %d", db->path, (int)cf);
  if (!(it = cs__calloc(1, sizeof(*it)))) {
    rc = CS_ENOMEM;
    goto done;
  }
  cs__db_thread_init();
  it->db = db;
  it->cf = cf;
  /* +1: a zero-length bound still needs a distinct, valid pointer. */
  if (!(it->lower = cs__malloc(llen + 1)) || (upper && !(it->upper = cs__malloc(ulen + 1)))) {
    rc = CS_ENOMEM;
    goto done;
  }
  if (llen)
    memcpy(it->lower, lower, llen);
  it->llen = llen;
  if (upper) {
    if (ulen)
      memcpy(it->upper, upper, ulen);
    it->ulen = ulen;
  }
  it->ro = rocksdb_readoptions_create();
  /* Scans (the log a sync reads, the outbox, the change index) pass over
   * blocks once: they do not displace the documents' blocks in the cache. */
  rocksdb_readoptions_set_fill_cache(it->ro, 0);
  rocksdb_readoptions_set_iterate_lower_bound(it->ro, it->lower, it->llen);
  if (upper)
    rocksdb_readoptions_set_iterate_upper_bound(it->ro, it->upper, it->ulen);
  it->it = rocksdb_create_iterator_cf(db->rdb, it->ro, db->cf[cf]);
  rocksdb_iter_seek(it->it, it->lower, it->llen);
  *out = it;
  it = NULL;
done:
  cs__iter_free(it);
  return rc;
}

void cs__iter_free(cs_iter *it) {
  if (!it)
    return;
  /* The iterator before its read options: it points into them. */
  if (it->it)
    rocksdb_iter_destroy(it->it);
  if (it->ro)
    rocksdb_readoptions_destroy(it->ro);
  cs__free(it->lower);
  cs__free(it->upper);
  cs__free(it);
}

bool cs__iter_valid(const cs_iter *it) {
  return rocksdb_iter_valid(it->it) != 0;
}

void cs__iter_next(cs_iter *it) {
  rocksdb_iter_next(it->it);
}

void cs__iter_seek(cs_iter *it, const void *key, size_t klen) {
  rocksdb_iter_seek(it->it, key, klen);
}

cs_bytes cs__iter_key(const cs_iter *it) {
  size_t len = 0;
  const char *k = rocksdb_iter_key(it->it, &len);
  return (cs_bytes){(const uint8_t *)k, len};
}

cs_bytes cs__iter_value(const cs_iter *it) {
  size_t len = 0;
  const char *v = rocksdb_iter_value(it->it, &len);
  return (cs_bytes){(const uint8_t *)v, len};
}

int cs__iter_status(const cs_iter *it) {
  char *err = NULL;
  rocksdb_iter_get_error(it->it, &err);
  if (err)
    return cs__db_rocks_error(it->db, "iterate", it->cf, err);
  return 0;
}
