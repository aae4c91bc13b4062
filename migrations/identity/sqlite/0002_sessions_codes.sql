-- Browser sessions, pending authorization requests, authorization codes, refresh tokens.
CREATE TABLE sessions (
    id            TEXT PRIMARY KEY,          -- the `sid` claim; public
    token_hash    TEXT NOT NULL,             -- SHA-256 of the cookie secret
    user_id       BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    amr           TEXT NOT NULL,
    auth_time     TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    ip            TEXT,
    user_agent    TEXT,
    revoked_at    TEXT
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_expires ON sessions(expires_at);

CREATE TABLE auth_requests (
    id              TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL,
    redirect_uri    TEXT NOT NULL,
    scope           TEXT NOT NULL,
    state           TEXT,
    nonce           TEXT,
    code_challenge  TEXT,
    prompt          TEXT,
    max_age         INTEGER,
    login_hint      TEXT,
    created_at      TEXT NOT NULL,
    expires_at      TEXT NOT NULL
);
CREATE INDEX auth_requests_expires ON auth_requests(expires_at);

CREATE TABLE authorization_codes (
    code_hash       TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL,
    redirect_uri    TEXT NOT NULL,
    user_id         BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    session_id      TEXT NOT NULL,
    scope           TEXT NOT NULL,
    nonce           TEXT,
    code_challenge  TEXT,
    created_at      TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    used_at         TEXT,
    access_jti      TEXT,
    refresh_family  TEXT
);
CREATE INDEX authorization_codes_expires ON authorization_codes(expires_at);

-- Opaque refresh tokens, stored hashed, rotated on every use. A family is every token
-- descended from one authorization; presenting a rotated token revokes the family.
CREATE TABLE refresh_tokens (
    token_hash        TEXT PRIMARY KEY,
    family_id         TEXT NOT NULL,
    client_id         TEXT NOT NULL,
    user_id           BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    session_id        TEXT NOT NULL,
    scope             TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    expires_at        TEXT NOT NULL,
    rotated_at        TEXT,
    successor_sealed  TEXT,   -- the successor, sealed, kept only for the race grace window
    revoked_at        TEXT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens(family_id);
CREATE INDEX refresh_tokens_session ON refresh_tokens(session_id);
CREATE INDEX refresh_tokens_expires ON refresh_tokens(expires_at);
