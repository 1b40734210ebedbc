-- The requester's working directory, as the agent confirmed it (shown to approvers).
ALTER TABLE requests ADD COLUMN cwd TEXT;
