-- incident-recorder schema, version 1.
--
-- Every column is documented in docs/schema.md. Timestamps are integer Unix
-- milliseconds UTC. Foreign keys are enforced (the store turns them on for every
-- connection) and deleting a window cascades to everything recorded under it.

-- Monitored things (hosts, VMs, containers...), named by the host application.
CREATE TABLE resources (
    id          INTEGER PRIMARY KEY,
    external_id TEXT NOT NULL UNIQUE,
    name        TEXT,
    type        TEXT
);

-- Dictionary of metric names, so each stored value carries a small integer.
CREATE TABLE metrics (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

-- One row per incident window. AUTOINCREMENT: window ids are never reused, even
-- after trimming deleted the newest rows, so a public id names one window forever.
CREATE TABLE windows (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id     TEXT NOT NULL UNIQUE,
    resource_id   INTEGER NOT NULL REFERENCES resources(id),
    trigger_type  TEXT NOT NULL
                  CHECK (trigger_type IN ('alert', 'anomaly', 'focus', 'manual')),
    trigger_id    TEXT,
    start_ms      INTEGER NOT NULL,
    end_ms        INTEGER,
    deadline_ms   INTEGER NOT NULL,
    status        TEXT NOT NULL
                  CHECK (status IN ('recording', 'complete', 'truncated', 'interrupted')),
    opened_ms     INTEGER NOT NULL,
    summary_points INTEGER,
    duration_ms   INTEGER,
    CHECK ((status = 'recording') = (end_ms IS NULL))
);
CREATE INDEX windows_by_resource ON windows (resource_id, start_ms);
CREATE INDEX windows_by_start ON windows (start_ms);
CREATE INDEX windows_by_end ON windows (end_ms) WHERE end_ms IS NOT NULL;
CREATE INDEX windows_recording ON windows (status) WHERE status = 'recording';

-- Every trigger that opened or extended a window, and when it cleared.
CREATE TABLE window_triggers (
    id            INTEGER PRIMARY KEY,
    window_id     INTEGER NOT NULL REFERENCES windows(id) ON DELETE CASCADE,
    trigger_type  TEXT NOT NULL
                  CHECK (trigger_type IN ('alert', 'anomaly', 'focus', 'manual')),
    trigger_id    TEXT,
    fired_ms      INTEGER NOT NULL,
    resolved_ms   INTEGER,
    opened_window INTEGER NOT NULL CHECK (opened_window IN (0, 1))
);
CREATE INDEX window_triggers_by_window ON window_triggers (window_id);

-- One row per sample recorded into a window.
CREATE TABLE data_points (
    id        INTEGER PRIMARY KEY,
    window_id INTEGER NOT NULL REFERENCES windows(id) ON DELETE CASCADE,
    ts_ms     INTEGER NOT NULL,
    metadata  TEXT CHECK (metadata IS NULL OR json_valid(metadata))
);
CREATE INDEX data_points_by_window ON data_points (window_id, ts_ms);

-- The values of a sample, one row per metric. WITHOUT ROWID: the primary key is
-- the only B-tree, and it also serves the cascade from data_points.
CREATE TABLE point_values (
    point_id  INTEGER NOT NULL REFERENCES data_points(id) ON DELETE CASCADE,
    metric_id INTEGER NOT NULL REFERENCES metrics(id),
    value     REAL NOT NULL,
    PRIMARY KEY (point_id, metric_id)
) WITHOUT ROWID;

-- The summary of a completed window, per metric.
CREATE TABLE window_metric_stats (
    window_id INTEGER NOT NULL REFERENCES windows(id) ON DELETE CASCADE,
    metric_id INTEGER NOT NULL REFERENCES metrics(id),
    samples   INTEGER NOT NULL,
    peak      REAL NOT NULL,
    low       REAL NOT NULL,
    average   REAL NOT NULL,
    change    REAL NOT NULL,
    p50       REAL NOT NULL,
    p95       REAL NOT NULL,
    p99       REAL NOT NULL,
    PRIMARY KEY (window_id, metric_id)
) WITHOUT ROWID;

-- Samples of a completed window that stand out from its pre-incident baseline.
CREATE TABLE window_anomalies (
    id          INTEGER PRIMARY KEY,
    window_id   INTEGER NOT NULL REFERENCES windows(id) ON DELETE CASCADE,
    metric_id   INTEGER REFERENCES metrics(id),
    ts_ms       INTEGER,
    value       REAL,
    score       REAL,
    description TEXT NOT NULL
);
CREATE INDEX window_anomalies_by_window ON window_anomalies (window_id);

-- Requests from other processes (`incident-recorder trigger`) for the running
-- recorder to open a window; it polls the pending ones every tick.
CREATE TABLE trigger_requests (
    id            INTEGER PRIMARY KEY,
    resource      TEXT NOT NULL,
    trigger_type  TEXT NOT NULL
                  CHECK (trigger_type IN ('alert', 'anomaly', 'focus', 'manual')),
    trigger_id    TEXT,
    requested_ms  INTEGER NOT NULL,
    handled_ms    INTEGER,
    window_id     TEXT,
    error         TEXT
);
CREATE INDEX trigger_requests_pending ON trigger_requests (id) WHERE handled_ms IS NULL;

-- Long format: one row per recorded value, for plain SQL and spreadsheets.
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
FROM data_points p
JOIN windows w      ON w.id = p.window_id
JOIN resources r    ON r.id = w.resource_id
JOIN point_values v ON v.point_id = p.id
JOIN metrics m      ON m.id = v.metric_id;
