-- Store version 13: what was running (issue 20 part 3; docs/schema.md).
--
-- Snapshots of a window's top processes (the top K by CPU and the top K by
-- resident memory, K = 10 by default): from the recorder's ring when the
-- window opens (the buffered minutes before the trigger), then every N
-- samples while it records. One row per process per snapshot; deleted with
-- the window.
CREATE TABLE process_samples (
    window_id  INTEGER NOT NULL REFERENCES windows(id) ON DELETE CASCADE,
    ts_ms      INTEGER NOT NULL,
    pid        INTEGER NOT NULL,
    name       TEXT NOT NULL,
    cmdline    TEXT,
    user       TEXT,
    cpu        REAL NOT NULL,
    rss        INTEGER NOT NULL,
    read_bps   REAL,
    write_bps  REAL,
    PRIMARY KEY (window_id, ts_ms, pid)
) WITHOUT ROWID;
