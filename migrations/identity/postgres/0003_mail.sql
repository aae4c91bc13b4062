-- Single-use links sent by mail (email verification, password reset, magic-link sign-in).
-- Only a SHA-256 of the token is kept; the token itself exists only in the message.
CREATE TABLE email_tokens (
    token_hash      text PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('verify_email', 'password_reset', 'magic_link')),
    user_id         uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    email           text NOT NULL,            -- the address the link was sent to
    auth_request_id text,                     -- magic link: the authorization request it completes
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz
);
CREATE INDEX email_tokens_user ON email_tokens(user_id, kind);
CREATE INDEX email_tokens_expires ON email_tokens(expires_at);

-- Outgoing mail, written in the same transaction as the token it carries and delivered by a
-- background sender. The message (which holds the link) is sealed with the master key and
-- dropped once delivered or given up.
CREATE TABLE outbox (
    id               uuid PRIMARY KEY,
    kind             text NOT NULL,
    user_id          uuid REFERENCES users(id) ON DELETE CASCADE,
    recipient        text NOT NULL,
    message_sealed   text,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed', 'expired')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    lease_until      timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,   -- the link inside is useless after this
    finished_at      timestamptz
);
CREATE INDEX outbox_due ON outbox(status, next_attempt_at);
CREATE INDEX outbox_user ON outbox(user_id);
