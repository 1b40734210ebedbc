-- A device can be revoked: its credential is refused from then on. Enrolling again under its
-- name replaces the revoked row (new id, so a new offline secret); the audit log keeps both.
ALTER TABLE devices ADD COLUMN revoked_ms BIGINT;
ALTER TABLE devices ADD COLUMN revoked_by TEXT;
