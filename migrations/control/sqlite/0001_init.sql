-- Control plane: configuration only, never end-user data.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE apps (
    id               BLOB PRIMARY KEY,
    slug             TEXT NOT NULL UNIQUE,
    display_name     TEXT NOT NULL,
    status           TEXT NOT NULL,
    failure_reason   TEXT,
    database_url     TEXT,            -- sealed with the master key
    database_schema  TEXT,
    signing_alg      TEXT NOT NULL,
    branding         TEXT NOT NULL,
    policy           TEXT NOT NULL,
    smtp             TEXT,
    smtp_password    TEXT,            -- sealed with the master key
    tokens           TEXT NOT NULL,
    config_version   INTEGER NOT NULL DEFAULT 1,
    lease_until      TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);

CREATE TABLE clients (
    id                          BLOB PRIMARY KEY,
    app_id                      BLOB NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    client_id                   TEXT NOT NULL UNIQUE,
    name                        TEXT NOT NULL,
    redirect_uris               TEXT NOT NULL,
    post_logout_redirect_uris   TEXT NOT NULL,
    grant_types                 TEXT NOT NULL,
    token_endpoint_auth_method  TEXT NOT NULL,
    scopes                      TEXT NOT NULL,
    secret_hash                 TEXT,
    created_at                  TEXT NOT NULL,
    updated_at                  TEXT NOT NULL
);
CREATE INDEX clients_app_id ON clients(app_id);

CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    app_id       BLOB NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    alg          TEXT NOT NULL,
    state        TEXT NOT NULL,
    private_key  TEXT NOT NULL,       -- sealed with the master key
    public_jwk   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    activated_at TEXT,
    retire_at    TEXT
);
CREATE INDEX signing_keys_app_id ON signing_keys(app_id);

CREATE TABLE admin_tokens (
    id          BLOB PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);

-- Operator actions. Never holds end-user identity data.
CREATE TABLE operator_audit (
    id        BLOB PRIMARY KEY,
    time      TEXT NOT NULL,
    action    TEXT NOT NULL,
    app_slug  TEXT,
    target    TEXT,
    data      TEXT NOT NULL
);
CREATE INDEX operator_audit_time ON operator_audit(time);
