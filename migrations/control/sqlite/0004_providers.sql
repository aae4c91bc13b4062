-- Upstream identity providers of an app (issue 12, SPEC §7a): JSON by kind, secrets sealed.
ALTER TABLE apps ADD COLUMN providers TEXT NOT NULL DEFAULT '{}';
