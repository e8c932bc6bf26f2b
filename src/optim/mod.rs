//! The optimizer family with PyTorch's `torch.optim` semantics, hyperparameter names and
//! defaults, plus the lecture's own momentum form.
//!
//! [`OptimConfig`] is one enum with a typed struct of hyperparameters per optimizer. The host
//! turns it, the step count and the scheduled learning rate into an [`OptimStep`] (the
//! kernel's own `#[repr(C)]` parameter struct, bias corrections included, from
//! `backend::optim_kernel`); each backend applies it in one fused pass over the whole parameter
//! arena: `backend::cpu_optim` (rayon) and `shaders/optim_<kernel>.wgsl` (WGSL).
//! [`reference`](mod@reference) holds the plain f64 formulas that tests compare both with.
//!
//! Adding an optimizer takes a variant here (its struct, defaults, checks and kernel step), a
//! kernel in `optim_kernel` with its WGSL file, the rayon twin and the reference; the compiler
//! refuses a missing match arm in the last three and `tests/kernel_mirror.rs` a missing or
//! different WGSL struct or entry point.

pub mod reference;
pub mod schedule;

use crate::backend::optim_kernel::*;
use crate::backend::quant::{self, BlockTable};
use crate::backend::Device;
pub use crate::backend::{Blockwise8, OptimBits, OptimStep, Slot};
use crate::nn::ParamArena;
use crate::tensor::View;
use anyhow::{bail, ensure, Context, Result};
pub use schedule::Schedule;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The optimizers [`OptimConfig::defaults`] knows, as their JSON and CLI names spell them.
pub const OPTIMIZER_NAMES: [&str; 6] = ["sgd", "adagrad", "rmsprop", "adam", "adamw", "lecture_momentum"];

/// An optimizer and its hyperparameters, named and defaulted as in PyTorch.
///
/// Its JSON form (replay files, checkpoints, `metrics.json`) is the name under `"name"` and the
/// variant's fields under PyTorch's names: `{"name": "adam", "lr": 0.001, "betas": [0.9,
/// 0.999], "eps": 1e-8, "weight_decay": 0.0, "amsgrad": false}`. [`OptimConfig::from_json`]
/// reads it with PyTorch's defaults for what is left out and rejects unknown names and keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum OptimConfig {
    /// `torch.optim.SGD`.
    Sgd(Sgd),
    /// `torch.optim.Adagrad`.
    Adagrad(Adagrad),
    /// `torch.optim.RMSprop`.
    Rmsprop(Rmsprop),
    /// `torch.optim.Adam`.
    Adam(Adam),
    /// `torch.optim.AdamW`: Adam's fields, decoupled weight decay, default `weight_decay` 0.01.
    Adamw(Adam),
    /// The lecture's momentum, `v ← m·v − lr·g; θ ← θ + v`.
    LectureMomentum(LectureMomentum),
}

/// SGD's hyperparameters (PyTorch's defaults: lr 1e-3, the rest 0 or false).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sgd {
    /// Learning rate.
    pub lr: f64,
    /// Momentum factor; 0 keeps no state.
    pub momentum: f64,
    /// Dampening of the gradient's share of the momentum.
    pub dampening: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// Width of the state: 32 (f32), 16 (bfloat16) or 8 (blockwise 8-bit, Adam and AdamW only).
    #[serde(default, skip_serializing_if = "OptimBits::is_b32")]
    pub optim_bits: OptimBits,
}

/// Adagrad's hyperparameters (PyTorch's defaults: lr 1e-2, eps 1e-10).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adagrad {
    /// Learning rate.
    pub lr: f64,
    /// The learning rate's decay per step.
    pub lr_decay: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// The sum of squares' starting value.
    pub initial_accumulator_value: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// Width of the state: 32 (f32), 16 (bfloat16) or 8 (blockwise 8-bit, Adam and AdamW only).
    #[serde(default, skip_serializing_if = "OptimBits::is_b32")]
    pub optim_bits: OptimBits,
}

/// RMSProp's hyperparameters (PyTorch's defaults: lr 1e-2, alpha 0.99, eps 1e-8).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rmsprop {
    /// Learning rate.
    pub lr: f64,
    /// Smoothing constant.
    pub alpha: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// Momentum factor; 0 keeps no momentum buffer.
    pub momentum: f64,
    /// Normalise by the centered second moment.
    pub centered: bool,
    /// Width of the state: 32 (f32), 16 (bfloat16) or 8 (blockwise 8-bit, Adam and AdamW only).
    #[serde(default, skip_serializing_if = "OptimBits::is_b32")]
    pub optim_bits: OptimBits,
}

/// Adam's and AdamW's hyperparameters (PyTorch's defaults: lr 1e-3, betas (0.9, 0.999), eps
/// 1e-8, weight_decay 0 for Adam and 0.01 for AdamW).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adam {
    /// Learning rate.
    pub lr: f64,
    /// Decay rates of the running averages of the gradient and its square.
    pub betas: (f64, f64),
    /// Added to the denominator.
    pub eps: f64,
    /// L2 penalty (Adam) or decoupled decay (AdamW).
    pub weight_decay: f64,
    /// Keep the maximum of past second moments (AMSGrad).
    pub amsgrad: bool,
    /// Width of the state: 32 (f32), 16 (bfloat16) or 8 (blockwise 8-bit, Adam and AdamW only).
    #[serde(default, skip_serializing_if = "OptimBits::is_b32")]
    pub optim_bits: OptimBits,
}

/// The lecture's momentum (defaults: lr 1e-2, momentum 0.9).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LectureMomentum {
    /// Learning rate.
    pub lr: f64,
    /// Momentum factor.
    pub momentum: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// Width of the state: 32 (f32), 16 (bfloat16) or 8 (blockwise 8-bit, Adam and AdamW only).
    #[serde(default, skip_serializing_if = "OptimBits::is_b32")]
    pub optim_bits: OptimBits,
}

impl Default for Sgd {
    fn default() -> Sgd {
        Sgd { lr: 1e-3, momentum: 0.0, dampening: 0.0, nesterov: false, weight_decay: 0.0, optim_bits: OptimBits::B32 }
    }
}

impl Default for Adagrad {
    fn default() -> Adagrad {
        Adagrad {
            lr: 1e-2,
            lr_decay: 0.0,
            weight_decay: 0.0,
            initial_accumulator_value: 0.0,
            eps: 1e-10,
            optim_bits: OptimBits::B32,
        }
    }
}

impl Default for Rmsprop {
    fn default() -> Rmsprop {
        Rmsprop {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
            optim_bits: OptimBits::B32,
        }
    }
}

impl Default for Adam {
    /// Adam's defaults; AdamW's differ in `weight_decay` (see [`Adam::adamw`]).
    fn default() -> Adam {
        Adam { lr: 1e-3, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.0, amsgrad: false, optim_bits: OptimBits::B32 }
    }
}

impl Adam {
    /// PyTorch's defaults for `torch.optim.AdamW`.
    pub fn adamw() -> Adam {
        Adam { weight_decay: 1e-2, ..Adam::default() }
    }
}

impl Default for LectureMomentum {
    fn default() -> LectureMomentum {
        LectureMomentum { lr: 1e-2, momentum: 0.9, weight_decay: 0.0, optim_bits: OptimBits::B32 }
    }
}

/// `$body` on the hyperparameter struct of whichever optimizer `$config` is: the fields every
/// optimizer has (`lr`, `weight_decay`, `optim_bits`) are read and set through it.
macro_rules! each_config {
    ($config:expr, $c:ident => $body:expr) => {
        match $config {
            OptimConfig::Sgd($c) => $body,
            OptimConfig::Adagrad($c) => $body,
            OptimConfig::Rmsprop($c) => $body,
            OptimConfig::Adam($c) | OptimConfig::Adamw($c) => $body,
            OptimConfig::LectureMomentum($c) => $body,
        }
    };
}

/// PyTorch's constructor checks, each with a message that says what a valid value is.
fn check_lr(lr: f64) -> Result<()> {
    if !lr.is_finite() || lr <= 0.0 {
        bail!("invalid lr: {lr} (must be a finite number > 0)");
    }
    Ok(())
}

fn check_nonneg(v: f64, what: &str) -> Result<()> {
    if !v.is_finite() || v < 0.0 {
        bail!("invalid {what}: {v} (must be a finite number >= 0)");
    }
    Ok(())
}

fn check_eps(eps: f64) -> Result<()> {
    if !eps.is_finite() || eps <= 0.0 {
        bail!("invalid eps: {eps} (must be a finite number > 0)");
    }
    Ok(())
}

fn check_unit(v: f64, what: &str) -> Result<()> {
    if !v.is_finite() || !(0.0..=1.0).contains(&v) {
        bail!("invalid {what}: {v} (must be in [0, 1])");
    }
    Ok(())
}

fn flag(b: bool) -> u32 {
    b as u32
}

impl OptimConfig {
    /// PyTorch's defaults for `name` (one of [`OPTIMIZER_NAMES`]).
    pub fn defaults(name: &str) -> Result<OptimConfig> {
        Ok(match name {
            "sgd" => OptimConfig::Sgd(Sgd::default()),
            "adagrad" => OptimConfig::Adagrad(Adagrad::default()),
            "rmsprop" => OptimConfig::Rmsprop(Rmsprop::default()),
            "adam" => OptimConfig::Adam(Adam::default()),
            "adamw" => OptimConfig::Adamw(Adam::adamw()),
            "lecture_momentum" => OptimConfig::LectureMomentum(LectureMomentum::default()),
            _ => bail!("unknown optimizer '{name}': use one of {}", OPTIMIZER_NAMES.join(", ")),
        })
    }

    /// The optimizer's name, as JSON and the CLI spell it.
    pub fn name(&self) -> &'static str {
        match self {
            OptimConfig::Sgd(_) => "sgd",
            OptimConfig::Adagrad(_) => "adagrad",
            OptimConfig::Rmsprop(_) => "rmsprop",
            OptimConfig::Adam(_) => "adam",
            OptimConfig::Adamw(_) => "adamw",
            OptimConfig::LectureMomentum(_) => "lecture_momentum",
        }
    }

    /// The base learning rate (before any schedule).
    pub fn lr(&self) -> f64 {
        each_config!(self, c => c.lr)
    }

    /// Set the base learning rate (every optimizer has one).
    pub fn set_lr(&mut self, lr: f64) {
        each_config!(self, c => c.lr = lr)
    }

    /// This configuration with base learning rate `lr`.
    pub fn with_lr(mut self, lr: f64) -> OptimConfig {
        self.set_lr(lr);
        self
    }

    /// The weight decay (every optimizer has one: L2, or decoupled for AdamW).
    pub fn weight_decay(&self) -> f64 {
        each_config!(self, c => c.weight_decay)
    }

    /// How wide its state is stored.
    pub fn optim_bits(&self) -> OptimBits {
        each_config!(self, c => c.optim_bits)
    }

    /// Set the state's width (checked by [`OptimConfig::validate`]: 8 is Adam's and AdamW's).
    pub fn set_optim_bits(&mut self, bits: OptimBits) {
        each_config!(self, c => c.optim_bits = bits)
    }

    /// This configuration with its state `bits` wide.
    pub fn with_optim_bits(mut self, bits: OptimBits) -> OptimConfig {
        self.set_optim_bits(bits);
        self
    }

    /// The hyperparameter names this optimizer takes (PyTorch's, for PyTorch's optimizers):
    /// its fields, as its JSON form lists them.
    pub fn keys(&self) -> Vec<String> {
        match self.to_json() {
            Value::Object(m) => m.keys().filter(|k| *k != "name").cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// Build from a JSON object such as `{"name": "adam", "lr": 0.01, "betas": [0.9, 0.99]}`,
    /// PyTorch's defaults for the keys left out; `path` names the object in error messages.
    pub fn from_json(v: &Value, path: &str) -> Result<OptimConfig> {
        let obj = v.as_object().with_context(|| format!("{path}: expected an object"))?;
        let name = obj
            .get("name")
            .with_context(|| format!("{path}.name: missing (one of {})", OPTIMIZER_NAMES.join(", ")))?
            .as_str()
            .with_context(|| format!("{path}.name: expected a string"))?;
        let defaults = OptimConfig::defaults(name).with_context(|| format!("{path}.name"))?;
        let Value::Object(mut merged) = defaults.to_json() else { unreachable!("a config is a JSON object") };
        for (key, val) in obj {
            if key == "name" {
                continue;
            }
            // Every optimizer takes optim_bits; it is left out of the JSON form at 32.
            if key == "optim_bits" {
                let bits = val.as_u64().with_context(|| format!("{path}.optim_bits: expected 32, 16 or 8"))?;
                OptimBits::from_bits(bits).map_err(|e| anyhow::anyhow!("{path}.optim_bits: {e}"))?;
                merged.insert(key.clone(), val.clone());
                continue;
            }
            let Some(default) = merged.get(key) else {
                bail!("{path}.{key}: '{name}' takes no '{key}' (it takes {})", defaults.keys().join(", "));
            };
            // The default's JSON type says what the key holds.
            match default {
                Value::Number(_) if !val.is_number() => bail!("{path}.{key}: expected a number"),
                Value::Bool(_) if !val.is_boolean() => bail!("{path}.{key}: expected true or false"),
                Value::Array(d)
                    if val.as_array().is_none_or(|a| a.len() != d.len() || !a.iter().all(Value::is_number)) =>
                {
                    bail!("{path}.{key}: expected an array of {} numbers, e.g. {default}", d.len())
                }
                _ => {}
            }
            merged.insert(key.clone(), val.clone());
        }
        let c: OptimConfig = serde_json::from_value(Value::Object(merged)).with_context(|| path.to_string())?;
        c.validate().with_context(|| path.to_string())?;
        Ok(c)
    }

    /// The name and every hyperparameter, under PyTorch's names: the object
    /// [`OptimConfig::from_json`] reads.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("a config's fields are plain numbers and flags")
    }

    /// PyTorch's constructor checks, with a message that says what to use instead.
    pub fn validate(&self) -> Result<()> {
        if self.optim_bits() == OptimBits::B8 {
            match self {
                OptimConfig::Adam(c) | OptimConfig::Adamw(c) if c.amsgrad => {
                    bail!("amsgrad has no 8-bit form (bitsandbytes has none either): use optim_bits 16 or 32")
                }
                OptimConfig::Adam(_) | OptimConfig::Adamw(_) => {}
                _ => bail!(
                    "'{}' has no 8-bit form (blockwise 8-bit state is Adam's and AdamW's): use optim_bits 16 or 32",
                    self.name()
                ),
            }
        }
        match self {
            OptimConfig::Sgd(c) => {
                check_lr(c.lr)?;
                check_nonneg(c.momentum, "momentum")?;
                check_nonneg(c.weight_decay, "weight_decay")?;
                check_unit(c.dampening, "dampening")?;
                if c.nesterov && (c.momentum <= 0.0 || c.dampening != 0.0) {
                    bail!("nesterov momentum requires a momentum > 0 and zero dampening (as in PyTorch)");
                }
            }
            OptimConfig::Adagrad(c) => {
                check_lr(c.lr)?;
                check_nonneg(c.weight_decay, "weight_decay")?;
                check_nonneg(c.lr_decay, "lr_decay")?;
                check_nonneg(c.initial_accumulator_value, "initial_accumulator_value")?;
                check_eps(c.eps)?;
            }
            OptimConfig::Rmsprop(c) => {
                check_lr(c.lr)?;
                check_nonneg(c.momentum, "momentum")?;
                check_nonneg(c.weight_decay, "weight_decay")?;
                check_eps(c.eps)?;
                check_unit(c.alpha, "alpha")?;
            }
            OptimConfig::Adam(c) | OptimConfig::Adamw(c) => {
                check_lr(c.lr)?;
                check_nonneg(c.weight_decay, "weight_decay")?;
                check_eps(c.eps)?;
                for (i, b) in [c.betas.0, c.betas.1].into_iter().enumerate() {
                    if !b.is_finite() || !(0.0..1.0).contains(&b) {
                        bail!("invalid beta parameter at index {i}: {b} (must be in [0, 1))");
                    }
                }
            }
            OptimConfig::LectureMomentum(c) => {
                check_lr(c.lr)?;
                check_nonneg(c.momentum, "momentum")?;
                check_nonneg(c.weight_decay, "weight_decay")?;
            }
        }
        Ok(())
    }

    /// The kernel scalars for step `t` (1-based, as PyTorch counts) at learning rate `lr`.
    pub fn kernel_step(&self, t: u64, lr: f64) -> OptimStep {
        let f = |x: f64| x as f32;
        match self {
            OptimConfig::Sgd(c) => OptimStep::Sgd(SgdParams {
                lr: f(lr),
                momentum: f(c.momentum),
                dampening: f(c.dampening),
                weight_decay: f(c.weight_decay),
                nesterov: flag(c.nesterov),
                first_step: flag(t == 1),
            }),
            OptimConfig::Adagrad(c) => OptimStep::Adagrad(AdagradParams {
                clr: f(lr / (1.0 + (t as f64 - 1.0) * c.lr_decay)),
                weight_decay: f(c.weight_decay),
                eps: f(c.eps),
            }),
            OptimConfig::Rmsprop(c) => OptimStep::Rmsprop(RmspropParams {
                lr: f(lr),
                alpha: f(c.alpha),
                eps: f(c.eps),
                weight_decay: f(c.weight_decay),
                momentum: f(c.momentum),
                centered: flag(c.centered),
            }),
            OptimConfig::Adam(c) | OptimConfig::Adamw(c) => {
                let (b1, b2) = c.betas;
                OptimStep::Adam(AdamParams {
                    lr: f(lr),
                    beta1: f(b1),
                    beta2: f(b2),
                    eps: f(c.eps),
                    weight_decay: f(c.weight_decay),
                    step_size: f(lr / (1.0 - b1.powi(t as i32))),
                    bc2_sqrt: f((1.0 - b2.powi(t as i32)).sqrt()),
                    decoupled: flag(matches!(self, OptimConfig::Adamw(_))),
                    amsgrad: flag(c.amsgrad),
                })
            }
            OptimConfig::LectureMomentum(c) => OptimStep::LectureMomentum(LectureMomentumParams {
                lr: f(lr),
                momentum: f(c.momentum),
                weight_decay: f(c.weight_decay),
            }),
        }
    }

    /// The state slots this configuration keeps, in the order buffers are allocated and stored
    /// (the kernel's binding order, filtered by the settings).
    pub fn slots(&self) -> Vec<Slot> {
        self.kernel_step(1, self.lr()).slots()
    }

    /// Names of the state buffers, in slot order (PyTorch's `state_dict()` names).
    pub fn state_names(&self) -> Vec<&'static str> {
        self.slots().into_iter().map(Slot::name).collect()
    }

    /// Initial value of each state slot.
    pub fn state_init(&self) -> f32 {
        match self {
            OptimConfig::Adagrad(c) => c.initial_accumulator_value as f32,
            _ => 0.0,
        }
    }

    /// Bytes one step moves per parameter: reads of p, g and each state slot, writes of p and
    /// each state slot (the figure a bandwidth bench divides by). At 8 bits each slot is one
    /// byte read and written; the per-block absmax and table (0.125 bytes per parameter) are
    /// left out.
    pub fn bytes_per_param(&self) -> usize {
        let slot = match self.optim_bits() {
            OptimBits::B32 => 4,
            OptimBits::B16 => 2,
            OptimBits::B8 => 1,
        };
        12 + 2 * slot * self.slots().len()
    }

    /// Bytes of state for a flat buffer of `n` parameters (one tensor): at 8 bits the codes,
    /// the absmax of each block, and f32 state when `n` is under `quant::MIN_8BIT_SIZE`.
    pub fn state_bytes(&self, n: usize) -> u64 {
        let slots = self.slots().len() as u64;
        match self.optim_bits() {
            OptimBits::B32 => 4 * slots * n as u64,
            OptimBits::B16 => 4 * slots * n.div_ceil(2) as u64,
            OptimBits::B8 => quant::state_bytes_8bit(n),
        }
    }
}

/// Where an optimizer's state lives on its device, by width.
pub enum OptimState {
    /// One f32 buffer per slot, as long as the arena.
    F32(Vec<View>),
    /// One buffer per slot holding two bfloat16 values per word (whole buffers, in words).
    Bf16(Vec<View>),
    /// Adam's blockwise 8-bit state, and the layout it was built for.
    Blockwise8 {
        /// The buffers the kernels bind.
        buffers: Blockwise8,
        /// Every block of every tensor (the table on the device lists the trainable ones).
        table: BlockTable,
        /// The trainable ranges the device's table was written for.
        uploaded_for: Vec<std::ops::Range<usize>>,
    },
}

/// The state as stored, read back for checkpoints (arena-indexed where per element).
#[derive(Clone, Debug, PartialEq)]
pub enum StoredState {
    /// Each slot's f32 values.
    F32(Vec<Vec<f32>>),
    /// Each slot's bfloat16 bits.
    Bf16(Vec<Vec<u16>>),
    /// exp_avg and exp_avg_sq as codes, absmax per quantized block, and the small tensors'
    /// f32 state (in the order of [`BlockTable::blocks`]).
    Blockwise8 {
        /// Codes per arena element: exp_avg's, exp_avg_sq's.
        codes: [Vec<u8>; 2],
        /// Absmax per quantized block: exp_avg's, exp_avg_sq's.
        absmax: [Vec<f32>; 2],
        /// f32 state of the small tensors: exp_avg's, exp_avg_sq's.
        small: [Vec<f32>; 2],
    },
}

/// An optimizer bound to a device: its configuration, schedule, step count and its state,
/// parallel to the parameter arena.
pub struct Optimizer {
    /// Hyperparameters.
    pub config: OptimConfig,
    /// How the learning rate changes with the step.
    pub schedule: Schedule,
    /// Steps taken so far (PyTorch's `step`).
    pub step: u64,
    /// Parameters updated (the arena's length, padding included).
    pub n: usize,
    /// The state buffers.
    pub state: OptimState,
}

impl Optimizer {
    /// An optimizer for every tensor of `arena`, its state zeroed (or PyTorch's initial value).
    /// At 8 bits each tensor is quantized in blocks of its own; tensors under
    /// `quant::MIN_8BIT_SIZE` elements keep f32 state.
    pub fn new(dev: &mut Device, arena: &ParamArena, config: OptimConfig, schedule: Schedule) -> Result<Optimizer> {
        let tensors: Vec<(usize, usize)> = arena.entries.iter().map(|e| (e.offset, e.len())).collect();
        Optimizer::build(dev, config, schedule, arena.len(), &tensors)
    }

    /// An optimizer for a flat buffer of `n` parameters (benchmarks, replays), stepped with
    /// [`Optimizer::step_views`]: one tensor (quantized at 8 bits when `n` reaches
    /// `quant::MIN_8BIT_SIZE`).
    pub fn for_len(dev: &mut Device, config: OptimConfig, schedule: Schedule, n: usize) -> Result<Optimizer> {
        Optimizer::build(dev, config, schedule, n, &[(0, n)])
    }

    /// An optimizer for flat buffers of `n` parameters holding tensors at `(offset, len)`
    /// (offsets multiples of 4): at 8 bits each tensor is quantized in blocks of its own.
    pub fn for_tensors(
        dev: &mut Device,
        config: OptimConfig,
        schedule: Schedule,
        n: usize,
        tensors: &[(usize, usize)],
    ) -> Result<Optimizer> {
        ensure!(
            tensors.iter().all(|&(at, len)| at % 4 == 0 && at + len <= n),
            "tensors must start at multiples of 4 and end within the {n} parameters"
        );
        Optimizer::build(dev, config, schedule, n, tensors)
    }

    fn build(
        dev: &mut Device,
        config: OptimConfig,
        schedule: Schedule,
        n: usize,
        tensors: &[(usize, usize)],
    ) -> Result<Optimizer> {
        config.validate()?;
        let slots = config.state_names().len();
        let init = config.state_init();
        let state = match config.optim_bits() {
            OptimBits::B32 => {
                let mut v = Vec::new();
                for _ in 0..slots {
                    let s = dev.alloc(n)?;
                    dev.fill(s, init);
                    v.push(s);
                }
                OptimState::F32(v)
            }
            OptimBits::B16 => {
                let h = quant::bf16_from_f32(init) as u32;
                let mut v = Vec::new();
                for _ in 0..slots {
                    let s = dev.alloc(n.div_ceil(2))?;
                    dev.fill(s, f32::from_bits(h | h << 16));
                    v.push(s);
                }
                OptimState::Bf16(v)
            }
            OptimBits::B8 => {
                let table = BlockTable::new(tensors, n);
                let zeros = |c: u8| f32::from_bits(u32::from_le_bytes([c; 4]));
                let m_codes = dev.alloc(table.code_words())?;
                dev.fill(m_codes, zeros(quant::DynamicMap::signed().zero));
                let v_codes = dev.alloc(table.code_words())?;
                dev.fill(v_codes, zeros(quant::DynamicMap::unsigned().zero));
                let absmax = dev.alloc_zeroed(2 * table.quantized_blocks)?;
                let small = dev.alloc_zeroed(2 * table.small_len)?;
                let words = table.words();
                let table_view = dev.alloc(words.len())?;
                let buffers = Blockwise8 {
                    m_codes,
                    v_codes,
                    absmax,
                    small,
                    table: table_view,
                    rows: std::sync::Arc::new(table.blocks.clone()),
                    quantized_blocks: table.quantized_blocks,
                    small_len: table.small_len,
                };
                let values: Vec<f32> = words.into_iter().map(f32::from_bits).collect();
                dev.write(table_view, &values)?;
                OptimState::Blockwise8 { buffers, table, uploaded_for: std::iter::once(0..n).collect() }
            }
        };
        Ok(Optimizer { config, schedule, step: 0, n, state })
    }

    /// The learning rate used for step index `t` (0-based).
    pub fn lr_at(&self, t: u64) -> f64 {
        self.schedule.lr(self.config.lr(), t)
    }

    /// One step over `arena` from the gradients in it: a single fused kernel launch (at 32 and
    /// 16 bits one per run of trainable tensors when some are frozen; at 8 bits one, over the
    /// trainable tensors' blocks).
    pub fn step(&mut self, dev: &mut Device, arena: &ParamArena) -> Result<()> {
        ensure!(
            arena.len() == self.n,
            "this optimizer was built for {} parameters, the arena holds {} (build it with Optimizer::new from the same arena)",
            self.n,
            arena.len()
        );
        let ranges = arena.trainable_ranges();
        self.step_ranges(dev, arena.params, arena.grads, &ranges)
    }

    /// One fused step over flat `params` and `grads` of the length the optimizer was built for.
    pub fn step_views(&mut self, dev: &mut Device, params: View, grads: View) {
        debug_assert!(params.len == self.n && grads.len == self.n);
        let n = self.n;
        let whole: Vec<std::ops::Range<usize>> = std::iter::once(0..n).collect();
        if let Err(e) = self.step_ranges(dev, params, grads, &whole) {
            unreachable!("a flat step has nothing to check: {e}");
        }
    }

    /// One step over the parts `ranges` of flat `params` and `grads` (the length the optimizer
    /// was built for): one launch per range at 32 and 16 bits (16: ranges start at even
    /// offsets), one over the ranges' blocks at 8.
    pub fn step_ranges(
        &mut self,
        dev: &mut Device,
        params: View,
        grads: View,
        ranges: &[std::ops::Range<usize>],
    ) -> Result<()> {
        ensure!(
            ranges.iter().all(|r| r.end <= self.n),
            "a range past the {} parameters this optimizer was built for",
            self.n
        );
        if matches!(self.state, OptimState::Bf16(_)) {
            ensure!(ranges.iter().all(|r| r.start % 2 == 0), "bfloat16 state is stepped from even offsets");
        }
        let k = self.next_step();
        match &mut self.state {
            OptimState::F32(slots) => {
                for r in ranges {
                    let s: Vec<View> = slots.iter().map(|v| v.slice(r.start, r.len())).collect();
                    dev.optim_step(&k, params.slice(r.start, r.len()), grads.slice(r.start, r.len()), &s);
                }
            }
            OptimState::Bf16(slots) => {
                for r in ranges {
                    let s: Vec<View> =
                        slots.iter().map(|v| View { buf: v.buf, offset: r.start, len: r.len() }).collect();
                    dev.optim_step_bf16(&k, params.slice(r.start, r.len()), grads.slice(r.start, r.len()), &s);
                }
            }
            OptimState::Blockwise8 { buffers, table, uploaded_for } => {
                let OptimStep::Adam(h) = k else { unreachable!("validate allows 8 bits for adam and adamw only") };
                if uploaded_for.as_slice() != ranges {
                    // Some tensors were frozen or unfrozen: list the trainable tensors' blocks.
                    let inside = |b: &quant::Block| ranges.iter().any(|r| r.contains(&b.start));
                    let rows =
                        BlockTable { blocks: table.blocks.iter().copied().filter(inside).collect(), ..table.clone() };
                    let values: Vec<f32> = rows.words().into_iter().map(f32::from_bits).collect();
                    dev.write(buffers.table.slice(0, values.len()), &values)?;
                    buffers.rows = std::sync::Arc::new(rows.blocks);
                    *uploaded_for = ranges.to_vec();
                }
                dev.adam_step_8bit(&h, params, grads, buffers);
            }
        }
        Ok(())
    }

    /// Count a step and compute its kernel scalars.
    fn next_step(&mut self) -> OptimStep {
        let lr = self.lr_at(self.step);
        self.step += 1;
        self.config.kernel_step(self.step, lr)
    }

    /// Give the state buffers back to the device's pool.
    pub fn release(self, dev: &mut Device) {
        match self.state {
            OptimState::F32(v) | OptimState::Bf16(v) => v.into_iter().for_each(|v| dev.release(v)),
            OptimState::Blockwise8 { buffers: b, .. } => {
                for v in [b.m_codes, b.v_codes, b.absmax, b.small, b.table] {
                    dev.release(v);
                }
            }
        }
    }

    /// The state as PyTorch's `state_dict()` names it, as f32 values per arena element
    /// (bfloat16 and 8-bit state dequantized; padding 0). At 8 bits two more entries follow
    /// when some tensor is quantized: `exp_avg_absmax` and `exp_avg_sq_absmax`, one value per
    /// quantized block.
    pub fn read_state(&self, dev: &mut Device) -> Result<Vec<(&'static str, Vec<f32>)>> {
        crate::backend::wait(self.read_state_async(dev))
    }

    /// [`Optimizer::read_state`] as a future (for a browser's WebGPU device).
    pub async fn read_state_async(&self, dev: &mut Device) -> Result<Vec<(&'static str, Vec<f32>)>> {
        let names = self.config.state_names();
        Ok(match self.read_stored_async(dev).await? {
            StoredState::F32(v) => names.into_iter().zip(v).collect(),
            StoredState::Bf16(v) => {
                names.into_iter().zip(v).map(|(n, h)| (n, h.into_iter().map(quant::bf16_to_f32).collect())).collect()
            }
            StoredState::Blockwise8 { codes, absmax, small } => {
                let OptimState::Blockwise8 { table, .. } = &self.state else { unreachable!("8-bit state") };
                let maps = [quant::DynamicMap::signed(), quant::DynamicMap::unsigned()];
                let mut out = Vec::new();
                for k in 0..2 {
                    let mut v = vec![0f32; self.n];
                    for b in &table.blocks {
                        let r = b.start..b.start + b.len;
                        match b.kind {
                            quant::BlockKind::Quantized => {
                                for i in r {
                                    v[i] = maps[k].decode(codes[k][i], absmax[k][b.index]);
                                }
                            }
                            quant::BlockKind::Full => v[r].copy_from_slice(&small[k][b.index..b.index + b.len]),
                        }
                    }
                    out.push((names[k], v));
                }
                if table.quantized_blocks > 0 {
                    let [ma, va] = absmax;
                    out.push(("exp_avg_absmax", ma));
                    out.push(("exp_avg_sq_absmax", va));
                }
                out
            }
        })
    }

    /// The state as a new optimizer of this configuration and layout holds it (every slot at
    /// its initial value, codes of zero), built on the host: what a checkpoint's tensors are
    /// written into before [`Optimizer::write_stored`].
    pub fn initial_stored(&self) -> StoredState {
        let (slots, init) = (self.config.state_names().len(), self.config.state_init());
        match &self.state {
            OptimState::F32(_) => StoredState::F32(vec![vec![init; self.n]; slots]),
            OptimState::Bf16(_) => StoredState::Bf16(vec![vec![quant::bf16_from_f32(init); self.n]; slots]),
            OptimState::Blockwise8 { table, .. } => StoredState::Blockwise8 {
                codes: [quant::DynamicMap::signed().zero, quant::DynamicMap::unsigned().zero].map(|z| vec![z; self.n]),
                absmax: [vec![0.0; table.quantized_blocks], vec![0.0; table.quantized_blocks]],
                small: [vec![0.0; table.small_len], vec![0.0; table.small_len]],
            },
        }
    }

    /// The state exactly as stored (checkpoints keep these bits).
    pub fn read_stored(&self, dev: &mut Device) -> Result<StoredState> {
        crate::backend::wait(self.read_stored_async(dev))
    }

    /// [`Optimizer::read_stored`] as a future (for a browser's WebGPU device).
    pub async fn read_stored_async(&self, dev: &mut Device) -> Result<StoredState> {
        let bits = |v: Vec<f32>| -> Vec<u32> { v.into_iter().map(f32::to_bits).collect() };
        Ok(match &self.state {
            OptimState::F32(slots) => {
                let mut out = Vec::new();
                for &v in slots {
                    out.push(dev.read_async(v).await?);
                }
                StoredState::F32(out)
            }
            OptimState::Bf16(slots) => {
                let mut out = Vec::new();
                for &v in slots {
                    let words = bits(dev.read_async(v).await?);
                    let mut h: Vec<u16> = words.iter().flat_map(|w| [*w as u16, (*w >> 16) as u16]).collect();
                    h.truncate(self.n);
                    out.push(h);
                }
                StoredState::Bf16(out)
            }
            OptimState::Blockwise8 { buffers: b, .. } => {
                let mut codes = [Vec::new(), Vec::new()];
                for (k, v) in [b.m_codes, b.v_codes].into_iter().enumerate() {
                    let words = bits(dev.read_async(v).await?);
                    let mut c: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
                    c.truncate(self.n);
                    codes[k] = c;
                }
                let split = |mut v: Vec<f32>, half: usize| {
                    v.truncate(2 * half);
                    let second = v.split_off(half);
                    [v, second]
                };
                let absmax = split(dev.read_async(b.absmax).await?, b.quantized_blocks);
                let small = split(dev.read_async(b.small).await?, b.small_len);
                StoredState::Blockwise8 { codes, absmax, small }
            }
        })
    }

    /// Overwrite the state with `stored` (from [`Optimizer::read_stored`] of an optimizer of
    /// the same configuration and layout).
    pub fn write_stored(&mut self, dev: &mut Device, stored: &StoredState) -> Result<()> {
        let floats = |w: &[u32]| -> Vec<f32> { w.iter().map(|&x| f32::from_bits(x)).collect() };
        match (&self.state, stored) {
            (OptimState::F32(slots), StoredState::F32(v)) if v.len() == slots.len() => {
                for (&s, data) in slots.iter().zip(v) {
                    dev.write(s, data)?;
                }
            }
            (OptimState::Bf16(slots), StoredState::Bf16(v)) if v.len() == slots.len() => {
                for (&s, h) in slots.iter().zip(v) {
                    ensure!(h.len() == self.n, "bf16 state of {} values for {} parameters", h.len(), self.n);
                    let words: Vec<u32> =
                        h.chunks(2).map(|p| p[0] as u32 | (p.get(1).copied().unwrap_or(0) as u32) << 16).collect();
                    dev.write(s, &floats(&words))?;
                }
            }
            (OptimState::Blockwise8 { buffers: b, .. }, StoredState::Blockwise8 { codes, absmax, small }) => {
                for (v, c) in [b.m_codes, b.v_codes].into_iter().zip(codes) {
                    ensure!(c.len() == self.n, "8-bit codes for {} values, {} parameters", c.len(), self.n);
                    let mut c = c.clone();
                    c.resize(4 * v.len, 0);
                    let words: Vec<u32> =
                        c.chunks_exact(4).map(|x| u32::from_le_bytes(x.try_into().expect("4 bytes"))).collect();
                    dev.write(v, &floats(&words))?;
                }
                let join = |pair: &[Vec<f32>; 2], len: usize, what: &str| -> Result<Vec<f32>> {
                    ensure!(pair.iter().all(|x| x.len() == len), "{what}: {} values, expected {len}", pair[0].len());
                    let mut all = [pair[0].as_slice(), pair[1].as_slice()].concat();
                    all.resize(all.len().max(1), 0.0);
                    Ok(all)
                };
                dev.write(b.absmax, &join(absmax, b.quantized_blocks, "absmax")?)?;
                dev.write(b.small, &join(small, b.small_len, "small-tensor state")?)?;
            }
            _ => bail!(
                "the stored state is of another width or has other slots than this {}-bit {} optimizer",
                self.config.optim_bits().bits(),
                self.config.name()
            ),
        }
        Ok(())
    }

    /// The block layout at 8 bits (None at 32 and 16).
    pub fn block_table(&self) -> Option<&BlockTable> {
        match &self.state {
            OptimState::Blockwise8 { table, .. } => Some(table),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_fills_pytorchs_defaults_per_optimizer() {
        let c = OptimConfig::from_json(&json!({"name": "adamw", "lr": 0.01}), "o").unwrap();
        assert_eq!(c, OptimConfig::Adamw(Adam { lr: 0.01, weight_decay: 0.01, ..Adam::default() }));
        let c = OptimConfig::from_json(&json!({"name": "adam", "betas": [0.8, 0.9]}), "o").unwrap();
        assert_eq!(c, OptimConfig::Adam(Adam { betas: (0.8, 0.9), ..Adam::default() }));
        assert_eq!(
            c.to_json(),
            json!({"name": "adam", "lr": 1e-3, "betas": [0.8, 0.9], "eps": 1e-8, "weight_decay": 0.0, "amsgrad": false})
        );
        assert_eq!(c.keys(), ["amsgrad", "betas", "eps", "lr", "weight_decay"]);
    }

    #[test]
    fn json_rejects_unknown_names_keys_and_types() {
        let err = |v: Value| format!("{:#}", OptimConfig::from_json(&v, "o").unwrap_err());
        assert!(err(json!({"name": "Adam"})).contains("unknown optimizer 'Adam'"));
        assert!(err(json!({"lr": 0.1})).contains("o.name: missing"));
        assert!(err(json!({"name": "sgd", "betas": [0.9, 0.99]})).contains("'sgd' takes no 'betas'"));
        assert!(err(json!({"name": "sgd", "lr": "fast"})).contains("o.lr: expected a number"));
        assert!(err(json!({"name": "sgd", "nesterov": 1})).contains("o.nesterov: expected true or false"));
        assert!(err(json!({"name": "adam", "betas": [0.9]})).contains("o.betas: expected an array of 2 numbers"));
        assert!(err(json!({"name": "adam", "lr": -1})).contains("invalid lr: -1"));
        // The derived form alone (no defaults filled in) rejects unknown keys too.
        let full = OptimConfig::defaults("rmsprop").unwrap().to_json();
        let mut extra = full.clone();
        extra["maximize"] = json!(true);
        assert!(serde_json::from_value::<OptimConfig>(extra).is_err());
        assert!(serde_json::from_value::<OptimConfig>(full).is_ok());
    }

    #[test]
    fn slots_are_named_once_in_kernel_order() {
        let c = OptimConfig::Rmsprop(Rmsprop { momentum: 0.9, centered: true, ..Rmsprop::default() });
        assert_eq!(c.state_names(), ["square_avg", "momentum_buffer", "grad_avg"]);
        let c = OptimConfig::Rmsprop(Rmsprop { centered: true, ..Rmsprop::default() });
        assert_eq!(c.state_names(), ["square_avg", "grad_avg"]);
        assert_eq!(OptimConfig::Sgd(Sgd::default()).state_names(), Vec::<&str>::new());
        let c = OptimConfig::Adam(Adam { amsgrad: true, ..Adam::default() });
        assert_eq!(c.state_names(), ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]);
        assert_eq!(c.bytes_per_param(), 36);
    }
}
