//! A running optimizer: its configuration, schedule and step count, and its state (by width, in
//! `state.rs`): the fused step over a parameter arena, and state readback and restore for
//! checkpoints.

use super::config::*;
use super::state::{OptimState, StoredState};
use super::step::{Carried, Step};
use super::Schedule;
use crate::backend::optim_kernel::*;
use crate::backend::quant::BlockTable;
use crate::backend::Device;
use crate::nn::ParamArena;
use crate::tensor::View;
use anyhow::{bail, ensure, Context, Result};

/// Which sequence the parameters hold. Only Schedule-Free tells them apart: it steps y
/// (`Train`), and evaluation and export want x (`Eval`). Every other optimizer's parameters
/// are the same in both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// The parameters are what the optimizer steps.
    #[default]
    Train,
    /// Schedule-Free: the parameters hold x, the average; stepping is refused.
    Eval,
}

impl Mode {
    /// How checkpoints name it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Train => "train",
            Mode::Eval => "eval",
        }
    }

    /// The mode a checkpoint names.
    pub fn from_name(s: &str) -> Result<Mode> {
        match s {
            "train" => Ok(Mode::Train),
            "eval" => Ok(Mode::Eval),
            _ => bail!("unknown optimizer mode '{s}': expected train or eval"),
        }
    }
}

/// An optimizer bound to a device: its configuration, schedule, step count and its state,
/// parallel to the parameter arena.
pub struct Optimizer {
    /// Hyperparameters.
    pub config: OptimConfig,
    /// How the learning rate changes with the step.
    pub schedule: Schedule,
    /// Steps taken so far (PyTorch's `step`).
    pub step: u64,
    /// Parameters updated (the arena's length, padding included).
    pub n: usize,
    /// The state buffers.
    pub state: OptimState,
    /// Which sequence the parameters hold (see [`Mode`]). Set it directly only when restoring
    /// parameters stored in that mode; [`Optimizer::eval`] and [`Optimizer::train`] switch.
    pub mode: Mode,
    /// Host scalars carried between steps (recomputed when `step` was set directly).
    pub(super) carried: Carried,
    /// The optimizer and state width the state was allocated for.
    built: (&'static str, OptimBits),
    /// The tensors it was built for, as (shape, arena range): an arena stepped must have this
    /// layout, not merely this length (padding makes different models the same length).
    layout: Vec<(Vec<usize>, std::ops::Range<usize>)>,
    /// Parameter groups, each with its own configuration (none: one group, `config`).
    pub(super) groups: Vec<super::groups::Group>,
    /// The device tables a grouped step reads (runs, groups' structs), made at its first step.
    pub(super) group_tables: Option<(View, View)>,
}

impl Optimizer {
    /// An optimizer for every tensor of `arena`, its state zeroed (or PyTorch's initial value).
    /// At 8 bits each tensor is quantized in blocks of its own; tensors under
    /// `quant::MIN_8BIT_SIZE` elements keep f32 state.
    pub fn new(dev: &mut Device, arena: &ParamArena, config: OptimConfig, schedule: Schedule) -> Result<Optimizer> {
        let tensors: Vec<(usize, Vec<usize>)> = arena.entries.iter().map(|e| (e.offset, e.shape.clone())).collect();
        Optimizer::build(dev, config, schedule, arena.len(), &tensors)
    }

    /// An optimizer for a flat buffer of `n` parameters (benchmarks, replays), stepped with
    /// [`Optimizer::step_views`]: one tensor (quantized at 8 bits when `n` reaches
    /// `quant::MIN_8BIT_SIZE`).
    pub fn for_len(dev: &mut Device, config: OptimConfig, schedule: Schedule, n: usize) -> Result<Optimizer> {
        Optimizer::build(dev, config, schedule, n, &[(0, vec![n])])
    }

    /// An optimizer for one tensor of `shape` in flat buffers (replays of matrices): Adafactor
    /// factors its last two dimensions.
    pub fn for_shape(dev: &mut Device, config: OptimConfig, schedule: Schedule, shape: &[usize]) -> Result<Optimizer> {
        Optimizer::build(dev, config, schedule, shape.iter().product(), &[(0, shape.to_vec())])
    }

    /// An optimizer for flat buffers of `n` parameters holding tensors at `(offset, len)`
    /// (offsets multiples of 4): at 8 bits each tensor is quantized in blocks of its own.
    pub fn for_tensors(
        dev: &mut Device,
        config: OptimConfig,
        schedule: Schedule,
        n: usize,
        tensors: &[(usize, usize)],
    ) -> Result<Optimizer> {
        let shaped: Vec<(usize, Vec<usize>)> = tensors.iter().map(|&(at, len)| (at, vec![len])).collect();
        Optimizer::for_shapes(dev, config, schedule, n, &shaped)
    }

    /// [`Optimizer::for_tensors`] with each tensor's shape: `(first element, shape)`, in
    /// ascending order without overlaps (Adafactor factors each one's last two dimensions).
    pub fn for_shapes(
        dev: &mut Device,
        config: OptimConfig,
        schedule: Schedule,
        n: usize,
        tensors: &[(usize, Vec<usize>)],
    ) -> Result<Optimizer> {
        let mut end = 0;
        for (at, shape) in tensors {
            let len: usize = shape.iter().product();
            ensure!(
                at % 4 == 0 && *at >= end && at + len <= n,
                "tensors must start at multiples of 4, ascend without overlapping and end within the {n} parameters"
            );
            end = at + len;
        }
        Optimizer::build(dev, config, schedule, n, tensors)
    }

    fn build(
        dev: &mut Device,
        config: OptimConfig,
        schedule: Schedule,
        n: usize,
        tensors: &[(usize, Vec<usize>)],
    ) -> Result<Optimizer> {
        config.validate()?;
        // A schedule that would give a NaN, negative or wrapped rate is refused here, where it
        // enters the library, not found later as NaN parameters.
        schedule.validate()?;
        let inits = config.state_inits(schedule.lr(config.lr(), 0));
        let state = OptimState::alloc(dev, &config, n, &inits, tensors)?;
        let layout =
            tensors.iter().map(|(at, shape)| (shape.clone(), *at..*at + shape.iter().product::<usize>())).collect();
        let built = (config.name(), config.optim_bits());
        let carried = Carried::new();
        Ok(Optimizer {
            config,
            schedule,
            step: 0,
            n,
            state,
            mode: Mode::Train,
            carried,
            built,
            layout,
            groups: vec![],
            group_tables: None,
        })
    }

    /// The learning rate used for step index `t` (0-based).
    pub fn lr_at(&self, t: u64) -> f64 {
        self.schedule.lr(self.config.lr(), t)
    }

    /// One step over `arena` from the gradients in it: a single fused kernel launch (at 32 and
    /// 16 bits one per run of trainable tensors when some are frozen; at 8 bits one, over the
    /// trainable tensors' blocks).
    pub fn step(&mut self, dev: &mut Device, arena: &ParamArena) -> Result<()> {
        self.check_layout(arena)?;
        if !self.groups.is_empty() {
            return self.step_groups(dev, arena);
        }
        let ranges = arena.trainable_ranges();
        self.step_ranges(dev, arena.params, arena.grads, &ranges)
    }

    /// [`Optimizer::step`] with the check [`Device::find_nonfinite`] makes of the arena's
    /// gradients (`check.flag` records the first non-finite one) folded into the step: on a
    /// GPU the check and the step are one dispatch that reads each gradient once. Where the
    /// step is not one fused pass over the whole arena (frozen tensors, parameter groups, 8-bit
    /// state, Adafactor, Muon) the check runs first as its own pass. Either way the update is
    /// applied: read the flag before stepping to stop short of a bad update, as the CPU
    /// trainer does.
    pub fn step_checked(&mut self, dev: &mut Device, arena: &ParamArena, check: GradCheck) -> Result<()> {
        self.check_layout(arena)?;
        if !self.groups.is_empty() {
            dev.find_nonfinite(arena.grads, check.flag, check.tag);
            return self.step_groups(dev, arena);
        }
        let ranges = arena.trainable_ranges();
        self.step_ranges_checked(dev, arena.params, arena.grads, &ranges, Some(check))
    }

    /// Refuse an arena of another layout than the one this optimizer was built for.
    pub(super) fn check_layout(&self, arena: &ParamArena) -> Result<()> {
        let layout = arena_layout(arena);
        if layout != self.layout || arena.len() != self.n {
            let at = layout
                .iter()
                .zip(&self.layout)
                .position(|(a, b)| a != b)
                .unwrap_or(layout.len().min(self.layout.len()));
            let show = |l: &[(Vec<usize>, std::ops::Range<usize>)]| {
                l.get(at).map_or("nothing".to_string(), |(shape, r)| format!("{shape:?} at {}..{}", r.start, r.end))
            };
            bail!(
                "this optimizer was built for another arena: its tensor {at} is {}, the arena's is {} ({} tensors in {} parameters against {} in {}); build it with Optimizer::new from the arena it steps",
                show(&self.layout),
                show(&layout),
                self.layout.len(),
                self.n,
                layout.len(),
                arena.len()
            );
        }
        Ok(())
    }

    /// Put the parameters in eval mode: for Schedule-Free, x (the average that evaluation and
    /// export want) in the place of y, as the reference's `optimizer.eval()`. Every other
    /// optimizer only records the mode. One pass over the whole arena; nothing is read back.
    pub fn eval(&mut self, dev: &mut Device, arena: &ParamArena) -> Result<()> {
        self.check_layout(arena)?;
        self.switch(dev, arena.params, arena.grads, Mode::Eval)
    }

    /// Back to train mode (Schedule-Free: y in the place of x), as `optimizer.train()`.
    pub fn train(&mut self, dev: &mut Device, arena: &ParamArena) -> Result<()> {
        self.check_layout(arena)?;
        self.switch(dev, arena.params, arena.grads, Mode::Train)
    }

    /// [`Optimizer::eval`] or [`Optimizer::train`] over flat `params` (and `grads`, which the
    /// pass binds but does not read) of the length it was built for.
    pub fn switch(&mut self, dev: &mut Device, params: View, grads: View, to: Mode) -> Result<()> {
        ensure!(params.len == self.n && grads.len == self.n, "params and grads of {} elements", self.n);
        if to == self.mode {
            return Ok(());
        }
        // Before the first step there is no z yet: nothing moves, as in the reference.
        if let (OptimConfig::SchedulefreeAdamw(c), true) = (&self.config, self.step > 0) {
            let beta1 = c.betas.0;
            let weight = match to {
                Mode::Eval => 1.0 - 1.0 / beta1,
                Mode::Train => 1.0 - beta1,
            };
            let k = Step::Fused(OptimStep::SchedulefreeMode(SchedulefreeModeParams { weight: weight as f32, init: 0 }));
            self.state.step(dev, &k, Objective::Minimize, params, grads, &self.whole())?;
        }
        self.mode = to;
        Ok(())
    }

    /// One fused step over flat `params` and `grads` of the length the optimizer was built for
    /// (an error in eval mode, or for views of another length).
    pub fn step_views(&mut self, dev: &mut Device, params: View, grads: View) -> Result<()> {
        ensure!(
            params.len == self.n && grads.len == self.n,
            "params of {} and grads of {} elements, for an optimizer of {}",
            params.len,
            grads.len,
            self.n
        );
        self.step_ranges(dev, params, grads, &self.whole())
    }

    /// One step over the parts `ranges` of flat `params` and `grads` (the length the optimizer
    /// was built for): one launch per range at 32 and 16 bits (16: ranges start at even
    /// offsets), one over the ranges' blocks at 8.
    pub fn step_ranges(
        &mut self,
        dev: &mut Device,
        params: View,
        grads: View,
        ranges: &[std::ops::Range<usize>],
    ) -> Result<()> {
        self.step_ranges_checked(dev, params, grads, ranges, None)
    }

    /// [`Optimizer::step_ranges`], with `check` over all of `grads` folded into the step where
    /// it is one fused pass over the whole of `params` (see [`Optimizer::step_checked`]).
    fn step_ranges_checked(
        &mut self,
        dev: &mut Device,
        params: View,
        grads: View,
        ranges: &[std::ops::Range<usize>],
        check: Option<GradCheck>,
    ) -> Result<()> {
        ensure!(
            ranges.iter().all(|r| r.end <= self.n),
            "a range past the {} parameters this optimizer was built for",
            self.n
        );
        ensure!(
            self.groups.is_empty(),
            "this optimizer has parameter groups, which name the arena's tensors: step it with Optimizer::step(arena)"
        );
        self.state.check_ranges(ranges)?;
        self.check_config()?;
        if self.mode == Mode::Eval {
            bail!("the optimizer is in eval mode (the parameters hold schedule-free's x): call train() before stepping, as the reference requires");
        }
        if let (OptimConfig::SchedulefreeAdamw(_), 0) = (&self.config, self.step) {
            // z starts as a copy of the parameters: every tensor's, frozen or not.
            let init = Step::Fused(OptimStep::SchedulefreeMode(SchedulefreeModeParams { weight: 0.0, init: 1 }));
            self.state.step(dev, &init, Objective::Minimize, params, grads, &self.whole())?;
        }
        let k = self.next_step();
        if let Some(c) = check {
            let whole = matches!(ranges, [r] if *r == (0..params.len));
            if whole && self.state.step_checked(dev, &k, self.config.objective(), params, grads, c) {
                return Ok(());
            }
            dev.find_nonfinite(grads, c.flag, c.tag);
        }
        self.state.step(dev, &k, self.config.objective(), params, grads, ranges)
    }

    /// `config` and `schedule` are public fields: what was changed since [`Optimizer::new`]
    /// is checked before each step, by the same validation, so a negative or NaN rate set
    /// after construction is an `Err`, not NaN parameters. The optimizer and the state width
    /// are those the state was built for.
    pub(super) fn check_config(&self) -> Result<()> {
        let (name, bits) = self.built;
        ensure!(
            self.config.name() == name && self.config.optim_bits() == bits,
            "this optimizer's state was built for '{name}' at {} bits; its config now says '{}' at {} bits: build a new Optimizer for another optimizer or width",
            bits.bits(),
            self.config.name(),
            self.config.optim_bits().bits()
        );
        self.config.validate().context("the optimizer's config, changed after it was built")?;
        self.schedule.validate().context("the optimizer's schedule, changed after it was built")?;
        let lr = self.lr_at(self.step);
        ensure!(
            lr.is_finite() && lr >= 0.0,
            "the learning rate at step {} is {lr} ({:?} from a base rate of {}): a rate must be finite and >= 0",
            self.step + 1,
            self.schedule,
            self.config.lr()
        );
        Ok(())
    }

    /// Set the base learning rate, checked as [`Optimizer::new`] checks it (finite, ≥ 0).
    pub fn set_lr(&mut self, lr: f64) -> Result<()> {
        let mut config = self.config.clone();
        config.set_lr(lr);
        config.validate()?;
        self.config = config;
        Ok(())
    }

    /// The whole arena as one range.
    fn whole(&self) -> Vec<std::ops::Range<usize>> {
        std::iter::once(0..self.n).collect()
    }

    /// Count a step and compute its kernel scalars.
    fn next_step(&mut self) -> Step {
        let lr = self.advance();
        self.config.kernel_step(self.step, lr, &self.carried)
    }

    /// Count one step: the carried scalars advanced at this step's rate, which it returns.
    pub(super) fn advance(&mut self) -> f64 {
        if self.carried.t != self.step {
            // The step count was set directly (a resumed checkpoint): recompute from the rates.
            self.carried = Carried::replay(&self.config, self.step, |k| self.lr_at(k));
        }
        let lr = self.lr_at(self.step);
        self.carried.advance(&self.config, lr);
        self.step += 1;
        lr
    }

    /// Give the state buffers back to the device's pool.
    pub fn release(self, dev: &mut Device) {
        if let Some((runs, groups)) = self.group_tables {
            dev.release(runs);
            dev.release(groups);
        }
        self.state.release(dev);
    }

    /// The state as PyTorch's `state_dict()` names it, as f32 values per arena element
    /// (bfloat16 and 8-bit state dequantized; padding 0). At 8 bits two more entries follow
    /// when some tensor is quantized: `exp_avg_absmax` and `exp_avg_sq_absmax`, one value per
    /// quantized block.
    pub fn read_state(&self, dev: &mut Device) -> Result<Vec<(&'static str, Vec<f32>)>> {
        crate::backend::wait(self.read_state_async(dev))
    }

    /// [`Optimizer::read_state`] as a future (for a browser's WebGPU device).
    pub async fn read_state_async(&self, dev: &mut Device) -> Result<Vec<(&'static str, Vec<f32>)>> {
        self.state.read_decoded(dev, self.n, self.config.state_names()).await
    }

    /// The state as a new optimizer of this configuration and layout holds it (every slot at
    /// its initial value, codes of zero), built on the host: what a checkpoint's tensors are
    /// written into before [`Optimizer::write_stored`].
    pub fn initial_stored(&self) -> StoredState {
        self.state.initial_stored(self.n, &self.config.state_inits(self.lr_at(0)))
    }

    /// The state exactly as stored (checkpoints keep these bits).
    pub fn read_stored(&self, dev: &mut Device) -> Result<StoredState> {
        crate::backend::wait(self.read_stored_async(dev))
    }

    /// [`Optimizer::read_stored`] as a future (for a browser's WebGPU device).
    pub async fn read_stored_async(&self, dev: &mut Device) -> Result<StoredState> {
        self.state.read_stored(dev, self.n).await
    }

    /// Overwrite the state with `stored` (from [`Optimizer::read_stored`] of an optimizer of
    /// the same configuration and layout).
    pub fn write_stored(&mut self, dev: &mut Device, stored: &StoredState) -> Result<()> {
        if !self.state.write_stored(dev, self.n, stored)? {
            bail!(
                "the stored state is of another width or has other slots than this {}-bit {} optimizer",
                self.config.optim_bits().bits(),
                self.config.name()
            );
        }
        Ok(())
    }

    /// The block layout at 8 bits (None at 32 and 16).
    pub fn block_table(&self) -> Option<&BlockTable> {
        self.state.block_table()
    }

    /// Muon's layout: which tensors it steps and where each one's slots lie (None for other
    /// optimizers).
    pub fn muon_layout(&self) -> Option<&super::MuonState> {
        match &self.state {
            OptimState::Muon(s) => Some(s),
            _ => None,
        }
    }

    /// Adafactor's layout of every tensor's statistics (None for other optimizers).
    pub fn factor_table(&self) -> Option<&crate::backend::factored::FactorTable> {
        match &self.state {
            OptimState::Factored(s) => Some(&s.full),
            _ => None,
        }
    }
}

/// An arena's tensors as (shape, arena range).
fn arena_layout(arena: &ParamArena) -> Vec<(Vec<usize>, std::ops::Range<usize>)> {
    arena.entries.iter().map(|e| (e.shape.clone(), e.range())).collect()
}
