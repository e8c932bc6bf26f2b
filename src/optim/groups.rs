//! Parameter groups: one optimizer, one state allocation, and a learning rate and weight decay
//! per group of tensors (PyTorch's `param_groups`; the usual use is no decay on biases). The
//! schedule scales each group's own base rate, as PyTorch's schedulers scale each group's
//! `initial_lr`.
//!
//! Each step is one fused launch over every group ([`GroupedStep`]): the runs of each group's
//! trainable tensors ([`ParamArena::trainable_runs`]) and each group's kernel struct go to two
//! small device tables, and each element looks up its run (the GPU records the tables' upload
//! in order with the launch: no extra submit). The CPU twin steps run by run. Optimizers
//! that carry host scalars between steps computed from the rate (ASGD, Schedule-Free), or whose
//! step is not elementwise over the arena (Adafactor, Muon, the 8-bit blockwise state), refuse
//! groups.

use super::optimizer::Optimizer;
use super::step::Step;
use super::{OptimBits, OptimConfig};
use crate::backend::{Device, GroupedStep, View};
use crate::nn::{ParamArena, ParamId};
use anyhow::{bail, ensure, Context, Result};
use std::ops::Range;

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
        let mut configs = Vec::with_capacity(groups.len());
        for (k, g) in groups.iter().enumerate() {
            let mut config = self.config.clone();
            if let Some(lr) = g.lr {
                config.set_lr(lr);
            }
            if let Some(wd) = g.weight_decay {
                config.set_weight_decay(wd).with_context(|| format!("parameter group {k}"))?;
            }
            configs.push((g.tensors.clone(), config));
        }
        self.set_param_group_configs(arena, &configs)
    }

    /// [`Optimizer::set_param_groups`] with any of the optimizer's hyperparameters per group,
    /// as a PyTorch `param_groups` dict may set any key: each group's tensors and its whole
    /// configuration (betas, eps, momentum, …). Every configuration is this optimizer's kind at
    /// its state width and direction, keeps the same state slots, and starts them at the same
    /// values (the one state was filled when the optimizer was built): so Rprop's groups share
    /// its rate (its step sizes start at the rate), Adagrad's its `initial_accumulator_value`,
    /// and SGD's groups all have momentum or all have none.
    pub fn set_param_group_configs(
        &mut self,
        arena: &ParamArena,
        groups: &[(Vec<ParamId>, OptimConfig)],
    ) -> Result<()> {
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
        let (slots, inits) = (self.config.state_names(), self.config.state_inits(self.lr_at(0)));
        let mut owner: Vec<Option<usize>> = vec![None; arena.entries.len()];
        let mut built = Vec::new();
        for (k, (tensors, config)) in groups.iter().enumerate() {
            let group = || format!("parameter group {k}");
            ensure!(
                config.name() == name && config.optim_bits() == self.config.optim_bits(),
                "{}: a {} at {} bits in an optimizer of {name} at {}: every group is the optimizer's kind and width",
                group(),
                config.name(),
                config.optim_bits().bits(),
                self.config.optim_bits().bits()
            );
            ensure!(
                config.objective() == self.config.objective(),
                "{}: maximize differs from the optimizer's: every group goes the optimizer's way",
                group()
            );
            config.validate().with_context(group)?;
            ensure!(
                config.state_names() == slots,
                "{}: keeps state {:?}, the optimizer {slots:?}: the groups share one state, so they keep the same slots (give every group momentum, or none)",
                group(),
                config.state_names()
            );
            let group_inits = config.state_inits(self.schedule.lr(config.lr(), 0));
            ensure!(
                group_inits == inits,
                "{}: its state would start at {group_inits:?}, the optimizer's started at {inits:?} ({name}'s state starts from {}): use the optimizer's value, or an optimizer per group",
                group(),
                if name == "rprop" { "the rate" } else { "initial_accumulator_value" }
            );
            for id in tensors {
                let i = id.index();
                ensure!(i < owner.len(), "{} names a tensor the arena does not have", group());
                if let Some(j) = owner[i] {
                    bail!(
                        "{} is in parameter groups {j} and {k}: a tensor belongs to one group",
                        arena.entries[i].name
                    );
                }
                owner[i] = Some(k);
            }
            built.push(Group { config: config.clone(), tensors: tensors.clone() });
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
        let mut runs: Vec<(Range<usize>, usize)> = Vec::new();
        for (k, g) in self.groups.iter().enumerate() {
            runs.extend(arena.trainable_runs(&g.tensors).into_iter().map(|r| (r, k)));
        }
        runs.sort_by_key(|(r, _)| r.start);
        self.state.check_ranges(&runs.iter().map(|(r, _)| r.clone()).collect::<Vec<_>>())?;
        let tables = self.group_tables(dev, arena)?;
        // The step count and the carried scalars advance once (no optimizer that groups allow
        // carries any that depend on the rate).
        self.advance();
        let mut steps = Vec::with_capacity(self.groups.len());
        for g in &self.groups {
            let lr = self.schedule.lr(g.config.lr(), t);
            ensure!(lr.is_finite() && lr >= 0.0, "a parameter group's rate at step {} is {lr}", t + 1);
            match g.config.kernel_step(t + 1, lr, &self.carried) {
                Step::Fused(k) => steps.push(k),
                _ => bail!(
                    "{}'s step is not one fused kernel: parameter groups are not supported for it",
                    g.config.name()
                ),
            }
        }
        if runs.is_empty() {
            return Ok(());
        }
        let grouped = GroupedStep { steps, runs, runs_table: tables.0, groups_table: tables.1 };
        self.state.step_groups(dev, &grouped, self.config.objective(), arena.params, arena.grads)
    }

    /// The device tables a grouped step reads, made (or made larger) for this arena's tensors
    /// and the groups' structs.
    fn group_tables(&mut self, dev: &mut Device, arena: &ParamArena) -> Result<(View, View)> {
        let runs_len = 1 + 3 * arena.entries.len();
        let words = match self.config.kernel_step(1, self.config.lr(), &self.carried) {
            Step::Fused(k) => k.kernel().size / 4,
            _ => bail!(
                "{}'s step is not one fused kernel: parameter groups are not supported for it",
                self.config.name()
            ),
        };
        let groups_len = self.groups.len() * words;
        if let Some((r, g)) = self.group_tables {
            if r.len >= runs_len && g.len >= groups_len {
                return Ok((r, g));
            }
            dev.release(r);
            dev.release(g);
            self.group_tables = None;
        }
        let tables = (dev.alloc(runs_len)?, dev.alloc(groups_len)?);
        self.group_tables = Some(tables);
        Ok(tables)
    }
}
