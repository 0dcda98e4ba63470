//! What a clean stop leaves for the next recorder: its time and its
//! pre-incident buffers (`recorder_stops`, `saved_buffers`, see
//! `migrations/V5`).
//!
//! The next recorder to open the database takes them (reads and deletes them
//! in one transaction). Their presence is also how it knows the last stop was
//! clean: after a crash there is nothing to take, and windows past their
//! deadline are closed as `interrupted` rather than `complete`.

use rusqlite::{OptionalExtension, params};

use super::writer::Writer;
use crate::error::Result;

/// A clean stop, as saved.
#[derive(Debug)]
pub(crate) struct SavedState {
    /// Its buffers.
    pub(crate) buffers: Vec<SavedBuffer>,
}

/// One resource's pre-incident buffer, as saved.
#[derive(Debug)]
pub(crate) struct SavedBuffer {
    /// The resource's external id.
    pub(crate) resource: String,
    /// Its display name, if known.
    pub(crate) name: Option<String>,
    /// Its type, if known.
    pub(crate) kind: Option<String>,
    /// The ring, in `RingBuffer::save`'s format.
    pub(crate) samples: Vec<u8>,
}

impl Writer {
    /// Records a clean stop at `stopped_ms` with the recorder's time and
    /// buffers, replacing any earlier one, in one transaction.
    pub(crate) fn save_state<'a>(
        &mut self,
        stopped_ms: i64,
        time_ms: i64,
        buffers: impl IntoIterator<Item = (&'a str, Option<&'a str>, Option<&'a str>, Vec<u8>)>,
    ) -> Result<()> {
        self.transaction(|tx, _, _| {
            tx.execute("DELETE FROM saved_buffers", [])?;
            tx.prepare_cached(
                "INSERT INTO recorder_stops (id, stopped_ms, time_ms) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET stopped_ms = excluded.stopped_ms,
                                                time_ms = excluded.time_ms",
            )?
            .execute(params![stopped_ms, time_ms])?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO saved_buffers (resource, name, type, samples) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (resource, name, kind, samples) in buffers {
                insert.execute(params![resource, name, kind, samples])?;
            }
            Ok(())
        })
    }

    /// Takes (reads and deletes) what the last clean stop saved; `None` if
    /// the last recorder did not stop cleanly (or none ever ran).
    pub(crate) fn take_saved_state(&mut self) -> Result<Option<SavedState>> {
        self.transaction(|tx, _, _| {
            let stopped: Option<i64> = tx
                .query_row("SELECT time_ms FROM recorder_stops WHERE id = 1", [], |r| {
                    r.get(0)
                })
                .optional()?;
            if stopped.is_none() {
                return Ok(None);
            }
            let buffers = tx
                .prepare(
                    "SELECT resource, name, type, samples FROM saved_buffers ORDER BY resource",
                )?
                .query_map([], |r| {
                    Ok(SavedBuffer {
                        resource: r.get(0)?,
                        name: r.get(1)?,
                        kind: r.get(2)?,
                        samples: r.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            tx.execute("DELETE FROM saved_buffers", [])?;
            tx.execute("DELETE FROM recorder_stops", [])?;
            Ok(Some(SavedState { buffers }))
        })
    }
}
