-- Version 4: a closed window lists its points.
--
-- Since version 3 a window finds its points by scanning its id range, and
-- every point recorded at the same time by another window sits in that range
-- too: with 1,000 windows recording together, closing, reading or deleting one
-- of them scanned the points of all 1,000 (half a million rows for 500-point
-- windows), so a burst of completions stalled the recorder: 271 s for the tick
-- closing 1,000 such windows.
--
-- window_points is written once, when a window closes, in one batch of rows
-- that sit together (the primary key starts with the window), so it costs no
-- scattered page writes per tick. The recorder knows the ids of the points it
-- wrote; only a window it did not write (recovered after a restart, imported)
-- is found by its range, once, at close.
--
-- Invariant: a window that is not 'recording' has exactly one row here per
-- point (data_points.window_id = window_id); a recording window has none.
-- point_id has no foreign key: data_points is only deleted together with its
-- window, and a foreign key would need a second, scattered index on point_id.

CREATE TABLE window_points (
    window_id INTEGER NOT NULL REFERENCES windows(id) ON DELETE CASCADE,
    point_id  INTEGER NOT NULL,
    PRIMARY KEY (window_id, point_id)
) WITHOUT ROWID;

INSERT INTO window_points (window_id, point_id)
SELECT p.window_id, p.id
FROM data_points p JOIN windows w ON w.id = p.window_id
WHERE w.status <> 'recording'
ORDER BY p.window_id, p.id;

-- Closed windows through their list, recording ones through their range.
DROP VIEW incident_samples;
CREATE VIEW incident_samples AS
SELECT w.public_id                                             AS window_id,
       r.external_id                                           AS resource_id,
       r.name                                                  AS resource_name,
       w.trigger_type                                          AS trigger_type,
       w.status                                                AS status,
       p.ts_ms                                                 AS ts_ms,
       strftime('%Y-%m-%dT%H:%M:%fZ', p.ts_ms / 1000.0, 'unixepoch') AS ts,
       m.name                                                  AS metric,
       v.value                                                 AS value
FROM windows w
JOIN resources r     ON r.id = w.resource_id
JOIN window_points x ON x.window_id = w.id
JOIN data_points p   ON p.id = x.point_id
JOIN point_values v  ON v.point_id = p.id
JOIN metrics m       ON m.id = v.metric_id
WHERE w.status <> 'recording'
UNION ALL
SELECT w.public_id, r.external_id, r.name, w.trigger_type, w.status, p.ts_ms,
       strftime('%Y-%m-%dT%H:%M:%fZ', p.ts_ms / 1000.0, 'unixepoch'),
       m.name, v.value
FROM windows w
JOIN resources r    ON r.id = w.resource_id
JOIN data_points p  ON p.id >= w.first_point_id AND p.window_id = w.id
JOIN point_values v ON v.point_id = p.id
JOIN metrics m      ON m.id = v.metric_id
WHERE w.status = 'recording';
