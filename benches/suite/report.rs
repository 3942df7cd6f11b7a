//! The report: one row per measured figure, printed as a table and written
//! as `report.json` (for machines) and `report.md` (for the README).

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::Options;

/// One figure of one benchmark, against its target.
#[derive(Debug, Clone)]
pub struct Row {
    /// `B<n> <what>`, e.g. `B1 overhead ratio`.
    pub name: String,
    /// The measured value, in `unit`.
    pub value: f64,
    /// The unit of `value` (`ratio`, `ns`, `requests`, …).
    pub unit: String,
    /// The target, as a readable condition (`<= 1.03`).
    pub target: String,
    /// Whether the target was met.
    pub pass: bool,
    /// The figures behind the value, and a note when the target was missed.
    pub detail: Value,
}

impl Row {
    /// A row with `detail`.
    pub fn new(
        name: &str,
        value: f64,
        unit: &str,
        target: &str,
        pass: bool,
        detail: Value,
    ) -> Self {
        Self {
            name: name.to_owned(),
            value,
            unit: unit.to_owned(),
            target: target.to_owned(),
            pass,
            detail,
        }
    }

    /// A row that could not be measured: `pass` is false and `reason` says why.
    pub fn unmeasured(name: &str, unit: &str, target: &str, reason: &str) -> Self {
        Self::new(
            name,
            f64::NAN,
            unit,
            target,
            false,
            json!({ "reason": reason }),
        )
    }

    /// The value as the table shows it.
    fn shown_value(&self) -> String {
        if self.value.is_nan() {
            "not measured".to_owned()
        } else if self.value.fract() == 0.0 && self.value.abs() < 1e15 {
            format!("{} {}", self.value as i64, self.unit)
        } else {
            format!("{:.3} {}", self.value, self.unit)
        }
    }

    /// The short note the table shows beside the value.
    fn note(&self) -> String {
        for field in ["reason", "summary"] {
            if let Some(text) = self.detail.get(field).and_then(Value::as_str) {
                return text.to_owned();
            }
        }
        String::new()
    }
}

/// Every row of a run, with where and when it was measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// `quick` or `full`.
    pub mode: &'static str,
    /// The rows, B1 to B6.
    pub rows: Vec<Row>,
    /// The machine ([`super::machine::describe`]).
    pub machine: Value,
    /// When (UTC, RFC 3339).
    pub date: String,
    /// How long the whole suite took.
    pub elapsed: Duration,
    /// Why the plot could not be written, if it could not.
    pub plot_error: Option<String>,
}

impl Report {
    /// Puts the rows of one run together.
    pub fn new(
        options: &Options,
        rows: Vec<Row>,
        elapsed: Duration,
        plot_error: Option<String>,
    ) -> Self {
        Self {
            mode: if options.quick { "quick" } else { "full" },
            rows,
            machine: super::machine::describe(),
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            elapsed,
            plot_error,
        }
    }

    /// The JSON document: `{mode, date, machine, elapsed_s, benchmarks:
    /// [{name, value, unit, target, pass, detail}]}` (a value that could
    /// not be measured is `null`).
    pub fn to_json(&self) -> Value {
        let benchmarks: Vec<Value> = self
            .rows
            .iter()
            .map(|row| {
                json!({
                    "name": row.name,
                    "value": if row.value.is_finite() { json!(row.value) } else { Value::Null },
                    "unit": row.unit,
                    "target": row.target,
                    "pass": row.pass,
                    "detail": row.detail,
                })
            })
            .collect();
        json!({
            "mode": self.mode,
            "date": self.date,
            "machine": self.machine,
            "elapsed_s": (self.elapsed.as_secs_f64() * 10.0).round() / 10.0,
            "plot_error": self.plot_error,
            "benchmarks": benchmarks,
        })
    }

    /// The table as Markdown (for the README), with the machine and date.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "Measured {} on {} core(s), {}, Linux {}, {} GiB ({} run, {:.0} s).\n\n",
            self.date,
            self.machine["cores"],
            self.machine["cpu"].as_str().unwrap_or("unknown CPU"),
            self.machine["kernel"].as_str().unwrap_or("?"),
            self.machine["memory_gib"],
            self.mode,
            self.elapsed.as_secs_f64(),
        ));
        out.push_str("| benchmark | value | target | pass | note |\n|---|---|---|---|---|\n");
        for row in &self.rows {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                row.name,
                row.shown_value(),
                row.target,
                if row.pass { "yes" } else { "**no**" },
                row.note().replace('|', "/"),
            ));
        }
        out
    }

    /// Prints the table to standard error (so `cargo bench` shows it).
    pub fn print(&self) {
        let width = self.rows.iter().map(|r| r.name.len()).max().unwrap_or(10);
        eprintln!();
        eprintln!(
            "{:width$}  {:>22}  {:>18}  pass",
            "benchmark", "value", "target"
        );
        for row in &self.rows {
            eprintln!(
                "{:width$}  {:>22}  {:>18}  {}  {}",
                row.name,
                row.shown_value(),
                row.target,
                if row.pass { "yes" } else { "NO " },
                row.note()
            );
        }
        eprintln!(
            "\n{} run on {} core(s), {}, in {:.1} s",
            self.mode,
            self.machine["cores"],
            self.machine["cpu"].as_str().unwrap_or("unknown CPU"),
            self.elapsed.as_secs_f64()
        );
    }

    /// Writes `report.json` and `report.md` into `dir` (created if needed).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let json = serde_json::to_string_pretty(&self.to_json()).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("report.json"), json + "\n")?;
        std::fs::write(dir.join("report.md"), self.to_markdown())?;
        eprintln!("report: {}", dir.join("report.json").display());
        Ok(())
    }
}
