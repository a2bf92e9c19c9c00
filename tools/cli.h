/*
 * Shared pieces of the `cosmicsync` command: the command context, argument
 * parsing, error reporting with exit codes, and small JSON helpers. The
 * command calls nothing but the public API in include/cosmicsync.h.
 */
#ifndef CS_TOOLS_CLI_H
#define CS_TOOLS_CLI_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "cosmicsync.h"

/* Exit codes, one per class of failure (documented in docs/cli.md). */
enum cli_exit {
  CLI_EXIT_OK = 0,
  CLI_EXIT_USAGE = 1,    /* usage error or bad input (bad JSON, bad type, bad URL) */
  CLI_EXIT_NOTFOUND = 2, /* unknown instance, conflict, store or program */
  CLI_EXIT_NETWORK = 3,  /* peer unreachable, timeout */
  CLI_EXIT_STATE = 4,    /* conflict, already exists, busy/locked, clock skew */
  CLI_EXIT_CORRUPT = 5,  /* corrupt data or unsupported format version */
  CLI_EXIT_AUTH = 6,     /* authentication or authorization refused */
  CLI_EXIT_INTERNAL = 7, /* storage I/O, out of memory, internal error */
};

/* What every command receives. */
typedef struct cli_ctx {
  const char *db;      /* store directory */
  const char *command; /* name used in messages */
  int stdout_tty;
  int stderr_tty;
} cli_ctx;

/* ---- option parsing ---- */

typedef struct cli_opt {
  const char *name;  /* without the leading "--" */
  int has_arg;       /* 1: takes a value ("--x V" or "--x=V") */
  const char *value; /* filled: the value, or "" for a flag that was given */
  int seen;
} cli_opt;

/*
 * Parses argv[0..argc) (the words after the command name) into options and
 * positionals. "--" ends options. Returns 0, CLI_EXIT_USAGE after printing a
 * message, or -1 when --help was asked for (the caller prints its help).
 */
int cli_parse(cli_ctx *ctx, int argc, char **argv, cli_opt *opts, size_t nopts, const char **pos,
              int *npos, int maxpos);

/* Prints "cosmicsync: <command>: <message>" on stderr; returns CLI_EXIT_USAGE. */
int cli_usage_error(const cli_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "cosmicsync: <command>: <message>" on stderr and returns `code`. */
int cli_fail(const cli_ctx *ctx, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * Reports a failed library call: prints cs_errmsg() (or cs_strerror(rc) when
 * the message is empty) with `what` as context, and returns the exit code of
 * the error's class.
 */
int cli_lib_error(const cli_ctx *ctx, int rc, const char *what);

/* The exit code for a negative CS_E code. */
int cli_exit_code(int rc);

/* Prints progress on stderr, only when stderr is a terminal. */
void cli_progress(const cli_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- stores and peers ---- */

/* Opens ctx->db, creating it on first use. */
int cli_open_store(cs_store **out, const cli_ctx *ctx);
/* For commands that take no arguments: refuses any, then opens the store
 * (the caller closes it with cs_store_close). */
int cli_open_no_args(cs_store **out, cli_ctx *ctx, int argc, char **argv);

/*
 * Opens a peer named on the command line: an http(s):// URL (requests signed
 * with `store`'s key) or another store's directory, which is opened into
 * *other (closed by the caller with cs_store_close after cs_peer_free).
 * Returns 0 or an exit code after printing a message.
 */
int cli_open_peer(cs_peer **out, cs_store **other, const cli_ctx *ctx, cs_store *store,
                  const char *peer);

/* ---- lists and JSON ---- */

/*
 * Splits "a,b,c" into a NULL-terminated array of strings (one allocation,
 * freed with free()). Empty items are refused. Returns NULL on bad input.
 */
char **cli_split_list(const char *list, size_t *count);

/* Parses `text` as JSON; on failure prints where it is wrong and returns NULL. */
json_t *cli_parse_json(const cli_ctx *ctx, const char *text, const char *what);

/* Checks that `text` is a JSON object; 0 or CLI_EXIT_USAGE after a message. */
int cli_require_object(const cli_ctx *ctx, const char *text, const char *what);

/* Prints JSON text from the library on stdout: pretty on a terminal, as is otherwise. */
void cli_print_json_text(const cli_ctx *ctx, const char *text);

/* Prints a jansson value on stdout (pretty on a terminal, compact otherwise) and
 * releases it. Returns 0, or CLI_EXIT_INTERNAL when it cannot be printed. */
int cli_print_json(const cli_ctx *ctx, json_t *value);

/* ---- small files next to the store: what the command remembers about syncs ---- */

/*
 * Records one sync attempt with `peer` in the store directory (cli-status.json):
 * its time, outcome, counts, and for partial syncs the cursor to use next.
 * `rc` is the library result; `result` may be NULL on failure.
 */
void cli_record_sync(const cli_ctx *ctx, const char *peer, int rc, const cs_sync_result *result,
                     int partial);

/* The recorded status object (a new reference), or an empty object. */
json_t *cli_load_status(const cli_ctx *ctx);

/* Wall-clock milliseconds since the epoch. */
uint64_t cli_now_ms(void);

/* Formats milliseconds since the epoch as ISO 8601 UTC into buf. */
void cli_format_time(char *buf, size_t len, uint64_t ms);

/* Removes a directory tree (used for the demo's temporary stores). */
int cli_remove_tree(const char *path);

/* ---- commands ---- */

typedef int (*cli_cmd_fn)(cli_ctx *ctx, int argc, char **argv);

typedef struct cli_command {
  const char *name;
  cli_cmd_fn run;
  const char *usage;   /* argument synopsis */
  const char *summary; /* one line */
  const char *help;    /* details, may be NULL */
} cli_command;

/* Prints the help of `cmd` on stdout. */
void cli_print_help(const cli_command *cmd);

/* Looks a command up by name (NULL when unknown). */
const cli_command *cli_find_command(const char *name);

/* Data: tools/cmd_data.c */
int cmd_id(cli_ctx *ctx, int argc, char **argv);
int cmd_define(cli_ctx *ctx, int argc, char **argv);
int cmd_create(cli_ctx *ctx, int argc, char **argv);
int cmd_put(cli_ctx *ctx, int argc, char **argv);
int cmd_delete(cli_ctx *ctx, int argc, char **argv);
int cmd_get(cli_ctx *ctx, int argc, char **argv);
int cmd_store_locally(cli_ctx *ctx, int argc, char **argv);
int cmd_list(cli_ctx *ctx, int argc, char **argv);
int cmd_queue(cli_ctx *ctx, int argc, char **argv);

/* Sync and conflicts: tools/cmd_sync.c */
int cmd_sync(cli_ctx *ctx, int argc, char **argv);
int cmd_partial_sync(cli_ctx *ctx, int argc, char **argv);
int cmd_conflicts(cli_ctx *ctx, int argc, char **argv);
int cmd_resolve(cli_ctx *ctx, int argc, char **argv);
int cmd_status(cli_ctx *ctx, int argc, char **argv);

/* Serving and maintenance: tools/cmd_serve.c */
int cmd_trust(cli_ctx *ctx, int argc, char **argv);
int cmd_untrust(cli_ctx *ctx, int argc, char **argv);
int cmd_serve(cli_ctx *ctx, int argc, char **argv);
int cmd_cleanup(cli_ctx *ctx, int argc, char **argv);
int cmd_check(cli_ctx *ctx, int argc, char **argv);

/* Benchmarks: tools/cmd_bench.c */
int cmd_bench(cli_ctx *ctx, int argc, char **argv);

/* The guided scenario: tools/demo.c */
int cmd_demo(cli_ctx *ctx, int argc, char **argv);

#endif /* CS_TOOLS_CLI_H */
