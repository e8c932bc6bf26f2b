//! [`Device`]: the one way the autograd, layers, optimizers and training use a backend. It
//! wraps a [`Backend`], recycles released buffers by length, checks what a request needs
//! against what the device holds ([`TooLarge`]), and picks a backend ([`DeviceChoice`]).

use super::cpu::CpuBackend;
use super::gpu::GpuBackend;
use super::op_set::{Backend, Capacity, Counters};
use super::ops::{
    Act, Axis, Bcast, BinaryOp, ByteBuffer, CeOutputs, Dims, DropoutMask, Epilogue, Form, Gather, Layout, UnaryOp,
};
use super::optim_kernel::{AdafactorParams, Blockwise8, Factored, GradCheck, GroupedStep, Objective, OptimStep};
use super::owner::{Loan, Registry};
use super::pending::{wait, Pending};
use crate::message::Message;
use crate::said;
use crate::tensor::View;
use anyhow::{anyhow, ensure, Result};
use std::collections::HashMap;

mod guard;
mod ops;

use guard::LabelCheck;

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
    pub fn gpu_backend(&self) -> Option<&GpuBackend> {
        self.backend.as_any()?.downcast_ref()
    }

    /// [`Device::gpu_backend`], mutably.
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

    /// Which matmul kernels this GPU device runs (see
    /// [`MatmulKernels`](super::gpu::MatmulKernels); the environment's `DESCENT_GPU_MATMUL` sets
    /// it when the device opens). An `Err` on the CPU backend, whose matmul is the `gemm` crate's
    /// or its own.
    pub fn set_matmul_kernels(&mut self, kernels: super::gpu::MatmulKernels) -> Result<()> {
        match self.gpu_backend_mut() {
            Some(g) => {
                g.set_matmul_kernels(kernels);
                Ok(())
            }
            None => {
                anyhow::bail!("the CPU backend has no GPU matmul kernels to choose: this is a GPU device's setting")
            }
        }
    }

    /// Which matmul kernels this GPU device runs (None on the CPU backend).
    pub fn matmul_kernels(&self) -> Option<super::gpu::MatmulKernels> {
        Some(self.gpu_backend()?.matmul_kernels())
    }

    /// The GPU kernel a product of these sizes runs on this device (None on the CPU backend).
    pub fn matmul_plan(&self, d: super::Dims) -> Option<super::gpu::MatmulPlan> {
        Some(self.gpu_backend()?.matmul_plan(d))
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

    /// A byte buffer holding `data` (a dataset, row indices).
    pub fn upload_bytes(&mut self, data: &[u8]) -> Result<ByteBuffer> {
        let id = self.backend.alloc_bytes(data)?;
        Ok(self.registry.issue_bytes(id, data.len()))
    }

    /// Free a byte buffer: its memory goes back to the system. Freeing one twice, or another
    /// device's, frees nothing and is a fault (see [`Device`]).
    pub fn free_bytes(&mut self, b: ByteBuffer) {
        match self.registry.retire_bytes(b) {
            Ok(()) => self.backend.free(b.id),
            Err(why) => self.record_fault("free_bytes", why),
        }
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
