//! `watch --listen`: the library's HTTP listener on the recorder `watch` runs.
//!
//! Only options here; the listener itself (Alertmanager's webhook, triggers,
//! queries, `/metrics`) is [`incident_recorder::listen`], so embedders get
//! the same one. `watch` starts it after the recorder opens and stops it
//! before the recorder stops, so no trigger arrives while pending samples
//! are saved.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use clap::Args;
use incident_recorder::listen::{ListenConfig, Listener};
use incident_recorder::{IncidentRecorder, RecorderConfig};

use super::error::Result;

/// The listener options of `watch`.
#[derive(Debug, Args)]
#[command(next_help_heading = "HTTP listener (Alertmanager, triggers, queries)")]
pub struct ListenArgs {
    /// Serve HTTP on ADDR (127.0.0.1:9465, or just a port for loopback):
    /// POST /alertmanager (Alertmanager's webhook: a firing alert opens or
    /// extends an `alert` window on the resource its instance label names,
    /// at startsAt; resolved resolves it at endsAt), POST /trigger
    /// ({"resource","type","id"}), GET /windows and GET /windows/ID (the
    /// JSON of list --json and show --json), GET /metrics (the recorder's
    /// health, Prometheus format), GET /healthz. Off by default; an address
    /// other than loopback needs --listen-token.
    #[arg(long = "listen", value_name = "ADDR", value_parser = parse_addr)]
    pub addr: Option<SocketAddr>,
    /// Require `Authorization: Bearer TOKEN` on every request but /healthz
    /// (Alertmanager: http_config.authorization.credentials). Prefer the
    /// environment variable: the command line is visible to other users.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "INCIDENT_RECORDER_LISTEN_TOKEN",
        hide_env_values = true,
        requires = "addr"
    )]
    pub listen_token: Option<String>,
    /// The alert label that names the resource (matched against resource
    /// ids: a --scrape target's host:port or NAME, this host's name).
    #[arg(
        long,
        value_name = "LABEL",
        default_value = "instance",
        requires = "addr"
    )]
    pub alert_resource_label: String,
    /// How late Alertmanager's notification of an alert may come after its
    /// startsAt and still get the whole --pre before it: buffers keep --pre
    /// plus this. The default covers Alertmanager's group_wait (30s) with
    /// room for retries; raise it to your group_wait (or group_interval)
    /// plus a margin. An alert that started earlier still gets a window,
    /// with what the buffer holds. Buffers never hold more than 2 ×
    /// --max-points samples, whatever this says.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "2m",
        value_parser = super::duration::parse,
        requires = "addr"
    )]
    pub alert_allowance: std::time::Duration,
}

fn parse_addr(s: &str) -> std::result::Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    if let Some(port) = s.strip_prefix("localhost:") {
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("invalid port in {s:?}"))?;
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    s.parse().map_err(|_| {
        format!("invalid address {s:?}: write IP:PORT (127.0.0.1:9465, [::1]:9465, 0.0.0.0:9465) or a port")
    })
}

/// Sets what the listener needs of the recorder: with `--listen`, buffers
/// long enough for late notifications (`--alert-allowance`).
pub fn configure(a: &ListenArgs, config: &mut RecorderConfig) {
    if a.addr.is_some() {
        config.notification_allowance = a.alert_allowance;
    }
}

/// Starts the listener if `--listen` was given.
pub fn start(a: &ListenArgs, recorder: &Arc<IncidentRecorder>) -> Result<Option<Listener>> {
    let Some(addr) = a.addr else { return Ok(None) };
    let config = ListenConfig {
        token: a.listen_token.clone(),
        alert_resource_label: a.alert_resource_label.clone(),
        ..ListenConfig::new(addr)
    };
    Ok(Some(Listener::start(Arc::clone(recorder), config)?))
}

/// The line `watch` prints once listening.
pub fn banner(l: &Listener) -> String {
    format!(
        "listening on http://{}: POST /alertmanager, POST /trigger, GET /windows, GET /metrics, GET /healthz",
        l.local_addr()
    )
}

/// True for the trigger ids the listener gives Alertmanager's alerts.
pub fn is_alertmanager_id(id: &str) -> bool {
    incident_recorder::listen::is_alertmanager_id(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_options_need_listen() {
        use clap::Parser;
        #[derive(Debug, Parser)]
        struct Cli {
            #[command(flatten)]
            listen: ListenArgs,
        }
        for args in [
            vec!["x", "--listen-token", "t"],
            vec!["x", "--alert-resource-label", "host"],
            vec!["x", "--alert-allowance", "5m"],
        ] {
            let err = Cli::try_parse_from(&args).unwrap_err().to_string();
            assert!(err.contains("--listen <ADDR>"), "{args:?}: {err}");
        }
        let cli = Cli::try_parse_from(["x", "--listen", "9465"]).unwrap();
        assert_eq!(cli.listen.alert_resource_label, "instance");
        assert_eq!(
            cli.listen.alert_allowance,
            RecorderConfig::ALERTMANAGER_NOTIFICATION_ALLOWANCE
        );
        let mut config = RecorderConfig::default();
        configure(&cli.listen, &mut config);
        assert_eq!(
            config.notification_allowance,
            RecorderConfig::ALERTMANAGER_NOTIFICATION_ALLOWANCE
        );
    }

    #[test]
    fn addresses_parse_and_a_port_means_loopback() {
        assert_eq!(parse_addr("9465").unwrap().to_string(), "127.0.0.1:9465");
        assert_eq!(
            parse_addr("localhost:1").unwrap().to_string(),
            "127.0.0.1:1"
        );
        assert_eq!(parse_addr("[::1]:2").unwrap().to_string(), "[::1]:2");
        assert!(
            parse_addr("example.org:80")
                .unwrap_err()
                .contains("IP:PORT")
        );
    }
}
