//! Keeps the rules between folders in `docs/architecture.md` true: calls flow from the surfaces
//! (`oidc`, `login`, `admin`) through the kits (`web`, `tenant`) to the domains (services, repos,
//! models), never back; domains get narrow handles, not `AppState`; services never see axum;
//! handlers never write SQL; no source file grows past 600 lines.
//!
//! The tests read `src/` as text with std only. Comments, and everything from a `#[cfg(test)]`
//! line on (unit tests beside the code may use anything), are not scanned. A broken rule fails
//! with every offending `file:line`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// Domain folders: services, repos and models (and background jobs). A domain may have its own
/// `handlers.rs`; everything else in it is below HTTP.
const DOMAINS: &[&str] = &[
    "apps",
    "clients",
    "keys",
    "users",
    "roles",
    "sessions",
    "mfa",
    "invitations",
    "mail",
    "audit",
    "signin",
    "grants",
    "jobs",
    "operators",
    "upstream",
    "store",
    "crypto",
];

/// Kit folders: `web` (forms, cookies, CSRF, pages, page errors, the `Tenant` extractor) and
/// `tenant` (per-app context: issuer cache, discovery, JWKS, origins).
const KITS: &[&str] = &["web", "tenant"];

/// Surface folders: the HTTP handlers.
const SURFACES: &[&str] = &["oidc", "login", "admin"];

/// Modules a domain or kit never reaches into: the surfaces, the CLI and the router.
const ABOVE_DOMAINS: &[&str] = &["login", "admin", "oidc", "cli", "router"];

/// Files in a domain or kit that may see `AppState` although not named `handlers.rs`.
/// `web/tenant.rs` holds the `Tenant` extractor: it resolves the app named in the path, for any
/// handler, from the issuer cache that lives in `AppState`, so it must see the state it extracts
/// from. Everything else takes the narrow handle it needs.
const APP_STATE_ALLOWED: &[&str] = &["web/tenant.rs"];

/// Text that only a repo writes: the query builders, `on_db!`, and SQL string literals.
const SQL_MARKERS: &[&str] = &[
    "sqlx::query",
    "on_db!",
    "query_as(",
    "query_as::<",
    "query_scalar(",
    "query_scalar::<",
    "\"SELECT ",
    "\"INSERT ",
    "\"UPDATE ",
    "\"DELETE FROM",
    "\"WITH ",
];

const MAX_LINES: usize = 600;

#[test]
fn no_domain_module_sees_app_state() {
    let mut report = Report::new(
        "domains, tenant/ and web/ never see `AppState` or `crate::state` \
         (only a `handlers.rs` may, and the files in APP_STATE_ALLOWED)",
    );
    for src in sources().iter().filter(|s| {
        (s.is_in(DOMAINS) || s.is_in(KITS))
            && s.name() != "handlers.rs"
            && !APP_STATE_ALLOWED.contains(&s.path.as_str())
    }) {
        report.uses(src, "AppState", "state");
    }
    report.assert_clean();
}

#[test]
fn services_never_see_axum() {
    let mut report = Report::new(
        "services never see axum: no `axum` in any service.rs, repo.rs or model.rs, in an \
         error.rs outside web/ and the surfaces, nor in any domain or tenant/ file but handlers.rs",
    );
    for src in sources().iter().filter(|s| {
        matches!(s.name(), "service.rs" | "repo.rs" | "model.rs")
            || (s.name() == "error.rs" && !s.is_in(SURFACES) && !s.is_in(&["web"]))
            || ((s.is_in(DOMAINS) || s.is_in(&["tenant"])) && s.name() != "handlers.rs")
    }) {
        for at in word_offsets(&src.code, "axum") {
            report.add(src, at, "axum");
        }
    }
    report.assert_clean();
}

#[test]
fn handlers_write_no_sql() {
    let mut report = Report::new(
        "handlers never write SQL: no query builder, `on_db!` or SQL literal in oidc/, login/, \
         admin/ or any handlers.rs (call a repo)",
    );
    for src in sources().iter().filter(|s| s.is_in(SURFACES) || s.name() == "handlers.rs") {
        for marker in SQL_MARKERS {
            for (at, _) in src.code.match_indices(marker) {
                report.add(src, at, marker);
            }
        }
    }
    report.assert_clean();
}

#[test]
fn only_admin_and_login_reach_oidc() {
    let mut report =
        Report::new("outside oidc/, only admin/, login/, router.rs, lib.rs, state.rs and app.rs use `oidc`");
    for src in sources().iter().filter(|s| {
        !s.is_in(&["oidc", "admin", "login"])
            && !["router.rs", "lib.rs", "state.rs", "app.rs"].contains(&s.path.as_str())
    }) {
        report.uses(src, "oidc::", "oidc");
    }
    report.assert_clean();
}

#[test]
fn no_source_file_is_over_600_lines() {
    let mut report = Report::new("no source file is over 600 lines (split it by concern)");
    for src in sources() {
        let lines = src.text.lines().count();
        if lines > MAX_LINES {
            report.add_line(&src, MAX_LINES + 1, &format!("{lines} lines, the first over {MAX_LINES}"));
        }
    }
    report.assert_clean();
}

#[test]
fn domains_never_import_surfaces() {
    let mut report = Report::new(
        "domains, tenant/ and web/ never use `crate::{login, admin, oidc, cli, router}`, \
         and tenant/ never uses `crate::web` (web's Tenant extractor uses tenant)",
    );
    for src in sources().iter().filter(|s| s.is_in(DOMAINS) || s.is_in(KITS)) {
        for (at, module) in crate_modules(&src.code) {
            if ABOVE_DOMAINS.contains(&module) || (module == "web" && src.is_in(&["tenant"])) {
                report.add(src, at, &format!("crate::{module}"));
            }
        }
    }
    report.assert_clean();
}

/// One `.rs` file under `src/`.
struct Source {
    /// Relative to `src/`, with `/` separators.
    path: String,
    /// As written.
    text: String,
    /// What the rules scan: the text before any `#[cfg(test)]` line, comments blanked (line
    /// breaks kept, so offsets map to the same lines), string literals kept.
    code: String,
}

impl Source {
    /// The folder the file is in, or for a top-level file its module (`mail.rs` is `mail`).
    fn area(&self) -> &str {
        match self.path.split_once('/') {
            Some((dir, _)) => dir,
            None => self.path.trim_end_matches(".rs"),
        }
    }

    fn name(&self) -> &str {
        self.path.rsplit_once('/').map_or(self.path.as_str(), |(_, name)| name)
    }

    fn is_in(&self, areas: &[&str]) -> bool {
        areas.contains(&self.area())
    }
}

fn sources() -> Vec<Source> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = rust_files(&dir);
    assert!(files.iter().any(|(path, _)| path == "lib.rs"), "no lib.rs under {}", dir.display());
    files
        .into_iter()
        .map(|(path, text)| {
            let before_tests: Vec<&str> =
                text.lines().take_while(|line| line.trim() != "#[cfg(test)]").collect();
            let code = strip_comments(&before_tests.join("\n"));
            Source { path, text, code }
        })
        .collect()
}

/// Every `.rs` file under `dir`, recursively, as (path relative to `dir` with `/` separators,
/// contents), sorted by path.
fn rust_files(dir: &Path) -> Vec<(String, String)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let relative = path.strip_prefix(root).expect("a path under the root");
                let relative: Vec<_> =
                    relative.components().map(|c| c.as_os_str().to_string_lossy()).collect();
                let text =
                    fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
                out.push((relative.join("/"), text));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// `src` with line and (nested) block comments replaced by a space, line breaks kept. String,
/// raw string and char literals are copied whole, so `"//"` or `'"'` in code start nothing.
fn strip_comments(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let at = |i: usize| c.get(i).copied();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < c.len() {
        let start = i;
        match (c[i], at(i + 1)) {
            ('/', Some('/')) => {
                while at(i).is_some_and(|ch| ch != '\n') {
                    i += 1;
                }
                out.push(' ');
                continue;
            }
            ('/', Some('*')) => {
                let mut depth = 0;
                while i < c.len() {
                    match (c[i], at(i + 1)) {
                        ('/', Some('*')) => {
                            depth += 1;
                            i += 1;
                        }
                        ('*', Some('/')) => {
                            depth -= 1;
                            i += 1;
                        }
                        ('\n', _) => out.push('\n'),
                        _ => {}
                    }
                    i += 1;
                    if depth == 0 {
                        break;
                    }
                }
                out.push(' ');
                continue;
            }
            ('"', _) => {
                i += 1;
                while at(i).is_some_and(|ch| ch != '"') {
                    i += if c[i] == '\\' { 2 } else { 1 };
                }
            }
            ('r', Some('"' | '#')) if !raw_prefix_glued(&c, i) => {
                let hashes = c[i + 1..].iter().take_while(|&&ch| ch == '#').count();
                if at(i + 1 + hashes) == Some('"') {
                    i += hashes + 2;
                    let closes =
                        |j: usize| c[j] == '"' && c[j + 1..].iter().take(hashes).all(|&ch| ch == '#');
                    while i < c.len() && !closes(i) {
                        i += 1;
                    }
                    i += hashes;
                }
            }
            ('\'', Some('\\')) => {
                i += 2;
                while at(i + 1).is_some_and(|ch| ch != '\'') {
                    i += 1;
                }
                i += 1;
            }
            ('\'', Some(_)) if at(i + 2) == Some('\'') => i += 2,
            _ => {}
        }
        i = (i + 1).min(c.len());
        out.extend(&c[start..i]);
    }
    out
}

/// Whether the `r` at `i` ends an identifier (`for"` is not a raw string) other than the `b` of
/// a raw byte string.
fn raw_prefix_glued(c: &[char], i: usize) -> bool {
    let before = |n: usize| i.checked_sub(n).map(|j| c[j]);
    match before(1) {
        Some('b') => before(2).is_some_and(is_ident),
        prev => prev.is_some_and(is_ident),
    }
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn ident_at(s: &str) -> &str {
    &s[..s.find(|c| !is_ident(c)).unwrap_or(s.len())]
}

/// Byte offsets of `word` in `code` where it is not part of a longer identifier.
fn word_offsets<'a>(code: &'a str, word: &'a str) -> impl Iterator<Item = usize> + 'a {
    code.match_indices(word).map(|(at, _)| at).filter(move |&at| {
        let before = code[..at].chars().next_back();
        let after = code[at + word.len()..].chars().next();
        let glued_before = word.starts_with(is_ident) && before.is_some_and(is_ident);
        let glued_after = word.ends_with(is_ident) && after.is_some_and(is_ident);
        !glued_before && !glued_after
    })
}

/// The top-level modules `code` names through `crate::` (`crate::oidc::issuer`, and each name
/// in a grouped `use crate::{apps, oidc::issuer};`, across lines), with the offset of each name.
fn crate_modules(code: &str) -> Vec<(usize, &str)> {
    let mut found = Vec::new();
    for at in word_offsets(code, "crate::") {
        let start = at + "crate::".len();
        let Some(group) = code[start..].strip_prefix('{') else {
            found.push((start, ident_at(&code[start..])));
            continue;
        };
        let (mut depth, mut expect_name) = (1, true);
        for (j, ch) in group.char_indices() {
            match ch {
                '{' => depth += 1,
                '}' if depth == 1 => break,
                '}' => depth -= 1,
                ',' if depth == 1 => expect_name = true,
                _ if expect_name && depth == 1 && is_ident(ch) => {
                    found.push((start + 1 + j, ident_at(&group[j..])));
                    expect_name = false;
                }
                _ => {}
            }
        }
    }
    found
}

/// Offending lines of one rule, by file and line.
struct Report {
    rule: &'static str,
    hits: BTreeMap<(String, usize), (BTreeSet<String>, String)>,
}

impl Report {
    fn new(rule: &'static str) -> Self {
        Report { rule, hits: BTreeMap::new() }
    }

    /// Records what was found at byte offset `at` of `src.code`.
    fn add(&mut self, src: &Source, at: usize, what: &str) {
        let line = src.code[..at].matches('\n').count() + 1;
        self.add_line(src, line, what);
    }

    /// Records every mention of `word` in `src`, and every path into `crate::{module}`.
    fn uses(&mut self, src: &Source, word: &str, module: &str) {
        for at in word_offsets(&src.code, word) {
            self.add(src, at, word);
        }
        for (at, m) in crate_modules(&src.code) {
            if m == module {
                self.add(src, at, &format!("crate::{module}"));
            }
        }
    }

    fn add_line(&mut self, src: &Source, line: usize, what: &str) {
        let text = src.text.lines().nth(line - 1).unwrap_or_default().trim().to_owned();
        let hit = self.hits.entry((src.path.clone(), line)).or_insert_with(|| (BTreeSet::new(), text));
        hit.0.insert(what.to_owned());
    }

    fn assert_clean(self) {
        let list: Vec<String> = self
            .hits
            .iter()
            .map(|((path, line), (whats, text))| {
                let whats: Vec<&str> = whats.iter().map(String::as_str).collect();
                format!("  src/{path}:{line}: {} | {text}", whats.join(", "))
            })
            .collect();
        assert!(list.is_empty(), "rule: {}\n{} offending lines:\n{}", self.rule, list.len(), list.join("\n"));
    }
}
