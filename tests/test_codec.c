/*
 * Codec round trips: decode(encode(x)) == x and re-encodes to the same bytes,
 * for random documents, dot sets, actions and sync messages (seeded: CS_SEED
 * replays a run; the seed is printed when a check fails).
 */
#include <criterion/criterion.h>
#include <stdio.h>

#include "core/codec_enc.h"
#include "test_codec_gen.h"

Test(codec, doc_round_trip) {
  uint64_t seed = gen_seed();
  gen_rng r = {seed};
  int n = gen_scale(3000);
  for (int it = 0; it < n; it++) {
    cs_doc d, back;
    cs_buf b1 = CS_BUF_INIT, b2 = CS_BUF_INIT;
    gen_dots g = {0, 0, 0, false};
    int rc;
    gen_doc(&r, &d, &g);
    rc = cs__codec_encode_doc(&b1, &d);
    CHECK(rc == 0, seed, it, "encode: %s", cs_errmsg());
    rc = cs__codec_decode_doc(&back, (const uint8_t *)b1.ptr, b1.size);
    CHECK(rc == 0, seed, it, "decode: %s", cs_errmsg());
    CHECK(cs__doc_equal(&d, &back), seed, it, "decoded document differs");
    CHECK(cs__codec_encode_doc(&b2, &back) == 0, seed, it, "re-encode");
    CHECK(b1.size == b2.size && memcmp(b1.ptr, b2.ptr, b1.size) == 0, seed, it,
          "re-encoding gives other bytes");
    cs__doc_dispose(&d);
    cs__doc_dispose(&back);
    cs_buf_dispose(&b1);
    cs_buf_dispose(&b2);
  }
}

/* Counter fields f0..f(k-1), field i counted by replicas 1..i+1: k fields
 * and k replicas in all, across the sizes where the encoder's tables move
 * from its own space to the heap (CS__ENC_SMALL). */
static void doc_of_width(cs_doc *d, size_t k) {
  memset(d, 0, sizeof(*d));
  d->fields = cs__calloc(k, sizeof(cs_field));
  d->fields_cap = k;
  for (size_t f = 0; f < k; f++) {
    cs_field *fl = &d->fields[d->nfields++];
    char name[32];
    snprintf(name, sizeof(name), "f%03zu", f);
    fl->name = cs__strdup(name);
    fl->kind = CS_KIND_CTR;
    fl->u.ctr.entries = cs__calloc(f + 1, sizeof(cs_ctr_entry));
    fl->u.ctr.cap = fl->u.ctr.len = f + 1;
    for (size_t i = 0; i <= f; i++)
      fl->u.ctr.entries[i] = (cs_ctr_entry){.replica = 1000 + i, .pos = i + 1, .neg = 0};
  }
}

Test(codec, documents_of_every_table_width) {
  const size_t widths[] = {1,
                           CS__ENC_SMALL / 2 - 1,
                           CS__ENC_SMALL / 2,
                           CS__ENC_SMALL / 2 + 1,
                           CS__ENC_SMALL - 1,
                           CS__ENC_SMALL,
                           CS__ENC_SMALL + 1,
                           4 * CS__ENC_SMALL + 3};
  for (size_t w = 0; w < sizeof(widths) / sizeof(widths[0]); w++) {
    cs_doc d, back;
    cs_buf b1 = CS_BUF_INIT, b2 = CS_BUF_INIT;
    doc_of_width(&d, widths[w]);
    cr_assert_eq(cs__codec_encode_doc(&b1, &d), 0, "width %zu: %s", widths[w], cs_errmsg());
    cr_assert_eq(cs__codec_decode_doc(&back, (const uint8_t *)b1.ptr, b1.size), 0, "width %zu: %s",
                 widths[w], cs_errmsg());
    cr_expect(cs__doc_equal(&d, &back), "width %zu: decoded document differs", widths[w]);
    cr_assert_eq(cs__codec_encode_doc(&b2, &back), 0);
    cr_expect(b1.size == b2.size && memcmp(b1.ptr, b2.ptr, b1.size) == 0,
              "width %zu: re-encoding gives other bytes", widths[w]);
    cs__doc_dispose(&d);
    cs__doc_dispose(&back);
    cs_buf_dispose(&b1);
    cs_buf_dispose(&b2);
  }
}

/* The encoder writes unsigned integers itself: byte for byte what
 * msgpack-c's packer writes, at every width's edges, between the packer's
 * own items, from an empty buffer up. */
Test(codec, unsigned_integers_are_written_as_msgpack_c_writes_them) {
  const uint64_t vals[] = {0,          1,          0x7f,         0x80,        0xff,
                           0x100,      0xffff,     0x10000,      0xffffffffu, 0x100000000ull,
                           UINT64_MAX, 1234567890, 0x7fffffffff, 42};
  msgpack_sbuffer want;
  msgpack_packer pk;
  cs_buf got = CS_BUF_INIT;
  cs__enc e;

  msgpack_sbuffer_init(&want);
  msgpack_packer_init(&pk, &want, msgpack_sbuffer_write);
  cs__enc_init(&e, &got);
  for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
    msgpack_pack_uint64(&pk, vals[i]);
    cs__enc_put_u(&e, vals[i]);
    msgpack_pack_str(&pk, 2); /* a packer item after each */
    msgpack_pack_str_body(&pk, "ab", 2);
    cs__enc_put_name(&e, "test", "ab");
  }
  cr_assert_eq(cs__enc_end(&e, 0), 0, "%s", cs_errmsg());
  cr_assert_eq(got.size, want.size);
  cr_expect_eq(memcmp(got.ptr, want.data, want.size), 0);
  msgpack_sbuffer_destroy(&want);
  cs_buf_dispose(&got);

  /* Strings and bytes of every header width, each after every fill of a
   * buffer's first bytes, as msgpack-c writes them. */
  static const size_t lens[] = {0, 1, 31, 32, 255, 256, 65535, 65536, 70000};
  char *body = malloc(70000);
  cr_assert_not_null(body);
  for (size_t i = 0; i < 70000; i++)
    body[i] = (char)('a' + i % 26);
  for (size_t pad = 0; pad < 80; pad += 7)
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
      for (int bin = 0; bin < 2; bin++) {
        cs_val v;
        cs_buf b = CS_BUF_INIT;
        msgpack_sbuffer_init(&want);
        msgpack_packer_init(&pk, &want, msgpack_sbuffer_write);
        for (size_t k = 0; k < pad; k++)
          cr_assert_eq(cs__buf_put(&b, "p", 1), 0);
        if (bin) {
          msgpack_pack_bin(&pk, lens[i]);
          msgpack_pack_bin_body(&pk, body, lens[i]);
          cr_assert_eq(cs__val_bytes(&v, body, lens[i]), 0);
        } else {
          msgpack_pack_str(&pk, lens[i]);
          msgpack_pack_str_body(&pk, body, lens[i]);
          cr_assert_eq(cs__val_str(&v, body, lens[i]), 0);
        }
        cs__enc_init(&e, &b);
        cs__enc_put_val(&e, &v);
        cr_assert_eq(cs__enc_end(&e, pad), 0, "%s", cs_errmsg());
        cr_assert_eq(b.size, pad + want.size, "len %zu bin %d", lens[i], bin);
        cr_expect_eq(memcmp(b.ptr + pad, want.data, want.size), 0, "len %zu bin %d", lens[i], bin);
        cr_expect_eq(b.ptr[b.size], '\0');
        cs__val_dispose(&v);
        cs_buf_dispose(&b);
        msgpack_sbuffer_destroy(&want);
      }
  free(body);

  /* From every fill of a buffer's first sizes, the widest integers still
   * leave the byte a cs_buf keeps for its terminating NUL. */
  for (size_t pad = 0; pad < 300; pad++) {
    cs_buf b = CS_BUF_INIT;
    for (size_t i = 0; i < pad; i++)
      cr_assert_eq(cs__buf_put(&b, "p", 1), 0);
    cs__enc_init(&e, &b);
    cs__enc_put_u(&e, UINT64_MAX);
    cr_expect(b.size == pad + 9 && b.size < b.asize, "pad %zu: size %zu of %zu", pad, b.size,
              b.asize);
    cs__enc_put_u(&e, 0xffffffffu);
    cr_expect(b.size == pad + 14 && b.size < b.asize, "pad %zu: size %zu of %zu", pad, b.size,
              b.asize);
    cr_assert_eq(cs__enc_end(&e, pad), 0);
    cr_expect_eq(b.ptr[b.size], '\0');
    cs_buf_dispose(&b);
  }
}

Test(codec, dotset_round_trip) {
  uint64_t seed = gen_seed();
  gen_rng r = {seed};
  int n = gen_scale(5000);
  for (int it = 0; it < n; it++) {
    cs_dotset s, back;
    cs_buf b1 = CS_BUF_INIT, b2 = CS_BUF_INIT;
    gen_dotset(&r, &s, 12);
    CHECK(cs__codec_encode_dotset(&b1, &s) == 0, seed, it, "encode: %s", cs_errmsg());
    CHECK(cs__codec_decode_dotset(&back, (const uint8_t *)b1.ptr, b1.size) == 0, seed, it,
          "decode: %s", cs_errmsg());
    CHECK(cs__dotset_equal(&s, &back), seed, it, "decoded dot set differs");
    CHECK(cs__codec_encode_dotset(&b2, &back) == 0, seed, it, "re-encode");
    CHECK(b1.size == b2.size && memcmp(b1.ptr, b2.ptr, b1.size) == 0, seed, it,
          "re-encoding gives other bytes");
    cs__dotset_dispose(&s);
    cs__dotset_dispose(&back);
    cs_buf_dispose(&b1);
    cs_buf_dispose(&b2);
  }
}

Test(codec, action_round_trip) {
  uint64_t seed = gen_seed();
  gen_rng r = {seed};
  int n = gen_scale(5000);
  for (int it = 0; it < n; it++) {
    cs_wire_action a, back;
    cs_buf b1 = CS_BUF_INIT, b2 = CS_BUF_INIT;
    char *inst = NULL;
    uint64_t first = gen_counter(&r) >> gen_below(&r, 8) | 1;
    /* keep first..last (up to 4 dots) and the covered dots above it in range */
    gen_action(&r, &a, gen_replica(&r), first > UINT64_MAX - 16 ? UINT64_MAX - 16 : first);
    CHECK(cs__codec_encode_action(&b1, &a, "profile_42") == 0, seed, it, "encode: %s", cs_errmsg());
    CHECK(cs__codec_decode_action(&back, &inst, (const uint8_t *)b1.ptr, b1.size) == 0, seed, it,
          "decode: %s", cs_errmsg());
    CHECK(strcmp(inst, "profile_42") == 0 && back.instance == 0, seed, it, "instance");
    CHECK(action_equal(&a, &back), seed, it, "decoded action differs");
    CHECK(cs__codec_encode_action(&b2, &back, inst) == 0, seed, it, "re-encode");
    CHECK(b1.size == b2.size && memcmp(b1.ptr, b2.ptr, b1.size) == 0, seed, it,
          "re-encoding gives other bytes");
    cs__free(inst);
    cs__wire_action_dispose(&a);
    cs__wire_action_dispose(&back);
    cs_buf_dispose(&b1);
    cs_buf_dispose(&b2);
  }
}

Test(codec, msg_round_trip) {
  uint64_t seed = gen_seed();
  gen_rng r = {seed};
  int n = gen_scale(2000);
  for (int it = 0; it < n; it++) {
    cs_sync_msg m, back;
    cs_buf b1 = CS_BUF_INIT, b2 = CS_BUF_INIT;
    gen_msg(&r, &m);
    CHECK(cs__codec_encode_msg(&b1, &m) == 0, seed, it, "encode: %s", cs_errmsg());
    CHECK(cs__codec_decode_msg(&back, (const uint8_t *)b1.ptr, b1.size) == 0, seed, it,
          "decode: %s", cs_errmsg());
    CHECK(msg_equal(&m, &back), seed, it, "decoded message differs");
    CHECK(cs__codec_encode_msg(&b2, &back) == 0, seed, it, "re-encode");
    CHECK(b1.size == b2.size && memcmp(b1.ptr, b2.ptr, b1.size) == 0, seed, it,
          "re-encoding gives other bytes");
    cs__sync_msg_dispose(&m);
    cs__sync_msg_dispose(&back);
    cs_buf_dispose(&b1);
    cs_buf_dispose(&b2);
  }
}

/* Actions held aside and handed to the encoder as a source (the way a sender
 * reads them from its log); `cut` stops the second pass early, `fail` makes
 * the source itself fail. */
typedef struct vec_source {
  cs_action_source src;
  const cs_wire_action *a;
  size_t n, passes, cut;
  int fail;
} vec_source;

static int vec_each(void *arg, cs_action_fn fn, cs_tables_fn tables, void *fnarg) {
  vec_source *v = arg;
  size_t n = v->passes++ == 1 && v->cut ? v->cut : v->n;
  int rc;
  (void)tables;
  if (v->fail)
    return cs__error(v->fail, "source failed on purpose");
  for (size_t i = 0; i < n; i++)
    if ((rc = fn(fnarg, &v->a[i])) != 0)
      return rc;
  return 0;
}

/* A message whose actions come from sources encodes to the same bytes as the
 * message holding them. */
Test(codec, actions_from_a_source_encode_the_same) {
  uint64_t seed = gen_seed();
  gen_rng r = {seed};
  int n = gen_scale(2000), with_actions = 0;
  for (int it = 0; it < n; it++) {
    cs_sync_msg m;
    cs_buf b1 = CS_BUF_INIT, b2 = CS_BUF_INIT;
    vec_source vs[4];
    cs_wire_action *held[4];
    size_t nheld[4];
    gen_msg(&r, &m);
    CHECK(cs__codec_encode_msg(&b1, &m) == 0, seed, it, "encode: %s", cs_errmsg());
    for (size_t i = 0; i < m.nmodels; i++) {
      cs_wire_model *wm = &m.models[i];
      with_actions += wm->nactions > 0;
      memset(&vs[i], 0, sizeof(vs[i]));
      vs[i].src.each = vec_each;
      vs[i].src.arg = &vs[i];
      vs[i].a = held[i] = wm->actions;
      vs[i].n = nheld[i] = wm->nactions;
      wm->actions = NULL;
      wm->nactions = 0;
      wm->source = &vs[i].src;
    }
    CHECK(cs__codec_encode_msg(&b2, &m) == 0, seed, it, "encode from sources: %s", cs_errmsg());
    CHECK(b1.size == b2.size && memcmp(b1.ptr, b2.ptr, b1.size) == 0, seed, it,
          "a source gives other bytes");
    for (size_t i = 0; i < m.nmodels; i++) {
      CHECK(vs[i].passes == 2, seed, it, "source read %zu times", vs[i].passes);
      m.models[i].actions = held[i];
      m.models[i].nactions = nheld[i];
      m.models[i].source = NULL;
    }
    cs__sync_msg_dispose(&m);
    cs_buf_dispose(&b1);
    cs_buf_dispose(&b2);
  }
  cr_expect_gt(with_actions, n / 4, "the generator made sections with actions");
}

/* One section of two actions of origin 5 and one of origin 3 on instance "x". */
static void source_msg(cs_sync_msg *m, cs_wire_model *wm, cs_wire_action a[3], char **inst,
                       vec_source *vs) {
  static cs_vv_entry vv[3];
  memset(m, 0, sizeof(*m));
  memset(wm, 0, sizeof(*wm));
  memset(a, 0, 3 * sizeof(*a));
  for (int i = 0; i < 3; i++) {
    a[i].origin = i < 2 ? 5 : 3;
    a[i].first = a[i].last = (uint64_t)(i % 2 + 1);
    a[i].hlc = CS_HLC_MAKE(1000, 0);
    vv[i] = (cs_vv_entry){a[i].origin, a[i].last};
    a[i].ctx.vv = &vv[i];
    a[i].ctx.vv_len = 1;
  }
  wm->name = "M";
  wm->instances = inst;
  wm->ninstances = 1;
  memset(vs, 0, sizeof(*vs));
  vs->src.each = vec_each;
  vs->src.arg = vs;
  vs->a = a;
  vs->n = 2;
  wm->source = &vs->src;
  m->type = CS_MSG_SYNC_REQUEST;
  m->sender = 5;
  m->models = wm;
  m->nmodels = 1;
}

Test(codec, a_source_that_fails_or_changes_is_refused) {
  cs_sync_msg m;
  cs_wire_model wm;
  cs_wire_action a[3];
  char *inst = "x";
  vec_source vs;
  cs_buf b = CS_BUF_INIT;
  source_msg(&m, &wm, a, &inst, &vs);
  cr_assert_eq(cs__codec_encode_msg(&b, &m), 0, "%s", cs_errmsg());
  cr_assert_gt(b.size, 0);
  cs__buf_clear(&b);
  source_msg(&m, &wm, a, &inst, &vs);
  vs.fail = CS_ECORRUPT;
  cr_expect_eq(cs__codec_encode_msg(&b, &m), CS_ECORRUPT);
  cr_expect(strstr(cs_errmsg(), "on purpose") != NULL, "%s", cs_errmsg());
  cr_expect_eq(b.size, 0, "nothing is left in the buffer");
  source_msg(&m, &wm, a, &inst, &vs);
  vs.cut = 1;
  cr_expect_eq(cs__codec_encode_msg(&b, &m), CS_EINTERNAL);
  cr_expect(strstr(cs_errmsg(), "changed between passes") != NULL, "%s", cs_errmsg());
  source_msg(&m, &wm, a, &inst, &vs);
  vs.n = 3; /* origin 3 after origin 5 */
  cr_expect_eq(cs__codec_encode_msg(&b, &m), CS_EINVAL);
  cr_expect(strstr(cs_errmsg(), "not sorted by origin") != NULL, "%s", cs_errmsg());
  source_msg(&m, &wm, a, &inst, &vs);
  a[0].instance = 4;
  cr_expect_eq(cs__codec_encode_msg(&b, &m), CS_EINVAL);
  cr_expect(strstr(cs_errmsg(), "out of range") != NULL, "%s", cs_errmsg());
  /* Every allocation the source path makes may fail, leaving the buffer as
   * it was (the sanitizer pass checks nothing leaks). */
  for (unsigned long n = 1;; n++) {
    int rc;
    source_msg(&m, &wm, a, &inst, &vs);
    cs__buf_clear(&b);
    cs__alloc_fail_after(n);
    rc = cs__codec_encode_msg(&b, &m);
    cs__alloc_fail_after(0);
    if (rc == 0)
      break;
    cr_assert_eq(rc, CS_ENOMEM, "allocation %lu: %s", n, cs_errmsg());
    cr_assert_eq(b.size, 0);
  }
  cs_buf_dispose(&b);
}

/* Appending: the encoders add to what the buffer holds and leave it intact. */
Test(codec, encode_appends) {
  cs_dotset s = CS_DOTSET_INIT, back;
  cs_vv_entry vv = {5, 3};
  cs_buf b = CS_BUF_INIT;
  s.vv = &vv;
  s.vv_len = 1;
  cr_assert_eq(cs__buf_put(&b, "key:", 4), 0);
  cr_assert_eq(cs__codec_encode_dotset(&b, &s), 0);
  cr_assert(memcmp(b.ptr, "key:", 4) == 0);
  cr_assert_eq(cs__codec_decode_dotset(&back, (const uint8_t *)b.ptr + 4, b.size - 4), 0);
  cr_assert(cs__dotset_equal(&s, &back));
  cs__dotset_dispose(&back);
  cs_buf_dispose(&b);
}

/* Encoding refuses what the decoder would refuse, and leaves the buffer as it was. */
Test(codec, encode_refuses_non_canonical) {
  cs_wire_action a;
  cs_dot own = {9, 4};
  cs_buf b = CS_BUF_INIT;
  memset(&a, 0, sizeof(a));
  a.origin = 9;
  a.first = a.last = 4;
  /* its context lacks its own dot */
  cr_assert_eq(cs__codec_encode_action(&b, &a, "i"), CS_EINVAL);
  cr_assert(strstr(cs_errmsg(), "lacks some of its own dots"), "%s", cs_errmsg());
  cr_assert_eq(b.size, 0);
  a.ctx.extra = &own;
  a.ctx.extra_len = 1;
  cr_assert_eq(cs__codec_encode_action(&b, &a, ""), CS_ETOOBIG);
  cr_assert(strstr(cs_errmsg(), "instance name of 0 bytes"), "%s", cs_errmsg());
  cr_assert_eq(cs__codec_encode_action(&b, &a, "i"), 0);
  cs_buf_dispose(&b);
}

/* Equal messages give equal bytes however they were built (canonical form). */
Test(codec, same_state_same_bytes) {
  uint64_t seed = gen_seed();
  gen_rng r1 = {seed}, r2 = {seed};
  cs_sync_msg m1, m2;
  cs_buf b1 = CS_BUF_INIT, b2 = CS_BUF_INIT;
  gen_msg(&r1, &m1);
  gen_msg(&r2, &m2);
  cr_assert_eq(cs__codec_encode_msg(&b1, &m1), 0);
  cr_assert_eq(cs__codec_encode_msg(&b2, &m2), 0);
  cr_assert(b1.size == b2.size && memcmp(b1.ptr, b2.ptr, b1.size) == 0, "seed %llu",
            (unsigned long long)seed);
  cs__sync_msg_dispose(&m1);
  cs__sync_msg_dispose(&m2);
  cs_buf_dispose(&b1);
  cs_buf_dispose(&b2);
}

/*
 * Deltas made by the real mutators survive the sync message: a second replica
 * that joins the decoded actions ends with the same documents as the first.
 */
Test(codec, mutator_deltas_round_trip) {
  enum { NDOC = 6 };
  uint64_t seed = gen_seed();
  gen_rng r = {seed};
  int rounds = gen_scale(40);
  for (int round = 0; round < rounds; round++) {
    cs_doc docs[NDOC], copy[NDOC];
    cs_dotset ctx = CS_DOTSET_INIT, ctx2 = CS_DOTSET_INIT;
    cs_clock clock = {0, 60000};
    cs_wire_model wm;
    cs_sync_msg m, back;
    cs_buf b1 = CS_BUF_INIT, b2 = CS_BUF_INIT;
    size_t nact = 1 + gen_below(&r, 60), cap = 0;
    const cs_replica self = gen_replica(&r);
    char names[NDOC][8];
    memset(&wm, 0, sizeof(wm));
    memset(&m, 0, sizeof(m));
    memset(docs, 0, sizeof(docs));
    wm.name = cs__strdup("M");
    wm.instances = cs__calloc(NDOC, sizeof(char *));
    for (int i = 0; i < NDOC; i++) {
      snprintf(names[i], sizeof(names[i]), "d%d", i);
      wm.instances[i] = cs__strdup(names[i]);
    }
    wm.ninstances = NDOC;
    for (size_t k = 0; k < nact; k++) {
      uint32_t i = (uint32_t)gen_below(&r, NDOC);
      cs_delta d;
      cs_val v;
      const char *f = gen_fields[gen_below(&r, 3)]; /* few names: kinds clash sometimes */
      uint64_t first, last;
      cs_wire_action *a;
      int rc = 0;
      cr_assert_eq(cs__delta_init(&d, &ctx, self, cs__clock_tick(&clock, 1000 + k / 3)), 0);
      switch (gen_below(&r, 7)) {
      case 0:
        gen_val(&r, &v);
        rc = cs__delta_reg_set(&d, &docs[i], f, &v);
        cs__val_dispose(&v);
        break;
      case 1:
        gen_val(&r, &v);
        rc = cs__delta_set_add(&d, &docs[i], f, &v);
        cs__val_dispose(&v);
        break;
      case 2:
        gen_val(&r, &v);
        rc = cs__delta_set_remove(&d, &docs[i], f, &v);
        cs__val_dispose(&v);
        break;
      case 3:
        rc = cs__delta_ctr_add(&d, &docs[i], f, (int64_t)gen_below(&r, 7) - 3);
        break;
      case 4:
        rc = cs__delta_exist(&d, &docs[i], gen_chance(&r, 50));
        break;
      case 5:
        rc = cs__delta_reg_clear(&d, &docs[i], f);
        break;
      default: /* two writes in one action */
        gen_val(&r, &v);
        rc = cs__delta_reg_set(&d, &docs[i], "name", &v);
        cs__val_dispose(&v);
        if (!rc) {
          gen_val(&r, &v);
          rc = cs__delta_set_add(&d, &docs[i], "tags", &v);
          cs__val_dispose(&v);
        }
        break;
      }
      if (rc == CS_EINVAL) { /* a kind clash: the mutator refused, nothing to log */
        cs__delta_dispose(&d);
        continue;
      }
      cr_assert_eq(rc, 0, "%s", cs_errmsg());
      cr_assert_eq(cs__delta_finish(&d, &first, &last), 0);
      cr_assert_eq(cs__doc_join(&docs[i], &ctx, &d.doc, &d.ctx), 0);
      cr_assert_eq(cs__dotset_join(&ctx, &d.ctx), 0);
      cr_assert_eq(cs__array_grow((void **)&wm.actions, &cap, wm.nactions + 1, sizeof(*a)), 0);
      a = &wm.actions[wm.nactions++];
      memset(a, 0, sizeof(*a));
      a->instance = i;
      a->origin = self;
      a->first = first;
      a->last = last;
      a->hlc = d.hlc;
      a->doc = d.doc;
      a->ctx = d.ctx;
      memset(&d.doc, 0, sizeof(d.doc));
      memset(&d.ctx, 0, sizeof(d.ctx));
      cs__delta_dispose(&d);
    }
    cr_assert_eq(cs__dotset_copy(&wm.knowledge, &ctx), 0);
    m.type = CS_MSG_SYNC_REQUEST;
    m.sender = self;
    m.clock = clock.last;
    m.models = &wm;
    m.nmodels = 1;
    CHECK(cs__codec_encode_msg(&b1, &m) == 0, seed, round, "encode: %s", cs_errmsg());
    CHECK(cs__codec_decode_msg(&back, (const uint8_t *)b1.ptr, b1.size) == 0, seed, round,
          "decode: %s", cs_errmsg());
    CHECK(msg_equal(&m, &back), seed, round, "decoded message differs");
    CHECK(cs__codec_encode_msg(&b2, &back) == 0 && b2.size == b1.size &&
              memcmp(b1.ptr, b2.ptr, b1.size) == 0,
          seed, round, "re-encoding gives other bytes");
    /* Replay the decoded log on an empty replica, one action at a time. */
    memset(copy, 0, sizeof(copy));
    for (size_t k = 0; k < back.models[0].nactions; k++) {
      const cs_wire_action *a = &back.models[0].actions[k];
      cr_assert_eq(cs__doc_join(&copy[a->instance], &ctx2, &a->doc, &a->ctx), 0);
      cr_assert_eq(cs__dotset_join(&ctx2, &a->ctx), 0);
    }
    for (int i = 0; i < NDOC; i++)
      CHECK(cs__doc_equal(&docs[i], &copy[i]), seed, round, "document %d differs after replay", i);
    CHECK(cs__dotset_equal(&ctx, &ctx2), seed, round, "context differs after replay");
    for (int i = 0; i < NDOC; i++) {
      cs__doc_dispose(&docs[i]);
      cs__doc_dispose(&copy[i]);
    }
    m.models = NULL;
    m.nmodels = 0;
    cs__free(wm.name);
    cs__dotset_dispose(&wm.knowledge);
    for (int i = 0; i < NDOC; i++)
      cs__free(wm.instances[i]);
    cs__free(wm.instances);
    for (size_t k = 0; k < wm.nactions; k++)
      cs__wire_action_dispose(&wm.actions[k]);
    cs__free(wm.actions);
    cs__sync_msg_dispose(&back);
    cs__dotset_dispose(&ctx);
    cs__dotset_dispose(&ctx2);
    cs_buf_dispose(&b1);
    cs_buf_dispose(&b2);
  }
}

/* Instance references of every size (one byte, fixint pair, escape), new and
 * old and ahead of first use, over a table of 9,000 instances. */
Test(codec, instance_references_of_every_size) {
  enum { NINST = 9000 };
  uint64_t seed = gen_seed();
  gen_rng r = {seed};
  size_t nact = (size_t)gen_scale(6000);
  cs_wire_model wm;
  cs_sync_msg m, back;
  cs_buf b1 = CS_BUF_INIT, b2 = CS_BUF_INIT;
  memset(&wm, 0, sizeof(wm));
  memset(&m, 0, sizeof(m));
  wm.name = cs__strdup("M");
  wm.instances = cs__calloc(NINST, sizeof(char *));
  for (int i = 0; i < NINST; i++) {
    char name[16];
    snprintf(name, sizeof(name), "i%d", i);
    wm.instances[i] = cs__strdup(name);
  }
  wm.ninstances = NINST;
  wm.actions = cs__calloc(nact, sizeof(cs_wire_action));
  wm.nactions = nact;
  for (size_t k = 0; k < nact; k++) {
    cs_wire_action *a = &wm.actions[k];
    uint64_t pick = gen_below(&r, 4);
    /* mostly the next new one or a random old one; sometimes far ahead */
    a->instance = pick == 0   ? (uint32_t)gen_below(&r, NINST)
                  : pick == 1 ? (uint32_t)(k < NINST ? k : NINST - 1)
                              : (uint32_t)gen_below(&r, k < NINST ? k + 1 : NINST);
    a->origin = 3;
    a->first = a->last = k + 1;
    a->hlc = 1000 + k;
    cr_assert_eq(cs__dotset_add(&a->ctx, (cs_dot){3, k + 1}), 0);
  }
  m.type = CS_MSG_SYNC_RESPONSE;
  m.sender = 3;
  m.models = &wm;
  m.nmodels = 1;
  CHECK(cs__codec_encode_msg(&b1, &m) == 0, seed, 0, "encode: %s", cs_errmsg());
  CHECK(cs__codec_decode_msg(&back, (const uint8_t *)b1.ptr, b1.size) == 0, seed, 0, "decode: %s",
        cs_errmsg());
  CHECK(msg_equal(&m, &back), seed, 0, "decoded message differs");
  CHECK(cs__codec_encode_msg(&b2, &back) == 0 && b1.size == b2.size &&
            memcmp(b1.ptr, b2.ptr, b1.size) == 0,
        seed, 0, "re-encoding gives other bytes");
  m.models = NULL;
  m.nmodels = 0;
  cs__free(wm.name);
  for (int i = 0; i < NINST; i++)
    cs__free(wm.instances[i]);
  cs__free(wm.instances);
  for (size_t k = 0; k < nact; k++)
    cs__wire_action_dispose(&wm.actions[k]);
  cs__free(wm.actions);
  cs__sync_msg_dispose(&back);
  cs_buf_dispose(&b1);
  cs_buf_dispose(&b2);
}

/* Every allocation the codec makes may fail: each failure gives CS_ENOMEM,
 * leaves the output empty (decode) or the buffer as it was (encode), and
 * leaks nothing (the sanitizer build checks). */
Test(codec, every_allocation_failure) {
  uint64_t seed = gen_seed();
  gen_rng r = {seed};
  cs_sync_msg m;
  cs_buf good = CS_BUF_INIT;
  int fails = 0;
  do { /* a message with some content */
    cs_buf_dispose(&good);
    gen_msg(&r, &m);
    cr_assert_eq(cs__codec_encode_msg(&good, &m), 0);
    if (good.size < 300)
      cs__sync_msg_dispose(&m);
  } while (good.size < 300);
  for (unsigned long n = 1;; n++) {
    cs_sync_msg back;
    int rc;
    cs__alloc_fail_after(n);
    rc = cs__codec_decode_msg(&back, (const uint8_t *)good.ptr, good.size);
    cs__alloc_fail_after(0);
    if (rc == 0) {
      cs__sync_msg_dispose(&back);
      break;
    }
    CHECK(rc == CS_ENOMEM, seed, (int)n, "decode: %d %s", rc, cs_errmsg());
    CHECK(back.nmodels == 0 && back.models == NULL, seed, (int)n, "decode output not empty");
    fails++;
  }
  for (unsigned long n = 1;; n++) {
    cs_buf b = CS_BUF_INIT;
    int rc;
    cr_assert_eq(cs__buf_put(&b, "xy", 2), 0);
    cs__alloc_fail_after(n);
    rc = cs__codec_encode_msg(&b, &m);
    cs__alloc_fail_after(0);
    if (rc == 0) {
      CHECK(b.size == good.size + 2 && memcmp(b.ptr + 2, good.ptr, good.size) == 0, seed, (int)n,
            "encoding after failures differs");
      cs_buf_dispose(&b);
      break;
    }
    CHECK(rc == CS_ENOMEM, seed, (int)n, "encode: %d %s", rc, cs_errmsg());
    CHECK(b.size == 2 && memcmp(b.ptr, "xy", 2) == 0, seed, (int)n, "buffer changed on failure");
    cs_buf_dispose(&b);
    fails++;
  }
  cr_assert(fails > 10, "only %d allocations were failed", fails);
  cs__sync_msg_dispose(&m);
  cs_buf_dispose(&good);
}

/* The same for the log entry and document decoders. */
Test(codec, every_allocation_failure_standalone) {
  uint64_t seed = gen_seed();
  gen_rng r = {seed};
  int n_iter = gen_scale(20);
  for (int it = 0; it < n_iter; it++) {
    cs_wire_action a;
    cs_doc d;
    gen_dots g = {0, 0, 0, false};
    cs_buf ba = CS_BUF_INIT, bd = CS_BUF_INIT;
    gen_action(&r, &a, gen_replica(&r), 1 + gen_below(&r, 500));
    gen_doc(&r, &d, &g);
    cr_assert_eq(cs__codec_encode_action(&ba, &a, "p"), 0);
    cr_assert_eq(cs__codec_encode_doc(&bd, &d), 0);
    for (unsigned long n = 1;; n++) {
      cs_wire_action back;
      char *inst = NULL;
      int rc;
      cs__alloc_fail_after(n);
      rc = cs__codec_decode_action(&back, &inst, (const uint8_t *)ba.ptr, ba.size);
      cs__alloc_fail_after(0);
      if (rc == 0) {
        cs__wire_action_dispose(&back);
        cs__free(inst);
        break;
      }
      CHECK(rc == CS_ENOMEM && inst == NULL && back.doc.nfields == 0 && back.ctx.vv_len == 0, seed,
            it, "action decode, failing allocation %lu: %d %s", n, rc, cs_errmsg());
    }
    for (unsigned long n = 1;; n++) {
      cs_doc back;
      int rc;
      cs__alloc_fail_after(n);
      rc = cs__codec_decode_doc(&back, (const uint8_t *)bd.ptr, bd.size);
      cs__alloc_fail_after(0);
      if (rc == 0) {
        cs__doc_dispose(&back);
        break;
      }
      CHECK(rc == CS_ENOMEM && back.nfields == 0 && back.fields == NULL, seed, it,
            "doc decode, failing allocation %lu: %d %s", n, rc, cs_errmsg());
    }
    cs__wire_action_dispose(&a);
    cs__doc_dispose(&d);
    cs_buf_dispose(&ba);
    cs_buf_dispose(&bd);
  }
}

/* A document's fields must be in name order, unique, and named 1..1024
 * bytes: anything else is refused and nothing is written. */
Test(codec, a_document_with_bad_field_names_is_refused) {
  cs_reg_entry e = {{7, 1}, CS_HLC_MAKE(1000, 0), {CS_VAL_INT, false, 0, {.i = 1}}};
  cs_field f[2];
  cs_doc d = CS_DOC_INIT;
  cs_buf b = CS_BUF_INIT;
  char *long_name = malloc(CS_WIRE_MAX_NAME + 2);
  memset(long_name, 'n', CS_WIRE_MAX_NAME + 1);
  long_name[CS_WIRE_MAX_NAME + 1] = '\0';
  memset(f, 0, sizeof(f));
  for (int i = 0; i < 2; i++) {
    f[i].kind = CS_KIND_REG;
    f[i].u.reg.entries = &e;
    f[i].u.reg.len = 1;
  }
  d.fields = f;
  d.nfields = 2;
  const struct {
    const char *a, *b;
    int rc;
    const char *why;
  } cases[] = {{"b", "a", CS_EINVAL, "not sorted"},
               {"a", "a", CS_EINVAL, "not sorted"},
               {"", "a", CS_ETOOBIG, "field name of 0 bytes"},
               {"a", long_name, CS_ETOOBIG, "field name of 1025 bytes"}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    f[0].name = (char *)cases[i].a;
    f[1].name = (char *)cases[i].b;
    cr_expect_eq(cs__codec_encode_doc(&b, &d), cases[i].rc, "case %zu", i);
    cr_expect(strstr(cs_errmsg(), cases[i].why) != NULL, "case %zu: %s", i, cs_errmsg());
    cr_expect_eq(b.size, 0, "case %zu: nothing written", i);
  }
  f[0].name = "a";
  f[1].name = "b";
  cr_expect_eq(cs__codec_encode_doc(&b, &d), 0, "%s", cs_errmsg());
  free(long_name);
  cs_buf_dispose(&b);
}
