//! Threshold rules (`cpu>90 for 30s`) and the provider wrapper that checks them.
//!
//! A [`Rule`] is `METRIC OP VALUE [for DURATION]` with `OP` one of `>`, `<`,
//! `>=`, `<=`. Its id is its canonical text (`cpu>90 for 30s`), which becomes
//! the `trigger_id` of the `alert` it raises, so a window names the rule that
//! opened it.
//!
//! [`RuleEngine`] is pure (values and times in, events out) so it is tested
//! without clocks or threads. [`RuleProvider`] wraps any provider: the
//! recorder's sampling thread calls it, it checks the rules on the values it
//! returns, and it *sends* the resulting [`RuleEvent`]s over a channel. The
//! thread that owns the recorder acts on them ([`apply`]); the recorder is
//! never called from inside its own provider.
//!
//! Per rule and resource: a condition that holds is *pending* until it has
//! held for the rule's duration, then the rule *fires* (once); the first
//! sample where it no longer holds *resolves* it. A sample without the
//! rule's metric changes nothing. Rules start in an *unknown* state: if the
//! first sample shows the condition clear, a resolve is sent anyway, which
//! clears an alert left unresolved by a previous run (whose window was
//! resumed) instead of holding that window open until it truncates.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use incident_recorder::{
    Clock, IncidentRecorder, Metrics, MetricsProvider, ProviderError, Timestamp, Trigger, WindowId,
};

use super::duration;

/// A comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Gt,
    Lt,
    Ge,
    Le,
}

impl Op {
    fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Gt => value > threshold,
            Op::Lt => value < threshold,
            Op::Ge => value >= threshold,
            Op::Le => value <= threshold,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Lt => "<",
            Op::Ge => ">=",
            Op::Le => "<=",
        }
    }
}

/// One threshold rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub metric: String,
    pub op: Op,
    pub threshold: f64,
    /// How long the condition must hold before the rule fires.
    pub hold: Duration,
}

impl Rule {
    /// The canonical text, used as the alert's trigger id.
    pub fn id(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", self.metric, self.op.as_str(), self.threshold)?;
        if !self.hold.is_zero() {
            write!(f, " for {}", duration::format(self.hold))?;
        }
        Ok(())
    }
}

impl FromStr for Rule {
    type Err = String;

    fn from_str(text: &str) -> Result<Rule, String> {
        let bad = |why: &str| {
            format!(
                "invalid rule {text:?}: {why}; write METRIC>VALUE [for DURATION], e.g. 'cpu>90 for 30s'"
            )
        };
        let (condition, hold) = match text.split_once(" for ") {
            Some((c, d)) => (c, duration::parse(d).map_err(|e| bad(&e))?),
            None => (text, Duration::ZERO),
        };
        // A scraped series' name has labels (`x{mountpoint="/"}`), whose `=`
        // is not a comparison: look for one after the closing brace.
        let from = condition.rfind('}').map_or(0, |i| i + 1);
        let at = condition[from..]
            .find(['<', '>', '='])
            .map(|i| from + i)
            .ok_or_else(|| bad("no comparison (>, <, >= or <=)"))?;
        let (metric, rest) = condition.split_at(at);
        let (op, value) = [(">=", Op::Ge), ("<=", Op::Le), (">", Op::Gt), ("<", Op::Lt)]
            .into_iter()
            .find_map(|(s, op)| rest.strip_prefix(s).map(|v| (op, v)))
            .ok_or_else(|| bad("the comparison must be >, <, >= or <="))?;
        let metric = metric.trim();
        let name = metric.split('{').next().unwrap_or(metric);
        if metric.is_empty() || name.contains(char::is_whitespace) {
            return Err(bad("the metric name is missing or has spaces"));
        }
        let threshold: f64 = value
            .trim()
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| bad(&format!("{:?} is not a number", value.trim())))?;
        Ok(Rule {
            metric: metric.to_owned(),
            op,
            threshold,
            hold,
        })
    }
}

/// What `watch` checks when no `--rule` is given.
pub fn default_rules() -> Vec<Rule> {
    ["cpu>90 for 1m", "memory>90 for 1m", "disk>90"]
        .iter()
        .map(|r| r.parse().expect("built-in rules parse"))
        .collect()
}

/// A rule changing state on a resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleEvent {
    /// The rule's condition has held long enough: open (or extend) a
    /// window, at the time of the sample that showed it.
    Fired {
        resource: String,
        rule: String,
        at: Timestamp,
    },
    /// The condition no longer holds: resolve the rule's alert, at the time
    /// of the sample that showed it.
    Resolved {
        resource: String,
        rule: String,
        at: Timestamp,
    },
}

impl fmt::Display for RuleEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleEvent::Fired { resource, rule, .. } => {
                write!(f, "rule {rule} firing on {resource}")
            }
            RuleEvent::Resolved { resource, rule, .. } => {
                write!(f, "rule {rule} clearing on {resource}")
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum State {
    Unknown,
    Clear,
    Pending { since: Timestamp },
    Firing,
}

/// The state of every rule on every resource.
#[derive(Debug)]
pub struct RuleEngine {
    rules: Vec<Rule>,
    states: HashMap<String, Vec<State>>,
}

impl RuleEngine {
    pub fn new(rules: Vec<Rule>) -> RuleEngine {
        RuleEngine {
            rules,
            states: HashMap::new(),
        }
    }

    /// Checks every rule against one sample of `resource` taken at `now`.
    pub fn observe(&mut self, resource: &str, metrics: &Metrics, now: Timestamp) -> Vec<RuleEvent> {
        let n = self.rules.len();
        let states = self
            .states
            .entry(resource.to_owned())
            .or_insert_with(|| vec![State::Unknown; n]);
        let mut events = Vec::new();
        for (rule, state) in self.rules.iter().zip(states.iter_mut()) {
            let Some(value) = metrics.get(&rule.metric) else {
                continue;
            };
            let event = |fired: bool| {
                let (resource, rule) = (resource.to_owned(), rule.id());
                if fired {
                    RuleEvent::Fired {
                        resource,
                        rule,
                        at: now,
                    }
                } else {
                    RuleEvent::Resolved {
                        resource,
                        rule,
                        at: now,
                    }
                }
            };
            if !rule.op.holds(value, rule.threshold) {
                if matches!(*state, State::Firing | State::Unknown) {
                    events.push(event(false));
                }
                *state = State::Clear;
                continue;
            }
            let since = match *state {
                State::Firing => continue,
                State::Pending { since } => since,
                State::Unknown | State::Clear => now,
            };
            *state = if now.as_unix_ms() - since.as_unix_ms() >= rule.hold.as_millis() as i64 {
                events.push(event(true));
                State::Firing
            } else {
                State::Pending { since }
            };
        }
        events
    }
}

/// A provider that checks rules on the values of the provider it wraps and
/// sends the events to `events` (see the module docs).
pub struct RuleProvider<P, E> {
    inner: P,
    engine: Mutex<RuleEngine>,
    clock: Arc<dyn Clock>,
    events: Mutex<Sender<E>>,
}

impl<P, E: From<RuleEvent>> RuleProvider<P, E> {
    pub fn new(inner: P, rules: Vec<Rule>, clock: Arc<dyn Clock>, events: Sender<E>) -> Self {
        RuleProvider {
            inner,
            engine: Mutex::new(RuleEngine::new(rules)),
            clock,
            events: Mutex::new(events),
        }
    }
}

impl<P: MetricsProvider, E: From<RuleEvent> + Send> MetricsProvider for RuleProvider<P, E> {
    fn current_metrics(&self, resource_id: &str) -> Result<Metrics, ProviderError> {
        let metrics = self.inner.current_metrics(resource_id)?;
        let now = self.clock.now();
        let events = self
            .engine
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(resource_id, &metrics, now);
        let tx = self.events.lock().unwrap_or_else(|e| e.into_inner());
        for e in events {
            // A closed channel means the recorder is shutting down.
            let _ = tx.send(E::from(e));
        }
        Ok(metrics)
    }

    fn monitored_resource_ids(&self) -> Vec<String> {
        self.inner.monitored_resource_ids()
    }

    /// The inner provider's batch (one scrape of every target per tick),
    /// with the rules checked on each answer.
    fn current_metrics_batch(
        &self,
        resource_ids: &[String],
    ) -> Vec<(String, Result<Metrics, ProviderError>)> {
        let answers = self.inner.current_metrics_batch(resource_ids);
        let now = self.clock.now();
        let mut events = Vec::new();
        {
            let mut engine = self.engine.lock().unwrap_or_else(|e| e.into_inner());
            for (id, answer) in &answers {
                if let Ok(metrics) = answer {
                    events.extend(engine.observe(id, metrics, now));
                }
            }
        }
        let tx = self.events.lock().unwrap_or_else(|e| e.into_inner());
        for e in events {
            let _ = tx.send(E::from(e));
        }
        answers
    }
}

/// What applying an event did.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    /// An alert opened or extended this window.
    Opened(WindowId),
    /// An alert was resolved (true if an unresolved one was found).
    Resolved(bool),
}

/// Acts on a rule event: opens a window with an `alert` named after the rule,
/// or resolves that alert.
pub fn apply(recorder: &IncidentRecorder, event: &RuleEvent) -> incident_recorder::Result<Applied> {
    match event {
        RuleEvent::Fired { resource, rule, at } => {
            let window = recorder.start_recording_at(
                resource.as_str(),
                Trigger::alert(rule.clone()),
                *at,
            )?;
            // The expression beside the trigger (`show` prints it), though
            // the trigger's id is the same text: the id is a name to resolve
            // by, the rule is what fired.
            let words = incident_recorder::TriggerWords {
                rule: Some(rule.clone()),
                ..Default::default()
            };
            if let Err(e) = recorder
                .store()
                .keep_trigger_words(window.as_str(), rule, *at, &words)
            {
                tracing::warn!(rule = %rule, error = %incident_recorder::error_chain(&e), "rule expression not kept");
            }
            Ok(Applied::Opened(window))
        }
        RuleEvent::Resolved { resource, rule, at } => recorder
            .resolve_trigger_at(resource, rule, Some(*at))
            .map(Applied::Resolved),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str) -> Rule {
        s.parse().unwrap()
    }

    #[test]
    fn rules_parse_to_a_canonical_id() {
        let r = rule("cpu>90 for 30s");
        assert_eq!(
            (r.metric.as_str(), r.op, r.threshold),
            ("cpu", Op::Gt, 90.0)
        );
        assert_eq!(r.hold, Duration::from_secs(30));
        assert_eq!(r.id(), "cpu>90 for 30s");
        assert_eq!(rule(" memory >= 85.5 ").id(), "memory>=85.5");
        assert_eq!(rule("load1<0.5 for 1h30m").id(), "load1<0.5 for 1h30m");
        assert_eq!(rule("disk <= -1").op, Op::Le);
        assert_eq!(rule("net_rx_bytes_per_s>1e6").threshold, 1e6);
        // Scraped series: the labels' = is part of the name.
        let r = rule("node_filesystem_avail_bytes{mountpoint=\"/\"}<1e9 for 1m");
        assert_eq!(r.metric, "node_filesystem_avail_bytes{mountpoint=\"/\"}");
        assert_eq!((r.op, r.threshold), (Op::Lt, 1e9));
        assert_eq!(rule("x{a=\"b c\"}>=2").metric, "x{a=\"b c\"}");
    }

    #[test]
    fn malformed_rules_say_what_is_wrong() {
        for (text, why) in [
            ("cpu", "no comparison"),
            ("cpu=>90", "must be >"),
            ("cpu==90", "must be >"),
            (">90", "metric name"),
            ("cpu load>90", "metric name"),
            ("cpu>ninety", "not a number"),
            ("cpu>", "not a number"),
            ("cpu>inf", "not a number"),
            ("cpu>90 for ever", "invalid duration"),
            ("cpu>90 for 30", "needs a unit"),
        ] {
            let err = text.parse::<Rule>().unwrap_err();
            assert!(err.contains(why), "{text:?}: {err}");
            assert!(err.contains("METRIC>VALUE"), "{err}");
        }
    }

    #[test]
    fn default_rules_cover_cpu_memory_and_disk() {
        let ids: Vec<String> = default_rules().iter().map(Rule::id).collect();
        assert_eq!(ids, ["cpu>90 for 1m", "memory>90 for 1m", "disk>90"]);
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_unix_ms(1_000_000 + s * 1000)
    }

    fn cpu(v: f64) -> Metrics {
        Metrics::new().with("cpu", v)
    }

    fn fired(s: i64) -> RuleEvent {
        RuleEvent::Fired {
            resource: "h".into(),
            rule: "cpu>90 for 10s".into(),
            at: at(s),
        }
    }

    fn resolved(s: i64) -> RuleEvent {
        RuleEvent::Resolved {
            resource: "h".into(),
            rule: "cpu>90 for 10s".into(),
            at: at(s),
        }
    }

    #[test]
    fn a_rule_fires_once_after_holding_and_resolves_when_clear() {
        let mut e = RuleEngine::new(vec![rule("cpu>90 for 10s")]);
        assert_eq!(e.observe("h", &cpu(95.0), at(0)), vec![]);
        assert_eq!(e.observe("h", &cpu(96.0), at(5)), vec![]);
        assert_eq!(e.observe("h", &cpu(97.0), at(10)), vec![fired(10)]);
        assert_eq!(e.observe("h", &cpu(99.0), at(15)), vec![]);
        // A sample without the metric changes nothing.
        assert_eq!(
            e.observe("h", &Metrics::new().with("mem", 1.0), at(20)),
            vec![]
        );
        assert_eq!(e.observe("h", &cpu(50.0), at(25)), vec![resolved(25)]);
        assert_eq!(e.observe("h", &cpu(40.0), at(30)), vec![]);
    }

    #[test]
    fn a_dip_before_the_hold_time_restarts_it() {
        let mut e = RuleEngine::new(vec![rule("cpu>90 for 10s")]);
        e.observe("h", &cpu(95.0), at(0));
        e.observe("h", &cpu(80.0), at(5));
        assert_eq!(e.observe("h", &cpu(95.0), at(10)), vec![]);
        assert_eq!(e.observe("h", &cpu(95.0), at(15)), vec![]);
        assert_eq!(e.observe("h", &cpu(95.0), at(20)), vec![fired(20)]);
    }

    #[test]
    fn the_first_clear_sample_resolves_leftovers_and_resources_are_separate() {
        let mut e = RuleEngine::new(vec![rule("cpu>90 for 10s")]);
        assert_eq!(e.observe("h", &cpu(10.0), at(0)), vec![resolved(0)]);
        assert_eq!(e.observe("h", &cpu(10.0), at(5)), vec![]);
        let mut zero = RuleEngine::new(vec![rule("cpu>90")]);
        let events = zero.observe("other", &cpu(91.0), at(0));
        assert_eq!(
            events,
            vec![RuleEvent::Fired {
                resource: "other".into(),
                rule: "cpu>90".into(),
                at: at(0),
            }]
        );
        assert_eq!(zero.observe("h", &cpu(91.0), at(0)).len(), 1);
    }

    #[test]
    fn the_wrapper_sends_events_and_passes_values_through() {
        struct Fixed;
        impl MetricsProvider for Fixed {
            fn current_metrics(&self, _: &str) -> Result<Metrics, ProviderError> {
                Ok(cpu(99.0))
            }
            fn monitored_resource_ids(&self) -> Vec<String> {
                vec!["h".into()]
            }
        }
        let (tx, rx) = std::sync::mpsc::channel::<RuleEvent>();
        let clock = incident_recorder::ManualClock::new(at(0));
        let p = RuleProvider::new(Fixed, vec![rule("cpu>90")], Arc::new(clock), tx);
        assert_eq!(p.current_metrics("h").unwrap(), cpu(99.0));
        assert_eq!(p.monitored_resource_ids(), vec!["h".to_owned()]);
        assert!(matches!(rx.try_recv(), Ok(RuleEvent::Fired { .. })));
    }
}
