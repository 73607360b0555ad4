//! `rosa bench --plot`: time against density, log-log, one panel per (op, dtype, shape),
//! ours against every baseline of the report, as an SVG file.
//!
//! ```
//! use rosa::bench::{plot, run, Sweep};
//! let sweep = Sweep { m: 64, k: 64, n: 8, densities: vec![0.05, 0.2], ops: vec![rosa::Op::Spmm],
//!     target: std::time::Duration::ZERO, dense_baseline: false, ..Sweep::default() };
//! let report = run(&sweep, |_| {})?;
//! let path = std::env::temp_dir().join(format!("rosa-plot-doc-{}.svg", std::process::id()));
//! plot::svg(&report, &path)?;
//! let svg = std::fs::read_to_string(&path).unwrap();
//! assert!(svg.starts_with("<svg") && svg.contains("ours") && svg.contains("sprs"));
//! # std::fs::remove_file(&path).unwrap();
//! # Ok::<(), rosa::Error>(())
//! ```

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{Report, Row};
use crate::{Error, Result};

/// Pixel size of one panel.
const PANEL: (u32, u32) = (560, 400);
/// Panels per row of the figure.
const COLUMNS: usize = 3;
/// Series colors, ours first (black), then one per baseline in order of appearance.
const COLORS: [RGBColor; 8] = [
    RGBColor(0, 0, 0),
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
];

/// One line of a panel: a name and its (density, microseconds) points, sorted by density.
struct Series {
    name: String,
    points: Vec<(f64, f64)>,
}

/// The rows of one (op, dtype, M, K, N), as series.
struct Panel {
    title: String,
    series: Vec<Series>,
}

impl Panel {
    fn add(&mut self, name: &str, density: f64, us: f64) {
        if !(us.is_finite() && us > 0.0) {
            return;
        }
        let i = match self.series.iter().position(|s| s.name == name) {
            Some(i) => i,
            None => {
                self.series.push(Series {
                    name: name.to_string(),
                    points: Vec::new(),
                });
                self.series.len() - 1
            }
        };
        let points = &mut self.series[i].points;
        // Several CPU rows share one (density, ours) measurement: keep one point.
        if !points.iter().any(|p| p.0 == density) {
            points.push((density, us));
        }
    }
}

fn panels(report: &Report) -> Vec<Panel> {
    let key = |r: &Row| (r.op, r.dtype, r.m, r.k, r.n);
    let mut keys = Vec::new();
    let mut panels: Vec<Panel> = Vec::new();
    for r in &report.rows {
        let i = match keys.iter().position(|k| *k == key(r)) {
            Some(i) => i,
            None => {
                keys.push(key(r));
                panels.push(Panel {
                    title: format!("{} {} {}x{}x{}", r.op, r.dtype, r.m, r.k, r.n),
                    series: Vec::new(),
                });
                keys.len() - 1
            }
        };
        let p = &mut panels[i];
        p.add("ours", r.density, r.ours_us);
        if r.baselines.is_empty() {
            p.add(r.baseline, r.density, r.baseline_us);
        }
        for b in &r.baselines {
            if let Some(us) = b.us {
                p.add(b.name, r.density, us);
            }
        }
    }
    for p in &mut panels {
        for s in &mut p.series {
            s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
    }
    panels
}

/// A log axis over `values`, widened when they are all equal (a single density, or a
/// dense baseline's constant time) so that the range is never empty.
fn log_range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !(lo.is_finite() && lo > 0.0) {
        return 1e-3..1.0;
    }
    (lo / 1.5)..(hi * 1.5)
}

/// Writes `report` as an SVG chart to `path`: time (microseconds) against density, both
/// logarithmic, one panel per op, dtype and shape, a line per measured side.
///
/// An empty report is an [`Error::InvalidArgument`]; a path that cannot be written is an
/// [`Error::Io`].
pub fn svg(report: &Report, path: &Path) -> Result<()> {
    let panels = panels(report);
    if panels.is_empty() {
        return Err(Error::InvalidArgument(
            "the report has no rows to plot".into(),
        ));
    }
    let cols = panels.len().min(COLUMNS);
    let rows = panels.len().div_ceil(cols);
    let io = |e: &dyn std::fmt::Display| Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    };
    let size = (PANEL.0 * cols as u32, PANEL.1 * rows as u32);
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| io(&e))?;
    for (area, panel) in root.split_evenly((rows, cols)).iter().zip(&panels) {
        draw(area, panel).map_err(|e| io(&e))?;
    }
    root.present().map_err(|e| io(&e))
}

type DrawResult = std::result::Result<(), DrawingAreaErrorKind<std::io::Error>>;

fn draw(area: &DrawingArea<SVGBackend<'_>, Shift>, panel: &Panel) -> DrawResult {
    let all = || panel.series.iter().flat_map(|s| s.points.iter());
    let x = log_range(all().map(|p| p.0));
    let y = log_range(all().map(|p| p.1));
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x.log_scale(), y.log_scale())?;
    chart
        .configure_mesh()
        .x_desc("density")
        .y_desc("time (us)")
        .x_label_formatter(&|d| format!("{:.2}%", d * 100.0))
        .y_label_formatter(&|us| {
            if *us >= 10.0 {
                format!("{us:.0}")
            } else {
                format!("{us:.2}")
            }
        })
        .draw()?;
    for (i, s) in panel.series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(s.name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{run, Baseline, Sweep};
    use crate::Op;

    /// GPU-style rows: every baseline in `baselines`, one of them declined.
    #[test]
    fn gpu_rows_plot_every_baseline_that_ran() {
        let sweep = Sweep {
            m: 32,
            k: 32,
            n: 4,
            densities: vec![0.1, 0.3],
            ops: vec![Op::Spmm],
            target: std::time::Duration::ZERO,
            dense_baseline: false,
            ..Sweep::default()
        };
        let mut report = run(&sweep, |_| {}).unwrap();
        for r in &mut report.rows {
            r.baselines = vec![
                Baseline::timed("cuSPARSE CSR ALG2", 2.0 * r.ours_us, r.ours_us),
                Baseline::skipped("cuSPARSE CSR ALG3", "declined".into()),
                Baseline::timed("cuBLAS TF32", 50.0, r.ours_us),
            ];
        }
        let p = panels(&report);
        assert_eq!(p.len(), 1);
        let names: Vec<&str> = p[0].series.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["ours", "cuSPARSE CSR ALG2", "cuBLAS TF32"]);
        // Two densities each, in order, and the CPU rows' duplicates of ours counted once.
        assert!(p[0].series.iter().all(|s| s.points.len() == 2));
        assert!(p[0].series[0].points[0].0 < p[0].series[0].points[1].0);
    }

    #[test]
    fn an_empty_report_is_refused() {
        let empty = Report {
            version: "0",
            device: None,
            gpu: None,
            threads: 1,
            rows: vec![],
        };
        let err = svg(&empty, Path::new("unused.svg")).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    }

    #[test]
    fn log_ranges_are_never_empty() {
        let r = log_range([2.0, 2.0].into_iter());
        assert!(r.start < 2.0 && r.end > 2.0);
        assert_eq!(log_range(std::iter::empty()), 1e-3..1.0);
    }
}
