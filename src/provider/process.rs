//! What was running: the [`ProcessProvider`] trait and this machine's
//! processes ([`HostProcesses`]).
//!
//! A `ProcessProvider` answers "which processes use the most now?" beside
//! the [`MetricsProvider`](super::MetricsProvider) that answers "what are the
//! host's totals?". The recorder takes one snapshot per tick when it has
//! one (see `recorder/processes.rs`) and writes them with the windows of the
//! provider's resource. An embedding program can supply its own
//! (containers, VMs). The data and its bounds are in [`crate::processes`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind, Users};

use crate::error::ProviderError;
pub use crate::processes::{ProcessLimits, ProcessSample, ProcessSnapshot, top_processes};

/// A source of process snapshots, polled by the recorder once per tick.
///
/// Called from the recorder's sampling thread outside its lock; an error
/// skips that tick's snapshot (the metrics are still recorded).
pub trait ProcessProvider: Send + Sync {
    /// The resource whose windows the snapshots belong to (for
    /// [`HostProcesses`], the host's name as its `HostProvider` reports it).
    fn resource_id(&self) -> &str;

    /// The top processes now, already bounded (see [`top_processes`]).
    fn snapshot(&self) -> Result<Vec<ProcessSample>, ProviderError>;
}

/// This machine's processes: on Linux every process's CPU and memory from
/// one read of `/proc/PID/stat` each, elsewhere through `sysinfo`; the kept
/// processes' I/O, owner and command line through `sysinfo`.
///
/// CPU % and I/O rates are differences between two snapshots, so the first
/// snapshot reports CPU 0 and no rates (and a process gets rates only from
/// the second snapshot in a row that keeps it).
pub struct HostProcesses {
    resource_id: String,
    limits: ProcessLimits,
    state: Mutex<HostState>,
}

struct HostState {
    system: System,
    users: Users,
    /// I/O counters (read, written) of the processes the previous snapshot
    /// kept, and when they were read: for rates.
    io: HashMap<u32, (u64, u64, Instant)>,
    /// CPU ticks of every process at the previous `/proc` pass.
    ticks: linux::Ticks,
}

impl std::fmt::Debug for HostProcesses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostProcesses")
            .field("resource_id", &self.resource_id)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl HostProcesses {
    /// Snapshots of this host's processes, attached to `resource_id`'s
    /// windows (`limits.top` clamped to 1..=[`MAX_TOP`](crate::processes::MAX_TOP)).
    pub fn new(
        resource_id: impl Into<String>,
        limits: ProcessLimits,
    ) -> Result<HostProcesses, ProviderError> {
        let err = |what: &'static str| {
            move |e: sysinfo::Error| ProviderError::with_source(format!("cannot read {what}"), e)
        };
        Ok(HostProcesses {
            resource_id: resource_id.into(),
            limits,
            state: Mutex::new(HostState {
                system: System::new().map_err(err("the process table"))?,
                users: Users::new_with_refreshed_list().map_err(err("the user list"))?,
                io: HashMap::new(),
                ticks: linux::Ticks::default(),
            }),
        })
    }

    /// The first pass through `sysinfo` (where `/proc` cannot be read).
    fn read_all_sysinfo(system: &mut System) -> Vec<ProcessSample> {
        system.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing()
                .without_tasks()
                .with_cpu()
                .with_memory(),
        );
        system
            .processes()
            .iter()
            .map(|(pid, p)| ProcessSample {
                pid: pid.as_u32(),
                name: p.name().to_string_lossy().into_owned(),
                cmdline: None,
                user: None,
                cpu: f64::from(p.cpu_usage()),
                rss: p.memory(),
                read_bps: None,
                write_bps: None,
            })
            .collect()
    }

    /// What the second pass reads, for the kept processes only: I/O
    /// counters, owner, command line.
    fn detail_kind(&self) -> ProcessRefreshKind {
        let kind = ProcessRefreshKind::nothing()
            .without_tasks()
            .with_disk_usage()
            .with_user(UpdateKind::OnlyIfNotSet);
        if self.limits.cmdline {
            kind.with_cmd(UpdateKind::OnlyIfNotSet)
        } else {
            kind
        }
    }
}

impl ProcessProvider for HostProcesses {
    fn resource_id(&self) -> &str {
        &self.resource_id
    }

    /// Two passes, so the cost per process stays one small read: CPU and
    /// memory of every process, then I/O counters, owner and command line
    /// of the kept ones only. I/O rates are the difference of a kept
    /// process's counters from the previous snapshot that kept it (none for
    /// one that was not kept then).
    fn snapshot(&self) -> Result<Vec<ProcessSample>, ProviderError> {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let state = &mut *guard;
        let all = match linux::read_all(&mut state.ticks) {
            Some(all) => all,
            None => Self::read_all_sysinfo(&mut state.system),
        };
        let mut top = top_processes(all, self.limits.top);
        let pids: Vec<Pid> = top.iter().map(|s| Pid::from_u32(s.pid)).collect();
        state.system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&pids),
            false,
            self.detail_kind(),
        );
        let now = Instant::now();
        let mut names: HashMap<sysinfo::Uid, String> = HashMap::new();
        let mut io = HashMap::with_capacity(top.len());
        for s in &mut top {
            let Some(p) = state.system.process(Pid::from_u32(s.pid)) else {
                continue;
            };
            let disk = p.disk_usage();
            let totals = (disk.total_read_bytes, disk.total_written_bytes);
            if let Some(&(r, w, at)) = state.io.get(&s.pid) {
                let secs = now.duration_since(at).as_secs_f64();
                if secs > 0.0 && totals.0 >= r && totals.1 >= w {
                    s.read_bps = Some((totals.0 - r) as f64 / secs);
                    s.write_bps = Some((totals.1 - w) as f64 / secs);
                }
            }
            io.insert(s.pid, (totals.0, totals.1, now));
            if self.limits.cmdline && !p.cmd().is_empty() {
                let joined: Vec<String> = p
                    .cmd()
                    .iter()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect();
                s.cmdline = Some(joined.join(" "));
            }
            if let Some(uid) = p.user_id() {
                let name = names.entry(uid.clone()).or_insert_with(|| {
                    match state.users.get_user_by_id(uid) {
                        Some(u) => u.name().to_owned(),
                        None => uid.to_string(),
                    }
                });
                s.user = Some(name.clone());
            }
        }
        state.io = io;
        Ok(top.into_iter().map(ProcessSample::bounded).collect())
    }
}

/// The first pass on Linux: one read of `/proc/PID/stat` per process (CPU
/// ticks, resident pages, name), about a third of `sysinfo`'s cost.
mod linux {
    use std::collections::HashMap;
    use std::io::Read;
    use std::time::Instant;

    use crate::processes::ProcessSample;

    /// CPU ticks (user + system) per pid, and when they were read.
    #[derive(Default)]
    pub(super) struct Ticks {
        by_pid: HashMap<u32, u64>,
        at: Option<Instant>,
    }

    /// Every process's name, CPU % since the previous pass and resident
    /// bytes; `None` where `/proc` cannot be read (not Linux).
    pub(super) fn read_all(ticks: &mut Ticks) -> Option<Vec<ProcessSample>> {
        let dir = std::fs::read_dir("/proc").ok()?;
        // SAFETY: sysconf only reads a configuration value.
        let (hz, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        let (hz, page) = (hz.max(1) as f64, page.max(1) as u64);
        let now = Instant::now();
        let secs = ticks.at.map(|t| now.duration_since(t).as_secs_f64());
        let mut by_pid = HashMap::with_capacity(ticks.by_pid.len());
        let mut out = Vec::new();
        let mut buf = String::with_capacity(512);
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            buf.clear();
            let Ok(mut f) = std::fs::File::open(format!("/proc/{pid}/stat")) else {
                continue;
            };
            if f.read_to_string(&mut buf).is_err() {
                continue;
            }
            let Some((name, rest)) = buf.split_once(" (").and_then(|(_, r)| r.rsplit_once(") "))
            else {
                continue;
            };
            // After the name: state is field 3; utime 14, stime 15, rss 24.
            let f: Vec<&str> = rest.split(' ').collect();
            let num = |i: usize| f.get(i - 3).and_then(|v| v.parse::<u64>().ok());
            let (Some(ut), Some(st), Some(rss)) = (num(14), num(15), num(24)) else {
                continue;
            };
            let total = ut + st;
            by_pid.insert(pid, total);
            let cpu = match (secs, ticks.by_pid.get(&pid)) {
                (Some(s), Some(&before)) if s > 0.0 && total >= before => {
                    (total - before) as f64 / hz / s * 100.0
                }
                _ => 0.0,
            };
            out.push(ProcessSample {
                pid,
                name: name.to_owned(),
                cmdline: None,
                user: None,
                cpu,
                rss: rss * page,
                read_bps: None,
                write_bps: None,
            });
        }
        ticks.by_pid = by_pid;
        ticks.at = Some(now);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processes::{MAX_CMDLINE_BYTES, MAX_NAME_BYTES};

    #[test]
    fn a_host_snapshot_is_bounded_and_not_empty() {
        let host = HostProcesses::new(
            "h",
            ProcessLimits {
                top: 100,
                cmdline: true,
            },
        )
        .unwrap();
        let snap = host.snapshot().unwrap();
        assert!(snap.len() <= 200);
        // This test process is not necessarily in the top, but the list is
        // never empty on a live machine and every row is bounded.
        assert!(!snap.is_empty());
        assert!(snap.iter().all(|s| {
            s.name.len() <= MAX_NAME_BYTES
                && s.cmdline
                    .as_ref()
                    .is_none_or(|c| c.len() <= MAX_CMDLINE_BYTES)
        }));
    }
}
