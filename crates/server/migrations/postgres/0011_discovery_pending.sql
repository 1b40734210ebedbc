-- Discovery's observations are rolled up after they are stored, many batches at a time, on
-- SQLite (issue 16: there a batch of 5,000 rolled up in its own transaction rewrote thousands of
-- rollup and index pages each commit). PostgreSQL rolls each batch up in the transaction that
-- stores it (rounds of many batches were no faster there) and needs no queue.
-- One login's observations by time (a person's evidence): on PostgreSQL the index on the
-- observations themselves, kept as rows arrive (`observations_by_user`), cheaper than a table
-- written from the server (28,700 against about 36,000 events/s imported); a view, so that both
-- backends read evidence with one query.
CREATE VIEW discovery_evidence AS SELECT user_name, at_ms, id FROM observations;
