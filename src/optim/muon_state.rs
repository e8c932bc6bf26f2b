//! Muon's state on a device: the momentum buffer of each matrix it steps and the auxiliary
//! AdamW's moments of every other tensor, each kept compact (a tensor keeps only its own
//! optimizer's slots), and the scratch matrices Newton–Schulz runs in.
//!
//! A step, per trainable matrix W (rows × cols): the momentum pass writes the matrix to
//! orthogonalize into the scratch X; X ← X / max(‖X‖_F, eps) on the device; `ns_steps` times
//! S = XXᵀ (XᵀX for a tall W, which keeps X in W's orientation: no transposes),
//! T = b·S + c·S² and X ← a·X + T·X (X·T); then W ← W·(1 − lr·wd) − lr·ratio·X. Then one fused
//! AdamW launch per other trainable tensor. Nothing is read back.
//!
//! Matrices of one shape run Newton–Schulz together ([`MuonState::batches`]): their X lie one
//! after another in the scratch, and the norms, each product and each update of the iteration
//! is one batched op for all of them ([`Device::inv_norm_batched`],
//! [`Device::scale_by_batched`], [`Device::matmul_batched`], [`Device::gram_batched`]), so a
//! model with L same-shaped layers takes those 3 + 5·`ns_steps` launches once, not L times
//! (the momentum and the update stay one launch per matrix: the matrices are not contiguous in
//! the arena). Each matrix gets the bits it would get alone. With `ns_dtype` bfloat16
//! the iteration is one op, [`Device::newton_schulz_bf16`] (the CPU backend's).

use super::config::NsDtype;
use super::step::MuonStep;
use super::OptimBits;
use crate::backend::ops::{Dims, Form, NewtonSchulz};
use crate::backend::optim_kernel::Objective;
use crate::backend::quant;
use crate::backend::Device;
use crate::tensor::View;
use anyhow::{bail, ensure, Result};
use std::ops::Range;

/// A matrix Muon steps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MuonMatrix {
    /// Its arena elements.
    pub range: Range<usize>,
    /// Rows (the first dimension, PyTorch's A).
    pub rows: usize,
    /// Columns (B).
    pub cols: usize,
    /// Where its momentum buffer starts in the buffer slot.
    pub at: usize,
}

/// Muon's buffers and the tensors they were built for.
pub struct MuonState {
    /// The matrices Muon steps, in arena order.
    pub matrices: Vec<MuonMatrix>,
    /// The tensors the auxiliary AdamW steps: arena elements, and where their moments start.
    pub aux: Vec<(Range<usize>, usize)>,
    /// f32 or bfloat16 slots (the Newton–Schulz iteration is f32 either way).
    pub bits: OptimBits,
    /// The momentum buffers, then exp_avg and exp_avg_sq of the auxiliary tensors.
    pub slots: [View; 3],
    /// Elements of each slot up to its last tensor's end: the matrices', the auxiliary tensors'
    /// (twice). Tensors start at multiples of 4 within a slot.
    pub lens: [usize; 3],
    /// Scratch: X and T·X (the largest matrix), S and S² (its smaller side squared), the norm.
    scratch: [View; 5],
}

/// The most scratch elements (of X, and of T·X) one Newton–Schulz batch takes, 16 MiB each,
/// unless one matrix alone is larger: a batch is cut there, so the scratch stays bounded
/// however many layers share a shape.
const BATCH_ELEMENTS: usize = 1 << 22;

/// The most matrices in one batch: a GPU runs one workgroup row per member, and WebGPU
/// guarantees 65,535 workgroups per grid dimension.
const BATCH_MEMBERS: usize = 65_535;

/// Element offsets of compact slots: a multiple of 4 (bfloat16 pairs start on a word).
fn align(x: usize) -> usize {
    x.next_multiple_of(4)
}

impl MuonState {
    /// The layout of `tensors` (first element, shape): every 2-D tensor to Muon, except the
    /// first and the last when there are three or more and `aux_first_last`; the rest to AdamW.
    pub(super) fn alloc(
        dev: &mut Device,
        bits: OptimBits,
        tensors: &[(usize, Vec<usize>)],
        aux_first_last: bool,
    ) -> Result<MuonState> {
        let matrix_count = tensors.iter().filter(|(_, s)| s.len() == 2).count();
        let mut seen = 0;
        let (mut matrices, mut aux) = (Vec::new(), Vec::new());
        // Next free element (aligned) and end of the last tensor, per kind.
        let (mut buf_len, mut aux_len, mut buf_end, mut aux_end) = (0, 0, 0, 0);
        for (at, shape) in tensors {
            let len: usize = shape.iter().product();
            let range = *at..at + len;
            let muon = shape.len() == 2 && {
                seen += 1;
                !(aux_first_last && matrix_count >= 3 && (seen == 1 || seen == matrix_count))
            };
            if muon {
                matrices.push(MuonMatrix { range, rows: shape[0], cols: shape[1], at: buf_len });
                buf_end = buf_len + len;
                buf_len = align(buf_end);
            } else {
                aux.push((range, aux_len));
                aux_end = aux_len + len;
                aux_len = align(aux_end);
            }
        }
        let lens = [buf_end, aux_end, aux_end];
        let mut slot = |len: usize| match bits {
            OptimBits::B32 => dev.alloc_zeroed(len.max(1)),
            _ => dev.alloc_zeroed(len.div_ceil(2).max(1)),
        };
        let slots = [slot(lens[0])?, slot(lens[1])?, slot(lens[2])?];
        // The scratch holds the largest batch (every matrix trainable).
        let batches = batches(matrices.iter());
        let most =
            |f: &dyn Fn(&MuonMatrix) -> usize| batches.iter().map(|b| b.len() * f(b[0])).max().unwrap_or(0).max(1);
        let (x_len, s_len) = (most(&|m| m.range.len()), most(&|m| m.rows.min(m.cols).pow(2)));
        let count = most(&|_| 1);
        let scratch = [dev.alloc(x_len)?, dev.alloc(x_len)?, dev.alloc(s_len)?, dev.alloc(s_len)?, dev.alloc(count)?];
        Ok(MuonState { matrices, aux, bits, slots, lens, scratch })
    }

    /// The trainable matrices (those starting inside `ranges`), in batches that run
    /// Newton–Schulz together: one shape each, in the order each shape first appears, at most
    /// 16 MiB of scratch (or one matrix) and 65,535 matrices each.
    pub fn batches(&self, ranges: &[Range<usize>]) -> Vec<Vec<&MuonMatrix>> {
        batches(self.matrices.iter().filter(|w| ranges.iter().any(|t| t.contains(&w.range.start))))
    }

    /// A view of slot `k` for `len` elements from `at` (bfloat16 views count elements).
    fn slot(&self, k: usize, at: usize, len: usize) -> View {
        let v = self.slots[k];
        match self.bits {
            OptimBits::B32 => v.slice(at, len),
            _ => View { offset: at, len, ..v },
        }
    }

    /// One fused elementwise launch at this state's width.
    fn launch(&self, dev: &mut Device, k: &crate::backend::OptimStep, o: Objective, p: View, g: View, s: &[View]) {
        match self.bits {
            OptimBits::B32 => dev.optim_step(k, o, p, g, s),
            _ => dev.optim_step_bf16(k, o, p, g, s),
        }
    }

    pub(super) fn step(
        &mut self,
        dev: &mut Device,
        m: &MuonStep,
        o: Objective,
        params: View,
        grads: View,
        ranges: &[Range<usize>],
    ) -> Result<()> {
        if self.bits == OptimBits::B8 {
            bail!("Muon has no 8-bit state");
        }
        let trainable = |r: &Range<usize>| ranges.iter().any(|t| t.contains(&r.start));
        let [x, tx, s, ss, norm] = self.scratch;
        let (a, b, c) = m.ns_coefficients;
        for batch in self.batches(ranges) {
            let (rows, cols, count) = (batch[0].rows, batch[0].cols, batch.len());
            let (len, side) = (rows * cols, rows.min(cols));
            let (x, tx) = (x.slice(0, count * len), tx.slice(0, count * len));
            let (s, ss) = (s.slice(0, count * side * side), ss.slice(0, count * side * side));
            let member = |i: usize| x.slice(i * len, len);
            for (i, w) in batch.iter().enumerate() {
                let g = grads.slice(w.range.start, len);
                self.launch(dev, &m.momentum, o, member(i), g, &[self.slot(0, w.at, len)]);
                if m.ns_dtype == NsDtype::Bfloat16 {
                    let ns = NewtonSchulz { coefficients: m.ns_coefficients, steps: m.ns_steps, eps: m.eps };
                    dev.newton_schulz_bf16(member(i), rows, cols, &ns);
                }
            }
            if m.ns_dtype == NsDtype::Float32 {
                // Every member divided by its own norm (kept on the device), then iterated.
                dev.inv_norm_batched(x, count, norm.slice(0, count), m.eps);
                dev.scale_by_batched(x, count, norm.slice(0, count));
                for _ in 0..m.ns_steps {
                    // S = XXᵀ (or XᵀX) is symmetric, so S·S = S·Sᵀ: both are Gram products.
                    if rows <= cols {
                        dev.gram_batched(Form::NT, side, cols, count, x, s);
                    } else {
                        dev.gram_batched(Form::TN, side, rows, count, x, s);
                    }
                    dev.gram_batched(Form::NT, side, side, count, s, ss);
                    dev.axpby(b, s, c, ss);
                    if rows <= cols {
                        dev.matmul_batched(Form::NN, Dims { m: rows, k: rows, n: cols }, count, ss, x, tx);
                    } else {
                        dev.matmul_batched(Form::NN, Dims { m: rows, k: cols, n: cols }, count, x, ss, tx);
                    }
                    dev.axpby(1.0, tx, a, x);
                }
            }
            let lr = (m.lr * m.adjust_lr_fn.ratio(rows, cols)) as f32;
            for (i, w) in batch.iter().enumerate() {
                dev.axpby(-lr, member(i), m.decay, params.slice(w.range.start, len));
            }
        }
        for (r, at) in self.aux.iter().filter(|(r, _)| trainable(r)) {
            let len = r.len();
            let state = [self.slot(1, *at, len), self.slot(2, *at, len)];
            self.launch(dev, &m.aux, o, params.slice(r.start, len), grads.slice(r.start, len), &state);
        }
        Ok(())
    }

    /// The three compact slots as stored: f32 values, or bfloat16 bits (as u32 words, two
    /// values each) widened to their elements.
    pub(super) async fn read_f32(&self, dev: &mut Device) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::new();
        for k in 0..3 {
            let mut v = dev.read_async(self.slots[k]).await?;
            v.truncate(self.lens[k]);
            out.push(v);
        }
        Ok(out)
    }

    pub(super) async fn read_bf16(&self, dev: &mut Device) -> Result<Vec<Vec<u16>>> {
        let mut out = Vec::new();
        for k in 0..3 {
            out.push(quant::bf16_from_words(&dev.read_async(self.slots[k]).await?, self.lens[k]));
        }
        Ok(out)
    }

    pub(super) fn write_f32(&self, dev: &mut Device, v: &[Vec<f32>]) -> Result<()> {
        ensure!(v.len() == 3, "muon state of {} slots, expected 3", v.len());
        for (k, slot) in v.iter().enumerate() {
            ensure!(slot.len() == self.lens[k], "muon slot {k}: {} values, expected {}", slot.len(), self.lens[k]);
            if !slot.is_empty() {
                dev.write(self.slots[k].slice(0, slot.len()), slot)?;
            }
        }
        Ok(())
    }

    pub(super) fn write_bf16(&self, dev: &mut Device, v: &[Vec<u16>]) -> Result<()> {
        ensure!(v.len() == 3, "muon state of {} slots, expected 3", v.len());
        for (k, slot) in v.iter().enumerate() {
            ensure!(slot.len() == self.lens[k], "muon slot {k}: {} values, expected {}", slot.len(), self.lens[k]);
            let words = quant::bf16_words(slot);
            if !words.is_empty() {
                dev.write(self.slots[k].slice(0, words.len()), &words)?;
            }
        }
        Ok(())
    }

    /// Where each tensor's state lies: (slot index, the tensor's arena range, its first
    /// element in the compact slot), in arena order, Muon's slot 0 and AdamW's 1 and 2.
    pub fn tensor_slots(&self) -> Vec<(usize, Range<usize>, usize)> {
        let mut out: Vec<(usize, Range<usize>, usize)> =
            self.matrices.iter().map(|m| (0, m.range.clone(), m.at)).collect();
        for (r, at) in &self.aux {
            out.push((1, r.clone(), *at));
            out.push((2, r.clone(), *at));
        }
        out.sort_by_key(|(k, r, _)| (r.start, *k));
        out
    }

    pub(super) fn release(self, dev: &mut Device) {
        for v in self.slots.into_iter().chain(self.scratch) {
            dev.release(v);
        }
    }
}

/// `matrices` in batches of one shape, in the order each shape first appears, each at most
/// [`BATCH_ELEMENTS`] elements (or one matrix) and [`BATCH_MEMBERS`] matrices.
fn batches<'a>(matrices: impl Iterator<Item = &'a MuonMatrix>) -> Vec<Vec<&'a MuonMatrix>> {
    let mut out: Vec<Vec<&MuonMatrix>> = Vec::new();
    for w in matrices {
        let fits = |b: &&mut Vec<&MuonMatrix>| {
            (b[0].rows, b[0].cols) == (w.rows, w.cols)
                && (b.len() + 1) * w.range.len() <= BATCH_ELEMENTS
                && b.len() < BATCH_MEMBERS
        };
        match out.iter_mut().rev().find(fits) {
            Some(b) => b.push(w),
            None => out.push(vec![w]),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(at: usize, rows: usize, cols: usize) -> MuonMatrix {
        MuonMatrix { range: at..at + rows * cols, rows, cols, at }
    }

    #[test]
    fn batches_group_one_shape_in_first_appearance_order() {
        let ms = [matrix(0, 4, 8), matrix(32, 8, 4), matrix(64, 4, 8), matrix(96, 8, 4), matrix(128, 4, 8)];
        let got: Vec<Vec<usize>> =
            batches(ms.iter()).iter().map(|b| b.iter().map(|w| w.range.start).collect()).collect();
        assert_eq!(got, vec![vec![0, 64, 128], vec![32, 96]]);
    }

    #[test]
    fn batches_are_cut_at_the_scratch_bound() {
        // 1024×1024 is a quarter of the bound: four per batch. A larger matrix runs alone.
        let side = 1024;
        let ms: Vec<MuonMatrix> = (0..9).map(|i| matrix(i * side * side, side, side)).collect();
        let sizes: Vec<usize> = batches(ms.iter()).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![4, 4, 1]);
        let big = [matrix(0, 4096, 2048), matrix(1 << 23, 4096, 2048)];
        assert_eq!(batches(big.iter()).iter().map(Vec::len).collect::<Vec<_>>(), vec![1, 1]);
        // 1×1 matrices: cut at the members a grid dimension holds.
        let tiny: Vec<MuonMatrix> = (0..BATCH_MEMBERS + 2).map(|i| matrix(i, 1, 1)).collect();
        assert_eq!(batches(tiny.iter()).iter().map(Vec::len).collect::<Vec<_>>(), vec![BATCH_MEMBERS, 2]);
    }
}
