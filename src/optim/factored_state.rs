//! Adafactor's state on a device: the statistics of every tensor (R and C per matrix, V per
//! vector) as f32 or bfloat16, the per-step work sums and the table the kernels walk
//! (`backend::factored`).

use crate::backend::factored::FactorTable;
use crate::backend::optim_kernel::{AdafactorParams, Factored, Objective};
use crate::backend::quant;
use crate::backend::Device;
use crate::tensor::View;
use anyhow::{ensure, Result};
use std::ops::Range;
use std::sync::Arc;

/// Raw f32 bits as the f32 values `Device::write` takes.
fn floats(w: &[u32]) -> Vec<f32> {
    w.iter().map(|&x| f32::from_bits(x)).collect()
}

/// Adafactor's buffers and the tensors they were built for.
pub struct FactoredState {
    /// The buffers the kernels bind.
    pub buffers: Factored,
    /// Every tensor as (first arena element, shape), in arena order.
    pub tensors: Vec<(usize, Vec<usize>)>,
    /// The layout of every tensor (what checkpoints name), whatever is trainable.
    pub full: FactorTable,
    /// The trainable ranges the device's table was written for.
    pub uploaded_for: Vec<Range<usize>>,
}

impl FactoredState {
    /// Zeroed statistics for `tensors` (first arena element, shape) of an arena of `n`, as f32
    /// or, with `bf16`, bfloat16 two a word.
    pub(super) fn alloc(
        dev: &mut Device,
        n: usize,
        tensors: &[(usize, Vec<usize>)],
        bf16: bool,
    ) -> Result<FactoredState> {
        let full = FactorTable::new(tensors, |_| true);
        let words = if bf16 { full.state_len.div_ceil(2) } else { full.state_len };
        let state = dev.alloc_zeroed(words.max(1))?;
        let work = dev.alloc(full.work_len().max(1))?;
        // Every work value a step reads it writes first: NaN shows one it did not.
        dev.fill(work, f32::NAN);
        let table = dev.alloc(full.words_len().max(1))?;
        let words = full.words();
        if !words.is_empty() {
            dev.write(table.slice(0, words.len()), &floats(&words))?;
        }
        let buffers = Factored { state, bf16, work, table, layout: Arc::new(full.clone()) };
        Ok(FactoredState { buffers, tensors: tensors.to_vec(), full, uploaded_for: std::iter::once(0..n).collect() })
    }

    pub(super) fn step(
        &mut self,
        dev: &mut Device,
        h: &AdafactorParams,
        o: Objective,
        params: View,
        grads: View,
        ranges: &[Range<usize>],
    ) -> Result<()> {
        if self.uploaded_for.as_slice() != ranges {
            // Some tensors were frozen or unfrozen: list the trainable ones.
            let active = |k: usize| ranges.iter().any(|r| r.contains(&self.tensors[k].0));
            let table = FactorTable::new(&self.tensors, active);
            let words = table.words();
            if !words.is_empty() {
                dev.write(self.buffers.table.slice(0, words.len()), &floats(&words))?;
            }
            self.buffers.layout = Arc::new(table);
            self.uploaded_for = ranges.to_vec();
        }
        if !self.buffers.layout.units.is_empty() {
            dev.adafactor_step(h, o, params, grads, &self.buffers);
        }
        Ok(())
    }

    /// Whether the statistics are bfloat16.
    pub(super) fn bf16(&self) -> bool {
        self.buffers.bf16
    }

    /// The f32 statistics as stored (every tensor's, in the order of [`FactorTable`]).
    pub(super) async fn read(&self, dev: &mut Device) -> Result<Vec<f32>> {
        ensure!(!self.bf16(), "adafactor's statistics are bfloat16 here: read them as such");
        let mut v = dev.read_async(self.buffers.state).await?;
        v.truncate(self.full.state_len);
        Ok(v)
    }

    /// The bfloat16 statistics' bits as stored.
    pub(super) async fn read_bf16(&self, dev: &mut Device) -> Result<Vec<u16>> {
        ensure!(self.bf16(), "adafactor's statistics are f32 here: read them as such");
        Ok(quant::bf16_from_words(&dev.read_async(self.buffers.state).await?, self.full.state_len))
    }

    /// The statistics widened to f32, whatever their width.
    pub(super) async fn read_widened(&self, dev: &mut Device) -> Result<Vec<f32>> {
        if self.bf16() {
            Ok(self.read_bf16(dev).await?.into_iter().map(quant::bf16_to_f32).collect())
        } else {
            self.read(dev).await
        }
    }

    fn check_len(&self, len: usize) -> Result<()> {
        ensure!(len == self.full.state_len, "adafactor state of {len} values for a layout of {}", self.full.state_len);
        Ok(())
    }

    pub(super) fn write(&self, dev: &mut Device, v: &[f32]) -> Result<()> {
        ensure!(!self.bf16(), "adafactor's statistics are bfloat16 here: write them as such");
        self.check_len(v.len())?;
        if !v.is_empty() {
            dev.write(self.buffers.state.slice(0, v.len()), v)?;
        }
        Ok(())
    }

    pub(super) fn write_bf16(&self, dev: &mut Device, h: &[u16]) -> Result<()> {
        ensure!(self.bf16(), "adafactor's statistics are f32 here: write them as such");
        self.check_len(h.len())?;
        let words = quant::bf16_words(h);
        if !words.is_empty() {
            dev.write(self.buffers.state.slice(0, words.len()), &words)?;
        }
        Ok(())
    }

    /// The statistics by PyTorch's names, each concatenated over the tensors that keep it (in
    /// arena order): `row_var` and `col_var` for tensors of two or more dimensions, `variance`
    /// for vectors. A replay of one tensor gets exactly PyTorch's.
    pub(super) fn decode(&self, stored: &[f32]) -> Vec<(&'static str, Vec<f32>)> {
        let (mut rows, mut cols, mut var) = (Vec::new(), Vec::new(), Vec::new());
        for t in &self.full.tensors {
            if t.factored() {
                rows.extend_from_slice(&stored[t.state..t.col_state()]);
                cols.extend_from_slice(&stored[t.col_state()..t.state + t.state_len()]);
            } else {
                var.extend_from_slice(&stored[t.state..t.state + t.n]);
            }
        }
        let factored = self.full.tensors.iter().any(|t| t.factored());
        let vectors = self.full.tensors.iter().any(|t| !t.factored());
        let mut out = Vec::new();
        if factored {
            out.push(("row_var", rows));
            out.push(("col_var", cols));
        }
        if vectors {
            out.push(("variance", var));
        }
        out
    }

    pub(super) fn release(self, dev: &mut Device) {
        let b = self.buffers;
        for v in [b.state, b.work, b.table] {
            dev.release(v);
        }
    }
}
