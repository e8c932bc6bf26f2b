//! PNG charts: line charts (function curves with iterates, averages, training curves) and
//! contour maps with optimizer trajectories. Drawn with `plotters` into a bitmap.
//!
//! Text needs a TrueType font: the first of `$DESCENT_FONT` and a few usual system paths
//! (Debian's `fonts-dejavu-core` provides one) is loaded once.

use anyhow::{anyhow, bail, Context, Result};
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::path::Path;
use std::sync::OnceLock;

const SIZE: (u32, u32) = (900, 640);
const FONT: &str = "sans-serif";

/// How a series is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A thin grey line without a legend entry (a function's curve).
    Curve,
    Line,
    Dashed,
    /// Points joined by a line (iterates).
    Path,
    Points,
}

#[derive(Clone, Debug)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub kind: Kind,
    /// Index into the palette; series with one index share a colour.
    pub color: usize,
}

impl Series {
    pub fn new(label: impl Into<String>, points: Vec<(f64, f64)>, kind: Kind, color: usize) -> Series {
        Series { label: label.into(), points, kind, color }
    }
}

/// Values of a function of two variables on a grid: `z[j * xs.len() + i]` is at `(xs[i], ys[j])`.
#[derive(Clone, Debug)]
pub struct Grid {
    pub xs: Vec<f64>,
    pub ys: Vec<f64>,
    pub z: Vec<f64>,
}

/// Distinct colours (Tableau 10).
pub fn color(i: usize) -> RGBColor {
    const P: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ];
    let (r, g, b) = P[i % P.len()];
    RGBColor(r, g, b)
}

/// Up to 6 significant digits without trailing zeros; scientific outside [1e-4, 1e7).
pub fn num(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{}", if v == 0.0 { 0.0 } else { v });
    }
    let a = v.abs();
    if !(1e-4..1e7).contains(&a) {
        return format!("{v:.4e}");
    }
    let decimals = (5 - a.log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Points far outside any sensible picture (a diverging run) are left out of ranges and plots.
pub const FAR: f64 = 1e6;

fn plottable(p: &(f64, f64)) -> bool {
    p.0.is_finite() && p.1.is_finite() && p.0.abs() < FAR && p.1.abs() < FAR
}

fn load_font() -> Result<()> {
    static LOADED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let mut candidates: Vec<String> = std::env::var("DESCENT_FONT").into_iter().collect();
            candidates.extend(
                [
                    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                    "/usr/share/fonts/TTF/DejaVuSans.ttf",
                    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
                    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
                    "/System/Library/Fonts/Supplemental/Arial.ttf",
                    "C:\\Windows\\Fonts\\arial.ttf",
                ]
                .map(String::from),
            );
            for path in &candidates {
                if let Ok(bytes) = std::fs::read(path) {
                    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                    return plotters::style::register_font(FONT, FontStyle::Normal, bytes)
                        .map_err(|_| format!("{path} is not a TrueType font"));
                }
            }
            Err(format!(
                "no font found for the plot's text (tried {}): install one (Debian: apt-get install \
                 fonts-dejavu-core) or set DESCENT_FONT to a .ttf file",
                candidates.join(", ")
            ))
        })
        .clone()
        .map_err(|e| anyhow!(e))
}

/// [min, max] of the values padded by 5% (or ±1 around a single value).
fn padded(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() || !hi.is_finite() {
        return None;
    }
    let pad = if hi > lo { 0.05 * (hi - lo) } else { 1.0f64.max(lo.abs() * 0.05) };
    Some((lo - pad, hi + pad))
}

fn draw_err<E: std::fmt::Debug>(path: &Path) -> impl Fn(E) -> anyhow::Error + '_ {
    move |e| anyhow!("drawing {}: {e:?}", path.display())
}

/// Plots are PNG files: check the name before any work is done.
pub fn check_png_path(path: &Path) -> Result<()> {
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("png") => Ok(()),
        _ => bail!("{}: plots are PNG files; name it something.png", path.display()),
    }
}

fn check_target(path: &Path) -> Result<()> {
    check_png_path(path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        ensure_dir(dir)?;
    }
    Ok(())
}

fn ensure_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create the folder {}", dir.display()))
}

/// One chart of a figure: title, axis labels and its series.
pub struct Panel<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: &'a [Series],
    /// Put the legend in the lower right corner (for curves that rise, like accuracy).
    pub legend_low: bool,
}

/// A line chart of several series with a legend. Ranges cover every plottable point.
pub fn line_chart(path: &Path, title: &str, x_label: &str, y_label: &str, series: &[Series]) -> Result<()> {
    line_charts(path, &[Panel { title, x_label, y_label, series, legend_low: false }])
}

/// Several line charts side by side in one PNG.
pub fn line_charts(path: &Path, panels: &[Panel]) -> Result<()> {
    check_target(path)?;
    load_font()?;
    let err = draw_err(path);
    let size = (SIZE.0 * panels.len().max(1) as u32, SIZE.1);
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (panel, area) in panels.iter().zip(&areas) {
        draw_panel(area, panel).map_err(|e| anyhow!("drawing {}: {e:#}", path.display()))?;
    }
    root.present().map_err(&err)?;
    Ok(())
}

fn draw_panel<DB: DrawingBackend>(area: &DrawingArea<DB, plotters::coord::Shift>, p: &Panel) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("{e:?}");
    let series = p.series;
    let all = || series.iter().flat_map(|s| s.points.iter()).filter(|p| plottable(p));
    let (x0, x1) = padded(all().map(|p| p.0)).context("nothing finite to plot")?;
    let (y0, y1) = padded(all().map(|p| p.1)).context("nothing finite to plot")?;
    let mut chart = ChartBuilder::on(area)
        .caption(p.title, (FONT, 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(p.x_label)
        .y_desc(p.y_label)
        .x_label_formatter(&|v| num(*v))
        .y_label_formatter(&|v| num(*v))
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 18))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(err)?;
    let mut legend = false;
    for s in series {
        let c = color(s.color);
        let pts: Vec<(f64, f64)> = s.points.iter().copied().filter(plottable).collect();
        let style = c.stroke_width(2);
        let drawn = match s.kind {
            Kind::Curve => {
                chart.draw_series(LineSeries::new(pts, RGBColor(90, 90, 90).stroke_width(2))).map_err(err)?;
                continue;
            }
            Kind::Line => chart.draw_series(LineSeries::new(pts, style)).map_err(err)?,
            Kind::Dashed => chart.draw_series(DashedLineSeries::new(pts, 8, 5, style)).map_err(err)?,
            Kind::Points => chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled()))).map_err(err)?,
            Kind::Path => {
                chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled()))).map_err(err)?;
                chart.draw_series(LineSeries::new(pts, c.stroke_width(1))).map_err(err)?
            }
        };
        if s.label.is_empty() {
            continue;
        }
        legend = true;
        let drawn = drawn.label(&s.label);
        match s.kind {
            Kind::Dashed => drawn.legend(move |(x, y)| {
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (7, 0)], c.stroke_width(2))
                    + PathElement::new(vec![(12, 0), (19, 0)], c.stroke_width(2))
            }),
            Kind::Points => drawn.legend(move |(x, y)| Circle::new((x + 10, y), 4, c.filled())),
            _ => drawn.legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))),
        };
    }
    if legend {
        chart
            .configure_series_labels()
            .label_font((FONT, 15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(if p.legend_low { SeriesLabelPosition::LowerRight } else { SeriesLabelPosition::UpperRight })
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

/// A filled contour map of `grid` (colour and iso-lines on a log scale above the minimum) with
/// trajectories drawn on top.
/// Known minima are marked with white crosses.
pub fn contour(path: &Path, title: &str, grid: &Grid, minima: &[(f64, f64)], trajectories: &[Series]) -> Result<()> {
    check_target(path)?;
    load_font()?;
    let (nx, ny) = (grid.xs.len(), grid.ys.len());
    if nx < 2 || ny < 2 || grid.z.len() != nx * ny {
        bail!("a contour needs at least a 2×2 grid with one value per point");
    }
    let zmin = grid.z.iter().copied().filter(|z| z.is_finite()).fold(f64::INFINITY, f64::min);
    let u: Vec<f64> = grid.z.iter().map(|z| (1.0 + (z - zmin).max(0.0)).ln()).collect();
    let umax = u.iter().copied().filter(|v| v.is_finite()).fold(0.0, f64::max).max(1e-12);
    let err = draw_err(path);
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let (x0, x1) = (grid.xs[0], grid.xs[nx - 1]);
    let (y0, y1) = (grid.ys[0], grid.ys[ny - 1]);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(&err)?;
    let (dx, dy) = ((x1 - x0) / (nx - 1) as f64, (y1 - y0) / (ny - 1) as f64);
    chart
        .draw_series((0..ny).flat_map(|j| {
            let u = &u;
            (0..nx).map(move |i| {
                let (x, y) = (grid.xs[i], grid.ys[j]);
                let t = u[j * nx + i] / umax;
                Rectangle::new([(x - dx / 2.0, y - dy / 2.0), (x + dx / 2.0, y + dy / 2.0)], heat(t).filled())
            })
        }))
        .map_err(&err)?;
    let levels = 14;
    for l in 1..levels {
        let level = umax * l as f64 / levels as f64;
        let segs = iso_segments(grid, &u, level);
        chart
            .draw_series(segs.into_iter().map(|(a, b)| PathElement::new(vec![a, b], BLACK.mix(0.35).stroke_width(1))))
            .map_err(&err)?;
    }
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("x")
        .y_desc("y")
        .x_label_formatter(&|v| num(*v))
        .y_label_formatter(&|v| num(*v))
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 18))
        .draw()
        .map_err(&err)?;
    for s in trajectories {
        let c = color(s.color);
        let pts: Vec<(f64, f64)> = s.points.iter().copied().filter(plottable).collect();
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled()))).map_err(&err)?;
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)))
            .map_err(&err)?
            .label(&s.label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    let inside = |p: &&(f64, f64)| (x0..=x1).contains(&p.0) && (y0..=y1).contains(&p.1);
    chart.draw_series(minima.iter().filter(inside).map(|&p| Cross::new(p, 7, WHITE.stroke_width(2)))).map_err(&err)?;
    chart
        .configure_series_labels()
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(&err)?;
    root.present().map_err(&err)?;
    Ok(())
}

/// Colour for t in [0, 1]: dark blue (low) through teal and green to yellow (high).
fn heat(t: f64) -> RGBColor {
    const STOPS: [(f64, (f64, f64, f64)); 5] = [
        (0.0, (48.0, 18.0, 89.0)),
        (0.25, (49.0, 104.0, 142.0)),
        (0.5, (33.0, 145.0, 140.0)),
        (0.75, (94.0, 201.0, 98.0)),
        (1.0, (253.0, 231.0, 37.0)),
    ];
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 1.0 };
    let k = STOPS.iter().position(|s| s.0 >= t).unwrap_or(STOPS.len() - 1).max(1);
    let (t0, c0) = STOPS[k - 1];
    let (t1, c1) = STOPS[k];
    let w = (t - t0) / (t1 - t0);
    let mix = |a: f64, b: f64| (a + (b - a) * w).round() as u8;
    RGBColor(mix(c0.0, c1.0), mix(c0.1, c1.1), mix(c0.2, c1.2))
}

/// Marching squares: the segments where the values `u` on `grid` cross `level`.
fn iso_segments(grid: &Grid, u: &[f64], level: f64) -> Vec<((f64, f64), (f64, f64))> {
    let nx = grid.xs.len();
    let mut segs = Vec::new();
    for j in 0..grid.ys.len() - 1 {
        for i in 0..nx - 1 {
            // Corners counter-clockwise from (i, j).
            let c = [(i, j), (i + 1, j), (i + 1, j + 1), (i, j + 1)];
            let v = c.map(|(a, b)| u[b * nx + a]);
            if v.iter().any(|x| !x.is_finite()) {
                continue;
            }
            let mut cross = Vec::with_capacity(4);
            for e in 0..4 {
                let (p, q) = (e, (e + 1) % 4);
                if (v[p] < level) != (v[q] < level) {
                    let w = (level - v[p]) / (v[q] - v[p]);
                    let (xp, yp) = (grid.xs[c[p].0], grid.ys[c[p].1]);
                    let (xq, yq) = (grid.xs[c[q].0], grid.ys[c[q].1]);
                    cross.push((xp + (xq - xp) * w, yp + (yq - yp) * w));
                }
            }
            for pair in cross.chunks_exact(2) {
                segs.push((pair[0], pair[1]));
            }
        }
    }
    segs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_lines_of_a_plane_are_straight() {
        let xs: Vec<f64> = (0..5).map(|i| i as f64).collect();
        let grid = Grid { xs: xs.clone(), ys: xs.clone(), z: vec![0.0; 25] };
        let u: Vec<f64> = (0..25).map(|k| (k % 5) as f64).collect(); // u = x
        let segs = iso_segments(&grid, &u, 1.5);
        assert_eq!(segs.len(), 4);
        for (a, b) in segs {
            assert!((a.0 - 1.5).abs() < 1e-12 && (b.0 - 1.5).abs() < 1e-12);
        }
    }

    #[test]
    fn numbers_read_like_the_slides() {
        assert_eq!(num(56.0), "56");
        assert_eq!(num(-84.57000732421875), "-84.57");
        assert_eq!(num(8.683749), "8.68375");
        assert_eq!(num(1e-9), "1.0000e-9");
        assert_eq!(num(-0.0), "0");
        assert_eq!(num(450000.0), "450000");
    }

    #[test]
    fn heat_runs_from_dark_to_bright() {
        let lum = |c: RGBColor| c.0 as u32 + c.1 as u32 + c.2 as u32;
        assert!(lum(heat(0.0)) < lum(heat(0.5)) && lum(heat(0.5)) < lum(heat(1.0)));
        assert_eq!(heat(f64::NAN), heat(1.0));
    }
}
