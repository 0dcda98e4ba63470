//! SQL history at the CLI's limits (issue 12), full size: the numbers for
//! BENCHMARKS.md. What `benches/history.rs` times on a small history, here
//! on 10,000 closed windows × 500 points × 8 metrics over 200 resources
//! plus 100 windows still recording (the CLI's `--max-windows` and
//! `--max-points`), built once through the library's API and cached under
//! `target/history-cache/` (see `benches/support/history.rs`):
//!
//! - every SQLite query printed in README.md and docs/schema.md, with its
//!   `EXPLAIN QUERY PLAN`, and issue 12's "incident_samples filtered by
//!   resource and metric";
//! - the library's reads: `Store::window(id)` (500 points) and the 100 most
//!   recent windows with their points (`recent_windows(100)`), and the 100
//!   most recent closed ones;
//! - the CLI's read commands, as subprocesses (`list`, `show`, `context`,
//!   `export` of one window and of one resource, `stats`);
//! - the storm: the tick in which 1,000 windows of 501 points recorded
//!   together close, the worst of the 10 ticks after it, and a normal tick
//!   of the same rig; on `TickRig` as `peerbench --only storm` runs it (the
//!   library's default `max_windows` of 100, so that tick also trims 900
//!   windows), and again keeping the CLI's 10,000 (nothing trimmed).
//!
//! Each measurement is run once untimed (page cache warm, as for a user who
//! just ran the previous command), then `--reps` times; a run repeats a fast
//! operation until it takes 20 ms and counts the mean. Prints one JSON line
//! per measurement (`min`/`median`/`max` in ms) on stdout, and a table of
//! the medians on stderr.
//!
//! ```sh
//! cargo build --release --bin incident-recorder --example historybench
//! target/release/examples/historybench                  # everything, full size
//! target/release/examples/historybench --windows 2000 --only sql,plans
//! ```
//!
//! (`cargo run --release --example historybench` works too, but does not
//! rebuild the binary the CLI rows run: they say so if it is older.)

#[path = "../benches/support/history.rs"]
mod history;
#[path = "../benches/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use history::{History, HistorySize, Storm};
use incident_recorder::{Store, Timestamp, WindowFilter, WindowStatus};

#[derive(Parser, Debug)]
#[command(
    about = "SQL history at the CLI's limits (issue 12); JSON lines on stdout, a table on stderr"
)]
struct Args {
    /// Closed windows in the history.
    #[arg(long, default_value_t = 10_000)]
    windows: usize,
    /// Points per window.
    #[arg(long, default_value_t = 500)]
    points: usize,
    /// Resources (default: the CLI-limits history's 200, fewer for small ones).
    #[arg(long)]
    resources: Option<usize>,
    /// Windows still recording (default 100, fewer for small histories).
    #[arg(long)]
    recording: Option<usize>,
    /// Windows closing together in the storm.
    #[arg(long, default_value_t = 1_000)]
    storm: usize,
    /// Timed runs per measurement (the median is reported).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// The incident-recorder binary (default: the one beside this example).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Which parts to run.
    #[arg(
        long,
        default_value = "sql,plans,reads,cli,storm",
        value_delimiter = ','
    )]
    only: Vec<String>,
}

/// Milliseconds per run.
#[derive(Default, Clone)]
struct Stat(Vec<f64>);

impl Stat {
    fn sorted(&self) -> Vec<f64> {
        let mut c = self.0.clone();
        c.sort_by(f64::total_cmp);
        c
    }

    fn median(&self) -> f64 {
        let c = self.sorted();
        let n = c.len();
        if n % 2 == 1 {
            c[n / 2]
        } else {
            (c[n / 2 - 1] + c[n / 2]) / 2.0
        }
    }

    fn json(&self) -> serde_json::Value {
        let c = self.sorted();
        serde_json::json!({"min": round(c[0]), "median": round(self.median()), "max": round(c[c.len() - 1])})
    }
}

fn round(ms: f64) -> f64 {
    let digits = if ms >= 100.0 { 1 } else { 4 };
    let f = 10f64.powi(digits);
    (ms * f).round() / f
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Times `f` as described in the module docs: one untimed run, then `reps`
/// runs of as many calls as make 20 ms (at least one).
fn measure<T>(reps: usize, mut f: impl FnMut(usize) -> T) -> (Stat, T) {
    let t0 = Instant::now();
    let out = f(0);
    let once = t0.elapsed().max(Duration::from_micros(1));
    let per_run =
        (Duration::from_millis(20).as_secs_f64() / once.as_secs_f64()).clamp(1.0, 1000.0) as usize;
    let mut stat = Stat::default();
    let mut call = 1;
    for _ in 0..reps {
        let t0 = Instant::now();
        for _ in 0..per_run {
            black_box(f(call));
            call += 1;
        }
        stat.0.push(ms(t0.elapsed()) / per_run as f64);
    }
    (stat, out)
}

/// One row of the table and one JSON line.
struct Row {
    part: &'static str,
    name: String,
    stat: Stat,
    note: String,
}

struct Report {
    size: HistorySize,
    reps: usize,
    rows: Vec<Row>,
}

impl Report {
    fn add(
        &mut self,
        part: &'static str,
        name: &str,
        stat: Stat,
        note: String,
        extra: serde_json::Value,
    ) {
        let mut line = serde_json::json!({
            "bench": "history",
            "part": part,
            "name": name,
            "W": self.size.windows,
            "P": self.size.points,
            "R": self.size.resources,
            "A": self.size.recording,
            "reps": self.reps,
            "ms": stat.json(),
        });
        if let (Some(l), Some(e)) = (line.as_object_mut(), extra.as_object()) {
            l.extend(e.clone());
        }
        println!("{line}");
        self.rows.push(Row {
            part,
            name: name.to_owned(),
            stat,
            note,
        });
    }

    fn table(&self) {
        eprintln!("\n| measurement | median | min | max | |");
        eprintln!("|---|---|---|---|---|");
        for r in &self.rows {
            let c = r.stat.sorted();
            eprintln!(
                "| {} `{}` | {} | {} | {} | {} |",
                r.part,
                r.name,
                fmt_ms(r.stat.median()),
                fmt_ms(c[0]),
                fmt_ms(c[c.len() - 1]),
                r.note
            );
        }
    }
}

fn fmt_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.0} ms")
    } else if ms >= 1.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.3} ms")
    }
}

fn progress(msg: String) {
    eprintln!("historybench: {msg}");
}

fn sql(a: &Args, h: &History, report: &mut Report, plans: bool) {
    let conn = history::read_connection(&h.path);
    for q in history::QUERIES {
        let bind = q.bind(&h.picks);
        let plan = match conn.prepare(&format!("EXPLAIN QUERY PLAN {}", q.sql)) {
            Ok(_) => history::query_plan(&conn, q.sql, bind),
            Err(e) => {
                progress(format!("{} ({}) does not prepare: {e}", q.name, q.source));
                continue;
            }
        };
        if plans {
            println!(
                "{}",
                serde_json::json!({"bench": "history_plan", "name": q.name, "source": q.source, "plan": plan})
            );
            eprintln!("-- {} ({})\n{}", q.name, q.source, plan.trim_end());
        }
        if !a.only.iter().any(|o| o == "sql") {
            continue;
        }
        progress(format!("sql {}", q.name));
        let mut stmt = conn.prepare(q.sql).expect("prepare");
        let (stat, rows) = measure(a.reps, |_| history::run_query(&mut stmt, bind));
        // Full scans of a table or index (not of the view's own co-routine).
        let mut scans = plan
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("SCAN") && *l != "SCAN incident_samples")
            .map(str::to_owned)
            .collect::<Vec<_>>();
        scans.dedup();
        let note = format!(
            "{rows} rows{}",
            if scans.is_empty() {
                String::new()
            } else {
                format!("; {}", scans.join(", "))
            }
        );
        report.add(
            "sql",
            q.name,
            stat,
            note,
            serde_json::json!({"rows": rows, "source": q.source, "scans": scans}),
        );
        sqlite3_cli(a, h, report, q, bind);
    }
}

/// Issue 19's measure: the query in the `sqlite3` CLI, a process started
/// per run (cold CLI, warm page cache), output discarded. The parameter
/// (an id, quote-free) goes in as a literal, as a user would type it.
fn sqlite3_cli(
    a: &Args,
    h: &History,
    report: &mut Report,
    q: &history::DocQuery,
    bind: Option<&str>,
) {
    let sql = match bind {
        Some(v) if !v.contains('\'') => q.sql.replace("?1", &format!("'{v}'")),
        Some(_) => return,
        None => q.sql.to_owned(),
    };
    let run = || {
        let started = Instant::now();
        let out = std::process::Command::new("sqlite3")
            .arg("-readonly")
            .arg(&h.path)
            .arg(&sql)
            .stdout(std::process::Stdio::null())
            .status();
        match out {
            Ok(s) if s.success() => Some(started.elapsed()),
            _ => None,
        }
    };
    if run().is_none() {
        progress(format!("sqlite3 CLI: {} did not run; skipped", q.name));
        return;
    }
    let (stat, _) = measure(a.reps, |_| run());
    report.add(
        "sqlite3",
        q.name,
        stat,
        "`sqlite3 -readonly` process, cold".to_owned(),
        serde_json::json!({"source": q.source}),
    );
}

fn reads(a: &Args, h: &History, report: &mut Report) {
    let store = Store::open_read_only(&h.path).expect("open the history");
    progress("read window(id)".into());
    let ids = &h.picks.closed;
    let (stat, points) = measure(a.reps, |i| {
        let w = store
            .window(&ids[i * 7 % ids.len()])
            .expect("read")
            .expect("stored");
        w.data_points.len()
    });
    assert_eq!(points, h.size.points);
    report.add(
        "read",
        "Store::window(id)",
        stat,
        format!("{points} points, closed, 64 windows in turn"),
        serde_json::json!({"points": points}),
    );
    let recent = WindowFilter {
        limit: 100,
        with_points: true,
        ..WindowFilter::default()
    };
    for (name, filter) in [
        ("recent_windows(100)", recent.clone()),
        (
            "100 most recent closed windows",
            WindowFilter {
                status: Some(WindowStatus::Truncated),
                ..recent
            },
        ),
    ] {
        progress(format!("read {name}"));
        let (stat, got) = measure(a.reps, |_| store.windows(&filter).expect("read"));
        let points: usize = got.iter().map(|w| w.data_points.len()).sum();
        let recording = got
            .iter()
            .filter(|w| w.status == WindowStatus::Recording)
            .count();
        report.add(
            "read",
            name,
            stat,
            format!(
                "{} windows ({recording} recording), {points} points",
                got.len()
            ),
            serde_json::json!({"windows": got.len(), "recording": recording, "points": points}),
        );
    }
}

fn cli(a: &Args, h: &History, report: &mut Report) {
    let bin = match history::cli_binary(a.bin.as_deref()) {
        Ok(b) => b,
        Err(why) => {
            progress(format!("skipping the CLI commands: {why}"));
            return;
        }
    };
    let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if let (Some(b), Some(me)) = (
        modified(&bin),
        std::env::current_exe().ok().as_deref().and_then(modified),
    ) && b < me
    {
        progress(format!(
            "warning: {} is older than this example; cargo build --release --bin incident-recorder to time the current code",
            bin.display()
        ));
    }
    progress(format!("cli: {}", bin.display()));
    for cmd in history::cli_commands(&h.picks) {
        progress(format!("cli {}", cmd.args.join(" ")));
        let (stat, _) = measure(a.reps, |_| history::run_cli(&bin, &h.path, &cmd.args));
        let shown = cmd
            .args
            .iter()
            .map(|s| {
                if s.starts_with("iw-") {
                    "<id>"
                } else {
                    s.as_str()
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
        report.add(
            "cli",
            cmd.name,
            stat,
            format!("`incident-recorder {shown}`"),
            serde_json::json!({"args": cmd.args}),
        );
    }
}

/// The storm on `TickRig` as `peerbench --only storm` runs it
/// (`max_windows` None: the library's 100, so the closing tick also trims
/// all but 100 of the windows), and with the CLI's 10,000 (nothing trimmed).
fn storm(a: &Args, report: &mut Report, max_windows: Option<usize>) {
    let (mut normal, mut closing, mut worst) = (Stat::default(), Stat::default(), Stat::default());
    let mut last = None;
    let label = match max_windows {
        None => "max_windows 100".to_owned(),
        Some(n) => format!("max_windows {n}"),
    };
    for rep in 0..a.reps {
        progress(format!(
            "storm {} windows, {label}, run {}",
            a.storm,
            rep + 1
        ));
        let s = Storm::run(a.storm, 1 + rep as u64, max_windows);
        normal.0.push(ms(s.normal));
        closing.0.push(ms(s.closing));
        worst.0.push(ms(s.worst_after()));
        last = Some(s);
    }
    let s = last.expect("at least one run");
    let ratio = closing.median() / normal.median();
    let fields = |extra: serde_json::Value| {
        let mut v =
            serde_json::json!({"windows": a.storm, "max_windows": max_windows.unwrap_or(100)});
        if let (Some(v), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            v.extend(e.clone());
        }
        v
    };
    report.add(
        "storm",
        &format!("normal tick, {label}"),
        normal,
        format!("{} resources, {} recording", a.storm, a.storm),
        fields(serde_json::json!({})),
    );
    report.add(
        "storm",
        &format!("closing tick, {label}"),
        closing,
        format!("{ratio:.0}x the normal tick (target <= 3x)"),
        fields(serde_json::json!({"ratio_to_normal": ratio})),
    );
    report.add(
        "storm",
        &format!("worst of the next 10 ticks, {label}"),
        worst,
        format!(
            "after the closing tick the recorder counted {} windows open; it had closed {} 10 ticks later",
            s.open_after_closing_tick, s.closed_after
        ),
        fields(serde_json::json!({"open_after_closing_tick": s.open_after_closing_tick, "closed_after": s.closed_after})),
    );
}

fn main() {
    let a = Args::parse();
    assert!(a.reps > 0, "--reps must be at least 1");
    support::assert_peer_generator();
    let only = |p: &str| a.only.iter().any(|o| o == p);
    let mut size = if (a.windows, a.points) == (10_000, 500) {
        HistorySize::CLI_LIMITS
    } else {
        HistorySize::with(a.windows, a.points)
    };
    if let Some(r) = a.resources {
        size.resources = r;
    }
    if let Some(n) = a.recording {
        size.recording = n;
    }
    println!(
        "{}",
        serde_json::json!({
            "bench": "env",
            "sqlite": rusqlite::version(),
            "schema_version": Store::schema_version(),
            "time": Timestamp::now().to_string(),
            "num_cpu": std::thread::available_parallelism().map_or(0, |n| n.get()),
        })
    );
    let mut report = Report {
        size,
        reps: a.reps,
        rows: Vec::new(),
    };
    if only("sql") || only("plans") || only("reads") || only("cli") {
        let h = history::cached(size, progress);
        let build = h.built_in.map(|d| d.as_secs_f64()).or(h.build_seconds);
        println!(
            "{}",
            serde_json::json!({
                "bench": "history_build",
                "size": size.to_string(),
                "path": h.path.display().to_string(),
                "bytes": std::fs::metadata(&h.path).map_or(0, |m| m.len()),
                "build_seconds": build,
                "built_now": h.built_in.is_some(),
                "closed_window": h.picks.closed_window,
                "recording_window": h.picks.recording_window,
                "resource": h.picks.resource,
                "resource_windows": h.picks.resource_windows,
            })
        );
        if only("sql") || only("plans") {
            sql(&a, &h, &mut report, only("plans"));
        }
        if only("reads") {
            reads(&a, &h, &mut report);
        }
        if only("cli") {
            cli(&a, &h, &mut report);
        }
    }
    if only("storm") {
        storm(&a, &mut report, None);
        storm(&a, &mut report, Some(10_000));
    }
    if !report.rows.is_empty() {
        eprintln!("\n{size}; median of {} runs", a.reps);
        report.table();
    }
}
