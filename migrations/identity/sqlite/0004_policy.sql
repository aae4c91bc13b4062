-- Per-app policy: password age, session limits, invitations, sign-in steps.
ALTER TABLE users ADD COLUMN password_changed_at TEXT;
UPDATE users SET password_changed_at = updated_at WHERE password_hash IS NOT NULL;

ALTER TABLE sessions ADD COLUMN revoked_reason TEXT;

-- Invitations (invite_only) and first-access links (auto_on_first_access): a single-use token,
-- stored hashed, that lets one address register.
CREATE TABLE invitations (
    id               BLOB PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind IN ('invitation', 'first_access')),
    email            TEXT NOT NULL,
    email_normalized TEXT NOT NULL,
    token_hash       TEXT NOT NULL UNIQUE,
    token_sealed     TEXT,                  -- invitations: the token, sealed, so operators can list the link
    auth_request_id  TEXT,
    created_at       TEXT NOT NULL,
    expires_at       TEXT NOT NULL,
    used_at          TEXT,
    revoked_at       TEXT,
    user_id          BLOB REFERENCES users(id) ON DELETE SET NULL
);
CREATE INDEX invitations_email ON invitations(email_normalized);
CREATE INDEX invitations_created ON invitations(kind, created_at);

-- A sign-in whose first factor succeeded but that must pass more steps (a password change,
-- missing profile fields, email confirmation…) before any session or token exists.
CREATE TABLE pending_logins (
    token_hash       TEXT PRIMARY KEY,
    user_id          BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    amr              TEXT NOT NULL,
    auth_request_id  TEXT,
    created_at       TEXT NOT NULL,
    expires_at       TEXT NOT NULL
);
CREATE INDEX pending_logins_expires ON pending_logins(expires_at);
