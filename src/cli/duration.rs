//! Human durations on the command line: `500ms`, `5s`, `10m`, `1h30m`, `30d`.
//!
//! A duration is one or more `<integer><unit>` parts (units `ms`, `s`, `m`,
//! `h`, `d`, `w`), added up. A bare number is refused rather than guessed
//! (seconds? milliseconds?). [`format`] writes the same notation back, so
//! rule ids and messages read like what the user typed. Hand-written rather
//! than a crate: thirty lines, and the format is part of the CLI's contract.

use std::time::Duration;

const UNITS: &[(&str, u64)] = &[
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
    ("w", 604_800_000),
];

/// Parses `1h30m` and the like.
pub fn parse(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration; write e.g. 30s, 10m, 1h30m or 30d".into());
    }
    let mut ms: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "invalid duration {text:?}: expected a number at {rest:?}"
            ));
        }
        let (number, after) = rest.split_at(digits);
        let unit_len = after.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, after) = after.split_at(unit_len);
        let Some(&(_, scale)) = UNITS.iter().find(|(u, _)| *u == unit) else {
            return Err(if unit.is_empty() {
                format!("invalid duration {text:?}: {number} needs a unit (ms, s, m, h, d or w)")
            } else {
                format!("invalid duration {text:?}: unknown unit {unit:?}; use ms, s, m, h, d or w")
            });
        };
        let part = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(scale))
            .and_then(|p| ms.checked_add(p));
        ms = part.ok_or_else(|| format!("duration {text:?} is too long"))?;
        rest = after;
    }
    Ok(Duration::from_millis(ms))
}

/// Like [`parse`], refusing zero (window options where zero means nothing).
pub fn parse_positive(text: &str) -> Result<Duration, String> {
    match parse(text)? {
        d if d.is_zero() => Err(format!("duration {text:?} must be longer than zero")),
        d => Ok(d),
    }
}

/// Writes a duration in the notation [`parse`] reads: `1h30m`, `30s`, `250ms`.
pub fn format(d: Duration) -> String {
    let mut ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for &(unit, scale) in UNITS.iter().rev().filter(|(u, _)| *u != "w") {
        if ms >= scale {
            out.push_str(&(ms / scale).to_string());
            out.push_str(unit);
            ms %= scale;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn parses_units_and_sums() {
        assert_eq!(parse("5s"), Ok(secs(5)));
        assert_eq!(parse("10m"), Ok(secs(600)));
        assert_eq!(parse("1h30m"), Ok(secs(5400)));
        assert_eq!(parse("30d"), Ok(secs(30 * 86_400)));
        assert_eq!(parse("2w"), Ok(secs(14 * 86_400)));
        assert_eq!(parse(" 250ms "), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1m30s500ms"), Ok(Duration::from_millis(90_500)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn refuses_what_it_would_have_to_guess() {
        for bad in ["", "5", "s", "5x", "1h 30m", "-5s", "1.5h", "5sec"] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("duration"), "{bad:?}: {err}");
        }
        assert!(parse("5").unwrap_err().contains("needs a unit"));
        assert!(
            parse("99999999999999999999d")
                .unwrap_err()
                .contains("too long")
        );
        assert!(
            parse_positive("0m")
                .unwrap_err()
                .contains("longer than zero")
        );
    }

    #[test]
    fn formats_what_it_parses() {
        for text in ["30s", "1h30m", "30d", "250ms", "1m0s", "2d3h"] {
            let d = parse(text).unwrap();
            assert_eq!(parse(&format(d)), Ok(d), "{text}");
        }
        assert_eq!(format(secs(5400)), "1h30m");
        assert_eq!(format(secs(30)), "30s");
        assert_eq!(format(Duration::from_millis(1500)), "1s500ms");
        assert_eq!(format(Duration::ZERO), "0s");
    }
}
