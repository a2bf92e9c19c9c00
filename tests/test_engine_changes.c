/* The change index (core/changes.c): one entry per flush listing the
 * documents it wrote, entries of the older one-name layout, names left
 * behind by later writes (skipped by pulls, trimmed by cleanup), and entries
 * that do not decode. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine.h"
#include "tests/helpers/testutil.h"

static char *dir;
static void setup(void) {
  dir = tu_tempdir();
}
static void teardown(void) {
  tu_rmrf(dir);
  free(dir);
}

TestSuite(engine_changes, .init = setup, .fini = teardown);

#define MAXE 64
#define MAXN 64

/* Model M's change index as read back: entries in cursor order. */
typedef struct entry {
  uint64_t cursor;
  bool single; /* the layout before format 3 */
  size_t n;
  char *names[MAXN];
} entry;

typedef struct chg_index {
  size_t n;
  entry e[MAXE];
} chg_index;

static void index_read(chg_index *out, cs_store *s) {
  cs_buf lo = CS_BUF_INIT;
  cs_iter *it = NULL;
  memset(out, 0, sizeof(*out));
  cr_assert_eq(cs__key_name(&lo, "M"), 0);
  cr_assert_eq(cs__iter_new(&it, s->db, CS_CF_CHANGES, lo.ptr, lo.size, NULL, 0), 0);
  for (; cs__iter_valid(it); cs__iter_next(it)) {
    cs_bytes k = cs__iter_key(it), v = cs__iter_value(it);
    cs_change_cursor c;
    char *name;
    int rc;
    cr_assert_lt(out->n, MAXE);
    entry *e = &out->e[out->n++];
    cr_assert_eq(k.len, lo.size + 8);
    e->cursor = cs__get_be64(k.ptr + lo.size);
    cr_assert_eq(cs__change_cursor_init(&c, v.ptr, v.len), 0, "%s", cs_errmsg());
    e->single = c.single;
    while ((rc = cs__change_cursor_next(&name, &c)) == 1) {
      cr_assert_lt(e->n, MAXN);
      e->names[e->n++] = name;
    }
    cr_assert_eq(rc, 0, "%s", cs_errmsg());
  }
  cr_assert_eq(cs__iter_status(it), 0);
  cs__iter_free(it);
  cs_buf_dispose(&lo);
}

static void index_dispose(chg_index *x) {
  for (size_t i = 0; i < x->n; i++)
    for (size_t j = 0; j < x->e[i].n; j++)
      free(x->e[i].names[j]);
}

/* How many times the index lists `name`. */
static size_t listed(const chg_index *x, const char *name) {
  size_t n = 0;
  for (size_t i = 0; i < x->n; i++)
    for (size_t j = 0; j < x->e[i].n; j++)
      n += strcmp(x->e[i].names[j], name) == 0;
  return n;
}

/* The change cursor stored with the document (0: no document). */
static uint64_t doc_cursor(cs_store *s, const char *instance) {
  cs_buf key = CS_BUF_INIT, v = CS_BUF_INIT;
  uint64_t c = 0;
  cr_assert_eq(cs__key_doc(&key, "M", instance), 0);
  int rc = cs__db_get(&v, s->db, CS_CF_DOCS, key.ptr, key.size);
  if (rc == 0) {
    cr_assert_geq(v.size, 8);
    c = cs__get_be64((const uint8_t *)v.ptr) & ~CS_CURSOR_SOLE;
  } else
    cr_assert_eq(rc, CS_ENOTFOUND);
  cs_buf_dispose(&key);
  cs_buf_dispose(&v);
  return c;
}

/* Every name the index lists at a document's own cursor, once; `names`
 * (n of them) are exactly the documents there are. */
static void expect_trimmed(cs_store *s, const char *const *names, size_t n) {
  chg_index x;
  index_read(&x, s);
  for (size_t i = 0; i < x.n; i++) {
    cr_expect_gt(x.e[i].n, 0, "an entry with no name is deleted");
    for (size_t j = 0; j < x.e[i].n; j++)
      cr_expect_eq(doc_cursor(s, x.e[i].names[j]), x.e[i].cursor, "'%s' listed at %llu",
                   x.e[i].names[j], (unsigned long long)x.e[i].cursor);
  }
  for (size_t i = 0; i < n; i++)
    cr_expect_eq(listed(&x, names[i]), 1, "'%s'", names[i]);
  index_dispose(&x);
}

/* One batch setting field v of each listed instance. */
static void edit(cs_store *s, const char *const *names, size_t n, int v) {
  cs_batch *b;
  cr_assert_eq(cs_batch_begin(&b, s), 0, "%s", cs_errmsg());
  for (size_t i = 0; i < n; i++)
    cr_assert_eq(cs_batch_set_int(b, "M", names[i], "v", v), 0, "%s", cs_errmsg());
  cr_assert_eq(cs_batch_commit(b), 0, "%s", cs_errmsg());
}

static const char *const five[] = {"d0", "d1", "d2", "d3", "d4"};

Test(engine_changes, a_flush_lists_its_documents_in_one_entry) {
  cs_store *s = tu_open(dir, "s");
  static const char *const two[] = {"d3", "d1"};
  cs_buf report = CS_BUF_INIT;
  chg_index x;
  edit(s, five, 5, 1);
  edit(s, two, 2, 2);
  cr_expect_eq(cs_check(&report, s), 0, "%s", report.ptr ? report.ptr : cs_errmsg());
  cr_expect(strstr(report.ptr, "\"changes\":2") != NULL, "%s", report.ptr);
  cs_buf_dispose(&report);
  index_read(&x, s);
  cr_assert_eq(x.n, 2);
  cr_expect_eq(x.e[0].n, 5, "the first entry is left as it was");
  cr_expect_not(x.e[0].single);
  cr_assert_eq(x.e[1].n, 2);
  cr_expect_str_eq(x.e[1].names[0], "d1", "in key order");
  cr_expect_str_eq(x.e[1].names[1], "d3");
  cr_expect_lt(x.e[0].cursor, x.e[1].cursor);
  cr_expect_eq(doc_cursor(s, "d0"), x.e[0].cursor);
  cr_expect_eq(doc_cursor(s, "d1"), x.e[1].cursor);
  cr_expect_eq(doc_cursor(s, "d3"), x.e[1].cursor);
  index_dispose(&x);
  cs_store_close(s);
}

/* A pull of server srv into cli from cursor `since`: how many states came.
 * The documents both have must then read the same. */
static size_t pull_into(cs_store *cli, cs_store *srv, uint64_t since, uint64_t *cursor) {
  cs_peer *p;
  cs_sync_result r = CS_SYNC_RESULT_INIT;
  cr_assert_eq(cs_peer_local(&p, srv), 0);
  cr_assert_eq(cs_partial_sync(&r, cli, p, since, NULL, 0), 0, "%s", cs_errmsg());
  size_t got = r.received;
  if (cursor)
    *cursor = r.cursor;
  for (size_t i = 0; i < 5; i++) {
    cs_buf a = CS_BUF_INIT, b = CS_BUF_INIT;
    int ra = cs_get_local_data(&a, srv, "M", five[i]),
        rb = cs_get_local_data(&b, cli, "M", five[i]);
    cr_expect_eq(ra, rb, "'%s'", five[i]);
    if (ra == 0 && rb == 0)
      cr_expect_eq(a.size == b.size && memcmp(a.ptr, b.ptr, a.size) == 0, 1, "'%s': %.*s vs %.*s",
                   five[i], (int)a.size, a.ptr, (int)b.size, b.ptr);
    cs_buf_dispose(&a);
    cs_buf_dispose(&b);
  }
  cs_sync_result_dispose(&r);
  cs_peer_free(p);
  return got;
}

/* The same into a new store `name`, from cursor 0. */
static size_t pull(cs_store *srv, const char *name) {
  cs_store *cli = tu_open(dir, name);
  size_t got = pull_into(cli, srv, 0, NULL);
  cs_store_close(cli);
  return got;
}

Test(engine_changes, a_pull_sends_each_document_once_at_its_latest_cursor) {
  cs_store *srv = tu_open(dir, "srv"), *cli = tu_open(dir, "cli");
  static const char *const two[] = {"d1", "d3"}, *const one[] = {"d3"};
  uint64_t c1;
  edit(srv, five, 5, 1);
  cr_expect_eq(pull_into(cli, srv, 0, &c1), 5);
  edit(srv, two, 2, 2);
  edit(srv, one, 1, 3);
  cr_expect_eq(pull(srv, "c1"), 5, "stale names are skipped, not sent twice");
  cr_expect_eq(pull_into(cli, srv, c1, NULL), 2, "d1 and d3 changed since c1");
  char *j = tu_get(cli, "M", "d3");
  cr_expect_str_eq(j, "{\"v\":3}");
  free(j);
  cs_store_close(cli);
  cs_store_close(srv);
}

/* Rewrites every entry of M as format 2 wrote it: one name, the value. */
static void to_old_layout(cs_store *s) {
  chg_index x;
  cs_wbatch *b;
  cs_buf key = CS_BUF_INIT;
  index_read(&x, s);
  cr_assert_eq(cs__wbatch_new(&b, s->db), 0);
  for (size_t i = 0; i < x.n; i++) {
    cr_assert_eq(x.e[i].n, 1, "one document per flush");
    cs__buf_clear(&key);
    cr_assert_eq(cs__key_change(&key, "M", x.e[i].cursor), 0);
    cs__wbatch_put(b, CS_CF_CHANGES, key.ptr, key.size, x.e[i].names[0], strlen(x.e[i].names[0]));
  }
  cr_assert_eq(cs__db_write(s->db, b, true), 0);
  cs__wbatch_free(b);
  cs_buf_dispose(&key);
  index_dispose(&x);
}

Test(engine_changes, entries_of_the_older_layout_are_read_and_trimmed) {
  cs_store *srv = tu_open(dir, "srv");
  static const char *const d1[] = {"d1"};
  cs_cleanup_stats st;
  chg_index x;
  for (size_t i = 0; i < 3; i++)
    edit(srv, &five[i], 1, 1);
  to_old_layout(srv);
  index_read(&x, srv);
  cr_assert_eq(x.n, 3);
  cr_expect(x.e[0].single && x.e[1].single && x.e[2].single);
  index_dispose(&x);
  cr_expect_eq(pull(srv, "c0"), 3);
  edit(srv, d1, 1, 2);
  cr_expect_eq(pull(srv, "c1"), 3, "d1 once, at its new cursor");
  cr_assert_eq(cs_cleanup(&st, srv), 0, "%s", cs_errmsg());
  index_read(&x, srv);
  cr_assert_eq(x.n, 3, "d1's old entry is gone");
  cr_expect(x.e[0].single && x.e[1].single && !x.e[2].single);
  index_dispose(&x);
  expect_trimmed(srv, five, 3);
  cs_store_close(srv);
}

Test(engine_changes, cleanup_keeps_only_the_names_at_their_documents_cursor) {
  cs_store *srv = tu_open(dir, "srv");
  static const char *const a[] = {"d0", "d2", "d4"}, *const b[] = {"d2", "d3"},
                           *const c[] = {"d0", "d2", "d4"};
  cs_cleanup_stats st;
  edit(srv, five, 5, 1);
  edit(srv, a, 3, 2);
  edit(srv, b, 2, 3);
  edit(srv, c, 3, 4);
  size_t before = pull(srv, "c0");
  uint64_t fp = tu_fingerprint_data(srv);
  cr_assert_eq(cs_cleanup(&st, srv), 0, "%s", cs_errmsg());
  cr_expect_neq(tu_fingerprint_data(srv), fp, "stale names were dropped");
  expect_trimmed(srv, five, 5);
  chg_index x;
  index_read(&x, srv);
  cr_expect_eq(x.n, 3, "the second batch's entry listed only names written again later");
  index_dispose(&x);
  cr_expect_eq(pull(srv, "c1"), before);
  /* Nothing left to trim: a second cleanup writes no change entry. */
  size_t dropped = 99;
  cs_wbatch *wb;
  cr_assert_eq(cs__wbatch_new(&wb, srv->db), 0);
  cr_assert_eq(cs__changes_trim(&dropped, srv, cs__model_find(srv, "M"), NULL, 0, wb), 0);
  cr_expect_eq(dropped, 99, "added nothing");
  cr_expect_eq(cs__wbatch_count(wb), 0);
  cs__wbatch_free(wb);
  cs_store_close(srv);
}

/* A cleanup keeps deleted documents, and their names in the entries that
 * list them (docs/semantics.md: a later write restores them). */
Test(engine_changes, cleanup_keeps_the_names_of_deleted_documents) {
  cs_store *a = tu_open(dir, "a"), *b = tu_open(dir, "b");
  cs_cleanup_stats st;
  cs_batch *bt;
  edit(a, five, 5, 1);
  cr_assert_eq(cs_batch_begin(&bt, a), 0);
  cs_action del = {CS_ACTION_DELETE, "M", "d1", NULL};
  cr_assert_eq(cs_batch_action(bt, &del), 0, "%s", cs_errmsg());
  cr_assert_eq(cs_batch_set_int(bt, "M", "d2", "v", 7), 0);
  cr_assert_eq(cs_batch_commit(bt), 0, "%s", cs_errmsg());
  tu_act(a, CS_ACTION_DELETE, "M", "d3", NULL);
  tu_sync(a, b);
  tu_sync(a, b);
  cr_assert_eq(cs_cleanup(&st, a), 0, "%s", cs_errmsg());
  cr_expect_eq(st.documents_purged, 0);
  expect_trimmed(a, five, 5);
  cs_store_close(a);
  cs_store_close(b);
}

/* Puts one raw change entry of M: key (M, cursor) plus `extra` bytes. */
static void put_raw(cs_store *s, uint64_t cursor, const char *extra, size_t nextra, const void *val,
                    size_t len) {
  cs_buf key = CS_BUF_INIT;
  cs_wbatch *b;
  cr_assert_eq(cs__key_change(&key, "M", cursor), 0);
  cr_assert_eq(cs__buf_put(&key, extra, nextra), 0);
  cr_assert_eq(cs__wbatch_new(&b, s->db), 0);
  cs__wbatch_put(b, CS_CF_CHANGES, key.ptr, key.size, val, len);
  cr_assert_eq(cs__db_write(s->db, b, true), 0);
  cs__wbatch_free(b);
  cs_buf_dispose(&key);
}

/* Reading the states and cleaning up both refuse the entry, naming it;
 * the cleanup writes nothing. */
static void expect_refused(cs_store *s, const char *what) {
  cs_sync_msg msg;
  cs_wire_model *wm;
  cs_cleanup_stats st;
  size_t cap = 0;
  memset(&msg, 0, sizeof(msg));
  cr_assert_eq(cs__msg_add_model(&wm, &msg, &cap, "M"), 0);
  cr_expect_eq(cs__collect_states(wm, s, cs__model_find(s, "M"), 0), CS_ECORRUPT, "%s", what);
  cr_expect(strstr(cs_errmsg(), "change index of model 'M'") && strstr(cs_errmsg(), what), "%s",
            cs_errmsg());
  cs__sync_msg_dispose(&msg);
  uint64_t fp = tu_fingerprint(s);
  cr_expect_eq(cs_cleanup(&st, s), CS_ECORRUPT, "%s", what);
  cr_expect(strstr(cs_errmsg(), what), "%s", cs_errmsg());
  cr_expect_eq(tu_fingerprint(s), fp, "cleanup changed nothing");
  /* The store check finds it too, and names the family. */
  cs_buf report = CS_BUF_INIT;
  cr_expect_eq(cs_check(&report, s), CS_ECORRUPT, "%s", what);
  cr_expect(report.ptr && strstr(report.ptr, "\"family\":\"changes\""), "%s",
            report.ptr ? report.ptr : cs_errmsg());
  cr_expect(strstr(cs_errmsg(), what), "%s", cs_errmsg());
  cs_buf_dispose(&report);
}

static cs_store *with_one_doc(const char *name) {
  cs_store *s = tu_open(dir, name);
  edit(s, five, 1, 1);
  return s;
}

Test(engine_changes, an_entry_that_does_not_decode_is_refused) {
  static const struct {
    const char *val;
    size_t len;
    const char *what;
  } bad[] = {
      {"\x00", 1, "list version missing"},
      {"\x00\x02", 2, "unknown list version 2"},
      {"\x00\x01\x00\x05"
       "ab",
       6, "claims 5 bytes"},
      {"\x00\x01\x00", 3, "name length cut short"},
      {"\x00\x01\x00\x00", 4, "claims 0 bytes"},
      {"\x00\x01\x00\x02"
       "a\x00",
       6, "contains a NUL byte"},
      {"\x00\x01\x00\x02"
       "d1\x00\x02"
       "d0",
       10, "is not after the one before it"},
      {"\x00\x01\x00\x02"
       "d0\x00\x01"
       "e",
       9, "is not after the one before it"},
      {"", 0, "entry is empty"},
      {"a\x00"
       "b",
       3, "contains a NUL byte"},
  };
  char name[16];
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    snprintf(name, sizeof(name), "s%zu", i);
    cs_store *s = with_one_doc(name);
    put_raw(s, 1000 + i, NULL, 0, bad[i].val, bad[i].len);
    expect_refused(s, bad[i].what);
    cs_store_close(s);
  }
}

Test(engine_changes, a_key_of_the_wrong_size_is_refused) {
  cs_store *s = with_one_doc("s");
  put_raw(s, 1000, "x", 1, "d0", 2);
  expect_refused(s, "change index key of ");
  cs_store_close(s);
}

Test(engine_changes, a_name_listed_twice_is_refused) {
  cs_store *s = with_one_doc("s");
  cs_buf v = CS_BUF_INIT;
  cs_sync_msg msg;
  cs_wire_model *wm;
  size_t cap = 0;
  chg_index x;
  index_read(&x, s);
  cr_assert_eq(x.n, 1);
  cr_assert_eq(cs__change_list_start(&v), 0);
  cr_assert_eq(cs__change_list_add(&v, "d0"), 0);
  cr_assert_eq(cs__change_list_add(&v, "d0"), 0);
  put_raw(s, x.e[0].cursor, NULL, 0, v.ptr, v.size);
  memset(&msg, 0, sizeof(msg));
  cr_assert_eq(cs__msg_add_model(&wm, &msg, &cap, "M"), 0);
  cr_expect_eq(cs__collect_states(wm, s, cs__model_find(s, "M"), 0), CS_ECORRUPT);
  cr_expect(strstr(cs_errmsg(), "is not after the one before it"), "%s", cs_errmsg());
  cs__sync_msg_dispose(&msg);
  /* The pull fails as a whole: the client gets an error, not half a state. */
  cs_store *cli = tu_open(dir, "cli");
  cs_peer *p;
  cs_sync_result r = CS_SYNC_RESULT_INIT;
  cs_buf out = CS_BUF_INIT;
  cr_assert_eq(cs_peer_local(&p, s), 0);
  cr_expect_neq(cs_partial_sync(&r, cli, p, 0, NULL, 0), 0);
  cr_expect_eq(cs_get_local_data(&out, cli, "M", "d0"), CS_ENOTFOUND);
  cs_sync_result_dispose(&r);
  cs_peer_free(p);
  cs_store_close(cli);
  cs_buf_dispose(&out);
  index_dispose(&x);
  cs_buf_dispose(&v);
  cs_store_close(s);
}

/* Every allocation failure of a pull's reading or of a cleanup's trim is
 * reported as such; the cleanup then writes nothing. The sanitizer pass
 * checks that nothing leaks on the way out. */
Test(engine_changes, every_allocation_failure_is_reported) {
  cs_store *a = tu_open(dir, "a"), *b = tu_open(dir, "b");
  static const char *const two[] = {"d1", "d3"};
  cs_cleanup_stats st;
  int fails = 0;
  for (size_t i = 0; i < 2; i++)
    edit(a, &five[i], 1, 1);
  to_old_layout(a);
  edit(a, five, 5, 2);
  edit(a, two, 2, 3);
  tu_act(a, CS_ACTION_DELETE, "M", "d4", NULL);
  tu_sync(a, b);
  tu_sync(a, b);
  for (unsigned long n = 1;; n++) {
    cs_sync_msg msg;
    cs_wire_model *wm;
    size_t cap = 0;
    memset(&msg, 0, sizeof(msg));
    cr_assert_eq(cs__msg_add_model(&wm, &msg, &cap, "M"), 0);
    cs__alloc_fail_after(n);
    int rc = cs__collect_states(wm, a, cs__model_find(a, "M"), 0);
    cs__alloc_fail_after(0);
    size_t got = wm->nstates;
    cs__sync_msg_dispose(&msg);
    if (rc == 0) {
      cr_expect_eq(got, 5, "d4 is a tombstone, still sent");
      break;
    }
    cr_assert_eq(rc, CS_ENOMEM, "allocation %lu: %s", n, cs_errmsg());
    fails++;
  }
  cr_expect_gt(fails, 10, "only %d allocations failed", fails);
  fails = 0;
  for (unsigned long n = 1;; n++) {
    uint64_t before = tu_fingerprint(a);
    cs__alloc_fail_after(n);
    int rc = cs_cleanup(&st, a);
    cs__alloc_fail_after(0);
    if (rc == 0)
      break;
    cr_assert_eq(rc, CS_ENOMEM, "allocation %lu: %s", n, cs_errmsg());
    fails++;
    /* A failure after the batch is written (compacting, measuring) leaves
     * the whole cleanup done; any earlier one leaves nothing done. */
    if (tu_fingerprint(a) != before) {
      cr_expect_eq(tu_log_runs(a), 0, "allocation %lu: written but not whole", n);
      break;
    }
    cr_assert_gt(tu_log_runs(a), 0);
  }
  cr_expect_gt(fails, 10, "only %d allocations failed", fails);
  cr_expect_eq(tu_log_runs(a), 0, "the log is cleaned up");
  expect_trimmed(a, five, 5);
  cs_store_close(a);
  cs_store_close(b);
}

/* The stored cursor word of a document, sole bit included. */
static uint64_t cursor_word(cs_store *s, const char *instance) {
  cs_buf key = CS_BUF_INIT, v = CS_BUF_INIT;
  cr_assert_eq(cs__key_doc(&key, "M", instance), 0);
  cr_assert_eq(cs__db_get(&v, s->db, CS_CF_DOCS, key.ptr, key.size), 0);
  cr_assert_geq(v.size, 8);
  uint64_t w = cs__get_be64((const uint8_t *)v.ptr);
  cs_buf_dispose(&key);
  cs_buf_dispose(&v);
  return w;
}

/* A commit of one document replaces the entry that listed it alone (its
 * cursor word says so), so editing one document again and again does not
 * grow the index; an entry that lists others too stays. */
Test(engine_changes, a_one_document_commit_replaces_its_sole_entry) {
  cs_store *s = tu_open(dir, "s");
  static const char *const two[] = {"d0", "d1"};
  chg_index x;
  edit(s, two, 2, 1);
  cr_expect_eq(cursor_word(s, "d1") & CS_CURSOR_SOLE, 0, "listed with d0");
  for (int v = 2; v < 12; v++) {
    edit(s, &five[1], 1, v);
    cr_expect_neq(cursor_word(s, "d1") & CS_CURSOR_SOLE, 0, "listed alone");
  }
  index_read(&x, s);
  cr_assert_eq(x.n, 2, "the pair's entry and d1's latest");
  cr_expect_eq(x.e[0].n, 2);
  cr_expect_eq(x.e[1].n, 1);
  cr_expect_str_eq(x.e[1].names[0], "d1");
  cr_expect_eq(doc_cursor(s, "d1"), x.e[1].cursor);
  index_dispose(&x);
  /* A pull still finds both, each once. */
  cr_expect_eq(pull(s, "c"), 2);
  cs_store_close(s);
}

/* Each allocation of a one-document commit may fail: the commit then fails
 * with CS_ENOMEM and changes nothing, and the next one replaces the entry. */
Test(engine_changes, every_allocation_failure_of_a_one_document_commit_is_reported) {
  cs_store *s = tu_open(dir, "s");
  cs_action upd = {CS_ACTION_UPDATE, "M", "d0", "{\"v\":2}"};
  int fails = 0;
  edit(s, five, 1, 1);
  for (unsigned long n = 1;; n++) {
    uint64_t before = tu_fingerprint(s);
    cs__alloc_fail_after(n);
    int rc = cs_queue_offline_action(s, &upd);
    cs__alloc_fail_after(0);
    if (rc == 0)
      break;
    cr_assert_eq(rc, CS_ENOMEM, "allocation %lu: %s", n, cs_errmsg());
    cr_assert_eq(tu_fingerprint(s), before, "allocation %lu: the failed commit wrote", n);
    fails++;
  }
  cr_expect_gt(fails, 10, "only %d allocations failed", fails);
  chg_index x;
  index_read(&x, s);
  cr_expect_eq(x.n, 1);
  index_dispose(&x);
  cs_store_close(s);
}

/* The writer refuses a name the layout cannot hold (engine names are
 * checked long before: at most CS_WIRE_MAX_NAME bytes, never empty). */
Test(engine_changes, the_writer_refuses_a_name_it_cannot_hold) {
  cs_buf v = CS_BUF_INIT;
  char *big = malloc(70000);
  cr_assert_not_null(big);
  memset(big, 'x', 69999);
  big[69999] = '\0';
  cr_assert_eq(cs__change_list_start(&v), 0);
  cr_expect_eq(cs__change_list_add(&v, ""), CS_EINVAL);
  cr_expect_eq(cs__change_list_add(&v, big), CS_EINVAL);
  cr_expect(strstr(cs_errmsg(), "69999 bytes") != NULL, "%s", cs_errmsg());
  cr_expect_eq(v.size, 2, "nothing written");
  free(big);
  cs_buf_dispose(&v);
}
