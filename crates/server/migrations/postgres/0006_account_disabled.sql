-- An account can be disabled (its password, tokens and portal sign-ins stop working until an
-- admin enables it again) without losing its history.
ALTER TABLE accounts ADD COLUMN disabled_ms BIGINT;
