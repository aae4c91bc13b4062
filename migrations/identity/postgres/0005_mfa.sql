-- TOTP second factor (RFC 6238) and one-time recovery codes.
CREATE TABLE mfa_totp (
    user_id         uuid PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    secret_sealed   text NOT NULL,            -- sealed with the master key
    confirmed_at    timestamptz,              -- null while enrolment awaits its first code
    last_step       bigint,                   -- the last time step accepted: no code twice
    created_at      timestamptz NOT NULL
);

CREATE TABLE recovery_codes (
    code_hash       text PRIMARY KEY,         -- keyed hash of the code
    user_id         uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL,
    used_at         timestamptz
);
CREATE INDEX recovery_codes_user ON recovery_codes(user_id);
CREATE INDEX audit_events_type ON audit_events(type, time);
