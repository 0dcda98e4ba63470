//! The push rig of `benches/push.rs` and `examples/pushbench.rs`: a local
//! history (the peer's synthetic windows, `benches/support`), a throwaway
//! PostgreSQL (`tests/pg`, durable), and the same points and values read out
//! of the local database and encoded for a raw `COPY`, binary and text, so
//! `fleet::push` and a raw load of the same rows run side by side.
#![allow(dead_code)] // the bench and the example use different parts

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use incident_recorder::Store;
use incident_recorder::fleet::{self, PushSummary, Target};

use super::pg;
use super::support;

pub struct PushRig {
    pub cluster: pg::Cluster,
    _dir: tempfile::TempDir,
    pub db: PathBuf,
    store: Store,
    pub rows: RawRows,
    round: usize,
}

impl PushRig {
    /// `None` (after saying why) without PostgreSQL, outside CI.
    pub fn new(windows: usize, points: usize) -> Option<PushRig> {
        let cluster = pg::Cluster::start(pg::Options {
            durable: true,
            ..pg::Options::default()
        })?;
        let dir = tempfile::tempdir().unwrap();
        let db = support::temp_db(&dir);
        support::build_history(&db, windows, points, support::now_truncated());
        let rows = RawRows::read(&db);
        let store = Store::open(&db).unwrap();
        Some(PushRig {
            cluster,
            _dir: dir,
            db,
            store,
            rows,
            round: 0,
        })
    }

    /// A fresh central database with the schema (created untimed, as every
    /// pusher but the first finds it), every local window unpushed again,
    /// and the URL of it.
    pub fn fresh_central(&mut self) -> (String, postgres::Client) {
        self.round += 1;
        let name = format!("bench_{}", self.round);
        let mut admin = self.cluster.client("postgres");
        // (One statement per call: neither may run in a transaction block.)
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS bench_{}", self.round - 1))
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name} OWNER {}", pg::PUSHER))
            .unwrap();
        let url = format!(
            "postgresql://{}:{}@127.0.0.1:{}/{name}",
            pg::PUSHER,
            pg::PASSWORD,
            self.cluster.port
        );
        let target = Target::new(&url, Some("bench")).unwrap();
        fleet::push(&Store::open_in_memory().unwrap(), &target, &mut |_| {}).unwrap();
        let conn = rusqlite::Connection::open(&self.db).unwrap();
        conn.execute_batch("DELETE FROM window_pushes; DELETE FROM push_state;")
            .unwrap();
        let client = postgres::Client::connect(
            &format!(
                "host=127.0.0.1 port={} user={} password={} dbname={name}",
                self.cluster.port,
                pg::PUSHER,
                pg::PASSWORD
            ),
            postgres::NoTls,
        )
        .unwrap();
        (url, client)
    }

    /// `fleet::push` of the whole history into `url`.
    pub fn timed_push(&self, url: &str) -> (Duration, PushSummary) {
        let target = Target::new(url, Some("bench")).unwrap();
        let t = Instant::now();
        let summary = fleet::push(&self.store, &target, &mut |_| {}).unwrap();
        let took = t.elapsed();
        assert_eq!(summary.values, self.rows.values as u64, "{summary:?}");
        (took, summary)
    }

    /// The same points and values, with one `COPY` per table in one
    /// transaction, into empty tables of the same layout and indexes.
    pub fn timed_raw_copy(&self, c: &mut postgres::Client, binary: bool) -> Duration {
        c.batch_execute(
            "DROP TABLE IF EXISTS raw_data_points, raw_point_values;
             CREATE TABLE raw_data_points (LIKE data_points INCLUDING ALL);
             CREATE TABLE raw_point_values (LIKE point_values INCLUDING ALL);",
        )
        .unwrap();
        let (format, points, values) = if binary {
            (
                "(FORMAT binary)",
                &self.rows.binary_points,
                &self.rows.binary_values,
            )
        } else {
            ("", &self.rows.text_points, &self.rows.text_values)
        };
        let t = Instant::now();
        let mut tx = c.transaction().unwrap();
        for (sql, data) in [
            (
                "COPY raw_data_points (window_id, point_no, ts_ms, metadata) FROM STDIN ",
                points,
            ),
            (
                "COPY raw_point_values (window_id, point_no, metric_id, ts, value) FROM STDIN ",
                values,
            ),
        ] {
            let mut w = tx.copy_in(&[sql, format].concat()).unwrap();
            for chunk in data.chunks(1 << 20) {
                w.write_all(chunk).unwrap();
            }
            w.finish().unwrap();
        }
        tx.commit().unwrap();
        t.elapsed()
    }
}

/// The points and values of a local database, encoded for `COPY`.
pub struct RawRows {
    pub points: usize,
    pub values: usize,
    pub binary_points: Vec<u8>,
    pub binary_values: Vec<u8>,
    pub text_points: Vec<u8>,
    pub text_values: Vec<u8>,
}

/// Microseconds between the Unix epoch and 2000-01-01.
const PG_EPOCH_US: i64 = 946_684_800_000_000;

impl RawRows {
    pub fn read(db: &Path) -> RawRows {
        let conn = rusqlite::Connection::open(db).unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT s.window_id, s.from_ms + v.offset_ms AS ts, s.from_ms + v.offset_ms,
                        s.metric_id, v.value
                 FROM series s JOIN samples v ON v.series_id = s.id
                 ORDER BY s.window_id, ts, s.metric_id",
            )
            .unwrap();
        let mut bp = header();
        let mut bv = header();
        let (mut tp, mut tv) = (Vec::new(), Vec::new());
        let (mut points, mut values) = (0, 0);
        let mut last: Option<(i64, i64)> = None;
        let mut no = 0i32;
        let mut rows = stmt.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            let w: i64 = r.get(0).unwrap();
            let p: i64 = r.get(1).unwrap();
            let ts: i64 = r.get(2).unwrap();
            let m: i32 = r.get(3).unwrap();
            let v: f64 = r.get(4).unwrap();
            if last != Some((w, p)) {
                no = if last.is_some_and(|(lw, _)| lw == w) {
                    no + 1
                } else {
                    0
                };
                last = Some((w, p));
                points += 1;
                bp.extend_from_slice(&4i16.to_be_bytes());
                field(&mut bp, &w.to_be_bytes());
                field(&mut bp, &no.to_be_bytes());
                field(&mut bp, &ts.to_be_bytes());
                bp.extend_from_slice(&(-1i32).to_be_bytes());
                writeln!(tp, "{w}\t{no}\t{ts}\t\\N").unwrap();
            }
            values += 1;
            bv.extend_from_slice(&5i16.to_be_bytes());
            field(&mut bv, &w.to_be_bytes());
            field(&mut bv, &no.to_be_bytes());
            field(&mut bv, &m.to_be_bytes());
            field(&mut bv, &(ts * 1000 - PG_EPOCH_US).to_be_bytes());
            field(&mut bv, &v.to_bits().to_be_bytes());
            let t = incident_recorder::Timestamp::from_unix_ms(ts);
            writeln!(tv, "{w}\t{no}\t{m}\t{t}\t{v:?}").unwrap();
        }
        bp.extend_from_slice(&(-1i16).to_be_bytes());
        bv.extend_from_slice(&(-1i16).to_be_bytes());
        RawRows {
            points,
            values,
            binary_points: bp,
            binary_values: bv,
            text_points: tp,
            text_values: tv,
        }
    }
}

fn header() -> Vec<u8> {
    let mut b = b"PGCOPY\n\xff\r\n\0".to_vec();
    b.extend_from_slice(&[0; 8]);
    b
}

fn field(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    buf.extend_from_slice(bytes);
}
