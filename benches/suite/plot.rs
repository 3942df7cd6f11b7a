//! The plot: call latency over time under B3's steady load, across several
//! token refreshes (shaded: a token fetch in flight), as an SVG.

use std::path::Path;
use std::time::Duration;

use plotters::prelude::*;

use super::refresh::Timeline;
use super::sample::{Sample, millis};

/// Width of one time bucket of the plot.
const BUCKET: Duration = Duration::from_millis(100);

/// Writes the plot of `timeline` to `path` (its folder is created).
pub fn render(timeline: &Timeline, path: &Path) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    draw(timeline, path).map_err(|e| format!("plot {}: {e}", path.display()))
}

/// p50, p99 and max of the calls started in each bucket: (bucket start s, ms).
fn buckets(timeline: &Timeline) -> [Vec<(f64, f64)>; 3] {
    let count = timeline
        .calls
        .iter()
        .map(|(start, _)| (start.as_nanos() / BUCKET.as_nanos()) as usize + 1)
        .max()
        .unwrap_or(0);
    let mut per_bucket = vec![Vec::new(); count];
    for &(start, took) in &timeline.calls {
        per_bucket[(start.as_nanos() / BUCKET.as_nanos()) as usize].push(took);
    }
    let mut lines: [Vec<(f64, f64)>; 3] = Default::default();
    for (index, calls) in per_bucket.into_iter().enumerate() {
        if calls.is_empty() {
            continue;
        }
        let at = (index as f64 + 0.5) * BUCKET.as_secs_f64();
        let sample = Sample::new(calls);
        lines[0].push((at, millis(sample.median())));
        lines[1].push((at, millis(sample.p99())));
        lines[2].push((at, millis(sample.max())));
    }
    lines
}

fn draw(timeline: &Timeline, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let [p50, p99, max] = buckets(timeline);
    let x_max = timeline
        .calls
        .iter()
        .map(|(start, took)| (*start + *took).as_secs_f64())
        .fold(1.0, f64::max);
    // The scale follows p99, so a rare outlier does not flatten the plot;
    // maxima above it are drawn at the top edge.
    let y_max = p99.iter().map(|&(_, ms)| ms).fold(1.0, f64::max) * 1.6;
    let root = SVGBackend::new(path, (960, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "m2m: call latency under steady load across token refreshes ({} s tokens)",
                timeline.lifetime.as_secs()
            ),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc("time since the load started (s)")
        .y_desc("call latency (ms)")
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    let shade = RGBColor(255, 170, 60).mix(0.35);
    chart
        .draw_series(timeline.refreshes.iter().map(|&(start, end)| {
            // Wide enough to see even when the fetch was quick.
            let end = end.max(start + Duration::from_millis(40));
            Rectangle::new(
                [(start.as_secs_f64(), 0.0), (end.as_secs_f64(), y_max)],
                shade.filled(),
            )
        }))?
        .label("token refresh in flight (background fetch)")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], shade.filled()));
    let series = [
        (max, RGBColor(180, 180, 180), "max per 100 ms"),
        (p99, RGBColor(200, 40, 40), "p99 per 100 ms"),
        (p50, RGBColor(30, 90, 200), "p50 per 100 ms"),
    ];
    for (points, color, label) in series {
        let clipped: Vec<(f64, f64)> = points.into_iter().map(|(x, y)| (x, y.min(y_max))).collect();
        chart
            .draw_series(LineSeries::new(clipped, color.stroke_width(1)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
