//! The host metrics of `watch`, derived from node_exporter's series.
//!
//! A node scraped through node_exporter should answer the same rules as the
//! host `watch` samples itself (`cpu>90 for 1m`), so the same names and
//! units as [`HostProvider`](crate::provider::host::HostProvider) are
//! derived from node_exporter's (1.x) series:
//!
//! | name | from | as `HostProvider` |
//! |---|---|---|
//! | `cpu` | `node_cpu_seconds_total`: busy share of the growth over all cores and modes, busy = every mode but `idle` and `iowait` | `sysinfo`'s global usage, same split |
//! | `memory` | `(MemTotal - MemAvailable) / MemTotal` (`node_memory_*_bytes`) | the same formula |
//! | `swap` | `(SwapTotal - SwapFree) / SwapTotal`; absent without swap | the same |
//! | `disk` | the fullest file system, `(size - avail) / size` (`node_filesystem_*_bytes`), skipping read-only ones, ones with a device error, pseudo file systems (`tmpfs`, `proc`, `cgroup`...) and mounts under `/sys`, `/proc`, `/run` | `sysinfo`'s disks, which skip the same |
//! | `load1`, `load5` | `node_load1`, `node_load5` | the same `/proc/loadavg` |
//! | `net_rx_bytes_per_s`, `net_tx_bytes_per_s` | `node_network_{receive,transmit}_bytes_total`, every device but loopback | every interface but loopback |
//! | `disk_read_bytes_per_s`, `disk_write_bytes_per_s` | `node_disk_{read,written}_bytes_total` of physical devices: not `dm-*`, `md*` (stacked on others, whose bytes are already counted) nor `zram*`, `ram*`, `loop*` (memory, files) | the mounted devices |
//!
//! `cpu` and the rates are differences between two scrapes, so the first
//! scrape of a node has none of them, and neither has a scrape less than
//! [`MIN_RATE_INTERVAL`](super::MIN_RATE_INTERVAL) after the last one used.
//! A device or core whose counter went backwards (a reset, a device that
//! went away and came back) is left out of that sample's rate, never
//! reported as a spike.

use std::collections::HashMap;

use super::parse::Sample;
use crate::model::Metrics;

/// node_exporter's inputs of one resource in one scrape.
#[derive(Default)]
pub(super) struct NodeInputs {
    /// Per core: (all modes, idle + iowait), seconds.
    cpu: Vec<(String, f64, f64)>,
    mem_total: Option<f64>,
    mem_available: Option<f64>,
    swap_total: Option<f64>,
    swap_free: Option<f64>,
    /// Per (device, fstype, mountpoint): size, avail, read-only or failing.
    filesystems: HashMap<(String, String, String), FileSystem>,
    load1: Option<f64>,
    load5: Option<f64>,
    /// Per device: (received, sent) bytes.
    net: HashMap<String, (f64, f64)>,
    /// Per device: (read, written) bytes.
    disk: HashMap<String, (f64, f64)>,
}

#[derive(Default)]
struct FileSystem {
    size: Option<f64>,
    avail: Option<f64>,
    excluded: bool,
}

/// The counters of the last scrape used for rates, per resource.
#[derive(Default)]
pub(super) struct NodeMemory {
    at_s: f64,
    cpu: HashMap<String, (f64, f64)>,
    net: HashMap<String, (f64, f64)>,
    disk: HashMap<String, (f64, f64)>,
    valid: bool,
}

/// True for the series names [`NodeInputs::observe`] reads (cheap prefix test first).
pub(super) fn is_input(name: &str) -> bool {
    name.starts_with("node_")
        && matches!(
            name,
            "node_cpu_seconds_total"
                | "node_memory_MemTotal_bytes"
                | "node_memory_MemAvailable_bytes"
                | "node_memory_SwapTotal_bytes"
                | "node_memory_SwapFree_bytes"
                | "node_filesystem_size_bytes"
                | "node_filesystem_avail_bytes"
                | "node_filesystem_readonly"
                | "node_filesystem_device_error"
                | "node_load1"
                | "node_load5"
                | "node_network_receive_bytes_total"
                | "node_network_transmit_bytes_total"
                | "node_disk_read_bytes_total"
                | "node_disk_written_bytes_total"
        )
}

/// File system types that hold no user data (`sysinfo`'s list, which is what
/// `HostProvider` sees), plus `ramfs`, the other memory file system.
const PSEUDO_FS: &[&str] = &[
    "rootfs",
    "sysfs",
    "proc",
    "devtmpfs",
    "cgroup",
    "cgroup2",
    "pstore",
    "squashfs",
    "rpc_pipefs",
    "iso9660",
    "devpts",
    "hugetlbfs",
    "mqueue",
    "tmpfs",
    "ramfs",
    "cifs",
    "nfs",
    "nfs4",
    "autofs",
];

fn is_loopback(device: &str) -> bool {
    device == "lo" || device.starts_with("lo0") || device.starts_with("Loopback")
}

/// Block devices whose bytes are counted elsewhere or are not a disk's.
fn is_stacked_or_virtual(device: &str) -> bool {
    ["dm-", "md", "zram", "ram", "loop"]
        .iter()
        .any(|p| device.starts_with(p))
}

impl NodeInputs {
    /// Takes one sample whose name [`is_input`].
    pub(super) fn observe(&mut self, s: &Sample<'_, '_>) {
        let v = s.value;
        let label = |name: &str| s.label(name).unwrap_or("");
        match s.name {
            "node_cpu_seconds_total" => {
                let core = label("cpu");
                let idle = matches!(label("mode"), "idle" | "iowait");
                // node_exporter lists a core's modes together: look at the last one first.
                let entry = match self.cpu.iter().rposition(|c| c.0 == core) {
                    Some(i) => &mut self.cpu[i],
                    None => {
                        self.cpu.push((core.to_owned(), 0.0, 0.0));
                        self.cpu.last_mut().expect("just pushed")
                    }
                };
                entry.1 += v;
                if idle {
                    entry.2 += v;
                }
            }
            "node_memory_MemTotal_bytes" => self.mem_total = Some(v),
            "node_memory_MemAvailable_bytes" => self.mem_available = Some(v),
            "node_memory_SwapTotal_bytes" => self.swap_total = Some(v),
            "node_memory_SwapFree_bytes" => self.swap_free = Some(v),
            "node_load1" => self.load1 = Some(v),
            "node_load5" => self.load5 = Some(v),
            "node_filesystem_size_bytes"
            | "node_filesystem_avail_bytes"
            | "node_filesystem_readonly"
            | "node_filesystem_device_error" => {
                let key = (
                    label("device").to_owned(),
                    label("fstype").to_owned(),
                    label("mountpoint").to_owned(),
                );
                let fs = self.filesystems.entry(key).or_default();
                match s.name {
                    "node_filesystem_size_bytes" => fs.size = Some(v),
                    "node_filesystem_avail_bytes" => fs.avail = Some(v),
                    _ => fs.excluded |= v != 0.0,
                }
            }
            "node_network_receive_bytes_total" | "node_network_transmit_bytes_total" => {
                let device = label("device");
                if !is_loopback(device) {
                    let e = self.net.entry(device.to_owned()).or_default();
                    if s.name == "node_network_receive_bytes_total" {
                        e.0 = v;
                    } else {
                        e.1 = v;
                    }
                }
            }
            "node_disk_read_bytes_total" | "node_disk_written_bytes_total" => {
                let device = label("device");
                if !is_stacked_or_virtual(device) {
                    let e = self.disk.entry(device.to_owned()).or_default();
                    if s.name == "node_disk_read_bytes_total" {
                        e.0 = v;
                    } else {
                        e.1 = v;
                    }
                }
            }
            _ => {}
        }
    }

    /// Adds the derived metrics to `out` (replacing scraped series of the
    /// same name), using and updating `memory` for the rates. `at_s` is the
    /// scrape's time in seconds on a monotonic clock.
    pub(super) fn derive(self, memory: &mut NodeMemory, at_s: f64, out: &mut Metrics) {
        if let (Some(total), Some(avail)) = (self.mem_total, self.mem_available) {
            put(out, "memory", percent(total - avail, total));
        }
        if let (Some(total), Some(free)) = (self.swap_total, self.swap_free) {
            put(out, "swap", percent(total - free, total));
        }
        let fullest = self
            .filesystems
            .iter()
            .filter(|((_, fstype, mountpoint), fs)| {
                !fs.excluded && !PSEUDO_FS.contains(&fstype.as_str()) && real_mount(mountpoint)
            })
            .filter_map(|(_, fs)| percent(fs.size? - fs.avail?, fs.size?))
            .reduce(f64::max);
        put(out, "disk", fullest);
        put(out, "load1", self.load1);
        put(out, "load5", self.load5);

        let elapsed = at_s - memory.at_s;
        let has_counters = !self.cpu.is_empty() || !self.net.is_empty() || !self.disk.is_empty();
        if !has_counters {
            return;
        }
        if memory.valid && elapsed < super::MIN_RATE_INTERVAL.as_secs_f64() {
            return; // too soon: keep the older reading for the next scrape
        }
        let cpu: HashMap<String, (f64, f64)> = self
            .cpu
            .into_iter()
            .map(|(core, total, idle)| (core, (total, idle)))
            .collect();
        if memory.valid && elapsed > 0.0 {
            let (mut total, mut idle) = (0.0, 0.0);
            for (core, &(t1, i1)) in &cpu {
                if let Some(&(t0, i0)) = memory.cpu.get(core) {
                    let (dt, di) = (t1 - t0, i1 - i0);
                    if dt >= 0.0 && di >= 0.0 && di <= dt {
                        total += dt;
                        idle += di;
                    }
                }
            }
            if total > 0.0 {
                put(
                    out,
                    "cpu",
                    Some(((total - idle) * 100.0 / total).clamp(0.0, 100.0)),
                );
            }
            let (rx, tx) = growth(&memory.net, &self.net);
            put(out, "net_rx_bytes_per_s", rx.map(|b| b / elapsed));
            put(out, "net_tx_bytes_per_s", tx.map(|b| b / elapsed));
            let (read, written) = growth(&memory.disk, &self.disk);
            put(out, "disk_read_bytes_per_s", read.map(|b| b / elapsed));
            put(out, "disk_write_bytes_per_s", written.map(|b| b / elapsed));
        }
        *memory = NodeMemory {
            at_s,
            cpu,
            net: self.net,
            disk: self.disk,
            valid: true,
        };
    }

    /// The names [`derive`](Self::derive) gives once it has two scrapes.
    pub(super) fn derivable(&self) -> impl Iterator<Item = &'static str> {
        let has = |present: bool, names: &'static [&'static str]| {
            names.iter().copied().filter(move |_| present)
        };
        has(!self.cpu.is_empty(), &["cpu"])
            .chain(has(
                self.mem_total.is_some() && self.mem_available.is_some(),
                &["memory"],
            ))
            .chain(has(
                self.swap_total.is_some_and(|t| t > 0.0) && self.swap_free.is_some(),
                &["swap"],
            ))
            .chain(has(!self.filesystems.is_empty(), &["disk"]))
            .chain(has(self.load1.is_some(), &["load1", "load5"]))
            .chain(has(
                !self.net.is_empty(),
                &["net_rx_bytes_per_s", "net_tx_bytes_per_s"],
            ))
            .chain(has(
                !self.disk.is_empty(),
                &["disk_read_bytes_per_s", "disk_write_bytes_per_s"],
            ))
    }
}

fn real_mount(mountpoint: &str) -> bool {
    let under = |dir: &str| {
        mountpoint == dir
            || mountpoint
                .strip_prefix(dir)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    !(under("/sys") || under("/proc") || (under("/run") && !under("/run/media")))
}

fn put(out: &mut Metrics, name: &'static str, value: Option<f64>) {
    if let Some(v) = value.filter(|v| v.is_finite()) {
        out.insert(name, v);
    }
}

/// `part / total` in percent; `None` when `total` is not positive.
fn percent(part: f64, total: f64) -> Option<f64> {
    (total > 0.0).then(|| (part * 100.0 / total).clamp(0.0, 100.0))
}

/// Summed growth of two counters over the devices in both readings; a
/// counter that went backwards contributes nothing. `None` with no device
/// in common.
fn growth(
    before: &HashMap<String, (f64, f64)>,
    after: &HashMap<String, (f64, f64)>,
) -> (Option<f64>, Option<f64>) {
    let mut sum = (None, None);
    for (device, &(a1, b1)) in after {
        if let Some(&(a0, b0)) = before.get(device) {
            let add = |s: &mut Option<f64>, d: f64| *s = Some(s.unwrap_or(0.0) + d.max(0.0));
            add(&mut sum.0, a1 - a0);
            add(&mut sum.1, b1 - b0);
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::super::parse::parse;
    use super::*;

    fn inputs(text: &str) -> NodeInputs {
        let e = parse(text).unwrap();
        let mut n = NodeInputs::default();
        for s in e.samples().filter(|s| is_input(s.name)) {
            n.observe(&s);
        }
        n
    }

    fn node(cpu0: (f64, f64), cpu1: (f64, f64), rx: f64, read: f64) -> String {
        format!(
            "node_cpu_seconds_total{{cpu=\"0\",mode=\"idle\"}} {}\n\
             node_cpu_seconds_total{{cpu=\"0\",mode=\"iowait\"}} 0\n\
             node_cpu_seconds_total{{cpu=\"0\",mode=\"user\"}} {}\n\
             node_cpu_seconds_total{{cpu=\"1\",mode=\"idle\"}} {}\n\
             node_cpu_seconds_total{{cpu=\"1\",mode=\"user\"}} {}\n\
             node_network_receive_bytes_total{{device=\"eth0\"}} {rx}\n\
             node_network_receive_bytes_total{{device=\"lo\"}} {}\n\
             node_network_transmit_bytes_total{{device=\"eth0\"}} 0\n\
             node_disk_read_bytes_total{{device=\"sda\"}} {read}\n\
             node_disk_read_bytes_total{{device=\"dm-0\"}} {read}\n\
             node_disk_written_bytes_total{{device=\"sda\"}} 0\n",
            cpu0.0,
            cpu0.1,
            cpu1.0,
            cpu1.1,
            rx * 100.0
        )
    }

    #[test]
    fn cpu_and_rates_come_from_two_scrapes() {
        let mut memory = NodeMemory::default();
        let mut first = Metrics::new();
        inputs(&node((100.0, 100.0), (100.0, 100.0), 1000.0, 0.0)).derive(
            &mut memory,
            10.0,
            &mut first,
        );
        assert_eq!(first.get("cpu"), None, "one scrape has no rate");
        let mut second = Metrics::new();
        // Over 2 s: core 0 was busy 1.5 s of 2, core 1 0.5 s of 2.
        inputs(&node((100.5, 101.5), (101.5, 100.5), 3000.0, 4096.0)).derive(
            &mut memory,
            12.0,
            &mut second,
        );
        assert_eq!(second.get("cpu"), Some(50.0));
        // eth0 only (lo left out): 2000 bytes in 2 s.
        assert_eq!(second.get("net_rx_bytes_per_s"), Some(1000.0));
        assert_eq!(second.get("net_tx_bytes_per_s"), Some(0.0));
        // sda only (dm-0 sits on it).
        assert_eq!(second.get("disk_read_bytes_per_s"), Some(2048.0));
    }

    #[test]
    fn a_counter_going_back_is_no_spike() {
        let mut memory = NodeMemory::default();
        let mut m = Metrics::new();
        inputs(&node((100.0, 100.0), (100.0, 100.0), 5000.0, 100.0)).derive(
            &mut memory,
            0.0,
            &mut m,
        );
        let mut m = Metrics::new();
        // Core 1 and eth0 reset (a restart of the counter); core 0 goes on.
        inputs(&node((101.0, 101.0), (1.0, 1.0), 10.0, 100.0)).derive(&mut memory, 1.0, &mut m);
        assert_eq!(m.get("cpu"), Some(50.0));
        assert_eq!(m.get("net_rx_bytes_per_s"), Some(0.0));
        assert_eq!(m.get("disk_read_bytes_per_s"), Some(0.0));
    }

    #[test]
    fn too_close_a_scrape_keeps_the_older_reading() {
        let mut memory = NodeMemory::default();
        let mut m = Metrics::new();
        inputs(&node((0.0, 0.0), (0.0, 0.0), 0.0, 0.0)).derive(&mut memory, 0.0, &mut m);
        let mut m = Metrics::new();
        inputs(&node((0.0, 0.05), (0.0, 0.05), 50.0, 0.0)).derive(&mut memory, 0.05, &mut m);
        assert_eq!(m.get("cpu"), None, "50 ms is below the minimum interval");
        let mut m = Metrics::new();
        inputs(&node((0.5, 0.5), (0.5, 0.5), 1000.0, 0.0)).derive(&mut memory, 1.0, &mut m);
        assert_eq!(m.get("cpu"), Some(50.0));
        assert_eq!(
            m.get("net_rx_bytes_per_s"),
            Some(1000.0),
            "over the full second"
        );
    }

    #[test]
    fn memory_swap_load_and_the_fullest_real_file_system() {
        let text = "node_memory_MemTotal_bytes 1000\n\
                    node_memory_MemAvailable_bytes 250\n\
                    node_memory_SwapTotal_bytes 0\n\
                    node_memory_SwapFree_bytes 0\n\
                    node_load1 0.5\nnode_load5 1.25\n\
                    node_filesystem_avail_bytes{device=\"/dev/sda1\",fstype=\"ext4\",mountpoint=\"/\"} 60\n\
                    node_filesystem_avail_bytes{device=\"/dev/sdb\",fstype=\"xfs\",mountpoint=\"/data\"} 10\n\
                    node_filesystem_avail_bytes{device=\"/dev/sr0\",fstype=\"ext4\",mountpoint=\"/ro\"} 0\n\
                    node_filesystem_avail_bytes{device=\"tmpfs\",fstype=\"tmpfs\",mountpoint=\"/tmp\"} 0\n\
                    node_filesystem_avail_bytes{device=\"/dev/x\",fstype=\"ext4\",mountpoint=\"/run/x\"} 0\n\
                    node_filesystem_readonly{device=\"/dev/sr0\",fstype=\"ext4\",mountpoint=\"/ro\"} 1\n\
                    node_filesystem_readonly{device=\"/dev/sdb\",fstype=\"xfs\",mountpoint=\"/data\"} 0\n\
                    node_filesystem_size_bytes{device=\"/dev/sda1\",fstype=\"ext4\",mountpoint=\"/\"} 100\n\
                    node_filesystem_size_bytes{device=\"/dev/sdb\",fstype=\"xfs\",mountpoint=\"/data\"} 40\n\
                    node_filesystem_size_bytes{device=\"/dev/sr0\",fstype=\"ext4\",mountpoint=\"/ro\"} 100\n\
                    node_filesystem_size_bytes{device=\"tmpfs\",fstype=\"tmpfs\",mountpoint=\"/tmp\"} 100\n\
                    node_filesystem_size_bytes{device=\"/dev/x\",fstype=\"ext4\",mountpoint=\"/run/x\"} 100\n";
        let mut m = Metrics::new();
        let n = inputs(text);
        let names: Vec<&str> = n.derivable().collect();
        assert_eq!(names, ["memory", "disk", "load1", "load5"]);
        n.derive(&mut NodeMemory::default(), 0.0, &mut m);
        assert_eq!(m.get("memory"), Some(75.0));
        assert_eq!(m.get("swap"), None, "no swap, no swap metric");
        assert_eq!(m.get("disk"), Some(75.0), "/data: 30 of 40 used");
        assert_eq!(m.get("load1"), Some(0.5));
        assert_eq!(m.get("load5"), Some(1.25));
        assert!(
            !real_mount("/proc/fs") && real_mount("/processing") && real_mount("/run/media/usb")
        );
    }
}
