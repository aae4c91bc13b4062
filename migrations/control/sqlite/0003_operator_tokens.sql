-- Named operator tokens (issue 11): each token has a name, is listed with its last use and
-- can be revoked. The token generated on a fresh store is named 'initial'.
ALTER TABLE admin_tokens ADD COLUMN name TEXT NOT NULL DEFAULT 'initial';
ALTER TABLE admin_tokens ADD COLUMN last_used_at TEXT;
-- A store that somehow holds more than one token keeps the oldest as 'initial'.
UPDATE admin_tokens SET name = 'initial-' || lower(hex(substr(id, 1, 4)))
    WHERE rowid <> (SELECT rowid FROM admin_tokens ORDER BY created_at, rowid LIMIT 1);
CREATE UNIQUE INDEX admin_tokens_name ON admin_tokens(name);
