//! `--device auto` for training, chosen by measurement rather than by kind. When wgpu finds a
//! hardware GPU, a few steps of the run's own model, batch and optimizer are timed on it and on
//! the CPU backend, and the faster is kept: a small MLP at batch 64 steps faster on a many-core
//! CPU than through a GPU's per-dispatch latency, a large one the other way. The verdict is
//! cached per adapter and run shape (a small JSON file), so later runs skip the trial.
//!
//! The trial runs on trainers of its own, dropped before the run starts: the run itself is the
//! same, seed for seed, whichever device it lands on.

use super::train::{TrainConfig, Trainer};
use crate::backend::gpu::GpuBackend;
use crate::backend::{Device, DeviceChoice};
use crate::data::Dataset;
use crate::message::{Message, Setting};
use crate::said;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::Path;
use web_time::Instant;

/// Steps timed on each device, after one warm-up step.
pub const TRIAL_STEPS: usize = 5;

/// The median milliseconds of one training step (run and waited for) of `config` on `data`, on
/// a trainer of its own built on `dev`: one warm-up step, then `steps` timed ones.
pub fn time_steps(dev: Device, data: &Dataset, config: &TrainConfig, steps: usize) -> Result<f64> {
    let mut t = Trainer::new(dev, data, config.clone())?;
    let order = t.epoch_order()?;
    let batch = config.batch_size.min(data.train.rows);
    let starts = (data.train.rows - batch).max(1);
    let mut ms = Vec::with_capacity(steps);
    for s in 0..=steps {
        let t0 = Instant::now();
        t.step(order, s * batch % starts, batch)?;
        // A readback waits for the step: the step's whole latency, as an epoch pays it.
        t.check_finite()?;
        if s > 0 {
            ms.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    ms.sort_by(f64::total_cmp);
    Ok(ms[ms.len() / 2])
}

/// Which device a trial or a cached verdict picked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The GPU was faster.
    Gpu,
    /// The CPU backend was faster (or as fast).
    Cpu,
}

/// Where a verdict is cached: one per adapter and run shape.
fn cache_key(adapter: &str, data: &Dataset, config: &TrainConfig) -> String {
    format!(
        "{adapter} | {} inputs, hidden {:?}, {} classes | batch {} | {} at {} bits",
        data.row_len,
        config.hidden,
        data.classes,
        config.batch_size,
        config.optimizer.name(),
        config.optimizer.optim_bits().bits()
    )
}

/// The cached verdicts: key → (verdict, GPU ms, CPU ms).
type Cache = BTreeMap<String, (String, f64, f64)>;

fn read_cache(path: &Path) -> Cache {
    std::fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

fn write_cache(path: &Path, cache: &Cache) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(cache)?)?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// The faster of `gpu` (an open GPU device) and the CPU backend for training `config` on
/// `data`, by a trial of [`TRIAL_STEPS`] steps on each, or by the verdict cached in `cache`
/// (`None`: neither read nor write one). The device's [`Device::notice`] says which was picked
/// and why.
pub fn faster_for_training(gpu: Device, data: &Dataset, config: &TrainConfig, cache: Option<&Path>) -> Result<Device> {
    let adapter = gpu.describe();
    let key = cache_key(&adapter, data, config);
    let cached = cache.and_then(|p| read_cache(p).get(&key).cloned());
    let (verdict, gpu_ms, cpu_ms, how) = match cached {
        Some((v, g, c)) => {
            let how = format!("cached in {}", cache.map_or(String::new(), |p| p.display().to_string()));
            (if v == "gpu" { Verdict::Gpu } else { Verdict::Cpu }, g, c, how)
        }
        None => {
            let g = match time_steps(gpu, data, config, TRIAL_STEPS) {
                Ok(ms) => ms,
                // A GPU that cannot run the model (too little memory, a device error) loses.
                Err(e) => {
                    let mut dev = Device::cpu();
                    let why =
                        said![format!("the CPU backend: the trial on {adapter} failed (")].then(Message::of_error(&e));
                    dev.notice = Some(why.then("); ").then(Setting::DeviceGpu).then(" tries it anyway"));
                    return Ok(dev);
                }
            };
            let c = time_steps(Device::cpu(), data, config, TRIAL_STEPS)?;
            let v = if g < c { Verdict::Gpu } else { Verdict::Cpu };
            if let Some(p) = cache {
                let mut all = read_cache(p);
                let name = if v == Verdict::Gpu { "gpu" } else { "cpu" };
                all.insert(key.clone(), (name.to_string(), g, c));
                // A cache that cannot be written costs the next run a trial, nothing more.
                let _ = write_cache(p, &all);
            }
            (v, g, c, format!("timed now, {TRIAL_STEPS} steps each"))
        }
    };
    let times = format!("{gpu_ms:.2} ms a step on {adapter}, {cpu_ms:.2} ms on the CPU backend ({how})");
    let mut dev = match verdict {
        // The same kind of adapter the trial ran on: the best hardware one, else any.
        Verdict::Gpu => Device::from_backend(GpuBackend::boxed(true).or_else(|_| GpuBackend::boxed(false))?),
        Verdict::Cpu => Device::cpu(),
    };
    let picked = if verdict == Verdict::Gpu { "the GPU" } else { "the CPU backend" };
    let m: Message = said![format!("{picked}, the faster for this model and batch: {times}; "), Setting::DeviceCpu];
    dev.notice = Some(m.then(" or ").then(Setting::DeviceGpu).then(" picks one yourself"));
    Ok(dev)
}

/// `--device auto` for training: with a hardware GPU, [`faster_for_training`] (the verdict
/// cached in `cache`); without one, the CPU backend, with the notice [`Device::select`] gives.
pub fn select_for_training(data: &Dataset, config: &TrainConfig, cache: Option<&Path>) -> Result<Device> {
    match GpuBackend::boxed(true) {
        Ok(g) => faster_for_training(Device::from_backend(g), data, config, cache),
        Err(_) => Device::select(DeviceChoice::Auto),
    }
}
