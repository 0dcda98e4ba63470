//! PostgreSQL's binary `COPY` format, written straight into a buffer.
//!
//! Binary rather than text: a value is its bytes (8 for a float, no
//! printing and no parsing on the server), timestamps are integers, and no
//! escaping can go wrong. Measured on the push benchmark (BENCHMARKS.md):
//! the server reads binary rows faster than text ones, and writing them
//! here costs a few stores per field. Each column must be sent in its
//! column's exact type (`int8` as 8 bytes, `int4` as 4...), which the
//! `COPY` statements beside each encoder fix by naming the columns.

/// Microseconds between the Unix epoch and PostgreSQL's, 2000-01-01.
const PG_EPOCH_US: i64 = 946_684_800_000_000;

/// Rows of one `COPY ... FROM STDIN (FORMAT binary)`.
pub(crate) struct BinaryRows {
    buf: Vec<u8>,
    rows: usize,
}

impl BinaryRows {
    pub(crate) fn new() -> BinaryRows {
        let mut buf = Vec::with_capacity(1 << 16);
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buf.extend_from_slice(&0i32.to_be_bytes()); // flags
        buf.extend_from_slice(&0i32.to_be_bytes()); // header extension length
        BinaryRows { buf, rows: 0 }
    }

    /// Starts a row of `fields` fields; the caller then writes exactly that many.
    pub(crate) fn row(&mut self, fields: i16) -> &mut Self {
        self.rows += 1;
        self.buf.extend_from_slice(&fields.to_be_bytes());
        self
    }

    pub(crate) fn int8(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&8i32.to_be_bytes());
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub(crate) fn int4(&mut self, v: i32) -> &mut Self {
        self.buf.extend_from_slice(&4i32.to_be_bytes());
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub(crate) fn float8(&mut self, v: f64) -> &mut Self {
        self.buf.extend_from_slice(&8i32.to_be_bytes());
        self.buf.extend_from_slice(&v.to_bits().to_be_bytes());
        self
    }

    pub(crate) fn bool(&mut self, v: bool) -> &mut Self {
        self.buf.extend_from_slice(&1i32.to_be_bytes());
        self.buf.push(u8::from(v));
        self
    }

    /// A `timestamptz` from Unix milliseconds.
    pub(crate) fn timestamptz_ms(&mut self, ms: i64) -> &mut Self {
        self.int8(ms.saturating_mul(1000).saturating_sub(PG_EPOCH_US))
    }

    pub(crate) fn text(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    /// A `jsonb` from JSON text (format version 1: a version byte, then the text).
    pub(crate) fn jsonb(&mut self, json: &str) -> &mut Self {
        let len = i32::try_from(json.len() + 1).expect("a field under 2 GiB");
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.push(1);
        self.buf.extend_from_slice(json.as_bytes());
        self
    }

    pub(crate) fn null(&mut self) -> &mut Self {
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
        self
    }

    pub(crate) fn opt_int8(&mut self, v: Option<i64>) -> &mut Self {
        match v {
            Some(v) => self.int8(v),
            None => self.null(),
        }
    }

    pub(crate) fn opt_int4(&mut self, v: Option<i32>) -> &mut Self {
        match v {
            Some(v) => self.int4(v),
            None => self.null(),
        }
    }

    pub(crate) fn opt_float8(&mut self, v: Option<f64>) -> &mut Self {
        match v {
            Some(v) => self.float8(v),
            None => self.null(),
        }
    }

    pub(crate) fn opt_jsonb(&mut self, v: Option<&str>) -> &mut Self {
        match v {
            Some(v) => self.jsonb(v),
            None => self.null(),
        }
    }

    pub(crate) fn opt_text(&mut self, v: Option<&str>) -> &mut Self {
        match v {
            Some(v) => self.text(v),
            None => self.null(),
        }
    }

    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        let len = i32::try_from(b.len()).expect("a field under 2 GiB");
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(b);
        self
    }

    /// Rows written so far.
    pub(crate) fn len(&self) -> usize {
        self.rows
    }

    /// The whole `COPY` payload, trailer included.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_laid_out_as_postgres_reads_them() {
        let mut rows = BinaryRows::new();
        rows.row(3).int4(7).null().timestamptz_ms(946_684_800_001);
        let bytes = rows.finish();
        let mut want = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0".to_vec();
        want.extend_from_slice(&[0, 3]);
        want.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 7]);
        want.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        want.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0x03, 0xe8]);
        want.extend_from_slice(&[0xff, 0xff]);
        assert_eq!(bytes, want);
    }
}
