//! The fleet push against a real PostgreSQL: a throwaway cluster per test
//! (tests/pg), local databases recorded through the library, and the
//! `incident-recorder` binary pushing them as a user runs it.
//!
//! Without PostgreSQL's binaries each test prints why and passes; with
//! `CI=true` it fails instead (see tests/pg).

mod pg;
mod push_cli;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use incident_recorder::{
    IncidentRecorder, ManualClock, Metrics, RecorderConfig, Resource, Sample, Timestamp, Trigger,
};
use pg::{Cluster, Options, PASSWORD};
use push_cli::{command, no_password, push, run, text};
use serde_json::{Value, json};

/// 2026-11-24T10:00:00Z.
const T0: i64 = 1_795_514_400_000;

// ---------------------------------------------------------------------------
// Local databases

/// A sample to record: time (ms), values, metadata.
type Point = (i64, Metrics, Option<serde_json::Map<String, Value>>);

/// Records `windows` closed windows of `points` points each into a new
/// database at `db` (12 points buffered before each trigger), on three
/// resources, with values shifted by `offset` so two nodes' data differ.
/// Some points carry metadata, `disk` is missing from every third point,
/// and a spike after each trigger leaves anomalies. Returns the window ids.
fn record(db: &Path, windows: usize, points: usize, offset: f64) -> Vec<String> {
    record_at(db, windows, points, offset, T0)
}

/// [`record`], starting at `start` (Unix ms).
fn record_at(db: &Path, windows: usize, points: usize, offset: f64, start: i64) -> Vec<String> {
    let clock = ManualClock::new(Timestamp::from_unix_ms(start));
    let config = RecorderConfig {
        max_windows: 1_000_000,
        retention: Duration::from_secs(3650 * 86_400),
        post_incident_window: Duration::from_secs(24 * 3600),
        max_data_points_per_window: points + 1,
        ..RecorderConfig::with_db_path(db)
    };
    let recorder = IncidentRecorder::open_with_clock(config, Arc::new(clock.clone())).unwrap();
    let mut ids = Vec::new();
    let mut ts = start;
    for i in 0..windows {
        let resource = format!("vm-{}", i % 3);
        let samples: Vec<Point> = (0..points)
            .map(|k| {
                ts += 5_000;
                let spike = if (14..18).contains(&k) { 500.0 } else { 0.0 };
                let mut m = Metrics::new()
                    .with("cpu", offset + (i + k % 7) as f64 + spike)
                    .with("memory", offset + 50.0 + (k as f64) / 8.0);
                if k % 3 != 0 {
                    m.insert("disk", offset - 0.25 * k as f64);
                }
                let meta = (k % 25 == 0).then(|| {
                    json!({"k": k, "note": format!("point {k} of {i}"), "nested": {"ok": true}})
                        .as_object()
                        .cloned()
                        .unwrap()
                });
                (ts, m, meta)
            })
            .collect();
        let push = |part: &[Point]| {
            clock.set(Timestamp::from_unix_ms(part.last().unwrap().0));
            let report = recorder
                .push_samples(part.iter().map(|(ts, m, meta)| Sample {
                    resource: Resource::named(&resource, "web", "vm"),
                    timestamp: Timestamp::from_unix_ms(*ts),
                    metrics: m.clone(),
                    metadata: meta.as_ref(),
                }))
                .unwrap();
            assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        };
        let pre = 12.min(points);
        push(&samples[..pre]);
        let id = recorder
            .start_recording(resource.as_str(), Trigger::alert("cpu-high"))
            .unwrap();
        if pre < points {
            push(&samples[pre..]);
        }
        recorder.stop_recording(&id).unwrap();
        ids.push(id.to_string());
        ts += 60_000;
    }
    recorder.stop().unwrap();
    ids
}

/// Rows of an SQLite query, as JSON values per column.
fn sqlite_rows(db: &Path, sql: &str) -> Vec<Vec<Value>> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |r| {
        (0..n)
            .map(|i| {
                Ok(match r.get_ref(i)? {
                    rusqlite::types::ValueRef::Null => Value::Null,
                    rusqlite::types::ValueRef::Integer(v) => json!(v),
                    rusqlite::types::ValueRef::Real(v) => json!(v),
                    rusqlite::types::ValueRef::Text(t) => json!(String::from_utf8_lossy(t)),
                    rusqlite::types::ValueRef::Blob(_) => panic!("no blobs"),
                })
            })
            .collect()
    })
    .unwrap()
    .collect::<rusqlite::Result<_>>()
    .unwrap()
}

fn sqlite_count(db: &Path, sql: &str) -> i64 {
    sqlite_rows(db, sql)[0][0].as_i64().unwrap()
}

// ---------------------------------------------------------------------------
// The central database

/// Rows of a central query, as JSON values per column (the query casts
/// each column to bigint, double precision, boolean, text or jsonb).
fn pg_rows(
    c: &mut postgres::Client,
    sql: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
) -> Vec<Vec<Value>> {
    use postgres::types::Type;
    c.query(sql, params)
        .unwrap()
        .iter()
        .map(|row| {
            (0..row.len())
                .map(|i| {
                    let t = row.columns()[i].type_();
                    match *t {
                        Type::INT8 => json!(row.get::<_, Option<i64>>(i)),
                        Type::INT4 => json!(row.get::<_, Option<i32>>(i)),
                        Type::FLOAT8 => json!(row.get::<_, Option<f64>>(i)),
                        Type::BOOL => json!(row.get::<_, Option<bool>>(i)),
                        Type::TEXT => json!(row.get::<_, Option<String>>(i)),
                        _ => panic!("cast column {i} ({t}) in {sql}"),
                    }
                })
                .collect()
        })
        .collect()
}

fn pg_count(c: &mut postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).unwrap().get(0)
}

/// Every row the central database has for `node` equals the local
/// database's: windows, triggers (with their words), summaries (with the
/// change scores and ranks), anomalies, points with their metadata, and
/// `incident_samples` row for row, value for value.
fn assert_same_history(db: &Path, c: &mut postgres::Client, node: &str) {
    let local = sqlite_rows(
        db,
        "SELECT w.public_id, r.external_id, r.name, r.type, w.trigger_type, w.trigger_id,
                w.start_ms, w.end_ms, w.deadline_ms, w.status, w.opened_ms, w.summary_points,
                w.duration_ms
         FROM windows w JOIN resources r ON r.id = w.resource_id
         WHERE w.status <> 'recording' ORDER BY w.public_id",
    );
    let central = pg_rows(
        c,
        "SELECT w.public_id, r.external_id, r.name, r.type, w.trigger_type, w.trigger_id,
                w.start_ms, w.end_ms, w.deadline_ms, w.status, w.opened_ms, w.summary_points,
                w.duration_ms
         FROM windows w JOIN resources r ON r.id = w.resource_id
         WHERE w.node = $1 ORDER BY w.public_id COLLATE \"C\"",
        &[&node],
    );
    assert!(!local.is_empty());
    assert_eq!(central, local, "windows of {node}");

    let local = sqlite_rows(
        db,
        "SELECT w.public_id, t.trigger_type, t.trigger_id, t.fired_ms, t.resolved_ms,
                t.opened_window = 1, t.labels, t.annotations, t.rule, t.ends_ms
         FROM window_triggers t JOIN windows w ON w.id = t.window_id
         WHERE w.status <> 'recording' ORDER BY w.public_id, t.fired_ms, t.id",
    );
    // The words are JSON text here and jsonb there: compared as JSON.
    let parse = |mut r: Vec<Value>| {
        for i in [6, 7] {
            if let Value::String(s) = &r[i] {
                r[i] = serde_json::from_str(s).unwrap();
            }
        }
        r
    };
    let local: Vec<Vec<Value>> = local
        .into_iter()
        .map(|mut r| {
            r[5] = json!(r[5] == json!(1));
            parse(r)
        })
        .collect();
    let central: Vec<Vec<Value>> = pg_rows(
        c,
        "SELECT w.public_id, t.trigger_type, t.trigger_id, t.fired_ms, t.resolved_ms, t.opened_window,
                t.labels::text, t.annotations::text, t.rule, t.ends_ms
         FROM window_triggers t JOIN windows w ON w.id = t.window_id
         WHERE w.node = $1 ORDER BY w.public_id COLLATE \"C\", t.fired_ms",
        &[&node],
    )
    .into_iter()
    .map(parse)
    .collect();
    assert_eq!(central, local, "triggers of {node}");

    let stats = "w.public_id, m.name, s.samples, s.peak, s.low, s.average, s.change, s.p50, s.p95,
        s.p99, s.change_score, s.change_rank, s.change_unscored";
    let local = sqlite_rows(
        db,
        &format!(
            "SELECT {stats} FROM window_metric_stats s JOIN windows w ON w.id = s.window_id
             JOIN metrics m ON m.id = s.metric_id ORDER BY w.public_id, m.name"
        ),
    );
    let central = pg_rows(
        c,
        &format!(
            "SELECT {stats} FROM window_metric_stats s JOIN windows w ON w.id = s.window_id
             JOIN metrics m ON m.id = s.metric_id WHERE w.node = $1
             ORDER BY w.public_id COLLATE \"C\", m.name COLLATE \"C\""
        ),
        &[&node],
    );
    assert!(!local.is_empty());
    assert!(local.iter().any(|r| r[10].is_number()), "scored metrics");
    assert_eq!(central, local, "summaries of {node}");

    let anomalies = "w.public_id, m.name, a.ts_ms, a.value, a.score, a.description";
    let local = sqlite_rows(
        db,
        &format!(
            "SELECT {anomalies} FROM window_anomalies a JOIN windows w ON w.id = a.window_id
             LEFT JOIN metrics m ON m.id = a.metric_id ORDER BY w.public_id, a.ts_ms, a.description"
        ),
    );
    let central = pg_rows(
        c,
        &format!(
            "SELECT {anomalies} FROM window_anomalies a JOIN windows w ON w.id = a.window_id
             LEFT JOIN metrics m ON m.id = a.metric_id WHERE w.node = $1
             ORDER BY w.public_id COLLATE \"C\", a.ts_ms, a.description COLLATE \"C\""
        ),
        &[&node],
    );
    assert!(!local.is_empty(), "the spikes leave anomalies");
    assert_eq!(central, local, "anomalies of {node}");

    // Points in time order, with their metadata (compared as JSON).
    let local = sqlite_rows(
        db,
        "WITH times AS (
             SELECT DISTINCT window_id, ts_ms FROM incident_samples WHERE status <> 'recording'
             UNION
             SELECT w.public_id, w.opened_ms + x.offset_ms
             FROM point_metadata x JOIN windows w ON w.id = x.window_id)
         SELECT t.window_id, t.ts_ms,
                (SELECT x.metadata FROM point_metadata x JOIN windows w ON w.id = x.window_id
                 WHERE w.public_id = t.window_id AND w.opened_ms + x.offset_ms = t.ts_ms)
         FROM times t ORDER BY t.window_id, t.ts_ms",
    );
    let local: Vec<Vec<Value>> = local
        .into_iter()
        .map(|mut r| {
            if let Value::String(s) = &r[2] {
                r[2] = serde_json::from_str(s).unwrap();
            }
            r
        })
        .collect();
    let central: Vec<Vec<Value>> = pg_rows(
        c,
        "SELECT w.public_id, p.ts_ms, p.metadata::text FROM windows w
         JOIN data_points p ON p.window_id = w.id WHERE w.node = $1
         ORDER BY w.public_id COLLATE \"C\", p.point_no",
        &[&node],
    )
    .into_iter()
    .map(|mut r| {
        if let Value::String(s) = &r[2] {
            r[2] = serde_json::from_str(s).unwrap();
        }
        r
    })
    .collect();
    assert!(local.iter().any(|r| r[2].is_object()), "some metadata");
    assert_eq!(central, local, "points of {node}");

    let local = sqlite_rows(
        db,
        "SELECT window_id, resource_id, resource_name, trigger_type, status, ts_ms, ts, metric, value
         FROM incident_samples ORDER BY window_id, ts_ms, metric",
    );
    let central = pg_rows(
        c,
        "SELECT window_id, resource_id, resource_name, trigger_type, status, ts_ms,
                to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), metric, value
         FROM incident_samples WHERE node = $1
         ORDER BY window_id COLLATE \"C\", ts_ms, metric COLLATE \"C\"",
        &[&node],
    );
    assert_eq!(
        central.len(),
        local.len(),
        "incident_samples rows of {node}"
    );
    assert_eq!(central, local, "incident_samples of {node}");
}

// ---------------------------------------------------------------------------
// Running the binary

/// Expects exit code 1 and one `error:` line containing `needle`.
fn fails(out: &Output, needle: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains(needle), "{needle:?} not in {err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn local_stats(db: &Path) -> Value {
    let out = run(command(db, &["stats", "--json"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

struct Nodes {
    _dir: tempfile::TempDir,
    a: PathBuf,
    b: PathBuf,
}

/// Two local databases with the same window ids and different values: `b`
/// starts as a copy of the empty `a` (a cloned machine image), so it has
/// `a`'s tag and the ids the two make collide; only the node tells them apart.
fn two_nodes(windows: usize, points: usize, start: i64) -> Nodes {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.db");
    let b = dir.path().join("b.db");
    drop(incident_recorder::Store::open(&a).unwrap());
    std::fs::copy(&a, &b).unwrap();
    let ids_a = record_at(&a, windows, points, 0.0, start);
    let ids_b = record_at(&b, windows, points, 1000.0, start);
    assert_eq!(ids_a, ids_b, "the two nodes' window ids collide");
    Nodes { _dir: dir, a, b }
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn two_nodes_push_into_one_central_database_exactly_once() {
    let Some(cluster) = Cluster::start(Options::default()) else {
        return;
    };
    let nodes = two_nodes(6, 40, T0);
    let url = cluster.url();

    let a = push(&nodes.a, &url, "node-a", &[], 0);
    assert_eq!(
        (
            a["pushed"].as_u64(),
            a["skipped"].as_u64(),
            a["failed"].as_u64()
        ),
        (Some(6), Some(0), Some(0)),
        "{a}"
    );
    assert_eq!(a["points"], 6 * 40);
    assert_eq!(a["central"], cluster.url_without_password());
    let b = push(&nodes.b, &url, "node-b", &[], 0);
    assert_eq!(b["pushed"], 6, "{b}");

    let mut c = cluster.client("central");
    assert_eq!(pg_count(&mut c, "SELECT count(*) FROM windows"), 12);
    assert_eq!(
        pg_count(&mut c, "SELECT count(DISTINCT public_id) FROM windows"),
        6,
        "same ids, two nodes"
    );
    assert_same_history(&nodes.a, &mut c, "node-a");
    assert_same_history(&nodes.b, &mut c, "node-b");

    // Pushing again adds nothing.
    let counts = |c: &mut postgres::Client| {
        [
            "windows",
            "data_points",
            "point_values",
            "window_triggers",
            "window_metric_stats",
            "window_anomalies",
        ]
        .map(|t| pg_count(c, &format!("SELECT count(*) FROM {t}")))
    };
    let before = counts(&mut c);
    let again = push(&nodes.a, &url, "node-a", &[], 0);
    assert_eq!(
        (again["pushed"].as_u64(), again["skipped"].as_u64()),
        (Some(0), Some(0)),
        "{again}"
    );
    assert_eq!(counts(&mut c), before);

    // A crash between the central commit and the local mark leaves exactly
    // this: windows centrally, unmarked locally. The next push adds nothing
    // and marks them.
    rusqlite::Connection::open(&nodes.a)
        .unwrap()
        .execute("DELETE FROM window_pushes", [])
        .unwrap();
    assert_eq!(local_stats(&nodes.a)["push"]["backlog"], 6);
    let redo = push(&nodes.a, &url, "node-a", &[], 0);
    assert_eq!(
        (redo["pushed"].as_u64(), redo["skipped"].as_u64()),
        (Some(0), Some(6)),
        "{redo}"
    );
    assert_eq!(counts(&mut c), before);
    let stats = local_stats(&nodes.a);
    assert_eq!(
        stats["push"],
        json!({"enabled": true, "central": cluster.url_without_password(), "node": "node-a",
               "backlog": 0, "pushed": 6, "refused": 0, "next_retry": null,
               "dropped_unpushed": 0, "dropped_refused": 0})
    );
    assert_same_history(&nodes.a, &mut c, "node-a");

    // The text form and `stats` say the same.
    let out = run(command(
        &nodes.b,
        &["push", "--to", &url, "--node", "node-b"],
    ));
    assert!(out.status.success());
    assert!(
        text(&out.stdout)
            .starts_with("pushed 0 windows (0 points, 0 values) to postgresql://pusher@127.0.0.1:"),
        "{}",
        text(&out.stdout)
    );
    let out = run(command(&nodes.b, &["stats"]));
    assert!(
        text(&out.stdout).contains("push       0 waiting, 6 pushed, 0 refused, 0 dropped unpushed"),
        "{}",
        text(&out.stdout)
    );
}

/// The README's fleet-wide queries, on two nodes.
#[test]
fn the_readme_fleet_queries_answer_across_nodes() {
    let Some(cluster) = Cluster::start(Options::default()) else {
        return;
    };
    let start = Timestamp::now().as_unix_ms() - 2 * 3_600_000;
    let nodes = two_nodes(3, 30, start);
    push(&nodes.a, &cluster.url(), "node-a", &[], 0);
    push(&nodes.b, &cluster.url(), "node-b", &[], 0);
    let mut c = cluster.client("central");
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split("## A fleet in PostgreSQL")
        .nth(1)
        .expect("the README's fleet section")
        .split("\n## ")
        .next()
        .unwrap();
    let queries: Vec<&str> = section
        .split("```sql\n")
        .skip(1)
        .map(|s| s.split("```").next().unwrap())
        .collect();
    assert!(queries.len() >= 2, "two example queries in the README");

    // Which hosts had a CPU alert since yesterday, and what their memory did.
    let rows = pg_json(&mut c, queries[0]);
    let got: Vec<(String, String, f64, f64)> = rows
        .iter()
        .map(|r| {
            (
                r["node"].as_str().unwrap().to_owned(),
                r["resource"].as_str().unwrap().to_owned(),
                r["memory_low"].as_f64().unwrap(),
                r["memory_high"].as_f64().unwrap(),
            )
        })
        .collect();
    let mut want = Vec::new();
    for (node, offset) in [("node-a", 0.0), ("node-b", 1000.0)] {
        for i in 0..3 {
            // memory rises by 1/8 per point from offset + 50, over 30 points
            want.push((
                node.to_owned(),
                format!("vm-{i}"),
                offset + 50.0,
                offset + 50.0 + 29.0 / 8.0,
            ));
        }
    }
    assert_eq!(got, want, "{rows:?}");
    assert!(rows.iter().all(|r| r["fired"].is_string()), "{rows:?}");

    // Peak CPU per node and minute, through incident_samples: the same
    // peaks and minutes as each node's own database.
    let rows = pg_json(&mut c, queries[1]);
    for (node, db) in [("node-a", &nodes.a), ("node-b", &nodes.b)] {
        let mine: Vec<&Value> = rows.iter().filter(|r| r["node"] == node).collect();
        let local = sqlite_rows(
            db,
            "SELECT count(DISTINCT substr(ts, 1, 16)), max(value) FROM incident_samples WHERE metric = 'cpu'",
        );
        assert_eq!(
            mine.len() as i64,
            local[0][0].as_i64().unwrap(),
            "minutes of {node}"
        );
        let peak = mine
            .iter()
            .map(|r| r["peak_cpu"].as_f64().unwrap())
            .fold(f64::MIN, f64::max);
        assert_eq!(peak, local[0][1].as_f64().unwrap(), "peak of {node}");
    }
}

/// A query's rows as JSON objects (column name → value), whatever their types.
fn pg_json(c: &mut postgres::Client, sql: &str) -> Vec<Value> {
    let sql = sql.trim().trim_end_matches(';');
    c.query(&format!("SELECT to_jsonb(q)::text FROM ({sql}) AS q"), &[])
        .unwrap()
        .iter()
        .map(|r| serde_json::from_str(r.get::<_, &str>(0)).unwrap())
        .collect()
}

#[test]
fn passwords_come_from_pgpassword_or_a_password_file_and_are_never_printed() {
    let Some(cluster) = Cluster::start(Options::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("n.db");
    record(&db, 2, 10, 0.0);
    let bare = cluster.url_without_password();

    // No password at all: the server refuses, one line, no secret.
    fails(
        &run(command(&db, &["push", "--to", &bare, "--node", "n"])),
        "cannot connect to the central database postgresql://pusher@127.0.0.1",
    );

    // A wrong one in the URL: refused, and the wrong one is not printed either.
    let wrong = format!(
        "postgresql://pusher:Wrong-{PASSWORD}@127.0.0.1:{}/central",
        cluster.port
    );
    let out = run(command(&db, &["push", "--to", &wrong, "--node", "n"]));
    fails(&out, "password authentication failed");
    assert!(
        !text(&out.stderr).contains("Wrong-"),
        "{}",
        text(&out.stderr)
    );

    // PGPASSWORD.
    let mut cmd = command(&db, &["push", "--to", &bare, "--node", "n", "--json"]);
    cmd.env("PGPASSWORD", PASSWORD);
    let out = run(cmd);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["pushed"], 2);

    // Without --node, the node is this host's name.
    let host = dir.path().join("host.db");
    record(&host, 1, 5, 0.0);
    let mut cmd = command(&host, &["push", "--to", &bare, "--json"]);
    cmd.env("PGPASSWORD", PASSWORD);
    let out = run(cmd);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let hostname = sysinfo::System::host_name().unwrap();
    assert_eq!(report["node"], hostname.trim(), "{report}");
    assert_eq!(central_windows_of(&cluster, hostname.trim()), 1);

    // ~/.pgpass (and PGPASSFILE), matched like libpq; ignored when others can read it.
    let home = tempfile::tempdir().unwrap();
    let pgpass = home.path().join(".pgpass");
    std::fs::write(
        &pgpass,
        format!(
            "# fleet\nother:*:*:*:nope\n127.0.0.1:{}:central:pusher:{PASSWORD}\n",
            cluster.port
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o644)).unwrap();
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("DELETE FROM window_pushes", [])
        .unwrap();
    let mut cmd = command(&db, &["push", "--to", &bare, "--node", "n"]);
    cmd.env("HOME", home.path());
    let out = run(cmd);
    fails(&out, "cannot connect");
    assert!(
        text(&out.stderr).contains("group or world access"),
        "{}",
        text(&out.stderr)
    );
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut cmd = command(&db, &["push", "--to", &bare, "--node", "n", "--json"]);
    cmd.env("HOME", home.path());
    let out = run(cmd);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (report["pushed"].as_u64(), report["skipped"].as_u64()),
        (Some(0), Some(2)),
        "{report}"
    );
    let moved = dir.path().join("elsewhere");
    std::fs::rename(&pgpass, &moved).unwrap();
    let mut cmd = command(&db, &["push", "--to", &bare, "--node", "n"]);
    cmd.env("PGPASSFILE", &moved).env("HOME", home.path());
    assert!(run(cmd).status.success());

    // Errors that quote the URL quote it without the password; verbose
    // logs of a failing pusher don't have it either.
    for url in [
        format!("postgresql://pusher:{PASSWORD}@127.0.0.1:1/central"),
        format!(
            "postgresql://pusher:{PASSWORD}@127.0.0.1:{}/central?sslmode=verify",
            cluster.port
        ),
        format!(
            "postgresql://pusher:{PASSWORD}@127.0.0.1:{}/central?bogus=1",
            cluster.port
        ),
    ] {
        let out = run(command(&db, &["-vv", "push", "--to", &url, "--node", "n"]));
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    }
    let fresh = dir.path().join("fresh.db");
    let mut cmd = command(
        &fresh,
        &[
            "-vv",
            "ingest",
            "-",
            "--push-to",
            &format!("postgresql://pusher:{PASSWORD}@127.0.0.1:1/central"),
            "--push-node",
            "n",
        ],
    );
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(window_lines("vm-1", T0).as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    no_password(&out);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("1 wait for the next push"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stdout).contains("postgresql://pusher@127.0.0.1:1/central"),
        "{}",
        text(&out.stdout)
    );

    // Bad node names are refused before anything runs; so is a push of
    // nothing, and a node name without --push-to (exit 2, usage).
    fails(
        &run(command(&db, &["push", "--to", &bare, "--node", "a b"])),
        "invalid node name",
    );
    let none = dir.path().join("none.db");
    fails(
        &run(command(&none, &["push", "--to", &bare, "--node", "n"])),
        "no database at",
    );
    let out = run(command(&db, &["watch", "--push-node", "n"]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

/// One JSON line per sample or trigger, for `ingest -`.
fn line(v: Value) -> String {
    let mut s = v.to_string();
    s.push('\n');
    s
}

/// The lines of one window on `resource`, starting at `t` ms: 5 samples,
/// a trigger, 5 more, and a stop that closes it.
fn window_lines(resource: &str, t: i64) -> String {
    let mut out = String::new();
    for k in 0..10 {
        if k == 5 {
            out += &line(
                json!({"type": "trigger", "resource": resource, "trigger": "manual", "ts": t + k * 1000}),
            );
        }
        out += &line(
            json!({"type": "sample", "resource": resource, "ts": t + k * 1000, "metrics": {"cpu": k, "memory": 40 + k}}),
        );
    }
    out += &line(json!({"type": "stop", "resource": resource, "ts": t + 10_000}));
    out
}

fn central_windows(cluster: &Cluster) -> i64 {
    match postgres::Client::connect(
        &format!(
            "host={} port={} user=postgres dbname=central",
            cluster.socket_dir().display(),
            cluster.port
        ),
        postgres::NoTls,
    ) {
        Ok(mut c) => c
            .query_one("SELECT count(*) FROM windows", &[])
            .map(|r| r.get(0))
            .unwrap_or(-1),
        Err(_) => -1,
    }
}

#[test]
fn central_down_during_ingest_push_to_windows_wait_and_land_after() {
    let Some(cluster) = Cluster::start(Options::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("i.db");
    let mut cmd = command(
        &db,
        &[
            "ingest",
            "-",
            "--push-to",
            &cluster.url(),
            "--push-node",
            "edge-1",
            "--json",
        ],
    );
    cmd.stdin(Stdio::piped());
    let mut ingest = cmd.spawn().unwrap();
    let mut stdin = ingest.stdin.take().unwrap();
    let start = Timestamp::now().as_unix_ms() - 3_600_000;
    let mut feed = |from: usize, to: usize| {
        use std::io::Write;
        for i in from..to {
            let text = window_lines(&format!("vm-{i}"), start + i as i64 * 20_000);
            stdin.write_all(text.as_bytes()).unwrap();
        }
        stdin.flush().unwrap();
    };
    let closed = |db: &Path| {
        sqlite_count(
            db,
            "SELECT count(*) FROM windows WHERE status <> 'recording'",
        )
    };

    feed(0, 3);
    assert!(
        pg::eventually(Duration::from_secs(30), || central_windows(&cluster) == 3),
        "first windows pushed"
    );

    cluster.stop();
    feed(3, 6);
    // Recording goes on locally: the windows close and wait.
    assert!(
        pg::eventually(Duration::from_secs(30), || closed(&db) == 6),
        "windows recorded while central is down"
    );
    assert!(pg::eventually(Duration::from_secs(30), || local_stats(&db)
        ["push"]["backlog"]
        == 3));
    std::thread::sleep(Duration::from_secs(3)); // a few failed attempts
    assert!(ingest_alive(&mut ingest));

    cluster.restart();
    assert!(
        pg::eventually(Duration::from_secs(90), || central_windows(&cluster) == 6),
        "the backlog lands"
    );
    feed(6, 7);
    drop(stdin); // end of input: ingest finishes
    let out = ingest.wait_with_output().unwrap();
    no_password(&out);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["push"]["backlog"], 0, "{report}");
    assert_eq!(report["push"]["pushed"], 7, "{report}");
    assert_eq!(report["push"]["failed"], 0, "{report}");
    assert_eq!(central_windows(&cluster), 7);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cannot push to the central database"),
        "the outage was logged: {stderr}"
    );
    assert_same_history_light(&db, &cluster, "edge-1");
}

fn central_windows_of(cluster: &Cluster, node: &str) -> i64 {
    cluster
        .client("central")
        .query_one("SELECT count(*) FROM windows WHERE node = $1", &[&node])
        .unwrap()
        .get(0)
}

fn ingest_alive(child: &mut Child) -> bool {
    child.try_wait().unwrap().is_none()
}

/// Counts per window match (for histories without anomalies or metadata).
fn assert_same_history_light(db: &Path, cluster: &Cluster, node: &str) {
    let local: BTreeMap<String, i64> = sqlite_rows(
        db,
        "SELECT window_id, count(*) FROM incident_samples GROUP BY window_id",
    )
    .into_iter()
    .map(|r| (r[0].as_str().unwrap().to_owned(), r[1].as_i64().unwrap()))
    .collect();
    let mut c = cluster.client("central");
    let central: BTreeMap<String, i64> = pg_rows(&mut c, "SELECT window_id, count(*)::bigint FROM incident_samples WHERE node = $1 GROUP BY window_id", &[&node])
        .into_iter()
        .map(|r| (r[0].as_str().unwrap().to_owned(), r[1].as_i64().unwrap()))
        .collect();
    assert_eq!(central, local);
}

#[test]
fn central_down_during_watch_push_to_sampling_goes_on_and_the_backlog_lands() {
    let Some(cluster) = Cluster::start(Options::default()) else {
        return;
    };
    let host = incident_recorder::provider::host::HostProvider::new().unwrap();
    let resource = host.resource_id().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let mut cmd = command(
        &db,
        &[
            "watch",
            "--interval",
            "200ms",
            "--post",
            "1s",
            "--trigger-now",
            // No rule this host can fire (the default disk>90 holds the
            // window open on a nearly full disk): the manual windows alone.
            "--rule",
            "cpu>1000000",
            "--push-to",
            &cluster.url(),
            "--push-node",
            "host-1",
        ],
    );
    cmd.stdout(Stdio::piped());
    let watch = cmd.spawn().unwrap();
    let trigger = || {
        let out = run(command(
            &db,
            &["trigger", &resource, "--type", "manual", "--wait", "10s"],
        ));
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    let closed = || {
        sqlite_count(
            &db,
            "SELECT count(*) FROM windows WHERE status <> 'recording'",
        )
    };
    let points = || sqlite_count(&db, "SELECT count(*) FROM incident_samples");

    assert!(
        pg::eventually(Duration::from_secs(30), || central_windows(&cluster) == 1),
        "the first window is pushed"
    );
    cluster.stop();
    let before = points();
    for n in 2..=3 {
        assert!(
            pg::eventually(Duration::from_secs(20), || closed() == n - 1),
            "{n}"
        );
        trigger();
        assert!(
            pg::eventually(Duration::from_secs(20), || closed() == n),
            "window {n} closes while central is down"
        );
    }
    assert!(points() > before, "sampling goes on");
    assert!(pg::eventually(Duration::from_secs(10), || local_stats(&db)
        ["push"]["backlog"]
        == 2));

    cluster.restart();
    assert!(
        pg::eventually(Duration::from_secs(90), || central_windows(&cluster) == 3),
        "the backlog lands"
    );
    let pid = watch.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let out = watch.wait_with_output().unwrap();
    no_password(&out);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("pushed 3 windows to the central database"),
        "{}",
        text(&out.stdout)
    );
    assert_same_history_light(&db, &cluster, "host-1");
}

/// A small deterministic generator for the kill times (xorshift), seeded
/// from the clock and printed, so a failure can be replayed.
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn a_pusher_killed_at_random_points_never_duplicates_or_loses_a_window() {
    let Some(cluster) = Cluster::start(Options::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let ids = record(&db, 200, 500, 0.0);
    let url = cluster.url();
    let seed = std::env::var("IR_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| Timestamp::now().as_unix_ms() as u64 | 1);
    eprintln!("kill seed {seed} (IR_KILL_SEED replays it)");
    let mut rng = Xorshift(seed);

    // How long an uninterrupted push takes, measured on a copy.
    let probe = dir.path().join("probe.db");
    std::fs::copy(&db, &probe).unwrap();
    let started = std::time::Instant::now();
    push(&probe, &url, "probe", &[], 0);
    let full = started.elapsed().as_millis() as u64;

    let mut kills = 0;
    let mut landed = Vec::new();
    for _ in 0..12 {
        let mut child = command(&db, &["push", "--to", &url, "--node", "k"])
            .spawn()
            .unwrap();
        // Anywhere in the first half of a full push: the later attempts
        // have less left to do, so most of them are still cut short.
        std::thread::sleep(Duration::from_millis(rng.next() % (full / 2).max(1)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        let out = child.wait_with_output().unwrap();
        no_password(&out);
        landed.push(central_windows_of(&cluster, "k"));
    }
    eprintln!(
        "killed {kills} of 12 pushes (a full push takes {full} ms); windows in the central database after each: {landed:?}"
    );
    // Two pushers at once finish the job.
    let two: Vec<Child> = (0..2)
        .map(|_| {
            command(&db, &["push", "--to", &url, "--node", "k", "--json"])
                .spawn()
                .unwrap()
        })
        .collect();
    let mut total = 0;
    for child in two {
        let out = child.wait_with_output().unwrap();
        no_password(&out);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["failed"], 0);
        total += report["pushed"].as_u64().unwrap();
    }
    eprintln!("the last two pushes pushed {total}");
    let mut c = cluster.client("central");
    assert_eq!(
        pg_count(&mut c, "SELECT count(*) FROM windows WHERE node = 'k'"),
        ids.len() as i64
    );
    let per_window = pg_rows(
        &mut c,
        "SELECT w.public_id, count(*)::bigint FROM windows w JOIN point_values v ON v.window_id = w.id
         WHERE w.node = 'k' GROUP BY w.public_id ORDER BY 1",
        &[],
    );
    let local = sqlite_rows(
        &db,
        "SELECT window_id, count(*) FROM incident_samples GROUP BY window_id ORDER BY 1",
    );
    assert_eq!(per_window, local, "every window once, with all its values");
    assert_eq!(
        pg_count(
            &mut c,
            "SELECT count(*) FROM point_values v WHERE NOT EXISTS (SELECT 1 FROM windows w WHERE w.id = v.window_id)"
        ),
        0,
        "a killed push leaves no rows behind"
    );
    assert_eq!(local_stats(&db)["push"]["backlog"], 0);
    assert_same_history(&db, &mut c, "k");
}

#[test]
fn a_window_the_central_database_cannot_store_is_refused_alone_and_counted() {
    let Some(cluster) = Cluster::start(Options::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    // jsonb cannot hold \u0000; SQLite's JSON can.
    let mut lines = window_lines("vm-1", T0);
    lines += &line(
        json!({"type": "sample", "resource": "vm-2", "ts": T0 + 20_000, "metrics": {"cpu": 1}, "metadata": {"bad": "a\u{0}b"}}),
    );
    lines += &line(
        json!({"type": "trigger", "resource": "vm-2", "trigger": "manual", "ts": T0 + 20_000}),
    );
    lines += &line(json!({"type": "stop", "resource": "vm-2", "ts": T0 + 21_000}));
    lines += &window_lines("vm-3", T0 + 40_000);
    let mut cmd = command(&db, &["ingest", "-"]);
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
    assert!(child.wait_with_output().unwrap().status.success());

    let report = push(&db, &cluster.url(), "r", &[], 3);
    assert_eq!(
        (report["pushed"].as_u64(), report["failed"].as_u64()),
        (Some(2), Some(1)),
        "{report}"
    );
    let reason = report["refused"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("copying data points") && reason.contains("\\u0000"),
        "{reason}"
    );
    // Not tried again before its retry is due (tests/fleet_marks.rs); counted in stats.
    let again = push(&db, &cluster.url(), "r", &[], 0);
    assert_eq!(
        (again["pushed"].as_u64(), again["failed"].as_u64()),
        (Some(0), Some(0)),
        "{again}"
    );
    assert_eq!(local_stats(&db)["push"]["refused"], 1);

    // A different window under an id the node already has is refused, never silently skipped.
    // `clash` is a copy of the empty `other` (a cloned machine image under
    // the same node name): same tag, so the same id for another window.
    let other = dir.path().join("other.db");
    let clash = dir.path().join("clash.db");
    drop(incident_recorder::Store::open(&other).unwrap());
    std::fs::copy(&other, &clash).unwrap();
    record(&other, 1, 20, 0.0);
    let first = push(&other, &cluster.url(), "s", &[], 0);
    assert_eq!(first["pushed"], 1);
    record(&clash, 1, 25, 0.0); // same id (same trigger time, tag and row), other content
    let report = push(&clash, &cluster.url(), "s", &[], 3);
    assert_eq!(report["failed"], 1, "{report}");
    assert!(
        report["refused"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("already has another window"),
        "{report}"
    );
}

#[test]
fn a_newer_central_schema_is_written_unless_it_says_this_build_is_too_old() {
    let Some(cluster) = Cluster::start(Options::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("v.db");
    record(&db, 2, 5, 0.0);
    let mut c = cluster.client("central");
    // Two nodes creating the schema at the same time: one migrates.
    let racers: Vec<Child> = (0..3)
        .map(|i| {
            command(
                &db,
                &[
                    "push",
                    "--to",
                    &cluster.url(),
                    "--node",
                    &format!("race-{i}"),
                ],
            )
            .spawn()
            .unwrap()
        })
        .collect();
    for r in racers {
        let out = r.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    assert_eq!(
        pg_count(
            &mut c,
            "SELECT count(*) FROM incident_recorder_schema_history"
        ),
        incident_recorder::fleet::central_schema_version()
    );
    // Hypertable-ready: point_values has no unique index (TimescaleDB
    // needs the time column in every unique index).
    assert_eq!(
        pg_count(
            &mut c,
            "SELECT count(*) FROM pg_index WHERE indrelid = 'point_values'::regclass AND indisunique"
        ),
        0
    );

    let solo = dir.path().join("solo.db");
    record(&solo, 2, 5, 0.0);
    assert_eq!(push(&solo, &cluster.url(), "solo", &[], 0)["pushed"], 2);
    c.batch_execute(
        "INSERT INTO incident_recorder_schema_history (version, name, applied_on, checksum)
         VALUES (99, 'future', '2030-01-01T00:00:00Z', '1')",
    )
    .unwrap();
    rusqlite::Connection::open(&solo)
        .unwrap()
        .execute("DELETE FROM window_pushes", [])
        .unwrap();
    let ok = push(&solo, &cluster.url(), "solo", &[], 0);
    assert_eq!(ok["skipped"], 2, "{ok}");

    c.batch_execute("UPDATE fleet_writers SET min_version = 99")
        .unwrap();
    rusqlite::Connection::open(&solo)
        .unwrap()
        .execute("DELETE FROM window_pushes", [])
        .unwrap();
    let out = run(command(
        &solo,
        &["push", "--to", &cluster.url(), "--node", "solo"],
    ));
    fails(&out, "upgrade incident-recorder on this node");
    assert_eq!(local_stats(&solo)["push"]["backlog"], 2, "the windows wait");
}

#[test]
fn retention_keeps_unpushed_windows_up_to_the_window_limit_and_counts_drops() {
    // The local half needs no server: an unreachable one marks the database
    // as pushing, as a `watch --push-to` that never reaches its server does.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let store = incident_recorder::Store::open(&db).unwrap();
    let nowhere =
        incident_recorder::fleet::Target::new("postgresql://pusher@127.0.0.1:1/central", Some("t"))
            .unwrap();
    assert!(incident_recorder::fleet::push(&store, &nowhere, &mut |_| {}).is_err());
    drop(store);

    let clock = ManualClock::new(Timestamp::from_unix_ms(T0));
    let limit = 3;
    let config = RecorderConfig {
        max_windows: limit,
        retention: Duration::from_secs(3600),
        ..RecorderConfig::with_db_path(&db)
    };
    let recorder = IncidentRecorder::open_with_clock(config, Arc::new(clock.clone())).unwrap();
    let one_window = |n: i64| {
        let at = Timestamp::from_unix_ms(T0 + n * 60_000);
        clock.set(at);
        recorder
            .push_sample("vm", at, Metrics::new().with("cpu", n as f64), None)
            .unwrap();
        let id = recorder.start_recording("vm", Trigger::manual()).unwrap();
        recorder.stop_recording(&id).unwrap();
    };
    for n in 0..5 {
        one_window(n);
    }
    let closed = || {
        recorder
            .store()
            .stats()
            .unwrap()
            .windows_by_status
            .values()
            .sum::<u64>()
    };
    assert_eq!(
        closed(),
        5,
        "over the limit of 3, the 2 unpushed extra are spared"
    );
    for n in 5..10 {
        one_window(n);
    }
    let state = recorder.store().push_state().unwrap();
    assert_eq!(
        closed(),
        2 * limit as u64,
        "at most the limit again as spared windows"
    );
    assert_eq!((state.backlog, state.dropped_unpushed), (6, 4), "{state:?}");
    // Past retention too: spared, within the same bound.
    clock.set(Timestamp::from_unix_ms(T0 + 10 * 60_000 + 7_200_000));
    let report = recorder
        .store()
        .prune(
            incident_recorder::Clock::now(&clock),
            Duration::from_secs(3600),
            limit,
        )
        .unwrap();
    assert_eq!(
        (report.windows, report.unpushed),
        (3, 3),
        "the bound holds against retention: {report:?}"
    );
    assert_eq!(recorder.store().push_state().unwrap().dropped_unpushed, 7);
    drop(recorder);
    let stats = local_stats(&db);
    assert_eq!(stats["push"]["dropped_unpushed"], 7, "{stats}");

    // Once pushed, they are trimmed as any other window.
    let Some(cluster) = Cluster::start(Options::default()) else {
        return;
    };
    let report = push(&db, &cluster.url(), "t", &[], 0);
    assert_eq!(report["pushed"], 3, "{report}");
    let out = run(command(
        &db,
        &["prune", "--retention", "1h", "--max-windows", "3", "--json"],
    ));
    let pruned: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            pruned["deleted_windows"].as_u64(),
            pruned["deleted_unpushed"].as_u64()
        ),
        (Some(3), Some(0)),
        "{pruned}"
    );
}

/// Makes a CA and a server certificate for `localhost` signed by it, and a
/// second, unrelated CA, with the `openssl` command; `None` if it is missing.
fn certificates(dir: &Path) -> Option<[PathBuf; 4]> {
    let openssl = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let ca = |name: &str| {
        let (key, crt, subj) = (
            format!("{name}.key"),
            format!("{name}.crt"),
            format!("/CN={name}"),
        );
        let mut args = vec![
            "req", "-x509", "-days", "2", "-subj", &subj, "-keyout", &key, "-out", &crt,
        ];
        args.extend(ec);
        args.extend([
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&args)
    };
    if !ca("ca") || !ca("other-ca") {
        return None;
    }
    let mut args = vec![
        "req",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ];
    args.extend(ec);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let signed = openssl(&args)
        && openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ]);
    signed.then(|| ["ca.crt", "other-ca.crt", "server.crt", "server.key"].map(|f| dir.join(f)))
}

#[test]
fn tls_is_used_and_checked_as_the_url_asks() {
    let certs = tempfile::tempdir().unwrap();
    let Some([ca, other_ca, cert, key]) = certificates(certs.path()) else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "openssl is needed under CI=true"
        );
        eprintln!("skipping: the openssl command is missing");
        return;
    };
    let Some(cluster) = Cluster::start(Options {
        tls: Some((cert, key)),
        ..Options::default()
    }) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tls.db");
    record(&db, 2, 10, 0.0);
    let url = |host: &str, params: &str| {
        format!(
            "postgresql://pusher:{PASSWORD}@{host}:{}/central?{params}",
            cluster.port
        )
    };
    let push = |u: String| {
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute("DELETE FROM window_pushes", [])
            .unwrap();
        run(command(&db, &["push", "--to", &u, "--node", "tls"]))
    };
    // The server refuses the pusher without TLS (pg_hba), so every success is encrypted.
    fails(&push(url("127.0.0.1", "sslmode=disable")), "no encryption");
    for ok in [
        url("127.0.0.1", "sslmode=prefer"),
        url("127.0.0.1", "sslmode=require"),
        // verify-ca checks the chain, not the name (the certificate names localhost).
        url(
            "127.0.0.1",
            &format!("sslmode=verify-ca&sslrootcert={}", ca.display()),
        ),
        url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
        ),
    ] {
        let out = push(ok.clone());
        assert!(out.status.success(), "{ok}: {}", text(&out.stderr));
    }
    fails(
        &push(url(
            "127.0.0.1",
            &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
        )),
        "certificate not valid for name",
    );
    fails(
        &push(url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={}", other_ca.display()),
        )),
        "UnknownIssuer",
    );
    fails(
        &push(url(
            "localhost",
            "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        )),
        "sslrootcert /nonexistent/ca.pem",
    );
    assert_eq!(central_windows_of(&cluster, "tls"), 2);
}
