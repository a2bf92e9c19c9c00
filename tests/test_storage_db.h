/* The fixture of the storage_db tests: a scratch directory per test and
 * a database path inside it, with small helpers. Included by one test
 * program each (the definitions are static). */
#ifndef CS_TEST_STORAGE_DB_H
#define CS_TEST_STORAGE_DB_H

#include "test_storage_util.h"

#include <criterion/criterion.h>
#include <pthread.h>

static char dir[256];
static char dbpath[300];

static void setup(void) {
  st_tmpdir(dir, sizeof(dir));
  snprintf(dbpath, sizeof(dbpath), "%s/db", dir);
}
static void teardown(void) {
  st_rmtree(dir);
}

static inline cs_db *open_new(bool *moved) {
  cs_db *db = NULL;
  bool m = false;
  int rc = cs__db_open(&db, &m, dbpath, NULL);
  cr_assert_eq(rc, 0, "open '%s': %s", dbpath, cs_errmsg());
  if (moved)
    *moved = m;
  return db;
}

/* What each of st_run_workers' threads gets: its id, the work size n, and
 * where it leaves its result. */
struct st_worker {
  cs_db *db;
  unsigned id, n;
  int rc;
};

/* Runs worker on four threads over one database and expects each to end
 * with rc 0. */
static inline void st_run_workers(cs_db *db, unsigned n, void *(*worker)(void *)) {
  pthread_t t[4];
  struct st_worker c[4];
  for (unsigned i = 0; i < 4; i++) {
    c[i] = (struct st_worker){db, i, n, 0};
    cr_assert_eq(pthread_create(&t[i], NULL, worker, &c[i]), 0);
  }
  for (unsigned i = 0; i < 4; i++) {
    pthread_join(t[i], NULL);
    cr_expect_eq(c[i].rc, 0, "thread %u: %d", i, c[i].rc);
  }
}

static inline void put1(cs_db *db, cs_cf cf, const char *k, const char *v) {
  cs_wbatch *b = NULL;
  cr_assert_eq(cs__wbatch_new(&b, db), 0);
  cs__wbatch_put(b, cf, k, strlen(k), v, strlen(v));
  cr_assert_eq(cs__db_write(db, b, false), 0, "%s", cs_errmsg());
  cs__wbatch_free(b);
}

static inline void expect_value(cs_db *db, cs_cf cf, const char *k, const char *v) {
  cs_buf out = CS_BUF_INIT;
  int rc = cs__db_get(&out, db, cf, k, strlen(k));
  cr_expect_eq(rc, 0, "get %s/%s: %d %s", cs__cf_name(cf), k, rc, cs_errmsg());
  if (rc == 0)
    cr_expect_str_eq(out.ptr, v);
  cs_buf_dispose(&out);
}

#endif /* CS_TEST_STORAGE_DB_H */
