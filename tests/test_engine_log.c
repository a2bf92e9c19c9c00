/* The log as the source of a sync answer: runs a peer lacks entirely are
 * collected from their tables, and the answer must hold exactly the actions
 * that decoding every run gives. */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine.h"
#include "tests/helpers/testutil.h"

static char *dir;
static void setup(void) {
  dir = tu_tempdir();
}
static void teardown(void) {
  cs__log_runs_by_tables = true;
  tu_rmrf(dir);
  free(dir);
}

TestSuite(engine_log, .init = setup, .fini = teardown);

/* n edits (two actions each, one of them on a set) of 97 docs in one batch:
 * several log runs of CS_SEGMENT_MAX_ACTIONS. */
static void edits(cs_store *s, int base, int n) {
  cs_batch *b;
  char inst[32];
  cr_assert_eq(cs_batch_begin(&b, s), 0, "%s", cs_errmsg());
  for (int i = 0; i < n; i++) {
    snprintf(inst, sizeof(inst), "p%d", (base + i) % 97);
    cr_assert_eq(cs_batch_set_int(b, "UserProfile", inst, i % 3 ? "age" : "score", i), 0);
    cr_assert_eq(cs_batch_set_add(b, "UserProfile", inst, "tags", i % 2 ? "a" : "b"), 0);
  }
  cr_assert_eq(cs_batch_commit(b), 0, "%s", cs_errmsg());
}

/* The bytes of a sync request from a peer that knows `knows` of
 * UserProfile (NULL: a request with no section, knowing nothing). */
static void request(cs_buf *bytes, const cs_dotset *knows) {
  cs_sync_msg req;
  cs_wire_model wm;
  memset(&req, 0, sizeof(req));
  memset(&wm, 0, sizeof(wm));
  req.type = CS_MSG_SYNC_REQUEST;
  req.sender = 0x5eed;
  req.clock = CS_HLC_MAKE(cs__now_ms(), 0);
  if (knows) {
    wm.name = "UserProfile";
    wm.knowledge = *knows;
    req.models = &wm;
    req.nmodels = 1;
  }
  cr_assert_eq(cs__codec_encode_msg(bytes, &req), 0, "%s", cs_errmsg());
}

/* What store s answers to a peer that knows `knows` of UserProfile. */
static void answer(cs_sync_msg *out, cs_store *s, const cs_dotset *knows) {
  cs_buf bytes = CS_BUF_INIT, resp = CS_BUF_INIT;
  int status = 0;

  request(&bytes, knows);
  cr_assert_eq(cs__store_serve(&resp, &status, s, "/v1/sync", (const uint8_t *)bytes.ptr,
                               bytes.size, NULL, true),
               0, "%s", cs_errmsg());
  cr_assert_eq(cs__codec_decode_msg(out, (const uint8_t *)resp.ptr, resp.size), 0, "%s",
               cs_errmsg());
  cs_buf_dispose(&bytes);
  cs_buf_dispose(&resp);
}

/* Both answers hold the same actions, in the same order, on the same
 * instances; returns how many. */
static size_t expect_same_actions(const cs_sync_msg *x, const cs_sync_msg *y) {
  cr_assert_eq(x->nmodels, 1);
  cr_assert_eq(y->nmodels, 1);
  const cs_wire_model *a = &x->models[0], *b = &y->models[0];
  cr_assert_eq(a->nstates, 0);
  cr_assert_eq(b->nstates, 0);
  cr_assert_eq(a->nactions, b->nactions);
  cr_assert_eq(a->ninstances, b->ninstances);
  for (size_t i = 0; i < a->nactions; i++) {
    const cs_wire_action *p = &a->actions[i], *q = &b->actions[i];
    cr_assert_str_eq(a->instances[p->instance], b->instances[q->instance], "action %zu", i);
    cr_assert(p->origin == q->origin && p->first == q->first && p->last == q->last &&
                  p->hlc == q->hlc,
              "action %zu", i);
    cr_assert(cs__doc_equal(&p->doc, &q->doc), "action %zu: documents differ", i);
    cr_assert(cs__dotset_equal(&p->ctx, &q->ctx), "action %zu: contexts differ", i);
  }
  return a->nactions;
}

static size_t compare_answers(cs_store *s, const cs_dotset *knows) {
  cs_sync_msg by_tables, decoded;
  size_t n;
  cs__log_runs_by_tables = true;
  answer(&by_tables, s, knows);
  cs__log_runs_by_tables = false;
  answer(&decoded, s, knows);
  cs__log_runs_by_tables = true;
  n = expect_same_actions(&by_tables, &decoded);
  cs__sync_msg_dispose(&by_tables);
  cs__sync_msg_dispose(&decoded);
  return n;
}

/* The last dot of each of origin's runs in s's log, in order. */
static size_t run_ends(uint64_t *out, size_t max, cs_store *s, cs_replica origin) {
  cs_buf lo = CS_BUF_INIT;
  cs_iter *it;
  size_t n = 0;
  cr_assert_eq(cs__key_name(&lo, "UserProfile"), 0);
  cr_assert_eq(cs__key_u64(&lo, origin), 0);
  cr_assert_eq(cs__iter_new(&it, s->db, CS_CF_LOG, lo.ptr, lo.size, NULL, 0), 0);
  for (cs__iter_seek(it, lo.ptr, lo.size); cs__iter_valid(it); cs__iter_next(it)) {
    cs_bytes k = cs__iter_key(it);
    size_t pos = lo.size;
    if (k.len < lo.size || memcmp(k.ptr, lo.ptr, lo.size) != 0)
      break;
    cr_assert_lt(n, max);
    cr_assert_eq(cs__key_read_u64(&out[n++], k.ptr, k.len, &pos), 0);
  }
  cs__iter_free(it);
  cs_buf_dispose(&lo);
  return n;
}

/* A peer knowing origin's dots 1..upto. */
static void knows_upto(cs_dotset *knows, cs_replica origin, uint64_t upto) {
  cs__dotset_clear(knows);
  for (uint64_t d = 1; d <= upto; d++)
    cr_assert_eq(cs__dotset_add(knows, (cs_dot){origin, d}), 0);
}

Test(engine_log, runs_collected_by_their_tables_give_the_same_answer) {
  cs_store *a = tu_open(dir, "a"), *c = tu_open(dir, "c");
  cs_replica ra = a->self, rc = c->self;
  cs_dotset knows = CS_DOTSET_INIT;

  /* a's log: its own runs (two batches), and c's run relayed through a. */
  edits(a, 0, 700);
  edits(c, 50, 300);
  tu_sync(c, a);
  edits(a, 700, 500);
  uint64_t top = cs__dotset_max(&cs__model_find(a, "UserProfile")->knowledge, ra);
  cr_assert_geq(top, 2400, "a dot at least an action");

  /* Knows nothing; a prefix ending just before, at and just after each
   * run's first and last dots, alone and with a later dot beside it; all of
   * c. */
  uint64_t ends[64];
  size_t nruns = run_ends(ends, 64, a, ra);
  cr_assert_geq(nruns, 6, "runs of at most %d actions", CS_SEGMENT_MAX_ACTIONS);
  cr_assert_eq(ends[nruns - 1], top);
  cr_expect_eq(compare_answers(a, &knows), 3000);
  for (size_t i = 0; i < nruns; i++) {
    uint64_t first = i ? ends[i - 1] + 1 : 1;
    const uint64_t cuts[] = {first - 1, first, first + 1, ends[i] - 1, ends[i]};
    for (size_t j = 0; j < sizeof(cuts) / sizeof(cuts[0]); j++) {
      knows_upto(&knows, ra, cuts[j]);
      compare_answers(a, &knows);
      if (cuts[j] + 300 < top) {
        cr_assert_eq(cs__dotset_add(&knows, (cs_dot){ra, cuts[j] + 300}), 0);
        compare_answers(a, &knows);
      }
    }
  }
  knows_upto(&knows, rc, cs__dotset_max(&cs__model_find(a, "UserProfile")->knowledge, rc));
  cr_expect_eq(compare_answers(a, &knows), 2400, "a's own actions, none of c's");
  cs__dotset_dispose(&knows);
  cs_store_close(a);
  cs_store_close(c);
}

/* Rewrites each of the runs of s's log through fn(decoded run, its bytes). */
static void rewrite_runs(cs_store *s, void (*fn)(cs_sync_msg *run, cs_buf *bytes)) {
  cs_buf lo = CS_BUF_INIT, val = CS_BUF_INIT;
  cs_iter *it;
  cs_wbatch *b;
  cr_assert_eq(cs__key_name(&lo, "UserProfile"), 0);
  cr_assert_eq(cs__iter_new(&it, s->db, CS_CF_LOG, lo.ptr, lo.size, NULL, 0), 0);
  cr_assert_eq(cs__wbatch_new(&b, s->db), 0);
  for (cs__iter_seek(it, lo.ptr, lo.size); cs__iter_valid(it); cs__iter_next(it)) {
    cs_bytes k = cs__iter_key(it), v = cs__iter_value(it);
    cs_sync_msg run;
    cr_assert_eq(cs__segment_decode(&run, v.ptr, v.len), 0, "%s", cs_errmsg());
    cs__buf_clear(&val);
    cr_assert_eq(cs__buf_put(&val, v.ptr, v.len), 0);
    fn(&run, &val);
    cs__wbatch_put(b, CS_CF_LOG, k.ptr, k.len, val.ptr, val.size);
    cs__sync_msg_dispose(&run);
  }
  cs__iter_free(it);
  cr_assert_eq(cs__db_write(s->db, b, true), 0);
  cs__wbatch_free(b);
  cs_buf_dispose(&lo);
  cs_buf_dispose(&val);
}

/* The same actions under a knowledge: a shape the tables do not describe. */
static void add_knowledge(cs_sync_msg *run, cs_buf *bytes) {
  cr_assert_eq(cs__dotset_add(&run->models[0].knowledge, (cs_dot){run->sender, 1}), 0);
  cs__buf_clear(bytes);
  cr_assert_eq(cs__codec_encode_run(bytes, run), 0, "%s", cs_errmsg());
}

/* A run as format 2 and earlier stored it: a checksummed sync request. */
static void old_frame(cs_sync_msg *run, cs_buf *bytes) {
  cs__buf_clear(bytes);
  cr_assert_eq(cs__codec_encode_msg(bytes, run), 0, "%s", cs_errmsg());
}

/* The frame kind of every run of s's log. */
static void expect_kinds(cs_store *s, uint8_t kind) {
  cs_buf lo = CS_BUF_INIT;
  cs_iter *it;
  size_t n = 0;
  cr_assert_eq(cs__key_name(&lo, "UserProfile"), 0);
  cr_assert_eq(cs__iter_new(&it, s->db, CS_CF_LOG, lo.ptr, lo.size, NULL, 0), 0);
  for (cs__iter_seek(it, lo.ptr, lo.size); cs__iter_valid(it); cs__iter_next(it), n++) {
    cs_bytes v = cs__iter_value(it);
    cr_assert_geq(v.len, 2);
    cr_expect_eq(v.ptr[1], kind);
  }
  cr_expect_gt(n, 1);
  cs__iter_free(it);
  cs_buf_dispose(&lo);
}

Test(engine_log, runs_are_stored_without_a_checksum_and_older_runs_read) {
  cs_store *a = tu_open(dir, "a");
  cs_dotset knows = CS_DOTSET_INIT;
  edits(a, 0, 400);
  expect_kinds(a, 19);
  rewrite_runs(a, old_frame);
  expect_kinds(a, CS_MSG_SYNC_REQUEST);
  cr_expect_eq(compare_answers(a, &knows), 800);
  knows_upto(&knows, a->self, 300);
  compare_answers(a, &knows);
  cs__dotset_dispose(&knows);
  cs_store_close(a);
}

/* The stored frame is not a message: decoding it as one fails, and only a
 * sync request is stored as a run. */
Test(engine_log, a_run_frame_is_never_read_as_a_message) {
  cs_sync_msg run, back;
  cs_buf bytes = CS_BUF_INIT, lo = CS_BUF_INIT;
  cs_store *a = tu_open(dir, "a");
  cs_iter *it;
  edits(a, 0, 10);
  cr_assert_eq(cs__key_name(&lo, "UserProfile"), 0);
  cr_assert_eq(cs__iter_new(&it, a->db, CS_CF_LOG, lo.ptr, lo.size, NULL, 0), 0);
  cs__iter_seek(it, lo.ptr, lo.size);
  cr_assert(cs__iter_valid(it));
  cs_bytes v = cs__iter_value(it);
  cr_assert_eq(cs__segment_decode(&run, v.ptr, v.len), 0, "%s", cs_errmsg());
  cr_expect_eq(cs__codec_decode_msg(&back, v.ptr, v.len), CS_ECORRUPT);
  /* The checksum has no key: a sender can seal a run frame. The kind check
   * still refuses it, whole or streamed. */
  cs_buf sealed = CS_BUF_INIT;
  uint8_t sum[16];
  crypto_generichash(sum, sizeof(sum), v.ptr, v.len, NULL, 0);
  cr_assert_eq(cs__buf_put(&sealed, v.ptr, v.len), 0);
  cr_assert_eq(cs__buf_put(&sealed, sum, sizeof(sum)), 0);
  cr_expect_eq(cs__codec_decode_msg(&back, (const uint8_t *)sealed.ptr, sealed.size), CS_ECORRUPT);
  cr_expect(strstr(cs_errmsg(), "unknown message type 19") != NULL, "%s", cs_errmsg());
  cs_buf resp = CS_BUF_INIT;
  int status = 0;
  cr_expect_eq(cs__store_serve(&resp, &status, a, "/v1/sync", (const uint8_t *)sealed.ptr,
                               sealed.size, NULL, true),
               CS_ECORRUPT);
  cr_expect(strstr(cs_errmsg(), "unknown message type 19") != NULL, "%s", cs_errmsg());
  cs_buf_dispose(&resp);
  cs_buf_dispose(&sealed);
  cr_expect_eq(cs__codec_encode_run(&bytes, &run), 0);
  cr_expect(bytes.size == v.len && memcmp(bytes.ptr, v.ptr, v.len) == 0, "canonical");
  run.type = CS_MSG_SYNC_RESPONSE;
  cs__buf_clear(&bytes);
  cr_expect_eq(cs__codec_encode_run(&bytes, &run), CS_EINVAL);
  cr_expect(strstr(cs_errmsg(), "a log run is a sync request") != NULL, "%s", cs_errmsg());
  cs__iter_free(it);
  cs__sync_msg_dispose(&run);
  cs_buf_dispose(&bytes);
  cs_buf_dispose(&lo);
  cs_store_close(a);
}

Test(engine_log, runs_of_another_shape_are_decoded) {
  cs_store *a = tu_open(dir, "a");
  cs_dotset knows = CS_DOTSET_INIT;
  edits(a, 0, 400);
  rewrite_runs(a, add_knowledge);
  cr_expect_eq(compare_answers(a, &knows), 800);
  knows_upto(&knows, a->self, 300);
  compare_answers(a, &knows);
  cs__dotset_dispose(&knows);
  cs_store_close(a);
}

/* A run of the older frame whose checksum no longer matches: its tables
 * still read, but the answer fails, naming the run and the checksum. */
static void break_checksum(cs_sync_msg *run, cs_buf *bytes) {
  old_frame(run, bytes);
  bytes->ptr[bytes->size - 1] ^= 1;
}

/* A run cut short: its tables still read, the full decode fails. */
static void cut_short(cs_sync_msg *run, cs_buf *bytes) {
  (void)run;
  bytes->size -= 1;
}

/* A run whose kind byte is damaged does not read as a run: the full decode
 * reports it (by its checksum, which the damage breaks too). */
static void break_kind(cs_sync_msg *run, cs_buf *bytes) {
  (void)run;
  bytes->ptr[1] = 9;
}

/* Serving a store whose runs `damage` rewrote fails with CS_ECORRUPT,
 * naming the log and saying `why`. */
static void expect_refused(const char *name, void (*damage)(cs_sync_msg *, cs_buf *),
                           const char *why) {
  cs_store *a = tu_open(dir, name);
  cs_buf bytes = CS_BUF_INIT, resp = CS_BUF_INIT;
  int status = 0;
  edits(a, 0, 10);
  rewrite_runs(a, damage);
  request(&bytes, NULL);
  cr_expect_eq(cs__store_serve(&resp, &status, a, "/v1/sync", (const uint8_t *)bytes.ptr,
                               bytes.size, NULL, true),
               CS_ECORRUPT, "%s", name);
  cr_expect(strstr(cs_errmsg(), "log of model 'UserProfile'") != NULL, "%s", cs_errmsg());
  cr_expect(strstr(cs_errmsg(), why) != NULL, "%s: %s", name, cs_errmsg());
  cs_buf_dispose(&bytes);
  cs_buf_dispose(&resp);
  cs_store_close(a);
}

Test(engine_log, a_damaged_run_fails_the_answer_naming_it) {
  expect_refused("sum", break_checksum, "checksum");
  expect_refused("kind", break_kind, "checksum");
  expect_refused("cut", cut_short, "truncated");
}

/* Runs re-encoded whole into shapes no run has: the
 * answer fails, naming the run and what is wrong with it. */
static void reencode(cs_sync_msg *run, cs_buf *bytes) {
  cs__buf_clear(bytes);
  cr_assert_eq(cs__codec_encode_run(bytes, run), 0, "%s", cs_errmsg());
}

static void other_sender(cs_sync_msg *run, cs_buf *bytes) {
  run->sender ^= 1;
  reencode(run, bytes);
}

static void with_a_state(cs_sync_msg *run, cs_buf *bytes) {
  cs_wire_model *wm = &run->models[0];
  wm->states = cs__calloc(1, sizeof(cs_wire_state));
  wm->nstates = 1;
  reencode(run, bytes);
}

static void same_name_twice(cs_sync_msg *run, cs_buf *bytes) {
  cs_wire_model *wm = &run->models[0];
  cr_assert_geq(wm->ninstances, 2);
  memcpy(wm->instances[1], wm->instances[0],
         strlen(wm->instances[0])); /* "p0", "p1": same length */
  reencode(run, bytes);
}

static void no_section(cs_sync_msg *run, cs_buf *bytes) {
  size_t n = run->nmodels;
  run->nmodels = 0;
  reencode(run, bytes);
  run->nmodels = n;
}

static void two_sections(cs_sync_msg *run, cs_buf *bytes) {
  cs_wire_model *one = run->models, two[2];
  memset(two, 0, sizeof(two));
  two[0] = two[1] = one[0]; /* the same actions again, under another model */
  two[1].name = "~later";
  run->models = two;
  run->nmodels = 2;
  reencode(run, bytes);
  run->models = one;
  run->nmodels = 1;
}

Test(engine_log, a_run_of_another_shape_fails_the_answer_naming_it) {
  expect_refused("sender", other_sender, "an action of another origin");
  expect_refused("state", with_a_state, "expected one model section of actions");
  expect_refused("none", no_section, "expected one model section of actions");
  expect_refused("dup", same_name_twice, "duplicate name");
  expect_refused("two", two_sections, "expected one model section of actions");
}

/* Each allocation of an answer read from the log may fail: the answer then
 * fails with CS_ENOMEM, and the next one is whole. */
Test(engine_log, every_allocation_failure_of_an_answer_is_reported) {
  cs_store *a = tu_open(dir, "a");
  cs_sync_msg got;
  cs_buf bytes = CS_BUF_INIT, resp = CS_BUF_INIT;
  int fails = 0, rc;
  edits(a, 0, 130); /* two runs */
  request(&bytes, NULL);
  for (unsigned long n = 1;; n++) {
    int status = 0;
    cs__buf_clear(&resp);
    cs__alloc_fail_after(n);
    rc = cs__store_serve(&resp, &status, a, "/v1/sync", (const uint8_t *)bytes.ptr, bytes.size,
                         NULL, true);
    cs__alloc_fail_after(0);
    if (rc == 0)
      break;
    cr_assert_eq(rc, CS_ENOMEM, "allocation %lu: %d %s", n, rc, cs_errmsg());
    fails++;
  }
  cr_expect_gt(fails, 100, "only %d allocations failed", fails);
  cr_assert_eq(cs__codec_decode_msg(&got, (const uint8_t *)resp.ptr, resp.size), 0, "%s",
               cs_errmsg());
  cr_expect_eq(got.models[0].nactions, 260);
  cs__sync_msg_dispose(&got);
  cs_buf_dispose(&bytes);
  cs_buf_dispose(&resp);
  cs_store_close(a);
}
