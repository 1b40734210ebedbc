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
    PRIMARY KEY (day, origin, user_name, host, program, outcome, system)
) WITHOUT ROWID;
-- Per hour (UTC hours since the epoch), login and host: when a department's people elevate.
CREATE TABLE discovery_hourly (
    hour      INTEGER NOT NULL,
    origin    TEXT NOT NULL,
    user_name TEXT NOT NULL,
    host      TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    system    INTEGER NOT NULL,
    runs      INTEGER NOT NULL,
    PRIMARY KEY (hour, origin, user_name, host, outcome, system)
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
