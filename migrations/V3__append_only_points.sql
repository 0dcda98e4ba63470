-- Version 3: points are written append-only.
--
-- The index data_points(window_id, ts_ms) made every tick dirty one index page
-- per recording window (each window's entries sit in their own part of the
-- B-tree), and a committed page is written whole to the WAL: at 100 to 1,000
-- recording windows, ~5 KB written per point for ~150 bytes stored, and most
-- of the tick's time. Point ids only grow, so a window's points lie between
-- its first and last point ids; that range, kept on the window, finds them
-- with a rowid range scan and no per-window index.
--
-- Invariant: every point of window w has w.first_point_id <= id, and, once
-- w is closed, id <= w.last_point_id. Points of other windows may sit in the
-- same range (recorded at the same time), so queries also test window_id.

ALTER TABLE windows ADD COLUMN first_point_id INTEGER;
ALTER TABLE windows ADD COLUMN last_point_id INTEGER;

UPDATE windows SET
    first_point_id = coalesce(
        (SELECT min(p.id) FROM data_points p WHERE p.window_id = windows.id),
        (SELECT coalesce(max(id), 0) + 1 FROM data_points)),
    last_point_id = CASE WHEN status <> 'recording' THEN coalesce(
        (SELECT max(p.id) FROM data_points p WHERE p.window_id = windows.id),
        (SELECT min(p.id) FROM data_points p WHERE p.window_id = windows.id) - 1,
        0) END;

DROP INDEX data_points_by_window;

-- The long-format view finds each window's points by its range.
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
JOIN resources r    ON r.id = w.resource_id
JOIN data_points p  ON p.id BETWEEN w.first_point_id
                               AND coalesce(w.last_point_id, 9223372036854775807)
                   AND p.window_id = w.id
JOIN point_values v ON v.point_id = p.id
JOIN metrics m      ON m.id = v.metric_id;
