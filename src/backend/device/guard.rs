//! What the device refuses and remembers: every view an op is given checked against the
//! allocations it handed out (see [`crate::tensor::Owner`]), optimizer steps whose buffers
//! overlap, matmuls whose views are smaller than their sizes address, and the faults these
//! leave for the next read; and the cross-entropy labels kept to explain a NaN read later.

use super::*;

/// Whether each view of a `d.m × d.k · d.k × d.n` product holds what the product reads or
/// writes: A `m·k`, B `k·n`, the output, and the activation output `m·n`, the bias `n`, the
/// column sums `m`.
pub(super) fn matmul_extents(
    d: Dims,
    a: &View,
    b: &View,
    out: &View,
    epi: &Epilogue,
) -> std::result::Result<(), String> {
    let Dims { m, k, n } = d;
    let need = |what: &str, v: &View, x: usize, y: usize| match x.checked_mul(y) {
        Some(len) if v.len >= len => Ok(()),
        _ => Err(format!("{what} holds {} values, fewer than the {x}×{y} a {m}×{k}·{k}×{n} product uses", v.len)),
    };
    need("A", a, m, k)?;
    need("B", b, k, n)?;
    need("the output", out, m, n)?;
    if let Some(bias) = &epi.bias {
        need("the bias", bias, 1, n)?;
    }
    if let Some((_, y)) = &epi.act_grad {
        need("the activation's output", y, m, n)?;
    }
    if let Some(cs) = &epi.a_colsum {
        need("the column sums", cs, m, 1)?;
    }
    Ok(())
}

/// Why a batched product's views cannot hold `batch` members of A (m×k), B (k×n) and the
/// output (m×n), if they cannot.
pub(super) fn batched_extents(d: Dims, batch: usize, [a, b, out]: [&View; 3]) -> std::result::Result<(), String> {
    let Dims { m, k, n } = d;
    for (what, v, x, y) in [("A", a, m, k), ("B", b, k, n), ("the output", out, m, n)] {
        match x.checked_mul(y).and_then(|len| len.checked_mul(batch)) {
            Some(len) if v.len >= len => {}
            _ => {
                return Err(format!(
                    "{what} holds {} values, fewer than the {batch}×{x}×{y} a batch of {batch} {m}×{k}·{k}×{n} products uses",
                    v.len
                ))
            }
        }
    }
    Ok(())
}

/// A cross-entropy's labels, kept to explain a NaN read later.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct LabelCheck {
    pub(super) labels: View,
    pub(super) classes: usize,
    pub(super) ignore_index: i32,
}

impl Device {
    /// The first refused view since the last [`Device::clear_fault`], if any: why, and which op.
    pub fn fault(&self) -> Option<&str> {
        self.fault.as_deref()
    }

    /// Forget a recorded fault, so reads and waits run again. The ops that were refused did
    /// not run: what they would have written holds what it held before.
    pub fn clear_fault(&mut self) -> Option<String> {
        self.fault.take()
    }

    /// Whether every view in `views` is one this device may use; if not, record why for
    /// `op` (the first fault is kept) and say the op must not run.
    pub(super) fn admit<'v>(&mut self, op: &str, views: impl IntoIterator<Item = &'v View>) -> bool {
        for v in views {
            if let Err(why) = self.registry.check(v) {
                self.record_fault(op, why);
                return false;
            }
        }
        true
    }

    /// [`Device::admit`] for byte buffers, each with the bytes the op reads from it.
    pub(super) fn admit_bytes(&mut self, op: &str, buffers: &[(ByteBuffer, usize, &str)]) -> bool {
        for &(b, need, what) in buffers {
            match self.registry.check_bytes(&b) {
                Ok(len) if len >= need => {}
                Ok(len) => {
                    let why = format!("{what} hold {len} bytes, fewer than the {need} the op reads");
                    self.record_fault(op, why);
                    return false;
                }
                Err(why) => {
                    self.record_fault(op, why);
                    return false;
                }
            }
        }
        true
    }

    /// [`Device::admit`] for an optimizer step, which also needs the parameters, the
    /// gradients and the state in three separate buffers: the step updates the parameters and
    /// the state in place, reading the gradients.
    pub(super) fn admit_step(&mut self, op: &str, params: View, grads: View, state: &[View]) -> bool {
        if !self.admit(op, [&params, &grads].into_iter().chain(state)) {
            return false;
        }
        let shared = if params.buf == grads.buf {
            Some("the parameters and the gradients")
        } else if state.iter().any(|s| s.buf == params.buf) {
            Some("the parameters and the optimizer state")
        } else if state.iter().any(|s| s.buf == grads.buf) {
            Some("the gradients and the optimizer state")
        } else {
            None
        };
        if let Some(which) = shared {
            let why = format!("{which} share a buffer: an optimizer step needs each in a buffer of its own");
            self.record_fault(op, why);
            return false;
        }
        true
    }

    pub(super) fn record_fault(&mut self, op: &str, why: String) {
        if self.fault.is_none() {
            self.fault = Some(format!("Device::{op} was refused: {why}"));
        }
    }

    /// The recorded fault as an `Err`, else `Ok`.
    pub(super) fn no_fault(&self) -> Result<()> {
        match &self.fault {
            Some(f) => Err(anyhow!("{f} (the op did not run; Device::clear_fault forgets it)")),
            None => Ok(()),
        }
    }

    /// What a data-parallel worker is lent: this device's live buffers as they are now.
    pub(crate) fn loan(&self) -> Loan {
        self.registry.loan()
    }

    /// Accept (or, with `None`, stop accepting) the views of the device that made `loan`.
    pub(crate) fn accept_loan(&mut self, loan: Option<Loan>) {
        self.registry.set_loan(loan)
    }

    /// Check the labels of the cross-entropies recorded so far (those still allocated).
    pub(super) fn check_cross_entropy_labels(&mut self) -> Result<()> {
        for c in self.label_checks.clone() {
            if self.registry.check(&c.labels).is_err() {
                continue;
            }
            let labels = wait(self.backend.read_async(c.labels))?;
            crate::backend::check_labels(&labels, c.classes, c.ignore_index).map_err(|e| {
                anyhow!("a value read holds NaN because a softmax cross-entropy was given a label that names no class: {e}; upload labels with Device::upload_labels to have them checked before use")
            })?;
        }
        Ok(())
    }

    /// Remember `labels` for [`Device::read`]'s NaN check (once per allocation; labels whose
    /// buffer went back to the pool are dropped).
    pub(super) fn note_labels(&mut self, labels: View, classes: usize, ignore_index: i32) {
        let check = LabelCheck { labels, classes, ignore_index };
        if self.label_checks.contains(&check) {
            return;
        }
        if self.label_checks.len() >= 16 {
            let registry = &self.registry;
            self.label_checks.retain(|c| registry.check(&c.labels).is_ok());
            if self.label_checks.len() >= 16 {
                self.label_checks.remove(0);
            }
        }
        self.label_checks.push(check);
    }

    /// bfloat16 slots count 16-bit elements: the views of the words they lie in.
    pub(super) fn bf16_words(state: &[View]) -> Vec<View> {
        state
            .iter()
            .map(|s| View { offset: s.offset / 2, len: (s.offset + s.len).div_ceil(2) - s.offset / 2, ..*s })
            .collect()
    }
}
