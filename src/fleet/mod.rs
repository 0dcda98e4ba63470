//! The fleet: every node pushes its closed windows to a central PostgreSQL,
//! exactly once, where fleet-wide SQL runs (README, "A fleet in PostgreSQL").
//!
//! This module sits on top of the store: it reads windows through the
//! store's API and marks them through `store::push`, the only SQLite it
//! touches; no lower module knows it exists. It holds all the PostgreSQL SQL
//! of the crate (constants with bound parameters, like the store's).
//!
//! | file | holds |
//! |---|---|
//! | `target.rs` | the URL, libpq's environment and `~/.pgpass`, the node name, the password kept out of every message |
//! | `tls.rs` | libpq's `sslmode`s on rustls |
//! | `central.rs` | connecting, the server check, the central schema's migrations (`migrations/`) |
//! | `push.rs` | one push: batches, `COPY`, the exactly-once protocol |
//! | `reconcile.rs` | the local marks compared with the central ids: what a push need not send, what `--verify` sends again |
//! | `copy.rs` | the binary `COPY` encoder |
//! | `pusher.rs` | the background thread, its backoff and status |
//!
//! # Design
//!
//! ## Locking and exactly once
//!
//! A batch of windows goes in one central transaction: each window's row is
//! inserted with `ON CONFLICT (node, public_id) DO NOTHING RETURNING id`,
//! then the rows under the new windows go in with `COPY`, then `COMMIT`.
//! Only after the commit are the windows marked pushed locally
//! (`window_pushes`, in one SQLite transaction). So:
//!
//! - a crash or kill before the commit leaves nothing centrally (the
//!   transaction dies with the connection) and nothing marked: the windows
//!   go with the next push;
//! - a crash between the commit and the mark leaves the windows centrally
//!   but unmarked: the next push's insert finds them (the conflict clause),
//!   adds nothing, compares the central copy with the local window and
//!   marks it (counted as *skipped*); a different window under the same id
//!   is refused and reported (and compared again later, like any refusal);
//! - two pushers of one database (a `watch --push-to` and a manual `push`)
//!   serialize on the unique key: the second insert waits for the first
//!   transaction and then finds the row.
//!
//! ## Which central database a mark is for
//!
//! A mark names its push target: the central database, by the uuid its
//! schema creates (`fleet_identity`) and the database's oid, and the node
//! name. A new central database, one dropped and created again, one restored
//! from a dump into a new database, or another `--node` is another target,
//! with no marks: the push first asks it which of the windows it has (ids
//! compared a thousand per query, `reconcile.rs`), marks those, and sends the
//! rest. A restore in place (same uuid and oid, windows missing) is found by
//! `push --verify`, which every new session of a background pusher also
//! runs, and a pusher that has nothing to send checks the identity every
//! [`PusherOptions::identity_check`]. Retention spares what the target the store
//! last connected to does not have.
//!
//! Windows are unique per node, so two nodes with the same window ids never
//! collide. Metric names and resources are added before the batch, sorted,
//! each set in a short transaction of its own: a batch never holds a lock
//! another node needs, and two nodes adding the same names take their locks
//! in the same order. Migrations run under an advisory lock. A window the
//! server refuses (a value it cannot store: SQLSTATE class 22, a null or a
//! CHECK violation) is found by retrying its batch one window at a time,
//! refused alone, and counted; it is tried again by a later push, a minute
//! after the first refusal, doubling to at most an hour
//! ([`RETRY_FIRST`], [`RETRY_MAX`]; `push --retry-refused`: now), since a
//! constraint may be dropped and a server may be fixed. Any other failure leaves the batch unmarked
//! for the next attempt, on a new connection. The local reads never take the recorder's lock, and the
//! recorder never waits for the network: a central database that is down,
//! slow or hung stalls only the pusher's thread.
//!
//! ## Compatibility and migrations
//!
//! The central schema has its own versioned migrations
//! (`src/fleet/migrations/V<n>__*.sql`, refinery, history in
//! `incident_recorder_schema_history`), applied by every pusher when it
//! connects: an empty database gets the whole schema, an older one the
//! missing versions, in one transaction. A database migrated by a newer
//! pusher is written as this build knows it, unless its `fleet_writers`
//! says this build is too old (a migration that is not additive raises it):
//! then the push fails with a clear error and the windows wait locally. The
//! server must be PostgreSQL 13 or newer; the schema uses nothing newer.
//!
//! ## Performance
//!
//! Points and values go in with binary `COPY` (measured faster than text on
//! the server, and nothing to print or escape here), built straight into a
//! buffer (`copy.rs`), in batches of up to 100,000 values or 200 windows:
//! one round trip per window (its row, for its central id) plus at most five
//! `COPY`s and a commit per batch. A second thread reads the next batch out
//! of SQLite while the current one is sent, so the server ingests while the
//! node reads. `data_points` and `point_values`, the big tables, have one
//! index each and no foreign key. The push of 1,000 windows × 500 points ×
//! 8 metrics runs at the ratio to a raw binary `COPY` of the same rows
//! measured in `BENCHMARKS.md` (target: at least half). Memory: about two
//! batches (a few MB), or two windows when one window alone is larger.

mod central;
mod copy;
mod error;
mod notes;
mod push;
mod pusher;
mod reconcile;
mod target;
mod tls;

pub use crate::store::{RETRY_FIRST, RETRY_MAX};
pub use central::schema_version as central_schema_version;
pub use error::PushError;
pub use push::{PushRequest, PushSummary, RefusedWindow, push, push_with};
pub use pusher::{Pusher, PusherOptions, PusherStatus};
pub use target::{MAX_NODE_LEN, Target, validate_node};
