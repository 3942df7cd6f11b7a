//! The benchmark report's schema, on a quick run of the suite (every size
//! shrunk; seconds, not minutes). Timings are not asserted: only that every
//! benchmark wrote a well-formed row, and that the files exist.

#[path = "../benches/suite/mod.rs"]
mod suite;

use serde_json::Value;

/// One process of the B6 fleet, started by the suite itself (with
/// `M2M_BENCH_ROLE=fleet-worker`); does nothing otherwise.
#[test]
#[ignore = "a worker process of the benchmark suite's fleet row"]
fn fleet_worker() {
    suite::fleet::worker_main();
}

#[test]
fn quick_run_writes_a_report_with_every_benchmark() {
    let out_dir = suite::target_dir().join("bench").join("quick-test");
    let _ = std::fs::remove_dir_all(&out_dir);
    let mut options = suite::Options::from_env();
    options.quick = true;
    options.out_dir = out_dir.clone();
    options.worker_args = [
        "--exact",
        "fleet_worker",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]
    .map(String::from)
    .to_vec();
    let report = suite::run(&options);

    let text = std::fs::read_to_string(out_dir.join("report.json")).expect("report.json written");
    let json: Value = serde_json::from_str(&text).expect("report.json is JSON");
    assert_eq!(json["mode"], "quick");
    assert!(json["machine"]["cores"].as_u64().unwrap() >= 1);
    assert!(json["date"].as_str().is_some_and(|d| !d.is_empty()));
    let rows = json["benchmarks"].as_array().expect("a list of benchmarks");
    assert_eq!(rows.len(), report.rows.len());
    for row in rows {
        let name = row["name"].as_str().expect("name is a string");
        assert!(
            row["value"].is_number() || row["value"].is_null(),
            "{name}: value is a number (null when not measured)"
        );
        assert!(
            row["unit"].as_str().is_some_and(|u| !u.is_empty()),
            "{name}: unit"
        );
        assert!(
            row["target"].as_str().is_some_and(|t| !t.is_empty()),
            "{name}: target"
        );
        assert!(row["pass"].is_boolean(), "{name}: pass");
        assert!(row["detail"].is_object(), "{name}: detail");
        if row["value"].is_null() {
            assert_eq!(
                row["pass"], false,
                "{name}: an unmeasured row does not pass"
            );
            assert!(
                row["detail"]["reason"].is_string(),
                "{name}: says why it was not measured"
            );
        }
    }
    for benchmark in ["B1", "B2", "B3", "B4", "B5", "B6"] {
        assert!(
            rows.iter().any(|row| row["name"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{benchmark} "))),
            "{benchmark} is in the report"
        );
    }
    // Every B2 size of a quick run, and B1's two figures.
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    for name in [
        "B1 overhead ratio",
        "B1 cache hit",
        "B2 cold storm, 100 callers",
    ] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    // Rows measured in any mode: counts, not timings.
    let b2 = rows
        .iter()
        .find(|r| r["name"] == "B2 cold storm, 100 callers")
        .unwrap();
    assert_eq!(
        b2["value"], 1.0,
        "one token request for 100 cold callers: {b2}"
    );
    let markdown = std::fs::read_to_string(out_dir.join("report.md")).expect("report.md written");
    assert!(markdown.contains("| B1 overhead ratio |"), "{markdown}");
    let svg = std::fs::read_to_string(out_dir.join("latency.svg")).expect("latency.svg written");
    assert!(
        svg.starts_with("<svg") && svg.contains("token refresh"),
        "an SVG plot"
    );
}
