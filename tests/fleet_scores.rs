//! What changed most, and the alert's own words, in the central PostgreSQL
//! (issue 20, central schema version 4), against a throwaway cluster
//! (tests/pg) and pushed by the binary: a window's change scores, ranks and
//! unscored reasons, and its Alertmanager trigger's labels, annotations and
//! `endsAt`, arrive as the node has them; a window closed before the
//! store's version 12 arrives with the scores `show` computes; a re-push and
//! `push --verify` add nothing; the README's fleet-wide "moved most" query
//! answers from them.
//!
//! Without PostgreSQL's binaries each test prints why and passes; with
//! `CI=true` it fails instead (see tests/pg).

mod pg;
mod push_cli;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use incident_recorder::{
    IncidentRecorder, ManualClock, MetricChange, Metrics, RecorderConfig, Resource, Store,
    Timestamp, Trigger, TriggerWords,
};
use pg::{Cluster, Options};
use push_cli::push;
use serde_json::{Value, json};

/// The alert's words, as the Alertmanager listener keeps them.
fn words(node: &str) -> TriggerWords {
    TriggerWords {
        labels: BTreeMap::from([
            ("alertname".to_owned(), "HighCpu".to_owned()),
            ("instance".to_owned(), format!("{node}:9100")),
            ("severity".to_owned(), "page".to_owned()),
        ]),
        annotations: BTreeMap::from([
            ("summary".to_owned(), format!("CPU above 90% on {node}")),
            (
                "description".to_owned(),
                "five minutes over 90%\nsee the runbook".to_owned(),
            ),
            (
                "runbook_url".to_owned(),
                "https://runbooks.example/high-cpu".to_owned(),
            ),
        ]),
        rule: None,
    }
}

/// Records `windows` closed windows on `web` into a new database at `db`,
/// starting at `start` (Unix ms): 20 points every 5 s before an alert
/// `HighCpu/<n>` and 20 after it, CPU jumping by `jump` after the trigger,
/// memory barely moving, `disk` flat and `fresh` only after the trigger (no
/// baseline: unscored). Each alert resolves, then its words and `endsAt`
/// are kept as the listener keeps them. Returns the window ids.
fn record(db: &Path, node: &str, windows: usize, jump: f64, start: i64) -> Vec<String> {
    let clock = ManualClock::new(Timestamp::from_unix_ms(start));
    let config = RecorderConfig {
        retention: Duration::from_secs(3650 * 86_400),
        post_incident_window: Duration::from_secs(3600),
        ..RecorderConfig::with_db_path(db)
    };
    let recorder = IncidentRecorder::open_with_clock(config, Arc::new(clock.clone())).unwrap();
    let mut ids = Vec::new();
    let mut ts = start;
    for i in 0..windows {
        let alert = format!("HighCpu/{i}");
        for k in 0..20 {
            ts += 5_000;
            sample(&recorder, &clock, ts, k, false, jump);
        }
        let fired = Timestamp::from_unix_ms(ts);
        let id = recorder
            .start_recording("web", Trigger::alert(alert.as_str()))
            .unwrap();
        for k in 0..20 {
            ts += 5_000;
            sample(&recorder, &clock, ts, k, true, jump);
        }
        assert!(recorder.resolve_trigger("web", &alert).unwrap());
        recorder.stop_recording(&id).unwrap();
        let store = recorder.store();
        assert!(
            store
                .keep_trigger_words(id.as_str(), &alert, fired, &words(node))
                .unwrap()
        );
        let ends = Timestamp::from_unix_ms(ts + 1_000);
        assert!(store.keep_resolve_end("web", &alert, fired, ends).unwrap());
        ids.push(id.to_string());
        ts += 600_000;
    }
    recorder.stop().unwrap();
    ids
}

/// Records the `k`th point of a window's half (`after` the trigger) at `ts`.
fn sample(
    recorder: &IncidentRecorder,
    clock: &ManualClock,
    ts: i64,
    k: usize,
    after: bool,
    jump: f64,
) {
    clock.set(Timestamp::from_unix_ms(ts));
    let wobble = (k % 3) as f64;
    let mut m = Metrics::new()
        .with("cpu", 10.0 + wobble + if after { jump } else { 0.0 })
        .with(
            "memory",
            50.0 + (k % 2) as f64 + if after { 2.0 } else { 0.0 },
        )
        .with("disk", 7.0);
    if after {
        m.insert("fresh", k as f64);
    }
    let report = recorder
        .push_samples([incident_recorder::Sample {
            resource: Resource::named("web", "web", "vm"),
            timestamp: Timestamp::from_unix_ms(ts),
            metrics: m,
            metadata: None,
        }])
        .unwrap();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
}

/// A window's ranked metrics in the local database: name, rank, score, why unscored.
fn local_ranks(db: &Path, window: &str) -> Vec<Value> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT m.name, s.change_rank, s.change_score, s.change_unscored
             FROM window_metric_stats s JOIN windows w ON w.id = s.window_id
             JOIN metrics m ON m.id = s.metric_id
             WHERE w.public_id = ?1 ORDER BY s.change_rank",
        )
        .unwrap();
    stmt.query_map([window], |r| {
        Ok(json!([
            r.get::<_, String>(0)?,
            r.get::<_, Option<i64>>(1)?,
            r.get::<_, Option<f64>>(2)?,
            r.get::<_, Option<String>>(3)?
        ]))
    })
    .unwrap()
    .collect::<rusqlite::Result<_>>()
    .unwrap()
}

/// The same, in the central database.
fn central_ranks(c: &mut postgres::Client, node: &str, window: &str) -> Vec<Value> {
    c.query(
        "SELECT m.name, s.change_rank, s.change_score, s.change_unscored
         FROM window_metric_stats s JOIN windows w ON w.id = s.window_id
         JOIN metrics m ON m.id = s.metric_id
         WHERE w.node = $1 AND w.public_id = $2 ORDER BY s.change_rank",
        &[&node, &window],
    )
    .unwrap()
    .iter()
    .map(|r| {
        json!([
            r.get::<_, String>(0),
            r.get::<_, Option<i32>>(1),
            r.get::<_, Option<f64>>(2),
            r.get::<_, Option<String>>(3)
        ])
    })
    .collect()
}

/// Ranks as the library reads them (`show --json`'s `change_scores`).
fn read_ranks(db: &Path, window: &str) -> Vec<Value> {
    let store = Store::open_read_only(db).unwrap();
    let w = store.window(window).unwrap().unwrap();
    let scores: BTreeMap<String, MetricChange> = w.summary.unwrap().change_scores;
    let mut rows: Vec<(u32, Value)> = scores
        .into_iter()
        .map(|(m, c)| (c.rank, json!([m, c.rank, c.score, c.unscored])))
        .collect();
    rows.sort_by_key(|r| r.0);
    rows.into_iter().map(|r| r.1).collect()
}

/// The README's query that starts with `-- {first_line}`.
fn readme_query(first_line: &str) -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    readme
        .split("```sql\n")
        .skip(1)
        .map(|s| s.split("```").next().unwrap())
        .find(|q| q.starts_with(&format!("-- {first_line}")))
        .unwrap_or_else(|| panic!("a README query starting with -- {first_line}"))
        .trim()
        .trim_end_matches(';')
        .to_owned()
}

#[test]
fn scores_ranks_and_the_alerts_words_arrive_once_and_rank_across_the_fleet() {
    let Some(cluster) = Cluster::start(Options::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
    let start = Timestamp::now().as_unix_ms() - 2 * 3_600_000;
    let ids_a = record(&a, "node-a", 2, 80.0, start);
    let ids_b = record(&b, "node-b", 1, 30.0, start);

    // node-a's second window as closed before the store's version 12: no
    // stored scores, so the push sends what a read computes.
    let before = local_ranks(&a, &ids_a[1]);
    rusqlite::Connection::open(&a)
        .unwrap()
        .execute(
            "UPDATE window_metric_stats SET change_score = NULL, change_rank = NULL,
                 change_unscored = NULL
             WHERE window_id = (SELECT id FROM windows WHERE public_id = ?1)",
            [&ids_a[1]],
        )
        .unwrap();
    assert_eq!(
        read_ranks(&a, &ids_a[1]),
        before,
        "scored on read as at close"
    );

    assert_eq!(push(&a, &cluster.url(), "node-a", &[], 0)["pushed"], 2);
    assert_eq!(push(&b, &cluster.url(), "node-b", &[], 0)["pushed"], 1);
    let mut c = cluster.client("central");

    // Ranked as on the node: cpu first, the metric without a baseline last
    // and saying why.
    let ranks = central_ranks(&mut c, "node-a", &ids_a[0]);
    assert_eq!(ranks, local_ranks(&a, &ids_a[0]));
    let names: Vec<&str> = ranks.iter().map(|r| r[0].as_str().unwrap()).collect();
    assert_eq!(names, ["cpu", "memory", "disk", "fresh"], "{ranks:?}");
    assert!(ranks[0][2].as_f64().unwrap() > 10.0, "{ranks:?}");
    assert_eq!(ranks[3][1], 4);
    assert!(ranks[3][2].is_null());
    assert_eq!(ranks[3][3], "no values before the trigger");
    assert_eq!(central_ranks(&mut c, "node-a", &ids_a[1]), before);
    assert_eq!(
        central_ranks(&mut c, "node-b", &ids_b[0]),
        local_ranks(&b, &ids_b[0])
    );

    // The alert's words, as jsonb, and the resolve's end.
    let rows = c
        .query(
            "SELECT t.labels->>'severity', t.annotations->>'summary',
                    t.annotations->>'runbook_url', t.annotations::text, t.rule,
                    t.ends_ms - t.resolved_ms
             FROM window_triggers t JOIN windows w ON w.id = t.window_id
             WHERE w.node = 'node-a' AND w.public_id = $1",
            &[&ids_a[0]],
        )
        .unwrap();
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r.get::<_, &str>(0), "page");
    assert_eq!(r.get::<_, &str>(1), "CPU above 90% on node-a");
    assert_eq!(r.get::<_, &str>(2), "https://runbooks.example/high-cpu");
    let annotations: Value = serde_json::from_str(r.get::<_, &str>(3)).unwrap();
    assert_eq!(annotations, json!(words("node-a").annotations));
    assert_eq!(r.get::<_, Option<&str>>(4), None);
    assert_eq!(r.get::<_, Option<i64>>(5), Some(1_000), "endsAt kept");

    // The README's fleet-wide question: node-a's CPU jumped most.
    let rows: Vec<Value> = c
        .query(
            &format!(
                "SELECT to_jsonb(q)::text FROM ({}) AS q",
                readme_query("The metrics that moved most")
            ),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| serde_json::from_str(r.get::<_, &str>(0)).unwrap())
        .collect();
    let top: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["node"].as_str().unwrap(),
                r["metric"].as_str().unwrap(),
                r["alert"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        &top[..3],
        [
            ("node-a", "cpu", "HighCpu"),
            ("node-a", "cpu", "HighCpu"),
            ("node-b", "cpu", "HighCpu")
        ],
        "{rows:?}"
    );
    assert_eq!(rows[2]["summary"], "CPU above 90% on node-b");
    assert!(
        rows.iter().all(|r| r["metric"] != "fresh"),
        "unscored metrics are not listed: {rows:?}"
    );

    // Once: a re-push and a verifying push add nothing.
    let count = |c: &mut postgres::Client| -> (i64, i64) {
        let r = c
            .query_one(
                "SELECT (SELECT count(*) FROM window_metric_stats),
                        (SELECT count(*) FROM window_triggers)",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    let rows_before = count(&mut c);
    assert_eq!(rows_before, (12, 3));
    let again = push(&a, &cluster.url(), "node-a", &[], 0);
    assert_eq!(
        (again["pushed"].clone(), again["skipped"].clone()),
        (json!(0), json!(0))
    );
    let verified = push(&a, &cluster.url(), "node-a", &["--verify"], 0);
    assert_eq!(
        (verified["pushed"].clone(), verified["missing"].clone()),
        (json!(0), json!(0)),
        "{verified}"
    );
    assert_eq!(count(&mut c), rows_before);
    assert_eq!(central_ranks(&mut c, "node-a", &ids_a[0]), ranks);
}
