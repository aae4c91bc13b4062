#!/usr/bin/env bash
# Load benchmark for Latchkey, side by side with the reference OP (panva/oidc-provider).
#
# 1. builds the release binary (cargo build --release -p latchkey) and, for the upstream sign-in
#    load, the fake upstream provider (cargo build --release -p latchkey --example fake_upstream);
# 2. starts `latchkey serve` on 127.0.0.1:$PORT with a fresh temp data dir, pinned to CPU 0;
# 3. creates app "bench" + a client_credentials client through the admin API, checks one token;
#    unless ROLES=0, also 5 roles bench-r1 ... bench-r5 with 10 distinct permissions each (50 in
#    all: api1:read ... api5:admin) and a second client_credentials client with the same settings
#    that holds all 5, and checks that its access token carries the 5 roles and 50 permissions;
# 4. load-tests, with the load generator pinned to CPU 1:
#      POST /apps/bench/token  grant_type=client_credentials (client_secret_basic)
#      POST /apps/bench/token  the same with the roles client, row "... (5 roles, 50 permissions)"
#        (unless ROLES=0)
#      GET  /apps/bench/.well-known/openid-configuration
#      GET  /apps/bench/jwks
#    and prints req/s, p50/p99 latency, non-2xx count, plus the server's RSS (idle, after, peak),
#    and the client_credentials with roles / without ratio (issue 13 target: at least 0.90, i.e.
#    role resolution costs no store round trip per permission; below it prints a warning);
#    then, unless SIGNIN=0, with scripts/bench_signin.py (Python, standard library) on CPU 1:
#      sign-in throughput: complete password sign-ins (GET /authorize -> GET /login -> POST /login
#        -> code -> POST /token authorization_code with PKCE) by SIGNIN_CONNS browsers, each with
#        its own pre-created user and a fresh cookie jar per sign-in (Argon2id dominates);
#      refresh_token grant: each browser follows its own rotating refresh-token chain;
#      unless ROLES=0, the refresh_token grant again once every browser's user holds the 5 roles
#        (granted through the admin API after the first refresh row; each chain continues), row
#        "POST /apps/bench/token refresh_token (5 roles, 50 permissions) c=N";
#      upstream sign-in (unless UPSTREAM=0): complete sign-ins through an upstream OpenID
#        provider, crates/latchkey/examples/fake_upstream.rs on 127.0.0.1:$UPSTREAM_PORT (pinned
#        to CPU 1 with the load generator, set up as app "bench"'s `oidc` provider before the
#        sign-in loads start): GET /authorize -> GET /oauth/oidc/start -> upstream /authorize
#        (consents at once) -> GET /oauth/oidc/callback (Latchkey redeems the code upstream and
#        checks the ID token against the upstream's JWKS) -> POST /token authorization_code
#        with PKCE, a fresh cookie jar per flow; each browser has its own upstream account
#        (bench-up-<i>@example.com), which its first flow creates;
#    and prints sign-ins/s and req/s with p50/p99 (of the whole flow / of one request), the
#    server's peak VmRSS during each, VmRSS/VmHWM after, the refresh / client_credentials
#    ratio (target: above 0.50; below it prints a warning), the refresh with roles / without
#    ratio (issue 13 target: at least 0.90; below it prints a warning) and the upstream /
#    password sign-in ratio (target: at least 5; below it prints a warning);
# 5. unless PEER=0, runs ../shared/peers/bench-peer.sh (same DURATION/CONNS/TOOL/pinning);
# 6. unless SIGNING=0, runs `taskset -c 0 cargo bench -p latchkey --bench signing` so the bare
#    RS256 signing rate on the same core appears in the same output.
#
# Everything listens on loopback only, every step is time-bounded, and everything this script
# starts is stopped on exit.
#
# Usage: scripts/bench.sh
# Env:   DURATION=10 CONNS=32 PORT=8089 TOOL=auto|oha|wrk WRK_THREADS=1
#        PIN=1          pin server to CPU 0, load generator to CPU 1 (needs taskset and >= 2 CPUs)
#        SIGNIN=1       also run the sign-in and refresh_token loads (SIGNIN_CONNS=8,
#                       SIGNIN_DURATION=$DURATION)
#        UPSTREAM=1     with SIGNIN=1, also run the upstream sign-in load against the fake upstream
#                       provider on 127.0.0.1:$UPSTREAM_PORT (UPSTREAM_PORT=8095); 0 e.g. for a
#                       LATCHKEY_BIN that predates upstream providers
#        ROLES=1        also run the client_credentials row (and, with SIGNIN=1, the refresh_token
#                       row) with 5 roles / 50 permissions, each next to its row without roles
#                       (target: with / without >= 0.90); 0 e.g. for a LATCHKEY_BIN that predates
#                       roles
#        PEER=1         also run the reference provider's benchmark (PEER_PORT=3000)
#        SIGNING=1      also run the signing micro-benchmark (SIGNING_BENCH_SECS=3)
#        BUILD=1        0 = skip `cargo build` and use the existing binary
#        LATCHKEY_BIN   the binary to measure (default $CARGO_TARGET_DIR/release/latchkey), e.g. a
#                       build of an earlier commit for a before/after comparison (with BUILD=0;
#                       the fake upstream is then $CARGO_TARGET_DIR/release/examples/fake_upstream;
#                       ROLES=0 if it predates roles)
#        BUILD_TIMEOUT=3600 (seconds, for each cargo invocation)
#        CARGO_TARGET_DIR (default $HOME/.cache/latchkey-target)
# Exit:  non-zero if setup (the fake upstream and its provider entry, the roles and the roles
#        client included) or a token sanity check fails (with ROLES=1: the roles client's access
#        token must carry exactly the 5 roles and 50 permissions), or if more than 1 % of the
#        responses of any Latchkey endpoint are non-2xx (for the sign-in, refresh and upstream
#        sign-in rows, and the refresh row with roles: failed flows or requests). A ratio below
#        its target, and a failing peer/signing run, only print a warning. The admin token is
#        never printed; bench_signin.py gets it in its environment, not on its command line.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/latchkey-target}"
DURATION="${DURATION:-10}"
CONNS="${CONNS:-32}"
PORT="${PORT:-8089}"
TOOL="${TOOL:-auto}"
PIN="${PIN:-1}"
PEER="${PEER:-1}"
PEER_PORT="${PEER_PORT:-3000}"
SIGNING="${SIGNING:-1}"
SIGNIN="${SIGNIN:-1}"
SIGNIN_CONNS="${SIGNIN_CONNS:-8}"
SIGNIN_DURATION="${SIGNIN_DURATION:-$DURATION}"
UPSTREAM="${UPSTREAM:-1}"
UPSTREAM_PORT="${UPSTREAM_PORT:-8095}"
BUILD="${BUILD:-1}"
BUILD_TIMEOUT="${BUILD_TIMEOUT:-3600}"
WRK_THREADS="${WRK_THREADS:-1}"
MAX_NON2XX_PCT=1
BASE="http://127.0.0.1:${PORT}"
APP=bench
BIN="${LATCHKEY_BIN:-$CARGO_TARGET_DIR/release/latchkey}"
PEER_SCRIPT="$REPO/../shared/peers/bench-peer.sh"
SIGNIN_SCRIPT="$REPO/scripts/bench_signin.py"
SPA_REDIRECT="https://bench.example.com/cb"
UP_BASE="http://127.0.0.1:${UPSTREAM_PORT}"
UP_BIN="$CARGO_TARGET_DIR/release/examples/fake_upstream"
UP_CLIENT_ID=bench-rp
UP_CLIENT_SECRET=bench-secret-0123456789
ROLES="${ROLES:-1}"
UP_ON=0 # the upstream sign-in load runs
if [[ "$SIGNIN" != 0 && "$UPSTREAM" != 0 ]]; then UP_ON=1; fi
ROLES_ON=0 # the rows with 5 roles / 50 permissions run
if [[ "$ROLES" != 0 ]]; then ROLES_ON=1; fi
ROLE_COUNT=5
ROLE_ACTIONS=(read write create update delete list export import audit admin) # 10 per role
ROLE_PERMS=$((ROLE_COUNT * ${#ROLE_ACTIONS[@]})) # distinct: api<r>:<action>
ROLES_LABEL="$ROLE_COUNT roles, $ROLE_PERMS permissions"
ROLE_TARGET=0.90 # issue 13: with roles / without, for client_credentials and refresh_token

log() { printf '== %s\n' "$*" >&2; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

for cmd in curl python3 timeout; do
  command -v "$cmd" >/dev/null || die "$cmd is required"
done

TMP="$(mktemp -d "${TMPDIR:-/tmp}/latchkey-bench.XXXXXX")"
SRV_PID=""
UP_PID=""
stop_pid() { # stop_pid PID: SIGTERM, up to 5 s, then SIGKILL
  local pid=$1
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
stop_server() { [[ -n "$SRV_PID" ]] || return 0; stop_pid "$SRV_PID"; SRV_PID=""; }
stop_upstream() { [[ -n "$UP_PID" ]] || return 0; stop_pid "$UP_PID"; UP_PID=""; }
cleanup() { stop_upstream; stop_server; rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

server_log_tail() {
  if [[ -s "$TMP/server.log" ]]; then
    echo "---- last lines of the server log ----" >&2
    tail -n 40 "$TMP/server.log" >&2
    echo "--------------------------------------" >&2
  fi
}
fail() { printf 'ERROR: %s\n' "$*" >&2; server_log_tail; exit 1; }
upstream_fail() { # like fail, with the fake upstream's output first
  if [[ -s "$TMP/upstream.log" ]]; then
    echo "---- last lines of the fake upstream's output ----" >&2
    tail -n 20 "$TMP/upstream.log" >&2
    echo "--------------------------------------------------" >&2
  fi
  fail "$@"
}

# ---- pinning ---------------------------------------------------------------------------------
SRV_PIN=(); GEN_PIN=()
if [[ "$PIN" == 1 ]]; then
  if command -v taskset >/dev/null && [[ "$(nproc)" -ge 2 ]]; then
    SRV_PIN=(taskset -c 0); GEN_PIN=(taskset -c 1)
  else
    warn "PIN=1 but taskset is missing or fewer than 2 CPUs; running unpinned"
    PIN=0
  fi
fi

# ---- load tool ---------------------------------------------------------------------------------
PATH="$PATH:$HOME/.cargo/bin"
if [[ "$TOOL" == auto ]]; then
  if command -v oha >/dev/null; then TOOL=oha
  elif command -v wrk >/dev/null; then TOOL=wrk
  else
    log "no load tool found: apt-get install -y wrk"
    export DEBIAN_FRONTEND=noninteractive
    if ! timeout 600 apt-get install -y wrk >"$TMP/apt.log" 2>&1; then
      timeout 600 apt-get update >>"$TMP/apt.log" 2>&1 || true
      timeout 600 apt-get install -y wrk >>"$TMP/apt.log" 2>&1 || { cat "$TMP/apt.log" >&2; die "could not install wrk"; }
    fi
    TOOL=wrk
  fi
fi
[[ "$TOOL" == oha || "$TOOL" == wrk ]] || die "TOOL must be auto, oha or wrk (got $TOOL)"
command -v "$TOOL" >/dev/null || die "load tool $TOOL not found"

# ---- build -------------------------------------------------------------------------------------
if [[ "$BUILD" == 1 ]]; then
  log "cargo build --release -p latchkey (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
  (cd "$REPO" && timeout "$BUILD_TIMEOUT" cargo build --release -p latchkey) || die "release build failed"
  if [[ "$UP_ON" == 1 ]]; then
    log "cargo build --release -p latchkey --example fake_upstream"
    (cd "$REPO" && timeout "$BUILD_TIMEOUT" cargo build --release -p latchkey --example fake_upstream) \
      || die "release build of the fake upstream failed"
  fi
fi
[[ -x "$BIN" ]] || die "$BIN not found"
if [[ "$UP_ON" == 1 ]]; then
  [[ -x "$UP_BIN" ]] || die "$UP_BIN not found (build it, or set UPSTREAM=0)"
fi

# ---- start Latchkey ----------------------------------------------------------------------------
if curl -s -m 1 -o /dev/null "$BASE/healthz"; then
  die "something already listens on $BASE; stop it first (or set PORT)"
fi
if [[ "$UP_ON" == 1 ]] && curl -s -m 1 -o /dev/null "$UP_BASE/"; then
  die "something already listens on $UP_BASE; stop it first (or set UPSTREAM_PORT)"
fi
ADMIN_TOKEN="$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
mkdir -p "$TMP/data"
log "starting $BIN serve on $BASE (pinned: ${SRV_PIN[*]:-no})"
LATCHKEY_DATA_DIR="$TMP/data" \
LATCHKEY_BIND="127.0.0.1:$PORT" \
LATCHKEY_PUBLIC_URL="$BASE" \
LATCHKEY_ADMIN_TOKEN="$ADMIN_TOKEN" \
LATCHKEY_LOG_FORMAT=json \
RUST_LOG=warn \
  "${SRV_PIN[@]}" "$BIN" serve >"$TMP/server.log" 2>&1 &
SRV_PID=$!

up=0
for _ in $(seq 1 300); do # 30 s
  kill -0 "$SRV_PID" 2>/dev/null || fail "latchkey exited during start-up"
  if [[ "$(curl -s -m 1 -o /dev/null -w '%{http_code}' "$BASE/healthz" || true)" == 200 ]]; then
    up=1; break
  fi
  sleep 0.1
done
[[ "$up" == 1 ]] || fail "GET /healthz did not return 200 within 30 s"

# ---- admin API ---------------------------------------------------------------------------------
# api METHOD PATH [JSON-BODY] -> prints the HTTP status; the response body is in $TMP/resp.json
api() {
  local method=$1 path=$2 body=${3:-}
  local args=(-s -m 10 -o "$TMP/resp.json" -w '%{http_code}' -X "$method"
    -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Accept: application/json')
  [[ -n "$body" ]] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
  curl "${args[@]}" "$BASE$path" || true
}
json_field() { # json_field FILE KEY  (top-level key; empty if absent)
  python3 - "$1" "$2" <<'PY'
import json, sys
try:
    v = json.load(open(sys.argv[1])).get(sys.argv[2], "")
except Exception:
    v = ""
print(v if isinstance(v, str) else json.dumps(v))
PY
}

code="$(api POST /admin/v1/apps '{"slug":"bench","display_name":"Bench"}')"
[[ "$code" == 201 ]] || { cat "$TMP/resp.json" >&2 2>/dev/null || true; echo >&2; fail "POST /admin/v1/apps returned $code (expected 201)"; }
log "app created; waiting for status=active"
deadline=$((SECONDS + 30)); status=""
while :; do
  code="$(api GET "/admin/v1/apps/$APP")"
  status="$(json_field "$TMP/resp.json" status)"
  [[ "$code" == 200 && "$status" == active ]] && break
  if [[ "$status" == failed ]] || (( SECONDS >= deadline )); then
    cat "$TMP/resp.json" >&2 || true; echo >&2
    reason="$(json_field "$TMP/resp.json" failure_reason)"
    fail "app $APP is not active (HTTP $code, status=${status:-?}${reason:+, failure_reason=$reason})"
  fi
  sleep 0.2
done

cc_client() { # cc_client NAME -> the client_credentials client's creation body (both clients)
  printf '{"name":"%s","redirect_uris":[],"grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_basic","scopes":["api:read"]}' "$1"
}
basic_auth() { # basic_auth CLIENT_ID SECRET -> the HTTP Basic credentials
  # RFC 6749 §2.3.1: client_id and secret are form-urlencoded before base64 in HTTP Basic.
  python3 - "$1" "$2" <<'PY'
import base64, sys, urllib.parse
q = lambda s: urllib.parse.quote(s, safe="")
print(base64.b64encode(f"{q(sys.argv[1])}:{q(sys.argv[2])}".encode()).decode())
PY
}

code="$(api POST "/admin/v1/apps/$APP/clients" "$(cc_client bench)")"
[[ "$code" == 201 ]] || { cat "$TMP/resp.json" >&2 || true; echo >&2; fail "POST /admin/v1/apps/$APP/clients returned $code (expected 201)"; }
CLIENT_ID="$(json_field "$TMP/resp.json" client_id)"
CLIENT_SECRET="$(json_field "$TMP/resp.json" client_secret)"
[[ -n "$CLIENT_ID" && -n "$CLIENT_SECRET" ]] || { cat "$TMP/resp.json" >&2; echo >&2; fail "client response lacks client_id/client_secret"; }
BASIC="$(basic_auth "$CLIENT_ID" "$CLIENT_SECRET")"
TOKEN_URL="$BASE/apps/$APP/token"
DISCOVERY_URL="$BASE/apps/$APP/.well-known/openid-configuration"
JWKS_URL="$BASE/apps/$APP/jwks"
BODY='grant_type=client_credentials&scope=api%3Aread'

# ---- roles (issue 13): 5 roles x 10 permissions, and a second client that holds all 5 ----------
ROLE_NAMES=(); ROLES_CSV=""; ROLES_CLIENT_ID=""; BASIC_ROLES=""
if [[ "$ROLES_ON" == 1 ]]; then
  for r in $(seq 1 "$ROLE_COUNT"); do
    perms=""
    for act in "${ROLE_ACTIONS[@]}"; do perms+="${perms:+,}\"api$r:$act\""; done
    code="$(api POST "/admin/v1/apps/$APP/roles" \
      "{\"name\":\"bench-r$r\",\"description\":\"bench role $r (${#ROLE_ACTIONS[@]} permissions on api$r)\",\"permissions\":[$perms]}")"
    [[ "$code" == 201 ]] || { cat "$TMP/resp.json" >&2 || true; echo >&2; fail "POST /admin/v1/apps/$APP/roles (bench-r$r) returned $code (expected 201; ROLES=0 for a LATCHKEY_BIN without roles)"; }
    ROLE_NAMES+=("bench-r$r")
  done
  ROLES_CSV="$(IFS=,; echo "${ROLE_NAMES[*]}")"
  code="$(api POST "/admin/v1/apps/$APP/clients" "$(cc_client bench-roles)")"
  [[ "$code" == 201 ]] || { cat "$TMP/resp.json" >&2 || true; echo >&2; fail "POST /admin/v1/apps/$APP/clients (roles client) returned $code (expected 201)"; }
  ROLES_CLIENT_ID="$(json_field "$TMP/resp.json" client_id)"
  ROLES_CLIENT_SECRET="$(json_field "$TMP/resp.json" client_secret)"
  [[ -n "$ROLES_CLIENT_ID" && -n "$ROLES_CLIENT_SECRET" ]] || { cat "$TMP/resp.json" >&2; echo >&2; fail "roles client response lacks client_id/client_secret"; }
  BASIC_ROLES="$(basic_auth "$ROLES_CLIENT_ID" "$ROLES_CLIENT_SECRET")"
  code="$(api PUT "/admin/v1/apps/$APP/clients/$ROLES_CLIENT_ID/roles" \
    "{\"roles\":[$(printf '"%s",' "${ROLE_NAMES[@]}" | sed 's/,$//')]}")"
  [[ "$code" == 200 ]] || { cat "$TMP/resp.json" >&2 || true; echo >&2; fail "PUT /admin/v1/apps/$APP/clients/$ROLES_CLIENT_ID/roles returned $code (expected 200)"; }
  log "roles $ROLES_CSV ($ROLE_PERMS permissions in all) granted to client $ROLES_CLIENT_ID"
fi

# ---- sanity: one real token (hard failure), then informative checks of the token (warnings) ----
code="$(curl -s -m 10 -o "$TMP/token.json" -w '%{http_code}' -H "Authorization: Basic $BASIC" \
  -H 'Content-Type: application/x-www-form-urlencoded' --data-binary "$BODY" "$TOKEN_URL" || true)"
[[ "$code" == 200 ]] || { cat "$TMP/token.json" >&2 || true; echo >&2; fail "POST $TOKEN_URL returned $code (expected 200)"; }
curl -s -m 10 -o "$TMP/discovery.json" "$DISCOVERY_URL" || true
curl -s -m 10 -o "$TMP/jwks.json" "$JWKS_URL" || true
python3 - "$TMP/token.json" "$TMP/discovery.json" "$TMP/jwks.json" <<'PY' || fail "token sanity check failed"
import base64, hashlib, json, sys

tok = json.load(open(sys.argv[1]))
at, tt, exp_in = tok.get("access_token"), tok.get("token_type"), tok.get("expires_in")
problems = []
if not isinstance(at, str) or not at:
    problems.append("no access_token")
if not isinstance(tt, str) or tt.lower() != "bearer":
    problems.append(f"token_type={tt!r} (expected Bearer)")
if not isinstance(exp_in, int) or isinstance(exp_in, bool) or exp_in <= 0:
    problems.append(f"expires_in={exp_in!r} (expected a positive integer)")
if problems:
    print("token response:", json.dumps(tok), file=sys.stderr)
    sys.exit("sanity: " + "; ".join(problems))
print(f"sanity: token_type={tt} expires_in={exp_in} access_token={len(at)} chars")

# Informative checks (warnings only): RFC 9068 shape, signature against the JWKS.
def warn(msg):
    print(f"WARNING: access token: {msg}", file=sys.stderr)

def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))

parts = at.split(".")
if len(parts) != 3:
    print("sanity: access token is not a JWS (opaque token); signature not checked")
    sys.exit(0)
try:
    hdr, claims, sig = json.loads(b64d(parts[0])), json.loads(b64d(parts[1])), b64d(parts[2])
except Exception as e:
    warn(f"cannot decode JWT parts: {e}")
    sys.exit(0)
try:
    disc = json.load(open(sys.argv[2]))
except Exception:
    disc = {}
    warn("discovery document is not JSON")
try:
    jwks = json.load(open(sys.argv[3]))
except Exception:
    jwks = {}
    warn("JWKS is not JSON")
alg = hdr.get("alg")
if hdr.get("typ", "").lower() not in ("at+jwt", "application/at+jwt"):
    warn(f"header typ={hdr.get('typ')!r} (RFC 9068 requires at+jwt)")
for c in ("iss", "exp", "aud", "sub", "client_id", "iat", "jti"):
    if c not in claims:
        warn(f"missing claim {c!r} (RFC 9068 §2.2)")
if disc.get("issuer") and claims.get("iss") != disc.get("issuer"):
    warn(f"iss={claims.get('iss')!r} differs from discovery issuer {disc.get('issuer')!r}")
if "api:read" not in str(claims.get("scope", "")).split():
    warn(f"scope={claims.get('scope')!r} lacks api:read")
if isinstance(claims.get("exp"), int) and isinstance(claims.get("iat"), int) and abs(claims["exp"] - claims["iat"] - exp_in) > 5:
    warn(f"exp-iat={claims['exp'] - claims['iat']} but expires_in={exp_in}")
keys = [k for k in jwks.get("keys", []) if k.get("kid") == hdr.get("kid")]
if not keys:
    warn(f"kid={hdr.get('kid')!r} not found in the JWKS")
    sys.exit(0)
k = keys[0]
signing_input = f"{parts[0]}.{parts[1]}".encode()
verified = None
if alg == "RS256" and k.get("kty") == "RSA":
    n = int.from_bytes(b64d(k["n"]), "big"); e = int.from_bytes(b64d(k["e"]), "big")
    size = (n.bit_length() + 7) // 8
    em = pow(int.from_bytes(sig, "big"), e, n).to_bytes(size, "big")
    di = bytes.fromhex("3031300d060960864801650304020105000420") + hashlib.sha256(signing_input).digest()
    verified = len(sig) == size and em == b"\x00\x01" + b"\xff" * (size - 3 - len(di)) + b"\x00" + di
    bits = n.bit_length()
else:
    try:  # optional: python 'cryptography' for ES256 / EdDSA
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
        if alg == "ES256":
            pub = ec.EllipticCurvePublicNumbers(int.from_bytes(b64d(k["x"]), "big"), int.from_bytes(b64d(k["y"]), "big"), ec.SECP256R1()).public_key()
            pub.verify(encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")), signing_input, ec.ECDSA(hashes.SHA256()))
        elif alg == "EdDSA":
            ed25519.Ed25519PublicKey.from_public_bytes(b64d(k["x"])).verify(sig, signing_input)
        else:
            raise ImportError
        verified = True
    except ImportError:
        pass
    except Exception:
        verified = False
    bits = None
if verified is None:
    print(f"sanity: JWT alg={alg} kid={hdr.get('kid')}; signature not checked (no verifier for {alg})")
elif verified:
    print(f"sanity: JWT alg={alg}{f' ({bits}-bit key)' if bits else ''} typ={hdr.get('typ')} kid={hdr.get('kid')} signature verifies against the JWKS")
else:
    warn(f"alg={alg} kid={hdr.get('kid')}: signature does NOT verify against the JWKS")
PY

# The roles client's token must carry exactly its roles and their permissions (hard failure:
# otherwise its row would not measure role resolution).
if [[ "$ROLES_ON" == 1 ]]; then
  code="$(curl -s -m 10 -o "$TMP/token-roles.json" -w '%{http_code}' -H "Authorization: Basic $BASIC_ROLES" \
    -H 'Content-Type: application/x-www-form-urlencoded' --data-binary "$BODY" "$TOKEN_URL" || true)"
  [[ "$code" == 200 ]] || { cat "$TMP/token-roles.json" >&2 || true; echo >&2; fail "POST $TOKEN_URL (roles client) returned $code (expected 200)"; }
  python3 - "$TMP/token-roles.json" "$ROLES_CSV" "$ROLE_PERMS" <<'PY' || fail "token sanity check of the roles client failed"
import base64, json, sys

at = json.load(open(sys.argv[1])).get("access_token")
want_roles, want_perms = set(sys.argv[2].split(",")), int(sys.argv[3])
parts = at.split(".") if isinstance(at, str) else []
if len(parts) != 3:
    sys.exit("sanity (roles): the access token is not a JWT; its roles and permissions cannot be checked")
claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
roles, perms = claims.get("roles"), claims.get("permissions")
if not isinstance(roles, list) or set(roles) != want_roles or not isinstance(perms, list) or len(set(perms)) != want_perms:
    n = len(set(perms)) if isinstance(perms, list) else perms
    sys.exit(f"sanity (roles): access token roles={roles!r}, permissions: {n!r}"
             f"{', permissions_omitted' if claims.get('permissions_omitted') else ''}"
             f" (expected {sorted(want_roles)} and {want_perms} permissions)")
print(f"sanity (roles): the roles client's access token carries {len(roles)} roles and {len(perms)} permissions")
PY
fi

for url in "$DISCOVERY_URL" "$JWKS_URL"; do
  code="$(curl -s -m 10 -o /dev/null -w '%{http_code}' "$url" || true)"
  [[ "$code" == 200 ]] || fail "GET $url returned $code (expected 200)"
done

rss() { grep -E "^($1):" "/proc/$SRV_PID/status" | tr -s ' \t' ' ' | paste -sd' '; }

# ---- load --------------------------------------------------------------------------------------
# Each runner prints one table row and appends "name requests non2xx req/s p50 p99" to $TMP/totals.
run_oha() { # name method url [form-body [basic-credentials, default $BASIC]]
  local name=$1 method=$2 url=$3 body=${4:-} basic=${5:-$BASIC}
  local args=(-z "${DURATION}s" -c "$CONNS" --no-tui --output-format json -m "$method")
  if [[ -n "$body" ]]; then
    args+=(-H "Authorization: Basic $basic" -T application/x-www-form-urlencoded -d "$body")
  fi
  timeout $((DURATION + 30)) "${GEN_PIN[@]}" oha "${args[@]}" "$url" >"$TMP/oha.json" 2>"$TMP/oha.err" \
    || { cat "$TMP/oha.err" >&2; return 1; }
  python3 - "$name" "$TMP/oha.json" "$TMP/totals" <<'PY'
import json, sys
name, path, totals = sys.argv[1:4]
j = json.load(open(path))
s = j["summary"]; p = j["latencyPercentiles"]
codes = j.get("statusCodeDistribution", {})
errs = j.get("errorDistribution", {})
total = sum(codes.values())
non2xx = sum(v for k, v in codes.items() if not str(k).startswith("2"))
nerr = sum(v for k, v in errs.items() if "deadline" not in k)  # -z aborts in-flight requests
p50 = p.get("p50") or 0; p99 = p.get("p99") or 0
print(f"{name:<68} {s['requestsPerSec']:>12.1f} {p50*1e3:>10.2f} {p99*1e3:>10.2f} {non2xx:>8}" + (f"   (errors: {nerr})" if nerr else ""))
open(totals, "a").write(f"{name}\t{total + nerr}\t{non2xx + nerr}\t{s['requestsPerSec']:.1f}\t{p50*1e3:.2f}\t{p99*1e3:.2f}\n")
PY
}

run_wrk() { # name method url [form-body [basic-credentials, default $BASIC]]
  local name=$1 method=$2 url=$3 body=${4:-} basic=${5:-$BASIC}
  local lua="$TMP/req.lua"
  if [[ -n "$body" ]]; then
    cat >"$lua" <<EOF
wrk.method = "$method"
wrk.body = "$body"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $basic"
EOF
  else
    echo "wrk.method = \"$method\"" >"$lua"
  fi
  timeout $((DURATION + 30)) "${GEN_PIN[@]}" wrk -t "$WRK_THREADS" -c "$CONNS" -d "${DURATION}s" --latency -s "$lua" "$url" >"$TMP/wrk.txt" \
    || { cat "$TMP/wrk.txt" >&2; return 1; }
  python3 - "$name" "$TMP/wrk.txt" "$TMP/totals" <<'PY'
import re, sys
name, path, totals = sys.argv[1:4]
t = open(path).read()
def ms(v):
    m = re.match(r"([\d.]+)(us|ms|s)", v); x, u = float(m[1]), m[2]
    return x / 1000 if u == "us" else x * 1000 if u == "s" else x
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t)[1])
p50 = ms(re.search(r"\s50%\s+(\S+)", t)[1]); p99 = ms(re.search(r"\s99%\s+(\S+)", t)[1])
total = int(re.search(r"(\d+) requests in", t)[1])
m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", t); non2xx = int(m[1]) if m else 0
err = re.search(r"Socket errors:.*", t)
print(f"{name:<68} {rps:>12.1f} {p50:>10.2f} {p99:>10.2f} {non2xx:>8}" + (f"   ({err[0]})" if err else ""))
open(totals, "a").write(f"{name}\t{total}\t{non2xx}\t{rps:.1f}\t{p50:.2f}\t{p99:.2f}\n")
PY
}

echo
echo "==== Latchkey ($(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo 'no commit'), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'))"
echo "server process idle after setup: $(rss VmRSS)"
echo "tool=$TOOL duration=${DURATION}s conns=$CONNS pinned=$PIN (server CPU 0, load generator CPU 1)"
printf '%-68s %12s %10s %10s %8s\n' endpoint req/s p50_ms p99_ms non2xx
: >"$TMP/totals"
LOAD_OK=1
"run_$TOOL" "POST /apps/$APP/token client_credentials" POST "$TOKEN_URL" "$BODY" || { warn "token load run failed"; LOAD_OK=0; }
if [[ "$ROLES_ON" == 1 ]]; then
  "run_$TOOL" "POST /apps/$APP/token client_credentials ($ROLES_LABEL)" POST "$TOKEN_URL" "$BODY" "$BASIC_ROLES" \
    || { warn "token load run with roles failed"; LOAD_OK=0; }
fi
"run_$TOOL" "GET /apps/$APP/.well-known/openid-configuration" GET "$DISCOVERY_URL" || { warn "discovery load run failed"; LOAD_OK=0; }
"run_$TOOL" "GET /apps/$APP/jwks" GET "$JWKS_URL" || { warn "jwks load run failed"; LOAD_OK=0; }
kill -0 "$SRV_PID" 2>/dev/null || fail "latchkey died during the load test"
echo "server process after load: $(rss VmRSS) $(rss VmHWM) (peak)"
if [[ "$ROLES_ON" == 1 ]]; then
  python3 - "$TMP/totals" "$ROLE_TARGET" <<'PY' || true
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
target = float(sys.argv[2])
cc = next((float(r[3]) for r in rows if "client_credentials" in r[0] and " roles, " not in r[0]), None)
cr = next((float(r[3]) for r in rows if "client_credentials" in r[0] and " roles, " in r[0]), None)
if cc and cr is not None:
    ratio = cr / cc
    verdict = "OK" if ratio >= target else "BELOW TARGET"
    print(f"client_credentials with roles / without: {cr:.1f} / {cc:.1f} req/s = {ratio:.2f} (target >= {target:.2f}: {verdict})")
    if ratio < target:
        print(f"WARNING: client_credentials with roles is below {target * 100:.0f} % of the figure without", file=sys.stderr)
PY
fi

# ---- browser sign-in and refresh_token grant ------------------------------------------------------
if [[ "$SIGNIN" != 0 ]]; then
  code="$(api POST "/admin/v1/apps/$APP/clients" \
    "{\"name\":\"bench-spa\",\"redirect_uris\":[\"$SPA_REDIRECT\"],\"grant_types\":[\"authorization_code\",\"refresh_token\"],\"token_endpoint_auth_method\":\"none\"}")"
  [[ "$code" == 201 ]] || { cat "$TMP/resp.json" >&2 || true; echo >&2; fail "POST /admin/v1/apps/$APP/clients (public) returned $code (expected 201)"; }
  SPA_CLIENT_ID="$(json_field "$TMP/resp.json" client_id)"
  UP_ARGS=()
  if [[ "$UP_ON" == 1 ]]; then
    # The fake upstream shares the load generator's core: its work is part of every flow.
    log "starting $UP_BIN on $UP_BASE (pinned: ${GEN_PIN[*]:-no})"
    "${GEN_PIN[@]}" "$UP_BIN" "127.0.0.1:$UPSTREAM_PORT" --client-id "$UP_CLIENT_ID" \
      --client-secret "$UP_CLIENT_SECRET" >"$TMP/upstream.log" 2>&1 &
    UP_PID=$!
    up=0
    for _ in $(seq 1 100); do # 10 s
      kill -0 "$UP_PID" 2>/dev/null || upstream_fail "the fake upstream exited during start-up"
      if [[ "$(curl -s -m 1 -o "$TMP/upstream-discovery.json" -w '%{http_code}' \
        "$UP_BASE/.well-known/openid-configuration" || true)" == 200 ]]; then
        up=1; break
      fi
      sleep 0.1
    done
    [[ "$up" == 1 ]] || upstream_fail "GET $UP_BASE/.well-known/openid-configuration did not return 200 within 10 s"
    up_issuer="$(json_field "$TMP/upstream-discovery.json" issuer)"
    [[ "$up_issuer" == "$UP_BASE" ]] || upstream_fail "the fake upstream's issuer is '$up_issuer', not $UP_BASE"
    # Set before the password loads too: their login page then shows one more button.
    code="$(api PATCH "/admin/v1/apps/$APP" \
      "{\"providers\":{\"oidc\":{\"display_name\":\"Bench SSO\",\"issuer\":\"$UP_BASE\",\"client_id\":\"$UP_CLIENT_ID\",\"client_secret\":\"$UP_CLIENT_SECRET\"}}}")"
    [[ "$code" == 200 ]] || { cat "$TMP/resp.json" >&2 || true; echo >&2; fail "PATCH /admin/v1/apps/$APP (providers.oidc) returned $code (expected 200)"; }
    UP_ARGS=(--upstream "$UP_BASE" --upstream-pid "$UP_PID")
  fi
  # The admin token goes to bench_signin.py in its environment (not in its argv, which ps shows).
  ROLES_ARGS=(); SIGNIN_ADMIN_TOKEN=""
  if [[ "$ROLES_ON" == 1 ]]; then
    ROLES_ARGS=(--roles "$ROLES_CSV"); SIGNIN_ADMIN_TOKEN="$ADMIN_TOKEN"
  fi
  loads="browser sign-in and refresh_token grant"
  if [[ "$ROLES_ON" == 1 ]]; then loads="browser sign-in and refresh_token grant (without and with roles)"; fi
  if [[ "$UP_ON" == 1 ]]; then loads="${loads/ and refresh_token/, refresh_token} and upstream sign-in"; fi
  echo
  echo "==== $loads (scripts/bench_signin.py: ${SIGNIN_CONNS} browsers, ${SIGNIN_DURATION}s each, pinned=$PIN)"
  echo "sign-in row: one sample = authorize + login page + POST /login (Argon2id verify) + code exchange"
  if [[ "$UP_ON" == 1 ]]; then
    echo "upstream row: one sample = authorize + /oauth/oidc/start + fake upstream /authorize + /oauth/oidc/callback"
    echo "              (code redeemed upstream, ID token checked against its JWKS) + code exchange"
  fi
  if [[ "$ROLES_ON" == 1 ]]; then
    echo "refresh row ($ROLES_LABEL): the same chains, after the admin API granted $ROLES_CSV to every browser's user"
  fi
  printf '%-68s %12s %10s %10s %8s\n' "load" "per_s" p50_ms p99_ms errors
  signin_rc=0
  LATCHKEY_ADMIN_TOKEN="$SIGNIN_ADMIN_TOKEN" \
  timeout $(((2 + UP_ON + ROLES_ON) * SIGNIN_DURATION + 300)) "${GEN_PIN[@]}" python3 "$SIGNIN_SCRIPT" \
    --base "$BASE" --app "$APP" --client-id "$SPA_CLIENT_ID" --redirect-uri "$SPA_REDIRECT" \
    --concurrency "$SIGNIN_CONNS" --duration "$SIGNIN_DURATION" --server-pid "$SRV_PID" \
    --totals "$TMP/totals" "${UP_ARGS[@]}" "${ROLES_ARGS[@]}" || signin_rc=$?
  if [[ "$signin_rc" != 0 ]]; then
    warn "sign-in/refresh load failed (exit $signin_rc)"; LOAD_OK=0
  fi
  if [[ "$UP_ON" == 1 ]]; then
    if ! kill -0 "$UP_PID" 2>/dev/null; then
      tail -n 20 "$TMP/upstream.log" >&2 || true
      warn "the fake upstream died during the load"; LOAD_OK=0
    fi
    stop_upstream
  fi
  kill -0 "$SRV_PID" 2>/dev/null || fail "latchkey died during the sign-in/refresh load"
  echo "server process after sign-in/refresh load: $(rss VmRSS) $(rss VmHWM) (peak since start)"
  python3 - "$TMP/totals" "$ROLE_TARGET" <<'PY' || true
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
cc = next((float(r[3]) for r in rows if "client_credentials" in r[0] and " roles, " not in r[0]), None)
rt = next((float(r[3]) for r in rows if "refresh_token" in r[0] and " roles, " not in r[0]), None)
if cc and rt is not None:
    ratio = rt / cc
    verdict = "OK" if ratio > 0.5 else "BELOW TARGET"
    print(f"refresh_token / client_credentials: {rt:.1f} / {cc:.1f} req/s = {ratio:.2f} (target > 0.50: {verdict})")
    if ratio <= 0.5:
        print("WARNING: the refresh_token grant is at or below 50 % of the client_credentials figure", file=sys.stderr)
rr = next((float(r[3]) for r in rows if "refresh_token" in r[0] and " roles, " in r[0]), None)
target = float(sys.argv[2])
if rt and rr is not None:
    ratio = rr / rt
    verdict = "OK" if ratio >= target else "BELOW TARGET"
    print(f"refresh with roles / without: {rr:.1f} / {rt:.1f} req/s = {ratio:.2f} (target >= {target:.2f}: {verdict})")
    if ratio < target:
        print(f"WARNING: the refresh_token grant with roles is below {target * 100:.0f} % of the figure without", file=sys.stderr)
pw = next((float(r[3]) for r in rows if r[0].startswith("sign-in flow")), None)
up = next((float(r[3]) for r in rows if r[0].startswith("upstream sign-in")), None)
if pw and up is not None:
    ratio = up / pw
    verdict = "OK" if ratio >= 5 else "BELOW TARGET"
    print(f"upstream sign-in / password sign-in: {up:.1f} / {pw:.1f} sign-ins/s = {ratio:.2f} (target >= 5: {verdict})")
    if ratio < 5:
        print("WARNING: upstream sign-ins/s are below 5 times the password sign-ins/s", file=sys.stderr)
PY
fi
if grep -q . "$TMP/server.log"; then
  echo "server log: $(wc -l <"$TMP/server.log") line(s) at RUST_LOG=warn; first 5:"
  head -n 5 "$TMP/server.log" | cut -c1-300
fi
python3 - "$TMP/totals" "$MAX_NON2XX_PCT" <<'PY' || LOAD_OK=0
import sys
bad = False
for line in open(sys.argv[1]):
    name, total, non2xx = line.rstrip("\n").split("\t")[:3]
    total, non2xx = int(total), int(non2xx)
    if total == 0 or 100.0 * non2xx / total > float(sys.argv[2]):
        print(f"FAIL: {name}: {non2xx} of {total} responses non-2xx (limit {sys.argv[2]} %)", file=sys.stderr)
        bad = True
sys.exit(1 if bad else 0)
PY
stop_server

# ---- reference provider ------------------------------------------------------------------------
if [[ "$PEER" != 0 ]]; then
  echo
  echo "==== reference OP (panva/oidc-provider) via $(basename "$PEER_SCRIPT")"
  if [[ -f "$PEER_SCRIPT" ]]; then
    peer_rc=0
    DURATION="$DURATION" CONNS="$CONNS" TOOL="$TOOL" PIN="$PIN" WRK_THREADS="$WRK_THREADS" PORT="$PEER_PORT" \
      timeout $((3 * (DURATION + 30) + 600)) bash "$PEER_SCRIPT" | tee "$TMP/peer.txt" || peer_rc=$?
    if [[ "$peer_rc" != 0 ]]; then
      warn "reference provider benchmark failed (exit $peer_rc); continuing"
    else
      echo
      echo "==== side by side (req/s and p99 ms; ratio = Latchkey req/s / reference req/s)"
      python3 - "$TMP/totals" "$TMP/peer.txt" <<'PY' || warn "could not build the side-by-side table"
import re, sys
ours = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
ours = [o for o in ours if " roles, " not in o[0]]  # the reference has no rows with roles
row = re.compile(r"^(POST /token|GET /\.well-known/openid-configuration|GET /jwks)\b.*?\s([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)(?:\s|$)")
peer = [m for m in map(row.match, open(sys.argv[2])) if m]
print(f"{'endpoint':<50} {'latchkey':>10} {'reference':>10} {'ratio':>7} {'lk_p99':>8} {'ref_p99':>8}")
for o, p in zip(ours, peer):
    lk, ref = float(o[3]), float(p[2])
    print(f"{o[0]:<50} {lk:>10.1f} {ref:>10.1f} {lk / ref if ref else float('nan'):>6.2f}x {float(o[5]):>8.2f} {float(p[4]):>8.2f}")
PY
    fi
  else
    warn "$PEER_SCRIPT not found; skipping the reference provider"
  fi
fi

# ---- signing micro-benchmark on the server's core -----------------------------------------------
if [[ "$SIGNING" != 0 ]]; then
  echo
  echo "==== signing micro-benchmark (taskset -c 0 cargo bench -p latchkey --bench signing)"
  BENCH_PIN=(); [[ "$PIN" == 1 ]] && BENCH_PIN=(taskset -c 0)
  (cd "$REPO" && timeout "$BUILD_TIMEOUT" "${BENCH_PIN[@]}" cargo bench -q -p latchkey --bench signing 2>"$TMP/signing.err") \
    || { tail -n 30 "$TMP/signing.err" >&2; warn "signing micro-benchmark failed; continuing"; }
fi

echo
if [[ "$LOAD_OK" != 1 ]]; then
  echo "RESULT: FAIL (load run failed or more than $MAX_NON2XX_PCT % non-2xx responses)" >&2
  exit 1
fi
echo "RESULT: OK"
