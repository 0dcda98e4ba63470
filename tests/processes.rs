//! What was running: `watch` records the host's top processes with its
//! windows, and `show` prints them (issue 20 part 3).

mod common;

use std::process::{Child, Command};

use common::bin::*;
use serde_json::Value;

/// A busy shell loop, killed on drop.
struct Burn(Child);

impl Drop for Burn {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn burn() -> Burn {
    Burn(
        Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .expect("sh"),
    )
}

/// Runs `watch --trigger-now` for 6 s with a busy child, then returns the
/// window's `show --json` and `show` text and the child's pid.
fn record(extra: &[&str]) -> (Value, String, u32) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("procs.db");
    let b = burn();
    let mut args = vec![
        "watch",
        "--interval",
        "1s",
        "--post",
        "3s",
        "--for",
        "6s",
        "--trigger-now",
    ];
    args.extend_from_slice(extra);
    ok(&db, &args);
    let pid = b.0.id();
    drop(b);
    let list = json(&db, &["list", "--json"]);
    let id = list[0]["id"].as_str().unwrap().to_owned();
    let shown = json(&db, &["show", "--json", &id]);
    let text = ok(&db, &["show", &id]);
    (shown, text, pid)
}

fn rows_of(shown: &Value, pid: u32) -> Vec<Value> {
    shown["processes"]
        .as_array()
        .expect("a processes field")
        .iter()
        .flat_map(|s| s["processes"].as_array().unwrap().clone())
        .filter(|p| p["pid"] == pid)
        .collect()
}

#[test]
fn a_burn_during_the_window_is_in_its_process_table_by_name_and_pid() {
    let (shown, text, pid) = record(&[]);
    let rows = rows_of(&shown, pid);
    assert!(!rows.is_empty(), "pid {pid} not in {shown}");
    assert_eq!(rows[0]["name"], "sh");
    assert_eq!(rows[0]["cmdline"], "sh -c while :; do :; done");
    assert!(
        rows.iter().any(|p| p["cpu"].as_f64().unwrap() > 20.0),
        "{rows:?}"
    );
    let table = text
        .split("\nprocesses, busiest first")
        .nth(1)
        .unwrap_or_else(|| panic!("no process table in {text}"));
    let line = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&pid.to_string()))
        .unwrap_or_else(|| panic!("pid {pid} not in the table:\n{table}"));
    assert!(line.contains(" sh "), "{line}");
    assert!(line.contains("while :; do :; done"), "{line}");
}

#[test]
fn no_cmdline_keeps_command_lines_out() {
    let (shown, _, pid) = record(&["--no-cmdline", "--top-processes", "100"]);
    let snaps = shown["processes"].as_array().expect("a processes field");
    assert!(snaps.iter().all(|s| {
        s["processes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p.get("cmdline").is_none())
    }));
    assert!(!rows_of(&shown, pid).is_empty());
}

#[test]
fn top_processes_zero_records_none() {
    let (shown, text, _) = record(&["--top-processes", "0"]);
    assert!(shown.get("processes").is_none(), "{shown}");
    assert!(!text.contains("processes, busiest first"));
}
