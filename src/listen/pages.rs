//! The listener's pages (`/`, `/w/ID`, `/w/ID/report.html`,
//! `/w/ID/chart.svg`, `/assets/…`) and how a browser authenticates.
//!
//! A browser cannot send `Authorization: Bearer`, so a page link carries
//! the token once: `/?token=T` (or `/w/ID?token=T`) answers a page that
//! sets the cookie [`COOKIE`] (HttpOnly, SameSite=Strict, the token
//! percent-encoded) and moves on to the same URL without the token, so it
//! stays out of the history and of `Referer`s. The cookie is accepted for
//! GETs only: a POST (a trigger, the webhook) still needs the header, so
//! no other site can make a browser open windows. The rendering is
//! `crate::web`'s; here are the routes, their parameters and headers.

use super::http::{Body, Request, Response};
use super::{Shared, listing, same, status_of};
use crate::error::{Error, clip};
use crate::model::{IncidentWindow, Timestamp};
use crate::web;

/// Most windows on one page of `/`: each is read with its points for its
/// sparkline.
pub const MAX_INDEX: usize = 200;

/// The cookie that carries the token for a browser.
pub const COOKIE: &str = "incident_recorder_token";

/// `None` when `r` may go on; otherwise the answer: 401, or for a page
/// link with the right `token=`, the page that sets the cookie.
pub(super) fn authenticate(r: &Request, token: &str) -> Option<Response> {
    let page = r.path == "/" || r.path.starts_with("/w/");
    let params = r.params();
    if page
        && r.method == "GET"
        && let Some((_, given)) = params.iter().find(|(k, _)| k == "token")
    {
        if !same(given.as_bytes(), token.as_bytes()) {
            return Some(unauthorized());
        }
        return Some(set_cookie(r, token));
    }
    let header = r.header("authorization").and_then(super::bearer);
    if header.is_some_and(|g| same(g.as_bytes(), token.as_bytes())) {
        return None;
    }
    let cookie = r.header("cookie").and_then(|c| {
        c.split(';')
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == COOKIE)
            .map(|(_, v)| v.to_owned())
    });
    let encoded = web::url_part(token);
    if r.method == "GET" && cookie.is_some_and(|c| same(c.as_bytes(), encoded.as_bytes())) {
        return None;
    }
    Some(unauthorized())
}

fn unauthorized() -> Response {
    let mut resp = Response::error(
        401,
        "missing or wrong bearer token (Authorization: Bearer <token>; in a browser, open \
         /?token=<token> once)",
    );
    resp.headers.push(("WWW-Authenticate", "Bearer".into()));
    resp
}

/// The page a token link answers: sets the cookie, then goes to the same
/// URL without `token=` (a `<meta>` refresh, not a 30x: a SameSite=Strict
/// cookie set by a redirect that a link from another site started is not
/// sent on the redirected request).
fn set_cookie(r: &Request, token: &str) -> Response {
    let rest: Vec<String> = r
        .params()
        .into_iter()
        .filter(|(k, _)| k != "token")
        .map(|(k, v)| format!("{}={}", web::url_part(&k), web::url_part(&v)))
        .collect();
    // The path as the client sent it (hyper refuses what a URI may not
    // hold); the query rebuilt from its decoded parameters.
    let mut target = r.path.clone();
    if !rest.is_empty() {
        target = format!("{target}?{}", rest.join("&"));
    }
    let target = web::escape(&target);
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"0;url={target}\"><title>Signed in</title></head>\
         <body><p>Signed in. <a href=\"{target}\">Continue</a>.</p></body></html>\n"
    );
    let mut resp = html(200, body);
    resp.headers.push((
        "Set-Cookie",
        format!(
            "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
            web::url_part(token)
        ),
    ));
    resp
}

/// An HTML page under [`web::PAGE_CSP`].
fn html(status: u16, body: String) -> Response {
    html_under(status, body, web::PAGE_CSP.into())
}

/// An HTML page under the policy `csp`.
fn html_under(status: u16, body: String, csp: String) -> Response {
    Response {
        status,
        content_type: "text/html; charset=utf-8",
        headers: vec![
            ("Content-Security-Policy", csp),
            ("X-Content-Type-Options", "nosniff".into()),
            ("Referrer-Policy", "no-referrer".into()),
        ],
        body: Body::Bytes(body.into_bytes()),
    }
}

fn failed(e: &Error) -> Response {
    Response::error(status_of(e), crate::error_chain(e))
}

/// `GET /`: the windows, most recent first, with the parameters of
/// `GET /windows` (`resource`, `status`, `since`, `limit`, `before`; an
/// empty one is left out, as the filter form sends them).
pub(super) fn index(s: &Shared, r: &Request) -> Response {
    // The form sends its empty fields: an empty one is no filter.
    let params: Vec<(String, String)> = r
        .params()
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let since = params
        .iter()
        .find(|(k, _)| k == "since")
        .map(|(_, v)| v.clone());
    let (mut filter, before) = match listing(params) {
        Ok(l) => l,
        Err(e) => return Response::error(400, e),
    };
    if filter.limit > MAX_INDEX {
        return Response::error(
            400,
            format!(
                "limit {} is over {MAX_INDEX} for the page (each row reads its window's points); \
                 page with before=<the last window id>",
                filter.limit
            ),
        );
    }
    filter.with_points = true;
    let cursor = match before
        .as_deref()
        .map(|id| s.source.read(|st| st.listing_cursor(id)))
    {
        None => None,
        Some(Ok(Some(c))) => Some(c),
        Some(Ok(None)) => {
            let id = clip(before.as_deref().unwrap_or_default());
            return Response::error(404, format!("before: {}", Error::WindowNotFound(id)));
        }
        Some(Err(e)) => return failed(&e),
    };
    let mut found: Vec<IncidentWindow> = Vec::new();
    let read = s.source.read(|store| {
        found.clear();
        store.windows_after(&filter, cursor, |_, w| {
            found.push(w);
            Ok::<_, Error>(())
        })
    });
    if let Err(e) = read {
        return failed(&e);
    }
    let query = web::IndexQuery {
        resource: filter.resource.clone(),
        status: filter.status,
        since,
        limit: filter.limit,
    };
    html(200, web::index_page(&found, &query, Timestamp::now()))
}

/// `GET /w/ID`, `/w/ID/report.html`, `/w/ID/chart.svg`.
pub(super) fn window(s: &Shared, r: &Request, rest: &str) -> Response {
    let (id, what) = rest.split_once('/').unwrap_or((rest, ""));
    if id.is_empty() || !matches!(what, "" | "report.html" | "chart.svg") {
        return Response::error(
            404,
            format!(
                "unknown path {:?}; a window has /w/ID, /w/ID/report.html and /w/ID/chart.svg",
                clip(&r.path)
            ),
        );
    }
    let chart = if what == "chart.svg" {
        match chart_params(r) {
            Ok(c) => Some(c),
            Err(e) => return Response::error(400, e),
        }
    } else if !r.query.is_empty() {
        return Response::error(400, format!("{} takes no parameters", clip(&r.path)));
    } else {
        None
    };
    let w = match s.source.read(|store| store.window(id)) {
        Ok(Some(w)) => w,
        Ok(None) => return Response::error(404, Error::WindowNotFound(clip(id)).to_string()),
        Err(e) => return failed(&e),
    };
    let now = Timestamp::now();
    match (what, chart) {
        ("report.html", _) => {
            let mut resp = html_under(200, web::report(&w, now), web::report_csp());
            resp.headers.push((
                "Content-Disposition",
                format!("inline; filename=\"{}.html\"", web::url_part(id)),
            ));
            resp
        }
        ("chart.svg", Some((metrics, top))) => svg(&w, metrics, top),
        _ => {
            let procs = match s.source.read(|store| store.window_processes(id)) {
                Ok(p) => p,
                Err(e) => return failed(&e),
            };
            let table = web::process_table(&procs, w.trigger_time);
            html(
                200,
                web::with_process_table(web::window_page(&w, now), &table),
            )
        }
    }
}

/// `metric=NAME` (repeatable: these metrics, in this order) and `top=N`
/// (the N that moved most; default 4, at most [`web::MAX_SVG_METRICS`]).
fn chart_params(r: &Request) -> std::result::Result<(Vec<String>, usize), String> {
    let mut metrics = Vec::new();
    let mut top = 4;
    for (k, v) in r.params() {
        match k.as_str() {
            "metric" if !v.is_empty() => metrics.push(v),
            "top" => {
                top = match v.parse::<usize>() {
                    Ok(n @ 1..=web::MAX_SVG_METRICS) => n,
                    _ => {
                        return Err(format!(
                            "top {:?} is not a count from 1 to {}",
                            clip(&v),
                            web::MAX_SVG_METRICS
                        ));
                    }
                }
            }
            _ => {
                return Err(format!(
                    "chart.svg takes metric=NAME (repeatable) and top=N, not {:?}",
                    clip(&k)
                ));
            }
        }
    }
    if metrics.len() > web::MAX_SVG_METRICS {
        return Err(format!("at most {} metrics", web::MAX_SVG_METRICS));
    }
    Ok((metrics, top))
}

fn svg(w: &IncidentWindow, metrics: Vec<String>, top: usize) -> Response {
    let order = web::metric_order(w);
    let chosen = if metrics.is_empty() {
        order.into_iter().take(top).collect()
    } else {
        if let Some(m) = metrics.iter().find(|m| !order.contains(m)) {
            return Response::error(404, format!("window {} has no metric {:?}", w.id, clip(m)));
        }
        metrics
    };
    Response {
        status: 200,
        content_type: "image/svg+xml",
        headers: vec![
            ("Content-Security-Policy", web::SVG_CSP.into()),
            ("X-Content-Type-Options", "nosniff".into()),
        ],
        body: Body::Bytes(web::chart_svg(w, &chosen).into_bytes()),
    }
}

/// `GET /assets/…`: a file compiled into the binary, or 404.
pub(super) fn asset(path: &str) -> Response {
    match web::asset(path) {
        Some(a) => Response {
            status: 200,
            content_type: a.content_type,
            headers: vec![
                ("Cache-Control", a.cache.into()),
                ("X-Content-Type-Options", "nosniff".into()),
            ],
            body: Body::Bytes(a.body.as_bytes().to_vec()),
        },
        None => Response::error(404, format!("no asset {:?}", clip(path))),
    }
}
