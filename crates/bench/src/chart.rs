//! Timeline charts (SVG or PNG by file extension): ops and errors per
//! time bucket on top, p50/p99 latency below (when there is any), outage
//! windows shaded, events marked. Bench runs draw per second; other callers
//! (the drill) build a [`Plot`] of their own buckets.

use crate::report::Report;
use anyhow::{bail, Context};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
];

/// Registers a system font for labels once (plotters draws text itself).
fn font() -> anyhow::Result<()> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        for p in FONT_PATHS {
            if let Ok(bytes) = std::fs::read(p) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return Ok(());
                }
            }
        }
        Err("no TrueType font found for chart labels: install one (Debian: `apt-get install -y fonts-dejavu-core`)".into())
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

/// One run to draw, with a name ("write", "read") for the legend.
pub struct Phase<'a> {
    pub name: &'a str,
    pub report: &'a Report,
}

/// One line on the time axis (a fault, an event), labelled.
pub struct Marker {
    pub at_s: f64,
    pub label: String,
}

/// Everything a chart shows; x in seconds.
pub struct Plot {
    pub title: String,
    /// The top panel's unit ("ops / second", "writes / 100 ms").
    pub y_desc: String,
    /// Width of one time bucket in seconds (error bars are that wide).
    pub bucket_s: f64,
    /// Legend suffixes after a series' name: ops, errors ("ops/s", "errors/s").
    pub legend: (String, String),
    pub x_max: f64,
    pub series: Vec<Series>,
    pub markers: Vec<Marker>,
}

/// Writes the chart of `phases` (drawn one after the other on a common
/// time axis) to `path`: `.svg` or `.png`.
pub fn write(path: &Path, title: &str, phases: &[Phase]) -> anyhow::Result<()> {
    let x_max = phases
        .iter()
        .map(|p| {
            p.report
                .timeline
                .len()
                .max(p.report.duration.as_secs() as usize)
        })
        .sum::<usize>()
        .max(1) as f64;
    let plot = Plot {
        title: title.to_string(),
        y_desc: "ops / second".into(),
        bucket_s: 1.0,
        legend: ("ops/s".into(), "errors/s".into()),
        x_max,
        series: series(phases),
        markers: Vec::new(),
    };
    write_plot(path, &plot)
}

/// Writes `plot` to `path`: `.svg` or `.png`.
pub fn write_plot(path: &Path, plot: &Plot) -> anyhow::Result<()> {
    font()?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let size = (1200, 700);
    match ext.as_str() {
        "svg" => {
            let root = SVGBackend::new(path, size).into_drawing_area();
            draw(&root, plot)?;
            root.present()
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        "png" => {
            let root = BitMapBackend::new(path, size).into_drawing_area();
            draw(&root, plot)?;
            root.present()
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        _ => bail!("--chart {}: use a .svg or .png file name", path.display()),
    }
    Ok(())
}

/// One run's points: (bucket centre in s, value); latency in ms, outages
/// as (start, end) in s. Empty latency leaves the latency panel out.
#[derive(Default)]
pub struct Series {
    pub name: String,
    pub ops: Vec<(f64, f64)>,
    pub errors: Vec<(f64, f64)>,
    pub p50: Vec<(f64, f64)>,
    pub p99: Vec<(f64, f64)>,
    pub outages: Vec<(f64, f64)>,
}

fn series(phases: &[Phase]) -> Vec<Series> {
    let mut offset = 0.0;
    let mut out = Vec::new();
    for p in phases {
        let r = p.report;
        let mut s = Series {
            name: p.name.to_string(),
            ops: Vec::new(),
            errors: Vec::new(),
            p50: Vec::new(),
            p99: Vec::new(),
            outages: Vec::new(),
        };
        let secs = r.duration.as_secs_f64();
        for (i, sec) in r.timeline.iter().enumerate() {
            let x = offset + i as f64 + 0.5;
            // The last second is usually partial (the run ends mid-second):
            // plot its rate, not its count.
            let covered = (secs - i as f64).clamp(0.05, 1.0);
            s.ops.push((x, sec.ops as f64 / covered));
            let e: u64 = sec.errors.iter().sum();
            if e > 0 {
                s.errors.push((x, e as f64));
            }
            if !sec.hist.is_empty() {
                s.p50
                    .push((x, sec.hist.value_at_quantile(0.5) as f64 / 1000.0));
                s.p99
                    .push((x, sec.hist.value_at_quantile(0.99) as f64 / 1000.0));
            }
        }
        for o in &r.outages {
            s.outages.push((
                offset + o.start_s,
                offset + o.start_s + o.length_ms / 1000.0,
            ));
        }
        offset += r.timeline.len().max(r.duration.as_secs() as usize) as f64;
        out.push(s);
    }
    out
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, plot: &Plot) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow::anyhow!("chart: {e:?}");
    root.fill(&WHITE).map_err(err)?;
    let root = root.titled(&plot.title, ("sans-serif", 22)).map_err(err)?;
    let all = &plot.series;
    let x_max = plot.x_max;
    let half = plot.bucket_s * 0.4;
    let with_latency = all.iter().any(|s| !s.p99.is_empty());
    let (top, bottom) = if with_latency {
        root.split_vertically(360)
    } else {
        let h = root.dim_in_pixel().1;
        root.split_vertically(h)
    };
    let y_ops = all
        .iter()
        .flat_map(|s| s.ops.iter().chain(&s.errors).map(|p| p.1))
        .fold(1.0, f64::max)
        * 1.1;
    let y_lat = all
        .iter()
        .flat_map(|s| s.p99.iter().map(|p| p.1))
        .fold(0.1, f64::max)
        * 1.1;
    let colors = [BLUE, GREEN, MAGENTA, CYAN];

    let mut c = ChartBuilder::on(&top)
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..x_max, 0.0..y_ops)
        .map_err(err)?;
    c.configure_mesh()
        .y_label_formatter(&|v| format!("{v:.0}"))
        .y_desc(plot.y_desc.as_str())
        .x_desc("seconds")
        .draw()
        .map_err(err)?;
    for s in all {
        for (a, b) in &s.outages {
            c.draw_series(std::iter::once(Rectangle::new(
                [(*a, 0.0), (b.max(a + 0.05), y_ops)],
                RGBColor(255, 200, 200).filled(),
            )))
            .map_err(err)?;
        }
    }
    for (i, s) in all.iter().enumerate() {
        let col = colors[i % colors.len()];
        c.draw_series(LineSeries::new(s.ops.iter().copied(), col.stroke_width(2)))
            .map_err(err)?
            .label(format!("{} {}", s.name, plot.legend.0))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], col));
        if !s.errors.is_empty() {
            c.draw_series(
                s.errors
                    .iter()
                    .map(|(x, y)| Rectangle::new([(x - half, 0.0), (x + half, *y)], RED.filled())),
            )
            .map_err(err)?
            .label(format!("{} {}", s.name, plot.legend.1))
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], RED.filled()));
        }
    }
    for (i, m) in plot.markers.iter().enumerate() {
        c.draw_series(std::iter::once(PathElement::new(
            vec![(m.at_s, 0.0), (m.at_s, y_ops)],
            BLACK.stroke_width(1),
        )))
        .map_err(err)?;
        // Labels step down so markers close together stay readable.
        let y = y_ops * (0.97 - 0.06 * (i % 4) as f64);
        c.draw_series(std::iter::once(Text::new(
            m.label.clone(),
            (m.at_s, y),
            ("sans-serif", 14),
        )))
        .map_err(err)?;
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(err)?;
    if !with_latency {
        return Ok(());
    }

    let mut c = ChartBuilder::on(&bottom)
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..x_max, 0.0..y_lat)
        .map_err(err)?;
    c.configure_mesh()
        .y_desc("latency (ms)")
        .x_desc("seconds")
        .draw()
        .map_err(err)?;
    for (i, s) in all.iter().enumerate() {
        let col = colors[i % colors.len()];
        c.draw_series(LineSeries::new(s.p50.iter().copied(), col.stroke_width(1)))
            .map_err(err)?
            .label(format!("{} p50", s.name))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], col));
        c.draw_series(LineSeries::new(
            s.p99.iter().copied(),
            col.mix(0.5).stroke_width(2),
        ))
        .map_err(err)?
        .label(format!("{} p99", s.name))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], col.mix(0.5)));
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(err)?;
    Ok(())
}
