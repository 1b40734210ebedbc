-- Routing and per-request metrics: when the SLA falls due (cleared once handled), the group it
-- was escalated to, when an approver first looked, when and through what it was decided.
ALTER TABLE requests ADD COLUMN sla_due_ms BIGINT;
ALTER TABLE requests ADD COLUMN escalated_to TEXT;
ALTER TABLE requests ADD COLUMN first_viewed_ms BIGINT;
ALTER TABLE requests ADD COLUMN decided_ms BIGINT;
ALTER TABLE requests ADD COLUMN decided_via TEXT;
CREATE INDEX requests_sla_due ON requests (sla_due_ms);
