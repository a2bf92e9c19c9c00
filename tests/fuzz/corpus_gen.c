/*
 * Writes the codec's seed corpus: small valid encodings of random documents,
 * dot sets, actions and messages (fixed seed, so the output is reproducible)
 * and a few edge cases each decoder must refuse. Usage: codec_corpus_gen DIR
 * (writes DIR/fuzz_<target>/<name>).
 */
#include <errno.h>
#include <sys/stat.h>

#include "../test_codec_gen.h"

static const char *root;

static void put(const char *target, const char *name, const void *p, size_t len) {
  char path[4096];
  FILE *f;
  snprintf(path, sizeof(path), "%s/%s", root, target);
  if (mkdir(path, 0755) != 0 && errno != EEXIST) {
    perror(path);
    exit(1);
  }
  snprintf(path, sizeof(path), "%s/%s/%s", root, target, name);
  if (!(f = fopen(path, "wb")) || fwrite(p, 1, len, f) != len || fclose(f) != 0) {
    perror(path);
    exit(1);
  }
}

static void edges(const char *target, uint8_t kind) {
  const uint8_t empty[1] = {0};
  const uint8_t version[] = {2, kind, 0, 0};
  const uint8_t huge_map[] = {1, kind, 0xdf, 0x01, 0x00, 0x00, 0x00};
  const uint8_t nested[] = {1, kind, 0x8d, 0xdf, 0xff, 0x8d, 0xff, 0xff};
  const uint8_t huge_count[] = {1, kind, 0xce, 0x7f, 0xff, 0xff, 0xff, 0x00};
  put(target, "edge_empty", empty, 0);
  put(target, "edge_version", version, sizeof(version));
  put(target, "edge_huge_map", huge_map, sizeof(huge_map));
  put(target, "edge_nested_maps", nested, sizeof(nested));
  put(target, "edge_huge_count", huge_count, sizeof(huge_count));
}

/* A log run made of m's first action group: one section, no knowledge, one
 * origin that is also the sender (the shape cs__codec_peek_run reads).
 * false when m has no action. */
static bool run_of(cs_sync_msg *run, const cs_sync_msg *m) {
  const cs_wire_model *src;
  cs_wire_model *wm;
  size_t n = 0;
  memset(run, 0, sizeof(*run));
  if (m->nmodels == 0 || m->models[0].nactions == 0)
    return false;
  src = &m->models[0];
  while (n < src->nactions && src->actions[n].origin == src->actions[0].origin)
    n++;
  run->type = CS_MSG_SYNC_REQUEST;
  run->sender = src->actions[0].origin;
  run->clock = m->clock;
  run->models = wm = cs__calloc(1, sizeof(*wm));
  run->nmodels = 1;
  wm->name = cs__strdup(src->name);
  wm->instances = cs__calloc(src->ninstances, sizeof(char *));
  for (size_t i = 0; i < src->ninstances; i++)
    wm->instances[wm->ninstances++] = cs__strdup(src->instances[i]);
  wm->actions = cs__calloc(n, sizeof(cs_wire_action));
  for (size_t i = 0; i < n; i++) {
    cs_wire_action *a = &wm->actions[wm->nactions++];
    *a = src->actions[i];
    memset(&a->doc, 0, sizeof(a->doc));
    memset(&a->ctx, 0, sizeof(a->ctx));
    if (cs__doc_copy(&a->doc, &src->actions[i].doc) != 0 ||
        cs__dotset_copy(&a->ctx, &src->actions[i].ctx) != 0) {
      fprintf(stderr, "corpus_gen: out of memory\n");
      exit(1);
    }
  }
  return true;
}

int main(int argc, char **argv) {
  gen_rng r = {20261125};
  char name[64];
  if (argc != 2) {
    fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  root = argv[1];
  if (mkdir(root, 0755) != 0 && errno != EEXIST) {
    perror(root);
    return 1;
  }
  for (int i = 0; i < 24; i++) {
    cs_buf b = CS_BUF_INIT;
    cs_doc d;
    cs_dotset s;
    cs_wire_action a;
    cs_sync_msg run;
    cs_sync_msg m;
    gen_dots g = {0, 0, 0, false};

    gen_doc(&r, &d, &g);
    if (cs__codec_encode_doc(&b, &d) == 0) {
      snprintf(name, sizeof(name), "doc_%02d", i);
      put("fuzz_doc", name, b.ptr, b.size);
    }
    cs__doc_dispose(&d);
    cs__buf_clear(&b);

    gen_dotset(&r, &s, 8);
    if (cs__codec_encode_dotset(&b, &s) == 0) {
      snprintf(name, sizeof(name), "dotset_%02d", i);
      put("fuzz_dotset", name, b.ptr, b.size);
    }
    cs__dotset_dispose(&s);
    cs__buf_clear(&b);

    gen_action(&r, &a, gen_replica(&r), 1 + gen_below(&r, 1000));
    if (cs__codec_encode_action(&b, &a, "profile_1") == 0) {
      snprintf(name, sizeof(name), "action_%02d", i);
      put("fuzz_action", name, b.ptr, b.size);
    }
    cs__wire_action_dispose(&a);
    cs__buf_clear(&b);

    gen_msg(&r, &m);
    /* without the checksum trailer: the target appends it (fuzz_msg.c) */
    if (cs__codec_encode_msg(&b, &m) == 0 && b.size < 4096) {
      snprintf(name, sizeof(name), "msg_%02d", i);
      put("fuzz_msg", name, b.ptr, b.size - 16);
    }
    cs__buf_clear(&b);
    if (run_of(&run, &m) && cs__codec_encode_msg(&b, &run) == 0 && b.size < 4096) {
      snprintf(name, sizeof(name), "run_%02d", i);
      put("fuzz_msg", name, b.ptr, b.size - 16);
    }
    cs__sync_msg_dispose(&run);
    cs__sync_msg_dispose(&m);
    cs_buf_dispose(&b);
  }
  edges("fuzz_doc", 16);
  edges("fuzz_action", 17);
  edges("fuzz_dotset", 18);
  edges("fuzz_msg", 1);
  return 0;
}
