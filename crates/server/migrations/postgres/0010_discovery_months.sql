-- Discovery's rollups re-keyed for reports over millions of events (issue 16): logins, hosts and
-- programs become small integers of one dictionary, and a key's use is kept per calendar month
-- (UTC) with its runs on each day of the month, so that a 30-day report reads at most two
-- months' rows instead of every day's. People's elevations per login, day and hour move to a
-- table of their own, read by login (a department's timing). The old daily rollup is converted,
-- then dropped.
CREATE TABLE discovery_names (
    id   BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
-- One (origin, login, host, program, outcome, system) in one month (year * 12 + month - 1).
-- origin: 0 device, 1 import; outcome: 0 ran, 1 failed, 2 refused. d01..d31: runs on each day.
CREATE TABLE discovery_monthly (
    month      BIGINT NOT NULL,
    origin     BIGINT NOT NULL,
    user_id    BIGINT NOT NULL,
    host_id    BIGINT NOT NULL,
    program_id BIGINT NOT NULL,
    outcome    BIGINT NOT NULL,
    system     BIGINT NOT NULL,
    runs       BIGINT NOT NULL,
    first_ms   BIGINT NOT NULL,
    last_ms    BIGINT NOT NULL,
    d01       BIGINT NOT NULL DEFAULT 0,
    d02       BIGINT NOT NULL DEFAULT 0,
    d03       BIGINT NOT NULL DEFAULT 0,
    d04       BIGINT NOT NULL DEFAULT 0,
    d05       BIGINT NOT NULL DEFAULT 0,
    d06       BIGINT NOT NULL DEFAULT 0,
    d07       BIGINT NOT NULL DEFAULT 0,
    d08       BIGINT NOT NULL DEFAULT 0,
    d09       BIGINT NOT NULL DEFAULT 0,
    d10       BIGINT NOT NULL DEFAULT 0,
    d11       BIGINT NOT NULL DEFAULT 0,
    d12       BIGINT NOT NULL DEFAULT 0,
    d13       BIGINT NOT NULL DEFAULT 0,
    d14       BIGINT NOT NULL DEFAULT 0,
    d15       BIGINT NOT NULL DEFAULT 0,
    d16       BIGINT NOT NULL DEFAULT 0,
    d17       BIGINT NOT NULL DEFAULT 0,
    d18       BIGINT NOT NULL DEFAULT 0,
    d19       BIGINT NOT NULL DEFAULT 0,
    d20       BIGINT NOT NULL DEFAULT 0,
    d21       BIGINT NOT NULL DEFAULT 0,
    d22       BIGINT NOT NULL DEFAULT 0,
    d23       BIGINT NOT NULL DEFAULT 0,
    d24       BIGINT NOT NULL DEFAULT 0,
    d25       BIGINT NOT NULL DEFAULT 0,
    d26       BIGINT NOT NULL DEFAULT 0,
    d27       BIGINT NOT NULL DEFAULT 0,
    d28       BIGINT NOT NULL DEFAULT 0,
    d29       BIGINT NOT NULL DEFAULT 0,
    d30       BIGINT NOT NULL DEFAULT 0,
    d31       BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (month, origin, user_id, host_id, program_id, outcome, system)
);
-- People's elevations that ran, per login, host, UTC day and origin, with their runs in each
-- UTC hour of the day (h00 is 00:00-01:00): a department's timing reads its people's logins.
CREATE TABLE discovery_login_days (
    user_id BIGINT NOT NULL,
    host_id BIGINT NOT NULL,
    day     BIGINT NOT NULL,
    origin  BIGINT NOT NULL,
    h00     BIGINT NOT NULL DEFAULT 0,
    h01     BIGINT NOT NULL DEFAULT 0,
    h02     BIGINT NOT NULL DEFAULT 0,
    h03     BIGINT NOT NULL DEFAULT 0,
    h04     BIGINT NOT NULL DEFAULT 0,
    h05     BIGINT NOT NULL DEFAULT 0,
    h06     BIGINT NOT NULL DEFAULT 0,
    h07     BIGINT NOT NULL DEFAULT 0,
    h08     BIGINT NOT NULL DEFAULT 0,
    h09     BIGINT NOT NULL DEFAULT 0,
    h10     BIGINT NOT NULL DEFAULT 0,
    h11     BIGINT NOT NULL DEFAULT 0,
    h12     BIGINT NOT NULL DEFAULT 0,
    h13     BIGINT NOT NULL DEFAULT 0,
    h14     BIGINT NOT NULL DEFAULT 0,
    h15     BIGINT NOT NULL DEFAULT 0,
    h16     BIGINT NOT NULL DEFAULT 0,
    h17     BIGINT NOT NULL DEFAULT 0,
    h18     BIGINT NOT NULL DEFAULT 0,
    h19     BIGINT NOT NULL DEFAULT 0,
    h20     BIGINT NOT NULL DEFAULT 0,
    h21     BIGINT NOT NULL DEFAULT 0,
    h22     BIGINT NOT NULL DEFAULT 0,
    h23     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, host_id, day, origin)
);
-- The existing rollup, converted.
INSERT INTO discovery_names (name)
SELECT name FROM (SELECT user_name AS name FROM discovery_daily UNION SELECT host FROM discovery_daily
                  UNION SELECT program FROM discovery_daily) AS n
ORDER BY name;
INSERT INTO discovery_monthly (month, origin, user_id, host_id, program_id, outcome, system, runs,
    first_ms, last_ms, d01, d02, d03, d04, d05, d06, d07, d08, d09, d10, d11, d12, d13, d14, d15, d16, d17, d18, d19, d20, d21, d22, d23, d24, d25, d26, d27, d28, d29, d30, d31)
SELECT (EXTRACT(YEAR FROM TIMESTAMP 'epoch' + d.day * INTERVAL '1 day')::BIGINT * 12 + EXTRACT(MONTH FROM TIMESTAMP 'epoch' + d.day * INTERVAL '1 day')::BIGINT - 1), CASE d.origin WHEN 'device' THEN 0 ELSE 1 END, u.id, h.id, p.id, CASE d.outcome WHEN 'ran' THEN 0 WHEN 'failed' THEN 1 ELSE 2 END, d.system,
       SUM(d.runs), MIN(d.first_ms), MAX(d.last_ms),
       SUM(CASE WHEN EXTRACT(DAY FROM TIMESTAMP 'epoch' + d.day * INTERVAL '1 day')::BIGINT = 1 THEN d.runs ELSE 0 END),
       SUM(CASE WHEN EXTRACT(DAY FROM TIMESTAMP 'epoch' + d.day * INTERVAL '1 day')::BIGINT = 2 THEN d.runs ELSE 0 END),
       SUM(CASE WHEN EXTRACT(DAY FROM TIMESTAMP 'epoch' + d.day * INTERVAL '1 day')::BIGINT = 3 THEN d.runs ELSE 0 END),
       SUM(CASE WHEN EXTRACT(DAY FROM TIMESTAMP 'epoch' + d.day * INTERVAL '1 day')::BIGINT = 4 THEN d.runs ELSE 0 END),
       SUM(CASE WHEN EXTRACT(DAY FROM TIMESTAMP 'epoch' + d.day * INTERVAL '1 day')::BIGINT = 5 THEN d.runs ELSE 0 END),
       SUM(CASE WHEN EXTRACT(DAY FROM TIMESTAMP 'epoch' + d.day * INTERVAL '1 day')::BIGINT = 6 THEN d.runs ELSE 0 END),
       SUM(CASE WHEN EXTRACT(DAY FROM TIMESTAMP 'epoch' + d.day * INTERVAL '1 day')::BIGINT = 7 THEN d.runs ELSE 0 END),
       SUM(CASE WHEN EXTRACT(DAY FROM TIMESTAMP 'epoch' + d.day * INTERVAL '1 day')::BIGINT = 8 THEN d.runs ELSE 0 END),
       SUM(CASE WHEN EXTRACT(DAY FROM TIMESTAMP 'epoch' + d.day * INTERVAL '1 day')::BIGINT = 9 THEN d.runs ELSE 0 END),
       SUM(CASE WHEN EXTRACT(DAY FROM TIMESTAMP 'epoch' + d.day * INTERVAL '1 day')::BIGINT = 10 THEN d.runs ELSE 0 END),
       SUM(CASE WHEN EXTRACT(DAY FROM TIMESTAMP 'epoch' + d.day * INTERVAL '1 day')::BIGINT = 11 THEN d.runs ELSE 0 END),
       SUM(CASE WHEN EXTRACT(DAY FROM TIMESTAMP 'epoch' + d.day * INTERVAL '1 day')::BIGINT = 12 THEN d.runs ELSE 0 END),
       SUM(CASE WHEN EXTRACT(DAY FROM TIMESTAMP 'epoch' + d.day * INTERVAL '1 day')::BIGINT = 13 THEN d.runs ELSE 0 END),
       SUM(CASE WHEN EXTRACT(DAY FROM TIMESTAMP 'epoch' + d.day * INTERVAL '1 day')::BIGINT = 14 THEN d.runs ELSE 0 END),
       SUM(CASE WHEN EXTRACT(DAY FROM TIMESTAMP 'epoch' + d.day * INTERVAL '1 day')::BIGINT = 15 THEN d.runs ELSE 0 END),
       SUM(CASE WHEN EXTRACT(DAY FROM TIMESTAMP 'epoch' + d.day * INTERVAL '1 day')::BIGINT = 16 THEN d.runs ELSE 0 END),
       SUM(CASE WHEN EXTRACT(DAY FROM TIMESTAMP 'epoch' + d.day * INTERVAL '1 day')::BIGINT = 17 THEN d.runs ELSE 0 END),
       SUM(CASE WHEN EXTRACT(DAY FROM TIMESTAMP 'epoch' + d.day * INTERVAL '1 day')::BIGINT = 18 THEN d.runs ELSE 0 END),
       SUM(CASE WHEN EXTRACT(DAY FROM TIMESTAMP 'epoch' + d.day * INTERVAL '1 day')::BIGINT = 19 THEN d.runs ELSE 0 END),
       SUM(CASE WHEN EXTRACT(DAY FROM TIMESTAMP 'epoch' + d.day * INTERVAL '1 day')::BIGINT = 20 THEN d.runs ELSE 0 END),
       SUM(CASE WHEN EXTRACT(DAY FROM TIMESTAMP 'epoch' + d.day * INTERVAL '1 day')::BIGINT = 21 THEN d.runs ELSE 0 END),
       SUM(CASE WHEN EXTRACT(DAY FROM TIMESTAMP 'epoch' + d.day * INTERVAL '1 day')::BIGINT = 22 THEN d.runs ELSE 0 END),
       SUM(CASE WHEN EXTRACT(DAY FROM TIMESTAMP 'epoch' + d.day * INTERVAL '1 day')::BIGINT = 23 THEN d.runs ELSE 0 END),
       SUM(CASE WHEN EXTRACT(DAY FROM TIMESTAMP 'epoch' + d.day * INTERVAL '1 day')::BIGINT = 24 THEN d.runs ELSE 0 END),
       SUM(CASE WHEN EXTRACT(DAY FROM TIMESTAMP 'epoch' + d.day * INTERVAL '1 day')::BIGINT = 25 THEN d.runs ELSE 0 END),
       SUM(CASE WHEN EXTRACT(DAY FROM TIMESTAMP 'epoch' + d.day * INTERVAL '1 day')::BIGINT = 26 THEN d.runs ELSE 0 END),
       SUM(CASE WHEN EXTRACT(DAY FROM TIMESTAMP 'epoch' + d.day * INTERVAL '1 day')::BIGINT = 27 THEN d.runs ELSE 0 END),
       SUM(CASE WHEN EXTRACT(DAY FROM TIMESTAMP 'epoch' + d.day * INTERVAL '1 day')::BIGINT = 28 THEN d.runs ELSE 0 END),
       SUM(CASE WHEN EXTRACT(DAY FROM TIMESTAMP 'epoch' + d.day * INTERVAL '1 day')::BIGINT = 29 THEN d.runs ELSE 0 END),
       SUM(CASE WHEN EXTRACT(DAY FROM TIMESTAMP 'epoch' + d.day * INTERVAL '1 day')::BIGINT = 30 THEN d.runs ELSE 0 END),
       SUM(CASE WHEN EXTRACT(DAY FROM TIMESTAMP 'epoch' + d.day * INTERVAL '1 day')::BIGINT = 31 THEN d.runs ELSE 0 END)
FROM discovery_daily d
JOIN discovery_names u ON u.name = d.user_name
JOIN discovery_names h ON h.name = d.host
JOIN discovery_names p ON p.name = d.program
GROUP BY (EXTRACT(YEAR FROM TIMESTAMP 'epoch' + d.day * INTERVAL '1 day')::BIGINT * 12 + EXTRACT(MONTH FROM TIMESTAMP 'epoch' + d.day * INTERVAL '1 day')::BIGINT - 1), CASE d.origin WHEN 'device' THEN 0 ELSE 1 END, u.id, h.id, p.id, CASE d.outcome WHEN 'ran' THEN 0 WHEN 'failed' THEN 1 ELSE 2 END, d.system;
INSERT INTO discovery_login_days (user_id, host_id, day, origin, h00, h01, h02, h03, h04, h05, h06, h07, h08, h09, h10, h11, h12, h13, h14, h15, h16, h17, h18, h19, h20, h21, h22, h23)
SELECT u.id, h.id, d.day, CASE d.origin WHEN 'device' THEN 0 ELSE 1 END, SUM(d.h00), SUM(d.h01), SUM(d.h02), SUM(d.h03), SUM(d.h04), SUM(d.h05), SUM(d.h06), SUM(d.h07), SUM(d.h08), SUM(d.h09), SUM(d.h10), SUM(d.h11), SUM(d.h12), SUM(d.h13), SUM(d.h14), SUM(d.h15), SUM(d.h16), SUM(d.h17), SUM(d.h18), SUM(d.h19), SUM(d.h20), SUM(d.h21), SUM(d.h22), SUM(d.h23)
FROM discovery_daily d JOIN discovery_names u ON u.name = d.user_name JOIN discovery_names h ON h.name = d.host
WHERE d.system = 0 AND d.outcome = 'ran'
GROUP BY u.id, h.id, d.day, CASE d.origin WHEN 'device' THEN 0 ELSE 1 END;
DROP TABLE discovery_daily;
