//! The op set: one trait, [`Backend`], implemented by the rayon CPU backend ([`cpu`]) and the
//! WGSL backend ([`gpu`]). Autograd, layers and training talk to a [`Device`], which wraps a
//! backend and recycles buffers so a training step allocates nothing after the first one.
//!
//! Ops are recorded, not necessarily executed, when called: the GPU backend queues them into
//! one command encoder and submits on [`Backend::sync`] or a read. Nothing here reads data back
//! unless asked to.

pub mod cpu;
pub mod cpu_matmul;
pub mod cpu_optim;
pub mod gpu;

use crate::optim::OptimStep;
pub use crate::tensor::View;
use anyhow::Result;
use std::collections::HashMap;

/// Activation functions. Their derivatives are taken from the output `y`, which is what the
/// forward pass keeps: relu' = [y > 0], sigmoid' = y(1 - y), tanh' = 1 - y².
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Act {
    Identity,
    Relu,
    Sigmoid,
    Tanh,
}

impl Act {
    pub const ALL: [Act; 4] = [Act::Identity, Act::Relu, Act::Sigmoid, Act::Tanh];

    pub fn name(self) -> &'static str {
        match self {
            Act::Identity => "identity",
            Act::Relu => "relu",
            Act::Sigmoid => "sigmoid",
            Act::Tanh => "tanh",
        }
    }

    pub fn parse(s: &str) -> Result<Act> {
        Act::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| anyhow::anyhow!("unknown activation '{s}': use one of relu, sigmoid, tanh, identity"))
    }

    pub fn code(self) -> u32 {
        self as u32
    }
}

/// The three matmul forms: A·B, A·Bᵀ and Aᵀ·B. The result is always m×n with inner size k.
/// Stored shapes: NN: A m×k, B k×n; NT: A m×k, B n×k; TN: A k×m, B k×n.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Form {
    NN,
    NT,
    TN,
}

impl Form {
    pub const ALL: [Form; 3] = [Form::NN, Form::NT, Form::TN];

    pub fn name(self) -> &'static str {
        match self {
            Form::NN => "matmul_nn",
            Form::NT => "matmul_nt",
            Form::TN => "matmul_tn",
        }
    }

    pub fn code(self) -> u32 {
        self as u32
    }
}

/// Matmul dimensions: out is m×n, inner size k.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dims {
    pub m: usize,
    pub k: usize,
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    Scale(f32),
    AddScalar(f32),
    Pow(f32),
    Log,
    Exp,
    Sin,
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
    pub images: usize,
    pub labels: usize,
    /// A byte buffer holding little-endian u32 row indices.
    pub indices: usize,
    pub start: usize,
    pub count: usize,
    pub row_len: usize,
    pub scale: f32,
    pub x: View,
    pub y: View,
}

/// One backend: storage plus every op. Shapes are checked by the callers ([`Device`] and the
/// autograd); backends trust them.
pub trait Backend {
    /// One line: what executes the ops.
    fn describe(&self) -> String;
    fn is_gpu(&self) -> bool;
    /// A new f32 buffer of `len` elements (contents unspecified).
    fn alloc(&mut self, len: usize) -> Result<usize>;
    /// A new byte buffer holding `data` (datasets, row indices).
    fn alloc_bytes(&mut self, data: &[u8]) -> Result<usize>;
    fn free(&mut self, buf: usize);
    fn write(&mut self, dst: View, data: &[f32]) -> Result<()>;
    fn read(&mut self, src: View) -> Result<Vec<f32>>;
    fn fill(&mut self, dst: View, value: f32);
    fn copy(&mut self, src: View, dst: View);
    fn matmul(&mut self, form: Form, d: Dims, a: View, b: View, out: View, epi: &Epilogue);
    /// out = act(x + bias) over rows of `cols`.
    fn bias_act(&mut self, x: View, bias: Option<View>, out: View, cols: usize, act: Act);
    /// dx = dy ⊙ act'(y).
    fn act_backward(&mut self, act: Act, y: View, dy: View, dx: View);
    /// out[c] = Σ_r x[r, c].
    fn col_sum(&mut self, x: View, out: View, cols: usize);
    fn binary(&mut self, op: BinaryOp, a: View, b: View, out: View);
    fn unary(&mut self, op: UnaryOp, a: View, out: View);
    /// out[0] = scale · Σ a.
    fn sum(&mut self, a: View, out: View, scale: f32);
    /// out[i] = scale · src[0].
    fn broadcast(&mut self, src: View, out: View, scale: f32);
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
    fn gather(&mut self, g: &Gather);
    /// If `flag[0] < 0` and `src` holds a NaN or ±∞, set `flag` to [`tag`, the element's index]
    /// (some non-finite element, not necessarily the first). Nothing is read back.
    fn find_nonfinite(&mut self, src: View, flag: View, tag: f32);
    /// One fused optimizer update over `params` (in place) from `grads`, with state slots
    /// `state` (each as long as `params`, in slot order, each in its own buffer or not).
    fn optim_step(&mut self, step: &OptimStep, params: View, grads: View, state: &[View]);
    /// Run everything recorded so far and wait for it.
    fn sync(&mut self) -> Result<()>;
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
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub dispatches: u64,
    pub submits: u64,
    pub bytes_read_back: u64,
}

/// Which backend to run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    /// A hardware GPU if there is one, else the CPU backend.
    Auto,
    Cpu,
    /// Any adapter wgpu finds, software ones included.
    Gpu,
}

impl DeviceChoice {
    pub fn parse(s: &str) -> Result<DeviceChoice> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "gpu" => Ok(DeviceChoice::Gpu),
            _ => anyhow::bail!("unknown device '{s}': use auto, cpu or gpu"),
        }
    }
}

/// A backend plus a pool of released buffers, keyed by length.
pub struct Device {
    pub backend: Box<dyn Backend>,
    pool: HashMap<usize, Vec<usize>>,
    pub notice: Option<String>,
}

impl Device {
    pub fn cpu() -> Device {
        Device::from_backend(Box::new(cpu::CpuBackend::new()))
    }

    pub fn gpu() -> Result<Device> {
        Ok(Device::from_backend(gpu::GpuBackend::boxed(false)?))
    }

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
                    d.notice = Some(format!("--device auto: using the CPU backend ({e})"));
                    Ok(d)
                }
            },
        }
    }

    /// A buffer of `len` elements, reused from the pool when one of that length was released.
    pub fn alloc(&mut self, len: usize) -> Result<View> {
        let len = len.max(1);
        if let Some(buf) = self.pool.get_mut(&len).and_then(|v| v.pop()) {
            return Ok(View::whole(buf, len));
        }
        Ok(View::whole(self.backend.alloc(len)?, len))
    }

    pub fn alloc_zeroed(&mut self, len: usize) -> Result<View> {
        let v = self.alloc(len)?;
        self.backend.fill(v, 0.0);
        Ok(v)
    }

    pub fn upload(&mut self, data: &[f32]) -> Result<View> {
        let v = self.alloc(data.len())?;
        self.backend.write(v, data)?;
        Ok(v)
    }

    /// Return a whole buffer obtained from [`Device::alloc`] to the pool.
    pub fn release(&mut self, v: View) {
        debug_assert_eq!(v.offset, 0, "only whole buffers go back to the pool");
        self.pool.entry(v.len).or_default().push(v.buf);
    }

    pub fn read(&mut self, v: View) -> Result<Vec<f32>> {
        self.backend.read(v)
    }
}

impl std::ops::Deref for Device {
    type Target = dyn Backend;
    fn deref(&self) -> &Self::Target {
        self.backend.as_ref()
    }
}

impl std::ops::DerefMut for Device {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.backend.as_mut()
    }
}
