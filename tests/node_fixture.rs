//! A window recorded from a real node_exporter with a real CPU burn
//! (tests/fixtures/node_burn: make.sh says how), read back through the
//! binary as a user does: import, `show`, `context`.

mod common;

use std::path::Path;

use common::bin::*;
use serde_json::Value;

/// Imports the recorded window into `db`; returns its id.
fn import_burn(db: &Path) -> String {
    let file = fixture("node_burn/window.jsonl");
    let out = ok(db, &["import", file.to_str().unwrap()]);
    assert!(out.contains("imported 1 windows (50 points)"), "{out}");
    json(db, &["list", "--json"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The window's metrics by change rank, first the one that moved most.
fn ranked(db: &Path, id: &str) -> Vec<String> {
    let w = json(db, &["show", id, "--json"]);
    let scores = w["summary"]["change_scores"].as_object().unwrap();
    let mut names: Vec<(i64, String)> = scores
        .iter()
        .map(|(name, s)| (s["rank"].as_i64().unwrap(), name.clone()))
        .collect();
    names.sort();
    names.into_iter().map(|(_, n)| n).collect()
}

/// A series a reader takes for CPU, moved the way a burn moves it: the
/// host's `cpu`, node_exporter's CPU seconds (as rates) in user or system
/// mode, or the 1-minute load average going up; idle time going down.
fn is_cpu_burn(name: &str, score: f64) -> bool {
    let mode = |m: &str| {
        name.starts_with("node_cpu_seconds_total_per_s{")
            && name.ends_with(&format!("mode=\"{m}\"}}"))
    };
    let up =
        name == "cpu" || mode("user") || mode("system") || name == "load1" || name == "node_load1";
    (up && score > 0.0) || (mode("idle") && score < 0.0)
}

/// The recorded values of `metric`, before and after the trigger.
fn before_after(w: &Value, metric: &str) -> (Vec<f64>, Vec<f64>) {
    let fired = w["trigger_time"].as_str().unwrap();
    let (mut before, mut after) = (Vec::new(), Vec::new());
    for p in w["data_points"].as_array().unwrap() {
        let Some(v) = p["metrics"][metric].as_f64() else {
            continue;
        };
        // RFC 3339 UTC with milliseconds: text order is time order.
        if p["timestamp"].as_str().unwrap() < fired {
            before.push(v);
        } else {
            after.push(v);
        }
    }
    (before, after)
}

#[test]
fn the_recorded_burn_is_a_real_node_exporter_window() {
    let text = std::fs::read_to_string(fixture("node_burn/window.jsonl")).unwrap();
    assert!(text.len() < 2_000_000, "{} bytes", text.len());
    let doc: Value = serde_json::from_str(&text).unwrap();
    let w = &doc["windows"][0];
    assert_eq!(w["trigger_type"], "manual");
    // About 30 s before the trigger and 20 after, one sample a second.
    let (before, after) = before_after(w, "cpu");
    assert!((28..=31).contains(&before.len()), "{}", before.len());
    assert!((18..=21).contains(&after.len()), "{}", after.len());
    // node_exporter's own series are there, per CPU and mode.
    let first = w["data_points"][0]["metrics"].as_object().unwrap();
    for name in [
        r#"node_cpu_seconds_total_per_s{cpu="0",mode="user"}"#,
        r#"node_cpu_seconds_total_per_s{cpu="1",mode="idle"}"#,
        "node_load1",
        "node_memory_MemAvailable_bytes",
    ] {
        assert!(first.contains_key(name), "{name} not recorded");
    }
    // Both cores were busy while the burn ran (its first 10 s after the
    // trigger): the host's CPU use stayed at 95 % or more.
    let busy = after.iter().take(10).filter(|v| **v >= 95.0).count();
    assert!(busy >= 9, "{after:?}");
}

#[test]
fn show_and_context_of_the_burn_read_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("burn.db");
    let id = import_burn(&db);
    let ranks = ranked(&db, &id);
    assert!(ranks.len() > 100, "{}", ranks.len());

    // show: the ten that moved most, in the JSON's rank order.
    let shown = ok(&db, &["show", &id]);
    let table: Vec<&str> = shown
        .lines()
        .skip_while(|l| !l.starts_with("METRIC "))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(table.len(), 10, "{shown}");
    for (row, name) in table.iter().zip(&ranks) {
        assert!(row.starts_with(&format!("{name} ")), "{row} vs {name}");
    }

    // context: within 8 KB and leading with the same first-ranked series.
    let text = ok(&db, &["context", &id]);
    assert!(text.len() <= 8192, "{} bytes", text.len());
    let top = text
        .lines()
        .skip_while(|l| !l.starts_with("### What changed most"))
        .nth(2)
        .unwrap();
    assert!(
        top.starts_with(&format!("- {}: score ", ranks[0])),
        "{text}"
    );
}

#[test]
#[ignore = "fails on this real capture: the change score ranks cpu=\"1\" system time (-0.01 core/s on a near-zero spread) and memory Writeback above the burn; user time is 4th, cpu 9th"]
/// What issue 20 asks of the change score: a real 2-core burn leads `show`
/// (a CPU series that went the burn's way in the top 3) and `context`
/// names it.
fn a_cpu_series_leads_show_of_the_burn() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("burn.db");
    let id = import_burn(&db);
    let w = json(&db, &["show", &id, "--json"]);
    let scores = &w["summary"]["change_scores"];
    let ranks = ranked(&db, &id);
    let score = |n: &str| scores[n]["score"].as_f64().unwrap();
    let cpu = ranks.iter().take(3).find(|n| is_cpu_burn(n, score(n)));
    assert!(
        cpu.is_some(),
        "no CPU series in the top 3: {:?}",
        &ranks[..10]
    );
    let text = ok(&db, &["context", &id]);
    assert!(
        text.contains(&format!("- {}: score ", cpu.unwrap())),
        "{text}"
    );
}
