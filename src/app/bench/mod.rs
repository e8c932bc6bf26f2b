//! Benchmarks behind `descent bench`: optimizer steps in three variants, the device's own
//! copy and streaming bandwidth, matmul GFLOP/s and training epochs.
//!
//! Timings are medians over repeats after warm-up. On a GPU with timestamp queries the time is
//! the device's own clock around the recorded work; otherwise (and on the CPU) it is the wall
//! time of running the work and waiting for it. Each result says which.

mod optim;

pub use optim::*;

use crate::backend::{Device, Dims, Epilogue, Form, UnaryOp};
use crate::message::Setting;
use crate::rng::Rng;
use crate::said;
use anyhow::{bail, Result};
use rayon::prelude::*;
use serde::Serialize;
use web_time::Instant;

/// Median, min and max of repeated timings, in milliseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Timing {
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    /// "gpu_timestamps" or "wall_clock".
    pub clock: &'static str,
}

impl Timing {
    pub fn from_ms(mut v: Vec<f64>, clock: &'static str) -> Timing {
        v.sort_by(f64::total_cmp);
        let median = if v.len() % 2 == 1 { v[v.len() / 2] } else { 0.5 * (v[v.len() / 2 - 1] + v[v.len() / 2]) };
        Timing { median_ms: median, min_ms: v[0], max_ms: v[v.len() - 1], clock }
    }
}

/// Time `work` (which records or runs device work) `repeats` times after `warmup` runs.
pub fn time(dev: &mut Device, warmup: usize, repeats: usize, work: impl FnMut(&mut Device)) -> Result<Timing> {
    crate::backend::wait(time_async(dev, warmup, repeats, work))
}

/// [`time`] as a future: each repeat awaits the device's end of work (a browser's WebGPU
/// device, where the wall clock times it: browsers coarsen GPU timestamps).
pub async fn time_async(
    dev: &mut Device,
    warmup: usize,
    repeats: usize,
    mut work: impl FnMut(&mut Device),
) -> Result<Timing> {
    if repeats == 0 {
        bail!("at least one repeat is needed");
    }
    for _ in 0..warmup {
        work(dev);
    }
    dev.finish_async().await?;
    let mut ms = Vec::with_capacity(repeats);
    let mut clock = "wall_clock";
    for _ in 0..repeats {
        let timed = dev.timer_start();
        let t0 = Instant::now();
        work(dev);
        if timed {
            dev.timer_stop();
        }
        dev.finish_async().await?;
        let wall = t0.elapsed().as_secs_f64();
        // Only a native device has a timer (browsers coarsen timestamps), so reading it may wait.
        match if timed { dev.timer_read()? } else { None } {
            Some(s) => {
                clock = "gpu_timestamps";
                ms.push(s * 1e3);
            }
            None => ms.push(wall * 1e3),
        }
    }
    Ok(Timing::from_ms(ms, clock))
}

/// Memory bandwidth the device reaches by itself, read + write bytes counted.
#[derive(Clone, Debug, Serialize)]
pub struct Bandwidth {
    /// Buffer-to-buffer copy (copy_buffer_to_buffer on the GPU, a parallel memcpy on the CPU).
    pub copy_gb_per_s: f64,
    /// An in-place streaming kernel `a = 2a` (CPU: rayon over the buffer) or, on the GPU, the
    /// vectorised streaming kernel `b = 2a` (`Device::stream_scale`: vec4 loads and stores,
    /// four per invocation), the rate a well-written elementwise kernel reaches.
    pub streaming_gb_per_s: f64,
}

/// Measure copy and streaming bandwidth over `n` floats.
pub fn bandwidth(dev: &mut Device, n: usize, repeats: usize) -> Result<Bandwidth> {
    crate::backend::wait(bandwidth_async(dev, n, repeats))
}

/// [`bandwidth`] as a future (for a browser's WebGPU device).
pub async fn bandwidth_async(dev: &mut Device, n: usize, repeats: usize) -> Result<Bandwidth> {
    // Two device buffers of n values, and on the CPU a host one.
    let buffers = if dev.is_gpu() { 2 } else { 3 };
    let what = format!("measuring bandwidth over {n} values");
    dev.check_fits(&what, 4 * n as u64 * buffers, 4 * n as u64, said!["use a smaller ", Setting::Params])?;
    let gbps_over = |n: usize, t: &Timing| 8.0 * n as f64 / (t.median_ms * 1e-3) / 1e9;
    let gbps = |t: &Timing| gbps_over(n, t);
    let a = dev.alloc(n)?;
    let b = dev.alloc(n)?;
    dev.fill(a, 1.0);
    dev.fill(b, 0.0);
    let copy = time_async(dev, 1, repeats, |d| d.copy(a, b)).await?;
    let streaming_gb_per_s = if dev.is_gpu() {
        // Whole vec4s (the length rounded down to 4); under 4 values, the scalar scale kernel.
        let n4 = n / 4 * 4;
        if n4 > 0 {
            let t = time_async(dev, 1, repeats, |d| d.stream_scale(a.slice(0, n4), b.slice(0, n4), 2.0)).await?;
            gbps_over(n4, &t)
        } else {
            gbps(&time_async(dev, 1, repeats, |d| d.unary(UnaryOp::Scale(2.0), a, b)).await?)
        }
    } else {
        // In place on host memory, the way the rayon backend runs its optimizer passes.
        let mut host = Vec::with_capacity(n);
        crate::backend::host::advise_huge_pages(&mut host);
        host.resize(n, 1.0f32);
        let mut ms = Vec::new();
        for r in 0..=repeats {
            let t0 = Instant::now();
            host.par_chunks_mut(1 << 15).for_each(|c| c.iter_mut().for_each(|x| *x *= 0.5));
            if r > 0 {
                ms.push(t0.elapsed().as_secs_f64() * 1e3);
            }
        }
        std::hint::black_box(&host);
        gbps(&Timing::from_ms(ms, "wall_clock"))
    };
    dev.release(a);
    dev.release(b);
    Ok(Bandwidth { copy_gb_per_s: gbps(&copy), streaming_gb_per_s })
}

/// A matmul shape to benchmark, with what it is in the MLP.
#[derive(Clone, Debug, Serialize)]
pub struct MatmulShape {
    pub label: String,
    pub form: &'static str,
    pub m: usize,
    pub k: usize,
    pub n: usize,
}

/// The 784-128-128-10 MLP's matmuls at batch 64 (forward, dW, dX) and two square sizes.
pub fn default_matmul_shapes() -> Vec<MatmulShape> {
    let s = |label: &str, form, m, k, n| MatmulShape { label: label.into(), form, m, k, n };
    vec![
        s("fwd layer 1 (x·W1ᵀ)", "nt", 64, 784, 128),
        s("fwd layer 2", "nt", 64, 128, 128),
        s("fwd layer 3", "nt", 64, 128, 10),
        s("dW1 (dZᵀ·x)", "tn", 128, 64, 784),
        s("dW2", "tn", 128, 64, 128),
        s("dX2 (dZ·W)", "nn", 64, 128, 128),
        s("fwd layer 1, batch 256", "nt", 256, 784, 128),
        s("1024³", "nn", 1024, 1024, 1024),
        s("2048³", "nn", 2048, 2048, 2048),
    ]
}

/// Parse `nt:64x784x128` (form optional, default nn).
pub fn parse_matmul_shape(s: &str) -> Result<MatmulShape> {
    let (form, dims) = match s.split_once(':') {
        Some((f, d)) => (f.to_ascii_lowercase(), d),
        None => ("nn".to_string(), s),
    };
    let form: &'static str = match form.as_str() {
        "nn" => "nn",
        "nt" => "nt",
        "tn" => "tn",
        _ => bail!(said![Setting::Shapes, format!(" {s}: the form must be nn, nt or tn")]),
    };
    let v: Vec<usize> = dims
        .split('x')
        .map(|p| p.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| said![Setting::Shapes, format!(" {s}: expected FORM:MxKxN such as nt:64x784x128")])?;
    match v.as_slice() {
        [m, k, n] if *m > 0 && *k > 0 && *n > 0 => Ok(MatmulShape { label: s.to_string(), form, m: *m, k: *k, n: *n }),
        _ => bail!(said![Setting::Shapes, format!(" {s}: expected FORM:MxKxN with sizes >= 1")]),
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct MatmulResult {
    #[serde(flatten)]
    pub shape: MatmulShape,
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub clock: &'static str,
    pub gflop_per_s: f64,
    /// The GPU kernel the product ran ([`crate::backend::gpu::MatmulPlan`]: `tiled` or
    /// `split-k S×K`); None on the CPU backend.
    pub kernel: Option<String>,
}

pub fn bench_matmul(dev: &mut Device, shape: &MatmulShape, repeats: usize) -> Result<MatmulResult> {
    let (m, k, n) = (shape.m, shape.k, shape.n);
    let form = match shape.form {
        "nt" => Form::NT,
        "tn" => Form::TN,
        _ => Form::NN,
    };
    // A, B and the result on the device, and A and B drawn on the host first.
    let sizes = [m.saturating_mul(k), k.saturating_mul(n), m.saturating_mul(n)].map(|x| (x as u64).saturating_mul(4));
    let total = [sizes[0], sizes[1], sizes[2], sizes[0], sizes[1]].iter().fold(0u64, |t, &x| t.saturating_add(x));
    let what = format!("a {m}×{k}×{n} matmul");
    dev.check_fits(&what, total, sizes.into_iter().max().unwrap_or(0), said!["use smaller ", Setting::Shapes])?;
    let mut rng = Rng::new(1);
    let mut rand = |len: usize| rng.uniform_vec(len, -1.0, 1.0);
    let a = dev.upload(&rand(m * k))?;
    let b = dev.upload(&rand(k * n))?;
    let out = dev.alloc(m * n)?;
    let d = Dims { m, k, n };
    let t = time(dev, 2, repeats, |dv| dv.matmul(form, d, a, b, out, &Epilogue::default()))?;
    for v in [a, b, out] {
        dev.release(v);
    }
    let flops = 2.0 * (m * k * n) as f64;
    Ok(MatmulResult {
        shape: shape.clone(),
        median_ms: t.median_ms,
        min_ms: t.min_ms,
        max_ms: t.max_ms,
        clock: t.clock,
        gflop_per_s: flops / (t.median_ms * 1e-3) / 1e9,
        kernel: dev.matmul_plan(d).map(|p| p.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_sizes_sum_to_the_arena() {
        for (n, k) in [(1_000_000, 8), (10, 3), (1, 4), (101_770, 6), (7, 1)] {
            let s = tensor_sizes(n, k);
            assert_eq!(s.iter().sum::<usize>(), n, "{n} in {k}: {s:?}");
            assert!(s.iter().all(|&x| x > 0), "{s:?}");
        }
        assert_eq!(tensor_sizes(1_000_000, 8).len(), 8);
    }

    #[test]
    fn timing_median() {
        let t = Timing::from_ms(vec![3.0, 1.0, 2.0, 10.0], "wall_clock");
        assert_eq!((t.median_ms, t.min_ms, t.max_ms), (2.5, 1.0, 10.0));
    }

    #[test]
    fn matmul_shapes_parse() {
        let s = parse_matmul_shape("NT:64x784x128").unwrap();
        assert_eq!((s.form, s.m, s.k, s.n), ("nt", 64, 784, 128));
        assert!(parse_matmul_shape("xx:1x2x3").is_err());
        assert!(parse_matmul_shape("nn:0x2x3").is_err());
    }
}
