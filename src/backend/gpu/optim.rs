//! Optimizer kernels: one fused step per parameter arena (`shaders/optim*.wgsl`), at f32,
//! bfloat16 or blockwise 8-bit state.

use super::chunk::Operand;
use super::dispatch::Binding;
use super::kernels::{Entry, Kernel};
use super::params::{word, words_of, Blockwise8Arena, OptimArena};
use super::{u, GpuBackend, WG};
use crate::backend::optim_kernel::{Blockwise8, GradCheck, GroupedStep, Objective, OptimStep};
use crate::backend::quant::Block;
use crate::tensor::View;

impl GpuBackend {
    /// One launch of an optimizer kernel's step entry for f32 state (one element per
    /// invocation) or, `bf16`, bfloat16 state (two), split into chunks past one binding; with
    /// `check`, the non-finite gradient check in the same pass.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn optim_launch(
        &mut self,
        step: &OptimStep,
        objective: Objective,
        bf16: bool,
        params: View,
        grads: View,
        state: &[View],
        check: Option<GradCheck>,
    ) {
        let entry = if check.is_some() { Entry::step_checked(bf16) } else { Entry::step(bf16) };
        let per_invocation = entry.elements_per_invocation();
        let (uni, mut operands) = self.optim_operands(step, objective, per_invocation, params, grads, state, check);
        if let Some(c) = check {
            operands.push(Operand::whole(c.flag.buf));
        }
        let (n_word, first_word) = (word!(OptimArena, n), word!(OptimArena, first));
        let kern = Kernel::optim(step, entry);
        self.launch_1d_at(kern, uni, n_word, Some(first_word), &operands, params.len, per_invocation);
    }

    /// Parameter groups in one launch of a `*_groups` entry: the runs and the groups' structs
    /// are written to `g`'s tables, and each element looks its run up. Past one binding (where
    /// a launch is split into chunks) the runs are launched one by one instead.
    pub(super) fn optim_launch_groups(
        &mut self,
        g: &GroupedStep,
        objective: Objective,
        params: View,
        grads: View,
        state: &[View],
        bf16: bool,
    ) {
        let entry = Entry::step_groups(bf16);
        let per_invocation = entry.elements_per_invocation();
        let (uni, mut operands) =
            self.optim_operands(&g.steps[0], objective, per_invocation, params, grads, state, None);
        operands.push(Operand::whole(self.dummy_write[3]));
        operands.push(Operand::whole(g.runs_table.buf));
        operands.push(Operand::whole(g.groups_table.buf));
        if !operands.iter().all(|o| self.fits_binding(o.buf)) {
            for (step, p, gr, s) in g.run_steps(params, grads, state) {
                self.optim_launch(step, objective, bf16, p, gr, &s, None);
            }
            return;
        }
        self.record_write(g.runs_table, &g.runs_words());
        self.record_write(g.groups_table, &g.group_words());
        let bufs: Vec<usize> = operands.iter().map(|o| o.buf).collect();
        let grid = self.grid(params.len.div_ceil(per_invocation));
        self.dispatch(Kernel::optim(&g.steps[0], entry), &uni, &bufs, grid);
    }

    /// The uniform (arena header, with `check`'s fields, then the step's struct) and the
    /// bindings up to the state of one optimizer launch: binding S0, S1, S2 holds the slot the
    /// kernel names there, or a placeholder. Slots hold f32 elements, or (`per_invocation` 2)
    /// bfloat16 pairs.
    #[allow(clippy::too_many_arguments)]
    fn optim_operands(
        &self,
        step: &OptimStep,
        objective: Objective,
        per_invocation: usize,
        params: View,
        grads: View,
        state: &[View],
        check: Option<GradCheck>,
    ) -> (Vec<u32>, Vec<Operand>) {
        let mut slots = [0, 1, 2].map(|k| (self.dummy_write[k], 0));
        let mut used = 0u32;
        for (b, pos) in step.binding_positions().into_iter().enumerate() {
            if let Some(v) = pos.and_then(|i| state.get(i)) {
                slots[b] = (v.buf, u(v.offset));
                used |= 1 << b;
            }
        }
        let [s0, s1, s2] = slots.map(|(_, offset)| offset);
        let arena = OptimArena {
            n: u(params.len),
            p_off: u(params.offset),
            g_off: u(grads.offset),
            s0,
            s1,
            s2,
            used,
            maximize: objective.flag(),
            pad0: 0,
            flag_off: check.map_or(0, |c| u(c.flag.offset)),
            tag: check.map_or(0.0, |c| c.tag),
            first: 0,
        };
        let mut uni = words_of(&arena);
        uni.extend_from_slice(bytemuck::cast_slice(step.param_bytes()));
        let elem_bytes = if per_invocation == 2 { 2 } else { 4 };
        let mut operands =
            vec![Operand::at(params, word!(OptimArena, p_off)), Operand::at(grads, word!(OptimArena, g_off))];
        let slot_words = [word!(OptimArena, s0), word!(OptimArena, s1), word!(OptimArena, s2)];
        for (k, &(buf, offset)) in slots.iter().enumerate() {
            operands.push(if used & 1 << k != 0 {
                Operand { buf, offset: offset as usize, elem_bytes, offset_word: Some(slot_words[k]) }
            } else {
                Operand::whole(buf)
            });
        }
        (uni, operands)
    }

    /// A step with blockwise 8-bit state: one workgroup per row of blocks, in chunks past one
    /// binding. Slots the step does not keep are bound to placeholders.
    pub(super) fn launch_8bit(
        &mut self,
        step: &OptimStep,
        objective: Objective,
        params: View,
        grads: View,
        s: &Blockwise8,
    ) {
        debug_assert!(s.codes.iter().chain([&s.absmax, &s.small, &s.table]).all(|v| v.offset == 0));
        let Some(kern) = Kernel::optim8(step) else {
            let msg = format!("{step:?} has no blockwise 8-bit kernel").into();
            self.errors.lock().map(|mut v| v.push(msg)).ok();
            return;
        };
        let slots = s.codes.len();
        let flags = objective.flag() | (slots as u32) << 1 | s.signed << 4;
        let header = |rows: usize, p_off: u32, g_off: u32, code_off: u32, row0: usize| {
            let arena = Blockwise8Arena {
                n: u(rows),
                p_off,
                g_off,
                quantized: u(s.quantized_blocks),
                small: u(s.small_len),
                code_off,
                row0: u(row0),
                flags,
            };
            let mut uni = words_of(&arena);
            uni.extend_from_slice(bytemuck::cast_slice(step.param_bytes()));
            uni
        };
        let whole = |b: usize| (b, None);
        let small = [whole(s.absmax.buf), whole(s.small.buf), whole(s.table.buf)];
        let code_bufs: Vec<usize> = (0..3).map(|k| s.codes.get(k).map_or(self.dummy_write[k], |v| v.buf)).collect();
        let big: Vec<usize> = [params.buf, grads.buf].into_iter().chain(code_bufs[..slots].iter().copied()).collect();
        if big.iter().all(|&b| self.fits_binding(b)) {
            let uni = header(s.rows.len(), u(params.offset), u(grads.offset), 0, 0);
            let grid = self.grid(s.rows.len() * WG as usize);
            let mut bindings: Vec<Binding> = code_bufs.iter().map(|&b| whole(b)).collect();
            bindings.splice(0..0, [whole(params.buf), whole(grads.buf)]);
            bindings.extend(small);
            return self.dispatch_ranged(kern, &uni, &bindings, grid);
        }
        // Past one binding: consecutive rows whose span fits a chunk, each chunk's parameters,
        // gradients and codes bound as sub-ranges and the header's offsets rebased (they wrap
        // below zero: the kernel adds them to absolute arena indices).
        let chunk = self.chunk_elems(4);
        let mut r = 0;
        let end_of = |b: &Block| b.start + b.len;
        while r < s.rows.len() {
            let first = s.rows[r].start;
            let mut e = r + 1;
            while e < s.rows.len() && end_of(&s.rows[e]) - first <= chunk {
                e += 1;
            }
            let end = end_of(&s.rows[e - 1]);
            let n = (end - first) as u64;
            let (pb, p_into) = self.sub_range(params.buf, (params.offset + first) as u64 * 4, n * 4);
            let (gb, g_into) = self.sub_range(grads.buf, (grads.offset + first) as u64 * 4, n * 4);
            let mut bindings = vec![pb, gb];
            let mut code_into = None;
            for (k, &b) in code_bufs.iter().enumerate() {
                if k < slots {
                    let (cb, into) = self.sub_range(b, first as u64, n);
                    debug_assert!(code_into.is_none_or(|c| c == into), "every code buffer has the same layout");
                    code_into = Some(into);
                    bindings.push(cb);
                } else {
                    bindings.push(whole(b));
                }
            }
            let rebase = |into_elems: u64, base: usize| (into_elems as u32).wrapping_sub(base as u32);
            let c_into = code_into.unwrap_or(0);
            let uni =
                header(e - r, rebase(p_into / 4, first), rebase(g_into / 4, first), rebase(c_into / 4, first / 4), r);
            let grid = self.grid((e - r) * WG as usize);
            bindings.extend(small);
            self.dispatch_ranged(kern, &uni, &bindings, grid);
            r = e;
        }
    }
}
