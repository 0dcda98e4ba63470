//! `export --format csv`: one row per recorded value, for spreadsheets and
//! data tools: `window,resource,ts,ts_ms,metric,value`, a header row first,
//! CRLF line ends and RFC 4180 quoting (a field with a comma, a quote or a
//! line break is quoted, its quotes doubled; Prometheus series names such as
//! `node_filesystem_avail_bytes{mountpoint="/"}` need it).
//!
//! `ts` is RFC 3339 in UTC with milliseconds, `ts_ms` the same instant in Unix
//! milliseconds; `value` is written in the shortest form that reads back as
//! the same number. Rows come window by window (oldest first), then by time,
//! then by metric name: the rows of the `incident_samples` view.

use std::io::{self, Write};

use incident_recorder::IncidentWindow;

/// The header row.
pub const HEADER: &str = "window,resource,ts,ts_ms,metric,value\r\n";

/// Writes the rows of one window (with its points); returns how many.
pub fn write_window(out: &mut impl Write, w: &IncidentWindow) -> io::Result<u64> {
    let mut rows = 0;
    let window = field(w.id.as_str());
    let resource = field(&w.resource_id);
    for p in &w.data_points {
        let ts = p.timestamp;
        for (metric, value) in &p.metrics {
            write!(
                out,
                "{window},{resource},{ts},{},{},{value}\r\n",
                ts.as_unix_ms(),
                field(metric)
            )?;
            rows += 1;
        }
    }
    Ok(rows)
}

/// A field as RFC 4180 wants it: quoted when it holds a comma, a quote or
/// a line break (quotes doubled), as is otherwise.
fn field(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\"")).into()
    } else {
        text.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_as_rfc_4180_says() {
        assert_eq!(field("cpu"), "cpu");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(
            field("fs{mountpoint=\"/\"}"),
            "\"fs{mountpoint=\"\"/\"\"}\""
        );
        assert_eq!(field("x\ny"), "\"x\ny\"");
    }
}
