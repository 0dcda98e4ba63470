//! The AI digest: header, the metrics ranked with their numbers (signs and
//! decimals right), the last 10 points; within its byte budget.

mod common;

use common::*;
use incident_recorder::{Metrics, Resource, Trigger};

#[test]
fn the_digest_has_the_summary_ranked_metrics_and_the_last_ten_points() {
    let rig = Rig::memory(small_config());
    let id = rig.start(
        Resource::named("vm-101", "web", "vm"),
        Trigger::alert("cpu>90"),
    );
    // 12 points: cpu climbs 80.004 → 93.456; temp drifts from 0.25 to -0.25.
    for i in 0..12 {
        let at = t(5 * i);
        rig.clock.set(at);
        let cpu = if i == 11 { 93.456 } else { 80.004 + i as f64 };
        let temp = if i == 11 { -0.25 } else { 0.25 };
        rig.recorder
            .push_sample(
                "vm-101",
                at,
                Metrics::new().with("cpu", cpu).with("temp", temp),
                None,
            )
            .unwrap();
    }
    rig.recorder.stop_recording(&id).unwrap();
    let text = rig
        .recorder
        .format_for_context(None, Some(&id))
        .unwrap()
        .unwrap();

    assert!(text.starts_with("\n## Incident Recording Data\n"), "{text}");
    assert!(
        text.contains(&format!("- Window: {id} (complete)")),
        "{text}"
    );
    assert!(text.contains("- Resource: vm-101 (web, vm)"), "{text}");
    assert!(text.contains("- Trigger: alert cpu>90"), "{text}");
    assert!(
        text.contains("- Duration: 55s\n- Data points: 12\n- Metrics: 2\n"),
        "{text}"
    );
    // The window opened before its first sample: no baseline, so no score;
    // both metrics are listed (by name) with their numbers.
    assert!(
        text.contains("- cpu: not scored: no values before the trigger (rank 1); low 80.00, avg "),
        "{text}"
    );
    assert!(text.contains(", peak 93.46, change +13.45\n"), "{text}");
    // The seed printed -0.5 as "0.50": the sign of values in (-1, 0) was lost.
    assert!(
        text.contains("- temp: not scored: no values before the trigger (rank 2); low -0.25, avg 0.21, p50 0.25, p95 0.25, peak 0.25, change -0.50\n"),
        "{text}"
    );
    // Nothing was left out.
    assert!(!text.contains("(left out"), "{text}");

    let recent = text.split("### Recent Data Points\n").nth(1).unwrap();
    let lines: Vec<&str> = recent.lines().collect();
    assert_eq!(lines.len(), 10, "{recent}");
    assert_eq!(lines[0], "10:00:10: cpu=82.00 temp=0.25");
    assert_eq!(lines[9], "10:00:55: cpu=93.46 temp=-0.25");
}

#[test]
fn the_digest_of_a_resource_is_its_most_recent_window() {
    let rig = Rig::memory(small_config());
    let first = rig.start("a", Trigger::manual());
    rig.recorder.stop_recording(&first).unwrap();
    rig.clock.set(t(100));
    let second = rig.start("a", Trigger::focus());
    let text = rig
        .recorder
        .format_for_context(Some("a"), None)
        .unwrap()
        .unwrap();
    assert!(
        text.contains(&format!("- Window: {second} (recording)")),
        "{text}"
    );
    assert!(
        text.contains("- Recording until at least: 2026-11-24T10:02:40.000Z"),
        "{text}"
    );
    assert!(
        !text.contains("### Summary"),
        "a recording window has no summary yet"
    );
    // A window id wins over the resource.
    let text = rig
        .recorder
        .format_for_context(Some("a"), Some(&first))
        .unwrap()
        .unwrap();
    assert!(text.contains(&first.to_string()));
    assert_eq!(
        rig.recorder
            .format_for_context(Some("nobody"), None)
            .unwrap(),
        None
    );
    assert_eq!(
        rig.recorder
            .format_for_context(None, Some(&"iw-x".into()))
            .unwrap(),
        None
    );
    assert_eq!(rig.recorder.format_for_context(None, None).unwrap(), None);
}
