//! The m2m benchmark suite: what a service saves by caching tokens, measured
//! side by side in one run against servers on loopback.
//!
//! | row | what |
//! |---|---|
//! | B1 | a generated-client call with a warm cache against raw reqwest with a fixed header; one cache hit |
//! | B2 | 1 … 10,000 concurrent first calls on a cold cache: token requests, p50/p99 |
//! | B3 | steady load across several short token lifetimes: waits, p99 during a refresh, requests per lifetime |
//! | B4 | resident memory with 10,000 cached entries; the store's bound |
//! | B5 | the same workload with the oauth2 crate fetching a token per call |
//! | B6 | a fleet of processes on a cold cache over a real redis-server |
//!
//! `benches/m2m.rs` runs it (`cargo bench --all-features --bench m2m`);
//! `tests/bench_report.rs` runs it in quick mode and checks the report.
//! Included in both with `#[path]`, so every item here is used by both.

pub mod fleet;
pub mod floor;
pub mod machine;
pub mod memory;
pub mod overhead;
pub mod plain;
pub mod plot;
pub mod refresh;
pub mod report;
pub mod sample;
pub mod storm;
pub mod wiring;

#[cfg(feature = "redis")]
#[path = "../../tests/support/redis_server.rs"]
pub mod redis_server;

use std::path::PathBuf;
use std::time::Instant;

pub use report::{Report, Row};

/// How the suite runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Every size shrunk so that the whole suite takes seconds (for the
    /// report's schema test); the figures are then not meaningful.
    pub quick: bool,
    /// Where `report.json`, `report.md` and `latency.svg` go.
    pub out_dir: PathBuf,
    /// Arguments that make this executable run one fleet worker (B6) when
    /// started again with [`fleet::ROLE_VAR`] set: none for the bench
    /// binary, libtest's `--exact fleet_worker --ignored` for a test.
    /// (Unread without the `redis` feature: B6 then starts no worker.)
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub worker_args: Vec<String>,
    /// Only these benchmarks (`B1`, …), from `M2M_BENCH_ONLY=B1,B4`, for
    /// profiling one of them; `None`: all. A partial report goes to
    /// `<out_dir>/only/`.
    pub only: Option<Vec<String>>,
}

impl Options {
    /// Quick mode when `M2M_BENCH_QUICK` is set to anything but `0`, or
    /// when `--quick` is among the arguments; output in
    /// `<target>/bench/`.
    pub fn from_env() -> Self {
        let quick = std::env::var("M2M_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
            || std::env::args().any(|arg| arg == "--quick");
        let only: Option<Vec<String>> = std::env::var("M2M_BENCH_ONLY")
            .ok()
            .filter(|list| !list.trim().is_empty())
            .map(|list| list.split(',').map(|b| b.trim().to_uppercase()).collect());
        let mut out_dir = target_dir().join("bench");
        if only.is_some() {
            out_dir = out_dir.join("only");
        }
        Self {
            quick,
            out_dir,
            worker_args: Vec::new(),
            only,
        }
    }

    /// Whether `benchmark` (`B1` … `B6`) is to run.
    pub fn runs(&self, benchmark: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|b| b == benchmark))
    }
}

/// The Cargo target directory: `CARGO_TARGET_DIR` if set, else the one this
/// executable was built in (`<target>/<profile>/deps/<exe>`), else
/// `./target` of the crate.
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let built_in = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(PathBuf::from))
        .filter(|dir| dir.join("CACHEDIR.TAG").exists());
    built_in.unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// Runs every benchmark, prints the table, writes the report and the plot.
/// Returns the report (also when some target was missed).
pub fn run(options: &Options) -> Report {
    let started = Instant::now();
    let mode = if options.quick { "quick" } else { "full" };
    eprintln!("m2m bench ({mode} run) -> {}", options.out_dir.display());
    let servers = wiring::Servers::start();
    let mut rows = Vec::new();
    // Memory first: the process has allocated least, so the resident-size
    // difference is the cache's, not freed memory of earlier benchmarks.
    let memory = options.runs("B4").then(|| memory::run(options));
    if options.runs("B1") {
        rows.extend(overhead::run(options, &servers));
    }
    if options.runs("B2") {
        rows.extend(storm::run(options, &servers));
    }
    let mut plot = Err("B3 did not run: no plot".to_owned());
    if options.runs("B3") {
        let (b3, timeline) = refresh::run(options, &servers);
        rows.extend(b3);
        plot = plot::render(&timeline, &options.out_dir.join("latency.svg"));
    }
    rows.extend(memory);
    if options.runs("B5") {
        rows.push(plain::run(options, &servers));
    }
    if options.runs("B6") {
        rows.push(fleet::run(options, &servers));
    }
    let report = Report::new(options, rows, started.elapsed(), plot.err());
    report.print();
    if let Err(error) = report.write(&options.out_dir) {
        eprintln!("m2m bench: cannot write the report: {error}");
    }
    report
}
