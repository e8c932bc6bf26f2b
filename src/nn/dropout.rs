//! Dropout as a layer: train and eval mode, a fresh mask per call.

use crate::autograd::{Tape, Var};
use crate::backend::DropoutMask;
use anyhow::Result;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// PyTorch's `nn.Dropout(p)` as a layer: in train mode each call zeroes every element with
/// probability `p` and scales the rest by `1/(1 − p)`, drawing a fresh mask per call (Philox at
/// key `seed`, counter offset = the number of calls so far, see [`DropoutMask`]), so a run is
/// reproducible from its seed on either backend; in eval mode it is the identity. The mode and
/// the call count are atomics so that `forward` takes `&self`, like the layers beside it, and a
/// model holding one can be shared with a data-parallel step's workers. Such a step falls back
/// to the whole batch (a mask is drawn over the batch's elements), after its slices have drawn
/// theirs: the masks are then other draws than a per-op step's, from the same seed.
#[derive(Debug)]
pub struct Dropout {
    p: f32,
    seed: u64,
    calls: AtomicU64,
    training: AtomicBool,
}

impl Dropout {
    /// Dropout with probability `p` (0 ≤ p ≤ 1), its masks keyed by `seed`; in train mode.
    pub fn new(p: f32, seed: u64) -> Result<Dropout> {
        DropoutMask::new(p, seed, 0)?;
        Ok(Dropout { p, seed, calls: AtomicU64::new(0), training: AtomicBool::new(true) })
    }

    /// The probability of zeroing an element.
    pub fn p(&self) -> f32 {
        self.p
    }

    /// `x` with dropout applied in train mode (a fresh mask), `x` itself in eval mode.
    pub fn forward(&self, tape: &mut Tape, x: Var) -> Result<Var> {
        if !self.is_training() || self.p == 0.0 {
            return Ok(x);
        }
        let offset = self.calls.fetch_add(1, Ordering::Relaxed);
        tape.dropout(x, DropoutMask::new(self.p, self.seed, offset)?)
    }

    /// Train mode (PyTorch's `.train()`): masks are drawn.
    pub fn train(&self) {
        self.training.store(true, Ordering::Relaxed);
    }

    /// Eval mode (PyTorch's `.eval()`): the identity.
    pub fn eval(&self) {
        self.training.store(false, Ordering::Relaxed);
    }

    /// Whether masks are drawn.
    pub fn is_training(&self) -> bool {
        self.training.load(Ordering::Relaxed)
    }

    /// Masks drawn so far: the next mask's offset. Save it with a checkpoint and restore it
    /// with [`Dropout::set_calls`] to resume with the same masks.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Continue from `calls` masks drawn.
    pub fn set_calls(&self, calls: u64) {
        self.calls.store(calls, Ordering::Relaxed);
    }
}
