-- Discovery: elevated actions (and attempts) that enrolled devices observed or that were
-- imported from logs an organisation already had. Append-only; reports read the rollups.
CREATE TABLE observations (
    id           TEXT PRIMARY KEY,     -- 'device:<audit event id>' or an importer's '<source>:<digest>'
    origin       TEXT NOT NULL,        -- device | import
    source       TEXT NOT NULL,        -- device: the front door (sudo, native, linux-audit); import: its kind
    at_ms        INTEGER NOT NULL,
    host         TEXT NOT NULL,
    user_name    TEXT NOT NULL,
    uid          INTEGER,
    runas        TEXT NOT NULL,
    program      TEXT NOT NULL,
    command_line TEXT NOT NULL,
    cwd          TEXT,
    tty          TEXT,
    outcome      TEXT NOT NULL,        -- ran | failed | refused
    detail       TEXT,
    via          TEXT NOT NULL,
    system       INTEGER NOT NULL,      -- 1: a service or job, not a person at a terminal
    elevation    TEXT,
    package      TEXT,
    sha256       TEXT
);
CREATE INDEX observations_by_user ON observations (user_name, at_ms);
-- Per day (UTC days since the epoch) and who, where, what, how it ended. Rollups are kept in
-- key order (WITHOUT ROWID): a period is one range scan.
CREATE TABLE discovery_daily (
    day       INTEGER NOT NULL,
    origin    TEXT NOT NULL,
    user_name TEXT NOT NULL,
    host      TEXT NOT NULL,
    program   TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    system    INTEGER NOT NULL,
    runs      INTEGER NOT NULL,
    first_ms  INTEGER NOT NULL,
    last_ms   INTEGER NOT NULL,
    -- runs in each UTC hour of the day (h00 is 00:00-01:00 UTC): when a department elevates
    h00      INTEGER NOT NULL DEFAULT 0,
    h01      INTEGER NOT NULL DEFAULT 0,
    h02      INTEGER NOT NULL DEFAULT 0,
    h03      INTEGER NOT NULL DEFAULT 0,
    h04      INTEGER NOT NULL DEFAULT 0,
    h05      INTEGER NOT NULL DEFAULT 0,
    h06      INTEGER NOT NULL DEFAULT 0,
    h07      INTEGER NOT NULL DEFAULT 0,
    h08      INTEGER NOT NULL DEFAULT 0,
    h09      INTEGER NOT NULL DEFAULT 0,
    h10      INTEGER NOT NULL DEFAULT 0,
    h11      INTEGER NOT NULL DEFAULT 0,
    h12      INTEGER NOT NULL DEFAULT 0,
    h13      INTEGER NOT NULL DEFAULT 0,
    h14      INTEGER NOT NULL DEFAULT 0,
    h15      INTEGER NOT NULL DEFAULT 0,
    h16      INTEGER NOT NULL DEFAULT 0,
    h17      INTEGER NOT NULL DEFAULT 0,
    h18      INTEGER NOT NULL DEFAULT 0,
    h19      INTEGER NOT NULL DEFAULT 0,
    h20      INTEGER NOT NULL DEFAULT 0,
    h21      INTEGER NOT NULL DEFAULT 0,
    h22      INTEGER NOT NULL DEFAULT 0,
    h23      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, origin, user_name, host, program, outcome, system)
) WITHOUT ROWID;
-- Per hour, all logins together: when elevation happens.
CREATE TABLE discovery_hour_totals (
    hour    INTEGER NOT NULL,
    origin  TEXT NOT NULL,
    outcome TEXT NOT NULL,
    system  INTEGER NOT NULL,
    runs    INTEGER NOT NULL,
    PRIMARY KEY (hour, origin, outcome, system)
) WITHOUT ROWID;
-- Per program: the package and binary last seen for it.
CREATE TABLE discovery_programs (
    program  TEXT PRIMARY KEY,
    package  TEXT,
    sha256   TEXT,
    first_ms INTEGER NOT NULL,
    last_ms  INTEGER NOT NULL
);
