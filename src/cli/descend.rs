//! `descent descend`: optimizers walking down the lecture's functions, as step tables and plots.

use super::{parse_list, usage, HyperArgs};
use anyhow::{bail, Result};
use clap::Args;
use descent::app::descend::{descend, Iterate};
use descent::app::functions::{Function, FUNCTIONS};
use descent::app::plot::{self, num, Grid, Kind, Series, FAR};
use descent::backend::{Device, DeviceChoice};
use serde_json::json;
use std::path::PathBuf;

#[derive(Args)]
pub struct DescendArgs {
    /// The function (see --list).
    #[arg(long)]
    pub function: Option<String>,
    /// List the functions with their formulas, default starts and learning rates.
    #[arg(long)]
    pub list: bool,
    /// Start x (default: the function's).
    #[arg(long, allow_hyphen_values = true)]
    pub x0: Option<f64>,
    /// Start y for functions of two variables (default: the function's).
    #[arg(long, allow_hyphen_values = true)]
    pub y0: Option<f64>,
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// One or more optimizers, comma-separated: sgd,lecture_momentum,rmsprop,adam.
    #[arg(long, default_value = "sgd")]
    pub optimizer: String,
    /// One or more learning rates, comma-separated (default: the function's lecture value).
    #[arg(long)]
    pub lr: Option<String>,
    #[command(flatten)]
    pub hyper: HyperArgs,
    /// cpu, gpu (any adapter) or auto (a hardware GPU, else the CPU backend).
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    pub device: DeviceChoice,
    /// Draw the iterates on the curve (1-D) or a contour map (2-D) into this PNG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Print every run's iterates as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// One optimizer at one learning rate.
struct Run {
    label: String,
    iterates: Vec<Iterate>,
}

pub fn run(a: DescendArgs) -> Result<()> {
    if a.list {
        println!("{:<12} {:>4} {:>16} {:>8}  formula", "function", "dims", "default start", "lr");
        for f in FUNCTIONS {
            let start =
                if f.dims == 1 { format!("{}", f.start[0]) } else { format!("({}, {})", f.start[0], f.start[1]) };
            println!("{:<12} {:>4} {:>16} {:>8}  {}", f.name, f.dims, start, f.lr, f.formula);
        }
        return Ok(());
    }
    let (function, start, runs_spec) = usage(parse(&a))?;
    let mut dev = Device::select(a.device)?;
    if let Some(n) = &dev.notice {
        eprintln!("--device auto: {}", super::flags(n));
    }
    let mut runs = Vec::new();
    for (name, lr) in runs_spec {
        let config = usage(a.hyper.config_for(&name, Some(lr)))?;
        let schedule = usage(a.hyper.schedule())?;
        let iterates = descend(&mut dev, &function, &start, &config, &schedule, a.steps)?;
        runs.push(Run { label: format!("{name} lr={lr}"), iterates });
    }
    if a.json {
        let out: Vec<_> = runs
            .iter()
            .map(|r| {
                json!({
                    "label": r.label,
                    "t": r.iterates.iter().map(|i| i.t).collect::<Vec<_>>(),
                    "x": r.iterates.iter().map(|i| i.x.clone()).collect::<Vec<_>>(),
                    "f": r.iterates.iter().map(|i| i.f).collect::<Vec<_>>(),
                    "grad": r.iterates.iter().map(|i| i.grad.clone()).collect::<Vec<_>>(),
                    "lr": r.iterates.iter().map(|i| i.lr).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", json!({"function": function.name, "formula": function.formula, "runs": out}));
    } else {
        for (k, r) in runs.iter().enumerate() {
            if k > 0 {
                println!();
            }
            print_table(&function, r);
        }
    }
    if let Some(path) = &a.plot {
        let from =
            if function.dims == 1 { format!("x0 = {}", start[0]) } else { format!("({}, {})", start[0], start[1]) };
        let title = format!("{}: {}, from {from}", function.name, function.formula);
        if function.dims == 1 {
            plot_curve(&mut dev, &function, &runs, path, &title)?;
        } else {
            plot_contour(&mut dev, &function, &runs, path, &title)?;
        }
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

type RunSpec = Vec<(String, f64)>;

fn parse(a: &DescendArgs) -> Result<(Function, Vec<f32>, RunSpec)> {
    let Some(name) = &a.function else { bail!("name a function with --function (descent descend --list shows them)") };
    let function = Function::find(name)?;
    if let Some(p) = &a.plot {
        plot::check_png_path(p)?;
    }
    if function.dims == 1 && a.y0.is_some() {
        bail!("{} is a function of x alone; drop --y0", function.name);
    }
    let mut start = vec![a.x0.unwrap_or(function.start[0]) as f32];
    if function.dims == 2 {
        start.push(a.y0.unwrap_or(function.start[1]) as f32);
    }
    if start.iter().any(|v| !v.is_finite()) {
        bail!("the start must be finite, got {start:?}");
    }
    let optimizers: Vec<String> = parse_list(&a.optimizer, "--optimizer")?;
    let lrs: Vec<f64> = match &a.lr {
        Some(s) => parse_list(s, "--lr")?,
        None => vec![function.lr],
    };
    if optimizers.is_empty() || lrs.is_empty() {
        bail!("--optimizer and --lr need at least one value each");
    }
    let mut runs = Vec::new();
    for o in &optimizers {
        for &lr in &lrs {
            runs.push((o.clone(), lr));
        }
    }
    if runs.len() > 10 {
        bail!(
            "{} runs (optimizers × learning rates) is more than a picture can tell apart; use at most 10",
            runs.len()
        );
    }
    Ok((function, start, runs))
}

fn print_table(function: &Function, r: &Run) {
    println!("{}: {}, {}", function.name, function.formula, r.label);
    if function.dims == 1 {
        println!("{:>4} {:>14} {:>14} {:>14} {:>10}", "t", "x_t", "f(x_t)", "f'(x_t)", "lr");
    } else {
        println!("{:>4} {:>12} {:>12} {:>14} {:>12} {:>12} {:>10}", "t", "x_t", "y_t", "f", "df/dx", "df/dy", "lr");
    }
    for it in &r.iterates {
        let lr = it.lr.map(num).unwrap_or_else(|| "-".into());
        let (x, g, f) = (&it.x, &it.grad, it.f as f64);
        if function.dims == 1 {
            println!("{:>4} {:>14} {:>14} {:>14} {:>10}", it.t, num(x[0] as f64), num(f), num(g[0] as f64), lr);
        } else {
            let c = |v: f32| num(v as f64);
            println!(
                "{:>4} {:>12} {:>12} {:>14} {:>12} {:>12} {:>10}",
                it.t,
                c(x[0]),
                c(x[1]),
                num(f),
                c(g[0]),
                c(g[1]),
                lr
            );
        }
    }
    if let Some(last) = r.iterates.last() {
        if !last.x.iter().all(|v| v.is_finite()) || !last.f.is_finite() {
            println!("stopped at t = {}: the iterate is no longer finite (the run diverged)", last.t);
        }
    }
}

/// [lo, hi] covering the function's window, the start and the iterates, but not more than twice
/// that first span beyond either side, so a diverging run does not flatten the picture.
fn span(window: (f64, f64), start: f64, values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo0, hi0) = (window.0.min(start), window.1.max(start));
    let (mut lo, mut hi) = (lo0, hi0);
    for v in values.filter(|v| v.is_finite() && v.abs() < FAR) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    let w = hi0 - lo0;
    let (lo, hi) = (lo.max(lo0 - 2.0 * w), hi.min(hi0 + 2.0 * w));
    let pad = 0.04 * (hi - lo);
    (lo - pad, hi + pad)
}

/// A run's points up to the first that leaves the picture, and its label (marked if cut).
fn within(r: &Run, pts: Vec<(f64, f64)>, inside: impl Fn(&(f64, f64)) -> bool) -> (String, Vec<(f64, f64)>) {
    let n = pts.iter().take_while(|p| inside(p)).count();
    let label = if n < pts.len() { format!("{} (leaves the picture at t = {n})", r.label) } else { r.label.clone() };
    (label, pts.into_iter().take(n).collect())
}

fn plot_curve(dev: &mut Device, f: &Function, runs: &[Run], path: &std::path::Path, title: &str) -> Result<()> {
    let x0 = runs[0].iterates[0].x[0] as f64;
    let (lo, hi) =
        span((f.window[0], f.window[1]), x0, runs.iter().flat_map(|r| r.iterates.iter().map(|i| i.x[0] as f64)));
    let n = 600;
    let xs: Vec<f32> = (0..n).map(|i| (lo + (hi - lo) * i as f64 / (n - 1) as f64) as f32).collect();
    let ys = f.eval_many(dev, std::slice::from_ref(&xs))?;
    let mut series =
        vec![Series::new("", xs.iter().zip(&ys).map(|(&x, &y)| (x as f64, y as f64)).collect(), Kind::Curve, 0)];
    for (k, r) in runs.iter().enumerate() {
        let pts = r.iterates.iter().map(|i| (i.x[0] as f64, i.f as f64)).collect();
        let (label, pts) = within(r, pts, |p| (lo..=hi).contains(&p.0));
        series.push(Series::new(label, pts, Kind::Path, k));
    }
    plot::line_chart(path, title, "x", "f(x)", &series)
}

fn plot_contour(dev: &mut Device, f: &Function, runs: &[Run], path: &std::path::Path, title: &str) -> Result<()> {
    let s = &runs[0].iterates[0].x;
    let xr = span(
        (f.window[0], f.window[1]),
        s[0] as f64,
        runs.iter().flat_map(|r| r.iterates.iter().map(|i| i.x[0] as f64)),
    );
    let yr = span(
        (f.window[2], f.window[3]),
        s[1] as f64,
        runs.iter().flat_map(|r| r.iterates.iter().map(|i| i.x[1] as f64)),
    );
    let n = 180;
    let axis =
        |(lo, hi): (f64, f64)| -> Vec<f64> { (0..n).map(|i| lo + (hi - lo) * i as f64 / (n - 1) as f64).collect() };
    let (xs, ys) = (axis(xr), axis(yr));
    let px: Vec<f32> = (0..n * n).map(|k| xs[k % n] as f32).collect();
    let py: Vec<f32> = (0..n * n).map(|k| ys[k / n] as f32).collect();
    let z = f.eval_many(dev, &[px, py])?.into_iter().map(f64::from).collect();
    let trajectories: Vec<Series> = runs
        .iter()
        .enumerate()
        .map(|(k, r)| {
            let pts = r.iterates.iter().map(|i| (i.x[0] as f64, i.x[1] as f64)).collect();
            let (label, pts) = within(r, pts, |p| (xr.0..=xr.1).contains(&p.0) && (yr.0..=yr.1).contains(&p.1));
            Series::new(label, pts, Kind::Path, k)
        })
        .collect();
    plot::contour(path, title, &Grid { xs, ys, z }, f.minima, &trajectories)
}
