-- Organizations, memberships and API resources (SPEC §10, issue 13), and where a grant carries
-- them: the organization and resource a client asked for travel from the authorization request
-- to its code and refresh tokens.
CREATE TABLE organizations (
    id          BLOB PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE TABLE memberships (
    user_id          BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    organization_id  BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    created_at       TEXT NOT NULL,
    PRIMARY KEY (user_id, organization_id)
);
CREATE INDEX memberships_organization ON memberships(organization_id, user_id);
CREATE TABLE membership_roles (
    user_id          BLOB NOT NULL,
    organization_id  BLOB NOT NULL,
    role             TEXT NOT NULL REFERENCES roles(name) ON DELETE CASCADE,
    PRIMARY KEY (user_id, organization_id, role),
    FOREIGN KEY (user_id, organization_id) REFERENCES memberships(user_id, organization_id) ON DELETE CASCADE
);
CREATE INDEX membership_roles_role ON membership_roles(role);
CREATE TABLE resources (
    id           BLOB PRIMARY KEY,
    identifier   TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    permissions  TEXT NOT NULL,           -- JSON array of permission strings
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
ALTER TABLE auth_requests ADD COLUMN organization TEXT;      -- as asked: id, slug or `select`
ALTER TABLE auth_requests ADD COLUMN resource TEXT;
ALTER TABLE authorization_codes ADD COLUMN organization_id TEXT;
ALTER TABLE authorization_codes ADD COLUMN resource TEXT;
ALTER TABLE refresh_tokens ADD COLUMN organization_id TEXT;
ALTER TABLE refresh_tokens ADD COLUMN resource TEXT;
ALTER TABLE invitations ADD COLUMN organization_id BLOB;
ALTER TABLE invitations ADD COLUMN roles TEXT;               -- JSON array: the membership's roles
