//! What machine the figures were measured on, and its resident memory.

use serde_json::{Value, json};

/// Cores, CPU model, kernel and total memory, from `/proc` where it exists.
pub fn describe() -> Value {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split(':').nth(1))
        .map_or_else(|| "unknown".to_owned(), |model| model.trim().to_owned());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".to_owned(), |k| k.trim().to_owned());
    let memory_gib = proc_status_kib("/proc/meminfo", "MemTotal:").map_or(0.0, |kib| {
        (kib as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0
    });
    json!({
        "cores": cores,
        "cpu": cpu,
        "kernel": kernel,
        "memory_gib": memory_gib,
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
    })
}

/// This process's resident set size (`VmRSS`) in bytes; `None` where
/// `/proc/self/status` does not exist.
pub fn resident_bytes() -> Option<u64> {
    proc_status_kib("/proc/self/status", "VmRSS:").map(|kib| kib * 1024)
}

/// A `Name:   1234 kB` field of a `/proc` file, in KiB.
fn proc_status_kib(file: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    let line = text.lines().find(|line| line.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}
