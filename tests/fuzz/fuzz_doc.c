/* libFuzzer target: cs__codec_decode_doc on arbitrary bytes. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cs_doc d;
  int rc = cs__codec_decode_doc(&d, data, size);
  fuzz_check_rc("doc", rc);
  if (rc == 0) {
    cs_buf b = CS_BUF_INIT;
    if (cs__codec_encode_doc(&b, &d) != 0) {
      fprintf(stderr, "doc: decoded document does not encode: %s\n", cs_errmsg());
      abort();
    }
    fuzz_check_same("doc", &b, data, size);
    cs_buf_dispose(&b);
    cs__doc_dispose(&d);
  }
  return 0;
}
