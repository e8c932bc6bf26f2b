//! The op set: one trait, [`Backend`], that the rayon CPU backend and the WGSL backend each
//! implement, plus what a backend reports about itself ([`Counters`], [`Capacity`]).
//!
//! Ops are recorded, not necessarily executed, when called: the GPU backend queues them into
//! one command encoder and submits on [`Backend::finish`] or a read.

use super::ops::{
    Act, Axis, Bcast, BinaryOp, ByteBuffer, CeOutputs, Dims, DropoutMask, Epilogue, Form, Gather, Layout, NewtonSchulz,
    UnaryOp,
};
use super::optim_kernel::{AdafactorParams, Blockwise8, Factored, GradCheck, GroupedStep, Objective, OptimStep};
use super::pending::Pending;
use crate::tensor::View;
use anyhow::Result;

/// `Send` wherever threads exist, so a [`Device`](super::Device) can move to a worker thread;
/// in the browser wgpu's WebGPU handles are not `Send`, and nothing runs on another thread.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSend: Send {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send> MaybeSend for T {}
/// `Send` wherever threads exist (see the native definition).
#[cfg(target_arch = "wasm32")]
pub trait MaybeSend {}
#[cfg(target_arch = "wasm32")]
impl<T> MaybeSend for T {}

/// One backend: storage plus every op. Shapes are checked by the callers ([`Device`](super::Device) and the
/// autograd); backends trust them.
pub trait Backend: MaybeSend {
    /// One line: what executes the ops.
    fn describe(&self) -> String;
    /// Whether the ops run on a GPU (reads then cost a round trip).
    fn is_gpu(&self) -> bool;
    /// The backend as `Any`, for code that needs its concrete type (the data-parallel step
    /// needs the CPU backend's storage); `None` for backends that offer none.
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }
    /// [`Backend::as_any`], mutably.
    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        None
    }
    /// A new f32 buffer of `len` elements (contents unspecified).
    fn alloc(&mut self, len: usize) -> Result<usize>;
    /// A new byte buffer holding `data` (datasets, row indices).
    fn alloc_bytes(&mut self, data: &[u8]) -> Result<usize>;
    /// Free a buffer from [`Backend::alloc`] or [`Backend::alloc_bytes`]; its id is not reused.
    fn free(&mut self, buf: usize);
    /// Copy `data` (as long as `dst`) into `dst`.
    fn write(&mut self, dst: View, data: &[f32]) -> Result<()>;
    /// Run what is recorded and copy `src` to the host when the device gets there.
    fn read_async(&mut self, src: View) -> Pending<Vec<f32>>;
    /// Set every element of `dst` to `value`.
    fn fill(&mut self, dst: View, value: f32);
    /// `dst = src` (same lengths, different buffers or disjoint ranges).
    fn copy(&mut self, src: View, dst: View);
    /// `out = epilogue(op(A)·op(B))` with the shapes of `form` and `d` (see [`Epilogue`]).
    fn matmul(&mut self, form: Form, d: Dims, a: View, b: View, out: View, epi: &Epilogue);
    /// The symmetric `side × side` product X·Xᵀ ([`Form::NT`]: X has `side` rows of `k`) or
    /// Xᵀ·X ([`Form::TN`]: X has `k` rows of `side`). A backend may compute half of it and
    /// mirror the rest; by default it is the full product.
    fn gram(&mut self, form: Form, side: usize, k: usize, x: View, out: View) {
        self.matmul(form, Dims { m: side, k, n: side }, x, x, out, &Epilogue::default())
    }
    /// `batch` products of the same shape with no epilogue, each operand's members one after
    /// another: member i of A at `a.offset + i·m·k`, of B at `b.offset + i·k·n`, of the output
    /// at `out.offset + i·m·n`. Each member's bits are [`Backend::matmul`]'s for it alone. By
    /// default one product per member; a GPU runs them all in one dispatch.
    fn matmul_batched(&mut self, form: Form, d: Dims, batch: usize, a: View, b: View, out: View) {
        let Dims { m, k, n } = d;
        for i in 0..batch {
            let (ai, bi, oi) = (a.slice(i * m * k, m * k), b.slice(i * k * n, k * n), out.slice(i * m * n, m * n));
            self.matmul(form, d, ai, bi, oi, &Epilogue::default());
        }
    }
    /// `batch` Gram products ([`Backend::gram`]) of same-shaped matrices laid out one after
    /// another in `x`, into `side × side` members of `out`. By default one per member.
    fn gram_batched(&mut self, form: Form, side: usize, k: usize, batch: usize, x: View, out: View) {
        for i in 0..batch {
            self.gram(form, side, k, x.slice(i * side * k, side * k), out.slice(i * side * side, side * side));
        }
    }
    /// Muon's Newton–Schulz iteration over the `rows × cols` matrix `x`, in place, in
    /// bfloat16 as PyTorch runs it (see [`crate::backend::cpu::ns_bf16`]). Only the CPU
    /// backend has it: the others say so.
    fn newton_schulz_bf16(&mut self, x: View, rows: usize, cols: usize, ns: &NewtonSchulz) -> Result<(), String> {
        let _ = (x, rows, cols, ns);
        Err(format!(
            "the bfloat16 Newton–Schulz iteration runs on the CPU backend only, not on {}; use ns_dtype float32",
            self.describe()
        ))
    }
    /// out = act(x + bias) over rows of `cols`.
    fn bias_act(&mut self, x: View, bias: Option<View>, out: View, cols: usize, act: Act);
    /// dx = dy ⊙ act'(y).
    fn act_backward(&mut self, act: Act, y: View, dy: View, dx: View);
    /// `scale ·` the sums of the `rows × cols` matrix `x` along `axis`: `cols` values for
    /// [`Axis::Rows`], `rows` values for [`Axis::Cols`].
    fn sum_axis(&mut self, x: View, out: View, cols: usize, axis: Axis, scale: f32);
    /// The maxima of the `rows × cols` matrix `x` along `axis` (shaped as [`Backend::sum_axis`]
    /// shapes its sums), or with `argmax` the index of each first maximum, as an f32. A NaN is
    /// the maximum, as in `torch.max(dim)`.
    fn max_axis(&mut self, x: View, out: View, cols: usize, axis: Axis, argmax: bool);
    /// `out[i] = a[bcast.a.index(i)] op b[bcast.b.index(i)]`.
    fn binary(&mut self, op: BinaryOp, a: View, b: View, out: View, bcast: Bcast);
    /// `out = op(a)` elementwise.
    fn unary(&mut self, op: UnaryOp, a: View, out: View);
    /// `out = g ⊙ op'(a)`, for the ops whose derivative needs their input
    /// ([`UnaryOp::has_input_grad`]; NaN for the others).
    fn unary_grad(&mut self, op: UnaryOp, a: View, g: View, out: View);
    /// `out[0] = scale · Σ a`.
    fn sum(&mut self, a: View, out: View, scale: f32);
    /// `out[i] = scale · src[layout.index(i, cols)]`: the inverse shape of a reduction.
    fn expand(&mut self, src: View, layout: Layout, out: View, cols: usize, scale: f32);
    /// Softmax cross-entropy over rows of `cols` logits with labels stored as f32 class
    /// indices, PyTorch's `cross_entropy(…, ignore_index)`. Writes the mean loss over the rows
    /// whose label is not `ignore_index`, d(mean loss)/d(logits) = (softmax − onehot)/kept rows
    /// (zero on ignored rows), and adds [Σ row loss, argmax-correct count] to `metrics`; each
    /// output is optional. A label that is neither `ignore_index` nor an integer in
    /// [0, cols) makes the loss, the loss sum and its row's gradient NaN; with every row
    /// ignored the loss is NaN (0/0), as PyTorch's.
    fn softmax_ce(&mut self, logits: View, labels: View, cols: usize, ignore_index: i32, out: CeOutputs);
    /// Gather a mini-batch on the device (see [`Gather`]): no host copy per step.
    fn gather(&mut self, g: &Gather);
    /// `out[0] = 1 / max(‖x‖₂, eps)`: one reduction in a fixed order, nothing read back.
    fn inv_norm(&mut self, x: View, out: View, eps: f32);
    /// `out[0] = ‖x‖₂` and `out[1] = min(1, max_norm / (‖x‖₂ + 1e-6))`, PyTorch's
    /// `clip_grad_norm_` coefficient: the same reduction as [`Backend::inv_norm`], nothing read
    /// back.
    fn clip_coef(&mut self, x: View, out: View, max_norm: f32);
    /// `y ← y · s[0]`, a device scalar (as [`Backend::inv_norm`] leaves it).
    fn scale_by(&mut self, y: View, s: View);
    /// `out[i] = 1 / max(‖x_i‖₂, eps)` for `members` vectors of `x.len / members` elements laid
    /// out one after another in `x`, each with the bits [`Backend::inv_norm`] gives it alone.
    /// By default one [`Backend::inv_norm`] per member; a GPU runs all of them in its two passes.
    fn inv_norm_batched(&mut self, x: View, members: usize, out: View, eps: f32) {
        let len = x.len / members.max(1);
        for i in 0..members {
            self.inv_norm(x.slice(i * len, len), out.slice(i, 1), eps);
        }
    }
    /// `y_i ← y_i · s[i]` for `members` pieces of `y.len / members` elements (as
    /// [`Backend::inv_norm_batched`] leaves `s`). By default one [`Backend::scale_by`] per member.
    fn scale_by_batched(&mut self, y: View, members: usize, s: View) {
        let len = y.len / members.max(1);
        for i in 0..members {
            self.scale_by(y.slice(i * len, len), s.slice(i, 1));
        }
    }
    /// `y ← α·x + β·y` (x and y of one length).
    fn axpby(&mut self, alpha: f32, x: View, beta: f32, y: View);
    /// `y ← scale·x`, x and y of one length, a multiple of 4, at offsets that are multiples of
    /// 4: the bench's bandwidth reference, on a GPU a kernel of vec4 loads and stores.
    fn stream_scale(&mut self, x: View, y: View, scale: f32);
    /// Rows `indices[start..start + dst.len / cols]` (little-endian u32) of the `rows × cols`
    /// matrix `src` into `dst`: an f32 dataset's batch, gathered on the device. An index past
    /// the matrix gives a NaN row, not another tensor's data.
    fn gather_rows(&mut self, src: View, cols: usize, indices: ByteBuffer, start: usize, dst: View);
    /// `y ← x ⊙ mask` (x and y of one length, not overlapping): dropout's forward and its
    /// gradient, the mask's bits drawn from element indices (see [`DropoutMask`]).
    fn dropout(&mut self, x: View, y: View, mask: &DropoutMask);
    /// `y ← min(max(y, lo), hi)` in place, a NaN kept (`torch.clamp`; `clip_grad_value_`).
    fn clamp(&mut self, y: View, lo: f32, hi: f32);
    /// If `flag[0] < 0` and `src` holds a NaN or ±∞, set `flag` to [`tag`, the element's index]
    /// (some non-finite element, not necessarily the first). Nothing is read back.
    fn find_nonfinite(&mut self, src: View, flag: View, tag: f32);
    /// One fused optimizer update over `params` (in place) from `grads`, with state slots
    /// `state` (each as long as `params`, in [`OptimStep::slots`] order, each in its own buffer
    /// or not), the gradient read negated when maximizing.
    fn optim_step(&mut self, step: &OptimStep, objective: Objective, params: View, grads: View, state: &[View]);
    /// [`Backend::optim_step`] with bfloat16 state: each slot holds two values per 32-bit
    /// word, and its view counts bf16 elements (offsets even).
    fn optim_step_bf16(&mut self, step: &OptimStep, objective: Objective, params: View, grads: View, state: &[View]);
    /// [`Backend::optim_step`] (with `bf16`, [`Backend::optim_step_bf16`]) that also records a
    /// non-finite gradient in `check` as [`Backend::find_nonfinite`] does over `grads`. This
    /// default runs the check, then the step: two passes over the gradients. The GPU backend
    /// folds the check into the step's kernel, one dispatch that reads each gradient once.
    #[allow(clippy::too_many_arguments)]
    fn optim_step_checked(
        &mut self,
        step: &OptimStep,
        objective: Objective,
        params: View,
        grads: View,
        state: &[View],
        bf16: bool,
        check: GradCheck,
    ) {
        self.find_nonfinite(grads, check.flag, check.tag);
        if bf16 {
            self.optim_step_bf16(step, objective, params, grads, state)
        } else {
            self.optim_step(step, objective, params, grads, state)
        }
    }
    /// [`Backend::optim_step`] (with `bf16`, [`Backend::optim_step_bf16`]) over the runs of
    /// `g`, each run with its group's step, the rest of `params` untouched: parameter groups,
    /// one dispatch on a GPU. `g` is checked ([`GroupedStep::check`]). This default steps run by
    /// run, which is what the CPU backend does.
    fn optim_step_groups(
        &mut self,
        g: &GroupedStep,
        objective: Objective,
        params: View,
        grads: View,
        state: &[View],
        bf16: bool,
    ) {
        for (step, p, gr, s) in g.run_steps(params, grads, state) {
            if bf16 {
                self.optim_step_bf16(step, objective, p, gr, &s)
            } else {
                self.optim_step(step, objective, p, gr, &s)
            }
        }
    }
    /// One fused update with blockwise 8-bit state (see [`Blockwise8`]), for a step that has one
    /// ([`OptimStep::has_8bit`]): each block dequantized, the step's formula, each block's
    /// absmax the maximum of its updated values (found in the same pass), requantized.
    fn step_8bit(&mut self, step: &OptimStep, objective: Objective, params: View, grads: View, state: &Blockwise8);
    /// One Adafactor step over the tensors `state.layout` lists (see
    /// [`crate::backend::factored`]): its per-tensor passes, every sum reduced on the device in
    /// a fixed order, nothing read back.
    fn adafactor_step(
        &mut self,
        h: &AdafactorParams,
        objective: Objective,
        params: View,
        grads: View,
        state: &Factored,
    );
    /// Run everything recorded so far; the future completes when the device has finished it.
    fn finish(&mut self) -> Pending<()>;
    /// Start everything recorded so far without waiting (one submit on the GPU).
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
    /// Start timing the work recorded from now on with the device's own clock (GPU timestamp
    /// queries). False when the device has none; then callers time submit-and-wait.
    fn timer_start(&mut self) -> bool {
        false
    }
    /// End the span begun by [`Backend::timer_start`].
    fn timer_stop(&mut self) {}
    /// The last timed span in seconds, waiting for the device to finish it.
    fn timer_read(&mut self) -> Result<Option<f64>> {
        Ok(None)
    }
    /// Dispatches and submits so far, for `--verbose` reporting (the CPU counts ops as
    /// dispatches and never submits).
    fn counters(&self) -> Counters;
    /// How much this device can hold, so a request too large for it can be refused before
    /// anything is allocated.
    fn capacity(&self) -> Capacity;
}

/// What a device has done so far: `--verbose` and the dispatch-count tests read these.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Kernel launches (ops on the CPU).
    pub dispatches: u64,
    /// `queue.submit` calls (0 on the CPU).
    pub submits: u64,
    /// Bytes copied back to the host.
    pub bytes_read_back: u64,
    /// Compute passes encoded (0 on the CPU): one per run of dispatches between other commands.
    pub compute_passes: u64,
}

/// How much a device can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// The largest single buffer (a GPU's `max_buffer_size`). Elementwise work on a larger
    /// buffer than one binding (the optimizer step, fills, scales, the data gather) is split
    /// into chunks.
    pub max_buffer_bytes: u64,
    /// The most one kernel binding can address (a GPU's `max_storage_buffer_binding_size`):
    /// matmuls, reductions and the other ops bind their buffers whole, so a model's parameter
    /// arena must fit.
    pub max_binding_bytes: u64,
    /// Memory free for new buffers, where the device says (the host's available RAM for the
    /// CPU backend; wgpu does not report a GPU's).
    pub available_bytes: Option<u64>,
}
