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
use crate::backend::Device;
pub use crate::backend::{OptimStep, Slot};
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
}

impl Default for Sgd {
    fn default() -> Sgd {
        Sgd { lr: 1e-3, momentum: 0.0, dampening: 0.0, nesterov: false, weight_decay: 0.0 }
    }
}

impl Default for Adagrad {
    fn default() -> Adagrad {
        Adagrad { lr: 1e-2, lr_decay: 0.0, weight_decay: 0.0, initial_accumulator_value: 0.0, eps: 1e-10 }
    }
}

impl Default for Rmsprop {
    fn default() -> Rmsprop {
        Rmsprop { lr: 1e-2, alpha: 0.99, eps: 1e-8, weight_decay: 0.0, momentum: 0.0, centered: false }
    }
}

impl Default for Adam {
    /// Adam's defaults; AdamW's differ in `weight_decay` (see [`Adam::adamw`]).
    fn default() -> Adam {
        Adam { lr: 1e-3, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.0, amsgrad: false }
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
        LectureMomentum { lr: 1e-2, momentum: 0.9, weight_decay: 0.0 }
    }
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
        match self {
            OptimConfig::Sgd(c) => c.lr,
            OptimConfig::Adagrad(c) => c.lr,
            OptimConfig::Rmsprop(c) => c.lr,
            OptimConfig::Adam(c) | OptimConfig::Adamw(c) => c.lr,
            OptimConfig::LectureMomentum(c) => c.lr,
        }
    }

    /// Set the base learning rate (every optimizer has one).
    pub fn set_lr(&mut self, lr: f64) {
        match self {
            OptimConfig::Sgd(c) => c.lr = lr,
            OptimConfig::Adagrad(c) => c.lr = lr,
            OptimConfig::Rmsprop(c) => c.lr = lr,
            OptimConfig::Adam(c) | OptimConfig::Adamw(c) => c.lr = lr,
            OptimConfig::LectureMomentum(c) => c.lr = lr,
        }
    }

    /// This configuration with base learning rate `lr`.
    pub fn with_lr(mut self, lr: f64) -> OptimConfig {
        self.set_lr(lr);
        self
    }

    /// The weight decay (every optimizer has one: L2, or decoupled for AdamW).
    pub fn weight_decay(&self) -> f64 {
        match self {
            OptimConfig::Sgd(c) => c.weight_decay,
            OptimConfig::Adagrad(c) => c.weight_decay,
            OptimConfig::Rmsprop(c) => c.weight_decay,
            OptimConfig::Adam(c) | OptimConfig::Adamw(c) => c.weight_decay,
            OptimConfig::LectureMomentum(c) => c.weight_decay,
        }
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
    /// each state slot (the figure a bandwidth bench divides by).
    pub fn bytes_per_param(&self) -> usize {
        4 * (2 + 1 + 2 * self.slots().len())
    }
}

/// An optimizer bound to a device: its configuration, schedule, step count and its state, one
/// flat buffer per slot, parallel to the parameter arena.
pub struct Optimizer {
    /// Hyperparameters.
    pub config: OptimConfig,
    /// How the learning rate changes with the step.
    pub schedule: Schedule,
    /// Steps taken so far (PyTorch's `step`).
    pub step: u64,
    /// Parameters updated (the arena's length, padding included).
    pub n: usize,
    /// One buffer per state slot, parallel to the parameters.
    pub state: Vec<View>,
}

impl Optimizer {
    /// An optimizer for every tensor of `arena`, its state zeroed (or PyTorch's initial value).
    pub fn new(dev: &mut Device, arena: &ParamArena, config: OptimConfig, schedule: Schedule) -> Result<Optimizer> {
        Optimizer::for_len(dev, config, schedule, arena.len())
    }

    /// An optimizer for a flat buffer of `n` parameters (benchmarks, replays), stepped with
    /// [`Optimizer::step_views`].
    pub fn for_len(dev: &mut Device, config: OptimConfig, schedule: Schedule, n: usize) -> Result<Optimizer> {
        config.validate()?;
        let mut state = Vec::new();
        for _ in config.state_names() {
            let v = dev.alloc(n)?;
            dev.fill(v, config.state_init());
            state.push(v);
        }
        Ok(Optimizer { config, schedule, step: 0, n, state })
    }

    /// The learning rate used for step index `t` (0-based).
    pub fn lr_at(&self, t: u64) -> f64 {
        self.schedule.lr(self.config.lr(), t)
    }

    /// State slot `i`, in [`OptimConfig::state_names`] order.
    pub fn slot(&self, i: usize) -> View {
        self.state[i]
    }

    /// Views of the state slots, each restricted to `[offset, offset + len)` of the arena.
    pub fn slots_for(&self, offset: usize, len: usize) -> Vec<View> {
        (0..self.config.state_names().len()).map(|i| self.slot(i).slice(offset, len)).collect()
    }

    /// One step over `arena` from the gradients in it: a single fused kernel launch (one per
    /// run of trainable tensors when some are frozen).
    pub fn step(&mut self, dev: &mut Device, arena: &ParamArena) -> Result<()> {
        ensure!(
            arena.len() == self.n,
            "this optimizer was built for {} parameters, the arena holds {} (build it with Optimizer::new from the same arena)",
            self.n,
            arena.len()
        );
        let k = self.next_step();
        for r in arena.trainable_ranges() {
            let (at, len) = (r.start, r.len());
            dev.optim_step(&k, arena.params.slice(at, len), arena.grads.slice(at, len), &self.slots_for(at, len));
        }
        Ok(())
    }

    /// One fused step over flat `params` and `grads` of the length the optimizer was built for.
    pub fn step_views(&mut self, dev: &mut Device, params: View, grads: View) {
        debug_assert!(params.len == self.n && grads.len == self.n);
        let k = self.next_step();
        let slots = self.slots_for(0, self.n);
        dev.optim_step(&k, params, grads, &slots);
    }

    /// Count a step and compute its kernel scalars.
    fn next_step(&mut self) -> OptimStep {
        let lr = self.lr_at(self.step);
        self.step += 1;
        self.config.kernel_step(self.step, lr)
    }

    /// Give the state buffers back to the device's pool.
    pub fn release(self, dev: &mut Device) {
        for v in self.state {
            dev.release(v);
        }
    }

    /// The state as PyTorch's `state_dict()` names it.
    pub fn read_state(&self, dev: &mut Device) -> Result<Vec<(&'static str, Vec<f32>)>> {
        let names = self.config.state_names();
        let mut out = Vec::new();
        for (i, name) in names.into_iter().enumerate() {
            out.push((name, dev.read(self.slot(i))?));
        }
        Ok(out)
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
