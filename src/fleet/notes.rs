//! Notes written on a window after it was pushed: sent on their own.
//!
//! A window's notes go with it, in the transaction that holds it (see
//! `push.rs`). A note written later (`note ID TEXT` on a pushed window) is
//! found by the next push, or by a running pusher within its poll interval:
//! every note on a window the target holds that is not marked for the target
//! in `note_pushes`. It is inserted centrally under its window (a note
//! already there, by window, time, author and text, is not added again) and
//! marked once the insert committed, so a crash in between sends it again and
//! adds nothing.

use super::error::PushError;
use super::push::Session;
use crate::store::Store;

/// The notes of one statement.
const BATCH: usize = 1000;

const INSERT_NOTES: &str = "INSERT INTO window_notes (window_id, at_ms, author, text)
    SELECT w.id, u.at_ms, u.author, u.text
    FROM unnest($2::text[], $3::int8[], $4::text[], $5::text[])
         AS u(public_id, at_ms, author, text)
    JOIN windows w ON w.node = $1 AND w.public_id = u.public_id
    ON CONFLICT DO NOTHING";

impl Session {
    /// Sends the notes the central database lacks on windows it holds;
    /// returns how many it added.
    pub(crate) fn push_notes(&mut self, store: &Store) -> Result<u64, PushError> {
        let mut added = 0;
        loop {
            let notes = store.notes_to_push(self.target, BATCH)?;
            if notes.is_empty() {
                return Ok(added);
            }
            let windows: Vec<&str> = notes.iter().map(|n| n.window.as_str()).collect();
            let at: Vec<i64> = notes.iter().map(|n| n.note.at.as_unix_ms()).collect();
            let authors: Vec<&str> = notes.iter().map(|n| n.note.author.as_str()).collect();
            let texts: Vec<&str> = notes.iter().map(|n| n.note.text.as_str()).collect();
            added += self
                .central
                .client
                .execute(
                    INSERT_NOTES,
                    &[&self.node.as_str(), &windows, &at, &authors, &texts],
                )
                .map_err(|e| self.central.err("pushing notes", &e))?;
            let rows: Vec<i64> = notes.iter().map(|n| n.row).collect();
            store.mark_notes_pushed(self.target, &rows)?;
            if notes.len() < BATCH {
                return Ok(added);
            }
        }
    }
}
