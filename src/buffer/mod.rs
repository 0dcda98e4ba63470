//! The pre-incident buffer: the last few minutes of samples of one resource.
//!
//! # Design
//!
//! The seed kept a `[]IncidentDataPoint` per resource, each point holding its
//! own `map[string]float64`, and copied the whole slice on every tick to drop
//! old points: O(n) per push and ~300 B of heap per point. Here a buffer
//! holds its rows in one of two forms, chosen by the data:
//!
//! - **dense** ([`dense`]): a ring of fixed-width rows
//!   `[timestamp | value of column 0 | value of column 1 | ...]` in one boxed
//!   slice used circularly. A provider reports the same metrics every tick,
//!   so this costs 8 bytes a value and a push writes one row in place;
//! - **sparse** ([`sparse`]): rows of `(metric, value)` pairs. A buffer whose
//!   samples each carry a few of many different metrics (a feed where every
//!   line brings a new name) would make the dense ring as wide as all of
//!   them, each row paying for every column: it turns sparse instead, so
//!   every push costs what its sample holds, whatever the names.
//!
//! Metric names are interned once in a [`MetricNames`] table shared by all
//! buffers. Every cost is linear in the input, and every size is bounded:
//! at most [`MAX_METRIC_NAMES`](crate::names::MAX_METRIC_NAMES) names per recorder, [`MAX_DENSE_COLUMNS`]
//! columns in a dense row, and `max_rows` rows per buffer (twice the point
//! limit of a window: a window never takes more), so a buffer holds at most
//! `max_rows` × the values of its samples (at most
//! [`MAX_VALUES_PER_SAMPLE`](crate::validate::MAX_VALUES_PER_SAMPLE) each).
//!
//! Invariants: timestamps are non-decreasing from front to back (the
//! recorder takes a resource's samples in time order); no row holds more
//! than one value per metric.

mod dense;
mod saved;
mod sparse;

use std::sync::Arc;

use dense::Dense;
use sparse::Sparse;

pub(crate) use crate::names::{MetricKey, MetricNames};

/// Columns a dense row may have; a buffer that would need more turns sparse.
pub(crate) const MAX_DENSE_COLUMNS: usize = 4096;

/// A dense buffer this wide or wider turns sparse when a sample covers less
/// than a quarter of its columns.
const SPARSE_FROM_COLUMNS: usize = 64;

/// One buffered row, borrowed from the buffer.
pub(crate) struct Row<'a> {
    /// Milliseconds since the epoch.
    pub(crate) ts: i64,
    values: RowValues<'a>,
    /// JSON metadata attached to the sample, if any.
    pub(crate) metadata: Option<&'a Arc<str>>,
}

/// A row's values, as its buffer holds them.
enum RowValues<'a> {
    /// One slot per column of `layout` (NaN = absent).
    Dense {
        values: &'a [u64],
        layout: &'a [MetricKey],
    },
    /// The present values.
    Sparse(&'a [(MetricKey, f64)]),
}

impl Row<'_> {
    /// The present `(metric, value)` pairs of this row.
    pub(crate) fn values(&self) -> impl Iterator<Item = (MetricKey, f64)> + '_ {
        let (dense, sparse) = match &self.values {
            RowValues::Dense { values, layout } => (Some((*values, *layout)), None),
            RowValues::Sparse(v) => (None, Some(*v)),
        };
        let dense = dense.into_iter().flat_map(|(values, layout)| {
            layout
                .iter()
                .zip(values)
                .map(|(&k, &bits)| (k, f64::from_bits(bits)))
                .filter(|(_, v)| !v.is_nan())
        });
        dense.chain(sparse.into_iter().flatten().copied())
    }
}

/// The recent samples of one resource (see the module docs).
#[derive(Debug)]
pub(crate) struct RingBuffer {
    rows: Rows,
    /// Most rows held; the oldest go first past it.
    max_rows: usize,
}

#[derive(Debug)]
enum Rows {
    Dense(Dense),
    Sparse(Box<Sparse>),
}

impl RingBuffer {
    /// An empty buffer expecting to hold about `expected_rows` rows at a time
    /// (the pre-incident window divided by the sample interval), and never
    /// more than `max_rows`.
    pub(crate) fn new(expected_rows: usize, max_rows: usize) -> RingBuffer {
        RingBuffer {
            rows: Rows::Dense(Dense::new(expected_rows.min(max_rows))),
            max_rows: max_rows.max(1),
        }
    }

    /// Which metric each column holds (empty for a sparse buffer, which has
    /// no columns).
    pub(crate) fn layout(&self) -> &[MetricKey] {
        match &self.rows {
            Rows::Dense(d) => d.layout(),
            Rows::Sparse(_) => &[],
        }
    }

    /// Number of rows held.
    pub(crate) fn len(&self) -> usize {
        match &self.rows {
            Rows::Dense(d) => d.len(),
            Rows::Sparse(s) => s.len(),
        }
    }

    /// True when no row is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends a sample. `values` must have distinct keys; `names` supplies
    /// the shared layout when a new metric widens a dense buffer. Past
    /// `max_rows`, the oldest row goes.
    pub(crate) fn push(
        &mut self,
        ts: i64,
        values: &[(MetricKey, f64)],
        metadata: Option<Arc<str>>,
        names: &mut MetricNames,
    ) {
        if let Rows::Dense(d) = &mut self.rows {
            let width = d.width_for(values);
            let sparse = width > MAX_DENSE_COLUMNS
                || (width >= SPARSE_FROM_COLUMNS && values.len() * 4 < width);
            if sparse {
                self.rows = Rows::Sparse(Box::new(Sparse::from_dense(d)));
            }
        }
        match &mut self.rows {
            Rows::Dense(d) => {
                d.push(ts, values, metadata, names);
                if d.len() > self.max_rows {
                    d.drop_front();
                }
            }
            Rows::Sparse(s) => {
                s.push(ts, values, metadata);
                if s.len() > self.max_rows {
                    s.drop_front();
                }
            }
        }
    }

    /// Drops every row with a timestamp at or before `cutoff`.
    pub(crate) fn evict_through(&mut self, cutoff: i64) {
        match &mut self.rows {
            Rows::Dense(d) => d.evict_through(cutoff),
            Rows::Sparse(s) => s.evict_through(cutoff),
        }
    }

    /// The rows with a timestamp after `cutoff`, oldest first, at most the
    /// newest `max`.
    pub(crate) fn rows_after(&mut self, cutoff: i64, max: usize) -> Vec<Row<'_>> {
        match &mut self.rows {
            Rows::Dense(d) => d.rows_after(cutoff, max),
            Rows::Sparse(s) => s.rows_after(cutoff, max),
        }
    }

    /// The values of metric `key`, oldest first, leaving out the newest
    /// `skip_newest` rows (and rows without the metric): the anomaly
    /// detector's baseline.
    pub(crate) fn column_values(&self, key: MetricKey, skip_newest: usize, out: &mut Vec<f64>) {
        out.clear();
        match &self.rows {
            Rows::Dense(d) => d.column_values(key, skip_newest, out),
            Rows::Sparse(s) => s.column_values(key, skip_newest, out),
        }
    }

    /// The time of the newest row, if any.
    pub(crate) fn newest_ts(&self) -> Option<i64> {
        match &self.rows {
            Rows::Dense(d) => d.newest_ts(),
            Rows::Sparse(s) => s.newest_ts(),
        }
    }

    /// The present values of the newest row (for comparing a repeated
    /// sample).
    pub(crate) fn newest_values(&self) -> Vec<(MetricKey, f64)> {
        match &self.rows {
            Rows::Dense(d) => d.newest_values().collect(),
            Rows::Sparse(s) => s.newest_values().to_vec(),
        }
    }

    /// Marks in `used` (indexed by key) every metric this buffer holds: a
    /// dense buffer's columns, a sparse buffer's values. For reclaiming the
    /// names no buffer uses ([`MetricNames::reclaim`]).
    pub(crate) fn mark_keys(&self, used: &mut [bool]) {
        let mut mark = |k: MetricKey| {
            if let Some(u) = used.get_mut(k.0 as usize) {
                *u = true;
            }
        };
        match &self.rows {
            Rows::Dense(d) => d.layout().iter().copied().for_each(&mut mark),
            Rows::Sparse(s) => s.keys().for_each(&mut mark),
        }
    }

    /// How many distinct metrics this buffer holds (columns of a dense
    /// buffer, distinct names of a sparse one's values).
    pub(crate) fn distinct_keys(&self) -> usize {
        match &self.rows {
            Rows::Dense(d) => d.layout().len(),
            Rows::Sparse(s) => s.keys().collect::<std::collections::HashSet<_>>().len(),
        }
    }

    /// Bytes of heap this buffer holds.
    pub(crate) fn heap_bytes(&self) -> usize {
        match &self.rows {
            Rows::Dense(d) => d.heap_bytes(),
            Rows::Sparse(s) => s.heap_bytes(),
        }
    }

    /// True if this buffer holds its rows sparsely (for tests and stats).
    #[cfg(test)]
    fn is_sparse(&self) -> bool {
        matches!(self.rows, Rows::Sparse(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(names: &mut MetricNames, n: &[&str]) -> Vec<MetricKey> {
        n.iter().map(|s| names.intern(s).unwrap()).collect()
    }

    /// Every sample brings a new name: the buffer turns sparse, keeps every
    /// row's own values, and holds memory for the values only.
    #[test]
    fn samples_of_ever_new_names_turn_the_buffer_sparse_and_cost_their_values() {
        let mut names = MetricNames::default();
        let mut b = RingBuffer::new(60, 1000);
        for i in 0..5000u32 {
            let k = names.intern(&format!("m{i}")).unwrap();
            b.push(i64::from(i), &[(k, f64::from(i))], None, &mut names);
        }
        assert!(b.is_sparse());
        assert_eq!(b.len(), 1000, "at most max_rows");
        let rows = b.rows_after(i64::MIN, usize::MAX);
        for (row, i) in rows.iter().zip(4000u32..) {
            let v: Vec<(MetricKey, f64)> = row.values().collect();
            assert_eq!(v, [(MetricKey(i), f64::from(i))]);
        }
        drop(rows);
        assert!(b.heap_bytes() < 1000 * 64, "{}", b.heap_bytes());
        // The layouts of the dense start were swept.
        assert!(names.layouts_held() < 64, "{}", names.layouts_held());
    }

    #[test]
    fn a_dense_buffer_keeps_at_most_max_rows_and_values_stay_aligned() {
        let mut names = MetricNames::default();
        let k = keys(&mut names, &["cpu", "mem"]);
        let mut b = RingBuffer::new(4, 6);
        for ts in 0..20 {
            let v = if ts % 3 == 0 {
                vec![(k[1], ts as f64)]
            } else {
                vec![(k[0], ts as f64), (k[1], -(ts as f64))]
            };
            b.push(ts, &v, None, &mut names);
        }
        assert!(!b.is_sparse());
        let rows = b.rows_after(i64::MIN, usize::MAX);
        let times: Vec<i64> = rows.iter().map(|r| r.ts).collect();
        assert_eq!(times, (14..20).collect::<Vec<_>>());
        let r15: Vec<(MetricKey, f64)> = rows[1].values().collect();
        assert_eq!(r15, [(k[1], 15.0)]);
    }
}
