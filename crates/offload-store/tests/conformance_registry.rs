//! The conformance suite cannot forget a test: every suite function in `src/conformance/` is listed in
//! `conformance_tests!`, under the topic file it lives in, and every topic file is a module of the suite.
//!
//! The compiler already rejects a listed name that does not exist; this test rejects the opposite, a suite
//! function (`pub async fn name(h: Harness)`) that is written but never listed, and so would run on no store.

use std::collections::BTreeSet;
use std::path::Path;

/// The suite's folder.
fn suite_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src/conformance"))
}

/// The names of the suite functions of one topic file: public async functions taking a `Harness` by value.
fn suite_functions(source: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (i, _) in source.match_indices("pub async fn ") {
        let rest = &source[i + "pub async fn ".len()..];
        let Some(open) = rest.find('(') else { continue };
        let name = rest[..open].trim();
        let close = rest[open..].find(')').map_or(rest.len(), |c| open + c);
        let args = &rest[open + 1..close];
        let takes_harness = args
            .split(',')
            .any(|a| a.split(':').nth(1).is_some_and(|t| t.trim() == "Harness"));
        if takes_harness {
            names.push(name.to_owned());
        }
    }
    names
}

/// The `topic::name` entries listed in `conformance_tests!` (in `mod.rs`).
fn registered(module: &str) -> BTreeSet<String> {
    let start = module
        .find("@each $factory, $skip;")
        .expect("conformance_tests! lists its tests after `@each $factory, $skip;`");
    let list = &module[start..];
    let list = &list[..list.find(");").expect("the list ends with `);`")];
    list.lines()
        .skip(1)
        .map(|l| l.trim().trim_end_matches(','))
        .filter(|l| l.contains("::"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_suite_function_is_registered() {
    let module = std::fs::read_to_string(suite_dir().join("mod.rs")).expect("mod.rs");
    let listed = registered(&module);
    let mut written = BTreeSet::new();
    for entry in std::fs::read_dir(suite_dir()).expect("the suite's folder") {
        let path = entry.expect("a directory entry").path();
        let topic = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("a file name");
        if topic == "mod" || path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        assert!(
            module.contains(&format!("pub mod {topic};")),
            "src/conformance/{topic}.rs is not declared in mod.rs, so none of its tests compile or run"
        );
        let source = std::fs::read_to_string(&path).expect("a topic file");
        for name in suite_functions(&source) {
            written.insert(format!("{topic}::{name}"));
        }
    }
    let forgotten: Vec<&String> = written.difference(&listed).collect();
    assert!(
        forgotten.is_empty(),
        "suite functions missing from conformance_tests! (they run on no store): {forgotten:?}"
    );
    let dangling: Vec<&String> = listed.difference(&written).collect();
    assert!(
        dangling.is_empty(),
        "conformance_tests! lists functions not found where it says: {dangling:?}"
    );
    assert!(written.len() >= 40, "the suite was read: {written:?}");
}

#[test]
fn suite_functions_are_found_by_signature() {
    let source = "pub async fn a(h: Harness) {}\npub async fn b(h: &Harness) {}\n\
                  async fn c(h: Harness) {}\npub async fn d(\n    h: Harness,\n) {}\npub fn e(h: Harness) {}";
    assert_eq!(suite_functions(source), ["a", "d"]);
}
