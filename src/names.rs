//! Metric names, interned: every value in the recorder's buffers and batches
//! carries a small [`MetricKey`] instead of its name.
//!
//! Below the recorder and the store, which both use it (the store maps keys
//! to its `metrics` rows). Bounded: at most [`MAX_METRIC_NAMES`] names.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// An interned metric name: an index into [`MetricNames`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct MetricKey(pub(crate) u32);

/// Distinct metric names a recorder holds; a value with a new name past
/// this is refused (and counted).
pub(crate) const MAX_METRIC_NAMES: usize = 100_000;

/// The table of metric names seen by a recorder; grows up to
/// [`MAX_METRIC_NAMES`], never shrinks.
#[derive(Debug, Default)]
pub(crate) struct MetricNames {
    by_name: HashMap<Arc<str>, MetricKey>,
    names: Vec<Arc<str>>,
    /// Column layouts in use, shared by the dense buffers that have them:
    /// resources of one provider usually report the same metrics in the same
    /// order, so ten thousand buffers share one layout instead of holding ten
    /// thousand copies (and a tick reads one hot copy instead of ten thousand
    /// cold ones). Layouts no buffer uses any more are dropped (see
    /// [`MetricNames::layout`]).
    layouts: HashSet<Arc<[MetricKey]>>,
    /// `layouts.len()` after the last sweep of unused layouts.
    swept: usize,
}

impl MetricNames {
    /// The key of `name`, interning it on first sight; `None` for a new name
    /// once [`MAX_METRIC_NAMES`] are held.
    pub(crate) fn intern(&mut self, name: &str) -> Option<MetricKey> {
        if let Some(&key) = self.by_name.get(name) {
            return Some(key);
        }
        if self.names.len() >= MAX_METRIC_NAMES {
            return None;
        }
        let key = MetricKey(self.names.len() as u32);
        let name: Arc<str> = Arc::from(name);
        self.names.push(name.clone());
        self.by_name.insert(name, key);
        Some(key)
    }

    /// The name of an interned key.
    pub(crate) fn name(&self, key: MetricKey) -> &str {
        &self.names[key.0 as usize]
    }

    /// True if `key` is the name `name`: for every value of every sample of
    /// a tick, so short names are compared a word at a time, not by `memcmp`.
    #[inline]
    pub(crate) fn is(&self, key: MetricKey, name: &str) -> bool {
        same_bytes(self.names[key.0 as usize].as_bytes(), name.as_bytes())
    }

    /// Number of interned names.
    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    /// The shared copy of a column layout. Layouts only the table still
    /// holds are swept whenever the table has doubled since the last sweep,
    /// so a buffer widening one column at a time leaves no trail of them.
    pub(crate) fn layout(&mut self, keys: &[MetricKey]) -> Arc<[MetricKey]> {
        if let Some(l) = self.layouts.get(keys) {
            return l.clone();
        }
        if self.layouts.len() >= 2 * self.swept + 16 {
            self.layouts.retain(|l| Arc::strong_count(l) > 1);
            self.swept = self.layouts.len();
        }
        let l: Arc<[MetricKey]> = keys.into();
        self.layouts.insert(l.clone());
        l
    }
}

/// `a == b`, comparing strings of up to 16 bytes with two overlapping word
/// loads each instead of a call to `memcmp`.
#[inline]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let w4 = |s: &[u8], at: usize| u32::from_le_bytes([s[at], s[at + 1], s[at + 2], s[at + 3]]);
    let w8 = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8 bytes"));
    match n {
        0..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        4..=8 => w4(a, 0) == w4(b, 0) && w4(a, n - 4) == w4(b, n - 4),
        9..=16 => w8(a, 0) == w8(b, 0) && w8(a, n - 8) == w8(b, n - 8),
        _ => a == b,
    }
}

#[cfg(test)]
impl MetricNames {
    /// Column layouts held (shared or not yet swept).
    pub(crate) fn layouts_held(&self) -> usize {
        self.layouts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_string_comparison_agrees_with_eq() {
        let words = [
            "",
            "a",
            "ab",
            "abc",
            "abcd",
            "abce",
            "bbcd",
            "cpu",
            "disk",
            "load",
            "memory",
            "netout",
            "diskread",
            "diskwrite",
            "diskwritf",
            "0123456789abcdef",
            "0123456789abcdeF",
            "0123456789abcdefg",
            "0123456789abcdefh",
        ];
        for a in words {
            for b in words {
                assert_eq!(
                    same_bytes(a.as_bytes(), b.as_bytes()),
                    a == b,
                    "{a:?} {b:?}"
                );
            }
        }
    }

    #[test]
    fn names_past_the_limit_are_refused() {
        let mut names = MetricNames::default();
        for i in 0..MAX_METRIC_NAMES {
            assert!(names.intern(&i.to_string()).is_some());
        }
        assert!(names.intern("one more").is_none());
        assert_eq!(
            names.intern("7"),
            Some(MetricKey(7)),
            "known names still intern"
        );
    }
}
