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

/// This machine's processes, through `sysinfo`.
///
/// CPU % and I/O rates are differences between two snapshots, so the first
/// snapshot reports CPU 0 and no rates.
pub struct HostProcesses {
    resource_id: String,
    limits: ProcessLimits,
    state: Mutex<HostState>,
}

struct HostState {
    system: System,
    users: Users,
    /// Time of the previous refresh, for rates.
    previous: Option<Instant>,
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
                previous: None,
            }),
        })
    }

    fn refresh_kind(&self) -> ProcessRefreshKind {
        let kind = ProcessRefreshKind::nothing()
            .without_tasks()
            .with_cpu()
            .with_memory()
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

    fn snapshot(&self) -> Result<Vec<ProcessSample>, ProviderError> {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let state = &mut *guard;
        state
            .system
            .refresh_processes_specifics(ProcessesToUpdate::All, true, self.refresh_kind());
        let now = Instant::now();
        let secs = state
            .previous
            .replace(now)
            .map(|p| now.duration_since(p).as_secs_f64())
            .filter(|s| *s > 0.0);
        let mut names: HashMap<sysinfo::Uid, String> = HashMap::new();
        let mut all = Vec::with_capacity(state.system.processes().len());
        let mut owners: HashMap<Pid, sysinfo::Uid> = HashMap::new();
        for (pid, p) in state.system.processes() {
            let disk = p.disk_usage();
            if let Some(uid) = p.user_id() {
                owners.insert(*pid, uid.clone());
            }
            all.push(ProcessSample {
                pid: pid.as_u32(),
                name: p.name().to_string_lossy().into_owned(),
                cmdline: None,
                user: None,
                cpu: f64::from(p.cpu_usage()),
                rss: p.memory(),
                read_bps: secs.map(|s| disk.read_bytes as f64 / s),
                write_bps: secs.map(|s| disk.written_bytes as f64 / s),
            });
        }
        let mut top = top_processes(all, self.limits.top);
        // Only the kept few get their command line and user name resolved.
        for s in &mut top {
            let pid = Pid::from_u32(s.pid);
            if self.limits.cmdline
                && let Some(p) = state.system.process(pid)
                && !p.cmd().is_empty()
            {
                let joined: Vec<String> = p
                    .cmd()
                    .iter()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect();
                s.cmdline = Some(joined.join(" "));
            }
            if let Some(uid) = owners.get(&pid) {
                let name = names.entry(uid.clone()).or_insert_with(|| {
                    match state.users.get_user_by_id(uid) {
                        Some(u) => u.name().to_owned(),
                        None => uid.to_string(),
                    }
                });
                s.user = Some(name.clone());
            }
        }
        Ok(top.into_iter().map(ProcessSample::bounded).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processes::{MAX_CMDLINE_BYTES, MAX_NAME_BYTES};

    #[test]
    fn the_host_snapshot_includes_this_process() {
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
