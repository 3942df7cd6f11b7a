//! Replays the fuzzers' committed seed corpus (`fuzz/seeds/<target>/`)
//! through the same checks the fuzz targets run (`m2m::fuzzing`), so a
//! parser regression on a known input fails the normal test run. No fuzzer
//! is needed; see `fuzz/README.md` for running the fuzzers themselves.

use std::path::{Path, PathBuf};

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 5] = [
    ("token_response", m2m::fuzzing::token_response),
    ("www_authenticate", m2m::fuzzing::www_authenticate),
    ("config", m2m::fuzzing::config),
    ("discovery", m2m::fuzzing::discovery),
    ("discovery_retry_after", m2m::fuzzing::discovery_retry_after),
];

/// Each target's corpus must keep at least this many inputs: a deleted or
/// emptied corpus fails here instead of silently testing nothing.
const MIN_SEEDS: usize = 10;

fn seeds(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a readable corpus entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str, run: Target) -> usize {
    let files = seeds(target);
    assert!(
        files.len() >= MIN_SEEDS,
        "fuzz/seeds/{target} has {} inputs, expected at least {MIN_SEEDS}",
        files.len()
    );
    for file in &files {
        let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let outcome = std::panic::catch_unwind(|| run(&bytes));
        assert!(outcome.is_ok(), "{target} failed on {}", file.display());
    }
    files.len()
}

#[test]
fn token_response_corpus() {
    let (name, run) = TARGETS[0];
    assert!(replay(name, run) >= MIN_SEEDS);
}

#[test]
fn www_authenticate_corpus() {
    let (name, run) = TARGETS[1];
    assert!(replay(name, run) >= MIN_SEEDS);
}

#[test]
fn config_corpus() {
    let (name, run) = TARGETS[2];
    assert!(replay(name, run) >= MIN_SEEDS);
}

#[test]
fn discovery_corpus() {
    let (name, run) = TARGETS[3];
    assert!(replay(name, run) >= MIN_SEEDS);
}

#[test]
fn discovery_retry_after_corpus() {
    let (name, run) = TARGETS[4];
    assert!(replay(name, run) >= MIN_SEEDS);
}

/// Every target has a seed directory, and no seed directory lacks a target.
#[test]
fn every_target_has_a_corpus_and_back() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let mut dirs: Vec<String> = std::fs::read_dir(&root)
        .expect("fuzz/seeds exists")
        .map(|entry| entry.expect("a readable entry").file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    let mut names: Vec<String> = TARGETS.iter().map(|(n, _)| (*n).to_owned()).collect();
    names.sort();
    assert_eq!(dirs, names);
}
