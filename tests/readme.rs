//! The README's tour is true on a clean run: `demo` prints what the README
//! shows, `show` and `context` give the lines the README quotes (ids, dates and times
//! aside), and its SQL query finds the demo's incident.

mod common;

use std::path::Path;

use common::bin::*;

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

/// The fenced block of the README that starts with `first`, without its
/// fences.
fn block(readme: &str, first: &str) -> Vec<String> {
    let at = readme
        .find(&format!("```text\n{first}"))
        .unwrap_or_else(|| panic!("no block starting {first:?} in README.md"));
    readme[at + "```text\n".len()..]
        .lines()
        .take_while(|l| *l != "```")
        .map(str::to_owned)
        .collect()
}

/// Ids, dates and times replaced by placeholders: they are the reader's own.
fn general(line: &str) -> String {
    let id = regex::Regex::new(r"iw-\d{14}-[0-9a-f]{8}-\d+").unwrap();
    let date = regex::Regex::new(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ").unwrap();
    let clock = regex::Regex::new(r"\b\d\d:\d\d:\d\d\b").unwrap();
    let line = id.replace_all(line, "ID");
    let line = date.replace_all(&line, "DATE");
    clock
        .replace_all(&line, "TIME")
        .replace("incidents.db", "DB")
}

/// Every line of `quoted` but `...` appears in `actual`, in order.
fn quoted_in_order(quoted: &[String], actual: &str, what: &str) {
    let actual: Vec<String> = actual.lines().map(general).collect();
    let mut from = 0;
    for line in quoted.iter().filter(|l| *l != "...") {
        let want = general(line);
        match actual[from..].iter().position(|a| *a == want) {
            Some(i) => from += i + 1,
            None => panic!(
                "README's {what} line {line:?} is not in the output (in order):\n{}",
                actual.join("\n")
            ),
        }
    }
}

#[test]
fn the_tour_shows_what_the_binary_prints() {
    let readme = readme();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("incidents.db");
    let demo = ok(&db, &["demo"]);
    let demo = demo.replace(&db.display().to_string(), "incidents.db");
    quoted_in_order(&block(&readme, "demo: "), &demo, "demo");

    let id = json(&db, &["list", "--json"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let show = block(&readme, "$ incident-recorder show ");
    quoted_in_order(&show[1..], &ok(&db, &["show", &id]), "show");
    let context = block(&readme, "$ incident-recorder context ");
    quoted_in_order(&context[1..], &ok(&db, &["context", &id]), "context");

    // The SQL query, as the README gives it to sqlite3, and its rows.
    let at = readme.find("sqlite3 incidents.db \"").unwrap() + "sqlite3 incidents.db \"".len();
    let sql = &readme[at..at + readme[at..].find('"').unwrap()];
    assert!(
        sql.contains("'db-02'"),
        "the query names the demo's resource"
    );
    let conn = common::sql(&db);
    let mut stmt = conn.prepare(sql).unwrap();
    let rows: Vec<String> = stmt
        .query_map([], |r| {
            Ok(format!(
                "{}|{:?}",
                r.get::<_, String>(0)?,
                r.get::<_, f64>(1)?
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let expected = block(&readme, "04:03:51|");
    assert_eq!(
        rows.iter().map(|r| general(r)).collect::<Vec<_>>(),
        expected.iter().map(|r| general(r)).collect::<Vec<_>>()
    );
}

#[test]
fn ingest_takes_the_options_the_readme_gives_it() {
    let readme = readme();
    assert!(
        readme.contains("`ingest` has none, its lines bring their\nown times"),
        "the README says which commands take --interval"
    );
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("incidents.db");
    for opt in [
        ["--pre", "5m"],
        ["--post", "10m"],
        ["--max-points", "500"],
        ["--retention", "30d"],
        ["--max-windows", "10000"],
    ] {
        let o = run_with_stdin(&db, &["ingest", opt[0], opt[1], "-"], Some(""));
        assert!(o.status.success(), "{opt:?}: {}", stderr(&o));
    }
    let o = run_with_stdin(&db, &["ingest", "--interval", "5s", "-"], Some(""));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}
