/* Forged or inconsistent actions from a peer are refused whole and change nothing. */
#include <criterion/criterion.h>
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
TestSuite(engine_forged, .init = setup, .fini = teardown);

/* Message sections, encoded (the encoder takes any bytes: it is the
 * receiver that must refuse them). */
static void encode_sections(cs_buf *out, cs_wire_model *wm, size_t n) {
  cs_sync_msg msg;
  memset(&msg, 0, sizeof(msg));
  msg.type = CS_MSG_SYNC_REQUEST;
  msg.sender = 42;
  msg.clock = CS_HLC_MAKE(cs__now_ms(), 0);
  msg.models = wm;
  msg.nmodels = n;
  cr_assert_eq(cs__codec_encode_msg(out, &msg), 0, "%s", cs_errmsg());
}

static void encode_section(cs_buf *out, cs_wire_model *wm) { encode_sections(out, wm, 1); }

/* One section of model "M" whose n actions all write instance `inst`. */
static void encode_actions(cs_buf *out, char *inst, cs_wire_action *a, size_t n) {
  cs_wire_model wm;
  memset(&wm, 0, sizeof(wm));
  wm.name = "M";
  wm.instances = &inst;
  wm.ninstances = 1;
  wm.actions = a;
  wm.nactions = n;
  encode_section(out, &wm);
}

/* A message with one action on instance "x" by `origin` with dots first..last,
 * writing register "v" under `entry_dot` (and "w" under `second_dot` if set). */
static void forge(cs_buf *out, cs_replica origin, uint64_t first, uint64_t last, uint64_t entry_dot,
                  uint64_t second_dot, uint64_t ctx_upto) {
  cs_wire_action a;
  char *inst = "x";
  cs_field f[2];
  memset(&a, 0, sizeof(a));
  memset(f, 0, sizeof(f));
  f[0].name = "v";
  f[0].kind = CS_KIND_REG;
  cs_reg_entry e1 = {{origin, entry_dot}, CS_HLC_MAKE(cs__now_ms(), 0), cs__val_int(1)};
  cs_reg_entry e2 = {{origin, second_dot}, CS_HLC_MAKE(cs__now_ms(), 0), cs__val_int(2)};
  f[0].u.reg.entries = &e1;
  f[0].u.reg.len = 1;
  f[1].name = "w";
  f[1].kind = CS_KIND_REG;
  f[1].u.reg.entries = &e2;
  f[1].u.reg.len = 1;
  a.origin = origin;
  a.first = first;
  a.last = last;
  a.hlc = CS_HLC_MAKE(cs__now_ms(), 0);
  a.doc.fields = f;
  a.doc.nfields = second_dot ? 2 : 1;
  cs_vv_entry vv = {origin, ctx_upto};
  a.ctx.vv = &vv;
  a.ctx.vv_len = 1;
  encode_actions(out, inst, &a, 1);
}

static void expect_refused(cs_store *s, const cs_buf *req, const char *why) {
  cs_buf resp = CS_BUF_INIT;
  int status = 0;
  uint64_t before = tu_fingerprint(s);
  int rc = cs__store_serve(&resp, &status, s, "/v1/sync", (const uint8_t *)req->ptr, req->size,
                           NULL, true);
  cr_expect_eq(rc, CS_ECORRUPT, "%s: got %d (%s)", why, rc, cs_errmsg());
  cr_expect_eq(status, 400);
  cr_expect_eq(tu_fingerprint(s), before, "%s: the store changed", why);
  cs_buf_dispose(&resp);
}

static void expect_accepted(cs_store *s, const cs_buf *req) {
  cs_buf resp = CS_BUF_INIT;
  int status = 0;
  cr_assert_eq(cs__store_serve(&resp, &status, s, "/v1/sync", (const uint8_t *)req->ptr,
                               req->size, NULL, true),
               0, "%s", cs_errmsg());
  cr_expect_eq(status, 200);
  cs_buf_dispose(&resp);
}

Test(engine_forged, one_dot_used_twice_is_refused) {
  cs_store *s = tu_open(dir, "s");
  cs_buf req = CS_BUF_INIT;
  forge(&req, 7, 1, 2, 1, 1, 2);
  expect_refused(s, &req, "dot used by two fields");
  cs_buf_dispose(&req);
  cs_store_close(s);
}

Test(engine_forged, an_implausible_dot_range_is_refused_quickly) {
  cs_store *s = tu_open(dir, "s");
  cs_buf req = CS_BUF_INIT;
  /* The codec caps an action at 65536 dots; this is under the cap but far
   * beyond what one entry can use. */
  forge(&req, 7, 1, 60000, 1, 0, 60000);
  expect_refused(s, &req, "60000 dots for one entry");
  /* refused by the codec's own-dot budget or by the engine's bound */
  cr_expect(strstr(cs_errmsg(), "dots") != NULL, "%s", cs_errmsg());
  cs_buf_dispose(&req);
  cs_store_close(s);
}

Test(engine_forged, an_entry_under_a_foreign_dot_is_refused) {
  cs_store *s = tu_open(dir, "s");
  cs_buf req = CS_BUF_INIT;
  forge(&req, 7, 1, 1, 5, 0, 1);
  expect_refused(s, &req, "entry outside the action's dots");
  cs_buf_dispose(&req);
  cs_store_close(s);
}

Test(engine_forged, text_that_is_not_utf8_is_refused) {
  cs_store *s = tu_open(dir, "s");
  static const struct {
    const char *inst, *field, *value;
  } cases[] = {
      {"x\xff", "v", "ok"},          /* instance name */
      {"x", "v\xc0\x80", "ok"},      /* field name: overlong NUL */
      {"x", "v", "bad\xed\xa0\x80"}, /* value: a surrogate */
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    cs_buf req = CS_BUF_INIT;
    cs_wire_action a;
    cs_field f;
    char *inst = (char *)cases[i].inst;
    cs_reg_entry e = {{7, 1}, CS_HLC_MAKE(cs__now_ms(), 0), {CS_VAL_STR, false, 0, {.i = 0}}};
    e.val.u.ptr = (char *)cases[i].value; /* a view: never disposed */
    e.val.len = (uint32_t)strlen(cases[i].value);
    memset(&a, 0, sizeof(a));
    memset(&f, 0, sizeof(f));
    f.name = (char *)cases[i].field;
    f.kind = CS_KIND_REG;
    f.u.reg.entries = &e;
    f.u.reg.len = 1;
    a.origin = 7;
    a.first = a.last = 1;
    a.hlc = e.hlc;
    a.doc.fields = &f;
    a.doc.nfields = 1;
    cs_vv_entry vv = {7, 1};
    a.ctx.vv = &vv;
    a.ctx.vv_len = 1;
    encode_actions(&req, inst, &a, 1);
    expect_refused(s, &req, cases[i].inst);
    cr_expect(strstr(cs_errmsg(), "not UTF-8") != NULL, "case %zu: %s", i, cs_errmsg());
    cs_buf_dispose(&req);
  }
  cs_store_close(s);
}

Test(engine_forged, a_state_beyond_its_senders_knowledge_is_refused) {
  cs_store *s = tu_open(dir, "s");
  cs_buf req = CS_BUF_INIT;
  cs_wire_model wm;
  cs_wire_state st;
  cs_field f;
  char *inst = "x";
  /* The entry is dot (7, 5); the knowledge claims only 7:1..3. */
  cs_reg_entry e = {{7, 5}, CS_HLC_MAKE(cs__now_ms(), 0), cs__val_int(1)};
  cs_exist_entry x = {{7, 1}, CS_HLC_MAKE(cs__now_ms(), 0), true, CS_DOTSET_INIT};
  cs_vv_entry vv = {7, 3};
  memset(&wm, 0, sizeof(wm));
  memset(&st, 0, sizeof(st));
  memset(&f, 0, sizeof(f));
  f.name = "v";
  f.kind = CS_KIND_REG;
  f.u.reg.entries = &e;
  f.u.reg.len = 1;
  st.instance = 0;
  st.doc.fields = &f;
  st.doc.nfields = 1;
  st.doc.exist = &x;
  st.doc.nexist = 1;
  wm.name = "M";
  wm.instances = &inst;
  wm.ninstances = 1;
  wm.states = &st;
  wm.nstates = 1;
  wm.knowledge.vv = &vv;
  wm.knowledge.vv_len = 1;
  encode_section(&req, &wm);
  expect_refused(s, &req, "state entry outside the knowledge");
  cr_expect(strstr(cs_errmsg(), "knowledge lacks") != NULL, "%s", cs_errmsg());
  cs_buf_dispose(&req);
  /* The same state within its knowledge is taken. */
  vv.max = 5;
  encode_section(&req, &wm);
  cs_buf resp = CS_BUF_INIT;
  int status = 0;
  cr_expect_eq(cs__store_serve(&resp, &status, s, "/v1/sync", (const uint8_t *)req.ptr, req.size,
                               NULL, true),
               0, "%s", cs_errmsg());
  cs_buf_dispose(&resp);
  cs_buf_dispose(&req);
  cs_store_close(s);
}

/* A context without the action's own dots never gets this far: the codec
 * refuses it (tests/test_codec_bad.c). */

Test(engine_forged, a_well_formed_action_is_accepted) {
  cs_store *s = tu_open(dir, "s");
  cs_buf req = CS_BUF_INIT;
  forge(&req, 7, 1, 2, 1, 2, 2);
  expect_accepted(s, &req);
  cs_doc doc = CS_DOC_INIT;
  cr_assert_eq(cs__doc_read(&doc, NULL, s, "M", "x"), 0, "%s", cs_errmsg());
  cr_expect_eq(doc.nfields, 2);
  cs__doc_dispose(&doc);
  cs_buf_dispose(&req);
  cs_store_close(s);
}

/* Action `first` of origin 7 (one dot) writing register "v" under dot `entry`. */
static void one_dot_action(cs_wire_action *a, cs_field *f, cs_reg_entry *e, cs_vv_entry *vv,
                           uint64_t first, uint64_t entry) {
  memset(a, 0, sizeof(*a));
  memset(f, 0, sizeof(*f));
  e->dot = (cs_dot){7, entry};
  e->hlc = CS_HLC_MAKE(cs__now_ms(), first);
  e->val = cs__val_int((int64_t)first);
  f->name = "v";
  f->kind = CS_KIND_REG;
  f->u.reg.entries = e;
  f->u.reg.len = 1;
  a->origin = 7;
  a->first = a->last = first;
  a->hlc = e->hlc;
  a->doc.fields = f;
  a->doc.nfields = 1;
  *vv = (cs_vv_entry){7, first};
  a->ctx.vv = vv;
  a->ctx.vv_len = 1;
}

/* The merge reads a message as it decodes it: a forged action after good ones
 * must still leave nothing behind, in the store or in memory (the good ones
 * are applied when they come again, not taken for duplicates). */
Test(engine_forged, a_forged_action_after_good_ones_leaves_nothing_behind) {
  cs_store *s = tu_open(dir, "s");
  cs_buf req = CS_BUF_INIT;
  cs_wire_action a[3];
  cs_field f[3];
  cs_reg_entry e[3];
  cs_vv_entry vv[3];
  char *inst = "x";
  one_dot_action(&a[0], &f[0], &e[0], &vv[0], 1, 1);
  one_dot_action(&a[1], &f[1], &e[1], &vv[1], 2, 2);
  one_dot_action(&a[2], &f[2], &e[2], &vv[2], 3, 9); /* under a dot not its own */
  encode_actions(&req, inst, a, 3);
  expect_refused(s, &req, "third action forged");
  cs_model *m = cs__model_find(s, "M");
  cr_expect(m == NULL || cs__dotset_max(&m->knowledge, 7) == 0,
            "the refused message left knowledge of origin 7 in memory");
  cs__buf_clear(&req);
  encode_actions(&req, inst, a, 2);
  expect_accepted(s, &req);
  cs_doc doc = CS_DOC_INIT;
  cr_assert_eq(cs__doc_read(&doc, NULL, s, "M", "x"), 0, "%s", cs_errmsg());
  cr_assert_eq(doc.nfields, 1);
  cr_assert_eq(doc.fields[0].u.reg.len, 1, "the second write replaced the first");
  cr_expect_eq(doc.fields[0].u.reg.entries[0].val.u.i, 2);
  cs__doc_dispose(&doc);
  cs_buf_dispose(&req);
  cs_store_close(s);
}

/* Two sections, each of one action by origin 7 (its first dot in each model),
 * on models `m1`, `m2`; the second writes under dot `entry2` (1: its own). */
static void two_sections(cs_buf *out, const char *m1, const char *m2, uint64_t entry2) {
  cs_wire_model wm[2];
  cs_wire_action a[2];
  cs_field f[2];
  cs_reg_entry e[2];
  cs_vv_entry vv[2];
  char *inst = "x";
  one_dot_action(&a[0], &f[0], &e[0], &vv[0], 1, 1);
  one_dot_action(&a[1], &f[1], &e[1], &vv[1], 1, entry2);
  memset(wm, 0, sizeof(wm));
  for (int i = 0; i < 2; i++) {
    wm[i].name = (char *)(i ? m2 : m1);
    wm[i].instances = &inst;
    wm[i].ninstances = 1;
    wm[i].actions = &a[i];
    wm[i].nactions = 1;
  }
  encode_sections(out, wm, 2);
}

/* A refused message leaves no model behind either: the sections read
 * before the refusal had created theirs in memory. */
Test(engine_forged, a_refused_message_creates_no_model) {
  cs_store *s = tu_open(dir, "s");
  cs_buf req = CS_BUF_INIT;
  size_t before = s->nmodels;
  two_sections(&req, "Aphantom", "M", 9); /* M's action writes under a dot not its own */
  expect_refused(s, &req, "second section forged");
  cr_expect_null(cs__model_find(s, "Aphantom"), "the first section's model stayed");
  cr_expect_null(cs__model_find(s, "M"));
  cr_expect_eq(s->nmodels, before);
  /* The same models arrive with a good message. */
  cs__buf_clear(&req);
  two_sections(&req, "Aphantom", "M", 1);
  expect_accepted(s, &req);
  cr_expect_not_null(cs__model_find(s, "Aphantom"));
  cr_expect_not_null(cs__model_find(s, "M"));
  cs_buf_dispose(&req);
  cs_store_close(s);
}

/* Every allocation of a merge creating two models may fail: the store and
 * its models stay as they were, unless the merge was written and only the
 * answer failed (a retry is then a duplicate). The sanitizer pass checks
 * every access. */
Test(engine_forged, every_allocation_failure_of_a_merge_changes_nothing) {
  cs_store *s = tu_open(dir, "s");
  cs_buf req = CS_BUF_INIT, resp = CS_BUF_INIT;
  int fails = 0;
  two_sections(&req, "First", "Second", 1);
  for (unsigned long n = 1;; n++) {
    uint64_t before = tu_fingerprint(s);
    size_t models = s->nmodels;
    int status = 0, rc;
    cs__buf_clear(&resp);
    cs__alloc_fail_after(n);
    rc = cs__store_serve(&resp, &status, s, "/v1/sync", (const uint8_t *)req.ptr, req.size, NULL,
                         true);
    cs__alloc_fail_after(0);
    if (rc == 0)
      break;
    cr_assert_eq(rc, CS_ENOMEM, "allocation %lu: %d %s", n, rc, cs_errmsg());
    if (tu_fingerprint(s) == before)
      cr_assert_eq(s->nmodels, models, "allocation %lu: models changed", n);
    else
      cr_assert(cs__model_find(s, "First") && cs__model_find(s, "Second"),
                "allocation %lu: the store changed but the merge is not whole", n);
    fails++;
  }
  cr_expect_gt(fails, 20, "only %d allocations failed", fails);
  cr_expect_not_null(cs__model_find(s, "First"));
  cr_expect_not_null(cs__model_find(s, "Second"));
  cs_buf_dispose(&req);
  cs_buf_dispose(&resp);
  cs_store_close(s);
}
