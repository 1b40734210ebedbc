-- Discovery: elevated actions (and attempts) that enrolled devices observed or that were
-- imported from logs an organisation already had. Append-only; reports read the rollups.
CREATE TABLE observations (
    id           TEXT PRIMARY KEY,     -- 'device:<audit event id>' or an importer's '<source>:<digest>'
    origin       TEXT NOT NULL,        -- device | import
    source       TEXT NOT NULL,        -- device: the front door (sudo, native, linux-audit); import: its kind
    at_ms        BIGINT NOT NULL,
    host         TEXT NOT NULL,
    user_name    TEXT NOT NULL,
    uid          BIGINT,
    runas        TEXT NOT NULL,
    program      TEXT NOT NULL,
    command_line TEXT NOT NULL,
    cwd          TEXT,
    tty          TEXT,
    outcome      TEXT NOT NULL,        -- ran | failed | refused
    detail       TEXT,
    via          TEXT NOT NULL,
    system       BIGINT NOT NULL,      -- 1: a service or job, not a person at a terminal
    elevation    TEXT,
    package      TEXT,
    sha256       TEXT
);
CREATE INDEX observations_by_user ON observations (user_name, at_ms);
-- Per day (UTC days since the epoch) and who, where, what, how it ended.
CREATE TABLE discovery_daily (
    day       BIGINT NOT NULL,
    origin    TEXT NOT NULL,
    user_name TEXT NOT NULL,
    host      TEXT NOT NULL,
    program   TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    system    BIGINT NOT NULL,
    runs      BIGINT NOT NULL,
    first_ms  BIGINT NOT NULL,
    last_ms   BIGINT NOT NULL,
    -- runs in each UTC hour of the day (h00 is 00:00-01:00 UTC): when a department elevates
    h00      BIGINT NOT NULL DEFAULT 0,
    h01      BIGINT NOT NULL DEFAULT 0,
    h02      BIGINT NOT NULL DEFAULT 0,
    h03      BIGINT NOT NULL DEFAULT 0,
    h04      BIGINT NOT NULL DEFAULT 0,
    h05      BIGINT NOT NULL DEFAULT 0,
    h06      BIGINT NOT NULL DEFAULT 0,
    h07      BIGINT NOT NULL DEFAULT 0,
    h08      BIGINT NOT NULL DEFAULT 0,
    h09      BIGINT NOT NULL DEFAULT 0,
    h10      BIGINT NOT NULL DEFAULT 0,
    h11      BIGINT NOT NULL DEFAULT 0,
    h12      BIGINT NOT NULL DEFAULT 0,
    h13      BIGINT NOT NULL DEFAULT 0,
    h14      BIGINT NOT NULL DEFAULT 0,
    h15      BIGINT NOT NULL DEFAULT 0,
    h16      BIGINT NOT NULL DEFAULT 0,
    h17      BIGINT NOT NULL DEFAULT 0,
    h18      BIGINT NOT NULL DEFAULT 0,
    h19      BIGINT NOT NULL DEFAULT 0,
    h20      BIGINT NOT NULL DEFAULT 0,
    h21      BIGINT NOT NULL DEFAULT 0,
    h22      BIGINT NOT NULL DEFAULT 0,
    h23      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, origin, user_name, host, program, outcome, system)
);
-- Per hour, all logins together: when elevation happens.
CREATE TABLE discovery_hour_totals (
    hour    BIGINT NOT NULL,
    origin  TEXT NOT NULL,
    outcome TEXT NOT NULL,
    system  BIGINT NOT NULL,
    runs    BIGINT NOT NULL,
    PRIMARY KEY (hour, origin, outcome, system)
);
-- Per program: the package and binary last seen for it.
CREATE TABLE discovery_programs (
    program  TEXT PRIMARY KEY,
    package  TEXT,
    sha256   TEXT,
    first_ms BIGINT NOT NULL,
    last_ms  BIGINT NOT NULL
);
