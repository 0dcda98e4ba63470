-- incident-recorder central (fleet) schema, version 4: what changed most,
-- and the alert's own words (issue 20; the local store's version 12).
--
-- The same columns as locally (docs/schema.md, `window_metric_stats` and
-- `window_triggers`), so a fleet query can rank a window's metrics with
-- `ORDER BY change_rank`, or every node's with `ORDER BY abs(change_score)`.
-- An alert's labels and annotations are `jsonb` here, as `data_points.metadata`
-- is (locally they are JSON text, as SQLite has no JSON type): fleet queries
-- read them with `->>` and can index them (`labels->>'severity'`).
--
-- Windows pushed before this version keep the new columns NULL: a window is
-- pushed once and never rewritten (exactly once), so its central rows stay
-- as they arrived. Windows pushed from now on carry them, including those
-- closed locally before the store's version 12, whose scores the pusher
-- reads as `show` does (computed from the points).
--
-- Additive: pushers of versions 1 to 3 write here as before (NULLs).

ALTER TABLE window_metric_stats ADD COLUMN change_score double precision;
ALTER TABLE window_metric_stats ADD COLUMN change_rank integer;
ALTER TABLE window_metric_stats ADD COLUMN change_unscored text;

ALTER TABLE window_triggers ADD COLUMN labels jsonb;
ALTER TABLE window_triggers ADD COLUMN annotations jsonb;
ALTER TABLE window_triggers ADD COLUMN rule text;
ALTER TABLE window_triggers ADD COLUMN ends_ms bigint;
