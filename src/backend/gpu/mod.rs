//! The WGSL backend: every op as a hand-written compute shader (`shaders/*.wgsl`, embedded),
//! run through wgpu.
//!
//! Ops are recorded into one command encoder, consecutive dispatches as one compute pass; each
//! dispatch's parameters go into a uniform ring (256-byte slots, bound with a dynamic offset)
//! that is uploaded once per submit. So a training step is one compute pass in one
//! `queue.submit`, and nothing is read back until someone asks. Pipelines
//! and bind groups are created once and cached. Storage buffers are bound whole and
//! addressed by element offsets, so views need no alignment.
//!
//! | file | what it holds |
//! |---|---|
//! | `open.rs` | adapter choice, device opening, shader compilation, `describe_adapters` |
//! | `future.rs` | wgpu callbacks as futures, the error log, mapped readbacks |
//! | `kernels.rs` | the registry: [`kernels::Module`] and [`kernels::Entry`], each module's uniform and entries, each entry's binding access |
//! | `params.rs` | every kernel's uniform as a `#[repr(C)]` struct mirrored in WGSL |
//! | `dispatch.rs` | pipeline and bind-group caches, the uniform ring, the grid |
//! | `chunk.rs` | work past one binding, in aligned sub-ranges |
//! | `storage.rs` | buffers, writes, copies, readbacks, submit |
//! | `matmul.rs` | the tiled and split-K matmul, and the rule that picks one per product |
//! | `elementwise.rs`, `reduce.rs`, `gather.rs`, `optim.rs` | one file per kernel family |
//! | `timer.rs` | timestamp queries |
//!
//! The [`Backend`] impl below is one line per op.

mod adafactor;
mod chunk;
mod dispatch;
mod dropout;
mod elementwise;
mod future;
mod gather;
pub mod kernels;
mod matmul;
mod open;
mod optim;
pub mod params;
mod reduce;
mod storage;
mod timer;
mod vector;

pub use matmul::{plan as matmul_plan, MatmulKernels, MatmulPlan};
#[cfg(not(target_arch = "wasm32"))]
pub use open::describe_adapters;
pub use open::ShaderChecks;

use crate::backend::op_set::{Backend, Capacity, Counters};
use crate::backend::ops::{
    Act, Axis, Bcast, BinaryOp, ByteBuffer, CeOutputs, Dims, DropoutMask, Epilogue, Form, Gather, Layout, UnaryOp,
};
use crate::backend::optim_kernel::{
    AdafactorParams, Blockwise8, Factored, GradCheck, GroupedStep, Objective, OptimStep,
};
use crate::backend::pending::Pending;
use crate::tensor::View;
use anyhow::Result;
use dispatch::Binding;
use kernels::Module;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use timer::Timer;

/// Bytes per uniform slot (wgpu's minimum uniform offset alignment is at most 256).
const SLOT: usize = 256;
/// Dispatches per submit before the ring forces a submit.
const RING_SLOTS: usize = 1024;
/// Invocations per workgroup of the 1-D kernels.
const WG: u32 = 256;

/// The WGSL backend on one wgpu adapter: buffers, cached pipelines, one encoder per step.
pub struct GpuBackend {
    timer: Option<Timer>,
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    bufs: Vec<Option<wgpu::Buffer>>,
    modules: HashMap<Module, wgpu::ShaderModule>,
    layouts: HashMap<&'static [kernels::Access], (wgpu::BindGroupLayout, wgpu::PipelineLayout)>,
    pipelines: HashMap<(Module, kernels::Entry), wgpu::ComputePipeline>,
    bind_groups: HashMap<(Module, kernels::Entry, Vec<Binding>), wgpu::BindGroup>,
    ring: wgpu::Buffer,
    uniforms: Vec<u8>,
    encoder: Option<wgpu::CommandEncoder>,
    /// Dispatches recorded since the last command that was not one, encoded as one pass.
    queued: Vec<dispatch::Queued>,
    /// Scratch copies for read operands that alias a written buffer, by size in bytes.
    scratch: HashMap<u64, usize>,
    /// Tiny placeholder buffers bound where an optional operand is absent.
    dummy_read: usize,
    /// One per optional written binding of a kernel: WebGPU forbids binding one buffer to two
    /// writable bindings of a dispatch (Dawn checks it; wgpu natively does not). The optimizer
    /// steps' three state slots, and (the fourth) their non-finite flag.
    dummy_write: [usize; 4],
    /// Partial sums of the two-pass `sum` and norms: the buffer and the floats it holds (256,
    /// or more once a batch of norms needed them).
    partials: usize,
    partials_len: usize,
    errors: Arc<Mutex<Vec<crate::message::Message>>>,
    counters: Counters,
    /// How the kernels [`Module::trusted_ok`](kernels::Module::trusted_ok) lists are compiled.
    checks: ShaderChecks,
    /// Which matmul kernel each product runs.
    matmul_kernels: MatmulKernels,
    /// The split-K products' partial sums: the buffer and its size in bytes, grown on demand.
    split_parts: Option<(usize, u64)>,
}

/// A uniform word from a size or an offset (the host checks sizes against the adapter's limits).
fn u(x: usize) -> u32 {
    x as u32
}

impl Backend for GpuBackend {
    fn describe(&self) -> String {
        self.description()
    }

    fn is_gpu(&self) -> bool {
        true
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        Some(self)
    }

    fn alloc(&mut self, len: usize) -> Result<usize> {
        self.alloc_buffer(len)
    }

    fn alloc_bytes(&mut self, data: &[u8]) -> Result<usize> {
        self.alloc_data(data)
    }

    fn free(&mut self, buf: usize) {
        self.free_buffer(buf)
    }

    fn write(&mut self, dst: View, data: &[f32]) -> Result<()> {
        self.write_f32(dst, data)
    }

    fn read_async(&mut self, src: View) -> Pending<Vec<f32>> {
        self.read_back(src)
    }

    fn fill(&mut self, dst: View, value: f32) {
        self.launch_fill(dst, value)
    }

    fn copy(&mut self, src: View, dst: View) {
        self.record_copy(src, dst)
    }

    fn matmul(&mut self, form: Form, d: Dims, a: View, b: View, out: View, epi: &Epilogue) {
        self.launch_matmul(form, d, a, b, out, epi)
    }

    fn matmul_batched(&mut self, form: Form, d: Dims, batch: usize, a: View, b: View, out: View) {
        self.launch_matmul_batched(form, d, batch, a, b, out)
    }

    fn gram_batched(&mut self, form: Form, side: usize, k: usize, batch: usize, x: View, out: View) {
        self.launch_matmul_batched(form, Dims { m: side, k, n: side }, batch, x, x, out)
    }

    fn bias_act(&mut self, x: View, bias: Option<View>, out: View, cols: usize, act: Act) {
        self.launch_bias_act(x, bias, out, cols, act)
    }

    fn act_backward(&mut self, act: Act, y: View, dy: View, dx: View) {
        self.launch_act_backward(act, y, dy, dx)
    }

    fn sum_axis(&mut self, x: View, out: View, cols: usize, axis: Axis, scale: f32) {
        self.launch_sum_axis(x, out, cols, axis, scale)
    }

    fn max_axis(&mut self, x: View, out: View, cols: usize, axis: Axis, argmax: bool) {
        self.launch_max_axis(x, out, cols, axis, argmax)
    }

    fn binary(&mut self, op: BinaryOp, a: View, b: View, out: View, bcast: Bcast) {
        self.launch_binary(op, a, b, out, bcast)
    }

    fn unary(&mut self, op: UnaryOp, a: View, out: View) {
        self.launch_unary(op, a, out)
    }

    fn sum(&mut self, a: View, out: View, scale: f32) {
        self.launch_sum(a, out, scale)
    }

    fn expand(&mut self, src: View, layout: Layout, out: View, cols: usize, scale: f32) {
        self.launch_expand(src, layout, out, cols, scale)
    }

    fn softmax_ce(&mut self, logits: View, labels: View, cols: usize, ignore_index: i32, out: CeOutputs) {
        self.launch_softmax_ce(logits, labels, cols, ignore_index, out)
    }

    fn find_nonfinite(&mut self, src: View, flag: View, tag: f32) {
        self.launch_find_nonfinite(src, flag, tag)
    }

    fn inv_norm(&mut self, x: View, out: View, eps: f32) {
        self.launch_inv_norm(x, out, eps)
    }

    fn clip_coef(&mut self, x: View, out: View, max_norm: f32) {
        self.launch_clip_coef(x, out, max_norm)
    }

    fn scale_by(&mut self, y: View, s: View) {
        self.launch_scale_by(y, s)
    }

    fn inv_norm_batched(&mut self, x: View, members: usize, out: View, eps: f32) {
        self.launch_inv_norm_batched(x, members, out, eps)
    }

    fn scale_by_batched(&mut self, y: View, members: usize, s: View) {
        self.launch_scale_by_batched(y, members, s)
    }

    fn axpby(&mut self, alpha: f32, x: View, beta: f32, y: View) {
        self.launch_axpby(alpha, x, beta, y)
    }

    fn stream_scale(&mut self, x: View, y: View, scale: f32) {
        self.launch_stream(x, y, scale)
    }

    fn unary_grad(&mut self, op: UnaryOp, a: View, g: View, out: View) {
        self.launch_unary_grad(op, a, g, out)
    }

    fn clamp(&mut self, y: View, lo: f32, hi: f32) {
        self.launch_clamp(y, lo, hi)
    }

    fn dropout(&mut self, x: View, y: View, mask: &DropoutMask) {
        self.launch_dropout(x, y, mask)
    }

    fn gather(&mut self, g: &Gather) {
        self.launch_gather(g)
    }

    fn gather_rows(&mut self, src: View, cols: usize, indices: ByteBuffer, start: usize, dst: View) {
        self.launch_gather_rows(src, cols, indices, start, dst)
    }

    fn optim_step(&mut self, step: &OptimStep, objective: Objective, params: View, grads: View, state: &[View]) {
        self.optim_launch(step, objective, false, params, grads, state, None);
    }

    fn optim_step_bf16(&mut self, step: &OptimStep, objective: Objective, params: View, grads: View, state: &[View]) {
        self.optim_launch(step, objective, true, params, grads, state, None);
    }

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
        self.optim_launch(step, objective, bf16, params, grads, state, Some(check))
    }

    fn optim_step_groups(
        &mut self,
        g: &GroupedStep,
        objective: Objective,
        params: View,
        grads: View,
        state: &[View],
        bf16: bool,
    ) {
        self.optim_launch_groups(g, objective, params, grads, state, bf16)
    }

    fn step_8bit(&mut self, step: &OptimStep, objective: Objective, params: View, grads: View, s: &Blockwise8) {
        self.launch_8bit(step, objective, params, grads, s)
    }

    fn adafactor_step(&mut self, h: &AdafactorParams, objective: Objective, params: View, grads: View, s: &Factored) {
        self.launch_adafactor(h, objective, params, grads, s)
    }

    fn finish(&mut self) -> Pending<()> {
        self.finish_work()
    }

    fn flush(&mut self) -> Result<()> {
        self.submit()
    }

    fn capacity(&self) -> Capacity {
        Capacity {
            max_buffer_bytes: self.limits.max_buffer_size,
            max_binding_bytes: self.limits.max_storage_buffer_binding_size,
            available_bytes: None,
        }
    }

    fn counters(&self) -> Counters {
        self.counters
    }

    fn timer_start(&mut self) -> bool {
        self.start_timer()
    }

    fn timer_stop(&mut self) {
        self.stop_timer()
    }

    fn timer_read(&mut self) -> Result<Option<f64>> {
        self.read_timer()
    }
}
