//! One PNG per scenario: on top, small multiples (one panel per contender)
//! of each backend's traffic share per second, with the share Ballast
//! published dashed; below, every contender's client p99 per second.
//! Dotted vertical lines mark the moments whose aftermath is measured.
//!
//! Text needs a TrueType font, loaded once at runtime ([`load_font`]) from
//! `$BALLAST_FONT` or common system paths (Debian: `fonts-dejavu-core`).

use super::analysis::Analysis;
use super::report::ScenarioResults;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::path::{Path, PathBuf};

const FONT: &str = "sans-serif";
/// Where a sans-serif TrueType font usually is.
const FONT_PATHS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];
const SIZE: (u32, u32) = (1600, 1000);
const BACKEND_COLOURS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];
const CONTENDER_COLOURS: [RGBColor; 6] = [
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(110, 110, 110),
    RGBColor(44, 160, 44),
    RGBColor(140, 86, 75),
    RGBColor(255, 127, 14),
];

/// Loads the font for chart text: `$BALLAST_FONT` if set, else the first
/// of [`FONT_PATHS`] that exists.
pub fn load_font() -> Result<PathBuf, String> {
    let candidates: Vec<PathBuf> = match std::env::var_os("BALLAST_FONT") {
        Some(path) => vec![PathBuf::from(path)],
        None => FONT_PATHS.iter().map(PathBuf::from).collect(),
    };
    let path = candidates.iter().find(|p| p.is_file()).ok_or_else(|| {
        format!(
            "no TrueType font for the charts (looked for {}); install one \
             (Debian/Ubuntu: apt-get install fonts-dejavu-core) or set BALLAST_FONT=/path/to/font.ttf",
            candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        )
    })?;
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    // Plotters keeps fonts for the life of the process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font(FONT, FontStyle::Normal, bytes)
        .map_err(|_| format!("{} is not a usable TrueType font", path.display()))?;
    Ok(path.clone())
}

/// Draws the chart of `result` into `path` (PNG).
pub fn draw(result: &ScenarioResults, path: &Path) -> Result<(), String> {
    draw_chart(result, path).map_err(|e| format!("cannot draw {}: {e}", path.display()))
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn draw_chart(result: &ScenarioResults, path: &Path) -> DrawResult {
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let scenario = &result.scenario;
    let root = root.titled(scenario.title, (FONT, 26))?;
    let (legend, rest) = root.split_vertically(36);
    backend_legend(&legend, result)?;
    let (top, bottom) = rest.split_vertically(530);
    let panels = top.split_evenly((1, result.analyses.len().max(1)));
    for (panel, analysis) in panels.iter().zip(&result.analyses) {
        share_panel(panel, result, analysis)?;
    }
    latency_panel(&bottom, result)?;
    root.present()?;
    Ok(())
}

/// One line per backend colour, and how to read the lines.
fn backend_legend(
    area: &DrawingArea<BitMapBackend, Shift>,
    result: &ScenarioResults,
) -> DrawResult {
    let style: TextStyle = (FONT, 17).into();
    let mut x = 60;
    for (backend, spec) in result.scenario.backends.iter().enumerate() {
        let colour = BACKEND_COLOURS[backend % BACKEND_COLOURS.len()];
        area.draw(&PathElement::new(
            vec![(x, 18), (x + 30, 18)],
            colour.stroke_width(3),
        ))?;
        area.draw(&Text::new(spec.name, (x + 38, 9), style.clone()))?;
        let (width, _) = area.estimate_text_size(spec.name, &style)?;
        x += 38 + i32::try_from(width).unwrap_or(0) + 30;
    }
    let note = "share of requests per second: solid as observed by the client (x-origin), \
                dashed as published by Ballast";
    area.draw(&Text::new(note, (x + 20, 9), style.color(&BLACK.mix(0.7))))?;
    Ok(())
}

fn share_panel(
    area: &DrawingArea<BitMapBackend, Shift>,
    result: &ScenarioResults,
    analysis: &Analysis,
) -> DrawResult {
    let scenario = &result.scenario;
    let duration = scenario.duration.as_secs_f64();
    let mut chart = ChartBuilder::on(area)
        .caption(analysis.contender.label(), (FONT, 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..duration, 0.0..100.0)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("share (%)")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .x_label_formatter(&|s| format!("{s:.0}"))
        .y_label_formatter(&|share| format!("{share:.0}"))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    draw_marks(&mut chart, result, 100.0)?;
    for backend in 0..scenario.backends.len() {
        let colour = BACKEND_COLOURS[backend % BACKEND_COLOURS.len()];
        let observed = analysis
            .seconds
            .iter()
            .enumerate()
            .filter_map(|(second, bucket)| {
                bucket
                    .share(backend)
                    .map(|share| (second as f64 + 0.5, share * 100.0))
            });
        chart.draw_series(LineSeries::new(observed, colour.stroke_width(2)))?;
        let published: Vec<(f64, f64)> = analysis
            .published
            .iter()
            .enumerate()
            .filter_map(|(second, shares)| {
                shares[backend].map(|s| (second as f64 + 0.5, s * 100.0))
            })
            .collect();
        if !published.is_empty() {
            chart.draw_series(DashedLineSeries::new(
                published,
                6,
                4,
                colour.stroke_width(1),
            ))?;
        }
    }
    Ok(())
}

fn latency_panel(area: &DrawingArea<BitMapBackend, Shift>, result: &ScenarioResults) -> DrawResult {
    let duration = result.scenario.duration.as_secs_f64();
    let highest = result
        .analyses
        .iter()
        .flat_map(|a| a.seconds.iter().filter_map(|s| s.p99))
        .fold(10.0_f64, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption("client p99 latency per second", (FONT, 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..duration, 0.0..highest)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("p99 (ms)")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .x_label_formatter(&|s| format!("{s:.0}"))
        .y_label_formatter(&|ms| format!("{ms:.0}"))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    draw_marks(&mut chart, result, highest)?;
    for (index, analysis) in result.analyses.iter().enumerate() {
        let colour = CONTENDER_COLOURS[index % CONTENDER_COLOURS.len()];
        let points = analysis
            .seconds
            .iter()
            .enumerate()
            .filter_map(|(second, bucket)| bucket.p99.map(|p99| (second as f64 + 0.5, p99)));
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
            .label(analysis.contender.label())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()?;
    Ok(())
}

type Chart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A dotted vertical line, labelled, at each mark after the start.
fn draw_marks(chart: &mut Chart, result: &ScenarioResults, top: f64) -> DrawResult {
    for mark in result.scenario.marks.iter().filter(|m| !m.at.is_zero()) {
        let at = mark.at.as_secs_f64();
        chart.draw_series(DashedLineSeries::new(
            [(at, 0.0), (at, top)],
            3,
            5,
            BLACK.mix(0.5).stroke_width(1),
        ))?;
        chart.draw_series(std::iter::once(Text::new(
            format!(" {}", mark.label),
            (at, top),
            (FONT, 14).into_font().color(&BLACK.mix(0.7)),
        )))?;
    }
    Ok(())
}
