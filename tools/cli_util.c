/*
 * Helpers shared by the commands: argument parsing, error reporting, opening
 * stores and peers, JSON printing, and the small record of sync attempts the
 * command keeps next to the store.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define STATUS_FILE "cli-status.json"

/* ---- messages and exit codes ---- */

static void vreport(const cli_ctx *ctx, const char *fmt, va_list ap) {
  fprintf(stderr, "cosmicsync: %s: ", ctx->command);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
}

int cli_usage_error(const cli_ctx *ctx, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vreport(ctx, fmt, ap);
  va_end(ap);
  return CLI_EXIT_USAGE;
}

int cli_fail(const cli_ctx *ctx, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vreport(ctx, fmt, ap);
  va_end(ap);
  return code;
}

int cli_exit_code(int rc) {
  switch (rc) {
  case CS_OK:
    return CLI_EXIT_OK;
  case CS_EINVAL:
  case CS_ETOOBIG:
    return CLI_EXIT_USAGE;
  case CS_ENOTFOUND:
    return CLI_EXIT_NOTFOUND;
  case CS_ENETWORK:
  case CS_ETIMEOUT:
    return CLI_EXIT_NETWORK;
  case CS_ECONFLICT:
  case CS_EEXISTS:
  case CS_EBUSY:
  case CS_ESTATE:
  case CS_ECLOCK:
    return CLI_EXIT_STATE;
  case CS_ECORRUPT:
  case CS_EVERSION:
    return CLI_EXIT_CORRUPT;
  case CS_EAUTH:
    return CLI_EXIT_AUTH;
  default:
    return CLI_EXIT_INTERNAL;
  }
}

int cli_lib_error(const cli_ctx *ctx, int rc, const char *what) {
  const char *msg = cs_errmsg();
  if (!msg || !msg[0])
    msg = cs_strerror(rc);
  /* The library's messages usually name what failed already; say it once. */
  if (what && what[0] && !strstr(msg, what))
    fprintf(stderr, "cosmicsync: %s: %s: %s\n", ctx->command, what, msg);
  else
    fprintf(stderr, "cosmicsync: %s: %s\n", ctx->command, msg);
  /* RocksDB allows one process per store: the usual cause is a running server.
   * That is a state of the store, not an I/O failure, so it exits as one. */
  if (rc == CS_EIO && strstr(msg, "lock")) {
    fprintf(stderr, "cosmicsync: %s: hint: another process (a running `cosmicsync serve`?) "
                    "has this store open\n",
            ctx->command);
    return CLI_EXIT_STATE;
  }
  return cli_exit_code(rc);
}

void cli_progress(const cli_ctx *ctx, const char *fmt, ...) {
  if (!ctx->stderr_tty)
    return;
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "cosmicsync: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

/* ---- options ---- */

int cli_parse(cli_ctx *ctx, int argc, char **argv, cli_opt *opts, size_t nopts, const char **pos,
              int *npos, int maxpos) {
  int n = 0, only_pos = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (!only_pos && strcmp(a, "--") == 0) {
      only_pos = 1;
      continue;
    }
    if (!only_pos && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0))
      return -1;
    if (!only_pos && a[0] == '-' && a[1] == '-' && a[2]) {
      const char *name = a + 2;
      const char *eq = strchr(name, '=');
      size_t len = eq ? (size_t)(eq - name) : strlen(name);
      cli_opt *o = NULL;
      for (size_t k = 0; k < nopts; k++)
        if (strlen(opts[k].name) == len && strncmp(opts[k].name, name, len) == 0)
          o = &opts[k];
      if (!o)
        return cli_usage_error(ctx, "unknown option '--%.*s' (see cosmicsync %s --help)",
                               (int)len, name, ctx->command);
      if (o->seen)
        return cli_usage_error(ctx, "option '--%s' given twice", o->name);
      o->seen = 1;
      if (o->has_arg) {
        if (eq) {
          o->value = eq + 1;
        } else if (i + 1 < argc) {
          o->value = argv[++i];
        } else {
          return cli_usage_error(ctx, "option '--%s' needs a value", o->name);
        }
      } else {
        if (eq)
          return cli_usage_error(ctx, "option '--%s' takes no value", o->name);
        o->value = "";
      }
      continue;
    }
    if (n >= maxpos)
      return cli_usage_error(ctx, "unexpected argument '%s' (see cosmicsync %s --help)", a,
                             ctx->command);
    pos[n++] = a;
  }
  *npos = n;
  return 0;
}

/* ---- stores and peers ---- */

int cli_open_store(cs_store **out, const cli_ctx *ctx) {
  cs_store_options opts = CS_STORE_OPTIONS_INIT;
  int rc = cs_store_open(out, ctx->db, &opts);
  if (rc < 0)
    return cli_lib_error(ctx, rc, ctx->db);
  return 0;
}

static int same_directory(const char *a, const char *b) {
  struct stat sa, sb;
  if (stat(a, &sa) != 0 || stat(b, &sb) != 0)
    return 0;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int cli_open_peer(cs_peer **out, cs_store **other, const cli_ctx *ctx, cs_store *store,
                  const char *peer) {
  int rc;
  *out = NULL;
  *other = NULL;
  if (!peer[0])
    return cli_usage_error(ctx, "empty peer");
  const char *sep = strstr(peer, "://");
  if (sep) {
    size_t scheme = (size_t)(sep - peer);
    int ok = (scheme == 4 && strncmp(peer, "http", 4) == 0) ||
             (scheme == 5 && strncmp(peer, "https", 5) == 0);
    const char *host = sep + 3;
    if (!ok || !host[0] || host[0] == '/' || host[0] == ':' || strchr(host, ' '))
      return cli_usage_error(ctx,
                             "bad peer URL '%s': expected http://host:port, https://host:port "
                             "or a store directory",
                             peer);
    cs_http_peer_options hopts = CS_HTTP_PEER_OPTIONS_INIT;
    rc = cs_peer_http(out, store, peer, &hopts);
    if (rc < 0)
      return cli_lib_error(ctx, rc, peer);
    return 0;
  }

  struct stat st;
  if (stat(peer, &st) != 0 || !S_ISDIR(st.st_mode))
    return cli_fail(ctx, CLI_EXIT_NOTFOUND,
                    "no store directory '%s' (a server is named http://host:port)", peer);
  if (same_directory(peer, ctx->db))
    return cli_usage_error(ctx, "'%s' is this store itself", peer);
  cs_store_options opts = CS_STORE_OPTIONS_INIT;
  opts.create_if_missing = 0;
  rc = cs_store_open(other, peer, &opts);
  if (rc < 0) {
    *other = NULL;
    return cli_lib_error(ctx, rc, peer);
  }
  rc = cs_peer_local(out, *other);
  if (rc < 0) {
    int code = cli_lib_error(ctx, rc, "peer");
    cs_store_close(*other);
    *other = NULL;
    *out = NULL;
    return code;
  }
  return 0;
}

/* ---- lists and JSON ---- */

char **cli_split_list(const char *list, size_t *count) {
  size_t n = 1, len = strlen(list);
  for (const char *p = list; *p; p++)
    n += *p == ',';
  /* One allocation: the pointer array, then a copy of the text. */
  char **items = malloc((n + 1) * sizeof(char *) + len + 1);
  if (!items)
    return NULL;
  char *text = (char *)(items + n + 1);
  memcpy(text, list, len + 1);
  size_t k = 0;
  char *start = text;
  for (char *p = text;; p++) {
    if (*p == ',' || *p == '\0') {
      int end = *p == '\0';
      *p = '\0';
      if (!start[0]) {
        free(items);
        return NULL;
      }
      items[k++] = start;
      start = p + 1;
      if (end)
        break;
    }
  }
  items[k] = NULL;
  *count = k;
  return items;
}

json_t *cli_parse_json(const cli_ctx *ctx, const char *text, const char *what) {
  json_error_t err;
  json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
  if (!v)
    cli_usage_error(ctx, "%s is not valid JSON: %s (line %d, column %d)", what, err.text,
                    err.line, err.column);
  return v;
}

int cli_require_object(const cli_ctx *ctx, const char *text, const char *what) {
  json_t *v = cli_parse_json(ctx, text, what);
  if (!v)
    return CLI_EXIT_USAGE;
  int ok = json_is_object(v);
  json_decref(v);
  if (!ok)
    return cli_usage_error(ctx, "%s must be a JSON object ({\"field\": value, ...})", what);
  return 0;
}

void cli_print_json_text(const cli_ctx *ctx, const char *text) {
  if (ctx->stdout_tty) {
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    if (v) {
      char *s = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);
      json_decref(v);
      if (s) {
        printf("%s\n", s);
        free(s);
        return;
      }
    }
  }
  size_t len = strlen(text);
  fputs(text, stdout);
  if (len == 0 || text[len - 1] != '\n')
    fputc('\n', stdout);
}

int cli_print_json(const cli_ctx *ctx, json_t *value) {
  if (!value)
    return cli_fail(ctx, CLI_EXIT_INTERNAL, "out of memory");
  size_t flags = JSON_ENCODE_ANY | (ctx->stdout_tty ? JSON_INDENT(2) : JSON_COMPACT);
  char *s = json_dumps(value, flags);
  json_decref(value);
  if (!s)
    return cli_fail(ctx, CLI_EXIT_INTERNAL, "out of memory");
  printf("%s\n", s);
  free(s);
  return 0;
}

/* ---- time ---- */

uint64_t cli_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void cli_format_time(char *buf, size_t len, uint64_t ms) {
  time_t t = (time_t)(ms / 1000u);
  struct tm tm;
  if (!gmtime_r(&t, &tm) || strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
    snprintf(buf, len, "%llu", (unsigned long long)ms);
    return;
  }
  size_t n = strlen(buf);
  snprintf(buf + n, len - n, ".%03uZ", (unsigned)(ms % 1000u));
}

/* ---- the record of sync attempts ----
 * The engine keeps no history of sync attempts a separate process could read
 * (the scheduler's status lives in memory), so the command keeps its own, in
 * a small JSON file inside the store directory that the storage layer ignores. */

static void status_path(char *buf, size_t len, const cli_ctx *ctx) {
  snprintf(buf, len, "%s/%s", ctx->db, STATUS_FILE);
}

json_t *cli_load_status(const cli_ctx *ctx) {
  char path[PATH_MAX];
  status_path(path, sizeof(path), ctx);
  json_t *v = json_load_file(path, 0, NULL);
  if (!v || !json_is_object(v)) {
    json_decref(v);
    v = json_object();
  }
  return v;
}

static json_t *time_value(uint64_t ms) {
  char when[64];
  cli_format_time(when, sizeof(when), ms);
  return json_string(when);
}

void cli_record_sync(const cli_ctx *ctx, const char *peer, int rc, const cs_sync_result *result,
                     int partial) {
  json_t *st = cli_load_status(ctx);
  if (!st)
    return;
  uint64_t now = cli_now_ms();
  json_t *attempt = json_object();
  json_object_set_new(attempt, "peer", json_string(peer));
  json_object_set_new(attempt, "kind", json_string(partial ? "partial-sync" : "sync"));
  json_object_set_new(attempt, "time_ms", json_integer((json_int_t)now));
  json_object_set_new(attempt, "time", time_value(now));
  json_object_set_new(attempt, "ok", json_boolean(rc == 0));
  if (rc == 0 && result) {
    json_object_set_new(attempt, "synced", json_integer((json_int_t)result->synced_count));
    json_object_set_new(attempt, "sent", json_integer((json_int_t)result->sent));
    json_object_set_new(attempt, "received", json_integer((json_int_t)result->received));
    json_object_set_new(attempt, "conflicts",
                        json_integer((json_int_t)result->conflict_count));
    json_object_set(st, "last_success", attempt);
    json_t *peers = json_object_get(st, "peers");
    if (!json_is_object(peers)) {
      peers = json_object();
      json_object_set_new(st, "peers", peers);
    }
    json_t *p = json_object_get(peers, peer);
    if (!json_is_object(p)) {
      p = json_object();
      json_object_set_new(peers, peer, p);
    }
    json_object_set_new(p, "last_sync_ms", json_integer((json_int_t)now));
    if (partial)
      json_object_set_new(p, "cursor", json_integer((json_int_t)result->cursor));
  } else {
    const char *msg = cs_errmsg();
    json_t *e = json_object();
    json_object_set_new(e, "peer", json_string(peer));
    json_object_set_new(e, "time_ms", json_integer((json_int_t)now));
    json_object_set_new(e, "time", time_value(now));
    json_object_set_new(e, "code", json_integer(rc));
    json_object_set_new(e, "error", json_string(cs_strerror(rc)));
    json_object_set_new(e, "message", json_string(msg && msg[0] ? msg : cs_strerror(rc)));
    json_object_set_new(st, "last_error", e);
  }
  json_object_set_new(st, "last_attempt", attempt);

  char path[PATH_MAX], tmp[PATH_MAX + 8];
  status_path(path, sizeof(path), ctx);
  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  /* Write then rename, so that a reader never sees half a file. */
  if (json_dump_file(st, tmp, JSON_INDENT(2)) != 0 || rename(tmp, path) != 0) {
    fprintf(stderr, "cosmicsync: %s: warning: could not record the sync in %s: %s\n",
            ctx->command, path, strerror(errno));
    unlink(tmp);
  }
  json_decref(st);
}

/* ---- directories ---- */

int cli_remove_tree(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0)
    return errno == ENOENT ? 0 : -1;
  if (!S_ISDIR(st.st_mode))
    return unlink(path);
  DIR *d = opendir(path);
  if (!d)
    return -1;
  int rc = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    char child[PATH_MAX];
    if ((size_t)snprintf(child, sizeof(child), "%s/%s", path, e->d_name) >= sizeof(child)) {
      rc = -1;
      continue;
    }
    if (cli_remove_tree(child) != 0)
      rc = -1;
  }
  closedir(d);
  if (rmdir(path) != 0)
    rc = -1;
  return rc;
}

int cli_open_no_args(cs_store **out, cli_ctx *ctx, int argc, char **argv) {
  const char *pos[1];
  int n = 0;
  int rc = cli_parse(ctx, argc, argv, NULL, 0, pos, &n, 0);
  if (rc != 0)
    return rc;
  return cli_open_store(out, ctx);
}
