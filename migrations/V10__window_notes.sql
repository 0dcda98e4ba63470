-- Store version 10: notes on a window ("rebooted db-02 at 10:40"), with their
-- time and author: an incident's timeline written by the people handling it
-- (`incident-recorder note ID TEXT`, docs/schema.md).
--
-- A note belongs to its window alone: deleting the window (retention, the
-- window limit, `delete`, or a plain `DELETE FROM windows`) deletes its notes.
-- The same note (window, time, author, text) is stored once, so importing an
-- export again adds nothing; the unique index also finds a window's notes.
CREATE TABLE window_notes (
    id        INTEGER PRIMARY KEY,
    window_id INTEGER NOT NULL REFERENCES windows(id) ON DELETE CASCADE,
    at_ms     INTEGER NOT NULL,
    author    TEXT NOT NULL,
    text      TEXT NOT NULL,
    UNIQUE (window_id, at_ms, author, text)
);

-- Which notes a push target (push_targets) has: a note written on a window
-- after the window was pushed goes on its own at the next push. Deleted with
-- its note.
CREATE TABLE note_pushes (
    note_id   INTEGER NOT NULL REFERENCES window_notes(id) ON DELETE CASCADE,
    target_id INTEGER NOT NULL REFERENCES push_targets(id),
    PRIMARY KEY (note_id, target_id)
) WITHOUT ROWID;
