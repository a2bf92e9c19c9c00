/* The outbox (queued local actions) through commits, acknowledgements,
 * reopens and damaged records. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine.h"
#include "tests/helpers/testutil.h"

static char *dir;
static void setup(void) { dir = tu_tempdir(); }
static void teardown(void) {
  tu_rmrf(dir);
  free(dir);
}

TestSuite(engine_outbox, .init = setup, .fini = teardown);

Test(engine_outbox, queued_actions_until_acknowledged) {
  cs_store *a = tu_open(dir, "a"), *hub = tu_open(dir, "hub");
  cs_buf q = CS_BUF_INIT;
  size_t n = 0;
  tu_act(a, CS_ACTION_CREATE, "UserProfile", "p1", "{\"city\":\"Oslo\"}");
  tu_act(a, CS_ACTION_UPDATE, "UserProfile", "p1", "{\"city\":\"Rome\"}");
  cr_assert_eq(cs_get_queued_actions(&q, a), 0);
  json_t *arr = json_loads(q.ptr, 0, NULL);
  cr_assert_eq(json_array_size(arr), 2, "%s", q.ptr);
  cr_expect_str_eq(json_string_value(json_object_get(json_array_get(arr, 0), "type")), "create");
  cr_expect_str_eq(json_string_value(json_object_get(json_array_get(arr, 1), "type")), "update");
  json_decref(arr);
  tu_sync(a, hub);
  cr_assert_eq(cs_outbox_count(&n, a), 0);
  cr_expect_eq(n, 0, "the hub acknowledged both actions");
  json_t *j = tu_get_json(hub, "UserProfile", "p1");
  cr_expect_str_eq(json_string_value(json_object_get(j, "city")), "Rome");
  json_decref(j);
  cs_buf_dispose(&q);
  cs_store_close(a);
  cs_store_close(hub);
}

/* The outbox count and listing agree through acknowledgements and reopens
 * (the count is kept in memory, the scan starts past acknowledged entries). */
static size_t outbox_listed(cs_store *s) {
  cs_buf q = CS_BUF_INIT;
  cr_assert_eq(cs_get_queued_actions(&q, s), 0, "%s", cs_errmsg());
  json_t *arr = json_loads(q.ptr, 0, NULL);
  cr_assert_not_null(arr, "%s", q.ptr);
  size_t n = json_array_size(arr);
  json_decref(arr);
  cs_buf_dispose(&q);
  return n;
}

/* a's outbox counts and lists `want` entries. */
static void expect_queued(cs_store *a, size_t want, const char *when) {
  size_t n = 0;
  cr_assert_eq(cs_outbox_count(&n, a), 0, "%s", cs_errmsg());
  cr_expect_eq(n, want, "count %s", when);
  cr_expect_eq(outbox_listed(a), want, "listed %s", when);
}

/* Syncs a with the hub, after which a's outbox is empty and lists nothing. */
static void expect_all_acknowledged(cs_store *a, cs_store *hub) {
  tu_sync(a, hub);
  expect_queued(a, 0, "after the sync");
}

Test(engine_outbox, outbox_count_follows_acknowledgements_and_reopen) {
  cs_store *a = tu_open(dir, "a"), *hub = tu_open(dir, "hub");
  size_t n = 99;
  for (int i = 0; i < 3; i++)
    tu_act(a, CS_ACTION_UPDATE, "UserProfile", "p1", "{\"age\":1}");
  cr_assert_eq(cs_outbox_count(&n, a), 0);
  cr_expect_eq(n, 3);
  tu_sync(a, hub);
  expect_queued(a, 0, "");
  tu_act(a, CS_ACTION_UPDATE, "UserProfile", "p1", "{\"age\":2}");
  tu_act(a, CS_ACTION_UPDATE, "UserProfile", "p2", "{\"age\":3}");
  expect_queued(a, 2, "");
  cs_store_close(a);
  a = tu_open(dir, "a");
  expect_queued(a, 2, "after reopen");
  tu_sync(a, hub);
  cr_assert_eq(cs_outbox_count(&n, a), 0);
  cr_expect_eq(n, 0);
  cs_store_close(a);
  a = tu_open(dir, "a");
  expect_queued(a, 0, "after reopen, everything acknowledged");
  tu_act(a, CS_ACTION_UPDATE, "UserProfile", "p3", "{\"age\":4}");
  expect_queued(a, 1, "");
  cs_store_close(a);
  cs_store_close(hub);
}

/* A peer that forwards to a store but drops the sections of one model from
 * every request: the answer then acknowledges only the other models' actions,
 * and outbox records holding both kinds are rewritten, not dropped. */
typedef struct dropping_peer {
  cs_peer base;
  cs_peer *inner;
  const char *drop;
} dropping_peer;

static int dropping_exchange(cs_peer *self, cs_buf *response, const char *path,
                             const uint8_t *req, size_t len) {
  dropping_peer *p = (dropping_peer *)self;
  cs_sync_msg msg;
  cs_buf out = CS_BUF_INIT;
  size_t n;
  int rc;
  cr_assert_eq(cs__codec_decode_msg(&msg, req, len), 0, "%s", cs_errmsg());
  n = msg.nmodels;
  for (size_t i = 0; i < n; i++)
    if (strcmp(msg.models[i].name, p->drop) == 0) {
      /* Move it last (the others stay sorted) and leave it out. */
      cs_wire_model gone = msg.models[i];
      memmove(&msg.models[i], &msg.models[i + 1], (n - i - 1) * sizeof(gone));
      msg.models[n - 1] = gone;
      msg.nmodels = n - 1;
      break;
    }
  cr_assert_eq(cs__codec_encode_msg(&out, &msg), 0, "%s", cs_errmsg());
  msg.nmodels = n; /* all of it is disposed */
  rc = p->inner->exchange(p->inner, response, path, (const uint8_t *)out.ptr, out.size);
  cs__sync_msg_dispose(&msg);
  cs_buf_dispose(&out);
  return rc;
}

Test(engine_outbox, outbox_records_partly_acknowledged_keep_the_rest) {
  cs_store *a = tu_open(dir, "a"), *hub = tu_open(dir, "hub");
  dropping_peer dp = {{CS_PEER_VERSION, dropping_exchange, NULL}, NULL, "Beta"};
  cs_batch *b;
  size_t n = 0;
  char inst[16];
  cr_assert_eq(cs_peer_local(&dp.inner, hub), 0);
  /* 600 actions in one batch (three outbox records), the models alternating. */
  cr_assert_eq(cs_batch_begin(&b, a), 0);
  for (int i = 0; i < 600; i++) {
    snprintf(inst, sizeof(inst), "i%d", i);
    cr_assert_eq(cs_batch_set_int(b, i % 2 ? "Beta" : "Alpha", inst, "n", i), 0, "%s",
                 cs_errmsg());
  }
  cr_assert_eq(cs_batch_commit(b), 0, "%s", cs_errmsg());
  expect_queued(a, 600, "");
  cr_assert_eq(cs_sync(NULL, a, &dp.base), 0, "%s", cs_errmsg());
  cr_assert_eq(cs_outbox_count(&n, a), 0);
  cr_expect_eq(n, 300, "the Alpha half acknowledged");
  cs_buf q = CS_BUF_INIT;
  cr_assert_eq(cs_get_queued_actions(&q, a), 0, "%s", cs_errmsg());
  json_t *arr = json_loads(q.ptr, 0, NULL);
  cr_assert_eq(json_array_size(arr), 300);
  for (size_t i = 0; i < 300; i++) {
    json_t *o = json_array_get(arr, i);
    cr_expect_str_eq(json_string_value(json_object_get(o, "model")), "Beta");
    /* the entries keep their sequence numbers: 2, 4, ..., 600 */
    cr_expect_eq(json_integer_value(json_object_get(o, "seq")), (json_int_t)(2 * i + 2));
  }
  json_decref(arr);
  cs_buf_dispose(&q);
  cs_store_close(a);
  a = tu_open(dir, "a");
  expect_queued(a, 300, "after reopen");
  tu_sync(a, hub);
  expect_queued(a, 0, "");
  cs_buf r = CS_BUF_INIT;
  cr_expect_eq(cs_check(&r, a), 0, "%s", r.ptr ? r.ptr : cs_errmsg());
  cs_buf_dispose(&r);
  cs_peer_free(dp.inner);
  cs_store_close(a);
  cs_store_close(hub);
}

/* An entry record as earlier builds wrote it (version 1, fixed fields). */
static void entry_v1(cs_buf *out, const uint8_t *rec, size_t len) {
  cs_outbox_view v;
  uint8_t h[34], l2[2], l4[4];
  cr_assert_eq(cs__outbox_decode(&v, rec, len), 0, "%s", cs_errmsg());
  h[0] = 1;
  h[1] = (uint8_t)v.type;
  cs__put_be64(h + 2, v.origin);
  cs__put_be64(h + 10, v.first);
  cs__put_be64(h + 18, v.last);
  cs__put_be64(h + 26, v.time_ms);
  cr_assert_eq(cs__buf_put(out, h, 34), 0);
  l2[0] = (uint8_t)(v.model_len >> 8), l2[1] = (uint8_t)v.model_len;
  cr_assert_eq(cs__buf_put(out, l2, 2), 0);
  cr_assert_eq(cs__buf_put(out, v.model, v.model_len), 0);
  l2[0] = (uint8_t)(v.instance_len >> 8), l2[1] = (uint8_t)v.instance_len;
  cr_assert_eq(cs__buf_put(out, l2, 2), 0);
  cr_assert_eq(cs__buf_put(out, v.instance, v.instance_len), 0);
  cs__put_be32(l4, (uint32_t)v.data_len);
  cr_assert_eq(cs__buf_put(out, l4, 4), 0);
  cr_assert_eq(cs__buf_put(out, v.data, v.data_len), 0);
}

/* Outbox records written by earlier builds (one entry per record, its
 * sequence number the key) are still listed, counted and acknowledged. */
Test(engine_outbox, single_entry_outbox_records_still_read) {
  cs_store *a = tu_open(dir, "a"), *hub = tu_open(dir, "hub");
  cs_iter *it;
  cs_outbox_cursor c;
  const uint8_t *rec;
  uint64_t seq;
  size_t len;
  tu_act(a, CS_ACTION_UPDATE, "UserProfile", "p1", "{\"age\":1}");
  /* Rewrite the run record as the bare entry record it holds. */
  cr_assert_eq(cs__iter_new(&it, a->db, CS_CF_OUTBOX, NULL, 0, NULL, 0), 0);
  cr_assert(cs__iter_valid(it));
  cs_bytes k = cs__iter_key(it), v = cs__iter_value(it);
  cr_assert_eq(cs__outbox_cursor(&c, cs__get_be64(k.ptr), v.ptr, v.len), 0);
  cr_assert_eq(cs__outbox_next(&c, &seq, &rec, &len), 1);
  cr_assert_eq(seq, cs__get_be64(k.ptr));
  cs_buf old = CS_BUF_INIT;
  entry_v1(&old, rec, len);
  cs_wbatch *b;
  cr_assert_eq(cs__wbatch_new(&b, a->db), 0);
  cs__wbatch_put(b, CS_CF_OUTBOX, k.ptr, k.len, old.ptr, old.size);
  cs_buf_dispose(&old);
  cs__iter_free(it);
  cr_assert_eq(cs__db_write(a->db, b, false), 0);
  cs__wbatch_free(b);
  cs_store_close(a);
  a = tu_open(dir, "a");
  expect_queued(a, 1, "");
  tu_act(a, CS_ACTION_UPDATE, "UserProfile", "p2", "{\"age\":2}");
  cr_expect_eq(outbox_listed(a), 2);
  cs_buf r = CS_BUF_INIT;
  cr_expect_eq(cs_check(&r, a), 0, "%s", r.ptr ? r.ptr : cs_errmsg());
  cs_buf_dispose(&r);
  expect_all_acknowledged(a, hub);
  cs_store_close(a);
  cs_store_close(hub);
}

/* Damaged outbox records are named, never read past their end. */
Test(engine_outbox, damaged_outbox_records_are_refused) {
  static const struct {
    uint8_t v[40];
    size_t len;
    const char *msg;
  } cases[] = {
      {{0}, 0, "bad run header"},
      {{2, 0, 0, 0}, 4, "bad run header"},
      {{4, 0, 0, 0, 1}, 5, "bad run header"},
      {{3, 0, 0, 0, 1}, 5, "runs past the record"},
      {{3, 0, 0, 0, 1, 9, 5, 0}, 8, "runs past the record"},
      {{3, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 0}, 17,
       "runs past the record"},
      {{3, 0, 0, 0, 1, 8, 0}, 7, "below its key"},
      {{3, 0, 0, 0, 2, 9, 0, 0, 0}, 9, "out of order"},
      {{3, 0, 0, 0, 1, 9, 0, 7}, 8, "after its entries"},
      {{2, 0, 0, 0, 0}, 5, "run of 0 entries"},
      {{2, 0, 0, 1, 1}, 5, "run of 257 entries"},
      {{2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9}, 13, "runs past the record"},
      {{2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 9}, 17, "runs past the record"},
      {{2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0}, 17, "below its key"},
      {{2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 7}, 18, "after its entries"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    cs_outbox_cursor c;
    const uint8_t *rec;
    uint64_t seq;
    size_t len;
    int rc = cs__outbox_cursor(&c, 9, cases[i].v, cases[i].len);
    while (rc == 0 && (rc = cs__outbox_next(&c, &seq, &rec, &len)) == 1)
      rc = 0;
    cr_expect_eq(rc, CS_ECORRUPT, "case %zu: %d", i, rc);
    cr_expect(strstr(cs_errmsg(), cases[i].msg) != NULL, "case %zu: '%s' lacks '%s'", i,
              cs_errmsg(), cases[i].msg);
  }
}

/* Runs of version 2 (earlier builds: u64 sequence numbers, u32 lengths,
 * version 1 entry records) are still listed, counted and acknowledged. */
Test(engine_outbox, version_2_runs_still_read) {
  cs_store *a = tu_open(dir, "a"), *hub = tu_open(dir, "hub");
  cs_batch *bt;
  cs_iter *it;
  cs_wbatch *b;
  size_t runs = 0;
  char inst[16];
  cr_assert_eq(cs_batch_begin(&bt, a), 0);
  for (int i = 0; i < 300; i++) {
    snprintf(inst, sizeof(inst), "i%d", i);
    cr_assert_eq(cs_batch_set_int(bt, "M", inst, "n", i), 0, "%s", cs_errmsg());
  }
  cr_assert_eq(cs_batch_commit(bt), 0, "%s", cs_errmsg());
  cr_assert_eq(cs__wbatch_new(&b, a->db), 0);
  cr_assert_eq(cs__iter_new(&it, a->db, CS_CF_OUTBOX, NULL, 0, NULL, 0), 0);
  for (; cs__iter_valid(it); cs__iter_next(it)) {
    cs_bytes k = cs__iter_key(it), v = cs__iter_value(it);
    cs_outbox_cursor c;
    cs_buf old = CS_BUF_INIT;
    const uint8_t *rec;
    uint64_t seq;
    size_t len;
    uint8_t head[5] = {2, 0, 0, 0, 0}, eh[12];
    int rc;
    cr_assert_eq(cs__outbox_cursor(&c, cs__get_be64(k.ptr), v.ptr, v.len), 0);
    cr_assert_eq(v.ptr[0], 3, "written as version 3");
    cs__put_be32(head + 1, c.left);
    cr_assert_eq(cs__buf_put(&old, head, 5), 0);
    while ((rc = cs__outbox_next(&c, &seq, &rec, &len)) == 1) {
      size_t at = old.size;
      cs__put_be64(eh, seq);
      cr_assert_eq(cs__buf_put(&old, eh, 12), 0);
      entry_v1(&old, rec, len);
      cs__put_be32((uint8_t *)old.ptr + at + 8, (uint32_t)(old.size - at - 12));
    }
    cr_assert_eq(rc, 0, "%s", cs_errmsg());
    cs__wbatch_put(b, CS_CF_OUTBOX, k.ptr, k.len, old.ptr, old.size);
    cs_buf_dispose(&old);
    runs++;
  }
  cs__iter_free(it);
  cr_expect_eq(runs, 2);
  cr_assert_eq(cs__db_write(a->db, b, false), 0);
  cs__wbatch_free(b);
  cs_store_close(a);
  a = tu_open(dir, "a");
  expect_queued(a, 300, "");
  expect_all_acknowledged(a, hub);
  cs_store_close(a);
  cs_store_close(hub);
}

/* Every cut of an entry record, and names longer than allowed, are refused. */
Test(engine_outbox, damaged_entry_records_are_refused) {
  cs_outbox_rec r = {2, 0x1122334455667788ull, 300, 302, 1795000000000ull,
                     "UserProfile", "profile_1", "{\"a\":1}"};
  cs_outbox_view v;
  cs_buf e = CS_BUF_INIT;
  cr_assert_eq(cs__outbox_encode(&e, &r), 0);
  cr_assert_eq(cs__outbox_decode(&v, (const uint8_t *)e.ptr, e.size), 0, "%s", cs_errmsg());
  cr_expect(v.type == 2 && v.origin == r.origin && v.first == 300 && v.last == 302 &&
            v.time_ms == r.time_ms);
  cr_expect(v.model_len == 11 && memcmp(v.model, "UserProfile", 11) == 0);
  cr_expect(v.instance_len == 9 && memcmp(v.instance, "profile_1", 9) == 0);
  cr_expect(v.data_len == 7 && memcmp(v.data, "{\"a\":1}", 7) == 0);
  for (size_t len = 0; len < e.size; len++)
    cr_expect_eq(cs__outbox_decode(&v, (const uint8_t *)e.ptr, len), CS_ECORRUPT, "cut at %zu",
                 len);
  cs__buf_putc(&e, 0);
  cr_expect_eq(cs__outbox_decode(&v, (const uint8_t *)e.ptr, e.size), CS_ECORRUPT,
               "a byte left over");
  {
    /* A model name length of 70,000 (above 65,535), as the varint 0xf0 0xa2 0x04. */
    uint8_t bad[64] = {2, 2, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 1, 0xf0, 0xa2, 0x04};
    cr_expect_eq(cs__outbox_decode(&v, bad, sizeof(bad)), CS_ECORRUPT);
    bad[1] = 9; /* unknown type */
    cr_expect_eq(cs__outbox_decode(&v, bad, sizeof(bad)), CS_ECORRUPT);
  }
  cs_buf_dispose(&e);
}

/* An action whose outbox entry fails to be added leaves no part of it in
 * the run: the rest of the batch commits and lists. */
Test(engine_outbox, a_failed_action_leaves_no_partial_entry) {
  int fails = 0;
  /* Every allocation point of the third action (some failures are taken
   * in stride, so the first success does not end the sweep). */
  for (unsigned long n = 1; n <= 60; n++) {
    char name[16];
    cs_store *a;
    cs_batch *b;
    cs_buf q = CS_BUF_INIT;
    size_t count = 0;
    int rc;
    snprintf(name, sizeof(name), "a%lu", n);
    a = tu_open(dir, name);
    cr_assert_eq(cs_batch_begin(&b, a), 0);
    cr_assert_eq(cs_batch_set_int(b, "M", "p1", "n", 1), 0);
    cr_assert_eq(cs_batch_set_int(b, "M", "p2", "n", 2), 0);
    cs__alloc_fail_after(n);
    rc = cs_batch_set_str(b, "M", "p3", "s", "three");
    cs__alloc_fail_after(0);
    cr_assert(rc == 0 || rc == CS_ENOMEM, "%d %s", rc, cs_errmsg());
    fails += rc != 0;
    cr_assert_eq(cs_batch_set_int(b, "M", "p4", "n", 4), 0, "%s", cs_errmsg());
    cr_assert_eq(cs_batch_commit(b), 0, "%s", cs_errmsg());
    cr_assert_eq(cs_get_queued_actions(&q, a), 0, "allocation %lu: %s", n, cs_errmsg());
    cr_assert_eq(cs_outbox_count(&count, a), 0);
    cr_expect_eq(outbox_listed(a), count);
    cr_expect(count == 3 || count == 4, "%zu entries", count);
    cs_buf_dispose(&q);
    cs_store_close(a);
  }
  cr_expect_gt(fails, 3, "only %d allocations failed", fails);
}
