-- Upstream identities (SPEC §7a, issue 12): a subject of one upstream issuer belongs to one
-- user. A `sub` is unique only within its issuer, so the issuer is part of the key.
CREATE TABLE identities (
    provider    TEXT NOT NULL,
    issuer      TEXT NOT NULL,            -- the upstream's iss (GitHub: its API address)
    subject     TEXT NOT NULL,
    user_id     BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    email       TEXT,                     -- the address the upstream gave (data, not the key)
    linked_at   TEXT NOT NULL,
    PRIMARY KEY (provider, issuer, subject)
);
CREATE INDEX identities_user ON identities(user_id);
