/*
 * Relaying what a pull brought: state learned as whole documents goes on as
 * whole documents, never as logged actions with a causal gap; a message with
 * a gap is refused; a store that an older build merged with a gap lists what
 * it misses, serves nothing that would hand the damage on, and repairs
 * itself at its next full sync (docs/semantics.md, "What a replica knows and
 * what it can serve").
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine.h"
#include "tests/helpers/testutil.h"

static char *dir;
static void setup(void) { dir = tu_tempdir(); }
static void teardown(void) {
  cs__relay_states = cs__refuse_gaps = true;
  tu_rmrf(dir);
  free(dir);
}
TestSuite(engine_relay, .init = setup, .fini = teardown);

static void put(cs_store *s, const char *instance, const char *title) {
  char json[64];
  snprintf(json, sizeof(json), "{\"title\":\"%s\"}", title);
  tu_act(s, CS_ACTION_UPDATE, "Note", instance, json);
}

static int pull(cs_store *s, cs_store *from, uint64_t since) {
  cs_peer *p = NULL;
  cs_sync_result r = CS_SYNC_RESULT_INIT;
  cr_assert_eq(cs_peer_local(&p, from), 0);
  int rc = cs_partial_sync(&r, s, p, since, NULL, 0);
  cs_sync_result_dispose(&r);
  cs_peer_free(p);
  return rc;
}

static int sync_with(cs_store *s, cs_store *with) {
  cs_peer *p = NULL;
  cr_assert_eq(cs_peer_local(&p, with), 0);
  int rc = cs_sync(NULL, s, p);
  cs_peer_free(p);
  return rc;
}

/* The check's report; rc is 0 or CS_ECORRUPT. */
static char *check(cs_store *s, int *rc) {
  cs_buf r = CS_BUF_INIT;
  *rc = cs_check(&r, s);
  return r.ptr;
}

static void expect_consistent(cs_store *s, const char *who) {
  int rc;
  char *rep = check(s, &rc);
  cr_expect_eq(rc, 0, "%s: %s\n%s", who, cs_errmsg(), rep ? rep : "");
  free(rep);
}

static void expect_same(cs_store *a, cs_store *b, const char *instance) {
  char *x = tu_get(a, "Note", instance), *y = tu_get(b, "Note", instance);
  cr_expect_str_eq(x, y, "instance %s", instance);
  free(x);
  free(y);
}

/*
 * The field report: A writes n three times; B syncs, pulls (second write
 * arrives as a state), syncs; B and A then sync with the hub H. `second`
 * names the instance of A's second write.
 */
static void relay_through_pull(cs_store *a, cs_store *b, cs_store *h, const char *second) {
  put(a, "n", "a1");
  cr_assert_eq(sync_with(b, a), 0, "%s", cs_errmsg());
  put(a, second, "a2");
  cr_assert_eq(pull(b, a, 0), 0, "%s", cs_errmsg());
  put(a, "n", "a3");
  cr_assert_eq(sync_with(b, a), 0, "%s", cs_errmsg());
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(sync_with(b, h), 0, "%s", cs_errmsg());
    cr_assert_eq(sync_with(a, h), 0, "%s", cs_errmsg());
  }
}

Test(engine_relay, a_pulled_state_is_relayed_without_a_gap) {
  cs_store *a = tu_open(dir, "A"), *b = tu_open(dir, "B"), *h = tu_open(dir, "H");
  relay_through_pull(a, b, h, "n");
  char *json = NULL;
  cr_expect_eq(tu_conflicts(h, &json), 0, "two writes of one replica in a row: %s", json);
  free(json);
  expect_same(a, h, "n");
  expect_same(b, h, "n");
  expect_consistent(a, "A");
  expect_consistent(b, "B");
  expect_consistent(h, "H");
  cs_store_close(a);
  cs_store_close(b);
  cs_store_close(h);
}

Test(engine_relay, a_hub_that_took_a_relayed_pull_serves_a_fresh_replica) {
  cs_store *a = tu_open(dir, "A"), *b = tu_open(dir, "B"), *h = tu_open(dir, "H");
  cs_store *f = tu_open(dir, "F");
  relay_through_pull(a, b, h, "m");
  cr_assert_eq(sync_with(f, h), 0, "%s", cs_errmsg());
  expect_same(a, f, "n");
  expect_same(a, f, "m");
  expect_consistent(h, "H");
  expect_consistent(f, "F");
  cs_store_close(a);
  cs_store_close(b);
  cs_store_close(h);
  cs_store_close(f);
}

/* An older client relays with a gap: the hub refuses, and keeps nothing. */
Test(engine_relay, a_request_with_a_causal_gap_is_refused) {
  cs_store *a = tu_open(dir, "A"), *b = tu_open(dir, "B"), *h = tu_open(dir, "H");
  put(a, "n", "a1");
  cr_assert_eq(sync_with(b, a), 0, "%s", cs_errmsg());
  put(a, "n", "a2");
  cr_assert_eq(pull(b, a, 0), 0, "%s", cs_errmsg());
  put(a, "n", "a3");
  cr_assert_eq(sync_with(b, a), 0, "%s", cs_errmsg());
  cs__relay_states = false; /* B relays as an older build did */
  uint64_t before = tu_fingerprint_data(h);
  cr_expect_eq(sync_with(b, h), CS_ECORRUPT);
  cr_expect(strstr(cs_errmsg(), "causal gap") != NULL, "%s", cs_errmsg());
  cr_expect_eq(tu_fingerprint_data(h), before, "the refused merge left data behind");
  cs__relay_states = true;
  cr_expect_eq(sync_with(b, h), 0, "%s", cs_errmsg());
  cr_expect_eq(tu_conflicts(h, NULL), 0);
  expect_same(a, h, "n");
  expect_consistent(h, "H");
  cs_store_close(a);
  cs_store_close(b);
  cs_store_close(h);
}

/* Makes H as builds before storage format 4 left it: merged with a gap,
 * and never scanned for one. H is closed; reopen it to scan. */
static void damage(cs_store *a, cs_store *b, cs_store *h, const char *second) {
  cs_wbatch *wb = NULL;
  cs__relay_states = cs__refuse_gaps = false;
  relay_through_pull(a, b, h, second);
  cs__relay_states = cs__refuse_gaps = true;
  if (strcmp(second, "n") == 0)
    cr_assert_eq(tu_conflicts(h, NULL), 1, "the old damage did not happen");
  cr_assert_eq(cs__wbatch_new(&wb, h->db), 0);
  cs__wbatch_delete(wb, CS_CF_META, "gaps_scanned", strlen("gaps_scanned"));
  cr_assert_eq(cs__db_write(h->db, wb, true), 0);
  cs__wbatch_free(wb);
  cs_store_close(h);
}

Test(engine_relay, a_damaged_store_is_found_and_repairs_itself) {
  cs_store *a = tu_open(dir, "A"), *b = tu_open(dir, "B"), *h = tu_open(dir, "H");
  cs_store *f = tu_open(dir, "F");
  damage(a, b, h, "n");
  h = tu_open(dir, "H");
  int rc;
  char *rep = check(h, &rc);
  cr_expect_eq(rc, CS_ECORRUPT);
  cr_expect(strstr(rep, "\"missing\"") && strstr(rep, "\"siblings\"") && strstr(rep, "\"gap\""),
            "%s", rep);
  free(rep);
  /* Nothing of the damaged model leaves it: no pull, no relay. */
  cr_expect_eq(pull(f, h, 0), CS_EBUSY);
  cr_expect(strstr(cs_errmsg(), "awaits 1 action dot") != NULL, "%s", cs_errmsg());
  cr_expect_eq(sync_with(f, h), 0, "%s", cs_errmsg());
  cs_buf got = CS_BUF_INIT;
  cr_expect_eq(cs_get_local_data(&got, f, "Note", "n"), CS_ENOTFOUND, "relayed: %s", got.ptr);
  cs_buf_dispose(&got);
  expect_consistent(f, "F");
  /* A still has the action H lacks: one sync repairs H. */
  cr_expect_eq(sync_with(a, h), 0, "%s", cs_errmsg());
  cr_expect_eq(tu_conflicts(h, NULL), 0);
  expect_same(a, h, "n");
  expect_consistent(h, "H");
  cr_expect_eq(sync_with(f, h), 0, "%s", cs_errmsg());
  expect_same(a, f, "n");
  expect_consistent(f, "F");
  cs_store_close(a);
  cs_store_close(b);
  cs_store_close(h);
  cs_store_close(f);
}

/* The action H misses is gone from every log (cleaned up once every peer,
 * H included, claimed it): whole states repair H. */
Test(engine_relay, a_damaged_store_repairs_from_whole_states) {
  cs_store *a = tu_open(dir, "A"), *b = tu_open(dir, "B"), *h = tu_open(dir, "H");
  cs_cleanup_stats st;
  damage(a, b, h, "n");
  cr_assert_eq(cs_cleanup(&st, a), 0, "%s", cs_errmsg());
  cr_assert_gt(st.log_entries_deleted, 0, "A's log was not cleaned up");
  h = tu_open(dir, "H");
  cr_expect_eq(sync_with(h, a), 0, "%s", cs_errmsg());
  cr_expect_eq(tu_conflicts(h, NULL), 0);
  expect_same(a, h, "n");
  expect_consistent(h, "H");
  cs_store_close(a);
  cs_store_close(b);
  cs_store_close(h);
}

/* A hub made by the older build for the second report: A's second write is
 * on another instance, and H could not encode its log for a fresh replica. */
Test(engine_relay, a_damaged_hub_serves_again_once_repaired) {
  cs_store *a = tu_open(dir, "A"), *b = tu_open(dir, "B"), *h = tu_open(dir, "H");
  cs_store *f = tu_open(dir, "F");
  damage(a, b, h, "m");
  h = tu_open(dir, "H");
  cr_expect_eq(sync_with(f, h), 0, "%s", cs_errmsg());
  cr_expect_eq(sync_with(b, h), 0, "%s", cs_errmsg()); /* B sends m's state */
  cr_expect_eq(sync_with(f, h), 0, "%s", cs_errmsg());
  expect_same(a, f, "n");
  expect_same(a, f, "m");
  expect_consistent(h, "H");
  expect_consistent(f, "F");
  cs_store_close(a);
  cs_store_close(b);
  cs_store_close(h);
  cs_store_close(f);
}

static size_t pull_last(cs_store *s, cs_store *from, const char *model) {
  cs_peer *p = NULL;
  cs_sync_result r = CS_SYNC_RESULT_INIT;
  cr_assert_eq(cs_peer_local(&p, from), 0);
  int rc = cs_partial_sync(&r, s, p, CS_SINCE_LAST, model ? &model : NULL, model ? 1 : 0);
  cr_assert_eq(rc, 0, "pull %s since last: %s", model ? model : "(all)", cs_errmsg());
  cs_sync_result_dispose(&r);
  cs_peer_free(p); /* each pull through a new handle: the store names the peer */
  return r.received;
}

/* Cursors are kept per peer and per model: "since last" works whatever
 * models the previous pulls named, and for a model the peer gained. */
Test(engine_relay, since_last_continues_model_by_model) {
  cs_store *a = tu_open(dir, "A"), *b = tu_open(dir, "B");
  put(a, "n1", "one");
  tu_act(a, CS_ACTION_UPDATE, "Task", "t1", "{\"done\":false}");
  cr_expect_eq(pull_last(b, a, "Note"), 1, "the first pull is a full one");
  put(a, "n2", "two");
  cr_expect_eq(pull_last(b, a, "Note"), 1, "only the new Note");
  cr_expect_eq(pull_last(b, a, NULL), 1, "Task whole, nothing of Note again");
  tu_act(a, CS_ACTION_UPDATE, "Later", "l1", "{\"x\":1}");
  put(a, "n3", "three");
  cr_expect_eq(pull_last(b, a, NULL), 2, "the model A gained, and the new Note");
  cr_expect_eq(pull_last(b, a, NULL), 0, "nothing new");
  expect_same(a, b, "n1");
  expect_same(a, b, "n3");
  expect_consistent(b, "B");
  /* An explicit cursor older than a model's is still good; a newer one not. */
  cs_peer *p = NULL;
  cs_sync_result r = CS_SYNC_RESULT_INIT;
  cr_assert_eq(cs_peer_local(&p, a), 0);
  cr_expect_eq(cs_partial_sync(&r, b, p, 1, NULL, 0), 0, "%s", cs_errmsg());
  cr_expect_eq(cs_partial_sync(&r, b, p, r.cursor + 1000, NULL, 0), CS_EINVAL);
  /* A cursor the peer did issue, but for other models than one never
   * pulled: taking it would claim that model's knowledge without its
   * documents. */
  const char *fresh = "Fresh";
  uint64_t issued = r.cursor;
  tu_act(a, CS_ACTION_UPDATE, "Fresh", "f1", "{\"x\":1}");
  cr_expect_eq(cs_partial_sync(&r, b, p, issued, &fresh, 1), CS_EINVAL);
  cr_expect(strstr(cs_errmsg(), "not issued") != NULL, "%s", cs_errmsg());
  cs_buf none = CS_BUF_INIT;
  cr_expect_eq(cs_get_local_data(&none, b, "Fresh", "f1"), CS_ENOTFOUND);
  cs_buf_dispose(&none);
  cs_sync_result_dispose(&r);
  cs_peer_free(p);
  cs_store_close(a);
  cs_store_close(b);
}

/* A handle that reaches another store once it has synced: what it
 * remembers of the first cannot break a sync with the second. */
typedef struct moved_peer {
  cs_peer base;
  cs_peer *inner;
} moved_peer;

static int moved_exchange(cs_peer *self, cs_buf *resp, const char *path, const uint8_t *req,
                          size_t len) {
  moved_peer *mp = (moved_peer *)self;
  return mp->inner->exchange(mp->inner, resp, path, req, len);
}


Test(engine_relay, a_handle_that_reaches_another_replica_still_syncs) {
  cs_store *a = tu_open(dir, "A"), *x = tu_open(dir, "X"), *y = tu_open(dir, "Y");
  cs_store *c = tu_open(dir, "C");
  cs_peer *to_x = NULL, *to_y = NULL;
  put(c, "n", "c1");
  cr_assert_eq(sync_with(x, c), 0, "%s", cs_errmsg());
  cr_assert_eq(cs_peer_local(&to_x, x), 0);
  cr_assert_eq(cs_peer_local(&to_y, y), 0);
  moved_peer p = {{CS_PEER_VERSION, moved_exchange, NULL}, to_x};
  cr_assert_eq(cs_sync(NULL, a, &p.base), 0, "%s", cs_errmsg());
  put(a, "n", "a2"); /* covers c1, which Y never had */
  p.inner = to_y;     /* the URL is served by another replica now */
  cr_expect_eq(cs_sync(NULL, a, &p.base), 0, "%s", cs_errmsg());
  expect_same(a, y, "n");
  expect_consistent(y, "Y");
  cs__peer_forget(&p.base);
  cs_peer_free(to_x);
  cs_peer_free(to_y);
  cs_store_close(a);
  cs_store_close(x);
  cs_store_close(y);
  cs_store_close(c);
}

/* The store behind a path is made anew (a new replica, its cursor back at
 * the start): "since last" pulls everything from it. */
Test(engine_relay, since_last_survives_a_peer_made_anew) {
  cs_store *a = tu_open(dir, "A"), *b = tu_open(dir, "B");
  char path[512];
  for (int i = 0; i < 5; i++)
    put(a, "n", "old");
  cr_assert_gt(pull_last(b, a, NULL), 0);
  snprintf(path, sizeof(path), "%s/A", dir);
  cs_store_close(a);
  tu_rmrf(path);
  a = tu_open(dir, "A");
  put(a, "m", "new");
  cr_expect_eq(pull_last(b, a, NULL), 1, "the new store's one instance");
  expect_same(a, b, "m");
  cs_store_close(a);
  cs_store_close(b);
}

/* A log run that does not decode does not keep the store from opening
 * when it is scanned for gaps; check names the record. */
Test(engine_relay, a_damaged_log_run_does_not_keep_the_store_closed) {
  cs_store *a = tu_open(dir, "A");
  cs_wbatch *wb = NULL;
  cs_iter *it = NULL;
  put(a, "n", "one");
  cr_assert_eq(cs__iter_new(&it, a->db, CS_CF_LOG, NULL, 0, NULL, 0), 0);
  cr_assert(cs__iter_valid(it), "no log run");
  cs_bytes k = cs__iter_key(it);
  cr_assert_eq(cs__wbatch_new(&wb, a->db), 0);
  cs__wbatch_put(wb, CS_CF_LOG, k.ptr, k.len, "\x03junk", 5);
  cs__wbatch_delete(wb, CS_CF_META, "gaps_scanned", strlen("gaps_scanned"));
  cs__iter_free(it);
  cr_assert_eq(cs__db_write(a->db, wb, true), 0);
  cs__wbatch_free(wb);
  cs_store_close(a);
  a = tu_open(dir, "A");
  int rc;
  char *rep = check(a, &rc);
  cr_expect_eq(rc, CS_ECORRUPT);
  cr_assert_not_null(rep, "no report: %s", cs_errmsg());
  cr_expect(strstr(rep, "\"family\":\"log\"") != NULL, "%s", rep);
  free(rep);
  cs_store_close(a);
}

/* A kept cursor of the wrong size is named, not taken for 0. */
Test(engine_relay, a_damaged_kept_cursor_is_refused) {
  cs_store *a = tu_open(dir, "A"), *b = tu_open(dir, "B");
  char key[96];
  cs_wbatch *wb = NULL;
  cs_peer *p = NULL;
  put(a, "n", "one");
  cr_assert_eq(pull_last(b, a, NULL), 1);
  snprintf(key, sizeof(key), "pcursor/%016llx/Note", (unsigned long long)a->self);
  cr_assert_eq(cs__wbatch_new(&wb, b->db), 0);
  cs__wbatch_put(wb, CS_CF_META, key, strlen(key), "abc", 3);
  cr_assert_eq(cs__db_write(b->db, wb, true), 0);
  cs__wbatch_free(wb);
  cr_assert_eq(cs_peer_local(&p, a), 0);
  cr_expect_eq(cs_partial_sync(NULL, b, p, CS_SINCE_LAST, NULL, 0), CS_ECORRUPT);
  cr_expect(strstr(cs_errmsg(), "has 3 bytes, expected 8") != NULL, "%s", cs_errmsg());
  cs_peer_free(p);
  cs_store_close(a);
  cs_store_close(b);
}
