-- incident-recorder central (fleet) schema, version 5: what was running
-- (issue 20 part 3; the local store's version 13, `process_samples`).
--
-- A window's process snapshots, the same columns as locally (docs/schema.md)
-- under the window's central id, so they carry the node through `windows`
-- like the other rows under a window. One row per process per snapshot; the
-- key (window, time, pid) is the local one. They arrive with their window,
-- in its transaction, by binary COPY, exactly once (a re-push adds nothing,
-- as the window row is never rewritten).
--
-- Windows pushed before this version keep none: a window is pushed once and
-- never rewritten, so their snapshots stay local.
--
-- Additive: pushers of versions 1 to 4 write here as before (no snapshots).

CREATE TABLE process_samples (
    window_id bigint NOT NULL REFERENCES windows(id) ON DELETE CASCADE,
    ts_ms     bigint NOT NULL,
    pid       bigint NOT NULL,
    name      text NOT NULL,
    cmdline   text,
    "user"    text,
    cpu       double precision NOT NULL,
    rss       bigint NOT NULL,
    read_bps  double precision,
    write_bps double precision,
    PRIMARY KEY (window_id, ts_ms, pid)
);
