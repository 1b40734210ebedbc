-- Signed checkpoints of the audit chain: (seq, hash) signed with the server's key, which is not
-- in the database, so whoever can write the database cannot rewrite the chain unseen.
CREATE TABLE audit_checkpoints (
    seq       BIGINT PRIMARY KEY,
    hash      TEXT NOT NULL,
    at_ms     BIGINT NOT NULL,
    signature TEXT NOT NULL
);
