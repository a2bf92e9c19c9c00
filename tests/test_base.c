#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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

/* Text that fills the room left exactly, by one byte more, and by much more:
 * each is written whole, once, and stays terminated. */
Test(base_buf, printf_fits_or_grows_at_every_boundary) {
  for (size_t pre = 0; pre < 140; pre++) {
    cs_buf b = CS_BUF_INIT;
    char want[512];
    for (size_t i = 0; i < pre; i++)
      cr_assert_eq(cs__buf_putc(&b, (char)('a' + i % 26)), 0);
    size_t room = b.asize > b.size ? b.asize - b.size : 0;
    for (size_t len = room ? room - 2 : 0; len < room + 3; len++) {
      cs_buf c = CS_BUF_INIT;
      cr_assert_eq(cs__buf_put(&c, b.ptr, b.size), 0);
      cr_assert_eq(cs__buf_printf(&c, "%0*d", (int)len, 7), 0);
      snprintf(want, sizeof(want), "%s%0*d", b.ptr ? b.ptr : "", (int)len, 7);
      cr_assert_str_eq(c.ptr, want, "prefix %zu, text %zu", pre, len);
      cr_assert_eq(c.size, strlen(want));
      cs_buf_dispose(&c);
    }
    cs_buf_dispose(&b);
  }
}

Test(base_buf, printf_without_memory_keeps_the_text) {
  cs_buf b = CS_BUF_INIT;
  cr_assert_eq(cs__buf_puts(&b, "kept"), 0);
  cs__alloc_fail_after(1);
  cr_expect_eq(cs__buf_printf(&b, "%0200d", 1), CS_ENOMEM);
  cr_expect_str_eq(b.ptr, "kept");
  cr_expect_eq(b.size, 4);
  cs_buf_dispose(&b);
}

Test(base_text, decimal_matches_printf) {
  static const int64_t edges[] = {0, 1, -1, 9, 10, -10, 99, 100, INT64_MAX, INT64_MIN,
                                  INT64_MIN + 1, 4294967295LL, -4294967296LL};
  char mine[CS_DEC_MAX], theirs[32];
  uint64_t x = 88172645463325252ull;
  for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++) {
    snprintf(theirs, sizeof(theirs), "%lld", (long long)edges[i]);
    cr_expect_eq(cs__fmt_i64(mine, edges[i]), strlen(theirs));
    cr_expect_str_eq(mine, theirs);
    snprintf(theirs, sizeof(theirs), "%llu", (unsigned long long)edges[i]);
    cr_expect_eq(cs__fmt_u64(mine, (uint64_t)edges[i]), strlen(theirs));
    cr_expect_str_eq(mine, theirs);
  }
  for (int i = 0; i < 10000; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    uint64_t v = x >> (x % 64);
    snprintf(theirs, sizeof(theirs), "%llu", (unsigned long long)v);
    cs__fmt_u64(mine, v);
    cr_assert_str_eq(mine, theirs);
    snprintf(theirs, sizeof(theirs), "%lld", (long long)(int64_t)v);
    cs__fmt_i64(mine, (int64_t)v);
    cr_assert_str_eq(mine, theirs);
  }
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

/* ---- shared names ---- */

Test(base_names, equal_names_share_one_copy) {
  char *a = cs__name_dupn("interests!", 9), *b = cs__name_dup("interests"), *c = cs__name_dup("age");
  cr_assert(a && b && c);
  cr_expect_str_eq(a, "interests");
  cr_expect_eq(a, b, "equal names are one pointer");
  cr_expect_neq(a, c);
  cr_expect(cs__name_shared(a) && cs__name_shared(c));
  cr_expect_eq(cs__name_dup(a), a, "a shared name is its own copy");
  cs__name_free(a); /* no-op: it stays valid */
  cr_expect_str_eq(b, "interests");
}

Test(base_names, long_or_nul_names_get_private_copies) {
  char longname[300], nul[3] = {'a', '\0', 'b'};
  memset(longname, 'x', sizeof(longname) - 1);
  longname[sizeof(longname) - 1] = '\0';
  char *l1 = cs__name_dup(longname), *l2 = cs__name_dup(longname), *n = cs__name_dupn(nul, 3);
  cr_assert(l1 && l2 && n);
  cr_expect(!cs__name_shared(l1) && !cs__name_shared(n));
  cr_expect_neq(l1, l2);
  cr_expect_str_eq(l1, longname);
  cr_expect_eq(memcmp(n, nul, 3), 0);
  cs__name_free(l1);
  cs__name_free(l2);
  cs__name_free(n);
}

Test(base_names, private_copy_reports_nomem_shared_needs_none) {
  char longname[200];
  memset(longname, 'y', sizeof(longname) - 1);
  longname[sizeof(longname) - 1] = '\0';
  cr_assert_not_null(cs__name_dup("status"));
  cs__alloc_fail_after(1);
  cr_expect_not_null(cs__name_dup("status"), "a known shared name allocates nothing");
  cr_expect_null(cs__name_dup(longname));
  cr_expect_eq(cs_errcode(), CS_ENOMEM);
  cs__alloc_fail_after(0);
}

/* Distinct names of `len` bytes until one is no longer shared; all read back. */
static size_t fill_names(size_t len, size_t limit) {
  char buf[160];
  size_t n = 0;
  for (; n < limit; n++) {
    snprintf(buf, sizeof(buf), "%0*zu", (int)len, n);
    char *p = cs__name_dup(buf);
    cr_assert_not_null(p);
    cr_assert_str_eq(p, buf);
    if (!cs__name_shared(p)) {
      cs__name_free(p);
      break;
    }
  }
  /* The shared ones are still there, one pointer per name. */
  snprintf(buf, sizeof(buf), "%0*zu", (int)len, (size_t)0);
  cr_expect_eq(cs__name_dup(buf), cs__name_dup(buf));
  cr_expect(cs__name_shared(cs__name_dup(buf)));
  return n;
}

Test(base_names, table_full_falls_back_to_private_copies) {
  size_t n = fill_names(8, 100000);
  cr_expect(n > 1000 && n < 100000, "shared %zu short names before the table filled", n);
}

Test(base_names, arena_full_falls_back_to_private_copies) {
  size_t n = fill_names(120, 100000);
  cr_expect(n > 1000 && n < 100000, "shared %zu long names before the arena filled", n);
}


/* base/names.c's hash (FNV-1a, 32 bits), to make names that collide. */
static uint32_t fnv1a(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++)
    h = (h ^ (uint8_t)*s) * 16777619u;
  return h;
}

/* Names chosen to land on one slot cost a bounded probe: past it they get
 * private copies, and every name still reads back. */
Test(base_names, colliding_names_are_bounded) {
  char names[48][16];
  char *got[48];
  int n = 0, shared = 0;
  for (unsigned i = 0; n < 48; i++) {
    snprintf(names[n], sizeof(names[n]), "c%u", i);
    if ((fnv1a(names[n]) & 8191) == 77)
      n++;
  }
  for (int k = 0; k < n; k++) {
    cr_assert_not_null(got[k] = cs__name_dup(names[k]));
    cr_expect_str_eq(got[k], names[k]);
    shared += cs__name_shared(got[k]);
  }
  cr_expect(shared >= 8 && shared <= 32, "%d of %d colliding names shared", shared, n);
  for (int k = 0; k < n; k++) {
    if (cs__name_shared(got[k]))
      cr_expect_eq(cs__name_dup(names[k]), got[k], "a shared name is found again");
    cs__name_free(got[k]);
  }
}

static void *share_many(void *arg) {
  char **out = arg, buf[32];
  for (int i = 0; i < 500; i++) {
    snprintf(buf, sizeof(buf), "field_%d", i);
    out[i] = cs__name_dup(buf);
  }
  return NULL;
}

Test(base_names, threads_agree_on_one_copy) {
  static char *got[4][500];
  pthread_t t[4];
  for (int i = 0; i < 4; i++)
    cr_assert_eq(pthread_create(&t[i], NULL, share_many, got[i]), 0);
  for (int i = 0; i < 4; i++)
    pthread_join(t[i], NULL);
  for (int k = 0; k < 500; k++) {
    char buf[32];
    snprintf(buf, sizeof(buf), "field_%d", k);
    cr_assert_str_eq(got[0][k], buf);
    for (int i = 1; i < 4; i++)
      cr_assert_eq(got[i][k], got[0][k], "name %d differs between threads", k);
  }
}

/* ---- memory ---- */

#if defined(__GLIBC__) && !defined(CS__ASAN)
static long resident_kib(void) {
  long pages = 0, rss = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f && fscanf(f, "%ld %ld", &pages, &rss) != 2)
    rss = 0;
  if (f)
    fclose(f);
  return rss * (sysconf(_SC_PAGESIZE) / 1024);
}
#endif

Test(base_memory, release_gives_freed_heap_back) {
#if !defined(__GLIBC__) || defined(CS__ASAN)
  cr_skip_test("needs glibc's allocator");
#else
  enum { N = 4096, SIZE = 16384 }; /* 64 MiB in blocks the heap serves */
  static void *blocks[N];
  for (int i = 0; i < N; i++) {
    cr_assert_not_null(blocks[i] = cs__malloc(SIZE));
    memset(blocks[i], 1, SIZE);
  }
  /* Every 16th block stays: the freed ones are holes the heap keeps. */
  for (int i = 0; i < N; i++)
    if (i % 16 != 15)
      cs__free(blocks[i]);
  long kept = resident_kib();
  cs_release_memory();
  long released = kept - resident_kib();
  cr_expect(released >= 32 * 1024, "released %ld KiB of 60 MiB freed", released);
  for (int i = 15; i < N; i += 16)
    cs__free(blocks[i]);
#endif
}
