//! Trigger requests: another process (`incident-recorder trigger`) asks the
//! recorder running on a database to open a window; the recorder polls the
//! pending ones every tick and records what became of each.

use rusqlite::{OptionalExtension, params};

use super::Store;
use super::writer::Writer;
use crate::error::Result;
use crate::model::{Timestamp, Trigger, TriggerType, WindowId};

/// A request from another process to open a window.
#[derive(Debug)]
pub(crate) struct TriggerRequest {
    pub(crate) id: i64,
    pub(crate) resource: String,
    pub(crate) trigger: Trigger,
}

/// What became of a request made with [`Store::request_trigger`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct TriggerRequestStatus {
    /// When the recorder handled it; `None` while it is pending.
    pub handled_at: Option<Timestamp>,
    /// The window it opened or extended, if it was handled successfully.
    pub window_id: Option<WindowId>,
    /// Why the recorder refused it, if it did.
    pub error: Option<String>,
}

impl Writer {
    /// Requests from other processes not yet handled, oldest first.
    pub(crate) fn pending_requests(&mut self) -> Result<Vec<TriggerRequest>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, resource, trigger_type, trigger_id FROM trigger_requests
             WHERE handled_ms IS NULL ORDER BY id LIMIT 1000",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, resource, kind, trigger_id) = row?;
            // The CHECK constraint guarantees a known name.
            let kind: TriggerType = kind.parse()?;
            out.push(TriggerRequest {
                id,
                resource,
                trigger: Trigger::new(kind, trigger_id),
            });
        }
        Ok(out)
    }

    /// Marks a request handled, with the window it opened or why it failed.
    pub(crate) fn finish_request(
        &mut self,
        id: i64,
        now_ms: i64,
        outcome: std::result::Result<&WindowId, String>,
    ) -> Result<()> {
        let (window, error) = match outcome {
            Ok(w) => (Some(w.as_str().to_owned()), None),
            Err(e) => (None, Some(e)),
        };
        self.transaction(|tx, _, _| {
            tx.prepare_cached(
                "UPDATE trigger_requests SET handled_ms = ?2, window_id = ?3, error = ?4 WHERE id = ?1",
            )?
            .execute(params![id, now_ms, window, error])?;
            Ok(())
        })
    }
}

impl Store {
    /// Asks the recorder running on this database to open a window on
    /// `resource` at its next tick. Returns the request's id.
    pub fn request_trigger(
        &self,
        resource: &str,
        trigger: &Trigger,
        now: Timestamp,
    ) -> Result<i64> {
        crate::validate::validate_resource_id(resource)?;
        crate::validate::trigger(trigger)?;
        let conn = self.conn()?;
        conn.prepare_cached(
            "INSERT INTO trigger_requests (resource, trigger_type, trigger_id, requested_ms)
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            resource,
            trigger.kind.as_str(),
            trigger.id,
            now.as_unix_ms()
        ])?;
        Ok(conn.last_insert_rowid())
    }

    /// What became of the request `id` made with [`Store::request_trigger`];
    /// `None` if there is no such request.
    pub fn trigger_request(&self, id: i64) -> Result<Option<TriggerRequestStatus>> {
        let conn = self.conn()?;
        let status = conn
            .prepare_cached(
                "SELECT handled_ms, window_id, error FROM trigger_requests WHERE id = ?1",
            )?
            .query_row([id], |r| {
                Ok(TriggerRequestStatus {
                    handled_at: r.get::<_, Option<i64>>(0)?.map(Timestamp::from_unix_ms),
                    window_id: r.get::<_, Option<String>>(1)?.map(WindowId::new),
                    error: r.get(2)?,
                })
            })
            .optional()?;
        Ok(status)
    }
}
