#include "opfile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint32_t trailing_number(const char *s) {
  size_t n = strlen(s);
  while (n > 0 && s[n - 1] >= '0' && s[n - 1] <= '9') n--;
  return (uint32_t)strtoul(s + n, NULL, 10);
}

static int split(char *line, char **tok, int max) {
  int n = 0;
  tok[n++] = line;
  for (char *p = line; *p && n < max; p++)
    if (*p == '\t') {
      *p = '\0';
      tok[n++] = p + 1;
    }
  return n;
}

int bench_opfile_load(bench_opfile *f, const char *path) {
  memset(f, 0, sizeof *f);
  FILE *in = fopen(path, "rb");
  if (!in) {
    perror(path);
    return -1;
  }
  fseek(in, 0, SEEK_END);
  long size = ftell(in);
  fseek(in, 0, SEEK_SET);
  f->buf = malloc((size_t)size + 1);
  if (!f->buf || fread(f->buf, 1, (size_t)size, in) != (size_t)size) {
    fclose(in);
    fprintf(stderr, "%s: read failed\n", path);
    return -1;
  }
  fclose(in);
  f->buf[size] = '\0';
  /* Count lines to size the op arrays once. */
  size_t nlines = 1;
  for (long i = 0; i < size; i++) nlines += f->buf[i] == '\n';
  bench_op *ops = malloc(sizeof(bench_op) * nlines);
  if (!ops) return -1;
  f->all = ops;
  size_t nops = 0;
  bench_phase *cur = NULL;
  char *line = f->buf;
  while (line && *line) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    char *tok[7];
    int n = split(line, tok, 7);
    if (tok[0][0] == '#' || tok[0][0] == '\0') {
      /* comment */
    } else if (tok[0][0] == 'P' && n >= 2) {
      if (f->nphases == 8) {
        fprintf(stderr, "%s: too many phases\n", path);
        return -1;
      }
      cur = &f->phases[f->nphases++];
      cur->name = tok[1];
      cur->ops = ops + nops;
      cur->len = 0;
    } else if (cur && n >= 5) {
      bench_op *op = &ops[nops++];
      cur->len++;
      op->kind = tok[0][0];
      op->rep_name = tok[1];
      op->replica = tok[1][0] == 'A' ? 0 : tok[1][0] == 'B' ? 1 : trailing_number(tok[1]);
      op->doc_name = tok[2];
      op->doc = trailing_number(tok[2]);
      op->field = tok[3];
      if (op->kind == 'S' && n >= 6) {
        op->vtype = tok[4][0];
        op->val = tok[5];
      } else {
        op->vtype = 's';
        op->val = tok[4];
      }
      op->val_len = (uint32_t)strlen(op->val);
      op->ival = op->vtype == 'i' ? strtoll(op->val, NULL, 10) : 0;
      if (op->doc + 1 > f->ndocs) f->ndocs = op->doc + 1;
      if (op->replica + 1 > f->nreplicas) f->nreplicas = op->replica + 1;
    } else {
      fprintf(stderr, "%s: bad line\n", path);
      return -1;
    }
    line = nl ? nl + 1 : NULL;
  }
  return 0;
}

void bench_opfile_dispose(bench_opfile *f) {
  free(f->all);
  free(f->buf);
  memset(f, 0, sizeof *f);
}

const bench_phase *bench_opfile_phase(const bench_opfile *f, const char *name) {
  static const bench_phase empty = {"", NULL, 0};
  for (size_t i = 0; i < f->nphases; i++)
    if (strcmp(f->phases[i].name, name) == 0) return &f->phases[i];
  return &empty;
}

long bench_peak_rss_kib(void) {
  FILE *in = fopen("/proc/self/status", "r");
  if (!in) return 0;
  char line[256];
  long kib = 0;
  while (fgets(line, sizeof line, in))
    if (strncmp(line, "VmHWM:", 6) == 0) kib = strtol(line + 6, NULL, 10);
  fclose(in);
  return kib;
}

double bench_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}
