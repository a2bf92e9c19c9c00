#!/usr/bin/env bash
# Command-line tests of the `cosmicsync` program: every command's happy path
# and its errors, two stores syncing directly and through `serve` with `trust`.
#
# usage: cli_test.sh PATH/TO/cosmicsync [SECTION]
#   SECTION: basics | data | conflicts | local-sync | serve | bench | all (default)
#
# Each check prints "ok N - what" or "not ok N - what" followed by the command,
# its exit code, stdout and stderr. The script exits 1 when a check failed.
# Only 127.0.0.1 is used; servers listen on a port the system picks; every wait
# is bounded.
set -u

BIN=${1:?usage: cli_test.sh PATH/TO/cosmicsync [SECTION]}
SECTION=${2:-all}
CMD_TIMEOUT=${CS_CLI_TEST_TIMEOUT:-60}

if [ ! -x "$BIN" ]; then
  echo "not ok - $BIN is not an executable"
  exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cosmicsync-cli-test.XXXXXX") || exit 1
SERVER_PIDS=()
CHECKS=0
FAILS=0
RC=0
CMD_DESC=""

cleanup() {
  for p in "${SERVER_PIDS[@]}"; do
    kill -KILL "$p" 2>/dev/null
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

# ---- helpers ----

# run ARGS...: runs the binary (bounded by a timeout), output in $WORK/out and $WORK/err.
run() {
  CMD_DESC="cosmicsync $*"
  timeout "$CMD_TIMEOUT" "$BIN" "$@" >"$WORK/out" 2>"$WORK/err"
  RC=$?
  if [ "$RC" -eq 124 ]; then
    echo "# timed out after ${CMD_TIMEOUT}s: $CMD_DESC"
  fi
}

ok() {
  CHECKS=$((CHECKS + 1))
  echo "ok $CHECKS - $1"
}

bad() {
  CHECKS=$((CHECKS + 1))
  FAILS=$((FAILS + 1))
  echo "not ok $CHECKS - $1"
  echo "#   command:   $CMD_DESC"
  echo "#   exit code: $RC"
  head -c 4000 "$WORK/out" | sed 's/^/#   stdout: /'
  head -c 4000 "$WORK/err" | sed 's/^/#   stderr: /'
}

# rc_is WANT WHAT
rc_is() {
  if [ "$RC" -eq "$1" ]; then ok "$2 (exit $1)"; else bad "$2: expected exit $1, got $RC"; fi
}

# out_has REGEX WHAT / out_lacks REGEX WHAT / err_has REGEX WHAT
out_has() {
  if grep -qE -- "$1" "$WORK/out"; then ok "$2"; else bad "$2: stdout does not match /$1/"; fi
}
out_lacks() {
  if grep -qE -- "$1" "$WORK/out"; then bad "$2: stdout matches /$1/"; else ok "$2"; fi
}
err_has() {
  if grep -qE -- "$1" "$WORK/err"; then ok "$2"; else bad "$2: stderr does not match /$1/"; fi
}
# err_prefixed COMMAND: errors read "cosmicsync: COMMAND: ..."
err_prefixed() {
  if grep -qE -- "^cosmicsync: $1: " "$WORK/err"; then
    ok "message names the command '$1'"
  else
    bad "stderr lacks 'cosmicsync: $1: ...'"
  fi
}
out_lines_is() {
  local n
  n=$(wc -l <"$WORK/out")
  if [ "$n" -eq "$1" ]; then ok "$2 ($1 lines)"; else bad "$2: expected $1 lines, got $n"; fi
}

# expect WANT_RC WHAT -- ARGS...: run and check the exit code in one step.
expect() {
  local want=$1 what=$2
  shift 3
  run "$@"
  rc_is "$want" "$what"
}

# The first conflict id in $WORK/out (32 hex digits).
conflict_id() {
  grep -oE '"id": ?"[0-9a-f]{32}"' "$WORK/out" | head -1 | grep -oE '[0-9a-f]{32}'
}

# start_server DB ARGS...: serves DB on a free loopback port; sets SPID and URL.
start_server() {
  local db=$1
  shift
  local log="$WORK/serve.$$.$RANDOM"
  "$BIN" --db "$db" serve --listen 127.0.0.1:0 "$@" >"$log.out" 2>"$log.err" &
  SPID=$!
  SERVER_PIDS+=("$SPID")
  SERVE_LOG=$log
  URL=""
  for _ in $(seq 1 150); do
    URL=$(grep -oE 'http://127\.0\.0\.1:[0-9]+' "$log.err" 2>/dev/null | head -1)
    if [ -n "$URL" ] && [ "${URL##*:}" != "0" ]; then
      return 0
    fi
    if ! kill -0 "$SPID" 2>/dev/null; then
      break
    fi
    sleep 0.1
  done
  CMD_DESC="cosmicsync --db $db serve --listen 127.0.0.1:0 $*"
  cp "$log.out" "$WORK/out"
  cp "$log.err" "$WORK/err"
  RC=-1
  bad "the server did not report a listening URL within 15 s"
  return 1
}

# stop_server SIGNAL: stops the last started server, sets RC to its exit code.
stop_server() {
  kill "-$1" "$SPID" 2>/dev/null
  for _ in $(seq 1 150); do
    kill -0 "$SPID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$SPID" 2>/dev/null; then
    kill -KILL "$SPID" 2>/dev/null
    wait "$SPID" 2>/dev/null
    RC=124
  else
    wait "$SPID"
    RC=$?
  fi
  CMD_DESC="kill -$1 (cosmicsync serve)"
  cp "$SERVE_LOG.out" "$WORK/out"
  cp "$SERVE_LOG.err" "$WORK/err"
}

PROFILE='{"name":"Ada","city":"Berlin","interests":["hiking","climbing"]}'

# ---- sections ----

section_basics() {
  echo "# basics: help, usage errors, id, define"
  local db="$WORK/basics.db"
  expect 0 "--help lists the commands" -- --help
  out_has "partial-sync" "the command list names partial-sync"
  for c in id define create put delete get store-locally list queue sync partial-sync \
    conflicts resolve trust untrust serve status cleanup check bench demo; do
    expect 0 "$c --help" -- "$c" --help
    out_has "usage: cosmicsync .*$c" "$c --help shows its usage"
  done
  expect 1 "no command is a usage error" --
  expect 1 "an unknown command is a usage error" -- frobnicate
  err_has "unknown command 'frobnicate'" "the message names the unknown command"
  expect 1 "an unknown option is a usage error" -- --db "$db" get --frob M i
  err_prefixed get
  expect 1 "--db without a value" -- --db
  expect 1 "too many arguments" -- --db "$db" id extra

  expect 0 "id creates the store on first use" -- --db "$db" id
  out_has '^[0-9a-f]{64}$' "id prints 64 hex digits"
  local key
  key=$(cat "$WORK/out")
  [ -d "$db" ] && ok "the store directory exists" || bad "the store directory was not created"
  expect 0 "id again" -- --db "$db" id
  if [ "$(cat "$WORK/out")" = "$key" ]; then ok "the key is stable"; else bad "the key changed"; fi
  COSMICSYNC_DB="$db" run id
  rc_is 0 "COSMICSYNC_DB selects the store"
  if [ "$(cat "$WORK/out")" = "$key" ]; then ok "same store through COSMICSYNC_DB"; else bad "COSMICSYNC_DB was ignored"; fi

  expect 0 "define a model" -- --db "$db" define UserProfile name:register city:register interests:set visits:counter note:register:silent
  out_has '"model":"UserProfile"' "define echoes the model"
  out_has '"name":"note","type":"register","policy":"silent"' "define echoes a silent field"
  expect 1 "define with an unknown type" -- --db "$db" define UserProfile age:integer
  err_has "unknown type 'integer'" "the message names the bad type"
  expect 1 "define with a bad policy" -- --db "$db" define UserProfile age:register:loud
  expect 1 "define without fields" -- --db "$db" define UserProfile
  expect 1 "define a field without a type" -- --db "$db" define UserProfile age
  expect 1 "redefining a field with another type" -- --db "$db" define UserProfile city:set
  err_prefixed define
}

section_data() {
  echo "# data: create, put, get, list, queue, delete, store-locally, status, cleanup, check"
  local db="$WORK/data.db"
  expect 0 "define UserProfile" -- --db "$db" define UserProfile name:register city:register interests:set visits:counter
  expect 0 "create an instance" -- --db "$db" create UserProfile profile_123 "$PROFILE"
  out_has '"city":"Berlin"' "create prints the instance"
  expect 4 "creating it again is a state error" -- --db "$db" create UserProfile profile_123 "$PROFILE"
  err_prefixed create
  expect 0 "get the instance" -- --db "$db" get UserProfile profile_123
  out_has '"name":"Ada"' "get shows name"
  out_has '"hiking"' "get shows the set element hiking"
  out_has '"climbing"' "get shows the set element climbing"

  expect 0 "put edits a set and a register" -- --db "$db" put UserProfile profile_123 '{"interests":{"$add":["photography"]},"city":"Munich"}'
  out_has '"photography"' "the added element shows at once"
  out_has '"city":"Munich"' "the new city shows at once"
  expect 0 "put removes from the set" -- --db "$db" put UserProfile profile_123 '{"interests":{"$remove":["hiking"]}}'
  out_lacks '"hiking"' "the removed element is gone"
  expect 0 "put increments a counter" -- --db "$db" put UserProfile profile_123 '{"visits":{"$inc":3}}'
  out_has '"visits":3' "the counter reads 3"
  expect 0 "put creates a missing instance" -- --db "$db" put UserProfile profile_456 '{"name":"Grace"}'
  expect 0 "list the instances" -- --db "$db" list UserProfile
  out_lines_is 2 "two instances listed"
  out_has '^profile_123$' "profile_123 listed"
  out_has '^profile_456$' "profile_456 listed"
  expect 0 "list of a model without instances" -- --db "$db" list NoSuchModel
  out_lines_is 0 "nothing listed for an unknown model"

  expect 0 "queue shows the outbox" -- --db "$db" queue
  out_lines_is 5 "one line per queued action"
  out_has '"type":"create"' "the create is queued"
  out_has '"type":"update"' "the updates are queued"

  # Errors of data commands.
  expect 1 "bad JSON" -- --db "$db" put UserProfile profile_123 '{"city":'
  err_has "not valid JSON" "the message says the JSON is bad"
  err_prefixed put
  expect 1 "JSON that is not an object" -- --db "$db" put UserProfile profile_123 '[1,2]'
  err_has "JSON object" "the message asks for an object"
  expect 1 "wrong type against the schema" -- --db "$db" put UserProfile profile_123 '{"interests":"all"}'
  err_has "interests" "the message names the field"
  expect 1 "unknown operator" -- --db "$db" put UserProfile profile_123 '{"visits":{"$mul":2}}'
  expect 1 "missing JSON argument" -- --db "$db" create UserProfile profile_789
  expect 1 "empty instance id" -- --db "$db" get UserProfile ""
  expect 2 "get of a missing instance" -- --db "$db" get UserProfile nobody
  err_has "nobody" "the message names the instance"
  err_prefixed get
  expect 2 "get from an unknown model" -- --db "$db" get NoSuchModel profile_123
  err_has "NoSuchModel" "the message names the model"
  expect 2 "delete of a missing instance" -- --db "$db" delete UserProfile nobody
  err_prefixed delete

  expect 0 "delete an instance" -- --db "$db" delete UserProfile profile_456
  out_has '"deleted":true' "delete confirms"
  expect 2 "a deleted instance is not found" -- --db "$db" get UserProfile profile_456
  expect 0 "list after delete" -- --db "$db" list UserProfile
  out_lines_is 1 "one instance left"

  expect 0 "store-locally caches a baseline" -- --db "$db" store-locally UserProfile cached_1 '{"name":"Linus","city":"Oslo"}'
  out_has '"city":"Oslo"' "store-locally prints the instance"
  expect 0 "get reads the baseline" -- --db "$db" get UserProfile cached_1
  out_has '"name":"Linus"' "baseline visible in reads"
  expect 0 "queue after store-locally" -- --db "$db" queue
  out_lacks 'cached_1' "a baseline is never queued"
  expect 1 "store-locally with bad JSON" -- --db "$db" store-locally UserProfile cached_1 'nope'

  expect 0 "status" -- --db "$db" status
  out_has '"pending":6' "status counts the outbox"
  out_has '"last_sync":null' "no sync yet"
  out_has '"replica":"[0-9a-f]{64}"' "status names the replica"
  expect 0 "conflicts on a fresh store" -- --db "$db" conflicts
  out_has '^\[\]$' "no conflicts"
  expect 1 "resolve a malformed conflict id" -- --db "$db" resolve nope --pick 0
  err_prefixed resolve
  expect 2 "resolve an unknown conflict id" -- --db "$db" resolve 00000000000000000000000000000000 --pick 0
  err_has "00000000000000000000000000000000" "the message names the id"
  expect 1 "resolve without a resolution" -- --db "$db" resolve 00000000000000000000000000000000
  expect 1 "resolve with two resolutions" -- --db "$db" resolve 00000000000000000000000000000000 --pick 0 --restore
  expect 1 "resolve --pick that is not a number" -- --db "$db" resolve 00000000000000000000000000000000 --pick one
  expect 1 "resolve --value with bad JSON" -- --db "$db" resolve 00000000000000000000000000000000 --value '{'

  expect 0 "cleanup" -- --db "$db" cleanup
  out_has '"log_entries_deleted":[0-9]+' "cleanup reports log entries"
  out_has '"bytes_freed":[0-9]+' "cleanup reports bytes freed"
  expect 0 "check a healthy store" -- --db "$db" check
  err_has "consistent" "check says the store is consistent"
  out_has '"violations":\[\]' "check lists no broken invariant"
}

section_conflicts() {
  echo "# conflicts: two stores in this process, a value conflict, resolve"
  local a="$WORK/conf-a.db" b="$WORK/conf-b.db"
  expect 0 "create on A" -- --db "$a" create UserProfile profile_123 "$PROFILE"
  expect 0 "B pulls from A (directory peer)" -- --db "$b" sync "$a"
  out_has '"synced":[1-9]' "something was synced"
  out_has '"conflicts":\[\]' "no conflicts yet"
  expect 0 "A edits city" -- --db "$a" put UserProfile profile_123 '{"city":"Munich","interests":{"$add":["photography"]}}'
  expect 0 "B edits city" -- --db "$b" put UserProfile profile_123 '{"city":"Hamburg","interests":{"$remove":["hiking"]}}'
  expect 0 "B syncs with A" -- --db "$b" sync "$a"
  out_has '"field":"city"' "the sync reports the city conflict"
  expect 0 "conflicts on B" -- --db "$b" conflicts
  out_has '"kind":"value"' "a value conflict"
  out_has 'Munich' "sibling Munich"
  out_has 'Hamburg' "sibling Hamburg"
  local id
  id=$(conflict_id)
  if [ -n "$id" ]; then ok "conflict id $id"; else bad "no conflict id in the output"; fi
  expect 0 "the merged set on B" -- --db "$b" get UserProfile profile_123
  out_has '"interests":\["climbing","photography"\]|"interests":\["photography","climbing"\]' "interests merged"
  expect 1 "--keep-deleted does not fit a value conflict" -- --db "$b" resolve "$id" --keep-deleted
  expect 1 "--pick out of range" -- --db "$b" resolve "$id" --pick 7
  expect 0 "resolve with a new value" -- --db "$b" resolve "$id" --value '"Hamburg"'
  out_has "\"resolved\":\"$id\"" "resolve confirms the id"
  expect 0 "no conflicts on B after resolving" -- --db "$b" conflicts
  out_has '^\[\]$' "conflict gone on B"
  expect 0 "B syncs the resolution to A" -- --db "$b" sync "$a"
  expect 0 "no conflicts on A" -- --db "$a" conflicts
  out_has '^\[\]$' "conflict gone on A"
  run --db "$a" get UserProfile profile_123
  cp "$WORK/out" "$WORK/final-a"
  run --db "$b" get UserProfile profile_123
  if cmp -s "$WORK/final-a" "$WORK/out"; then ok "A and B read the same instance"; else bad "A and B differ: $(cat "$WORK/final-a")"; fi
  out_has '"city":"Hamburg"' "the resolved city"
  expect 2 "the resolved conflict is no longer open" -- --db "$b" resolve "$id" --pick 0

  echo "# delete/update conflict"
  expect 0 "A deletes" -- --db "$a" delete UserProfile profile_123
  expect 0 "B edits meanwhile" -- --db "$b" put UserProfile profile_123 '{"name":"Ada L."}'
  expect 0 "B syncs with A" -- --db "$b" sync "$a"
  expect 0 "conflicts on B" -- --db "$b" conflicts
  out_has '"kind":"delete_update"' "a delete_update conflict"
  id=$(conflict_id)
  expect 1 "--pick does not fit a delete_update conflict" -- --db "$b" resolve "$id" --pick 0
  expect 0 "restore it" -- --db "$b" resolve "$id" --restore
  expect 0 "the restored instance reads again" -- --db "$b" get UserProfile profile_123
  out_has '"name":"Ada L."' "the edit survived"
}

section_local_sync() {
  echo "# local-sync: directory peers, partial sync, status"
  local a="$WORK/ls-a.db" b="$WORK/ls-b.db"
  expect 0 "create on A" -- --db "$a" create UserProfile p1 '{"name":"one"}'
  expect 0 "create a Note on A" -- --db "$a" create Note n1 '{"text":"hello"}'
  expect 2 "sync with a directory that is not there" -- --db "$b" sync "$WORK/nowhere"
  err_prefixed sync
  expect 1 "sync with itself" -- --db "$a" sync "$a"
  expect 1 "sync --models is refused with a pointer to partial-sync" -- --db "$b" sync "$a" --models Note
  err_has "partial-sync" "the message points to partial-sync"
  expect 1 "partial-sync without --since" -- --db "$b" partial-sync "$a"
  expect 1 "partial-sync with a bad cursor" -- --db "$b" partial-sync "$a" --since yesterday
  expect 1 "partial-sync with a cursor never issued" -- --db "$b" partial-sync "$a" --since 999999
  expect 0 "partial-sync --since last before any pull is a full one" -- \
    --db "$b" partial-sync "$a" --since last --models Note
  out_has '"received":1' "the Note came whole"
  expect 0 "partial-sync of Note only" -- --db "$b" partial-sync "$a" --since 0 --models Note
  out_has '"cursor":[0-9]+' "partial-sync returns a cursor"
  expect 0 "B has the Note" -- --db "$b" get Note n1
  expect 2 "B does not have the UserProfile yet" -- --db "$b" get UserProfile p1
  expect 0 "A writes another Note" -- --db "$a" create Note n2 '{"text":"again"}'
  expect 0 "partial-sync --since last" -- --db "$b" partial-sync "$a" --since last --models Note
  out_has '"received":1' "only the new change came"
  expect 0 "B has the new Note" -- --db "$b" get Note n2
  # The cursors are per model: the last pulls named Note only.
  expect 0 "partial-sync --since last of every model" -- --db "$b" partial-sync "$a" --since last
  out_has '"received":1' "the UserProfile, never pulled, came whole; nothing of Note again"
  expect 0 "B has the UserProfile now" -- --db "$b" get UserProfile p1
  expect 0 "A gains a model" -- --db "$a" create Task t1 '{"done":false}'
  expect 0 "partial-sync --since last after the peer gained a model" -- \
    --db "$b" partial-sync "$a" --since last
  out_has '"received":1' "only the new model's instance came"
  expect 0 "B has the Task" -- --db "$b" get Task t1
  expect 0 "full sync" -- --db "$b" sync "$a"
  expect 0 "status after syncs" -- --db "$b" status
  out_has '"state":"idle"' "idle after a successful sync"
  out_has '"last_sync":\{' "a last sync is recorded"
  out_has '"cursor":[0-9]+' "the partial-sync cursor is recorded"
  expect 0 "A's outbox is still full (B pulled)" -- --db "$a" status
  out_has '"pending":[1-9]' "A's outbox holds its actions"
  expect 0 "A syncs with B" -- --db "$a" sync "$b"
  expect 0 "A status" -- --db "$a" status
  out_has '"pending":0' "A's outbox is empty after its own sync"
}

section_serve() {
  echo "# serve: a hub with trusted devices, auth, network errors, graceful stop"
  local hub="$WORK/hub.db" a="$WORK/dev-a.db" b="$WORK/dev-b.db" c="$WORK/dev-c.db"
  local ka kb kc
  run --db "$a" id; ka=$(cat "$WORK/out")
  run --db "$b" id; kb=$(cat "$WORK/out")
  run --db "$c" id; kc=$(cat "$WORK/out")
  expect 1 "trust a malformed key" -- --db "$hub" trust not-a-key
  err_prefixed trust
  expect 1 "trust with an empty model in a list" -- --db "$hub" trust "$ka" --read "UserProfile,"
  expect 0 "trust device A on every model" -- --db "$hub" trust "$ka"
  out_has '"read":\["\*"\]' "read all"
  out_has '"write":\["\*"\]' "write all"
  expect 0 "trust device B explicitly" -- --db "$hub" trust "$kb" --read '*' --write UserProfile
  out_has '"write":\["UserProfile"\]' "B may write UserProfile"
  expect 0 "trust device C read-only" -- --db "$hub" trust "$kc" --read '*'
  expect 1 "serve with a bad listen address" -- --db "$hub" serve --listen 127.0.0.1:http

  start_server "$hub" || return
  ok "server up at $URL"
  if grep -qE 'server key [0-9a-f]{64}' "$SERVE_LOG.err"; then ok "serve prints its key"; else bad "serve did not print its key"; fi

  expect 0 "device A creates" -- --db "$a" create UserProfile profile_123 "$PROFILE"
  expect 0 "device A syncs with the hub" -- --db "$a" sync "$URL"
  out_has '"synced":[1-9]' "A's action went up"
  expect 0 "device B syncs with the hub" -- --db "$b" sync "$URL"
  expect 0 "device B has the profile" -- --db "$b" get UserProfile profile_123
  out_has '"city":"Berlin"' "B sees A's profile"
  expect 0 "A edits offline" -- --db "$a" put UserProfile profile_123 '{"interests":{"$add":["photography"]}}'
  expect 0 "B edits offline" -- --db "$b" put UserProfile profile_123 '{"interests":{"$remove":["hiking"]}}'
  expect 0 "A syncs" -- --db "$a" sync "$URL"
  expect 0 "B syncs" -- --db "$b" sync "$URL"
  expect 0 "A syncs again" -- --db "$a" sync "$URL"
  run --db "$a" get UserProfile profile_123
  cp "$WORK/out" "$WORK/serve-a"
  run --db "$b" get UserProfile profile_123
  if cmp -s "$WORK/serve-a" "$WORK/out"; then ok "A and B converged through the hub"; else bad "A and B differ: $(cat "$WORK/serve-a")"; fi
  out_lacks 'hiking' "hiking removed everywhere"
  out_has 'photography' "photography added everywhere"
  expect 0 "partial-sync over HTTP" -- --db "$b" partial-sync "$URL" --since 0 --models UserProfile
  out_has '"cursor":[1-9][0-9]*' "the hub issued a cursor"

  expect 0 "read-only device C pulls" -- --db "$c" sync "$URL"
  expect 0 "C has the profile" -- --db "$c" get UserProfile profile_123
  expect 0 "C writes locally" -- --db "$c" put UserProfile profile_123 '{"city":"Oslo"}'
  expect 6 "C may not write to the hub" -- --db "$c" sync "$URL"
  err_prefixed sync
  expect 0 "status after a refused sync" -- --db "$c" status
  out_has '"state":"error"' "the state is error"
  out_has '"last_error":\{' "the last error is recorded"
  expect 6 "an unknown device is refused" -- --db "$WORK/stranger.db" sync "$URL"
  expect 4 "the hub's store is held by the server" -- --db "$hub" trust "$ka"
  err_has "serve" "the message hints at the running server"

  expect 1 "a peer URL with another scheme" -- --db "$a" sync "ftp://127.0.0.1:1"
  err_has "bad peer URL" "the message says the URL is bad"
  expect 1 "a peer URL without a host" -- --db "$a" sync "http://"

  stop_server TERM
  rc_is 0 "SIGTERM stops the server cleanly"
  err_has "stopped" "the server says it stopped"

  expect 3 "server not reachable" -- --db "$a" sync "$URL"
  err_prefixed sync
  expect 0 "status while offline" -- --db "$a" status
  out_has '"state":"offline"' "the state is offline"
  out_has '"last_sync":\{' "the last success is still shown"

  # Revoking a key: in either case, once; the server then refuses it.
  expect 1 "untrust a malformed key" -- --db "$hub" untrust not-a-key
  expect 0 "untrust device A, key in upper case" -- --db "$hub" untrust "$(echo "$ka" | tr a-f A-F)"
  out_has '"untrusted"' "untrust says what it revoked"
  expect 2 "untrust it again" -- --db "$hub" untrust "$ka"
  err_has "not trusted" "the message says the key is not trusted"
  start_server "$hub" || return
  expect 6 "the revoked device is refused" -- --db "$a" sync "$URL"
  expect 0 "device B still syncs" -- --db "$b" sync "$URL"
  stop_server TERM

  start_server "$hub" --allow-any || return
  if grep -q "WARNING" "$SERVE_LOG.err"; then ok "--allow-any warns loudly"; else bad "--allow-any printed no warning"; fi
  expect 0 "with --allow-any an unknown device may sync" -- --db "$WORK/stranger.db" sync "$URL"
  stop_server INT
  rc_is 0 "SIGINT stops the server cleanly"
}

section_bench() {
  echo "# bench: the launcher"
  expect 0 "bench --help" -- bench --help
  out_has 'merge' "bench --help lists merge"
  expect 1 "bench without a workload" -- bench
  expect 1 "bench with an unknown workload" -- bench nosuch
  err_prefixed bench
  local dir
  dir=$(dirname "$BIN")
  if [ -x "$dir/bench/bench_sync" ]; then
    expect 0 "bench sync --json (small)" -- bench sync --json --runs 1 --docs 200 --edits 200
    out_has '^\{.*"workload":' "one JSON object with a workload"
    for k in merge_ops_per_s local_edits_per_s delta_bytes_per_edit peak_rss_bytes; do
      out_has "\"$k\":[0-9]" "bench sync reports $k"
    done
  else
    echo "# skipped: $dir/bench/bench_sync is not built"
    expect 2 "bench sync without the program says it is not built" -- bench sync --json
    err_has "not built" "the message says so"
  fi
}

case "$SECTION" in
basics) section_basics ;;
data) section_data ;;
conflicts) section_conflicts ;;
local-sync) section_local_sync ;;
serve) section_serve ;;
bench) section_bench ;;
all)
  section_basics
  section_data
  section_conflicts
  section_local_sync
  section_serve
  section_bench
  ;;
*)
  echo "unknown section '$SECTION'"
  exit 2
  ;;
esac

echo "# $SECTION: $CHECKS checks, $FAILS failed"
[ "$FAILS" -eq 0 ]
