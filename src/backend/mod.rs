//! The op set: one trait, [`Backend`], implemented by the rayon CPU backend ([`cpu`]) and the
//! WGSL backend ([`gpu`]). Autograd, layers and training talk to a [`Device`], which wraps a
//! backend and recycles buffers so a training step allocates nothing after the first one.
//!
//! Ops are recorded, not necessarily executed, when called: the GPU backend queues them into
//! one command encoder and submits on [`Backend::finish`] or a read. Nothing here reads data back
//! unless asked to.
//!
//! Reads and waits are futures ([`Pending`]): a browser cannot block, so there they are awaited
//! ([`Device::read_async`], [`Device::finish_async`]); natively [`Device::read`] and
//! [`Device::sync`] wait for the same futures with [`wait`].

pub mod cpu;
pub mod cpu_matmul;
pub mod cpu_optim;
pub mod gpu;
pub mod optim_kernel;
pub mod quant;

pub use crate::tensor::View;
use anyhow::{ensure, Result};
pub use optim_kernel::{Blockwise8, OptimBits, OptimStep, Slot};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A result the device produces later: a readback or the end of submitted work. Await it (in
/// the browser, where nothing may block), or [`wait`] for it natively.
#[must_use = "a readback or wait does nothing useful unless awaited"]
pub struct Pending<T>(Pin<Box<dyn Future<Output = Result<T>>>>);

impl<T: 'static> Pending<T> {
    /// A result that is already here (the CPU backend's reads, or an error found up front).
    pub fn ready(r: Result<T>) -> Pending<T> {
        Pending(Box::pin(std::future::ready(r)))
    }

    /// A result that comes when `f` completes.
    pub fn new(f: impl Future<Output = Result<T>> + 'static) -> Pending<T> {
        Pending(Box::pin(f))
    }
}

impl<T> Future for Pending<T> {
    type Output = Result<T>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        self.0.as_mut().poll(cx)
    }
}

/// Block until `f` completes: the native edge of the async readback path (a GPU future polls
/// the device until its callback fires). In the browser a future that is not ready at once
/// would need the event loop, so it is an error there: await it instead.
pub fn wait<T>(f: impl Future<Output = Result<T>>) -> Result<T> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        pollster::block_on(f)
    }
    #[cfg(target_arch = "wasm32")]
    {
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut Context::from_waker(std::task::Waker::noop())) {
            Poll::Ready(r) => r,
            Poll::Pending => anyhow::bail!(
                "in the browser a GPU result cannot be waited for: await it (Device::read_async, Device::finish_async)"
            ),
        }
    }
}

/// Activation functions. Their derivatives are taken from the output `y`, which is what the
/// forward pass keeps: `relu' = [y > 0]`, `sigmoid' = y(1 − y)`, `tanh' = 1 − y²`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Act {
    /// `y = z`.
    Identity,
    /// `y = max(z, 0)`.
    Relu,
    /// `y = 1 / (1 + e^-z)`.
    Sigmoid,
    /// `y = tanh(z)`.
    Tanh,
}

impl Act {
    /// Every activation, for parity and gradient checks.
    pub const ALL: [Act; 4] = [Act::Identity, Act::Relu, Act::Sigmoid, Act::Tanh];

    /// The lowercase name the CLI and reports use.
    pub fn name(self) -> &'static str {
        match self {
            Act::Identity => "identity",
            Act::Relu => "relu",
            Act::Sigmoid => "sigmoid",
            Act::Tanh => "tanh",
        }
    }

    /// The activation called `s` (see [`Act::name`]).
    pub fn parse(s: &str) -> Result<Act> {
        Act::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| anyhow::anyhow!("unknown activation '{s}': use one of relu, sigmoid, tanh, identity"))
    }

    /// The code the WGSL kernels switch on.
    pub fn code(self) -> u32 {
        self as u32
    }
}

/// The three matmul forms: A·B, A·Bᵀ and Aᵀ·B. The result is always m×n with inner size k.
/// Stored shapes: NN: A m×k, B k×n; NT: A m×k, B n×k; TN: A k×m, B k×n.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Form {
    /// `A·B`.
    NN,
    /// `A·Bᵀ` (a linear layer's forward pass with W stored [out, in]).
    NT,
    /// `Aᵀ·B` (a weight gradient).
    TN,
}

impl Form {
    /// Every form, for parity and gradient checks.
    pub const ALL: [Form; 3] = [Form::NN, Form::NT, Form::TN];

    /// The kernel's name in parity tables and anomaly reports.
    pub fn name(self) -> &'static str {
        match self {
            Form::NN => "matmul_nn",
            Form::NT => "matmul_nt",
            Form::TN => "matmul_tn",
        }
    }

    /// The code the WGSL kernel switches on.
    pub fn code(self) -> u32 {
        self as u32
    }
}

/// Matmul dimensions: out is m×n, inner size k.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dims {
    /// Rows of the result.
    pub m: usize,
    /// The inner size summed over.
    pub k: usize,
    /// Columns of the result.
    pub n: usize,
}

/// Work fused into a matmul so a linear layer costs one kernel forward and two backward:
/// `out = act((A·B)[⊙ act_grad'(y)] + bias)`, and optionally the column sums of the stored A
/// (the bias gradient when A is dY in dW = dYᵀ·X).
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue {
    /// Added to every row (length n).
    pub bias: Option<View>,
    /// Applied last.
    pub act: Option<Act>,
    /// Multiply by the derivative of this activation, taken from its output `y` (m×n).
    pub act_grad: Option<(Act, View)>,
    /// TN only: also write the column sums of the stored A (k×m), length m.
    pub a_colsum: Option<View>,
}

/// How one operand of a broadcasting op is read over an output of `rows × cols` elements
/// (row-major): every element, one row repeated down the rows, one column repeated across
/// the columns, or one value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// As long as the output: element `i`.
    Full,
    /// `cols` values: element `i % cols` (a `[1, n]` row or an `[n]` vector over `[m, n]`).
    Row,
    /// `rows` values: element `i / cols` (an `[m, 1]` column over `[m, n]`).
    Col,
    /// One value: element 0.
    Scalar,
}

impl Layout {
    /// The code the WGSL kernels switch on.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// Which element of an operand in this layout output element `i` reads.
    pub fn index(self, i: usize, cols: usize) -> usize {
        match self {
            Layout::Full => i,
            Layout::Row => i % cols,
            Layout::Col => i / cols,
            Layout::Scalar => 0,
        }
    }

    /// How many elements an operand in this layout holds for an output of `rows × cols`.
    pub fn len(self, rows: usize, cols: usize) -> usize {
        match self {
            Layout::Full => rows * cols,
            Layout::Row => cols,
            Layout::Col => rows,
            Layout::Scalar => 1,
        }
    }
}

/// How the two operands of [`Backend::binary`] are read: the output is `out.len / cols` rows
/// of `cols`. [`Bcast::NONE`] is the plain elementwise case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Bcast {
    /// How the left operand is read.
    pub a: Layout,
    /// How the right operand is read.
    pub b: Layout,
    /// Columns of the output (rows are `out.len / cols`).
    pub cols: usize,
}

impl Bcast {
    /// Both operands as long as the output.
    pub const NONE: Bcast = Bcast { a: Layout::Full, b: Layout::Full, cols: 1 };
}

/// The axis a reduction runs along, for a row-major `rows × cols` matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Axis {
    /// Axis 0: sum down each column, giving `cols` values (PyTorch's `sum(dim=0)`).
    Rows,
    /// Axis 1: sum along each row, giving `rows` values (PyTorch's `sum(dim=1)`).
    Cols,
}

impl Axis {
    /// PyTorch's `dim` for a matrix.
    pub fn dim(self) -> usize {
        match self {
            Axis::Rows => 0,
            Axis::Cols => 1,
        }
    }

    /// The layout in which a reduced result broadcasts back over the matrix.
    pub fn kept(self) -> Layout {
        match self {
            Axis::Rows => Layout::Row,
            Axis::Cols => Layout::Col,
        }
    }
}

/// Elementwise binary operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `a + b`.
    Add,
    /// `a − b`.
    Sub,
    /// `a · b`.
    Mul,
    /// `a / b`.
    Div,
}

/// Elementwise unary operations, with their scalar parameter where they take one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    /// `s · a`.
    Scale(f32),
    /// `a + s`.
    AddScalar(f32),
    /// `a^p` (an integral `p` keeps the sign of a negative `a`).
    Pow(f32),
    /// Natural logarithm.
    Log,
    /// `e^a`.
    Exp,
    /// `sin a`.
    Sin,
    /// `cos a`.
    Cos,
}

impl UnaryOp {
    /// (kernel code, parameter) as the WGSL kernel reads them.
    pub fn code(self) -> (u32, f32) {
        match self {
            UnaryOp::Scale(s) => (0, s),
            UnaryOp::AddScalar(s) => (1, s),
            UnaryOp::Pow(p) => (2, p),
            UnaryOp::Log => (3, 0.0),
            UnaryOp::Exp => (4, 0.0),
            UnaryOp::Sin => (5, 0.0),
            UnaryOp::Cos => (6, 0.0),
        }
    }
}

/// Gather a mini-batch from a dataset kept on the device as bytes: rows `indices[start..start +
/// count]` of `images` (u8, `row_len` per row) scaled by `scale` into `x`, their labels into `y`.
#[derive(Clone, Copy, Debug)]
pub struct Gather {
    /// `u8` pixels, `row_len` per row.
    pub images: ByteBuffer,
    /// `u8` class indices, one per row.
    pub labels: ByteBuffer,
    /// Little-endian u32 row indices.
    pub indices: ByteBuffer,
    /// The first position of `indices` to read.
    pub start: usize,
    /// Rows to gather.
    pub count: usize,
    /// Bytes (pixels) per row.
    pub row_len: usize,
    /// Multiplies each byte (1/255 maps pixels to [0, 1]).
    pub scale: f32,
    /// Output rows, `count × row_len` f32.
    pub x: View,
    /// Output labels, `count` f32 class indices.
    pub y: View,
}

/// One backend: storage plus every op. Shapes are checked by the callers ([`Device`] and the
/// autograd); backends trust them.
pub trait Backend {
    /// One line: what executes the ops.
    fn describe(&self) -> String;
    /// Whether the ops run on a GPU (reads then cost a round trip).
    fn is_gpu(&self) -> bool;
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
    /// out = act(x + bias) over rows of `cols`.
    fn bias_act(&mut self, x: View, bias: Option<View>, out: View, cols: usize, act: Act);
    /// dx = dy ⊙ act'(y).
    fn act_backward(&mut self, act: Act, y: View, dy: View, dx: View);
    /// `scale ·` the sums of the `rows × cols` matrix `x` along `axis`: `cols` values for
    /// [`Axis::Rows`], `rows` values for [`Axis::Cols`].
    fn sum_axis(&mut self, x: View, out: View, cols: usize, axis: Axis, scale: f32);
    /// `out[i] = a[bcast.a.index(i)] op b[bcast.b.index(i)]`.
    fn binary(&mut self, op: BinaryOp, a: View, b: View, out: View, bcast: Bcast);
    /// `out = op(a)` elementwise.
    fn unary(&mut self, op: UnaryOp, a: View, out: View);
    /// `out[0] = scale · Σ a`.
    fn sum(&mut self, a: View, out: View, scale: f32);
    /// `out[i] = scale · src[layout.index(i, cols)]`: the inverse shape of a reduction.
    fn expand(&mut self, src: View, layout: Layout, out: View, cols: usize, scale: f32);
    /// Softmax cross-entropy over rows of `cols` logits with labels stored as f32 class
    /// indices. Writes the mean loss, d(mean loss)/d(logits) = (softmax − onehot)/rows, and adds
    /// [Σ row loss, argmax-correct count] to `metrics`; each output is optional.
    fn softmax_ce(
        &mut self,
        logits: View,
        labels: View,
        cols: usize,
        loss: Option<View>,
        dlogits: Option<View>,
        metrics: Option<View>,
    );
    /// Gather a mini-batch on the device (see [`Gather`]): no host copy per step.
    fn gather(&mut self, g: &Gather);
    /// If `flag[0] < 0` and `src` holds a NaN or ±∞, set `flag` to [`tag`, the element's index]
    /// (some non-finite element, not necessarily the first). Nothing is read back.
    fn find_nonfinite(&mut self, src: View, flag: View, tag: f32);
    /// One fused optimizer update over `params` (in place) from `grads`, with state slots
    /// `state` (each as long as `params`, in [`OptimStep::slots`] order, each in its own buffer
    /// or not).
    fn optim_step(&mut self, step: &OptimStep, params: View, grads: View, state: &[View]);
    /// [`Backend::optim_step`] with bfloat16 state: each slot holds two values per 32-bit
    /// word, and its view counts bf16 elements (offsets even).
    fn optim_step_bf16(&mut self, step: &OptimStep, params: View, grads: View, state: &[View]);
    /// One fused Adam/AdamW update with blockwise 8-bit state (see [`Blockwise8`]): each
    /// block's absmax is the maximum of its updated values, found in the same pass.
    fn adam_step_8bit(&mut self, h: &optim_kernel::AdamParams, params: View, grads: View, state: &Blockwise8);
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

/// The host's available memory (Linux's `MemAvailable`), if known.
pub fn host_available_bytes() -> Option<u64> {
    if cfg!(target_arch = "wasm32") {
        return None;
    }
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
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
    pub fix: String,
}

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let gb = |b: u64| b as f64 / 1e9;
        write!(
            f,
            "{} needs {:.2} GB, over {} of {:.2} GB; {}",
            self.what,
            gb(self.needs),
            self.limit,
            gb(self.fits),
            self.fix
        )
    }
}

impl std::error::Error for TooLarge {}

/// Which backend to run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// A byte buffer on a device (datasets as `u8`, row indices as little-endian `u32`): what
/// [`Gather`] reads. Made by [`Device::upload_bytes`], freed by [`Device::free_bytes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ByteBuffer {
    /// The backend's buffer id.
    pub id: usize,
}

/// What autograd, layers, optimizers and training talk to: one backend plus a pool of
/// released buffers keyed by length, so a training step allocates nothing after the first.
///
/// `Device` wraps a [`Backend`] and is the one way to use it: [`Device::alloc`] takes an f32
/// buffer (from the pool when one of that length is free) and [`Device::release`] gives it
/// back; every op is a method of the same name as the backend's, with its shapes checked
/// where they are not obvious from the views.
pub struct Device {
    backend: Box<dyn Backend>,
    pool: HashMap<usize, Vec<usize>>,
    /// Why [`DeviceChoice::Auto`] fell back to the CPU (one line), if it did.
    pub notice: Option<String>,
}

impl Device {
    /// The rayon backend.
    pub fn cpu() -> Device {
        Device::from_backend(Box::new(cpu::CpuBackend::new()))
    }

    /// The WGSL backend on any adapter wgpu finds (software ones included).
    pub fn gpu() -> Result<Device> {
        Ok(Device::from_backend(gpu::GpuBackend::boxed(false)?))
    }

    /// [`Device::gpu`] as a future: how a browser page opens its WebGPU adapter (natively it
    /// is the same adapter as `Device::gpu`).
    pub async fn gpu_async() -> Result<Device> {
        Ok(Device::from_backend(Box::new(gpu::GpuBackend::open_async(false, |_| {}).await?)))
    }

    /// Wrap a backend (one of this crate's, or your own implementation of [`Backend`]).
    pub fn from_backend(backend: Box<dyn Backend>) -> Device {
        Device { backend, pool: HashMap::new(), notice: None }
    }

    /// `auto` takes a hardware GPU when wgpu finds one and otherwise the CPU backend, with a
    /// one-line notice saying why.
    pub fn select(choice: DeviceChoice) -> Result<Device> {
        match choice {
            DeviceChoice::Cpu => Ok(Device::cpu()),
            DeviceChoice::Gpu => Device::gpu(),
            DeviceChoice::Auto => match gpu::GpuBackend::boxed(true) {
                Ok(g) => Ok(Device::from_backend(g)),
                Err(e) => {
                    let mut d = Device::cpu();
                    d.notice = Some(format!("using the CPU backend ({e})"));
                    Ok(d)
                }
            },
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
    pub fn check_fits(&self, what: &str, total_bytes: u64, largest_buffer_bytes: u64, fix: &str) -> Result<()> {
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
        fix: &str,
    ) -> Result<()> {
        let cap = self.capacity();
        let too_large = |needs: u64, limit: &str, fits: u64| TooLarge {
            what: what.to_string(),
            needs,
            limit: limit.to_string(),
            fits,
            fix: fix.to_string(),
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
        if let Some(buf) = self.pool.get_mut(&len).and_then(|v| v.pop()) {
            return Ok(View::whole(buf, len));
        }
        Ok(View::whole(self.backend.alloc(len)?, len))
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

    /// Return a whole buffer obtained from [`Device::alloc`] to the pool, for the next
    /// allocation of the same length.
    pub fn release(&mut self, v: View) {
        debug_assert_eq!(v.offset, 0, "only whole buffers go back to the pool");
        self.pool.entry(v.len).or_default().push(v.buf);
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
        self.backend.write(dst, data)
    }

    /// Run what is recorded and copy `v` to the host (natively; in the browser a GPU device
    /// needs [`Device::read_async`]).
    pub fn read(&mut self, v: View) -> Result<Vec<f32>> {
        wait(self.backend.read_async(v))
    }

    /// Run what is recorded and copy `v` to the host when the device gets there. The future
    /// owns what it needs, so the device can record more work meanwhile.
    pub fn read_async(&mut self, v: View) -> Pending<Vec<f32>> {
        self.backend.read_async(v)
    }

    /// Set every element of `dst` to `value`.
    pub fn fill(&mut self, dst: View, value: f32) {
        self.backend.fill(dst, value)
    }

    /// `dst = src` (same lengths).
    pub fn copy(&mut self, src: View, dst: View) {
        debug_assert_eq!(src.len, dst.len);
        self.backend.copy(src, dst)
    }

    /// `out = epilogue(op(a)·op(b))`; see [`Backend::matmul`].
    pub fn matmul(&mut self, form: Form, d: Dims, a: View, b: View, out: View, epi: &Epilogue) {
        self.backend.matmul(form, d, a, b, out, epi)
    }

    /// `out = act(x + bias)` over rows of `cols`.
    pub fn bias_act(&mut self, x: View, bias: Option<View>, out: View, cols: usize, act: Act) {
        self.backend.bias_act(x, bias, out, cols, act)
    }

    /// `dx = dy ⊙ act'(y)`.
    pub fn act_backward(&mut self, act: Act, y: View, dy: View, dx: View) {
        self.backend.act_backward(act, y, dy, dx)
    }

    /// `scale ·` sums of a `rows × cols` matrix along `axis`.
    pub fn sum_axis(&mut self, x: View, out: View, cols: usize, axis: Axis, scale: f32) {
        self.backend.sum_axis(x, out, cols, axis, scale)
    }

    /// Elementwise `out = a op b`, all three of one length.
    pub fn binary(&mut self, op: BinaryOp, a: View, b: View, out: View) {
        debug_assert!(a.len == out.len && b.len == out.len);
        self.backend.binary(op, a, b, out, Bcast::NONE)
    }

    /// `out = a op b` with either operand broadcast as `bcast` says.
    pub fn binary_bcast(&mut self, op: BinaryOp, a: View, b: View, out: View, bcast: Bcast) {
        self.backend.binary(op, a, b, out, bcast)
    }

    /// `out = op(a)`.
    pub fn unary(&mut self, op: UnaryOp, a: View, out: View) {
        self.backend.unary(op, a, out)
    }

    /// `out[0] = scale · Σ a`.
    pub fn sum(&mut self, a: View, out: View, scale: f32) {
        self.backend.sum(a, out, scale)
    }

    /// `out[i] = scale · src[layout.index(i, cols)]`.
    pub fn expand(&mut self, src: View, layout: Layout, out: View, cols: usize, scale: f32) {
        self.backend.expand(src, layout, out, cols, scale)
    }

    /// Softmax cross-entropy; see [`Backend::softmax_ce`].
    pub fn softmax_ce(
        &mut self,
        logits: View,
        labels: View,
        cols: usize,
        loss: Option<View>,
        dlogits: Option<View>,
        metrics: Option<View>,
    ) {
        self.backend.softmax_ce(logits, labels, cols, loss, dlogits, metrics)
    }

    /// Gather a mini-batch; see [`Gather`].
    pub fn gather(&mut self, g: &Gather) {
        self.backend.gather(g)
    }

    /// Record a non-finite element of `src` in `flag`; see [`Backend::find_nonfinite`].
    pub fn find_nonfinite(&mut self, src: View, flag: View, tag: f32) {
        self.backend.find_nonfinite(src, flag, tag)
    }

    /// One fused optimizer update; see [`Backend::optim_step`].
    pub fn optim_step(&mut self, step: &OptimStep, params: View, grads: View, state: &[View]) {
        self.backend.optim_step(step, params, grads, state)
    }

    /// One fused update with bfloat16 state; see [`Backend::optim_step_bf16`].
    pub fn optim_step_bf16(&mut self, step: &OptimStep, params: View, grads: View, state: &[View]) {
        debug_assert!(state.iter().all(|s| s.offset % 2 == 0), "bf16 slots start on a word");
        self.backend.optim_step_bf16(step, params, grads, state)
    }

    /// One fused Adam/AdamW update with 8-bit state; see [`Backend::adam_step_8bit`].
    pub fn adam_step_8bit(&mut self, h: &optim_kernel::AdamParams, params: View, grads: View, state: &Blockwise8) {
        self.backend.adam_step_8bit(h, params, grads, state)
    }

    /// Run everything recorded so far and wait for it (natively; in the browser a GPU device
    /// needs [`Device::finish_async`]).
    pub fn sync(&mut self) -> Result<()> {
        wait(self.backend.finish())
    }

    /// Run everything recorded so far; the future completes when the device has finished it.
    pub fn finish_async(&mut self) -> Pending<()> {
        self.backend.finish()
    }

    /// Start everything recorded so far without waiting.
    pub fn flush(&mut self) -> Result<()> {
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
