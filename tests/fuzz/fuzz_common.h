/*
 * Shared by the codec fuzz targets: a decoder that accepts an input must
 * accept only its canonical form, so every accepted input re-encodes to the
 * very same bytes; anything else aborts (a finding).
 */
#ifndef CS_FUZZ_COMMON_H
#define CS_FUZZ_COMMON_H

#include <stdio.h>
#include <stdlib.h>

#include "core/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static inline void fuzz_check_same(const char *what, const cs_buf *b, const uint8_t *data,
                                   size_t size) {
  if (b->size != size || memcmp(b->ptr, data, size) != 0) {
    fprintf(stderr, "%s: accepted input of %zu bytes re-encodes to %zu other bytes\n", what, size,
            b->size);
    abort();
  }
}

static inline void fuzz_check_rc(const char *what, int rc) {
  if (rc != 0 && rc != CS_ECORRUPT && rc != CS_EVERSION && rc != CS_ENOMEM) {
    fprintf(stderr, "%s: unexpected code %d (%s)\n", what, rc, cs_errmsg());
    abort();
  }
  if (rc != 0 && cs_errmsg()[0] == '\0') {
    fprintf(stderr, "%s: failure without a message\n", what);
    abort();
  }
}

#endif /* CS_FUZZ_COMMON_H */
