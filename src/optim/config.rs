//! The optimizers' hyperparameters: one typed struct per optimizer with PyTorch's names and
//! defaults, their checks, their JSON form, and the kernel step each becomes.

use super::{OptimBits, OptimStep, Slot};
use crate::backend::optim_kernel::*;
use crate::backend::quant::{self};
use anyhow::{bail, Context, Result};
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

    /// Whether this optimizer, with its other settings, has a form with state at `bits`: every
    /// optimizer at 32 and 16 bits, Adam and AdamW without AMSGrad at 8. The error says which
    /// width to use instead; `compare` and `bench` ask it before running a width.
    pub fn supports(&self, bits: OptimBits) -> Result<()> {
        if bits == OptimBits::B8 {
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
        Ok(())
    }

    /// PyTorch's constructor checks, with a message that says what to use instead.
    pub fn validate(&self) -> Result<()> {
        self.supports(self.optim_bits())?;
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
