-- Upstream identities (SPEC §7a, issue 12): a provider's subject belongs to one user.
CREATE TABLE identities (
    provider    text NOT NULL,
    subject     text NOT NULL,
    user_id     uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    email       text,                     -- the address the upstream gave (data, not the key)
    linked_at   timestamptz NOT NULL,
    PRIMARY KEY (provider, subject)
);
CREATE INDEX identities_user ON identities(user_id);
