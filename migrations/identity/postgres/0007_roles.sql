-- Roles and their grants (SPEC §10, issue 13): a role is a named set of `resource:action`
-- permissions; users hold roles app-wide, and so may OAuth clients (client_credentials).
CREATE TABLE roles (
    name         text PRIMARY KEY,
    description  text NOT NULL DEFAULT '',
    permissions  jsonb NOT NULL,          -- array of permission strings
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
CREATE TABLE user_roles (
    user_id     uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role        text NOT NULL REFERENCES roles(name) ON DELETE CASCADE,
    granted_at  timestamptz NOT NULL,
    PRIMARY KEY (user_id, role)
);
CREATE INDEX user_roles_role ON user_roles(role, user_id);
CREATE TABLE client_roles (
    client_id   text NOT NULL,
    role        text NOT NULL REFERENCES roles(name) ON DELETE CASCADE,
    granted_at  timestamptz NOT NULL,
    PRIMARY KEY (client_id, role)
);
CREATE INDEX client_roles_role ON client_roles(role);
