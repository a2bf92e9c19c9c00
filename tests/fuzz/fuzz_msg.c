/*
 * libFuzzer target: cs__codec_decode_msg. A mutated input would almost never
 * carry a valid BLAKE2b trailer, so the input is taken as a message without
 * its checksum and the checksum is appended before decoding: that way the
 * mutations reach the body parser. The raw input is decoded too (checksum
 * and frame checks).
 */
#include <sodium.h>

#include "fuzz_common.h"

static void one(const uint8_t *data, size_t size) {
  cs_sync_msg m;
  int rc = cs__codec_decode_msg(&m, data, size);
  fuzz_check_rc("msg", rc);
  if (rc == 0) {
    cs_buf b = CS_BUF_INIT;
    if (cs__codec_encode_msg(&b, &m) != 0) {
      fprintf(stderr, "msg: decoded message does not encode: %s\n", cs_errmsg());
      abort();
    }
    fuzz_check_same("msg", &b, data, size);
    cs_buf_dispose(&b);
    cs__sync_msg_dispose(&m);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *sealed = malloc(size + 16);
  if (!sealed)
    return 0;
  one(data, size);
  memcpy(sealed, data, size);
  crypto_generichash(sealed + size, 16, data, size, NULL, 0);
  one(sealed, size + 16);
  free(sealed);
  return 0;
}
