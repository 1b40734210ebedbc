//! Architecture invariants of ARCHITECTURE.md, checked on the source tree:
//! every module has a `//!` doc; crates depend in one direction only
//! (`core ← proto ← {server, agent, cli, sudo-plugin}`, nothing on `server` or `agent`);
//! `unsafe` only in `os/` and `ffi` (`ffi.rs`, `ffi/`); axum only in `server/src/http/`; SQL only in
//! `server/src/store/`; core has no I/O, clock or async.

use std::fs;
use std::path::{Path, PathBuf};

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// All `.rs` files under `crates/*/src`.
fn sources() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for krate in fs::read_dir(crates_dir()).unwrap() {
        let src = krate.unwrap().path().join("src");
        if src.is_dir() {
            rust_files(&src, &mut out);
        }
    }
    assert!(out.len() > 20, "the source tree was not found");
    out
}

/// Test modules (`tests.rs`, files under a `tests/` folder) may do what production code must not.
fn is_test_module(path: &Path) -> bool {
    path.components()
        .any(|c| c.as_os_str() == "tests" || c.as_os_str() == "tests.rs")
}

fn relative(path: &Path) -> String {
    path.strip_prefix(crates_dir())
        .unwrap()
        .display()
        .to_string()
}

/// Code lines: no comments, no `#[cfg(test)]` tail (tests may use what production code must not).
fn code_of(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]") {
        Some(at) => text[..at].to_string(),
        None => text,
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_module_says_what_it_is_for() {
    let missing: Vec<String> = sources()
        .into_iter()
        .filter(|p| {
            !fs::read_to_string(p)
                .unwrap()
                .trim_start()
                .starts_with("//!")
        })
        .filter(|p| !is_test_module(p))
        .map(|p| relative(&p))
        .collect();
    assert!(missing.is_empty(), "modules without a //! doc: {missing:?}");
}

/// Workspace crates a crate's `[dependencies]` (not dev-dependencies) name.
fn internal_dependencies(krate: &str) -> Vec<String> {
    let manifest = fs::read_to_string(crates_dir().join(krate).join("Cargo.toml")).unwrap();
    let doc: toml::Table = manifest.parse().unwrap();
    doc.get("dependencies")
        .and_then(|d| d.as_table())
        .map(|deps| {
            deps.keys()
                .filter(|k| k.starts_with("elevate-"))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn crates_depend_in_one_direction() {
    let allowed: &[(&str, &[&str])] = &[
        ("core", &[]),
        ("proto", &["elevate-core"]),
        ("server", &["elevate-core", "elevate-proto"]),
        ("import", &["elevate-proto"]),
        ("cli", &["elevate-core", "elevate-proto", "elevate-import"]),
        ("agent", &["elevate-core", "elevate-proto"]),
        ("sudo-plugin", &["elevate-core", "elevate-proto"]),
        // Dev-only: may use everything, and nothing may depend on it but tests.
        (
            "testkit",
            &[
                "elevate-core",
                "elevate-proto",
                "elevate-server",
                "elevate-agent",
            ],
        ),
    ];
    for entry in fs::read_dir(crates_dir()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        let rule = allowed.iter().find(|(k, _)| *k == name);
        let Some((_, ok)) = rule else {
            panic!("crate {name} is not in the dependency rules of ARCHITECTURE.md; add it here and there");
        };
        for dep in internal_dependencies(&name) {
            assert!(
                ok.contains(&dep.as_str()),
                "crate {name} must not depend on {dep}"
            );
        }
    }
}

#[test]
fn unsafe_code_lives_only_in_os_and_ffi_modules() {
    for path in sources() {
        let rel = relative(&path);
        let allowed = rel.contains("/os/") || rel.ends_with("ffi.rs") || rel.contains("/ffi/");
        let code = code_of(&path);
        // Spelled in pieces so that this test is not itself a match for text searches.
        let keyword = concat!("uns", "afe");
        let uses_unsafe = [" {", " fn", " impl"]
            .iter()
            .any(|tail| code.contains(&format!("{keyword}{tail}")));
        assert!(
            !uses_unsafe || allowed,
            "{rel} contains unsafe code outside os/ and ffi (ffi.rs, ffi/)"
        );
    }
}

#[test]
fn only_http_knows_axum_and_only_store_knows_sql() {
    for path in sources() {
        let rel = relative(&path);
        let code = code_of(&path);
        if rel.starts_with("server/src/") && !rel.starts_with("server/src/http/") {
            assert!(
                !code.contains("axum"),
                "{rel} uses axum; only server/src/http/ may"
            );
        }
        if !rel.starts_with("server/src/store/") && !rel.starts_with("testkit/") {
            assert!(
                !code.contains("sqlx"),
                "{rel} uses sqlx; only server/src/store/ may"
            );
        }
    }
}

#[test]
fn core_does_no_io_reads_no_clock_and_has_no_async() {
    for path in sources() {
        let rel = relative(&path);
        if !rel.starts_with("core/src/") || is_test_module(&path) {
            continue;
        }
        let code = code_of(&path);
        for forbidden in [
            "std::fs",
            "std::net",
            "std::process",
            "std::env",
            "Timestamp::now",
            "SystemTime",
            "Instant::now",
            "async fn",
            ".await",
            "tokio",
            "rand::",
            "println!",
            "eprintln!",
        ] {
            assert!(
                !code.contains(forbidden),
                "{rel} uses {forbidden}; core is pure"
            );
        }
    }
}

/// Every test docs/security.md names for an invariant exists (`module::name` or `name`), and
/// the code cites the invariants there, not in a document outside the repository.
#[test]
fn the_security_invariants_name_tests_that_exist() {
    let doc = fs::read_to_string(crates_dir().join("../docs/security.md")).unwrap();
    let mut all = Vec::new();
    for krate in fs::read_dir(crates_dir()).unwrap() {
        let krate = krate.unwrap().path();
        for folder in ["src", "tests"] {
            if krate.join(folder).is_dir() {
                rust_files(&krate.join(folder), &mut all);
            }
        }
    }
    let texts: Vec<(PathBuf, String)> = all
        .iter()
        .map(|p| (p.clone(), fs::read_to_string(p).unwrap()))
        .collect();
    let mut named = 0;
    for line in doc.lines().filter(|l| l.starts_with("- ")) {
        for name in line.split('`').skip(1).step_by(2) {
            let (module, test) = name.rsplit_once("::").unwrap_or(("", name));
            let found = texts.iter().any(|(path, text)| {
                (module.is_empty() || path.file_stem().is_some_and(|s| s == module))
                    && text.contains(&format!("fn {test}("))
            });
            assert!(
                found,
                "docs/security.md names {name}, which no test is called"
            );
            named += 1;
        }
    }
    assert!(named > 40, "docs/security.md names only {named} tests");
    let outside = ["DESIGN", "invariant"].join(" ");
    for (path, text) in &texts {
        assert!(
            !text.contains(&outside),
            "{} cites {outside:?}: cite \"security invariant N\" (docs/security.md)",
            relative(path)
        );
    }
}

/// The agent's modules import one another without cycles: shared state (`state`) below the
/// stages that serve a caller (`caller`), the loops (`daemon`) above both. Checked on
/// `crate::MODULE` paths in code (not comments or tests) of each top-level module of
/// `agent/src` (a folder counts as one module).
#[test]
fn the_agents_modules_import_one_another_without_cycles() {
    use std::collections::{BTreeMap, BTreeSet};
    let src = crates_dir().join("agent/src");
    let module_of = |path: &Path| -> String {
        let rel = path.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        first.trim_end_matches(".rs").to_owned()
    };
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(f)).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let from = module_of(file);
        let code = code_of(file);
        for (at, _) in code.match_indices("crate::") {
            let to: String = code[at + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if to != from && modules.contains(&to) {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    assert!(
        edges.len() > 10,
        "the agent's imports were not found: {edges:?}"
    );
    // Depth-first search for a cycle, naming it.
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut cycle = path[i..].to_vec();
            cycle.push(m.to_owned());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_owned());
        for next in edges.get(m).into_iter().flatten() {
            if let Some(c) = visit(next, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for m in &modules {
        if let Some(cycle) = visit(m, &edges, &mut Vec::new(), &mut done) {
            panic!(
                "the agent's modules import in a cycle: {}",
                cycle.join(" -> ")
            );
        }
    }
    // The shared state sits below every stage.
    for above in ["daemon", "caller", "cli"] {
        assert!(
            !edges.get("state").is_some_and(|e| e.contains(above)),
            "state imports {above}"
        );
    }
}

/// The agent's raw system calls (`libc::`, `rustix::`, `nix::`) live in `os/`, except the two
/// ARCHITECTURE.md names: `resolve.rs` opens and checks the very program it hashes
/// (`rustix::fs`), and `users.rs` asks NSS who a uid is (`nix::unistd`).
#[test]
fn the_agents_raw_system_calls_live_in_os() {
    let allowed: &[(&str, &str)] = &[
        ("agent/src/resolve.rs", "rustix::fs::"),
        ("agent/src/users.rs", "nix::unistd::"),
    ];
    let mut checked = 0;
    for path in sources() {
        let rel = relative(&path);
        if !rel.starts_with("agent/src/")
            || rel.starts_with("agent/src/os/")
            || is_test_module(&path)
        {
            continue;
        }
        checked += 1;
        let code = code_of(&path);
        for krate in ["libc::", "rustix::", "nix::"] {
            for (at, _) in code.match_indices(krate) {
                // A path of its own (`std::os::unix::` is not `nix::`).
                let before = code[..at].chars().next_back();
                if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                    continue;
                }
                let rest = &code[at..];
                assert!(
                    allowed
                        .iter()
                        .any(|(file, prefix)| rel == *file && rest.starts_with(prefix)),
                    "{rel} calls {} directly; raw system calls belong in agent/src/os/",
                    rest.split(|c: char| c == '(' || c.is_whitespace())
                        .next()
                        .unwrap_or(krate)
                );
            }
        }
    }
    assert!(checked > 20, "the agent's sources were not found");
}

/// No production file grows past 600 lines (tests, in `tests.rs`, `tests/` or after
/// `#[cfg(test)]`, do not count): a file that long holds more than one idea.
#[test]
fn no_production_file_is_over_600_lines() {
    let mut long = Vec::new();
    for path in sources() {
        if is_test_module(&path) {
            continue;
        }
        let text = fs::read_to_string(&path).unwrap();
        let production = match text.find("#[cfg(test)]") {
            Some(at) => &text[..at],
            None => &text,
        };
        let lines = production.lines().count();
        if lines > 600 {
            long.push(format!("{} ({lines} lines)", relative(&path)));
        }
    }
    assert!(long.is_empty(), "split these by idea: {long:?}");
}
