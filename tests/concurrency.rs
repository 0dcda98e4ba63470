//! Readers during writes: while a recorder writes a thousand windows, reader
//! threads and a `sqlite3` process query continuously. WAL mode and one
//! transaction per tick mean no reader ever sees half a tick, and no
//! `SQLITE_BUSY` reaches anyone.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::*;
use incident_recorder::{RecorderConfig, Store, Trigger, WindowFilter, WindowStatus};

/// Queries that must return 0 in every snapshot a reader can see.
const INVARIANTS: [&str; 5] = [
    // a journal point whose values are not all there
    "SELECT count(*) FROM (SELECT p.id FROM recent_points p
        LEFT JOIN recent_values v ON v.point_id = p.id
        GROUP BY p.id HAVING count(v.point_id) <> 8)",
    // a sealed point whose values are not all there: every metric of a
    // window has as many sealed values as the others
    "SELECT count(*) FROM (SELECT window_id FROM
        (SELECT s.window_id, s.metric_id, count(*) AS n
         FROM series s JOIN samples v ON v.series_id = s.id GROUP BY s.window_id, s.metric_id)
        GROUP BY window_id HAVING count(*) <> 8 OR count(DISTINCT n) <> 1)",
    // a closed window without its statistics
    "SELECT count(*) FROM windows w WHERE w.status <> 'recording'
        AND (w.summary_points IS NULL
             OR (SELECT count(*) FROM window_metric_stats s WHERE s.window_id = w.id) <> 8)",
    // a closed window whose summary does not count its (sealed) points
    "SELECT count(*) FROM windows w WHERE w.status <> 'recording'
        AND w.summary_points <> (SELECT count(*) FROM series s JOIN samples v
                                 ON v.series_id = s.id WHERE s.window_id = w.id) / 8",
    // a closed window with points left in the journal
    "SELECT count(*) FROM windows WHERE status <> 'recording' AND recent_from IS NOT NULL",
];

#[test]
fn readers_never_see_a_partial_tick_or_a_busy_error() {
    let config = RecorderConfig {
        post_incident_window: secs(10),
        max_windows: 100_000,
        ..small_config()
    };
    let rig = Arc::new(Rig::file(config));
    let ids: Vec<String> = (0..50).map(|i| format!("node-{i}")).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    rig.recorder
        .set_metrics_provider(Scripted::new(&id_refs, |_, n| {
            Ok((0..8)
                .map(|m| (format!("m{m}"), (n * 8 + m) as f64))
                .collect())
        }));
    let path = rig.db_path();
    let done = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));

    let readers: Vec<_> = (0..4)
        .map(|i| {
            let (path, done, reads) = (path.clone(), done.clone(), reads.clone());
            std::thread::spawn(move || {
                let store = Store::open_read_only(&path).unwrap();
                let conn = sql(&path);
                conn.busy_timeout(std::time::Duration::from_secs(10))
                    .unwrap();
                while !done.load(Ordering::Relaxed) {
                    for q in INVARIANTS {
                        assert_eq!(count(&conn, q), 0, "reader {i}: {q}");
                    }
                    // Through the library too: closed windows come with summaries.
                    let closed = store
                        .windows(&WindowFilter {
                            status: Some(WindowStatus::Complete),
                            limit: 20,
                            with_points: true,
                            ..WindowFilter::default()
                        })
                        .unwrap();
                    for w in closed {
                        let s = w.summary.expect("closed window has a summary");
                        assert_eq!(s.data_points as usize, w.data_points.len());
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    // A sqlite3 process checking the same invariants in a loop.
    let script: String = INVARIANTS
        .iter()
        .map(|q| format!("{};\n", q.replace('\n', " ")))
        .collect::<String>()
        .repeat(200);
    let sqlite3 = std::process::Command::new("sqlite3")
        .arg("-readonly")
        .arg("-cmd")
        .arg(".timeout 10000")
        .arg(&path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let sqlite3 = match sqlite3 {
        Ok(mut child) => {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            std::thread::spawn(move || {
                let _ = stdin.write_all(script.as_bytes());
            });
            Some(child)
        }
        Err(e) => {
            eprintln!("skipped the sqlite3 reader: {e}");
            None
        }
    };

    // The writer: windows on 20 resources each tick, 10 s long, until 1000 closed.
    let mut tick = 0;
    loop {
        rig.recorder.record_sample().unwrap();
        for i in 0..20 {
            let r = &ids[(tick * 20 + i) % ids.len()];
            rig.start(r.as_str(), Trigger::manual());
        }
        rig.clock.advance(secs(5));
        tick += 1;
        let closed = rig
            .recorder
            .store()
            .stats()
            .unwrap()
            .windows_by_status
            .get("complete")
            .copied();
        if closed.unwrap_or(0) >= 1000 {
            break;
        }
    }
    done.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().expect("a reader failed");
    }
    assert!(
        reads.load(Ordering::Relaxed) > 4,
        "readers ran during the writes"
    );
    if let Some(child) = sqlite3 {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.is_empty(),
            "sqlite3: {stderr}"
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(stdout.lines().count(), 200 * INVARIANTS.len());
        assert!(
            stdout.lines().all(|l| l == "0"),
            "sqlite3 saw a broken snapshot"
        );
    }
}
