//! The optimizer family with PyTorch's `torch.optim` semantics, hyperparameter names and
//! defaults, plus the lecture's own momentum form.
//!
//! The host turns hyperparameters, the step count and the scheduled learning rate into an
//! [`OptimStep`] (a kind and up to 12 ready-to-use scalars, bias corrections included); each
//! backend applies it in one fused pass over the whole parameter arena: `backend::cpu_optim`
//! (rayon) and `shaders/optim.wgsl` (WGSL). [`reference`](mod@reference) holds the plain f64 formulas that
//! tests compare both with.

pub mod reference;
pub mod schedule;

use crate::backend::Device;
pub use crate::backend::{OptimKind, OptimStep};
use crate::nn::ParamArena;
use crate::tensor::View;
use anyhow::{bail, ensure, Context, Result};
pub use schedule::Schedule;
use serde_json::{json, Value};

/// The optimizers [`OptimConfig::defaults`] knows.
pub const OPTIMIZER_NAMES: [&str; 6] = ["sgd", "adagrad", "rmsprop", "adam", "adamw", "lecture_momentum"];

/// Hyperparameters, named and defaulted as in PyTorch.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimConfig {
    /// One of [`OPTIMIZER_NAMES`].
    pub name: String,
    /// Learning rate.
    pub lr: f64,
    /// Momentum factor (SGD, RMSProp, the lecture's momentum).
    pub momentum: f64,
    /// Dampening for SGD's momentum.
    pub dampening: f64,
    /// Nesterov momentum (SGD).
    pub nesterov: bool,
    /// L2 penalty added to the gradient, or decoupled decay for AdamW.
    pub weight_decay: f64,
    /// Adagrad's learning-rate decay.
    pub lr_decay: f64,
    /// Adagrad's starting sum of squares.
    pub initial_accumulator_value: f64,
    /// RMSProp's smoothing constant.
    pub alpha: f64,
    /// RMSProp: normalise by the centered second moment.
    pub centered: bool,
    /// Adam's coefficients for the running averages of the gradient and its square.
    pub betas: (f64, f64),
    /// Added to the denominator for numerical stability.
    pub eps: f64,
    /// Adam's AMSGrad variant (the maximum of past second moments).
    pub amsgrad: bool,
}

impl OptimConfig {
    /// PyTorch's defaults for `name`.
    pub fn defaults(name: &str) -> Result<OptimConfig> {
        let mut c = OptimConfig {
            name: name.to_string(),
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            lr_decay: 0.0,
            initial_accumulator_value: 0.0,
            alpha: 0.99,
            centered: false,
            betas: (0.9, 0.999),
            eps: 1e-8,
            amsgrad: false,
        };
        match name {
            "sgd" | "adam" => {}
            "adagrad" => {
                c.lr = 1e-2;
                c.eps = 1e-10;
            }
            "rmsprop" => c.lr = 1e-2,
            "adamw" => c.weight_decay = 1e-2,
            "lecture_momentum" => {
                c.lr = 1e-2;
                c.momentum = 0.9;
            }
            _ => bail!("unknown optimizer '{name}': use one of {}", OPTIMIZER_NAMES.join(", ")),
        }
        Ok(c)
    }

    /// The hyperparameter names this optimizer takes (PyTorch's, for PyTorch's optimizers).
    pub fn keys(&self) -> &'static [&'static str] {
        match self.name.as_str() {
            "sgd" => &["lr", "momentum", "dampening", "nesterov", "weight_decay"],
            "adagrad" => &["lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"],
            "rmsprop" => &["lr", "alpha", "eps", "weight_decay", "momentum", "centered"],
            "adam" | "adamw" => &["lr", "betas", "eps", "weight_decay", "amsgrad"],
            _ => &["lr", "momentum", "weight_decay"],
        }
    }

    /// Build from a JSON object such as `{"name": "adam", "lr": 0.01, "betas": [0.9, 0.99]}`;
    /// `path` names the object in error messages.
    pub fn from_json(v: &Value, path: &str) -> Result<OptimConfig> {
        let obj = v.as_object().with_context(|| format!("{path}: expected an object"))?;
        let name = obj
            .get("name")
            .with_context(|| format!("{path}.name: missing (one of {})", OPTIMIZER_NAMES.join(", ")))?
            .as_str()
            .with_context(|| format!("{path}.name: expected a string"))?;
        let mut c = OptimConfig::defaults(name).with_context(|| format!("{path}.name"))?;
        for (key, val) in obj {
            if key == "name" {
                continue;
            }
            if !c.keys().contains(&key.as_str()) {
                bail!("{path}.{key}: '{name}' takes no '{key}' (it takes {})", c.keys().join(", "));
            }
            let num = || val.as_f64().with_context(|| format!("{path}.{key}: expected a number"));
            let flag = || val.as_bool().with_context(|| format!("{path}.{key}: expected true or false"));
            match key.as_str() {
                "lr" => c.lr = num()?,
                "momentum" => c.momentum = num()?,
                "dampening" => c.dampening = num()?,
                "nesterov" => c.nesterov = flag()?,
                "weight_decay" => c.weight_decay = num()?,
                "lr_decay" => c.lr_decay = num()?,
                "initial_accumulator_value" => c.initial_accumulator_value = num()?,
                "alpha" => c.alpha = num()?,
                "centered" => c.centered = flag()?,
                "eps" => c.eps = num()?,
                "amsgrad" => c.amsgrad = flag()?,
                "betas" => {
                    let arr = val.as_array().filter(|a| a.len() == 2);
                    let b: Option<Vec<f64>> = arr.map(|a| a.iter().filter_map(|x| x.as_f64()).collect());
                    match b {
                        Some(b) if b.len() == 2 => c.betas = (b[0], b[1]),
                        _ => bail!("{path}.betas: expected an array of two numbers, e.g. [0.9, 0.999]"),
                    }
                }
                _ => unreachable!("keys() lists only handled names"),
            }
        }
        c.validate().with_context(|| path.to_string())?;
        Ok(c)
    }

    /// The name and the hyperparameters that apply to this optimizer, under PyTorch's names:
    /// the object [`OptimConfig::from_json`] reads.
    pub fn to_json(&self) -> Value {
        let c = self;
        let mut m = serde_json::Map::new();
        m.insert("name".into(), json!(c.name));
        for key in c.keys() {
            let v = match *key {
                "lr" => json!(c.lr),
                "momentum" => json!(c.momentum),
                "dampening" => json!(c.dampening),
                "nesterov" => json!(c.nesterov),
                "weight_decay" => json!(c.weight_decay),
                "lr_decay" => json!(c.lr_decay),
                "initial_accumulator_value" => json!(c.initial_accumulator_value),
                "alpha" => json!(c.alpha),
                "centered" => json!(c.centered),
                "betas" => json!([c.betas.0, c.betas.1]),
                "eps" => json!(c.eps),
                "amsgrad" => json!(c.amsgrad),
                _ => continue,
            };
            m.insert((*key).into(), v);
        }
        Value::Object(m)
    }

    /// PyTorch's constructor checks, with a message that says what to use instead.
    pub fn validate(&self) -> Result<()> {
        let finite_nonneg = |v: f64, what: &str| -> Result<()> {
            if !v.is_finite() || v < 0.0 {
                bail!("invalid {what}: {v} (must be a finite number >= 0)");
            }
            Ok(())
        };
        if !self.lr.is_finite() || self.lr <= 0.0 {
            bail!("invalid lr: {} (must be a finite number > 0)", self.lr);
        }
        finite_nonneg(self.momentum, "momentum")?;
        finite_nonneg(self.weight_decay, "weight_decay")?;
        finite_nonneg(self.lr_decay, "lr_decay")?;
        finite_nonneg(self.initial_accumulator_value, "initial_accumulator_value")?;
        if !self.dampening.is_finite() || !(0.0..=1.0).contains(&self.dampening) {
            bail!("invalid dampening: {} (must be in [0, 1])", self.dampening);
        }
        if !self.eps.is_finite() || self.eps <= 0.0 {
            bail!("invalid eps: {} (must be a finite number > 0)", self.eps);
        }
        if !self.alpha.is_finite() || !(0.0..=1.0).contains(&self.alpha) {
            bail!("invalid alpha: {} (must be in [0, 1])", self.alpha);
        }
        for (i, b) in [self.betas.0, self.betas.1].into_iter().enumerate() {
            if !b.is_finite() || !(0.0..1.0).contains(&b) {
                bail!("invalid beta parameter at index {i}: {b} (must be in [0, 1))");
            }
        }
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            bail!("nesterov momentum requires a momentum > 0 and zero dampening (as in PyTorch)");
        }
        Ok(())
    }

    /// The kernel that runs this optimizer.
    pub fn kind(&self) -> OptimKind {
        match self.name.as_str() {
            "sgd" => OptimKind::Sgd,
            "adagrad" => OptimKind::Adagrad,
            "rmsprop" => OptimKind::Rmsprop,
            "adam" | "adamw" => OptimKind::Adam,
            _ => OptimKind::LectureMomentum,
        }
    }

    /// Names of the state buffers, in slot order (PyTorch's `state_dict()` names).
    pub fn state_names(&self) -> Vec<&'static str> {
        match self.kind() {
            OptimKind::Sgd if self.momentum != 0.0 => vec!["momentum_buffer"],
            OptimKind::Sgd => vec![],
            OptimKind::Adagrad => vec!["sum"],
            OptimKind::Rmsprop => {
                let mut v = vec!["square_avg"];
                if self.momentum > 0.0 {
                    v.push("momentum_buffer");
                }
                if self.centered {
                    v.push("grad_avg");
                }
                v
            }
            OptimKind::Adam if self.amsgrad => vec!["exp_avg", "exp_avg_sq", "max_exp_avg_sq"],
            OptimKind::Adam => vec!["exp_avg", "exp_avg_sq"],
            OptimKind::LectureMomentum => vec!["momentum_buffer"],
        }
    }

    /// Initial value of each state slot.
    pub fn state_init(&self) -> f32 {
        if self.kind() == OptimKind::Adagrad {
            self.initial_accumulator_value as f32
        } else {
            0.0
        }
    }

    /// The kernel scalars for step `t` (1-based, as PyTorch counts) at learning rate `lr`.
    pub fn kernel_step(&self, t: u64, lr: f64) -> OptimStep {
        let b = |x: bool| if x { 1.0 } else { 0.0 };
        let mut h = [0f64; 12];
        let vals: &[f64] = match self.kind() {
            OptimKind::Sgd => &[lr, self.momentum, self.dampening, self.weight_decay, b(self.nesterov), b(t == 1)],
            OptimKind::Adagrad => &[lr / (1.0 + (t as f64 - 1.0) * self.lr_decay), self.weight_decay, self.eps],
            OptimKind::Rmsprop => &[lr, self.alpha, self.eps, self.weight_decay, self.momentum, b(self.centered)],
            OptimKind::Adam => {
                let (b1, b2) = self.betas;
                let bc1 = 1.0 - b1.powi(t as i32);
                let bc2 = 1.0 - b2.powi(t as i32);
                &[
                    lr,
                    b1,
                    b2,
                    self.eps,
                    self.weight_decay,
                    lr / bc1,
                    bc2.sqrt(),
                    b(self.name == "adamw"),
                    b(self.amsgrad),
                ]
            }
            OptimKind::LectureMomentum => &[lr, self.momentum, self.weight_decay],
        };
        h[..vals.len()].copy_from_slice(vals);
        OptimStep { kind: self.kind(), h: h.map(|x| x as f32) }
    }

    /// Bytes one step moves per parameter: reads of p, g and each state slot, writes of p and
    /// each state slot (the figure a bandwidth bench divides by).
    pub fn bytes_per_param(&self) -> usize {
        4 * (2 + 1 + 2 * self.state_names().len())
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
        self.schedule.lr(self.config.lr, t)
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
