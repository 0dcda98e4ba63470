//! Input checks, the same on every way in (the recorder's samples and
//! triggers, imports, trigger requests): bad input gets a clear error (or a
//! counted skip for single values) before it can reach the buffers or the
//! database. Below the recorder and the store, which both apply them.

use std::sync::Arc;

use crate::error::{Error, Result, clip};
use crate::model::Timestamp;

/// Longest accepted resource id, in bytes.
pub(crate) const MAX_RESOURCE_ID_BYTES: usize = 1024;
/// Longest accepted metric name, in bytes.
pub(crate) const MAX_METRIC_NAME_BYTES: usize = 256;
/// Largest accepted metadata, serialized, in bytes.
pub(crate) const MAX_METADATA_BYTES: usize = 64 * 1024;
/// Deepest accepted metadata nesting.
pub(crate) const MAX_METADATA_DEPTH: usize = 64;

/// Checks a resource id: not empty, at most 1024 bytes, no control characters
/// (a NUL would cut the id short in C tools such as `sqlite3`).
pub(crate) fn validate_resource_id(id: &str) -> Result<()> {
    let reason = if id.is_empty() {
        "it is empty"
    } else if id.len() > MAX_RESOURCE_ID_BYTES {
        "it is longer than 1024 bytes"
    } else if id.chars().any(char::is_control) {
        "it contains a control character"
    } else {
        return Ok(());
    };
    Err(Error::InvalidResourceId {
        id: clip(id),
        reason,
    })
}

/// Most values one sample may carry.
pub(crate) const MAX_VALUES_PER_SAMPLE: usize = 4096;

/// Largest accepted magnitude of a value. Beyond it, a window's sum or
/// change could overflow to infinity, which JSON cannot carry (an export
/// would not import back).
pub(crate) const MAX_ABS_VALUE: f64 = 1e300;

/// The value rule, the same for a sample, an import and a saved buffer: a
/// finite number of magnitude at most [`MAX_ABS_VALUE`]. `Err` says why not.
pub(crate) fn value(v: f64) -> std::result::Result<(), &'static str> {
    if !v.is_finite() {
        Err("not a finite number")
    } else if v.abs() > MAX_ABS_VALUE {
        Err("too large (|value| over 1e300: its summary could overflow)")
    } else {
        Ok(())
    }
}

/// Longest accepted trigger id, in bytes.
pub(crate) const MAX_TRIGGER_ID_BYTES: usize = 1024;

/// Checks a trigger's id like a resource id: at most 1024 bytes, no control
/// characters (it is printed by `list`, `show` and `context`).
pub(crate) fn trigger(t: &crate::model::Trigger) -> Result<()> {
    let Some(id) = &t.id else { return Ok(()) };
    let reason = if id.len() > MAX_TRIGGER_ID_BYTES {
        "it is longer than 1024 bytes"
    } else if id.chars().any(char::is_control) {
        "it contains a control character"
    } else {
        return Ok(());
    };
    Err(Error::InvalidTriggerId {
        id: clip(id),
        reason,
    })
}

/// Longest accepted resource name or type, in bytes.
pub(crate) const MAX_LABEL_BYTES: usize = 256;

/// Checks a resource's id, and its display name and type if given (at most
/// 256 bytes, no control characters: they are printed by `list` and `show`).
pub(crate) fn resource(r: &crate::model::Resource<'_>) -> Result<()> {
    validate_resource_id(r.id)?;
    for (what, text) in [("name", r.name), ("type", r.kind)] {
        let Some(text) = text else { continue };
        let reason = if text.len() > MAX_LABEL_BYTES {
            "it is longer than 256 bytes"
        } else if text.chars().any(char::is_control) {
            "it contains a control character"
        } else {
            continue;
        };
        return Err(Error::InvalidLabel {
            what,
            text: clip(text),
            reason,
        });
    }
    Ok(())
}

/// True for a usable metric name (same rules as resource ids, 256 bytes).
pub(crate) fn metric_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_METRIC_NAME_BYTES && !name.chars().any(char::is_control)
}

/// How far ahead of the recorder's clock a pushed sample may be. A sample
/// from the far future would otherwise become its resource's newest, and
/// every later (correct) sample would be refused as out of order.
pub(crate) const MAX_FUTURE_SKEW_MS: i64 = 10 * 60 * 1000;

/// Checks a time is storable: between 1970 and the end of year 9999.
pub(crate) fn storable(t: Timestamp) -> Result<()> {
    if t.is_valid() {
        Ok(())
    } else {
        Err(Error::InvalidTimestamp {
            input: t.as_unix_ms().to_string(),
            reason: "outside 1970-01-01 .. 9999-12-31".into(),
        })
    }
}

/// Checks a sample time is storable and not far ahead of `now`.
pub(crate) fn timestamp(t: Timestamp, now: Timestamp) -> Result<()> {
    storable(t)?;
    if t.as_unix_ms() > now.as_unix_ms().saturating_add(MAX_FUTURE_SKEW_MS) {
        return Err(Error::InvalidTimestamp {
            input: t.to_string(),
            reason: format!("more than 10 minutes ahead of the recorder's clock ({now})"),
        });
    }
    Ok(())
}

/// Serializes metadata after checking its depth and size.
pub(crate) fn metadata(
    m: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Result<Option<Arc<str>>> {
    let Some(m) = m else { return Ok(None) };
    if m.is_empty() {
        return Ok(None);
    }
    // Iterative, so a hostile depth cannot overflow the stack here.
    let mut stack: Vec<(&serde_json::Value, usize)> = m.values().map(|v| (v, 2)).collect();
    while let Some((v, depth)) = stack.pop() {
        if depth > MAX_METADATA_DEPTH {
            return Err(Error::InvalidMetadata {
                reason: format!("nested deeper than {MAX_METADATA_DEPTH} levels"),
            });
        }
        match v {
            serde_json::Value::Array(a) => stack.extend(a.iter().map(|v| (v, depth + 1))),
            serde_json::Value::Object(o) => stack.extend(o.values().map(|v| (v, depth + 1))),
            _ => {}
        }
    }
    let text = serde_json::to_string(m).map_err(|e| Error::InvalidMetadata {
        reason: e.to_string(),
    })?;
    if text.len() > MAX_METADATA_BYTES {
        return Err(Error::InvalidMetadata {
            reason: format!(
                "{} bytes serialized, over the {MAX_METADATA_BYTES}-byte limit",
                text.len()
            ),
        });
    }
    Ok(Some(text.into()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_value_is_a_finite_number_of_magnitude_at_most_1e300() {
        for ok in [0.0, -1.5, 1e300, -1e300, f64::MIN_POSITIVE] {
            assert_eq!(super::value(ok), Ok(()), "{ok}");
        }
        for bad in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1.0001e300,
            -f64::MAX,
        ] {
            assert!(super::value(bad).is_err(), "{bad}");
        }
    }
}
