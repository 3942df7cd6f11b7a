//! m2m's benchmarks, side by side in one run: `cargo bench --all-features
//! --bench m2m` (quick: `M2M_BENCH_QUICK=1`). Prints a table and writes
//! `target/bench/report.json`, `report.md` and `latency.svg`; see
//! `benches/suite/mod.rs` for what each row measures.
//!
//! Started again with `M2M_BENCH_ROLE=fleet-worker`, this binary is one
//! process of the B6 fleet.

#[path = "suite/mod.rs"]
mod suite;

fn main() {
    if suite::fleet::is_worker() {
        suite::fleet::worker_main();
        return;
    }
    // `cargo bench -- <filter>` passes `--bench` and filters: the suite is
    // one run, so they are ignored; `cargo test --benches` passes no
    // `--bench` and gets the quick run, so that it stays a quick check.
    let mut options = suite::Options::from_env();
    if !std::env::args().any(|arg| arg == "--bench") {
        options.quick = true;
        options.out_dir = options.out_dir.join("quick");
    }
    let report = suite::run(&options);
    let missed = report.rows.iter().filter(|row| !row.pass).count();
    eprintln!(
        "{} of {} targets met (see the note of each missed row)",
        report.rows.len() - missed,
        report.rows.len()
    );
}
