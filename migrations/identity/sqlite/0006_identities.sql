-- Upstream identities (SPEC §7a, issue 12): a provider's subject belongs to one user.
CREATE TABLE identities (
    provider    TEXT NOT NULL,
    subject     TEXT NOT NULL,
    user_id     BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    email       TEXT,                     -- the address the upstream gave (data, not the key)
    linked_at   TEXT NOT NULL,
    PRIMARY KEY (provider, subject)
);
CREATE INDEX identities_user ON identities(user_id);
