//! A fused-Adam step benchmark written against the library: one kernel launch updates every
//! parameter, reading p, g, m, v and writing p, m, v (28 bytes per parameter). Prints the
//! median step time and the bandwidth it implies.
//!
//! `cargo run --release --example bench_fused_adam [-- gpu] [-- PARAMS]` (default 1e7)

use anyhow::Result;
use descent::backend::Device;
use descent::optim::{OptimConfig, Optimizer, Schedule};
use descent::rng::Rng;
use std::time::Instant;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut dev = if args.iter().any(|a| a == "gpu") { Device::gpu()? } else { Device::cpu() };
    let n = args.iter().find_map(|a| a.parse::<f64>().ok()).unwrap_or(1e7) as usize;
    let mut rng = Rng::new(0);
    let params = dev.upload(&rng.uniform_vec(n, -1.0, 1.0))?;
    let grads = dev.upload(&rng.uniform_vec(n, -1.0, 1.0))?;
    let config = OptimConfig::defaults("adam")?;
    let bytes = config.bytes_per_param() * n;
    let mut opt = Optimizer::for_len(&mut dev, config, Schedule::Constant, n)?;
    for _ in 0..3 {
        opt.step_views(&mut dev, params, grads)?; // warm-up: first touch of the state pages
    }
    dev.sync()?;
    let mut times = Vec::new();
    for _ in 0..15 {
        let t = Instant::now();
        opt.step_views(&mut dev, params, grads)?;
        dev.sync()?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!("{} — fused Adam over {n} parameters", dev.describe());
    println!(
        "median step {:.3} ms, {:.1} GB/s ({} bytes per parameter)",
        median * 1e3,
        bytes as f64 / median / 1e9,
        bytes / n
    );
    Ok(())
}
