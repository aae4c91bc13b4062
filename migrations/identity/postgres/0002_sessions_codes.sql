-- Browser sessions, pending authorization requests, authorization codes, refresh tokens.
CREATE TABLE sessions (
    id            text PRIMARY KEY,          -- the `sid` claim; public
    token_hash    text NOT NULL,             -- SHA-256 of the cookie secret
    user_id       uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    amr           jsonb NOT NULL,
    auth_time     timestamptz NOT NULL,
    created_at    timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    ip            text,
    user_agent    text,
    revoked_at    timestamptz
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_expires ON sessions(expires_at);

CREATE TABLE auth_requests (
    id              text PRIMARY KEY,
    client_id       text NOT NULL,
    redirect_uri    text NOT NULL,
    scope           text NOT NULL,
    state           text,
    nonce           text,
    code_challenge  text,
    prompt          text,
    max_age         bigint,
    login_hint      text,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL
);
CREATE INDEX auth_requests_expires ON auth_requests(expires_at);

CREATE TABLE authorization_codes (
    code_hash       text PRIMARY KEY,
    client_id       text NOT NULL,
    redirect_uri    text NOT NULL,
    user_id         uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    session_id      text NOT NULL,
    scope           text NOT NULL,
    nonce           text,
    code_challenge  text,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz,
    access_jti      text,
    refresh_family  text
);
CREATE INDEX authorization_codes_expires ON authorization_codes(expires_at);

-- Opaque refresh tokens, stored hashed, rotated on every use. A family is every token
-- descended from one authorization; presenting a rotated token revokes the family.
CREATE TABLE refresh_tokens (
    token_hash        text PRIMARY KEY,
    family_id         text NOT NULL,
    client_id         text NOT NULL,
    user_id           uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    session_id        text NOT NULL,
    scope             text NOT NULL,
    created_at        timestamptz NOT NULL,
    expires_at        timestamptz NOT NULL,
    rotated_at        timestamptz,
    successor_sealed  text,   -- the successor, sealed, kept only for the race grace window
    revoked_at        timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens(family_id);
CREATE INDEX refresh_tokens_session ON refresh_tokens(session_id);
CREATE INDEX refresh_tokens_expires ON refresh_tokens(expires_at);
