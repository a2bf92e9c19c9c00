/*
 * Opening and closing the RocksDB database of a store: options, column
 * families, the format version and the home (moved-copy) check.
 * docs/storage-format.md is the contract for everything written here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "storage/storage_int.h"

/* What cs__db_open writes as meta "format"; newer ones are refused. */
#define FORMAT_KEY "format"
#define HOME_KEY "home"

/* RocksDB's own default LRU capacity, here one cache shared by all families. */
#define DEFAULT_CACHE_BYTES (8u << 20)

int cs__db_rocks_error(const cs_db *db, const char *op, int cf, char *err) {
  const char *fam = cf < 0 ? "(all)" : cs__cf_name((cs_cf)cf);
  /* RocksDB reports damaged files (checksum mismatches) as "Corruption: ...":
   * callers branch on corrupt data, not on an I/O failure. */
  int code = err && strncmp(err, "Corruption:", 11) == 0 ? CS_ECORRUPT : CS_EIO;
  int rc = cs__error(code, "rocksdb %s, family '%s', database '%s': %s", op, fam,
                     db && db->path ? db->path : "?", err ? err : "unknown error");
  rocksdb_free(err);
  return rc;
}

const char *cs__db_path(const cs_db *db) {
  return db->path;
}

/* Table options: one shared cache; a bloom filter where point lookups dominate. */
static rocksdb_options_t *family_options(cs_db *db, int bloom, int compression) {
  rocksdb_options_t *o = rocksdb_options_create();
  rocksdb_block_based_table_options_t *t = rocksdb_block_based_options_create();

  rocksdb_block_based_options_set_block_cache(t, db->cache);
  if (bloom)
    rocksdb_block_based_options_set_filter_policy(t, rocksdb_filterpolicy_create_bloom_full(10));
  rocksdb_options_set_block_based_table_factory(o, t);
  db->table_opts[bloom] = t;
  rocksdb_options_set_compression(o, compression);
  /* Small memtables: an embedded store has eight families and little RAM. */
  rocksdb_options_set_write_buffer_size(o, CS_MEMTABLE_BYTES);
  return o;
}

static void db_options_set(cs_db *db, const cs_db_options *opts, int compression) {
  size_t cache = opts->block_cache_bytes ? opts->block_cache_bytes : DEFAULT_CACHE_BYTES;

  db->cache = rocksdb_cache_create_lru(cache);
  db->cf_opts[0] = family_options(db, 0, compression);
  db->cf_opts[1] = family_options(db, 1, compression);
  /* The database-wide options double as those of families that are not ours. */
  db->opts = rocksdb_options_create_copy(db->cf_opts[0]);
  rocksdb_options_set_create_if_missing(db->opts, opts->create_if_missing);
  rocksdb_options_set_create_missing_column_families(db->opts, 1);
  rocksdb_options_set_max_background_jobs(db->opts, 2);
  /* Point-in-time recovery: after a crash the database is a prefix of the
   * acknowledged writes, never a state with a hole in the middle. */
  rocksdb_options_set_wal_recovery_mode(db->opts, 2);
  /* Rarely written families (meta, peers) would otherwise pin old WAL files. */
  rocksdb_options_set_max_total_wal_size(db->opts, 64u << 20);
  rocksdb_options_set_db_write_buffer_size(db->opts, 16u << 20);
  rocksdb_options_set_keep_log_file_num(db->opts, 4);
  /* Each open file (the WAL, a table being flushed) buffered 1 MiB. */
  rocksdb_options_set_writable_file_max_buffer_size(db->opts, 256u << 10);
  rocksdb_options_set_max_log_file_size(db->opts, 1u << 20);
}

static void db_options_free(cs_db *db) {
  for (int i = 0; i < 2; i++) {
    if (db->cf_opts[i])
      rocksdb_options_destroy(db->cf_opts[i]);
    if (db->table_opts[i])
      rocksdb_block_based_options_destroy(db->table_opts[i]);
    db->cf_opts[i] = NULL;
    db->table_opts[i] = NULL;
  }
  if (db->opts)
    rocksdb_options_destroy(db->opts);
  if (db->cache)
    rocksdb_cache_destroy(db->cache);
  db->opts = NULL;
  db->cache = NULL;
}

static int cf_index(const char *name) {
  for (int i = 0; i < CS_CF__COUNT; i++)
    if (strcmp(name, cs__cf_name((cs_cf)i)) == 0)
      return i;
  return -1;
}

/*
 * Opens with our families plus every family RocksDB lists (it refuses an open
 * that omits one). *out_err gets RocksDB's message on failure.
 */
static int open_families(cs_db *db, bool exists, char **out_err) {
  char **listed = NULL, *err = NULL;
  size_t nlisted = 0, n = 0;
  const char **names = NULL;
  const rocksdb_options_t **fopts = NULL;
  rocksdb_column_family_handle_t **handles = NULL;
  int rc = 0;

  *out_err = NULL;
  if (exists) {
    listed = rocksdb_list_column_families(db->opts, db->path, &nlisted, &err);
    if (err) {
      rc = cs__db_rocks_error(db, "list column families", -1, err);
      goto done;
    }
  }
  names = cs__calloc(CS_CF__COUNT + nlisted + 1, sizeof(*names));
  fopts = cs__calloc(CS_CF__COUNT + nlisted + 1, sizeof(*fopts));
  handles = cs__calloc(CS_CF__COUNT + nlisted + 1, sizeof(*handles));
  if (!names || !fopts || !handles) {
    rc = CS_ENOMEM;
    goto done;
  }
  for (int i = 0; i < CS_CF__COUNT; i++) {
    names[n] = cs__cf_name((cs_cf)i);
    fopts[n++] = db->cf_opts[i == CS_CF_DOCS || i == CS_CF_BASELINE];
  }
  if (!exists) {
    names[n] = "default";
    fopts[n++] = db->opts;
  }
  for (size_t i = 0; i < nlisted; i++) {
    if (cf_index(listed[i]) >= 0)
      continue;
    names[n] = listed[i];
    fopts[n++] = db->opts;
  }
  db->rdb = rocksdb_open_column_families(db->opts, db->path, (int)n, names, fopts, handles, &err);
  if (err) {
    *out_err = err;
    rc = CS_EIO;
    goto done;
  }
  for (int i = 0; i < CS_CF__COUNT; i++)
    db->cf[i] = handles[i];
  db->nextra = n - CS_CF__COUNT;
  if (db->nextra) {
    if (!(db->extra = cs__calloc(db->nextra, sizeof(*db->extra)))) {
      rc = CS_ENOMEM;
      goto done;
    }
    memcpy(db->extra, handles + CS_CF__COUNT, db->nextra * sizeof(*db->extra));
  }
done:
  if (rc == CS_ENOMEM && db->rdb) {
    for (size_t i = 0; i < n; i++)
      rocksdb_column_family_handle_destroy(handles[i]);
    memset(db->cf, 0, sizeof(db->cf));
    db->nextra = 0;
    rocksdb_close(db->rdb);
    db->rdb = NULL;
  }
  if (listed)
    rocksdb_list_column_families_destroy(listed, nlisted);
  cs__free(names);
  cs__free(fopts);
  cs__free(handles);
  return rc;
}

/* Writes the format on a new database; refuses newer formats. */
static int check_format(cs_db *db) {
  cs_buf v = CS_BUF_INIT;
  uint8_t be[4];
  uint32_t fmt;
  int rc = cs__db_get(&v, db, CS_CF_META, FORMAT_KEY, strlen(FORMAT_KEY));

  if (rc == CS_ENOTFOUND) {
    /* New database (or one that crashed before its first write finished). */
    cs__put_be32(be, CS_STORAGE_FORMAT);
    cs_wbatch *b = NULL;
    if ((rc = cs__wbatch_new(&b, db)) != 0)
      goto done;
    cs__wbatch_put(b, CS_CF_META, FORMAT_KEY, strlen(FORMAT_KEY), be, 4);
    rc = cs__db_write(db, b, true);
    cs__wbatch_free(b);
    goto done;
  }
  if (rc)
    goto done;
  if (v.size != 4) {
    rc = cs__error(CS_ECORRUPT, "database '%s': meta 'format' is %zu bytes, expected 4", db->path,
                   v.size);
    goto done;
  }
  fmt = cs__get_be32((const uint8_t *)v.ptr);
  if (fmt > CS_STORAGE_FORMAT) {
    rc = cs__error(CS_EVERSION, "database '%s' has storage format %u; this build reads up to %u",
                   db->path, fmt, CS_STORAGE_FORMAT);
  } else if (fmt == 0) {
    rc = cs__error(CS_ECORRUPT, "database '%s': meta 'format' is 0", db->path);
  } else if (fmt < CS_STORAGE_FORMAT) {
    /* Every older layout is still read: raising the number is the whole
     * migration. It keeps older builds, which could not read what this one
     * writes, from opening the database afterwards. */
    cs_wbatch *b = NULL;
    cs__put_be32(be, CS_STORAGE_FORMAT);
    if ((rc = cs__wbatch_new(&b, db)) == 0) {
      cs__wbatch_put(b, CS_CF_META, FORMAT_KEY, strlen(FORMAT_KEY), be, 4);
      rc = cs__db_write(db, b, true);
    }
    cs__wbatch_free(b);
  }
done:
  cs_buf_dispose(&v);
  return rc;
}

static int home_encode(uint8_t out[16], const char *path) {
  struct stat st;
  if (stat(path, &st) != 0)
    return cs__error(CS_EIO, "stat '%s': %s", path, strerror(errno));
  cs__put_be64(out, (uint64_t)st.st_dev);
  cs__put_be64(out + 8, (uint64_t)st.st_ino);
  return 0;
}

static int check_home(bool *out_moved, cs_db *db) {
  cs_buf v = CS_BUF_INIT;
  uint8_t here[16];
  int rc;

  *out_moved = true;
  if ((rc = home_encode(here, db->path)) != 0)
    goto done;
  rc = cs__db_get(&v, db, CS_CF_META, HOME_KEY, strlen(HOME_KEY));
  if (rc == CS_ENOTFOUND) {
    rc = 0; /* never marked: new, or made by a tool that did not claim it */
    goto done;
  }
  if (rc)
    goto done;
  if (v.size != 16) {
    rc = cs__error(CS_ECORRUPT, "database '%s': meta 'home' is %zu bytes, expected 16", db->path,
                   v.size);
    goto done;
  }
  *out_moved = memcmp(v.ptr, here, 16) != 0;
done:
  cs_buf_dispose(&v);
  return rc;
}

int cs__db_mark_home(cs_db *db) {
  uint8_t here[16];
  cs_wbatch *b = NULL;
  int rc;

  if ((rc = home_encode(here, db->path)) != 0)
    goto done;
  if ((rc = cs__wbatch_new(&b, db)) != 0)
    goto done;
  cs__wbatch_put(b, CS_CF_META, HOME_KEY, strlen(HOME_KEY), here, sizeof(here));
  rc = cs__db_write(db, b, true);
done:
  cs__wbatch_free(b);
  return rc;
}

/* Classifies the path before RocksDB does, for errors a person can act on. */
static int check_path(bool *out_exists, const char *path, bool create) {
  struct stat st;
  char *current = NULL;
  int rc = 0;

  *out_exists = false;
  if (stat(path, &st) != 0) {
    if ((errno == ENOENT || errno == ENOTDIR) && !create)
      return cs__error(CS_ENOTFOUND, "no database at '%s' (and create_if_missing is off)", path);
    if (errno != ENOENT)
      return cs__error(CS_EIO, "database path '%s': %s", path, strerror(errno));
    if (mkdir(path, 0700) != 0)
      return cs__error(CS_EIO, "creating database directory '%s': %s", path, strerror(errno));
    return 0;
  }
  if (!S_ISDIR(st.st_mode))
    return cs__error(CS_EIO, "database path '%s' exists and is not a directory", path);
  if (!(current = cs__malloc(strlen(path) + sizeof("/CURRENT"))))
    return CS_ENOMEM;
  sprintf(current, "%s/CURRENT", path);
  *out_exists = stat(current, &st) == 0;
  if (!*out_exists && !create)
    rc = cs__error(CS_ENOTFOUND, "no database in '%s' (no CURRENT file; create_if_missing is off)",
                   path);
  cs__free(current);
  return rc;
}

static void db_free(cs_db *db) {
  if (!db)
    return;
  for (int i = 0; i < CS_CF__COUNT; i++)
    if (db->cf[i])
      rocksdb_column_family_handle_destroy(db->cf[i]);
  for (size_t i = 0; i < db->nextra; i++)
    rocksdb_column_family_handle_destroy(db->extra[i]);
  if (db->rdb)
    rocksdb_close(db->rdb);
  if (db->ropts)
    rocksdb_readoptions_destroy(db->ropts);
  if (db->wopts_sync)
    rocksdb_writeoptions_destroy(db->wopts_sync);
  if (db->wopts_fast)
    rocksdb_writeoptions_destroy(db->wopts_fast);
  db_options_free(db);
  cs__free(db->extra);
  cs__free(db->path);
  cs__free(db);
}

int cs__db_open(cs_db **out, bool *out_moved, const char *path, const cs_db_options *opts) {
  static const cs_db_options defaults = CS_DB_OPTIONS_INIT;
  cs_db *db = NULL;
  char *err = NULL;
  bool exists = false;
  int rc;

  *out = NULL;
  *out_moved = false;
  if (!opts)
    opts = &defaults;
  if (opts->version == 0 || opts->version > CS_DB_OPTIONS_VERSION) {
    rc = cs__error(CS_EINVAL, "cs_db_options version %u: this build knows 1..%u", opts->version,
                   CS_DB_OPTIONS_VERSION);
    goto done;
  }
  if (!path || !*path) {
    rc = cs__error(CS_EINVAL, "database path is empty");
    goto done;
  }
  if ((rc = check_path(&exists, path, opts->create_if_missing)) != 0)
    goto done;
  if (!(db = cs__calloc(1, sizeof(*db))) || !(db->path = cs__strdup(path))) {
    rc = CS_ENOMEM;
    goto done;
  }
  db_options_set(db, opts, rocksdb_lz4_compression);
  rc = open_families(db, exists, &err);
  if (rc == CS_EIO && err && strstr(err, "ompression")) {
    /* This RocksDB build lacks LZ4: store uncompressed rather than fail. */
    rocksdb_free(err);
    db_options_free(db);
    db_options_set(db, opts, rocksdb_no_compression);
    rc = open_families(db, exists, &err);
  }
  if (rc == CS_EIO && err) {
    rc = cs__db_rocks_error(db, "open", -1, err);
    goto done;
  }
  if (rc)
    goto done;
  db->ropts = rocksdb_readoptions_create();
  db->wopts_sync = rocksdb_writeoptions_create();
  rocksdb_writeoptions_set_sync(db->wopts_sync, 1);
  db->wopts_fast = rocksdb_writeoptions_create();
  if ((rc = check_format(db)) != 0 || (rc = check_home(out_moved, db)) != 0)
    goto done;
  *out = db;
  db = NULL;
done:
  db_free(db);
  return rc;
}

void cs__db_close(cs_db *db) {
  db_free(db);
}
