/*
 * gen_workload: writes the operation files every contender of the comparison
 * replays, so that all of them do exactly the same edits. The format is
 * documented in docs/benchmarks.md ("Operation files"). Deterministic for a
 * given seed and size on every platform (own PRNG, no libc rand).
 *
 *   gen_workload OUTDIR [--seed N] [--w1-docs N] [--w1-edits N] [--w2-n N]
 *                       [--w3-adds N] [--w3-pairs N]
 *
 * Writes OUTDIR/w1.ops, OUTDIR/w2.ops, OUTDIR/w3.ops.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state;

/* splitmix64: small, fast, the same sequence everywhere. */
static uint64_t rnd(void) {
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint32_t below(uint32_t n) { return (uint32_t)(rnd() % n); }

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char *FIRST[] = {"Ada",   "Grace", "Alan",  "Linus", "Margaret", "Ken",    "Dennis",
                              "Barbara", "Edsger", "Donald", "Frances", "John", "Radia", "Leslie",
                              "Sophie", "Hugo",  "Lena",  "Mateo", "Amara",  "Yuki",   "Omar",
                              "Ines",  "Noah",  "Zoe",   "Priya", "Lucas",  "Mila",   "Jonas",
                              "Aisha", "Tom",   "Elena", "Kofi"};
static const char *LAST[] = {"Lovelace", "Hopper", "Turing",  "Torvalds", "Hamilton", "Thompson",
                             "Ritchie",  "Liskov", "Dijkstra", "Knuth",   "Allen",    "Backus",
                             "Perlman",  "Lamport", "Martin", "Dubois",   "Novak",    "Garcia",
                             "Okafor",   "Tanaka", "Haddad",  "Moreau",   "Schmidt",  "Rossi",
                             "Patel",    "Silva",  "Nielsen", "Weber",    "Khan",     "Berg"};
static const char *DOMAIN[] = {"example.org", "mail.test", "civic.example", "post.example"};
static const char *CITY[] = {"Lyon",   "Berlin", "Lisbon", "Oslo",    "Kyoto",   "Accra",  "Lima",
                             "Quebec", "Porto",  "Turin",  "Krakow",  "Seville", "Utrecht", "Ghent",
                             "Bergen", "Tartu",  "Nantes", "Bologna", "Graz",    "Aarhus", "Cork",
                             "Leeds",  "Basel",  "Brno",   "Malmo",   "Split",   "Riga",   "Pune"};
static const char *COUNTRY[] = {"FR", "DE", "PT", "NO", "JP", "GH", "PE", "CA", "IT", "PL",
                                "ES", "NL", "BE", "EE", "AT", "DK", "IE", "GB", "CH", "CZ"};
static const char *LANG[] = {"fr", "de", "pt", "no", "ja", "en", "es", "it", "pl", "nl", "et", "da"};
static const char *INTEREST[] = {
    "hiking",   "chess",     "cycling", "cooking",  "gardening", "jazz",     "poetry",  "running",
    "climbing", "sailing",   "pottery", "birding",  "photography", "knitting", "baking", "swimming",
    "yoga",     "astronomy", "theatre", "football", "tennis",    "painting", "reading", "films",
    "history",  "robotics",  "origami", "surfing",  "dancing",   "camping",  "fishing", "skiing",
    "rowing",   "cinema",    "opera",   "archery",  "judo",      "go",       "bridge",  "volunteering"};
#define NINTEREST COUNT(INTEREST)

/* The eight scalar fields of a UserProfile: 5 strings, 3 ints. */
static const char *FIELD[] = {"name", "email", "city", "country", "language", "age", "followers",
                              "level"};
#define NFIELD 8

static void put_field(FILE *f, int field) {
  switch (field) {
  case 0:
    fprintf(f, "s\t%s %s", FIRST[below(COUNT(FIRST))], LAST[below(COUNT(LAST))]);
    break;
  case 1: {
    const char *fi = FIRST[below(COUNT(FIRST))], *la = LAST[below(COUNT(LAST))];
    fprintf(f, "s\t");
    for (const char *p = fi; *p; p++) fputc(*p | 0x20, f);
    fputc('.', f);
    for (const char *p = la; *p; p++) fputc(*p | 0x20, f);
    fprintf(f, "%u@%s", below(100), DOMAIN[below(COUNT(DOMAIN))]);
    break;
  }
  case 2: fprintf(f, "s\t%s", CITY[below(COUNT(CITY))]); break;
  case 3: fprintf(f, "s\t%s", COUNTRY[below(COUNT(COUNTRY))]); break;
  case 4: fprintf(f, "s\t%s", LANG[below(COUNT(LANG))]); break;
  case 5: fprintf(f, "i\t%u", 18 + below(72)); break;
  case 6: fprintf(f, "i\t%u", below(5000)); break;
  default: fprintf(f, "i\t%u", 1 + below(50)); break;
  }
}

/* Interests of one profile as seen by one replica: a bit mask over INTEREST. */
typedef uint64_t mask;

static int pick_bit(mask m, int want_set) {
  int n = 0;
  for (unsigned i = 0; i < NINTEREST; i++)
    if (((m >> i) & 1) == (mask)want_set) n++;
  if (n == 0) return -1;
  int k = (int)below((uint32_t)n);
  for (unsigned i = 0; i < NINTEREST; i++)
    if (((m >> i) & 1) == (mask)want_set && k-- == 0) return (int)i;
  return -1;
}

static FILE *open_out(const char *dir, const char *name) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  if (!f) {
    perror(path);
    exit(1);
  }
  return f;
}

static void close_out(FILE *f) {
  if (fclose(f) != 0) {
    perror("write");
    exit(1);
  }
}

static void gen_w1(const char *dir, uint64_t seed, unsigned ndocs, unsigned nedits) {
  rng_state = seed * 1000003u + 1;
  FILE *f = open_out(dir, "w1.ops");
  mask *view[2];
  view[0] = calloc(ndocs, sizeof(mask));
  view[1] = calloc(ndocs, sizeof(mask));
  if (!view[0] || !view[1]) exit(1);
  fprintf(f, "#\tw1\tseed=%llu\tdocs=%u\tedits=%u\n", (unsigned long long)seed, ndocs, nedits);
  fprintf(f, "P\tinit\n");
  for (unsigned d = 0; d < ndocs; d++) {
    for (int k = 0; k < NFIELD; k++) {
      fprintf(f, "S\tA\tprofile_%u\t%s\t", d, FIELD[k]);
      put_field(f, k);
      fputc('\n', f);
    }
    unsigned n = 3 + below(5); /* 3..7, about 5 */
    for (unsigned j = 0; j < n; j++) {
      int b = pick_bit(view[0][d], 0);
      view[0][d] |= (mask)1 << b;
      fprintf(f, "A\tA\tprofile_%u\tinterests\t%s\n", d, INTEREST[b]);
    }
    view[1][d] = view[0][d];
  }
  fprintf(f, "P\tedit\n");
  /* A and B edit offline; their lines alternate but each only touches its own replica. */
  for (unsigned e = 0; e < 2 * nedits; e++) {
    int r = (int)(e & 1);
    const char *rep = r ? "B" : "A";
    unsigned d = below(ndocs);
    uint32_t roll = below(100);
    int b;
    if (roll >= 90 && (b = pick_bit(view[r][d], 1)) >= 0) {
      view[r][d] &= ~((mask)1 << b);
      fprintf(f, "R\t%s\tprofile_%u\tinterests\t%s\n", rep, d, INTEREST[b]);
    } else if (roll >= 80 && (b = pick_bit(view[r][d], 0)) >= 0) {
      view[r][d] |= (mask)1 << b;
      fprintf(f, "A\t%s\tprofile_%u\tinterests\t%s\n", rep, d, INTEREST[b]);
    } else {
      int k = (int)below(NFIELD);
      fprintf(f, "S\t%s\tprofile_%u\t%s\t", rep, d, FIELD[k]);
      put_field(f, k);
      fputc('\n', f);
    }
  }
  fprintf(f, "P\tsync\n");
  free(view[0]);
  free(view[1]);
  close_out(f);
}

/* crdt-benchmarks B3.1: 20*sqrt(N) clients each set key "v" of one shared map. */
static void gen_w2(const char *dir, uint64_t seed, unsigned n) {
  rng_state = seed * 1000003u + 2;
  FILE *f = open_out(dir, "w2.ops");
  unsigned clients = (unsigned)floor(20.0 * sqrt((double)n));
  fprintf(f, "#\tw2\tseed=%llu\tn=%u\tclients=%u\n", (unsigned long long)seed, n, clients);
  fprintf(f, "P\tclients\n");
  for (unsigned c = 0; c < clients; c++) fprintf(f, "S\tc%u\tmap\tv\ti\t%u\n", c, c);
  fprintf(f, "P\tmerge\n");
  close_out(f);
}

/* OR-set: A adds `adds` elements, B gets them; then for `pairs` of them one
 * replica re-adds the element while the other removes it, concurrently. With
 * add-wins every element is present after the exchange. */
static void gen_w3(const char *dir, uint64_t seed, unsigned adds, unsigned pairs) {
  rng_state = seed * 1000003u + 3;
  FILE *f = open_out(dir, "w3.ops");
  if (pairs > adds) pairs = adds;
  fprintf(f, "#\tw3\tseed=%llu\tadds=%u\tpairs=%u\n", (unsigned long long)seed, adds, pairs);
  fprintf(f, "P\tinit\n");
  /* Ascending element names: every engine appends at the end of its sorted index. */
  for (unsigned i = 0; i < adds; i++) fprintf(f, "A\tA\tset_0\tmembers\te%07u\n", i);
  fprintf(f, "P\tedit\n");
  /* A random `pairs`-subset of the elements (partial Fisher-Yates), in order drawn. */
  unsigned *idx = malloc(sizeof(unsigned) * (adds ? adds : 1));
  if (!idx) exit(1);
  for (unsigned i = 0; i < adds; i++) idx[i] = i;
  for (unsigned i = 0; i < pairs; i++) {
    unsigned j = i + below(adds - i);
    unsigned t = idx[i];
    idx[i] = idx[j];
    idx[j] = t;
    int a_adds = (int)(rnd() & 1);
    fprintf(f, "A\t%s\tset_0\tmembers\te%07u\n", a_adds ? "A" : "B", idx[i]);
    fprintf(f, "R\t%s\tset_0\tmembers\te%07u\n", a_adds ? "B" : "A", idx[i]);
  }
  fprintf(f, "P\tsync\n");
  free(idx);
  close_out(f);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: gen_workload OUTDIR [--seed N] [--w1-docs N] [--w1-edits N] "
                    "[--w2-n N] [--w3-adds N] [--w3-pairs N]\n");
    return 2;
  }
  const char *dir = argv[1];
  unsigned long long seed = 42;
  unsigned w1_docs = 10000, w1_edits = 50000, w2_n = 6000, w3_adds = 100000, w3_pairs = 50000;
  for (int i = 2; i + 1 < argc; i += 2) {
    unsigned long long v = strtoull(argv[i + 1], NULL, 10);
    if (!strcmp(argv[i], "--seed")) seed = v;
    else if (!strcmp(argv[i], "--w1-docs")) w1_docs = (unsigned)v;
    else if (!strcmp(argv[i], "--w1-edits")) w1_edits = (unsigned)v;
    else if (!strcmp(argv[i], "--w2-n")) w2_n = (unsigned)v;
    else if (!strcmp(argv[i], "--w3-adds")) w3_adds = (unsigned)v;
    else if (!strcmp(argv[i], "--w3-pairs")) w3_pairs = (unsigned)v;
    else {
      fprintf(stderr, "gen_workload: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (w1_docs == 0) w1_docs = 1;
  gen_w1(dir, seed, w1_docs, w1_edits);
  gen_w2(dir, seed, w2_n);
  gen_w3(dir, seed, w3_adds, w3_pairs);
  return 0;
}
