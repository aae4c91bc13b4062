-- Upstream identities (SPEC §7a, issue 12): a subject of one upstream issuer belongs to one
-- user. A `sub` is unique only within its issuer, so the issuer is part of the key.
CREATE TABLE identities (
    provider    text NOT NULL,
    issuer      text NOT NULL,            -- the upstream's iss (GitHub: its API address)
    subject     text NOT NULL,
    user_id     uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    email       text,                     -- the address the upstream gave (data, not the key)
    linked_at   timestamptz NOT NULL,
    PRIMARY KEY (provider, issuer, subject)
);
CREATE INDEX identities_user ON identities(user_id);
