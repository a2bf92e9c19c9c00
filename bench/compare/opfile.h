/*
 * Reader for the comparison's operation files (format: docs/benchmarks.md).
 * The whole file is loaded once; ops point into that buffer.
 */
#ifndef CS_BENCH_OPFILE_H
#define CS_BENCH_OPFILE_H

#include <stddef.h>
#include <stdint.h>

typedef struct bench_op {
  char kind;        /* 'S' register set, 'A' set add, 'R' set remove */
  char vtype;       /* 'S': 's' string or 'i' integer; otherwise 's' */
  uint32_t replica; /* "A" -> 0, "B" -> 1, "c17" -> 17 */
  uint32_t doc;     /* trailing number of the document id ("profile_17" -> 17) */
  const char *rep_name, *doc_name, *field, *val; /* NUL-terminated, in the buffer */
  uint32_t val_len;
  int64_t ival;
} bench_op;

typedef struct bench_phase {
  const char *name;
  bench_op *ops;
  size_t len;
} bench_phase;

typedef struct bench_opfile {
  char *buf;
  bench_op *all; /* every op, phases are slices */
  bench_phase phases[8];
  size_t nphases;
  uint32_t ndocs; /* 1 + largest document number */
  uint32_t nreplicas;
} bench_opfile;

/* 0, or -1 with a message on stderr. */
int bench_opfile_load(bench_opfile *f, const char *path);
void bench_opfile_dispose(bench_opfile *f);
/* The phase with that name, or an empty one. */
const bench_phase *bench_opfile_phase(const bench_opfile *f, const char *name);

/* Peak resident set size of this process in KiB (VmHWM), or 0. */
long bench_peak_rss_kib(void);
/* Monotonic time in milliseconds. */
double bench_now_ms(void);

#endif
