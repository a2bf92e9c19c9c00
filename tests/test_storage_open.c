/* Opening a database: the errors of a bad path or options, the format
 * version rule, and copies of a database moved from their home. */
#include "test_storage_db.h"

#include <sys/stat.h>

TestSuite(storage_db, .init = setup, .fini = teardown);

/* ---- error paths ---- */

Test(storage_db, missing_database_without_create_is_not_found) {
  cs_db *db = (cs_db *)1;
  bool moved = true;
  cs_db_options o = CS_DB_OPTIONS_INIT;
  o.create_if_missing = false;
  cr_expect_eq(cs__db_open(&db, &moved, dbpath, &o), CS_ENOTFOUND);
  cr_expect_null(db);
  cr_expect(strstr(cs_errmsg(), "no database") && strstr(cs_errmsg(), dbpath), "%s", cs_errmsg());
  /* An empty directory is not a database either. */
  cr_assert_eq(mkdir(dbpath, 0700), 0);
  cr_expect_eq(cs__db_open(&db, &moved, dbpath, &o), CS_ENOTFOUND);
  cr_expect(strstr(cs_errmsg(), "CURRENT") != NULL, "%s", cs_errmsg());
  /* Nothing was created by the refused opens. */
  struct stat st;
  char cur[400];
  snprintf(cur, sizeof(cur), "%s/CURRENT", dbpath);
  cr_expect_neq(stat(cur, &st), 0);
}

Test(storage_db, path_that_is_a_file_is_refused) {
  cs_db *db = NULL;
  bool moved = false;
  FILE *f = fopen(dbpath, "w");
  cr_assert_not_null(f);
  fputs("not a database", f);
  fclose(f);
  cr_expect_eq(cs__db_open(&db, &moved, dbpath, NULL), CS_EIO);
  cr_expect(strstr(cs_errmsg(), "not a directory") != NULL, "%s", cs_errmsg());
  cr_expect_null(db);

  /* Below a regular file nothing can be created (tests run as root, so
   * permissions would not stop it). */
  char below[400];
  snprintf(below, sizeof(below), "%s/db", dbpath);
  cr_expect_eq(cs__db_open(&db, &moved, below, NULL), CS_EIO);
  cr_expect(strstr(cs_errmsg(), below) && strstr(cs_errmsg(), "Not a directory"), "%s",
            cs_errmsg());
  cs_db_options o = CS_DB_OPTIONS_INIT;
  o.create_if_missing = false;
  cr_expect_eq(cs__db_open(&db, &moved, below, &o), CS_ENOTFOUND);
}

Test(storage_db, bad_options_and_double_open) {
  cs_db *db = NULL, *db2 = NULL;
  bool moved = false;
  cs_db_options o = CS_DB_OPTIONS_INIT;
  o.version = 99;
  cr_expect_eq(cs__db_open(&db, &moved, dbpath, &o), CS_EINVAL);
  cr_expect(strstr(cs_errmsg(), "version 99") != NULL, "%s", cs_errmsg());
  cr_expect_eq(cs__db_open(&db, &moved, "", NULL), CS_EINVAL);

  db = open_new(NULL);
  /* RocksDB's LOCK file: a second open of a live database fails with its text. */
  cr_expect_eq(cs__db_open(&db2, &moved, dbpath, NULL), CS_EIO);
  cr_expect(strstr(cs_errmsg(), "rocksdb open") && strstr(cs_errmsg(), "LOCK"), "%s", cs_errmsg());
  cr_expect_null(db2);
  cs__db_close(db);
}

Test(storage_db, newer_format_is_refused) {
  cs_db *db = open_new(NULL);
  cs_buf v = CS_BUF_INIT;
  bool moved;
  cr_assert_eq(cs__db_get(&v, db, CS_CF_META, "format", 6), 0);
  cr_expect_eq(v.size, 4);
  cr_expect_eq(cs__get_be32((const uint8_t *)v.ptr), CS_STORAGE_FORMAT);
  uint8_t be[4];
  cs__put_be32(be, CS_STORAGE_FORMAT + 1);
  cs_wbatch *b = NULL;
  cs__wbatch_new(&b, db);
  cs__wbatch_put(b, CS_CF_META, "format", 6, be, 4);
  cr_assert_eq(cs__db_write(db, b, true), 0);
  cs__db_close(db);
  db = NULL;
  cr_expect_eq(cs__db_open(&db, &moved, dbpath, NULL), CS_EVERSION);
  cr_expect(strstr(cs_errmsg(), "storage format 5; this build reads up to 4") != NULL, "%s",
            cs_errmsg());
  cr_expect_null(db);
  cs__wbatch_free(b);
  cs_buf_dispose(&v);
}

/* A database of an older format is read as it is and marked with this
 * build's at open, so that builds that read only the older format leave it
 * alone afterwards. */
static void raise_from(uint32_t old) {
  cs_db *db = open_new(NULL);
  cs_buf v = CS_BUF_INIT;
  cs_wbatch *b = NULL;
  uint8_t be[4];
  bool moved;
  cs__put_be32(be, old);
  cr_assert_eq(cs__wbatch_new(&b, db), 0);
  cs__wbatch_put(b, CS_CF_META, "format", 6, be, 4);
  cs__wbatch_put(b, CS_CF_META, "kept", 4, "yes", 3);
  cr_assert_eq(cs__db_write(db, b, true), 0);
  cs__wbatch_free(b);
  cs__db_close(db);
  db = NULL;
  cr_assert_eq(cs__db_open(&db, &moved, dbpath, NULL), 0, "%s", cs_errmsg());
  cr_assert_eq(cs__db_get(&v, db, CS_CF_META, "format", 6), 0);
  cr_expect_eq(cs__get_be32((const uint8_t *)v.ptr), CS_STORAGE_FORMAT, "from %u", old);
  cs__buf_clear(&v);
  cr_assert_eq(cs__db_get(&v, db, CS_CF_META, "kept", 4), 0);
  cr_expect_eq(v.size, 3, "the rest is untouched");
  cs__db_close(db);
  cs_buf_dispose(&v);
}

Test(storage_db, format_1_is_raised_at_open) { raise_from(1); }
Test(storage_db, format_2_is_raised_at_open) { raise_from(2); }
Test(storage_db, format_3_is_raised_at_open) { raise_from(3); }

/* ---- home / moved copies ---- */

Test(storage_db, copy_of_the_directory_is_detected_as_moved) {
  bool moved = false;
  char copy[400], cmd[1000];
  cs_db *db = open_new(&moved);
  cr_expect(moved);
  cr_assert_eq(cs__db_mark_home(db), 0, "%s", cs_errmsg());
  put1(db, CS_CF_DOCS, "doc", "state");
  cs__db_close(db);

  snprintf(copy, sizeof(copy), "%s/copy", dir);
  snprintf(cmd, sizeof(cmd), "cp -a '%s' '%s'", dbpath, copy);
  cr_assert_eq(system(cmd), 0);

  cr_assert_eq(cs__db_open(&db, &moved, copy, NULL), 0, "%s", cs_errmsg());
  cr_expect(moved, "a cp -a copy must not pass for the original");
  expect_value(db, CS_CF_DOCS, "doc", "state");
  /* Once the engine re-marks it (with a new identity), the copy is home. */
  cr_assert_eq(cs__db_mark_home(db), 0);
  cs__db_close(db);
  cr_assert_eq(cs__db_open(&db, &moved, copy, NULL), 0);
  cr_expect_not(moved);
  cs__db_close(db);

  cr_assert_eq(cs__db_open(&db, &moved, dbpath, NULL), 0);
  cr_expect_not(moved, "the original stays home");
  cs__db_close(db);
}

Test(storage_db, corrupt_home_value_is_corrupt) {
  bool moved = false;
  cs_db *db = open_new(&moved);
  put1(db, CS_CF_META, "home", "short");
  cs__db_close(db);
  db = NULL;
  cr_expect_eq(cs__db_open(&db, &moved, dbpath, NULL), CS_ECORRUPT);
  cr_expect(strstr(cs_errmsg(), "'home'") != NULL, "%s", cs_errmsg());
}
