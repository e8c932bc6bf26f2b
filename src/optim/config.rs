//! [`OptimConfig`]: which optimizer, with its hyperparameters (`hyper.rs`); their checks and
//! their JSON form. The kernel step each becomes is in `step.rs`.

pub use super::hyper::*;
pub use super::hyper_matrix::*;
pub use super::name::{OptimizerName, OPTIMIZER_NAMES};
use super::step::Carried;
use super::{OptimBits, Slot};
use crate::backend::optim_kernel::Objective;
use crate::backend::quant::{self};
use crate::message::{HyperKey, KeyError, Message};
use crate::said;
use anyhow::{bail, ensure, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    /// `torch.optim.Rprop`.
    Rprop(Rprop),
    /// `torch.optim.ASGD`.
    Asgd(Asgd),
    /// AdEMAMix (Pagliardini et al. 2024) as bitsandbytes computes it.
    Ademamix(Ademamix),
    /// Schedule-Free AdamW (Defazio et al. 2024) as schedulefree 1.4.1 computes it.
    SchedulefreeAdamw(SchedulefreeAdamw),
    /// `torch.optim.Adafactor`: factored second moments, per-tensor step sizes.
    Adafactor(Adafactor),
    /// `torch.optim.Muon` for the matrices, with an auxiliary AdamW for the other tensors.
    Muon(Muon),
}

/// PyTorch's defaults for the optimizer (the reference library's for those PyTorch lacks).
impl From<OptimizerName> for OptimConfig {
    fn from(name: OptimizerName) -> OptimConfig {
        match name {
            OptimizerName::Sgd => OptimConfig::Sgd(Sgd::default()),
            OptimizerName::Adagrad => OptimConfig::Adagrad(Adagrad::default()),
            OptimizerName::Rmsprop => OptimConfig::Rmsprop(Rmsprop::default()),
            OptimizerName::Adam => OptimConfig::Adam(Adam::default()),
            OptimizerName::Adamw => OptimConfig::Adamw(Adam::adamw()),
            OptimizerName::LectureMomentum => OptimConfig::LectureMomentum(LectureMomentum::default()),
            OptimizerName::Nadam => OptimConfig::Nadam(Nadam::default()),
            OptimizerName::Radam => OptimConfig::Radam(Radam::default()),
            OptimizerName::Adamax => OptimConfig::Adamax(Adamax::default()),
            OptimizerName::Adadelta => OptimConfig::Adadelta(Adadelta::default()),
            OptimizerName::Lion => OptimConfig::Lion(Lion::default()),
            OptimizerName::Rprop => OptimConfig::Rprop(Rprop::default()),
            OptimizerName::Asgd => OptimConfig::Asgd(Asgd::default()),
            OptimizerName::Ademamix => OptimConfig::Ademamix(Ademamix::default()),
            OptimizerName::SchedulefreeAdamw => OptimConfig::SchedulefreeAdamw(SchedulefreeAdamw::default()),
            OptimizerName::Adafactor => OptimConfig::Adafactor(Adafactor::default()),
            OptimizerName::Muon => OptimConfig::Muon(Muon::default()),
        }
    }
}

/// `$body` on the hyperparameter struct of whichever optimizer `$config` is: the fields every
/// optimizer has (`lr`, `maximize`, `optim_bits`) are read and set through it.
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
            OptimConfig::Rprop($c) => $body,
            OptimConfig::Asgd($c) => $body,
            OptimConfig::Ademamix($c) => $body,
            OptimConfig::SchedulefreeAdamw($c) => $body,
            OptimConfig::Adafactor($c) => $body,
            OptimConfig::Muon($c) => $body,
        }
    };
}

impl OptimConfig {
    /// PyTorch's defaults for `name` (one of [`OPTIMIZER_NAMES`]); [`OptimConfig::from`] takes
    /// the typed [`OptimizerName`].
    pub fn defaults(name: &str) -> Result<OptimConfig> {
        Ok(OptimConfig::from(name.parse::<OptimizerName>()?))
    }

    /// Which optimizer this is.
    pub fn kind(&self) -> OptimizerName {
        match self {
            OptimConfig::Sgd(_) => OptimizerName::Sgd,
            OptimConfig::Adagrad(_) => OptimizerName::Adagrad,
            OptimConfig::Rmsprop(_) => OptimizerName::Rmsprop,
            OptimConfig::Adam(_) => OptimizerName::Adam,
            OptimConfig::Adamw(_) => OptimizerName::Adamw,
            OptimConfig::LectureMomentum(_) => OptimizerName::LectureMomentum,
            OptimConfig::Nadam(_) => OptimizerName::Nadam,
            OptimConfig::Radam(_) => OptimizerName::Radam,
            OptimConfig::Adamax(_) => OptimizerName::Adamax,
            OptimConfig::Adadelta(_) => OptimizerName::Adadelta,
            OptimConfig::Lion(_) => OptimizerName::Lion,
            OptimConfig::Rprop(_) => OptimizerName::Rprop,
            OptimConfig::Asgd(_) => OptimizerName::Asgd,
            OptimConfig::Ademamix(_) => OptimizerName::Ademamix,
            OptimConfig::SchedulefreeAdamw(_) => OptimizerName::SchedulefreeAdamw,
            OptimConfig::Adafactor(_) => OptimizerName::Adafactor,
            OptimConfig::Muon(_) => OptimizerName::Muon,
        }
    }

    /// The optimizer's name, as JSON and the CLI spell it.
    pub fn name(&self) -> &'static str {
        self.kind().name()
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

    /// The weight decay (L2, or decoupled for AdamW and others; Rprop has none: 0).
    pub fn weight_decay(&self) -> f64 {
        match self {
            OptimConfig::Sgd(c) => c.weight_decay,
            OptimConfig::Adagrad(c) => c.weight_decay,
            OptimConfig::Rmsprop(c) => c.weight_decay,
            OptimConfig::Adam(c) | OptimConfig::Adamw(c) => c.weight_decay,
            OptimConfig::LectureMomentum(c) => c.weight_decay,
            OptimConfig::Nadam(c) => c.weight_decay,
            OptimConfig::Radam(c) => c.weight_decay,
            OptimConfig::Adamax(c) => c.weight_decay,
            OptimConfig::Adadelta(c) => c.weight_decay,
            OptimConfig::Lion(c) => c.weight_decay,
            OptimConfig::Rprop(_) => 0.0,
            OptimConfig::Asgd(c) => c.weight_decay,
            OptimConfig::Ademamix(c) => c.weight_decay,
            OptimConfig::SchedulefreeAdamw(c) => c.weight_decay,
            OptimConfig::Adafactor(c) => c.weight_decay,
            OptimConfig::Muon(c) => c.weight_decay,
        }
    }

    /// Set the weight decay (Rprop has none: only 0 is accepted there).
    pub fn set_weight_decay(&mut self, wd: f64) -> Result<()> {
        match self {
            OptimConfig::Sgd(c) => c.weight_decay = wd,
            OptimConfig::Adagrad(c) => c.weight_decay = wd,
            OptimConfig::Rmsprop(c) => c.weight_decay = wd,
            OptimConfig::Adam(c) | OptimConfig::Adamw(c) => c.weight_decay = wd,
            OptimConfig::LectureMomentum(c) => c.weight_decay = wd,
            OptimConfig::Nadam(c) => c.weight_decay = wd,
            OptimConfig::Radam(c) => c.weight_decay = wd,
            OptimConfig::Adamax(c) => c.weight_decay = wd,
            OptimConfig::Adadelta(c) => c.weight_decay = wd,
            OptimConfig::Lion(c) => c.weight_decay = wd,
            OptimConfig::Rprop(_) => ensure!(wd == 0.0, "rprop has no weight_decay"),
            OptimConfig::Asgd(c) => c.weight_decay = wd,
            OptimConfig::Ademamix(c) => c.weight_decay = wd,
            OptimConfig::SchedulefreeAdamw(c) => c.weight_decay = wd,
            OptimConfig::Adafactor(c) => c.weight_decay = wd,
            OptimConfig::Muon(c) => c.weight_decay = wd,
        }
        Ok(())
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
        let at = |key: &str, m: Message| anyhow::Error::new(KeyError::at(path, key, m));
        let obj = v.as_object().ok_or_else(|| KeyError::of(path, &anyhow::anyhow!("expected an object")))?;
        let name = obj
            .get("name")
            .ok_or_else(|| at("name", format!("missing (one of {})", OPTIMIZER_NAMES.join(", ")).into()))?
            .as_str()
            .ok_or_else(|| at("name", "expected a string".into()))?;
        let defaults = OptimConfig::defaults(name).map_err(|e| at("name", Message::of_error(&e)))?;
        let Value::Object(mut merged) = defaults.to_json() else { unreachable!("a config is a JSON object") };
        for (key, val) in obj {
            if key == "name" {
                continue;
            }
            // Every optimizer takes optim_bits; it is left out of the JSON form at 32.
            if key == "optim_bits" {
                let bits = val.as_u64().ok_or_else(|| at(key, "expected 32, 16 or 8".into()))?;
                OptimBits::from_bits(bits).map_err(|e| at(key, e.into()))?;
                merged.insert(key.clone(), val.clone());
                continue;
            }
            // So does maximize, left out while false.
            if key == "maximize" {
                if !val.is_boolean() {
                    return Err(at(key, "expected true or false".into()));
                }
                merged.insert(key.clone(), val.clone());
                continue;
            }
            let Some(default) = merged.get(key) else {
                // The keys it takes, each a typed key where it is one.
                let mut takes = said![format!("'{name}' takes no '{key}' (it takes ")];
                for (i, k) in defaults.keys().iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    takes = match HyperKey::from_name(k) {
                        Some(hk) => takes.then(said![sep, hk]),
                        None => takes.then(format!("{sep}{k}")),
                    };
                }
                return Err(at(key, takes.then(")")));
            };
            // The default's JSON type says what the key holds.
            let wrong: Option<Message> = match default {
                Value::Number(_) if !val.is_number() => Some("expected a number".into()),
                // A count (warmup_steps): the default is written as an integer.
                Value::Number(d) if d.is_u64() && val.as_u64().is_none() => {
                    Some(format!("expected a whole number >= 0, got {val}").into())
                }
                // An optional count (t_alpha, t_beta3): absent by default.
                Value::Null if !val.is_null() && val.as_u64().is_none() => {
                    Some(format!("expected a whole number of steps, or null for none; got {val}").into())
                }
                Value::Bool(_) if !val.is_boolean() => Some("expected true or false".into()),
                // A choice among names: each string key's own list.
                Value::String(_) => {
                    let (ok, names) = match key.as_str() {
                        "ns_dtype" => {
                            (serde_json::from_value::<NsDtype>(val.clone()).is_ok(), "\"float32\" or \"bfloat16\"")
                        }
                        _ => (
                            serde_json::from_value::<AdjustLr>(val.clone()).is_ok(),
                            "one of \"original\", \"match_rms_adamw\", \"spectral_unclamped\"",
                        ),
                    };
                    (!ok).then(|| format!("expected {names}, got {val}").into())
                }
                // An element that is null by default (Adafactor's eps1) may be null.
                Value::Array(d)
                    if val.as_array().is_none_or(|a| {
                        a.len() != d.len()
                            || !a.iter().zip(d).all(|(x, dx)| x.is_number() || (x.is_null() && dx.is_null()))
                    }) =>
                {
                    let what =
                        if d.iter().any(Value::is_null) { "numbers (or null where the default is)" } else { "numbers" };
                    Some(format!("expected an array of {} {what}, e.g. {default}", d.len()).into())
                }
                _ => None,
            };
            if let Some(m) = wrong {
                return Err(at(key, m));
            }
            merged.insert(key.clone(), val.clone());
        }
        let c: OptimConfig =
            serde_json::from_value(Value::Object(merged)).map_err(|e| KeyError::of(path, &anyhow::Error::new(e)))?;
        c.validate().map_err(|e| KeyError::of(path, &e))?;
        Ok(c)
    }

    /// The name and every hyperparameter, under PyTorch's names: the object
    /// [`OptimConfig::from_json`] reads.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("a config's fields are plain numbers and flags")
    }

    /// Whether this optimizer, with its other settings, has a form with state at `bits`: every
    /// optimizer at 16 bits; at 8, bitsandbytes' blockwise optimizers (Adam and
    /// AdamW without AMSGrad, SGD with momentum, RMSProp, Adagrad, Lion, AdEMAMix). The error says which
    /// width to use instead; `compare` and `bench` ask it before running a width.
    pub fn supports(&self, bits: OptimBits) -> Result<()> {
        if let (OptimConfig::Muon(_), OptimBits::B8) = (self, bits) {
            bail!(said![
                "'muon' has no 8-bit form (bitsandbytes has none either): use ",
                HyperKey::OptimBits,
                " 16 or 32"
            ]);
        }
        if let (OptimConfig::Adafactor(_), OptimBits::B8) = (self, bits) {
            bail!(said![
                "'adafactor' has no 8-bit form (bitsandbytes has none either; its factored state is rows + columns per matrix): use ",
                HyperKey::OptimBits,
                " 16 or 32"
            ]);
        }
        if bits == OptimBits::B8 {
            // bitsandbytes' blockwise 8-bit optimizers, with its restrictions where the state
            // could not start at zero codes.
            let eight = "blockwise 8-bit state is Adam's, AdamW's, SGD's with momentum, RMSProp's, Adagrad's, Lion's and AdEMAMix's";
            match self {
                OptimConfig::Adam(c) | OptimConfig::Adamw(c) if c.amsgrad => {
                    bail!(said![
                        HyperKey::Amsgrad,
                        " has no 8-bit form (bitsandbytes has none either): use ",
                        HyperKey::OptimBits,
                        " 16 or 32"
                    ])
                }
                OptimConfig::Sgd(c) if c.momentum == 0.0 => {
                    bail!(said![
                        "SGD without momentum keeps no state, so it has no 8-bit form: use ",
                        HyperKey::OptimBits,
                        " 32, or a ",
                        HyperKey::Momentum
                    ])
                }
                OptimConfig::Adagrad(c) if c.initial_accumulator_value != 0.0 => {
                    bail!(said![
                        "an ",
                        HyperKey::InitialAccumulatorValue,
                        " has no 8-bit form (codes start at zero, as in bitsandbytes): use ",
                        HyperKey::OptimBits,
                        " 16 or 32"
                    ])
                }
                OptimConfig::Adam(_)
                | OptimConfig::Adamw(_)
                | OptimConfig::Sgd(_)
                | OptimConfig::Rmsprop(_)
                | OptimConfig::Adagrad(_)
                | OptimConfig::Lion(_)
                | OptimConfig::Ademamix(_) => {}
                _ => bail!(said![
                    format!("'{}' has no 8-bit form ({eight}): use ", self.name()),
                    HyperKey::OptimBits,
                    " 16 or 32"
                ]),
            }
        }
        Ok(())
    }

    /// The AdamW that Muon steps its other tensors with, as its own configuration.
    pub fn muon_aux(c: &Muon) -> OptimConfig {
        OptimConfig::Adamw(Adam {
            lr: c.aux_lr,
            betas: c.aux_betas,
            eps: c.aux_eps,
            weight_decay: c.aux_weight_decay,
            amsgrad: false,
            maximize: c.maximize,
            optim_bits: c.optim_bits,
        })
    }

    /// Whether this optimizer steps a tensor of `shape` (every one does, so far; an optimizer
    /// for matrices refuses others, as PyTorch's constructor does).
    pub fn check_shape(&self, shape: &[usize]) -> Result<()> {
        if let (OptimConfig::Muon(_), false) = (self, shape.len() == 2) {
            bail!("Muon only supports 2D parameters (a shape of {} dimensions: {shape:?}), as PyTorch's constructor says; give \"shape\": [rows, cols]", shape.len());
        }
        Ok(())
    }

    /// The state slots this configuration keeps, in the order buffers are allocated and stored
    /// (the kernel's binding order, filtered by the settings).
    pub fn slots(&self) -> Vec<Slot> {
        let mut first = Carried::new();
        first.advance(self, self.lr());
        self.kernel_step(1, self.lr(), &first).slots()
    }

    /// Whether the optimizer keeps any state (per-element slots, or Adafactor's statistics):
    /// one that keeps none is the same at every width.
    pub fn keeps_state(&self) -> bool {
        matches!(self, OptimConfig::Adafactor(_)) || !self.slots().is_empty()
    }

    /// Names of the state buffers, in slot order (PyTorch's `state_dict()` names).
    pub fn state_names(&self) -> Vec<&'static str> {
        self.slots().into_iter().map(Slot::name).collect()
    }

    /// Initial value of each state slot, in slot order, when the first step's rate is `lr0`:
    /// Adagrad's `initial_accumulator_value`, Rprop's step size (lr0, the one use of its rate),
    /// else 0. (Schedule-Free's z starts as a copy of the parameters: the optimizer's init
    /// pass writes it before the first step.)
    pub fn state_inits(&self, lr0: f64) -> Vec<f32> {
        self.slots()
            .into_iter()
            .map(|s| match (self, s) {
                (OptimConfig::Adagrad(c), Slot::Sum) => c.initial_accumulator_value as f32,
                (OptimConfig::Rprop(_), Slot::StepSize) => lr0 as f32,
                _ => 0.0,
            })
            .collect()
    }

    /// Bytes one step moves per parameter: reads of p, g and each state slot, writes of p and
    /// each state slot (the figure a bandwidth bench divides by). At 8 bits each slot is one
    /// byte read and written; the per-block absmax and table (0.125 bytes per parameter) are
    /// left out.
    pub fn bytes_per_param(&self) -> usize {
        if let OptimConfig::Adafactor(_) = self {
            // Its passes read g three times and p twice and write p once; its statistics are
            // per row and column (about 0 bytes per parameter of a matrix).
            return 24;
        }
        if let OptimConfig::Muon(c) = self {
            // A matrix's elementwise passes (Newton–Schulz's matmuls aside): momentum reads g
            // and the buffer and writes the buffer and X; the norm reads X, the scaling reads
            // and writes it; the update reads p and X and writes p. Its state at its width.
            let slot = if c.optim_bits == OptimBits::B32 { 4 } else { 2 };
            return 4 + 2 * slot + 4 + 4 + 8 + 12;
        }
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
        if let OptimConfig::Adafactor(_) = self {
            // As one vector of n (its largest): V per element, f32 or bfloat16 two a word.
            // Matrices keep rows + columns.
            return match self.optim_bits() {
                OptimBits::B16 => 4 * n.div_ceil(2) as u64,
                _ => 4 * n as u64,
            };
        }
        let slots = self.slots().len() as u64;
        match self.optim_bits() {
            OptimBits::B32 => 4 * slots * n as u64,
            OptimBits::B16 => 4 * slots * n.div_ceil(2) as u64,
            OptimBits::B8 => quant::state_bytes_8bit(n, slots as usize),
        }
    }
}
