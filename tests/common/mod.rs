//! Helpers shared by the integration tests: a scripted provider, a manual
//! clock at a fixed epoch, recorders on temporary databases, and raw SQL
//! access to check what was stored.
#![allow(dead_code)] // each test binary uses a different subset

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

    /// `n` ticks, advancing the clock by `step` after each.
    pub fn ticks(&self, n: usize, step: Duration) {
        for _ in 0..n {
            self.recorder.record_sample().unwrap();
            self.clock.advance(step);
        }
    }

    /// A raw read connection to the database, for checking rows with SQL.
    pub fn sql(&self) -> rusqlite::Connection {
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
