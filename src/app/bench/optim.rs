//! `descent bench optim`: one optimizer step in three variants (fused over the arena, fused per
//! tensor, and the unfused baseline), Muon and Adafactor on matrix shapes, and the report.

use super::{time_async, Bandwidth};
use crate::backend::{BinaryOp, Device, UnaryOp};
use crate::message::Setting;
use crate::optim::{Muon, NsDtype, OptimBits, OptimConfig, Optimizer, Schedule, Sgd};
use crate::rng::Rng;
use crate::said;
use crate::tensor::View;
use anyhow::{bail, Result};
use serde::Serialize;

/// The optimizers `descent bench optim` knows, with the settings benchmarked.
pub const BENCH_OPTIMIZERS: [&str; 16] = [
    "adam",
    "adamw",
    "sgd",
    "rmsprop",
    "adagrad",
    "nadam",
    "radam",
    "adamax",
    "adadelta",
    "lion",
    "rprop",
    "asgd",
    "ademamix",
    "schedulefree_adamw",
    "adafactor",
    "muon",
];

/// PyTorch's defaults, except SGD with momentum 0.9 (the usual way it is run).
pub fn bench_config(name: &str) -> Result<OptimConfig> {
    if !BENCH_OPTIMIZERS.contains(&name) {
        bail!("descent bench optim: unknown optimizer '{name}': use one of {} or all", BENCH_OPTIMIZERS.join(", "));
    }
    if name == "sgd" {
        return Ok(OptimConfig::Sgd(Sgd { lr: 0.01, momentum: 0.9, ..Sgd::default() }));
    }
    OptimConfig::defaults(name)
}

/// How an optimizer step is issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// One fused kernel over the whole arena.
    FusedMultiTensor,
    /// One fused kernel per parameter tensor.
    FusedPerTensor,
    /// One elementwise kernel per arithmetic operation of the formula.
    Unfused,
}

impl Variant {
    pub const ALL: [Variant; 3] = [Variant::FusedMultiTensor, Variant::FusedPerTensor, Variant::Unfused];

    pub fn name(self) -> &'static str {
        match self {
            Variant::FusedMultiTensor => "fused_multi_tensor",
            Variant::FusedPerTensor => "fused_per_tensor",
            Variant::Unfused => "unfused",
        }
    }
}

/// Split `n` parameters into `k` tensors shaped like an MLP's: weight matrices of decreasing
/// size, each followed by its bias (about √ of the weight's size), summing exactly to `n`.
pub fn tensor_sizes(n: usize, k: usize) -> Vec<usize> {
    let k = k.clamp(1, n.max(1));
    let weights = k.div_ceil(2);
    let biases = k / 2;
    // Weight i gets a share ∝ 2^-i of the arena.
    let total: f64 = (0..weights).map(|i| 0.5f64.powi(i as i32)).sum();
    let mut sizes = Vec::with_capacity(k);
    let mut used = 0;
    for i in 0..weights {
        let share = ((n as f64 * 0.5f64.powi(i as i32) / total) as usize).max(1);
        let bias = if i < biases { ((share as f64).sqrt() as usize).max(1) } else { 0 };
        let w = share.saturating_sub(bias).max(1);
        sizes.push(w);
        used += w;
        if i < biases {
            sizes.push(bias);
            used += bias;
        }
    }
    // Give the rounding remainder to (or take it from) the first, largest tensor.
    if used > n {
        sizes[0] -= used - n;
    } else {
        sizes[0] += n - used;
    }
    sizes
}

/// [`tensor_sizes`] as an MLP's shapes, for the optimizers that treat matrices as matrices
/// (Adafactor): each weight a near-square [rows, cols] with rows·cols at most its share (the
/// few elements that do not fit are left out), each bias a vector. Benchmarks and the PyTorch
/// side-by-side script use the same rule.
pub fn tensor_shapes(n: usize, k: usize) -> Vec<Vec<usize>> {
    let sizes = tensor_sizes(n, k);
    let weights = k.clamp(1, n.max(1)).div_ceil(2);
    let mut out = Vec::with_capacity(sizes.len());
    // The sizes alternate weight, bias, weight, bias, ... then the weights without a bias.
    let mut seen_weights = 0;
    let mut bias_next = false;
    for &s in &sizes {
        if bias_next {
            out.push(vec![s]);
            bias_next = false;
            continue;
        }
        let rows = ((s as f64).sqrt() as usize).max(1);
        out.push(vec![rows, (s / rows).max(1)]);
        seen_weights += 1;
        bias_next = seen_weights <= k.clamp(1, n.max(1)) / 2 && seen_weights <= weights;
    }
    out
}

/// The unfused baseline: the optimizer's formula as separate elementwise kernels from the op
/// set, out of place (state and parameters ping-pong between two buffers), the way an eager
/// framework without fused optimizers runs it. Covers the settings of [`bench_config`].
pub struct Unfused {
    config: OptimConfig,
    step: u64,
    /// Current and next buffer of the parameters and of each state slot.
    pub params: [View; 2],
    pub state: Vec<[View; 2]>,
    temps: [View; 3],
}

impl Unfused {
    /// Whether the baseline has this configuration: the lecture's optimizers at the benchmark's
    /// settings (the newer ones are benchmarked fused only).
    pub fn covers(config: &OptimConfig) -> bool {
        match config {
            OptimConfig::Adam(c) => !c.amsgrad && c.weight_decay == 0.0,
            OptimConfig::Adamw(c) => !c.amsgrad,
            OptimConfig::Rmsprop(c) => !c.centered && c.momentum == 0.0 && c.weight_decay == 0.0,
            OptimConfig::Adagrad(c) => c.weight_decay == 0.0,
            OptimConfig::Sgd(c) => !c.nesterov && c.dampening == 0.0 && c.momentum > 0.0 && c.weight_decay == 0.0,
            _ => false,
        }
    }

    pub fn new(dev: &mut Device, config: &OptimConfig, params: &[f32]) -> Result<Unfused> {
        let n = params.len();
        if !Unfused::covers(config) {
            bail!("the unfused baseline covers the benchmark settings only, not {config:?}");
        }
        let two = |dev: &mut Device| -> Result<[View; 2]> { Ok([dev.alloc(n)?, dev.alloc(n)?]) };
        let p = two(dev)?;
        dev.write(p[0], params)?;
        let mut state = Vec::new();
        for init in config.state_inits(config.lr()) {
            let s = two(dev)?;
            dev.fill(s[0], init);
            state.push(s);
        }
        let temps = [dev.alloc(n)?, dev.alloc(n)?, dev.alloc(n)?];
        Ok(Unfused { config: config.clone(), step: 0, params: p, state, temps })
    }

    /// One step from `g`: every operation its own kernel.
    pub fn step(&mut self, dev: &mut Device, g: View) {
        use BinaryOp::*;
        use UnaryOp::*;
        self.step += 1;
        let t = self.step as i32;
        let [t1, t2, t3] = self.temps;
        let [p, p_next] = self.params;
        match &self.config {
            OptimConfig::Sgd(c) => {
                let lr = c.lr as f32;
                let [buf, buf_next] = self.state[0];
                if self.step == 1 {
                    dev.copy(g, buf_next);
                } else {
                    dev.unary(Scale(c.momentum as f32), buf, t1);
                    dev.binary(Add, t1, g, buf_next);
                }
                dev.unary(Scale(-lr), buf_next, t1);
                dev.binary(Add, p, t1, p_next);
            }
            config @ (OptimConfig::Adam(c) | OptimConfig::Adamw(c)) => {
                let lr = c.lr as f32;
                let ([m, m_next], [v, v_next]) = (self.state[0], self.state[1]);
                let (b1, b2) = (c.betas.0 as f32, c.betas.1 as f32);
                let src = if matches!(config, OptimConfig::Adamw(_)) {
                    dev.unary(Scale(1.0 - lr * c.weight_decay as f32), p, t3);
                    t3
                } else {
                    p
                };
                dev.unary(Scale(b1), m, t1);
                dev.unary(Scale(1.0 - b1), g, t2);
                dev.binary(Add, t1, t2, m_next);
                dev.binary(Mul, g, g, t1);
                dev.unary(Scale(1.0 - b2), t1, t2);
                dev.unary(Scale(b2), v, t1);
                dev.binary(Add, t1, t2, v_next);
                let bc1 = 1.0 - (c.betas.0).powi(t);
                let bc2 = 1.0 - (c.betas.1).powi(t);
                dev.unary(Pow(0.5), v_next, t1);
                dev.unary(Scale((1.0 / bc2.sqrt()) as f32), t1, t2);
                dev.unary(AddScalar(c.eps as f32), t2, t1);
                dev.binary(Div, m_next, t1, t2);
                dev.unary(Scale((-c.lr / bc1) as f32), t2, t1);
                dev.binary(Add, src, t1, p_next);
            }
            OptimConfig::Rmsprop(c) => {
                let lr = c.lr as f32;
                let [v, v_next] = self.state[0];
                let alpha = c.alpha as f32;
                dev.binary(Mul, g, g, t1);
                dev.unary(Scale(1.0 - alpha), t1, t2);
                dev.unary(Scale(alpha), v, t1);
                dev.binary(Add, t1, t2, v_next);
                dev.unary(Pow(0.5), v_next, t1);
                dev.unary(AddScalar(c.eps as f32), t1, t2);
                dev.binary(Div, g, t2, t1);
                dev.unary(Scale(-lr), t1, t2);
                dev.binary(Add, p, t2, p_next);
            }
            OptimConfig::Adagrad(c) => {
                let [s, s_next] = self.state[0];
                let clr = c.lr / (1.0 + (self.step - 1) as f64 * c.lr_decay);
                dev.binary(Mul, g, g, t1);
                dev.binary(Add, s, t1, s_next);
                dev.unary(Pow(0.5), s_next, t1);
                dev.unary(AddScalar(c.eps as f32), t1, t2);
                dev.binary(Div, g, t2, t1);
                dev.unary(Scale(-clr as f32), t1, t2);
                dev.binary(Add, p, t2, p_next);
            }
            _ => unreachable!("rejected in Unfused::new"),
        }
        self.params.swap(0, 1);
        for s in &mut self.state {
            s.swap(0, 1);
        }
    }

    pub fn release(self, dev: &mut Device) {
        for v in self.params.into_iter().chain(self.state.into_iter().flatten()).chain(self.temps) {
            dev.release(v);
        }
    }
}

/// One row of `descent bench optim`.
#[derive(Clone, Debug, Serialize)]
pub struct OptimResult {
    pub optimizer: String,
    pub variant: Variant,
    /// The state's width: 32, 16 or 8.
    pub optim_bits: u32,
    /// Bytes of optimizer state for these parameters (the fused variants' layout).
    pub state_bytes: u64,
    pub params: usize,
    pub tensors: usize,
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub clock: &'static str,
    /// Bytes the fused kernel must move per parameter (reads + writes).
    pub bytes_per_param: usize,
    /// bytes_per_param × params / median time (the unfused variant moves more than that; this
    /// is the useful rate, so variants compare directly).
    pub gb_per_s: f64,
    pub fraction_of_copy_bw: f64,
    pub fraction_of_streaming_bw: f64,
    /// The tensors' shapes where the optimizer steps matrices as matrices (Adafactor, Muon).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shapes: Option<Vec<Vec<usize>>>,
    /// Muon: its Newton–Schulz FLOPs per step over the whole step's median time, a lower
    /// bound on the iteration's own rate (the elementwise passes are in the time too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newton_schulz_tflop_per_s: Option<f64>,
    /// Muon: the precision its Newton–Schulz iteration ran in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ns_dtype: Option<NsDtype>,
    /// Muon: the median time of its elementwise passes alone (momentum, the norm, the update;
    /// the same step timed with no Newton–Schulz iteration).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elementwise_ms: Option<f64>,
    /// Muon: `bytes_per_param` × params over [`OptimResult::elementwise_ms`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elementwise_gb_per_s: Option<f64>,
}

/// What `descent bench optim --json` prints (and the web page downloads): the device, its
/// bandwidth and one row per measurement. Fields in alphabetical order, as the document has
/// always listed them.
#[derive(Clone, Debug, Serialize)]
pub struct OptimReport {
    pub copy_gb_per_s: f64,
    pub device: DeviceInfo,
    pub results: Vec<OptimResult>,
    pub streaming_gb_per_s: f64,
}

/// The device a report was measured on.
#[derive(Clone, Debug, Serialize)]
pub struct DeviceInfo {
    pub gpu: bool,
    /// [`Device::describe`].
    pub name: String,
}

impl OptimReport {
    /// An empty report for `dev` with bandwidth `bw`; push results into it.
    pub fn new(dev: &Device, bw: &Bandwidth) -> OptimReport {
        OptimReport {
            copy_gb_per_s: bw.copy_gb_per_s,
            device: DeviceInfo { gpu: dev.is_gpu(), name: dev.describe() },
            results: Vec::new(),
            streaming_gb_per_s: bw.streaming_gb_per_s,
        }
    }
}

/// Whether `variant` runs with state `bits` wide: the per-tensor and unfused baselines are
/// f32 only (the per-tensor split puts tensors at odd offsets, and the low-bit kernels are
/// multi-tensor by design).
pub fn variant_supports(variant: Variant, bits: OptimBits) -> bool {
    bits == OptimBits::B32 || variant == Variant::FusedMultiTensor
}

/// Whether `config` has `variant`: Adafactor's and Muon's passes always run over every tensor
/// at once.
pub fn variant_applies(config: &OptimConfig, variant: Variant) -> bool {
    !by_shape(config) || variant == Variant::FusedMultiTensor
}

/// Whether `config` steps matrices as matrices (so a benchmark gives it shapes).
pub fn by_shape(config: &OptimConfig) -> bool {
    matches!(config, OptimConfig::Adafactor(_) | OptimConfig::Muon(_))
}

/// Muon's Newton–Schulz FLOPs per step over `shapes`: per matrix (m ≤ n its sides) and
/// iteration, X·Xᵀ (2m²n), S·S (2m³) and T·X (2m²n). Muon's layout decides which are its.
pub fn newton_schulz_flops(config: &OptimConfig, shapes: &[Vec<usize>]) -> f64 {
    let OptimConfig::Muon(c) = config else { return 0.0 };
    let matrices: Vec<&Vec<usize>> = shapes.iter().filter(|s| s.len() == 2).collect();
    let count = matrices.len();
    matrices
        .iter()
        .enumerate()
        .filter(|&(i, _)| !(c.aux_first_last && count >= 3 && (i == 0 || i + 1 == count)))
        .map(|(_, s)| {
            let (m, n) = (s[0].min(s[1]) as f64, s[0].max(s[1]) as f64);
            c.ns_steps as f64 * (4.0 * m * m * n + 2.0 * m * m * m)
        })
        .sum()
}

/// Time an optimizer that steps matrices as matrices (Adafactor, Muon) on tensors of `shapes`
/// laid out as an arena, one launch of its passes over all of them; any optimizer runs (the
/// others see one flat arena).
pub async fn bench_optim_shapes_async(
    dev: &mut Device,
    name: &str,
    bits: OptimBits,
    shapes: &[Vec<usize>],
    bw: &Bandwidth,
    repeats: usize,
) -> Result<OptimResult> {
    bench_config_shapes_async(dev, bench_config(name)?.with_optim_bits(bits), shapes, bw, repeats).await
}

/// [`bench_optim_shapes_async`] for any configuration (Muon's `ns_dtype`, say): its name,
/// width and hyperparameters as given.
pub async fn bench_config_shapes_async(
    dev: &mut Device,
    config: OptimConfig,
    shapes: &[Vec<usize>],
    bw: &Bandwidth,
    repeats: usize,
) -> Result<OptimResult> {
    config.validate()?;
    let (name, bits) = (config.name(), config.optim_bits());
    let (layout, n) = crate::nn::arena_layout(shapes);
    let what = format!("{name} ({}-bit state) over {shapes:?}", bits.bits());
    let bytes = 4 * n as u64;
    dev.check_fits(&what, 6 * bytes, bytes, said!["use smaller ", Setting::Params])?;
    let mut rng = Rng::new(n as u64);
    let init = rng.uniform_vec(n, -1.0, 1.0);
    let grads = dev.upload(&rng.uniform_vec(n, -1e-2, 1e-2))?;
    let params = dev.upload(&init)?;
    let mut opt = if by_shape(&config) {
        Optimizer::for_shapes(dev, config.clone(), Schedule::Constant, n, &layout)?
    } else {
        Optimizer::for_len(dev, config.clone(), Schedule::Constant, n)?
    };
    let state_bytes = match (opt.factor_table(), opt.muon_layout()) {
        (Some(t), _) => 4 * t.state_len as u64,
        (_, Some(m)) => m.lens.iter().map(|&l| l as u64).sum::<u64>() * if bits == OptimBits::B32 { 4 } else { 2 },
        _ => config.state_bytes(n),
    };
    let timing = time_async(dev, 2, repeats, |d| {
        if let Err(e) = opt.step_views(d, params, grads) {
            unreachable!("the views are the optimizer's length: {e}");
        }
    })
    .await?;
    opt.release(dev);
    let bpp = config.bytes_per_param();
    // Muon's elementwise passes alone (momentum, the norm, the update): the same step with no
    // Newton–Schulz iteration, timed the same way.
    let elementwise_ms = match &config {
        OptimConfig::Muon(m) if m.ns_steps > 0 => {
            let bare = OptimConfig::Muon(Muon { ns_steps: 0, ..m.clone() });
            let mut opt = Optimizer::for_shapes(dev, bare, Schedule::Constant, n, &layout)?;
            let t = time_async(dev, 2, repeats, |d| {
                if let Err(e) = opt.step_views(d, params, grads) {
                    unreachable!("the views are the optimizer's length: {e}");
                }
            })
            .await?;
            opt.release(dev);
            Some(t.median_ms)
        }
        _ => None,
    };
    dev.release(params);
    dev.release(grads);
    let gbps = (bpp * n) as f64 / (timing.median_ms * 1e-3) / 1e9;
    let flops = newton_schulz_flops(&config, shapes);
    Ok(OptimResult {
        optimizer: name.to_string(),
        variant: Variant::FusedMultiTensor,
        optim_bits: bits.bits(),
        state_bytes,
        params: n,
        tensors: shapes.len(),
        median_ms: timing.median_ms,
        min_ms: timing.min_ms,
        max_ms: timing.max_ms,
        clock: timing.clock,
        bytes_per_param: bpp,
        gb_per_s: gbps,
        fraction_of_copy_bw: gbps / bw.copy_gb_per_s,
        fraction_of_streaming_bw: gbps / bw.streaming_gb_per_s,
        shapes: Some(shapes.to_vec()),
        newton_schulz_tflop_per_s: (flops > 0.0).then(|| flops / (timing.median_ms * 1e-3) / 1e12),
        ns_dtype: match &config {
            OptimConfig::Muon(c) => Some(c.ns_dtype),
            _ => None,
        },
        elementwise_ms,
        elementwise_gb_per_s: elementwise_ms.map(|t| (bpp * n) as f64 / (t * 1e-3) / 1e9),
    })
}

/// Time one optimizer variant on `n` random parameters and gradients, its state `bits` wide.
#[allow(clippy::too_many_arguments)]
pub fn bench_optim(
    dev: &mut Device,
    name: &str,
    bits: OptimBits,
    variant: Variant,
    n: usize,
    tensors: usize,
    bw: &Bandwidth,
    repeats: usize,
) -> Result<OptimResult> {
    crate::backend::wait(bench_optim_async(dev, name, bits, variant, n, tensors, bw, repeats))
}

/// [`bench_optim`] as a future (for a browser's WebGPU device).
#[allow(clippy::too_many_arguments)]
pub async fn bench_optim_async(
    dev: &mut Device,
    name: &str,
    bits: OptimBits,
    variant: Variant,
    n: usize,
    tensors: usize,
    bw: &Bandwidth,
    repeats: usize,
) -> Result<OptimResult> {
    let config = bench_config(name)?.with_optim_bits(bits);
    config.validate()?;
    if !variant_applies(&config, variant) {
        bail!("{name} steps every tensor in one launch of its passes: use the fused_multi_tensor variant");
    }
    if by_shape(&config) {
        // An MLP's shapes (near-square weights and their biases), one launch over all of them.
        return bench_optim_shapes_async(dev, name, bits, &tensor_shapes(n, tensors), bw, repeats).await;
    }
    if !variant_supports(variant, bits) {
        bail!(
            "the {} variant runs with 32-bit state only (use fused_multi_tensor at {} bits)",
            variant.name(),
            bits.bits()
        );
    }
    // Buffers of n values: grads, params and the state (the unfused baseline keeps two copies
    // of each slot and three temporaries), plus the host's initial values.
    let slots = config.state_names().len() as u64;
    let bytes = 4 * n as u64;
    let buffers = if variant == Variant::Unfused { (6 + 2 * slots) * bytes } else { 2 * bytes + config.state_bytes(n) };
    let what = format!("{name} ({}, {}-bit state) over {n} parameters", variant.name(), bits.bits());
    dev.check_fits(&what, buffers + 2 * bytes, bytes, said!["use a smaller ", Setting::Params])?;
    let mut rng = Rng::new(n as u64);
    let init = rng.uniform_vec(n, -1.0, 1.0);
    let gr = rng.uniform_vec(n, -1e-2, 1e-2);
    let grads = dev.upload(&gr)?;
    let sizes = if variant == Variant::FusedPerTensor { tensor_sizes(n, tensors) } else { vec![n] };
    let state_bytes = config.state_bytes(n);
    let timing = match variant {
        Variant::FusedMultiTensor | Variant::FusedPerTensor => {
            let params = dev.upload(&init)?;
            let mut opt = Optimizer::for_len(dev, config.clone(), Schedule::Constant, n)?;
            let mut ranges = Vec::new();
            for &len in &sizes {
                let at = ranges.last().map_or(0, |r: &std::ops::Range<usize>| r.end);
                ranges.push(at..at + len);
            }
            let t = time_async(dev, 2, repeats, |d| {
                if let Err(e) = opt.step_ranges(d, params, grads, &ranges) {
                    unreachable!("the ranges cover the buffers the optimizer was built for: {e}");
                }
            })
            .await?;
            opt.release(dev);
            dev.release(params);
            t
        }
        Variant::Unfused => {
            let mut u = Unfused::new(dev, &config, &init)?;
            let t = time_async(dev, 2, repeats, |d| u.step(d, grads)).await?;
            u.release(dev);
            t
        }
    };
    dev.release(grads);
    let bpp = config.bytes_per_param();
    let gbps = (bpp * n) as f64 / (timing.median_ms * 1e-3) / 1e9;
    Ok(OptimResult {
        optimizer: name.to_string(),
        variant,
        optim_bits: bits.bits(),
        state_bytes,
        params: n,
        tensors: sizes.len(),
        median_ms: timing.median_ms,
        min_ms: timing.min_ms,
        max_ms: timing.max_ms,
        clock: timing.clock,
        bytes_per_param: bpp,
        gb_per_s: gbps,
        fraction_of_copy_bw: gbps / bw.copy_gb_per_s,
        fraction_of_streaming_bw: gbps / bw.streaming_gb_per_s,
        shapes: None,
        newton_schulz_tflop_per_s: None,
        ns_dtype: None,
        elementwise_ms: None,
        elementwise_gb_per_s: None,
    })
}
