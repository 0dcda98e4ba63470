//! Alerts whose sender knows when they started and ended (Alertmanager).
//!
//! A rule of `watch` fires when its condition holds, on this host's clock.
//! An alert from Alertmanager carries its own `startsAt` and `endsAt`, and
//! reaches the recorder late (`group_wait`, a retry, an outage), from a
//! host whose clock may be off, and sometimes out of order. The rules for
//! those, decided in [`Lifecycle::alert_time`](super::window::Lifecycle::alert_time)
//! and applied here:
//!
//! - **Late.** Buffers keep the pre-incident window plus
//!   [`RecorderConfig::notification_allowance`](crate::RecorderConfig::notification_allowance),
//!   so an alert notified up to that late gets its whole pre-incident
//!   window (a later one gets what the buffer still holds before its
//!   start, and the outcome's `window_start` says where it begins). A start
//!   older than the buffers reach at all (now − pre-incident window −
//!   allowance) is taken at that oldest buffered time, and the outcome
//!   says so ([`AlertAdjustment::Late`](crate::AlertAdjustment::Late)): an
//!   alert dated 1970 gets a window of every buffered sample, never an
//!   empty one at its date.
//! - **Ahead.** A start ahead of the recorder's clock (at most 10 minutes,
//!   like every input) is taken at the recorder's time
//!   ([`AlertAdjustment::Ahead`](crate::AlertAdjustment::Ahead), the skew).
//! - **Held.** With `hold_while_alert_active`, the window of a firing alert
//!   records however late the notification came, until `post` after the
//!   alert resolves.
//! - **Kept as sent.** The trigger row keeps the alert's own start
//!   (`window_triggers.fired_ms`) while the window opens at the time taken
//!   (`windows.opened_ms`): the difference is the adjustment, and a repeated
//!   notification (same resource, alert and start) is recognised as one.
//! - **Out of order.** A resolve whose `endsAt` is before its `startsAt`
//!   acts at the start. A resolve that matches no firing alert is kept
//!   (`control_events`, as every resolve is, until retention trims it); a
//!   firing of that alert that started at or before it, arriving later,
//!   opens its window and resolves it at once, so the window records
//!   `post` after the resolve and completes.

use super::window::Adjusted;
use super::{IncidentRecorder, TriggerAction, validate};
use crate::error::Result;
use crate::model::{Resource, Timestamp, Trigger, WindowId};

/// What [`IncidentRecorder::record_alert`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AlertOutcome {
    /// The window it opened or extended (or that has it, if recorded before).
    pub window: WindowId,
    /// Opened, extended, or already recorded (a repeated notification).
    pub action: TriggerAction,
    /// The time the alert was taken at: its start, unless `adjusted`.
    pub taken_at: Timestamp,
    /// Why `taken_at` is not the alert's start, if it is not.
    pub adjusted: Option<Adjusted>,
    /// For a window it opened: the window's start (its oldest buffered
    /// sample, or `taken_at` with none). Later than `taken_at` − the
    /// pre-incident window when the buffer did not reach back that far
    /// (a recorder started only just before).
    pub window_start: Option<Timestamp>,
    /// A resolve of this alert that came before its firing, applied now at
    /// this time: the window records the post-incident window after it.
    pub resolved_at: Option<Timestamp>,
}

/// What [`IncidentRecorder::resolve_alert`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AlertResolve {
    /// An unresolved trigger of this alert was resolved.
    pub matched: bool,
    /// This very resolve was recorded before (a repeated notification).
    pub repeat: bool,
    /// The time it acted at: `endsAt`, or the alert's start if `endsAt` is
    /// before it.
    pub at: Timestamp,
    /// `endsAt` was before `startsAt`.
    pub ends_before_start: bool,
}

impl IncidentRecorder {
    /// Records that alert `alert_id` of `resource` fires, started at
    /// `starts` (now if `None`): taken at its start, or at the recorder's
    /// time if that is ahead, or at the oldest buffered time (now −
    /// pre-incident window − notification allowance) if the start is
    /// older; opens a window
    /// (held while the alert fires, with `hold_while_alert_active`) or
    /// extends the open one. A repeat of the same alert and start changes
    /// nothing. A resolve of it recorded before (out of order) resolves it
    /// at once.
    ///
    /// Refused as [`record_trigger`](Self::record_trigger) refuses: a start
    /// more than 10 minutes ahead of the recorder's clock or before 1970,
    /// an unmonitored resource, a new window over the daily limit.
    pub fn record_alert<'a>(
        &self,
        resource: impl Into<Resource<'a>>,
        alert_id: &str,
        starts: Option<Timestamp>,
    ) -> Result<AlertOutcome> {
        let resource = resource.into();
        validate::resource(&resource)?;
        let trigger = Trigger::alert(alert_id);
        validate::trigger(&trigger)?;
        let inner = &self.inner;
        let mut state = inner.state();
        let now = inner.time(&mut state);
        let starts_ms = starts.map_or(now, Timestamp::as_unix_ms);
        validate::timestamp(
            Timestamp::from_unix_ms(starts_ms),
            Timestamp::from_unix_ms(now),
        )?;
        let time = inner.rules.alert_time(starts_ms, now);
        let recorded =
            inner.record_trigger(&mut state, resource, &trigger, time.at_ms, starts_ms)?;
        // Still firing in the open window (also on a repeat: the resolve
        // may have failed after the firing was recorded).
        let firing = state
            .resources
            .get(resource.id)
            .and_then(|r| r.window.as_ref())
            .filter(|w| !w.closing)
            .is_some_and(|w| w.unresolved_alerts.iter().any(|a| a.id == alert_id));
        let mut resolved_at = None;
        if firing
            && let Some(at) = state
                .writer
                .unmatched_resolve(resource.id, alert_id, starts_ms)?
        {
            inner.resolve(&mut state, resource.id, alert_id, at)?;
            tracing::info!(alert = alert_id, resource = %crate::error::clip(resource.id), "applied a resolve that came before its firing");
            resolved_at = Some(Timestamp::from_unix_ms(at));
        }
        Ok(AlertOutcome {
            window: recorded.outcome.window,
            action: recorded.outcome.action,
            taken_at: Timestamp::from_unix_ms(time.at_ms),
            adjusted: time.adjusted,
            window_start: recorded.start_ms.map(Timestamp::from_unix_ms),
            resolved_at,
        })
    }

    /// Records that alert `alert_id` of `resource_id`, started at `starts`
    /// (if known), ended at `ends` (now if `None`): it acts at `ends`, or
    /// at `starts` if `ends` is before it; see
    /// [`resolve_trigger_at`](Self::resolve_trigger_at). A resolve that
    /// matches nothing is kept, for a firing of the alert that arrives
    /// later ([`record_alert`](Self::record_alert)).
    pub fn resolve_alert(
        &self,
        resource_id: &str,
        alert_id: &str,
        starts: Option<Timestamp>,
        ends: Option<Timestamp>,
    ) -> Result<AlertResolve> {
        let inner = &self.inner;
        let mut state = inner.state();
        let now = inner.time(&mut state);
        let ends_ms = ends.map_or(now, Timestamp::as_unix_ms);
        let starts_ms = starts.map(Timestamp::as_unix_ms);
        let ends_before_start = starts_ms.is_some_and(|s| ends_ms < s);
        let at_ms = starts_ms.map_or(ends_ms, |s| ends_ms.max(s));
        validate::timestamp(Timestamp::from_unix_ms(at_ms), Timestamp::from_unix_ms(now))?;
        let mut outcome = AlertResolve {
            matched: false,
            repeat: false,
            at: Timestamp::from_unix_ms(at_ms),
            ends_before_start,
        };
        match inner.resolve_once(&mut state, resource_id, alert_id, at_ms)? {
            Some(matched) => outcome.matched = matched,
            None => outcome.repeat = true,
        }
        Ok(outcome)
    }
}
