/*
 * Rules that deliberate bugs once broke without any test noticing (see
 * tests/mutate/mutants.txt): read rights per model, the default clock skew
 * and the stamp of each action, a duplicate changing nothing, the outbox
 * acknowledged dot by dot, and a merge that is one write whichever write of
 * it fails.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine.h"
#include "tests/helpers/testutil.h"

static char *dir;
static void setup(void) { dir = tu_tempdir(); }
static void teardown(void) {
  cs__db_write_fail_after(0);
  tu_rmrf(dir);
  free(dir);
}
TestSuite(engine_rules, .init = setup, .fini = teardown, .timeout = 120);

static void encode(cs_buf *out, uint8_t type, cs_replica sender, cs_wire_model *wm, size_t n) {
  cs_sync_msg msg;
  memset(&msg, 0, sizeof(msg));
  msg.type = type;
  msg.sender = sender;
  msg.clock = CS_HLC_MAKE(cs__now_ms(), 0);
  msg.models = wm;
  msg.nmodels = n;
  cs__buf_clear(out);
  cr_assert_eq(cs__codec_encode_msg(out, &msg), 0, "%s", cs_errmsg());
}

/* One action of origin 7 (dot 1) on instance "x" of model "M": the action
 * stamped `hlc`, its register entry `entry_hlc`. */
typedef struct one_action {
  cs_wire_model wm;
  cs_wire_action a;
  cs_field f;
  cs_reg_entry e;
  cs_vv_entry vv;
  char *inst;
} one_action;

static void one_action_init(one_action *o, cs_hlc hlc, cs_hlc entry_hlc) {
  memset(o, 0, sizeof(*o));
  o->inst = "x";
  o->e = (cs_reg_entry){{7, 1}, entry_hlc, cs__val_int(1)};
  o->f.name = "v";
  o->f.kind = CS_KIND_REG;
  o->f.u.reg.entries = &o->e;
  o->f.u.reg.len = 1;
  o->a.origin = 7;
  o->a.first = o->a.last = 1;
  o->a.hlc = hlc;
  o->a.doc.fields = &o->f;
  o->a.doc.nfields = 1;
  o->vv = (cs_vv_entry){7, 1};
  o->a.ctx.vv = &o->vv;
  o->a.ctx.vv_len = 1;
  o->wm.name = "M";
  o->wm.instances = &o->inst;
  o->wm.ninstances = 1;
  o->wm.actions = &o->a;
  o->wm.nactions = 1;
}

/* A section of `model` with one whole state of instance "x": register v = 5
 * under dot (origin, 1), the knowledge origin:1..knows. */
typedef struct one_state {
  cs_wire_model wm;
  cs_wire_state st;
  cs_field f;
  cs_reg_entry e;
  cs_vv_entry vv;
  char *inst;
} one_state;

static void one_state_init(one_state *o, const char *model, cs_replica origin, uint64_t knows) {
  memset(o, 0, sizeof(*o));
  o->inst = "x";
  o->e = (cs_reg_entry){{origin, 1}, CS_HLC_MAKE(cs__now_ms(), 0), cs__val_int(5)};
  o->f.name = "v";
  o->f.kind = CS_KIND_REG;
  o->f.u.reg.entries = &o->e;
  o->f.u.reg.len = 1;
  o->st.doc.fields = &o->f;
  o->st.doc.nfields = 1;
  o->vv = (cs_vv_entry){origin, knows};
  o->wm.name = (char *)model;
  o->wm.instances = &o->inst;
  o->wm.ninstances = 1;
  o->wm.states = &o->st;
  o->wm.nstates = 1;
  o->wm.knowledge.vv = &o->vv;
  o->wm.knowledge.vv_len = 1;
}

static int serve(cs_store *s, const char *path, const cs_buf *req, cs_buf *resp,
                 const uint8_t *key) {
  int status = 0;
  cs__buf_clear(resp);
  return cs__store_serve(resp, &status, s, path, (const uint8_t *)req->ptr, req->size, key,
                         key == NULL);
}

/* ---- read rights ---- */

/* The sections of an answer, as "A,B,". */
static void section_names(char *out, size_t cap, const cs_buf *resp) {
  cs_sync_msg m;
  out[0] = 0;
  cr_assert_eq(cs__codec_decode_msg(&m, (const uint8_t *)resp->ptr, resp->size), 0, "%s",
               cs_errmsg());
  for (size_t i = 0; i < m.nmodels; i++) {
    strncat(out, m.models[i].name, cap - strlen(out) - 2);
    strcat(out, ",");
  }
  cs__sync_msg_dispose(&m);
}

Test(engine_rules, a_key_reads_only_the_models_it_may_read) {
  cs_store *s = tu_open(dir, "s"), *c = tu_open(dir, "c");
  cs_buf req = CS_BUF_INIT, resp = CS_BUF_INIT;
  char hex[65], names[64];
  const char *a[] = {"A"};
  tu_act(s, CS_ACTION_UPDATE, "A", "x", "{\"v\":1}");
  tu_act(s, CS_ACTION_UPDATE, "B", "y", "{\"secret\":2}");
  cs_store_public_key(hex, c);
  cr_assert_eq(cs_trust(s, hex, a, 1, a, 1), 0, "%s", cs_errmsg());
  encode(&req, CS_MSG_SYNC_REQUEST, c->self, NULL, 0);
  cr_assert_eq(serve(s, "/v1/sync", &req, &resp, c->key.pk), 0, "%s", cs_errmsg());
  section_names(names, sizeof(names), &resp);
  cr_expect_str_eq(names, "A,", "a sync answer holds a model the key may not read");
  encode(&req, CS_MSG_PULL_REQUEST, c->self, NULL, 0);
  cr_assert_eq(serve(s, "/v1/pull", &req, &resp, c->key.pk), 0, "%s", cs_errmsg());
  section_names(names, sizeof(names), &resp);
  cr_expect_str_eq(names, "A,", "a pull answer holds a model the key may not read");
  cs_buf_dispose(&req);
  cs_buf_dispose(&resp);
  cs_store_close(s);
  cs_store_close(c);
}

/* ---- clock skew ---- */

/* The default limit is 60 s: 90 s ahead is refused, 30 s taken. */
Test(engine_rules, the_default_skew_limit_is_sixty_seconds) {
  cs_store *s = tu_open(dir, "s");
  cs_buf req = CS_BUF_INIT, resp = CS_BUF_INIT;
  one_action o;
  cs_hlc ahead = CS_HLC_MAKE(cs__now_ms() + 90000, 0);
  one_action_init(&o, ahead, ahead);
  encode(&req, CS_MSG_SYNC_REQUEST, 42, &o.wm, 1);
  cr_expect_eq(serve(s, "/v1/sync", &req, &resp, NULL), CS_ECLOCK, "90 s ahead: %s",
               cs_errmsg());
  cs_hlc near = CS_HLC_MAKE(cs__now_ms() + 30000, 0);
  one_action_init(&o, near, near);
  encode(&req, CS_MSG_SYNC_REQUEST, 42, &o.wm, 1);
  cr_expect_eq(serve(s, "/v1/sync", &req, &resp, NULL), 0, "30 s ahead: %s", cs_errmsg());
  cs_buf_dispose(&req);
  cs_buf_dispose(&resp);
  cs_store_close(s);
}

/* An action stamped far ahead whose entries and message are not: its stamp
 * alone would move this store's clock. */
Test(engine_rules, an_action_stamped_ahead_is_refused_whatever_its_entries) {
  cs_store *s = tu_open(dir, "s");
  cs_buf req = CS_BUF_INIT, resp = CS_BUF_INIT;
  one_action o;
  uint64_t before = tu_fingerprint(s);
  one_action_init(&o, CS_HLC_MAKE(cs__now_ms() + 600000, 0), CS_HLC_MAKE(cs__now_ms(), 0));
  encode(&req, CS_MSG_SYNC_REQUEST, 42, &o.wm, 1);
  cr_expect_eq(serve(s, "/v1/sync", &req, &resp, NULL), CS_ECLOCK, "%s", cs_errmsg());
  cr_expect(strstr(cs_errmsg(), "action 0") != NULL, "%s", cs_errmsg());
  cr_expect_eq(tu_fingerprint(s), before);
  cs_buf_dispose(&req);
  cs_buf_dispose(&resp);
  cs_store_close(s);
}

/* ---- duplicates ---- */

/* The same request twice: the second changes no document, cursor or log. */
Test(engine_rules, a_duplicate_action_changes_nothing) {
  cs_store *s = tu_open(dir, "s");
  cs_buf req = CS_BUF_INIT, resp = CS_BUF_INIT;
  one_action o;
  one_action_init(&o, CS_HLC_MAKE(cs__now_ms(), 0), CS_HLC_MAKE(cs__now_ms(), 0));
  encode(&req, CS_MSG_SYNC_REQUEST, 42, &o.wm, 1);
  cr_assert_eq(serve(s, "/v1/sync", &req, &resp, NULL), 0, "%s", cs_errmsg());
  uint64_t data = tu_fingerprint_data(s), cursor = s->cursor;
  cr_assert_eq(serve(s, "/v1/sync", &req, &resp, NULL), 0, "%s", cs_errmsg());
  cr_expect_eq(tu_fingerprint_data(s), data, "a duplicate rewrote documents or the log");
  cr_expect_eq(s->cursor, cursor, "a duplicate took a change cursor");
  cs_buf_dispose(&req);
  cs_buf_dispose(&resp);
  cs_store_close(s);
}

/* ---- outbox acknowledgement ---- */

/* A peer whose answer knows the first of two actions: the second stays
 * queued; an answer without the model acknowledges neither. */
Test(engine_rules, the_outbox_is_acknowledged_dot_by_dot) {
  cs_store *c = tu_open(dir, "c");
  tu_canned_peer cp;
  cs_wire_model wm;
  size_t n = 0;
  tu_canned_init(&cp);
  tu_act(c, CS_ACTION_UPDATE, "M", "x", "{\"v\":1}");
  uint64_t first_last = cs__dotset_max(&cs__model_find(c, "M")->knowledge, c->self);
  tu_act(c, CS_ACTION_UPDATE, "M", "x", "{\"v\":2}");
  memset(&wm, 0, sizeof(wm));
  wm.name = "Other";
  encode(&cp.answer, CS_MSG_SYNC_RESPONSE, 99, &wm, 1);
  cr_assert_eq(cs_sync(NULL, c, &cp.base), 0, "%s", cs_errmsg());
  cr_assert_eq(cs_outbox_count(&n, c), 0);
  cr_expect_eq(n, 2, "an answer without the model acknowledged its actions");
  cs_vv_entry vv = {c->self, first_last};
  wm.name = "M";
  wm.knowledge.vv = &vv;
  wm.knowledge.vv_len = 1;
  encode(&cp.answer, CS_MSG_SYNC_RESPONSE, 99, &wm, 1);
  cr_assert_eq(cs_sync(NULL, c, &cp.base), 0, "%s", cs_errmsg());
  cr_assert_eq(cs_outbox_count(&n, c), 0);
  cr_expect_eq(n, 1, "the action the answer does not know was acknowledged");
  cs_buf_dispose(&cp.answer);
  cs_store_close(c);
}

/* ---- one write per merge ---- */

/* Whichever write of a sync fails, each store reopens whole: what its
 * documents and log hold, its knowledge holds (cs_check). */
Test(engine_rules, a_merge_is_one_write_whichever_write_fails) {
  int failed = 0;
  for (unsigned long n = 1; n < 20; n++) {
    char a_name[16], b_name[16];
    snprintf(a_name, sizeof(a_name), "a%lu", n);
    snprintf(b_name, sizeof(b_name), "b%lu", n);
    cs_store *a = tu_open(dir, a_name), *b = tu_open(dir, b_name);
    cs_peer *p = NULL;
    tu_act(a, CS_ACTION_UPDATE, "M", "x", "{\"v\":1}");
    tu_act(b, CS_ACTION_UPDATE, "M", "y", "{\"v\":2}");
    cr_assert_eq(cs_peer_local(&p, b), 0);
    cs__db_write_fail_after(n);
    int rc = cs_sync(NULL, a, p);
    cs__db_write_fail_after(0);
    cs_peer_free(p);
    cs_store_close(a);
    cs_store_close(b);
    a = tu_open(dir, a_name);
    b = tu_open(dir, b_name);
    cs_buf rep = CS_BUF_INIT;
    cr_expect_eq(cs_check(&rep, a), 0, "write %lu failed: A: %s", n, rep.ptr);
    cs__buf_clear(&rep);
    cr_expect_eq(cs_check(&rep, b), 0, "write %lu failed: B: %s", n, rep.ptr);
    cs_buf_dispose(&rep);
    cs_store_close(a);
    cs_store_close(b);
    if (rc == 0)
      break;
    failed++;
  }
  cr_expect_geq(failed, 2, "only %d writes of a sync failed", failed);
}

/* The same for a local action: one write, or nothing. */
Test(engine_rules, a_local_action_is_one_write_whichever_write_fails) {
  int failed = 0;
  for (unsigned long n = 1; n < 10; n++) {
    char name[16];
    snprintf(name, sizeof(name), "l%lu", n);
    cs_store *s = tu_open(dir, name);
    cs_action act = {CS_ACTION_UPDATE, "M", "x", "{\"v\":1,\"tags\":[\"a\"]}"};
    cs__db_write_fail_after(n);
    int rc = cs_queue_offline_action(s, &act);
    cs__db_write_fail_after(0);
    cs_store_close(s);
    s = tu_open(dir, name);
    cs_buf rep = CS_BUF_INIT;
    cr_expect_eq(cs_check(&rep, s), 0, "write %lu failed: %s", n, rep.ptr);
    cs_buf_dispose(&rep);
    cs_store_close(s);
    if (rc == 0)
      break;
    failed++;
  }
  cr_expect_geq(failed, 1, "no write of a local action failed");
}

/* ---- who may say what ---- */

/* A key that may read a model but not write it cannot send its states. */
Test(engine_rules, a_read_only_key_cannot_send_states) {
  cs_store *s = tu_open(dir, "s"), *c = tu_open(dir, "c");
  cs_buf req = CS_BUF_INIT, resp = CS_BUF_INIT;
  one_state o;
  char hex[65];
  const char *a[] = {"A"};
  cs_store_public_key(hex, c);
  cr_assert_eq(cs_trust(s, hex, a, 1, NULL, 0), 0, "%s", cs_errmsg());
  one_state_init(&o, "A", c->self, 1);
  uint64_t before = tu_fingerprint(s);
  encode(&req, CS_MSG_SYNC_REQUEST, c->self, &o.wm, 1);
  cr_expect_eq(serve(s, "/v1/sync", &req, &resp, c->key.pk), CS_EAUTH, "%s", cs_errmsg());
  cr_expect(strstr(cs_errmsg(), "may not write model 'A'") != NULL, "%s", cs_errmsg());
  cr_expect_eq(tu_fingerprint(s), before, "a refused request changed the store");
  cs_buf_dispose(&req);
  cs_buf_dispose(&resp);
  cs_store_close(s);
  cs_store_close(c);
}

/* A message whose sender is not the replica of the key that signed it. */
Test(engine_rules, a_sender_other_than_the_signing_key_is_refused) {
  cs_store *s = tu_open(dir, "s"), *c = tu_open(dir, "c");
  cs_buf req = CS_BUF_INIT, resp = CS_BUF_INIT;
  char hex[65];
  const char *all[] = {"*"};
  cs_store_public_key(hex, c);
  cr_assert_eq(cs_trust(s, hex, all, 1, all, 1), 0, "%s", cs_errmsg());
  encode(&req, CS_MSG_SYNC_REQUEST, c->self ^ 1, NULL, 0);
  uint64_t before = tu_fingerprint(s);
  cr_expect_eq(serve(s, "/v1/sync", &req, &resp, c->key.pk), CS_EAUTH, "%s", cs_errmsg());
  cr_expect_eq(tu_fingerprint(s), before, "a refused request changed the store");
  cr_expect(strstr(cs_errmsg(), "signed by another key") != NULL, "%s", cs_errmsg());
  encode(&req, CS_MSG_SYNC_REQUEST, c->self, NULL, 0);
  cr_expect_eq(serve(s, "/v1/sync", &req, &resp, c->key.pk), 0, "%s", cs_errmsg());
  cs_buf_dispose(&req);
  cs_buf_dispose(&resp);
  cs_store_close(s);
  cs_store_close(c);
}

/* ---- cursors ---- */

/* A pull from a cursor this store never issued is refused by the store
 * itself, whatever the client checks. */
Test(engine_rules, a_pull_from_a_cursor_never_issued_is_refused) {
  cs_store *s = tu_open(dir, "s");
  cs_buf req = CS_BUF_INIT, resp = CS_BUF_INIT;
  cs_sync_msg msg;
  tu_act(s, CS_ACTION_UPDATE, "M", "x", "{\"v\":1}");
  memset(&msg, 0, sizeof(msg));
  msg.type = CS_MSG_PULL_REQUEST;
  msg.sender = 42;
  msg.clock = CS_HLC_MAKE(cs__now_ms(), 0);
  msg.cursor = s->cursor + 1;
  cr_assert_eq(cs__codec_encode_msg(&req, &msg), 0, "%s", cs_errmsg());
  cr_expect_eq(serve(s, "/v1/pull", &req, &resp, NULL), CS_EINVAL, "%s", cs_errmsg());
  cr_expect(strstr(cs_errmsg(), "never issued here") != NULL, "%s", cs_errmsg());
  cs__buf_clear(&req);
  msg.cursor = s->cursor;
  cr_assert_eq(cs__codec_encode_msg(&req, &msg), 0, "%s", cs_errmsg());
  cr_expect_eq(serve(s, "/v1/pull", &req, &resp, NULL), 0, "%s", cs_errmsg());
  cs_buf_dispose(&req);
  cs_buf_dispose(&resp);
  cs_store_close(s);
}

/* ---- garbage collection ---- */

/* A cleanup deletes a log run only when every known peer has it. */
Test(engine_rules, cleanup_keeps_what_one_peer_lacks) {
  cs_store *a = tu_open(dir, "a"), *b = tu_open(dir, "b"), *c = tu_open(dir, "c");
  cs_cleanup_stats st;
  tu_act(a, CS_ACTION_UPDATE, "M", "x1", "{\"v\":1}");
  tu_sync(a, b);
  tu_sync(a, c);
  tu_act(a, CS_ACTION_UPDATE, "M", "x2", "{\"v\":2}");
  tu_sync(a, b);
  cr_assert_eq(tu_log_runs(a), 2);
  cr_assert_eq(cs_cleanup(&st, a), 0, "%s", cs_errmsg());
  cr_expect_eq(st.log_entries_deleted, 1, "only the run both peers have goes");
  cr_expect_eq(tu_log_runs(a), 1);
  cs_store_close(a);
  cs_store_close(b);
  cs_store_close(c);
}

/* ---- what one peer's message or a changed peer cannot break ---- */

/* A states message whose knowledge claims 2^64 - 1 dots of a replica is
 * merged; later sections are still judged by what they add. */
Test(engine_rules, a_knowledge_claim_of_2_64_dots_does_not_refuse_later_messages) {
  cs_store *s = tu_open(dir, "s");
  cs_buf req = CS_BUF_INIT, resp = CS_BUF_INIT;
  one_state claim;
  cs_wire_model wm;
  one_state_init(&claim, "M", 99, UINT64_MAX);
  claim.inst = "y";
  encode(&req, CS_MSG_SYNC_REQUEST, 42, &claim.wm, 1);
  cr_assert_eq(serve(s, "/v1/sync", &req, &resp, NULL), 0, "%s", cs_errmsg());
  one_action o;
  one_action_init(&o, CS_HLC_MAKE(cs__now_ms(), 0), CS_HLC_MAKE(cs__now_ms(), 0));
  encode(&req, CS_MSG_SYNC_REQUEST, 42, &o.wm, 1);
  cr_expect_eq(serve(s, "/v1/sync", &req, &resp, NULL), 0, "an honest action: %s", cs_errmsg());
  memset(&wm, 0, sizeof(wm));
  wm.name = "M";
  encode(&req, CS_MSG_SYNC_REQUEST, 42, &wm, 1);
  cr_expect_eq(serve(s, "/v1/sync", &req, &resp, NULL), 0, "knowledge only: %s", cs_errmsg());
  cs_buf_dispose(&req);
  cs_buf_dispose(&resp);
  cs_store_close(s);
}

/* An in-process peer that authenticates as a client's key, as the HTTP
 * server does. */
typedef struct keyed_peer {
  cs_peer base;
  cs_store *remote, *client;
} keyed_peer;

static int keyed_exchange(cs_peer *self, cs_buf *response, const char *path,
                          const uint8_t *request, size_t len) {
  keyed_peer *kp = (keyed_peer *)self;
  int status;
  return cs__store_serve(response, &status, kp->remote, path, request, len, kp->client->key.pk,
                         false);
}

/* A client that pulled a model it may only read syncs again through the
 * same handle: its first round, sent against the hub's old
 * acknowledgement, must not carry states the hub would refuse. */
Test(engine_rules, a_pulled_read_only_model_does_not_break_the_next_sync) {
  cs_store *s = tu_open(dir, "s"), *c = tu_open(dir, "c");
  char hex[65];
  const char *rd[] = {"Catalog", "Note"}, *wr[] = {"Note"};
  keyed_peer p = {{CS_PEER_VERSION, keyed_exchange, NULL}, s, c};
  cs_store_public_key(hex, c);
  cr_assert_eq(cs_trust(s, hex, rd, 2, wr, 1), 0, "%s", cs_errmsg());
  tu_act(s, CS_ACTION_UPDATE, "Catalog", "c1", "{\"v\":1}");
  tu_act(c, CS_ACTION_UPDATE, "Note", "n1", "{\"v\":1}");
  cr_assert_eq(cs_sync(NULL, c, &p.base), 0, "%s", cs_errmsg());
  tu_act(s, CS_ACTION_UPDATE, "Catalog", "c2", "{\"v\":2}");
  cr_assert_eq(cs_partial_sync(NULL, c, &p.base, 0, NULL, 0), 0, "%s", cs_errmsg());
  tu_act(c, CS_ACTION_UPDATE, "Note", "n1", "{\"v\":2}");
  cr_expect_eq(cs_sync(NULL, c, &p.base), 0, "%s", cs_errmsg());
  char *got = tu_get(s, "Note", "n1");
  cr_expect_str_eq(got, "{\"v\":2}");
  free(got);
  cs__peer_forget(&p.base);
  cs_store_close(s);
  cs_store_close(c);
}

/* A trust record an older build wrote under upper-case hex (which the
 * server never found) is the key's record after the next open. */
Test(engine_rules, an_upper_case_trust_record_is_renamed_at_open) {
  cs_store *s = tu_open(dir, "s"), *c = tu_open(dir, "c");
  char hex[65], upper[65], key[80];
  cs_wbatch *wb = NULL;
  cs_buf req = CS_BUF_INIT, resp = CS_BUF_INIT;
  cs_store_public_key(hex, c);
  for (int i = 0; i < 65; i++)
    upper[i] = (char)(hex[i] >= 'a' && hex[i] <= 'f' ? hex[i] - 32 : hex[i]);
  snprintf(key, sizeof(key), "trust/%s", upper);
  cr_assert_eq(cs__wbatch_new(&wb, s->db), 0);
  const char *rights = "{\"read\":[\"*\"],\"write\":[\"*\"]}";
  cs__wbatch_put(wb, CS_CF_META, key, strlen(key), rights, strlen(rights));
  cr_assert_eq(cs__db_write(s->db, wb, true), 0);
  cs__wbatch_free(wb);
  cs_store_close(s);
  s = tu_open(dir, "s");
  encode(&req, CS_MSG_SYNC_REQUEST, c->self, NULL, 0);
  cr_expect_eq(serve(s, "/v1/sync", &req, &resp, c->key.pk), 0, "%s", cs_errmsg());
  cr_expect_eq(cs_untrust(s, hex), 0, "%s", cs_errmsg());
  cr_expect_eq(cs_untrust(s, upper), CS_ENOTFOUND, "two records for one key");
  cs_buf_dispose(&req);
  cs_buf_dispose(&resp);
  cs_store_close(s);
  cs_store_close(c);
}
