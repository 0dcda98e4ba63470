//! The dense form of a buffer: a ring of fixed-width rows.
//!
//! ```text
//! row = [ timestamp (i64) | value of column 0 | value of column 1 | ... | spare columns ]
//! ```
//!
//! stored as `u64` slots in one boxed slice used circularly (timestamps as
//! two's complement, values as `f64::to_bits`). The buffer's layout says
//! which metric each column holds; a value absent from a sample is stored as
//! NaN, which can never be a real value because the recorder rejects
//! non-finite input. Metadata is rare, so it lives in a side queue keyed by
//! row sequence number.
//!
//! A new metric takes a spare column if there is one; else the rows are laid
//! out again with twice the columns, so adding `n` metrics costs O(rows × n)
//! in all, not per metric. Columns are found by position first (a provider
//! sends its metrics in the same order every time), then, in wide layouts,
//! through an index.
//!
//! Invariants:
//! - `slots.len()` is `cap_rows` rows of `1 + cols` slots, `cols >=
//!   layout.len()`, and `rows` of them, starting at row `head` and wrapping
//!   around, are in use; spare columns of rows in use hold NaN;
//! - timestamps are non-decreasing from front to back;
//! - `meta` is sorted by sequence number and only holds rows still in the
//!   ring.
//!
//! Pushing is amortised O(1) in the rows (O(1) with no allocation once the
//! ring has grown to its working size: it writes one row in place);
//! eviction moves the head.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::{MetricKey, MetricNames, Row, RowValues};

/// Metadata of buffered rows, by row sequence number, oldest first.
type MetaQueue = VecDeque<(u64, Arc<str>)>;

const ABSENT: u64 = 0x7ff8_0000_0000_0000; // f64::NAN.to_bits()

/// Layouts at least this wide find a sample's columns through an index.
const INDEXED_FROM: usize = 32;

#[derive(Debug)]
pub(super) struct Dense {
    layout: Arc<[MetricKey]>,
    /// Columns a row has room for (`>= layout.len()`).
    cols: usize,
    /// Column of each key, for wide layouts; rebuilt when the layout grows.
    index: Option<HashMap<MetricKey, usize>>,
    /// `cap_rows * (1 + cols)` slots; row `i` (oldest first) starts at
    /// `((head + i) % cap_rows) * (1 + cols)`.
    slots: Box<[u64]>,
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

impl Dense {
    pub(super) fn new(expected_rows: usize) -> Dense {
        Dense {
            layout: Arc::new([]),
            cols: 0,
            index: None,
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
        1 + self.cols
    }

    pub(super) fn layout(&self) -> &[MetricKey] {
        &self.layout
    }

    pub(super) fn len(&self) -> usize {
        self.rows
    }

    /// Slot index where row `i` (0 = oldest) starts.
    fn row_start(&self, i: usize) -> usize {
        let mut r = self.head + i;
        if r >= self.cap_rows {
            r -= self.cap_rows;
        }
        r * self.stride()
    }

    fn column(&self, key: MetricKey) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(&key).copied(),
            None => self.layout.iter().position(|&k| k == key),
        }
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

    /// How many columns the layout would have after taking `values`.
    pub(super) fn width_for(&self, values: &[(MetricKey, f64)]) -> usize {
        if self.in_layout_order(values) {
            return self.layout.len();
        }
        self.layout.len()
            + values
                .iter()
                .filter(|(k, _)| self.column(*k).is_none())
                .count()
    }

    pub(super) fn push(
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
        if self.rows == self.cap_rows {
            self.grow();
        }
        let seq = self.front_seq + self.rows as u64;
        if self.rows == 0 {
            self.front_ts = ts;
        }
        let base = self.row_start(self.rows);
        let stride = self.stride();
        let used = self.layout.len();
        if in_order {
            let row = &mut self.slots[base..base + stride];
            row[0] = ts as u64;
            for (slot, (_, v)) in row[1..].iter_mut().zip(values) {
                *slot = v.to_bits();
            }
            row[1 + used..].fill(ABSENT);
        } else {
            self.slots[base] = ts as u64;
            self.slots[base + 1..base + stride].fill(ABSENT);
            for &(key, v) in values {
                let col = self.column(key).expect("widened to hold every key");
                self.slots[base + 1 + col] = v.to_bits();
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
        let cap = self.cap_rows;
        let new_cap = if cap < self.expected_rows {
            self.expected_rows
        } else if cap == self.expected_rows {
            cap + 1
        } else {
            cap * 2
        };
        self.relayout(new_cap, self.cols);
    }

    /// Moves the rows, oldest first, into a new ring of `cap` rows of `cols`
    /// columns (new columns hold ABSENT).
    fn relayout(&mut self, cap: usize, cols: usize) {
        let old_stride = self.stride();
        let stride = 1 + cols;
        let mut slots = vec![ABSENT; cap * stride].into_boxed_slice();
        for i in 0..self.rows {
            let from = self.row_start(i);
            slots[i * stride..i * stride + old_stride]
                .copy_from_slice(&self.slots[from..from + old_stride]);
        }
        self.slots = slots;
        self.cap_rows = cap;
        self.cols = cols;
        self.head = 0;
    }

    /// Adds columns for the keys of `values` not in the layout: into spare
    /// columns if there are enough, else after laying the rows out again
    /// with twice the room. Rare: a metric appeared.
    fn widen(&mut self, values: &[(MetricKey, f64)], names: &mut MetricNames) {
        let added: Vec<MetricKey> = values
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| self.column(*k).is_none())
            .collect();
        if added.is_empty() {
            return;
        }
        let width = self.layout.len() + added.len();
        if width > self.cols {
            let cols = if self.cols == 0 {
                width
            } else {
                width.max(2 * self.cols)
            };
            let cap = self.cap_rows.max(self.expected_rows);
            self.relayout(cap, cols);
        }
        self.layout = names.layout(&[&self.layout[..], &added].concat());
        self.index = (self.layout.len() >= INDEXED_FROM).then(|| {
            self.layout
                .iter()
                .enumerate()
                .map(|(i, &k)| (k, i))
                .collect()
        });
    }

    /// Drops every row with a timestamp at or before `cutoff`.
    pub(super) fn evict_through(&mut self, cutoff: i64) {
        if self.rows == 0 || self.front_ts > cutoff {
            return;
        }
        while self.rows > 0 && self.front_ts <= cutoff {
            self.drop_front();
        }
        if self.rows == 0 && self.cap_rows > 4 * self.expected_rows {
            // A burst grew the ring far past its working size; give the memory back.
            self.slots = Box::default();
            self.cap_rows = 0;
            self.head = 0;
        }
    }

    /// Drops the oldest row.
    pub(super) fn drop_front(&mut self) {
        if self.rows == 0 {
            return;
        }
        self.head += 1;
        if self.head == self.cap_rows {
            self.head = 0;
        }
        self.rows -= 1;
        self.front_seq += 1;
        if self.rows > 0 {
            self.front_ts = self.slots[self.head * self.stride()] as i64;
        }
        if let Some(meta) = &mut self.meta {
            while meta.front().is_some_and(|(seq, _)| *seq < self.front_seq) {
                meta.pop_front();
            }
            if meta.is_empty() {
                self.meta = None;
            }
        }
    }

    /// The rows with a timestamp after `cutoff`, oldest first, at most the
    /// newest `max`. Takes `&mut self` to make the ring contiguous (O(n),
    /// only when a window opens) so rows can be lent out as plain slices.
    pub(super) fn rows_after(&mut self, cutoff: i64, max: usize) -> Vec<Row<'_>> {
        let stride = self.stride();
        self.slots.rotate_left(self.head * stride);
        self.head = 0;
        let front_seq = self.front_seq;
        let rows = self.rows;
        let used = self.layout.len();
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
                    values: RowValues::Dense {
                        values: &slots[base + 1..base + 1 + used],
                        layout: &self.layout,
                    },
                    metadata: meta.peek().filter(|(s, _)| *s == seq).map(|(_, m)| m),
                }
            })
            .collect()
    }

    /// See `RingBuffer::column_values`.
    pub(super) fn column_values(&self, key: MetricKey, skip_newest: usize, out: &mut Vec<f64>) {
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

    pub(super) fn newest_ts(&self) -> Option<i64> {
        (self.rows > 0).then(|| self.slots[self.row_start(self.rows - 1)] as i64)
    }

    pub(super) fn newest_values(&self) -> impl Iterator<Item = (MetricKey, f64)> + '_ {
        let base = (self.rows > 0).then(|| self.row_start(self.rows - 1));
        let used = self.layout.len();
        base.into_iter().flat_map(move |b| {
            self.layout
                .iter()
                .zip(&self.slots[b + 1..b + 1 + used])
                .map(|(&k, &bits)| (k, f64::from_bits(bits)))
                .filter(|(_, v)| !v.is_nan())
        })
    }

    /// Every row, oldest first, as (time, present values, metadata): how a
    /// dense buffer turns sparse, and how it is saved.
    pub(super) fn drain_rows(
        &self,
    ) -> impl Iterator<Item = (i64, Vec<(MetricKey, f64)>, Option<Arc<str>>)> + '_ {
        let used = self.layout.len();
        let mut meta = self.meta.iter().flat_map(|m| m.iter()).peekable();
        (0..self.rows).map(move |i| {
            let seq = self.front_seq + i as u64;
            while meta.peek().is_some_and(|(s, _)| *s < seq) {
                meta.next();
            }
            let base = self.row_start(i);
            let values = self
                .layout
                .iter()
                .zip(&self.slots[base + 1..base + 1 + used])
                .map(|(&k, &bits)| (k, f64::from_bits(bits)))
                .filter(|(_, v)| !v.is_nan())
                .collect();
            let m = meta
                .peek()
                .filter(|(s, _)| *s == seq)
                .map(|(_, m)| m.clone());
            (self.slots[base] as i64, values, m)
        })
    }

    /// Bytes of heap this buffer holds (ring, column index, metadata queue;
    /// the layout is shared).
    pub(super) fn heap_bytes(&self) -> usize {
        self.slots.len() * 8
            + self.layout.len() * std::mem::size_of::<MetricKey>()
            + self.index.as_ref().map_or(0, |i| i.capacity() * 16)
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
        n.iter().map(|s| names.intern(s).unwrap()).collect()
    }

    #[test]
    fn steady_state_push_neither_copies_nor_grows_the_ring() {
        // The seed rebuilt the whole slice on every push (O(n) per tick).
        let mut names = MetricNames::default();
        let k = keys(&mut names, &["cpu", "mem"]);
        let mut b = Dense::new(61);
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
    fn eviction_is_by_time_and_inclusive_of_the_cutoff() {
        let mut names = MetricNames::default();
        let k = keys(&mut names, &["cpu"]);
        let mut b = Dense::new(4);
        for ts in [10, 20, 30, 40] {
            b.push(ts, &[(k[0], ts as f64)], None, &mut names);
        }
        b.evict_through(20);
        let rows = b.rows_after(i64::MIN, usize::MAX);
        assert_eq!(rows.iter().map(|r| r.ts).collect::<Vec<_>>(), vec![30, 40]);
        assert_eq!(b.rows_after(30, usize::MAX).len(), 1);
        assert_eq!(b.rows_after(0, 1)[0].ts, 40, "max keeps the newest");
        b.evict_through(100);
        assert_eq!(b.len(), 0);
    }

    #[test]
    fn new_and_missing_metrics_and_metadata_stay_aligned_with_their_rows() {
        let mut names = MetricNames::default();
        let k = keys(&mut names, &["cpu", "mem", "disk"]);
        let mut b = Dense::new(2);
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

    #[test]
    fn rows_survive_the_ring_wrapping_around() {
        let mut names = MetricNames::default();
        let k = keys(&mut names, &["cpu"]);
        let mut b = Dense::new(3);
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

    #[test]
    fn widening_doubles_the_room_so_many_new_metrics_lay_rows_out_a_few_times() {
        let mut names = MetricNames::default();
        let mut b = Dense::new(8);
        let mut relayouts = 0;
        let mut cols = 0;
        let all: Vec<MetricKey> = (0..1000)
            .map(|i| names.intern(&format!("m{i}")).unwrap())
            .collect();
        for (i, _) in all.iter().enumerate() {
            // Each sample has every metric so far: the dense form fits it.
            let values: Vec<(MetricKey, f64)> = all[..=i].iter().map(|&k| (k, 1.0)).collect();
            b.evict_through(i as i64 - 8);
            b.push(i as i64, &values, None, &mut names);
            if b.cols != cols {
                relayouts += 1;
                cols = b.cols;
            }
        }
        assert!(
            relayouts <= 12,
            "{relayouts} relayouts for 1000 new columns"
        );
        let newest: Vec<(MetricKey, f64)> = b.newest_values().collect();
        assert_eq!(newest.len(), 1000);
    }
}
