-- One app's end users. This database holds exactly one app.
CREATE TABLE users (
    id                BLOB PRIMARY KEY,
    email             TEXT NOT NULL,
    email_normalized  TEXT NOT NULL UNIQUE,
    email_verified    INTEGER NOT NULL DEFAULT 0,
    status            TEXT NOT NULL DEFAULT 'active'
                      CHECK (status IN ('active', 'pending_approval', 'disabled')),
    name              TEXT,
    profile           TEXT NOT NULL DEFAULT '{}',
    password_hash     TEXT,
    token_version     INTEGER NOT NULL DEFAULT 0,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);

CREATE TABLE audit_events (
    id          BLOB PRIMARY KEY,
    time        TEXT NOT NULL,
    type        TEXT NOT NULL,
    user_id     BLOB,
    client_id   TEXT,
    ip          TEXT,
    user_agent  TEXT,
    data        TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_time ON audit_events(time);
CREATE INDEX audit_events_user ON audit_events(user_id, time);

-- Access tokens (by jti) revoked before their expiry; purged once expired.
CREATE TABLE revoked_tokens (
    jti         TEXT PRIMARY KEY,
    expires_at  TEXT NOT NULL
);
