//! The latency histogram as an SVG picture (plotters' SVG backend, which
//! writes text as `<text>` elements and so needs no system fonts).

use std::path::Path;

use hdrhistogram::Histogram;
use plotters::prelude::*;

/// Buckets of equal width (ms) from 0 to about the p99.9, the rest in the last one.
pub fn buckets(h: &Histogram<u64>, count: usize) -> (f64, Vec<u64>) {
    let count = count.max(1);
    let top_micros = h.value_at_quantile(0.999).max(1000);
    let width_ms = top_micros as f64 / 1000.0 / count as f64;
    let mut bars = vec![0u64; count];
    for v in h.iter_recorded() {
        let ms = v.value_iterated_to() as f64 / 1000.0;
        let index = ((ms / width_ms) as usize).min(count - 1);
        bars[index] += v.count_at_value();
    }
    (width_ms, bars)
}

/// Draws `h` as bars of its values in ms, `x_desc` saying what they measure.
pub fn write_svg(path: &Path, title: &str, x_desc: &str, h: &Histogram<u64>) -> Result<(), String> {
    if h.is_empty() {
        return Err("no latency was recorded".into());
    }
    let (width_ms, bars) = buckets(h, 60);
    let max_count = bars.iter().copied().max().unwrap_or(1).max(1);
    let x_max = width_ms * bars.len() as f64;
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    let fail = |e: &dyn std::fmt::Display| format!("cannot draw {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_max, 0u64..(max_count + max_count / 10 + 1))
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc("webhooks")
        .draw()
        .map_err(|e| fail(&e))?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, &n)| {
            let x0 = i as f64 * width_ms;
            Rectangle::new([(x0, 0), (x0 + width_ms * 0.9, n)], BLUE.mix(0.6).filled())
        }))
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::new_histogram;

    #[test]
    fn buckets_hold_every_value() {
        let mut h = new_histogram();
        for ms in 1..=10u64 {
            h.record(ms * 1000).unwrap();
        }
        let (width, bars) = buckets(&h, 10);
        assert!(width > 0.9 && width < 1.1, "{width}");
        assert_eq!(bars.iter().sum::<u64>(), 10);
    }

    #[test]
    fn draws_an_svg() {
        let mut h = new_histogram();
        for ms in 1..=50u64 {
            h.record(ms * 100).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latency.svg");
        write_svg(&path, "a title", "ms of something", &h).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("<rect"), "{svg}");
        assert!(svg.contains("a title") && svg.contains("ms of something"), "{svg}");
    }
}
