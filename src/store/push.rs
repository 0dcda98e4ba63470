//! The SQLite half of the fleet push (`src/fleet/` is the PostgreSQL half):
//! which closed windows a central database does not have yet, marking them
//! once it has them, what trimming must spare, and the state `stats` shows.
//!
//! A mark (`window_pushes`, see migrations/V7 and V9) names its *push
//! target*: the central database, by the id its schema keeps, and the node
//! name. So a push to a new or re-created central database, or under
//! another node name, sends everything still here. A window is marked only
//! after the central transaction holding it has committed: a crash in
//! between leaves it unmarked, and the next push finds it in the central
//! database and only marks it, so nothing is pushed twice or lost.
//!
//! A refused window is marked refused and tried again [`RETRY_FIRST`] later,
//! doubling after each refusal up to [`RETRY_MAX`] (`push --retry-refused`
//! tries them all at once). Trimming counts it as not pushed.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::Store;
use crate::error::Result;
use crate::model::{Timestamp, WindowId};

/// A refused window is tried again this long after its first refusal...
pub const RETRY_FIRST: Duration = Duration::from_secs(60);
/// ... then after twice as long each time, at most this long.
pub const RETRY_MAX: Duration = Duration::from_secs(3600);

/// Where this database's fleet push stands (`incident-recorder stats`),
/// towards the central database it last connected to.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct PushState {
    /// True once the database has pushed or started a pusher; from then on
    /// trimming spares unpushed windows (up to the window limit).
    pub enabled: bool,
    /// The central database this database last connected to, as
    /// `postgresql://user@host:port/db`; `None` before the first connection.
    pub central: Option<String>,
    /// The node name of that push.
    pub node: Option<String>,
    /// Closed windows that central database does not have and has not
    /// refused: the next push sends them.
    pub backlog: u64,
    /// Closed windows it has.
    pub pushed: u64,
    /// Closed windows it refused, tried again later (see `next_retry`).
    pub refused: u64,
    /// When the next refused window is tried again (a push or a pusher
    /// running then tries it).
    pub next_retry: Option<Timestamp>,
    /// Windows trimming deleted before the central database had them
    /// (never pushed, or refused).
    pub dropped_unpushed: u64,
    /// Of those, the windows it had refused.
    pub dropped_refused: u64,
}

/// A row of `push_targets`: a central database and a node name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PushTarget(pub(crate) i64);

/// What a push compares to tell a window the central database already has
/// from another one under the same id: the columns both sides keep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PushKey {
    /// `windows.id` (0 for a central row).
    pub(crate) row: i64,
    pub(crate) public_id: WindowId,
    pub(crate) resource: String,
    pub(crate) start_ms: i64,
    pub(crate) end_ms: Option<i64>,
    pub(crate) status: String,
    pub(crate) points: Option<i64>,
    /// The central database refused it before (it is tried again).
    pub(crate) retry: bool,
}

/// What a window's central copy needs beyond [`Store::window`].
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PushDetails {
    /// When the opening trigger fired (`windows.opened_ms`).
    pub(crate) opened_ms: i64,
    /// The window's last deadline (`windows.deadline_ms`).
    pub(crate) deadline_ms: i64,
    /// Its `window_anomalies` rows, in insertion order.
    pub(crate) anomalies: Vec<AnomalyRow>,
}

/// One `window_anomalies` row, with its metric's name.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct AnomalyRow {
    pub(crate) metric: Option<String>,
    pub(crate) ts_ms: Option<i64>,
    pub(crate) value: Option<f64>,
    pub(crate) score: Option<f64>,
    pub(crate) description: String,
}

/// Closed windows a push to target ?1 sends at time ?2: no mark, or
/// refused and due again. (A NULL target has no marks: every closed window.)
const TO_SEND: &str = "w.status <> 'recording'
       AND NOT EXISTS (SELECT 1 FROM window_pushes p
                       WHERE p.window_id = w.id AND p.target_id = ?1
                         AND (p.refused IS NULL OR p.retry_ms > ?2))";

/// The current target's id (NULL before the first connection).
const CURRENT: &str = "(SELECT target_id FROM push_state WHERE id = 1)";

impl Store {
    /// Where the fleet push of this database stands, towards the central
    /// database it last connected to. Works on a read-only store.
    pub fn push_state(&self) -> Result<PushState> {
        let conn = self.conn()?;
        let snapshot = conn.snapshot()?; // one snapshot for every count
        let tx = snapshot.as_deref().unwrap_or(&conn);
        let state: Option<(i64, i64, Option<String>, Option<String>)> = tx
            .prepare_cached(
                "SELECT s.dropped_unpushed, s.dropped_refused, t.display, t.node
                 FROM push_state s LEFT JOIN push_targets t ON t.id = s.target_id
                 WHERE s.id = 1",
            )?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .optional()?;
        let count = |sql: &str| -> Result<u64> {
            Ok(conn
                .prepare_cached(sql)?
                .query_row([], |r| r.get::<_, i64>(0))? as u64)
        };
        let marks = |refused: &str| {
            [
                "SELECT count(*) FROM window_pushes WHERE target_id = ",
                CURRENT,
                " AND refused IS ",
                refused,
            ]
            .concat()
        };
        let next_retry: Option<i64> = conn
            .prepare_cached(
                &[
                    "SELECT min(retry_ms) FROM window_pushes WHERE target_id = ",
                    CURRENT,
                ]
                .concat(),
            )?
            .query_row([], |r| r.get(0))?;
        let enabled = state.is_some();
        let (dropped_unpushed, dropped_refused, central, node) = match state {
            Some((u, r, c, n)) => (u as u64, r as u64, c, n),
            None => (0, 0, None, None),
        };
        Ok(PushState {
            enabled,
            backlog: count(
                &[
                    "SELECT count(*) FROM windows w WHERE w.status <> 'recording'
                     AND NOT EXISTS (SELECT 1 FROM window_pushes p
                                     WHERE p.window_id = w.id AND p.target_id = ",
                    CURRENT,
                    ")",
                ]
                .concat(),
            )?,
            pushed: count(&marks("NULL"))?,
            refused: count(&marks("NOT NULL"))?,
            next_retry: next_retry.map(Timestamp::from_unix_ms),
            central,
            node,
            dropped_unpushed,
            dropped_refused,
        })
    }

    /// Marks the database as one that pushes (see [`PushState::enabled`]).
    pub(crate) fn enable_push(&self, now: Timestamp) -> Result<()> {
        enable(&*self.conn()?, now)
    }

    /// The target for central database `central` (its identity) and `node`,
    /// created if new, made the current one (what trimming spares windows
    /// for). `display` names the database in `stats`.
    pub(crate) fn push_target(
        &self,
        central: &str,
        node: &str,
        display: &str,
        now: Timestamp,
    ) -> Result<PushTarget> {
        let conn = self.conn()?;
        let tx = rusqlite::Transaction::new_unchecked(&conn, TransactionBehavior::Immediate)?;
        enable(&tx, now)?;
        let id: i64 = tx
            .prepare_cached(
                "INSERT INTO push_targets (central, node, display, first_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (central, node) DO UPDATE SET display = excluded.display
                 RETURNING id",
            )?
            .query_row(params![central, node, display, now.as_unix_ms()], |r| {
                r.get(0)
            })?;
        tx.prepare_cached("UPDATE push_state SET target_id = ?1 WHERE id = 1")?
            .execute([id])?;
        tx.commit()?;
        Ok(PushTarget(id))
    }

    /// How many closed windows a push to `target` at `now` would send (not
    /// marked, or refused and due).
    pub(crate) fn push_pending(&self, target: PushTarget, now: Timestamp) -> Result<u64> {
        let conn = self.conn()?;
        let n: i64 = conn
            .prepare_cached(&["SELECT count(*) FROM windows w WHERE ", TO_SEND].concat())?
            .query_row(params![target.0, now.as_unix_ms()], |r| r.get(0))?;
        Ok(n as u64)
    }

    /// Up to `limit` closed windows with a row id above `after` that a push
    /// to `target` at `now` sends, lowest id (oldest) first.
    pub(crate) fn windows_to_push(
        &self,
        target: PushTarget,
        now: Timestamp,
        after: i64,
        limit: usize,
    ) -> Result<Vec<PushKey>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            &[
                "SELECT w.id, w.public_id, r.external_id, w.start_ms, w.end_ms, w.status,
                        w.summary_points,
                        EXISTS (SELECT 1 FROM window_pushes p
                                WHERE p.window_id = w.id AND p.target_id = ?1)
                 FROM windows w JOIN resources r ON r.id = w.resource_id
                 WHERE w.id > ?3 AND ",
                TO_SEND,
                " ORDER BY w.id LIMIT ?4",
            ]
            .concat(),
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![target.0, now.as_unix_ms(), after, limit], |r| {
            Ok(PushKey {
                row: r.get(0)?,
                public_id: WindowId::new(r.get::<_, String>(1)?),
                resource: r.get(2)?,
                start_ms: r.get(3)?,
                end_ms: r.get(4)?,
                status: r.get(5)?,
                points: r.get(6)?,
                retry: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Up to `limit` windows with a row id above `after` marked as held by
    /// `target`, lowest id first: `(row id, public id)`.
    pub(crate) fn windows_pushed_to(
        &self,
        target: PushTarget,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, WindowId)>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT w.id, w.public_id FROM window_pushes p JOIN windows w ON w.id = p.window_id
             WHERE p.target_id = ?1 AND p.refused IS NULL AND p.window_id > ?2
             ORDER BY p.window_id LIMIT ?3",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![target.0, after, limit], |r| {
            Ok((r.get(0)?, WindowId::new(r.get::<_, String>(1)?)))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Removes `target`'s marks of windows `rows` (the central database lost
    /// them): the next push sends them again.
    pub(crate) fn unmark(&self, target: PushTarget, rows: &[i64]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let conn = self.conn()?;
        let ids = serde_json::to_string(rows).expect("integers serialize");
        conn.prepare_cached(
            "DELETE FROM window_pushes
             WHERE target_id = ?1 AND window_id IN (SELECT value FROM json_each(?2))",
        )?
        .execute(params![target.0, ids])?;
        Ok(())
    }

    /// Makes every window `target` refused due now (`push --retry-refused`);
    /// returns how many.
    pub(crate) fn retry_refused_now(&self, target: PushTarget) -> Result<u64> {
        let n = self
            .conn()?
            .prepare_cached(
                "UPDATE window_pushes SET retry_ms = 0
                 WHERE target_id = ?1 AND refused IS NOT NULL",
            )?
            .execute([target.0])?;
        Ok(n as u64)
    }

    /// The columns of window `row` that [`Store::window`] does not give;
    /// `None` if it is gone (trimmed since it was listed).
    pub(crate) fn push_details(&self, row: i64) -> Result<Option<PushDetails>> {
        let conn = self.conn()?;
        let snapshot = conn.snapshot()?; // one snapshot for both reads
        let tx = snapshot.as_deref().unwrap_or(&conn);
        let Some((opened_ms, deadline_ms)) = tx
            .prepare_cached("SELECT opened_ms, deadline_ms FROM windows WHERE id = ?1")?
            .query_row([row], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
        else {
            return Ok(None);
        };
        let mut stmt = conn.prepare_cached(
            "SELECT m.name, a.ts_ms, a.value, a.score, a.description
             FROM window_anomalies a LEFT JOIN metrics m ON m.id = a.metric_id
             WHERE a.window_id = ?1 ORDER BY a.id",
        )?;
        let anomalies = stmt
            .query_map([row], |r| {
                Ok(AnomalyRow {
                    metric: r.get(0)?,
                    ts_ms: r.get(1)?,
                    value: r.get(2)?,
                    score: r.get(3)?,
                    description: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(Some(PushDetails {
            opened_ms,
            deadline_ms,
            anomalies,
        }))
    }

    /// Marks windows as held by `target` (`None`) or refused by it
    /// (`Some(why)`: tried again later, see [`RETRY_FIRST`]), in one
    /// transaction. Call only after the central transaction committed.
    /// Windows deleted meanwhile are skipped; a held window's mark replaces
    /// a refusal.
    pub(crate) fn mark_pushed(
        &self,
        target: PushTarget,
        marks: &[(i64, Option<&str>)],
        now: Timestamp,
    ) -> Result<()> {
        if marks.is_empty() {
            return Ok(());
        }
        let conn = self.conn()?;
        let tx = rusqlite::Transaction::new_unchecked(&conn, TransactionBehavior::Immediate)?;
        {
            // The n-th refusal in a row waits RETRY_FIRST × 2^(n-1), at most RETRY_MAX.
            let mut stmt = tx.prepare_cached(
                "INSERT INTO window_pushes (window_id, target_id, pushed_ms, refused, attempts, retry_ms)
                 SELECT id, ?2, ?3, ?4, iif(?4 IS NULL, 0, 1), iif(?4 IS NULL, NULL, ?3 + ?5)
                 FROM windows WHERE id = ?1 AND status <> 'recording'
                 ON CONFLICT (window_id, target_id) DO UPDATE SET
                     pushed_ms = excluded.pushed_ms,
                     refused = excluded.refused,
                     attempts = iif(excluded.refused IS NULL, 0, attempts + 1),
                     retry_ms = iif(excluded.refused IS NULL, NULL,
                                    excluded.pushed_ms + min(?5 << min(attempts, 30), ?6))",
            )?;
            let first = RETRY_FIRST.as_millis() as i64;
            let max = RETRY_MAX.as_millis() as i64;
            for (row, refused) in marks {
                stmt.execute(params![
                    row,
                    target.0,
                    now.as_unix_ms(),
                    refused,
                    first,
                    max
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

fn enable(conn: &Connection, now: Timestamp) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO push_state (id, enabled_ms) VALUES (1, ?1) ON CONFLICT (id) DO NOTHING",
    )?
    .execute([now.as_unix_ms()])?;
    Ok(())
}

fn state_exists(conn: &Connection) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM push_state WHERE id = 1")?
        .exists([])?)
}

/// Of the windows trimming chose to delete (`doomed`), spares those the
/// current push target does not hold (never pushed, or refused) when this
/// database pushes, as long as at most `bound` are spared: past that the
/// oldest (by end time) go anyway and are counted in `push_state` (by
/// [`count_dropped`], once deleted). Returns the ids to delete, and those of
/// them not held centrally (`true` if refused). A database that never
/// pushed gets `doomed` back.
///
/// So a node whose central database is unreachable, or refuses, keeps at
/// most `bound` windows beyond what retention and the window limit keep.
pub(super) fn spare_unpushed(
    tx: &Connection,
    doomed: Vec<i64>,
    bound: usize,
) -> Result<(Vec<i64>, std::collections::HashMap<i64, bool>)> {
    let none = std::collections::HashMap::new();
    if doomed.is_empty() || !state_exists(tx)? {
        return Ok((doomed, none));
    }
    // The ids go in as one bound JSON array.
    let ids = serde_json::to_string(&doomed).expect("integers serialize");
    let unpushed: Vec<(i64, bool)> = tx
        .prepare_cached(
            &[
                "SELECT w.id, EXISTS (SELECT 1 FROM window_pushes p WHERE p.window_id = w.id
                                      AND p.target_id = ",
                CURRENT,
                ")
                 FROM json_each(?1) j JOIN windows w ON w.id = j.value
                 WHERE NOT EXISTS (SELECT 1 FROM window_pushes p WHERE p.window_id = w.id
                                   AND p.target_id = ",
                CURRENT,
                " AND p.refused IS NULL)
                 ORDER BY w.end_ms, w.id",
            ]
            .concat(),
        )?
        .query_map([ids], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let dropped = unpushed.len().saturating_sub(bound);
    let spared: std::collections::HashSet<i64> =
        unpushed[dropped..].iter().map(|(id, _)| *id).collect();
    let delete = doomed
        .into_iter()
        .filter(|id| !spared.contains(id))
        .collect();
    Ok((delete, unpushed[..dropped].iter().copied().collect()))
}

/// Counts windows deleted before the central database had them (see
/// [`spare_unpushed`]): `dropped`, of which `refused` it had refused.
pub(super) fn count_dropped(
    tx: &Connection,
    dropped: usize,
    refused: usize,
    spared: usize,
) -> Result<()> {
    if dropped == 0 {
        return Ok(());
    }
    tx.prepare_cached(
        "UPDATE push_state SET dropped_unpushed = dropped_unpushed + ?1,
                               dropped_refused = dropped_refused + ?2
         WHERE id = 1",
    )?
    .execute([dropped as i64, refused as i64])?;
    tracing::warn!(
        dropped,
        refused,
        spared,
        "deleted windows the central database does not have (never pushed, or refused): more than the window limit of them were past retention or the limit"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store with one closed window (row 1), pushing to a target.
    fn store_with_a_window() -> (Store, PushTarget) {
        let store = Store::open_in_memory().unwrap();
        store
            .conn()
            .unwrap()
            .execute_batch(
                "INSERT INTO resources (id, external_id) VALUES (1, 'vm');
                 INSERT INTO windows (id, public_id, resource_id, trigger_type, start_ms, end_ms,
                                      deadline_ms, status, opened_ms)
                 VALUES (1, 'iw-1', 1, 'manual', 0, 1000, 1000, 'complete', 0);",
            )
            .unwrap();
        let target = store
            .push_target(
                "uuid/1",
                "n",
                "postgresql://p@h/db",
                Timestamp::from_unix_ms(0),
            )
            .unwrap();
        (store, target)
    }

    #[test]
    fn a_refused_window_is_tried_again_after_a_minute_doubling_to_an_hour() {
        let (store, target) = store_with_a_window();
        let at = |ms: i64| Timestamp::from_unix_ms(ms);
        let pending = |ms| store.push_pending(target, at(ms)).unwrap();
        assert_eq!(pending(0), 1);
        let min = 60_000;
        let mut now = 0;
        // Refused again each time it is due: 1, 2, 4 ... 32, 60, 60 minutes.
        for wait in [1, 2, 4, 8, 16, 32, 60, 60, 60] {
            store
                .mark_pushed(target, &[(1, Some("refused"))], at(now))
                .unwrap();
            assert_eq!(pending(now + wait * min - 1), 0, "before {wait} min");
            assert_eq!(pending(now + wait * min), 1, "after {wait} min");
            let state = store.push_state().unwrap();
            assert_eq!((state.refused, state.backlog), (1, 0));
            assert_eq!(state.next_retry, Some(at(now + wait * min)));
            now += wait * min;
        }
        // Held at last: no retry, and a later refusal starts from a minute.
        store.mark_pushed(target, &[(1, None)], at(now)).unwrap();
        assert_eq!(pending(now + 10 * 3_600_000), 0);
        let state = store.push_state().unwrap();
        assert_eq!(
            (state.pushed, state.refused, state.next_retry),
            (1, 0, None)
        );
        assert_eq!(store.retry_refused_now(target).unwrap(), 0);
    }

    #[test]
    fn marks_are_per_central_database_and_node() {
        let (store, first) = store_with_a_window();
        store
            .mark_pushed(first, &[(1, None)], Timestamp::from_unix_ms(5))
            .unwrap();
        assert_eq!(
            store
                .push_pending(first, Timestamp::from_unix_ms(5))
                .unwrap(),
            0
        );
        let t = Timestamp::from_unix_ms(9);
        let other_db = store.push_target("uuid/2", "n", "x", t).unwrap();
        let other_node = store.push_target("uuid/1", "m", "x", t).unwrap();
        assert_eq!(store.push_pending(other_db, t).unwrap(), 1);
        assert_eq!(store.push_pending(other_node, t).unwrap(), 1);
        // The current target is the last one connected to.
        assert_eq!(store.push_state().unwrap().backlog, 1);
        assert_eq!(store.push_target("uuid/1", "n", "x", t).unwrap(), first);
        assert_eq!(store.push_state().unwrap().backlog, 0);
        store.unmark(first, &[1]).unwrap();
        assert_eq!(store.push_state().unwrap().backlog, 1);
    }
}
