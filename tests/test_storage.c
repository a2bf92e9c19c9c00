#include "test_storage_db.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <dirent.h>
#include <sys/stat.h>
#include <time.h>

TestSuite(storage_db, .init = setup, .fini = teardown);

Test(storage_db, create_then_reopen_keeps_every_family) {
  bool moved = false;
  cs_db *db = open_new(&moved);
  cr_expect(moved, "a new database has no home yet");
  cr_assert_eq(cs__db_mark_home(db), 0, "%s", cs_errmsg());
  cr_expect_str_eq(cs__db_path(db), dbpath);
  for (int i = 0; i < CS_CF__COUNT; i++)
    put1(db, (cs_cf)i, "k", cs__cf_name((cs_cf)i));
  cs__db_close(db);

  /* RocksDB itself lists our families (plus its "default"). */
  rocksdb_options_t *o = rocksdb_options_create();
  size_t n = 0;
  char *err = NULL;
  char **names = rocksdb_list_column_families(o, dbpath, &n, &err);
  cr_assert_null(err);
  cr_expect_eq(n, CS_CF__COUNT + 1);
  for (int i = 0; i < CS_CF__COUNT; i++) {
    bool seen = false;
    for (size_t j = 0; j < n; j++)
      seen |= strcmp(names[j], cs__cf_name((cs_cf)i)) == 0;
    cr_expect(seen, "family %s missing", cs__cf_name((cs_cf)i));
  }
  rocksdb_list_column_families_destroy(names, n);
  rocksdb_options_destroy(o);

  db = open_new(&moved);
  cr_expect_not(moved, "same directory, same home");
  for (int i = 0; i < CS_CF__COUNT; i++)
    expect_value(db, (cs_cf)i, "k", cs__cf_name((cs_cf)i));
  cs__db_close(db);
}

Test(storage_db, unknown_extra_family_still_opens) {
  cs_db *db = open_new(NULL);
  put1(db, CS_CF_DOCS, "d", "1");
  cs__db_close(db);

  /* A later version added a family; this build must still open the store. */
  rocksdb_options_t *o = rocksdb_options_create();
  char *err = NULL;
  rocksdb_t *r = rocksdb_open(o, dbpath, &err);
  cr_assert_not_null(err, "plain open must fail: the store has families");
  rocksdb_free(err);
  err = NULL;
  size_t n = 0;
  char **names = rocksdb_list_column_families(o, dbpath, &n, &err);
  cr_assert_null(err);
  const rocksdb_options_t **fo = calloc(n, sizeof(*fo));
  rocksdb_column_family_handle_t **h = calloc(n + 1, sizeof(*h));
  for (size_t i = 0; i < n; i++)
    fo[i] = o;
  r = rocksdb_open_column_families(o, dbpath, (int)n, (const char *const *)names, fo, h, &err);
  cr_assert_null(err, "%s", err);
  h[n] = rocksdb_create_column_family(r, o, "future", &err);
  cr_assert_null(err);
  rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
  rocksdb_put_cf(r, wo, h[n], "x", 1, "y", 1, &err);
  cr_assert_null(err);
  rocksdb_writeoptions_destroy(wo);
  for (size_t i = 0; i <= n; i++)
    rocksdb_column_family_handle_destroy(h[i]);
  rocksdb_close(r);
  rocksdb_list_column_families_destroy(names, n);
  free(fo);
  free(h);
  rocksdb_options_destroy(o);

  db = open_new(NULL);
  expect_value(db, CS_CF_DOCS, "d", "1");
  uint64_t size = 0;
  cr_expect_eq(cs__db_size(&size, db), 0, "%s", cs_errmsg());
  cs__db_close(db);
}

Test(storage_db, put_get_delete) {
  cs_db *db = open_new(NULL);
  cs_buf out = CS_BUF_INIT;
  cs_wbatch *b = NULL;

  put1(db, CS_CF_DOCS, "alpha", "one");
  expect_value(db, CS_CF_DOCS, "alpha", "one");
  /* Families are separate key spaces. */
  cr_expect_eq(cs__db_get(&out, db, CS_CF_BASELINE, "alpha", 5), CS_ENOTFOUND);
  put1(db, CS_CF_DOCS, "alpha", "two");
  expect_value(db, CS_CF_DOCS, "alpha", "two");

  cr_assert_eq(cs__wbatch_new(&b, db), 0);
  cs__wbatch_delete(b, CS_CF_DOCS, "alpha", 5);
  cr_expect_eq(cs__wbatch_count(b), 1);
  cr_assert_eq(cs__db_write(db, b, true), 0, "%s", cs_errmsg());
  cr_expect_eq(cs__db_get(&out, db, CS_CF_DOCS, "alpha", 5), CS_ENOTFOUND);
  cr_expect_eq(out.size, 0);

  /* Binary keys and values with NUL bytes, and an empty value. */
  cs__wbatch_clear(b);
  cr_expect_eq(cs__wbatch_count(b), 0);
  const uint8_t k[3] = {0, 1, 0}, v[4] = {9, 0, 0, 9};
  cs__wbatch_put(b, CS_CF_LOG, k, 3, v, 4);
  cs__wbatch_put(b, CS_CF_LOG, "empty", 5, "", 0);
  cr_assert_eq(cs__db_write(db, b, false), 0);
  cr_assert_eq(cs__db_get(&out, db, CS_CF_LOG, k, 3), 0);
  cr_expect_eq(out.size, 4);
  cr_expect_eq(memcmp(out.ptr, v, 4), 0);
  cr_assert_eq(cs__db_get(&out, db, CS_CF_LOG, "empty", 5), 0);
  cr_expect_eq(out.size, 0);

  cs_buf_dispose(&out);
  cs__wbatch_free(b);
  cs__db_close(db);
}

Test(storage_db, failed_batch_applies_nothing) {
  cs_db *db = open_new(NULL);
  cs_wbatch *b = NULL;
  cs_buf out = CS_BUF_INIT;

  cr_assert_eq(cs__wbatch_new(&b, db), 0);
  cs__wbatch_put(b, CS_CF_DOCS, "a", 1, "1", 1);
  cs__wbatch_put(b, (cs_cf)99, "b", 1, "2", 1);
  cs__wbatch_put(b, CS_CF_DOCS, "c", 1, "3", 1);
  cr_expect_eq(cs__db_write(db, b, false), CS_EINVAL);
  cr_expect(strstr(cs_errmsg(), "not applied") != NULL, "message: %s", cs_errmsg());
  cr_expect_eq(cs__db_get(&out, db, CS_CF_DOCS, "a", 1), CS_ENOTFOUND);
  cr_expect_eq(cs__db_get(&out, db, CS_CF_DOCS, "c", 1), CS_ENOTFOUND);
  /* Clearing forgets the failure. */
  cs__wbatch_clear(b);
  cs__wbatch_put(b, CS_CF_DOCS, "a", 1, "1", 1);
  cr_expect_eq(cs__db_write(db, b, false), 0);
  expect_value(db, CS_CF_DOCS, "a", "1");
  cs_buf_dispose(&out);
  cs__wbatch_free(b);
  cs__db_close(db);
}

static int see_value(const uint8_t *v, size_t len, void *payload) {
  cs_buf *seen = payload;
  cs__buf_put(seen, v, len);
  return len == 3 ? 0 : CS_ECORRUPT; /* the callback's answer is the read's */
}

Test(storage_db, get_with_lends_the_value_to_a_callback) {
  cs_db *db = open_new(NULL);
  cs_buf seen = CS_BUF_INIT;

  put1(db, CS_CF_DOCS, "three", "abc");
  put1(db, CS_CF_DOCS, "four", "abcd");
  cr_expect_eq(cs__db_get_with(db, CS_CF_DOCS, "three", 5, see_value, &seen), 0);
  cr_expect_eq(seen.size, 3);
  cr_expect_eq(memcmp(seen.ptr, "abc", 3), 0);
  cs__buf_clear(&seen);
  cr_expect_eq(cs__db_get_with(db, CS_CF_DOCS, "four", 4, see_value, &seen), CS_ECORRUPT);
  cr_expect_eq(seen.size, 4);
  cs__buf_clear(&seen);
  cr_expect_eq(cs__db_get_with(db, CS_CF_DOCS, "none", 4, see_value, &seen), CS_ENOTFOUND);
  cr_expect_eq(cs__db_get_with(db, (cs_cf)99, "three", 5, see_value, &seen), CS_EINVAL);
  cr_expect(strstr(cs_errmsg(), "no column family 99") != NULL, "message: %s", cs_errmsg());
  cr_expect_eq(seen.size, 0, "the callback runs only for a value");
  cs_buf_dispose(&seen);
  cs__db_close(db);
}

Test(storage_db, batch_is_written_only_to_its_own_database) {
  cs_db *db = open_new(NULL), *other = NULL;
  cs_wbatch *b = NULL;
  cs_buf out = CS_BUF_INIT;
  char path2[600];
  bool moved;

  snprintf(path2, sizeof(path2), "%s-other", dbpath);
  cr_assert_eq(cs__db_open(&other, &moved, path2, NULL), 0, "%s", cs_errmsg());
  cr_assert_eq(cs__wbatch_new(&b, db), 0);
  cs__wbatch_put(b, CS_CF_DOCS, "a", 1, "1", 1);
  cr_expect_eq(cs__db_write(other, b, false), CS_EINVAL);
  cr_expect(strstr(cs_errmsg(), "made for") != NULL, "message: %s", cs_errmsg());
  cr_expect_eq(cs__db_get(&out, other, CS_CF_DOCS, "a", 1), CS_ENOTFOUND);
  cr_expect_eq(cs__db_write(db, b, false), 0);
  expect_value(db, CS_CF_DOCS, "a", "1");
  cs_buf_dispose(&out);
  cs__wbatch_free(b);
  cs__db_close(other);
  cs__db_close(db);
  st_rmtree(path2);
}

static int count_sst(const char *path) {
  DIR *d = opendir(path);
  struct dirent *de;
  int n = 0;
  cr_assert_not_null(d, "%s", path);
  while ((de = readdir(d)) != NULL) {
    size_t len = strlen(de->d_name);
    n += len > 4 && strcmp(de->d_name + len - 4, ".sst") == 0;
  }
  closedir(d);
  return n;
}

/* A batch of a memtable's worth is flushed in the background right after
 * its write, not held in memory until later writes fill the budget. Spread
 * over three families, no memtable is full: RocksDB alone would wait. */
Test(storage_db, large_batch_is_flushed_without_further_writes) {
  cs_db *db = open_new(NULL);
  cs_wbatch *b = NULL;
  char key[32], val[1024];
  int n = 0;

  cr_assert_eq(count_sst(dbpath), 0);
  cr_assert_eq(cs__wbatch_new(&b, db), 0);
  memset(val, 'v', sizeof(val));
  for (int i = 0; i < 3 * 1536; i++) { /* 1.5 MiB into each of three families */
    static const cs_cf fams[] = {CS_CF_DOCS, CS_CF_LOG, CS_CF_CHANGES};
    snprintf(key, sizeof(key), "k%06d", i);
    cs__wbatch_put(b, fams[i % 3], key, strlen(key), val, sizeof(val));
  }
  cr_assert_eq(cs__db_write(db, b, false), 0, "%s", cs_errmsg());
  for (int tries = 0; tries < 200 && (n = count_sst(dbpath)) == 0; tries++)
    nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
  cr_expect_gt(n, 0, "no table file 10 s after a 4.5 MiB write");
  cs_buf out = CS_BUF_INIT;
  cr_expect_eq(cs__db_get(&out, db, CS_CF_DOCS, "k000042", 7), 0, "%s", cs_errmsg());
  cr_expect_eq(out.size, sizeof(val));
  cs_buf_dispose(&out);
  cs__wbatch_free(b);
  cs__db_close(db);
}

/* ---- batch atomicity seen by a concurrent reader ---- */

#define ATOM_KEYS 300

struct atom_ctx {
  cs_db *db;
  unsigned rounds;
  volatile int done;
  int rc;
};

static void *atom_writer(void *p) {
  struct atom_ctx *c = p;
  cs_wbatch *b = NULL;
  char key[16], val[24];

  if ((c->rc = cs__wbatch_new(&b, c->db)) != 0)
    goto done;
  for (unsigned n = 1; n <= c->rounds && c->rc == 0; n++) {
    cs__wbatch_clear(b);
    for (int i = 0; i < ATOM_KEYS; i++) {
      snprintf(key, sizeof(key), "k%04d", i);
      snprintf(val, sizeof(val), "%u", n);
      cs__wbatch_put(b, CS_CF_DOCS, key, strlen(key), val, strlen(val));
    }
    c->rc = cs__db_write(c->db, b, false);
  }
done:
  cs__wbatch_free(b);
  c->done = 1;
  return NULL;
}

Test(storage_db, batch_is_all_or_nothing_to_a_concurrent_reader) {
  struct atom_ctx c = {open_new(NULL), st_scale(300), 0, 0};
  pthread_t t;
  unsigned reads = 0, torn = 0, nonempty = 0;

  cr_assert_eq(pthread_create(&t, NULL, atom_writer, &c), 0);
  while (!c.done || reads < 5) {
    cs_iter *it = NULL;
    unsigned first = 0, count = 0;
    /* An iterator reads one implicit snapshot: it must see whole batches only. */
    cr_assert_eq(cs__iter_new(&it, c.db, CS_CF_DOCS, "k", 1, "l", 1), 0, "%s", cs_errmsg());
    for (; cs__iter_valid(it); cs__iter_next(it)) {
      cs_bytes v = cs__iter_value(it);
      char num[24] = {0};
      memcpy(num, v.ptr, v.len < 23 ? v.len : 23);
      unsigned n = (unsigned)strtoul(num, NULL, 10);
      if (count++ == 0)
        first = n;
      else if (n != first)
        torn++;
    }
    cr_assert_eq(cs__iter_status(it), 0);
    cs__iter_free(it);
    cr_expect(count == 0 || count == ATOM_KEYS, "saw %u of %u keys of a batch", count, ATOM_KEYS);
    nonempty += count > 0;
    reads++;
  }
  pthread_join(t, NULL);
  cr_assert_eq(c.rc, 0, "writer: %s", cs_errmsg());
  cr_expect_eq(torn, 0, "%u values from different batches seen in one read", torn);
  cr_expect_gt(nonempty, 0);
  cs__db_close(c.db);
}

Test(storage_db, large_batch_visible_only_after_write) {
  cs_db *db = open_new(NULL);
  cs_wbatch *b = NULL;
  cs_buf out = CS_BUF_INIT, key = CS_BUF_INIT;
  unsigned n = st_scale(20000);

  cr_assert_eq(cs__wbatch_new(&b, db), 0);
  for (unsigned i = 0; i < n; i++) {
    cs__buf_clear(&key);
    cr_assert_eq(cs__key_u64(&key, i), 0);
    cs__wbatch_put(b, CS_CF_OUTBOX, key.ptr, key.size, "v", 1);
  }
  cr_expect_eq(cs__wbatch_count(b), n);
  cr_expect_eq(cs__db_get(&out, db, CS_CF_OUTBOX, key.ptr, key.size), CS_ENOTFOUND);
  cr_assert_eq(cs__db_write(db, b, true), 0);
  cs__buf_clear(&key);
  cs__key_u64(&key, 0);
  cr_expect_eq(cs__db_get(&out, db, CS_CF_OUTBOX, key.ptr, key.size), 0);
  cs__buf_clear(&key);
  cs__key_u64(&key, n - 1);
  cr_expect_eq(cs__db_get(&out, db, CS_CF_OUTBOX, key.ptr, key.size), 0);
  cs_buf_dispose(&out);
  cs_buf_dispose(&key);
  cs__wbatch_free(b);
  cs__db_close(db);
}

Test(storage_db, multi_get_hits_and_misses) {
  cs_db *db = open_new(NULL);
  const char *names[] = {"a", "missing", "b", "", "c", "also-missing"};
  enum { N = 6 };
  cs_bytes keys[N];
  cs_buf out[N] = {CS_BUF_INIT, CS_BUF_INIT, CS_BUF_INIT, CS_BUF_INIT, CS_BUF_INIT, CS_BUF_INIT};
  bool found[N];

  put1(db, CS_CF_DOCS, "a", "value-a");
  put1(db, CS_CF_DOCS, "b", "value-b");
  put1(db, CS_CF_DOCS, "c", "value-c");
  put1(db, CS_CF_BASELINE, "missing", "other family");
  for (int i = 0; i < N; i++)
    keys[i] = (cs_bytes){(const uint8_t *)names[i], strlen(names[i])};
  cs__buf_puts(&out[1], "stale");
  cr_assert_eq(cs__db_multi_get(out, found, db, CS_CF_DOCS, keys, N), 0, "%s", cs_errmsg());
  for (int i = 0; i < N; i++) {
    bool want = i == 0 || i == 2 || i == 4;
    cr_expect_eq(found[i], want, "key '%s'", names[i]);
    if (want) {
      char expect[32];
      snprintf(expect, sizeof(expect), "value-%s", names[i]);
      cr_expect_str_eq(out[i].ptr, expect);
    } else {
      cr_expect_eq(out[i].size, 0, "a miss leaves its buffer empty");
    }
    cs_buf_dispose(&out[i]);
  }
  cr_expect_eq(cs__db_multi_get(out, found, db, CS_CF_DOCS, keys, 0), 0);
  cs__db_close(db);
}

/* Many keys in no order, some in table files, some in the memtable, some
 * absent: each gets its own value (the batched read sorts them itself). */
Test(storage_db, multi_get_of_many_keys_in_any_order) {
  cs_db *db = open_new(NULL);
  enum { N = 3000 };
  static cs_bytes keys[N];
  static char names[N][16];
  static cs_buf out[N];
  static bool found[N];
  cs_wbatch *b = NULL;
  uint64_t seed = st_seed(), rs = seed;

  cr_assert_eq(cs__wbatch_new(&b, db), 0);
  for (int i = 0; i < N; i++) {
    snprintf(names[i], sizeof(names[i]), "k%05d", i);
    if (i % 3 == 0)
      cs__wbatch_put(b, CS_CF_DOCS, names[i], strlen(names[i]), names[i], strlen(names[i]));
  }
  cr_assert_eq(cs__db_write(db, b, false), 0, "%s", cs_errmsg());
  cs__wbatch_free(b);
  cr_assert_eq(cs__db_compact(db, CS_CF_DOCS), 0, "%s", cs_errmsg()); /* into table files */
  for (int i = 1; i < N; i += 3)
    put1(db, CS_CF_DOCS, names[i], names[i]); /* in the memtable */
  for (int i = 0; i < N; i++) {
    keys[i] = (cs_bytes){(const uint8_t *)names[i], strlen(names[i])};
    out[i] = (cs_buf)CS_BUF_INIT;
  }
  for (int i = N - 1; i > 0; i--) { /* shuffle */
    int j = (int)(st_rand(&rs) % (uint64_t)(i + 1));
    cs_bytes t = keys[i];
    keys[i] = keys[j];
    keys[j] = t;
  }
  cr_assert_eq(cs__db_multi_get(out, found, db, CS_CF_DOCS, keys, N), 0, "%s", cs_errmsg());
  for (int i = 0; i < N; i++) {
    int k = atoi((const char *)keys[i].ptr + 1);
    cr_assert_eq(found[i], k % 3 != 2, "seed=%llu: key %.*s", (unsigned long long)seed,
                 (int)keys[i].len, (const char *)keys[i].ptr);
    if (found[i])
      cr_assert(out[i].size == keys[i].len && memcmp(out[i].ptr, keys[i].ptr, keys[i].len) == 0,
                "seed=%llu: key %.*s", (unsigned long long)seed, (int)keys[i].len,
                (const char *)keys[i].ptr);
    else
      cr_assert_eq(out[i].size, 0, "seed=%llu", (unsigned long long)seed);
    cs_buf_dispose(&out[i]);
  }
  cs__db_close(db);
}

/* Property: iteration over a model's change keys yields cursors in numeric
 * order, exactly the keys of that model, within [lower, upper). */
Test(storage_db, iteration_orders_big_endian_keys_within_bounds) {
  uint64_t seed = st_seed(), rs = seed;
  cs_db *db = open_new(NULL);
  cs_wbatch *b = NULL;
  cs_buf key = CS_BUF_INIT, lo = CS_BUF_INIT, hi = CS_BUF_INIT;
  unsigned n = st_scale(2000);
  uint64_t *cur = calloc(n, sizeof(*cur));
  const char *models[] = {"Profile", "Post", "Profile2", "P"};

  cr_assert_eq(cs__wbatch_new(&b, db), 0);
  for (unsigned i = 0; i < n; i++) {
    /* Mix magnitudes so byte-order bugs (little-endian, text) show. */
    uint64_t c = st_rand(&rs) >> (st_rand(&rs) % 64);
    cur[i] = c;
    for (int m = 0; m < 4; m++) {
      cs__buf_clear(&key);
      cr_assert_eq(cs__key_change(&key, models[m], c), 0);
      cs__wbatch_put(b, CS_CF_CHANGES, key.ptr, key.size, models[m], strlen(models[m]));
    }
  }
  cr_assert_eq(cs__db_write(db, b, false), 0);

  /* Expected: distinct cursors sorted, then the window [cur[0], cur[1]). */
  uint64_t a = cur[0], z = cur[n > 1 ? 1 : 0];
  if (a > z) {
    uint64_t t = a;
    a = z;
    z = t;
  }
  cs__key_change(&lo, "Profile", a);
  cs__key_change(&hi, "Profile", z);
  for (int pass = 0; pass < 2; pass++) {
    cs_iter *it = NULL;
    uint64_t prev = 0, seen = 0, want = 0;
    if (pass == 0) /* the whole model: [name, name + 1) as a prefix range */
      cr_assert_eq(cs__iter_new(&it, db, CS_CF_CHANGES, lo.ptr, 2 + 7, "\x00\x07Profilf", 9), 0);
    else
      cr_assert_eq(cs__iter_new(&it, db, CS_CF_CHANGES, lo.ptr, lo.size, hi.ptr, hi.size), 0);
    for (unsigned i = 0; i < n; i++) {
      bool dup = false;
      for (unsigned j = 0; j < i && !dup; j++)
        dup = cur[j] == cur[i];
      if (!dup && (pass == 0 || (cur[i] >= a && cur[i] < z)))
        want++;
    }
    for (; cs__iter_valid(it); cs__iter_next(it)) {
      cs_bytes k = cs__iter_key(it), v = cs__iter_value(it);
      size_t pos = 0;
      char *model = NULL;
      uint64_t c = 0;
      cr_assert_eq(cs__key_read_name(&model, k.ptr, k.len, &pos), 0, "seed %llu",
                   (unsigned long long)seed);
      cr_assert_eq(cs__key_read_u64(&c, k.ptr, k.len, &pos), 0);
      cr_expect_eq(pos, k.len);
      cr_expect_str_eq(model, "Profile", "seed %llu", (unsigned long long)seed);
      cr_expect(v.len == 7 && memcmp(v.ptr, "Profile", 7) == 0);
      cr_expect(seen == 0 || c > prev, "seed %llu: cursor %llu after %llu",
                (unsigned long long)seed, (unsigned long long)c, (unsigned long long)prev);
      prev = c;
      seen++;
      cs__free(model);
    }
    cr_expect_eq(cs__iter_status(it), 0);
    cr_expect_eq(seen, want, "seed %llu pass %d: %llu keys, want %llu", (unsigned long long)seed,
                 pass, (unsigned long long)seen, (unsigned long long)want);
    cs__iter_free(it);
  }

  /* Seek lands on the first key >= target, and never below the lower bound. */
  {
    cs_iter *it = NULL;
    cs_buf k2 = CS_BUF_INIT;
    cr_assert_eq(cs__iter_new(&it, db, CS_CF_OUTBOX, NULL, 0, NULL, 0), 0);
    cr_expect_not(cs__iter_valid(it), "empty family");
    cs__iter_free(it);
    cs_wbatch *b2 = NULL;
    cs__wbatch_new(&b2, db);
    for (uint64_t i = 10; i <= 100; i += 10) {
      cs__buf_clear(&k2);
      cs__key_u64(&k2, i);
      cs__wbatch_put(b2, CS_CF_OUTBOX, k2.ptr, k2.size, "x", 1);
    }
    cr_assert_eq(cs__db_write(db, b2, false), 0);
    cs__buf_clear(&k2);
    cs__key_u64(&k2, 30);
    cr_assert_eq(cs__iter_new(&it, db, CS_CF_OUTBOX, k2.ptr, k2.size, NULL, 0), 0);
    cs__buf_clear(&k2);
    cs__key_u64(&k2, 55);
    cs__iter_seek(it, k2.ptr, k2.size);
    cr_assert(cs__iter_valid(it));
    cr_expect_eq(cs__get_be64(cs__iter_key(it).ptr), 60);
    cs__buf_clear(&k2);
    cs__key_u64(&k2, 0);
    cs__iter_seek(it, k2.ptr, k2.size);
    cr_assert(cs__iter_valid(it));
    cr_expect_eq(cs__get_be64(cs__iter_key(it).ptr), 30);
    unsigned cnt = 0;
    for (; cs__iter_valid(it); cs__iter_next(it))
      cnt++;
    cr_expect_eq(cnt, 8);
    cs__iter_free(it);
    cs__wbatch_free(b2);
    cs_buf_dispose(&k2);
  }
  free(cur);
  cs_buf_dispose(&key);
  cs_buf_dispose(&lo);
  cs_buf_dispose(&hi);
  cs__wbatch_free(b);
  cs__db_close(db);
}

/* ---- space ---- */

Test(storage_db, compaction_returns_space_of_deleted_keys) {
  cs_db *db = open_new(NULL);
  cs_wbatch *b = NULL;
  cs_buf key = CS_BUF_INIT;
  uint64_t seed = st_seed(), rs = seed, full = 0, after = 0, empty0 = 0;
  unsigned n = st_scale(20000);
  uint8_t val[200];

  cr_assert_eq(cs__db_size(&empty0, db), 0, "%s", cs_errmsg());
  cr_assert_eq(cs__wbatch_new(&b, db), 0);
  for (unsigned i = 0; i < n; i++) {
    for (size_t j = 0; j < sizeof(val); j++)
      val[j] = (uint8_t)st_rand(&rs); /* incompressible */
    cs__buf_clear(&key);
    cs__key_log(&key, "Profile", 7, i + 1);
    cs__wbatch_put(b, CS_CF_LOG, key.ptr, key.size, val, sizeof(val));
    if (cs__wbatch_count(b) == 1000 || i + 1 == n) {
      cr_assert_eq(cs__db_write(db, b, false), 0);
      cs__wbatch_clear(b);
    }
  }
  cr_assert_eq(cs__db_compact(db, CS_CF_LOG), 0, "%s", cs_errmsg());
  cr_assert_eq(cs__db_size(&full, db), 0);
  cr_expect_gt(full, (uint64_t)n * sizeof(val) / 2, "size %llu after %u values",
               (unsigned long long)full, n);

  /* GC: delete every log entry, then compact. */
  for (unsigned i = 0; i < n; i++) {
    cs__buf_clear(&key);
    cs__key_log(&key, "Profile", 7, i + 1);
    cs__wbatch_delete(b, CS_CF_LOG, key.ptr, key.size);
    if (cs__wbatch_count(b) == 1000 || i + 1 == n) {
      cr_assert_eq(cs__db_write(db, b, false), 0);
      cs__wbatch_clear(b);
    }
  }
  cr_assert_eq(cs__db_compact(db, CS_CF_LOG), 0);
  cr_assert_eq(cs__db_size(&after, db), 0);
  cr_expect_lt(after, full / 4, "size %llu after deleting all, %llu before",
               (unsigned long long)after, (unsigned long long)full);
  cs_iter *it = NULL;
  cr_assert_eq(cs__iter_new(&it, db, CS_CF_LOG, NULL, 0, NULL, 0), 0);
  cr_expect_not(cs__iter_valid(it));
  cs__iter_free(it);
  cr_expect_eq(cs__db_compact(db, (cs_cf)42), CS_EINVAL);
  cs_buf_dispose(&key);
  cs__wbatch_free(b);
  cs__db_close(db);
}

Test(storage_db, existing_database_opens_without_create_and_with_own_cache) {
  cs_db *db = open_new(NULL);
  put1(db, CS_CF_PEERS, "p", "v");
  cs__db_close(db);
  db = NULL;
  cs_db_options o = CS_DB_OPTIONS_INIT;
  o.create_if_missing = false;
  o.block_cache_bytes = 1u << 20;
  bool moved = false;
  cr_assert_eq(cs__db_open(&db, &moved, dbpath, &o), 0, "%s", cs_errmsg());
  expect_value(db, CS_CF_PEERS, "p", "v");
  cs__db_close(db);
}

Test(storage_db, absent_key_sets_no_message) {
  cs_db *db = open_new(NULL);
  cs_buf v = CS_BUF_INIT;
  cs__buf_puts(&v, "old");
  cs_error_clear();
  cr_expect_eq(cs__db_get(&v, db, CS_CF_DOCS, "nope", 4), CS_ENOTFOUND);
  cr_expect_str_eq(cs_errmsg(), "");
  cr_expect_eq(v.size, 0, "the output is emptied");
  cr_expect_eq(cs__db_get(&v, db, (cs_cf)-1, "nope", 4), CS_EINVAL);
  cr_expect(strstr(cs_errmsg(), "no column family") != NULL, "%s", cs_errmsg());
  cs_buf_dispose(&v);
  cs__db_close(db);
}

/* ---- several threads on one cs_db ---- */

static void *mt_worker(void *p) {
  struct st_worker *c = p;
  cs_wbatch *b = NULL;
  cs_buf k = CS_BUF_INIT, v = CS_BUF_INIT;
  char val[32];

  if ((c->rc = cs__wbatch_new(&b, c->db)) != 0)
    return NULL;
  for (unsigned i = 0; i < c->n && c->rc == 0; i++) {
    cs__buf_clear(&k);
    cs__key_log(&k, "M", c->id, i);
    snprintf(val, sizeof(val), "%u:%u", c->id, i);
    cs__wbatch_clear(b);
    cs__wbatch_put(b, CS_CF_LOG, k.ptr, k.size, val, strlen(val));
    if ((c->rc = cs__db_write(c->db, b, i % 50 == 0)) != 0)
      break;
    /* Read back own write and someone else's key (present or not). */
    if ((c->rc = cs__db_get(&v, c->db, CS_CF_LOG, k.ptr, k.size)) != 0)
      break;
    if (strcmp(v.ptr, val) != 0)
      c->rc = CS_EINTERNAL;
    cs__buf_clear(&k);
    cs__key_log(&k, "M", (c->id + 1) % 4, i);
    int rc = cs__db_get(&v, c->db, CS_CF_LOG, k.ptr, k.size);
    if (rc != 0 && rc != CS_ENOTFOUND)
      c->rc = rc;
  }
  cs__wbatch_free(b);
  cs_buf_dispose(&k);
  cs_buf_dispose(&v);
  return NULL;
}

Test(storage_db, one_database_serves_several_threads) {
  cs_db *db = open_new(NULL);
  unsigned n = st_scale(2000);

  st_run_workers(db, n, mt_worker);
  /* Every write of every thread, in key order: origin-major, counter-minor. */
  cs_iter *it = NULL;
  cs_buf lo = CS_BUF_INIT;
  cs__key_name(&lo, "M");
  cr_assert_eq(cs__iter_new(&it, db, CS_CF_LOG, lo.ptr, lo.size, NULL, 0), 0);
  unsigned seen = 0;
  for (; cs__iter_valid(it); cs__iter_next(it), seen++) {
    cs_bytes k = cs__iter_key(it);
    size_t pos = 3;
    uint64_t origin, first;
    cr_assert_eq(cs__key_read_u64(&origin, k.ptr, k.len, &pos), 0);
    cr_assert_eq(cs__key_read_u64(&first, k.ptr, k.len, &pos), 0);
    cr_expect_eq(origin, seen / n);
    cr_expect_eq(first, seen % n);
  }
  cr_expect_eq(seen, 4 * n);
  cs__iter_free(it);
  cs_buf_dispose(&lo);
  cs__db_close(db);
}

/* In a thread of its own (RocksDB's default level counts): writes, reads
 * and iterates, then reads the thread's comparison counter. */
static void *counted_ops(void *arg) {
  cs_db *db = arg;
  rocksdb_perfcontext_t *pc = rocksdb_perfcontext_create();
  cs_wbatch *b = NULL;
  cs_buf v = CS_BUF_INIT;
  cs_iter *it = NULL;
  uint64_t *compared = malloc(sizeof(*compared));
  char key[16];
  rocksdb_perfcontext_reset(pc);
  cr_assert_eq(cs__wbatch_new(&b, db), 0);
  for (int i = 0; i < 100; i++) {
    snprintf(key, sizeof(key), "k%03d", i);
    cs__wbatch_put(b, CS_CF_META, key, strlen(key), "v", 1);
  }
  cr_assert_eq(cs__db_write(db, b, false), 0);
  cr_assert_eq(cs__db_get(&v, db, CS_CF_META, "k050", 4), 0);
  cr_assert_eq(cs__iter_new(&it, db, CS_CF_META, "k", 1, NULL, 0), 0);
  cs__iter_seek(it, "k020", 4);
  cr_assert(cs__iter_valid(it));
  *compared = rocksdb_perfcontext_metric(pc, rocksdb_user_key_comparison_count);
  cs__iter_free(it);
  cs__wbatch_free(b);
  cs_buf_dispose(&v);
  rocksdb_perfcontext_destroy(pc);
  return compared;
}

Test(storage_db, reads_and_writes_leave_rocksdb_perf_counters_off) {
  cs_db *db = open_new(NULL);
  pthread_t th;
  void *got;
  cr_assert_eq(pthread_create(&th, NULL, counted_ops, db), 0);
  cr_assert_eq(pthread_join(th, &got), 0);
  cr_expect_eq(*(uint64_t *)got, 0, "%llu key comparisons counted",
               (unsigned long long)*(uint64_t *)got);
  free(got);
  cs__db_close(db);
}

Test(storage_db, delete_range_removes_exactly_the_range) {
  cs_db *db = open_new(NULL);
  cs_wbatch *b = NULL;
  cs_buf out = CS_BUF_INIT;
  uint8_t k[8], lo[8], hi[8];

  cr_assert_eq(cs__wbatch_new(&b, db), 0);
  for (uint64_t i = 1; i <= 100; i++) {
    cs__put_be64(k, i);
    cs__wbatch_put(b, CS_CF_OUTBOX, k, 8, "v", 1);
  }
  cr_assert_eq(cs__db_write(db, b, false), 0);
  cs__wbatch_clear(b);
  cs__put_be64(lo, 10);
  cs__put_be64(hi, 20);
  cs__wbatch_delete_range(b, CS_CF_OUTBOX, lo, 8, hi, 8);
  cr_assert_eq(cs__db_write(db, b, false), 0, "%s", cs_errmsg());
  for (uint64_t i = 1; i <= 100; i++) {
    cs__put_be64(k, i);
    int rc = cs__db_get(&out, db, CS_CF_OUTBOX, k, 8);
    cr_expect_eq(rc, i >= 10 && i < 20 ? CS_ENOTFOUND : 0, "key %llu", (unsigned long long)i);
    cs__buf_clear(&out);
  }
  cs_buf_dispose(&out);
  cs__wbatch_free(b);
  cs__db_close(db);
}

/* A damaged table file is reported as corrupt data, not as an I/O failure. */
Test(storage_db, damaged_table_file_is_corrupt) {
  cs_db *db = open_new(NULL);
  cs_wbatch *b = NULL;
  char key[32], val[256], cmd[700];
  cs_buf out = CS_BUF_INIT;
  int rc = 0;

  memset(val, 'v', sizeof(val));
  cr_assert_eq(cs__wbatch_new(&b, db), 0);
  for (int i = 0; i < 2000; i++) {
    snprintf(key, sizeof(key), "key%06d", i);
    cs__wbatch_put(b, CS_CF_DOCS, key, strlen(key), val, sizeof(val));
  }
  cr_assert_eq(cs__db_write(db, b, true), 0);
  cs__wbatch_free(b);
  cr_assert_eq(cs__db_compact(db, CS_CF_DOCS), 0, "%s", cs_errmsg());
  cs__db_close(db);
  /* overwrite a run of bytes in the middle of every table file */
  snprintf(
      cmd, sizeof(cmd),
      "for f in '%s'/*.sst; do s=$(stat -c %%s \"$f\"); "
      "printf 'XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX' | dd of=\"$f\" bs=1 seek=$((s/3)) conv=notrunc "
      "2>/dev/null; done",
      dbpath);
  cr_assert_eq(system(cmd), 0);
  bool moved;
  rc = cs__db_open(&db, &moved, dbpath, NULL);
  if (rc == 0) {
    for (int i = 0; i < 2000 && rc == 0; i++) {
      snprintf(key, sizeof(key), "key%06d", i);
      rc = cs__db_get(&out, db, CS_CF_DOCS, key, strlen(key));
      cs__buf_clear(&out);
    }
    cs__db_close(db);
  }
  cr_expect_eq(rc, CS_ECORRUPT, "got %d: %s", rc, cs_errmsg());
  cr_expect(strstr(cs_errmsg(), "Corruption") != NULL, "%s", cs_errmsg());
  cs_buf_dispose(&out);
}
