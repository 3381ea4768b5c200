//! The README's first command, `cargo run --release --example quickstart`, builds every
//! dev-dependency of the library's package (cargo builds them all for any example). So
//! the library keeps only what its examples, README doctests and unit tests need; the
//! integration tests and benches, with their heavier dev-dependencies, live in
//! `crates/streamlog-tests` and `crates/streamlog-bench` (issue 18, item 7). Read from
//! the root `Cargo.toml` with a line scan, as a reviewer would.

use std::collections::BTreeSet;
use std::path::Path;

/// The library's dev-dependencies and why each is there. A new one is built by the
/// README's first command: put it in this crate or `streamlog-bench` unless an example
/// or a unit test in `src/` needs it, and only then add it here.
const ALLOWED: &[(&str, &str)] = &[
    ("clap", "the examples' command lines"),
    (
        "proptest",
        "property tests in src/ (varints, record spans, assignors)",
    ),
    (
        "tempfile",
        "the examples, the README's doctests and unit tests",
    ),
    ("tokio", "examples/async_service.rs"),
];

/// Never in the library's dev-dependencies: each costs the first build seconds of a
/// 2-core machine and is needed only by tests or benches.
const HEAVY: &[&str] = &[
    "criterion",
    "kafka-protocol",
    "rdkafka",
    "rusqlite",
    "commitlog",
];

/// The names in every dev-dependency table of a Cargo.toml: `[dev-dependencies]`,
/// `[target.'cfg(..)'.dev-dependencies]` and `[dev-dependencies.name]`.
fn dev_dependencies(manifest: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut in_dev = false;
    for line in manifest.lines() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[') {
            let header = header.trim_start_matches('[').trim_end_matches(']').trim();
            let (table, name) = match header.rsplit_once("dev-dependencies") {
                Some((before, after)) if before.is_empty() || before.ends_with('.') => {
                    (true, after.strip_prefix('.'))
                }
                _ => (false, None),
            };
            in_dev = table && name.is_none();
            if let Some(name) = name {
                names.insert(name.trim_matches('"').to_string());
            }
            continue;
        }
        if !in_dev || line.starts_with('#') {
            continue;
        }
        let key: String = line
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        let rest = line[key.len()..].trim_start();
        if !key.is_empty() && (rest.starts_with('=') || rest.starts_with('.')) {
            names.insert(key);
        }
    }
    names
}

fn library_dev_dependencies() -> BTreeSet<String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let text = std::fs::read_to_string(&manifest).expect("the workspace's Cargo.toml");
    assert!(
        text.contains("\nname = \"streamlog\"\n"),
        "{} is not the library's manifest",
        manifest.display()
    );
    dev_dependencies(&text)
}

#[test]
fn the_library_has_no_heavy_dev_dependency() {
    let dev = library_dev_dependencies();
    assert!(
        dev.contains("clap"),
        "the scan found no dev-dependencies: {dev:?}"
    );
    let heavy: Vec<&&str> = HEAVY.iter().filter(|h| dev.contains(**h)).collect();
    assert!(
        heavy.is_empty(),
        "the README's first example would build {heavy:?}: move the tests or benches that \
         need them to crates/streamlog-tests or crates/streamlog-bench"
    );
}

#[test]
fn the_library_has_only_the_dev_dependencies_its_examples_and_unit_tests_need() {
    let dev = library_dev_dependencies();
    let unexpected: Vec<&String> = dev
        .iter()
        .filter(|name| !ALLOWED.iter().any(|(allowed, _)| allowed == name))
        .collect();
    assert!(
        unexpected.is_empty(),
        "new dev-dependencies of the library, built by the README's first example: \
         {unexpected:?} (see ALLOWED)"
    );
}

#[test]
fn the_scan_reads_every_form_of_dev_dependency_table() {
    let manifest = r#"
[dependencies]
bytes = "1"

[dev-dependencies]
# a comment = "no"
criterion = { version = "0.8", features = [
    "cargo_bench_support",
] }
proptest.workspace = true

[target.'cfg(unix)'.dev-dependencies]
rusqlite = "0.32"

[dev-dependencies.kafka-protocol]
version = "0.18"

[build-dependencies]
cc = "1"
"#;
    let names: Vec<String> = dev_dependencies(manifest).into_iter().collect();
    assert_eq!(
        names,
        ["criterion", "kafka-protocol", "proptest", "rusqlite"]
    );
}
