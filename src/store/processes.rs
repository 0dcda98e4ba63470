//! A window's process snapshots (`process_samples`, migrations/V13): written
//! by the recorder (its ring when the window opens, then every N samples),
//! read by `show`, `context`, the web pages and `export`; deleted with the
//! window (a foreign key cascades, and `retention` deletes them with the
//! rest of a window).
//!
//! Size: a row is the key (window, time, pid), name, user, command line
//! (≤ 512 bytes) and five numbers, about 100 bytes without a command line
//! and up to ~650 with one. With the defaults (K = 10: ≤ 20 rows a
//! snapshot; the pre-incident ring of `pre_window / sample_interval`
//! snapshots, at most 64; then one snapshot every 5 samples) a 10-minute
//! window sampled every 5 s holds about 64 + 24 = 88 snapshots, ≤ 1,760
//! rows: ≤ 180 KB without command lines, ≤ 1.1 MB with the longest ones.

use rusqlite::{Connection, params};

use super::Store;
use super::ids::WindowRow;
use super::writer::Writer;
use crate::error::{Error, Result};
use crate::model::Timestamp;
use crate::processes::{ProcessSample, ProcessSnapshot};

/// Writes `snapshots` under `window`, skipping rows it already has (same
/// time and pid).
pub(super) fn insert(
    conn: &Connection,
    window: WindowRow,
    snapshots: &[&ProcessSnapshot],
) -> Result<usize> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO process_samples
           (window_id, ts_ms, pid, name, cmdline, user, cpu, rss, read_bps, write_bps)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT DO NOTHING",
    )?;
    let mut added = 0;
    for snap in snapshots {
        for p in &snap.processes {
            let p = p.clone().bounded();
            added += stmt.execute(params![
                window,
                snap.at.as_unix_ms(),
                p.pid,
                p.name,
                p.cmdline,
                p.user,
                p.cpu,
                i64::try_from(p.rss).unwrap_or(i64::MAX),
                p.read_bps,
                p.write_bps,
            ])?;
        }
    }
    Ok(added)
}

/// A window's snapshots, oldest first, each ordered by CPU then memory.
pub(super) fn read(conn: &Connection, window: WindowRow) -> Result<Vec<ProcessSnapshot>> {
    let mut stmt = conn.prepare_cached(
        "SELECT ts_ms, pid, name, cmdline, user, cpu, rss, read_bps, write_bps
         FROM process_samples WHERE window_id = ?1
         ORDER BY ts_ms, cpu DESC, rss DESC, pid",
    )?;
    let rows = stmt.query_map([window], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            ProcessSample {
                pid: r.get(1)?,
                name: r.get(2)?,
                cmdline: r.get(3)?,
                user: r.get(4)?,
                cpu: r.get(5)?,
                rss: u64::try_from(r.get::<_, i64>(6)?).unwrap_or(0),
                read_bps: r.get(7)?,
                write_bps: r.get(8)?,
            },
        ))
    })?;
    let mut out: Vec<ProcessSnapshot> = Vec::new();
    for row in rows {
        let (ts, sample) = row?;
        match out.last_mut() {
            Some(last) if last.at.as_unix_ms() == ts => last.processes.push(sample),
            _ => out.push(ProcessSnapshot {
                at: Timestamp::from_unix_ms(ts),
                processes: vec![sample],
            }),
        }
    }
    Ok(out)
}

impl Writer {
    /// Writes process snapshots of recording windows, in one transaction.
    pub(crate) fn write_processes(
        &mut self,
        batch: &[(WindowRow, std::sync::Arc<ProcessSnapshot>)],
    ) -> Result<usize> {
        self.transaction(|tx, _, _| {
            let mut added = 0;
            for (window, snap) in batch {
                added += insert(tx, *window, &[snap])?;
            }
            Ok(added)
        })
    }
}

impl Store {
    /// The process snapshots of window `id`, oldest first (empty if it has
    /// none). A window that does not exist is [`Error::WindowNotFound`].
    pub fn window_processes(&self, id: &str) -> Result<Vec<ProcessSnapshot>> {
        let conn = self.conn()?;
        let row = WindowRow::of(&conn, id)?;
        read(&conn, row)
    }

    /// Adds process snapshots to window `id` (an import, or an `ingest`
    /// `processes` line); rows it already has are skipped. Returns how many
    /// rows were new.
    pub fn add_window_processes(&self, id: &str, snapshots: &[ProcessSnapshot]) -> Result<usize> {
        if self.read_only {
            return Err(Error::Unavailable("the store was opened read-only"));
        }
        for s in snapshots {
            crate::validate::storable(s.at)?;
        }
        let conn = self.conn()?;
        let _turn = self.gate.patient();
        let tx =
            rusqlite::Transaction::new_unchecked(&conn, rusqlite::TransactionBehavior::Immediate)?;
        let row = WindowRow::of(&tx, id)?;
        let refs: Vec<&ProcessSnapshot> = snapshots.iter().collect();
        let added = insert(&tx, row, &refs)?;
        tx.commit()?;
        Ok(added)
    }
}
