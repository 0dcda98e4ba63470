-- Version 5: input that can be replayed, and buffers that survive a clean stop.
--
-- Re-ingesting a file must add nothing: a trigger already recorded (same
-- resource, type, id and time) is skipped, which needs its rows found by
-- resource and time. Triggers are rare, so this index costs nothing per tick.
CREATE INDEX window_triggers_by_resource ON window_triggers (resource_id, fired_ms);

-- What a recorder leaves when it stops cleanly, for the next one to pick up
-- (and delete) when it opens: its time, and the pre-incident buffer of every
-- resource. A crash leaves nothing here, which is how the next recorder tells
-- a clean stop from a crash. At most one row.
CREATE TABLE recorder_stops (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    stopped_ms INTEGER NOT NULL,
    -- The recorder's time when it stopped: the newest time it had seen
    -- (for an ingest, the latest line time).
    time_ms    INTEGER NOT NULL
);

-- One row per resource of the stopped recorder's buffers. `samples` is the
-- ring in a compact binary form (see src/buffer.rs, `RingBuffer::save`):
-- metric names, then per row the time and one 8-byte value per column.
CREATE TABLE saved_buffers (
    resource TEXT PRIMARY KEY,
    name     TEXT,
    type     TEXT,
    samples  BLOB NOT NULL
);

-- Resolves and stops as they came, matched or not, so that replayed input
-- repeats none of them: in a merged feed, a stop dated 10:05 may come
-- before the lagging trigger dated 10:04 that opens the window it would
-- stop, and a replay must not stop that window. Deleted with retention.
CREATE TABLE control_events (
    id         INTEGER PRIMARY KEY,
    resource   TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('resolve', 'stop')),
    trigger_id TEXT,
    at_ms      INTEGER NOT NULL,
    matched    INTEGER NOT NULL CHECK (matched IN (0, 1))
);
CREATE UNIQUE INDEX control_events_once
    ON control_events (resource, kind, coalesce(trigger_id, ''), at_ms);
CREATE INDEX control_events_by_time ON control_events (at_ms);
