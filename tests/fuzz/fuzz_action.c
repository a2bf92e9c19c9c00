/* libFuzzer target: cs__codec_decode_action on arbitrary bytes. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cs_wire_action a;
  char *instance = NULL;
  int rc = cs__codec_decode_action(&a, &instance, data, size);
  fuzz_check_rc("action", rc);
  if (rc == 0) {
    cs_buf b = CS_BUF_INIT;
    if (cs__codec_encode_action(&b, &a, instance) != 0) {
      fprintf(stderr, "action: decoded action does not encode: %s\n", cs_errmsg());
      abort();
    }
    fuzz_check_same("action", &b, data, size);
    cs_buf_dispose(&b);
    cs__wire_action_dispose(&a);
    cs__free(instance);
  } else if (instance) {
    fprintf(stderr, "action: instance left set after a failure\n");
    abort();
  }
  return 0;
}
