/* The one place where the library allocates, so that tests can fail it. */
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "base/base.h"

/* Countdown to an injected failure; 0 means never. */
static unsigned long fail_countdown;

void cs__alloc_fail_after(unsigned long n) { fail_countdown = n; }

static int injected_failure(void) {
  if (CS__LIKELY(fail_countdown == 0))
    return 0;
  return --fail_countdown == 0;
}

void *cs__malloc(size_t size) {
  void *p = injected_failure() ? NULL : malloc(size ? size : 1);
  if (!p)
    cs__error(CS_ENOMEM, "out of memory allocating %zu bytes", size);
  return p;
}

void *cs__calloc(size_t n, size_t size) {
  void *p = injected_failure() ? NULL : calloc(n ? n : 1, size ? size : 1);
  if (!p)
    cs__error(CS_ENOMEM, "out of memory allocating %zu x %zu bytes", n, size);
  return p;
}

void *cs__realloc(void *ptr, size_t size) {
  void *p = injected_failure() ? NULL : realloc(ptr, size ? size : 1);
  if (!p)
    cs__error(CS_ENOMEM, "out of memory growing to %zu bytes", size);
  return p;
}

int cs__array_grow(void **ptr, size_t *cap, size_t need, size_t item) {
  size_t ncap;
  void *p;

  if (need <= *cap)
    return 0;
  /* A first allocation takes what is asked (most arrays of a document hold
   * one or two items for good); later ones grow by half, so a grown array
   * wastes at most a third of its room. */
  ncap = *cap;
  if (need > SIZE_MAX / 2 / item)
    return cs__error(CS_ENOMEM, "array of %zu items of %zu bytes is too large", need, item);
  if (ncap == 0)
    ncap = need;
  while (ncap < need)
    ncap += ncap / 2 + 1;
  p = cs__realloc(*ptr, ncap * item);
  if (!p)
    return CS_ENOMEM;
  *ptr = p;
  *cap = ncap;
  return 0;
}

char *cs__strndup(const char *s, size_t n) {
  char *p = cs__malloc(n + 1);
  if (!p)
    return NULL;
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

char *cs__strdup(const char *s) { return cs__strndup(s, strlen(s)); }

void cs__free(void *ptr) { free(ptr); }

void cs_free(void *ptr) { free(ptr); }

void cs__heap_trim(void) {
#ifdef __GLIBC__
  malloc_trim(0);
#endif
}
