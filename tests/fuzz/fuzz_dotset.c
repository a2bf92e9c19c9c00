/* libFuzzer target: cs__codec_decode_dotset on arbitrary bytes, and the
 * joins of what decodes (counters up to 2^64 - 1 included): each ends, holds
 * both sides, and is idempotent. */
#include "fuzz_common.h"

static void check_join(const cs_dotset *s, const cs_dot *seed, size_t nseed) {
  cs_dotset j = CS_DOTSET_INIT, again = CS_DOTSET_INIT;
  for (size_t i = 0; i < nseed; i++)
    if (cs__dotset_add(&j, seed[i]) != 0)
      abort();
  if (cs__dotset_join(&j, s) != 0) {
    fprintf(stderr, "dotset: join failed: %s\n", cs_errmsg());
    abort();
  }
  for (size_t i = 0; i < nseed; i++)
    if (!cs__dotset_contains(&j, seed[i])) {
      fprintf(stderr, "dotset: join lost a dot it held\n");
      abort();
    }
  if (!cs__dotset_subset(s, &j)) {
    fprintf(stderr, "dotset: join does not hold the joined set\n");
    abort();
  }
  if (cs__dotset_copy(&again, &j) != 0 || cs__dotset_join(&again, s) != 0 ||
      !cs__dotset_equal(&again, &j)) {
    fprintf(stderr, "dotset: join is not idempotent\n");
    abort();
  }
  cs__dotset_dispose(&j);
  cs__dotset_dispose(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const cs_dot few[] = {{1, 1}, {1, 2}, {5, 7}, {UINT64_MAX, UINT64_MAX - 2}};
  cs_dotset s;
  int rc = cs__codec_decode_dotset(&s, data, size);
  fuzz_check_rc("dotset", rc);
  if (rc == 0) {
    cs_buf b = CS_BUF_INIT;
    if (cs__codec_encode_dotset(&b, &s) != 0) {
      fprintf(stderr, "dotset: decoded dot set does not encode: %s\n", cs_errmsg());
      abort();
    }
    fuzz_check_same("dotset", &b, data, size);
    cs_buf_dispose(&b);
    check_join(&s, NULL, 0);
    check_join(&s, few, sizeof(few) / sizeof(few[0]));
    cs__dotset_dispose(&s);
  }
  return 0;
}
