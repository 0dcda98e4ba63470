//! The SQLite half of the fleet push (`src/fleet/` is the PostgreSQL half):
//! which closed windows the central database does not have yet, marking them
//! once it has them, what trimming must spare, and the state `stats` shows.
//!
//! A window is marked (`window_pushes`, see migrations/V7) only after the
//! central transaction holding it has committed. The order is what makes a
//! push exactly once: a crash in between leaves the window unmarked, and the
//! next push finds it in the central database and only marks it.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::Store;
use crate::error::Result;
use crate::model::{Timestamp, WindowId};

/// Where this database's fleet push stands (`incident-recorder stats`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct PushState {
    /// True once the database has pushed or started a pusher; from then on
    /// trimming spares unpushed windows (up to the window limit).
    pub enabled: bool,
    /// Closed windows the central database does not have yet.
    pub backlog: u64,
    /// Closed windows the central database has.
    pub pushed: u64,
    /// Closed windows the central database refused (kept here, not retried).
    pub refused: u64,
    /// Windows trimming deleted before they could be pushed.
    pub dropped_unpushed: u64,
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

/// Closed and not marked: the backlog.
const UNPUSHED: &str = "w.status <> 'recording'
       AND NOT EXISTS (SELECT 1 FROM window_pushes p WHERE p.window_id = w.id)";

impl Store {
    /// Where the fleet push of this database stands. Works on a read-only
    /// store.
    pub fn push_state(&self) -> Result<PushState> {
        let conn = self.conn()?;
        let enabled: Option<i64> = conn
            .prepare_cached("SELECT dropped_unpushed FROM push_state WHERE id = 1")?
            .query_row([], |r| r.get(0))
            .optional()?;
        let count = |sql: &str| -> Result<u64> {
            Ok(conn
                .prepare_cached(sql)?
                .query_row([], |r| r.get::<_, i64>(0))? as u64)
        };
        Ok(PushState {
            enabled: enabled.is_some(),
            backlog: count(&["SELECT count(*) FROM windows w WHERE ", UNPUSHED].concat())?,
            pushed: count("SELECT count(*) FROM window_pushes WHERE refused IS NULL")?,
            refused: count("SELECT count(*) FROM window_pushes WHERE refused IS NOT NULL")?,
            dropped_unpushed: enabled.unwrap_or(0) as u64,
        })
    }

    /// Marks the database as one that pushes (see [`PushState::enabled`]).
    pub(crate) fn enable_push(&self, now: Timestamp) -> Result<()> {
        self.conn()?
            .prepare_cached(
                "INSERT INTO push_state (id, enabled_ms) VALUES (1, ?1) ON CONFLICT (id) DO NOTHING",
            )?
            .execute([now.as_unix_ms()])?;
        Ok(())
    }

    /// Up to `limit` closed, unmarked windows with a row id above `after`,
    /// oldest (lowest id) first: `(row id, public id)`.
    pub(crate) fn unpushed_windows(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, WindowId)>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            &[
                "SELECT w.id, w.public_id FROM windows w WHERE w.id > ?1 AND ",
                UNPUSHED,
                " ORDER BY w.id LIMIT ?2",
            ]
            .concat(),
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![after, limit], |r| {
            Ok((r.get(0)?, WindowId::new(r.get::<_, String>(1)?)))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The columns of window `row` that [`Store::window`] does not give;
    /// `None` if it is gone (trimmed since it was listed).
    pub(crate) fn push_details(&self, row: i64) -> Result<Option<PushDetails>> {
        let conn = self.conn()?;
        let tx = conn.unchecked_transaction()?; // one snapshot for both reads
        let Some((opened_ms, deadline_ms)) = tx
            .prepare_cached("SELECT opened_ms, deadline_ms FROM windows WHERE id = ?1")?
            .query_row([row], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
        else {
            return Ok(None);
        };
        let mut stmt = tx.prepare_cached(
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

    /// Marks windows as held by the central database (`None`) or refused by
    /// it (`Some(why)`), in one transaction. Call only after the central
    /// transaction committed. Windows deleted meanwhile are skipped, and a
    /// window already marked keeps its mark.
    pub(crate) fn mark_pushed(&self, marks: &[(i64, Option<&str>)], now: Timestamp) -> Result<()> {
        if marks.is_empty() {
            return Ok(());
        }
        let conn = self.conn()?;
        let tx = rusqlite::Transaction::new_unchecked(&conn, TransactionBehavior::Immediate)?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO window_pushes (window_id, pushed_ms, refused)
                 SELECT id, ?2, ?3 FROM windows WHERE id = ?1 AND status <> 'recording'
                 ON CONFLICT (window_id) DO NOTHING",
            )?;
            for (row, refused) in marks {
                stmt.execute(params![row, now.as_unix_ms(), refused])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// Of the windows trimming chose to delete (`doomed`), spares those not yet
/// pushed when this database pushes, as long as at most `bound` are spared:
/// past that the oldest (by end time) go anyway and are counted in
/// `push_state.dropped_unpushed` (by [`count_dropped`], once deleted).
/// Returns the ids to delete, and those of them never pushed. A database
/// that never pushed gets `doomed` back.
///
/// So a node whose central database is unreachable keeps at most `bound`
/// windows beyond what retention and the window limit keep.
pub(super) fn spare_unpushed(
    tx: &Connection,
    doomed: Vec<i64>,
    bound: usize,
) -> Result<(Vec<i64>, std::collections::HashSet<i64>)> {
    let none = std::collections::HashSet::new();
    if doomed.is_empty() {
        return Ok((doomed, none));
    }
    let enabled = tx
        .prepare_cached("SELECT 1 FROM push_state WHERE id = 1")?
        .exists([])?;
    if !enabled {
        return Ok((doomed, none));
    }
    // The ids go in as one bound JSON array.
    let ids = serde_json::to_string(&doomed).expect("integers serialize");
    let unpushed: Vec<i64> = tx
        .prepare_cached(
            "SELECT w.id FROM json_each(?1) j JOIN windows w ON w.id = j.value
             WHERE NOT EXISTS (SELECT 1 FROM window_pushes p WHERE p.window_id = w.id)
             ORDER BY w.end_ms, w.id",
        )?
        .query_map([ids], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let dropped = unpushed.len().saturating_sub(bound);
    let spared: std::collections::HashSet<i64> = unpushed[dropped..].iter().copied().collect();
    let delete = doomed
        .into_iter()
        .filter(|id| !spared.contains(id))
        .collect();
    Ok((delete, unpushed[..dropped].iter().copied().collect()))
}

/// Counts `dropped` windows deleted before they were pushed (see
/// [`spare_unpushed`]).
pub(super) fn count_dropped(tx: &Connection, dropped: usize, spared: usize) -> Result<()> {
    if dropped == 0 {
        return Ok(());
    }
    tx.prepare_cached(
        "UPDATE push_state SET dropped_unpushed = dropped_unpushed + ?1 WHERE id = 1",
    )?
    .execute([dropped as i64])?;
    tracing::warn!(
        dropped,
        spared,
        "deleted windows never pushed to the central database: more than the window limit of unpushed windows was past retention or the limit"
    );
    Ok(())
}
