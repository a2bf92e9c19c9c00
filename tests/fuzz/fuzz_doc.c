/* libFuzzer target: cs__codec_decode_doc on arbitrary bytes. Each input is
 * decoded twice: with the field table memo as earlier inputs left it, and
 * with it empty; both must give the same code and message. */
#include <string.h>

#include "core/codec_dec.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cs_doc d, cold;
  char msg[512];
  int rc = cs__codec_decode_doc(&d, data, size);
  fuzz_check_rc("doc", rc);
  snprintf(msg, sizeof(msg), "%s", rc ? cs_errmsg() : "");
  cs__dec_memo_forget();
  int rc_cold = cs__codec_decode_doc(&cold, data, size);
  if (rc_cold != rc || (rc && strcmp(msg, cs_errmsg()) != 0)) {
    fprintf(stderr, "doc: code %d '%s' with the memo, %d '%s' without\n", rc, msg, rc_cold,
            cs_errmsg());
    abort();
  }
  if (rc_cold == 0)
    cs__doc_dispose(&cold);
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
