//! Parameter groups: one optimizer, one state allocation, and a learning rate and weight decay
//! per group of tensors (PyTorch's `param_groups`; the usual use is no decay on biases). The
//! schedule scales each group's own base rate, as PyTorch's schedulers scale each group's
//! `initial_lr`.
//!
//! Each step launches the fused kernel once per run of a group's tensors that touch in the arena
//! ([`ParamArena::trainable_runs`], as frozen tensors split a step): once per tensor for weights
//! and biases that alternate. Optimizers that
//! carry host scalars between steps computed from the rate (ASGD, Schedule-Free), or whose step
//! is not elementwise over the arena (Adafactor, Muon, the 8-bit blockwise state), refuse groups.

use super::optimizer::Optimizer;
use super::{OptimBits, OptimConfig};
use crate::backend::Device;
use crate::nn::{ParamArena, ParamId};
use anyhow::{bail, ensure, Context, Result};

/// Tensors that share hyperparameters, and the ones they override (None: the optimizer's).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParamGroup {
    /// The group's tensors.
    pub tensors: Vec<ParamId>,
    /// Its base learning rate.
    pub lr: Option<f64>,
    /// Its weight decay.
    pub weight_decay: Option<f64>,
}

/// A group as the optimizer steps it: its configuration and arena ranges.
pub(super) struct Group {
    config: OptimConfig,
    tensors: Vec<ParamId>,
}

impl Optimizer {
    /// Step `groups` of `arena`'s tensors, each with its own `lr` and `weight_decay`, through
    /// this one optimizer and its one state. Every tensor must be in exactly one group. Each
    /// group's configuration is validated here; [`Optimizer::set_lr`] and the `config` field
    /// then no longer change the groups' rates (set the groups again). An empty list goes back
    /// to one group.
    pub fn set_param_groups(&mut self, arena: &ParamArena, groups: &[ParamGroup]) -> Result<()> {
        self.check_layout(arena)?;
        if groups.is_empty() {
            self.groups.clear();
            return Ok(());
        }
        let name = self.config.name();
        match (&self.config, self.config.optim_bits()) {
            (OptimConfig::Asgd(_) | OptimConfig::SchedulefreeAdamw(_), _) => {
                bail!("{name} carries scalars computed from the rate between steps: parameter groups are not supported for it")
            }
            (OptimConfig::Adafactor(_) | OptimConfig::Muon(_), _) => {
                bail!("{name}'s step is not elementwise over the arena: parameter groups are not supported for it")
            }
            (_, OptimBits::B8) => bail!("parameter groups are supported at 32 and 16 bits, not with 8-bit state"),
            _ => {}
        }
        let mut owner: Vec<Option<usize>> = vec![None; arena.entries.len()];
        let mut built = Vec::new();
        for (k, g) in groups.iter().enumerate() {
            let mut config = self.config.clone();
            if let Some(lr) = g.lr {
                config.set_lr(lr);
            }
            if let Some(wd) = g.weight_decay {
                config.set_weight_decay(wd)?;
            }
            config.validate().with_context(|| format!("parameter group {k}"))?;
            for id in &g.tensors {
                let i = id.index();
                ensure!(i < owner.len(), "parameter group {k} names a tensor the arena does not have");
                if let Some(j) = owner[i] {
                    bail!(
                        "{} is in parameter groups {j} and {k}: a tensor belongs to one group",
                        arena.entries[i].name
                    );
                }
                owner[i] = Some(k);
            }
            built.push(Group { config, tensors: g.tensors.clone() });
        }
        if let Some(i) = owner.iter().position(Option::is_none) {
            bail!(
                "{} is in no parameter group: list every tensor (in a group of its own for other settings)",
                arena.entries[i].name
            );
        }
        self.groups = built;
        Ok(())
    }

    /// One step of every group: the shared step count and schedule position, each group's own
    /// rate and decay, its trainable tensors in runs.
    pub(super) fn step_groups(&mut self, dev: &mut Device, arena: &ParamArena) -> Result<()> {
        self.check_config()?;
        let t = self.step;
        // The step count and the carried scalars advance once (no optimizer that groups allow
        // carries any that depend on the rate).
        self.advance();
        let objective = self.config.objective();
        for g in &self.groups {
            let lr = self.schedule.lr(g.config.lr(), t);
            ensure!(lr.is_finite() && lr >= 0.0, "a parameter group's rate at step {} is {lr}", t + 1);
            let k = g.config.kernel_step(t + 1, lr, &self.carried);
            let ranges = arena.trainable_runs(&g.tensors);
            if !ranges.is_empty() {
                self.state.step(dev, &k, objective, arena.params, arena.grads, &ranges)?;
            }
        }
        Ok(())
    }
}
