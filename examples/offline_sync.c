/*
 * The product guide's flow in C: two devices edit a profile offline, sync
 * through a hub, see one conflict, resolve it, and converge.
 *
 *   offline_sync [DIR]     (DIR: where to put the three stores; default: a temp dir)
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include <cosmicsync.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECK(call)                                                                                \
  do {                                                                                             \
    if ((call) != 0) {                                                                             \
      fprintf(stderr, "%s failed: %s\n", #call, cs_errmsg());                                      \
      exit(1);                                                                                     \
    }                                                                                              \
  } while (0)

static cs_store *open_store(const char *dir, const char *name) {
  char path[1024];
  cs_store *s;
  cs_store_options o = CS_STORE_OPTIONS_INIT;
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  CHECK(cs_store_open(&s, path, &o));
  return s;
}

static void update(cs_store *s, const char *json) {
  cs_action a = {CS_ACTION_UPDATE, "UserProfile", "profile_123", json};
  CHECK(cs_queue_offline_action(s, &a));
}

static void sync_with(cs_store *s, cs_store *hub, const char *who) {
  cs_peer *p;
  cs_sync_result r = CS_SYNC_RESULT_INIT;
  CHECK(cs_peer_local(&p, hub));
  CHECK(cs_sync(&r, s, p));
  printf("%s synced %zu items, %zu conflict(s)\n", who, r.synced_count, r.conflict_count);
  cs_sync_result_dispose(&r);
  cs_peer_free(p);
}

static char *get(cs_store *s) {
  cs_buf b = CS_BUF_INIT;
  CHECK(cs_get_local_data(&b, s, "UserProfile", "profile_123"));
  return b.ptr; /* the caller frees with cs_free */
}

int main(int argc, char **argv) {
  char tmpl[] = "/tmp/cosmicsync-example-XXXXXX";
  const char *dir = argc > 1 ? argv[1] : mkdtemp(tmpl);
  cs_store *phone, *laptop, *hub;
  cs_buf conflicts = CS_BUF_INIT;
  char id[33] = "";
  int ok;

  if (!dir)
    return 1;
  phone = open_store(dir, "phone");
  laptop = open_store(dir, "laptop");
  hub = open_store(dir, "hub");

  cs_action create = {CS_ACTION_CREATE, "UserProfile", "profile_123",
                      "{\"name\":\"Ada\",\"city\":\"Berlin\",\"interests\":[\"hiking\",\"climbing\"]}"};
  CHECK(cs_queue_offline_action(phone, &create));
  sync_with(phone, hub, "phone");
  sync_with(laptop, hub, "laptop");

  /* Offline on both devices. */
  update(phone, "{\"interests\":{\"$add\":[\"photography\"]},\"city\":\"Lisbon\"}");
  update(laptop, "{\"interests\":{\"$remove\":[\"hiking\"]},\"city\":\"Paris\"}");

  sync_with(phone, hub, "phone");
  sync_with(laptop, hub, "laptop");
  sync_with(phone, hub, "phone");

  CHECK(cs_list_conflicts(&conflicts, phone));
  printf("conflicts: %s\n", conflicts.ptr);
  const char *p = strstr(conflicts.ptr, "\"id\":\"");
  if (p)
    memcpy(id, p + 6, 32);
  cs_resolution pick = {CS_RESOLVE_PICK, 0, NULL};
  CHECK(cs_resolve_conflict(phone, id, &pick));
  sync_with(phone, hub, "phone");
  sync_with(laptop, hub, "laptop");

  char *a = get(phone), *b = get(laptop), *h = get(hub);
  printf("phone:  %s\nlaptop: %s\nhub:    %s\n", a, b, h);
  ok = strcmp(a, b) == 0 && strcmp(a, h) == 0;
  cs_free(a);
  cs_free(b);
  cs_free(h);
  cs_buf_dispose(&conflicts);
  cs_store_close(phone);
  cs_store_close(laptop);
  cs_store_close(hub);
  if (argc < 2) {
    char cmd[1100];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
      fprintf(stderr, "could not remove %s\n", dir);
  }
  printf(ok ? "converged\n" : "DIVERGED\n");
  return ok ? 0 : 1;
}
