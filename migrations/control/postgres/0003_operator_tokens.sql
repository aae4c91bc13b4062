-- Named operator tokens (issue 11): each token has a name, is listed with its last use and
-- can be revoked. The token generated on a fresh store is named 'initial'.
ALTER TABLE admin_tokens ADD COLUMN name text NOT NULL DEFAULT 'initial';
ALTER TABLE admin_tokens ADD COLUMN last_used_at timestamptz;
CREATE UNIQUE INDEX admin_tokens_name ON admin_tokens(name);
