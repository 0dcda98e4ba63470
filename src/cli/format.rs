//! How values, times and sizes read in tables and messages.
//!
//! Times are UTC like everything stored (`2026-11-24 10:00:05Z`); values
//! keep two decimals like the AI digest, and from a thousand on (byte
//! rates) switch to k/M/G/T, so one column never mixes `1.40M` with
//! `76187.12`; durations are rounded to what a reader needs (`2m50s`, not
//! `2m50.002s`); counts group thousands (`12,000`).

use incident_recorder::Timestamp;
use incident_recorder::context::format_number;

/// `2026-11-24 10:00:05Z`.
pub fn time(t: Timestamp) -> String {
    let iso = t.to_string(); // 2026-11-24T10:00:05.250Z
    format!("{} {}Z", &iso[..10], &iso[11..19])
}

/// `HH:MM:SS` UTC: the time on `watch`'s lines and its warnings.
pub fn clock(t: Timestamp) -> String {
    time(t)[11..19].to_owned()
}

/// Two decimals below a thousand, then SI prefixes with two decimals:
/// `93.46`, `-0.50`, `76.19k`, `1.25M`.
pub fn value(v: f64) -> String {
    const PREFIXES: [(f64, &str); 4] = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")];
    for (scale, prefix) in PREFIXES {
        // 999.996 would round to "1000.00": it is 1.00k.
        if v.abs() >= scale * 0.999_995 {
            return format!("{}{prefix}", format_number(v / scale));
        }
    }
    format_number(v)
}

/// A count with its thousands grouped: `12,000`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
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

/// Go-style duration (`5m0s`), as in the AI digest, rounded: whole
/// seconds from a minute on (`2m50s`), tenths of a second below
/// (`2.5s`), milliseconds below a second (`250ms`).
pub fn duration_ms(ms: i64) -> String {
    let step = match ms.unsigned_abs() {
        0..1_000 => 1,
        1_000..60_000 => 100,
        _ => 1_000,
    };
    // Half away from zero, so a window of 2m59.5s reads 3m0s.
    let rounded = (ms + ms.signum() * step / 2) / step * step;
    incident_recorder::context::format_duration_ms(rounded)
}

/// True for a character stored text must not send to a terminal as is:
/// control characters (escape sequences, carriage returns, bells) and the
/// invisible bidirectional controls (U+202A-U+202E embeddings and
/// overrides, U+2066-U+2069 isolates, U+200E/U+200F marks, U+061C), which
/// reorder what is shown: `cpu\u{202e}gnp.exe` reads as `cpuexe.png`.
pub fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}'
        )
}

/// `text` with every character of [`unsafe_char`] but `keep` shown as
/// `\u{..}` instead.
fn escaped(text: &str, keep: impl Fn(char) -> bool) -> std::borrow::Cow<'_, str> {
    let escape = |c: char| unsafe_char(c) && !keep(c);
    if !text.chars().any(escape) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if escape(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// [`terminal_safe`] for text of several lines: line breaks and tabs are
/// kept, every other [`unsafe_char`] is shown escaped.
pub fn terminal_text(text: &str) -> std::borrow::Cow<'_, str> {
    escaped(text, |c| c == '\n' || c == '\t')
}

/// Writes `text` to `out` through [`terminal_text`]: how every text
/// rendering of stored data reaches the terminal.
pub fn write_text(out: &mut impl std::io::Write, text: &str) -> std::io::Result<()> {
    out.write_all(terminal_text(text).as_bytes())
}

/// `text` with every [`unsafe_char`] shown as `\u{..}` instead: stored
/// data is printed through this, so nothing a monitor sent can drive the
/// user's terminal or disguise what it shows.
pub fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    escaped(text, |_| false)
}

/// The pretty JSON formatter of `serde_json::to_writer_pretty`, but with
/// every [`unsafe_char`] serde_json would write as is (DEL, C1 controls
/// such as U+009B, the bidirectional controls) escaped as `\uXXXX`: the
/// same JSON to a parser, inert on a terminal.
#[derive(Default)]
pub struct SafeJson(serde_json::ser::PrettyFormatter<'static>);

impl serde_json::ser::Formatter for SafeJson {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut rest = fragment;
        while let Some((at, c)) = rest.char_indices().find(|&(_, c)| unsafe_char(c)) {
            w.write_all(&rest.as_bytes()[..at])?;
            // Every such character is in the Basic Multilingual Plane.
            write!(w, "\\u{:04x}", u32::from(c))?;
            rest = &rest[at + c.len_utf8()..];
        }
        w.write_all(rest.as_bytes())
    }

    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object_value(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_stay_short() {
        assert_eq!(value(93.456), "93.46");
        assert_eq!(value(-0.5), "-0.50");
        assert_eq!(value(999.99), "999.99");
        assert_eq!(value(999.999), "1.00k");
        assert_eq!(value(76_187.12), "76.19k");
        assert_eq!(value(123_456.0), "123.46k");
        assert_eq!(value(1_250_000.0), "1.25M");
        assert_eq!(value(-3e9), "-3.00G");
        assert_eq!(signed(0.0), "+0.00");
        assert_eq!(signed(-2.0), "-2.00");
    }

    #[test]
    fn controls_and_bidirectional_overrides_are_escaped() {
        assert_eq!(terminal_safe("cpu"), "cpu");
        assert_eq!(terminal_safe("a\u{1b}[2J"), "a\\u{1b}[2J");
        for c in [
            '\u{202a}', '\u{202e}', '\u{2066}', '\u{2069}', '\u{200e}', '\u{200f}', '\u{061c}',
        ] {
            let shown = terminal_safe(&format!("cpu{c}gnp.exe")).into_owned();
            assert!(!shown.contains(c), "{c:?}: {shown}");
            assert_eq!(shown, format!("cpu{}gnp.exe", c.escape_unicode()));
        }
        // Other format characters (a zero-width joiner in an emoji) stay.
        assert_eq!(terminal_safe("\u{200d}x\u{2065}"), "\u{200d}x\u{2065}");
        assert_eq!(terminal_text("a\n\tb\u{202e}"), "a\n\tb\\u{202e}");
    }

    #[test]
    fn json_escapes_what_a_terminal_would_act_on_and_parses_the_same() {
        let value =
            serde_json::json!({"name": "cpu\u{202e}gnp.exe\u{9b}2J\u{7f}\u{1b}", "n": [1, 2]});
        let mut out = Vec::new();
        let mut ser = serde_json::Serializer::with_formatter(&mut out, SafeJson::default());
        serde::Serialize::serialize(&value, &mut ser).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.chars().any(unsafe_char_but_layout), "{text:?}");
        assert!(
            text.contains(r"cpu\u202egnp.exe\u009b2J\u007f\u001b"),
            "{text}"
        );
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, value);
        assert_eq!(
            text,
            serde_json::to_string_pretty(&value)
                .unwrap()
                .replace('\u{202e}', r"\u202e")
                .replace('\u{9b}', r"\u009b")
                .replace('\u{7f}', r"\u007f")
        );
    }

    fn unsafe_char_but_layout(c: char) -> bool {
        unsafe_char(c) && c != '\n'
    }

    #[test]
    fn sizes_and_times_read_well() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 * 1024 * 1024), "5.0 MiB");
        let t = Timestamp::parse_rfc3339("2026-11-24T10:00:05.250Z").unwrap();
        assert_eq!(time(t), "2026-11-24 10:00:05Z");
        assert_eq!(clock(t), "10:00:05");
    }

    #[test]
    fn counts_group_thousands() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1,000");
        assert_eq!(count(12_000), "12,000");
        assert_eq!(count(1_234_567), "1,234,567");
    }

    #[test]
    fn durations_are_rounded_for_reading() {
        assert_eq!(duration_ms(170_002), "2m50s");
        assert_eq!(duration_ms(179_500), "3m0s");
        assert_eq!(duration_ms(1_000_000), "16m40s");
        assert_eq!(duration_ms(3_723_400), "1h2m3s");
        assert_eq!(duration_ms(2_549), "2.5s");
        assert_eq!(duration_ms(59_940), "59.9s");
        assert_eq!(duration_ms(250), "250ms");
        assert_eq!(duration_ms(0), "0s");
        assert_eq!(duration_ms(-170_002), "-2m50s");
    }
}
