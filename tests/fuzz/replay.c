/*
 * Standalone driver for the fuzz targets: runs LLVMFuzzerTestOneInput on every
 * file named on the command line (directories are walked one level), so the
 * corpus is replayed by ctest with any compiler, no libFuzzer needed.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_common.h"

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  uint8_t *buf;
  long len;
  if (!f) {
    perror(path);
    return 1;
  }
  if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
    fclose(f);
    fprintf(stderr, "%s: cannot size\n", path);
    return 1;
  }
  /* A copy of exactly len bytes, so that ASan sees reads past the end. */
  buf = malloc(len ? (size_t)len : 1);
  if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) {
    fclose(f);
    free(buf);
    fprintf(stderr, "%s: cannot read\n", path);
    return 1;
  }
  fclose(f);
  LLVMFuzzerTestOneInput(buf, (size_t)len);
  free(buf);
  return 0;
}

int main(int argc, char **argv) {
  int files = 0, bad = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      perror(argv[i]);
      return 1;
    }
    if (S_ISDIR(st.st_mode)) {
      DIR *d = opendir(argv[i]);
      struct dirent *e;
      if (!d) {
        perror(argv[i]);
        return 1;
      }
      while ((e = readdir(d)) != NULL) {
        char path[4096];
        if (e->d_name[0] == '.')
          continue;
        snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
        bad |= run_file(path);
        files++;
      }
      closedir(d);
    } else {
      bad |= run_file(argv[i]);
      files++;
    }
  }
  printf("replayed %d inputs\n", files);
  /* An empty corpus means the rule points at the wrong place. */
  return bad || files == 0;
}
