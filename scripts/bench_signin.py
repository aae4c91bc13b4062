#!/usr/bin/env python3
"""Load generator for Latchkey's browser sign-in and refresh-token grant (used by bench.sh).

Standard library only. Each worker thread is one "browser": its own keep-alive HTTP/1.1
connection to Latchkey (and, with --upstream, a second one to the fake upstream provider) and
its own cookies, each sent only under its Path (RFC 6265 §5.1.4). Phases:

  setup    every worker signs up its own user (bench-<i>@example.com) through /signup, so the
           sign-in phase measures sign-ins of existing accounts; the refresh token of that
           sign-up starts the worker's refresh chain.
  signin   for DURATION seconds, every worker repeats a complete password sign-in with a fresh
           cookie jar (no session cookie, so no single sign-on shortcut):
             GET  /authorize (code, PKCE S256, openid offline_access, state, nonce) -> 303
             GET  /login?request=ID                  -> 200, hidden csrf + lk_csrf cookie
             POST /login (csrf, request, email, password) -> 303 redirect_uri?code&state&iss
             POST /token authorization_code (code, redirect_uri, client_id, code_verifier)
           One sample = the whole flow. Each flow's refresh token replaces the worker's chain.
  refresh  for DURATION seconds, every worker loops POST /token grant_type=refresh_token with
           the refresh token of its previous response (rotation: each answer carries the next).
           One sample = one request.
  refresh-roles
           only with --roles R1,R2,... (issue 13: role resolution must not cost a store round
           trip per permission), right after the refresh phase: through the admin API (Bearer
           token from $LATCHKEY_ADMIN_TOKEN, never printed), each worker's user is found with
             GET  /admin/v1/apps/APP/users?email=bench-<i>@example.com&limit=200
           and given those roles with
             PUT  /admin/v1/apps/APP/users/ID/roles {"roles": [R1, R2, ...]}
           then every worker refreshes once and checks that the new access token (a JWT) carries
           exactly those roles and their permissions (a setup step: neither timed nor counted);
           then the refresh phase again with the same parameters, each worker continuing its
           chain, as row "POST /apps/APP/token refresh_token (N roles, M permissions) c=C" with
           N and M as the tokens carry them.
  upstream only with --upstream URL (the fake upstream, crates/latchkey/examples/fake_upstream.rs,
           set up as the app's `oidc` provider): for DURATION seconds, every worker repeats a
           complete sign-in through the upstream with a fresh cookie jar, as
           bench-up-<i>@example.com (the first flow creates that account, later ones sign in):
             GET  /authorize (code, PKCE S256, openid, state, nonce, login_hint) -> 303 /login?request=ID
             GET  /oauth/oidc/start?request=ID     -> 303 upstream /authorize, lk_upstream cookie
                  (the login page's button; the page itself is not fetched) (Path=/apps/APP/oauth)
             GET  upstream /authorize              -> 302 /oauth/oidc/callback?code&state
             GET  /oauth/oidc/callback (lk_upstream) -> 303 redirect_uri?code&state&iss, lk_session
                  (Latchkey redeems the code upstream and checks the ID token against its JWKS)
             POST /token authorization_code (code, redirect_uri, client_id, code_verifier)
           One sample = the whole flow.

The generator reports how much of its (pinned) core it used, and warns above 85 %, so a
figure limited by Python rather than by the server is visible. With --upstream-pid, the
upstream phase also reports the fake upstream's share (it runs on the same core), and the
warning is about the sum.

A flow or request counts as an error unless every step answered as expected (status, Location,
state, tokens). With --server-pid, the server's VmRSS is sampled every 100 ms and the peak of
each phase is reported.

Prints one table row per phase ("name req/s p50_ms p99_ms errors"), the same layout as bench.sh,
and with --totals appends "name<TAB>total<TAB>errors<TAB>req/s<TAB>p50<TAB>p99" to that file.
Exit status 1 if setup (with --roles: the roles grant and its check) fails or a phase completes
nothing.
"""

import argparse
import base64
import hashlib
import json
import os
import re
import secrets
import socket
import sys
import threading
import time
import urllib.parse

CSRF_RE = re.compile(rb'name="csrf" value="([^"]+)"')
UPSTREAM_KIND = "oidc"  # the app's provider entry that bench.sh points at the fake upstream
ADMIN_TOKEN_ENV = "LATCHKEY_ADMIN_TOKEN"  # the admin API token, for --roles (never printed)


class HttpError(Exception):
    pass


class Conn:
    """A minimal keep-alive HTTP/1.1 client (Content-Length and chunked bodies)."""

    def __init__(self, host, port, timeout):
        self.host, self.port, self.timeout = host, port, timeout
        self.sock = None
        self.buf = b""
        self.host_header = f"{host}:{port}".encode()

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock, self.buf = None, b""

    def _connect(self):
        s = socket.create_connection((self.host, self.port), timeout=self.timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.buf = s, b""

    def request(self, method, target, headers=(), body=b""):
        """Returns (status, {lower-case name: [values]}, body bytes)."""
        head = [b"%s %s HTTP/1.1" % (method.encode(), target.encode()), b"Host: " + self.host_header]
        for k, v in headers:
            head.append(k.encode() + b": " + v.encode())
        if body or method == "POST":
            head.append(b"Content-Length: %d" % len(body))
        data = b"\r\n".join(head) + b"\r\n\r\n" + body
        reused = self.sock is not None
        for attempt in (0, 1):
            if self.sock is None:
                self._connect()
            try:
                self.sock.sendall(data)
                return self._response(method)
            except (OSError, HttpError):
                self.close()
                # A kept-alive connection the server closed meanwhile: retry once, fresh.
                if attempt == 0 and reused:
                    continue
                raise
        raise HttpError("unreachable")

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise HttpError("connection closed")
        self.buf += chunk

    def _line_block(self, sep):
        while True:
            i = self.buf.find(sep)
            if i >= 0:
                out, self.buf = self.buf[:i], self.buf[i + len(sep):]
                return out
            self._fill()

    def _exactly(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _response(self, method):
        head = self._line_block(b"\r\n\r\n").split(b"\r\n")
        parts = head[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise HttpError(f"bad status line {head[0][:80]!r}")
        status = int(parts[1])
        hdrs = {}
        for line in head[1:]:
            k, _, v = line.partition(b":")
            hdrs.setdefault(k.strip().lower().decode("latin-1"), []).append(v.strip().decode("latin-1"))
        body = b""
        if method != "HEAD" and status not in (204, 304) and status >= 200:
            if "chunked" in ",".join(hdrs.get("transfer-encoding", [])).lower():
                chunks = []
                while True:
                    size = int(self._line_block(b"\r\n").split(b";")[0], 16)
                    if size == 0:
                        self._line_block(b"\r\n")  # no trailers expected
                        break
                    chunks.append(self._exactly(size))
                    self._exactly(2)
                body = b"".join(chunks)
            elif "content-length" in hdrs:
                body = self._exactly(int(hdrs["content-length"][0]))
            else:  # read to close
                try:
                    while True:
                        self._fill()
                except HttpError:
                    pass
                body, self.buf = self.buf, b""
                self.close()
        if "close" in ",".join(hdrs.get("connection", [])).lower():
            self.close()
        return status, hdrs, body


def form(pairs):
    return urllib.parse.urlencode(pairs).encode()


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def path_matches(path, cookie_path):
    """Whether a cookie with Path=cookie_path goes with a request for `path` (RFC 6265 §5.1.4)."""
    if path == cookie_path:
        return True
    return path.startswith(cookie_path) and (cookie_path.endswith("/") or path[len(cookie_path)] == "/")


class Browser:
    """One worker: connection(s), cookies, user."""

    def __init__(self, args, index):
        u = urllib.parse.urlsplit(args.base)
        self.conn = Conn(u.hostname, u.port or 80, args.timeout)
        self.args = args
        self.issuer_path = f"/apps/{args.app}"
        self.email = f"bench-{index}@example.com"
        self.cookies = {}  # (name, path) -> value
        self.refresh_token = None
        self.up_conn = None
        if args.upstream:
            up = urllib.parse.urlsplit(args.upstream)
            self.up_conn = Conn(up.hostname, up.port or 80, args.timeout)
            self.up_netloc = up.netloc
            self.up_email = f"bench-up-{index}@example.com"
            self.oauth_path = f"{self.issuer_path}/oauth"
            self.callback = f"{args.base.rstrip('/')}{self.oauth_path}/{UPSTREAM_KIND}/callback?"

    def close(self):
        self.conn.close()
        if self.up_conn is not None:
            self.up_conn.close()

    def call(self, method, target, body=None, ctype="application/x-www-form-urlencoded"):
        headers = [("User-Agent", "latchkey-bench")]
        path = target.split("?", 1)[0]
        sent = sorted(((p, k, v) for (k, p), v in self.cookies.items() if path_matches(path, p)),
                      key=lambda c: -len(c[0]))  # longer paths first (RFC 6265 §5.4)
        if sent:
            headers.append(("Cookie", "; ".join(f"{k}={v}" for _, k, v in sent)))
        if body is not None:
            headers.append(("Content-Type", ctype))
        status, hdrs, data = self.conn.request(method, target, headers, body or b"")
        for sc in hdrs.get("set-cookie", []):
            self.keep_cookie(sc, path)
        return status, hdrs, data

    def keep_cookie(self, set_cookie, request_path):
        """Stores (or, when empty or Max-Age<=0, removes) the cookie of one Set-Cookie header."""
        pair, *attrs = set_cookie.split(";")
        name, _, value = pair.partition("=")
        name, value = name.strip(), value.strip()
        path, gone = None, not value
        for attr in attrs:
            k, _, v = attr.strip().partition("=")
            k, v = k.lower(), v.strip()
            if k == "path" and v.startswith("/"):
                path = v
            elif k == "max-age" and v.lstrip("-").isdigit() and int(v) <= 0:
                gone = True
        if path is None:  # the default path (RFC 6265 §5.1.4)
            path = request_path[:request_path.rfind("/")] or "/"
        if gone:
            self.cookies.pop((name, path), None)
        else:
            self.cookies[(name, path)] = value

    def has_cookie(self, name, path=None):
        return any(k == name and (path is None or p == path) for k, p in self.cookies)

    def path_of(self, location):
        """Location (absolute or absolute-path) -> request target on our server."""
        u = urllib.parse.urlsplit(location)
        return u.path + (f"?{u.query}" if u.query else "")

    def authorize(self, scope, **extra):
        """GET /authorize (code, PKCE S256) as a fresh browser (no session, so no single sign-on
        shortcut). Returns (login page target, request id, state, code_verifier)."""
        a = self.args
        self.cookies.clear()
        verifier = b64url(secrets.token_bytes(32))
        challenge = b64url(hashlib.sha256(verifier.encode()).digest())
        state = secrets.token_urlsafe(12)
        q = urllib.parse.urlencode({
            "response_type": "code", "client_id": a.client_id, "redirect_uri": a.redirect_uri,
            "scope": scope, "state": state, "nonce": secrets.token_urlsafe(12),
            "code_challenge": challenge, "code_challenge_method": "S256", **extra,
        })
        s, h, body = self.call("GET", f"{self.issuer_path}/authorize?{q}")
        if s != 303 or "location" not in h:
            raise HttpError(f"authorize: {s} {body[:200]!r}")
        login = self.path_of(h["location"][0])
        if "request=" not in login:
            raise HttpError(f"authorize redirected to {login[:120]!r}, not the login page")
        request_id = urllib.parse.parse_qs(urllib.parse.urlsplit(login).query).get("request", [""])[0]
        return login, request_id, state, verifier

    def back_to_client(self, step, h, state):
        """The code of a 303 back to the client's redirect_uri with our state."""
        back = urllib.parse.urlsplit(h["location"][0])
        params = urllib.parse.parse_qs(back.query)
        if not h["location"][0].startswith(self.args.redirect_uri) or params.get("state") != [state] or "code" not in params:
            raise HttpError(f"{step} redirected to {h['location'][0][:160]!r}")
        return params["code"][0]

    def redeem(self, code, verifier):
        """POST /token authorization_code; returns the token response (access and ID token checked)."""
        a = self.args
        s, h, body = self.call("POST", f"{self.issuer_path}/token", form([
            ("grant_type", "authorization_code"), ("code", code),
            ("redirect_uri", a.redirect_uri), ("client_id", a.client_id), ("code_verifier", verifier),
        ]))
        tok = json.loads(body) if s == 200 else {}
        if s != 200 or not tok.get("access_token") or not tok.get("id_token"):
            raise HttpError(f"code exchange: {s} {body[:200]!r}")
        return tok

    def sign_in(self, page):
        """One complete sign-in through `page` ("login" or "signup"); returns the token response."""
        a = self.args
        login, request_id, state, verifier = self.authorize("openid offline_access")
        if page == "signup":
            login = login.replace("/login?", "/signup?", 1)
        s, h, body = self.call("GET", login)
        m = CSRF_RE.search(body)
        if s != 200 or not m:
            raise HttpError(f"{page} page: {s}, csrf field {'found' if m else 'missing'}")
        s, h, body = self.call("POST", login, form([
            ("csrf", m.group(1).decode()), ("request", request_id),
            ("email", self.email), ("password", a.password),
        ]))
        if s != 303 or "location" not in h:
            raise HttpError(f"POST {page}: {s} {body[:200]!r}")
        code = self.back_to_client(f"POST {page}", h, state)
        tok = self.redeem(code, verifier)
        if not tok.get("refresh_token"):
            raise HttpError(f"code exchange: no refresh_token in {sorted(tok)}")
        self.refresh_token = tok["refresh_token"]
        return tok

    def upstream_sign_in(self):
        """One complete sign-in through the fake upstream; returns the token response."""
        _, request_id, state, verifier = self.authorize("openid", login_hint=self.up_email)
        start = f"{self.oauth_path}/{UPSTREAM_KIND}/start?" + urllib.parse.urlencode({"request": request_id})
        s, h, body = self.call("GET", start)
        if s != 303 or "location" not in h:
            raise HttpError(f"oauth start: {s} {body[:200]!r}")
        to_upstream = urllib.parse.urlsplit(h["location"][0])
        if to_upstream.netloc != self.up_netloc:
            raise HttpError(f"oauth start redirected to {h['location'][0][:160]!r}, not the upstream")
        if not self.has_cookie("lk_upstream", self.oauth_path):
            raise HttpError(f"oauth start set no lk_upstream cookie for {self.oauth_path}: {h.get('set-cookie')}")
        # The upstream is another origin: none of Latchkey's cookies go there (it sets none).
        s, h, body = self.up_conn.request("GET", f"{to_upstream.path}?{to_upstream.query}",
                                          [("User-Agent", "latchkey-bench")])
        if s != 302 or "location" not in h or not h["location"][0].startswith(self.callback):
            raise HttpError(f"upstream authorize: {s} {h.get('location', [''])[0][:160]!r} {body[:200]!r}")
        s, h, body = self.call("GET", self.path_of(h["location"][0]))
        if s != 303 or "location" not in h:
            raise HttpError(f"oauth callback: {s} {body[:200]!r}")
        code = self.back_to_client("oauth callback", h, state)
        if not self.has_cookie("lk_session") or self.has_cookie("lk_upstream"):
            raise HttpError(f"oauth callback: cookies now {sorted(self.cookies)}")
        return self.redeem(code, verifier)

    def refresh(self):
        s, _, body = self.call("POST", f"{self.issuer_path}/token", form([
            ("grant_type", "refresh_token"), ("refresh_token", self.refresh_token),
            ("client_id", self.args.client_id),
        ]))
        tok = json.loads(body) if s == 200 else {}
        new = tok.get("refresh_token")
        if s != 200 or not tok.get("access_token") or not new or new == self.refresh_token:
            raise HttpError(f"refresh: {s} {body[:200]!r}")
        self.refresh_token = new
        return tok


def jwt_claims(token):
    """The payload of a JWS compact token, unverified (only its claims matter here)."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3:
        raise HttpError("the access token is not a JWT")
    return json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))


def grant_roles(args, admin_token, roles, browsers):
    """Gives every browser's user exactly `roles` through the admin API, then refreshes each
    chain once and checks the new access token carries them. Returns "N roles, M permissions"
    as the tokens carry them. Error messages never contain the admin token."""
    u = urllib.parse.urlsplit(args.base)
    admin = Conn(u.hostname, u.port or 80, args.timeout)
    headers = [("User-Agent", "latchkey-bench"), ("Accept", "application/json"),
               ("Authorization", f"Bearer {admin_token}")]
    app_path = f"/admin/v1/apps/{urllib.parse.quote(args.app, safe='')}"
    body = json.dumps({"roles": roles}).encode()
    try:
        for b in browsers:
            target = f"{app_path}/users?" + urllib.parse.urlencode({"email": b.email, "limit": 200})
            s, _, data = admin.request("GET", target, headers)
            if s != 200:
                raise HttpError(f"GET {target}: {s} {data[:200]!r}")
            ids = [i.get("id") for i in json.loads(data).get("items", [])
                   if str(i.get("email", "")).lower() == b.email]
            if len(ids) != 1:
                raise HttpError(f"GET {target}: {len(ids)} users with the email {b.email}")
            target = f"{app_path}/users/{ids[0]}/roles"
            s, _, data = admin.request("PUT", target, headers + [("Content-Type", "application/json")], body)
            if s != 200:
                raise HttpError(f"PUT {target}: {s} {data[:200]!r}")
    finally:
        admin.close()
    held = set()
    for b in browsers:
        claims = jwt_claims(b.refresh().get("access_token"))
        got, perms = claims.get("roles"), claims.get("permissions")
        if claims.get("permissions_omitted"):
            raise HttpError(f"{b.email}: the access token leaves its permissions out (permissions_omitted)")
        if not isinstance(got, list) or set(got) != set(roles) or not isinstance(perms, list) or not perms:
            n = len(perms) if isinstance(perms, list) else perms
            raise HttpError(f"{b.email}: the access token carries roles={got!r} and {n!r} permissions "
                            f"(expected the roles {sorted(roles)} and their permissions)")
        held.add((len(set(got)), len(set(perms))))
    if len(held) != 1:
        raise HttpError(f"the users' access tokens differ in (roles, permissions): {sorted(held)}")
    n_roles, n_perms = held.pop()
    return f"{n_roles} roles, {n_perms} permissions"


class RssSampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.path = f"/proc/{pid}/status"
        self.peak = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def read(self):
        try:
            with open(self.path) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def reset(self):
        with self.lock:
            self.peak = self.read()

    def run(self):
        while not self.stopping.wait(0.1):
            v = self.read()
            with self.lock:
                self.peak = max(self.peak, v)


def percentile(sorted_vals, p):
    if not sorted_vals:
        return 0.0
    k = max(0, min(len(sorted_vals) - 1, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def cpu_seconds(pid):
    """User + system CPU time of process `pid` so far (None if unreadable)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def run_phase(browsers, duration, step):
    """Every browser runs `step` until the deadline; returns (latencies, errors, elapsed, first errors)."""
    lat = [[] for _ in browsers]
    errs = [0] * len(browsers)
    messages = []
    start = time.perf_counter()
    deadline = start + duration

    def worker(i, b):
        while True:
            t0 = time.perf_counter()
            if t0 >= deadline:
                return
            try:
                step(b)
                lat[i].append(time.perf_counter() - t0)
            except Exception as e:  # noqa: BLE001 - every failure is counted and reported
                errs[i] += 1
                if len(messages) < 5:
                    messages.append(f"{type(e).__name__}: {e}")
                b.close()
                time.sleep(0.05)

    threads = [threading.Thread(target=worker, args=(i, b), daemon=True) for i, b in enumerate(browsers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return sorted(x for l in lat for x in l), sum(errs), elapsed, messages


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="http://127.0.0.1:PORT")
    ap.add_argument("--app", required=True)
    ap.add_argument("--client-id", required=True, help="public client: authorization_code + refresh_token")
    ap.add_argument("--redirect-uri", required=True)
    ap.add_argument("--password", default="bench password 1234")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--phases", default="signin,refresh",
                    help="comma-separated; --upstream appends upstream, --roles inserts "
                         "refresh-roles after refresh")
    ap.add_argument("--upstream", metavar="URL",
                    help="the fake upstream (http://127.0.0.1:PORT), the app's oidc provider: "
                         "adds the upstream phase")
    ap.add_argument("--upstream-pid", type=int, help="the fake upstream's pid, for its CPU share")
    ap.add_argument("--roles", metavar="R1,R2,...",
                    help="existing app roles: after the refresh phase, grant them to every worker's "
                         f"user through the admin API (Bearer token from ${ADMIN_TOKEN_ENV}) and run "
                         "the refresh phase again (refresh-roles)")
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("--server-pid", type=int)
    ap.add_argument("--totals", help="append result rows to this file")
    a = ap.parse_args()
    phases = [p.strip() for p in a.phases.split(",") if p.strip()]
    if a.upstream and "upstream" not in phases:
        phases.append("upstream")
    if "upstream" in phases and not a.upstream:
        ap.error("the upstream phase needs --upstream URL")
    roles = [r.strip() for r in (a.roles or "").split(",") if r.strip()]
    if a.roles is not None and not roles:
        ap.error("--roles needs at least one role name")
    if roles and "refresh-roles" not in phases:
        if "refresh" not in phases:
            ap.error("--roles needs the refresh phase")
        phases.insert(phases.index("refresh") + 1, "refresh-roles")
    if "refresh-roles" in phases and not roles:
        ap.error("the refresh-roles phase needs --roles R1,R2,...")
    admin_token = os.environ.get(ADMIN_TOKEN_ENV, "")
    if roles and not admin_token:
        ap.error(f"--roles needs the admin API token in ${ADMIN_TOKEN_ENV}")
    unknown = [p for p in phases if p not in ("signin", "refresh", "refresh-roles", "upstream")]
    if unknown:
        ap.error(f"unknown phase(s): {', '.join(unknown)}")

    browsers = [Browser(a, i) for i in range(a.concurrency)]
    sampler = None
    if a.server_pid:
        sampler = RssSampler(a.server_pid)
        sampler.start()

    # Setup: one sign-up per worker, in parallel (Argon2id bounds it, not Python).
    failures = []

    def setup(b):
        try:
            b.sign_in("signup")
        except Exception as e:  # noqa: BLE001
            failures.append(f"{b.email}: {type(e).__name__}: {e}")

    t0 = time.perf_counter()
    ts = [threading.Thread(target=setup, args=(b,)) for b in browsers]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if failures:
        print("setup failed (sign-up through /signup):", *failures[:5], sep="\n  ", file=sys.stderr)
        return 1
    print(f"setup: {len(browsers)} users signed up in {time.perf_counter() - t0:.1f} s "
          f"(each one complete sign-up flow)", file=sys.stderr)

    steps = {
        "signin": (f"sign-in flow (authorize->login->code->token) c={a.concurrency}",
                   lambda b: b.sign_in("login")),
        "refresh": (f"POST /apps/{a.app}/token refresh_token c={a.concurrency}",
                    lambda b: b.refresh()),
        "refresh-roles": (None, lambda b: b.refresh()),  # named once the tokens show the roles
        "upstream": (f"upstream sign-in (authorize->upstream->token) c={a.concurrency}",
                     lambda b: b.upstream_sign_in()),
    }
    rc = 0
    for phase in phases:
        name, step = steps[phase]
        if phase == "refresh-roles":
            t0 = time.perf_counter()
            try:
                held = grant_roles(a, admin_token, roles, browsers)
            except Exception as e:  # noqa: BLE001
                print(f"roles setup failed (admin API grant, then one refresh per user): "
                      f"{type(e).__name__}: {str(e)[:300]}", file=sys.stderr)
                rc = 1
                continue
            print(f"roles: {','.join(roles)} granted to {len(browsers)} users in "
                  f"{time.perf_counter() - t0:.1f} s; their access tokens carry {held}", file=sys.stderr)
            name = f"POST /apps/{a.app}/token refresh_token ({held}) c={a.concurrency}"
        if sampler:
            sampler.reset()
        cpu0 = time.process_time()
        up_pid = a.upstream_pid if phase == "upstream" else None
        up0 = cpu_seconds(up_pid) if up_pid else None
        lat, errs, elapsed, messages = run_phase(browsers, a.duration, step)
        gen_cpu = 100.0 * (time.process_time() - cpu0) / elapsed if elapsed > 0 else 0.0
        up1 = cpu_seconds(up_pid) if up0 is not None else None
        up_cpu = 100.0 * (up1 - up0) / elapsed if up1 is not None and elapsed > 0 else None
        n = len(lat)
        rate = n / elapsed if elapsed > 0 else 0.0
        p50, p99 = percentile(lat, 50) * 1e3, percentile(lat, 99) * 1e3
        peak = f"server peak VmRSS {sampler.peak} kB, " if sampler else ""
        fake = f", fake upstream {up_cpu:.0f} % on the same core" if up_cpu is not None else ""
        print(f"{name:<68} {rate:>12.1f} {p50:>10.2f} {p99:>10.2f} {errs:>8}   "
              f"({peak}load generator {gen_cpu:.0f} % of a core{fake})", flush=True)
        if gen_cpu + (up_cpu or 0) > 85:
            who = "the load generator" + (" and the fake upstream" if up_cpu is not None else "")
            print(f"WARNING: {phase}: {who} used {gen_cpu + (up_cpu or 0):.0f} % of its core; "
                  "the figure may be a lower bound for the server", file=sys.stderr)
        for m in messages:
            print(f"  error: {m[:300]}", file=sys.stderr)
        if a.totals:
            with open(a.totals, "a") as f:
                f.write(f"{name}\t{n + errs}\t{errs}\t{rate:.1f}\t{p50:.2f}\t{p99:.2f}\n")
        if n == 0:
            rc = 1
    for b in browsers:
        b.close()
    if sampler:
        sampler.stopping.set()
    return rc


if __name__ == "__main__":
    sys.exit(main())
