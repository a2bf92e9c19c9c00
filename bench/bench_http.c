/*
 * HTTP round trips per second over loopback with keep-alive, 1 KiB bodies:
 * signed (client signs, server verifies, server signs, client verifies) and,
 * for reference, unsigned requests from plain libcurl (the server still signs
 * its answers; nothing is verified on the client). One and two client
 * threads; median of 5 runs. Prints a table and RESULT key=value lines.
 *
 * Also prints the process CPU time per round trip (client + server, both in
 * this process), which stays meaningful when other work shares the cores.
 *
 * Env: CS_BENCH_MS (length of one run, default 1000).
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "transport/transport.h"

#define BODY 1024
#define RUNS 5

static cs_keypair server_key, client_key;
static uint8_t body[BODY];

static void handler(cs_http_response *resp, const cs_http_request *req, void *payload) {
  /* Answer with a body of the same size, like a small sync reply. */
  cs__buf_put(&resp->body, req->body, req->body_len);
}

static bool trust_all(const uint8_t pk[CS_PUBKEY_LEN], void *payload) {
  return memcmp(pk, client_key.pk, CS_PUBKEY_LEN) == 0;
}

typedef struct job {
  uint16_t port;
  bool sign;
  uint64_t until_ms;
  long done, failed;
} job;

static size_t sink(char *d, size_t s, size_t n, void *u) {
  (void)d;
  (void)u;
  return s * n;
}

static void *run_client(void *arg) {
  job *j = arg;
  char url[80];
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)j->port);
  if (j->sign) {
    cs_http_client *c;
    cs_buf resp = CS_BUF_INIT;
    if (cs__http_client_new(&c, url, &client_key, NULL) != 0) {
      j->failed = 1;
      return NULL;
    }
    while (cs__mono_ms() < j->until_ms) {
      if (cs__http_post(&resp, NULL, c, "/v1/sync", body, BODY) == 0)
        j->done++;
      else
        j->failed++;
    }
    cs__http_client_free(c);
    cs_buf_dispose(&resp);
  } else {
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Expect:");
    h = curl_slist_append(h, "Content-Type: application/msgpack");
    strcat(url, "/v1/sync");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, (const char *)body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)BODY);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    while (cs__mono_ms() < j->until_ms) {
      long status = 0;
      if (curl_easy_perform(c) == CURLE_OK &&
          curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status == 200)
        j->done++;
      else
        j->failed++;
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
  }
  return NULL;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double cpu_us(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e6 +
         (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

/* One configuration: median round trips per second over RUNS runs, and the
 * CPU microseconds per round trip over all runs. */
static double measure(uint16_t port, bool sign, int threads, long run_ms, long *failures,
                      double *cpu_per_rt) {
  double rates[RUNS], cpu0 = cpu_us();
  long all = 0;
  for (int r = 0; r < RUNS; r++) {
    job jobs[8];
    pthread_t t[8];
    uint64_t start = cs__mono_ms();
    long total = 0;
    for (int i = 0; i < threads; i++) {
      jobs[i] = (job){port, sign, start + (uint64_t)run_ms, 0, 0};
      pthread_create(&t[i], NULL, run_client, &jobs[i]);
    }
    for (int i = 0; i < threads; i++) {
      pthread_join(t[i], NULL);
      total += jobs[i].done;
      *failures += jobs[i].failed;
    }
    rates[r] = (double)total * 1000.0 / (double)(cs__mono_ms() - start);
    all += total;
  }
  *cpu_per_rt = all ? (cpu_us() - cpu0) / (double)all : 0;
  qsort(rates, RUNS, sizeof(double), cmp_double);
  return rates[RUNS / 2];
}

int main(void) {
  cs_http_server_options o = CS_HTTP_SERVER_OPTIONS_INIT;
  cs_http_server *s;
  const char *env = getenv("CS_BENCH_MS");
  long run_ms = env ? atol(env) : 1000, failures = 0;
  struct {
    const char *key;
    bool sign;
    int threads;
    double rate, cpu;
  } rows[] = {{"http_signed_1t", true, 1, 0, 0},
              {"http_signed_2t", true, 2, 0, 0},
              {"http_unsigned_1t", false, 1, 0, 0},
              {"http_unsigned_2t", false, 2, 0, 0}};

  curl_global_init(CURL_GLOBAL_DEFAULT);
  for (size_t i = 0; i < BODY; i++)
    body[i] = (uint8_t)(i * 31);
  if (cs__keypair_generate(&server_key) || cs__keypair_generate(&client_key)) {
    fprintf(stderr, "keys: %s\n", cs_errmsg());
    return 1;
  }
  o.threads = 2;
  o.allow_any = true; /* unsigned rows need it; signed rows are still verified */
  o.trust = trust_all;
  if (cs__http_server_start(&s, &server_key, &o, handler, NULL) != 0) {
    fprintf(stderr, "server: %s\n", cs_errmsg());
    return 1;
  }
  for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
    rows[i].rate = measure(cs__http_server_port(s), rows[i].sign, rows[i].threads, run_ms,
                           &failures, &rows[i].cpu);
  cs__http_server_stop(s);

  printf("HTTP round trips over loopback, keep-alive, %d-byte bodies, server 2 threads,\n"
         "median of %d runs of %ld ms\n\n",
         BODY, RUNS, run_ms);
  printf("%-22s %8s %14s %16s\n", "mode", "clients", "round trips/s", "CPU us/round trip");
  for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
    printf("%-22s %8d %14.0f %16.1f\n", rows[i].sign ? "signed + verified" : "unsigned (raw curl)",
           rows[i].threads, rows[i].rate, rows[i].cpu);
  printf("\nfailed requests: %ld\n\n", failures);
  for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
    printf("RESULT %s=%.0f\nRESULT %s_cpu_us=%.1f\n", rows[i].key, rows[i].rate, rows[i].key,
           rows[i].cpu);
  printf("RESULT http_failures=%ld\n", failures);
  curl_global_cleanup();
  return failures ? 1 : 0;
}
