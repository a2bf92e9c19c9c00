/* Time and hex helpers. */
#include <time.h>

#include "base/base.h"

uint64_t cs__now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t cs__mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void cs__hex_encode(char *out, const uint8_t *in, size_t len) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < len; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 15];
  }
  out[2 * len] = '\0';
}

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int cs__hex_decode(uint8_t *out, size_t len, const char *hex) {
  if (strlen(hex) != 2 * len)
    return cs__error(CS_EINVAL, "expected %zu hex digits, got %zu", 2 * len, strlen(hex));
  for (size_t i = 0; i < len; i++) {
    int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return cs__error(CS_EINVAL, "bad hex digit at offset %zu", 2 * i);
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return 0;
}
