//! The connection to the central database and its schema.
//!
//! Connecting checks the server (PostgreSQL 13 or newer) and brings the
//! central schema to this build's version with refinery, the same runner
//! as the local schema, over `src/fleet/migrations/`. Migrating runs under a
//! session advisory lock, so nodes starting together against an empty
//! database do not race to create the same tables: one migrates, the others
//! wait and then find nothing to do.

use postgres::Client;

use super::error::PushError;
use super::target::{Secret, Target};

mod embedded {
    refinery::embed_migrations!("src/fleet/migrations");
}

/// refinery's history table in the central database (a name of our own,
/// so that another program using refinery there keeps its history apart).
const HISTORY: &str = "incident_recorder_schema_history";

/// The key of the advisory lock taken while migrating ("irfleet1").
const MIGRATION_LOCK: i64 = 0x6972_666c_6565_7431;

/// The oldest PostgreSQL supported, as `server_version_num`.
const MIN_SERVER_VERSION: i32 = 130_000;

/// An open connection to the central database, schema checked.
pub(crate) struct Central {
    pub(crate) client: Client,
    pub(crate) display: String,
    pub(crate) secret: Secret,
}

impl Central {
    /// Connects and migrates.
    pub(crate) fn connect(target: &Target) -> Result<Central, PushError> {
        let tls = super::tls::connector(target.ssl, target.root_cert.as_deref())?;
        let client = target.config.connect(tls).map_err(|e| PushError::Connect {
            target: target.display().to_owned(),
            detail: target.secret.redact(&crate::error_chain(&e)),
        })?;
        let mut central = Central {
            client,
            display: target.display().to_owned(),
            secret: target.secret.clone(),
        };
        let version: String = central
            .client
            .query_one("SHOW server_version_num", &[])
            .and_then(|r| r.try_get(0))
            .map_err(|e| central.err("reading the server version", &e))?;
        if version.parse::<i32>().unwrap_or(0) < MIN_SERVER_VERSION {
            return Err(PushError::Central {
                target: central.display.clone(),
                what: "checking the server",
                detail: format!("PostgreSQL 13 or newer is needed (server_version_num {version})"),
                code: None,
            });
        }
        central.migrate()?;
        Ok(central)
    }

    /// Brings the schema to this build's version, or checks that a newer
    /// one still accepts this build's writes.
    fn migrate(&mut self) -> Result<(), PushError> {
        self.client
            .query_one("SELECT pg_advisory_lock($1)::text", &[&MIGRATION_LOCK])
            .map_err(|e| self.err("waiting for the migration lock", &e))?;
        let result = self.migrate_locked();
        let unlock = self
            .client
            .query_one("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]);
        result?;
        unlock.map_err(|e| self.err("releasing the migration lock", &e))?;
        Ok(())
    }

    fn migrate_locked(&mut self) -> Result<(), PushError> {
        let found = self.schema_version()?;
        let supported = schema_version();
        if found <= supported {
            let mut runner = embedded::migrations::runner().set_grouped(true);
            runner.set_migration_table_name(HISTORY);
            runner
                .run(&mut self.client)
                .map_err(|e| PushError::Central {
                    target: self.display.clone(),
                    what: "migrating the central schema",
                    detail: self.secret.redact(&crate::error_chain(&e)),
                    code: None,
                })?;
            return Ok(());
        }
        // A newer pusher migrated; its versions are additive unless it
        // raised the oldest version it lets write.
        let needed: i32 = self
            .client
            .query_one("SELECT min_version FROM fleet_writers", &[])
            .and_then(|r| r.try_get(0))
            .map_err(|e| self.err("reading fleet_writers", &e))?;
        if i64::from(needed) > supported {
            return Err(PushError::CentralTooNew {
                target: self.display.clone(),
                needed: needed.into(),
                supported,
            });
        }
        tracing::info!(central = %self.display, found, supported, "central schema is newer than this build; writing what this build knows");
        Ok(())
    }

    /// The central schema's version (0 for an empty database).
    fn schema_version(&mut self) -> Result<i64, PushError> {
        let exists: bool = self
            .client
            .query_one(
                "SELECT to_regclass('incident_recorder_schema_history') IS NOT NULL",
                &[],
            )
            .and_then(|r| r.try_get(0))
            .map_err(|e| self.err("reading the schema version", &e))?;
        if !exists {
            return Ok(0);
        }
        let v: Option<i32> = self
            .client
            .query_one(
                "SELECT max(version) FROM incident_recorder_schema_history",
                &[],
            )
            .and_then(|r| r.try_get(0))
            .map_err(|e| self.err("reading the schema version", &e))?;
        Ok(v.unwrap_or(0).into())
    }

    /// A statement's failure, redacted, with its SQLSTATE.
    pub(crate) fn err(&self, what: &'static str, e: &postgres::Error) -> PushError {
        statement_error(&self.display, &self.secret, what, e)
    }
}

/// A statement's failure on `display`, redacted, with its SQLSTATE (for
/// when the client is borrowed by a transaction).
pub(crate) fn statement_error(
    display: &str,
    secret: &Secret,
    what: &'static str,
    e: &postgres::Error,
) -> PushError {
    PushError::Central {
        target: display.to_owned(),
        what,
        detail: secret.redact(&describe(e)),
        code: e.code().map(|c| c.code().to_owned()),
    }
}

/// The newest central schema version this build knows.
pub fn schema_version() -> i64 {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0)
}

/// The server's message (with its detail and hint) or the client's chain.
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut text = db.message().to_owned();
            if let Some(detail) = db.detail() {
                text.push_str(" (");
                text.push_str(detail);
                text.push(')');
            }
            text
        }
        None => crate::error_chain(e),
    }
}
