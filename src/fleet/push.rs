//! One push: every closed window the central database does not have, in
//! batches, each in one central transaction, each marked locally only after
//! that transaction committed. Before the batches, the central database is
//! asked which of the windows it already has (`reconcile.rs`), so a push to
//! a central database this node has not pushed to before sends only what
//! that one lacks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;

use postgres::{Statement, Transaction};

use super::central::{Central, statement_error};
use super::copy::BinaryRows;
use super::error::PushError;
use super::target::Target;
use crate::model::{IncidentWindow, Timestamp, WindowId};
use crate::processes::ProcessSnapshot;
use crate::store::{PushDetails, PushKey, PushTarget, Store};

/// Windows listed from the local database per query (and ids compared
/// with the central database's per query).
pub(super) const LIST: usize = 1_000;
/// A batch closes once its windows hold this many values (about 3 MB of
/// `COPY` rows): the unit of memory, and of work lost to a failed commit.
const BATCH_VALUES: usize = 100_000;
/// ... or once it holds this many windows.
const BATCH_WINDOWS: usize = 200;
/// Refused windows listed in a [`PushSummary`] (all are counted).
const MAX_LISTED: usize = 100;

/// The central database's name for itself: its `fleet_identity` row (a new
/// one when the database is created again) and the database's oid (a new
/// one when a dump is restored into a new database).
const IDENTITY: &str = "SELECT i.uuid::text || '/' || d.oid::text
    FROM fleet_identity i JOIN pg_database d ON d.datname = current_database()";

/// What a push did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct PushSummary {
    /// Windows now in the central database that were not before.
    pub pushed: u64,
    /// Windows the central database already had (pushed before a crash
    /// kept them from being marked, by another pusher of this database, or
    /// before this database recorded where it pushed): marked, nothing added.
    pub skipped: u64,
    /// Windows the central database refused: not pushed, marked so they
    /// are tried again later (`store::RETRY_FIRST`), listed in `refused`.
    pub failed: u64,
    /// Refused windows tried again by this push (counted again in
    /// `pushed`, `skipped` or `failed`).
    pub retried: u64,
    /// Windows marked as held that the central database no longer has,
    /// found by `verify`: sent again (counted again in `pushed`).
    pub missing: u64,
    /// Data points pushed.
    pub points: u64,
    /// Metric values pushed.
    pub values: u64,
    /// Notes written on windows after they were pushed, added centrally
    /// by this push (a window's notes pushed with it are not counted).
    pub notes: u64,
    /// The first refused windows, with the reason.
    pub refused: Vec<RefusedWindow>,
}

/// A window the central database refused.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct RefusedWindow {
    /// Its id.
    pub window: WindowId,
    /// Why.
    pub reason: String,
}

impl PushSummary {
    /// Counts what became of window `key` (`points` and `values` if pushed).
    pub(super) fn add(&mut self, key: &PushKey, points: usize, values: usize, outcome: &Outcome) {
        self.retried += u64::from(key.retry);
        match outcome {
            Outcome::Pushed => {
                self.pushed += 1;
                self.points += points as u64;
                self.values += values as u64;
            }
            Outcome::Present => self.skipped += 1,
            Outcome::Refused(reason) => {
                self.failed += 1;
                if self.refused.len() < MAX_LISTED {
                    self.refused.push(RefusedWindow {
                        window: key.public_id.clone(),
                        reason: reason.clone(),
                    });
                }
            }
        }
    }
}

/// What a push does beyond sending what is not marked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PushRequest {
    /// First ask the central database which of the windows marked as held
    /// it still has, and send the others again (`push --verify`).
    pub verify: bool,
    /// Try every refused window now, not when its retry is due
    /// (`push --retry-refused`).
    pub retry_refused: bool,
}

impl PushRequest {
    /// A push that also verifies the marks and retries refused windows now.
    pub fn with_verify(mut self, verify: bool) -> PushRequest {
        self.verify = verify;
        self
    }

    /// A push that tries refused windows now.
    pub fn with_retry_refused(mut self, retry: bool) -> PushRequest {
        self.retry_refused = retry;
        self
    }
}

/// Pushes every closed window of `store` that the central database does
/// not have, calling `progress` after each batch with the totals so far.
///
/// Creates or migrates the central schema first. The store is marked as one
/// that pushes (see [`crate::PushState::enabled`]), to this central
/// database. A failure stops the push; what was committed before it stays
/// committed and marked.
pub fn push(
    store: &Store,
    target: &Target,
    progress: &mut dyn FnMut(&PushSummary),
) -> Result<PushSummary, PushError> {
    push_with(store, target, &PushRequest::default(), progress)
}

/// [`push`], verifying the marks first or retrying refused windows now as
/// `request` says.
pub fn push_with(
    store: &Store,
    target: &Target,
    request: &PushRequest,
    progress: &mut dyn FnMut(&PushSummary),
) -> Result<PushSummary, PushError> {
    store.enable_push(Timestamp::now())?;
    let mut session = Session::open(target, store)?;
    let mut summary = PushSummary::default();
    if request.verify {
        summary.missing = session.verify(store)?;
    }
    if request.retry_refused {
        store.retry_refused_now(session.target())?;
    }
    // First the notes on windows already there (those of the backlog go
    // with their windows).
    let notes = session.push_notes(store)?;
    let mut pushed = session.push_backlog(store, &mut |s| {
        progress(s);
        true
    })?;
    pushed.missing = summary.missing;
    pushed.notes = notes;
    Ok(pushed)
}

/// A closed window read from the local database, ready to push.
struct LocalWindow {
    row: i64,
    key: PushKey,
    window: IncidentWindow,
    details: PushDetails,
    values: usize,
    /// Its process snapshots (`process_samples`, central version 5).
    processes: Vec<ProcessSnapshot>,
}

/// What became of one window.
pub(super) enum Outcome {
    Pushed,
    Present,
    Refused(String),
}

/// A resource as the central database has it.
struct CentralResource {
    id: i64,
    name: Option<String>,
    kind: Option<String>,
}

const INSERT_WINDOW: &str =
    "INSERT INTO windows (node, public_id, resource_id, trigger_type, trigger_id,
        start_ms, end_ms, deadline_ms, status, opened_ms, summary_points, duration_ms)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
    ON CONFLICT (node, public_id) DO NOTHING
    RETURNING id";

const EXISTING_WINDOW: &str =
    "SELECT w.public_id, r.external_id, w.start_ms, w.end_ms, w.status, w.summary_points
    FROM windows w JOIN resources r ON r.id = w.resource_id
    WHERE w.node = $1 AND w.public_id = $2";

// New names go in sorted, so two nodes adding the same names lock them in
// the same order and cannot deadlock.
const UPSERT_METRICS: &str = "INSERT INTO metrics (name)
    SELECT n FROM unnest($1::text[]) AS t(n) ORDER BY n
    ON CONFLICT (name) DO NOTHING";

const METRIC_IDS: &str = "SELECT name, id FROM metrics WHERE name = ANY($1::text[])";

const UPSERT_RESOURCES: &str = "INSERT INTO resources (node, external_id, name, type)
    SELECT $1, e, n, t FROM unnest($2::text[], $3::text[], $4::text[]) AS u(e, n, t) ORDER BY e
    ON CONFLICT (node, external_id) DO UPDATE
        SET name = coalesce(excluded.name, resources.name),
            type = coalesce(excluded.type, resources.type)
    RETURNING external_id, id, name, type";

const COPY_DATA_POINTS: &str =
    "COPY data_points (window_id, point_no, ts_ms, metadata) FROM STDIN (FORMAT binary)";
const COPY_POINT_VALUES: &str =
    "COPY point_values (window_id, point_no, metric_id, ts, value) FROM STDIN (FORMAT binary)";
const COPY_TRIGGERS: &str = "COPY window_triggers
    (window_id, trigger_type, trigger_id, fired_ms, resolved_ms, opened_window,
     labels, annotations, rule, ends_ms)
    FROM STDIN (FORMAT binary)";
const COPY_STATS: &str = "COPY window_metric_stats
    (window_id, metric_id, samples, peak, low, average, change, p50, p95, p99,
     change_score, change_rank, change_unscored)
    FROM STDIN (FORMAT binary)";
const COPY_PROCESSES: &str = "COPY process_samples
    (window_id, ts_ms, pid, name, cmdline, \"user\", cpu, rss, read_bps, write_bps)
    FROM STDIN (FORMAT binary)";
const COPY_NOTES: &str = "COPY window_notes (window_id, at_ms, author, text)
    FROM STDIN (FORMAT binary)";
const COPY_ANOMALIES: &str = "COPY window_anomalies
    (window_id, metric_id, ts_ms, value, score, description)
    FROM STDIN (FORMAT binary)";

/// A connection to the central database, pushing for one node, with the
/// central ids of the names it has seen.
///
/// The id caches only ever hold committed rows: names are added in short
/// transactions of their own before the batch that uses them, so a batch
/// that rolls back leaves no id behind that does not exist.
pub(crate) struct Session {
    pub(super) central: Central,
    pub(super) node: String,
    metrics: HashMap<String, i32>,
    resources: HashMap<String, CentralResource>,
    insert_window: Statement,
    existing_window: Statement,
    /// The central database's identity (see [`IDENTITY`]) and the local
    /// push target it and the node make.
    identity: String,
    pub(super) target: PushTarget,
}

impl Session {
    /// Connects, migrates, prepares, and makes this central database and
    /// node the store's push target.
    pub(crate) fn open(target: &Target, store: &Store) -> Result<Session, PushError> {
        let mut central = Central::connect(target)?;
        let identity = read_identity(&mut central)?;
        let local =
            store.push_target(&identity, target.node(), target.display(), Timestamp::now())?;
        let insert_window = central
            .client
            .prepare(INSERT_WINDOW)
            .map_err(|e| central.err("preparing statements", &e))?;
        let existing_window = central
            .client
            .prepare(EXISTING_WINDOW)
            .map_err(|e| central.err("preparing statements", &e))?;
        Ok(Session {
            central,
            node: target.node().to_owned(),
            metrics: HashMap::new(),
            resources: HashMap::new(),
            insert_window,
            existing_window,
            identity,
            target: local,
        })
    }

    /// The local push target of this session.
    pub(crate) fn target(&self) -> PushTarget {
        self.target
    }

    /// True if the central database is not the one this session started
    /// with (dropped and created again meanwhile); an error if it cannot
    /// be asked.
    pub(crate) fn central_changed(&mut self) -> Result<bool, PushError> {
        Ok(read_identity(&mut self.central)? != self.identity)
    }

    /// Pushes the backlog, oldest window first, calling `after_batch` with
    /// the totals after each batch; it returns false to stop there.
    pub(crate) fn push_backlog(
        &mut self,
        store: &Store,
        after_batch: &mut dyn FnMut(&PushSummary) -> bool,
    ) -> Result<PushSummary, PushError> {
        let mut summary = PushSummary::default();
        let now = Timestamp::now();
        self.reconcile(store, now, &mut summary)?;
        if !after_batch(&summary) {
            return Ok(summary);
        }
        let target = self.target;
        // A second thread reads the next batch out of SQLite while this one
        // sends the current one: the server ingests while we read. One
        // batch waits at most, so memory stays at about two batches.
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            scope.spawn(move || read_batches(store, target, now, &tx));
            for batch in rx {
                let sent = batch.and_then(|b| self.send(store, b, &mut summary));
                if let Err(e) = sent {
                    after_batch(&summary);
                    return Err(e);
                }
                if !after_batch(&summary) {
                    break;
                }
            }
            // Returning drops the receiver, which ends the reader.
            Ok(summary)
        })
    }

    /// Pushes one batch, marks what the central database now holds and
    /// counts it in `summary`. On error, what was committed and marked
    /// before it is counted.
    fn send(
        &mut self,
        store: &Store,
        batch: Vec<LocalWindow>,
        summary: &mut PushSummary,
    ) -> Result<(), PushError> {
        self.ensure_names(&batch)?;
        let outcomes = match self.write(&batch) {
            Ok(outcomes) => outcomes,
            Err(e) if e.is_about_data() => {
                // Some window holds what the server refuses: push them one
                // by one, so only that one is refused.
                let mut outcomes = Vec::with_capacity(batch.len());
                for w in &batch {
                    match self.write(std::slice::from_ref(w)) {
                        Ok(mut o) => outcomes.append(&mut o),
                        Err(e) if e.is_about_data() => {
                            tracing::warn!(window = %w.window.id, error = %crate::error_chain(&e), "the central database refused a window; it stays local");
                            outcomes.push(Outcome::Refused(e.to_string()));
                        }
                        Err(e) => {
                            mark(
                                store,
                                self.target,
                                &batch[..outcomes.len()],
                                &outcomes,
                                summary,
                            )?;
                            return Err(e);
                        }
                    }
                }
                outcomes
            }
            Err(e) => return Err(e),
        };
        // Committed centrally: if marking fails, the next push finds these
        // windows there and marks them then.
        mark(store, self.target, &batch, &outcomes, summary)
    }

    /// Adds the batch's metric names and resources the central database
    /// may not have, each set in one short transaction of its own.
    fn ensure_names(&mut self, batch: &[LocalWindow]) -> Result<(), PushError> {
        let mut names = BTreeSet::new();
        for w in batch {
            for p in &w.window.data_points {
                names.extend(p.metrics.keys().map(String::as_str));
            }
            names.extend(
                w.details
                    .anomalies
                    .iter()
                    .filter_map(|a| a.metric.as_deref()),
            );
        }
        let missing: Vec<&str> = names
            .into_iter()
            .filter(|n| !self.metrics.contains_key(*n))
            .collect();
        if !missing.is_empty() {
            let c = &mut self.central;
            c.client
                .execute(UPSERT_METRICS, &[&missing])
                .map_err(|e| c.err("adding metric names", &e))?;
            let rows = c
                .client
                .query(METRIC_IDS, &[&missing])
                .map_err(|e| c.err("reading metric ids", &e))?;
            for r in rows {
                self.metrics.insert(r.get(0), r.get(1));
            }
        }
        // Resources that are new here, or whose name or type changed.
        let mut changed: BTreeMap<&str, (Option<&str>, Option<&str>)> = BTreeMap::new();
        for w in batch {
            let (name, kind) = (
                w.window.resource_name.as_deref(),
                w.window.resource_type.as_deref(),
            );
            let stale = match self.resources.get(&w.window.resource_id) {
                None => true,
                Some(r) => {
                    (name.is_some() && name != r.name.as_deref())
                        || (kind.is_some() && kind != r.kind.as_deref())
                }
            };
            if stale {
                changed.insert(&w.window.resource_id, (name, kind));
            }
        }
        if !changed.is_empty() {
            let ids: Vec<&str> = changed.keys().copied().collect();
            let names: Vec<Option<&str>> = changed.values().map(|v| v.0).collect();
            let kinds: Vec<Option<&str>> = changed.values().map(|v| v.1).collect();
            let c = &mut self.central;
            let rows = c
                .client
                .query(UPSERT_RESOURCES, &[&self.node, &ids, &names, &kinds])
                .map_err(|e| c.err("adding resources", &e))?;
            for r in rows {
                self.resources.insert(
                    r.get(0),
                    CentralResource {
                        id: r.get(1),
                        name: r.get(2),
                        kind: r.get(3),
                    },
                );
            }
        }
        Ok(())
    }

    /// Writes `batch` in one transaction: each window's row (nothing if the
    /// node already has a window of that id), then the rows under the new
    /// ones with `COPY`. Returns what became of each window, in order.
    fn write(&mut self, batch: &[LocalWindow]) -> Result<Vec<Outcome>, PushError> {
        let Session {
            central,
            node,
            metrics,
            resources,
            insert_window,
            existing_window,
            ..
        } = self;
        let Central {
            client,
            display,
            secret,
        } = central;
        let err = |what, e: &postgres::Error| statement_error(display, secret, what, e);
        let mut tx = client
            .transaction()
            .map_err(|e| err("starting a transaction", &e))?;
        let mut rows = Rows::default();
        let mut outcomes = Vec::with_capacity(batch.len());
        for w in batch {
            let win = &w.window;
            let resource = resources
                .get(&win.resource_id)
                .map(|r| r.id)
                .expect("ensure_names added every resource of the batch");
            let summary = win.summary.as_ref();
            let inserted = tx
                .query_opt(
                    &*insert_window,
                    &[
                        &node.as_str(),
                        &win.id.as_str(),
                        &resource,
                        &win.trigger_type.as_str(),
                        &win.trigger_id.as_deref(),
                        &win.start_time.as_unix_ms(),
                        &win.end_time.map(Timestamp::as_unix_ms),
                        &w.details.deadline_ms,
                        &win.status.as_str(),
                        &w.details.opened_ms,
                        &summary.map(|s| s.data_points as i64),
                        &summary.map(|s| s.duration_ms),
                    ],
                )
                .map_err(|e| err("inserting a window", &e))?;
            match inserted {
                Some(r) => {
                    rows.add(r.get(0), w, metrics);
                    outcomes.push(Outcome::Pushed);
                }
                None => {
                    let r = tx
                        .query_one(&*existing_window, &[&node.as_str(), &win.id.as_str()])
                        .map_err(|e| err("reading an existing window", &e))?;
                    outcomes.push(compare(&w.key, &central_key(&r), node));
                }
            }
        }
        rows.copy(&mut tx, display, &err)?;
        tx.commit().map_err(|e| err("committing", &e))?;
        Ok(outcomes)
    }
}

/// Reads the backlog, oldest first, in batches of [`BATCH_VALUES`] values
/// or [`BATCH_WINDOWS`] windows, until it is read or nobody listens.
fn read_batches(
    store: &Store,
    target: PushTarget,
    now: Timestamp,
    tx: &std::sync::mpsc::SyncSender<Result<Vec<LocalWindow>, PushError>>,
) {
    let mut after = 0;
    let mut batch = Vec::new();
    let mut values = 0;
    loop {
        let listed = match store.windows_to_push(target, now, after, LIST) {
            Ok(l) => l,
            Err(e) => {
                let _ = tx.send(Err(e.into()));
                return;
            }
        };
        let done = listed.len() < LIST;
        for key in listed {
            after = key.row;
            match load(store, key) {
                Ok(Some(w)) => {
                    // A process row counts as a value: it weighs about as
                    // much in memory and on the wire.
                    values +=
                        w.values + w.processes.iter().map(|s| s.processes.len()).sum::<usize>();
                    batch.push(w);
                }
                Ok(None) => {}
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
            if values >= BATCH_VALUES || batch.len() >= BATCH_WINDOWS {
                values = 0;
                if tx.send(Ok(std::mem::take(&mut batch))).is_err() {
                    return;
                }
            }
        }
        if done {
            if !batch.is_empty() {
                let _ = tx.send(Ok(batch));
            }
            return;
        }
    }
}

/// Reads the window of `key` with everything its central copy needs;
/// `None` if it was deleted since it was listed.
///
/// The window, its process snapshots and its details are read by separate
/// queries, and trimming may delete the window in between; the details come
/// last and by row id (never reused), so a window deleted before they were
/// read is `None`, and one deleted after was read whole before.
fn load(store: &Store, key: PushKey) -> Result<Option<LocalWindow>, PushError> {
    let Some(window) = store.window(key.public_id.as_str())? else {
        return Ok(None);
    };
    let processes = match store.window_processes(key.public_id.as_str()) {
        Ok(p) => p,
        Err(crate::Error::WindowNotFound(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let Some(details) = store.push_details(key.row)? else {
        return Ok(None);
    };
    let values = window.data_points.iter().map(|p| p.metrics.len()).sum();
    Ok(Some(LocalWindow {
        row: key.row,
        key,
        window,
        details,
        values,
        processes,
    }))
}

/// The node already has a window with this id: the same one (pushed before
/// it could be marked), or another (refused, with the difference).
pub(super) fn compare(local: &PushKey, central: &PushKey, node: &str) -> Outcome {
    let same = (
        &central.resource,
        central.start_ms,
        central.end_ms,
        &central.status,
        central.points,
    ) == (
        &local.resource,
        local.start_ms,
        local.end_ms,
        &local.status,
        local.points,
    );
    if same {
        Outcome::Present
    } else {
        Outcome::Refused(format!(
            "node {node} already has another window {} in the central database (resource {:?}, start {}, {} points; here: resource {:?}, start {}, {} points)",
            local.public_id,
            central.resource,
            Timestamp::from_unix_ms(central.start_ms),
            central.points.unwrap_or(0),
            local.resource,
            Timestamp::from_unix_ms(local.start_ms),
            local.points.unwrap_or(0),
        ))
    }
}

/// A central `windows` row (the columns of [`EXISTING_WINDOW`]) as a key.
pub(super) fn central_key(r: &postgres::Row) -> PushKey {
    PushKey {
        row: 0,
        public_id: WindowId::new(r.get::<_, String>(0)),
        resource: r.get(1),
        start_ms: r.get(2),
        end_ms: r.get(3),
        status: r.get(4),
        points: r.get(5),
        retry: false,
    }
}

/// The central database's identity (see [`IDENTITY`]).
fn read_identity(central: &mut Central) -> Result<String, PushError> {
    central
        .client
        .query_one(IDENTITY, &[])
        .and_then(|r| r.try_get(0))
        .map_err(|e| central.err("reading the central database's identity", &e))
}

/// Marks the windows of a committed batch and counts them.
fn mark(
    store: &Store,
    target: PushTarget,
    batch: &[LocalWindow],
    outcomes: &[Outcome],
    summary: &mut PushSummary,
) -> Result<(), PushError> {
    let marks: Vec<(i64, Option<&str>)> = batch
        .iter()
        .zip(outcomes)
        .map(|(w, o)| match o {
            Outcome::Refused(why) => (w.row, Some(why.as_str())),
            Outcome::Pushed | Outcome::Present => (w.row, None),
        })
        .collect();
    store.mark_pushed(target, &marks, Timestamp::now())?;
    for (w, o) in batch.iter().zip(outcomes) {
        summary.add(&w.key, w.window.data_points.len(), w.values, o);
    }
    Ok(())
}

/// The `COPY` rows of a batch's new windows.
#[derive(Default)]
struct Rows {
    points: Option<BinaryRows>,
    values: Option<BinaryRows>,
    triggers: Option<BinaryRows>,
    stats: Option<BinaryRows>,
    anomalies: Option<BinaryRows>,
    notes: Option<BinaryRows>,
    processes: Option<BinaryRows>,
}

impl Rows {
    /// Adds the rows under window `w`, stored centrally as `id`.
    fn add(&mut self, id: i64, w: &LocalWindow, metrics: &HashMap<String, i32>) {
        let metric = |name: &str| {
            *metrics
                .get(name)
                .expect("ensure_names added every metric of the batch")
        };
        let points = self.points.get_or_insert_with(BinaryRows::new);
        let values = self.values.get_or_insert_with(BinaryRows::new);
        for (no, p) in w.window.data_points.iter().enumerate() {
            let no = i32::try_from(no).expect("fewer than 2^31 points in a window");
            let ts = p.timestamp.as_unix_ms();
            let metadata = p
                .metadata
                .as_ref()
                .map(|m| serde_json::to_string(m).expect("a JSON map serializes"));
            points
                .row(4)
                .int8(id)
                .int4(no)
                .int8(ts)
                .opt_jsonb(metadata.as_deref());
            for (name, &v) in &p.metrics {
                values
                    .row(5)
                    .int8(id)
                    .int4(no)
                    .int4(metric(name))
                    .timestamptz_ms(ts)
                    .float8(v);
            }
        }
        let triggers = self.triggers.get_or_insert_with(BinaryRows::new);
        for t in &w.window.triggers {
            // As locally: NULL, not `{}`, for a trigger without them.
            let words = |m: &BTreeMap<String, String>| {
                (!m.is_empty()).then(|| serde_json::to_string(m).expect("strings serialize"))
            };
            triggers
                .row(10)
                .int8(id)
                .text(t.trigger_type.as_str())
                .opt_text(t.trigger_id.as_deref())
                .int8(t.fired_at.as_unix_ms())
                .opt_int8(t.resolved_at.map(Timestamp::as_unix_ms))
                .bool(t.opened_window)
                .opt_jsonb(words(&t.labels).as_deref())
                .opt_jsonb(words(&t.annotations).as_deref())
                .opt_text(t.rule.as_deref())
                .opt_int8(t.ends_at.map(Timestamp::as_unix_ms));
        }
        if !w.window.notes.is_empty() {
            let notes = self.notes.get_or_insert_with(BinaryRows::new);
            for n in &w.window.notes {
                notes
                    .row(4)
                    .int8(id)
                    .int8(n.at.as_unix_ms())
                    .text(&n.author)
                    .text(&n.text);
            }
        }
        if let Some(s) = &w.window.summary {
            let stats = self.stats.get_or_insert_with(BinaryRows::new);
            for (name, &peak) in &s.peaks {
                let f = |m: &BTreeMap<String, f64>| m.get(name).copied().unwrap_or_default();
                // Read as `show` reads them: stored at close, or (closed
                // before the store's version 12) computed from the points.
                let change = s.change_scores.get(name);
                stats
                    .row(13)
                    .int8(id)
                    .int4(metric(name))
                    .int8(s.samples.get(name).copied().unwrap_or_default() as i64)
                    .float8(peak)
                    .float8(f(&s.lows))
                    .float8(f(&s.averages))
                    .float8(f(&s.changes))
                    .float8(f(&s.p50))
                    .float8(f(&s.p95))
                    .float8(f(&s.p99))
                    .opt_float8(change.and_then(|c| c.score))
                    .opt_int4(change.map(|c| i32::try_from(c.rank).unwrap_or(i32::MAX)))
                    .opt_text(change.and_then(|c| c.unscored.as_deref()));
            }
        }
        if !w.processes.is_empty() {
            let processes = self.processes.get_or_insert_with(BinaryRows::new);
            for snap in &w.processes {
                for p in &snap.processes {
                    processes
                        .row(10)
                        .int8(id)
                        .int8(snap.at.as_unix_ms())
                        .int8(i64::from(p.pid))
                        .text(&p.name)
                        .opt_text(p.cmdline.as_deref())
                        .opt_text(p.user.as_deref())
                        .float8(p.cpu)
                        .int8(i64::try_from(p.rss).unwrap_or(i64::MAX))
                        .opt_float8(p.read_bps)
                        .opt_float8(p.write_bps);
                }
            }
        }
        if !w.details.anomalies.is_empty() {
            let anomalies = self.anomalies.get_or_insert_with(BinaryRows::new);
            for a in &w.details.anomalies {
                anomalies
                    .row(6)
                    .int8(id)
                    .opt_int4(a.metric.as_deref().map(metric))
                    .opt_int8(a.ts_ms)
                    .opt_float8(a.value)
                    .opt_float8(a.score)
                    .text(&a.description);
            }
        }
    }

    /// Sends every non-empty set of rows.
    fn copy(
        self,
        tx: &mut Transaction<'_>,
        display: &str,
        err: &dyn Fn(&'static str, &postgres::Error) -> PushError,
    ) -> Result<(), PushError> {
        for (sql, rows, what) in [
            (COPY_DATA_POINTS, self.points, "copying data points"),
            (COPY_POINT_VALUES, self.values, "copying point values"),
            (COPY_TRIGGERS, self.triggers, "copying triggers"),
            (COPY_STATS, self.stats, "copying summaries"),
            (COPY_ANOMALIES, self.anomalies, "copying anomalies"),
            (COPY_NOTES, self.notes, "copying notes"),
            (COPY_PROCESSES, self.processes, "copying process snapshots"),
        ] {
            let Some(rows) = rows.filter(|r| r.len() > 0) else {
                continue;
            };
            let mut writer = tx.copy_in(sql).map_err(|e| err(what, &e))?;
            let sent = writer.write_all(&rows.finish());
            if let Err(io) = sent {
                // The client wraps the server's error in the I/O error.
                return Err(
                    match io
                        .get_ref()
                        .and_then(|e| e.downcast_ref::<postgres::Error>())
                    {
                        Some(e) => err(what, e),
                        None => PushError::Central {
                            target: display.to_owned(),
                            what,
                            detail: io.to_string(),
                            code: None,
                        },
                    },
                );
            }
            writer.finish().map_err(|e| err(what, &e))?;
        }
        Ok(())
    }
}
