//! How values, times and sizes read in tables and messages.
//!
//! Times are UTC like everything stored (`2026-11-24 10:00:05Z`); values
//! keep two decimals like the AI digest, and large ones (byte rates) switch
//! to k/M/G/T so table columns stay narrow.

use incident_recorder::Timestamp;
use incident_recorder::context::format_number;

/// `2026-11-24 10:00:05Z`.
pub fn time(t: Timestamp) -> String {
    let iso = t.to_string(); // 2026-11-24T10:00:05.250Z
    format!("{} {}Z", &iso[..10], &iso[11..19])
}

/// Two decimals below a hundred thousand, then SI prefixes: `93.46`,
/// `-0.50`, `1.25M`.
pub fn value(v: f64) -> String {
    const PREFIXES: [(f64, &str); 4] = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e5, "k")];
    for (scale, prefix) in PREFIXES {
        if v.abs() >= scale {
            let scale = if prefix == "k" { 1e3 } else { scale };
            return format!("{}{prefix}", format_number(v / scale));
        }
    }
    format_number(v)
}

/// Like [`value`] with a `+` on values that are not negative.
pub fn signed(v: f64) -> String {
    let s = value(v);
    if s.starts_with('-') {
        s
    } else {
        format!("+{s}")
    }
}

/// `512 B`, `1.5 KiB`, `12.3 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Go-style duration (`5m0s`), as in the AI digest.
pub fn duration_ms(ms: i64) -> String {
    incident_recorder::context::format_duration_ms(ms)
}

/// [`terminal_safe`] for text of several lines: line breaks and tabs are
/// kept, every other control character is shown escaped.
pub fn terminal_text(text: &str) -> std::borrow::Cow<'_, str> {
    let control = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.chars().any(control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if control(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Writes `text` to `out` through [`terminal_text`]: how every text
/// rendering of stored data reaches the terminal.
pub fn write_text(out: &mut impl std::io::Write, text: &str) -> std::io::Result<()> {
    out.write_all(terminal_text(text).as_bytes())
}

/// `text` with every control character (escape sequences, carriage returns,
/// bells...) shown as `\u{..}` instead: stored data is printed through this,
/// so nothing a monitor sent can drive the user's terminal.
pub fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_stay_short() {
        assert_eq!(value(93.456), "93.46");
        assert_eq!(value(-0.5), "-0.50");
        assert_eq!(value(99_999.0), "99999.00");
        assert_eq!(value(123_456.0), "123.46k");
        assert_eq!(value(1_250_000.0), "1.25M");
        assert_eq!(value(-3e9), "-3.00G");
        assert_eq!(signed(0.0), "+0.00");
        assert_eq!(signed(-2.0), "-2.00");
    }

    #[test]
    fn sizes_and_times_read_well() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 * 1024 * 1024), "5.0 MiB");
        let t = Timestamp::parse_rfc3339("2026-11-24T10:00:05.250Z").unwrap();
        assert_eq!(time(t), "2026-11-24 10:00:05Z");
    }
}
