//! What a process snapshot costs per tick (issue 20 part 3): the time of
//! `HostProcesses::snapshot` (read every process, keep the top 10 by CPU and
//! by memory), with the machine's own processes and with 1,000 `sleep`
//! children added. Target: ≤ 5 ms a snapshot.
//!
//! ```text
//! cargo run --release --example procbench
//! ```

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use incident_recorder::provider::process::{HostProcesses, ProcessLimits, ProcessProvider};

fn measure(label: &str, rounds: usize) {
    let host = HostProcesses::new("bench", ProcessLimits::default()).expect("process table");
    // The first snapshot reads every process's command line and owner once.
    let first = Instant::now();
    host.snapshot().expect("snapshot");
    let first = first.elapsed();
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        std::thread::sleep(Duration::from_millis(250));
        let t = Instant::now();
        let snap = host.snapshot().expect("snapshot");
        times.push(t.elapsed());
        assert!(snap.len() <= 20);
    }
    times.sort();
    let procs = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
            })
            .count()
        })
        .unwrap_or(0);
    println!(
        "{label}: {procs} processes; first snapshot {:.2} ms; then median {:.2} ms, p90 {:.2} ms, max {:.2} ms over {rounds}",
        ms(first),
        ms(times[rounds / 2]),
        ms(times[rounds * 9 / 10]),
        ms(times[rounds - 1]),
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    measure("this machine", 20);
    let mut children: Vec<Child> = (0..1000)
        .map(|_| {
            Command::new("sleep")
                .arg("600")
                .stdout(Stdio::null())
                .spawn()
                .expect("sleep")
        })
        .collect();
    measure("with 1,000 sleep children", 20);
    for c in &mut children {
        let _ = c.kill();
        let _ = c.wait();
    }
}
