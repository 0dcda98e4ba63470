//! The sparse form of a buffer: rows of `(metric, value)` pairs.
//!
//! For a resource whose samples each carry a few of many different metrics
//! (see the parent module): a push costs what its sample holds, and memory
//! is 16 bytes a value plus a row's header, however many names there are.

use std::collections::VecDeque;
use std::sync::Arc;

use super::dense::Dense;
use super::{MetricKey, Row, RowValues};

#[derive(Debug)]
struct SparseRow {
    ts: i64,
    values: Box<[(MetricKey, f64)]>,
    metadata: Option<Arc<str>>,
}

#[derive(Debug, Default)]
pub(super) struct Sparse {
    rows: VecDeque<SparseRow>,
    /// Values held, for `heap_bytes` without a walk.
    values: usize,
}

impl Sparse {
    /// The rows of a dense buffer, oldest first.
    pub(super) fn from_dense(dense: &Dense) -> Sparse {
        let mut s = Sparse::default();
        for (ts, values, metadata) in dense.drain_rows() {
            s.push(ts, &values, metadata);
        }
        s
    }

    pub(super) fn len(&self) -> usize {
        self.rows.len()
    }

    pub(super) fn push(
        &mut self,
        ts: i64,
        values: &[(MetricKey, f64)],
        metadata: Option<Arc<str>>,
    ) {
        self.values += values.len();
        self.rows.push_back(SparseRow {
            ts,
            values: values.into(),
            metadata,
        });
    }

    /// Every key of every row.
    pub(super) fn keys(&self) -> impl Iterator<Item = MetricKey> + '_ {
        self.rows.iter().flat_map(|r| r.values.iter().map(|v| v.0))
    }

    pub(super) fn drop_front(&mut self) {
        if let Some(r) = self.rows.pop_front() {
            self.values -= r.values.len();
        }
    }

    pub(super) fn evict_through(&mut self, cutoff: i64) {
        while self.rows.front().is_some_and(|r| r.ts <= cutoff) {
            self.drop_front();
        }
    }

    pub(super) fn rows_after(&mut self, cutoff: i64, max: usize) -> Vec<Row<'_>> {
        let n = self.rows.len();
        let first = self
            .rows
            .iter()
            .position(|r| r.ts > cutoff)
            .unwrap_or(n)
            .max(n.saturating_sub(max));
        self.rows
            .range(first..)
            .map(|r| Row {
                ts: r.ts,
                values: RowValues::Sparse(&r.values),
                metadata: r.metadata.as_ref(),
            })
            .collect()
    }

    pub(super) fn column_values(&self, key: MetricKey, skip_newest: usize, out: &mut Vec<f64>) {
        let n = self.rows.len().saturating_sub(skip_newest);
        out.extend(
            self.rows
                .range(..n)
                .filter_map(|r| r.values.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)),
        );
    }

    pub(super) fn newest_ts(&self) -> Option<i64> {
        self.rows.back().map(|r| r.ts)
    }

    pub(super) fn newest_values(&self) -> &[(MetricKey, f64)] {
        self.rows.back().map_or(&[], |r| &r.values)
    }

    pub(super) fn heap_bytes(&self) -> usize {
        self.rows.capacity() * std::mem::size_of::<SparseRow>()
            + self.values * std::mem::size_of::<(MetricKey, f64)>()
    }
}
