//! Recorder settings, with the seed's defaults.

use std::path::PathBuf;
use std::time::Duration;

use crate::anomaly::AnomalyConfig;

/// How the recorder samples, how big windows get, and how long history is kept.
///
/// `Default` gives the seed's values. As in the seed, a zero in any numeric field
/// means "use the default", so a partly filled config is always usable:
///
/// ```
/// use incident_recorder::RecorderConfig;
/// use std::time::Duration;
///
/// let cfg = RecorderConfig { sample_interval: Duration::ZERO, ..Default::default() }.normalized();
/// assert_eq!(cfg.sample_interval, Duration::from_secs(5));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct RecorderConfig {
    /// Time between two ticks of the sampling thread. Default 5 s.
    pub sample_interval: Duration,
    /// How much history the per-resource buffer keeps, copied into a window when
    /// it opens. Default 5 min.
    pub pre_incident_window: Duration,
    /// How long a window keeps recording after its last trigger. Default 10 min.
    pub post_incident_window: Duration,
    /// A window closes as `truncated` when it holds this many points, buffered
    /// ones included. Default 500.
    pub max_data_points_per_window: usize,
    /// How many closed windows to keep; older ones are deleted. Default 100.
    pub max_windows: usize,
    /// Closed windows whose end is older than this are deleted. Default 24 h.
    pub retention: Duration,
    /// The database file; `None` keeps everything in memory (lost on drop).
    pub db_path: Option<PathBuf>,
    /// When true, a window with an unresolved `alert` trigger does not complete at
    /// its deadline; once its last alert resolves, the deadline becomes resolution
    /// time + `post_incident_window`. Default false (the seed's behaviour).
    pub hold_while_alert_active: bool,
    /// How long one provider call may take before the recorder gives up on
    /// it (the call is left to finish on its own thread, and a resource whose
    /// calls hang is skipped for a while). Default 0: the sample interval,
    /// and at least 1 s.
    pub provider_timeout: Duration,
    /// At most this many new windows per resource in any 24 hours (as
    /// Perfetto's `max_per_24_h`); a trigger over the limit is recorded as
    /// suppressed and opens nothing. Extending an open window is not limited.
    /// Default 0: unlimited.
    pub max_windows_per_resource_per_day: usize,
    /// Anomaly scoring of closed windows, and the optional detector that
    /// opens `anomaly` windows. See [`crate::anomaly`].
    pub anomaly: AnomalyConfig,
    /// How late a resource's samples, or a trigger, may come and still be
    /// taken on their own time. A window closes when its resource's samples
    /// pass its deadline, or when the recorder's time passes the deadline by
    /// more than this; buffers keep this much more than the pre-incident
    /// window, so a trigger dated up to this much in the past (an alert's
    /// start, notified later) still gets its pre-incident minutes. In a
    /// merged feed where one source lags the others by up to this much, its
    /// windows still get every sample up to their deadline. Default 0: one
    /// sample interval (a provider samples every resource at once).
    pub max_source_lag: Duration,
    /// At most this many resources are held (each with its buffer): samples
    /// and triggers of new resources past it are refused and counted, and a
    /// provider's listing is cut to it, until others are dropped (a resource
    /// no longer listed, or no longer sampled for the pre-incident window).
    /// Bounds the recorder's memory: each resource holds at most
    /// 2 × `max_data_points_per_window` samples. Default 100,000.
    pub max_resources: usize,
    /// How late the notification of an alert may come after the alert
    /// started and still get its whole pre-incident window: buffers keep
    /// the pre-incident window plus this (or plus `max_source_lag`, if
    /// that is longer). Alertmanager notifies `group_wait` (30 s by
    /// default) after an alert starts, later after a restart or an outage;
    /// [`IncidentRecorder::record_alert`](crate::IncidentRecorder::record_alert)
    /// takes an alert whose start is older than this as if it started this
    /// long ago (see there). `watch --listen` uses
    /// [`RecorderConfig::ALERTMANAGER_NOTIFICATION_ALLOWANCE`] (2 min) unless
    /// told otherwise. Default 0: none beyond `max_source_lag`, so a
    /// recorder nobody notifies late keeps buffers of the seed's size.
    pub notification_allowance: Duration,
    /// Commit at most every this long (on the recorder's clock) instead of
    /// at every tick or push, for flash storage: fewer, larger commits write
    /// fewer bytes. Points wait in memory until then (as they do while
    /// another program holds the write lock), so a crash loses at most this
    /// much of them; a clean stop ([`IncidentRecorder::stop`](crate::IncidentRecorder::stop),
    /// or drop) commits them, and so do
    /// [`sync`](crate::IncidentRecorder::sync), closing a window by
    /// `stop_recording`, a replayed sample that must be checked against the
    /// database, and a window that closes before another opens. Memory: the
    /// points of every open window over this long. Default 0: every tick.
    pub commit_interval: Duration,
}

impl RecorderConfig {
    /// The seed's sample interval.
    pub const DEFAULT_SAMPLE_INTERVAL: Duration = Duration::from_secs(5);
    /// The seed's pre-incident window.
    pub const DEFAULT_PRE_INCIDENT_WINDOW: Duration = Duration::from_secs(5 * 60);
    /// The seed's post-incident window.
    pub const DEFAULT_POST_INCIDENT_WINDOW: Duration = Duration::from_secs(10 * 60);
    /// The seed's per-window point limit.
    pub const DEFAULT_MAX_DATA_POINTS_PER_WINDOW: usize = 500;
    /// The seed's window count limit.
    pub const DEFAULT_MAX_WINDOWS: usize = 100;
    /// The seed's retention.
    pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);
    /// The [`notification_allowance`](RecorderConfig::notification_allowance)
    /// that covers Alertmanager's defaults (`group_wait` 30 s, a retry or
    /// two, a clock a little off): 2 min.
    pub const ALERTMANAGER_NOTIFICATION_ALLOWANCE: Duration = Duration::from_secs(120);
    /// Default of [`RecorderConfig::max_resources`].
    pub const DEFAULT_MAX_RESOURCES: usize = 100_000;

    /// A default config recording into the database file at `path`.
    pub fn with_db_path(path: impl Into<PathBuf>) -> RecorderConfig {
        RecorderConfig {
            db_path: Some(path.into()),
            ..RecorderConfig::default()
        }
    }

    /// This config with every zero replaced by its default. The recorder always
    /// runs on a normalized config.
    pub fn normalized(mut self) -> RecorderConfig {
        fn or(d: &mut Duration, default: Duration) {
            if d.is_zero() {
                *d = default;
            }
        }
        or(&mut self.sample_interval, Self::DEFAULT_SAMPLE_INTERVAL);
        or(
            &mut self.pre_incident_window,
            Self::DEFAULT_PRE_INCIDENT_WINDOW,
        );
        or(
            &mut self.post_incident_window,
            Self::DEFAULT_POST_INCIDENT_WINDOW,
        );
        or(&mut self.retention, Self::DEFAULT_RETENTION);
        let interval = self.sample_interval;
        or(&mut self.max_source_lag, interval);
        let timeout = self.sample_interval.max(Duration::from_secs(1));
        or(&mut self.provider_timeout, timeout);
        if self.max_data_points_per_window == 0 {
            self.max_data_points_per_window = Self::DEFAULT_MAX_DATA_POINTS_PER_WINDOW;
        }
        if self.max_windows == 0 {
            self.max_windows = Self::DEFAULT_MAX_WINDOWS;
        }
        if self.max_resources == 0 {
            self.max_resources = Self::DEFAULT_MAX_RESOURCES;
        }
        self.anomaly = self.anomaly.normalized();
        self
    }
}

impl Default for RecorderConfig {
    fn default() -> RecorderConfig {
        RecorderConfig {
            sample_interval: Self::DEFAULT_SAMPLE_INTERVAL,
            pre_incident_window: Self::DEFAULT_PRE_INCIDENT_WINDOW,
            post_incident_window: Self::DEFAULT_POST_INCIDENT_WINDOW,
            max_data_points_per_window: Self::DEFAULT_MAX_DATA_POINTS_PER_WINDOW,
            max_windows: Self::DEFAULT_MAX_WINDOWS,
            retention: Self::DEFAULT_RETENTION,
            db_path: None,
            hold_while_alert_active: false,
            provider_timeout: Duration::ZERO,
            max_windows_per_resource_per_day: 0,
            anomaly: AnomalyConfig::default(),
            max_source_lag: Duration::ZERO,
            max_resources: Self::DEFAULT_MAX_RESOURCES,
            notification_allowance: Duration::ZERO,
            commit_interval: Duration::ZERO,
        }
    }
}
