/*
 * Commands on local data: id, define, create, put, delete, get,
 * store-locally, list, queue.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define NOPTS(a) (sizeof(a) / sizeof((a)[0]))

/* Parses arguments that are exactly `want` positionals and no options. */
static int positionals(cli_ctx *ctx, int argc, char **argv, const char **pos, int want,
                       const char *synopsis) {
  int n = 0;
  int rc = cli_parse(ctx, argc, argv, NULL, 0, pos, &n, want);
  if (rc != 0)
    return rc;
  if (n != want)
    return cli_usage_error(ctx, "expected %s (see cosmicsync %s --help)", synopsis,
                           ctx->command);
  for (int i = 0; i < n; i++)
    if (!pos[i][0])
      return cli_usage_error(ctx, "argument %d is empty", i + 1);
  return 0;
}

/* Prints the instance as the store sees it now. */
static int print_instance(cli_ctx *ctx, cs_store *store, const char *model, const char *inst) {
  cs_buf out = CS_BUF_INIT;
  int rc = cs_get_local_data(&out, store, model, inst);
  if (rc < 0) {
    rc = cli_lib_error(ctx, rc, NULL);
  } else {
    cli_print_json_text(ctx, out.ptr ? out.ptr : "{}");
  }
  cs_buf_dispose(&out);
  return rc;
}

int cmd_id(cli_ctx *ctx, int argc, char **argv) {
  cs_store *store;
  int rc = cli_open_no_args(&store, ctx, argc, argv);
  if (rc != 0)
    return rc;
  char key[65];
  rc = cs_store_public_key(key, store);
  if (rc < 0)
    rc = cli_lib_error(ctx, rc, "public key");
  else
    printf("%s\n", key);
  cs_store_close(store);
  return rc;
}

static const char *type_name(cs_field_type t) {
  switch (t) {
  case CS_FIELD_REGISTER:
    return "register";
  case CS_FIELD_SET:
    return "set";
  case CS_FIELD_COUNTER:
    return "counter";
  default:
    return "auto";
  }
}

/* "name:type[:silent]" into a field definition pointing into `spec`. */
static int parse_field(cli_ctx *ctx, char *spec, cs_field_def *f) {
  char *type = strchr(spec, ':');
  if (!type || type == spec)
    return cli_usage_error(ctx, "field '%s': expected FIELD:TYPE[:silent]", spec);
  *type++ = '\0';
  char *policy = strchr(type, ':');
  if (policy)
    *policy++ = '\0';
  f->name = spec;
  if (strcmp(type, "register") == 0)
    f->type = CS_FIELD_REGISTER;
  else if (strcmp(type, "set") == 0)
    f->type = CS_FIELD_SET;
  else if (strcmp(type, "counter") == 0)
    f->type = CS_FIELD_COUNTER;
  else
    return cli_usage_error(ctx, "field '%s': unknown type '%s' (register, set or counter)",
                           spec, type);
  f->policy = CS_POLICY_SURFACE;
  if (policy) {
    if (strcmp(policy, "silent") != 0)
      return cli_usage_error(ctx, "field '%s': unknown policy '%s' (only 'silent')", spec,
                             policy);
    f->policy = CS_POLICY_SILENT;
  }
  return 0;
}

int cmd_define(cli_ctx *ctx, int argc, char **argv) {
  const char **pos = calloc((size_t)argc + 1, sizeof(*pos));
  cs_field_def *fields = calloc((size_t)argc + 1, sizeof(*fields));
  char **specs = calloc((size_t)argc + 1, sizeof(*specs));
  cs_store *store = NULL;
  int n = 0, rc;
  if (!pos || !fields || !specs) {
    rc = cli_fail(ctx, CLI_EXIT_INTERNAL, "out of memory");
    goto done;
  }
  if ((rc = cli_parse(ctx, argc, argv, NULL, 0, pos, &n, argc)) != 0)
    goto done;
  if (n < 2) {
    rc = cli_usage_error(ctx, "expected MODEL FIELD:TYPE[:silent] ... (see cosmicsync define "
                              "--help)");
    goto done;
  }
  if (!pos[0][0]) {
    rc = cli_usage_error(ctx, "empty model name");
    goto done;
  }
  size_t nfields = (size_t)n - 1;
  for (size_t i = 0; i < nfields; i++) {
    specs[i] = strdup(pos[i + 1]);
    if (!specs[i]) {
      rc = cli_fail(ctx, CLI_EXIT_INTERNAL, "out of memory");
      goto done;
    }
    if ((rc = parse_field(ctx, specs[i], &fields[i])) != 0)
      goto done;
  }
  if ((rc = cli_open_store(&store, ctx)) != 0)
    goto done;
  rc = cs_define_model(store, pos[0], fields, nfields);
  if (rc < 0) {
    rc = cli_lib_error(ctx, rc, NULL);
    goto done;
  }
  json_t *o = json_object(), *arr = json_array();
  json_object_set_new(o, "model", json_string(pos[0]));
  for (size_t i = 0; i < nfields; i++) {
    json_t *f = json_object();
    json_object_set_new(f, "name", json_string(fields[i].name));
    json_object_set_new(f, "type", json_string(type_name(fields[i].type)));
    json_object_set_new(f, "policy",
                        json_string(fields[i].policy == CS_POLICY_SILENT ? "silent" : "surface"));
    json_array_append_new(arr, f);
  }
  json_object_set_new(o, "fields", arr);
  rc = cli_print_json(ctx, o);
done:
  if (store)
    cs_store_close(store);
  if (specs)
    for (int i = 0; i < argc; i++)
      free(specs[i]);
  free(specs);
  free(fields);
  free(pos);
  return rc;
}

/* create / put / delete: one queued offline action, then the instance as it reads now. */
static int queue_action(cli_ctx *ctx, int argc, char **argv, cs_action_type type) {
  const char *pos[3];
  int want = type == CS_ACTION_DELETE ? 2 : 3;
  int rc = positionals(ctx, argc, argv, pos, want,
                       want == 2 ? "MODEL INSTANCE" : "MODEL INSTANCE JSON");
  if (rc != 0)
    return rc;
  if (want == 3 && (rc = cli_require_object(ctx, pos[2], "the data")) != 0)
    return rc;
  cs_store *store;
  if ((rc = cli_open_store(&store, ctx)) != 0)
    return rc;
  cs_action a = {type, pos[0], pos[1], want == 3 ? pos[2] : NULL};
  rc = cs_queue_offline_action(store, &a);
  if (rc < 0) {
    rc = cli_lib_error(ctx, rc, NULL);
    goto done;
  }
  if (type == CS_ACTION_DELETE) {
    json_t *o = json_object();
    json_object_set_new(o, "model", json_string(pos[0]));
    json_object_set_new(o, "instance", json_string(pos[1]));
    json_object_set_new(o, "deleted", json_true());
    rc = cli_print_json(ctx, o);
  } else {
    rc = print_instance(ctx, store, pos[0], pos[1]);
  }
done:
  cs_store_close(store);
  return rc;
}

int cmd_create(cli_ctx *ctx, int argc, char **argv) {
  return queue_action(ctx, argc, argv, CS_ACTION_CREATE);
}

int cmd_put(cli_ctx *ctx, int argc, char **argv) {
  return queue_action(ctx, argc, argv, CS_ACTION_UPDATE);
}

int cmd_delete(cli_ctx *ctx, int argc, char **argv) {
  return queue_action(ctx, argc, argv, CS_ACTION_DELETE);
}

int cmd_get(cli_ctx *ctx, int argc, char **argv) {
  const char *pos[2];
  int rc = positionals(ctx, argc, argv, pos, 2, "MODEL INSTANCE");
  if (rc != 0)
    return rc;
  cs_store *store;
  if ((rc = cli_open_store(&store, ctx)) != 0)
    return rc;
  rc = print_instance(ctx, store, pos[0], pos[1]);
  cs_store_close(store);
  return rc;
}

int cmd_store_locally(cli_ctx *ctx, int argc, char **argv) {
  const char *pos[3];
  int rc = positionals(ctx, argc, argv, pos, 3, "MODEL INSTANCE JSON");
  if (rc != 0)
    return rc;
  if ((rc = cli_require_object(ctx, pos[2], "the data")) != 0)
    return rc;
  cs_store *store;
  if ((rc = cli_open_store(&store, ctx)) != 0)
    return rc;
  rc = cs_store_locally(store, pos[0], pos[1], pos[2]);
  if (rc < 0) {
    rc = cli_lib_error(ctx, rc, NULL);
  } else {
    rc = print_instance(ctx, store, pos[0], pos[1]);
  }
  cs_store_close(store);
  return rc;
}

/* Prints a JSON array from the library one item per line: strings as they
 * are, anything else as compact JSON (the format is line-oriented whatever
 * stdout is). `what` names the array in the error when it is not one. */
static int print_lines(cli_ctx *ctx, const cs_buf *out, const char *what) {
  json_t *arr = json_loads(out->ptr ? out->ptr : "[]", 0, NULL);
  size_t i;
  json_t *item;

  if (!json_is_array(arr)) {
    json_decref(arr);
    return cli_fail(ctx, CLI_EXIT_INTERNAL, "the store returned %s that is not a JSON array",
                    what);
  }
  json_array_foreach(arr, i, item) {
    if (json_is_string(item)) {
      printf("%s\n", json_string_value(item));
      continue;
    }
    char *s = json_dumps(item, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    if (s) {
      printf("%s\n", s);
      free(s);
    }
  }
  json_decref(arr);
  return 0;
}

int cmd_list(cli_ctx *ctx, int argc, char **argv) {
  const char *pos[1];
  int rc = positionals(ctx, argc, argv, pos, 1, "MODEL");
  if (rc != 0)
    return rc;
  cs_store *store;
  if ((rc = cli_open_store(&store, ctx)) != 0)
    return rc;
  cs_buf out = CS_BUF_INIT;
  rc = cs_list_instances(&out, store, pos[0]);
  rc = rc < 0 ? cli_lib_error(ctx, rc, NULL) : print_lines(ctx, &out, "a list");
  cs_buf_dispose(&out);
  cs_store_close(store);
  return rc;
}

int cmd_queue(cli_ctx *ctx, int argc, char **argv) {
  cs_store *store;
  int rc = cli_open_no_args(&store, ctx, argc, argv);
  if (rc != 0)
    return rc;
  cs_buf out = CS_BUF_INIT;
  rc = cs_get_queued_actions(&out, store);
  rc = rc < 0 ? cli_lib_error(ctx, rc, "outbox") : print_lines(ctx, &out, "an outbox");
  cs_buf_dispose(&out);
  cs_store_close(store);
  return rc;
}
