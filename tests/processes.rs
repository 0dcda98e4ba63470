//! What was running: `watch` records the host's top processes with its
//! windows, and `show` prints them (issue 20 part 3).

mod common;

use std::process::{Child, Command};
use std::sync::Arc;

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
/// window's `show --json`, `show` text and `context` text and the child's pid.
fn record(extra: &[&str]) -> (Value, String, String, u32) {
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
    let context = ok(&db, &["context", &id]);
    (shown, text, context, pid)
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
    let (shown, text, context, pid) = record(&[]);
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
    // The digest names it too, within its default 8 KB.
    assert!(context.len() <= 8 * 1024, "{} bytes", context.len());
    let section = context
        .split("### Top processes")
        .nth(1)
        .unwrap_or_else(|| panic!("no process section in {context}"));
    assert!(section.contains(&format!("- pid {pid} sh (")), "{section}");
}

#[test]
fn no_cmdline_keeps_command_lines_out() {
    let (shown, _, _, pid) = record(&["--no-cmdline", "--top-processes", "100"]);
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
    let (shown, text, context, _) = record(&["--top-processes", "0"]);
    assert!(!context.contains("### Top processes"));
    assert!(shown.get("processes").is_none(), "{shown}");
    assert!(!text.contains("processes, busiest first"));
}

#[test]
fn ingest_processes_lines_before_and_during_a_window_are_kept_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ingest.db");
    let t0: i64 = 1_732_440_000_000;
    let proc_line = |ts: i64, pid: u32, cpu: f64| {
        format!(
            r#"{{"type":"processes","resource":"vm-1","ts":{ts},"processes":[{{"pid":{pid},"name":"java","cpu":{cpu},"rss":2147483648,"user":"app","cmdline":"java -jar app.jar"}},{{"pid":7,"name":"sshd","cpu":0.1,"rss":1000}}]}}"#
        )
    };
    let mut lines = Vec::new();
    for i in 0..6 {
        lines.push(format!(
            r#"{{"type":"sample","resource":"vm-1","ts":{},"metrics":{{"cpu":{}}}}}"#,
            t0 + i * 5000,
            10 + i * 15
        ));
        match i {
            1 => lines.push(proc_line(t0 + 5000, 42, 20.0)),
            3 => lines.push(format!(
                r#"{{"type":"trigger","resource":"vm-1","trigger":"alert","trigger_id":"cpu-high","ts":{}}}"#,
                t0 + 15_000
            )),
            4 => lines.push(proc_line(t0 + 20_000, 43, 180.5)),
            _ => {}
        }
    }
    // A bad line is refused with its line number; the rest is kept.
    lines.push(r#"{"type":"processes","resource":"vm-1","processes":[{"pid":1}]}"#.into());
    let out = run_with_stdin(&db, &["ingest", "--finish"], Some(&lines.join("\n")));
    assert!(stderr(&out).contains("line 10"), "{}", stderr(&out));
    let list = json(&db, &["list", "--json"]);
    let id = list[0]["id"].as_str().unwrap().to_owned();
    let shown = json(&db, &["show", "--json", &id]);
    let snaps = shown["processes"].as_array().expect("a processes field");
    // The one before the trigger (from the ring) and the one during it.
    let firsts: Vec<&Value> = snaps.iter().map(|s| &s["processes"][0]["pid"]).collect();
    assert_eq!(firsts, vec![42, 43], "{shown}");
    let text = ok(&db, &["show", &id]);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("43 "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("java") && line.contains("180.5") && line.contains("new"),
        "{line}"
    );
}

#[test]
fn native_export_keeps_process_snapshots_and_import_reads_them_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    let t0: i64 = 1_732_440_000_000;
    let lines = [
        format!(r#"{{"type":"sample","resource":"vm-1","ts":{t0},"metrics":{{"cpu":10}}}}"#),
        format!(r#"{{"type":"trigger","resource":"vm-1","ts":{t0}}}"#),
        format!(
            r#"{{"type":"processes","resource":"vm-1","ts":{},"processes":[{{"pid":42,"name":"java","cpu":99,"rss":1000,"cmdline":"java -jar a.jar"}}]}}"#,
            t0 + 1000
        ),
        format!(
            r#"{{"type":"sample","resource":"vm-1","ts":{},"metrics":{{"cpu":90}}}}"#,
            t0 + 5000
        ),
    ];
    let out = run_with_stdin(&db, &["ingest", "--finish"], Some(&lines.join("\n")));
    assert!(out.status.success(), "{}", stderr(&out));
    let file = dir.path().join("export.json");
    ok(&db, &["export", "--output", file.to_str().unwrap()]);
    let other = dir.path().join("b.db");
    ok(&other, &["import", file.to_str().unwrap()]);
    let id = json(&db, &["list", "--json"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = json(&db, &["show", "--json", &id])["processes"].clone();
    let after = json(&other, &["show", "--json", &id])["processes"].clone();
    assert_eq!(before[0]["processes"][0]["cmdline"], "java -jar a.jar");
    assert_eq!(before, after);
    // Pulse has no field for them, and says so.
    let pulse = run(&db, &["export", "--format", "pulse"]);
    assert!(
        stderr(&pulse).contains("left out the process snapshots of 1 windows"),
        "{}",
        stderr(&pulse)
    );
}

/// GET `path` from `serve`'s listener, without a body framing subtlety:
/// `Connection: close`, and the answer read to its end.
fn http_get(l: &incident_recorder::listen::Listener, token: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(l.local_addr()).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    (status, text)
}

#[test]
fn the_window_page_and_its_json_carry_the_processes() {
    use incident_recorder::listen::{ListenAuth, ListenConfig, Listener};
    use incident_recorder::{
        IncidentRecorder, Metrics, ProcessSample, RecorderConfig, Store, Timestamp, Trigger,
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.db");
    let recorder = IncidentRecorder::open(RecorderConfig::with_db_path(&path)).unwrap();
    let t0 = Timestamp::now();
    recorder
        .push_sample("vm-1", t0, Metrics::new().with("cpu", 10.0), None)
        .unwrap();
    let evil = ProcessSample {
        pid: 4242,
        name: "<script>x</script>".into(),
        cmdline: Some("run --hard".into()),
        user: Some("app".into()),
        cpu: 150.0,
        rss: 1 << 30,
        read_bps: None,
        write_bps: None,
    };
    assert!(recorder.push_processes("vm-1", t0, vec![evil]).unwrap());
    let id = recorder.start_recording("vm-1", Trigger::manual()).unwrap();
    recorder.stop_recording(&id).unwrap();
    drop(recorder);
    let store = Arc::new(Store::open_read_only(&path).unwrap());
    let token = "a-test-token-of-enough-length-0123456789";
    let config = ListenConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        ListenAuth::Bearer(token.into()),
    );
    let served = Listener::serve_store(store, config).unwrap();
    let (status, page) = http_get(&served, token, &format!("/w/{id}"));
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<h2>Processes</h2>"), "{page}");
    assert!(page.contains("<td>4242</td><td>&lt;script&gt;x&lt;/script&gt;</td>"));
    let (status, body) = http_get(&served, token, &format!("/windows/{id}"));
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"processes\"") && body.contains("\"pid\": 4242"),
        "{body}"
    );
}
