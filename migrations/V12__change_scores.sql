-- Store version 12: what changed most, and the alert's own words
-- (issue 20; docs/schema.md).
--
-- Each metric of a closed window gets a change score (the median shift of
-- its values after the trigger from its pre-trigger baseline, in MADs of
-- that baseline: src/change.rs) and its rank among the window's metrics
-- (1 moved most), or, for a metric that cannot be scored, why not. Rows of
-- windows closed before this version have all three NULL: their scores are
-- computed from the points when the window is read.
ALTER TABLE window_metric_stats ADD COLUMN change_score REAL;
ALTER TABLE window_metric_stats ADD COLUMN change_rank INTEGER;
ALTER TABLE window_metric_stats ADD COLUMN change_unscored TEXT;

-- A trigger's own words: an Alertmanager alert's labels and annotations
-- (JSON objects of strings, bounded), a watch rule's expression, and the
-- `endsAt` a resolve gave. NULL where the trigger had none.
ALTER TABLE window_triggers ADD COLUMN labels TEXT;
ALTER TABLE window_triggers ADD COLUMN annotations TEXT;
ALTER TABLE window_triggers ADD COLUMN rule TEXT;
ALTER TABLE window_triggers ADD COLUMN ends_ms INTEGER;
