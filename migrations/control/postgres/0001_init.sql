-- Control plane: configuration only, never end-user data.
CREATE TABLE meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE apps (
    id               uuid PRIMARY KEY,
    slug             text NOT NULL UNIQUE,
    display_name     text NOT NULL,
    status           text NOT NULL,
    failure_reason   text,
    database_url     text,            -- sealed with the master key
    database_schema  text,
    signing_alg      text NOT NULL,
    branding         jsonb NOT NULL,
    policy           jsonb NOT NULL,
    smtp             jsonb,
    smtp_password    text,            -- sealed with the master key
    tokens           jsonb NOT NULL,
    config_version   bigint NOT NULL DEFAULT 1,
    lease_until      timestamptz,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);

CREATE TABLE clients (
    id                          uuid PRIMARY KEY,
    app_id                      uuid NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    client_id                   text NOT NULL UNIQUE,
    name                        text NOT NULL,
    redirect_uris               jsonb NOT NULL,
    post_logout_redirect_uris   jsonb NOT NULL,
    grant_types                 jsonb NOT NULL,
    token_endpoint_auth_method  text NOT NULL,
    scopes                      jsonb NOT NULL,
    secret_hash                 text,
    created_at                  timestamptz NOT NULL,
    updated_at                  timestamptz NOT NULL
);
CREATE INDEX clients_app_id ON clients(app_id);

CREATE TABLE signing_keys (
    kid          text PRIMARY KEY,
    app_id       uuid NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    alg          text NOT NULL,
    state        text NOT NULL,
    private_key  text NOT NULL,       -- sealed with the master key
    public_jwk   jsonb NOT NULL,
    created_at   timestamptz NOT NULL,
    activated_at timestamptz,
    retire_at    timestamptz
);
CREATE INDEX signing_keys_app_id ON signing_keys(app_id);

CREATE TABLE admin_tokens (
    id          uuid PRIMARY KEY,
    token_hash  text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL
);

-- Operator actions. Never holds end-user identity data.
CREATE TABLE operator_audit (
    id        uuid PRIMARY KEY,
    time      timestamptz NOT NULL,
    action    text NOT NULL,
    app_slug  text,
    target    text,
    data      jsonb NOT NULL
);
CREATE INDEX operator_audit_time ON operator_audit(time);
