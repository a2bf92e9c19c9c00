/* Helpers shared by the storage test programs: scratch directories, seeds. */
#ifndef CS_TEST_STORAGE_UTIL_H
#define CS_TEST_STORAGE_UTIL_H

#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "storage/storage.h"

static int st_rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(p);
}

/* Removes a directory tree (best effort). */
static inline void st_rmtree(const char *path) {
  nftw(path, st_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh scratch directory under $TMPDIR (or /tmp); caller st_rmtree()s it. */
static inline void st_tmpdir(char *out, size_t cap) {
  const char *base = getenv("TMPDIR");
  snprintf(out, cap, "%s/cs_storage_XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(out))
    abort();
}

/* Iteration counts are cut ~10x under CS_TEST_SCALE=small (sanitizer runs). */
static inline unsigned st_scale(unsigned n) {
  const char *s = getenv("CS_TEST_SCALE");
  if (s && strcmp(s, "small") == 0)
    return n / 10 ? n / 10 : 1;
  return n;
}

/* The seed of a property test: $CS_SEED when set (to replay), else the clock. */
static inline uint64_t st_seed(void) {
  const char *s = getenv("CS_SEED");
  if (s && *s)
    return strtoull(s, NULL, 0);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ((uint64_t)ts.tv_sec * 1000003u) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
}

/* splitmix64: small, seedable, good enough for test data. */
static inline uint64_t st_rand(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

#endif
