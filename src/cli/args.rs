//! The command line's grammar (clap derive). Only parsing lives here; each
//! command's behaviour is in its own module.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use incident_recorder::{RecorderConfig, TriggerType, WindowStatus};

use super::duration;
use super::rules::Rule;

/// A flight recorder for metrics: keeps the last minutes of every resource in
/// memory and records the minutes around each incident into SQLite.
#[derive(Debug, Parser)]
#[command(name = "incident-recorder", version, max_term_width = 100)]
#[command(
    after_help = "Start with `incident-recorder watch` (records this machine) or \
`incident-recorder demo` (a simulated incident), then `list`, `show ID` and `context ID`.\n\
Exit codes: 0 success, 1 error, 2 invalid command line, 3 finished but some input lines or \
windows were rejected (ingest, import, push)."
)]
pub struct Cli {
    /// The incident database.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        default_value = "incidents.db"
    )]
    pub db: PathBuf,

    /// Read `watch`'s settings (and `db`) from this TOML file; flags
    /// override it. Each key is a `watch` option with _ for - (max_points =
    /// 500, rules = ["cpu>90 for 1m"]), see `watch --print-config`. Other
    /// commands take only `db` from it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// More diagnostics on stderr (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Record this machine: sample it every interval, open windows when rules fire.
    Watch(Box<WatchArgs>),
    /// Record samples and triggers from JSON lines (a file, or - for stdin).
    #[command(long_about = INGEST_ABOUT)]
    Ingest(IngestArgs),
    /// Ask the recorder running on the database to open a window now.
    Trigger(TriggerArgs),
    /// List recorded windows, most recent first.
    List(ListArgs),
    /// Show one window: header, summary table and a sparkline per metric.
    Show(ShowArgs),
    /// Print a window as text for an AI prompt.
    Context(ContextArgs),
    /// Write windows to a file: native JSON, Pulse's incident_windows.json, or CSV (one row per value).
    Export(ExportArgs),
    /// Read windows from an export file; windows already present are skipped.
    Import(ImportArgs),
    /// Delete closed windows past the retention or beyond the window limit.
    Prune(PruneArgs),
    /// Counts and sizes of the database.
    Stats(JsonFlag),
    /// Record a simulated fleet with one CPU incident, then show it.
    Demo(DemoArgs),
    /// Push closed windows not yet pushed to a central PostgreSQL (the fleet's history).
    Push(PushArgs),
    /// Delete windows (by id, or a resource's closed windows before a time) with everything of theirs.
    #[command(long_about = DELETE_ABOUT)]
    Delete(DeleteArgs),
    /// Write a note on a window ("rebooted db-02 at 10:40"), with its time and author.
    Note(NoteArgs),
    /// Serve the pages (/, /w/ID) and the JSON queries of a database read-only, recording nothing.
    Serve(ServeArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
    /// Print the man page (roff), or write one page per command with --dir.
    Man(ManArgs),
}

/// `--json`, for commands that print a result.
#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// How often the commands that sample (`watch`, `demo`) take a sample.
#[derive(Debug, Args)]
pub struct SamplingOptions {
    /// Time between samples.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = duration::parse_positive)]
    pub interval: Duration,
}

/// How windows are recorded and kept; shared by the commands that record.
#[derive(Debug, Args)]
pub struct WindowOptions {
    /// History kept in memory and copied into a window when it opens.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = duration::parse_positive)]
    pub pre: Duration,
    /// How long a window records after its last trigger (or its last alert clears).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = duration::parse_positive)]
    pub post: Duration,
    /// A window closes as truncated at this many points.
    #[arg(long, value_name = "N", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_points: u32,
    /// Closed windows older than this are deleted.
    #[arg(long, value_name = "DURATION", default_value = "30d", value_parser = duration::parse_positive)]
    pub retention: Duration,
    /// At most this many closed windows are kept.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_windows: u32,
    /// Commit at most every DURATION instead of every tick (0s: every
    /// tick), for flash storage: fewer bytes written. Points wait in memory
    /// until then, so a crash loses at most this much; a clean stop
    /// commits them.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = duration::parse)]
    pub commit_interval: Duration,
}

impl WindowOptions {
    /// The recorder settings for database `db`; `interval` for the commands
    /// that sample (the recorder's default otherwise).
    pub fn config(&self, db: &std::path::Path, interval: Option<Duration>) -> RecorderConfig {
        RecorderConfig {
            sample_interval: interval.unwrap_or_default(),
            pre_incident_window: self.pre,
            post_incident_window: self.post,
            max_data_points_per_window: self.max_points as usize,
            max_windows: self.max_windows as usize,
            retention: self.retention,
            db_path: Some(db.to_path_buf()),
            commit_interval: self.commit_interval,
            ..RecorderConfig::default()
        }
    }
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub sampling: SamplingOptions,
    #[command(flatten)]
    pub window: WindowOptions,
    /// Open an alert window when METRIC compares to VALUE for DURATION, e.g.
    /// 'cpu>90 for 30s' (also <, >=, <=). Repeatable. Default: cpu>90 for 1m,
    /// memory>90 for 1m, disk>90.
    #[arg(long = "rule", value_name = "RULE", value_parser = clap::value_parser!(Rule))]
    pub rules: Vec<Rule>,
    /// Open a manual window at once.
    #[arg(long)]
    pub trigger_now: bool,
    /// Processes kept per snapshot by CPU and by memory (top K of each,
    /// at most 100; 0: no process snapshots). Windows of the host get the
    /// snapshots of their pre-incident minutes and one every 5 samples.
    #[arg(long, value_name = "K", default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub top_processes: u32,
    /// Leave command lines out of process snapshots (arguments can hold
    /// secrets).
    #[arg(long)]
    pub no_cmdline: bool,
    /// Stop after this long (default: until Ctrl-C or SIGTERM).
    #[arg(long = "for", value_name = "DURATION", value_parser = duration::parse_positive)]
    pub run_for: Option<Duration>,
    /// Also open `anomaly` windows when a metric stays far from its recent
    /// baseline (3 samples in a row above the robust score threshold).
    #[arg(long)]
    pub anomaly: bool,
    /// Robust score above which a sample is anomalous (median/MAD units).
    #[arg(long, value_name = "SCORE", default_value_t = 3.5)]
    pub anomaly_threshold: f64,
    /// At most this many new windows per resource in any 24 hours; more
    /// triggers are recorded as suppressed. 0 = unlimited.
    #[arg(long, value_name = "N", default_value_t = 24)]
    pub max_per_day: u32,
    /// Let the database's group read the history (mode 0640, never
    /// writable by it): members run list, show, context, stats and export.
    /// A new database is created so; an existing one of yours gets g+r.
    /// Put readers in the group (the service's: incident-recorder).
    #[arg(long)]
    pub group_readable: bool,
    /// Print the effective settings (flags, --config file, defaults) as a
    /// config file and exit; secrets are shown as ***.
    #[arg(long)]
    pub print_config: bool,
    #[command(flatten)]
    pub push: PushOptions,
    #[command(flatten)]
    pub scrape: super::scrape::ScrapeArgs,
    #[command(flatten)]
    pub listen: super::listen::ListenArgs,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    pub window: WindowOptions,
    /// JSON lines to read; - or nothing reads standard input.
    #[arg(value_name = "FILE|-")]
    pub input: Option<PathBuf>,
    /// At the end of the input, close the windows still recording of the
    /// resources this input has lines for (at the latest line time) instead
    /// of leaving them for the next ingest.
    #[arg(long)]
    pub finish: bool,
    /// How far one resource's lines may lag the latest line time in a merged
    /// feed: its windows close when its own samples pass their deadline, or
    /// when the latest line time passes it by more than this.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = duration::parse_positive)]
    pub max_lag: Duration,
    /// Longest accepted line, in bytes; a longer one is refused with its line
    /// number and skipped (reading stays bounded).
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20, value_parser = clap::value_parser!(u32).range(64..))]
    pub max_line_bytes: u32,
    #[command(flatten)]
    pub push: PushOptions,
    #[command(flatten)]
    pub output: JsonFlag,
}

/// `ingest --help`: the line format and the rules of time.
const INGEST_ABOUT: &str = "\
Record samples and triggers from JSON lines (a file, or - for stdin), one object per line:

  {\"type\":\"sample\",\"resource\":\"vm-101\",\"ts\":1795514400000,\"metrics\":{\"cpu\":93.5}}
  {\"type\":\"trigger\",\"resource\":\"vm-101\",\"trigger\":\"alert\",\"trigger_id\":\"cpu-high\",\"ts\":\"2026-11-24T10:00:30Z\"}
  {\"type\":\"resolve\",\"resource\":\"vm-101\",\"trigger_id\":\"cpu-high\"}
  {\"type\":\"stop\",\"resource\":\"vm-101\"}

Fields: `resource` (1-1024 bytes, no control characters) on every line; samples need `ts` and \
`metrics` (name -> finite number) and may have `name`, `kind` and `metadata` (a JSON object, \
at most 64 KiB); `trigger` is alert, anomaly, focus or manual (default manual); `trigger_id` \
names an alert so that `resolve` can clear it. Unknown fields are ignored.

Time: `ts` is Unix milliseconds (a number or a string of digits) or RFC 3339 \
(2026-11-24T10:00:00Z, 2026-11-24T11:00:00.250+01:00). A number below 10^11 looks like \
seconds and is refused. The recorder runs on the lines' time, not the wall clock: a line \
acts at its own `ts` (a trigger fires then, with the samples of its resource from the \
pre-incident window before it); lines without `ts` act at the latest time seen. A line more \
than 10 minutes ahead of the wall clock is refused, so one mistyped year cannot move time \
(and retention) forward. An alert window records until --post after its `resolve`.

Replays: ingesting the same lines again adds nothing. A sample at a time its resource \
already has recorded is a duplicate (skipped and counted) if its values are the same, and \
refused if they differ; a trigger already recorded is skipped. Windows still recording when \
the input ends stay recording, with the pre-incident buffers saved, for the next ingest to \
continue: any split of a file into chunks gives the same windows as one ingest. --finish \
closes them instead.

A bad line is reported on stderr as `line N: <why>` and skipped; the exit code is then 3.";

#[derive(Debug, Args)]
pub struct TriggerArgs {
    /// The resource to record (its id, as the recorder knows it).
    pub resource: String,
    /// The kind of trigger: manual, focus, alert or anomaly.
    #[arg(long = "type", value_name = "TYPE", default_value = "manual", value_parser = parse_trigger_type)]
    pub kind: TriggerType,
    /// The trigger's id (an alert name...).
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// How long to wait for the recorder to handle the request (0s: don't wait).
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = duration::parse)]
    pub wait: Duration,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only windows of this resource.
    #[arg(long, value_name = "ID")]
    pub resource: Option<String>,
    /// Only windows with this status (recording, complete, truncated, interrupted).
    #[arg(long, value_name = "STATUS", value_parser = parse_status)]
    pub status: Option<WindowStatus>,
    /// Only windows that were recording at some point in the last DURATION
    /// (e.g. 2h) or since an RFC 3339 time: ended then or later, or still
    /// recording.
    #[arg(long, value_name = "DURATION|TIME")]
    pub since: Option<String>,
    /// At most N windows (0: all).
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub limit: usize,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The window's id (from `list`).
    pub id: String,
    /// Only the metrics whose name matches this regular expression (summary
    /// table, sparklines and --json), e.g. 'cpu|load' or '^node_filesystem'.
    /// An invalid expression is a usage error (exit 2).
    #[arg(long, value_name = "REGEX", value_parser = parse_metric_regex)]
    pub metric: Option<regex::Regex>,
    /// Show the N metrics that moved most after the trigger (default 10;
    /// every match with --metric).
    #[arg(long, value_name = "N", conflicts_with = "all")]
    pub top: Option<usize>,
    /// Show every metric, ranked.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["id", "resource"]))]
pub struct ContextArgs {
    /// The window's id.
    pub id: Option<String>,
    /// The most recent window of this resource instead.
    #[arg(long, value_name = "ID")]
    pub resource: Option<String>,
    /// Most bytes of the digest (at least 1024): it shows fewer metrics,
    /// points, anomalies and notes until it fits, and its last line says
    /// what it left out.
    #[arg(long, value_name = "BYTES", default_value_t = incident_recorder::context::DEFAULT_MAX_BYTES,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(incident_recorder::context::MIN_MAX_BYTES as u64..))]
    pub max_bytes: usize,
}

/// `serve`: `watch --listen`'s read routes and token rules, on a database
/// opened read-only.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Serve HTTP on ADDR (IP:PORT, or just a port for loopback): the
    /// pages / and /w/ID, GET /windows and GET /windows/ID. Every request
    /// but /healthz needs `Authorization: Bearer TOKEN` (a browser: open
    /// /?token=TOKEN once, which sets a cookie), the token read from
    /// DB.listen-token (yours only) unless given otherwise.
    #[arg(long = "listen", value_name = "ADDR", default_value = "127.0.0.1:9465",
          value_parser = super::listen::parse_addr)]
    pub addr: std::net::SocketAddr,
    /// The bearer token (at least 16 bytes); prefer the environment variable.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "INCIDENT_RECORDER_LISTEN_TOKEN",
        hide_env_values = true
    )]
    pub listen_token: Option<String>,
    /// Read the bearer token from this file (its first line); it must not be
    /// readable by other users.
    #[arg(long, value_name = "FILE", conflicts_with = "listen_token")]
    pub listen_token_file: Option<PathBuf>,
    /// No token at all: every user of this host can read the history.
    /// Loopback addresses only.
    #[arg(long, conflicts_with_all = ["listen_token", "listen_token_file"])]
    pub listen_no_auth: bool,
}

impl ServeArgs {
    /// The same options as `watch --listen`'s, to check and prepare them
    /// the same way.
    pub fn listen_args(&self) -> super::listen::ListenArgs {
        super::listen::ListenArgs {
            addr: Some(self.addr),
            listen_token: self.listen_token.clone(),
            listen_token_file: self.listen_token_file.clone(),
            listen_no_auth: self.listen_no_auth,
            alert_resource_label: "instance".into(),
            alert_allowance: Duration::from_secs(120),
        }
    }
}

/// The two export file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// incident-recorder's own: every field, one window per line.
    Native,
    /// Pulse's incident_windows.json (`{"completed_windows": [...]}`).
    Pulse,
    /// Export only: one row per value (window, resource, ts, ts_ms, metric,
    /// value) with a header row, RFC 4180 quoting, for spreadsheets.
    Csv,
    /// Export only: one window (ID, or the latest of --resource) as a
    /// self-contained HTML page with its charts, to attach to a ticket;
    /// opens offline in any browser.
    Html,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// --format html: the window to export (or --resource: its latest).
    #[arg(value_name = "ID")]
    pub id: Option<String>,
    /// Write to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Native)]
    pub format: Format,
    /// Only windows of this resource.
    #[arg(long, value_name = "ID")]
    pub resource: Option<String>,
    /// Skip windows that cannot be read back (a damaged database) instead
    /// of stopping: each is named on stderr, and the exit code is 3.
    #[arg(long)]
    pub skip_damaged: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The export file; - reads standard input.
    #[arg(value_name = "FILE|-")]
    pub input: PathBuf,
    /// The file's format (default: recognized from its contents).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Delete closed windows that ended longer ago than this.
    #[arg(long, value_name = "DURATION", default_value = "30d", value_parser = duration::parse_positive)]
    pub retention: Duration,
    /// Keep at most this many closed windows.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_windows: u32,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub sampling: SamplingOptions,
    #[command(flatten)]
    pub window: WindowOptions,
    /// How many simulated resources.
    #[arg(long, value_name = "N", default_value_t = 36, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub resources: u32,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The central database: postgresql://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE[?sslmode=...].
    /// Keep the password in PGPASSWORD or ~/.pgpass rather than here (others can see
    /// command lines); it is never printed.
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// The name this database's windows are pushed under (default: the host name).
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// First ask the central database which of the windows pushed there it still has,
    /// and send the others again (after a restore from a backup, or rows deleted there).
    #[arg(long)]
    pub verify: bool,
    /// Try the windows the central database refused now, rather than when their retry
    /// is due (a minute after the first refusal, doubling to at most an hour).
    #[arg(long)]
    pub retry_refused: bool,
    #[command(flatten)]
    pub output: JsonFlag,
}

/// Continuous push to a central PostgreSQL, for the commands that record.
#[derive(Debug, Args)]
pub struct PushOptions {
    /// Also push each closed window to this central PostgreSQL (as `push --to`), a few
    /// seconds after it closes, from a background thread: sampling never waits for it.
    #[arg(long, value_name = "URL")]
    pub push_to: Option<String>,
    /// The node name for --push-to (default: the host name).
    #[arg(long, value_name = "NAME", requires = "push_to")]
    pub push_node: Option<String>,
    /// Read the password for --push-to from this file (its first line),
    /// rather than from the URL, PGPASSWORD or ~/.pgpass. The file must not
    /// be readable by other users.
    #[arg(long, value_name = "FILE", requires = "push_to")]
    pub push_password_file: Option<PathBuf>,
}

fn parse_trigger_type(s: &str) -> Result<TriggerType, String> {
    s.parse().map_err(|_| {
        format!(
            "unknown trigger type {s:?}; use one of {}",
            TriggerType::ALL
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

fn parse_status(s: &str) -> Result<WindowStatus, String> {
    s.parse().map_err(|_| {
        format!(
            "unknown status {s:?}; use one of {}",
            WindowStatus::ALL
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// `show --metric`: a regular expression, bounded in size (a hostile one
/// cannot make matching slow: the regex crate runs in linear time).
fn parse_metric_regex(s: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(s)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| {
            format!(
                "invalid regular expression: {}",
                e.to_string().replace('\n', " ")
            )
        })
}

/// `delete ID...` or `delete [--resource R] [--before T]`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").required(true).multiple(true).args(["ids", "resource", "before"]))]
pub struct DeleteArgs {
    /// The windows to delete, by id (from `list`). A window still recording
    /// is refused while a recorder runs on the database.
    #[arg(value_name = "ID", conflicts_with_all = ["resource", "before"])]
    pub ids: Vec<String>,
    /// Instead of ids: every closed window of this resource (with --before,
    /// only those that ended before then).
    #[arg(long, value_name = "ID")]
    pub resource: Option<String>,
    /// Instead of ids: the closed windows that ended before this time, a
    /// duration back from now (7d, 12h) or an RFC 3339 time
    /// (2026-11-24T10:00:00Z).
    #[arg(long, value_name = "DURATION|TIME")]
    pub before: Option<String>,
    #[command(flatten)]
    pub output: JsonFlag,
}

/// `delete --help`: what goes and what stays.
pub const DELETE_ABOUT: &str = "\
Delete windows with everything recorded under them: values, triggers, summary, anomalies, \
notes and push marks (the same deletion as retention's).

  incident-recorder delete iw-20261124100000-1f2e3d4c-1 iw-20261124100000-1f2e3d4c-2
  incident-recorder delete --resource vm-101 --before 7d

By id: all the windows named go, or none (an unknown id, or a window still recording \
while a recorder runs, is an error and deletes nothing). A window still recording can be \
deleted once no recorder runs on the database. --resource and --before select closed \
windows only. A window already pushed to a central PostgreSQL stays there. Exit code 1 on \
an error, 0 otherwise (also when the selection is empty).";

/// `note ID TEXT...`.
#[derive(Debug, Args)]
pub struct NoteArgs {
    /// The window's id (from `list`); recording or closed.
    pub id: String,
    /// The note: one line, at most 4096 bytes (several words are joined
    /// with spaces; put `--` before a text that starts with `-`).
    #[arg(value_name = "TEXT", required = true, num_args = 1..)]
    pub text: Vec<String>,
    /// Who writes it (default: your user name).
    #[arg(long, value_name = "NAME")]
    pub author: Option<String>,
    /// When it happened, RFC 3339 (default: now), e.g. for "rebooted at
    /// 10:40" written later.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    #[command(flatten)]
    pub output: JsonFlag,
}

/// `completions SHELL`.
#[derive(Debug, Args)]
#[command(after_help = "Install, e.g.:\n  \
incident-recorder completions bash > ~/.local/share/bash-completion/completions/incident-recorder\n  \
incident-recorder completions zsh > ~/.zfunc/_incident-recorder   (with fpath+=~/.zfunc)\n  \
incident-recorder completions fish > ~/.config/fish/completions/incident-recorder.fish")]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `man [--dir DIR]`.
#[derive(Debug, Args)]
#[command(
    after_help = "Read it with `incident-recorder man | man -l -`, or install it:\n  \
incident-recorder man --dir /tmp/ir-man && sudo install -m 644 /tmp/ir-man/*.1 /usr/local/share/man/man1/"
)]
pub struct ManArgs {
    /// Write one page per command into DIR (incident-recorder.1,
    /// incident-recorder-watch.1, ...; mode 0600 like every file this
    /// program writes) instead of printing the main page.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}
