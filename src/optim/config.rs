//! [`OptimConfig`]: which optimizer, with its hyperparameters (`hyper.rs`); their checks, their
//! JSON form, and the kernel step each becomes.

pub use super::hyper::*;
use super::{OptimBits, OptimStep, Slot};
use crate::backend::optim_kernel::*;
use crate::backend::quant::{self};
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The optimizers [`OptimConfig::defaults`] knows, as their JSON and CLI names spell them.
pub const OPTIMIZER_NAMES: [&str; 11] =
    ["sgd", "adagrad", "rmsprop", "adam", "adamw", "lecture_momentum", "nadam", "radam", "adamax", "adadelta", "lion"];

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
    /// `torch.optim.NAdam` (NAdamW with `decoupled_weight_decay`).
    Nadam(Nadam),
    /// `torch.optim.RAdam` (RAdamW with `decoupled_weight_decay`).
    Radam(Radam),
    /// `torch.optim.Adamax`.
    Adamax(Adamax),
    /// `torch.optim.Adadelta`.
    Adadelta(Adadelta),
    /// Lion (Chen et al. 2023) as lion-pytorch and bitsandbytes compute it.
    Lion(Lion),
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
            OptimConfig::Nadam($c) => $body,
            OptimConfig::Radam($c) => $body,
            OptimConfig::Adamax($c) => $body,
            OptimConfig::Adadelta($c) => $body,
            OptimConfig::Lion($c) => $body,
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

/// Each beta in [0, 1), or [0, 1] where 1 is meaningful (`closed`: Lion's, as lion-pytorch
/// checks them).
fn check_betas(betas: (f64, f64), closed: bool) -> Result<()> {
    for (i, b) in [betas.0, betas.1].into_iter().enumerate() {
        let ok = b.is_finite() && b >= 0.0 && if closed { b <= 1.0 } else { b < 1.0 };
        if !ok {
            bail!("invalid beta parameter at index {i}: {b} (must be in [0, 1{})", if closed { "]" } else { ")" });
        }
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
            "nadam" => OptimConfig::Nadam(Nadam::default()),
            "radam" => OptimConfig::Radam(Radam::default()),
            "adamax" => OptimConfig::Adamax(Adamax::default()),
            "adadelta" => OptimConfig::Adadelta(Adadelta::default()),
            "lion" => OptimConfig::Lion(Lion::default()),
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
            OptimConfig::Nadam(_) => "nadam",
            OptimConfig::Radam(_) => "radam",
            OptimConfig::Adamax(_) => "adamax",
            OptimConfig::Adadelta(_) => "adadelta",
            OptimConfig::Lion(_) => "lion",
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

    /// Whether it ascends (PyTorch's `maximize`, which every optimizer takes).
    pub fn maximize(&self) -> bool {
        each_config!(self, c => c.maximize)
    }

    /// Which way its steps go: [`Objective::Maximize`] with `maximize`.
    pub fn objective(&self) -> Objective {
        Objective::from_maximize(self.maximize())
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
            // So does maximize, left out while false.
            if key == "maximize" {
                ensure!(val.is_boolean(), "{path}.maximize: expected true or false");
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
                check_betas(c.betas, false)?;
            }
            OptimConfig::Nadam(c) => {
                check_lr(c.lr)?;
                check_nonneg(c.weight_decay, "weight_decay")?;
                check_nonneg(c.momentum_decay, "momentum_decay")?;
                check_eps(c.eps)?;
                check_betas(c.betas, false)?;
            }
            OptimConfig::Radam(c) => {
                check_lr(c.lr)?;
                check_nonneg(c.weight_decay, "weight_decay")?;
                check_eps(c.eps)?;
                check_betas(c.betas, false)?;
            }
            OptimConfig::Adamax(c) => {
                check_lr(c.lr)?;
                check_nonneg(c.weight_decay, "weight_decay")?;
                check_eps(c.eps)?;
                check_betas(c.betas, false)?;
            }
            OptimConfig::Adadelta(c) => {
                check_lr(c.lr)?;
                check_nonneg(c.weight_decay, "weight_decay")?;
                check_eps(c.eps)?;
                check_unit(c.rho, "rho")?;
            }
            OptimConfig::Lion(c) => {
                check_lr(c.lr)?;
                check_nonneg(c.weight_decay, "weight_decay")?;
                check_betas(c.betas, true)?;
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
            OptimConfig::Nadam(c) => {
                let (b1, b2) = c.betas;
                let mu = |s: u64| nadam_mu(b1, c.momentum_decay, s);
                let product = nadam_mu_product(b1, c.momentum_decay, t);
                OptimStep::Nadam(NadamParams {
                    lr: f(lr),
                    beta1: f(b1),
                    beta2: f(b2),
                    eps: f(c.eps),
                    weight_decay: f(c.weight_decay),
                    grad_step: f(lr * (1.0 - mu(t)) / (1.0 - product)),
                    avg_step: f(lr * mu(t + 1) / (1.0 - product * mu(t + 1))),
                    bc2_sqrt: f((1.0 - b2.powi(t as i32)).sqrt()),
                    decoupled: flag(c.decoupled_weight_decay),
                })
            }
            OptimConfig::Radam(c) => {
                let (b1, b2) = c.betas;
                let bc2 = 1.0 - b2.powi(t as i32);
                let rect = radam_rectification(b2, t);
                OptimStep::Radam(RadamParams {
                    lr: f(lr),
                    beta1: f(b1),
                    beta2: f(b2),
                    eps: f(c.eps),
                    weight_decay: f(c.weight_decay),
                    step_size: f(lr / (1.0 - b1.powi(t as i32))),
                    adaptive_scale: f(rect.map_or(0.0, |r| r * bc2.sqrt())),
                    rectified: flag(rect.is_some()),
                    decoupled: flag(c.decoupled_weight_decay),
                })
            }
            OptimConfig::Adamax(c) => {
                let (b1, b2) = c.betas;
                OptimStep::Adamax(AdamaxParams {
                    beta1: f(b1),
                    beta2: f(b2),
                    eps: f(c.eps),
                    weight_decay: f(c.weight_decay),
                    clr: f(lr / (1.0 - b1.powi(t as i32))),
                })
            }
            OptimConfig::Adadelta(c) => OptimStep::Adadelta(AdadeltaParams {
                lr: f(lr),
                rho: f(c.rho),
                eps: f(c.eps),
                weight_decay: f(c.weight_decay),
            }),
            OptimConfig::Lion(c) => OptimStep::Lion(LionParams {
                lr: f(lr),
                beta1: f(c.betas.0),
                beta2: f(c.betas.1),
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

/// NAdam's momentum coefficient of step `t`: μ_t = β1·(1 − ½·0.96^(t·ψ)).
pub fn nadam_mu(beta1: f64, momentum_decay: f64, t: u64) -> f64 {
    beta1 * (1.0 - 0.5 * 0.96f64.powf(t as f64 * momentum_decay))
}

/// NAdam's `mu_product` after step `t`, Π_{s=1..t} μ_s, in closed form so that it is a pure
/// function of `t` (no host state, nothing more in a checkpoint, O(1) per step):
/// ln Π(1 − ½qˢ) = −Σ_k (½)ᵏ/k · qᵏ(1 − q^{kt})/(1 − qᵏ) with q = 0.96^ψ, a series whose terms
/// shrink by at least ½ each. PyTorch multiplies the factors one by one; the two agree to
/// about 1e-15 relative (tested against the product).
pub fn nadam_mu_product(beta1: f64, momentum_decay: f64, t: u64) -> f64 {
    if t == 0 {
        return 1.0;
    }
    let ln_q = momentum_decay * 0.96f64.ln();
    let tf = t as f64;
    let mut log_sum = 0.0;
    let mut half_k = 1.0;
    for k in 1..=60 {
        let kf = k as f64;
        half_k *= 0.5;
        // Σ_{s=1..t} q^{ks}: t when q = 1, else a geometric sum (expm1 keeps it exact near 1).
        let geometric =
            if ln_q == 0.0 { tf } else { (kf * ln_q).exp() * (kf * tf * ln_q).exp_m1() / (kf * ln_q).exp_m1() };
        let term = half_k / kf * geometric;
        log_sum -= term;
        if term < 1e-18 * log_sum.abs() {
            break;
        }
    }
    beta1.powf(tf) * log_sum.exp()
}

/// RAdam's rectification r_t at step `t`, or `None` while ρ_t ≤ 5 (PyTorch then takes the
/// unadapted step): ρ∞ = 2/(1 − β2) − 1, ρ_t = ρ∞ − 2tβ2ᵗ/(1 − β2ᵗ).
pub fn radam_rectification(beta2: f64, t: u64) -> Option<f64> {
    let rho_inf = 2.0 / (1.0 - beta2) - 1.0;
    let b2t = beta2.powi(t as i32);
    let rho_t = rho_inf - 2.0 * t as f64 * b2t / (1.0 - b2t);
    (rho_t > 5.0)
        .then(|| ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t)).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The closed form against PyTorch's running product, at the default ψ, a large one, ψ = 0
    /// and far into training.
    #[test]
    fn nadam_mu_product_is_the_running_product() {
        for (b1, psi) in [(0.9, 4e-3), (0.8, 0.5), (0.9, 0.0), (0.99, 4e-3)] {
            let mut product = 1.0f64;
            for t in 1..=200_000u64 {
                product *= nadam_mu(b1, psi, t);
                if t <= 50 || t % 9973 == 0 {
                    let closed = nadam_mu_product(b1, psi, t);
                    let rel = (closed - product).abs() / product.abs().max(f64::MIN_POSITIVE);
                    // Both underflow together far out; where they are normal they agree closely.
                    assert!(
                        rel < 1e-9 || (product < 1e-290 && closed < 1e-290),
                        "b1 {b1} psi {psi} t {t}: {closed} vs {product}"
                    );
                }
            }
        }
        assert_eq!(nadam_mu_product(0.9, 4e-3, 0), 1.0);
    }

    /// RAdam: steps 1 to 5 unrectified, step 6 the first rectified, for the β2 people use; a
    /// β2 of 0.6 (ρ∞ = 4) never rectifies.
    #[test]
    fn radam_rectifies_from_step_six() {
        for b2 in [0.9, 0.99, 0.999, 0.9999] {
            for t in 1..=5 {
                assert!(radam_rectification(b2, t).is_none(), "b2 {b2} t {t}");
            }
            let r = radam_rectification(b2, 6).expect("rectified at 6");
            assert!(r > 0.0 && r < 1.0, "{r}");
        }
        assert!((1..1000).all(|t| radam_rectification(0.6, t).is_none()));
    }
}
