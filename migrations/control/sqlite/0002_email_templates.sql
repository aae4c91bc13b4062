-- Per-app overrides of the wording of outgoing mail (subject, text, html per kind).
ALTER TABLE apps ADD COLUMN email_templates TEXT NOT NULL DEFAULT '{}';
