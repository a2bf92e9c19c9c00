/*
 * bench: runs a benchmark program that the build puts next to this binary
 * (<build>/bench/<program>), passing the remaining arguments through.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

/* The one table from workload name to benchmark programs, tried in order. */
static const struct {
  const char *name;
  const char *programs[3];
  const char *about;
} benches[] = {
    {"merge", {"bench_crdt_merge", "bench_merge", NULL}, "CRDT merge throughput"},
    {"codec", {"bench_codec", NULL, NULL}, "delta codec: encode/decode speed and bytes per edit"},
    {"sync", {"bench_sync", NULL, NULL}, "sync sessions: local edits, deltas on the wire"},
};

#define NBENCH (sizeof(benches) / sizeof(benches[0]))

/* The directory of the running executable, from /proc/self/exe. */
static int exe_dir(char *buf, size_t len) {
  ssize_t n = readlink("/proc/self/exe", buf, len - 1);
  if (n <= 0)
    return -1;
  buf[n] = '\0';
  char *slash = strrchr(buf, '/');
  if (!slash)
    return -1;
  *slash = '\0';
  return 0;
}

static int is_executable(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* Reads a descriptor to its end into a NUL-terminated buffer (NULL on failure). */
static char *read_all(int fd, size_t *len) {
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    if (n + 1 >= cap) {
      char *bigger = realloc(buf, cap * 2);
      if (!bigger) {
        free(buf);
        return NULL;
      }
      buf = bigger;
      cap *= 2;
    }
    ssize_t r = read(fd, buf + n, cap - n - 1);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    n += (size_t)r;
  }
  if (buf)
    buf[n] = '\0';
  *len = n;
  return buf;
}

/* Whether every non-empty line is a JSON object, or the whole text is one JSON value. */
static int json_lines(const char *text) {
  json_t *all = json_loads(text, JSON_DECODE_ANY, NULL);
  if (all) {
    int ok = json_is_object(all) || json_is_array(all);
    json_decref(all);
    return ok;
  }
  int any = 0;
  const char *p = text;
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    size_t k = 0;
    while (k < len && (p[k] == ' ' || p[k] == '\t' || p[k] == '\r'))
      k++;
    if (k < len) {
      json_t *v = json_loadb(p, len, 0, NULL);
      if (!json_is_object(v)) {
        json_decref(v);
        return 0;
      }
      json_decref(v);
      any = 1;
    }
    p += len + (nl ? 1 : 0);
  }
  return any;
}

static void bench_help(void) {
  printf("usage: cosmicsync bench merge|codec|sync [--json] [ARGS...]\n\n"
         "Runs a benchmark program built next to this binary (<build>/bench/).\n"
         "Arguments after the workload are passed to the program. With --json it\n"
         "prints one JSON object per workload with at least the keys workload,\n"
         "merge_ops_per_s, local_edits_per_s, delta_bytes_per_edit,\n"
         "full_state_bytes and peak_rss_bytes (where they apply).\n\nworkloads:\n");
  for (size_t i = 0; i < NBENCH; i++)
    printf("  %-6s %s (bench/%s)\n", benches[i].name, benches[i].about,
           benches[i].programs[0]);
}

int cmd_bench(cli_ctx *ctx, int argc, char **argv) {
  if (argc < 1)
    return cli_usage_error(ctx, "expected merge, codec or sync (see cosmicsync bench --help)");
  if (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) {
    bench_help();
    return CLI_EXIT_OK;
  }
  size_t b = NBENCH;
  for (size_t i = 0; i < NBENCH; i++)
    if (strcmp(benches[i].name, argv[0]) == 0)
      b = i;
  if (b == NBENCH)
    return cli_usage_error(ctx, "unknown benchmark '%s': expected merge, codec or sync", argv[0]);

  char dir[PATH_MAX];
  if (exe_dir(dir, sizeof(dir)) != 0)
    return cli_fail(ctx, CLI_EXIT_INTERNAL, "cannot find this program's directory: %s",
                    strerror(errno));
  char path[PATH_MAX + 64];
  int found = 0;
  for (size_t k = 0; !found && k < 3 && benches[b].programs[k]; k++) {
    snprintf(path, sizeof(path), "%s/bench/%s", dir, benches[b].programs[k]);
    found = is_executable(path);
  }
  if (!found) {
    snprintf(path, sizeof(path), "%s/bench/%s", dir, benches[b].programs[0]);
    return cli_fail(ctx, CLI_EXIT_NOTFOUND,
                    "benchmark program %s is not built (configure with -DCS_BUILD_BENCH=ON "
                    "and build it)",
                    path);
  }

  int want_json = 0;
  for (int i = 1; i < argc; i++)
    want_json |= strcmp(argv[i], "--json") == 0;

  char **args = calloc((size_t)argc + 1, sizeof(char *));
  if (!args)
    return cli_fail(ctx, CLI_EXIT_INTERNAL, "out of memory");
  args[0] = path;
  for (int i = 1; i < argc; i++)
    args[i] = argv[i];
  args[argc] = NULL;
  cli_progress(ctx, "running %s ...", path);
  fflush(stdout);
  fflush(stderr);
  /* With --json the output is checked before it is passed on, so that a
   * program that does not know --json fails clearly instead of printing text. */
  int fds[2] = {-1, -1};
  if (want_json && pipe(fds) != 0) {
    free(args);
    return cli_fail(ctx, CLI_EXIT_INTERNAL, "pipe: %s", strerror(errno));
  }
  pid_t pid = fork();
  if (pid < 0) {
    free(args);
    if (want_json) {
      close(fds[0]);
      close(fds[1]);
    }
    return cli_fail(ctx, CLI_EXIT_INTERNAL, "cannot start %s: %s", path, strerror(errno));
  }
  if (pid == 0) {
    if (want_json) {
      dup2(fds[1], STDOUT_FILENO);
      close(fds[0]);
      close(fds[1]);
    }
    execv(path, args);
    fprintf(stderr, "cosmicsync: bench: cannot run %s: %s\n", path, strerror(errno));
    _exit(127);
  }
  free(args);
  char *out = NULL;
  size_t outlen = 0;
  if (want_json) {
    close(fds[1]);
    out = read_all(fds[0], &outlen);
    close(fds[0]);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      free(out);
      return cli_fail(ctx, CLI_EXIT_INTERNAL, "waiting for %s: %s", path, strerror(errno));
    }
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    int rc = CLI_EXIT_OK;
    if (want_json) {
      if (out && json_lines(out)) {
        fwrite(out, 1, outlen, stdout);
      } else {
        if (out)
          fwrite(out, 1, outlen, stderr);
        rc = cli_fail(ctx, CLI_EXIT_INTERNAL,
                      "%s printed no JSON for --json (does it support --json?); its output is "
                      "above on stderr",
                      path);
      }
    }
    free(out);
    return rc;
  }
  if (out)
    fwrite(out, 1, outlen, stdout);
  free(out);
  if (WIFSIGNALED(status))
    return cli_fail(ctx, CLI_EXIT_INTERNAL, "%s was killed by signal %d", path,
                    WTERMSIG(status));
  return cli_fail(ctx, CLI_EXIT_INTERNAL, "%s failed with exit code %d", path,
                  WEXITSTATUS(status));
}
