//! The pre-incident buffer: the last few minutes of samples of one resource.
//!
//! # Design
//!
//! The seed kept a `[]IncidentDataPoint` per resource, each point holding its
//! own `map[string]float64`, and copied the whole slice on every tick to drop old
//! points: O(n) per push and ~300 B of heap per point. Here a buffer is one ring
//! of fixed-size rows:
//!
//! ```text
//! row = [ timestamp (i64) | value of column 0 | value of column 1 | ... ]
//! ```
//!
//! stored as `u64` slots in a single `VecDeque` (timestamps as two's complement,
//! values as `f64::to_bits`). Metric names are interned once in a [`MetricNames`]
//! table shared by all buffers; each buffer keeps its column layout (which metric
//! each column holds). A value absent from a sample is stored as NaN, which can
//! never be a real value because the recorder rejects non-finite input.
//! Metadata is rare, so it lives in a side queue keyed by row sequence number.
//!
//! Invariants:
//! - `slots.len() == rows * (1 + layout.len())`;
//! - timestamps are non-decreasing from front to back (the recorder rejects
//!   samples that go back in time);
//! - `meta` is sorted by sequence number and only holds rows still in the ring.
//!
//! Pushing is amortised O(1) (O(1) with no allocation once the ring has grown to
//! its working size); eviction pops rows from the front.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// An interned metric name: an index into [`MetricNames`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct MetricKey(pub(crate) u32);

/// The table of metric names seen by a recorder; grows, never shrinks.
#[derive(Debug, Default)]
pub(crate) struct MetricNames {
    by_name: HashMap<Arc<str>, MetricKey>,
    names: Vec<Arc<str>>,
}

impl MetricNames {
    /// The key of `name`, interning it on first sight.
    pub(crate) fn intern(&mut self, name: &str) -> MetricKey {
        if let Some(&key) = self.by_name.get(name) {
            return key;
        }
        let key = MetricKey(self.names.len() as u32);
        let name: Arc<str> = Arc::from(name);
        self.names.push(name.clone());
        self.by_name.insert(name, key);
        key
    }

    /// The name of an interned key.
    pub(crate) fn name(&self, key: MetricKey) -> &str {
        &self.names[key.0 as usize]
    }

    /// Number of interned names.
    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }
}

/// One buffered row, borrowed from the ring.
pub(crate) struct Row<'a> {
    /// Milliseconds since the epoch.
    pub(crate) ts: i64,
    /// The values, one per column of the buffer's layout (NaN = absent).
    values: &'a [u64],
    layout: &'a [MetricKey],
    /// JSON metadata attached to the sample, if any.
    pub(crate) metadata: Option<&'a Arc<str>>,
}

impl Row<'_> {
    /// The present `(metric, value)` pairs of this row.
    pub(crate) fn values(&self) -> impl Iterator<Item = (MetricKey, f64)> + '_ {
        self.layout
            .iter()
            .zip(self.values)
            .map(|(&k, &bits)| (k, f64::from_bits(bits)))
            .filter(|(_, v)| !v.is_nan())
    }
}

/// The ring of recent samples of one resource.
///
/// A recorder holds one per monitored resource, so its size counts: the
/// layout is a boxed slice and the (rarely used) metadata queue is boxed
/// only once a row has metadata.
#[derive(Debug, Default)]
pub(crate) struct RingBuffer {
    layout: Box<[MetricKey]>,
    slots: VecDeque<u64>,
    meta: Option<Box<VecDeque<(u64, Arc<str>)>>>,
    /// Sequence number of the front row.
    front_seq: u64,
    /// Rows of the steady state: the ring is sized to exactly this many and
    /// grows one row at a time up to one more, doubling only past that.
    expected_rows: usize,
}

const ABSENT: u64 = 0x7ff8_0000_0000_0000; // f64::NAN.to_bits()

impl RingBuffer {
    /// An empty buffer expecting to hold about `expected_rows` rows at a time
    /// (the pre-incident window divided by the sample interval).
    pub(crate) fn new(expected_rows: usize) -> RingBuffer {
        RingBuffer {
            expected_rows,
            ..RingBuffer::default()
        }
    }

    fn stride(&self) -> usize {
        1 + self.layout.len()
    }

    /// Which metric each column holds.
    pub(crate) fn layout(&self) -> &[MetricKey] {
        &self.layout
    }

    /// Number of rows held.
    pub(crate) fn len(&self) -> usize {
        self.slots.len() / self.stride()
    }

    /// True when no row is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Appends a sample. `values` must have distinct keys.
    pub(crate) fn push(
        &mut self,
        ts: i64,
        values: &[(MetricKey, f64)],
        metadata: Option<Arc<str>>,
    ) {
        if !self.layout_matches(values) {
            self.widen(values);
        }
        let stride = self.stride();
        let len = self.slots.len();
        if len + stride > self.slots.capacity() {
            let steady = self.expected_rows.max(1) * stride;
            if len <= steady {
                // Up to the steady state, and one late row past it, exactly:
                // VecDeque would double, leaving up to half the ring unused.
                self.slots.reserve_exact(steady.max(len + stride) - len);
            } else {
                self.slots.reserve(stride);
            }
        }
        let seq = self.front_seq + self.len() as u64;
        self.slots.push_back(ts as u64);
        if values.len() == self.layout.len() && self.fast_order(values) {
            self.slots.extend(values.iter().map(|(_, v)| v.to_bits()));
        } else {
            let start = self.slots.len();
            self.slots
                .extend(std::iter::repeat_n(ABSENT, self.layout.len()));
            for &(key, v) in values {
                let col = self.column(key).expect("widened to hold every key");
                self.slots[start + col] = v.to_bits();
            }
        }
        if let Some(m) = metadata {
            self.meta.get_or_insert_default().push_back((seq, m));
        }
    }

    /// Drops every row with a timestamp at or before `cutoff`.
    pub(crate) fn evict_through(&mut self, cutoff: i64) {
        let stride = self.stride();
        while let Some(&ts) = self.slots.front() {
            if ts as i64 > cutoff {
                break;
            }
            self.slots.drain(..stride);
            self.front_seq += 1;
        }
        if let Some(meta) = &mut self.meta {
            while meta.front().is_some_and(|(seq, _)| *seq < self.front_seq) {
                meta.pop_front();
            }
            if meta.is_empty() {
                self.meta = None;
            }
        }
        if self.slots.is_empty() && self.slots.capacity() > 4 * self.expected_rows * stride {
            // A burst grew the ring far past its working size; give the memory back.
            self.slots = VecDeque::new();
        }
    }

    /// The rows with a timestamp after `cutoff`, oldest first, at most the newest
    /// `max`. Takes `&mut self` to make the ring contiguous (O(n), only when a
    /// window opens) so rows can be lent out as plain slices.
    pub(crate) fn rows_after(&mut self, cutoff: i64, max: usize) -> Vec<Row<'_>> {
        let stride = self.stride();
        let front_seq = self.front_seq;
        let slots: &[u64] = self.slots.make_contiguous();
        let rows = slots.len() / stride;
        let first = (0..rows)
            .position(|i| slots[i * stride] as i64 > cutoff)
            .unwrap_or(rows)
            .max(rows.saturating_sub(max));
        let mut meta = self.meta.iter().flat_map(|m| m.iter()).peekable();
        (first..rows)
            .map(|i| {
                let seq = front_seq + i as u64;
                while meta.peek().is_some_and(|(s, _)| *s < seq) {
                    meta.next();
                }
                let base = i * stride;
                Row {
                    ts: slots[base] as i64,
                    values: &slots[base + 1..base + stride],
                    layout: &self.layout,
                    metadata: meta.peek().filter(|(s, _)| *s == seq).map(|(_, m)| m),
                }
            })
            .collect()
    }

    fn layout_matches(&self, values: &[(MetricKey, f64)]) -> bool {
        values.len() <= self.layout.len()
            && (self.fast_order(values) || values.iter().all(|(k, _)| self.column(*k).is_some()))
    }

    fn fast_order(&self, values: &[(MetricKey, f64)]) -> bool {
        values.len() == self.layout.len()
            && values.iter().zip(&self.layout).all(|((k, _), l)| k == l)
    }

    fn column(&self, key: MetricKey) -> Option<usize> {
        self.layout.iter().position(|&k| k == key)
    }

    /// Adds columns for the keys of `values` not in the layout, re-laying out
    /// existing rows with NaN in the new columns. Rare: a metric appeared.
    fn widen(&mut self, values: &[(MetricKey, f64)]) {
        let old_stride = self.stride();
        let added: Vec<MetricKey> = values
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| self.column(*k).is_none())
            .collect();
        if added.is_empty() {
            return;
        }
        if self.layout.is_empty() {
            // First sample: adopt its order, so later samples take the fast path.
            self.layout = added.into_boxed_slice();
            return;
        }
        self.layout = [&self.layout[..], &added].concat().into_boxed_slice();
        let new_stride = self.stride();
        let rows = self.slots.len() / old_stride;
        let mut slots = VecDeque::with_capacity(self.expected_rows.max(rows + 1) * new_stride);
        for r in 0..rows {
            let base = r * old_stride;
            slots.extend((0..old_stride).map(|i| self.slots[base + i]));
            slots.extend(std::iter::repeat_n(ABSENT, new_stride - old_stride));
        }
        self.slots = slots;
    }

    /// Bytes of heap this buffer holds (ring, layout, metadata queue).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.capacity() * 8
            + self.layout.len() * std::mem::size_of::<MetricKey>()
            + self
                .meta
                .as_ref()
                .map_or(0, |m| m.capacity() * std::mem::size_of::<(u64, Arc<str>)>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(names: &mut MetricNames, n: &[&str]) -> Vec<MetricKey> {
        n.iter().map(|s| names.intern(s)).collect()
    }

    #[test]
    fn steady_state_push_neither_copies_nor_grows_the_ring() {
        // The seed rebuilt the whole slice on every push (O(n) per tick).
        let mut names = MetricNames::default();
        let k = keys(&mut names, &["cpu", "mem"]);
        let mut b = RingBuffer::new(61);
        for i in 0..61 {
            b.push(i * 5000, &[(k[0], i as f64), (k[1], 1.0)], None);
        }
        let capacity = b.slots.capacity();
        assert_eq!(capacity, 61 * 3);
        for i in 61..10_000 {
            b.evict_through((i - 60) * 5000);
            b.push(i * 5000, &[(k[0], i as f64), (k[1], 1.0)], None);
            assert_eq!(b.len(), 60);
        }
        assert_eq!(
            b.slots.capacity(),
            capacity,
            "no reallocation in steady state"
        );
        assert_eq!(b.heap_bytes(), 61 * 3 * 8 + 2 * 4);
    }

    #[test]
    fn eviction_is_by_time_and_inclusive_of_the_cutoff() {
        let mut names = MetricNames::default();
        let k = keys(&mut names, &["cpu"]);
        let mut b = RingBuffer::new(4);
        for ts in [10, 20, 30, 40] {
            b.push(ts, &[(k[0], ts as f64)], None);
        }
        b.evict_through(20);
        let rows = b.rows_after(i64::MIN, usize::MAX);
        assert_eq!(rows.iter().map(|r| r.ts).collect::<Vec<_>>(), vec![30, 40]);
        assert_eq!(b.rows_after(30, usize::MAX).len(), 1);
        assert_eq!(b.rows_after(0, 1)[0].ts, 40, "max keeps the newest");
        b.evict_through(100);
        assert!(b.is_empty());
    }

    #[test]
    fn new_and_missing_metrics_and_metadata_stay_aligned_with_their_rows() {
        let mut names = MetricNames::default();
        let k = keys(&mut names, &["cpu", "mem", "disk"]);
        let mut b = RingBuffer::new(2);
        b.push(1, &[(k[0], 1.0)], Some("{\"a\":1}".into()));
        b.push(2, &[(k[1], 2.0), (k[0], 3.0)], None); // a new metric, another order
        b.push(3, &[(k[2], 4.0)], Some("{\"c\":3}".into()));
        b.evict_through(1);
        let rows = b.rows_after(i64::MIN, usize::MAX);
        let vals: Vec<Vec<(MetricKey, f64)>> = rows.iter().map(|r| r.values().collect()).collect();
        assert_eq!(
            vals,
            vec![vec![(k[0], 3.0), (k[1], 2.0)], vec![(k[2], 4.0)]]
        );
        let meta: Vec<Option<&str>> = rows.iter().map(|r| r.metadata.map(|m| &**m)).collect();
        assert_eq!(meta, vec![None, Some("{\"c\":3}")]);
    }

    #[test]
    fn rows_survive_the_ring_wrapping_around() {
        let mut names = MetricNames::default();
        let k = keys(&mut names, &["cpu"]);
        let mut b = RingBuffer::new(3);
        for ts in 0..100 {
            b.evict_through(ts - 3);
            b.push(ts, &[(k[0], ts as f64 * 2.0)], None);
            let rows = b.rows_after(i64::MIN, usize::MAX);
            let got: Vec<(i64, f64)> = rows
                .iter()
                .map(|r| (r.ts, r.values().next().unwrap().1))
                .collect();
            let want: Vec<(i64, f64)> = ((ts - 2).max(0)..=ts)
                .map(|t| (t, t as f64 * 2.0))
                .collect();
            assert_eq!(got, want);
        }
    }
}
