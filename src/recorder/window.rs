//! A window's life, decided in one place.
//!
//! Every decision about an open window is a method of [`Lifecycle`]: whether
//! a trigger extends it or opens a new one, which buffered samples a new one
//! takes, when a sample or a tick finds it due, what a resolve does to its
//! deadline, what a restart does with it, whether the daily limit lets a
//! new one open ([`Lifecycle::daily_limit_allows`]), and the one rule for
//! its status, start and end time ([`Lifecycle::closing`]), applied by
//! [`Lifecycle::close`], the one place a window is queued for closing.
//! The recorder (`recorder/mod.rs`, `tick.rs`, `alerts.rs`) applies these
//! decisions; the store writes what they say and answers counts (the
//! windows a resource opened in the last day), never deciding itself. An
//! import's status and end follow [`crate::window_rules::imported_end`],
//! below the store, which applies it.
//!
//! # Time
//!
//! Every decision takes the time it is about: a trigger acts at its own
//! time (`fired_ms`, the window's `opened_ms`, its deadline and the buffered
//! samples it takes), a sample at its timestamp, a tick at the recorder's
//! time. A window is due when *its resource's* samples pass its deadline, or
//! when the recorder's time passes the deadline by more than
//! [`RecorderConfig::max_source_lag`]: in a merged feed where one source lags
//! the others, a lagging source's window still gets every sample up to its
//! deadline, and a source that goes silent still has its window closed.
//!
//! # End time
//!
//! | closed because | status | end |
//! |---|---|---|
//! | its deadline passed | `complete` | the deadline |
//! | it reached `max_data_points_per_window` | `truncated` | its last point |
//! | `stop_recording` | `complete` | the stop time, or its last point if later |
//! | found recording after a crash, past its deadline | `interrupted` | its last point (its start if it has none) |
//! | imported while `recording` | `interrupted` | its last point, never before its start |
//!
//! # Start time
//!
//! A window starts at its first buffered point, or at its trigger's time
//! with none; a point taken later with an earlier time (a resource whose
//! samples lag the trigger) moves the start back to it
//! ([`Lifecycle::take_point`]; the recorder writes the move before the
//! point's commit). [`Closing::start_ms`] carries the start to the store.
//!
//! # Stops
//!
//! A stop, by window id or by resource, applies to a window that was open
//! at the stop's time ([`Lifecycle::stops`]): a stop dated before a window
//! opened leaves it alone (by id it is refused), so a replayed stop line
//! never closes a window a later line opened.

use crate::config::RecorderConfig;
use crate::model::{TriggerType, WindowId, WindowStatus, duration_ms};
use crate::store::{Closing, WindowRow};

/// A day in milliseconds: the span of the per-resource window limit.
pub(super) const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Bookkeeping of an open window; its points are in the database.
///
/// Invariants: `points <= max_data_points_per_window`; `last_ts` is the
/// newest point's time (`None` with no point); a window with `closing` set
/// takes no more points and has exactly one queued [`Closing`].
#[derive(Debug)]
pub(super) struct ActiveWindow {
    /// The window's row id.
    pub(super) row: WindowRow,
    /// Its public id.
    pub(super) id: WindowId,
    /// When the opening trigger fired (`opened_ms`).
    pub(super) opened_ms: i64,
    /// Its start: its first point's time, or the trigger's with none (see
    /// the module docs).
    pub(super) start_ms: i64,
    /// Completes after this time unless extended or held.
    pub(super) deadline_ms: i64,
    /// Points committed and pending.
    pub(super) points: usize,
    /// Time of the newest point.
    pub(super) last_ts: Option<i64>,
    /// The `alert` triggers not yet resolved, which hold the window open
    /// with `hold_while_alert_active`.
    pub(super) unresolved_alerts: Vec<Alert>,
    /// Queued for closing at the next commit.
    pub(super) closing: bool,
}

/// An `alert` trigger of an open window, not yet resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Alert {
    /// The trigger's id.
    pub(super) id: String,
    /// When it fired: a resolve at or after this time clears it.
    pub(super) fired_ms: i64,
}

/// Why a window closes; [`Lifecycle::closing`] turns it into a status and
/// an end time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CloseReason {
    /// Its deadline passed.
    Deadline,
    /// It reached the point limit.
    PointLimit,
    /// `stop_recording` at this time.
    Stopped { at_ms: i64 },
    /// Found recording after a crash, past its deadline.
    Interrupted,
}

/// What a trigger does to a resource's open window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum OnTrigger {
    /// The window goes on, until this deadline.
    Extend { deadline_ms: i64 },
    /// A new window opens (after the open one, if any, closes at its
    /// deadline: `close_first`).
    Open { close_first: bool },
}

/// What a sample does to its resource's open window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum OnSample {
    /// The window takes the point.
    Take,
    /// The window takes the point, which fills it: it closes as truncated.
    TakeLast,
    /// The sample is past the window's deadline: the window closes first
    /// and the sample only goes into the buffer.
    CloseFirst,
    /// The sample is older than the window's pre-incident window (a clock
    /// that went back): it only goes into the buffer.
    Before,
}

/// How a new window is made from the buffered samples of its resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Opening {
    /// Buffered rows the window takes: `rows[take]`, oldest first.
    pub(super) take: (usize, usize),
    /// Time of its first point (the trigger time with none).
    pub(super) start_ms: i64,
    /// Its deadline.
    pub(super) deadline_ms: i64,
    /// Close it at once: its buffered points already fill it, or its
    /// resource's samples are already past its deadline.
    pub(super) close_at_once: Option<CloseReason>,
}

/// What a restart does with a window found `recording`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum OnRecover {
    /// It goes on recording.
    Resume,
    /// It closes, for this reason.
    Close(CloseReason),
}

/// The window rules of one recorder's configuration.
#[derive(Clone, Copy, Debug)]
pub(super) struct Lifecycle {
    pre_ms: i64,
    post_ms: i64,
    max_points: usize,
    hold: bool,
    lag_ms: i64,
    /// `max_windows_per_resource_per_day` (0 = unlimited).
    daily_limit: usize,
    /// How far back a trigger may be dated and still find its pre-incident
    /// window buffered: the longer of the lag and the notification allowance.
    reach_ms: i64,
}

/// When an alert's window is taken to start, given the alert's own start
/// (see [`Lifecycle::alert_time`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlertTime {
    /// The time the window is opened or extended at.
    pub at_ms: i64,
    /// Why it differs from the alert's start, if it does.
    pub adjusted: Option<Adjusted>,
}

/// Why an alert was taken at another time than its start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adjusted {
    /// Its start was this far ahead of the recorder's clock (a sender whose
    /// clock runs ahead): taken at the recorder's time instead.
    Ahead {
        /// Skew, ms.
        by_ms: i64,
    },
    /// Its start was this much older than the buffers reach (pre-incident
    /// window + notification allowance: a notification after an outage, a
    /// restart, a long `group_interval`, or an absurd date): taken at the
    /// oldest buffered time instead.
    Late {
        /// How much older, ms.
        by_ms: i64,
    },
}

impl Lifecycle {
    pub(super) fn new(config: &RecorderConfig) -> Lifecycle {
        Lifecycle {
            pre_ms: duration_ms(config.pre_incident_window),
            post_ms: duration_ms(config.post_incident_window),
            max_points: config.max_data_points_per_window,
            hold: config.hold_while_alert_active,
            lag_ms: duration_ms(config.max_source_lag),
            daily_limit: config.max_windows_per_resource_per_day,
            reach_ms: duration_ms(config.max_source_lag.max(config.notification_allowance)),
        }
    }

    /// Buffered samples at or before this time are no longer needed by any
    /// trigger of a resource at `ms` (its newest sample, or the recorder's
    /// time): a trigger may come up to the allowed lag or the notification
    /// allowance late (an alert's notification after its start), and takes
    /// the pre-incident window before its own time.
    pub(super) fn buffer_cutoff(&self, ms: i64) -> i64 {
        ms.saturating_sub(self.pre_ms).saturating_sub(self.reach_ms)
    }

    /// The time an alert that started at `starts_ms` is taken at, on a
    /// recorder whose time is `now_ms`. The rule:
    ///
    /// - a start ahead of `now_ms` (the sender's clock runs ahead) is taken
    ///   at `now_ms`: a window starting in the future would record nothing
    ///   until then;
    /// - a start older than the buffers reach (`now_ms` − pre-incident
    ///   window − the longer of the lag and the notification allowance) is
    ///   taken at that reach, the oldest buffered time: the window holds
    ///   every buffered sample and no pre-incident part. So a notification
    ///   after an outage, or an alert dated 1970, still gets a window of
    ///   what was recorded, never an empty one at its absurd date;
    /// - any other start is taken as it is (its window starts at the oldest
    ///   buffered sample if the buffer does not hold its whole pre-incident
    ///   window).
    pub(super) fn alert_time(&self, starts_ms: i64, now_ms: i64) -> AlertTime {
        let oldest = now_ms
            .saturating_sub(self.pre_ms)
            .saturating_sub(self.reach_ms);
        let (at_ms, adjusted) = if starts_ms > now_ms {
            (
                now_ms,
                Some(Adjusted::Ahead {
                    by_ms: starts_ms - now_ms,
                }),
            )
        } else if starts_ms < oldest {
            (
                oldest,
                Some(Adjusted::Late {
                    by_ms: oldest.saturating_sub(starts_ms),
                }),
            )
        } else {
            (starts_ms, None)
        };
        AlertTime { at_ms, adjusted }
    }

    /// True when a trigger of this kind and id holds its window open while
    /// it is unresolved (see [`Lifecycle::note_trigger`]).
    pub(super) fn holds(&self, kind: TriggerType, id: Option<&str>) -> bool {
        self.hold && kind == TriggerType::Alert && id.is_some()
    }

    /// True when an unresolved alert holds `w` open past its deadline.
    fn held(&self, w: &ActiveWindow) -> bool {
        self.hold && !w.unresolved_alerts.is_empty()
    }

    /// Queues `w` for closing for `reason` (its [`closing`](Self::closing)
    /// pushed to `queue`, `w.closing` set): the one place a window is closed.
    /// A window already queued is left alone; returns the status it closes
    /// with, if this call queued it.
    pub(super) fn close(
        &self,
        w: &mut ActiveWindow,
        reason: CloseReason,
        queue: &mut Vec<Closing>,
    ) -> Option<WindowStatus> {
        if w.closing {
            return None;
        }
        let c = self.closing(w, reason);
        queue.push(c);
        w.closing = true;
        Some(c.status)
    }

    /// The status, start and end time of `w` closing for `reason`: the one
    /// rule.
    pub(super) fn closing(&self, w: &ActiveWindow, reason: CloseReason) -> Closing {
        let last = w.last_ts;
        let (status, end_ms) = match reason {
            CloseReason::Deadline => (WindowStatus::Complete, w.deadline_ms),
            CloseReason::PointLimit => (WindowStatus::Truncated, last.unwrap_or(w.opened_ms)),
            CloseReason::Stopped { at_ms } => {
                (WindowStatus::Complete, last.map_or(at_ms, |t| t.max(at_ms)))
            }
            CloseReason::Interrupted => (WindowStatus::Interrupted, last.unwrap_or(w.opened_ms)),
        };
        Closing {
            window: w.row,
            status,
            start_ms: w.start_ms,
            end_ms,
        }
    }

    /// Notes a point at `ts` that `w` took: counted, its newest time, and
    /// its start moved back to `ts` if that is earlier; returns the new
    /// start if it moved.
    pub(super) fn take_point(w: &mut ActiveWindow, ts: i64) -> Option<i64> {
        w.points += 1;
        w.last_ts = w.last_ts.max(Some(ts));
        (ts < w.start_ms).then(|| {
            w.start_ms = ts;
            ts
        })
    }

    /// Where the daily limit counts from for a window opening at `at_ms`:
    /// windows of its resource opened after this time count, `None` when
    /// there is no limit (nothing to count).
    pub(super) fn daily_limit_since(&self, at_ms: i64) -> Option<i64> {
        (self.daily_limit > 0).then(|| at_ms.saturating_sub(DAY_MS))
    }

    /// True if a resource that opened `opened` windows in the day before a
    /// trigger (see [`daily_limit_since`](Self::daily_limit_since)) may
    /// open one more: below `max_windows_per_resource_per_day`, or no limit.
    pub(super) fn daily_limit_allows(&self, opened: usize) -> bool {
        self.daily_limit == 0 || opened < self.daily_limit
    }

    /// A trigger at `at_ms` on a resource whose open window is `w`: it
    /// extends a window that is not over at that time (before its deadline,
    /// or held by an alert), and opens a new one otherwise.
    pub(super) fn on_trigger(&self, w: Option<&ActiveWindow>, at_ms: i64) -> OnTrigger {
        match w {
            Some(w) if !w.closing && (at_ms <= w.deadline_ms || self.held(w)) => {
                OnTrigger::Extend {
                    deadline_ms: w.deadline_ms.max(at_ms.saturating_add(self.post_ms)),
                }
            }
            Some(w) => OnTrigger::Open {
                close_first: !w.closing,
            },
            None => OnTrigger::Open { close_first: false },
        }
    }

    /// A new window for a trigger at `at_ms`, given the times of its
    /// resource's buffered rows (oldest first) and the resource's newest
    /// sample: it takes the rows within the pre-incident window before the
    /// trigger and every later one up to its deadline, at most the newest
    /// `max_data_points_per_window` of them. A window `held` by its trigger
    /// (an alert, with `hold_while_alert_active`) is recording however late
    /// the trigger comes: it takes every later row and is not closed at
    /// once for its deadline (a late notification of an alert that still
    /// fires is not an incident that is over).
    pub(super) fn opening(
        &self,
        at_ms: i64,
        rows: &[i64],
        resource_ms: Option<i64>,
        held: bool,
    ) -> Opening {
        let deadline_ms = at_ms.saturating_add(self.post_ms);
        let cutoff = at_ms.saturating_sub(self.pre_ms);
        let from = rows.partition_point(|&ts| ts <= cutoff);
        let to = if held {
            rows.len()
        } else {
            rows.partition_point(|&ts| ts <= deadline_ms)
        };
        let from = from.max(to.saturating_sub(self.max_points)).min(to);
        let start_ms = if from < to { rows[from] } else { at_ms };
        let close_at_once = if to - from >= self.max_points {
            Some(CloseReason::PointLimit)
        } else if !held && resource_ms.is_some_and(|t| t > deadline_ms) {
            Some(CloseReason::Deadline)
        } else {
            None
        };
        Opening {
            take: (from, to),
            start_ms,
            deadline_ms,
            close_at_once,
        }
    }

    /// A sample of `w`'s resource at `ts`.
    pub(super) fn on_sample(&self, w: &ActiveWindow, ts: i64) -> OnSample {
        if ts > w.deadline_ms && !self.held(w) {
            OnSample::CloseFirst
        } else if ts <= w.opened_ms.saturating_sub(self.pre_ms) {
            OnSample::Before
        } else if w.points + 1 >= self.max_points {
            OnSample::TakeLast
        } else {
            OnSample::Take
        }
    }

    /// True when a tick at the recorder's time `now_ms` finds `w` due: past
    /// its deadline by more than the allowed source lag, and not held.
    pub(super) fn due_at_tick(&self, w: &ActiveWindow, now_ms: i64) -> bool {
        !w.closing && now_ms > w.deadline_ms.saturating_add(self.lag_ms) && !self.held(w)
    }

    /// The alert `trigger_id` cleared at `at_ms` (only alerts that fired by
    /// then are cleared): removes it from `alerts`, the unresolved alerts of
    /// a window whose deadline is `deadline_ms` and newest point `last_ts`,
    /// and returns the window's new deadline if this was the last alert
    /// holding it: resolution + post window, never earlier than before, nor
    /// than the points the window took while held (a resolve notified long
    /// after its `endsAt` closes the window at its newest point, which stays
    /// within the window's end).
    pub(super) fn resolve(
        &self,
        alerts: &mut Vec<Alert>,
        deadline_ms: i64,
        last_ts: Option<i64>,
        trigger_id: &str,
        at_ms: i64,
    ) -> Option<i64> {
        let before = alerts.len();
        alerts.retain(|a| a.id != trigger_id || a.fired_ms > at_ms);
        let was_holding = before > alerts.len();
        (self.hold && was_holding && alerts.is_empty()).then(|| {
            deadline_ms
                .max(at_ms.saturating_add(self.post_ms))
                .max(last_ts.unwrap_or(i64::MIN))
        })
    }

    /// Notes a trigger at `at_ms` that opened or extended `w` (alerts hold it).
    pub(super) fn note_trigger(
        w: &mut ActiveWindow,
        kind: TriggerType,
        id: Option<&str>,
        at_ms: i64,
    ) {
        if let (TriggerType::Alert, Some(id)) = (kind, id)
            && !w.unresolved_alerts.iter().any(|a| a.id == id)
        {
            w.unresolved_alerts.push(Alert {
                id: id.to_owned(),
                fired_ms: at_ms,
            });
        }
    }

    /// True if a stop at `at_ms` (by `w`'s id or by its resource) applies to
    /// `w`: it was open then (a stop dated before a window opened leaves it
    /// alone).
    pub(super) fn stops(&self, w: &ActiveWindow, at_ms: i64) -> bool {
        !w.closing && w.opened_ms <= at_ms
    }

    /// A stop at `at_ms` of `w` (by id or by resource): queues its close as
    /// stopped if the stop [applies](Self::stops); returns whether it did.
    pub(super) fn stop(&self, w: &mut ActiveWindow, at_ms: i64, queue: &mut Vec<Closing>) -> bool {
        self.stops(w, at_ms)
            && self
                .close(w, CloseReason::Stopped { at_ms }, queue)
                .is_some()
    }

    /// A window found `recording` when the database opens at `now_ms`. After
    /// a clean stop (the last recorder saved its state), the window is judged
    /// exactly as a running recorder would judge it at that time, so a
    /// restart, or the next chunk of an ingest, gives the same result as one
    /// run: due → complete at its deadline. After a crash, a due window is
    /// `interrupted` instead: it may have missed samples the crash lost.
    pub(super) fn on_recover(&self, w: &ActiveWindow, now_ms: i64, clean: bool) -> OnRecover {
        if !self.due_at_tick(w, now_ms) {
            OnRecover::Resume
        } else if clean {
            OnRecover::Close(CloseReason::Deadline)
        } else {
            OnRecover::Close(CloseReason::Interrupted)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn rules(hold: bool) -> Lifecycle {
        Lifecycle::new(
            &RecorderConfig {
                pre_incident_window: Duration::from_secs(60),
                post_incident_window: Duration::from_secs(100),
                max_data_points_per_window: 10,
                hold_while_alert_active: hold,
                max_source_lag: Duration::from_secs(5),
                ..RecorderConfig::default()
            }
            .normalized(),
        )
    }

    fn alert(id: &str, fired_ms: i64) -> Alert {
        Alert {
            id: id.into(),
            fired_ms,
        }
    }

    fn window(deadline_ms: i64) -> ActiveWindow {
        ActiveWindow {
            row: WindowRow(1),
            id: WindowId::new("w"),
            opened_ms: 0,
            start_ms: -10_000,
            deadline_ms,
            points: 3,
            last_ts: Some(2_000),
            unresolved_alerts: Vec::new(),
            closing: false,
        }
    }

    #[test]
    fn a_trigger_extends_a_window_that_is_not_over_and_opens_after_its_deadline() {
        let r = rules(false);
        let w = window(100_000);
        assert_eq!(
            r.on_trigger(Some(&w), 50_000),
            OnTrigger::Extend {
                deadline_ms: 150_000
            }
        );
        // A late trigger never moves the deadline back.
        assert_eq!(
            r.on_trigger(Some(&w), -90_000),
            OnTrigger::Extend {
                deadline_ms: 100_000
            }
        );
        assert_eq!(
            r.on_trigger(Some(&w), 100_001),
            OnTrigger::Open { close_first: true }
        );
        let mut held = window(100_000);
        held.unresolved_alerts.push(alert("a", 0));
        assert_eq!(
            rules(true).on_trigger(Some(&held), 500_000),
            OnTrigger::Extend {
                deadline_ms: 600_000
            }
        );
    }

    #[test]
    fn an_opening_takes_the_pre_window_before_the_trigger_and_later_rows_up_to_the_deadline() {
        let r = rules(false);
        // Rows every 10 s; trigger at 100 s: pre window (40, 100], deadline 200 s.
        let rows: Vec<i64> = (0..=25).map(|i| i * 10_000).collect();
        let o = r.opening(100_000, &rows[..=12], Some(120_000), false);
        assert_eq!(o.take, (5, 13));
        assert_eq!(o.start_ms, 50_000);
        assert_eq!(o.deadline_ms, 200_000);
        assert_eq!(o.close_at_once, None);
        // Enough rows to fill it: the newest ten, truncated at once.
        let o = r.opening(100_000, &rows, Some(250_000), false);
        assert_eq!(o.take, (11, 21));
        assert_eq!(o.close_at_once, Some(CloseReason::PointLimit));
        // Nothing buffered: it starts at the trigger.
        let o = r.opening(100_000, &[], None, false);
        assert_eq!((o.take, o.start_ms), ((0, 0), 100_000));
        // The resource's samples are already past the deadline.
        let o = r.opening(100_000, &rows[..3], Some(300_000), false);
        assert_eq!(o.close_at_once, Some(CloseReason::Deadline));
    }

    #[test]
    fn a_late_alert_held_by_hold_takes_every_row_and_is_not_closed_at_once() {
        let r = rules(true);
        // Rows every 10 s; an alert that started at 100 s is notified when
        // its resource's samples are at 250 s, past its deadline (200 s):
        // it still fires.
        let rows: Vec<i64> = (0..=25).map(|i| i * 10_000).collect();
        assert!(r.holds(TriggerType::Alert, Some("a")));
        assert!(!r.holds(TriggerType::Alert, None));
        assert!(!r.holds(TriggerType::Manual, Some("a")));
        assert!(!rules(false).holds(TriggerType::Alert, Some("a")));
        let o = r.opening(100_000, &rows[..14], Some(250_000), true);
        assert_eq!(o.take, (5, 14), "the pre window and every later row");
        assert_eq!(o.start_ms, 50_000);
        assert_eq!(o.close_at_once, None, "held: not over while it fires");
        // Held or not, the point limit still applies.
        let o = r.opening(100_000, &rows, Some(250_000), true);
        assert_eq!(o.take, (16, 26));
        assert_eq!(o.close_at_once, Some(CloseReason::PointLimit));
    }

    #[test]
    fn an_alert_is_taken_at_its_start_or_clamped_to_now_or_to_the_buffers_reach() {
        let config = RecorderConfig {
            pre_incident_window: Duration::from_secs(60),
            max_source_lag: Duration::from_secs(5),
            notification_allowance: Duration::from_secs(120),
            ..RecorderConfig::default()
        }
        .normalized();
        let r = Lifecycle::new(&config);
        let now = 1_000_000;
        // The buffers keep pre + the allowance (the longer of it and the lag).
        assert_eq!(r.buffer_cutoff(now), now - 180_000);
        // Within reach: as it is.
        for starts in [now, now - 30_000, now - 180_000] {
            assert_eq!(
                r.alert_time(starts, now),
                AlertTime {
                    at_ms: starts,
                    adjusted: None
                }
            );
        }
        // Ahead of the clock: now, with the skew.
        assert_eq!(
            r.alert_time(now + 300_000, now),
            AlertTime {
                at_ms: now,
                adjusted: Some(Adjusted::Ahead { by_ms: 300_000 })
            }
        );
        // Older than the buffers reach, even 1970: the oldest buffered time.
        assert_eq!(
            r.alert_time(now - 600_000, now),
            AlertTime {
                at_ms: now - 180_000,
                adjusted: Some(Adjusted::Late { by_ms: 420_000 })
            }
        );
        assert_eq!(r.alert_time(0, now).at_ms, now - 180_000);
        // Without an allowance the lag is the reach, as before.
        assert_eq!(rules(false).buffer_cutoff(now), now - 65_000);
    }

    #[test]
    fn samples_and_ticks_find_a_window_due_by_its_resource_s_time_or_the_lag() {
        let r = rules(false);
        let w = window(100_000);
        assert_eq!(r.on_sample(&w, 100_000), OnSample::Take);
        assert_eq!(r.on_sample(&w, 100_001), OnSample::CloseFirst);
        assert_eq!(
            r.on_sample(&w, -60_000),
            OnSample::Before,
            "before its pre window"
        );
        assert_eq!(r.on_sample(&w, -59_999), OnSample::Take);
        assert!(!r.due_at_tick(&w, 105_000), "within the allowed lag");
        assert!(r.due_at_tick(&w, 105_001));
        let mut full = window(100_000);
        full.points = 9;
        assert_eq!(r.on_sample(&full, 1), OnSample::TakeLast);
    }

    #[test]
    fn a_stop_by_id_or_resource_applies_to_a_window_open_at_its_time() {
        let r = rules(false);
        let mut queue = Vec::new();
        let mut w = window(100_000); // opened at 0
        assert!(!r.stop(&mut w, -1, &mut queue), "dated before it opened");
        assert!(queue.is_empty() && !w.closing);
        assert!(r.stop(&mut w, 0, &mut queue));
        assert!(w.closing);
        assert_eq!(queue, [r.closing(&w, CloseReason::Stopped { at_ms: 0 })]);
        assert!(!r.stop(&mut w, 5, &mut queue), "already closing");
        assert_eq!(queue.len(), 1);
    }

    #[test]
    fn a_window_is_queued_for_closing_once() {
        let r = rules(false);
        let mut queue = Vec::new();
        let mut w = window(100_000);
        assert_eq!(
            r.close(&mut w, CloseReason::PointLimit, &mut queue),
            Some(WindowStatus::Truncated)
        );
        assert_eq!(r.close(&mut w, CloseReason::Deadline, &mut queue), None);
        assert_eq!(queue.len(), 1);
        assert_eq!(queue[0].status, WindowStatus::Truncated);
        assert!(
            !r.due_at_tick(&w, 1_000_000),
            "a closing window is not due again"
        );
    }

    #[test]
    fn a_point_older_than_the_start_moves_the_start_back() {
        let r = rules(false);
        let mut w = window(100_000); // starts at -10 s, newest point 2 s
        assert_eq!(Lifecycle::take_point(&mut w, 3_000), None);
        assert_eq!((w.points, w.last_ts, w.start_ms), (4, Some(3_000), -10_000));
        // A lagging resource's sample from before the start (and after its
        // pre window): taken, and the window starts there.
        assert_eq!(Lifecycle::take_point(&mut w, -30_000), Some(-30_000));
        assert_eq!((w.points, w.last_ts, w.start_ms), (5, Some(3_000), -30_000));
        assert_eq!(r.closing(&w, CloseReason::Deadline).start_ms, -30_000);
    }

    #[test]
    fn the_daily_limit_counts_the_day_before_a_trigger() {
        let limited = Lifecycle::new(
            &RecorderConfig {
                max_windows_per_resource_per_day: 2,
                ..RecorderConfig::default()
            }
            .normalized(),
        );
        assert_eq!(limited.daily_limit_since(DAY_MS + 5), Some(5));
        assert!(limited.daily_limit_allows(0));
        assert!(limited.daily_limit_allows(1));
        assert!(!limited.daily_limit_allows(2));
        let unlimited = rules(false);
        assert_eq!(
            unlimited.daily_limit_since(DAY_MS),
            None,
            "nothing to count"
        );
        assert!(unlimited.daily_limit_allows(usize::MAX));
    }

    #[test]
    fn the_end_time_follows_one_rule() {
        let r = rules(false);
        let w = window(100_000);
        let end = |reason| {
            let c = r.closing(&w, reason);
            assert_eq!((c.window, c.start_ms), (w.row, -10_000), "its start");
            (c.status, c.end_ms)
        };
        assert_eq!(
            end(CloseReason::Deadline),
            (WindowStatus::Complete, 100_000)
        );
        assert_eq!(
            end(CloseReason::PointLimit),
            (WindowStatus::Truncated, 2_000)
        );
        assert_eq!(
            end(CloseReason::Stopped { at_ms: 1_000 }),
            (WindowStatus::Complete, 2_000)
        );
        assert_eq!(
            end(CloseReason::Stopped { at_ms: 9_000 }),
            (WindowStatus::Complete, 9_000)
        );
        assert_eq!(
            end(CloseReason::Interrupted),
            (WindowStatus::Interrupted, 2_000)
        );
    }

    #[test]
    fn resolving_the_last_alert_moves_the_deadline_and_recovery_depends_on_a_clean_stop() {
        let r = rules(true);
        let mut alerts = vec![alert("a", 0), alert("b", 400_000)];
        assert_eq!(
            r.resolve(&mut alerts, 100_000, None, "a", 500_000),
            None,
            "b still holds it"
        );
        assert_eq!(
            r.resolve(&mut alerts, 100_000, None, "b", 300_000),
            None,
            "a resolve before the alert fired clears nothing"
        );
        assert_eq!(
            r.resolve(&mut alerts.clone(), 100_000, Some(900_000), "b", 400_000),
            Some(900_000),
            "not before the points taken while held"
        );
        assert_eq!(
            r.resolve(&mut alerts, 100_000, Some(450_000), "b", 400_000),
            Some(500_000)
        );
        assert_eq!(
            r.resolve(&mut alerts, 100_000, None, "b", 700_000),
            None,
            "already resolved"
        );
        let w = window(100_000);
        assert_eq!(r.on_recover(&w, 50_000, false), OnRecover::Resume);
        assert_eq!(
            r.on_recover(&w, 200_000, true),
            OnRecover::Close(CloseReason::Deadline)
        );
        assert_eq!(
            r.on_recover(&w, 200_000, false),
            OnRecover::Close(CloseReason::Interrupted)
        );
    }
}
