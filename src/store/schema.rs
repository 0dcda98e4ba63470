//! The schema as the migrations make it, and a file's schema checked
//! against it.
//!
//! A database file can be edited by hand (`sqlite3 incidents.db`): a view
//! or index dropped, a column added, the migration history rewritten. Such
//! a file must give a clear error or be repaired, never a panic (refinery
//! unwraps what it reads from its history table) and never a silently
//! missing view (the README's queries use `incident_samples`).
//!
//! - The history rows are checked before refinery reads them: a version or
//!   checksum that is not a number is an error; an `applied_on` that is not
//!   a time is rewritten (the time a migration ran is not something the
//!   recorder relies on).
//! - After migrating, the file's tables, indexes and views are compared with
//!   those of a fresh database migrated to the same version: a missing or
//!   changed index or view is re-created from the migrations (writable
//!   opens) or reported (read-only ones); a missing table, or one whose
//!   columns differ, is an error naming it. Objects of the user's own are
//!   left alone.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use rusqlite::Connection;

use crate::error::{Error, Result};

/// A column as `pragma_table_info` gives it: name, declared type, not
/// null, default, primary key rank.
type Column = (String, String, bool, Option<String>, i64);

/// What the migrations make: columns per table, SQL per index and view.
#[derive(Debug, Default, PartialEq, Eq)]
struct Schema {
    /// Table → its columns.
    tables: BTreeMap<String, Vec<Column>>,
    /// Index or view → (type, SQL with white space folded, SQL as stored).
    others: BTreeMap<String, (String, String, String)>,
}

fn damaged(path: &Path, detail: String) -> Error {
    Error::DamagedSchema {
        path: path.to_path_buf(),
        detail,
    }
}

fn read(conn: &Connection) -> rusqlite::Result<Schema> {
    let mut schema = Schema::default();
    let mut stmt = conn.prepare(
        "SELECT type, name, sql FROM sqlite_master
         WHERE name NOT LIKE 'sqlite_%' AND name <> 'refinery_schema_history'
           AND type IN ('table', 'index', 'view') AND sql IS NOT NULL",
    )?;
    let objects: Vec<(String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut columns = conn.prepare(
        "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?1) ORDER BY cid",
    )?;
    for (kind, name, sql) in objects {
        if kind == "table" {
            let cols = columns
                .query_map([&name], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            schema.tables.insert(name, cols);
        } else {
            schema.others.insert(name, (kind, normalize(&sql), sql));
        }
    }
    Ok(schema)
}

/// SQL with runs of white space folded, for comparing stored definitions.
fn normalize(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The schema of a fresh database migrated to the current version.
fn expected() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let mut conn = Connection::open_in_memory().expect("an in-memory database opens");
        super::migrate(&mut conn).expect("the embedded migrations apply to an empty database");
        read(&conn).expect("a fresh schema reads")
    })
}

/// Checks the migration history before refinery reads it (see the module
/// docs); with `repair`, rewrites `applied_on` values that are not times.
pub(super) fn check_history(conn: &Connection, path: &Path, repair: bool) -> Result<()> {
    use time::format_description::well_known::Rfc3339;
    let has: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'refinery_schema_history'",
            [],
            |r| r.get(0),
        )
        .map_err(|e| super::classify(path, e))?;
    if !has {
        return Ok(());
    }
    let rows: Vec<(
        rusqlite::types::Value,
        rusqlite::types::Value,
        rusqlite::types::Value,
    )> = conn
        .prepare("SELECT version, applied_on, checksum FROM refinery_schema_history")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .map_err(|e| super::classify(path, e))?;
    use rusqlite::types::Value;
    for (version, applied_on, checksum) in rows {
        let Value::Integer(v) = version else {
            return Err(damaged(
                path,
                format!("a migration history row has version {version:?}, not a number"),
            ));
        };
        let checksum_ok = match &checksum {
            Value::Text(t) => t.parse::<u64>().is_ok(),
            Value::Integer(n) => *n >= 0,
            _ => false,
        };
        if !checksum_ok {
            return Err(damaged(
                path,
                format!("migration {v} has checksum {checksum:?}, not a number"),
            ));
        }
        let time_ok = matches!(&applied_on, Value::Text(t)
            if time::OffsetDateTime::parse(t, &Rfc3339).is_ok());
        if !time_ok {
            if !repair {
                return Err(damaged(
                    path,
                    format!(
                        "migration {v} has applied_on {applied_on:?}, not a time; open it once with write access to repair it"
                    ),
                ));
            }
            let now = time::OffsetDateTime::now_utc()
                .format(&Rfc3339)
                .expect("a time formats");
            conn.execute(
                "UPDATE refinery_schema_history SET applied_on = ?2 WHERE version = ?1",
                rusqlite::params![v, now],
            )
            .map_err(|e| super::classify(path, e))?;
            tracing::warn!(path = %path.display(), version = v, "repaired a migration history row whose applied_on was not a time");
        }
    }
    Ok(())
}

/// Compares the file's schema with the migrations' (see the module docs),
/// re-creating missing or changed indexes and views when `repair` is set.
pub(super) fn verify(conn: &Connection, path: &Path, repair: bool) -> Result<()> {
    let want = expected();
    let have = read(conn).map_err(|e| super::classify(path, e))?;
    for (table, columns) in &want.tables {
        match have.tables.get(table) {
            None => {
                return Err(damaged(path, format!("table {table} is missing")));
            }
            Some(found) if found != columns => {
                let names =
                    |c: &[Column]| c.iter().map(|c| c.0.clone()).collect::<Vec<_>>().join(", ");
                return Err(damaged(
                    path,
                    format!(
                        "table {table} has columns ({}) where this version has ({}); was it altered by hand?",
                        names(found),
                        names(columns)
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    for (name, (kind, sql, create)) in &want.others {
        let state = match have.others.get(name) {
            None => "missing",
            Some((k, s, _)) if k != kind || s != sql => "changed",
            Some(_) => continue,
        };
        if !repair {
            tracing::warn!(path = %path.display(), kind = %kind, name = %name, "schema object {state}; open the database once with write access to repair it");
            continue;
        }
        let drop = match (state, kind.as_str()) {
            ("changed", "view") => Some("DROP VIEW IF EXISTS "),
            ("changed", _) => Some("DROP INDEX IF EXISTS "),
            _ => None,
        };
        let tx = conn
            .unchecked_transaction()
            .map_err(|e| super::classify(path, e))?;
        if let Some(drop) = drop {
            // The name is one of the migrations' own (a constant of the
            // expected schema), quoted as an identifier.
            let quoted = [drop, "\"", name, "\""].concat();
            tx.execute(&quoted, [])
                .map_err(|e| super::classify(path, e))?;
        }
        tx.execute(create, [])
            .map_err(|e| super::classify(path, e))?;
        tx.commit().map_err(|e| super::classify(path, e))?;
        tracing::warn!(path = %path.display(), kind = %kind, name = %name, "re-created a {state} schema object from the migrations");
    }
    Ok(())
}
