/* A write that fails leaves nothing of itself in memory: the change cursor
 * a pull hands out, the outbox numbers, the field types an action inferred
 * and the models' knowledge are again what the store holds. Writes are
 * failed with cs__db_write_fail_after, as a full disk would fail them. And
 * what a server acknowledges is fsynced, whatever its durability. */
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
  cs__db_write_fail_after(0);
  tu_rmrf(dir);
  free(dir);
}

TestSuite(engine_rollback, .init = setup, .fini = teardown);

static int act(cs_store *s, cs_action_type t, const char *model, const char *instance,
               const char *json) {
  cs_action a = {t, model, instance, json};
  return cs_queue_offline_action(s, &a);
}

/* The cursor a pull of `from` since `since` hands out; *received: states. */
static uint64_t pull(size_t *received, cs_store *into, cs_store *from, uint64_t since) {
  cs_peer *p;
  cs_sync_result r = CS_SYNC_RESULT_INIT;
  uint64_t cursor;
  cr_assert_eq(cs_peer_local(&p, from), 0);
  cr_assert_eq(cs_partial_sync(&r, into, p, since, NULL, 0), 0, "%s", cs_errmsg());
  cursor = r.cursor;
  if (received)
    *received = r.received;
  cs_sync_result_dispose(&r);
  cs_peer_free(p);
  return cursor;
}

Test(engine_rollback, a_failed_action_hands_out_no_cursor) {
  cs_store *b = tu_open(dir, "b"), *c = tu_open(dir, "c");
  size_t got;
  tu_act(b, CS_ACTION_CREATE, "M", "d1", "{\"x\":1}");
  uint64_t c1 = pull(&got, c, b, 0);
  cr_assert_eq(got, 1);
  cs__db_write_fail_after(1);
  cr_assert_eq(act(b, CS_ACTION_CREATE, "M", "d2", "{\"x\":2}"), CS_EIO);
  cr_expect_eq(pull(&got, c, b, c1), c1, "a pull names no change that was not written");
  cr_expect_eq(got, 0);
  tu_act(b, CS_ACTION_CREATE, "M", "d3", "{\"x\":3}");
  uint64_t c3 = pull(&got, c, b, c1);
  cr_expect_eq(c3, c1 + 1, "the failed write's cursor is taken again");
  cr_expect_eq(got, 1);
  /* After a restart, the store counts from what it wrote. */
  cs_store_close(b);
  b = tu_open(dir, "b");
  cr_expect_eq(pull(&got, c, b, c3), c3);
  cr_expect_eq(got, 0);
  cs_store_close(b);
  cs_store_close(c);
}

Test(engine_rollback, a_failed_batch_takes_no_outbox_numbers) {
  cs_store *a = tu_open(dir, "a");
  cs_batch *bt;
  cs_buf q = CS_BUF_INIT;
  tu_act(a, CS_ACTION_CREATE, "M", "p1", "{\"x\":1}");
  cr_assert_eq(cs_batch_begin(&bt, a), 0);
  cr_assert_eq(cs_batch_set_int(bt, "M", "p2", "x", 2), 0);
  cr_assert_eq(cs_batch_set_int(bt, "M", "p3", "x", 3), 0);
  cs__db_write_fail_after(1);
  cr_assert_eq(cs_batch_commit(bt), CS_EIO);
  cr_assert_eq(cs_batch_begin(&bt, a), 0);
  cr_assert_eq(cs_batch_set_int(bt, "M", "p4", "x", 4), 0);
  cs_batch_abort(bt);
  tu_act(a, CS_ACTION_UPDATE, "M", "p1", "{\"x\":5}");
  cr_assert_eq(cs_get_queued_actions(&q, a), 0);
  json_t *j = json_loadb(q.ptr, q.size, 0, NULL);
  cr_assert(json_is_array(j));
  cr_assert_eq(json_array_size(j), 2);
  cr_expect_eq(json_integer_value(json_object_get(json_array_get(j, 0), "seq")), 1);
  cr_expect_eq(json_integer_value(json_object_get(json_array_get(j, 1), "seq")), 2,
               "numbers of actions never written are taken again");
  json_decref(j);
  cs_buf_dispose(&q);
  cs_store_close(a);
}

/* An update of `field` in a fresh instance of M with a set value. */
static int set_value(cs_store *s, const char *instance, const char *field) {
  char json[64];
  snprintf(json, sizeof(json), "{\"%s\":[\"a\"]}", field);
  return act(s, CS_ACTION_CREATE, "M", instance, json);
}

Test(engine_rollback, field_types_of_unwritten_actions_are_forgotten) {
  cs_store *a = tu_open(dir, "a");
  cs_batch *bt;
  tu_act(a, CS_ACTION_CREATE, "M", "p0", "{\"x\":0}");
  /* An aborted batch. */
  cr_assert_eq(cs_batch_begin(&bt, a), 0);
  cr_assert_eq(cs_batch_set_int(bt, "M", "p1", "t1", 1), 0);
  cs_batch_abort(bt);
  cr_expect_eq(set_value(a, "q1", "t1"), 0, "%s", cs_errmsg());
  /* A batch whose commit fails. */
  cr_assert_eq(cs_batch_begin(&bt, a), 0);
  cr_assert_eq(cs_batch_set_int(bt, "M", "p2", "t2", 1), 0);
  cs__db_write_fail_after(1);
  cr_assert_eq(cs_batch_commit(bt), CS_EIO);
  cr_expect_eq(set_value(a, "q2", "t2"), 0, "%s", cs_errmsg());
  /* A single action whose write fails. */
  cs__db_write_fail_after(1);
  cr_assert_eq(act(a, CS_ACTION_CREATE, "M", "p3", "{\"t3\":1}"), CS_EIO);
  cr_expect_eq(set_value(a, "q3", "t3"), 0, "%s", cs_errmsg());
  /* A model definition whose write fails. */
  cs_field_def f = {"t4", CS_FIELD_REGISTER, CS_POLICY_SURFACE};
  cs__db_write_fail_after(1);
  cr_assert_eq(cs_define_model(a, "M", &f, 1), CS_EIO);
  cr_expect_eq(set_value(a, "q4", "t4"), 0, "%s", cs_errmsg());
  /* The types that were written stay. */
  cr_expect_eq(act(a, CS_ACTION_UPDATE, "M", "p0", "{\"x\":[\"a\"]}"), CS_EINVAL);
  cs_store_close(a);
}

/* Every write of a sync fails in turn: each store then hands out the cursor
 * it hands out after a restart, and the next sync converges. */
Test(engine_rollback, a_failed_merge_hands_out_no_cursor_and_syncs_later) {
  int failed = 0;
  for (unsigned long n = 1; n <= 6; n++) {
    char na[16], nb[16], nc[16];
    cs_store *a, *b, *c;
    cs_peer *p;
    cs_sync_result r = CS_SYNC_RESULT_INIT;
    int rc;
    snprintf(na, sizeof(na), "a%lu", n);
    snprintf(nb, sizeof(nb), "b%lu", n);
    snprintf(nc, sizeof(nc), "c%lu", n);
    a = tu_open(dir, na);
    b = tu_open(dir, nb);
    c = tu_open(dir, nc);
    tu_act(b, CS_ACTION_CREATE, "M", "b1", "{\"x\":1}");
    tu_act(a, CS_ACTION_CREATE, "M", "a1", "{\"x\":2}");
    cr_assert_eq(cs_peer_local(&p, b), 0);
    cs__db_write_fail_after(n);
    rc = cs_sync(&r, a, p);
    cs__db_write_fail_after(0);
    cr_assert(rc == 0 || rc == CS_EIO, "write %lu: %s", n, cs_errmsg());
    failed += rc != 0;
    uint64_t ca = pull(NULL, c, a, 0), cb = pull(NULL, c, b, 0);
    cs_peer_free(p);
    cs_store_close(a);
    cs_store_close(b);
    a = tu_open(dir, na);
    b = tu_open(dir, nb);
    cr_expect_eq(pull(NULL, c, a, 0), ca, "write %lu failed: the client's cursor", n);
    cr_expect_eq(pull(NULL, c, b, 0), cb, "write %lu failed: the server's cursor", n);
    cr_assert_eq(cs_peer_local(&p, b), 0);
    cs_sync_result_dispose(&r);
    r = (cs_sync_result)CS_SYNC_RESULT_INIT;
    cr_assert_eq(cs_sync(&r, a, p), 0, "%s", cs_errmsg());
    char *x = tu_get(a, "M", "b1"), *y = tu_get(b, "M", "a1");
    cr_expect_str_eq(x, "{\"x\":1}");
    cr_expect_str_eq(y, "{\"x\":2}");
    free(x);
    free(y);
    cs_sync_result_dispose(&r);
    cs_peer_free(p);
    cs_store_close(a);
    cs_store_close(b);
    cs_store_close(c);
  }
  cr_expect_geq(failed, 2, "only %d writes of the sync failed", failed);
}

Test(engine_rollback, a_server_fsyncs_what_it_acknowledges_in_fast_mode) {
  cs_store *a = tu_open(dir, "a"), *b = tu_open(dir, "b"); /* both fast */
  cs_peer *p;
  tu_act(a, CS_ACTION_CREATE, "M", "a1", "{\"x\":1}");
  cr_assert_eq(cs_peer_local(&p, b), 0);
  unsigned long before = cs__db_synced_writes();
  tu_act(a, CS_ACTION_UPDATE, "M", "a1", "{\"x\":2}");
  cr_expect_eq(cs__db_synced_writes(), before, "a fast local action is not fsynced");
  cr_assert_eq(cs_sync(NULL, a, p), 0, "%s", cs_errmsg());
  cr_expect_gt(cs__db_synced_writes(), before, "the server's merge is fsynced");
  cs_peer_free(p);
  cs_store_close(a);
  cs_store_close(b);
}
