/* libFuzzer target: cs__codec_decode_dotset on arbitrary bytes. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
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
    cs__dotset_dispose(&s);
  }
  return 0;
}
