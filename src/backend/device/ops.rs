//! Every op as a method of the same name as the backend's: the views checked (see
//! [`guard`](super::guard)), then forwarded.

use super::guard::{batched_extents, matmul_extents};
use super::*;
use crate::backend::ops::NewtonSchulz;

impl Device {
    /// Set every element of `dst` to `value`.
    pub fn fill(&mut self, dst: View, value: f32) {
        if self.admit("fill", [&dst]) {
            self.backend.fill(dst, value)
        }
    }

    /// `dst = src` (same lengths).
    pub fn copy(&mut self, src: View, dst: View) {
        debug_assert_eq!(src.len, dst.len);
        if self.admit("copy", [&src, &dst]) {
            self.backend.copy(src, dst)
        }
    }

    /// `out = epilogue(op(a)·op(b))`; see [`Backend::matmul`]. Views smaller than the
    /// product reads or writes are a fault: the check that lets a GPU run its matmul without
    /// runtime bounds checks ([`ShaderChecks::Trusted`](crate::backend::gpu::ShaderChecks)).
    pub fn matmul(&mut self, form: Form, d: Dims, a: View, b: View, out: View, epi: &Epilogue) {
        if let Err(why) = matmul_extents(d, &a, &b, &out, epi) {
            return self.record_fault("matmul", why);
        }
        if self.admit(
            "matmul",
            [&a, &b, &out]
                .into_iter()
                .chain(epi.bias.as_ref())
                .chain(epi.act_grad.as_ref().map(|(_, y)| y))
                .chain(epi.a_colsum.as_ref()),
        ) {
            self.backend.matmul(form, d, a, b, out, epi)
        }
    }

    /// The symmetric product X·Xᵀ ([`Form::NT`]) or Xᵀ·X ([`Form::TN`]), `side × side`; see
    /// [`Backend::gram`]. On the CPU it costs about half of [`Device::matmul`]. Views smaller
    /// than the product reads or writes are a fault, as for [`Device::matmul`].
    pub fn gram(&mut self, form: Form, side: usize, k: usize, x: View, out: View) {
        if !matches!(form, Form::NT | Form::TN) {
            return self.record_fault("gram", "a Gram product is NT (X·Xᵀ) or TN (Xᵀ·X)".into());
        }
        let d = Dims { m: side, k, n: side };
        if let Err(why) = matmul_extents(d, &x, &x, &out, &Epilogue::default()) {
            return self.record_fault("gram", why);
        }
        if self.admit("gram", [&x, &out]) {
            self.backend.gram(form, side, k, x, out)
        }
    }

    /// `batch` same-shaped products with no epilogue, the members of each operand one after
    /// another; see [`Backend::matmul_batched`]. Views smaller than `batch` members are a
    /// fault, as for [`Device::matmul`].
    pub fn matmul_batched(&mut self, form: Form, d: Dims, batch: usize, a: View, b: View, out: View) {
        if let Err(why) = batched_extents(d, batch, [&a, &b, &out]) {
            return self.record_fault("matmul_batched", why);
        }
        if self.admit("matmul_batched", [&a, &b, &out]) {
            self.backend.matmul_batched(form, d, batch, a, b, out)
        }
    }

    /// `batch` Gram products ([`Device::gram`]) of same-shaped matrices laid out one after
    /// another; see [`Backend::gram_batched`].
    pub fn gram_batched(&mut self, form: Form, side: usize, k: usize, batch: usize, x: View, out: View) {
        if !matches!(form, Form::NT | Form::TN) {
            return self.record_fault("gram_batched", "a Gram product is NT (X·Xᵀ) or TN (Xᵀ·X)".into());
        }
        if let Err(why) = batched_extents(Dims { m: side, k, n: side }, batch, [&x, &x, &out]) {
            return self.record_fault("gram_batched", why);
        }
        if self.admit("gram_batched", [&x, &out]) {
            self.backend.gram_batched(form, side, k, batch, x, out)
        }
    }

    /// Muon's Newton–Schulz iteration in bfloat16, as PyTorch computes it, over the
    /// `rows × cols` matrix `x` in place (see [`Backend::newton_schulz_bf16`]). A backend
    /// without it (the GPU's) records a fault instead; a view shorter than the matrix is one.
    pub fn newton_schulz_bf16(&mut self, x: View, rows: usize, cols: usize, ns: &NewtonSchulz) {
        if x.len < rows * cols {
            let why = format!("a {rows}×{cols} matrix needs {} elements, the view holds {}", rows * cols, x.len);
            return self.record_fault("newton_schulz_bf16", why);
        }
        if self.admit("newton_schulz_bf16", [&x]) {
            if let Err(why) = self.backend.newton_schulz_bf16(x, rows, cols, ns) {
                self.record_fault("newton_schulz_bf16", why);
            }
        }
    }

    /// `out = act(x + bias)` over rows of `cols`.
    pub fn bias_act(&mut self, x: View, bias: Option<View>, out: View, cols: usize, act: Act) {
        if self.admit("bias_act", [&x, &out].into_iter().chain(bias.as_ref())) {
            self.backend.bias_act(x, bias, out, cols, act)
        }
    }

    /// `dx = dy ⊙ act'(y)`.
    pub fn act_backward(&mut self, act: Act, y: View, dy: View, dx: View) {
        if self.admit("act_backward", [&y, &dy, &dx]) {
            self.backend.act_backward(act, y, dy, dx)
        }
    }

    /// `scale ·` sums of a `rows × cols` matrix along `axis`.
    pub fn sum_axis(&mut self, x: View, out: View, cols: usize, axis: Axis, scale: f32) {
        if self.admit("sum_axis", [&x, &out]) {
            self.backend.sum_axis(x, out, cols, axis, scale)
        }
    }

    /// Maxima (or indices of first maxima) of a `rows × cols` matrix along `axis`.
    pub fn max_axis(&mut self, x: View, out: View, cols: usize, axis: Axis, argmax: bool) {
        debug_assert!(cols > 0 && x.len.is_multiple_of(cols));
        if self.admit("max_axis", [&x, &out]) {
            self.backend.max_axis(x, out, cols, axis, argmax)
        }
    }

    /// Elementwise `out = a op b`, all three of one length.
    pub fn binary(&mut self, op: BinaryOp, a: View, b: View, out: View) {
        debug_assert!(a.len == out.len && b.len == out.len);
        if self.admit("binary", [&a, &b, &out]) {
            self.backend.binary(op, a, b, out, Bcast::NONE)
        }
    }

    /// `out = a op b` with either operand broadcast as `bcast` says.
    pub fn binary_bcast(&mut self, op: BinaryOp, a: View, b: View, out: View, bcast: Bcast) {
        if self.admit("binary_bcast", [&a, &b, &out]) {
            self.backend.binary(op, a, b, out, bcast)
        }
    }

    /// `out = op(a)`.
    pub fn unary(&mut self, op: UnaryOp, a: View, out: View) {
        if self.admit("unary", [&a, &out]) {
            self.backend.unary(op, a, out)
        }
    }

    /// `out[0] = scale · Σ a`.
    pub fn sum(&mut self, a: View, out: View, scale: f32) {
        if self.admit("sum", [&a, &out]) {
            self.backend.sum(a, out, scale)
        }
    }

    /// `out[i] = scale · src[layout.index(i, cols)]`.
    pub fn expand(&mut self, src: View, layout: Layout, out: View, cols: usize, scale: f32) {
        if self.admit("expand", [&src, &out]) {
            self.backend.expand(src, layout, out, cols, scale)
        }
    }

    /// Softmax cross-entropy; see [`Backend::softmax_ce`].
    pub fn softmax_ce(&mut self, logits: View, labels: View, cols: usize, ignore_index: i32, out: CeOutputs) {
        if self.admit(
            "softmax_ce",
            [&logits, &labels]
                .into_iter()
                .chain(out.loss.as_ref())
                .chain(out.dlogits.as_ref())
                .chain(out.metrics.as_ref()),
        ) {
            self.note_labels(labels, cols, ignore_index);
            self.backend.softmax_ce(logits, labels, cols, ignore_index, out)
        }
    }

    /// Gather a mini-batch; see [`Gather`].
    pub fn gather(&mut self, g: &Gather) {
        let need = [
            (g.indices, (g.start + g.count) * 4, "the row indices"),
            (g.labels, 0, "the labels"),
            (g.images, 0, "the images"),
        ];
        if self.admit_bytes("gather", &need) && self.admit("gather", [&g.x, &g.y]) {
            self.backend.gather(g)
        }
    }

    /// `out[0] = 1 / max(‖x‖₂, eps)`; see [`Backend::inv_norm`].
    pub fn inv_norm(&mut self, x: View, out: View, eps: f32) {
        debug_assert!(out.len >= 1);
        if self.admit("inv_norm", [&x, &out]) {
            self.backend.inv_norm(x, out, eps)
        }
    }

    /// `out[0] = ‖x‖₂`, `out[1] = min(1, max_norm / (‖x‖₂ + 1e-6))`; see
    /// [`Backend::clip_coef`].
    pub fn clip_coef(&mut self, x: View, out: View, max_norm: f32) {
        debug_assert!(out.len >= 2);
        if self.admit("clip_coef", [&x, &out]) {
            self.backend.clip_coef(x, out, max_norm)
        }
    }

    /// `out[i] = 1 / max(‖x_i‖₂, eps)` for `members` vectors laid out one after another in `x`;
    /// see [`Backend::inv_norm_batched`]. A length that is not `members` whole vectors, or an
    /// `out` shorter than `members`, is a fault.
    pub fn inv_norm_batched(&mut self, x: View, members: usize, out: View, eps: f32) {
        if let Err(why) = whole_members(x.len, members, out.len) {
            return self.record_fault("inv_norm_batched", why);
        }
        if self.admit("inv_norm_batched", [&x, &out]) {
            self.backend.inv_norm_batched(x, members, out, eps)
        }
    }

    /// `y_i ← y_i · s[i]` for `members` pieces of `y`; see [`Backend::scale_by_batched`].
    /// Checked as [`Device::inv_norm_batched`].
    pub fn scale_by_batched(&mut self, y: View, members: usize, s: View) {
        if let Err(why) = whole_members(y.len, members, s.len) {
            return self.record_fault("scale_by_batched", why);
        }
        if self.admit("scale_by_batched", [&y, &s]) {
            self.backend.scale_by_batched(y, members, s)
        }
    }

    /// `y ← y · s[0]`; see [`Backend::scale_by`].
    pub fn scale_by(&mut self, y: View, s: View) {
        debug_assert!(s.len >= 1);
        if self.admit("scale_by", [&y, &s]) {
            self.backend.scale_by(y, s)
        }
    }

    /// `y ← scale·x`, the bench's vectorised streaming kernel; see [`Backend::stream_scale`].
    /// Views of another length than each other, or not whole groups of 4 (length and offset),
    /// are a fault.
    pub fn stream_scale(&mut self, x: View, y: View, scale: f32) {
        if !self.admit("stream_scale", [&x, &y]) {
            return;
        }
        if x.len != y.len || [x.len, x.offset, y.offset].iter().any(|v| v % 4 != 0) {
            let why = format!(
                "x of {} at {} and y of {} at {}: the lengths must agree, and lengths and offsets be multiples of 4",
                x.len, x.offset, y.len, y.offset
            );
            return self.record_fault("stream_scale", why);
        }
        self.backend.stream_scale(x, y, scale)
    }

    /// `y ← α·x + β·y`; see [`Backend::axpby`].
    pub fn axpby(&mut self, alpha: f32, x: View, beta: f32, y: View) {
        debug_assert!(x.len == y.len);
        if self.admit("axpby", [&x, &y]) {
            self.backend.axpby(alpha, x, beta, y)
        }
    }

    /// Rows of the matrix `src` picked by `indices` into `dst`; see [`Backend::gather_rows`].
    /// The index buffer must hold `start + dst.len / cols` indices.
    pub fn gather_rows(&mut self, src: View, cols: usize, indices: ByteBuffer, start: usize, dst: View) {
        debug_assert!(cols > 0 && dst.len.is_multiple_of(cols) && src.len.is_multiple_of(cols));
        let rows = dst.len / cols.max(1);
        if self.admit_bytes("gather_rows", &[(indices, (start + rows) * 4, "the row indices")])
            && self.admit("gather_rows", [&src, &dst])
        {
            self.backend.gather_rows(src, cols, indices, start, dst)
        }
    }

    /// `out = g ⊙ op'(a)`; see [`Backend::unary_grad`].
    pub fn unary_grad(&mut self, op: UnaryOp, a: View, g: View, out: View) {
        if self.admit("unary_grad", [&a, &g, &out]) {
            self.backend.unary_grad(op, a, g, out)
        }
    }

    /// `y ← x ⊙ mask`, dropout's forward and gradient; see [`Backend::dropout`].
    pub fn dropout(&mut self, x: View, y: View, mask: &DropoutMask) {
        debug_assert_eq!(x.len, y.len);
        if self.admit("dropout", [&x, &y]) {
            self.backend.dropout(x, y, mask)
        }
    }

    /// `y ← min(max(y, lo), hi)`; see [`Backend::clamp`].
    pub fn clamp(&mut self, y: View, lo: f32, hi: f32) {
        debug_assert!(lo <= hi);
        if self.admit("clamp", [&y]) {
            self.backend.clamp(y, lo, hi)
        }
    }

    /// Record a non-finite element of `src` in `flag`; see [`Backend::find_nonfinite`].
    pub fn find_nonfinite(&mut self, src: View, flag: View, tag: f32) {
        if self.admit("find_nonfinite", [&src, &flag]) {
            self.backend.find_nonfinite(src, flag, tag)
        }
    }

    /// One fused optimizer update; see [`Backend::optim_step`].
    pub fn optim_step(&mut self, step: &OptimStep, objective: Objective, params: View, grads: View, state: &[View]) {
        if self.admit_step("optim_step", params, grads, state) {
            self.backend.optim_step(step, objective, params, grads, state)
        }
    }

    /// One fused update with bfloat16 state; see [`Backend::optim_step_bf16`].
    pub fn optim_step_bf16(
        &mut self,
        step: &OptimStep,
        objective: Objective,
        params: View,
        grads: View,
        state: &[View],
    ) {
        debug_assert!(state.iter().all(|s| s.offset % 2 == 0), "bf16 slots start on a word");
        let words = Self::bf16_words(state);
        if self.admit_step("optim_step_bf16", params, grads, &words) {
            self.backend.optim_step_bf16(step, objective, params, grads, state)
        }
    }

    /// One fused update (with `bf16`, bfloat16 state) that also records a non-finite gradient
    /// in `check`, in the same pass on a GPU; see [`Backend::optim_step_checked`]. The flag
    /// must be two elements in a buffer of its own (not the parameters', gradients' or
    /// state's).
    #[allow(clippy::too_many_arguments)]
    pub fn optim_step_checked(
        &mut self,
        step: &OptimStep,
        objective: Objective,
        params: View,
        grads: View,
        state: &[View],
        bf16: bool,
        check: GradCheck,
    ) {
        const OP: &str = "optim_step_checked";
        debug_assert!(!bf16 || state.iter().all(|s| s.offset % 2 == 0), "bf16 slots start on a word");
        let words = if bf16 { Self::bf16_words(state) } else { state.to_vec() };
        if !self.admit_step(OP, params, grads, &words) || !self.admit(OP, [&check.flag]) {
            return;
        }
        if check.flag.len < 2 {
            return self.record_fault(OP, format!("the check's flag holds {} elements, not 2", check.flag.len));
        }
        if [params.buf, grads.buf].into_iter().chain(words.iter().map(|s| s.buf)).any(|b| b == check.flag.buf) {
            return self.record_fault(OP, "the check's flag shares a buffer with the step's operands".into());
        }
        self.backend.optim_step_checked(step, objective, params, grads, state, bf16, check)
    }

    /// Parameter groups in one fused update; see [`Backend::optim_step_groups`]. A malformed
    /// `g` ([`GroupedStep::check`]) is a fault, as a refused view is.
    pub fn optim_step_groups(
        &mut self,
        g: &GroupedStep,
        objective: Objective,
        params: View,
        grads: View,
        state: &[View],
        bf16: bool,
    ) {
        if let Err(why) = g.check(params.len, bf16) {
            return self.record_fault("optim_step_groups", why);
        }
        let mut checked: Vec<View> = if bf16 { Self::bf16_words(state) } else { state.to_vec() };
        checked.extend([g.runs_table, g.groups_table]);
        if self.admit_step("optim_step_groups", params, grads, &checked) {
            self.backend.optim_step_groups(g, objective, params, grads, state, bf16)
        }
    }

    /// One Adafactor step; see [`Backend::adafactor_step`].
    pub fn adafactor_step(
        &mut self,
        h: &AdafactorParams,
        objective: Objective,
        params: View,
        grads: View,
        state: &Factored,
    ) {
        if self.admit_step("adafactor_step", params, grads, &[state.state, state.work, state.table]) {
            self.backend.adafactor_step(h, objective, params, grads, state)
        }
    }

    /// One fused update with 8-bit state; see [`Backend::step_8bit`].
    pub fn step_8bit(&mut self, step: &OptimStep, objective: Objective, params: View, grads: View, state: &Blockwise8) {
        debug_assert!(step.has_8bit() && state.codes.len() == step.slots().len());
        let state_views: Vec<View> =
            [state.absmax, state.small, state.table].into_iter().chain(state.codes.iter().copied()).collect();
        if self.admit_step("step_8bit", params, grads, &state_views) {
            self.backend.step_8bit(step, objective, params, grads, state)
        }
    }
}

/// Why `len` elements with `scalars` per-member values are not `members` whole members, if
/// they are not.
fn whole_members(len: usize, members: usize, scalars: usize) -> std::result::Result<(), String> {
    if members == 0 || !len.is_multiple_of(members) {
        return Err(format!("{len} elements are not {members} members of one length"));
    }
    if scalars < members {
        return Err(format!("{scalars} per-member values for {members} members"));
    }
    Ok(())
}
