//! `descent ewa`: the lecture's exponentially weighted averages, raw and bias-corrected.

use super::{parse_list, usage};
use anyhow::{bail, Context, Result};
use clap::Args;
use descent::app::descend::{ewa, ewa_weights};
use descent::app::plot::{self, num, Kind, Series};
use std::path::PathBuf;

/// The series the lecture's slides start with.
pub use descent::app::descend::LECTURE_SERIES;

#[derive(Args)]
pub struct EwaArgs {
    /// Smoothing factors ρ, comma-separated.
    #[arg(long, default_value = "0.5,0.9,0.98")]
    pub rho: String,
    /// The series s_1, s_2, …, comma-separated (default: the lecture's).
    #[arg(long, allow_hyphen_values = true)]
    pub series: Option<String>,
    /// Read the series from a file instead: numbers separated by commas, spaces or newlines.
    #[arg(long, conflicts_with = "series")]
    pub series_file: Option<PathBuf>,
    /// Draw the series and the averages (solid: raw, dashed: bias-corrected) into this PNG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

pub fn run(a: EwaArgs) -> Result<()> {
    if let Some(p) = &a.plot {
        usage(plot::check_png_path(p))?;
    }
    let rhos: Vec<f64> = usage(parse_list(&a.rho, "--rho"))?;
    if rhos.is_empty() || rhos.iter().any(|r| !(0.0..1.0).contains(r)) {
        return usage(Err(anyhow::anyhow!("--rho {}: each ρ must be in [0, 1)", a.rho)));
    }
    let series: Vec<f64> = match &a.series_file {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("cannot read --series-file {}", p.display()))?;
            let cleaned = text.replace(|c: char| c.is_whitespace(), ",");
            usage(parse_list(&cleaned, &format!("--series-file {}", p.display())))?
        }
        None => usage(parse_list(a.series.as_deref().unwrap_or(LECTURE_SERIES), "--series"))?,
    };
    if series.is_empty() || series.iter().any(|s| !s.is_finite()) {
        return usage(Err(anyhow::anyhow!("the series needs at least one finite number")));
    }
    let raw: Vec<Vec<f64>> = rhos.iter().map(|&r| ewa(&series, r, false)).collect();
    let corrected: Vec<Vec<f64>> = rhos.iter().map(|&r| ewa(&series, r, true)).collect();

    println!("V_t = rho V_(t-1) + (1 - rho) s_t, V_0 = 0; corrected: V_t / (1 - rho^t)");
    let mut head = format!("{:>4} {:>10}", "t", "s_t");
    for r in &rhos {
        head += &format!(" {:>12} {:>12}", format!("V rho={r}"), "corrected");
    }
    println!("{head}");
    for t in 0..series.len() {
        let mut line = format!("{:>4} {:>10}", t + 1, num(series[t]));
        for k in 0..rhos.len() {
            line += &format!(" {:>12} {:>12}", num(raw[k][t]), num(corrected[k][t]));
        }
        println!("{line}");
    }
    println!();
    let t = series.len();
    for &r in &rhos {
        let w = ewa_weights(r, t);
        let shown: Vec<String> =
            w.iter().rev().take(3).enumerate().map(|(i, w)| format!("{} s_{}", num(*w), t - i)).collect();
        println!(
            "rho {r}: V_{t} = {}{}  (weights sum to 1 - rho^{t} = {}; about 1/(1 - rho) = {} terms matter)",
            shown.join(" + "),
            if t > 3 { " + ..." } else { "" },
            num(w.iter().sum()),
            num(1.0 / (1.0 - r))
        );
    }
    if let Some(path) = &a.plot {
        if t < 2 {
            bail!("a plot needs a series of at least two numbers");
        }
        let xs = |v: &[f64]| v.iter().enumerate().map(|(i, y)| ((i + 1) as f64, *y)).collect::<Vec<_>>();
        let mut s = vec![Series::new("s_t", xs(&series), Kind::Points, 7)];
        for (k, r) in rhos.iter().enumerate() {
            s.push(Series::new(format!("rho={r}"), xs(&raw[k]), Kind::Line, k));
            s.push(Series::new(format!("rho={r}, bias-corrected"), xs(&corrected[k]), Kind::Dashed, k));
        }
        plot::line_chart(path, "Exponentially weighted averages", "t", "value", &s)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
