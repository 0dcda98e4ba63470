//! Metric names, interned: every value in the recorder's buffers and batches
//! carries a small [`MetricKey`] instead of its name.
//!
//! Below the recorder and the store, which both use it (the store maps keys
//! to its `metrics` rows). Bounded: at most [`MAX_METRIC_NAMES`] names at a
//! time. Names no buffer or pending point uses any more are reclaimed (see
//! [`MetricNames::reclaim`]): a provider whose names keep changing (a label
//! holding a request id) fills the table only for as long as its buffers
//! hold those names, not for good.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// An interned metric name: an index into [`MetricNames`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct MetricKey(pub(crate) u32);

/// Distinct metric names a recorder holds; a value with a new name past
/// this is refused (and counted).
pub(crate) const MAX_METRIC_NAMES: usize = 100_000;

/// The table of metric names held by a recorder: up to [`MAX_METRIC_NAMES`]
/// at a time; a reclaimed key's slot is reused by a later name.
#[derive(Debug, Default)]
pub(crate) struct MetricNames {
    by_name: HashMap<Arc<str>, MetricKey>,
    /// By key; a free slot holds an empty name.
    names: Vec<Arc<str>>,
    /// Free slots, reused first.
    free: Vec<u32>,
    /// Names interned since the last reclaim.
    interned: usize,
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
        if self.live() >= MAX_METRIC_NAMES {
            return None;
        }
        let name: Arc<str> = Arc::from(name);
        let key = match self.free.pop() {
            Some(slot) => {
                self.names[slot as usize] = name.clone();
                MetricKey(slot)
            }
            None => {
                self.names.push(name.clone());
                MetricKey(self.names.len() as u32 - 1)
            }
        };
        self.by_name.insert(name, key);
        self.interned += 1;
        Some(key)
    }

    /// The key of `name` if it is held.
    pub(crate) fn get(&self, name: &str) -> Option<MetricKey> {
        self.by_name.get(name).copied()
    }

    /// Names held (interned and not reclaimed).
    pub(crate) fn live(&self) -> usize {
        self.names.len() - self.free.len()
    }

    /// Names interned since the last [`reclaim`](Self::reclaim).
    pub(crate) fn interned_since_reclaim(&self) -> usize {
        self.interned
    }

    /// Frees every held key for which `used` is false (indexed by key, as
    /// long as [`len`](Self::len)), and the column layouts only the table
    /// still holds. Returns the keys freed: whoever maps keys to something
    /// else (the store's metric ids) must forget them, since a later name
    /// may get the same key.
    pub(crate) fn reclaim(&mut self, used: &[bool]) -> Vec<MetricKey> {
        let empty: Arc<str> = Arc::from("");
        let mut freed = Vec::new();
        let free: HashSet<u32> = self.free.iter().copied().collect();
        for (i, name) in self.names.iter_mut().enumerate() {
            let i32 = i as u32;
            if used.get(i).copied().unwrap_or(false) || free.contains(&i32) {
                continue;
            }
            self.by_name.remove(&**name);
            *name = empty.clone();
            freed.push(MetricKey(i32));
        }
        self.free.extend(freed.iter().map(|k| k.0));
        self.interned = 0;
        self.layouts.retain(|l| Arc::strong_count(l) > 1);
        self.swept = self.layouts.len();
        freed
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

    /// Number of key slots (held names and free slots): every key is below it.
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

    #[test]
    fn names_no_one_uses_are_reclaimed_and_their_slots_reused() {
        let mut names = MetricNames::default();
        for i in 0..MAX_METRIC_NAMES {
            names.intern(&format!("request-{i}")).unwrap();
        }
        assert_eq!(names.intern("swap"), None, "full");
        // Only the first ten are still used.
        let used: Vec<bool> = (0..names.len()).map(|i| i < 10).collect();
        let freed = names.reclaim(&used);
        assert_eq!(freed.len(), MAX_METRIC_NAMES - 10);
        assert_eq!(names.live(), 10);
        let swap = names.intern("swap").expect("room again");
        assert!(swap.0 >= 10, "a freed slot, not a used one");
        assert_eq!(names.name(swap), "swap");
        assert_eq!(names.intern("request-3"), Some(MetricKey(3)), "kept");
        // A reclaimed name interns anew.
        assert!(names.intern("request-50").is_some());
        assert_eq!(names.live(), 12);
        assert_eq!(names.len(), MAX_METRIC_NAMES, "slots reused, none added");
    }
}
