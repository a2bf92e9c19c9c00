/* libFuzzer target: a change index entry's value (cs_change_cursor) on
 * arbitrary bytes. A list that reads whole is written back from its names
 * to the very same bytes; a one-name value reads as itself. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cs_change_cursor c;
  cs_buf back = CS_BUF_INIT;
  char *name;
  size_t n = 0;
  int rc = cs__change_cursor_init(&c, data, size);
  fuzz_check_rc("changes", rc);
  if (rc != 0)
    return 0;
  bool single = c.single;
  if (!single && cs__change_list_start(&back) != 0)
    return 0;
  while ((rc = cs__change_cursor_next(&name, &c)) == 1) {
    n++;
    if (single && (strlen(name) != size || memcmp(name, data, size) != 0)) {
      fprintf(stderr, "changes: a one-name value reads as another name\n");
      abort();
    }
    if (!single && cs__change_list_add(&back, name) != 0) {
      fprintf(stderr, "changes: a name read does not write: %s\n", cs_errmsg());
      abort();
    }
    cs__free(name);
  }
  fuzz_check_rc("changes", rc);
  if (rc == 0 && single && n != 1) {
    fprintf(stderr, "changes: a one-name value read %zu names\n", n);
    abort();
  }
  if (rc == 0 && !single)
    fuzz_check_same("changes", &back, data, size);
  cs_buf_dispose(&back);
  return 0;
}
