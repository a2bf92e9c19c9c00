/*
 * cosmicsync: the command line of the replication engine. Parses the global
 * options, finds the command and runs it. Every command only calls the public
 * API; JSON goes to stdout, messages to stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define DEFAULT_DB "cosmicsync.db"

static const cli_command commands[] = {
    {"id", cmd_id, "", "print this replica's public key", NULL},
    {"define", cmd_define, "MODEL FIELD:TYPE[:silent] ...",
     "declare (or extend) a model's schema",
     "TYPE is register, set or counter. A field marked :silent resolves\n"
     "concurrent writes by last-writer-wins and never reports a conflict.\n"
     "Fields not declared take their type from their first value.\n"
     "Example: cosmicsync define UserProfile name:register city:register interests:set"},
    {"create", cmd_create, "MODEL INSTANCE JSON", "create an instance (queued offline action)",
     "Fails with exit code 4 when the instance already exists.\n"
     "Example: cosmicsync create UserProfile profile_123 '{\"name\":\"Ada\",\"city\":\"Berlin\"}'"},
    {"put", cmd_put, "MODEL INSTANCE JSON", "update an instance, creating it when missing",
     "An array assigns a set; {\"$add\":[...]} and {\"$remove\":[...]} edit one;\n"
     "{\"$inc\":n} adds to a counter; other values set a register.\n"
     "Example: cosmicsync put UserProfile profile_123 '{\"interests\":{\"$add\":[\"photography\"]}}'"},
    {"delete", cmd_delete, "MODEL INSTANCE", "delete an instance (queued offline action)", NULL},
    {"get", cmd_get, "MODEL INSTANCE", "print the instance as this device sees it now", NULL},
    {"store-locally", cmd_store_locally, "MODEL INSTANCE JSON",
     "cache data obtained outside sync as a baseline (never uploaded)",
     "The baseline is visible in reads; any replicated write to the same field\n"
     "supersedes it."},
    {"list", cmd_list, "MODEL", "print the ids of a model's instances, one per line", NULL},
    {"queue", cmd_queue, "", "print the queued (unsynced) actions, one JSON object per line",
     NULL},
    {"sync", cmd_sync, "PEER", "exchange changes with a peer, both directions",
     "PEER is http://host:port, https://host:port, or another store's directory.\n"
     "Prints {\"synced\": N, \"conflicts\": [...], ...}. A sync exchanges every model\n"
     "the peer allows; to pull only some models use partial-sync --models."},
    {"partial-sync", cmd_partial_sync, "PEER --since CURSOR [--models M,...]",
     "pull only what changed on the peer after a cursor",
     "CURSOR is a value the peer returned earlier (the \"cursor\" of a previous\n"
     "partial-sync), 0 for everything, or \"last\": each model continues from\n"
     "the cursor the store kept from this peer for it (a model never pulled\n"
     "from it comes whole)."},
    {"conflicts", cmd_conflicts, "", "print the open conflicts as a JSON array", NULL},
    {"resolve", cmd_resolve, "ID (--pick N | --value JSON | --keep-deleted | --restore)",
     "resolve a conflict for every replica",
     "--pick N keeps sibling N (index in \"siblings\" of `cosmicsync conflicts`);\n"
     "--value JSON writes a new value; --keep-deleted and --restore answer a\n"
     "delete_update conflict."},
    {"trust", cmd_trust, "KEY [--read M,...] [--write M,...]",
     "authorize a peer key on this store's server",
     "KEY is a replica's public key (64 hex digits, see `cosmicsync id`). Model\n"
     "lists are comma-separated; \"*\" means every model. Without --read and\n"
     "--write the key may read and write every model. Run it before `serve`:\n"
     "a running server holds the store."},
    {"untrust", cmd_untrust, "KEY", "revoke a peer key trusted on this store's server",
     "KEY in either case; exit 2 when it is not trusted. Like trust, run it\n"
     "while the server is stopped (an application that runs the server calls\n"
     "cs_untrust, which takes effect at the key's next request)."},
    {"serve", cmd_serve, "[--listen HOST:PORT] [--allow-any]",
     "serve this store over HTTP until interrupted",
     "Default listen address 127.0.0.1:8787; port 0 picks a free port. The URL\n"
     "and the server's key are printed on stderr. SIGINT or SIGTERM stops the\n"
     "server gracefully. --allow-any accepts any peer, signed or not: for\n"
     "experiments only."},
    {"status", cmd_status, "", "sync status, outbox size, last sync, last error", NULL},
    {"cleanup", cmd_cleanup, "", "garbage-collect acknowledged data; print what was freed", NULL},
    {"check", cmd_check, "", "verify the whole store and the replication invariants; exit 5 on "
                             "corruption or a broken invariant", NULL},
    {"bench", cmd_bench, "merge|codec|sync [--json] [ARGS...]", "run a benchmark program",
     "Runs the benchmark program built next to this binary (<build>/bench/).\n"
     "With --json it prints one JSON object per workload (workload,\n"
     "merge_ops_per_s, local_edits_per_s, delta_bytes_per_edit, full_state_bytes,\n"
     "peak_rss_bytes where they apply)."},
    {"demo", cmd_demo, "", "the guided two-device scenario through a local hub",
     "Starts a hub server on loopback and two device stores in temporary\n"
     "directories, edits a profile offline on both, syncs, shows the merge and\n"
     "the one conflict, resolves it and checks all three end identical."},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

const cli_command *cli_find_command(const char *name) {
  for (size_t i = 0; i < NCOMMANDS; i++)
    if (strcmp(commands[i].name, name) == 0)
      return &commands[i];
  return NULL;
}

void cli_print_help(const cli_command *cmd) {
  printf("usage: cosmicsync [--db DIR] %s%s%s\n\n%s.\n", cmd->name, cmd->usage[0] ? " " : "",
         cmd->usage, cmd->summary);
  if (cmd->help)
    printf("\n%s\n", cmd->help);
}

static void print_main_help(FILE *f) {
  fprintf(f, "usage: cosmicsync [--db DIR] COMMAND [ARGS...]\n\n"
             "The offline-first replication engine's command line. JSON goes to stdout,\n"
             "messages to stderr. DIR is the store directory (default ./" DEFAULT_DB
             ", or\n$COSMICSYNC_DB), created on first use.\n\ncommands:\n");
  for (size_t i = 0; i < NCOMMANDS; i++)
    fprintf(f, "  %-14s %s\n", commands[i].name, commands[i].summary);
  fprintf(f, "\n`cosmicsync COMMAND --help` describes a command.\n"
             "exit codes: 0 ok, 1 usage or bad input, 2 not found, 3 network,\n"
             "4 conflict or state, 5 corrupt, 6 auth, 7 storage or internal error.\n");
}

int main(int argc, char **argv) {
  cli_ctx ctx;
  memset(&ctx, 0, sizeof(ctx));
  ctx.db = getenv("COSMICSYNC_DB");
  if (!ctx.db || !ctx.db[0])
    ctx.db = DEFAULT_DB;
  ctx.command = "cosmicsync";
  ctx.stdout_tty = isatty(STDOUT_FILENO);
  ctx.stderr_tty = isatty(STDERR_FILENO);

  int i = 1;
  while (i < argc && argv[i][0] == '-') {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      print_main_help(stdout);
      return CLI_EXIT_OK;
    } else if (strcmp(a, "--version") == 0) {
      printf("cosmicsync %d.%d.%d\n", CS_VERSION_MAJOR, CS_VERSION_MINOR, CS_VERSION_PATCH);
      return CLI_EXIT_OK;
    } else if (strcmp(a, "--db") == 0) {
      if (i + 1 >= argc) {
        fprintf(stderr, "cosmicsync: --db needs a directory\n");
        return CLI_EXIT_USAGE;
      }
      ctx.db = argv[i + 1];
      i += 2;
    } else if (strncmp(a, "--db=", 5) == 0) {
      ctx.db = a + 5;
      i++;
    } else {
      fprintf(stderr, "cosmicsync: unknown option '%s' (see cosmicsync --help)\n", a);
      return CLI_EXIT_USAGE;
    }
  }
  if (!ctx.db[0]) {
    fprintf(stderr, "cosmicsync: --db needs a directory\n");
    return CLI_EXIT_USAGE;
  }
  if (i >= argc) {
    print_main_help(stderr);
    return CLI_EXIT_USAGE;
  }

  const char *name = argv[i];
  if (strcmp(name, "help") == 0) {
    if (i + 1 < argc) {
      const cli_command *c = cli_find_command(argv[i + 1]);
      if (!c) {
        fprintf(stderr, "cosmicsync: unknown command '%s' (see cosmicsync --help)\n",
                argv[i + 1]);
        return CLI_EXIT_USAGE;
      }
      cli_print_help(c);
    } else {
      print_main_help(stdout);
    }
    return CLI_EXIT_OK;
  }
  const cli_command *cmd = cli_find_command(name);
  if (!cmd) {
    fprintf(stderr, "cosmicsync: unknown command '%s' (see cosmicsync --help)\n", name);
    return CLI_EXIT_USAGE;
  }
  ctx.command = cmd->name;
  int rc = cmd->run(&ctx, argc - i - 1, argv + i + 1);
  if (rc < 0) { /* --help */
    cli_print_help(cmd);
    rc = CLI_EXIT_OK;
  }
  if (fflush(stdout) != 0 && rc == CLI_EXIT_OK) {
    fprintf(stderr, "cosmicsync: %s: cannot write the output\n", cmd->name);
    rc = CLI_EXIT_INTERNAL;
  }
  return rc;
}
