//! Helpers shared by the integration tests: a scripted provider, a manual
//! clock at a fixed epoch, recorders on temporary databases, and raw SQL
//! access to check what was stored.
#![allow(dead_code)] // each test binary uses a different subset

pub mod bin;
pub mod skip;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use incident_recorder::{
    IncidentRecorder, ManualClock, Metrics, MetricsProvider, ProviderError, RecorderConfig,
    Timestamp,
};

/// 2026-11-24T10:00:00Z, a round time so expected timestamps read easily.
pub const T0: i64 = 1_795_514_400_000;

pub fn t(secs: i64) -> Timestamp {
    Timestamp::from_unix_ms(T0 + secs * 1000)
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// How a scripted provider answers: (resource, call number) → metrics.
pub type Script = Box<dyn Fn(&str, usize) -> Result<Metrics, ProviderError> + Send + Sync>;

/// A provider whose resources return values from a function of
/// (resource, call number), counting every call.
pub struct Scripted {
    pub ids: Mutex<Vec<String>>,
    pub calls: Mutex<HashMap<String, usize>>,
    pub batch_calls: AtomicUsize,
    pub values: Script,
}

impl Scripted {
    pub fn new(
        ids: &[&str],
        values: impl Fn(&str, usize) -> Result<Metrics, ProviderError> + Send + Sync + 'static,
    ) -> Arc<Scripted> {
        Arc::new(Scripted {
            ids: Mutex::new(ids.iter().map(|s| s.to_string()).collect()),
            calls: Mutex::new(HashMap::new()),
            batch_calls: AtomicUsize::new(0),
            values: Box::new(values),
        })
    }

    /// cpu = 10 × call number, memory = 50.
    pub fn counting(ids: &[&str]) -> Arc<Scripted> {
        Scripted::new(ids, |_, n| {
            Ok(Metrics::new()
                .with("cpu", 10.0 * n as f64)
                .with("memory", 50.0))
        })
    }

    pub fn set_ids(&self, ids: &[&str]) {
        *self.ids.lock().unwrap() = ids.iter().map(|s| s.to_string()).collect();
    }

    pub fn calls(&self, id: &str) -> usize {
        self.calls.lock().unwrap().get(id).copied().unwrap_or(0)
    }
}

impl MetricsProvider for Scripted {
    fn current_metrics(&self, resource_id: &str) -> Result<Metrics, ProviderError> {
        let n = {
            let mut calls = self.calls.lock().unwrap();
            let c = calls.entry(resource_id.to_string()).or_insert(0);
            *c += 1;
            *c - 1
        };
        (self.values)(resource_id, n)
    }

    fn monitored_resource_ids(&self) -> Vec<String> {
        self.ids.lock().unwrap().clone()
    }

    fn current_metrics_batch(
        &self,
        resource_ids: &[String],
    ) -> Vec<(String, Result<Metrics, ProviderError>)> {
        self.batch_calls.fetch_add(1, Ordering::Relaxed);
        resource_ids
            .iter()
            .map(|id| (id.clone(), self.current_metrics(id)))
            .collect()
    }
}

/// A recorder, its clock and (for file databases) the temp dir holding it.
pub struct Rig {
    pub recorder: IncidentRecorder,
    pub clock: ManualClock,
    pub dir: Option<tempfile::TempDir>,
    pub config: RecorderConfig,
}

impl Rig {
    /// An in-memory recorder at T0 with `config`.
    pub fn memory(config: RecorderConfig) -> Rig {
        Rig::open(config, None)
    }

    /// A recorder on `incidents.db` in a fresh temp dir, at T0.
    pub fn file(mut config: RecorderConfig) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        config.db_path = Some(dir.path().join("incidents.db"));
        Rig::open(config, Some(dir))
    }

    fn open(config: RecorderConfig, dir: Option<tempfile::TempDir>) -> Rig {
        let clock = ManualClock::new(t(0));
        let recorder =
            IncidentRecorder::open_with_clock(config.clone(), Arc::new(clock.clone())).unwrap();
        Rig {
            recorder,
            clock,
            dir,
            config,
        }
    }

    /// Opens (or extends) a window, which must succeed.
    pub fn start<'a>(
        &self,
        resource: impl Into<incident_recorder::Resource<'a>>,
        trigger: incident_recorder::Trigger,
    ) -> incident_recorder::WindowId {
        self.recorder.start_recording(resource, trigger).unwrap()
    }

    pub fn db_path(&self) -> PathBuf {
        self.config.db_path.clone().expect("file rig")
    }

    /// Closes the recorder (dropping it) and opens a new one on the same file
    /// and clock.
    pub fn reopen(self) -> Rig {
        let Rig {
            recorder,
            clock,
            dir,
            config,
        } = self;
        drop(recorder);
        let recorder =
            IncidentRecorder::open_with_clock(config.clone(), Arc::new(clock.clone())).unwrap();
        Rig {
            recorder,
            clock,
            dir,
            config,
        }
    }

    /// Like [`Rig::reopen`], but as after a crash: the recorder dies with
    /// nothing saved (its last commit is what a kill leaves; what a clean
    /// stop saves, buffers and time, is deleted before the next open).
    pub fn crash_and_reopen(self) -> Rig {
        let Rig {
            recorder,
            clock,
            dir,
            config,
        } = self;
        drop(recorder);
        let path = config.db_path.clone().expect("file rig");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("DELETE FROM saved_buffers; DELETE FROM recorder_stops;")
            .unwrap();
        drop(conn);
        let recorder =
            IncidentRecorder::open_with_clock(config.clone(), Arc::new(clock.clone())).unwrap();
        assert!(!recorder.recovery().clean_stop);
        Rig {
            recorder,
            clock,
            dir,
            config,
        }
    }

    /// `n` ticks, advancing the clock by `step` after each.
    pub fn ticks(&self, n: usize, step: Duration) {
        for _ in 0..n {
            self.recorder.record_sample().unwrap();
            self.clock.advance(step);
        }
    }

    /// A raw read connection to the database, for checking rows with SQL.
    /// A connection of its own on the database, once the recorder's closing
    /// work is done (as any other program's connection would read it).
    pub fn sql(&self) -> rusqlite::Connection {
        self.recorder.sync().unwrap();
        sql(&self.db_path())
    }
}

pub fn sql(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

pub fn count(conn: &rusqlite::Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// A config with small, round numbers: 5 s ticks, 30 s before, 60 s after.
pub fn small_config() -> RecorderConfig {
    RecorderConfig {
        sample_interval: secs(5),
        pre_incident_window: secs(30),
        post_incident_window: secs(60),
        ..RecorderConfig::default()
    }
}

/// A private tmpfs of a fixed size, mounted for one test and unmounted after.
/// `None` (with a message saying why the test is skipped) where mounting is not
/// permitted, e.g. without root.
pub struct TmpMount {
    pub dir: tempfile::TempDir,
}

impl TmpMount {
    pub fn new(size: &str) -> Option<TmpMount> {
        let dir = tempfile::tempdir().ok()?;
        let status = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() => Some(TmpMount { dir }),
            _ => {
                eprintln!("skipped: cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN)");
                None
            }
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Remounts read-only (`ro = true`) or read-write. A read-only remount
    /// is refused while a file is open for writing, and r2d2 may still be
    /// closing a dropped pool's last connection on one of its threads for a
    /// moment, so it is retried for up to two seconds.
    pub fn remount(&self, ro: bool) {
        let opt = if ro { "remount,ro" } else { "remount,rw" };
        let attempt = || {
            std::process::Command::new("mount")
                .args(["-o", opt])
                .arg(self.dir.path())
                .stderr(std::process::Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        };
        let ok = (0..40).any(|_| {
            attempt() || {
                std::thread::sleep(std::time::Duration::from_millis(50));
                false
            }
        });
        assert!(ok, "mount -o {opt} failed");
    }
}

impl Drop for TmpMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Everything a database records, as sorted lines of text, without internal
/// row ids (windows are named by their public id, resources by their
/// external id, metrics by name): two databases with the same history give
/// the same dump whatever ids their rows got. Values are printed exactly
/// (`{:?}` of the f64).
pub fn dump(db: &Path) -> Vec<String> {
    let conn = sql(db);
    let mut out = Vec::new();
    let mut rows = |label: &str, query: &str| {
        let mut stmt = conn.prepare(query).unwrap();
        let n = stmt.column_count();
        let mut found: Vec<String> = stmt
            .query_map([], |r| {
                let cells: Vec<String> = (0..n)
                    .map(|i| match r.get_ref(i).unwrap() {
                        rusqlite::types::ValueRef::Null => "NULL".to_owned(),
                        rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                        rusqlite::types::ValueRef::Real(v) => format!("{v:?}"),
                        rusqlite::types::ValueRef::Text(t) => {
                            format!("{:?}", String::from_utf8_lossy(t))
                        }
                        rusqlite::types::ValueRef::Blob(b) => format!("blob {}", b.len()),
                    })
                    .collect();
                Ok(format!("{label} {}", cells.join(" | ")))
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        // Window ids carry their database's random tag: dumps of two
        // databases with the same history are compared without it.
        for line in &mut found {
            *line = untagged(line);
        }
        found.sort();
        out.extend(found);
    };
    rows("resource", "SELECT external_id, name, type FROM resources");
    rows("metric", "SELECT name FROM metrics");
    rows(
        "window",
        "SELECT w.public_id, r.external_id, w.trigger_type, w.trigger_id, w.start_ms, w.end_ms,
                w.deadline_ms, w.status, w.opened_ms, w.summary_points, w.duration_ms
         FROM windows w JOIN resources r ON r.id = w.resource_id",
    );
    rows(
        "trigger",
        "SELECT w.public_id, r.external_id, t.trigger_type, t.trigger_id, t.fired_ms,
                t.resolved_ms, t.opened_window, t.suppressed
         FROM window_triggers t JOIN resources r ON r.id = t.resource_id
         LEFT JOIN windows w ON w.id = t.window_id",
    );
    // Points by their metadata (their values are in the view), sealed or
    // still in the journal: the layout is not compared, only what it holds.
    rows(
        "point",
        "SELECT w.public_id, w.opened_ms + x.offset_ms, x.metadata
         FROM point_metadata x JOIN windows w ON w.id = x.window_id
         UNION ALL
         SELECT w.public_id, p.ts_ms, p.metadata
         FROM windows w JOIN recent_points p ON p.id >= w.recent_from AND p.window_id = w.id
         WHERE p.metadata IS NOT NULL",
    );
    rows(
        "value",
        "SELECT window_id, ts_ms, metric, value FROM incident_samples",
    );
    rows(
        "stats",
        "SELECT w.public_id, m.name, s.samples, s.peak, s.low, s.average, s.change,
                s.p50, s.p95, s.p99
         FROM window_metric_stats s JOIN windows w ON w.id = s.window_id
         JOIN metrics m ON m.id = s.metric_id",
    );
    rows(
        "anomaly",
        "SELECT w.public_id, m.name, a.ts_ms, a.value, a.score, a.description
         FROM window_anomalies a JOIN windows w ON w.id = a.window_id
         LEFT JOIN metrics m ON m.id = a.metric_id",
    );
    out
}

/// The lines of `a` and `b` that differ, for assertion messages.
pub fn diff(a: &[String], b: &[String]) -> String {
    let only = |x: &[String], y: &[String]| -> Vec<String> {
        x.iter()
            .filter(|l| !y.contains(l))
            .take(10)
            .cloned()
            .collect()
    };
    format!(
        "only in the first ({}):\n{}\nonly in the second ({}):\n{}",
        a.len(),
        only(a, b).join("\n"),
        b.len(),
        only(b, a).join("\n")
    )
}

/// `text` with the database tag of every generated window id
/// (`iw-<14 digits>-<8 hex digits>-<n>`) replaced by `TAG`.
pub fn untagged(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let tagged = b.len() >= i + 27
            && &b[i..i + 3] == b"iw-"
            && b[i + 3..i + 17].iter().all(u8::is_ascii_digit)
            && b[i + 17] == b'-'
            && b[i + 18..i + 26].iter().all(|c| c.is_ascii_hexdigit())
            && b[i + 26] == b'-';
        if tagged {
            out.push_str(&text[i..i + 18]);
            out.push_str("TAG");
            i += 26;
        } else {
            let c = text[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}
