//! The listener tests' rig: a recorder with a scripted provider and a
//! manual clock, its listener, and requests as a client sends them.
#![allow(dead_code)] // each test file uses a different subset

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use crate::common::{Scripted, secs, t};
use incident_recorder::listen::{ListenAuth, ListenConfig, Listener};
use incident_recorder::{IncidentRecorder, ManualClock, RecorderConfig, Timestamp};
use serde_json::{Value, json};

pub struct Rig {
    pub recorder: Arc<IncidentRecorder>,
    pub clock: ManualClock,
    pub listener: Listener,
}

pub fn config() -> RecorderConfig {
    RecorderConfig {
        sample_interval: secs(5),
        pre_incident_window: secs(30),
        post_incident_window: secs(60),
        hold_while_alert_active: true,
        ..RecorderConfig::default()
    }
}

pub fn rig_with(listen: impl FnOnce(&mut ListenConfig)) -> Rig {
    let clock = ManualClock::new(t(0));
    let recorder =
        Arc::new(IncidentRecorder::open_with_clock(config(), Arc::new(clock.clone())).unwrap());
    recorder.set_metrics_provider(Scripted::counting(&["web-1", "db:9100"]));
    let mut c = ListenConfig::new("127.0.0.1:0".parse().unwrap(), ListenAuth::Unauthenticated);
    listen(&mut c);
    let listener = Listener::start(Arc::clone(&recorder), c).unwrap();
    Rig {
        recorder,
        clock,
        listener,
    }
}

pub fn rig() -> Rig {
    rig_with(|_| {})
}

impl Rig {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.listener.local_addr())
    }

    pub fn ticks(&self, n: usize) {
        for _ in 0..n {
            self.recorder.record_sample().unwrap();
            self.clock.advance(secs(5));
        }
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> (u16, Value) {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .proxy(None)
            .build()
            .new_agent();
        let url = self.url(path);
        let mut response = match (method, body) {
            ("GET", _) => {
                let mut r = agent.get(&url);
                if let Some(t) = token {
                    r = r.header("Authorization", format!("Bearer {t}"));
                }
                r.call()
            }
            (m, b) => {
                let mut r = match m {
                    "POST" => agent.post(&url),
                    "PUT" => agent.put(&url),
                    other => panic!("{other}"),
                };
                if let Some(t) = token {
                    r = r.header("Authorization", format!("Bearer {t}"));
                }
                r.send(b.unwrap_or("").as_bytes())
            }
        }
        .unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.request("POST", path, Some(&body.to_string()), None)
    }
}

pub fn rfc3339(ts: Timestamp) -> String {
    serde_json::to_value(ts)
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

/// A webhook notification (payload version 4) with one alert.
pub fn notification(
    status: &str,
    alertname: &str,
    instance: &str,
    starts: Timestamp,
    ends: Option<Timestamp>,
) -> Value {
    json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"x\"}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "recorder",
        "groupLabels": {"alertname": alertname},
        "commonLabels": {"alertname": alertname, "instance": instance},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [{
            "status": status,
            "labels": {"alertname": alertname, "instance": instance},
            "annotations": {"summary": "hot"},
            "startsAt": rfc3339(starts),
            "endsAt": ends.map_or("0001-01-01T00:00:00Z".to_owned(), rfc3339),
            "generatorURL": "http://prometheus/graph",
            "fingerprint": format!("{:016x}", alertname.len() as u64 * 0x1111),
        }]
    })
}

pub fn result(answer: &Value, i: usize) -> (&str, Option<&str>) {
    let a = &answer["alerts"][i];
    (a["result"].as_str().unwrap(), a["window"].as_str())
}

impl Rig {
    pub fn clock_now(&self) -> Timestamp {
        use incident_recorder::Clock;
        self.clock.now()
    }
}

/// Sends raw bytes and reads the answer (until the server closes).
pub fn raw(r: &Rig, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(r.listener.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}
