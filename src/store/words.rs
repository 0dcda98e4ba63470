//! A trigger's own words beside its row in `window_triggers` (store
//! version 12): an Alertmanager alert's labels and annotations, a `watch`
//! rule's expression, the `endsAt` of a resolve.
//!
//! Written after the trigger itself, in a short transaction of their own
//! (like a note): the recorder records the trigger as it always did, and
//! the listener (or `watch`'s rules) then keeps the words on that row. A
//! row keeps the first words it was given: a repeated notification changes
//! nothing. Values are bounded and checked by
//! [`WindowTrigger::bound_words`] before they get here.

use std::collections::BTreeMap;

use rusqlite::{Connection, params};

use super::Store;
use super::ids::WindowRow;
use crate::error::{Error, Result};
use crate::model::{Timestamp, WindowTrigger};

/// What a trigger said, to keep on its row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TriggerWords {
    /// An alert's labels (bounded, checked).
    pub labels: BTreeMap<String, String>,
    /// An alert's annotations, `generatorURL` among them (bounded, checked).
    pub annotations: BTreeMap<String, String>,
    /// A `watch` rule's expression.
    pub rule: Option<String>,
}

impl TriggerWords {
    fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.annotations.is_empty() && self.rule.is_none()
    }
}

/// A map as the JSON object stored, or NULL if empty.
fn json(words: &BTreeMap<String, String>) -> Option<String> {
    (!words.is_empty()).then(|| serde_json::to_string(words).expect("strings serialize"))
}

impl Store {
    /// Keeps `words` on the trigger `trigger_id` of window `window` that
    /// fired at `fired_at` (for an alert, its `startsAt` as sent), unless
    /// that row has words already. Returns whether a row took them (false:
    /// no such trigger, or it had words). A window that does not exist is
    /// [`Error::WindowNotFound`].
    pub fn keep_trigger_words(
        &self,
        window: &str,
        trigger_id: &str,
        fired_at: Timestamp,
        words: &TriggerWords,
    ) -> Result<bool> {
        if words.is_empty() {
            return Ok(false);
        }
        self.words_transaction(|tx| {
            let row = WindowRow::of(tx, window)?;
            Ok(tx
                .prepare_cached(
                    "UPDATE window_triggers SET labels = ?4, annotations = ?5, rule = ?6
                     WHERE window_id = ?1 AND trigger_id = ?2 AND fired_ms = ?3
                       AND labels IS NULL AND annotations IS NULL AND rule IS NULL",
                )?
                .execute(params![
                    row,
                    trigger_id,
                    fired_at.as_unix_ms(),
                    json(&words.labels),
                    json(&words.annotations),
                    words.rule
                ])?
                > 0)
        })
    }

    /// Keeps the end a resolve gave (`endsAt`) on the resolved triggers
    /// `trigger_id` of resource `resource` that fired at `fired_at`.
    /// Returns whether a row took it.
    pub fn keep_resolve_end(
        &self,
        resource: &str,
        trigger_id: &str,
        fired_at: Timestamp,
        ends_at: Timestamp,
    ) -> Result<bool> {
        self.words_transaction(|tx| {
            Ok(tx
                .prepare_cached(
                    "UPDATE window_triggers SET ends_ms = ?4
                     WHERE resource_id = (SELECT id FROM resources WHERE external_id = ?1)
                       AND trigger_id = ?2 AND fired_ms = ?3 AND resolved_ms IS NOT NULL
                       AND ends_ms IS NULL",
                )?
                .execute(params![
                    resource,
                    trigger_id,
                    fired_at.as_unix_ms(),
                    ends_at.as_unix_ms()
                ])?
                > 0)
        })
    }

    fn words_transaction<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        if self.read_only {
            return Err(Error::Unavailable("the store was opened read-only"));
        }
        let conn = self.conn()?;
        let _turn = self.gate.patient();
        let tx =
            rusqlite::Transaction::new_unchecked(&conn, rusqlite::TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }
}

/// Keeps an imported trigger's words on the row just inserted (`row`),
/// bounded and checked as a live alert's; `Err` says what is wrong.
pub(super) fn keep_imported(
    tx: &Connection,
    row: i64,
    t: &WindowTrigger,
) -> std::result::Result<(), String> {
    let labels = WindowTrigger::bound_words(t.labels.clone(), false)
        .map_err(|e| format!("a trigger's labels: {e}"))?;
    let annotations = WindowTrigger::bound_words(t.annotations.clone(), true)
        .map_err(|e| format!("a trigger's annotations: {e}"))?;
    if let Some(rule) = &t.rule
        && (rule.len() > 1024 || rule.chars().any(char::is_control))
    {
        return Err("a trigger's rule is over 1024 bytes or has a control character".into());
    }
    if labels.is_empty() && annotations.is_empty() && t.rule.is_none() && t.ends_at.is_none() {
        return Ok(());
    }
    tx.prepare_cached(
        "UPDATE window_triggers SET labels = ?2, annotations = ?3, rule = ?4, ends_ms = ?5
         WHERE id = ?1",
    )
    .and_then(|mut s| {
        s.execute(params![
            row,
            json(&labels),
            json(&annotations),
            t.rule,
            t.ends_at.map(Timestamp::as_unix_ms)
        ])
    })
    .map_err(|e| format!("cannot store a trigger's words: {e}"))?;
    Ok(())
}
