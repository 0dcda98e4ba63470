-- incident-recorder central (fleet) schema, version 3: notes on windows.
--
-- Notes people wrote on a window (`incident-recorder note`), with their time
-- and author. They arrive with their window and, when written after it was
-- pushed, on their own at a later push; a note arriving twice is stored once
-- (the unique index: window, time, author and text, by its md5).
--
-- Additive: pushers of versions 1 and 2 write here as before (without notes).

CREATE TABLE window_notes (
    window_id bigint NOT NULL REFERENCES windows(id) ON DELETE CASCADE,
    at_ms     bigint NOT NULL,
    author    text NOT NULL,
    text      text NOT NULL
);
CREATE UNIQUE INDEX window_notes_once ON window_notes (window_id, at_ms, author, md5(text));
