//! A trigger's own words (issue 20 part 4) kept on its row: read back with
//! the window, kept once, carried by a native export and its import, and
//! refused by an import when they hold control characters.

mod common;

use std::collections::BTreeMap;

use common::*;
use incident_recorder::{Metrics, Store, Trigger, TriggerWords, WindowTrigger};

fn words() -> TriggerWords {
    TriggerWords {
        labels: BTreeMap::from([
            ("alertname".to_owned(), "NodeHot".to_owned()),
            ("severity".to_owned(), "page".to_owned()),
        ]),
        annotations: BTreeMap::from([
            ("summary".to_owned(), "the node is hot".to_owned()),
            (
                "runbook_url".to_owned(),
                "https://runbooks.example/hot".to_owned(),
            ),
        ]),
        rule: None,
    }
}

#[test]
fn words_are_kept_once_and_travel_through_a_native_export() {
    let rig = Rig::file(small_config());
    for i in 0..3 {
        let m = Metrics::new().with("cpu", 10.0 + f64::from(i));
        rig.recorder
            .push_sample("vm", t(5 * i64::from(i)), m, None)
            .unwrap();
    }
    rig.clock.set(t(15));
    let id = rig.start("vm", Trigger::alert("NodeHot/abc"));
    let store = rig.recorder.store();
    assert!(
        store
            .keep_trigger_words(id.as_str(), "NodeHot/abc", t(15), &words())
            .unwrap()
    );
    // A repeat keeps the first words; an unknown trigger takes none.
    let mut other = words();
    other.annotations.insert("summary".into(), "changed".into());
    assert!(
        !store
            .keep_trigger_words(id.as_str(), "NodeHot/abc", t(15), &other)
            .unwrap()
    );
    assert!(
        !store
            .keep_trigger_words(id.as_str(), "Other/1", t(15), &other)
            .unwrap()
    );
    rig.recorder.stop_recording(&id).unwrap();
    let w = rig.recorder.window(&id).unwrap().unwrap();
    assert_eq!(w.triggers[0].annotations["summary"], "the node is hot");
    assert_eq!(w.triggers[0].labels["severity"], "page");

    // Native export is the window's JSON; importing it keeps the words.
    let line = serde_json::to_string(&w).unwrap();
    assert!(
        line.contains(r#""runbook_url":"https://runbooks.example/hot""#),
        "{line}"
    );
    let dir = tempfile::tempdir().unwrap();
    let copy = Store::open(dir.path().join("copy.db")).unwrap();
    assert!(
        copy.import_window(&serde_json::from_str(&line).unwrap())
            .unwrap()
    );
    let back = copy.window(id.as_str()).unwrap().unwrap();
    assert_eq!(back.triggers, w.triggers);
}

#[test]
fn an_import_refuses_words_with_control_characters_and_cuts_long_ones() {
    let rig = Rig::file(small_config());
    let id = rig.start("vm", Trigger::alert("A/1"));
    rig.recorder.stop_recording(&id).unwrap();
    let mut w = rig.recorder.window(&id).unwrap().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let copy = Store::open(dir.path().join("copy.db")).unwrap();
    w.triggers[0]
        .annotations
        .insert("summary".into(), "\u{1b}]0;title\u{7}".into());
    let err = copy.import_window(&w).unwrap_err().to_string();
    assert!(err.contains("control character"), "{err}");
    assert!(
        copy.window(id.as_str()).unwrap().is_none(),
        "nothing stored"
    );
    w.triggers[0].annotations.insert(
        "summary".into(),
        "y".repeat(WindowTrigger::MAX_VALUE_BYTES + 10),
    );
    assert!(copy.import_window(&w).unwrap());
    let back = copy.window(id.as_str()).unwrap().unwrap();
    let summary = &back.triggers[0].annotations["summary"];
    assert!(summary.ends_with(WindowTrigger::CUT_MARKER), "{summary}");
    assert!(summary.len() <= WindowTrigger::MAX_VALUE_BYTES);
}

#[test]
fn the_words_of_all_annotations_together_are_bounded() {
    // 10 annotations of 4 KB: 16 KB in all, the rest the marker alone.
    let many: BTreeMap<String, String> = (0..10)
        .map(|i| (format!("a{i}"), "z".repeat(4000)))
        .collect();
    let kept = WindowTrigger::bound_words(many, true).unwrap();
    let total: usize = kept.iter().map(|(k, v)| k.len() + v.len()).sum();
    assert!(total <= WindowTrigger::MAX_WORDS_BYTES + 10 * WindowTrigger::CUT_MARKER.len());
    assert_eq!(kept.len(), 10, "every name kept");
    assert_eq!(kept["a9"], WindowTrigger::CUT_MARKER);
    assert_eq!(kept["a0"].len(), 4000);
    // Newlines are allowed in annotations, not in labels.
    let multi = BTreeMap::from([("d".to_owned(), "a\nb".to_owned())]);
    assert!(WindowTrigger::bound_words(multi.clone(), true).is_ok());
    assert!(WindowTrigger::bound_words(multi, false).is_err());
}
