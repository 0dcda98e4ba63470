//! Static SVG drawn on the server: the listing's sparklines and
//! `GET /w/ID/chart.svg`, a picture of a window's top metrics for a chat
//! message or a ticket (no script, no font but the viewer's sans-serif).

use std::fmt::Write;

use super::escape;
use crate::model::{IncidentWindow, Timestamp};

/// Most metrics one SVG chart draws (`top` is capped to it).
pub const MAX_SVG_METRICS: usize = 20;

const WIDTH: f64 = 800.0;
const PANEL: f64 = 110.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 16.0;
const HEAD: f64 = 18.0;
const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf",
];

/// A `width` × `height` sparkline of `values` (gaps skipped), or an empty
/// box when fewer than two values.
pub fn sparkline(values: &[f64], width: u32, height: u32) -> String {
    let mut out = format!(
        "<svg class=\"spark\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" \
         height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\">"
    );
    let thinned;
    let values = if values.len() > 2 * width as usize {
        thinned = thin(values, width as usize);
        &thinned[..]
    } else {
        values
    };
    if values.len() >= 2 {
        let (lo, hi) = bounds(values.iter().copied());
        let (w, h) = (f64::from(width), f64::from(height));
        let step = w / (values.len() - 1) as f64;
        let pts: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let y = h - 1.0 - (v - lo) / (hi - lo) * (h - 2.0);
                format!("{:.1},{:.1}", i as f64 * step, y)
            })
            .collect();
        let _ = write!(
            out,
            "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.2\" points=\"{}\"/>",
            pts.join(" ")
        );
    }
    out.push_str("</svg>");
    out
}

/// `values` cut into `buckets` runs, each kept as its low and high in
/// time order: a line a pixel wide per run keeps every spike.
fn thin(values: &[f64], buckets: usize) -> Vec<f64> {
    let size = values.len().div_ceil(buckets.max(1));
    values
        .chunks(size)
        .flat_map(|run| {
            let (lo_at, hi_at) = run.iter().enumerate().fold((0, 0), |(l, h), (i, v)| {
                (
                    if *v < run[l] { i } else { l },
                    if *v > run[h] { i } else { h },
                )
            });
            [run[lo_at.min(hi_at)], run[lo_at.max(hi_at)]]
        })
        .collect()
}

/// The lowest and highest of `values`, spread apart when equal so a flat
/// line draws in the middle instead of dividing by zero.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo > 0.0 {
        (lo, hi)
    } else {
        (lo - 1.0, hi + 1.0)
    }
}

/// The SVG chart of `metrics` of `w`: a panel each on one time axis, the
/// pre-incident part shaded, the triggers marked red and resolves green.
pub fn chart_svg(w: &IncidentWindow, metrics: &[String]) -> String {
    let first = w.data_points.first().map_or(w.start_time, |p| p.timestamp);
    let last = w.data_points.last().map_or(first, |p| p.timestamp);
    let t0 = first.as_unix_ms() as f64;
    let span = ((last.as_unix_ms() - first.as_unix_ms()).max(1)) as f64;
    let plot_w = WIDTH - LEFT - RIGHT;
    let x = |t: Timestamp| LEFT + (t.as_unix_ms() as f64 - t0) / span * plot_w;
    let height = HEAD + PANEL * metrics.len().max(1) as f64 + 24.0;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"11\">\
         <rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>"
    );
    let _ = write!(
        out,
        "<text x=\"{LEFT}\" y=\"13\" font-size=\"12\" font-weight=\"bold\">{} · {} · {}</text>",
        escape(w.resource_name.as_deref().unwrap_or(&w.resource_id)),
        escape(w.id.as_str()),
        escape(w.trigger_type.as_str()),
    );
    let bottom = HEAD + PANEL * metrics.len() as f64;
    if let Some(tt) = w.trigger_time.filter(|&t| t > first) {
        let right = x(tt.min(last));
        let _ = write!(
            out,
            "<rect class=\"pre-incident\" x=\"{LEFT:.1}\" y=\"{HEAD}\" width=\"{:.1}\" \
             height=\"{:.1}\" fill=\"#888\" fill-opacity=\"0.15\"/>",
            right - LEFT,
            bottom - HEAD
        );
    }
    for (i, name) in metrics.iter().enumerate() {
        panel(&mut out, w, name, i, &x);
    }
    let mut mark = |t: Timestamp, class: &str, color: &str| {
        if t >= first && t <= last {
            let _ = write!(
                out,
                "<line class=\"{class}\" x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{HEAD}\" y2=\"{bottom:.1}\" \
                 stroke=\"{color}\" stroke-width=\"1.5\"/>",
                x(t)
            );
        }
    };
    for t in &w.triggers {
        mark(t.fired_at, "trigger", "#d00");
        if let Some(r) = t.resolved_at {
            mark(r, "resolve", "#090");
        }
    }
    if w.triggers.is_empty()
        && let Some(t) = w.trigger_time
    {
        mark(t, "trigger", "#d00");
    }
    let _ = write!(
        out,
        "<text x=\"{LEFT}\" y=\"{:.1}\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" \
         text-anchor=\"end\">{}</text></svg>",
        bottom + 16.0,
        first,
        WIDTH - RIGHT,
        bottom + 16.0,
        last
    );
    out
}

/// One metric's panel: its name, low and high, and its line.
fn panel(
    out: &mut String,
    w: &IncidentWindow,
    name: &str,
    i: usize,
    x: &impl Fn(Timestamp) -> f64,
) {
    let top = HEAD + PANEL * i as f64 + 20.0;
    let h = PANEL - 28.0;
    let values = w
        .data_points
        .iter()
        .filter_map(|p| p.metrics.get(name).map(|&v| (p.timestamp, v)));
    let (lo, hi) = bounds(values.clone().map(|(_, v)| v));
    let y = |v: f64| top + h - (v - lo) / (hi - lo) * h;
    let color = COLORS[i % COLORS.len()];
    let _ = write!(
        out,
        "<text x=\"{LEFT}\" y=\"{:.1}\" font-weight=\"bold\">{}</text>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
         <rect x=\"{LEFT}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"none\" stroke=\"#ccc\"/>",
        top - 3.0,
        escape(name),
        LEFT - 4.0,
        top + 9.0,
        number(hi),
        LEFT - 4.0,
        top + h,
        number(lo),
        WIDTH - LEFT - RIGHT,
    );
    let pts: Vec<String> = values
        .map(|(t, v)| format!("{:.1},{:.1}", x(t), y(v)))
        .collect();
    let _ = write!(
        out,
        "<polyline class=\"series\" data-metric=\"{}\" fill=\"none\" stroke=\"{color}\" \
         stroke-width=\"1.3\" points=\"{}\"/>",
        escape(name),
        pts.join(" ")
    );
}

/// A value short enough for an axis label.
fn number(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.3}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.3}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparkline_spans_its_box_and_a_flat_one_draws() {
        let s = sparkline(&[1.0, 3.0, 2.0], 100, 20);
        assert!(s.contains("points=\"0.0,19.0 50.0,1.0 100.0,10.0\""), "{s}");
        assert!(sparkline(&[5.0, 5.0], 10, 10).contains("polyline"));
        assert!(!sparkline(&[5.0], 10, 10).contains("polyline"));
        let mut many = vec![0.0; 1000];
        many[567] = 9.0;
        let thinned = thin(&many, 10);
        assert_eq!(thinned.len(), 20);
        assert!(thinned.contains(&9.0), "a spike survives thinning");
    }

    #[test]
    fn axis_numbers_are_short() {
        assert_eq!(number(2.5e9), "2.500G");
        assert_eq!(number(12_345.0), "12.3k");
        assert_eq!(number(42.0), "42");
        assert_eq!(number(0.125), "0.12");
    }
}
