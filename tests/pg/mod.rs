//! A throwaway PostgreSQL cluster for the fleet tests, the push benchmark
//! and `examples/pushbench.rs`: `initdb` into a temporary directory as an
//! unprivileged user, `pg_ctl` on a free loopback port and a Unix socket in
//! that directory, stopped and deleted when dropped, and by a watchdog
//! process if this process dies without dropping it.
//!
//! PostgreSQL's binaries are looked for in `$IR_PG_BIN`, then the newest
//! `/usr/lib/postgresql/*/bin` (Debian), then `pg_config --bindir` and the
//! `PATH`. PostgreSQL refuses to run as root, so as root the cluster runs as
//! `$IR_PG_USER` (default `irtest`; created when missing, as `.ci/run`
//! does). When PostgreSQL is missing, [`Cluster::start`] says visibly why
//! and returns `None`, so the caller skips (`common/skip.rs`); with
//! `CI=true` it panics instead, so CI never skips silently.
#![allow(dead_code)] // each user takes a different subset

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The superuser, which connects over the socket without a password.
pub const SUPERUSER: &str = "postgres";
/// The role pushers log in as, over TCP with a password (scram-sha-256).
pub const PUSHER: &str = "pusher";
/// Its password; no test output may ever contain it.
pub const PASSWORD: &str = "pw-Quokka-7731";

/// How a cluster is set up.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Real durability (`fsync`, full page writes): for benchmarks. Tests
    /// turn it off, since a test cluster dies with the test anyway.
    pub durable: bool,
    /// TLS: the server certificate and key files (PEM), and `pg_hba` that
    /// refuses the pusher without TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// A running throwaway cluster.
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    run_as: Option<(u32, u32)>,
    pub port: u16,
    options: Options,
    watchdog: Option<Child>,
}

#[path = "../common/skip.rs"]
mod skip;

/// Why there is no cluster: skipped visibly outside CI, a failure in it.
fn unavailable(reason: &str) -> Option<Cluster> {
    skip::skip(&format!("PostgreSQL is needed: {reason}"));
    None
}

impl Cluster {
    /// A new cluster with a `pusher` role and a database `central` it owns.
    pub fn start(options: Options) -> Option<Cluster> {
        let Some(bin) = find_bin() else {
            return unavailable(
                "PostgreSQL's initdb was not found (apt-get install postgresql, or set IR_PG_BIN)",
            );
        };
        let run_as = if euid() == 0 {
            let user = std::env::var("IR_PG_USER").unwrap_or_else(|_| "irtest".into());
            // Created as `.ci/run` creates it when missing.
            match skip::test_user(&user) {
                Ok(ids) => Some(ids),
                Err(why) => {
                    return unavailable(&format!(
                        "running as root, PostgreSQL runs as the user {user:?}: {why}"
                    ));
                }
            }
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("ir-pg-")
            .tempdir()
            .expect("temporary directory")
            .keep();
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .expect("chown the cluster directory");
        }
        let mut cluster = Cluster {
            dir,
            bin,
            run_as,
            port: 0,
            options,
            watchdog: None,
        };
        cluster.init();
        cluster.watchdog = Some(cluster.spawn_watchdog());
        for attempt in 0.. {
            cluster.port = free_port();
            if cluster.try_start() {
                break;
            }
            assert!(attempt < 3, "PostgreSQL did not start: {}", cluster.log());
        }
        cluster.superuser_sql(
            "postgres",
            &format!("CREATE ROLE {PUSHER} LOGIN PASSWORD '{PASSWORD}'"),
        );
        cluster.superuser_sql(
            "postgres",
            &format!("CREATE DATABASE central OWNER {PUSHER}"),
        );
        Some(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The Unix socket directory.
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.run_as {
            c.uid(uid).gid(gid);
        }
        c.current_dir(&self.dir).stdin(Stdio::null());
        c
    }

    fn init(&self) {
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(self.data())
            .args([
                "-U",
                SUPERUSER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut conf = String::from(
            "listen_addresses = '127.0.0.1'\nshared_buffers = '64MB'\nmax_connections = 40\n",
        );
        if !self.options.durable {
            conf.push_str("fsync = off\nfull_page_writes = off\nsynchronous_commit = off\n");
        }
        if let Some((cert, key)) = &self.options.tls {
            for (from, to) in [(cert, "server.crt"), (key, "server.key")] {
                let dest = self.data().join(to);
                std::fs::copy(from, &dest).expect("copy TLS files");
                if let Some((uid, gid)) = self.run_as {
                    std::os::unix::fs::chown(&dest, Some(uid), Some(gid)).unwrap();
                }
                std::fs::set_permissions(
                    &dest,
                    std::os::unix::fs::PermissionsExt::from_mode(0o600),
                )
                .unwrap();
            }
            conf.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
            let hba = format!(
                "local all all trust\nhostnossl all {PUSHER} 127.0.0.1/32 reject\nhostssl all all 127.0.0.1/32 scram-sha-256\n"
            );
            std::fs::write(self.data().join("pg_hba.conf"), hba).unwrap();
        }
        let path = self.data().join("postgresql.auto.conf");
        let mut auto = std::fs::read_to_string(&path).unwrap_or_default();
        auto.push_str(&conf);
        std::fs::write(&path, auto).unwrap();
    }

    fn try_start(&self) -> bool {
        let status = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-w", "-t", "60", "-o"])
            .arg(format!("-p {} -k {}", self.port, self.dir.display()))
            .arg("start")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run pg_ctl start");
        status.success()
    }

    /// Stops the server (fast shutdown: connections are cut), as an
    /// operator or a crash of the central host would.
    pub fn stop(&self) {
        let status = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "fast", "-w", "-t", "60", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run pg_ctl stop");
        assert!(status.success(), "pg_ctl stop failed: {}", self.log());
    }

    /// Starts it again on the same port.
    pub fn restart(&self) {
        assert!(
            self.try_start(),
            "PostgreSQL did not restart: {}",
            self.log()
        );
    }

    /// The server log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// The pusher's URL over TCP, with the password in it.
    pub fn url(&self) -> String {
        format!(
            "postgresql://{PUSHER}:{PASSWORD}@127.0.0.1:{}/central",
            self.port
        )
    }

    /// The pusher's URL without a password.
    pub fn url_without_password(&self) -> String {
        format!("postgresql://{PUSHER}@127.0.0.1:{}/central", self.port)
    }

    /// A superuser connection over the socket (tests read and tamper with
    /// the central database through it).
    pub fn client(&self, db: &str) -> postgres::Client {
        let conn = format!(
            "host={} port={} user={SUPERUSER} dbname={db}",
            self.dir.display(),
            self.port
        );
        postgres::Client::connect(&conn, postgres::NoTls).expect("connect as superuser")
    }

    fn superuser_sql(&self, db: &str, sql: &str) {
        self.client(db).batch_execute(sql).expect(sql);
    }

    /// A process that kills the server and deletes the directory once this
    /// process is gone, for when it dies without running `Drop` (killed,
    /// or a cluster held in a static).
    fn spawn_watchdog(&self) -> Child {
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             if [ -f '{data}/postmaster.pid' ]; then kill -QUIT \"$(head -1 '{data}/postmaster.pid')\"; sleep 1; fi; \
             rm -rf '{dir}'",
            pid = std::process::id(),
            data = self.data().display(),
            dir = self.dir.display()
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the cluster watchdog")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

/// The directory holding `initdb` and `pg_ctl`.
fn find_bin() -> Option<PathBuf> {
    let has = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Some(d) = std::env::var_os("IR_PG_BIN") {
        return Some(PathBuf::from(d)).filter(|d| has(d));
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, d)| has(d))
        .collect();
    debian.sort();
    if let Some((_, d)) = debian.pop() {
        return Some(d);
    }
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    from_pg_config.filter(|d| has(d)).or_else(|| {
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .find(|d| has(d))
    })
}

fn euid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX)
}

/// `(uid, gid)` of `user` from /etc/passwd.
/// A loopback port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Polls `f` every 100 ms until it returns true or `limit` passes; false
/// if it never did. (Real processes, so the tests wait, with a bound.)
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
