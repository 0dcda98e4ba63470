-- Version 11: values are rows that say whose they are (issue 19).
--
-- Up to version 10 a sealed value (`series_values`) belonged to a window and
-- a metric only through its rowid falling inside a `window_series` range,
-- and `incident_samples` was a UNION ALL of the sealed runs and the journal,
-- which SQLite cannot flatten: a query naming its window through a
-- subquery or a join read every window's values. Now:
--
-- - `series`: one metric of one window over one sealed stretch of time
--   (a window has a series row per metric per seal). Ids only grow, so the
--   values of each seal are appended at the end of `samples`.
-- - `samples`: a value, keyed by its series and its time, stored as the
--   offset from the series' start (`series.from_ms`): a few bytes.
-- - `recent_points` / `recent_values`: the journal, as before, now with
--   foreign keys that cascade. It holds the newest points of recording
--   windows (seconds of them: the closer seals it as a whole every few
--   seconds or points, see docs/schema.md); `recent_points.window_id` has
--   no index on purpose (the tick appends to the journal on every tick, and
--   an index by window would dirty a page per recording window), so
--   deleting a window scans the journal, which is bounded.
-- - `incident_samples`: a plain join over the sealed tables, which SQLite
--   flattens into the query. A recording window's newest points are in the
--   journal until the next seal.
--
-- Everything of a window hangs from `windows` by keys with ON DELETE
-- CASCADE: `DELETE FROM windows WHERE ...` removes all of it.

CREATE TABLE series (
    id        INTEGER PRIMARY KEY,
    window_id INTEGER NOT NULL REFERENCES windows(id) ON DELETE CASCADE,
    metric_id INTEGER NOT NULL REFERENCES metrics(id),
    -- Time of the stretch's first value (ms since the epoch).
    from_ms   INTEGER NOT NULL
);
-- For the cascade from windows, and "one metric of a window".
CREATE INDEX series_by_window ON series (window_id, metric_id, from_ms);

CREATE TABLE samples (
    series_id INTEGER NOT NULL REFERENCES series(id) ON DELETE CASCADE,
    -- ms after series.from_ms.
    offset_ms INTEGER NOT NULL,
    value     REAL NOT NULL,
    PRIMARY KEY (series_id, offset_ms)
) WITHOUT ROWID;

-- Version 10's runs become series. A run holds one metric of a window in
-- time order; should two of its values share a time, the second goes to a
-- series of its own (`copy`), as a seal does, so no value is lost.
CREATE TEMP TABLE v10_values AS
SELECT s.window_id AS window_id, s.metric_id AS metric_id, s.first_value_id AS run,
       v.offset_ms AS offset_ms, v.value AS value,
       row_number() OVER (PARTITION BY s.first_value_id, v.offset_ms ORDER BY v.id) AS copy
FROM window_series s
JOIN series_values v ON v.id BETWEEN s.first_value_id AND s.last_value_id;

CREATE TEMP TABLE v10_series AS
SELECT row_number() OVER (ORDER BY x.run, x.copy) AS id, x.window_id AS window_id,
       x.metric_id AS metric_id, x.run AS run, x.copy AS copy,
       x.first_offset AS first_offset, w.opened_ms + x.first_offset AS from_ms
FROM (SELECT window_id, metric_id, run, copy, min(offset_ms) AS first_offset
      FROM v10_values GROUP BY run, copy) x
JOIN windows w ON w.id = x.window_id;

INSERT INTO series (id, window_id, metric_id, from_ms)
SELECT id, window_id, metric_id, from_ms FROM v10_series ORDER BY id;

INSERT INTO samples (series_id, offset_ms, value)
SELECT s.id, v.offset_ms - s.first_offset, v.value
FROM v10_values v JOIN v10_series s ON s.run = v.run AND s.copy = v.copy
ORDER BY s.id, v.offset_ms;

DROP TABLE v10_series;
DROP TABLE v10_values;

-- The journal, with foreign keys: only the points of windows that still
-- have some (from their recent_from on) move; rows behind every
-- recent_from were sealed already and waited for a purge.
CREATE TEMP TABLE v10_sequence AS
SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'recent_points'), 0),
           coalesce((SELECT max(id) FROM recent_points), 0)) AS seq;

CREATE TABLE recent_points_v11 (
    -- AUTOINCREMENT: ids are never reused, even once the journal is sealed
    -- empty, so a window's journal points always follow its recent_from.
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Deliberately no index (see above).
    window_id INTEGER NOT NULL REFERENCES windows(id) ON DELETE CASCADE,
    ts_ms     INTEGER NOT NULL,
    metadata  TEXT CHECK (metadata IS NULL OR json_valid(metadata))
);

CREATE TABLE recent_values_v11 (
    -- Renamed with its parent below: then REFERENCES recent_points(id).
    point_id  INTEGER NOT NULL REFERENCES recent_points_v11(id) ON DELETE CASCADE,
    metric_id INTEGER NOT NULL REFERENCES metrics(id),
    value     REAL NOT NULL,
    PRIMARY KEY (point_id, metric_id)
) WITHOUT ROWID;

INSERT INTO recent_points_v11 (id, window_id, ts_ms, metadata)
SELECT p.id, p.window_id, p.ts_ms, p.metadata
FROM windows w
JOIN recent_points p ON p.id >= w.recent_from AND p.window_id = w.id
WHERE w.recent_from IS NOT NULL
ORDER BY p.id;

INSERT INTO recent_values_v11 (point_id, metric_id, value)
SELECT v.point_id, v.metric_id, v.value
FROM recent_points_v11 p JOIN recent_values v ON v.point_id = p.id
ORDER BY v.point_id, v.metric_id;

-- Old tables first (nothing new refers to them), then the renames, which
-- rewrite recent_values_v11's reference to its parent's new name.
DROP VIEW incident_samples;
DROP TABLE recent_values;
DROP TABLE recent_points;
DROP TABLE window_series;
DROP TABLE series_values;
ALTER TABLE recent_points_v11 RENAME TO recent_points;
ALTER TABLE recent_values_v11 RENAME TO recent_values;

-- The high mark of point ids carries over.
DELETE FROM sqlite_sequence WHERE name = 'recent_points';
INSERT INTO sqlite_sequence (name, seq) SELECT 'recent_points', seq FROM v10_sequence;
DROP TABLE v10_sequence;

-- Long format: a plain join, flattened into each query that uses it. The
-- CROSS JOINs keep windows before series before samples in every plan:
-- without statistics SQLite otherwise may scan samples for a query that
-- bounds its windows by a range (tests/query_plans.rs has the shapes).
CREATE VIEW incident_samples AS
SELECT w.public_id                                          AS window_id,
       r.external_id                                        AS resource_id,
       r.name                                               AS resource_name,
       w.trigger_type                                       AS trigger_type,
       w.status                                             AS status,
       s.from_ms + v.offset_ms                              AS ts_ms,
       strftime('%Y-%m-%dT%H:%M:%fZ', (s.from_ms + v.offset_ms) / 1000.0, 'unixepoch') AS ts,
       m.name                                               AS metric,
       v.value                                              AS value
FROM windows w
JOIN resources r      ON r.id = w.resource_id
CROSS JOIN series s   ON s.window_id = w.id
CROSS JOIN samples v  ON v.series_id = s.id
JOIN metrics m        ON m.id = s.metric_id;
