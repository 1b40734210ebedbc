-- Outgoing notifications (webhooks, Slack, Teams, e-mail): a job queue in the database. A row is
-- written in the same transaction as the change it tells of, so nothing is lost on restart and
-- nothing waits for a receiver. Replicas claim due rows (FOR UPDATE SKIP LOCKED on PostgreSQL).
CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY,      -- UUIDv7; the CloudEvents id of a webhook
    channel         TEXT NOT NULL,         -- webhook | slack | teams | email
    target          TEXT NOT NULL,         -- the subscription's name, or an address
    event           TEXT NOT NULL,         -- e.g. request.pending
    subject         TEXT NOT NULL,         -- e.g. request:<id>
    payload         TEXT NOT NULL,         -- JSON: what the channel renders
    state           TEXT NOT NULL,         -- queued | delivered | failed
    attempts        BIGINT NOT NULL,
    next_ms         BIGINT NOT NULL,       -- due at
    locked_until_ms BIGINT,                -- claimed by a sender until then
    last_status     BIGINT,
    last_error      TEXT,
    created_ms      BIGINT NOT NULL,
    done_ms         BIGINT
);
CREATE INDEX deliveries_due ON deliveries (state, next_ms);
CREATE INDEX deliveries_subject ON deliveries (subject);
-- Every attempt, for the delivery log.
CREATE TABLE delivery_attempts (
    delivery_id TEXT NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    attempt     BIGINT NOT NULL,
    at_ms       BIGINT NOT NULL,
    status      BIGINT,
    error       TEXT,
    elapsed_ms  BIGINT NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
-- Chat messages posted about a request, so that later events update them in place.
CREATE TABLE chat_messages (
    request_id TEXT NOT NULL,
    service    TEXT NOT NULL,              -- slack
    channel    TEXT NOT NULL,
    ts         TEXT NOT NULL,              -- Slack's message timestamp (its id)
    PRIMARY KEY (request_id, service, channel)
);
-- One-time approval links that have been used (a link is refused once its nonce is here).
CREATE TABLE used_links (
    nonce      TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    account    TEXT NOT NULL,
    used_ms    BIGINT NOT NULL
);
-- Approvers' e-mail addresses, for notifications.
ALTER TABLE accounts ADD COLUMN email TEXT;
