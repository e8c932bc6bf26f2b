//! An optimizer configuration's checks, PyTorch's constructor checks with messages that say
//! what a valid value is: run where a configuration enters the library ([`Optimizer::new`](super::Optimizer::new),
//! replay, the CLI) and again before each step for what was changed since. Each message names
//! its hyperparameter as a typed key ([`HyperKey`]), which a client spells its own way.

use super::config::*;
use crate::message::HyperKey::{self, *};
use crate::said;
use anyhow::{bail, Result};

/// PyTorch's constructor checks, each with a message that says what a valid value is.
fn check_lr(lr: f64, key: HyperKey) -> Result<()> {
    if !lr.is_finite() || lr <= 0.0 {
        bail!(said!["invalid ", key, format!(": {lr} (must be a finite number > 0)")]);
    }
    Ok(())
}

fn check_nonneg(v: f64, key: HyperKey) -> Result<()> {
    if !v.is_finite() || v < 0.0 {
        bail!(said!["invalid ", key, format!(": {v} (must be a finite number >= 0)")]);
    }
    Ok(())
}

fn check_eps(eps: f64, key: HyperKey) -> Result<()> {
    if !eps.is_finite() || eps <= 0.0 {
        bail!(said!["invalid ", key, format!(": {eps} (must be a finite number > 0)")]);
    }
    Ok(())
}

fn check_unit(v: f64, key: HyperKey) -> Result<()> {
    if !v.is_finite() || !(0.0..=1.0).contains(&v) {
        bail!(said!["invalid ", key, format!(": {v} (must be in [0, 1])")]);
    }
    Ok(())
}

/// Each beta in [0, 1), or [0, 1] where 1 is meaningful (`closed`: Lion's, as lion-pytorch
/// checks them). PyTorch's message for `betas`; other keys (Muon's `aux_betas`) are named.
fn check_betas(betas: &[f64], closed: bool, key: HyperKey) -> Result<()> {
    for (i, &b) in betas.iter().enumerate() {
        let ok = b.is_finite() && b >= 0.0 && if closed { b <= 1.0 } else { b < 1.0 };
        if !ok {
            let what = format!(
                "invalid beta parameter at index {i}: {b} (must be in [0, 1{})",
                if closed { "]" } else { ")" }
            );
            if key == Betas {
                bail!(said![what]);
            }
            bail!(said![key, ": ", what]);
        }
    }
    Ok(())
}

impl OptimConfig {
    /// PyTorch's constructor checks, with a message that says what to use instead.
    pub fn validate(&self) -> Result<()> {
        self.supports(self.optim_bits())?;
        match self {
            OptimConfig::Sgd(c) => {
                check_lr(c.lr, Lr)?;
                check_nonneg(c.momentum, Momentum)?;
                check_nonneg(c.weight_decay, WeightDecay)?;
                check_unit(c.dampening, Dampening)?;
                if c.nesterov && (c.momentum <= 0.0 || c.dampening != 0.0) {
                    bail!(said![
                        Nesterov,
                        " momentum requires a ",
                        Momentum,
                        " > 0 and zero ",
                        Dampening,
                        " (as in PyTorch)"
                    ]);
                }
            }
            OptimConfig::Adagrad(c) => {
                check_lr(c.lr, Lr)?;
                check_nonneg(c.weight_decay, WeightDecay)?;
                check_nonneg(c.lr_decay, LrDecay)?;
                check_nonneg(c.initial_accumulator_value, InitialAccumulatorValue)?;
                check_eps(c.eps, Eps)?;
            }
            OptimConfig::Rmsprop(c) => {
                check_lr(c.lr, Lr)?;
                check_nonneg(c.momentum, Momentum)?;
                check_nonneg(c.weight_decay, WeightDecay)?;
                check_eps(c.eps, Eps)?;
                check_unit(c.alpha, Alpha)?;
            }
            OptimConfig::Adam(c) | OptimConfig::Adamw(c) => {
                check_lr(c.lr, Lr)?;
                check_nonneg(c.weight_decay, WeightDecay)?;
                check_eps(c.eps, Eps)?;
                check_betas(&[c.betas.0, c.betas.1], false, Betas)?;
            }
            OptimConfig::Nadam(c) => {
                check_lr(c.lr, Lr)?;
                check_nonneg(c.weight_decay, WeightDecay)?;
                check_nonneg(c.momentum_decay, MomentumDecay)?;
                check_eps(c.eps, Eps)?;
                check_betas(&[c.betas.0, c.betas.1], false, Betas)?;
            }
            OptimConfig::Radam(c) => {
                check_lr(c.lr, Lr)?;
                check_nonneg(c.weight_decay, WeightDecay)?;
                check_eps(c.eps, Eps)?;
                check_betas(&[c.betas.0, c.betas.1], false, Betas)?;
            }
            OptimConfig::Adamax(c) => {
                check_lr(c.lr, Lr)?;
                check_nonneg(c.weight_decay, WeightDecay)?;
                check_eps(c.eps, Eps)?;
                check_betas(&[c.betas.0, c.betas.1], false, Betas)?;
            }
            OptimConfig::Adadelta(c) => {
                check_lr(c.lr, Lr)?;
                check_nonneg(c.weight_decay, WeightDecay)?;
                check_eps(c.eps, Eps)?;
                check_unit(c.rho, Rho)?;
            }
            OptimConfig::Lion(c) => {
                check_lr(c.lr, Lr)?;
                check_nonneg(c.weight_decay, WeightDecay)?;
                check_betas(&[c.betas.0, c.betas.1], true, Betas)?;
            }
            OptimConfig::LectureMomentum(c) => {
                check_lr(c.lr, Lr)?;
                check_nonneg(c.momentum, Momentum)?;
                check_nonneg(c.weight_decay, WeightDecay)?;
            }
            OptimConfig::Rprop(c) => {
                check_lr(c.lr, Lr)?;
                let (minus, plus) = c.etas;
                if !(minus > 0.0 && minus < 1.0 && plus > 1.0 && plus.is_finite()) {
                    bail!(said!["invalid ", Etas, format!(": ({minus}, {plus}) (must be 0 < etaminus < 1 < etaplus)")]);
                }
                let (lo, hi) = c.step_sizes;
                if !(lo.is_finite() && hi.is_finite() && lo >= 0.0 && lo <= hi) {
                    bail!(said!["invalid ", StepSizes, format!(": ({lo}, {hi}) (must be finite, 0 <= min <= max)")]);
                }
            }
            OptimConfig::Asgd(c) => {
                check_lr(c.lr, Lr)?;
                check_nonneg(c.lambd, Lambd)?;
                check_nonneg(c.alpha, Alpha)?;
                check_nonneg(c.weight_decay, WeightDecay)?;
                if !c.t0.is_finite() {
                    bail!(said!["invalid ", T0, format!(": {} (must be a finite number)", c.t0)]);
                }
            }
            OptimConfig::Ademamix(c) => {
                check_lr(c.lr, Lr)?;
                check_eps(c.eps, Eps)?;
                check_nonneg(c.weight_decay, WeightDecay)?;
                check_nonneg(c.alpha, Alpha)?;
                check_betas(&[c.betas.0, c.betas.1, c.betas.2], false, Betas)?;
                if c.t_beta3.is_some() && (c.betas.0 <= 0.0 || c.betas.2 <= 0.0) {
                    bail!(said![TBeta3, " warms beta3 up from beta1 on a log scale: both must be > 0"]);
                }
                for (key, v) in [(TAlpha, c.t_alpha), (TBeta3, c.t_beta3)] {
                    if v == Some(0) {
                        bail!(said!["invalid ", key, ": 0 (must be a number of steps >= 1, or null for none)"]);
                    }
                }
            }
            OptimConfig::SchedulefreeAdamw(c) => {
                check_lr(c.lr, Lr)?;
                check_eps(c.eps, Eps)?;
                check_nonneg(c.weight_decay, WeightDecay)?;
                check_betas(&[c.betas.0, c.betas.1], false, Betas)?;
                if c.betas.0 <= 0.0 {
                    bail!(said!["invalid beta parameter at index 0: 0 (schedule-free's eval mode divides by beta1: must be in (0, 1))"]);
                }
                check_nonneg(c.r, R)?;
                check_nonneg(c.weight_lr_power, WeightLrPower)?;
            }
            OptimConfig::Adafactor(c) => {
                check_lr(c.lr, Lr)?;
                check_nonneg(c.weight_decay, WeightDecay)?;
                if !(c.beta2_decay.is_finite() && c.beta2_decay <= 0.0) {
                    bail!(said!["invalid ", Beta2Decay, format!(": {} (must be <= 0, as in PyTorch)", c.beta2_decay)]);
                }
                if !(c.d.is_finite() && c.d >= 1.0) {
                    bail!(said![
                        "invalid ",
                        D,
                        format!(": {} (the clipping threshold must be >= 1, as in PyTorch)", c.d)
                    ]);
                }
                if let Some(e1) = c.eps.0 {
                    if !e1.is_finite() || e1 < 0.0 {
                        bail!(said!["invalid ", Eps, format!("[0] (eps1): {e1} (must be a finite number >= 0)")]);
                    }
                }
                let e2 = c.eps.1;
                if !e2.is_finite() || e2 < 0.0 {
                    bail!(said!["invalid ", Eps, format!("[1] (eps2): {e2} (must be a finite number >= 0)")]);
                }
            }
            OptimConfig::Muon(c) => {
                check_lr(c.lr, Lr)?;
                check_nonneg(c.weight_decay, WeightDecay)?;
                check_nonneg(c.momentum, Momentum)?;
                check_unit(c.momentum, Momentum)?;
                check_eps(c.eps, Eps)?;
                if c.ns_steps >= 100 {
                    bail!(said!["invalid ", NsSteps, format!(": {} (must be under 100, as in PyTorch)", c.ns_steps)]);
                }
                let (a, b, cc) = c.ns_coefficients;
                if ![a, b, cc].iter().all(|x| x.is_finite()) {
                    bail!(said!["invalid ", NsCoefficients, format!(": ({a}, {b}, {cc}) (must be finite)")]);
                }
                check_lr(c.aux_lr, AuxLr)?;
                check_betas(&[c.aux_betas.0, c.aux_betas.1], false, AuxBetas)?;
                check_eps(c.aux_eps, AuxEps)?;
                check_nonneg(c.aux_weight_decay, AuxWeightDecay)?;
            }
        }
        Ok(())
    }
}
