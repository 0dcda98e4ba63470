-- Version 2: trigger rate limits.
--
-- A trigger over `max_windows_per_resource_per_day` is recorded but opens no
-- window, so `window_triggers` gains the resource it fired for and a
-- `suppressed` flag, and `window_id` becomes NULL for suppressed rows.
-- SQLite cannot drop a NOT NULL constraint in place: the table is rebuilt
-- (https://www.sqlite.org/lang_altertable.html#otheralter) and its rows copied.

CREATE TABLE window_triggers_v2 (
    id            INTEGER PRIMARY KEY,
    window_id     INTEGER REFERENCES windows(id) ON DELETE CASCADE,
    resource_id   INTEGER NOT NULL REFERENCES resources(id),
    trigger_type  TEXT NOT NULL
                  CHECK (trigger_type IN ('alert', 'anomaly', 'focus', 'manual')),
    trigger_id    TEXT,
    fired_ms      INTEGER NOT NULL,
    resolved_ms   INTEGER,
    opened_window INTEGER NOT NULL CHECK (opened_window IN (0, 1)),
    suppressed    INTEGER NOT NULL DEFAULT 0 CHECK (suppressed IN (0, 1)),
    CHECK ((window_id IS NULL) = (suppressed = 1)),
    CHECK (suppressed = 0 OR opened_window = 0)
);

INSERT INTO window_triggers_v2
    (id, window_id, resource_id, trigger_type, trigger_id, fired_ms, resolved_ms, opened_window, suppressed)
SELECT t.id, t.window_id, w.resource_id, t.trigger_type, t.trigger_id, t.fired_ms, t.resolved_ms,
       t.opened_window, 0
FROM window_triggers t JOIN windows w ON w.id = t.window_id;

DROP TABLE window_triggers;
ALTER TABLE window_triggers_v2 RENAME TO window_triggers;
CREATE INDEX window_triggers_by_window ON window_triggers (window_id);
CREATE INDEX window_triggers_suppressed ON window_triggers (resource_id, fired_ms) WHERE suppressed = 1;

-- Counting a resource's recent windows for the rate limit.
CREATE INDEX windows_by_resource_opened ON windows (resource_id, opened_ms);
