//! Pictures of incidents: the HTML pages the listener serves (`/`,
//! `/w/ID`), the self-contained report (`export --format html`,
//! `/w/ID/report.html`) and the static SVG chart (`/w/ID/chart.svg`).
//!
//! Everything here is a pure function of windows read from the store: no
//! I/O, no clock but the `now` a caller passes. Pages are rendered on the
//! server with every text that came from the database escaped ([`escape`]);
//! the interactive charts are drawn in the browser by uPlot (vendored under
//! `assets/vendor/uplot`, MIT) from the window's data, embedded as a JSON
//! block that is never executed ([`data_block`]). The served pages load
//! their code from `/assets/` under a strict Content-Security-Policy
//! ([`PAGE_CSP`]: no inline script, no other origin); the report carries the
//! same code inline, allowed by its own `<meta>` policy naming the hashes of
//! exactly those scripts and styles.

mod page;
mod processes;
mod rank;
mod svg;
mod words;

pub use page::{IndexQuery, index_page, report, report_csp, window_page};
pub use processes::{process_table, with_process_table};
pub use rank::metric_order;
pub use svg::{MAX_SVG_METRICS, chart_svg, sparkline};

use crate::model::Timestamp;

/// The policy of every served page: scripts, styles and images only from
/// the listener itself, fetches only to it, no frames, no forms elsewhere.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// The policy of the SVG chart: nothing runs, nothing loads.
pub const SVG_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// A file served from the binary under `/assets/`.
#[derive(Clone, Copy, Debug)]
pub struct Asset {
    /// The path served (`/assets/...`).
    pub path: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static str,
    /// `Cache-Control`: the vendored library's name carries its version,
    /// so it can be cached for a year; our own code for an hour.
    pub cache: &'static str,
}

const UPLOT_JS: &str = include_str!("../../assets/vendor/uplot/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../../assets/vendor/uplot/uPlot.min.css");
const APP_JS: &str = include_str!("../../assets/web/app.js");
const APP_CSS: &str = include_str!("../../assets/web/app.css");
const YEAR: &str = "public, max-age=31536000, immutable";
const HOUR: &str = "public, max-age=3600";

/// Every asset; a path not here is 404 (there is no file system behind
/// `/assets/`, so nothing can be listed or reached by `..`).
pub const ASSETS: &[Asset] = &[
    Asset {
        path: "/assets/uplot-1.6.32.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: UPLOT_JS,
        cache: YEAR,
    },
    Asset {
        path: "/assets/uplot-1.6.32.min.css",
        content_type: "text/css; charset=utf-8",
        body: UPLOT_CSS,
        cache: YEAR,
    },
    Asset {
        path: "/assets/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: APP_JS,
        cache: HOUR,
    },
    Asset {
        path: "/assets/app.css",
        content_type: "text/css; charset=utf-8",
        body: APP_CSS,
        cache: HOUR,
    },
];

/// The asset served at `path`, if any.
pub fn asset(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// `2026-12-06 01:51:24Z`: a time to read in a table (the JSON has the
/// milliseconds).
fn short(t: Timestamp) -> String {
    let full = t.to_string();
    format!("{}Z", full.get(..19).unwrap_or(&full).replace('T', " "))
}

/// `text` with `& < > " '` escaped, for HTML text and quoted attributes
/// (and SVG, which is XML).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters have no business in a page (the store
            // refuses most of them in names; notes may hold tabs).
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// `text` percent-encoded for a URL's path segment or query value.
pub fn url_part(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `value` as JSON that can sit inside `<script type="application/json">`:
/// `<`, `>` and `&` only occur inside JSON strings, where `\u003c` and the
/// like mean the same, so no `</script>` in a resource name can end the
/// block.
pub fn data_block(value: &serde_json::Value) -> String {
    let json = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// `sha256-<base64>` of `text`, for a CSP source list.
fn csp_hash(text: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(text.as_bytes());
    format!("'sha256-{}'", base64(&digest))
}

/// Standard base64 with padding (RFC 4648), for [`csp_hash`].
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_the_database_cannot_become_markup() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        let block = data_block(&serde_json::json!({ "name": "</script><b>&" }));
        assert!(!block.contains('<') && !block.contains('>') && !block.contains('&'));
        let back: serde_json::Value = serde_json::from_str(&block).unwrap();
        assert_eq!(back["name"], "</script><b>&");
        assert_eq!(url_part("a b/c?<"), "a%20b%2Fc%3F%3C");
    }

    #[test]
    fn csp_hashes_are_base64_sha256() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        // `echo -n 'alert(1)' | openssl dgst -sha256 -binary | base64`
        assert_eq!(
            csp_hash("alert(1)"),
            "'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI='"
        );
    }

    #[test]
    fn assets_are_a_fixed_table() {
        assert!(asset("/assets/app.js").is_some());
        assert!(asset("/assets/").is_none());
        assert!(asset("/assets/../Cargo.toml").is_none());
        assert!(ASSETS.iter().all(|a| !a.body.is_empty()));
    }
}
