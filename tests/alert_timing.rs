//! Alertmanager alerts that come late, from a clock that is ahead, out of
//! order, or while another program holds the database: through the
//! library's listener (`POST /alertmanager`) on a recorder with a scripted
//! provider and a manual clock, so every time is exact. The same cases
//! through the real binary and a real Alertmanager are in
//! `tests/alertmanager.rs`.

// `common` and `real` each include common/skip.rs (its skip list is per module).
#[allow(clippy::duplicate_mod)]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Scripted, secs, t};
use incident_recorder::listen::{ListenAuth, ListenConfig, Listener};
use incident_recorder::{
    Clock, IncidentRecorder, IncidentWindow, ManualClock, RecorderConfig, Timestamp, WindowFilter,
    WindowStatus,
};
use serde_json::{Value, json};

mod real;
mod sqlite_lock;

use sqlite_lock::LockHolder;

const PRE: u64 = 30;
const POST: u64 = 60;
const ALLOWANCE: u64 = 120;

struct Rig {
    recorder: Arc<IncidentRecorder>,
    clock: ManualClock,
    listener: Listener,
    _dir: Option<tempfile::TempDir>,
}

/// `watch --listen`'s settings, small: 5 s ticks, --pre 30s, --post 60s,
/// alerts held while they fire, a 2 min notification allowance.
fn config() -> RecorderConfig {
    RecorderConfig {
        sample_interval: secs(5),
        pre_incident_window: secs(PRE),
        post_incident_window: secs(POST),
        hold_while_alert_active: true,
        notification_allowance: secs(ALLOWANCE),
        max_data_points_per_window: 500,
        ..RecorderConfig::default()
    }
}

fn rig_on(config: RecorderConfig, dir: Option<tempfile::TempDir>) -> Rig {
    let clock = ManualClock::new(t(0));
    let recorder =
        Arc::new(IncidentRecorder::open_with_clock(config, Arc::new(clock.clone())).unwrap());
    recorder.set_metrics_provider(Scripted::counting(&["db:9100"]));
    let listener = Listener::start(
        Arc::clone(&recorder),
        ListenConfig::new("127.0.0.1:0".parse().unwrap(), ListenAuth::Unauthenticated),
    )
    .unwrap();
    Rig {
        recorder,
        clock,
        listener,
        _dir: dir,
    }
}

fn rig() -> Rig {
    rig_on(config(), None)
}

impl Rig {
    /// One tick at the clock's time, then 5 s on: `n` ticks end with the
    /// clock 5 s past the last sample.
    fn ticks(&self, n: usize) {
        for _ in 0..n {
            self.recorder.record_sample().unwrap();
            self.clock.advance(secs(5));
        }
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Posts a webhook notification: (status, Retry-After, body).
    fn post(&self, body: &Value) -> (u16, Option<String>, Value) {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .proxy(None)
            .build()
            .new_agent();
        let mut r = agent
            .post(&format!(
                "http://{}/alertmanager",
                self.listener.local_addr()
            ))
            .send(body.to_string().as_bytes())
            .unwrap();
        let status = r.status().as_u16();
        let retry = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = r.body_mut().read_to_string().unwrap();
        (status, retry, serde_json::from_str(&text).unwrap())
    }

    fn window(&self, answer: &Value) -> IncidentWindow {
        let id = answer["alerts"][0]["window"].as_str().expect("a window");
        // Through the recorder: its reads wait for the closes it decided.
        self.recorder
            .window(&incident_recorder::WindowId::from(id))
            .unwrap()
            .expect("stored")
    }

    fn windows(&self) -> Vec<IncidentWindow> {
        self.recorder
            .store()
            .windows(&WindowFilter {
                with_points: true,
                ..WindowFilter::default()
            })
            .unwrap()
    }
}

fn rfc3339(ts: Timestamp) -> String {
    serde_json::to_value(ts)
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

/// A notification (payload version 4) with one alert `HighCPU` on `db:9100`.
fn notification(status: &str, starts: &str, ends: Option<&str>) -> Value {
    json!({
        "version": "4",
        "status": status,
        "receiver": "recorder",
        "groupKey": "{}:{alertname=\"HighCPU\"}",
        "alerts": [{
            "status": status,
            "labels": {"alertname": "HighCPU", "instance": "db:9100"},
            "annotations": {},
            "startsAt": starts,
            "endsAt": ends.unwrap_or("0001-01-01T00:00:00Z"),
            "fingerprint": "00000000000a1e27",
        }],
    })
}

fn firing(starts: Timestamp) -> Value {
    notification("firing", &rfc3339(starts), None)
}

fn resolved(starts: Timestamp, ends: Timestamp) -> Value {
    notification("resolved", &rfc3339(starts), Some(&rfc3339(ends)))
}

fn times(w: &IncidentWindow) -> Vec<Timestamp> {
    w.data_points.iter().map(|p| p.timestamp).collect()
}

fn result(answer: &Value) -> &str {
    answer["alerts"][0]["result"].as_str().unwrap()
}

/// Defect 1: Alertmanager notifies `group_wait` after `startsAt` (or much
/// later after an outage). A notification more than --post late opened a
/// window and closed it at once as complete while the alert still fired;
/// the buffer held only --pre + one interval, so the window lacked most of
/// its pre-incident part.
#[test]
fn a_notification_later_than_post_opens_a_held_window_with_the_whole_pre_part() {
    let r = rig();
    r.ticks(41); // samples t(0)..t(200); the clock at t(205)
    // The alert started 105 s before the notification (more than --post).
    let starts = t(100);
    let (status, _, answer) = r.post(&firing(starts));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(result(&answer), "opened", "{answer}");
    assert!(answer["alerts"][0].get("adjusted").is_none(), "{answer}");
    let w = r.window(&answer);
    assert_eq!(w.status, WindowStatus::Recording, "held while it fires");
    assert_eq!(w.triggers[0].fired_at, starts);
    // The whole --pre before startsAt (the allowance kept it buffered), and
    // every sample since.
    let expected: Vec<Timestamp> = (0..=25).map(|i| t(75 + 5 * i)).collect();
    assert_eq!(times(&w), expected);
    assert_eq!(w.start_time, t(75));

    // Still firing well past its deadline (startsAt + --post): recording.
    r.ticks(30); // to t(355)
    let w = r.window(&answer);
    assert_eq!(w.status, WindowStatus::Recording);
    assert_eq!(w.data_points.last().unwrap().timestamp, t(350));

    // Resolved: --post after endsAt, then complete.
    let ends = t(340);
    let (_, _, done) = r.post(&resolved(starts, ends));
    assert_eq!(result(&done), "resolved", "{done}");
    r.ticks(14); // to t(425): past endsAt + 60 s + one interval
    let w = r.window(&answer);
    assert_eq!(w.status, WindowStatus::Complete);
    assert_eq!(w.end_time, Some(ends.saturating_add(secs(POST))));
    assert_eq!(w.data_points.last().unwrap().timestamp, t(400));
    assert_eq!(r.windows().len(), 1);
}

#[test]
fn without_the_allowance_a_late_alert_gets_what_the_buffer_holds_and_says_so() {
    // The library's default: no allowance beyond one interval.
    let r = rig_on(
        RecorderConfig {
            notification_allowance: Duration::ZERO,
            ..config()
        },
        None,
    );
    r.ticks(13); // t(0)..t(60), clock at t(65)
    // 20 s late: the buffer holds t(30)..t(60) (--pre and one interval
    // before the newest sample), 15 s of the 30 s before startsAt.
    let (_, _, answer) = r.post(&firing(t(45)));
    assert_eq!(result(&answer), "opened");
    let w = r.window(&answer);
    assert_eq!(w.start_time, t(30));
    let note = answer["alerts"][0]["note"].as_str().unwrap();
    assert!(note.contains("the buffer held samples only from"), "{note}");
    assert_eq!(answer["alerts"][0]["window_start"], rfc3339(t(30)));
}

/// Defect 1: alerts dated 1970 or 2000 left an empty window at that date,
/// which retention deleted at once.
#[test]
fn an_alert_dated_1970_or_2000_gets_a_window_of_what_is_buffered_and_says_so() {
    for (n, starts) in [
        "1970-01-01T00:00:00Z",
        "2000-01-01T00:00:00Z",
        "2026-11-24T09:50:00Z", // 10 min before t(0): older than the reach
    ]
    .into_iter()
    .enumerate()
    {
        let r = rig();
        r.ticks(60); // t(0)..t(295), clock at t(300)
        let (status, _, answer) = r.post(&notification("firing", starts, None));
        assert_eq!((status, result(&answer)), (200, "opened"), "{answer}");
        let a = &answer["alerts"][0];
        // The oldest buffered time: now - --pre - the allowance.
        let taken = t(300 - PRE as i64 - ALLOWANCE as i64);
        assert_eq!(a["taken_at"], rfc3339(taken), "{answer}");
        assert_eq!(a["adjusted"]["reason"], "older_than_buffer");
        assert!(
            a["note"]
                .as_str()
                .unwrap()
                .contains("older than the buffers reach")
        );
        let w = r.window(&answer);
        assert_eq!(w.status, WindowStatus::Recording, "{n}: held");
        assert_eq!(w.trigger_time, Some(taken));
        // The trigger keeps what Alertmanager said.
        assert_eq!(
            rfc3339(w.triggers[0].fired_at),
            rfc3339(Timestamp::parse_rfc3339(starts).unwrap())
        );
        // Every buffered sample: from the newest - pre - allowance on.
        assert_eq!(w.data_points.first().unwrap().timestamp, t(150));
        assert_eq!(w.data_points.last().unwrap().timestamp, t(295));
        // A repeat is a repeat, whatever the clock says by then.
        r.ticks(2);
        let (_, _, again) = r.post(&notification("firing", starts, None));
        assert_eq!(result(&again), "unchanged", "{again}");
        assert!(again["alerts"][0].get("adjusted").is_none(), "{again}");
        // Resolved: it completes --post after, and is kept.
        let (_, _, done) = r.post(&notification("resolved", starts, Some(&rfc3339(r.now()))));
        assert_eq!(result(&done), "resolved", "{done}");
        let ends = r.now();
        r.ticks(14);
        let w = r.window(&answer);
        assert_eq!(w.status, WindowStatus::Complete, "{n}");
        assert_eq!(w.end_time, Some(ends.saturating_add(secs(POST))));
        r.recorder.sync().unwrap();
        assert_eq!(r.windows().len(), 1, "{n}: not deleted by retention");
    }
}

/// Defect 9: a startsAt ahead of this host's clock opened a window
/// starting in the future, which recorded nothing until then.
#[test]
fn a_starts_at_ahead_of_the_clock_is_taken_now_and_the_skew_recorded() {
    let r = rig();
    r.ticks(12); // t(0)..t(55), clock at t(60)
    let starts = t(60 + 300); // 5 min ahead
    let (status, _, answer) = r.post(&firing(starts));
    assert_eq!((status, result(&answer)), (200, "opened"), "{answer}");
    let a = &answer["alerts"][0];
    assert_eq!(a["adjusted"]["reason"], "clock_ahead");
    assert_eq!(a["adjusted"]["by_ms"], 300_000);
    assert_eq!(a["taken_at"], rfc3339(t(60)));
    assert!(a["note"].as_str().unwrap().contains("5m ahead"), "{a}");
    let w = r.window(&answer);
    assert_eq!(w.trigger_time, Some(t(60)), "opened now");
    assert_eq!(
        w.triggers[0].fired_at, starts,
        "the skew: fired_at - trigger_time"
    );
    assert_eq!(w.start_time, t(35), "--pre before now");
    // Recording from now on, not from the future.
    r.ticks(3);
    let w = r.window(&answer);
    assert_eq!(w.data_points.last().unwrap().timestamp, t(70));
    // Resolved by the same skewed clock: --post after its endsAt.
    let ends = t(60 + 330);
    let (_, _, done) = r.post(&resolved(starts, ends));
    assert_eq!(result(&done), "resolved", "{done}");
    assert_eq!(
        r.window(&answer).deadline,
        Some(ends.saturating_add(secs(POST)))
    );
}

/// Defect 8: a resolve that arrived before its firing held the window to
/// --max-points (truncated).
#[test]
fn a_resolve_before_its_firing_is_kept_and_closes_the_late_firing_s_window() {
    let r = rig();
    r.ticks(12); // clock at t(60)
    let (starts, ends) = (t(40), t(50));
    let (status, _, early) = r.post(&resolved(starts, ends));
    assert_eq!((status, result(&early)), (200, "not_open"), "{early}");
    assert!(
        early["alerts"][0]["note"]
            .as_str()
            .unwrap()
            .contains("kept"),
        "{early}"
    );
    r.ticks(2);
    let (_, _, answer) = r.post(&firing(starts));
    assert_eq!(result(&answer), "opened", "{answer}");
    assert_eq!(answer["alerts"][0]["resolved_at"], rfc3339(ends));
    let w = r.window(&answer);
    assert_eq!(w.triggers[0].resolved_at, Some(ends));
    assert_eq!(w.deadline, Some(ends.saturating_add(secs(POST))));
    r.ticks(14);
    let w = r.window(&answer);
    assert_eq!(w.status, WindowStatus::Complete, "not held to --max-points");
    assert_eq!(w.end_time, Some(ends.saturating_add(secs(POST))));
    // Repeats of either change nothing.
    assert_eq!(result(&r.post(&firing(starts)).2), "unchanged");
    assert_eq!(result(&r.post(&resolved(starts, ends)).2), "not_open");
    assert_eq!(r.windows().len(), 1);
    // A later incident of the same alert is not closed by the old resolve.
    let (_, _, next) = r.post(&firing(r.now()));
    assert_eq!(result(&next), "opened");
    r.ticks(20);
    assert_eq!(r.window(&next).status, WindowStatus::Recording, "held");
}

/// Defect 8: an endsAt before its startsAt resolved nothing.
#[test]
fn an_ends_at_before_starts_at_resolves_at_starts_at() {
    let r = rig();
    r.ticks(12); // clock at t(60)
    let starts = t(50);
    let (_, _, answer) = r.post(&firing(starts));
    assert_eq!(result(&answer), "opened");
    let (_, _, done) = r.post(&resolved(starts, t(20)));
    assert_eq!(result(&done), "resolved", "{done}");
    assert!(
        done["alerts"][0]["note"]
            .as_str()
            .unwrap()
            .contains("endsAt is before startsAt"),
        "{done}"
    );
    r.ticks(14);
    let w = r.window(&answer);
    assert_eq!(w.status, WindowStatus::Complete);
    assert_eq!(w.triggers[0].resolved_at, Some(starts));
    assert_eq!(w.end_time, Some(starts.saturating_add(secs(POST))));
}

/// Defect 2: while another program held the write lock, each alert was
/// answered "error" inside a 200, and Alertmanager never retried.
#[test]
fn an_alert_the_locked_database_cannot_take_is_answered_503_and_its_retry_lands_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("incidents.db");
    let r = rig_on(
        RecorderConfig {
            db_path: Some(db.clone()),
            ..config()
        },
        Some(dir),
    );
    r.ticks(12);
    let Some(lock) = LockHolder::hold(&db) else {
        return;
    };
    let starts = t(50);
    let (status, retry, answer) = r.post(&firing(starts));
    assert_eq!(status, 503, "{answer}");
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(result(&answer), "retry");
    assert!(
        answer["alerts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("locked"),
        "{answer}"
    );
    // A resolve in the same state is not lost either.
    let (status, _, _) = r.post(&resolved(t(10), t(20)));
    assert_eq!(status, 503);
    lock.release();
    // Alertmanager's retry.
    let (status, retry, answer) = r.post(&firing(starts));
    assert_eq!((status, retry), (200, None), "{answer}");
    assert_eq!(result(&answer), "opened");
    let (_, _, again) = r.post(&firing(starts));
    assert_eq!(result(&again), "unchanged", "a retry is idempotent");
    let w = r.window(&answer);
    assert_eq!(w.triggers.len(), 1);
    assert_eq!(w.status, WindowStatus::Recording);
}

/// A resolve notified long after its endsAt (Alertmanager down meanwhile):
/// the window, held until then, closes at its newest point, so no point
/// lies after its end (the export of every window imports again).
#[test]
fn a_resolve_notified_long_after_ends_at_closes_the_window_around_its_points() {
    let r = rig();
    r.ticks(12); // clock at t(60)
    let starts = t(50);
    let (_, _, answer) = r.post(&firing(starts));
    assert_eq!(result(&answer), "opened");
    r.ticks(48); // samples to t(295), clock at t(300)
    let (_, _, done) = r.post(&resolved(starts, t(100)));
    assert_eq!(result(&done), "resolved");
    r.ticks(2);
    let w = r.window(&answer);
    assert_eq!(w.status, WindowStatus::Complete);
    assert_eq!(w.triggers[0].resolved_at, Some(t(100)));
    let last = w.data_points.last().unwrap().timestamp;
    assert_eq!((last, w.end_time), (t(295), Some(t(295))));
}
