-- TOTP second factor (RFC 6238) and one-time recovery codes.
CREATE TABLE mfa_totp (
    user_id         BLOB PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    secret_sealed   TEXT NOT NULL,            -- sealed with the master key
    confirmed_at    TEXT,                     -- null while enrolment awaits its first code
    last_step       INTEGER,                  -- the last time step accepted: no code twice
    created_at      TEXT NOT NULL
);

CREATE TABLE recovery_codes (
    code_hash       TEXT PRIMARY KEY,         -- keyed hash of the code
    user_id         BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at      TEXT NOT NULL,
    used_at         TEXT
);
CREATE INDEX recovery_codes_user ON recovery_codes(user_id);
CREATE INDEX audit_events_type ON audit_events(type, time);
