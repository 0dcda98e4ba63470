//! A buffer as a clean stop saves it (`saved_buffers.samples`, see
//! `migrations/V5`), and back.
//!
//! Format, little-endian: a version byte (2); the count of metric names
//! (u32) and each name (u16 length + UTF-8); the count of rows (u32), then
//! per row its time (i64), its count of values (u32), each value as the
//! index of its name (u32) and the f64's bits (u64), and its metadata (u32
//! length + JSON text, or `u32::MAX` for none). Bytes that are not this
//! (damaged, another version) restore to nothing: the resource starts with
//! an empty buffer, and the recorder says so.

use std::collections::HashMap;
use std::sync::Arc;

use super::{MetricKey, MetricNames, RingBuffer};

const VERSION: u8 = 2;
const NO_METADATA: u32 = u32::MAX;

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
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
}

impl RingBuffer {
    /// The buffer in the form a clean stop saves (see the module docs).
    pub(crate) fn save(&mut self, names: &MetricNames) -> Vec<u8> {
        let rows = self.rows_after(i64::MIN, usize::MAX);
        let mut index: HashMap<MetricKey, u32> = HashMap::new();
        let mut keys: Vec<MetricKey> = Vec::new();
        for row in &rows {
            for (k, _) in row.values() {
                index.entry(k).or_insert_with(|| {
                    keys.push(k);
                    (keys.len() - 1) as u32
                });
            }
        }
        let mut out = vec![VERSION];
        out.extend_from_slice(&(keys.len() as u32).to_le_bytes());
        for &k in &keys {
            let name = names.name(k).as_bytes();
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(name);
        }
        out.extend_from_slice(&(rows.len() as u32).to_le_bytes());
        for row in &rows {
            out.extend_from_slice(&row.ts.to_le_bytes());
            let values: Vec<(MetricKey, f64)> = row.values().collect();
            out.extend_from_slice(&(values.len() as u32).to_le_bytes());
            for (k, v) in values {
                out.extend_from_slice(&index[&k].to_le_bytes());
                out.extend_from_slice(&v.to_bits().to_le_bytes());
            }
            match row.metadata {
                Some(m) => {
                    out.extend_from_slice(&(m.len() as u32).to_le_bytes());
                    out.extend_from_slice(m.as_bytes());
                }
                None => out.extend_from_slice(&NO_METADATA.to_le_bytes()),
            }
        }
        out
    }

    /// A buffer from [`RingBuffer::save`]'s bytes, keeping only rows after
    /// `cutoff`; `None` for bytes that are not a saved buffer.
    pub(crate) fn restore(
        bytes: &[u8],
        names: &mut MetricNames,
        expected_rows: usize,
        max_rows: usize,
        cutoff: i64,
    ) -> Option<RingBuffer> {
        let mut r = Reader(bytes);
        if r.u8()? != VERSION {
            return None;
        }
        let count = r.u32()? as usize;
        let mut keys = Vec::with_capacity(count.min(bytes.len()));
        for _ in 0..count {
            let len = r.u16()? as usize;
            let name = std::str::from_utf8(r.take(len)?).ok()?;
            keys.push(names.intern(name)?);
        }
        let rows = r.u32()? as usize;
        let mut buffer = RingBuffer::new(expected_rows, max_rows);
        let mut values: Vec<(MetricKey, f64)> = Vec::new();
        let mut last = i64::MIN;
        for _ in 0..rows {
            let ts = r.u64()? as i64;
            if ts < last {
                return None;
            }
            last = ts;
            let n = r.u32()? as usize;
            values.clear();
            for _ in 0..n {
                let key = *keys.get(r.u32()? as usize)?;
                let v = f64::from_bits(r.u64()?);
                if crate::validate::value(v).is_err() || values.iter().any(|(k, _)| *k == key) {
                    return None;
                }
                values.push((key, v));
            }
            let metadata = match r.u32()? {
                NO_METADATA => None,
                len => Some(Arc::<str>::from(
                    std::str::from_utf8(r.take(len as usize)?).ok()?,
                )),
            };
            if ts > cutoff && (!values.is_empty() || metadata.is_some()) {
                buffer.push(ts, &values, metadata, names);
            }
        }
        r.0.is_empty().then_some(buffer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row as text: time, (metric, value bits), metadata.
    type RowText = (i64, Vec<(String, u64)>, Option<String>);

    fn text(b: &mut RingBuffer, names: &MetricNames) -> Vec<RowText> {
        b.rows_after(i64::MIN, usize::MAX)
            .iter()
            .map(|row| {
                let mut v: Vec<(String, u64)> = row
                    .values()
                    .map(|(k, v)| (names.name(k).to_owned(), v.to_bits()))
                    .collect();
                v.sort();
                (row.ts, v, row.metadata.map(|m| m.to_string()))
            })
            .collect()
    }

    #[test]
    fn a_saved_value_outside_the_value_rule_makes_the_buffer_unreadable() {
        let mut names = MetricNames::default();
        let cpu = names.intern("cpu").unwrap();
        for bad in [f64::MAX, -1.5e300] {
            let mut b = RingBuffer::new(4, 100);
            b.push(1, &[(cpu, bad)], None, &mut names);
            let bytes = b.save(&names);
            let mut fresh = MetricNames::default();
            assert!(RingBuffer::restore(&bytes, &mut fresh, 4, 100, 0).is_none());
        }
    }

    #[test]
    fn a_saved_buffer_restores_its_rows_values_and_metadata_after_the_cutoff() {
        for sparse in [false, true] {
            let mut names = MetricNames::default();
            let cpu = names.intern("cpu").unwrap();
            let mem = names.intern("mem").unwrap();
            let mut b = RingBuffer::new(4, 100);
            for ts in 0..10 {
                let meta = (ts % 3 == 0).then(|| Arc::<str>::from(format!("{{\"n\":{ts}}}")));
                let mut values: Vec<(MetricKey, f64)> = if ts % 2 == 0 {
                    vec![(cpu, ts as f64 + 0.1), (mem, -0.0)]
                } else {
                    vec![(mem, crate::validate::MAX_ABS_VALUE)]
                };
                if sparse {
                    values.push((names.intern(&format!("x{ts}")).unwrap(), 1.0));
                }
                b.push(ts, &values, meta, &mut names);
            }
            let bytes = b.save(&names);
            let mut fresh = MetricNames::default();
            fresh.intern("other"); // different keys on the other side
            let mut r = RingBuffer::restore(&bytes, &mut fresh, 4, 100, 6).unwrap();
            let want: Vec<RowText> = text(&mut b, &names)
                .into_iter()
                .filter(|(ts, _, _)| *ts > 6)
                .collect();
            assert_eq!(text(&mut r, &fresh), want, "sparse {sparse}");
            for cut in 0..bytes.len() {
                assert!(
                    RingBuffer::restore(&bytes[..cut], &mut fresh, 4, 100, 0).is_none(),
                    "{cut}"
                );
            }
            let mut flipped = bytes.clone();
            flipped[0] = 9;
            assert!(RingBuffer::restore(&flipped, &mut fresh, 4, 100, 0).is_none());
        }
    }
}
