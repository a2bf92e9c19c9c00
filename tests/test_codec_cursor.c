/*
 * The dot cursor of sync messages is kept in a dense array for sections
 * whose instance and replica tables are small, in a hash table otherwise.
 * Both must write and read exactly the same bytes (seeded: CS_SEED replays
 * a run; the seed is printed when a check fails).
 */
#include <criterion/criterion.h>
#include <stdio.h>

#include "core/codec_int.h"
#include "test_codec_gen.h"

static const size_t limits[] = {0, 1, 7, 64, (size_t)1 << 18};
#define NLIMITS (sizeof(limits) / sizeof(limits[0]))

/* Encodes m with every dense limit: all encodings are the same bytes, and
 * each decodes under every limit to m. */
static void same_both_ways(const cs_sync_msg *m, uint64_t seed, int it) {
  const size_t saved = cs__dotcur_dense_max;
  cs_buf enc[NLIMITS];
  for (size_t i = 0; i < NLIMITS; i++) {
    enc[i] = (cs_buf)CS_BUF_INIT;
    cs__dotcur_dense_max = limits[i];
    CHECK(cs__codec_encode_msg(&enc[i], m) == 0, seed, it, "encode (limit %zu): %s", limits[i],
          cs_errmsg());
    CHECK(enc[i].size == enc[0].size && memcmp(enc[i].ptr, enc[0].ptr, enc[0].size) == 0, seed, it,
          "limit %zu writes other bytes than limit %zu", limits[i], limits[0]);
  }
  for (size_t i = 0; i < NLIMITS; i++) {
    cs_sync_msg back;
    cs__dotcur_dense_max = limits[i];
    CHECK(cs__codec_decode_msg(&back, (const uint8_t *)enc[0].ptr, enc[0].size) == 0, seed, it,
          "decode (limit %zu): %s", limits[i], cs_errmsg());
    CHECK(msg_equal(m, &back), seed, it, "decoded under limit %zu, the message differs", limits[i]);
    cs__sync_msg_dispose(&back);
  }
  cs__dotcur_dense_max = saved;
  for (size_t i = 0; i < NLIMITS; i++)
    cs_buf_dispose(&enc[i]);
}

Test(codec_cursor, dense_and_hashed_cursors_write_the_same_bytes) {
  uint64_t seed = gen_seed();
  gen_rng r = {seed};
  int n = gen_scale(1000);
  for (int it = 0; it < n; it++) {
    cs_sync_msg m;
    gen_msg(&r, &m);
    same_both_ways(&m, seed, it);
    cs__sync_msg_dispose(&m);
  }
}

/*
 * Two documents edited in turn by two replicas, each edit covering dots of
 * the other replica near the ones covered before: nearly every covered dot
 * is written relative to its cursor, and each document has its own.
 */
Test(codec_cursor, covered_dots_are_written_against_their_cursor) {
  enum { NACT = 60 };
  cs_wire_model wm;
  cs_sync_msg m;

  memset(&wm, 0, sizeof(wm));
  memset(&m, 0, sizeof(m));
  wm.name = cs__strdup("M");
  wm.instances = cs__calloc(2, sizeof(char *));
  wm.instances[0] = cs__strdup("a");
  wm.instances[1] = cs__strdup("b");
  wm.ninstances = 2;
  wm.actions = cs__calloc(NACT, sizeof(cs_wire_action));
  /* Grouped by origin (replica 10, then 20), each in dot order. */
  for (size_t k = 0; k < NACT; k++) {
    cs_wire_action *x = &wm.actions[k];
    uint64_t i = k % (NACT / 2), other = k < NACT / 2 ? 20 : 10;
    x->instance = (uint32_t)(i % 3 == 2);
    x->origin = k < NACT / 2 ? 10 : 20;
    x->first = x->last = i + 1;
    x->hlc = 1000 + i;
    cr_assert_eq(cs__dotset_add(&x->ctx, (cs_dot){x->origin, x->first}), 0);
    cr_assert_eq(cs__dotset_add(&x->ctx, (cs_dot){other, 100 + 3 * i}), 0);
    if (i % 4 == 1) /* and one further back */
      cr_assert_eq(cs__dotset_add(&x->ctx, (cs_dot){other, 90 + i}), 0);
  }
  wm.nactions = NACT;
  m.type = CS_MSG_SYNC_REQUEST;
  m.sender = 10;
  m.models = &wm;
  m.nmodels = 1;
  same_both_ways(&m, 0, 0);
  m.models = NULL;
  m.nmodels = 0;
  cs__free(wm.name);
  for (size_t i = 0; i < wm.ninstances; i++)
    cs__free(wm.instances[i]);
  cs__free(wm.instances);
  for (size_t k = 0; k < wm.nactions; k++)
    cs__wire_action_dispose(&wm.actions[k]);
  cs__free(wm.actions);
}
