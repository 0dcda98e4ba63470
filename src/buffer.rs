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
//! stored as `u64` slots in one boxed slice used circularly (timestamps as two's complement,
//! values as `f64::to_bits`). Metric names are interned once in a [`MetricNames`]
//! table shared by all buffers; each buffer keeps its column layout (which metric
//! each column holds). A value absent from a sample is stored as NaN, which can
//! never be a real value because the recorder rejects non-finite input.
//! Metadata is rare, so it lives in a side queue keyed by row sequence number.
//!
//! Invariants:
//! - `slots.len()` is a whole number of rows of `1 + layout.len()` slots, and
//!   `rows` of them, starting at row `head` and wrapping around, are in use;
//! - timestamps are non-decreasing from front to back (the recorder rejects
//!   samples that go back in time);
//! - `meta` is sorted by sequence number and only holds rows still in the ring.
//!
//! Pushing is amortised O(1) (O(1) with no allocation once the ring has grown to
//! its working size: it writes one row in place); eviction moves the head.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// An interned metric name: an index into [`MetricNames`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct MetricKey(pub(crate) u32);

/// The table of metric names seen by a recorder; grows, never shrinks.
#[derive(Debug, Default)]
pub(crate) struct MetricNames {
    by_name: HashMap<Arc<str>, MetricKey>,
    names: Vec<Arc<str>>,
    /// Column layouts in use, shared by the buffers that have them: resources
    /// of one provider usually report the same metrics in the same order, so
    /// ten thousand buffers share one layout instead of holding ten thousand
    /// copies (and a tick reads one hot copy instead of ten thousand cold ones).
    layouts: HashSet<Arc<[MetricKey]>>,
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

    /// The shared copy of a column layout.
    fn layout(&mut self, keys: &[MetricKey]) -> Arc<[MetricKey]> {
        if let Some(l) = self.layouts.get(keys) {
            return l.clone();
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
/// A recorder holds one per monitored resource and pushes to every one of
/// them each tick, so both its size and its push count: rows live end to end
/// in one boxed slice used circularly (a push writes one row in place, an
/// eviction moves the head), the layout is a boxed slice, and the rarely used
/// metadata queue exists only while a row has metadata.
#[derive(Debug)]
pub(crate) struct RingBuffer {
    layout: Arc<[MetricKey]>,
    /// `capacity_rows() * stride()` slots; row `i` (oldest first) starts at
    /// `((head + i) % capacity_rows()) * stride()`.
    slots: Box<[u64]>,
    /// `slots.len() / stride()`, kept to spare a division per push.
    cap_rows: usize,
    /// Row index of the oldest row.
    head: usize,
    /// Rows held.
    rows: usize,
    /// Timestamp of the oldest row (meaningless when empty), kept here so
    /// that deciding there is nothing to evict, the usual case, reads no row.
    front_ts: i64,
    meta: Option<Box<MetaQueue>>,
    /// Sequence number of the front row.
    front_seq: u64,
    /// Rows of the steady state: the ring is sized to exactly this many and
    /// grows one row at a time up to one more, doubling only past that.
    expected_rows: usize,
}

/// Metadata of buffered rows, by row sequence number, oldest first.
type MetaQueue = VecDeque<(u64, Arc<str>)>;

const ABSENT: u64 = 0x7ff8_0000_0000_0000; // f64::NAN.to_bits()

/// Version byte of [`RingBuffer::save`]'s format.
const SAVE_VERSION: u8 = 1;

/// A cursor over saved bytes; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

impl RingBuffer {
    /// An empty buffer expecting to hold about `expected_rows` rows at a time
    /// (the pre-incident window divided by the sample interval).
    pub(crate) fn new(expected_rows: usize) -> RingBuffer {
        RingBuffer {
            layout: Arc::new([]),
            slots: Box::default(),
            cap_rows: 0,
            head: 0,
            rows: 0,
            front_ts: 0,
            meta: None,
            front_seq: 0,
            expected_rows: expected_rows.max(1),
        }
    }

    fn stride(&self) -> usize {
        1 + self.layout.len()
    }

    fn capacity_rows(&self) -> usize {
        self.cap_rows
    }

    /// Which metric each column holds.
    pub(crate) fn layout(&self) -> &[MetricKey] {
        &self.layout
    }

    /// Number of rows held.
    pub(crate) fn len(&self) -> usize {
        self.rows
    }

    /// True when no row is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Slot index where row `i` (0 = oldest) starts.
    fn row_start(&self, i: usize) -> usize {
        let mut r = self.head + i;
        let cap = self.capacity_rows();
        if r >= cap {
            r -= cap;
        }
        r * self.stride()
    }

    /// Appends a sample. `values` must have distinct keys; `names` supplies
    /// the shared layout when a new metric widens the buffer.
    pub(crate) fn push(
        &mut self,
        ts: i64,
        values: &[(MetricKey, f64)],
        metadata: Option<Arc<str>>,
        names: &mut MetricNames,
    ) {
        let in_order = self.in_layout_order(values);
        if !in_order && !values.iter().all(|(k, _)| self.column(*k).is_some()) {
            self.widen(values, names);
        }
        if self.rows == self.capacity_rows() {
            self.grow();
        }
        let seq = self.front_seq + self.rows as u64;
        if self.rows == 0 {
            self.front_ts = ts;
        }
        let base = self.row_start(self.rows);
        let stride = self.stride();
        let row = &mut self.slots[base..base + stride];
        row[0] = ts as u64;
        if in_order {
            for (slot, (_, v)) in row[1..].iter_mut().zip(values) {
                *slot = v.to_bits();
            }
        } else {
            row[1..].fill(ABSENT);
            for &(key, v) in values {
                let col = self.layout.iter().position(|&k| k == key);
                row[1 + col.expect("widened to hold every key")] = v.to_bits();
            }
        }
        self.rows += 1;
        if let Some(m) = metadata {
            self.meta.get_or_insert_default().push_back((seq, m));
        }
    }

    /// Room for one more row: exactly up to the steady state and one late row
    /// past it (doubling would leave up to half of every ring unused), then
    /// doubling, so a burst of samples costs amortized O(1) per push.
    fn grow(&mut self) {
        let cap = self.capacity_rows();
        let new_cap = if cap < self.expected_rows {
            self.expected_rows
        } else if cap == self.expected_rows {
            cap + 1
        } else {
            cap * 2
        };
        self.relayout(new_cap, self.stride());
    }

    /// Moves the rows, oldest first, into a new ring of `cap` rows of `stride`
    /// slots (new columns, if any, hold ABSENT).
    fn relayout(&mut self, cap: usize, stride: usize) {
        let old_stride = self.stride();
        let mut slots = vec![ABSENT; cap * stride].into_boxed_slice();
        for i in 0..self.rows {
            let from = self.row_start(i);
            slots[i * stride..i * stride + old_stride]
                .copy_from_slice(&self.slots[from..from + old_stride]);
        }
        self.slots = slots;
        self.cap_rows = cap;
        self.head = 0;
    }

    /// Drops every row with a timestamp at or before `cutoff`.
    pub(crate) fn evict_through(&mut self, cutoff: i64) {
        if self.rows == 0 || self.front_ts > cutoff {
            return;
        }
        let cap = self.capacity_rows();
        let stride = self.stride();
        while self.rows > 0 && self.front_ts <= cutoff {
            self.head += 1;
            if self.head == cap {
                self.head = 0;
            }
            self.rows -= 1;
            self.front_seq += 1;
            self.front_ts = self.slots[self.head * stride] as i64;
        }
        if let Some(meta) = &mut self.meta {
            while meta.front().is_some_and(|(seq, _)| *seq < self.front_seq) {
                meta.pop_front();
            }
            if meta.is_empty() {
                self.meta = None;
            }
        }
        if self.rows == 0 && cap > 4 * self.expected_rows {
            // A burst grew the ring far past its working size; give the memory back.
            self.slots = Box::default();
            self.cap_rows = 0;
            self.head = 0;
        }
    }

    /// The rows with a timestamp after `cutoff`, oldest first, at most the newest
    /// `max`. Takes `&mut self` to make the ring contiguous (O(n), only when a
    /// window opens) so rows can be lent out as plain slices.
    pub(crate) fn rows_after(&mut self, cutoff: i64, max: usize) -> Vec<Row<'_>> {
        let stride = self.stride();
        self.slots.rotate_left(self.head * stride);
        self.head = 0;
        let front_seq = self.front_seq;
        let rows = self.rows;
        let slots: &[u64] = &self.slots[..rows * stride];
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

    /// The values of metric `key`, oldest first, leaving out the newest
    /// `skip_newest` rows (and rows without the metric): the anomaly
    /// detector's baseline.
    pub(crate) fn column_values(&self, key: MetricKey, skip_newest: usize, out: &mut Vec<f64>) {
        out.clear();
        let Some(col) = self.column(key) else {
            return;
        };
        let rows = self.rows.saturating_sub(skip_newest);
        out.extend(
            (0..rows)
                .map(|i| f64::from_bits(self.slots[self.row_start(i) + 1 + col]))
                .filter(|v| !v.is_nan()),
        );
    }

    /// True when `values` has exactly the layout's keys in the layout's order
    /// (the usual case: a provider sends its metrics in a fixed order).
    fn in_layout_order(&self, values: &[(MetricKey, f64)]) -> bool {
        values.len() == self.layout.len()
            && values
                .iter()
                .zip(self.layout.iter())
                .all(|((k, _), l)| k == l)
    }

    fn column(&self, key: MetricKey) -> Option<usize> {
        self.layout.iter().position(|&k| k == key)
    }

    /// Adds columns for the keys of `values` not in the layout, re-laying out
    /// existing rows with NaN in the new columns. Rare: a metric appeared.
    fn widen(&mut self, values: &[(MetricKey, f64)], names: &mut MetricNames) {
        let added: Vec<MetricKey> = values
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| self.column(*k).is_none())
            .collect();
        if added.is_empty() {
            return;
        }
        let cap = self.capacity_rows().max(self.expected_rows);
        let new_stride = self.stride() + added.len();
        self.relayout(cap, new_stride);
        self.layout = names.layout(&[&self.layout[..], &added].concat());
    }

    /// The buffer in the compact form a clean stop saves it in (see
    /// `migrations/V5`): version byte; column count (u16) and each column's
    /// name (u16 length + UTF-8); row count (u32), then per row the time
    /// (i64) and one f64 per column (NaN = absent); metadata count (u32),
    /// then per entry the row index (u32), length (u32) and JSON text. All
    /// little-endian.
    pub(crate) fn save(&self, names: &MetricNames) -> Vec<u8> {
        let stride = self.stride();
        let mut out = Vec::with_capacity(16 + self.rows * stride * 8);
        out.push(SAVE_VERSION);
        out.extend_from_slice(&(self.layout.len() as u16).to_le_bytes());
        for &key in self.layout.iter() {
            let name = names.name(key).as_bytes();
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(name);
        }
        out.extend_from_slice(&(self.rows as u32).to_le_bytes());
        for i in 0..self.rows {
            let base = self.row_start(i);
            for slot in &self.slots[base..base + stride] {
                out.extend_from_slice(&slot.to_le_bytes());
            }
        }
        let meta: Vec<&(u64, Arc<str>)> = self.meta.iter().flat_map(|m| m.iter()).collect();
        out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
        for (seq, text) in meta {
            out.extend_from_slice(&((seq - self.front_seq) as u32).to_le_bytes());
            out.extend_from_slice(&(text.len() as u32).to_le_bytes());
            out.extend_from_slice(text.as_bytes());
        }
        out
    }

    /// A buffer from [`RingBuffer::save`]'s bytes, keeping only rows after
    /// `cutoff`. `None` for bytes that are not a saved buffer (damaged or of
    /// another version): the caller starts that resource with an empty one.
    pub(crate) fn restore(
        bytes: &[u8],
        names: &mut MetricNames,
        expected_rows: usize,
        cutoff: i64,
    ) -> Option<RingBuffer> {
        let mut r = Reader(bytes);
        if r.u8()? != SAVE_VERSION {
            return None;
        }
        let columns = r.u16()? as usize;
        let mut keys = Vec::with_capacity(columns);
        for _ in 0..columns {
            let len = r.u16()? as usize;
            let name = std::str::from_utf8(r.take(len)?).ok()?;
            keys.push(names.intern(name));
        }
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        if unique.len() != keys.len() {
            return None;
        }
        let rows = r.u32()? as usize;
        let stride = 1 + columns;
        let data = r.take(rows.checked_mul(stride)?.checked_mul(8)?)?;
        let slot =
            |i: usize| u64::from_le_bytes(data[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        let metadata = r.u32()? as usize;
        let mut meta: Vec<(usize, Arc<str>)> = Vec::with_capacity(metadata.min(rows));
        for _ in 0..metadata {
            let row = r.u32()? as usize;
            let len = r.u32()? as usize;
            let text = std::str::from_utf8(r.take(len)?).ok()?;
            meta.push((row, text.into()));
        }
        if !r.0.is_empty() {
            return None;
        }
        let mut buffer = RingBuffer::new(expected_rows);
        let mut values: Vec<(MetricKey, f64)> = Vec::with_capacity(columns);
        let mut last = i64::MIN;
        let mut meta = meta.into_iter().peekable();
        for i in 0..rows {
            let ts = slot(i * stride) as i64;
            if ts < last {
                return None;
            }
            last = ts;
            values.clear();
            for (c, &key) in keys.iter().enumerate() {
                let v = f64::from_bits(slot(i * stride + 1 + c));
                if v.is_finite() {
                    values.push((key, v));
                }
            }
            while meta.peek().is_some_and(|(row, _)| *row < i) {
                meta.next();
            }
            let m = meta.next_if(|(row, _)| *row == i).map(|(_, m)| m);
            if ts > cutoff && (!values.is_empty() || m.is_some()) {
                buffer.push(ts, &values, m, names);
            }
        }
        Some(buffer)
    }

    /// The time of the newest row, if any.
    pub(crate) fn newest_ts(&self) -> Option<i64> {
        (self.rows > 0).then(|| self.slots[self.row_start(self.rows - 1)] as i64)
    }

    /// The present values of the newest row (for comparing a repeated sample).
    pub(crate) fn newest_values(&self) -> impl Iterator<Item = (MetricKey, f64)> + '_ {
        let base = (self.rows > 0).then(|| self.row_start(self.rows - 1));
        let stride = self.stride();
        base.into_iter().flat_map(move |b| {
            self.layout
                .iter()
                .zip(&self.slots[b + 1..b + stride])
                .map(|(&k, &bits)| (k, f64::from_bits(bits)))
                .filter(|(_, v)| !v.is_nan())
        })
    }

    /// Bytes of heap this buffer holds (ring, layout, metadata queue).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.len() * 8
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
            b.push(i * 5000, &[(k[0], i as f64), (k[1], 1.0)], None, &mut names);
        }
        let capacity = b.slots.len();
        assert_eq!(capacity, 61 * 3);
        for i in 61..10_000 {
            b.evict_through((i - 60) * 5000);
            b.push(i * 5000, &[(k[0], i as f64), (k[1], 1.0)], None, &mut names);
            assert_eq!(b.len(), 60);
        }
        assert_eq!(b.slots.len(), capacity, "no reallocation in steady state");
        assert_eq!(b.heap_bytes(), 61 * 3 * 8 + 2 * 4);
    }

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
    fn eviction_is_by_time_and_inclusive_of_the_cutoff() {
        let mut names = MetricNames::default();
        let k = keys(&mut names, &["cpu"]);
        let mut b = RingBuffer::new(4);
        for ts in [10, 20, 30, 40] {
            b.push(ts, &[(k[0], ts as f64)], None, &mut names);
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
        b.push(1, &[(k[0], 1.0)], Some("{\"a\":1}".into()), &mut names);
        b.push(2, &[(k[1], 2.0), (k[0], 3.0)], None, &mut names); // a new metric, another order
        b.push(3, &[(k[2], 4.0)], Some("{\"c\":3}".into()), &mut names);
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

    /// A row as text: time, (metric, value bits), metadata.
    type RowText = (i64, Vec<(String, u64)>, Option<String>);

    #[test]
    fn a_saved_buffer_restores_its_rows_values_and_metadata_after_the_cutoff() {
        let mut names = MetricNames::default();
        let k = keys(&mut names, &["cpu", "mem"]);
        let mut b = RingBuffer::new(4);
        for ts in 0..10 {
            b.evict_through(ts - 5);
            let meta = (ts % 3 == 0).then(|| Arc::<str>::from(format!("{{\"n\":{ts}}}")));
            let values: Vec<(MetricKey, f64)> = if ts % 2 == 0 {
                vec![(k[0], ts as f64 + 0.1), (k[1], -0.0)]
            } else {
                vec![(k[1], f64::MAX)]
            };
            b.push(ts, &values, meta, &mut names);
        }
        let bytes = b.save(&names);
        let mut fresh = MetricNames::default();
        fresh.intern("other"); // different keys on the other side
        let mut r = RingBuffer::restore(&bytes, &mut fresh, 4, 6).unwrap();
        let got: Vec<RowText> = r
            .rows_after(i64::MIN, usize::MAX)
            .iter()
            .map(|row| {
                let mut v: Vec<(String, u64)> = row
                    .values()
                    .map(|(k, v)| (fresh.name(k).to_owned(), v.to_bits()))
                    .collect();
                v.sort();
                (row.ts, v, row.metadata.map(|m| m.to_string()))
            })
            .collect();
        let want: Vec<RowText> = (7..10)
            .map(|ts| {
                let v = if ts % 2 == 0 {
                    vec![
                        ("cpu".into(), (ts as f64 + 0.1).to_bits()),
                        ("mem".into(), (-0.0f64).to_bits()),
                    ]
                } else {
                    vec![("mem".into(), f64::MAX.to_bits())]
                };
                (ts, v, (ts % 3 == 0).then(|| format!("{{\"n\":{ts}}}")))
            })
            .collect();
        assert_eq!(got, want);
        for cut in 0..bytes.len() {
            assert!(
                RingBuffer::restore(&bytes[..cut], &mut fresh, 4, 0).is_none(),
                "{cut}"
            );
        }
        let mut flipped = bytes.clone();
        flipped[0] = 9;
        assert!(RingBuffer::restore(&flipped, &mut fresh, 4, 0).is_none());
    }

    #[test]
    fn rows_survive_the_ring_wrapping_around() {
        let mut names = MetricNames::default();
        let k = keys(&mut names, &["cpu"]);
        let mut b = RingBuffer::new(3);
        for ts in 0..100 {
            b.evict_through(ts - 3);
            b.push(ts, &[(k[0], ts as f64 * 2.0)], None, &mut names);
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
