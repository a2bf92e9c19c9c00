/* Write batches kept for reuse: what a freed batch passes on (nothing),
 * which batches are kept, and the process-wide pool under several threads
 * (storage/rw.c). */
#include "test_storage_db.h"

#include "storage/storage_int.h" /* CS_SPARE_BATCH_BYTES */

TestSuite(storage_batch, .init = setup, .fini = teardown);

/* A batch that held more than CS_SPARE_BATCH_BYTES is not kept, even when
 * it was cleared first (its buffer stays that large); cs_release_memory
 * empties the pool. */
Test(storage_batch, large_batches_are_not_kept) {
  cs_db *db = open_new(NULL);
  cs_wbatch *b = NULL;
  static char big[1u << 20];
  char key[16];

  cs__wbatch_release_spares();
  cr_assert_eq(cs__wbatch_new(&b, db), 0);
  for (unsigned i = 0; i <= CS_SPARE_BATCH_BYTES / sizeof(big); i++) {
    snprintf(key, sizeof(key), "big%u", i);
    cs__wbatch_put(b, CS_CF_DOCS, key, strlen(key), big, sizeof(big));
  }
  cs__wbatch_free(b);
  cr_expect_eq(cs__wbatch_release_spares(), 0, "a batch over the limit was kept");

  cr_assert_eq(cs__wbatch_new(&b, db), 0);
  for (unsigned i = 0; i <= CS_SPARE_BATCH_BYTES / sizeof(big); i++) {
    snprintf(key, sizeof(key), "big%u", i);
    cs__wbatch_put(b, CS_CF_DOCS, key, strlen(key), big, sizeof(big));
  }
  cs__wbatch_clear(b);
  cs__wbatch_put(b, CS_CF_DOCS, "small", 5, "1", 1);
  cs__wbatch_free(b);
  cr_expect_eq(cs__wbatch_release_spares(), 0, "a cleared batch over the limit was kept");

  cr_assert_eq(cs__wbatch_new(&b, db), 0);
  cs__wbatch_put(b, CS_CF_DOCS, "small", 5, "1", 1);
  cs__wbatch_free(b);
  cs_release_memory();
  cr_expect_eq(cs__wbatch_release_spares(), 0, "cs_release_memory kept a batch");
  cs__db_close(db);
}

/* Threads taking and giving back kept batches at once, one of them
 * emptying the pool now and then: every written op lands, and no op of a
 * batch dropped unwritten ever does. */
static void *pool_worker(void *p) {
  struct st_worker *c = p;
  cs_buf k = CS_BUF_INIT;
  for (unsigned i = 0; i < c->n && c->rc == 0; i++) {
    cs_wbatch *b = NULL;
    if ((c->rc = cs__wbatch_new(&b, c->db)) != 0)
      break;
    cs__buf_clear(&k);
    cs__key_log(&k, i % 5 == 0 ? "G" : "M", c->id, i); /* G: dropped */
    cs__wbatch_put(b, CS_CF_LOG, k.ptr, k.size, "v", 1);
    if (i % 5 != 0)
      c->rc = cs__db_write(c->db, b, false);
    cs__wbatch_free(b);
    if (c->id == 0 && i % 10 == 0)
      cs__wbatch_release_spares();
  }
  cs_buf_dispose(&k);
  return NULL;
}

static unsigned count_keys(cs_db *db, const char *model) {
  cs_iter *it = NULL;
  cs_buf lo = CS_BUF_INIT, hi = CS_BUF_INIT;
  unsigned n = 0;
  char next[2] = {(char)(model[0] + 1), 0};
  cs__key_name(&lo, model);
  cs__key_name(&hi, next);
  cr_assert_eq(cs__iter_new(&it, db, CS_CF_LOG, lo.ptr, lo.size, hi.ptr, hi.size), 0);
  for (; cs__iter_valid(it); cs__iter_next(it))
    n++;
  cs__iter_free(it);
  cs_buf_dispose(&lo);
  cs_buf_dispose(&hi);
  return n;
}

Test(storage_batch, kept_batches_pass_between_threads) {
  cs_db *db = open_new(NULL);
  unsigned n = st_scale(1000);

  st_run_workers(db, n, pool_worker);
  cr_expect_eq(count_keys(db, "M"), 4 * (n - (n + 4) / 5));
  cr_expect_eq(count_keys(db, "G"), 0, "an op of a dropped batch was written");
  cs__db_close(db);
}

/* A freed batch's buffer is kept for the next one: none of its ops may
 * come with it, whether it was written, failed or dropped unwritten, and
 * batches alive at the same time stay apart (storage/rw.c). */
Test(storage_batch, freed_batch_passes_on_no_ops) {
  cs_db *db = open_new(NULL);
  cs_wbatch *b = NULL, *c = NULL;
  cs_buf out = CS_BUF_INIT;
  char key[16];

  cs__wbatch_release_spares(); /* the pool is the process's */
  cr_assert_eq(cs__wbatch_new(&b, db), 0);
  for (int i = 0; i < 1000; i++) {
    snprintf(key, sizeof(key), "dropped%d", i);
    cs__wbatch_put(b, CS_CF_DOCS, key, strlen(key), "x", 1);
  }
  cs__wbatch_free(b); /* never written */
  cr_assert_eq(cs__wbatch_new(&b, db), 0);
  cr_assert_eq(cs__wbatch_new(&c, db), 0);
  cr_expect_eq(cs__wbatch_count(b), 0);
  cs__wbatch_put(b, CS_CF_DOCS, "kept", 4, "1", 1);
  cs__wbatch_put(c, CS_CF_DOCS, "other", 5, "2", 1);
  cr_assert_eq(cs__db_write(db, b, false), 0, "%s", cs_errmsg());
  expect_value(db, CS_CF_DOCS, "kept", "1");
  cr_expect_eq(cs__db_get(&out, db, CS_CF_DOCS, "dropped0", 8), CS_ENOTFOUND);
  cr_expect_eq(cs__db_get(&out, db, CS_CF_DOCS, "dropped999", 10), CS_ENOTFOUND);
  cr_expect_eq(cs__db_get(&out, db, CS_CF_DOCS, "other", 5), CS_ENOTFOUND);
  cs__wbatch_free(c); /* dropped while b's buffer is already the spare's */
  cs__wbatch_free(b);

  /* A failed batch, then a written one, each freed in turn. */
  cr_assert_eq(cs__wbatch_new(&b, db), 0);
  cs__wbatch_put(b, CS_CF_DOCS, "failed", 6, "3", 1);
  cs__wbatch_put(b, (cs_cf)99, "b", 1, "2", 1);
  cr_expect_eq(cs__db_write(db, b, false), CS_EINVAL);
  cs__wbatch_free(b);
  cr_assert_eq(cs__wbatch_new(&b, db), 0);
  cs__wbatch_delete(b, CS_CF_DOCS, "kept", 4);
  cr_assert_eq(cs__db_write(db, b, false), 0, "%s", cs_errmsg());
  cs__wbatch_free(b);
  cr_assert_eq(cs__wbatch_new(&b, db), 0);
  cs__wbatch_put(b, CS_CF_DOCS, "last", 4, "4", 1);
  cr_assert_eq(cs__db_write(db, b, false), 0, "%s", cs_errmsg());
  cr_expect_eq(cs__db_get(&out, db, CS_CF_DOCS, "failed", 6), CS_ENOTFOUND);
  cr_expect_eq(cs__db_get(&out, db, CS_CF_DOCS, "kept", 4), CS_ENOTFOUND);
  expect_value(db, CS_CF_DOCS, "last", "4");
  cs__wbatch_free(b);

  /* A kept batch goes to any database: nothing of the first one follows. */
  cs_db *other = NULL;
  char path2[600];
  bool moved;
  snprintf(path2, sizeof(path2), "%s-other", dbpath);
  cr_assert_eq(cs__db_open(&other, &moved, path2, NULL), 0, "%s", cs_errmsg());
  cr_assert_eq(cs__wbatch_new(&b, db), 0);
  cs__wbatch_put(b, CS_CF_DOCS, "first", 5, "5", 1);
  cs__wbatch_free(b);
  cr_assert_eq(cs__wbatch_new(&b, other), 0);
  cs__wbatch_put(b, CS_CF_LOG, "second", 6, "6", 1);
  cr_assert_eq(cs__db_write(other, b, false), 0, "%s", cs_errmsg());
  cs__wbatch_free(b);
  expect_value(other, CS_CF_LOG, "second", "6");
  cr_expect_eq(cs__db_get(&out, other, CS_CF_DOCS, "first", 5), CS_ENOTFOUND);
  cr_expect_eq(cs__db_get(&out, db, CS_CF_DOCS, "first", 5), CS_ENOTFOUND);

  /* Freed and kept, then given back: as many as were kept, at most two. */
  cr_assert_eq(cs__wbatch_new(&b, db), 0);
  cr_assert_eq(cs__wbatch_new(&c, db), 0);
  cs_wbatch *d = NULL;
  cr_assert_eq(cs__wbatch_new(&d, db), 0);
  cs__wbatch_free(b);
  cs__wbatch_free(c);
  cs__wbatch_free(d);
  cr_expect_eq(cs__wbatch_release_spares(), 2);
  cr_expect_eq(cs__wbatch_release_spares(), 0);
  cs_buf_dispose(&out);
  cs__db_close(other);
  cs__db_close(db);
}
