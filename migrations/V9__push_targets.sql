-- Version 9: a push mark names the central database it went to (issue 18).
--
-- Up to version 8 a window's `window_pushes` row said only "pushed": a push
-- to a new or re-created central database, or under another node name, sent
-- nothing, and retention deleted windows as pushed that the central database
-- in use had never seen; a refused window was never tried again. Now:
--
-- - A mark belongs to a push target (`push_targets`): the central database,
--   by the id its schema keeps (`fleet_identity`, created with the central
--   schema, so a database dropped and created again is another one) and its
--   oid (a restore into a new database is another one), and the node name.
-- - `push_state.target_id` is the target this database last connected to:
--   retention spares what that one does not have.
-- - A refused window is tried again after `retry_ms`, later after each
--   refusal (`attempts`; src/store/push.rs has the bounds).
--
-- Marks written before this version went to a central database nobody
-- recorded: they move to a target with an empty `central`, current until
-- the next push connects; that push asks its central database which of the
-- windows it holds, and marks only those.

CREATE TABLE push_targets (
    id       INTEGER PRIMARY KEY,
    -- '<fleet_identity.uuid>/<database oid>'; '' for marks before version 9.
    central  TEXT NOT NULL,
    node     TEXT NOT NULL,
    -- The database as `postgresql://user@host:port/db` (never a password).
    display  TEXT NOT NULL,
    first_ms INTEGER NOT NULL,
    UNIQUE (central, node)
);

INSERT INTO push_targets (id, central, node, display, first_ms)
SELECT 1, '', '', 'a central database pushed to before version 9', min(pushed_ms)
FROM window_pushes HAVING count(*) > 0;

CREATE TABLE window_pushes_v9 (
    window_id INTEGER NOT NULL REFERENCES windows(id) ON DELETE CASCADE,
    target_id INTEGER NOT NULL REFERENCES push_targets(id),
    pushed_ms INTEGER NOT NULL,
    refused   TEXT,
    -- Refusals in a row, and when the window is tried again (refused only).
    attempts  INTEGER NOT NULL DEFAULT 0,
    retry_ms  INTEGER,
    CHECK ((refused IS NULL) = (retry_ms IS NULL)),
    PRIMARY KEY (window_id, target_id)
) WITHOUT ROWID;

INSERT INTO window_pushes_v9 (window_id, target_id, pushed_ms, refused, attempts, retry_ms)
SELECT window_id, 1, pushed_ms, refused,
       CASE WHEN refused IS NULL THEN 0 ELSE 1 END,
       CASE WHEN refused IS NULL THEN NULL ELSE 0 END
FROM window_pushes ORDER BY window_id;

DROP TABLE window_pushes;
ALTER TABLE window_pushes_v9 RENAME TO window_pushes;

ALTER TABLE push_state ADD COLUMN target_id INTEGER REFERENCES push_targets(id);
-- Of dropped_unpushed, the windows the central database had refused.
ALTER TABLE push_state ADD COLUMN dropped_refused INTEGER NOT NULL DEFAULT 0;
UPDATE push_state SET target_id = (SELECT id FROM push_targets WHERE id = 1);
