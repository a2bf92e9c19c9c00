#ifndef CS_TESTUTIL_H
#define CS_TESTUTIL_H

#include <jansson.h>
#include <stdint.h>

#include "cosmicsync.h"

char *tu_tempdir(void);
void tu_rmrf(const char *path);
/* Opens (creating) dir/name with fast durability; asserts success. */
cs_store *tu_open(const char *dir, const char *name);
/* getLocalData as a malloc'd string (caller frees); asserts success. */
char *tu_get(cs_store *s, const char *model, const char *instance);
/* The same parsed (caller json_decref()s). */
json_t *tu_get_json(cs_store *s, const char *model, const char *instance);
void tu_act(cs_store *s, cs_action_type t, const char *model, const char *instance,
            const char *json);
/* One cs_sync of a with b over an in-process peer; asserts success. */
void tu_sync(cs_store *a, cs_store *b);
/* A hash of every record in every column family: "byte-for-byte unchanged". */
uint64_t tu_fingerprint(cs_store *s);
/* The same without the meta and peer records (clocks, acknowledgements). */
uint64_t tu_fingerprint_data(cs_store *s);
/* Number of open conflicts (and their JSON if out_json). */
size_t tu_conflicts(cs_store *s, char **out_json);
/* normal, or a tenth of it when CS_TEST_SCALE=small. */
int tu_scale(int normal);
/* How many log runs the store holds (every model). */
size_t tu_log_runs(cs_store *s);

/* A peer that answers every request with the bytes in `answer`. */
typedef struct tu_canned_peer {
  cs_peer base;
  cs_buf answer;
} tu_canned_peer;
void tu_canned_init(tu_canned_peer *p);

#endif
