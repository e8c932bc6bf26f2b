//! Data-parallel steps on the CPU backend: the batch is cut into row slices of a fixed size,
//! each slice runs its whole forward and backward pass on one thread with single-threaded ops
//! (no synchronisation per op), and the slices' gradients are then summed in a fixed pairwise
//! order. Neither the slice size nor the order depends on the number of threads, so a step
//! gives the same bits on 1, 2 or 64 threads.
//!
//! The caller writes the step once, as a closure that records one slice's loss on a
//! [`Tape`]; [`DataParallel::backward`] runs it per slice, or over the whole batch on the
//! per-op path (each op split across the cores) when slicing does not apply: a GPU device, a
//! batch under two slices, products large enough for the per-op path's threaded matmul, or a
//! loss that does not add up slice by slice (its ops mix rows; see [`SliceLoss`]). The
//! [`StepRun`] it returns says which path ran and why.
//!
//! ```
//! use descent::autograd::data_parallel::{DataParallel, StepPath};
//! use descent::autograd::Tape;
//! use descent::backend::Device;
//! use descent::tensor::Tensor;
//! # fn main() -> anyhow::Result<()> {
//! let mut dev = Device::cpu();
//! let (w, grad) = (dev.upload(&[0.5, -1.0])?, dev.alloc(2)?);
//! let x: Vec<f32> = (0..128).map(|i| (i % 7) as f32).collect(); // 64 rows of 2
//! let mut dp = DataParallel::new(StepPath::DataParallel, 16, &[grad], &[])?;
//! let run = dp.backward(&mut dev, 64, |tape: &mut Tape, s| {
//!     let xs = tape.constant(&x[s.start * 2..(s.start + s.rows) * 2], &[s.rows, 2])?;
//!     let wv = tape.param(Tensor::new(w, &[2, 1])?, grad)?;
//!     let y = tape.matmul(descent::backend::Form::NN, xs, wv)?;
//!     let sq = tape.mul(y, y)?;
//!     tape.mean(sq) // the mean over the slice: slices add up with weights rows / 64
//! })?;
//! assert_eq!(run.slices(), 4);
//! # Ok(()) }
//! ```

pub use super::rows::SliceLoss;
use super::{Tape, Var};
use crate::backend::host::SerialSection;
use crate::backend::Device;
use crate::tensor::View;
use anyhow::{bail, ensure, Context, Result};

/// Rows per slice unless set otherwise: two slices for a batch of 64.
pub const SLICE_ROWS: usize = 32;

/// Which path a step takes on the CPU backend (the command line's `--cpu-step`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "app", derive(clap::ValueEnum))]
pub enum StepPath {
    /// The path the rule in [`DataParallel::plan`] picks.
    #[default]
    Auto,
    /// Slices whenever the batch holds two of them and the loss adds up.
    DataParallel,
    /// Every op over the whole batch, each split across the cores.
    PerOp,
}

impl StepPath {
    /// The command line's spelling.
    pub fn name(self) -> &'static str {
        match self {
            StepPath::Auto => "auto",
            StepPath::DataParallel => "data-parallel",
            StepPath::PerOp => "per-op",
        }
    }
}

/// One slice of the batch's rows, as the step's closure sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowSlice {
    /// The slice's first row within the batch.
    pub start: usize,
    /// Rows in the slice.
    pub rows: usize,
    /// Rows in the whole batch.
    pub batch_rows: usize,
}

/// How a step ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepRun {
    /// In `slices` row slices.
    DataParallel {
        /// How many.
        slices: usize,
    },
    /// Over the whole batch.
    PerOp {
        /// Why the step did not run in slices.
        why: String,
    },
}

impl StepRun {
    /// Slices the step ran as (1 on the per-op path).
    pub fn slices(&self) -> usize {
        match self {
            StepRun::DataParallel { slices } => *slices,
            StepRun::PerOp { .. } => 1,
        }
    }
}

/// The data-parallel driver: the slice size, which main-device buffers a step writes, and one
/// worker device per slice (kept between steps, so a step allocates nothing after the first).
pub struct DataParallel {
    path: StepPath,
    slice_rows: usize,
    /// Whole main-device buffers that parameters' gradients are written into.
    grads: Vec<View>,
    /// Views the step adds into (loss and accuracy sums): each slice adds from zero, then the
    /// main device adds the slices' sums.
    accumulators: Vec<View>,
    workers: Vec<Device>,
}

/// What one slice returns.
struct SliceOut {
    loss: std::result::Result<SliceLoss, String>,
    grads: Vec<View>,
}

impl DataParallel {
    /// A driver for steps whose parameters' gradients lie in the buffers of `grads` and that add
    /// into `accumulators` (all on the device the steps run on). Any other main-device buffer
    /// the closure writes makes the step an `Err`.
    pub fn new(path: StepPath, slice_rows: usize, grads: &[View], accumulators: &[View]) -> Result<DataParallel> {
        ensure!(slice_rows >= 4, "slices need at least 4 rows, got {slice_rows}");
        Ok(DataParallel {
            path,
            slice_rows,
            grads: grads.to_vec(),
            accumulators: accumulators.to_vec(),
            workers: Vec::new(),
        })
    }

    /// The path asked for.
    pub fn path(&self) -> StepPath {
        self.path
    }

    /// Rows per slice.
    pub fn slice_rows(&self) -> usize {
        self.slice_rows
    }

    /// The slices of a batch: `slice_rows` each, a remainder under half a slice joining the
    /// last one (so no slice has fewer than half as many rows as the others).
    pub fn slices(&self, batch_rows: usize) -> Vec<RowSlice> {
        let s = self.slice_rows;
        let (full, rest) = (batch_rows / s, batch_rows % s);
        let mut out: Vec<RowSlice> = (0..full).map(|i| RowSlice { start: i * s, rows: s, batch_rows }).collect();
        match out.last_mut() {
            Some(last) if rest * 2 < s => last.rows += rest,
            _ if rest > 0 => out.push(RowSlice { start: full * s, rows: rest, batch_rows }),
            _ => {}
        }
        out
    }

    /// The rule, in one place: `None` to run slices, or why the step runs per op. It depends on
    /// the device, the path asked for and the batch, never on the number of threads, so every
    /// thread count takes the same path. [`StepPath::Auto`] takes the per-op path: on every CPU
    /// and batch size measured so far it was as fast as slices or faster (BENCHMARKS.md,
    /// "Data-parallel steps").
    pub fn plan(&self, dev: &Device, batch_rows: usize) -> Option<String> {
        if dev.cpu_backend().is_none() {
            return Some("the device is not the CPU backend".into());
        }
        match self.path {
            StepPath::PerOp => Some("the per-op path was asked for".into()),
            StepPath::Auto => Some(
                "auto takes the per-op path, measured as fast as row slices or faster (--cpu-step data-parallel forces slices)"
                    .into(),
            ),
            StepPath::DataParallel if batch_rows < 2 * self.slice_rows => {
                Some(format!("a batch of {batch_rows} rows is under two slices of {}", self.slice_rows))
            }
            StepPath::DataParallel => None,
        }
    }

    /// Record `build`'s loss for the batch's `batch_rows` rows and run its backward pass:
    /// slice by slice when [`DataParallel::plan`] allows and the loss adds up, else over the
    /// whole batch on `dev`. `build` records one slice's loss (the whole batch is one slice on
    /// the per-op path); the parameters' gradients land in their gradient views as
    /// [`Tape::backward`] leaves them.
    pub fn backward<F>(&mut self, dev: &mut Device, batch_rows: usize, build: F) -> Result<StepRun>
    where
        F: Fn(&mut Tape, RowSlice) -> Result<Var> + Sync,
    {
        if let Some(why) = self.plan(dev, batch_rows) {
            return per_op(dev, batch_rows, &build, why);
        }
        let slices = self.slices(batch_rows);
        let outs = self.run_slices(dev, &slices, &build)?;
        let first = &outs[0];
        let why = outs.iter().find_map(|o| o.loss.as_ref().err().cloned()).or_else(|| {
            let same_kind = outs.iter().all(|o| {
                matches!(
                    (&o.loss, &first.loss),
                    (Ok(SliceLoss::Sum), Ok(SliceLoss::Sum)) | (Ok(SliceLoss::Mean { .. }), Ok(SliceLoss::Mean { .. }))
                )
            });
            let same_params = outs.iter().all(|o| o.grads == first.grads);
            match (same_kind, same_params) {
                (false, _) => Some("slices' losses differ in kind (a mean in one, a sum in another)".into()),
                (_, false) => Some("slices registered different parameters".into()),
                _ => None,
            }
        });
        if let Some(why) = why {
            return per_op(dev, batch_rows, &build, format!("the loss does not add up over row slices: {why}"));
        }
        let counts: Vec<usize> = outs
            .iter()
            .map(|o| match o.loss {
                Ok(SliceLoss::Mean { count }) => count,
                _ => 1,
            })
            .collect();
        let total: usize = counts.iter().sum();
        let weights: Vec<f32> = match first.loss {
            Ok(SliceLoss::Mean { .. }) if total > 0 => {
                counts.iter().map(|&c| (c as f64 / total as f64) as f32).collect()
            }
            Ok(SliceLoss::Mean { .. }) => vec![0.0; outs.len()],
            _ => vec![1.0; outs.len()],
        };
        let ones = vec![1.0; outs.len()];
        let workers = &self.workers[..slices.len()];
        let main = dev.cpu_backend_mut().context("the data-parallel step needs the CPU backend")?;
        let sum = |main: &mut crate::backend::cpu::CpuBackend, v: View, w: &[f32], accumulate: bool| {
            let parts: Vec<&[f32]> =
                workers.iter().map(|d| d.cpu_backend().expect("workers are CPU").values(v)).collect();
            main.reduce_into(v, &parts, w, accumulate);
        };
        for &g in &first.grads {
            sum(main, g, &weights, false);
        }
        for &a in &self.accumulators {
            sum(main, a, &ones, true);
        }
        Ok(StepRun::DataParallel { slices: slices.len() })
    }

    /// Lend the main device's buffers to one worker per slice, run `build` and the backward
    /// pass on each (in parallel, each on one thread), and take the loans back.
    fn run_slices<F>(&mut self, dev: &mut Device, slices: &[RowSlice], build: &F) -> Result<Vec<SliceOut>>
    where
        F: Fn(&mut Tape, RowSlice) -> Result<Var> + Sync,
    {
        let loan = dev.loan();
        let main = dev.cpu_backend_mut().context("the data-parallel step needs the CPU backend")?;
        let mut private: Vec<(usize, usize)> = Vec::new();
        for v in self.grads.iter().chain(&self.accumulators) {
            let Some(len) = main.buffer_len(v.buf) else { bail!("buffer {} is not on this device", v.buf) };
            if !private.iter().any(|&(b, _)| b == v.buf) {
                private.push((v.buf, len));
            }
        }
        let ids: Vec<usize> = private.iter().map(|&(b, _)| b).collect();
        let lent = main.lend(&ids);
        while self.workers.len() < slices.len() {
            self.workers.push(Device::cpu_worker());
        }
        let workers = &mut self.workers[..slices.len()];
        for w in workers.iter_mut() {
            w.accept_loan(Some(loan.clone()));
            w.cpu_backend_mut().expect("workers are CPU").attach(&lent, &private, &self.accumulators);
        }
        drop(lent);
        let one = |(w, s): (&mut Device, &RowSlice)| -> Result<SliceOut> {
            let _serial = SerialSection::enter();
            let mut tape = Tape::new(w);
            let root = build(&mut tape, *s)?;
            let loss = tape.slice_loss(root, s.rows)?;
            if loss.is_ok() {
                tape.backward(root)?;
            }
            Ok(SliceOut { loss, grads: tape.param_grads() })
        };
        let outs = crate::backend::host::map_pinned(workers.iter_mut().zip(slices).collect(), one);
        let mut wrote: Vec<usize> = workers
            .iter_mut()
            .flat_map(|w| {
                w.accept_loan(None);
                w.cpu_backend_mut().expect("workers are CPU").detach()
            })
            .collect();
        wrote.sort_unstable();
        wrote.dedup();
        let fault = workers.iter_mut().find_map(|w| w.clear_fault());
        let outs = outs.into_iter().collect::<Result<Vec<_>>>()?;
        if let Some(f) = fault {
            bail!("a row slice's step was refused: {f}");
        }
        ensure!(
            wrote.is_empty(),
            "the step wrote the device's buffer(s) {wrote:?}, which are neither gradients nor accumulators given to DataParallel::new: declare them there, or write them outside the step"
        );
        Ok(outs)
    }
}

/// The step over the whole batch on the device itself.
fn per_op<F>(dev: &mut Device, batch_rows: usize, build: &F, why: String) -> Result<StepRun>
where
    F: Fn(&mut Tape, RowSlice) -> Result<Var>,
{
    let mut tape = Tape::new(dev);
    let root = build(&mut tape, RowSlice { start: 0, rows: batch_rows, batch_rows })?;
    tape.backward(root)?;
    Ok(StepRun::PerOp { why })
}
