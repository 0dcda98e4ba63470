//! Stored text on the terminal (issue 18, defect 15): a series name, a
//! resource name or an alert id may hold the invisible bidirectional
//! controls (U+202E RIGHT-TO-LEFT OVERRIDE and its kin), which reorder what
//! a terminal shows: `cpu\u{202e}gnp.exe` reads as `cpuexe.png`. Every
//! command that prints stored text shows them escaped, as it does control
//! characters; JSON escapes them too (`\u202e`), so it parses to the same
//! names.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::T0;
use common::bin::*;
use serde_json::Value;

/// The bidirectional controls (and two C1/DEL controls serde_json would
/// write as is).
const HIDDEN: [char; 15] = [
    '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}', '\u{202e}', '\u{2066}', '\u{2067}', '\u{2068}',
    '\u{2069}', '\u{200e}', '\u{200f}', '\u{061c}', '\u{9b}', '\u{7f}', '\u{85}',
];

fn raw(text: &str) -> Vec<char> {
    text.chars().filter(|c| HIDDEN.contains(c)).collect()
}

#[test]
fn bidirectional_controls_in_stored_names_are_shown_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let metric = "cpu\u{202e}gnp.exe";
    let name = "web\u{2066}01\u{2069}";
    let alert = "Disk\u{200f}Full";
    let lines: Vec<String> = (0..5)
        .map(|i| {
            serde_json::json!({
                "type": "sample", "resource": "a\u{202d}b", "name": name,
                "ts": T0 + i * 1000, "metrics": {metric: i, "mem\u{061c}": 1, "disk": 2},
            })
            .to_string()
        })
        .chain([serde_json::json!({
            "type": "trigger", "resource": "a\u{202d}b", "trigger": "alert",
            "trigger_id": alert, "ts": T0 + 4000,
        })
        .to_string()])
        .collect();
    let o = run_with_stdin(&db, &["ingest", "-", "--finish"], Some(&lines.join("\n")));
    assert!(o.status.success(), "{}", stderr(&o));
    let list = json(&db, &["list", "--json"]);
    let id = list[0]["id"].as_str().unwrap().to_owned();
    // JSON keeps the names, escaped in the text.
    assert_eq!(list[0]["resource_id"], "a\u{202d}b");
    let shown = json(&db, &["show", &id, "--json"]);
    assert_eq!(shown["trigger_id"], alert);
    assert!(shown["summary"]["peaks"][metric].is_number(), "{shown}");
    for args in [
        vec!["list"],
        vec!["list", "--json"],
        vec!["show", &id],
        vec!["show", &id, "--json"],
        vec!["context", &id],
        vec!["stats"],
    ] {
        let out = ok(&db, &args);
        assert!(raw(&out).is_empty(), "{args:?} printed {:?}", raw(&out));
    }
    let show = ok(&db, &["show", &id]);
    for escaped in [
        "cpu\\u{202e}gnp.exe",
        "web\\u{2066}01\\u{2069}",
        "Disk\\u{200f}Full",
        "a\\u{202d}b",
        "mem\\u{61c}",
    ] {
        assert!(show.contains(escaped), "{escaped} not in {show}");
    }
    assert!(ok(&db, &["list", "--json"]).contains(r"a\u202db"));
    // So do the sparklines after the escaped series names.
    let spark = |name: &str| {
        let line = show.lines().rev().find(|l| l.starts_with(name)).unwrap();
        line.chars().position(|c| "▁▂▃▄▅▆▇█".contains(c))
    };
    assert_eq!(spark("cpu\\u{202e}"), spark("mem\\u{61c}"), "{show}");
    assert_eq!(spark("cpu\\u{202e}"), spark("disk"), "{show}");
    // The table's columns line up with the escaped text.
    let table = ok(&db, &["list"]);
    let lines: Vec<&str> = table.lines().collect();
    let column = |l: &str| l.find("TRIGGER").or_else(|| l.find("alert"));
    assert_eq!(column(lines[0]), column(lines[1]), "{table}");
}

#[test]
fn watch_prints_alert_ids_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let log = dir.path().join("watch.out");
    let mut watch = Command::new(BIN)
        .arg("--db")
        .arg(&db)
        .args(["watch", "--for", "20s", "--interval", "500ms"])
        .args(["--rule", "memory>100"])
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let host = incident_recorder::provider::host::HostProvider::new().unwrap();
    let host = host.resource_id().to_owned();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let o = run(&db, &["stats", "--json"]);
        if o.status.success()
            && serde_json::from_slice::<Value>(&o.stdout).unwrap()["recorder_running"] == true
        {
            break;
        }
        assert!(Instant::now() < deadline, "watch did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let reply = json(
        &db,
        &["trigger", &host, "--id", "evil\u{202e}txt.exe", "--json"],
    );
    assert_eq!(reply["status"], "handled", "{reply}");
    // The window's line is printed after the next tick.
    let deadline = Instant::now() + Duration::from_secs(10);
    let out = loop {
        let out = std::fs::read_to_string(&log).unwrap();
        if out.contains("opened on") || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // SAFETY: the child's pid; SIGINT asks `watch` to stop cleanly.
    unsafe { libc::kill(watch.id() as i32, libc::SIGINT) };
    assert!(watch.wait().unwrap().success());
    assert!(out.contains("(manual evil\\u{202e}txt.exe)"), "{out}");
    assert!(raw(&out).is_empty(), "{out:?}");
}
