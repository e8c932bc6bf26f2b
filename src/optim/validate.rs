//! An optimizer configuration's checks, PyTorch's constructor checks with messages that say
//! what a valid value is: run where a configuration enters the library ([`Optimizer::new`](super::Optimizer::new),
//! replay, the CLI) and again before each step for what was changed since.

use super::config::*;
use anyhow::{bail, Result};

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
fn check_betas(betas: &[f64], closed: bool) -> Result<()> {
    for (i, &b) in betas.iter().enumerate() {
        let ok = b.is_finite() && b >= 0.0 && if closed { b <= 1.0 } else { b < 1.0 };
        if !ok {
            bail!("invalid beta parameter at index {i}: {b} (must be in [0, 1{})", if closed { "]" } else { ")" });
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
                check_betas(&[c.betas.0, c.betas.1], false)?;
            }
            OptimConfig::Nadam(c) => {
                check_lr(c.lr)?;
                check_nonneg(c.weight_decay, "weight_decay")?;
                check_nonneg(c.momentum_decay, "momentum_decay")?;
                check_eps(c.eps)?;
                check_betas(&[c.betas.0, c.betas.1], false)?;
            }
            OptimConfig::Radam(c) => {
                check_lr(c.lr)?;
                check_nonneg(c.weight_decay, "weight_decay")?;
                check_eps(c.eps)?;
                check_betas(&[c.betas.0, c.betas.1], false)?;
            }
            OptimConfig::Adamax(c) => {
                check_lr(c.lr)?;
                check_nonneg(c.weight_decay, "weight_decay")?;
                check_eps(c.eps)?;
                check_betas(&[c.betas.0, c.betas.1], false)?;
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
                check_betas(&[c.betas.0, c.betas.1], true)?;
            }
            OptimConfig::LectureMomentum(c) => {
                check_lr(c.lr)?;
                check_nonneg(c.momentum, "momentum")?;
                check_nonneg(c.weight_decay, "weight_decay")?;
            }
            OptimConfig::Rprop(c) => {
                check_lr(c.lr)?;
                let (minus, plus) = c.etas;
                if !(minus > 0.0 && minus < 1.0 && plus > 1.0 && plus.is_finite()) {
                    bail!("invalid etas: ({minus}, {plus}) (must be 0 < etaminus < 1 < etaplus)");
                }
                let (lo, hi) = c.step_sizes;
                if !(lo.is_finite() && hi.is_finite() && lo >= 0.0 && lo <= hi) {
                    bail!("invalid step_sizes: ({lo}, {hi}) (must be finite, 0 <= min <= max)");
                }
            }
            OptimConfig::Asgd(c) => {
                check_lr(c.lr)?;
                check_nonneg(c.lambd, "lambd")?;
                check_nonneg(c.alpha, "alpha")?;
                check_nonneg(c.weight_decay, "weight_decay")?;
                if !c.t0.is_finite() {
                    bail!("invalid t0: {} (must be a finite number)", c.t0);
                }
            }
            OptimConfig::Ademamix(c) => {
                check_lr(c.lr)?;
                check_eps(c.eps)?;
                check_nonneg(c.weight_decay, "weight_decay")?;
                check_nonneg(c.alpha, "alpha")?;
                check_betas(&[c.betas.0, c.betas.1, c.betas.2], false)?;
                if c.t_beta3.is_some() && (c.betas.0 <= 0.0 || c.betas.2 <= 0.0) {
                    bail!("t_beta3 warms beta3 up from beta1 on a log scale: both must be > 0");
                }
                for (key, v) in [("t_alpha", c.t_alpha), ("t_beta3", c.t_beta3)] {
                    if v == Some(0) {
                        bail!("invalid {key}: 0 (must be a number of steps >= 1, or null for none)");
                    }
                }
            }
            OptimConfig::SchedulefreeAdamw(c) => {
                check_lr(c.lr)?;
                check_eps(c.eps)?;
                check_nonneg(c.weight_decay, "weight_decay")?;
                check_betas(&[c.betas.0, c.betas.1], false)?;
                if c.betas.0 <= 0.0 {
                    bail!("invalid beta parameter at index 0: 0 (schedule-free's eval mode divides by beta1: must be in (0, 1))");
                }
                check_nonneg(c.r, "r")?;
                check_nonneg(c.weight_lr_power, "weight_lr_power")?;
            }
            OptimConfig::Adafactor(c) => {
                check_lr(c.lr)?;
                check_nonneg(c.weight_decay, "weight_decay")?;
                if !(c.beta2_decay.is_finite() && c.beta2_decay <= 0.0) {
                    bail!("invalid beta2_decay: {} (must be <= 0, as in PyTorch)", c.beta2_decay);
                }
                if !(c.d.is_finite() && c.d >= 1.0) {
                    bail!("invalid d: {} (the clipping threshold must be >= 1, as in PyTorch)", c.d);
                }
                if let Some(e1) = c.eps.0 {
                    check_nonneg(e1, "eps[0] (eps1)")?;
                }
                check_nonneg(c.eps.1, "eps[1] (eps2)")?;
            }
            OptimConfig::Muon(c) => {
                check_lr(c.lr)?;
                check_nonneg(c.weight_decay, "weight_decay")?;
                check_nonneg(c.momentum, "momentum")?;
                check_unit(c.momentum, "momentum")?;
                check_eps(c.eps)?;
                if c.ns_steps >= 100 {
                    bail!("invalid ns_steps: {} (must be under 100, as in PyTorch)", c.ns_steps);
                }
                let (a, b, cc) = c.ns_coefficients;
                if ![a, b, cc].iter().all(|x| x.is_finite()) {
                    bail!("invalid ns_coefficients: ({a}, {b}, {cc}) (must be finite)");
                }
                check_lr(c.aux_lr).map_err(|e| anyhow::anyhow!("aux_lr: {e}"))?;
                check_betas(&[c.aux_betas.0, c.aux_betas.1], false).map_err(|e| anyhow::anyhow!("aux_betas: {e}"))?;
                check_eps(c.aux_eps).map_err(|e| anyhow::anyhow!("aux_eps: {e}"))?;
                check_nonneg(c.aux_weight_decay, "aux_weight_decay")?;
            }
        }
        Ok(())
    }
}
