//! The fleet push against a raw `COPY` of the same rows, same run, same
//! server: `fleet::push` of W windows × P points × 8 metrics (the peer's
//! synthetic history, `benches/support`) from a local database into a
//! throwaway PostgreSQL (tests/pg, durable: fsync on), then the same
//! points and values, read out of the local database beforehand, loaded
//! with one binary `COPY` per table, and with text `COPY`, into empty
//! tables of the same layout and indexes. Each round uses a fresh central
//! database. Prints a table; BENCHMARKS.md has the numbers.
//!
//! ```sh
//! cargo run --release --example pushbench               # 1,000 windows × 500 points, 3 rounds
//! cargo run --release --example pushbench -- 100 500 1  # W, P, rounds
//! ```

#[path = "../tests/pg/mod.rs"]
mod pg;
#[path = "../benches/support/mod.rs"]
mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use incident_recorder::Store;
use incident_recorder::fleet::{self, Target};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("arguments: WINDOWS POINTS ROUNDS"))
        .collect();
    let windows = args.first().copied().unwrap_or(1_000);
    let points = args.get(1).copied().unwrap_or(500);
    let rounds = args.get(2).copied().unwrap_or(3);
    let Some(cluster) = pg::Cluster::start(pg::Options {
        durable: true,
        ..pg::Options::default()
    }) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = support::temp_db(&dir);
    let built = Instant::now();
    support::build_history(&db, windows, points, support::now_truncated());
    eprintln!(
        "built {windows} windows × {points} points in {:.1?}",
        built.elapsed()
    );
    let rows = Rows::read(&db);
    eprintln!(
        "{} points, {} values, {:.1} MB as binary COPY, {:.1} MB as text",
        rows.points,
        rows.values,
        rows.binary_points.len() as f64 / 1e6 + rows.binary_values.len() as f64 / 1e6,
        rows.text_points.len() as f64 / 1e6 + rows.text_values.len() as f64 / 1e6
    );
    let store = Store::open(&db).unwrap();
    let mut results: Vec<[Duration; 3]> = Vec::new();
    for round in 0..rounds {
        let name = format!("bench_{round}");
        let mut admin = cluster.client("postgres");
        admin
            .batch_execute(&format!("CREATE DATABASE {name} OWNER {}", pg::PUSHER))
            .unwrap();
        let url = format!(
            "postgresql://{}:{}@127.0.0.1:{}/{name}",
            pg::PUSHER,
            pg::PASSWORD,
            cluster.port
        );
        reset_marks(&db);
        let target = Target::new(&url, Some("bench")).unwrap();
        // The schema first (untimed), as every pusher but the first finds it.
        fleet::push(&Store::open_in_memory().unwrap(), &target, &mut |_| {}).unwrap();
        let t = Instant::now();
        let summary = fleet::push(&store, &target, &mut |_| {}).unwrap();
        let push = t.elapsed();
        assert_eq!(summary.values, rows.values as u64, "{summary:?}");

        let mut c = postgres::Client::connect(
            &format!(
                "host=127.0.0.1 port={} user={} password={} dbname={name}",
                cluster.port,
                pg::PUSHER,
                pg::PASSWORD
            ),
            postgres::NoTls,
        )
        .unwrap();
        c.batch_execute(
            "CREATE TABLE raw_data_points (LIKE data_points INCLUDING ALL);
             CREATE TABLE raw_point_values (LIKE point_values INCLUDING ALL);",
        )
        .unwrap();
        let binary = rows.load(
            &mut c,
            "(FORMAT binary)",
            &rows.binary_points,
            &rows.binary_values,
        );
        c.batch_execute("TRUNCATE raw_data_points, raw_point_values")
            .unwrap();
        let text = rows.load(&mut c, "", &rows.text_points, &rows.text_values);
        eprintln!(
            "round {round}: push {push:.2?}, raw binary COPY {binary:.2?}, raw text COPY {text:.2?}"
        );
        results.push([push, binary, text]);
        drop(c);
        admin
            .batch_execute(&format!("DROP DATABASE {name}"))
            .unwrap();
    }
    let best = |i: usize| results.iter().map(|r| r[i]).min().unwrap();
    let (push, binary, text) = (best(0), best(1), best(2));
    let per_s = |d: Duration| rows.values as f64 / d.as_secs_f64();
    println!(
        "| measurement ({windows} windows × {points} points × 8 metrics, best of {rounds}) | time | values/s | push ÷ raw |"
    );
    println!("|---|---|---|---|");
    println!(
        "| `fleet::push` (windows, triggers, summaries, anomalies, points, values; binary COPY) | {:.2} s | {:.2} M | {:.0}% of raw binary, {:.0}% of raw text |",
        push.as_secs_f64(),
        per_s(push) / 1e6,
        100.0 * binary.as_secs_f64() / push.as_secs_f64(),
        100.0 * text.as_secs_f64() / push.as_secs_f64(),
    );
    println!(
        "| raw binary `COPY` of the same points and values | {:.2} s | {:.2} M | |",
        binary.as_secs_f64(),
        per_s(binary) / 1e6
    );
    println!(
        "| raw text `COPY` of the same points and values | {:.2} s | {:.2} M | |",
        text.as_secs_f64(),
        per_s(text) / 1e6
    );
    // The server's speed drifts between rounds (checkpoints, other work on
    // the machine); within a round both ran under the same conditions.
    let mut ratios: Vec<f64> = results
        .iter()
        .map(|r| r[1].as_secs_f64() / r[0].as_secs_f64())
        .collect();
    ratios.sort_by(f64::total_cmp);
    println!(
        "\npush speed ÷ raw binary COPY speed, per round: {} (median {:.0}%)",
        ratios
            .iter()
            .map(|r| format!("{:.0}%", 100.0 * r))
            .collect::<Vec<_>>()
            .join(", "),
        100.0 * ratios[ratios.len() / 2]
    );
}

/// Makes every window unpushed again.
fn reset_marks(db: &std::path::Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch("DELETE FROM window_pushes; DELETE FROM push_state;")
        .unwrap();
}

/// The points and values of the local database, encoded for `COPY` both ways.
struct Rows {
    points: usize,
    values: usize,
    binary_points: Vec<u8>,
    binary_values: Vec<u8>,
    text_points: Vec<u8>,
    text_values: Vec<u8>,
}

/// Microseconds between the Unix epoch and 2000-01-01.
const PG_EPOCH_US: i64 = 946_684_800_000_000;

impl Rows {
    fn read(db: &std::path::Path) -> Rows {
        let conn = rusqlite::Connection::open(db).unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT x.window_id, p.id, p.ts_ms, v.metric_id, v.value
                 FROM window_points x JOIN data_points p ON p.id = x.point_id
                 JOIN point_values v ON v.point_id = p.id
                 ORDER BY x.window_id, p.ts_ms, p.id, v.metric_id",
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
            let (w, p, ts, m, v): (i64, i64, i64, i32, f64) = (
                r.get(0).unwrap(),
                r.get(1).unwrap(),
                r.get(2).unwrap(),
                r.get(3).unwrap(),
                r.get(4).unwrap(),
            );
            match last {
                Some((lw, lp)) if lw == w && lp == p => {}
                Some((lw, _)) if lw == w => no += 1,
                _ => no = 0,
            }
            if last != Some((w, p)) {
                points += 1;
                bp.extend_from_slice(&4i16.to_be_bytes());
                field(&mut bp, &w.to_be_bytes());
                field(&mut bp, &no.to_be_bytes());
                field(&mut bp, &ts.to_be_bytes());
                bp.extend_from_slice(&(-1i32).to_be_bytes());
                writeln!(tp, "{w}\t{no}\t{ts}\t\\N").unwrap();
                last = Some((w, p));
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
        Rows {
            points,
            values,
            binary_points: bp,
            binary_values: bv,
            text_points: tp,
            text_values: tv,
        }
    }

    /// One transaction: both tables, one `COPY` each. Returns its time.
    fn load(
        &self,
        c: &mut postgres::Client,
        format: &str,
        points: &[u8],
        values: &[u8],
    ) -> Duration {
        let t = Instant::now();
        let mut tx = c.transaction().unwrap();
        for (table, data) in [("raw_data_points", points), ("raw_point_values", values)] {
            let columns = if table == "raw_data_points" {
                "(window_id, point_no, ts_ms, metadata)"
            } else {
                "(window_id, point_no, metric_id, ts, value)"
            };
            let mut w = tx
                .copy_in(&format!("COPY {table} {columns} FROM STDIN {format}"))
                .unwrap();
            for chunk in data.chunks(1 << 20) {
                w.write_all(chunk).unwrap();
            }
            w.finish().unwrap();
        }
        tx.commit().unwrap();
        t.elapsed()
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
