//! The one table: for each row, m2m's figure and, for each peer, its
//! figure and the ratio peer ÷ m2m.

use std::time::Duration;

use crate::measure::{Figures, Sizes};

/// Why google-cloud-auth has no column of figures.
pub const GOOGLE_LEFT_OUT: &str = "google-cloud-auth 1.19.0 is left out: none of its credential \
types sends a client-credentials grant (grant_type=client_credentials) to a token URL. Service \
account keys sign their own JWT access tokens (no token endpoint at all), authorized_user and \
external_account_authorized_user send a refresh_token grant, external_account and gdch an STS \
token-exchange grant, impersonated calls the IAM Credentials API, mds the metadata server; a \
client-credentials endpoint, the sandbox's included, refuses all of these.";

fn number(value: f64) -> String {
    let digits = if value >= 100.0 || value.fract() == 0.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{value:.digits$}");
    // Thousands separators for the integer part.
    let (int, frac) = text
        .split_once('.')
        .map_or((text.as_str(), None), |(i, f)| (i, Some(f)));
    let mut grouped = String::new();
    for (n, ch) in int.chars().enumerate() {
        if n > 0 && (int.len() - n) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    match frac {
        Some(frac) => format!("{grouped}.{frac}"),
        None => grouped,
    }
}

/// A count, with thousands separators.
fn count(value: impl Into<u64>) -> String {
    number(value.into() as f64)
}

/// A short time: µs below a millisecond, else ms.
fn time(duration: Duration) -> String {
    let us = duration.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{} µs", number(us))
    } else {
        format!("{} ms", number(us / 1000.0))
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn ratio(peer: f64, m2m: f64) -> String {
    if m2m > 0.0 && peer.is_finite() {
        format!("{}×", number(peer / m2m))
    } else {
        "m2m: 0".to_owned()
    }
}

struct Row {
    label: String,
    cells: Vec<Cell>,
}

enum Cell {
    Value(f64, String),
    Note(String),
}

fn cell(value: f64, text: String) -> Cell {
    Cell::Value(value, text)
}

/// Renders the table and the notes under it as Markdown.
pub fn render(figures: &[Figures], sizes: &Sizes) -> String {
    let mut rows = Vec::new();
    rows.push(Row {
        label: format!(
            "(a) warm cache hit, ns (median of {} batches)",
            sizes.hit_batches
        ),
        cells: figures
            .iter()
            .map(|f| {
                let ns = f.hit.as_secs_f64() * 1e9;
                if f.caches {
                    cell(ns, number(ns))
                } else {
                    cell(
                        ns,
                        format!("no cache: a token request, {}", count(ns as u64)),
                    )
                }
            })
            .collect(),
    });
    for (index, &callers) in sizes.storms.iter().enumerate() {
        let size = if callers == 1 {
            "1 cold caller".to_owned()
        } else {
            format!("{} concurrent cold callers", count(callers as u64))
        };
        rows.push(Row {
            label: format!(
                "(b) {size}, token endpoint {} ms: token requests",
                sizes.storm_latency.as_millis()
            ),
            cells: figures
                .iter()
                .map(|f| {
                    let storm = &f.storms[index];
                    let mut text = count(storm.requests);
                    if storm.failed > 0 {
                        text.push_str(&format!(" ({} got no token)", count(storm.failed as u64)));
                    }
                    cell(storm.requests as f64, text)
                })
                .collect(),
        });
        rows.push(Row {
            label: format!("(b) {size}: p99 to a token, ms"),
            cells: figures
                .iter()
                .map(|f| {
                    let p99 = ms(f.storms[index].p99);
                    cell(p99, number(p99))
                })
                .collect(),
        });
    }
    rows.push(Row {
        label: format!(
            "(c) steady load, {} token lifetimes of {} s, token endpoint {} ms: calls that waited on a fetch",
            sizes.lifetimes,
            sizes.usable.as_secs(),
            sizes.steady_latency.as_millis()
        ),
        cells: figures
            .iter()
            .map(|f| {
                let s = &f.steady;
                let mut text = format!("{} of {}", count(s.waited as u64), count(s.calls as u64));
                if !f.caches {
                    text = format!("no cache: every call fetches, {text}");
                }
                if s.failed > 0 {
                    text.push_str(&format!(" ({} failed)", count(s.failed as u64)));
                }
                cell(s.waited as f64, text)
            })
            .collect(),
    });
    rows.push(Row {
        label: "(c) p99 during a refresh ÷ p99 outside".to_owned(),
        cells: figures
            .iter()
            .map(|f| match f.steady.p99_ratio() {
                Some(r) => cell(
                    r,
                    format!(
                        "{} ({} / {})",
                        number(r),
                        time(f.steady.p99_during),
                        time(f.steady.p99_outside)
                    ),
                ),
                None => Cell::Note(format!(
                    "n/a: every call is a fetch (p99 {})",
                    time(f.steady.p99_during)
                )),
            })
            .collect(),
    });
    rows.push(Row {
        label: format!("(c) token requests over the {} lifetimes", sizes.lifetimes),
        cells: figures
            .iter()
            .map(|f| cell(f.steady.requests as f64, count(f.steady.requests)))
            .collect(),
    });
    rows.push(Row {
        label: format!(
            "(d) memory per cached token, bytes ({} clients or keys)",
            number(sizes.memory_clients as f64)
        ),
        cells: figures
            .iter()
            .map(|f| match f.bytes_per_token {
                Some(bytes) => cell(bytes, number(bytes)),
                None => Cell::Note("no cache: holds no token".to_owned()),
            })
            .collect(),
    });

    let mut out = String::new();
    out.push_str("| row | ");
    out.push_str(
        &figures
            .iter()
            .map(|f| f.name)
            .collect::<Vec<_>>()
            .join(" | "),
    );
    out.push_str(" | google-cloud-auth 1.19.0 |\n|---|");
    out.push_str(&"---|".repeat(figures.len() + 1));
    out.push('\n');
    for row in rows {
        out.push_str(&format!("| {} |", row.label));
        let m2m = match &row.cells[0] {
            Cell::Value(value, _) => Some(*value),
            Cell::Note(_) => None,
        };
        for (index, cell) in row.cells.iter().enumerate() {
            let text = match (cell, m2m) {
                (Cell::Value(_, text), _) if index == 0 => text.clone(),
                (Cell::Value(value, text), Some(m2m)) => format!("{text} ({})", ratio(*value, m2m)),
                (Cell::Value(_, text), None) | (Cell::Note(text), _) => text.clone(),
            };
            out.push_str(&format!(" {text} |"));
        }
        out.push_str(" left out (see below) |\n");
    }
    out
}
