-- Per-app policy: password age, session limits, invitations, sign-in steps.
ALTER TABLE users ADD COLUMN password_changed_at timestamptz;
UPDATE users SET password_changed_at = updated_at WHERE password_hash IS NOT NULL;

ALTER TABLE sessions ADD COLUMN revoked_reason text;

-- Invitations (invite_only) and first-access links (auto_on_first_access): a single-use token,
-- stored hashed, that lets one address register.
CREATE TABLE invitations (
    id               uuid PRIMARY KEY,
    kind             text NOT NULL CHECK (kind IN ('invitation', 'first_access')),
    email            text NOT NULL,
    email_normalized text NOT NULL,
    token_hash       text NOT NULL UNIQUE,
    token_sealed     text,                  -- invitations: the token, sealed, so operators can list the link
    auth_request_id  text,
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    used_at          timestamptz,
    revoked_at       timestamptz,
    user_id          uuid REFERENCES users(id) ON DELETE SET NULL
);
CREATE INDEX invitations_email ON invitations(email_normalized);
CREATE INDEX invitations_created ON invitations(kind, created_at);

-- A sign-in whose first factor succeeded but that must pass more steps (a password change,
-- missing profile fields, email confirmation…) before any session or token exists.
CREATE TABLE pending_logins (
    token_hash       text PRIMARY KEY,
    user_id          uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    amr              jsonb NOT NULL,
    auth_request_id  text,
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL
);
CREATE INDEX pending_logins_expires ON pending_logins(expires_at);
