-- Single-use links sent by mail (email verification, password reset, magic-link sign-in).
-- Only a SHA-256 of the token is kept; the token itself exists only in the message.
CREATE TABLE email_tokens (
    token_hash      TEXT PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('verify_email', 'password_reset', 'magic_link')),
    user_id         BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    email           TEXT NOT NULL,            -- the address the link was sent to
    auth_request_id TEXT,                     -- magic link: the authorization request it completes
    created_at      TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    used_at         TEXT
);
CREATE INDEX email_tokens_user ON email_tokens(user_id, kind);
CREATE INDEX email_tokens_expires ON email_tokens(expires_at);

-- Outgoing mail, written in the same transaction as the token it carries and delivered by a
-- background sender. The message (which holds the link) is sealed with the master key and
-- dropped once delivered or given up.
CREATE TABLE outbox (
    id               BLOB PRIMARY KEY,
    kind             TEXT NOT NULL,
    user_id          BLOB REFERENCES users(id) ON DELETE CASCADE,
    recipient        TEXT NOT NULL,
    message_sealed   TEXT,
    status           TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed', 'expired')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    lease_until      TEXT,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    expires_at       TEXT NOT NULL,   -- the link inside is useless after this
    finished_at      TEXT
);
CREATE INDEX outbox_due ON outbox(status, next_attempt_at);
CREATE INDEX outbox_user ON outbox(user_id);
