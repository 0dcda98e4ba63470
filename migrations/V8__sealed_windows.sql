-- Version 8: a closed window's values lie together; recent points are a journal.
--
-- Up to version 7 every point stayed where the tick had appended it, among
-- the points of every window recording at the same time: reading a window
-- (or one metric of many windows) visited a page per point, and the view's
-- recording branch scanned all values. The tick still appends, since that is
-- what keeps its writes small (see V3), but only into a journal:
--
-- - `recent_points` / `recent_values`: the points of windows that are
--   recording (and of windows just closed, until they are sealed), in the
--   order the recorder wrote them. `windows.recent_from` is the first
--   journal id a window still has there; ids below the smallest
--   `recent_from` belong to sealed windows only and are deleted (purged) in
--   order, so the journal holds only the last minutes.
-- - `window_series` / `series_values`: a sealed window's values, one run of
--   consecutive `series_values` ids per (window, metric), in time order:
--   reading a window or one of its metrics is a range of rowids. Times are
--   stored as offsets from the window's trigger (`opened_ms`), 3 bytes
--   instead of 6; the view adds them back.
-- - `point_metadata`: the metadata of sealed points that have some.
-- - `window_closes`: closes decided by the tick and not yet done. Closing
--   (sealing, summary, anomalies) happens off the tick, in transactions of
--   its own, and a window's status changes in the same transaction as its
--   summary appears; a crash in between leaves the decision here for the
--   next recorder.
--
-- Invariants: a window has `recent_from` NULL exactly when all its points
-- are sealed; a window that is not 'recording' is sealed, with its summary;
-- the runs of a (window, metric) do not overlap and ascend in time.

CREATE TABLE recent_points (
    -- AUTOINCREMENT: ids are never reused, even once the journal is purged
    -- empty, so a window's journal points always follow its recent_from.
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    -- No foreign key: a sealed window may be trimmed before its journal
    -- rows are purged; they are unreachable then (below every recent_from).
    window_id INTEGER NOT NULL,
    ts_ms     INTEGER NOT NULL,
    metadata  TEXT CHECK (metadata IS NULL OR json_valid(metadata))
);

CREATE TABLE recent_values (
    point_id  INTEGER NOT NULL REFERENCES recent_points(id),
    metric_id INTEGER NOT NULL REFERENCES metrics(id),
    value     REAL NOT NULL,
    PRIMARY KEY (point_id, metric_id)
) WITHOUT ROWID;

CREATE TABLE window_series (
    window_id      INTEGER NOT NULL REFERENCES windows(id) ON DELETE CASCADE,
    metric_id      INTEGER NOT NULL REFERENCES metrics(id),
    first_value_id INTEGER NOT NULL,
    last_value_id  INTEGER NOT NULL,
    CHECK (first_value_id <= last_value_id),
    PRIMARY KEY (window_id, metric_id, first_value_id)
) WITHOUT ROWID;

CREATE TABLE series_values (
    id        INTEGER PRIMARY KEY,
    offset_ms INTEGER NOT NULL,
    value     REAL NOT NULL
);

CREATE TABLE point_metadata (
    window_id INTEGER NOT NULL REFERENCES windows(id) ON DELETE CASCADE,
    offset_ms INTEGER NOT NULL,
    metadata  TEXT NOT NULL CHECK (json_valid(metadata)),
    PRIMARY KEY (window_id, offset_ms)
) WITHOUT ROWID;

CREATE TABLE window_closes (
    window_id  INTEGER PRIMARY KEY REFERENCES windows(id) ON DELETE CASCADE,
    status     TEXT NOT NULL CHECK (status IN ('complete', 'truncated', 'interrupted')),
    end_ms     INTEGER NOT NULL
);

-- The closed windows' values, metric by metric in time order, numbered so
-- that each (window, metric) is one run.
CREATE TEMP TABLE sealed AS
SELECT row_number() OVER (ORDER BY x.window_id, v.metric_id, p.ts_ms, p.id) AS id,
       x.window_id AS window_id, v.metric_id AS metric_id,
       p.ts_ms - w.opened_ms AS offset_ms, v.value AS value
FROM window_points x
JOIN windows w      ON w.id = x.window_id
JOIN data_points p  ON p.id = x.point_id
JOIN point_values v ON v.point_id = p.id;

INSERT INTO series_values (id, offset_ms, value)
SELECT id, offset_ms, value FROM sealed ORDER BY id;

INSERT INTO window_series (window_id, metric_id, first_value_id, last_value_id)
SELECT window_id, metric_id, min(id), max(id) FROM sealed
GROUP BY window_id, metric_id ORDER BY window_id, metric_id;

DROP TABLE sealed;

INSERT INTO point_metadata (window_id, offset_ms, metadata)
SELECT x.window_id, p.ts_ms - w.opened_ms, p.metadata
FROM window_points x
JOIN windows w     ON w.id = x.window_id
JOIN data_points p ON p.id = x.point_id
WHERE p.metadata IS NOT NULL
ORDER BY x.window_id, p.ts_ms - w.opened_ms;

-- Recording windows keep their points in the journal, under the same ids.
INSERT INTO recent_points (id, window_id, ts_ms, metadata)
SELECT p.id, p.window_id, p.ts_ms, p.metadata
FROM windows w JOIN data_points p ON p.id >= w.first_point_id AND p.window_id = w.id
WHERE w.status = 'recording'
ORDER BY p.id;

INSERT INTO recent_values (point_id, metric_id, value)
SELECT v.point_id, v.metric_id, v.value
FROM recent_points p JOIN point_values v ON v.point_id = p.id
ORDER BY v.point_id, v.metric_id;

DROP VIEW incident_samples;
DROP TABLE window_points;
DROP TABLE point_values;
DROP TABLE data_points;

ALTER TABLE windows ADD COLUMN recent_from INTEGER;
UPDATE windows SET recent_from = first_point_id WHERE status = 'recording';
ALTER TABLE windows DROP COLUMN first_point_id;
ALTER TABLE windows DROP COLUMN last_point_id;

-- The journal's horizon (min(recent_from)) and the windows still in it.
CREATE INDEX windows_in_recent ON windows (recent_from) WHERE recent_from IS NOT NULL;

-- Long format: sealed runs by rowid range, journal points by their range.
CREATE VIEW incident_samples AS
SELECT w.public_id                                             AS window_id,
       r.external_id                                           AS resource_id,
       r.name                                                  AS resource_name,
       w.trigger_type                                          AS trigger_type,
       w.status                                                AS status,
       w.opened_ms + v.offset_ms                               AS ts_ms,
       strftime('%Y-%m-%dT%H:%M:%fZ', (w.opened_ms + v.offset_ms) / 1000.0, 'unixepoch') AS ts,
       m.name                                                  AS metric,
       v.value                                                 AS value
FROM windows w
JOIN resources r     ON r.id = w.resource_id
JOIN window_series s ON s.window_id = w.id
JOIN metrics m       ON m.id = s.metric_id
JOIN series_values v ON v.id BETWEEN s.first_value_id AND s.last_value_id
UNION ALL
SELECT w.public_id, r.external_id, r.name, w.trigger_type, w.status, p.ts_ms,
       strftime('%Y-%m-%dT%H:%M:%fZ', p.ts_ms / 1000.0, 'unixepoch'),
       m.name, v.value
FROM windows w
JOIN resources r           ON r.id = w.resource_id
-- CROSS JOIN keeps this order: the journal has no index by window or
-- metric, so it is read through each window's range, never scanned.
CROSS JOIN recent_points p ON p.id >= w.recent_from AND p.window_id = w.id
CROSS JOIN recent_values v ON v.point_id = p.id
JOIN metrics m             ON m.id = v.metric_id
WHERE w.recent_from IS NOT NULL;
