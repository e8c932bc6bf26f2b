//! Adafactor (`shaders/adafactor.wgsl`, with f32 or bfloat16 statistics): six dispatches over
//! the per-tensor table, every buffer bound whole (the arena must fit one binding, as the
//! matmuls' do).

use super::kernels::{Entry, Kernel, Module};
use super::params::{words_of, AdafactorArena};
use super::{u, GpuBackend, WG};
use crate::backend::factored::COLS_PER_GROUP;
use crate::backend::optim_kernel::{AdafactorParams, Factored, Objective};
use crate::tensor::View;

impl GpuBackend {
    pub(super) fn launch_adafactor(
        &mut self,
        h: &AdafactorParams,
        objective: Objective,
        params: View,
        grads: View,
        s: &Factored,
    ) {
        debug_assert!([s.state, s.work, s.table].iter().all(|v| v.offset == 0));
        const { assert!(COLS_PER_GROUP == 64, "af_cols runs 64 invocations a workgroup") };
        let t = &s.layout;
        let arena = AdafactorArena {
            tensors: u(t.tensors.len()),
            units: u(t.units.len()),
            chunks: u(t.col_chunks.len()),
            matrices: u(t.matrices),
            p_off: u(params.offset),
            g_off: u(grads.offset),
            maximize: objective.flag(),
            pad0: 0,
        };
        let mut uni = words_of(&arena);
        uni.extend_from_slice(bytemuck::cast_slice(bytemuck::bytes_of(h)));
        let buffers = [params.buf, grads.buf, s.state.buf, s.work.buf, s.table.buf];
        // One workgroup per unit, chunk, tensor or matrix: `grid` counts invocations of WG.
        let groups = |n: usize| n * WG as usize;
        let module = if s.bf16 { Module::AdafactorBf16 } else { Module::Adafactor };
        for &entry in module.entries() {
            let n = match entry {
                Entry::AfCols => t.col_chunks.len(),
                Entry::AfTensorStats => t.tensors.len() + t.matrices,
                Entry::AfTensorUsq => t.tensors.len(),
                _ => t.units.len(),
            };
            let grid = self.grid(groups(n));
            self.dispatch(Kernel::new(module, entry), &uni, &buffers, grid);
        }
    }
}
