-- Discovery's observations are rolled up after they are stored, many batches at a time (issue
-- 16): a batch of 5,000 rolled up in its own transaction rewrote thousands of rollup and index
-- pages each commit, and ran at a tenth of a plain insert. An import stores its observations and
-- one row here in one transaction; the roller adds such rows to the rollups and the evidence
-- index and deletes them, in one transaction; every read of the rollups first rolls up what is
-- pending.
CREATE TABLE discovery_pending (
    seq    INTEGER PRIMARY KEY,
    events INTEGER NOT NULL,   -- observations in `observed`
    observed TEXT NOT NULL     -- JSON: [[id, at_ms, login, host, program, origin, outcome, system, package, sha256], ...]
);
-- One login's observations by time (a person's evidence), written by the roller: replaces the
-- index that every import's batch updated at one page per login.
CREATE TABLE discovery_evidence (
    user_name TEXT NOT NULL,
    at_ms     INTEGER NOT NULL,
    id        TEXT NOT NULL,
    PRIMARY KEY (user_name, at_ms, id)
) WITHOUT ROWID;
INSERT INTO discovery_evidence (user_name, at_ms, id) SELECT user_name, at_ms, id FROM observations;
DROP INDEX observations_by_user;
