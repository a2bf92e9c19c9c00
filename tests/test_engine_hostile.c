/*
 * What a hostile peer can put in well-formed messages, and what the store
 * does with it: dots of this replica it never issued, stamps far ahead in
 * states and inside actions, counters at 2^64, sections not asked for, and
 * refusals whose text quotes bytes that are not UTF-8. Each is refused with
 * the store unchanged, or taken without harm.
 */
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
TestSuite(engine_hostile, .init = setup, .fini = teardown, .timeout = 60);

#define YEAR_MS (365ull * 24 * 3600 * 1000)

static void encode(cs_buf *out, uint8_t type, cs_replica sender, uint64_t cursor, uint32_t flags,
                   cs_wire_model *wm, size_t n) {
  cs_sync_msg msg;
  memset(&msg, 0, sizeof(msg));
  msg.type = type;
  msg.sender = sender;
  msg.clock = CS_HLC_MAKE(cs__now_ms(), 0);
  msg.cursor = cursor;
  msg.flags = flags;
  msg.models = wm;
  msg.nmodels = n;
  cr_assert_eq(cs__codec_encode_msg(out, &msg), 0, "%s", cs_errmsg());
}

/* One section of `model` holding a state of instance "x" with register v = 5
 * under dot (99, 1), knowledge 99:1..1. */
static void state_section(cs_wire_model *wm, cs_wire_state *st, cs_field *f, cs_reg_entry *e,
                          cs_exist_entry *x, cs_vv_entry *vv, char **inst, const char *model) {
  *e = (cs_reg_entry){{99, 1}, CS_HLC_MAKE(cs__now_ms(), 0), cs__val_int(5)};
  *x = (cs_exist_entry){{99, 1}, CS_HLC_MAKE(cs__now_ms(), 0), true, CS_DOTSET_INIT};
  *vv = (cs_vv_entry){99, 1};
  memset(wm, 0, sizeof(*wm));
  memset(st, 0, sizeof(*st));
  memset(f, 0, sizeof(*f));
  *inst = "x";
  f->name = "v";
  f->kind = CS_KIND_REG;
  f->u.reg.entries = e;
  f->u.reg.len = 1;
  st->doc.fields = f;
  st->doc.nfields = 1;
  wm->name = (char *)model;
  wm->instances = inst;
  wm->ninstances = 1;
  wm->states = st;
  wm->nstates = 1;
  wm->knowledge.vv = vv;
  wm->knowledge.vv_len = 1;
}

/* A state_section in one place (its parts must not move once set). */
typedef struct one_state {
  cs_wire_model wm;
  cs_wire_state st;
  cs_field f;
  cs_reg_entry e;
  cs_exist_entry x;
  cs_vv_entry vv[2];
  char *inst;
} one_state;

static void one_state_init(one_state *o, const char *model) {
  state_section(&o->wm, &o->st, &o->f, &o->e, &o->x, &o->vv[0], &o->inst, model);
}

/* A section of model "M" with one action of origin 7 (dot 1, register v)
 * whose context also covers replica `r` up to `max`. */
static void covering_action(cs_buf *req, cs_replica r, uint64_t max) {
  cs_wire_model wm;
  cs_wire_action a;
  cs_field f;
  char *inst = "x";
  cs_hlc now = CS_HLC_MAKE(cs__now_ms(), 0);
  cs_reg_entry e = {{7, 1}, now, cs__val_int(1)};
  cs_vv_entry vv[2];
  if (r < 7) {
    vv[0] = (cs_vv_entry){r, max};
    vv[1] = (cs_vv_entry){7, 1};
  } else {
    vv[0] = (cs_vv_entry){7, 1};
    vv[1] = (cs_vv_entry){r, max};
  }
  memset(&wm, 0, sizeof(wm));
  memset(&a, 0, sizeof(a));
  memset(&f, 0, sizeof(f));
  f.name = "v";
  f.kind = CS_KIND_REG;
  f.u.reg.entries = &e;
  f.u.reg.len = 1;
  a.origin = 7;
  a.first = a.last = 1;
  a.hlc = now;
  a.doc.fields = &f;
  a.doc.nfields = 1;
  a.ctx.vv = vv;
  a.ctx.vv_len = 2;
  wm.name = "M";
  wm.instances = &inst;
  wm.ninstances = 1;
  wm.actions = &a;
  wm.nactions = 1;
  encode(req, CS_MSG_SYNC_REQUEST, 42, 0, 0, &wm, 1);
}

/* Serves req on s; the code, with the store unchanged when refused. */
static int serve_refused(cs_store *s, const cs_buf *req) {
  cs_buf resp = CS_BUF_INIT;
  int status = 0;
  uint64_t before = tu_fingerprint(s);
  int rc = cs__store_serve(&resp, &status, s, "/v1/sync", (const uint8_t *)req->ptr, req->size,
                           NULL, true);
  if (rc != 0)
    cr_expect_eq(tu_fingerprint(s), before, "refused (%s), yet the store changed", cs_errmsg());
  cs_buf_dispose(&resp);
  return rc;
}

static int local_write(cs_store *s, const char *instance, const char *json) {
  cs_action act = {CS_ACTION_UPDATE, "M", instance, json};
  return cs_queue_offline_action(s, &act);
}

/* A context covering dots of another replica that neither the store nor the
 * message holds is a causal gap: refused, and at once even when it reaches
 * counter 2^64 - 1 (joining it once hung, counting it must not). */
Test(engine_hostile, a_context_up_to_the_last_counter_is_refused_at_once, .timeout = 10) {
  cs_store *s = tu_open(dir, "s");
  cs_buf req = CS_BUF_INIT;
  covering_action(&req, 9, UINT64_MAX);
  cr_expect_eq(serve_refused(s, &req), CS_ECORRUPT, "%s", cs_errmsg());
  cr_expect(strstr(cs_errmsg(), "causal gap") != NULL, "%s", cs_errmsg());
  cs__buf_clear(&req);
  covering_action(&req, 9, 1000);
  cr_expect_eq(serve_refused(s, &req), CS_ECORRUPT, "%s", cs_errmsg());
  cr_expect(strstr(cs_errmsg(), "1000 dot(s)") != NULL, "%s", cs_errmsg());
  cr_expect_eq(local_write(s, "y", "{\"v\":2}"), 0, "%s", cs_errmsg());
  cs_buf_dispose(&req);
  cs_store_close(s);
}

Test(engine_hostile, dots_of_this_replica_it_never_issued_are_refused) {
  cs_store *s = tu_open(dir, "s");
  cs_buf req = CS_BUF_INIT;
  /* Dots issued here already, then claims beyond them. */
  cr_assert_eq(local_write(s, "own", "{\"v\":1}"), 0);
  cr_assert_eq(local_write(s, "own", "{\"v\":2}"), 0);
  uint64_t issued = cs__dotset_max(&cs__model_find(s, "M")->knowledge, s->self);
  cr_assert_geq(issued, 2);
  uint64_t claims[] = {issued + 1, 1000, UINT64_MAX - 1};
  for (size_t i = 0; i < sizeof(claims) / sizeof(claims[0]); i++) {
    cs__buf_clear(&req);
    covering_action(&req, s->self, claims[i]);
    cr_expect_eq(serve_refused(s, &req), CS_ECORRUPT, "claim %llu",
                 (unsigned long long)claims[i]);
    cr_expect(strstr(cs_errmsg(), "of this replica") != NULL, "%s", cs_errmsg());
  }
  /* What it did issue may be named. */
  cs__buf_clear(&req);
  covering_action(&req, s->self, issued);
  cr_expect_eq(serve_refused(s, &req), 0, "%s", cs_errmsg());
  cr_expect_eq(local_write(s, "y", "{\"v\":2}"), 0, "%s", cs_errmsg());
  cs_buf_dispose(&req);
  cs_store_close(s);
}

Test(engine_hostile, a_knowledge_claiming_this_replicas_dots_is_refused) {
  cs_store *s = tu_open(dir, "s");
  cs_buf req = CS_BUF_INIT;
  one_state o;
  one_state_init(&o, "M");
  /* knowledge {99: 1, self: 2^40}, self sorted by id */
  o.vv[1] = (cs_vv_entry){s->self, UINT64_C(1) << 40};
  if (s->self < 99) {
    cs_vv_entry t = o.vv[0];
    o.vv[0] = o.vv[1];
    o.vv[1] = t;
  }
  o.wm.knowledge.vv = o.vv;
  o.wm.knowledge.vv_len = 2;
  encode(&req, CS_MSG_SYNC_REQUEST, 42, 0, CS_MSG_F_STATES, &o.wm, 1);
  cr_expect_eq(serve_refused(s, &req), CS_ECORRUPT);
  cr_expect(strstr(cs_errmsg(), "knowledge") != NULL, "%s", cs_errmsg());
  cs_buf_dispose(&req);
  cs_store_close(s);
}

Test(engine_hostile, an_entry_stamped_far_ahead_in_a_state_is_refused) {
  cs_store *s = tu_open(dir, "s");
  cs_buf req = CS_BUF_INIT;
  one_state o;
  one_state_init(&o, "M");
  o.e.hlc = CS_HLC_MAKE(cs__now_ms() + 10 * YEAR_MS, 0);
  encode(&req, CS_MSG_SYNC_REQUEST, 42, 0, CS_MSG_F_STATES, &o.wm, 1);
  cr_expect_eq(serve_refused(s, &req), CS_ECLOCK);
  cr_expect(strstr(cs_errmsg(), "state of 'x'") != NULL, "%s", cs_errmsg());
  /* Within the skew, the same state is taken, and the clock moves past it. */
  cs__buf_clear(&req);
  o.e.hlc = CS_HLC_MAKE(cs__now_ms() + 2000, 0);
  encode(&req, CS_MSG_SYNC_REQUEST, 42, 0, CS_MSG_F_STATES, &o.wm, 1);
  cr_expect_eq(serve_refused(s, &req), 0, "%s", cs_errmsg());
  cr_expect_gt(s->clock.last, o.e.hlc, "the clock observed the state's stamp");
  cs_buf_dispose(&req);
  cs_store_close(s);
}

Test(engine_hostile, an_entry_stamped_far_ahead_inside_an_action_is_refused) {
  cs_store *s = tu_open(dir, "s");
  cs_buf req = CS_BUF_INIT;
  cs_wire_model wm;
  cs_wire_action a;
  cs_field f;
  char *inst = "x";
  cs_hlc now = CS_HLC_MAKE(cs__now_ms(), 0);
  cs_reg_entry e = {{7, 2}, CS_HLC_MAKE(cs__now_ms() + 10 * YEAR_MS, 0), cs__val_int(666)};
  cs_exist_entry x = {{7, 1}, now, true, CS_DOTSET_INIT};
  cs_vv_entry vv = {7, 2};
  memset(&wm, 0, sizeof(wm));
  memset(&a, 0, sizeof(a));
  memset(&f, 0, sizeof(f));
  f.name = "v";
  f.kind = CS_KIND_REG;
  f.u.reg.entries = &e;
  f.u.reg.len = 1;
  a.origin = 7;
  a.first = 1;
  a.last = 2;
  a.hlc = now;
  a.doc.fields = &f;
  a.doc.nfields = 1;
  a.doc.exist = &x;
  a.doc.nexist = 1;
  a.ctx.vv = &vv;
  a.ctx.vv_len = 1;
  wm.name = "M";
  wm.instances = &inst;
  wm.ninstances = 1;
  wm.actions = &a;
  wm.nactions = 1;
  encode(&req, CS_MSG_SYNC_REQUEST, 42, 0, 0, &wm, 1);
  cr_expect_eq(serve_refused(s, &req), CS_ECLOCK);
  cr_expect(strstr(cs_errmsg(), "action 0") != NULL, "%s", cs_errmsg());
  cs_buf_dispose(&req);
  cs_store_close(s);
}

Test(engine_hostile, a_pull_answer_with_a_model_not_asked_for_is_refused) {
  cs_store *c = tu_open(dir, "c");
  tu_canned_peer cp;
  tu_canned_init(&cp);
  one_state a, b;
  one_state_init(&a, "A");
  one_state_init(&b, "B");
  cs_wire_model wm[2] = {a.wm, b.wm}; /* the sections point into a and b */
  encode(&cp.answer, CS_MSG_PULL_RESPONSE, 99, 7, CS_MSG_F_STATES, wm, 2);
  const char *models[] = {"A"};
  cs_sync_result r = CS_SYNC_RESULT_INIT;
  uint64_t before = tu_fingerprint(c);
  cr_expect_eq(cs_partial_sync(&r, c, &cp.base, 0, models, 1), CS_ECORRUPT);
  cr_expect(strstr(cs_errmsg(), "'B' was not asked for") != NULL, "%s", cs_errmsg());
  cr_expect_null(cs__model_find(c, "B"));
  cr_expect_eq(tu_fingerprint(c), before);
  /* Asked for both, the same answer is merged. */
  const char *both[] = {"A", "B"};
  cr_expect_eq(cs_partial_sync(&r, c, &cp.base, 0, both, 2), 0, "%s", cs_errmsg());
  cr_expect_eq(r.received, 2);
  cs_sync_result_dispose(&r);
  cs_buf_dispose(&cp.answer);
  cs_store_close(c);
}

/* A refusal quoting a peer's bytes that are not UTF-8 still reaches the
 * client whole, with its token. */
Test(engine_hostile, a_refusal_quoting_bytes_that_are_not_utf8_keeps_its_reason) {
  cs_store *hub = tu_open(dir, "hub"), *cl = tu_open(dir, "cl");
  char key[65], url[64];
  const char *const all[] = {"*"};
  cs_store_public_key(key, cl);
  cr_assert_eq(cs_trust(hub, key, all, 1, all, 1), 0, "%s", cs_errmsg());
  cs_server_options o = CS_SERVER_OPTIONS_INIT;
  cs_server *srv;
  o.port = 0;
  cr_assert_eq(cs_server_start(&srv, hub, &o), 0, "%s", cs_errmsg());
  cs_wire_model wm[1];
  memset(wm, 0, sizeof(wm));
  char *insts[2] = {"\xfe", "\xff"};
  wm[0].name = "M";
  wm[0].instances = insts;
  wm[0].ninstances = 2;
  cs_buf req = CS_BUF_INIT, resp = CS_BUF_INIT;
  encode(&req, CS_MSG_SYNC_REQUEST, cl->self, 0, 0, wm, 1);
  /* The two instance names made equal (the decoder quotes the repeated
   * one), the checksum made again. */
  uint8_t *b = (uint8_t *)req.ptr;
  for (size_t i = 0; i + 1 < req.size - 16; i++)
    if (b[i] == 0xa1 && b[i + 1] == 0xfe)
      b[i + 1] = 0xff;
  cs__blake2b(b + req.size - 16, 16, b, req.size - 16);
  cs_http_client *raw;
  cs_http_client_options co = CS_HTTP_CLIENT_OPTIONS_INIT;
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)cs_server_port(srv));
  cr_assert_eq(cs__http_client_new(&raw, url, &cl->key, &co), 0);
  int status = 0;
  int rc = cs__http_post(&resp, &status, raw, "/v1/sync", (const uint8_t *)req.ptr, req.size);
  cr_expect_eq(status, 400);
  cr_expect_eq(rc, CS_ECORRUPT, "got %d: %s", rc, cs_errmsg());
  cr_expect(strstr(cs_errmsg(), "corrupt: ") != NULL, "no token: %s", cs_errmsg());
  cr_expect(strstr(cs_errmsg(), "duplicate") != NULL, "reason lost: %s", cs_errmsg());
  cs__http_client_free(raw);
  cs_buf_dispose(&req);
  cs_buf_dispose(&resp);
  cs_server_stop(srv);
  cs_store_close(hub);
  cs_store_close(cl);
}
