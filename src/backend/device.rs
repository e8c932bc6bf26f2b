//! [`Device`]: the one way the autograd, layers, optimizers and training use a backend. It
//! wraps a [`Backend`], recycles released buffers by length, checks what a request needs
//! against what the device holds ([`TooLarge`]), and picks a backend ([`DeviceChoice`]).

use super::cpu::CpuBackend;
use super::gpu::GpuBackend;
use super::op_set::{Backend, Capacity, Counters};
use super::ops::{
    Act, Axis, Bcast, BinaryOp, ByteBuffer, CeOutputs, Dims, DropoutMask, Epilogue, Form, Gather, Layout, UnaryOp,
};
use super::optim_kernel::{AdafactorParams, Blockwise8, Factored, GroupedStep, Objective, OptimStep};
use super::owner::{Loan, Registry};
use super::pending::{wait, Pending};
use crate::message::Message;
use crate::said;
use crate::tensor::View;
use anyhow::{anyhow, ensure, Result};
use std::collections::HashMap;

/// Whether each view of a `d.m × d.k · d.k × d.n` product holds what the product reads or
/// writes: A `m·k`, B `k·n`, the output, and the activation output `m·n`, the bias `n`, the
/// column sums `m`.
fn matmul_extents(d: Dims, a: &View, b: &View, out: &View, epi: &Epilogue) -> std::result::Result<(), String> {
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

/// A cross-entropy's labels, kept to explain a NaN read later.
#[derive(Clone, Copy, Debug, PartialEq)]
struct LabelCheck {
    labels: View,
    classes: usize,
    ignore_index: i32,
}

/// A request larger than the device holds, refused before allocating. Front ends treat it as
/// a usage error: the size came from the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLarge {
    /// What was asked for, e.g. "a 784-100000-100000-10 model with sgd".
    pub what: String,
    /// Bytes it needs (in total, or in its largest buffer).
    pub needs: u64,
    /// Which limit it is over, e.g. "the host's available memory".
    pub limit: String,
    /// Bytes that limit allows.
    pub fits: u64,
    /// What to change.
    pub fix: Message,
}

impl TooLarge {
    /// The one-line explanation, with the setting to change as a key.
    pub fn message(&self) -> Message {
        let gb = |b: u64| b as f64 / 1e9;
        let head =
            format!("{} needs {:.2} GB, over {} of {:.2} GB; ", self.what, gb(self.needs), self.limit, gb(self.fits));
        Message::from(head).then(self.fix.clone())
    }
}

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.message().fmt(f)
    }
}

impl std::error::Error for TooLarge {}

/// Which backend to run on (the command line's `--device auto|cpu|gpu`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "app", derive(clap::ValueEnum))]
pub enum DeviceChoice {
    /// A hardware GPU if there is one, else the CPU backend.
    Auto,
    /// The rayon backend.
    Cpu,
    /// Any adapter wgpu finds, software ones included.
    Gpu,
}

impl DeviceChoice {
    /// `auto`, `cpu` or `gpu`.
    pub fn parse(s: &str) -> Result<DeviceChoice> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "gpu" => Ok(DeviceChoice::Gpu),
            _ => anyhow::bail!("unknown device '{s}': use auto, cpu or gpu"),
        }
    }
}

/// What autograd, layers, optimizers and training talk to: one backend plus a pool of
/// released buffers keyed by length, so a training step allocates nothing after the first.
///
/// `Device` wraps a [`Backend`] and is the one way to use it: [`Device::alloc`] takes an f32
/// buffer (from the pool when one of that length is free) and [`Device::release`] gives it
/// back; every op is a method of the same name as the backend's, with its shapes checked
/// where they are not obvious from the views.
///
/// Natively a `Device` is `Send` (every [`Backend`] is, see [`MaybeSend`](super::MaybeSend)): a
/// model, its optimizer and their device can move to a worker thread together, and
/// [`Trainer`](crate::app::train::Trainer) with them. It is not `Sync`: every op takes
/// `&mut self`, so one thread at a time records on it; several threads each use a device of
/// their own (as the data-parallel step's slices do). In the browser nothing is `Send`:
/// WebGPU handles stay on the page's thread.
///
/// Every view an op is given is checked against the device's record of what it handed out
/// (see [`crate::tensor::Owner`]). An op given a view of another device, of a buffer released
/// since, or past its buffer's end does not run: the device records the fault, and the next
/// read, write or wait returns it as an `Err`, as does every one after until
/// [`Device::clear_fault`].
///
/// Ops may run in place: an input may overlap the output, as `dropout(x, x, ..)` or
/// `binary(op, a, b, a)` do, since both backends read an input that shares the written buffer
/// from a copy taken before the op. The optimizer steps are the exception: they update the
/// parameters and the state in place from the gradients, so those three must lie in separate
/// buffers (a fault otherwise).
pub struct Device {
    backend: Box<dyn Backend>,
    pool: HashMap<usize, Vec<usize>>,
    registry: Registry,
    fault: Option<String>,
    /// The labels cross-entropies were given since, checked when a read finds a NaN.
    label_checks: Vec<LabelCheck>,
    /// Why [`DeviceChoice::Auto`] fell back to the CPU (one line), if it did.
    pub notice: Option<Message>,
}

impl Device {
    /// The rayon backend.
    pub fn cpu() -> Device {
        Device::from_backend(Box::new(CpuBackend::new()))
    }

    /// The WGSL backend on any adapter wgpu finds (software ones included).
    pub fn gpu() -> Result<Device> {
        Ok(Device::from_backend(GpuBackend::boxed(false)?))
    }

    /// [`Device::gpu`] as a future: how a browser page opens its WebGPU adapter (natively it
    /// is the same adapter as `Device::gpu`).
    pub async fn gpu_async() -> Result<Device> {
        Ok(Device::from_backend(Box::new(GpuBackend::open_async(false, |_| {}).await?)))
    }

    /// Wrap a backend (one of this crate's, or your own implementation of [`Backend`]).
    pub fn from_backend(backend: Box<dyn Backend>) -> Device {
        Device {
            backend,
            pool: HashMap::new(),
            registry: Registry::new(),
            fault: None,
            label_checks: Vec::new(),
            notice: None,
        }
    }

    /// `auto` takes a hardware GPU when wgpu finds one and otherwise the CPU backend, with a
    /// one-line notice saying why.
    pub fn select(choice: DeviceChoice) -> Result<Device> {
        match choice {
            DeviceChoice::Cpu => Ok(Device::cpu()),
            DeviceChoice::Gpu => Device::gpu(),
            DeviceChoice::Auto => match GpuBackend::boxed(true) {
                Ok(g) => Ok(Device::from_backend(g)),
                Err(e) => {
                    let mut d = Device::cpu();
                    d.notice = Some(said!["using the CPU backend ("].then(Message::of_error(&e)).then(")"));
                    Ok(d)
                }
            },
        }
    }

    /// A device for one row slice of a data-parallel step: a CPU backend whose own buffers
    /// are numbered apart from the main device's, which it is lent (see
    /// [`crate::autograd::data_parallel`]).
    pub fn cpu_worker() -> Device {
        Device::from_backend(Box::new(CpuBackend::worker()))
    }

    /// The CPU backend's storage, when this device is one.
    pub fn cpu_backend(&self) -> Option<&CpuBackend> {
        self.backend.as_any()?.downcast_ref()
    }

    /// [`Device::cpu_backend`], mutably.
    pub fn cpu_backend_mut(&mut self) -> Option<&mut CpuBackend> {
        self.backend.as_any_mut()?.downcast_mut()
    }

    /// The WGSL backend, when this device is one.
    pub fn gpu_backend_mut(&mut self) -> Option<&mut GpuBackend> {
        self.backend.as_any_mut()?.downcast_mut()
    }

    /// Compile this GPU device's matmul with or without wgpu's runtime checks (see
    /// [`ShaderChecks`](super::gpu::ShaderChecks); the environment's `DESCENT_GPU_SHADERS` sets
    /// it when the device opens). An `Err` on the CPU backend, which has no shaders.
    pub fn set_shader_checks(&mut self, checks: super::gpu::ShaderChecks) -> Result<()> {
        match self.gpu_backend_mut() {
            Some(g) => g.set_shader_checks(checks),
            None => anyhow::bail!("the CPU backend runs no shaders: shader checks are a GPU device's setting"),
        }
    }

    /// One line: what executes the ops.
    pub fn describe(&self) -> String {
        self.backend.describe()
    }

    /// Whether the ops run on a GPU (reads then cost a round trip).
    pub fn is_gpu(&self) -> bool {
        self.backend.is_gpu()
    }

    /// Dispatches, submits and bytes read back so far.
    pub fn counters(&self) -> Counters {
        self.backend.counters()
    }

    /// How much this device can hold.
    pub fn capacity(&self) -> Capacity {
        self.backend.capacity()
    }

    /// Refuse, with a [`TooLarge`] error, a request of `total_bytes` whose largest buffer is
    /// `largest_buffer_bytes`, when the device cannot hold it. `what` names the request and
    /// `fix` says what to change.
    pub fn check_fits(
        &self,
        what: &str,
        total_bytes: u64,
        largest_buffer_bytes: u64,
        fix: impl Into<Message>,
    ) -> Result<()> {
        self.check_fits_bound(what, total_bytes, largest_buffer_bytes, 0, fix)
    }

    /// [`Device::check_fits`] where one buffer of `bound_whole_bytes` is also bound whole by
    /// kernels that do not split their work (a model's arena, read by its matmuls).
    pub fn check_fits_bound(
        &self,
        what: &str,
        total_bytes: u64,
        largest_buffer_bytes: u64,
        bound_whole_bytes: u64,
        fix: impl Into<Message>,
    ) -> Result<()> {
        let cap = self.capacity();
        let fix = fix.into();
        let too_large = |needs: u64, limit: &str, fits: u64| TooLarge {
            what: what.to_string(),
            needs,
            limit: limit.to_string(),
            fits,
            fix: fix.clone(),
        };
        if largest_buffer_bytes > cap.max_buffer_bytes {
            let limit = format!("the largest buffer {} allocates", self.describe());
            return Err(too_large(largest_buffer_bytes, &limit, cap.max_buffer_bytes).into());
        }
        if bound_whole_bytes > cap.max_binding_bytes {
            let limit = format!("the largest binding {} addresses", self.describe());
            return Err(too_large(bound_whole_bytes, &limit, cap.max_binding_bytes).into());
        }
        if let Some(free) = cap.available_bytes {
            if total_bytes > free {
                return Err(too_large(total_bytes, "the memory available", free).into());
            }
        }
        Ok(())
    }

    /// A buffer of `len` f32 elements (contents unspecified), reused from the pool when one of
    /// that length was released. Give it back with [`Device::release`].
    pub fn alloc(&mut self, len: usize) -> Result<View> {
        let len = len.max(1);
        let buf = match self.pool.get_mut(&len).and_then(|v| v.pop()) {
            Some(buf) => buf,
            None => self.backend.alloc(len)?,
        };
        Ok(self.registry.issue(buf, len))
    }

    /// [`Device::alloc`], filled with zeros.
    pub fn alloc_zeroed(&mut self, len: usize) -> Result<View> {
        let v = self.alloc(len)?;
        self.backend.fill(v, 0.0);
        Ok(v)
    }

    /// [`Device::alloc`], holding a copy of `data`.
    pub fn upload(&mut self, data: &[f32]) -> Result<View> {
        let v = self.alloc(data.len())?;
        self.backend.write(v, data)?;
        Ok(v)
    }

    /// [`Device::upload`] for cross-entropy labels, checked first: each is a class in
    /// [0, classes) or [`IGNORE_INDEX`](super::IGNORE_INDEX). The error names the first row
    /// that is neither, its label and the class count (a bad label made on the device gives
    /// NaN, explained by the same `Err` at the next [`Device::read`] that finds it; see
    /// [`Tape::softmax_ce`](crate::autograd::Tape::softmax_ce)).
    pub fn upload_labels(&mut self, labels: &[f32], classes: usize) -> Result<View> {
        super::check_labels(labels, classes, super::IGNORE_INDEX)?;
        self.upload(labels)
    }

    /// Return a whole buffer obtained from [`Device::alloc`] to the pool, for the next
    /// allocation of the same length. Its views are refused from then on. Releasing a slice, a
    /// buffer twice, or another device's buffer takes nothing back and is a fault (see
    /// [`Device`]).
    pub fn release(&mut self, v: View) {
        match self.registry.retire(v) {
            Ok(()) => self.pool.entry(v.len).or_default().push(v.buf),
            Err(why) => self.record_fault("release", why),
        }
    }

    /// This device's identity, as the views it hands out carry it
    /// ([`Owner::device`](crate::tensor::Owner::device)).
    pub fn id(&self) -> u32 {
        self.registry.id()
    }

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
    fn admit<'v>(&mut self, op: &str, views: impl IntoIterator<Item = &'v View>) -> bool {
        for v in views {
            if let Err(why) = self.registry.check(v) {
                self.record_fault(op, why);
                return false;
            }
        }
        true
    }

    /// [`Device::admit`] for an optimizer step, which also needs the parameters, the
    /// gradients and the state in three separate buffers: the step updates the parameters and
    /// the state in place, reading the gradients.
    fn admit_step(&mut self, op: &str, params: View, grads: View, state: &[View]) -> bool {
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

    fn record_fault(&mut self, op: &str, why: String) {
        if self.fault.is_none() {
            self.fault = Some(format!("Device::{op} was refused: {why}"));
        }
    }

    /// The recorded fault as an `Err`, else `Ok`.
    fn no_fault(&self) -> Result<()> {
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

    /// A byte buffer holding `data` (a dataset, row indices).
    pub fn upload_bytes(&mut self, data: &[u8]) -> Result<ByteBuffer> {
        Ok(ByteBuffer { id: self.backend.alloc_bytes(data)? })
    }

    /// Free a byte buffer: its memory goes back to the system.
    pub fn free_bytes(&mut self, b: ByteBuffer) {
        self.backend.free(b.id);
    }

    /// Copy `data` into `dst` (lengths must match).
    pub fn write(&mut self, dst: View, data: &[f32]) -> Result<()> {
        ensure!(data.len() == dst.len, "write of {} values into a view of {}", data.len(), dst.len);
        self.admit("write", [&dst]);
        self.no_fault()?;
        self.backend.write(dst, data)
    }

    /// Run what is recorded and copy `v` to the host (natively; in the browser a GPU device
    /// needs [`Device::read_async`]).
    ///
    /// A read that finds a NaN checks the labels every cross-entropy on this device was given
    /// (as they are now): a label that names no class, made on the device where
    /// [`Device::upload_labels`] could not check it, is then an `Err` naming its row, the
    /// label and the class count, rather than an unexplained NaN.
    pub fn read(&mut self, v: View) -> Result<Vec<f32>> {
        let values = wait(self.read_async(v))?;
        if values.iter().any(|x| x.is_nan()) {
            self.check_cross_entropy_labels()?;
        }
        Ok(values)
    }

    /// Check the labels of the cross-entropies recorded so far (those still allocated).
    fn check_cross_entropy_labels(&mut self) -> Result<()> {
        for c in self.label_checks.clone() {
            if self.registry.check(&c.labels).is_err() {
                continue;
            }
            let labels = wait(self.backend.read_async(c.labels))?;
            super::check_labels(&labels, c.classes, c.ignore_index).map_err(|e| {
                anyhow!("a value read holds NaN because a softmax cross-entropy was given a label that names no class: {e}; upload labels with Device::upload_labels to have them checked before use")
            })?;
        }
        Ok(())
    }

    /// Remember `labels` for [`Device::read`]'s NaN check (once per allocation; labels whose
    /// buffer went back to the pool are dropped).
    fn note_labels(&mut self, labels: View, classes: usize, ignore_index: i32) {
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

    /// Run what is recorded and copy `v` to the host when the device gets there. The future
    /// owns what it needs, so the device can record more work meanwhile. Unlike
    /// [`Device::read`], it does not look into a NaN it returns.
    pub fn read_async(&mut self, v: View) -> Pending<Vec<f32>> {
        self.admit("read", [&v]);
        if let Err(e) = self.no_fault() {
            return Pending::ready(Err(e));
        }
        self.backend.read_async(v)
    }

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
    /// runtime bounds checks ([`ShaderChecks::Trusted`](super::gpu::ShaderChecks)).
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
        if self.admit("gather", [&g.x, &g.y]) {
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

    /// `y ← y · s[0]`; see [`Backend::scale_by`].
    pub fn scale_by(&mut self, y: View, s: View) {
        debug_assert!(s.len >= 1);
        if self.admit("scale_by", [&y, &s]) {
            self.backend.scale_by(y, s)
        }
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
        if self.admit("gather_rows", [&src, &dst]) {
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

    /// bfloat16 slots count 16-bit elements: the views of the words they lie in.
    fn bf16_words(state: &[View]) -> Vec<View> {
        state
            .iter()
            .map(|s| View { offset: s.offset / 2, len: (s.offset + s.len).div_ceil(2) - s.offset / 2, ..*s })
            .collect()
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

    /// Run everything recorded so far and wait for it (natively; in the browser a GPU device
    /// needs [`Device::finish_async`]).
    pub fn sync(&mut self) -> Result<()> {
        wait(self.finish_async())
    }

    /// Run everything recorded so far; the future completes when the device has finished it.
    pub fn finish_async(&mut self) -> Pending<()> {
        if let Err(e) = self.no_fault() {
            return Pending::ready(Err(e));
        }
        self.backend.finish()
    }

    /// Start everything recorded so far without waiting.
    pub fn flush(&mut self) -> Result<()> {
        self.no_fault()?;
        self.backend.flush()
    }

    /// Start timing with the device's own clock; false when it has none.
    pub fn timer_start(&mut self) -> bool {
        self.backend.timer_start()
    }

    /// End the span begun by [`Device::timer_start`].
    pub fn timer_stop(&mut self) {
        self.backend.timer_stop()
    }

    /// The last timed span in seconds.
    pub fn timer_read(&mut self) -> Result<Option<f64>> {
        self.backend.timer_read()
    }
}
