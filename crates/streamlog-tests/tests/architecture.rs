//! The library's module graph is the design's (ARCHITECTURE.md, "Layers"): every
//! `crate::` path in a module's code names a module its arrows allow, and the arrows
//! themselves form no circle. Read from the source text, as a reviewer would.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module and the modules it may use (ARCHITECTURE.md's arrows; every
/// module may also use `error`). Any other use is a new arrow: add it to the design
/// first, and never one that closes a circle.
const ARROWS: &[(&str, &[&str])] = &[
    ("internals", &["store", "producer"]),
    (
        "store",
        &[
            "catalog",
            "consumer",
            "format",
            "fs",
            "groups",
            "log",
            "maintenance",
            "producer",
            "topic",
            "txn",
        ],
    ),
    ("producer", &["catalog", "format", "groups", "topic", "txn"]),
    ("consumer", &["catalog", "format", "groups", "topic"]),
    ("maintenance", &["catalog", "groups", "log", "topic", "txn"]),
    ("txn", &["catalog", "format", "groups", "topic"]),
    ("groups", &["catalog", "format", "topic"]),
    ("catalog", &["format", "fs", "log", "notify", "topic"]),
    ("topic", &["format", "log"]),
    ("log", &["format", "fs"]),
    ("fs", &[]),
    ("format", &[]),
    ("notify", &[]),
    ("error", &[]),
];

fn allowed(module: &str, used: &str) -> Option<bool> {
    let (_, uses) = ARROWS.iter().find(|(m, _)| *m == module)?;
    Some(used == "error" || uses.contains(&used))
}

/// The code of a file: comments and the trailing unit-test module left out (tests may
/// use anything; doc links are not dependencies).
fn code_of(text: &str) -> String {
    let text = text
        .find("#[cfg(test)]\nmod ")
        .map_or(text, |cut| &text[..cut]);
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every top-level module named after `crate::` in `code`, including the names inside
/// `use crate::{a::.., b::..}` groups.
fn named_modules(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The first name of each top-level item of the group (nested groups skipped).
            let mut depth = 0usize;
            let mut at_item = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => at_item = true,
                    c if at_item && (c.is_alphanumeric() || c == '_') => {
                        let name: String = group[i..]
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        out.insert(name);
                        at_item = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The crate root's re-exports (`pub use store::Store;`, `pub use error::{Error, Result};`
/// in lib.rs): `crate::Store` is a use of `store`.
fn root_reexports(src: &Path) -> BTreeMap<String, String> {
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("readable lib.rs");
    let mut out = BTreeMap::new();
    for item in lib.split("pub use ").skip(1) {
        let item = &item[..item.find(';').unwrap_or(item.len())];
        let Some((module, names)) = item.split_once("::") else {
            continue;
        };
        let names = names.trim().trim_start_matches('{').trim_end_matches('}');
        for name in names.split(',') {
            let name = name.trim();
            if !name.is_empty() {
                out.insert(name.to_string(), module.trim().to_string());
            }
        }
    }
    out
}

/// `module -> (used module -> files)` for the library's top-level modules.
fn module_graph() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let reexports = root_reexports(&src);
    let mut graph: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for path in files {
        let rel = path.strip_prefix(&src).expect("under src");
        let first = rel.components().next().expect("a component");
        let module = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if module == "lib" {
            continue;
        }
        let mut text = std::fs::read_to_string(&path).expect("readable source file");
        // In `src/x.rs` and `src/x/mod.rs`, `super::` is the crate root.
        let depth = rel.components().count();
        if depth == 1 || (depth == 2 && rel.ends_with("mod.rs")) {
            text = text.replace("super::", "crate::");
        }
        for name in named_modules(&code_of(&text)) {
            let used = reexports.get(&name).cloned().unwrap_or(name);
            if used != module && used != "self" && used != "super" {
                graph
                    .entry(module.clone())
                    .or_default()
                    .entry(used)
                    .or_default()
                    .insert(rel.display().to_string());
            }
        }
    }
    graph
}

#[test]
fn every_module_uses_only_the_modules_the_design_allows() {
    let graph = module_graph();
    assert!(
        graph.contains_key("store") && graph.contains_key("catalog"),
        "the source was not read: {graph:?}"
    );
    let mut wrong = Vec::new();
    for (module, uses) in &graph {
        for (used, files) in uses {
            match allowed(module, used) {
                None => wrong.push(format!("module `{module}` is not in ARROWS")),
                Some(false) => wrong.push(format!("{module} -> {used} (in {files:?})")),
                Some(true) => {}
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "uses the design does not allow:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn root_reexports_name_their_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../src");
    let reexports = root_reexports(&src);
    assert_eq!(reexports.get("Store").map(String::as_str), Some("store"));
    assert_eq!(reexports.get("Error").map(String::as_str), Some("error"));
    assert_eq!(
        reexports.get("Producer").map(String::as_str),
        Some("producer")
    );
}

#[test]
fn the_graph_reader_sees_groups_and_paths() {
    let code = code_of(
        "use crate::log::Log; // crate::store in a comment\n\
         use crate::{error::Error, format::{Batch, Record}};\n\
         fn f() { crate::fs::create_dir_durable(); }\n\
         #[cfg(test)]\nmod tests { use crate::store::Store; }",
    );
    let names: Vec<String> = named_modules(&code).into_iter().collect();
    assert_eq!(names, ["error", "format", "fs", "log"]);
}

#[test]
fn the_allowed_arrows_form_no_circle() {
    // Depth-first search for a path back to the start from every module.
    fn reaches(from: &str, target: &str, seen: &mut BTreeSet<String>) -> bool {
        let Some((_, uses)) = ARROWS.iter().find(|(m, _)| *m == from) else {
            return false;
        };
        uses.iter()
            .any(|&u| u == target || (seen.insert(u.to_string()) && reaches(u, target, seen)))
    }
    for (module, _) in ARROWS {
        assert!(
            !reaches(module, module, &mut BTreeSet::new()),
            "the arrows lead from `{module}` back to it"
        );
    }
}
