//! Which central database a push mark is for (issue 18, defects 10 and 11),
//! against a real PostgreSQL (a throwaway cluster per test, tests/pg) and
//! through the `incident-recorder` binary as a user runs it:
//!
//! - a new central database, one dropped and created again, and another
//!   `--node` get every window the node still has; `push --verify` sends
//!   again what the central database lost;
//! - a window refused while a constraint existed lands once it is dropped
//!   (when its retry is due, or at once with `--retry-refused`);
//! - retention counts as pushed only what the central database in use has,
//!   and counts every refused or unpushed window it deletes.
//!
//! Without PostgreSQL's binaries each test prints why and passes; with
//! `CI=true` it fails instead (see tests/pg).

mod pg;
mod push_cli;

use std::path::Path;
use std::process::Stdio;

use pg::{Cluster, Options};
use push_cli::{command, push, run, text};
use serde_json::{Value, json};

/// 2026-11-24T10:00:00Z.
const T0: i64 = 1_795_514_400_000;

fn stats(db: &Path) -> Value {
    let out = run(command(db, &["stats", "--json"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `(pushed, skipped, failed)` of a push report.
fn counts(report: &Value) -> (u64, u64, u64) {
    let n = |k: &str| report[k].as_u64().unwrap();
    (n("pushed"), n("skipped"), n("failed"))
}

/// Ingests `n` closed windows, one a minute from `from` on resources
/// `vm-0`, `vm-1`...: 10 samples each, a manual trigger at the fifth, a stop.
fn ingest(db: &Path, n: usize, from: i64) {
    let mut lines = String::new();
    for i in 0..n {
        let resource = format!("vm-{i}");
        let t = from + i as i64 * 60_000;
        for k in 0..10 {
            if k == 5 {
                lines += &format!(
                    "{}\n",
                    json!({"type": "trigger", "resource": resource, "trigger": "manual", "ts": t + k * 1000})
                );
            }
            lines += &format!(
                "{}\n",
                json!({"type": "sample", "resource": resource, "ts": t + k * 1000, "metrics": {"cpu": k, "memory": 40 + k}})
            );
        }
        lines += &format!(
            "{}\n",
            json!({"type": "stop", "resource": resource, "ts": t + 10_000})
        );
    }
    let mut cmd = command(db, &["ingest", "-"]);
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(lines.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// The central database `db`'s windows of `node`: public id → samples.
fn central(cluster: &Cluster, db: &str, node: &str) -> Vec<(String, i64)> {
    cluster
        .client(db)
        .query(
            "SELECT w.public_id, (SELECT count(*) FROM point_values v WHERE v.window_id = w.id)
             FROM windows w WHERE w.node = $1 ORDER BY w.public_id COLLATE \"C\"",
            &[&node],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// The local windows: public id → samples (what `central` must show).
fn local(db: &Path) -> Vec<(String, i64)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT window_id, count(*) FROM incident_samples
             GROUP BY window_id ORDER BY window_id",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// The URL of another database of the cluster, for the same role.
fn url_of(cluster: &Cluster, db: &str) -> String {
    let url = cluster.url();
    format!("{}{db}", url.strip_suffix("central").unwrap())
}

#[test]
fn a_new_or_recreated_central_database_or_another_node_gets_every_window() {
    let Some(cluster) = Cluster::start(Options::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("n.db");
    ingest(&db, 3, T0);
    let url = cluster.url();
    assert_eq!(counts(&push(&db, &url, "n", &[], 0)), (3, 0, 0));
    assert_eq!(counts(&push(&db, &url, "n", &[], 0)), (0, 0, 0));
    assert_eq!(central(&cluster, "central", "n"), local(&db));

    // Another node name: the central database has none of its windows.
    assert_eq!(counts(&push(&db, &url, "n-renamed", &[], 0)), (3, 0, 0));
    assert_eq!(central(&cluster, "central", "n-renamed"), local(&db));

    // A new central database.
    cluster
        .client("postgres")
        .batch_execute("CREATE DATABASE central2 OWNER pusher")
        .unwrap();
    let url2 = url_of(&cluster, "central2");
    assert_eq!(counts(&push(&db, &url2, "n", &[], 0)), (3, 0, 0));
    assert_eq!(central(&cluster, "central2", "n"), local(&db));
    let state = &stats(&db)["push"];
    assert_eq!(state["central"], cluster.url_without_password() + "2");
    assert_eq!(
        (state["backlog"].as_u64(), state["pushed"].as_u64()),
        (Some(0), Some(3))
    );

    // Back to the first one: it has them all, nothing is sent.
    assert_eq!(counts(&push(&db, &url, "n", &[], 0)), (0, 0, 0));

    // The first one dropped and created again (or restored empty).
    let mut admin = cluster.client("postgres");
    admin
        .batch_execute("DROP DATABASE central WITH (FORCE)")
        .unwrap();
    admin
        .batch_execute("CREATE DATABASE central OWNER pusher")
        .unwrap();
    assert_eq!(counts(&push(&db, &url, "n", &[], 0)), (3, 0, 0));
    assert_eq!(central(&cluster, "central", "n"), local(&db));

    // A central database that already has some (a dump restored into a new
    // database): only what it lacks is sent; the rest is found and marked.
    ingest(&db, 2, T0 + 3_600_000);
    cluster
        .client("postgres")
        .batch_execute("CREATE DATABASE central3 TEMPLATE central OWNER pusher")
        .unwrap();
    let url3 = url_of(&cluster, "central3");
    assert_eq!(counts(&push(&db, &url3, "n", &[], 0)), (2, 3, 0));
    assert_eq!(central(&cluster, "central3", "n"), local(&db));
}

#[test]
fn push_verify_sends_again_what_the_central_database_lost() {
    let Some(cluster) = Cluster::start(Options::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("v.db");
    ingest(&db, 3, T0);
    let url = cluster.url();
    assert_eq!(counts(&push(&db, &url, "v", &[], 0)), (3, 0, 0));
    let lost = local(&db)[1].0.clone();
    // Deleted centrally (by hand, or a restore from an older backup).
    cluster
        .client("central")
        .batch_execute(&format!(
            "DELETE FROM point_values WHERE window_id = (SELECT id FROM windows WHERE public_id = '{lost}');
             DELETE FROM data_points WHERE window_id = (SELECT id FROM windows WHERE public_id = '{lost}');
             DELETE FROM windows WHERE public_id = '{lost}';"
        ))
        .unwrap();
    assert_eq!(central(&cluster, "central", "v").len(), 2);
    // A plain push trusts its marks.
    assert_eq!(counts(&push(&db, &url, "v", &[], 0)), (0, 0, 0));
    let report = push(&db, &url, "v", &["--verify"], 0);
    assert_eq!(counts(&report), (1, 0, 0), "{report}");
    assert_eq!(report["missing"], 1, "{report}");
    assert_eq!(central(&cluster, "central", "v"), local(&db));

    let out = run(command(
        &db,
        &["push", "--to", &url, "--node", "v", "--verify"],
    ));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("pushed 0 windows"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn windows_refused_under_a_constraint_land_once_it_is_dropped() {
    let Some(cluster) = Cluster::start(Options::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    ingest(&db, 1, T0);
    let url = cluster.url();
    assert_eq!(counts(&push(&db, &url, "r", &[], 0)), (1, 0, 0));
    let mut c = cluster.client("central");
    c.batch_execute("ALTER TABLE windows ADD CONSTRAINT paused CHECK (node <> 'r') NOT VALID")
        .unwrap();
    ingest(&db, 3, T0 + 3_600_000);
    let refused = push(&db, &url, "r", &[], 3);
    assert_eq!(counts(&refused), (0, 0, 3), "{refused}");
    assert!(
        refused["refused"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("paused"),
        "{refused}"
    );
    let state = stats(&db)["push"].clone();
    assert_eq!(
        (state["refused"].as_u64(), state["backlog"].as_u64()),
        (Some(3), Some(0)),
        "{state}"
    );
    // The first retry is due a minute after the refusal.
    let retry = |state: &Value| {
        let at = state["next_retry"].as_str().unwrap();
        chrono_ms(at) - now_ms()
    };
    let wait = retry(&state);
    assert!((50_000..=60_000).contains(&wait), "{state}");

    // Not due yet: a push leaves them.
    assert_eq!(counts(&push(&db, &url, "r", &[], 0)), (0, 0, 0));
    // --retry-refused tries them now; still refused, so the next wait doubles.
    let again = push(&db, &url, "r", &["--retry-refused"], 3);
    assert_eq!(counts(&again), (0, 0, 3), "{again}");
    assert_eq!(again["retried"], 3);
    let wait = retry(&stats(&db)["push"]);
    assert!((110_000..=120_000).contains(&wait), "{wait}");

    c.batch_execute("ALTER TABLE windows DROP CONSTRAINT paused")
        .unwrap();
    // When the retry is due (time moved on: the due time set in the past),
    // a plain push sends them.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE window_pushes SET retry_ms = retry_ms - 120000 WHERE refused IS NOT NULL",
            [],
        )
        .unwrap();
    let landed = push(&db, &url, "r", &[], 0);
    assert_eq!(counts(&landed), (3, 0, 0), "{landed}");
    assert_eq!(landed["retried"], 3);
    assert_eq!(central(&cluster, "central", "r"), local(&db));
    let state = &stats(&db)["push"];
    assert_eq!(
        (state["refused"].as_u64(), state["pushed"].as_u64()),
        (Some(0), Some(4)),
        "{state}"
    );
    assert_eq!(state["next_retry"], Value::Null);
}

#[test]
fn retention_counts_what_the_central_database_in_use_lacks() {
    let Some(cluster) = Cluster::start(Options::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    ingest(&db, 4, T0);
    assert_eq!(counts(&push(&db, &cluster.url(), "k", &[], 0)), (4, 0, 0));

    // Another central database, which refuses this node's windows.
    cluster
        .client("postgres")
        .batch_execute("CREATE DATABASE central2 OWNER pusher")
        .unwrap();
    let url2 = url_of(&cluster, "central2");
    let empty = dir.path().join("empty.db");
    drop(incident_recorder::Store::open(&empty).unwrap());
    push(&empty, &url2, "probe", &[], 0); // creates the schema
    cluster
        .client("central2")
        .batch_execute("ALTER TABLE windows ADD CONSTRAINT paused CHECK (node <> 'k')")
        .unwrap();
    assert_eq!(counts(&push(&db, &url2, "k", &[], 3)), (0, 0, 4));

    // All 4 are past retention, and pushed to the first central database
    // only: the one in use lacks them, so they are spared up to the window
    // limit (1), and the 3 deleted are counted, as refused.
    let out = run(command(
        &db,
        &["prune", "--retention", "1h", "--max-windows", "1", "--json"],
    ));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pruned: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            pruned["deleted_windows"].as_u64(),
            pruned["deleted_unpushed"].as_u64()
        ),
        (Some(3), Some(3)),
        "{pruned}"
    );
    let state = &stats(&db)["push"];
    assert_eq!(
        (
            state["dropped_unpushed"].as_u64(),
            state["dropped_refused"].as_u64(),
            state["refused"].as_u64()
        ),
        (Some(3), Some(3), Some(1)),
        "{state}"
    );
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Unix ms of a timestamp as the JSON output writes it.
fn chrono_ms(text: &str) -> i64 {
    let t: incident_recorder::Timestamp = serde_json::from_value(json!(text)).unwrap();
    t.as_unix_ms()
}

/// Turns `db` (pushed by this build) back into what version 8 wrote: marks
/// that do not say where they went (and no notes, series, scores, trigger
/// words or process snapshots: versions 10 to 13 undone too, newest first).
fn back_to_version_8(db: &Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch(
        "PRAGMA foreign_keys = OFF;
         BEGIN;
         DROP TABLE process_samples;
         DELETE FROM refinery_schema_history WHERE version = 13;
         ALTER TABLE window_metric_stats DROP COLUMN change_score;
         ALTER TABLE window_metric_stats DROP COLUMN change_rank;
         ALTER TABLE window_metric_stats DROP COLUMN change_unscored;
         ALTER TABLE window_triggers DROP COLUMN labels;
         ALTER TABLE window_triggers DROP COLUMN annotations;
         ALTER TABLE window_triggers DROP COLUMN rule;
         ALTER TABLE window_triggers DROP COLUMN ends_ms;
         DELETE FROM refinery_schema_history WHERE version = 12;
         -- Version 11's series and samples back into version 8's runs.
         DROP VIEW incident_samples;
         CREATE TABLE series_values (id INTEGER PRIMARY KEY, offset_ms INTEGER NOT NULL,
                                     value REAL NOT NULL);
         CREATE TABLE window_series (
             window_id INTEGER NOT NULL REFERENCES windows(id) ON DELETE CASCADE,
             metric_id INTEGER NOT NULL REFERENCES metrics(id),
             first_value_id INTEGER NOT NULL, last_value_id INTEGER NOT NULL,
             CHECK (first_value_id <= last_value_id),
             PRIMARY KEY (window_id, metric_id, first_value_id)) WITHOUT ROWID;
         CREATE TEMP TABLE numbered AS
             SELECT row_number() OVER (ORDER BY v.series_id, v.offset_ms) AS id,
                    v.series_id AS series_id, s.window_id AS window_id,
                    s.metric_id AS metric_id,
                    s.from_ms + v.offset_ms - w.opened_ms AS offset_ms, v.value AS value
             FROM samples v JOIN series s ON s.id = v.series_id
             JOIN windows w ON w.id = s.window_id;
         INSERT INTO series_values SELECT id, offset_ms, value FROM numbered ORDER BY id;
         INSERT INTO window_series
             SELECT window_id, metric_id, min(id), max(id) FROM numbered GROUP BY series_id;
         DROP TABLE numbered;
         DROP TABLE samples;
         DROP TABLE series;
         -- (version 8's view; version 11 drops it unread)
         CREATE VIEW incident_samples AS SELECT 1 AS version_8;
         DELETE FROM refinery_schema_history WHERE version = 11;
         DROP TABLE note_pushes;
         DROP TABLE window_notes;
         DELETE FROM refinery_schema_history WHERE version = 10;
         CREATE TABLE v8_pushes (
             window_id INTEGER PRIMARY KEY REFERENCES windows(id) ON DELETE CASCADE,
             pushed_ms INTEGER NOT NULL,
             refused   TEXT
         );
         INSERT INTO v8_pushes SELECT window_id, pushed_ms, refused FROM window_pushes;
         DROP TABLE window_pushes;
         ALTER TABLE v8_pushes RENAME TO window_pushes;
         CREATE TABLE v8_state (
             id               INTEGER PRIMARY KEY CHECK (id = 1),
             enabled_ms       INTEGER NOT NULL,
             dropped_unpushed INTEGER NOT NULL DEFAULT 0
         );
         INSERT INTO v8_state SELECT id, enabled_ms, dropped_unpushed FROM push_state;
         DROP TABLE push_state;
         ALTER TABLE v8_state RENAME TO push_state;
         DROP TABLE push_targets;
         DELETE FROM refinery_schema_history WHERE version = 9;
         COMMIT;",
    )
    .unwrap();
}

#[test]
fn marks_written_before_they_named_their_central_database_are_checked_there() {
    let Some(cluster) = Cluster::start(Options::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("u.db");
    ingest(&db, 3, T0);
    let url = cluster.url();
    assert_eq!(counts(&push(&db, &url, "u", &[], 0)), (3, 0, 0));
    back_to_version_8(&db);

    // Upgraded (by any command that writes): the old marks count until a push connects...
    drop(incident_recorder::Store::open(&db).unwrap());
    let state = &stats(&db)["push"];
    assert_eq!(
        (state["pushed"].as_u64(), state["backlog"].as_u64()),
        (Some(3), Some(0)),
        "{state}"
    );
    // ... which finds them there (nothing sent) ...
    assert_eq!(counts(&push(&db, &url, "u", &[], 0)), (0, 3, 0));
    assert_eq!(central(&cluster, "central", "u"), local(&db));
    // ... or, for another central database, sends them.
    cluster
        .client("postgres")
        .batch_execute("CREATE DATABASE central2 OWNER pusher")
        .unwrap();
    assert_eq!(
        counts(&push(&db, &url_of(&cluster, "central2"), "u", &[], 0)),
        (3, 0, 0)
    );
}

/// Like [`central`], but empty while the database has no schema yet.
fn central_or_none(cluster: &Cluster, node: &str) -> Vec<(String, i64)> {
    let mut c = cluster.client("central");
    let ready: bool = c
        .query_one("SELECT to_regclass('fleet_identity') IS NOT NULL", &[])
        .unwrap()
        .get(0);
    if ready {
        central(cluster, "central", node)
    } else {
        Vec::new()
    }
}

#[test]
fn a_running_pusher_sends_everything_to_its_central_database_created_again() {
    let Some(cluster) = Cluster::start(Options::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    ingest(&db, 3, T0);
    let mut options = incident_recorder::fleet::PusherOptions::default();
    options.poll_interval = std::time::Duration::from_millis(100);
    options.identity_check = std::time::Duration::from_millis(300);
    let target = incident_recorder::fleet::Target::new(&cluster.url(), Some("p")).unwrap();
    let pusher = incident_recorder::fleet::Pusher::start(
        incident_recorder::Store::open(&db).unwrap(),
        target,
        options,
    )
    .unwrap();
    let limit = std::time::Duration::from_secs(30);
    assert!(pg::eventually(limit, || central_or_none(&cluster, "p") == local(&db)));

    // Idle (nothing new to send) when its database is dropped and created again.
    let mut admin = cluster.client("postgres");
    admin
        .batch_execute("DROP DATABASE central WITH (FORCE)")
        .unwrap();
    admin
        .batch_execute("CREATE DATABASE central OWNER pusher")
        .unwrap();
    assert!(
        pg::eventually(limit, || central_or_none(&cluster, "p") == local(&db)),
        "{:?}",
        pusher.status()
    );
    let status = pusher.stop();
    assert_eq!((status.pushed, status.backlog), (6, 0), "{status:?}");
}
