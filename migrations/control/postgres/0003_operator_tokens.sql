-- Named operator tokens (issue 11): each token has a name, is listed with its last use and
-- can be revoked. The token generated on a fresh store is named 'initial'.
ALTER TABLE admin_tokens ADD COLUMN name text NOT NULL DEFAULT 'initial';
ALTER TABLE admin_tokens ADD COLUMN last_used_at timestamptz;
-- A store that somehow holds more than one token keeps the oldest as 'initial'.
UPDATE admin_tokens SET name = 'initial-' || left(id::text, 8)
    WHERE id <> (SELECT id FROM admin_tokens ORDER BY created_at, id LIMIT 1);
CREATE UNIQUE INDEX admin_tokens_name ON admin_tokens(name);
