-- One app's end users. This schema holds exactly one app.
CREATE TABLE users (
    id                uuid PRIMARY KEY,
    email             text NOT NULL,
    email_normalized  text NOT NULL UNIQUE,
    email_verified    boolean NOT NULL DEFAULT false,
    status            text NOT NULL DEFAULT 'active'
                      CHECK (status IN ('active', 'pending_approval', 'disabled')),
    name              text,
    profile           jsonb NOT NULL DEFAULT '{}',
    password_hash     text,
    token_version     bigint NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);

CREATE TABLE audit_events (
    id          uuid PRIMARY KEY,
    time        timestamptz NOT NULL,
    type        text NOT NULL,
    user_id     uuid,
    client_id   text,
    ip          text,
    user_agent  text,
    data        jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_time ON audit_events(time);
CREATE INDEX audit_events_user ON audit_events(user_id, time);

-- Access tokens (by jti) revoked before their expiry; purged once expired.
CREATE TABLE revoked_tokens (
    jti         text PRIMARY KEY,
    expires_at  timestamptz NOT NULL
);
