//! What the alert said, on `/w/ID` and in the report: each trigger's
//! rule, annotations, labels and the end its resolve gave.
//!
//! Every word came from whoever sent the alert, so each is escaped
//! ([`escape`]); a `runbook_url` or `generatorURL` becomes a link only
//! when it is an `http://` or `https://` URL ([`web_link`]), so a
//! `javascript:` or `data:` value stays text. Links open elsewhere without
//! a referrer; nothing is loaded (the page's policy is unchanged).

use std::fmt::Write;

use super::{escape, short};
use crate::context::has_words;
use crate::model::{IncidentWindow, WindowTrigger};

/// Annotations shown first, in this order; the rest by name.
const FIRST: [&str; 2] = ["summary", "description"];
/// Annotations that are links when they are web URLs.
const LINKS: [&str; 2] = ["runbook_url", "generatorURL"];

/// `value` if it is an `http(s)` URL a link may point to: the scheme
/// (either case), then something, and no whitespace.
fn web_link(value: &str) -> Option<&str> {
    let lower = value.get(..8).unwrap_or(value).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &value[8..]
    } else if lower.starts_with("http://") {
        &value[7..]
    } else {
        return None;
    };
    (!rest.is_empty() && !value.chars().any(char::is_whitespace)).then_some(value)
}

/// The `<section>` of the alert's words: one block per trigger that kept
/// any, headed by its type, id and time. Nothing when none did.
pub(super) fn alert_words(out: &mut String, w: &IncidentWindow) {
    if !w.triggers.iter().any(has_words) {
        return;
    }
    out.push_str("<section class=\"alert-words\"><h2>What the alert said</h2>");
    for t in w.triggers.iter().filter(|t| has_words(t)) {
        let _ = write!(
            out,
            "<div class=\"trigger-words\"><h3>{}{} · fired {}</h3>",
            escape(t.trigger_type.as_str()),
            t.trigger_id
                .as_deref()
                .map(|i| format!(" <code>{}</code>", escape(i)))
                .unwrap_or_default(),
            short(t.fired_at),
        );
        trigger_block(out, t);
        out.push_str("</div>");
    }
    out.push_str("</section>");
}

fn trigger_block(out: &mut String, t: &WindowTrigger) {
    out.push_str("<dl class=\"words\">");
    if let Some(rule) = &t.rule {
        let _ = write!(
            out,
            "<dt>rule</dt><dd class=\"rule\"><code>{}</code></dd>",
            escape(rule)
        );
    }
    let ordered = FIRST
        .iter()
        .filter_map(|k| t.annotations.get_key_value(*k))
        .chain(
            t.annotations
                .iter()
                .filter(|(k, _)| !FIRST.contains(&k.as_str())),
        );
    for (name, value) in ordered {
        let link = LINKS
            .contains(&name.as_str())
            .then(|| web_link(value))
            .flatten();
        let shown = match link {
            Some(url) => format!(
                "<a href=\"{0}\" rel=\"noopener noreferrer nofollow\" target=\"_blank\">{0}</a>",
                escape(url)
            ),
            None => escape(value),
        };
        let _ = write!(
            out,
            "<dt>{}</dt><dd class=\"annotation\" data-name=\"{}\">{shown}</dd>",
            escape(name),
            escape(name)
        );
    }
    if !t.labels.is_empty() {
        out.push_str("<dt>labels</dt><dd class=\"labels\">");
        for (k, v) in &t.labels {
            let _ = write!(
                out,
                "<span class=\"label\"><b>{}</b>=<code>{}</code></span> ",
                escape(k),
                escape(v)
            );
        }
        out.push_str("</dd>");
    }
    if let Some(end) = t.ends_at {
        let _ = write!(out, "<dt>endsAt</dt><dd class=\"ends\">{}</dd>", short(end));
    }
    out.push_str("</dl>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Timestamp, TriggerType};

    #[test]
    fn a_resolves_end_is_shown_and_a_trigger_without_words_is_not() {
        let trigger = |id: &str, ends: Option<i64>| WindowTrigger {
            trigger_type: TriggerType::Alert,
            trigger_id: Some(id.to_owned()),
            fired_at: Timestamp::from_unix_ms(0),
            resolved_at: ends.map(|_| Timestamp::from_unix_ms(60_000)),
            opened_window: true,
            labels: Default::default(),
            annotations: Default::default(),
            rule: None,
            ends_at: ends.map(Timestamp::from_unix_ms),
        };
        let mut out = String::new();
        let mut t = trigger("quiet", None);
        trigger_block(&mut out, &t);
        assert_eq!(out, "<dl class=\"words\"></dl>");
        assert!(!has_words(&t), "so alert_words skips it");
        t = trigger("ended", Some(90_000));
        out.clear();
        trigger_block(&mut out, &t);
        assert!(
            out.contains("<dt>endsAt</dt><dd class=\"ends\">1970-01-01 00:01:30Z</dd>"),
            "{out}"
        );
    }

    #[test]
    fn only_web_urls_become_links() {
        assert_eq!(web_link("https://wiki/r"), Some("https://wiki/r"));
        assert_eq!(
            web_link("HTTP://x:9090/graph?g0.expr=up"),
            Some("HTTP://x:9090/graph?g0.expr=up")
        );
        for text in [
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "data:text/html,<b>",
            "//evil",
            "https://",
            "https://a b",
            "see https://wiki",
            "httpx://a",
        ] {
            assert_eq!(web_link(text), None, "{text}");
        }
    }
}
