-- Roles and their grants (SPEC §10, issue 13): a role is a named set of `resource:action`
-- permissions; users hold roles app-wide, and so may OAuth clients (client_credentials).
CREATE TABLE roles (
    name         TEXT PRIMARY KEY,
    description  TEXT NOT NULL DEFAULT '',
    permissions  TEXT NOT NULL,           -- JSON array of permission strings
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE TABLE user_roles (
    user_id     BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role        TEXT NOT NULL REFERENCES roles(name) ON DELETE CASCADE,
    granted_at  TEXT NOT NULL,
    PRIMARY KEY (user_id, role)
);
CREATE INDEX user_roles_role ON user_roles(role, user_id);
CREATE TABLE client_roles (
    client_id   TEXT NOT NULL,
    role        TEXT NOT NULL REFERENCES roles(name) ON DELETE CASCADE,
    granted_at  TEXT NOT NULL,
    PRIMARY KEY (client_id, role)
);
CREATE INDEX client_roles_role ON client_roles(role);
