#include <criterion/criterion.h>
#include <string.h>

#include "base/base.h"

Test(base_error, strerror_covers_every_code) {
#define CHECK(name, value, text) cr_expect_str_eq(cs_strerror(CS_E##name), text);
  CS_ERRNO_MAP(CHECK)
#undef CHECK
  cr_expect_str_eq(cs_strerror(12345), "unknown error");
  cr_expect_str_eq(cs_strerror(0), "success");
}

Test(base_error, message_keeps_context_when_wrapped) {
  cr_expect_eq(cs__error(CS_EINVAL, "field '%s': expected array", "interests"), CS_EINVAL);
  cr_expect_eq(cs__error_wrap(CS_EINVAL, "delta %d, ", 3), CS_EINVAL);
  cr_expect_str_eq(cs_errmsg(), "delta 3, field 'interests': expected array");
  cr_expect_eq(cs_errcode(), CS_EINVAL);
  cs_error_clear();
  cr_expect_str_eq(cs_errmsg(), "");
  cr_expect_eq(cs_errcode(), 0);
}

Test(base_buf, grows_and_stays_terminated) {
  cs_buf b = CS_BUF_INIT;
  for (int i = 0; i < 1000; i++)
    cr_assert_eq(cs__buf_printf(&b, "%d,", i), 0);
  cr_expect_eq(b.size, strlen(b.ptr));
  cr_expect(strncmp(b.ptr, "0,1,2,", 6) == 0);
  cs__buf_clear(&b);
  cr_expect_eq(b.size, 0);
  cr_expect_str_eq(b.ptr, "");
  cs_buf_dispose(&b);
  cr_expect_null(b.ptr);
}

Test(base_alloc, injected_failure_reports_nomem) {
  cs_buf b = CS_BUF_INIT;
  cs__alloc_fail_after(1);
  cr_expect_eq(cs__buf_puts(&b, "hello"), CS_ENOMEM);
  cr_expect(strstr(cs_errmsg(), "out of memory") != NULL);
  cr_expect_eq(cs__buf_puts(&b, "hello"), 0);
  cr_expect_str_eq(b.ptr, "hello");
  cs_buf_dispose(&b);
}

Test(base_hex, round_trip_and_bad_digits) {
  uint8_t in[4] = {0x00, 0x7f, 0xab, 0xff}, out[4];
  char hex[9];
  cs__hex_encode(hex, in, 4);
  cr_expect_str_eq(hex, "007fabff");
  cr_expect_eq(cs__hex_decode(out, 4, hex), 0);
  cr_expect_eq(memcmp(in, out, 4), 0);
  cr_expect_eq(cs__hex_decode(out, 4, "007fabfg"), CS_EINVAL);
  cr_expect_eq(cs__hex_decode(out, 4, "007f"), CS_EINVAL);
}

Test(base_bytes, big_endian_orders_numerically) {
  uint8_t a[8], b[8];
  cs__put_be64(a, 255);
  cs__put_be64(b, 256);
  cr_expect_lt(memcmp(a, b, 8), 0);
  cr_expect_eq(cs__get_be64(b), 256);
  cs__put_be32(a, 0xdeadbeef);
  cr_expect_eq(cs__get_be32(a), 0xdeadbeef);
}

Test(base, utf8_check) {
  static const struct {
    const char *s;
    size_t len, bad;
  } cases[] = {
      {"", 0, 0},
      {"plain", 5, 5},
      {"caf\xc3\xa9", 5, 5},
      {"\xe2\x82\xac \xf0\x9f\x98\x80", 8, 8}, /* euro sign, emoji */
      {"a\xff" "b", 3, 1},                       /* never valid */
      {"\xc0\x80", 2, 0},                         /* overlong NUL */
      {"\xe0\x80\xaf", 3, 0},                     /* overlong '/' */
      {"\xed\xa0\x80", 3, 0},                     /* surrogate U+D800 */
      {"\xf4\x90\x80\x80", 4, 0},                 /* above U+10FFFF */
      {"ab\xe2\x82", 4, 2},                       /* truncated sequence */
      {"a\x80", 2, 1},                            /* lone continuation byte */
      {"a\0b", 3, 1},                             /* NUL */
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    cr_expect_eq(cs__utf8_check(cases[i].s, cases[i].len), cases[i].bad, "case %zu", i);
}
