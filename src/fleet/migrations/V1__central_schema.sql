-- incident-recorder central (fleet) schema, version 1. PostgreSQL 13 or newer.
--
-- Every node pushes its closed windows here (src/fleet/, `incident-recorder
-- push`). The tables mirror the local SQLite ones (docs/schema.md): same
-- names, same columns, times in Unix milliseconds (`*_ms`). What differs:
--
-- * Natural keys carry the node: resources are unique by (node, external_id),
--   windows by (node, public_id). Two nodes with the same window ids never
--   collide, and a re-push of a window adds nothing (the pusher inserts with
--   ON CONFLICT DO NOTHING inside the transaction that holds the window).
-- * Rows are keyed by ids assigned here: a node's local row ids are not
--   unique across nodes, nor stable (a re-created local database reuses
--   them). Rows under a window hang from its central `windows.id`.
-- * `metrics` is one dictionary for the fleet: a name means the same metric
--   on every node, so fleet-wide queries compare like with like.
-- * point_values also holds its point's time, as timestamptz, and has no
--   unique index, so TimescaleDB can make it a hypertable (README).
-- * data_points and point_values, the big tables, have no foreign key to
--   windows: COPY fills them without a lookup per row (measured: the key on
--   data_points alone made a push 30% slower, BENCHMARKS.md). A window's
--   points and values only ever arrive with the window, in one transaction;
--   whoever deletes a window deletes its rows there by window_id.
--
-- A later version must stay writable by pushers that know only the earlier
-- ones (add tables, nullable columns, indexes), or raise fleet_writers.

-- The oldest schema version a pusher must know to write here.
CREATE TABLE fleet_writers (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    min_version integer NOT NULL
);
INSERT INTO fleet_writers (min_version) VALUES (1);

-- Monitored things, per node.
CREATE TABLE resources (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    node        text NOT NULL,
    external_id text NOT NULL,
    name        text,
    type        text,
    UNIQUE (node, external_id)
);

-- Metric names, shared by the fleet.
CREATE TABLE metrics (
    id   integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE
);

-- One row per pushed (closed) window.
CREATE TABLE windows (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    node           text NOT NULL,
    public_id      text NOT NULL,
    resource_id    bigint NOT NULL REFERENCES resources(id),
    trigger_type   text NOT NULL
                   CHECK (trigger_type IN ('alert', 'anomaly', 'focus', 'manual')),
    trigger_id     text,
    start_ms       bigint NOT NULL,
    end_ms         bigint NOT NULL,
    deadline_ms    bigint NOT NULL,
    status         text NOT NULL
                   CHECK (status IN ('complete', 'truncated', 'interrupted')),
    opened_ms      bigint NOT NULL,
    summary_points bigint,
    duration_ms    bigint,
    -- When the window arrived here (the central clock).
    pushed_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (node, public_id)
);
CREATE INDEX windows_by_start ON windows (start_ms);
CREATE INDEX windows_by_end ON windows (end_ms);
CREATE INDEX windows_by_resource ON windows (resource_id, start_ms);

-- Every trigger that opened or extended a window.
CREATE TABLE window_triggers (
    window_id     bigint NOT NULL REFERENCES windows(id) ON DELETE CASCADE,
    trigger_type  text NOT NULL
                  CHECK (trigger_type IN ('alert', 'anomaly', 'focus', 'manual')),
    trigger_id    text,
    fired_ms      bigint NOT NULL,
    resolved_ms   bigint,
    opened_window boolean NOT NULL
);
CREATE INDEX window_triggers_by_window ON window_triggers (window_id);

-- One row per sample: point_no numbers a window's points from 0 in time order
-- (no foreign key, see above).
CREATE TABLE data_points (
    window_id bigint NOT NULL,
    point_no  integer NOT NULL,
    ts_ms     bigint NOT NULL,
    metadata  jsonb,
    PRIMARY KEY (window_id, point_no)
);

-- The values of each sample, one row per metric (no foreign key, see above).
CREATE TABLE point_values (
    window_id bigint NOT NULL,
    point_no  integer NOT NULL,
    metric_id integer NOT NULL,
    ts        timestamptz NOT NULL,
    value     double precision NOT NULL
);
CREATE INDEX point_values_by_window ON point_values (window_id, metric_id);

-- The summary of each window, per metric.
CREATE TABLE window_metric_stats (
    window_id bigint NOT NULL REFERENCES windows(id) ON DELETE CASCADE,
    metric_id integer NOT NULL REFERENCES metrics(id),
    samples   bigint NOT NULL,
    peak      double precision NOT NULL,
    low       double precision NOT NULL,
    average   double precision NOT NULL,
    change    double precision NOT NULL,
    p50       double precision NOT NULL,
    p95       double precision NOT NULL,
    p99       double precision NOT NULL,
    PRIMARY KEY (window_id, metric_id)
);

-- Samples that stood out from each window's pre-incident baseline.
CREATE TABLE window_anomalies (
    window_id   bigint NOT NULL REFERENCES windows(id) ON DELETE CASCADE,
    metric_id   integer REFERENCES metrics(id),
    ts_ms       bigint,
    value       double precision,
    score       double precision,
    description text NOT NULL
);
CREATE INDEX window_anomalies_by_window ON window_anomalies (window_id);

-- Long format, as the local view, with the node first.
CREATE VIEW incident_samples AS
SELECT w.node                                    AS node,
       w.public_id                               AS window_id,
       r.external_id                             AS resource_id,
       r.name                                    AS resource_name,
       w.trigger_type                            AS trigger_type,
       w.status                                  AS status,
       (extract(epoch FROM v.ts) * 1000)::bigint AS ts_ms,
       v.ts                                      AS ts,
       m.name                                    AS metric,
       v.value                                   AS value
FROM point_values v
JOIN windows w   ON w.id = v.window_id
JOIN resources r ON r.id = w.resource_id
JOIN metrics m   ON m.id = v.metric_id;
