//! Comparing the local marks with what the central database holds, by
//! window id, a thousand ids per query (no window is read or sent for it):
//!
//! - before a push sends anything, the windows it would send that the
//!   central database already has are compared and marked (or refused, if
//!   another window has the id there). So pushing to a central database this
//!   node has not pushed to under this name, or after an upgrade from marks
//!   that did not say where they went, sends only what that one lacks;
//! - `push --verify` (and every new session of a background pusher) finds
//!   the windows marked as held that the central database no longer has (a
//!   restore from a backup, a row deleted by hand) and removes their marks,
//!   so the push sends them again.

use std::collections::HashMap;

use super::error::PushError;
use super::push::{LIST, Outcome, PushSummary, Session, central_key, compare};
use crate::model::Timestamp;
use crate::store::{PushKey, Store};

/// The central rows of up to [`LIST`] of a node's window ids.
const EXISTING_WINDOWS: &str =
    "SELECT w.public_id, r.external_id, w.start_ms, w.end_ms, w.status, w.summary_points
    FROM windows w JOIN resources r ON r.id = w.resource_id
    WHERE w.node = $1 AND w.public_id = ANY($2::text[])";

/// Which of up to [`LIST`] of a node's window ids the central database has.
const HELD_IDS: &str =
    "SELECT public_id FROM windows WHERE node = $1 AND public_id = ANY($2::text[])";

impl Session {
    /// Marks the windows a push at `now` would send that the central
    /// database already has, counting them in `summary` (skipped, or
    /// refused if they differ).
    pub(super) fn reconcile(
        &mut self,
        store: &Store,
        now: Timestamp,
        summary: &mut PushSummary,
    ) -> Result<(), PushError> {
        let mut after = 0;
        loop {
            let keys = store.windows_to_push(self.target, now, after, LIST)?;
            let Some(last) = keys.last() else {
                return Ok(());
            };
            after = last.row;
            let done = keys.len() < LIST;
            let ids: Vec<&str> = keys.iter().map(|k| k.public_id.as_str()).collect();
            let c = &mut self.central;
            let rows = c
                .client
                .query(EXISTING_WINDOWS, &[&self.node, &ids])
                .map_err(|e| c.err("comparing window ids", &e))?;
            let held: HashMap<String, PushKey> = rows
                .iter()
                .map(central_key)
                .map(|k| (k.public_id.as_str().to_owned(), k))
                .collect();
            let found: Vec<(&PushKey, Outcome)> = keys
                .iter()
                .filter_map(|k| {
                    let c = held.get(k.public_id.as_str())?;
                    Some((k, compare(k, c, &self.node)))
                })
                .collect();
            let marks: Vec<(i64, Option<&str>)> = found
                .iter()
                .map(|(k, o)| match o {
                    Outcome::Refused(why) => (k.row, Some(why.as_str())),
                    Outcome::Pushed | Outcome::Present => (k.row, None),
                })
                .collect();
            store.mark_pushed(self.target, &marks, now)?;
            for (k, o) in &found {
                summary.add(k, 0, 0, o);
            }
            if done {
                return Ok(());
            }
        }
    }

    /// Removes the marks of windows marked as held here that the central
    /// database does not have; returns how many (the next push sends them).
    pub(crate) fn verify(&mut self, store: &Store) -> Result<u64, PushError> {
        let mut after = 0;
        let mut missing = 0;
        loop {
            let marked = store.windows_pushed_to(self.target, after, LIST)?;
            let Some((last, _)) = marked.last() else {
                return Ok(missing);
            };
            after = *last;
            let done = marked.len() < LIST;
            let ids: Vec<&str> = marked.iter().map(|(_, id)| id.as_str()).collect();
            let c = &mut self.central;
            let held: std::collections::HashSet<String> = c
                .client
                .query(HELD_IDS, &[&self.node, &ids])
                .map_err(|e| c.err("verifying window ids", &e))?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let lost: Vec<i64> = marked
                .iter()
                .filter(|(_, id)| !held.contains(id.as_str()))
                .map(|(row, _)| *row)
                .collect();
            if !lost.is_empty() {
                tracing::warn!(
                    windows = lost.len(),
                    central = %c.display,
                    "the central database lacks windows marked as pushed there (restored from a backup, or deleted); sending them again"
                );
            }
            store.unmark(self.target, &lost)?;
            missing += lost.len() as u64;
            if done {
                return Ok(missing);
            }
        }
    }
}
