//! A database written by schema version 4 opens with today's code, migrates,
//! and gives back the same windows and values (issue 12, "Done means").
//!
//! `tests/fixtures/v4/incidents.db` was made by the V4 code (commit
//! 6bc3e71, the last whose newest migration is `V4__window_points.sql`) with
//! its own CLI, and `tests/fixtures/v4/export.json` is that same binary's
//! `export` of it: `tests/fixtures/v4/make.sh` regenerates both. The fixture
//! holds windows of every status (complete at a deadline and at a stop,
//! truncated, interrupted, one still recording), five resources, alerts
//! with resolutions and extensions, anomalies, point metadata and metrics
//! missing from some points.
//!
//! Each test works on a copy (opening the fixture itself would migrate it).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use incident_recorder::{
    IncidentRecorder, IncidentWindow, ManualClock, RecorderConfig, Store, Timestamp, WindowFilter,
    WindowId, WindowStatus,
};
use serde_json::{Map, Value};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/v4")
        .join(name)
}

/// A copy of the V4 database in a fresh directory.
fn copy_fixture() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("incidents.db");
    std::fs::copy(fixture("incidents.db"), &path).unwrap();
    (dir, path)
}

/// The windows of the V4 export, oldest first (the export's order).
fn exported() -> Vec<Map<String, Value>> {
    let text = std::fs::read_to_string(fixture("export.json")).unwrap();
    let file: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(file["format"], "incident-recorder");
    assert_eq!(file["version"], 1, "the native format of that era");
    file["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_object().unwrap().clone())
        .collect()
}

fn schema_versions(path: &Path) -> Vec<i64> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT version FROM refinery_schema_history ORDER BY version")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

fn ts(v: &Value) -> Timestamp {
    Timestamp::parse_rfc3339(v.as_str().unwrap()).unwrap()
}

/// Differences between what V4 exported and what today's code reads, one
/// line each, named by their path in the window (`data_points[3].metrics.cpu`).
struct Diffs {
    window: String,
    lines: Vec<String>,
}

impl Diffs {
    fn push(&mut self, path: &str, what: String) {
        self.lines.push(format!("{} {path}: {what}", self.window));
    }

    /// Compares recursively; an absent field and `null` are the same (both
    /// versions leave `None` out). Numbers compare as `f64`, exactly: values
    /// are stored as REAL and JSON round-trips them.
    fn compare(&mut self, path: &str, v4: Option<&Value>, today: Option<&Value>) {
        let v4 = v4.filter(|v| !v.is_null());
        let today = today.filter(|v| !v.is_null());
        match (v4, today) {
            (None, None) => {}
            (Some(a), None) => self.push(path, format!("V4 exported {a}, today has nothing")),
            (None, Some(b)) => self.push(path, format!("V4 exported nothing, today has {b}")),
            (Some(Value::Object(a)), Some(Value::Object(b))) => {
                let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
                for k in keys {
                    self.compare(&format!("{path}.{k}"), a.get(k), b.get(k));
                }
            }
            (Some(Value::Array(a)), Some(Value::Array(b))) => {
                if a.len() != b.len() {
                    self.push(
                        path,
                        format!("V4 exported {} items, today has {}", a.len(), b.len()),
                    );
                }
                for (i, (x, y)) in a.iter().zip(b).enumerate() {
                    self.compare(&format!("{path}[{i}]"), Some(x), Some(y));
                }
            }
            (Some(Value::Number(a)), Some(Value::Number(b))) => {
                if a.as_f64() != b.as_f64() {
                    self.push(path, format!("V4 exported {a}, today has {b}"));
                }
            }
            (Some(a), Some(b)) => {
                if a != b {
                    self.push(path, format!("V4 exported {a}, today has {b}"));
                }
            }
        }
    }
}

/// Checks one window as today's code reads it against V4's export of it,
/// field by field; returns the differences. Fields that did not exist in V4
/// are checked for their documented meaning first, then left out.
fn differences(v4: &Map<String, Value>, today: &IncidentWindow) -> Vec<String> {
    let id = v4["id"].as_str().unwrap().to_owned();
    let mut d = Diffs {
        window: id.clone(),
        lines: Vec::new(),
    };
    let mut got = match serde_json::to_value(today).unwrap() {
        Value::Object(m) => m,
        other => panic!("a window serializes as an object, not {other}"),
    };

    // New since V4: `trigger_time` (windows.opened_ms, which V4 stored but
    // did not export): when the trigger that opened the window fired.
    let opening: Vec<&Value> = v4["triggers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["opened_window"] == true)
        .collect();
    assert_eq!(opening.len(), 1, "{id}: one trigger opened it");
    let fired = ts(&opening[0]["fired_at"]);
    assert_eq!(today.trigger_time, Some(fired), "{id}: trigger_time");
    got.remove("trigger_time");
    // `deadline` (windows.deadline_ms, stored by V4 for every window): V4
    // showed it for recording windows only; today a closed window shows the
    // deadline it had when it closed (model.rs). Either way: the opening
    // trigger's time + the post-incident window (1 minute in make.sh) or
    // later, never earlier. Recording windows compare below.
    let deadline = today.deadline.expect("a deadline");
    assert!(
        deadline.as_unix_ms() >= fired.as_unix_ms() + 60_000,
        "{id}: deadline {deadline} before its trigger {fired} + 1m"
    );
    if !v4.contains_key("deadline") {
        assert!(
            v4["status"] != "recording",
            "{id}: V4 showed recording windows' deadline"
        );
        if v4["status"] == "complete" && today.end_time.is_some_and(|end| end >= deadline) {
            // Closed at its deadline (not stopped before it): it ends there.
            assert_eq!(today.end_time, Some(deadline), "{id}: ends at its deadline");
        }
        got.remove("deadline");
    }

    let recording = v4["status"] == "recording";
    match (v4.get("summary"), got.get_mut("summary")) {
        // A recording window: V4 stored and exported no summary; today
        // every read gives the statistics of its points so far (README,
        // "A window still recording shows what it has so far").
        (None, Some(summary)) if recording => {
            let mut so_far = incident_recorder::summary::summarize(&today.data_points);
            // And its change scores so far (V12), against its trigger.
            if let (Some(s), Some(trigger)) = (&mut so_far, today.trigger_time) {
                s.change_scores = incident_recorder::change::score_points(
                    &today.data_points,
                    trigger.as_unix_ms(),
                );
            }
            assert_eq!(
                *summary,
                serde_json::to_value(&so_far).unwrap(),
                "{id}: a recording window's summary is that of its points so far"
            );
            assert_eq!(
                today.summary.as_ref().unwrap().data_points as usize,
                v4["data_points"].as_array().unwrap().len(),
                "{id}: its summary counts the points V4 recorded"
            );
            got.remove("summary");
        }
        // A closed window: the stored summary. New since V4 are the
        // anomalies with their sample (`anomaly_points`, from the columns of
        // window_anomalies V4 already had) and per metric; V4 exported the
        // notes alone (`anomalies`), compared below with the rest.
        (Some(_), Some(Value::Object(summary))) => {
            let s = today.summary.as_ref().unwrap();
            let notes: Vec<&str> = s
                .anomaly_points
                .iter()
                .map(|a| a.description.as_str())
                .collect();
            assert_eq!(
                notes,
                s.anomalies.iter().map(String::as_str).collect::<Vec<_>>(),
                "{id}: every V4 anomaly comes back with its sample, in order"
            );
            for a in &s.anomaly_points {
                let point = today
                    .data_points
                    .iter()
                    .find(|p| p.timestamp == a.timestamp)
                    .unwrap_or_else(|| panic!("{id}: anomaly at {} is no point", a.timestamp));
                assert_eq!(
                    point.metrics.get(&a.metric),
                    Some(&a.value),
                    "{id}: anomaly {}: the value of its point",
                    a.description
                );
                assert!(
                    a.score.abs() > 3.5,
                    "{id}: {} scores above 3.5",
                    a.description
                );
            }
            assert_eq!(
                s.anomalies_by_metric,
                incident_recorder::summary::anomalies_by_metric(&s.anomaly_points),
                "{id}: anomalies_by_metric"
            );
            summary.remove("anomaly_points");
            summary.remove("anomalies_by_metric");
            // New in V12, not stored for a window closed before it: the
            // change scores, computed on read from its points.
            assert_eq!(
                s.change_scores,
                incident_recorder::change::score_points(&today.data_points, fired.as_unix_ms()),
                "{id}: change scores on read"
            );
            assert_eq!(
                s.change_scores.len(),
                s.samples.len(),
                "{id}: every metric ranked"
            );
            summary.remove("change_scores");
        }
        (v4s, todays) => panic!(
            "{id}: status {} with summary in V4: {}, today: {}",
            v4["status"],
            v4s.is_some(),
            todays.is_some()
        ),
    }

    // Everything else, field by field: id, resource, trigger, times,
    // status, every trigger with its resolution, every point's time,
    // metrics and metadata, every statistic and anomaly note.
    let keys: BTreeSet<&String> = v4.keys().chain(got.keys()).collect();
    for k in keys {
        d.compare(k, v4.get(k), got.get(k));
    }
    d.lines
}

/// Today's reads of the migrated copy: the listing with points (newest
/// first), the export walk (oldest first), and `window(id)` one by one.
fn assert_same_as_export(store: &Store) {
    let v4 = exported();
    let want: Vec<&str> = v4.iter().map(|w| w["id"].as_str().unwrap()).collect();

    let mut walked = Vec::new();
    store
        .for_each_window(
            &WindowFilter {
                with_points: true,
                ..WindowFilter::default()
            },
            |w| {
                walked.push(w);
                Ok::<_, incident_recorder::Error>(())
            },
        )
        .unwrap();
    let walked_ids: Vec<&str> = walked.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(
        walked_ids, want,
        "the export walk: the same windows, in order"
    );

    let listed = store
        .windows(&WindowFilter {
            with_points: true,
            ..WindowFilter::default()
        })
        .unwrap();
    let mut listed_ids: Vec<&str> = listed.iter().map(|w| w.id.as_str()).collect();
    listed_ids.reverse();
    assert_eq!(
        listed_ids, want,
        "the listing: the same windows, newest first"
    );

    let mut diffs = Vec::new();
    for (w, walked) in v4.iter().zip(&walked) {
        let id = w["id"].as_str().unwrap();
        let one = store.window(id).unwrap().expect("window(id) finds it");
        let listed = listed.iter().find(|l| l.id.as_str() == id).unwrap();
        assert_eq!(&one, walked, "{id}: window(id) and the export walk agree");
        assert_eq!(&one, listed, "{id}: window(id) and the listing agree");
        diffs.extend(differences(w, &one));
    }
    assert!(
        diffs.is_empty(),
        "{} differences from the V4 export:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

#[test]
fn the_fixture_is_what_v4_wrote() {
    let (_dir, path) = copy_fixture();
    assert_eq!(schema_versions(&path), vec![1, 2, 3, 4]);
    let v4 = exported();
    let statuses: BTreeSet<&str> = v4.iter().map(|w| w["status"].as_str().unwrap()).collect();
    assert_eq!(
        statuses,
        BTreeSet::from(["complete", "interrupted", "recording", "truncated"]),
        "every status"
    );
    let resources: BTreeSet<&str> = v4
        .iter()
        .map(|w| w["resource_id"].as_str().unwrap())
        .collect();
    assert_eq!(resources.len(), 5);
    let points = || v4.iter().flat_map(|w| w["data_points"].as_array().unwrap());
    assert!(points().any(|p| p.get("metadata").is_some()), "metadata");
    assert!(
        v4.iter().any(|w| w["summary"]["anomalies"]
            .as_array()
            .is_some_and(|a| !a.is_empty())),
        "anomalies"
    );
    let triggers = || v4.iter().flat_map(|w| w["triggers"].as_array().unwrap());
    assert!(
        triggers().any(|t| t.get("resolved_at").is_some()),
        "resolutions"
    );
    assert!(
        triggers().any(|t| t["opened_window"] == false),
        "extensions"
    );
}

#[test]
fn a_v4_database_migrates_and_gives_the_same_windows() {
    let (_dir, path) = copy_fixture();
    let store = Store::open(&path).expect("today's code opens a V4 database");
    let current = Store::schema_version();
    // Every migration in migrations/ (versions may have gaps while branches
    // that add them are apart), the last one the current version.
    let mut every: Vec<i64> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations"))
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                name.strip_prefix('V')?.split_once("__")?.0.parse().ok()
            })
            .collect();
    every.sort_unstable();
    assert_eq!(every.last(), Some(&current));
    assert_eq!(
        schema_versions(&path),
        every,
        "migrated to the current version"
    );
    assert_same_as_export(&store);
    drop(store);
    // Read-only opens (list, show, context, export) see the same.
    let ro = Store::open_read_only(&path).unwrap();
    assert_same_as_export(&ro);
}

#[test]
fn the_migrated_file_is_sound() {
    let (_dir, path) = copy_fixture();
    drop(Store::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let integrity: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(integrity, vec!["ok".to_owned()], "integrity_check");
    let violations: Vec<(String, Option<i64>, String)> = conn
        .prepare("PRAGMA foreign_key_check")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert!(violations.is_empty(), "foreign_key_check: {violations:?}");
}

/// Every row of every table (the migration history included), as text.
fn dump(path: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut out = Vec::new();
    let schema: Vec<(String, String, Option<String>)> = conn
        .prepare("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    for (kind, name, sql) in &schema {
        out.push(format!("{kind} {name}: {sql:?}"));
        if kind != "table" || name.starts_with("sqlite_") {
            continue;
        }
        // Names come from sqlite_master, not from input.
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{name}\"")).unwrap();
        let n = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        let mut lines = Vec::new();
        while let Some(r) = rows.next().unwrap() {
            let cells: Vec<String> = (0..n)
                .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                .collect();
            lines.push(format!("{name}: {}", cells.join(" | ")));
        }
        lines.sort();
        out.extend(lines);
    }
    out
}

#[test]
fn a_second_open_changes_nothing() {
    let (_dir, path) = copy_fixture();
    drop(Store::open(&path).unwrap());
    let once = dump(&path);
    assert!(
        once.iter().any(|l| l.starts_with("store_info: ")),
        "the migration drew the database's tag"
    );
    drop(Store::open(&path).unwrap());
    let twice = dump(&path);
    let changed: Vec<_> = once.iter().zip(&twice).filter(|(a, b)| a != b).collect();
    assert!(
        once.len() == twice.len() && changed.is_empty(),
        "the second open changed the file ({} rows, then {}): {changed:?}",
        once.len(),
        twice.len()
    );
    assert_same_as_export(&Store::open(&path).unwrap());
}

/// The V4 recorder's window still recording goes on with today's recorder,
/// as the next `ingest` would (V4 left no record of a clean stop, so this
/// is recovery after a crash: a window whose deadline is ahead resumes).
#[test]
fn the_window_v4_left_recording_goes_on() {
    let (_dir, path) = copy_fixture();
    let v4 = exported();
    let w = v4.iter().find(|w| w["status"] == "recording").unwrap();
    let id = WindowId::new(w["id"].as_str().unwrap());
    let resource = w["resource_id"].as_str().unwrap();
    let points = w["data_points"].as_array().unwrap();
    let last = ts(&points.last().unwrap()["timestamp"]);
    // The fixture's clock and options (make.sh): 10 s samples, 2 m before,
    // 1 m after; its last line was at `last`.
    let clock = ManualClock::new(last.saturating_add(std::time::Duration::from_secs(5)));
    let config = RecorderConfig {
        sample_interval: std::time::Duration::from_secs(10),
        pre_incident_window: std::time::Duration::from_secs(120),
        post_incident_window: std::time::Duration::from_secs(60),
        max_data_points_per_window: 24,
        retention: std::time::Duration::from_secs(30 * 24 * 3600),
        ..RecorderConfig::with_db_path(&path)
    };
    let recorder =
        IncidentRecorder::open_with_clock(config, std::sync::Arc::new(clock.clone())).unwrap();
    assert_eq!(recorder.recovery().resumed, vec![id.clone()]);
    assert!(recorder.recovery().closed.is_empty());
    assert_eq!(recorder.recording_window(resource), Some(id.clone()));
    let next = last.saturating_add(std::time::Duration::from_secs(10));
    clock.set(next);
    let metrics: incident_recorder::Metrics = [("cpu".to_owned(), 97.5)].into_iter().collect();
    recorder.push_sample(resource, next, metrics, None).unwrap();
    recorder.stop_recording(&id).unwrap();
    let closed = recorder.window(&id).unwrap().unwrap();
    assert_eq!(closed.status, WindowStatus::Complete);
    assert_eq!(closed.data_points.len(), points.len() + 1);
    assert_eq!(closed.data_points.last().unwrap().timestamp, next);
    assert_eq!(
        closed.summary.unwrap().data_points as usize,
        points.len() + 1
    );
    // The other windows are as V4 left them.
    for w in v4.iter().filter(|w| w["status"] != "recording") {
        let id = w["id"].as_str().unwrap();
        let today = recorder.window(&WindowId::new(id)).unwrap().unwrap();
        assert_eq!(today.status.as_str(), w["status"].as_str().unwrap(), "{id}");
        assert_eq!(
            today.data_points.len(),
            w["data_points"].as_array().unwrap().len(),
            "{id}"
        );
    }
}
