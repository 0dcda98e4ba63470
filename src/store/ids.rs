//! Typed row ids, so a window's row is never passed where a point's is
//! expected (as Cargo's `global_cache_tracker.rs` does with `ParentId`).
//!
//! Each wraps the `INTEGER PRIMARY KEY` of one table and converts to and from
//! SQL as that integer.

use rusqlite::types::{FromSql, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use crate::error::{Error, Result, clip};

macro_rules! row_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub(crate) struct $name(pub(crate) i64);

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                self.0.to_sql()
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                i64::column_result(value).map($name)
            }
        }
    };
}

row_id!(
    /// `windows.id`: a window's row (its public id is [`crate::WindowId`]).
    WindowRow
);
row_id!(
    /// `recent_points.id`: a point in the journal. Ids only grow, so a
    /// window's journal points have ids from its `recent_from` on.
    PointId
);
row_id!(
    /// `metrics.id`: a metric name's row.
    MetricId
);
row_id!(
    /// `resources.id`: a resource's row.
    ResourceRow
);

impl WindowRow {
    /// The row of the window whose public id is `id`; a window that does not
    /// exist is [`Error::WindowNotFound`].
    pub(super) fn of(conn: &rusqlite::Connection, id: &str) -> Result<WindowRow> {
        use rusqlite::OptionalExtension;
        conn.prepare_cached("SELECT id FROM windows WHERE public_id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?
            .ok_or_else(|| Error::WindowNotFound(clip(id)))
    }
}
