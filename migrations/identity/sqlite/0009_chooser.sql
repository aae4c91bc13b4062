-- The organization chooser answers only the session it was shown to (SPEC §10, issue 13).
ALTER TABLE auth_requests ADD COLUMN chooser_session TEXT;
