//! Notes on windows (`window_notes`, migrations/V10): written by people (the
//! `note` command), read with the window, exported, imported and pushed with
//! it, deleted with it (a foreign key cascades, and `retention` deletes them
//! with the rest of a window).

use rusqlite::{Connection, params};

use super::Store;
use super::ids::WindowRow;
use crate::error::{Error, Result, clip};
use crate::model::{Timestamp, WindowNote};

/// Checks a note: text not empty (after trimming), at most
/// [`WindowNote::MAX_TEXT_BYTES`], no control characters but tabs (it is
/// printed by `show` and `context`); author not empty, at most
/// [`WindowNote::MAX_AUTHOR_BYTES`], no control characters; a storable time.
pub(crate) fn validate(note: &WindowNote) -> Result<()> {
    let bad = |what, reason: String| Err(Error::InvalidNote { what, reason });
    if note.text.trim().is_empty() {
        return bad("text", "it is empty".into());
    }
    if note.text.len() > WindowNote::MAX_TEXT_BYTES {
        return bad(
            "text",
            format!(
                "it is {} bytes, over the {}-byte limit",
                note.text.len(),
                WindowNote::MAX_TEXT_BYTES
            ),
        );
    }
    if note.text.chars().any(|c| c.is_control() && c != '\t') {
        return bad(
            "text",
            "it contains a control character (a note is one line)".into(),
        );
    }
    let author = &note.author;
    if author.trim().is_empty() {
        return bad("author", "it is empty".into());
    }
    if author.len() > WindowNote::MAX_AUTHOR_BYTES {
        return bad(
            "author",
            format!("{:?} is longer than 256 bytes", clip(author)),
        );
    }
    if author.chars().any(char::is_control) {
        return bad(
            "author",
            format!("{:?} contains a control character", clip(author)),
        );
    }
    crate::validate::storable(note.at)
}

/// A window's notes, oldest first.
pub(super) fn notes(conn: &Connection, window: WindowRow) -> Result<Vec<WindowNote>> {
    let notes = conn
        .prepare_cached(
            "SELECT at_ms, author, text FROM window_notes WHERE window_id = ?1
             ORDER BY at_ms, id",
        )?
        .query_map([window], |r| {
            Ok(WindowNote {
                at: Timestamp::from_unix_ms(r.get(0)?),
                author: r.get(1)?,
                text: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(notes)
}

/// Stores `notes` on `window`, skipping those it already has; returns how
/// many were new. The notes must have been validated.
pub(super) fn insert(conn: &Connection, window: WindowRow, notes: &[WindowNote]) -> Result<usize> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO window_notes (window_id, at_ms, author, text) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT DO NOTHING",
    )?;
    let mut added = 0;
    for n in notes {
        added += stmt.execute(params![window, n.at.as_unix_ms(), n.author, n.text])?;
    }
    Ok(added)
}

impl Store {
    /// Writes `note` on window `id` (recording or closed). Returns `false`,
    /// changing nothing, if the window already has this note (same time,
    /// author and text). A window that does not exist is
    /// [`Error::WindowNotFound`]; a bad note [`Error::InvalidNote`].
    ///
    /// Works beside a running recorder (one short transaction, like an
    /// import): a note is the people's, never the recorder's.
    pub fn add_note(&self, id: &str, note: &WindowNote) -> Result<bool> {
        validate(note)?;
        if self.read_only {
            return Err(Error::Unavailable("the store was opened read-only"));
        }
        let conn = self.conn()?;
        let _turn = self.gate.patient();
        let tx =
            rusqlite::Transaction::new_unchecked(&conn, rusqlite::TransactionBehavior::Immediate)?;
        let row = WindowRow::of(&tx, id)?;
        let added = insert(&tx, row, std::slice::from_ref(note))?;
        tx.commit()?;
        Ok(added == 1)
    }
}

/// A note a push target lacks: its row, its window's public id, the note.
pub(crate) struct NoteToPush {
    pub(crate) row: i64,
    pub(crate) window: String,
    pub(crate) note: WindowNote,
}

impl Store {
    /// Up to `limit` notes on windows `target` holds that it has not been
    /// sent (written after their window was pushed), oldest first.
    pub(crate) fn notes_to_push(
        &self,
        target: super::PushTarget,
        limit: usize,
    ) -> Result<Vec<NoteToPush>> {
        let conn = self.conn()?;
        let notes = conn
            .prepare_cached(
                "SELECT n.id, w.public_id, n.at_ms, n.author, n.text
                 FROM window_notes n
                 JOIN window_pushes p ON p.window_id = n.window_id
                                     AND p.target_id = ?1 AND p.refused IS NULL
                 JOIN windows w ON w.id = n.window_id
                 WHERE NOT EXISTS (SELECT 1 FROM note_pushes q
                                   WHERE q.note_id = n.id AND q.target_id = ?1)
                 ORDER BY n.id LIMIT ?2",
            )?
            .query_map(params![target.0, limit as i64], |r| {
                Ok(NoteToPush {
                    row: r.get(0)?,
                    window: r.get(1)?,
                    note: WindowNote {
                        at: Timestamp::from_unix_ms(r.get(2)?),
                        author: r.get(3)?,
                        text: r.get(4)?,
                    },
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(notes)
    }

    /// Marks notes as held by `target` (after the central transaction
    /// holding them committed).
    pub(crate) fn mark_notes_pushed(&self, target: super::PushTarget, rows: &[i64]) -> Result<()> {
        let conn = self.conn()?;
        let _turn = self.gate.patient();
        let tx =
            rusqlite::Transaction::new_unchecked(&conn, rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO note_pushes (note_id, target_id) VALUES (?1, ?2)
                 ON CONFLICT DO NOTHING",
            )?;
            for &row in rows {
                stmt.execute(params![row, target.0])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TriggerType;

    fn note(text: &str, author: &str) -> WindowNote {
        WindowNote {
            at: Timestamp::from_unix_ms(1_795_514_400_000),
            author: author.into(),
            text: text.into(),
        }
    }

    #[test]
    fn bad_notes_are_refused_with_their_reason() {
        for (n, needle) in [
            (note("", "ops"), "empty"),
            (note("  ", "ops"), "empty"),
            (note("a\nb", "ops"), "control character"),
            (note("\u{1b}[31mred", "ops"), "control character"),
            (note(&"x".repeat(4097), "ops"), "4096-byte limit"),
            (note("ok", ""), "empty"),
            (note("ok", &"a".repeat(257)), "256 bytes"),
            (note("ok", "a\u{7}"), "control character"),
        ] {
            let e = validate(&n).unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
        validate(&note("rebooted db-02\tat 10:40", "ops")).unwrap();
        validate(&note(&"x".repeat(4096), "ops")).unwrap();
    }

    #[test]
    fn a_note_goes_on_an_existing_window_once() {
        let store = Store::open_in_memory().unwrap();
        let n = note("rebooted db-02 at 10:40", "alice");
        assert!(matches!(
            store.add_note("iw-nope", &n),
            Err(Error::WindowNotFound(_))
        ));
        let w = crate::IncidentWindow {
            id: crate::WindowId::new("iw-1"),
            resource_id: "db-02".into(),
            resource_name: None,
            resource_type: None,
            trigger_type: TriggerType::Manual,
            trigger_id: None,
            trigger_time: None,
            start_time: n.at,
            end_time: Some(n.at),
            deadline: None,
            status: crate::WindowStatus::Complete,
            triggers: Vec::new(),
            notes: Vec::new(),
            data_points: Vec::new(),
            summary: None,
        };
        assert!(store.import_window(&w).unwrap());
        assert!(store.add_note("iw-1", &n).unwrap());
        assert!(!store.add_note("iw-1", &n).unwrap());
        assert_eq!(store.window("iw-1").unwrap().unwrap().notes, vec![n]);
    }
}
