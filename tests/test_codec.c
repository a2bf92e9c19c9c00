/*
 * Codec round trips: decode(encode(x)) == x and re-encodes to the same bytes,
 * for random documents, dot sets, actions and sync messages (seeded: CS_SEED
 * replays a run; the seed is printed when a check fails).
 */
#include <criterion/criterion.h>

#include "test_codec_gen.h"

static bool action_equal(const cs_wire_action *a, const cs_wire_action *b) {
  return a->instance == b->instance && a->origin == b->origin && a->first == b->first &&
         a->last == b->last && a->hlc == b->hlc && cs__doc_equal(&a->doc, &b->doc) &&
         cs__dotset_equal(&a->ctx, &b->ctx);
}

static bool msg_equal(const cs_sync_msg *a, const cs_sync_msg *b) {
  if (a->type != b->type || a->sender != b->sender || a->clock != b->clock ||
      a->cursor != b->cursor || a->flags != b->flags || a->nmodels != b->nmodels)
    return false;
  for (size_t i = 0; i < a->nmodels; i++) {
    const cs_wire_model *x = &a->models[i], *y = &b->models[i];
    if (strcmp(x->name, y->name) || !cs__dotset_equal(&x->knowledge, &y->knowledge) ||
        x->ninstances != y->ninstances || x->nactions != y->nactions || x->nstates != y->nstates)
      return false;
    for (size_t k = 0; k < x->ninstances; k++)
      if (strcmp(x->instances[k], y->instances[k]))
        return false;
    for (size_t k = 0; k < x->nactions; k++)
      if (!action_equal(&x->actions[k], &y->actions[k]))
        return false;
    for (size_t k = 0; k < x->nstates; k++)
      if (x->states[k].instance != y->states[k].instance ||
          !cs__doc_equal(&x->states[k].doc, &y->states[k].doc))
        return false;
  }
  return true;
}

/* On failure: the seed (to replay the run) and the iteration, then the check. */
#define CHECK(cond, seed, iter, ...)                                                               \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "seed %llu (replay with CS_SEED=%llu), iteration %d\n",                      \
              (unsigned long long)(seed), (unsigned long long)(seed), (iter));                     \
      cr_assert_fail(__VA_ARGS__);                                                                 \
    }                                                                                              \
  } while (0)

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
    CHECK(cs__codec_encode_action(&b1, &a, "profile_42") == 0, seed, it, "encode: %s",
          cs_errmsg());
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
