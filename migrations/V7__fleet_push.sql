-- Version 6: the fleet push (issue 14).
--
-- A node pushes its closed windows to a central PostgreSQL (src/fleet/). A
-- window is marked here only after the central transaction that holds it has
-- committed, so a crash between the two leaves it unmarked, and the next push
-- finds it already there and only marks it: nothing is pushed twice or lost.
--
-- Self-contained: two new tables, nothing else changes.

-- One row per closed window the central database has: pushed, or found
-- there already (a re-push after a crash). `refused` holds why the central
-- database refused it instead (another window with the same id there, a
-- value it cannot store); such a window is not retried, and is counted.
-- window_id is the primary key (the rowid), so the row costs a few bytes and
-- the cascade from windows finds it by key.
CREATE TABLE window_pushes (
    window_id INTEGER PRIMARY KEY REFERENCES windows(id) ON DELETE CASCADE,
    pushed_ms INTEGER NOT NULL,
    refused   TEXT
);

-- Present (one row) once this database has pushed, or started a pusher:
-- from then on trimming spares windows not yet pushed, up to a bound (the
-- window limit), and counts the unpushed windows it had to delete past it.
CREATE TABLE push_state (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    enabled_ms       INTEGER NOT NULL,
    dropped_unpushed INTEGER NOT NULL DEFAULT 0
);
