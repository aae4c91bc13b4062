#!/usr/bin/env bash
# Contract test of the admin API: the served OpenAPI document (/admin/v1/openapi.json) against
# the server's real behaviour, with Schemathesis (pinned in scripts/contract/requirements.txt,
# settings in scripts/contract/schemathesis.toml). Exits non-zero on any disagreement.
#
# - Installs Schemathesis into a venv under the cargo target dir (reused while the requirements
#   are unchanged).
# - Starts $LATCHKEY_BIN (default: the debug build) with `serve` on a free loopback port, a fresh
#   temporary data dir and a fixed LATCHKEY_ADMIN_TOKEN; waits for /readyz.
# - Creates the objects the generated requests address: an active app (CT_SLUG) with a client and
#   a signed-up user, plus separate objects for the destructive operations (see the toml), so a
#   DELETE or disable never removes what the other operations test against.
# - Runs every operation of the document: examples, coverage and a seeded, bounded fuzzing phase
#   (max-examples per operation in the toml), one worker, every check (the toml enables them all
#   and names the few exceptions per operation); no stateful phase.
# - Always stops the server and removes the data dir. Reports (JUnit, NDJSON) and the server log
#   stay in $CONTRACT_REPORT_DIR (default: <target dir>/contract-report).
#
# Environment: LATCHKEY_BIN, CARGO_TARGET_DIR, CONTRACT_REPORT_DIR, CONTRACT_MAX_EXAMPLES
# (overrides the toml), CONTRACT_SEED (overrides the toml). Extra arguments go to
# `schemathesis run` (e.g. --include-path-regex '/tokens').
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/latchkey-target}"
BIN="${LATCHKEY_BIN:-$TARGET/debug/latchkey}"
VENV="$TARGET/contract-venv"
REQS="$ROOT/scripts/contract/requirements.txt"
CONFIG="$ROOT/scripts/contract/schemathesis.toml"
REPORT_DIR="${CONTRACT_REPORT_DIR:-$TARGET/contract-report}"
TOKEN="lka_contract-test-admin-token-0000"

log() { printf 'contract: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[ -x "$BIN" ] || die "no latchkey binary at $BIN (build it, or set LATCHKEY_BIN)"
command -v curl >/dev/null || die "curl is required"

# --- Schemathesis venv -------------------------------------------------------------------------
ensure_venv() {
  local stamp="$VENV/.requirements.sha256" want
  want=$(sha256sum "$REQS" | cut -d' ' -f1)
  if [ -x "$VENV/bin/schemathesis" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return; fi
  log "installing Schemathesis into $VENV"
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
    log "python3 venv support is missing; installing it (Debian packages python3-venv)"
    local sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq &&
      "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  fi
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQS"
  echo "$want" >"$stamp"
}
ensure_venv

# --- Server ------------------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-contract.XXXXXX")
SERVER_PID=""
cleanup() {
  local rc=$?
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ -f "$WORK/server.log" ]; then mkdir -p "$REPORT_DIR" && cp "$WORK/server.log" "$REPORT_DIR/server.log"; fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
mkdir -p "$WORK/data"
LATCHKEY_BIND="127.0.0.1:$PORT" LATCHKEY_PUBLIC_URL="$BASE" LATCHKEY_DATA_DIR="$WORK/data" \
  LATCHKEY_ADMIN_TOKEN="$TOKEN" RUST_LOG="${RUST_LOG:-warn}" \
  "$BIN" serve >"$WORK/server.log" 2>&1 </dev/null &
SERVER_PID=$!

for _ in $(seq 1 300); do
  curl -fsS -o /dev/null "$BASE/readyz" 2>/dev/null && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; die "the server exited"; }
  sleep 0.1
done
curl -fsS -o /dev/null "$BASE/readyz" || { cat "$WORK/server.log" >&2; die "no /readyz on $BASE"; }
log "server $SERVER_PID on $BASE"

# --- Objects under test ------------------------------------------------------------------------
# api METHOD PATH [JSON]: the body of a 2xx answer on stdout; anything else stops the script.
api() {
  local out code body=()
  [ $# -ge 3 ] && body=(-H 'Content-Type: application/json' --data "$3")
  out=$(curl -sS -X "$1" -H "Authorization: Bearer $TOKEN" "${body[@]}" -w '\n%{http_code}' "$BASE$2")
  code=${out##*$'\n'}
  [ "${code:0:1}" = 2 ] || die "setup: $1 $2 answered $code: ${out%$'\n'*}"
  printf '%s' "${out%$'\n'*}"
}
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

wait_active() {
  local status=""
  for _ in $(seq 1 200); do
    status=$(api GET "/admin/v1/apps/$1" | field "['status']")
    [ "$status" = active ] && return
    [ "$status" = failed ] && die "setup: app $1 failed: $(api GET "/admin/v1/apps/$1")"
    sleep 0.1
  done
  die "setup: app $1 is still $status"
}

# signup SLUG EMAIL: registers an end user through the hosted page; prints nothing.
signup() {
  local jar="$WORK/cookies-$2" csrf code
  csrf=$(curl -sS -c "$jar" "$BASE/apps/$1/signup" |
    python3 -c 'import re,sys; m=re.search(r"name=\"csrf\" value=\"([^\"]+)\"", sys.stdin.read()); print(m.group(1) if m else "")')
  [ -n "$csrf" ] || die "setup: no CSRF token on /apps/$1/signup"
  code=$(curl -sS -o "$WORK/signup.html" -w '%{http_code}' -b "$jar" -c "$jar" \
    --data-urlencode "csrf=$csrf" --data-urlencode "email=$2" \
    --data-urlencode "password=Contract-test-passw0rd!" "$BASE/apps/$1/signup")
  [ "${code:0:1}" = 2 ] || [ "${code:0:1}" = 3 ] || die "setup: sign-up of $2 answered $code"
}
user_id() {
  api GET "/admin/v1/apps/$1/users?email=$2" | field "['items'][0]['id']"
}

export CT_SLUG=contract CT_SPARE_SLUG=contract-spare CT_DOOMED_SLUG=contract-doomed
for slug in "$CT_SLUG" "$CT_SPARE_SLUG" "$CT_DOOMED_SLUG"; do
  api POST /admin/v1/apps "{\"slug\":\"$slug\",\"display_name\":\"Contract $slug\"}" >/dev/null
done
for slug in "$CT_SLUG" "$CT_SPARE_SLUG" "$CT_DOOMED_SLUG"; do wait_active "$slug"; done

client='{"name":"contract","grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_basic","scopes":["api:read"]}'
CT_CLIENT_ID=$(api POST "/admin/v1/apps/$CT_SLUG/clients" "$client" | field "['client_id']")
CT_DOOMED_CLIENT=$(api POST "/admin/v1/apps/$CT_SLUG/clients" "$client" | field "['client_id']")
signup "$CT_SLUG" user@contract.test
signup "$CT_SLUG" doomed@contract.test
CT_USER_ID=$(user_id "$CT_SLUG" user@contract.test)
CT_DOOMED_USER=$(user_id "$CT_SLUG" doomed@contract.test)
CT_INVITATION_ID=$(api POST "/admin/v1/apps/$CT_SLUG/invitations" '{"email":"invited@contract.test"}' | field "['id']")
CT_DOOMED_TOKEN=$(api POST /admin/v1/tokens '{"name":"contract-doomed"}' | field "['id']")
export CT_CLIENT_ID CT_DOOMED_CLIENT CT_USER_ID CT_DOOMED_USER CT_INVITATION_ID CT_DOOMED_TOKEN
log "app $CT_SLUG, client $CT_CLIENT_ID, user $CT_USER_ID"

# --- Schemathesis ------------------------------------------------------------------------------
mkdir -p "$REPORT_DIR"
args=(--header "Authorization: Bearer $TOKEN"
  --report junit,ndjson --report-dir "$REPORT_DIR" --output-sanitize false --no-color)
[ -n "${CONTRACT_MAX_EXAMPLES:-}" ] && args+=(--max-examples "$CONTRACT_MAX_EXAMPLES")
[ -n "${CONTRACT_SEED:-}" ] && args+=(--seed "$CONTRACT_SEED")
set +e
(cd "$WORK" && "$VENV/bin/schemathesis" --config-file "$CONFIG" run "$BASE/admin/v1/openapi.json" "${args[@]}" "$@")
rc=$?
set -e
log "reports in $REPORT_DIR (schemathesis exit code $rc)"
exit "$rc"
