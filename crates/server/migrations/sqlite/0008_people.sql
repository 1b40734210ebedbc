-- The people directory: who is behind accounts, chat ids and device logins. Separation of
-- duties is decided on people: nobody decides a request made under any of their own logins.
CREATE TABLE people (
    id             TEXT PRIMARY KEY,
    user_name      TEXT NOT NULL UNIQUE,  -- the directory's handle (SCIM userName, CSV "person")
    display_name   TEXT,
    email          TEXT,
    department     TEXT,
    manager        TEXT,                  -- the manager's user_name
    external_id    TEXT,                  -- the identity provider's id (SCIM externalId)
    source         TEXT NOT NULL,         -- api | csv | scim:<provider>
    created_ms     INTEGER NOT NULL,
    updated_ms     INTEGER NOT NULL,
    deactivated_ms INTEGER,
    scim_json      TEXT                   -- the resource as its SCIM provider last wrote it
);
-- What a person is known by. An account or chat id belongs to one person; a login name to one
-- person per scope ('*' fleet-wide, 'device:<name>', 'tag:<tag>'; the narrowest scope wins).
CREATE TABLE person_links (
    person_id TEXT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    kind      TEXT NOT NULL,              -- account | slack | login
    value     TEXT NOT NULL,
    scope     TEXT NOT NULL,
    PRIMARY KEY (kind, value, scope)
);
CREATE INDEX person_links_by_person ON person_links (person_id);
CREATE TABLE directory_groups (
    id           TEXT PRIMARY KEY,
    display_name TEXT NOT NULL UNIQUE,
    external_id  TEXT,
    source       TEXT NOT NULL,
    created_ms   INTEGER NOT NULL,
    updated_ms   INTEGER NOT NULL
);
CREATE TABLE directory_members (
    group_id  TEXT NOT NULL REFERENCES directory_groups(id) ON DELETE CASCADE,
    person_id TEXT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, person_id)
);
CREATE INDEX directory_members_by_person ON directory_members (person_id);
-- The human logins (uid >= 1000) a device reported at its last check-in.
CREATE TABLE device_users (
    device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    uid       INTEGER NOT NULL,
    login     TEXT NOT NULL,
    seen_ms   INTEGER NOT NULL,
    PRIMARY KEY (device_id, uid)
);
-- One bearer token per identity provider that provisions people over SCIM (only its hash).
CREATE TABLE scim_tokens (
    provider   TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL
);
