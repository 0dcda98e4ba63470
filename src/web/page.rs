//! The HTML of `/`, `/w/ID` and the report.
//!
//! Every text that came from the database goes through [`escape`] (or into
//! the JSON block through [`data_block`]); the markup has no inline script,
//! no `style` attribute and no event handler, so the pages run under
//! [`super::PAGE_CSP`].

use std::fmt::Write;

use serde_json::{Value, json};

use super::{APP_CSS, APP_JS, UPLOT_CSS, UPLOT_JS, csp_hash, data_block, escape, short, url_part};
use crate::context::format_duration_ms;
use crate::model::{IncidentWindow, Timestamp, WindowStatus};

/// What the listing was asked for, shown back in its filter form.
#[derive(Clone, Debug, Default)]
pub struct IndexQuery {
    /// `resource=`.
    pub resource: Option<String>,
    /// `status=`.
    pub status: Option<WindowStatus>,
    /// `since=`, as typed.
    pub since: Option<String>,
    /// `limit=`: the page size, to know whether there is a next page.
    pub limit: usize,
}

/// Where a window page will be read: served by the listener (code from
/// `/assets/`, links to the API) or a report file (everything inline).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Served,
    Report,
}

fn head(out: &mut String, title: &str, mode: Mode) {
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\"><title>{}</title>",
        escape(title)
    );
    match mode {
        Mode::Served => out.push_str(
            "<link rel=\"stylesheet\" href=\"/assets/uplot-1.6.32.min.css\">\
             <link rel=\"stylesheet\" href=\"/assets/app.css\">",
        ),
        Mode::Report => {
            let _ = write!(
                out,
                "<meta http-equiv=\"Content-Security-Policy\" content=\"{}\"><style>{}</style>",
                report_csp(),
                report_css()
            );
        }
    }
    out.push_str("</head>");
}

/// The report's style: uPlot's and ours, in one inline `<style>`.
fn report_css() -> String {
    [UPLOT_CSS, "\n", APP_CSS].concat()
}

/// The report's Content-Security-Policy (its `<meta>`, and the header of
/// `/w/ID/report.html`): exactly its two scripts and its style, by hash;
/// nothing from the network.
pub fn report_csp() -> String {
    format!(
        "default-src 'none'; script-src {} {}; style-src {}; img-src data:; base-uri 'none'; \
         form-action 'none'",
        csp_hash(UPLOT_JS),
        csp_hash(APP_JS),
        csp_hash(&report_css()),
    )
}

fn scripts(out: &mut String, mode: Mode) {
    match mode {
        Mode::Served => out.push_str(
            "<script src=\"/assets/uplot-1.6.32.min.js\"></script>\
             <script src=\"/assets/app.js\"></script>",
        ),
        Mode::Report => {
            let _ = write!(out, "<script>{UPLOT_JS}</script><script>{APP_JS}</script>");
        }
    }
}

/// The page of one window, as `GET /w/ID` serves it.
pub fn window_page(w: &IncidentWindow, now: Timestamp) -> String {
    render(w, now, Mode::Served)
}

/// The self-contained report of one window (`export --format html`,
/// `GET /w/ID/report.html`): what `/w/ID` shows, with its code, style and
/// data inline, so it opens from disk without any network.
pub fn report(w: &IncidentWindow, now: Timestamp) -> String {
    render(w, now, Mode::Report)
}

fn resource_label(w: &IncidentWindow) -> String {
    match &w.resource_name {
        Some(n) if n != &w.resource_id => format!("{n} ({})", w.resource_id),
        _ => w.resource_id.clone(),
    }
}

fn duration(w: &IncidentWindow, now: Timestamp) -> String {
    let end = w.end_time.unwrap_or(now);
    let d = format_duration_ms((end.as_unix_ms() - w.start_time.as_unix_ms()).max(0));
    if w.end_time.is_none() {
        format!("{d} so far")
    } else {
        d
    }
}

fn render(w: &IncidentWindow, now: Timestamp, mode: Mode) -> String {
    let order = super::metric_order(w);
    let resource = resource_label(w);
    let id = w.id.as_str();
    let mut out = String::with_capacity(64 * 1024 + w.data_points.len() * 64);
    head(&mut out, &format!("{resource} · {id}"), mode);
    let recording = w.status == WindowStatus::Recording;
    let _ = write!(
        out,
        "<body data-page=\"window\"{}><header>",
        if recording && mode == Mode::Served {
            " data-recording=\"1\""
        } else {
            ""
        }
    );
    if mode == Mode::Served {
        out.push_str("<a class=\"back\" href=\"/\">← All windows</a>");
    }
    let _ = write!(
        out,
        "<h1><span class=\"resource\">{}</span> <span class=\"id\">{}</span></h1>\
         <p class=\"facts\"><span class=\"status status-{}\">{}</span> · {} trigger{} · \
         from {} to {} · {} · {} points</p>",
        escape(&resource),
        escape(id),
        w.status.as_str(),
        w.status.as_str(),
        escape(w.trigger_type.as_str()),
        w.trigger_id
            .as_deref()
            .map(|t| format!(" <code>{}</code>", escape(t)))
            .unwrap_or_default(),
        short(w.start_time),
        w.end_time.map_or_else(|| "now (recording)".into(), short),
        escape(&duration(w, now)),
        w.data_points.len(),
    );
    if mode == Mode::Served {
        let u = url_part(id);
        let _ = write!(
            out,
            "<nav class=\"links\"><a href=\"/windows/{u}\">JSON</a> · \
             <a href=\"/w/{u}/report.html\" download=\"{}.html\">HTML report</a> · \
             <a href=\"/w/{u}/chart.svg\">SVG chart</a></nav>",
            escape(id)
        );
    }
    out.push_str(
        "</header><section class=\"controls\"><input id=\"filter\" type=\"search\" \
         placeholder=\"Filter metrics\" aria-label=\"Filter metrics\"> <button id=\"reset\" \
         type=\"button\">Reset zoom</button> <span class=\"key\"><span class=\"k-pre\">shaded: \
         pre-incident</span> <span class=\"k-trig\">trigger</span> <span class=\"k-res\">resolve\
         </span> <span class=\"k-dl\">deadline</span> <span class=\"k-an\">anomaly</span> · drag \
         to zoom, double-click to reset</span></section><div id=\"charts\"></div>\
         <noscript><p>The charts need JavaScript; the tables below do not.</p></noscript>",
    );
    summary_table(&mut out, w, &order);
    triggers_table(&mut out, w);
    super::words::alert_words(&mut out, w);
    anomalies_list(&mut out, w);
    notes_list(&mut out, w);
    metadata_table(&mut out, w);
    let _ = write!(
        out,
        "<script type=\"application/json\" id=\"window-data\">{}</script>",
        data_block(&window_data(w, &order))
    );
    scripts(&mut out, mode);
    out.push_str("</body></html>\n");
    out
}

/// What the charts draw: times in seconds (uPlot's unit), a value array
/// per metric (null where a point lacks it) in [`super::metric_order`],
/// and the marks.
fn window_data(w: &IncidentWindow, order: &[String]) -> Value {
    let secs = |t: Timestamp| t.as_unix_ms() as f64 / 1000.0;
    let t: Vec<f64> = w.data_points.iter().map(|p| secs(p.timestamp)).collect();
    let series: Vec<Value> = order
        .iter()
        .map(|name| {
            let v: Vec<Option<f64>> = w
                .data_points
                .iter()
                .map(|p| p.metrics.get(name).copied())
                .collect();
            json!({ "name": name, "v": v })
        })
        .collect();
    let mut triggers: Vec<f64> = w.triggers.iter().map(|t| secs(t.fired_at)).collect();
    if triggers.is_empty()
        && let Some(tt) = w.trigger_time
    {
        triggers.push(secs(tt));
    }
    let resolves: Vec<f64> = w
        .triggers
        .iter()
        .filter_map(|t| t.resolved_at.map(secs))
        .collect();
    let anomalies: Vec<Value> = w
        .summary
        .iter()
        .flat_map(|s| &s.anomaly_points)
        .map(|a| json!([a.metric, secs(a.timestamp), a.value]))
        .collect();
    json!({
        "id": w.id.as_str(),
        "recording": w.status == WindowStatus::Recording,
        "t": t,
        "series": series,
        "pre": w.trigger_time.map(|tt| [secs(w.start_time), secs(tt)]),
        "triggers": triggers,
        "resolves": resolves,
        "deadline": w.deadline.map(secs),
        "anomalies": anomalies,
    })
}

fn summary_table(out: &mut String, w: &IncidentWindow, order: &[String]) {
    let Some(s) = &w.summary else { return };
    out.push_str(
        "<h2>Summary</h2><table class=\"summary\"><thead><tr><th>metric</th><th>samples</th>\
         <th>low</th><th>mean</th><th>p50</th><th>p95</th><th>peak</th><th>change</th>\
         <th title=\"shift after the trigger, in robust deviations of the baseline before it\">\
         moved</th></tr></thead><tbody>",
    );
    let cell = |m: &std::collections::BTreeMap<String, f64>, name: &str| {
        m.get(name).map_or_else(String::new, |v| format!("{v:.4}"))
    };
    for name in order {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td>{}</tr>",
            escape(name),
            s.samples.get(name).copied().unwrap_or_default(),
            cell(&s.lows, name),
            cell(&s.averages, name),
            cell(&s.p50, name),
            cell(&s.p95, name),
            cell(&s.peaks, name),
            cell(&s.changes, name),
            moved(s.change_scores.get(name)),
        );
    }
    out.push_str("</tbody></table>");
}

/// The `moved` cell: the change score (signed: + went up), or a dash
/// whose title says why there is none.
fn moved(change: Option<&crate::model::MetricChange>) -> String {
    match change {
        Some(c) => match (c.score, &c.unscored) {
            (Some(score), _) => format!("<td>{score:+.1}</td>"),
            (None, why) => format!(
                "<td title=\"{}\">–</td>",
                escape(why.as_deref().unwrap_or("no score"))
            ),
        },
        None => "<td></td>".into(),
    }
}

fn triggers_table(out: &mut String, w: &IncidentWindow) {
    if w.triggers.is_empty() && w.deadline.is_none() {
        return;
    }
    out.push_str(
        "<h2>Triggers</h2><table class=\"triggers\"><thead><tr><th>type</th><th>id</th>\
         <th>fired</th><th>resolved</th></tr></thead><tbody>",
    );
    for t in &w.triggers {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(t.trigger_type.as_str()),
            escape(t.trigger_id.as_deref().unwrap_or("")),
            short(t.fired_at),
            t.resolved_at.map(short).unwrap_or_default(),
        );
    }
    out.push_str("</tbody></table>");
    if let Some(d) = w.deadline {
        let _ = write!(out, "<p class=\"deadline\">Deadline: {}</p>", short(d));
    }
}

fn anomalies_list(out: &mut String, w: &IncidentWindow) {
    let Some(s) = w.summary.as_ref().filter(|s| !s.anomalies.is_empty()) else {
        return;
    };
    out.push_str("<h2>Anomalies</h2><ul class=\"anomalies\">");
    for a in &s.anomalies {
        let _ = write!(out, "<li>{}</li>", escape(a));
    }
    out.push_str("</ul>");
}

fn notes_list(out: &mut String, w: &IncidentWindow) {
    if w.notes.is_empty() {
        return;
    }
    out.push_str("<h2>Notes</h2><ul class=\"notes\">");
    for n in &w.notes {
        let _ = write!(
            out,
            "<li><time>{}</time> <b>{}</b>: {}</li>",
            short(n.at),
            escape(&n.author),
            escape(&n.text)
        );
    }
    out.push_str("</ul>");
}

/// Longest metadata value shown, in bytes of compact JSON.
const MAX_METADATA_VALUE: usize = 2048;

/// What the host attached to the sample nearest the trigger (the top
/// processes, if the source recorded them): a row per key, the value as
/// compact JSON, clipped.
fn metadata_table(out: &mut String, w: &IncidentWindow) {
    let at = w.trigger_time.unwrap_or(w.start_time);
    let Some((ts, meta)) = w
        .data_points
        .iter()
        .filter_map(|p| p.metadata.as_ref().map(|m| (p.timestamp, m)))
        .min_by_key(|(ts, _)| (ts.as_unix_ms() - at.as_unix_ms()).abs())
    else {
        return;
    };
    let _ = write!(
        out,
        "<h2>Metadata at {}</h2><table class=\"metadata\"><tbody>",
        short(ts)
    );
    for (k, v) in meta {
        let mut text = v.to_string();
        if text.len() > MAX_METADATA_VALUE {
            let mut cut = MAX_METADATA_VALUE;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push('…');
        }
        let _ = write!(
            out,
            "<tr><th>{}</th><td><code>{}</code></td></tr>",
            escape(k),
            escape(&text)
        );
    }
    out.push_str("</tbody></table>");
}

/// The listing page: `windows` (read with their points, most recent
/// first) as a table with a sparkline each of the metric that moved most,
/// under a filter form showing `query`.
pub fn index_page(windows: &[IncidentWindow], query: &IndexQuery, now: Timestamp) -> String {
    let mut out = String::with_capacity(8 * 1024 + windows.len() * 1024);
    head(&mut out, "Incident windows", Mode::Served);
    let recording = windows.iter().any(|w| w.status == WindowStatus::Recording);
    let _ = write!(
        out,
        "<body data-page=\"index\"{}><header><h1>Incident windows</h1></header>\
         <form class=\"filters\" method=\"get\" action=\"/\">\
         <label>Resource <input name=\"resource\" value=\"{}\"></label> \
         <label>Status <select name=\"status\"><option value=\"\">any</option>",
        if recording {
            " data-recording=\"1\""
        } else {
            ""
        },
        escape(query.resource.as_deref().unwrap_or("")),
    );
    for s in WindowStatus::ALL {
        let _ = write!(
            out,
            "<option{}>{}</option>",
            if query.status == Some(*s) {
                " selected"
            } else {
                ""
            },
            s.as_str()
        );
    }
    let _ = write!(
        out,
        "</select></label> <label>Since <input name=\"since\" placeholder=\"2026-12-01T00:00:00Z\" \
         value=\"{}\"></label> <button type=\"submit\">Filter</button> <a href=\"/\">clear</a></form>",
        escape(query.since.as_deref().unwrap_or("")),
    );
    if windows.is_empty() {
        out.push_str("<p class=\"empty\">No windows match.</p>");
    } else {
        out.push_str(
            "<table class=\"windows\"><thead><tr><th>window</th><th>resource</th><th>trigger</th>\
             <th>triggered</th><th>duration</th><th>points</th><th>status</th><th>moved most</th>\
             </tr></thead><tbody>",
        );
        for w in windows {
            index_row(&mut out, w, now);
        }
        out.push_str("</tbody></table>");
    }
    if let Some(last) = windows.last().filter(|_| windows.len() >= query.limit) {
        let mut next = format!("/?before={}", url_part(last.id.as_str()));
        if let Some(r) = &query.resource {
            let _ = write!(next, "&resource={}", url_part(r));
        }
        if let Some(s) = query.status {
            let _ = write!(next, "&status={s}");
        }
        if let Some(s) = &query.since {
            let _ = write!(next, "&since={}", url_part(s));
        }
        let _ = write!(
            out,
            "<p><a class=\"older\" href=\"{}\">Older windows →</a></p>",
            escape(&next)
        );
    }
    scripts(&mut out, Mode::Served);
    out.push_str("</body></html>\n");
    out
}

fn index_row(out: &mut String, w: &IncidentWindow, now: Timestamp) {
    let top = super::metric_order(w).into_iter().next();
    let spark = top.as_ref().map_or_else(String::new, |m| {
        let values: Vec<f64> = w
            .data_points
            .iter()
            .filter_map(|p| p.metrics.get(m).copied())
            .collect();
        format!(
            "{} <span class=\"metric\">{}</span>",
            super::sparkline(&values, 120, 24),
            escape(m)
        )
    });
    let _ = write!(
        out,
        "<tr class=\"window status-{}\"><td><a href=\"/w/{}\">{}</a></td><td class=\"resource\">{}\
         </td><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        w.status.as_str(),
        url_part(w.id.as_str()),
        escape(w.id.as_str()),
        escape(&resource_label(w)),
        escape(w.trigger_type.as_str()),
        w.trigger_id
            .as_deref()
            .map(|t| format!(" <code>{}</code>", escape(t)))
            .unwrap_or_default(),
        short(w.trigger_time.unwrap_or(w.start_time)),
        escape(&duration(w, now)),
        w.data_points.len(),
        if w.status == WindowStatus::Recording {
            "<b>recording</b>"
        } else {
            w.status.as_str()
        },
        spark,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DataPoint, TriggerType, WindowId};

    #[test]
    fn metadata_near_the_trigger_is_shown_escaped_and_clipped() {
        let point = |s: i64, meta: serde_json::Value| DataPoint {
            timestamp: Timestamp::from_unix_ms(s * 1000),
            metrics: [("cpu".to_owned(), s as f64)].into(),
            metadata: meta.as_object().cloned(),
        };
        let w = IncidentWindow {
            id: WindowId::new("iw-1"),
            resource_id: "web-1".into(),
            resource_name: None,
            resource_type: None,
            trigger_type: TriggerType::Manual,
            trigger_id: None,
            trigger_time: Some(Timestamp::from_unix_ms(20_000)),
            start_time: Timestamp::from_unix_ms(0),
            end_time: None,
            deadline: None,
            status: WindowStatus::Recording,
            triggers: Vec::new(),
            notes: Vec::new(),
            data_points: vec![
                point(0, json!({"top": "early"})),
                point(10, json!(null)),
                point(21, json!({"<b>top</b>": ["<i>java</i>", "x".repeat(5000)]})),
            ],
            summary: None,
        };
        let page = window_page(&w, Timestamp::from_unix_ms(30_000));
        assert!(page.contains("Metadata at"));
        assert!(!page.contains("early"), "the sample nearest the trigger");
        assert!(page.contains("&lt;b&gt;top&lt;/b&gt;") && page.contains("&lt;i&gt;java"));
        assert!(!page.contains("<b>top") && !page.contains(&"x".repeat(2100)));
        assert!(page.contains("30s so far"), "a recording window's duration");
    }
}
