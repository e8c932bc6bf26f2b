//! The optimizer family with PyTorch's `torch.optim` semantics, hyperparameter names and
//! defaults, plus the lecture's own momentum form.
//!
//! [`OptimConfig`] is one enum with a typed struct of hyperparameters per optimizer. The host
//! turns it, the step count and the scheduled learning rate into an [`OptimStep`] (the
//! kernel's own `#[repr(C)]` parameter struct, bias corrections included, from
//! `backend::optim_kernel`); each backend applies it in one fused pass over the whole parameter
//! arena: `backend::cpu::optim` (rayon) and `shaders/optim_<kernel>.wgsl` (WGSL).
//! [`reference`](mod@reference) holds the plain f64 formulas that tests compare both with.
//!
//! Adding an optimizer takes its name in `name.rs`, a variant in `config.rs` (its struct,
//! defaults, checks and kernel step), a kernel in `optim_kernel` with its WGSL file, the rayon
//! twin and the reference; the compiler refuses a missing match arm in all of these and `tests/kernel_mirror.rs` a missing or
//! different WGSL struct or entry point.

mod config;
mod factored_state;
mod groups;
mod hyper;
mod hyper_matrix;
mod muon_state;
mod name;
mod optimizer;
pub mod reference;
pub mod schedule;
mod state;
mod state_dict;
mod step;
mod validate;

pub use config::*;
pub use factored_state::FactoredState;
pub use groups::ParamGroup;
pub use muon_state::{MuonMatrix, MuonState};
pub use optimizer::*;
pub use state::{Bf16State, Blockwise8State, F32State, OptimState, StoredState};
pub use step::*;

pub use crate::backend::{Blockwise8, OptimBits, OptimStep, Slot};
pub use crate::message::{HyperKey, KeyError};
pub use schedule::Schedule;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

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
        extra["foreach"] = json!(true);
        assert!(serde_json::from_value::<OptimConfig>(extra).is_err());
        // maximize is every optimizer's, left out of the JSON form while false.
        let c = OptimConfig::from_json(&json!({"name": "rmsprop", "maximize": true}), "o").unwrap();
        assert!(c.maximize() && c.to_json()["maximize"] == json!(true));
        assert!(OptimConfig::defaults("rmsprop").unwrap().to_json().get("maximize").is_none());
        assert!(err(json!({"name": "lion", "maximize": "yes"})).contains("o.maximize: expected true or false"));
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

    /// Every key of every optimizer's JSON form is a typed key, and every typed key is some
    /// optimizer's (so messages name each one and none is stale).
    #[test]
    fn every_json_key_is_a_hyper_key() {
        let mut used = vec![HyperKey::Name, HyperKey::OptimBits, HyperKey::Maximize];
        for name in OPTIMIZER_NAMES {
            for k in OptimConfig::defaults(name).unwrap().keys() {
                let key = HyperKey::from_name(&k).unwrap_or_else(|| panic!("{name}.{k} is no HyperKey"));
                used.push(key);
            }
        }
        for k in HyperKey::ALL {
            assert!(used.contains(k), "{k:?} is no optimizer's key");
        }
    }

    #[test]
    fn supports_names_the_widths_each_optimizer_has() {
        for name in OPTIMIZER_NAMES {
            let c = OptimConfig::defaults(name).unwrap();
            assert!(c.supports(OptimBits::B32).is_ok(), "{name}");
            // Every optimizer has bfloat16 state (Adafactor's statistics too).
            assert!(c.supports(OptimBits::B16).is_ok(), "{name}");
            let eight = c.supports(OptimBits::B8);
            // bitsandbytes' 8-bit family (SGD's defaults have no momentum, so no state).
            let has = ["adam", "adamw", "rmsprop", "adagrad", "lion", "ademamix"].contains(&name);
            assert_eq!(eight.is_ok(), has, "{name}: {eight:?}");
            // validate at a width agrees with supports.
            assert_eq!(c.clone().with_optim_bits(OptimBits::B8).validate().is_ok(), eight.is_ok(), "{name}");
        }
        let ams = OptimConfig::Adam(Adam { amsgrad: true, ..Adam::default() });
        let err = ams.supports(OptimBits::B8).unwrap_err().to_string();
        assert!(err.contains("amsgrad has no 8-bit form"), "{err}");
    }
}
