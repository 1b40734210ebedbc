-- Elevate schema, version 1 (SQLite). Timestamps are Unix milliseconds (UTC).
CREATE TABLE accounts (
    name          TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    roles         TEXT NOT NULL,          -- comma-separated: admin, approver, auditor
    groups_json   TEXT NOT NULL,          -- JSON array of approver groups
    created_ms    INTEGER NOT NULL
);
CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY,          -- SHA-256 of the token; the token itself is never stored
    account    TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    label      TEXT,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE TABLE web_sessions (
    session_hash TEXT PRIMARY KEY,
    account      TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    csrf         TEXT NOT NULL,
    created_ms   INTEGER NOT NULL,
    expires_ms   INTEGER NOT NULL
);
CREATE TABLE enrol_tokens (
    token_hash TEXT PRIMARY KEY,
    tags_json  TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    used_ms    INTEGER,
    device_id  TEXT
);
CREATE TABLE devices (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    tags_json       TEXT NOT NULL,
    credential_hash TEXT NOT NULL UNIQUE,
    enrolled_ms     INTEGER NOT NULL,
    last_seen_ms    INTEGER
);
CREATE TABLE policies (
    version    INTEGER PRIMARY KEY,
    text       TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    author     TEXT NOT NULL,
    comment    TEXT,
    created_ms INTEGER NOT NULL
);
CREATE TABLE requests (
    id            TEXT PRIMARY KEY,
    created_ms    INTEGER NOT NULL,
    updated_ms    INTEGER NOT NULL,
    expires_ms    INTEGER,
    device        TEXT NOT NULL,
    user_name     TEXT NOT NULL,
    uid           INTEGER NOT NULL,
    groups_json   TEXT NOT NULL,
    target_json   TEXT NOT NULL,
    path          TEXT,
    sha256        TEXT,
    reason        TEXT,
    channel       TEXT NOT NULL,
    state         TEXT NOT NULL,
    decision_json TEXT NOT NULL,
    approvers     TEXT,
    needed        INTEGER NOT NULL,
    exit_code     INTEGER
);
CREATE INDEX requests_by_state ON requests (state, created_ms);
CREATE INDEX requests_by_sha256 ON requests (sha256);
CREATE INDEX requests_by_path ON requests (path);
CREATE TABLE approvals (
    request_id TEXT NOT NULL REFERENCES requests(id) ON DELETE CASCADE,
    approver   TEXT NOT NULL,
    verdict    TEXT NOT NULL,
    comment    TEXT,
    at_ms      INTEGER NOT NULL,
    PRIMARY KEY (request_id, approver)
);
CREATE TABLE audit (
    seq       INTEGER PRIMARY KEY,
    event_id  TEXT NOT NULL UNIQUE,
    at_ms     INTEGER NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   TEXT NOT NULL,
    data      TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE TABLE audit_head (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    count INTEGER NOT NULL,
    hash  TEXT NOT NULL
);
INSERT INTO audit_head (id, count, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
