//! The WGSL backend: every op as a hand-written compute shader (`shaders/*.wgsl`, embedded),
//! run through wgpu.
//!
//! Ops are recorded into one command encoder; each dispatch's parameters go into a uniform
//! ring (256-byte slots, bound with a dynamic offset) that is uploaded once per submit. So a
//! training step is one `queue.submit` and nothing is read back until someone asks. Pipelines
//! and bind groups are created once and cached. Storage buffers are bound whole and
//! addressed by element offsets, so views need no alignment.

use crate::backend::op_set::{Backend, Capacity, Counters};
use crate::backend::ops::{Act, Axis, Bcast, BinaryOp, Dims, Epilogue, Form, Gather, Layout, UnaryOp};
use crate::backend::optim_kernel::{AdamParams, Blockwise8, OptimStep, STEP_ENTRIES};
use crate::backend::pending::{wait, Pending};
use crate::backend::quant::Block;
use crate::tensor::View;
use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const COMMON: &str = include_str!("../../../shaders/common.wgsl");
const MATMUL: &str =
    concat!(include_str!("../../../shaders/matmul.wgsl"), include_str!("../../../shaders/matmul_load_scalar.wgsl"));
const MATMUL_VEC4: &str =
    concat!(include_str!("../../../shaders/matmul.wgsl"), include_str!("../../../shaders/matmul_load_vec4.wgsl"));
const ELEMENTWISE: &str = include_str!("../../../shaders/elementwise.wgsl");
const REDUCE: &str = include_str!("../../../shaders/reduce.wgsl");
const SOFTMAX_CE: &str = include_str!("../../../shaders/softmax_ce.wgsl");
const GATHER: &str = include_str!("../../../shaders/gather.wgsl");
/// Each optimizer kernel is its own module: the shared arena bindings, then the kernel with its
/// own uniform struct (mirrored by `optim_kernel`'s `#[repr(C)]` structs).
macro_rules! optim_module {
    ($file:literal) => {
        concat!(include_str!("../../../shaders/optim.wgsl"), include_str!(concat!("../../../shaders/", $file)))
    };
}

/// How a lost device's message begins.
const LOST: &str = "the GPU device was lost";

/// Every shader module, compiled and validated when the device opens so that a broken shader
/// is one clear error up front (and `--device auto` falls back to the CPU) rather than a failure
/// in the middle of a run.
const MODULES: [(&str, &str); 12] = [
    ("matmul", MATMUL),
    ("matmul_vec4", MATMUL_VEC4),
    ("elementwise", ELEMENTWISE),
    ("reduce", REDUCE),
    ("softmax_ce", SOFTMAX_CE),
    ("gather", GATHER),
    ("optim_sgd", optim_module!("optim_sgd.wgsl")),
    ("optim_adagrad", optim_module!("optim_adagrad.wgsl")),
    ("optim_rmsprop", optim_module!("optim_rmsprop.wgsl")),
    ("optim_adam", optim_module!("optim_adam.wgsl")),
    ("optim_lecture_momentum", optim_module!("optim_lecture_momentum.wgsl")),
    ("optim_adam8", ADAM8),
];

/// Blockwise 8-bit Adam: its own bindings and header, Adam's `update` from optim_adam.wgsl.
const ADAM8: &str =
    concat!(include_str!("../../../shaders/optim_adam8.wgsl"), include_str!("../../../shaders/optim_adam.wgsl"));

/// Bytes per uniform slot (wgpu's minimum uniform offset alignment is at most 256).
const SLOT: usize = 256;
/// Dispatches per submit before the ring forces a submit.
const RING_SLOTS: usize = 1024;
/// Invocations per workgroup of the 1-D kernels.
const WG: u32 = 256;

/// A kernel: its module (a name in `MODULES`), entry point, and which storage bindings
/// (1, 2, …) it writes.
#[derive(Clone, Copy)]
struct Kernel {
    module: &'static str,
    entry: &'static str,
    writes: &'static [bool],
}

const fn k(module: &'static str, entry: &'static str, writes: &'static [bool]) -> Kernel {
    Kernel { module, entry, writes }
}

const ELEM: &[bool] = &[false, false, true];
const MM: &[bool] = &[false, false, false, false, true, true];
const K_MATMUL: Kernel = k("matmul", "main", MM);
const K_MATMUL_VEC4: Kernel = k("matmul_vec4", "main", MM);
const K_BIAS_ACT: Kernel = k("elementwise", "bias_act", ELEM);
const K_ACT_BACKWARD: Kernel = k("elementwise", "act_backward", ELEM);
const K_BINARY: Kernel = k("elementwise", "binary", ELEM);
const K_UNARY: Kernel = k("elementwise", "unary", ELEM);
const K_FILL: Kernel = k("elementwise", "fill", ELEM);
const K_EXPAND: Kernel = k("elementwise", "expand", ELEM);
const K_FIND_NONFINITE: Kernel = k("elementwise", "find_nonfinite", ELEM);
const K_COL_SUM: Kernel = k("reduce", "col_sum", &[false, true]);
const K_ROW_SUM: Kernel = k("reduce", "row_sum", &[false, true]);
const K_SUM_PARTIAL: Kernel = k("reduce", "sum_partial", &[false, true]);
const K_SUM: Kernel = k("reduce", "sum", &[false, true]);
const K_SOFTMAX_CE: Kernel = k("softmax_ce", "main", &[false, false, true, true, true]);
const K_GATHER: Kernel = k("gather", "main", &[false, false, false, true, true, false, false, false]);
/// Image chunks the gather kernel binds (WebGPU's default of 8 storage buffers per stage).
const GATHER_CHUNKS: usize = 4;
const OPT: &[bool] = &[true, false, true, true, true];
const K_ADAM8: Kernel =
    k("optim_adam8", crate::backend::optim_kernel::ADAM8.name, &[true, false, true, true, true, true, false]);

/// A storage binding: a buffer, bound whole (`None`) or as `(byte offset, byte size)`.
type Binding = (usize, Option<(u64, u64)>);

/// One operand of [`GpuBackend::launch_1d`].
#[derive(Clone, Copy)]
struct Operand {
    buf: usize,
    /// Its first element.
    offset: usize,
    /// Bytes per element (4; 2 for bfloat16 state).
    elem_bytes: u64,
    /// The uniform word holding its offset, rebased per chunk (None: bound whole).
    offset_word: Option<usize>,
}

impl Operand {
    fn at(v: View, word: usize) -> Operand {
        Operand { buf: v.buf, offset: v.offset, elem_bytes: 4, offset_word: Some(word) }
    }

    fn whole(buf: usize) -> Operand {
        Operand { buf, offset: 0, elem_bytes: 4, offset_word: None }
    }
}

/// Two timestamp queries around a span of recorded work, and where they are read back.
struct Timer {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
}

/// The WGSL backend on one wgpu adapter: buffers, cached pipelines, one encoder per step.
pub struct GpuBackend {
    timer: Option<Timer>,
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    bufs: Vec<Option<wgpu::Buffer>>,
    modules: HashMap<&'static str, wgpu::ShaderModule>,
    layouts: HashMap<&'static [bool], (wgpu::BindGroupLayout, wgpu::PipelineLayout)>,
    pipelines: HashMap<(&'static str, &'static str), wgpu::ComputePipeline>,
    bind_groups: HashMap<(&'static str, &'static str, Vec<Binding>), wgpu::BindGroup>,
    ring: wgpu::Buffer,
    uniforms: Vec<u8>,
    encoder: Option<wgpu::CommandEncoder>,
    /// Scratch copies for read operands that alias a written buffer, by size in bytes.
    scratch: HashMap<u64, usize>,
    /// Tiny placeholder buffers bound where an optional operand is absent.
    dummy_read: usize,
    /// One per optional written binding of a kernel: WebGPU forbids binding one buffer to two
    /// writable bindings of a dispatch (Dawn checks it; wgpu natively does not).
    dummy_write: [usize; 3],
    /// Partial sums of the two-pass `sum`.
    partials: usize,
    errors: Arc<Mutex<Vec<String>>>,
    counters: Counters,
}

/// Adapter preference: hardware first, then virtual, then software; Vulkan before GL.
#[cfg(not(target_arch = "wasm32"))]
fn rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let t = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    };
    let b = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    };
    (t, b)
}

fn is_hardware(info: &wgpu::AdapterInfo) -> bool {
    matches!(info.device_type, wgpu::DeviceType::DiscreteGpu | wgpu::DeviceType::IntegratedGpu)
}

fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

/// Every adapter wgpu finds, best first.
#[cfg(not(target_arch = "wasm32"))]
fn adapters() -> Vec<wgpu::Adapter> {
    let mut list = pollster::block_on(instance().enumerate_adapters(wgpu::Backends::all()));
    list.sort_by_key(|a| rank(&a.get_info()));
    list
}

/// The best adapter: natively the first of [`adapters`]; in the browser the one
/// `navigator.gpu.requestAdapter` gives for high performance.
async fn best_adapter() -> Option<wgpu::Adapter> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        adapters().into_iter().next()
    }
    #[cfg(target_arch = "wasm32")]
    {
        let options = wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        };
        instance().request_adapter(&options).await.ok()
    }
}

/// A description of each adapter and the limits that matter here, for `descent info`.
#[cfg(not(target_arch = "wasm32"))]
pub fn describe_adapters() -> String {
    let list = adapters();
    if list.is_empty() {
        return "gpu adapters: none found (install a Vulkan driver; on a machine without a GPU, `apt-get install mesa-vulkan-drivers` gives the lavapipe software adapter)".into();
    }
    let mut s = String::from("gpu adapters (best first):\n");
    for a in list {
        let i = a.get_info();
        let l = a.limits();
        s += &format!(
            "  {} | backend {:?} | type {:?} | driver {} {}{}\n    max_storage_buffer_binding_size {} MiB, max_buffer_size {} MiB, max_compute_workgroups_per_dimension {}, max_compute_invocations_per_workgroup {}, max_compute_workgroup_storage_size {} KiB, timestamp queries {}\n",
            i.name,
            i.backend,
            i.device_type,
            i.driver,
            i.driver_info,
            if is_hardware(&i) { "" } else { " (software or virtual: DeviceChoice::Auto prefers the CPU backend)" },
            l.max_storage_buffer_binding_size >> 20,
            l.max_buffer_size >> 20,
            l.max_compute_workgroups_per_dimension,
            l.max_compute_invocations_per_workgroup,
            l.max_compute_workgroup_storage_size >> 10,
            a.features().contains(wgpu::Features::TIMESTAMP_QUERY),
        );
    }
    s
}

fn words(v: &[u32]) -> Vec<u8> {
    bytemuck::cast_slice(v).to_vec()
}

/// The elementwise kernels' uniform (`Params` in shaders/elementwise.wgsl): absent operands
/// read a placeholder at offset 0.
#[allow(clippy::too_many_arguments)]
fn elementwise_uniform(
    n: usize,
    cols: usize,
    op: u32,
    act: u32,
    x: Option<View>,
    z: Option<View>,
    out: View,
    param: f32,
) -> Vec<u32> {
    let off = |v: Option<View>| v.map_or(0, |v| u(v.offset));
    vec![u(n), u(cols.max(1)), op, act, off(x), off(z), u(out.offset), z.is_some() as u32, param.to_bits(), 0, 0, 0]
}

fn u(x: usize) -> u32 {
    x as u32
}

/// wgpu's whole diagnostic: its `Display` says only "Validation Error"; the description (or
/// the chain of sources) says what was wrong.
fn describe_error(e: &wgpu::Error) -> String {
    match e {
        wgpu::Error::Validation { description, .. } => description.trim().to_string(),
        other => {
            let mut msg = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(s) = source {
                msg = format!("{msg}: {s}");
                source = s.source();
            }
            msg
        }
    }
}

/// A future completed by a wgpu callback (a buffer mapped, submitted work done). Natively,
/// polling it waits on the device, which runs the callback; in the browser the event loop runs
/// it and wakes the future.
struct Callback<T> {
    slot: Arc<Mutex<(Option<T>, Option<std::task::Waker>)>>,
    device: wgpu::Device,
}

/// The future, and the callback to hand wgpu.
fn callback<T: Send + 'static>(device: &wgpu::Device) -> (Callback<T>, impl FnOnce(T) + Send + 'static) {
    let slot = Arc::new(Mutex::new((None, None::<std::task::Waker>)));
    let fire = {
        let slot = slot.clone();
        move |v: T| {
            if let Ok(mut s) = slot.lock() {
                s.0 = Some(v);
                if let Some(w) = s.1.take() {
                    w.wake();
                }
            }
        }
    };
    (Callback { slot, device: device.clone() }, fire)
}

impl<T> std::future::Future for Callback<T> {
    type Output = Result<T>;
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<T>> {
        use std::task::Poll;
        let take = |waker: Option<&std::task::Waker>| -> Result<Option<T>> {
            let mut s = self.slot.lock().map_err(|_| anyhow!("GPU callback state poisoned"))?;
            if s.0.is_none() {
                s.1 = waker.cloned();
            }
            Ok(s.0.take())
        };
        match take(Some(cx.waker())) {
            Ok(Some(v)) => return Poll::Ready(Ok(v)),
            Err(e) => return Poll::Ready(Err(e)),
            Ok(None) => {}
        }
        if cfg!(target_arch = "wasm32") {
            return Poll::Pending;
        }
        if let Err(e) = self.device.poll(wgpu::PollType::wait_indefinitely()) {
            return Poll::Ready(Err(anyhow!("GPU poll failed: {e}")));
        }
        match take(None) {
            Ok(Some(v)) => Poll::Ready(Ok(v)),
            Ok(None) => Poll::Ready(Err(anyhow!("the GPU finished its work without running the callback"))),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

/// Errors wgpu reported since the last check, as one error.
/// A lost device is reported as such: the invalid-buffer errors it causes are consequences.
fn check_errors(device: &wgpu::Device, errors: &Mutex<Vec<String>>) -> Result<()> {
    if errors.lock().map_err(|_| anyhow!("GPU error log poisoned"))?.is_empty() {
        return Ok(());
    }
    // wgpu reports a loss from its next poll; give it that poll so the cause comes first.
    let _ = device.poll(wgpu::PollType::Poll);
    let mut v = errors.lock().map_err(|_| anyhow!("GPU error log poisoned"))?;
    let msg = match v.iter().find(|m| m.starts_with(LOST)) {
        Some(lost) => {
            format!(
                "{lost} (the driver was reset, the GPU removed, or it ran out of memory); rerun, or use Device::cpu"
            )
        }
        None => format!("GPU error: {}\n(Device::cpu runs the same work on the CPU backend)", v.join("; ")),
    };
    v.clear();
    bail!(msg)
}

/// Map a MAP_READ buffer (its copy already submitted), await the map, and read it with `f`;
/// then any error the device reported. If the map fails, the device's own error (a lost
/// device, a validation failure) says more than the failed map it caused.
fn map_and_read<T: 'static>(
    device: &wgpu::Device,
    errors: &Arc<Mutex<Vec<String>>>,
    buf: wgpu::Buffer,
    what: &'static str,
    f: impl FnOnce(&[u8]) -> T + 'static,
) -> Pending<T> {
    let (mapped, fire) = callback(device);
    buf.slice(..).map_async(wgpu::MapMode::Read, fire);
    let (device, errors) = (device.clone(), errors.clone());
    Pending::new(async move {
        let read = async {
            mapped.await?.map_err(|e| anyhow!("GPU {what} failed: {e}"))?;
            let out = {
                let view =
                    buf.slice(..).get_mapped_range().map_err(|e| anyhow!("GPU {what} could not be mapped: {e}"))?;
                f(&view)
            };
            buf.unmap();
            Ok(out)
        };
        let out = read.await.map_err(|e| check_errors(&device, &errors).err().unwrap_or(e))?;
        check_errors(&device, &errors)?;
        Ok(out)
    })
}

impl GpuBackend {
    /// Open the best adapter; with `hardware_only`, fail unless it is a real GPU.
    pub fn boxed(hardware_only: bool) -> Result<Box<dyn Backend>> {
        Ok(Box::new(GpuBackend::open(hardware_only)?))
    }

    /// Open the best adapter wgpu finds (only a hardware one when `hardware_only`), with every
    /// shader compiled and validated up front.
    pub fn open(hardware_only: bool) -> Result<GpuBackend> {
        GpuBackend::open_with_limits(hardware_only, |_| {})
    }

    /// [`GpuBackend::open`], asking the device for the adapter's limits as changed by `adjust`
    /// (tests use it to make the device request fail the way an over-asking one would).
    pub fn open_with_limits(hardware_only: bool, adjust: impl FnOnce(&mut wgpu::Limits)) -> Result<GpuBackend> {
        wait(GpuBackend::open_async(hardware_only, adjust))
    }

    /// [`GpuBackend::open_with_limits`] as a future: the browser opens its adapter and device,
    /// and compiles shaders, asynchronously.
    pub async fn open_async(hardware_only: bool, adjust: impl FnOnce(&mut wgpu::Limits)) -> Result<GpuBackend> {
        let Some(adapter) = best_adapter().await else {
            if cfg!(target_arch = "wasm32") {
                bail!("no WebGPU adapter: this browser has navigator.gpu but gave no adapter (try another browser or enable WebGPU); the CPU backend still runs");
            }
            bail!("no GPU adapter found: install a Vulkan driver (for software rendering, `apt-get install mesa-vulkan-drivers`) or use Device::cpu");
        };
        let info = adapter.get_info();
        if hardware_only && !is_hardware(&info) {
            bail!("the only adapter is {} ({:?}), a software or virtual one, slower than the CPU backend; Device::gpu uses it anyway", info.name, info.device_type);
        }
        let mut limits = adapter.limits();
        adjust(&mut limits);
        let timestamps = wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS;
        // Browsers coarsen timestamps (to 100 µs in Chrome): there the wall clock times many steps.
        let timestamps =
            (adapter.features().contains(timestamps) && !cfg!(target_arch = "wasm32")).then_some(timestamps);
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("descent"),
                required_features: timestamps.unwrap_or(wgpu::Features::empty()),
                required_limits: limits.clone(),
                ..Default::default()
            })
            .await
            .with_context(|| format!("could not open a GPU device on {} (Device::cpu runs without one)", info.name))?;
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(describe_error(&e));
            }
        }));
        let lost = errors.clone();
        device.set_device_lost_callback(move |reason, msg| {
            if let Ok(mut v) = lost.lock() {
                v.push(format!("{LOST} ({reason:?}): {msg}"));
            }
        });
        let ring = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("uniform ring"),
            size: (SLOT * RING_SLOTS) as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let timer = timestamps.map(|_| Timer {
            set: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("timer"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            }),
            resolve: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timer resolve"),
                size: 16,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            readback: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timer readback"),
                size: 16,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
        });
        let mut g = GpuBackend {
            timer,
            device,
            queue,
            info,
            limits,
            bufs: Vec::new(),
            modules: HashMap::new(),
            layouts: HashMap::new(),
            pipelines: HashMap::new(),
            bind_groups: HashMap::new(),
            ring,
            uniforms: Vec::new(),
            encoder: None,
            scratch: HashMap::new(),
            dummy_read: 0,
            dummy_write: [0; 3],
            partials: 0,
            errors,
            counters: Counters::default(),
        };
        for (name, source) in MODULES {
            let module = g.compile_shader_async(name, source).await?;
            g.modules.insert(name, module);
        }
        g.dummy_read = g.alloc(4)?;
        for k in 0..3 {
            g.dummy_write[k] = g.alloc(4)?;
        }
        g.partials = g.alloc(256)?;
        Ok(g)
    }

    /// Compile and validate one WGSL module (with the shared prelude), returning wgpu's
    /// diagnostic as an error instead of reporting it later through the device's error log.
    pub fn compile_shader(&self, name: &str, source: &str) -> Result<wgpu::ShaderModule> {
        wait(self.compile_shader_async(name, source))
    }

    /// [`GpuBackend::compile_shader`] as a future (the browser reports a shader's errors
    /// asynchronously).
    pub async fn compile_shader_async(&self, name: &str, source: &str) -> Result<wgpu::ShaderModule> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(name),
            source: wgpu::ShaderSource::Wgsl(format!("{COMMON}\n{source}").into()),
        });
        if let Some(e) = scope.pop().await {
            bail!(
                "GPU shader `{name}` failed to compile or validate on {} ({:?}): {}\nThis is a bug in descent or in the driver; Device::cpu runs everything on the CPU backend",
                self.info.name,
                self.info.backend,
                describe_error(&e)
            );
        }
        Ok(module)
    }

    /// Name an adapter that does not name itself: browsers leave WebGPU's adapter description
    /// empty, and a page can read the vendor and architecture from `GPUAdapter.info` instead.
    pub fn name_adapter(&mut self, name: &str) {
        if self.info.name.is_empty() {
            self.info.name = name.to_string();
        }
    }

    /// Destroy the wgpu device as a driver reset or a removed GPU would, so tests can check
    /// that every later operation fails with a clear error rather than a panic or a hang.
    pub fn simulate_device_loss(&mut self) {
        self.device.destroy();
    }

    /// Whether the adapter renders in software (lavapipe, SwiftShader): right answers, CPU speed.
    pub fn is_software(&self) -> bool {
        !is_hardware(&self.info)
    }

    /// Errors wgpu reported since the last check, as one error.
    fn check(&self) -> Result<()> {
        check_errors(&self.device, &self.errors)
    }

    fn buffer(&self, id: usize) -> &wgpu::Buffer {
        self.bufs[id].as_ref().expect("live GPU buffer")
    }

    fn new_buffer(&mut self, bytes: u64, what: &str) -> Result<usize> {
        let max = self.limits.max_buffer_size;
        if bytes > max {
            bail!(
                "{what} needs a buffer of {} MiB, over this adapter's max_buffer_size of {} MiB ({}); use a smaller size or Device::cpu",
                bytes >> 20,
                max >> 20,
                self.info.name
            );
        }
        let b = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: bytes.max(4).next_multiple_of(4),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.bufs.push(Some(b));
        Ok(self.bufs.len() - 1)
    }

    fn pipeline(&mut self, kern: Kernel) -> &wgpu::ComputePipeline {
        let key = (kern.module, kern.entry);
        if !self.pipelines.contains_key(&key) {
            let device = &self.device;
            let module = self.modules.get(kern.module).expect("every module is compiled when the device opens");
            let (_, layout) = self.layouts.entry(kern.writes).or_insert_with(|| {
                let mut entries = vec![wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: true,
                        min_binding_size: None,
                    },
                    count: None,
                }];
                for (i, &w) in kern.writes.iter().enumerate() {
                    entries.push(wgpu::BindGroupLayoutEntry {
                        binding: i as u32 + 1,
                        visibility: wgpu::ShaderStages::COMPUTE,
                        ty: wgpu::BindingType::Buffer {
                            ty: wgpu::BufferBindingType::Storage { read_only: !w },
                            has_dynamic_offset: false,
                            min_binding_size: None,
                        },
                        count: None,
                    });
                }
                let bgl = device
                    .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: None, entries: &entries });
                let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                    label: None,
                    bind_group_layouts: &[Some(&bgl)],
                    immediate_size: 0,
                });
                (bgl, pl)
            });
            let p = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kern.entry),
                layout: Some(layout),
                module,
                entry_point: Some(kern.entry),
                compilation_options: Default::default(),
                cache: None,
            });
            self.pipelines.insert(key, p);
        }
        &self.pipelines[&key]
    }

    /// Record one dispatch: `uniform` words, storage buffers in binding order (each bound
    /// whole), and the workgroup grid.
    fn dispatch(&mut self, kern: Kernel, uniform: &[u32], buffers: &[usize], grid: [u32; 3]) {
        let bindings: Vec<Binding> = buffers.iter().map(|&b| (b, None)).collect();
        self.dispatch_ranged(kern, uniform, &bindings, grid)
    }

    /// [`GpuBackend::dispatch`] with each storage buffer bound whole or as a byte range
    /// (offset aligned to `min_storage_buffer_offset_alignment`, size within
    /// `max_storage_buffer_binding_size`): how work past one binding is split into chunks.
    fn dispatch_ranged(&mut self, kern: Kernel, uniform: &[u32], bindings: &[Binding], grid: [u32; 3]) {
        if self.uniforms.len() / SLOT >= RING_SLOTS {
            if let Err(e) = self.flush() {
                self.errors.lock().map(|mut v| v.push(e.to_string())).ok();
            }
        }
        let max = self.limits.max_compute_workgroups_per_dimension;
        if grid.iter().any(|&g| g > max) {
            let msg =
                format!("{}: a grid of {grid:?} workgroups exceeds the adapter's {max} per dimension", kern.entry);
            self.errors.lock().map(|mut v| v.push(msg)).ok();
            return;
        }
        if grid.contains(&0) {
            return;
        }
        let max_bind = self.limits.max_storage_buffer_binding_size;
        if let Some(&(b, _)) = bindings.iter().find(|(b, r)| r.is_none() && self.buffer(*b).size() > max_bind) {
            let msg = format!(
                "{}: a buffer of {} MiB bound whole, over this adapter's max_storage_buffer_binding_size of {} MiB ({}); this operation does not split its work into chunks: use smaller sizes or Device::cpu",
                kern.entry,
                self.buffer(b).size() >> 20,
                max_bind >> 20,
                self.info.name
            );
            self.errors.lock().map(|mut v| v.push(msg)).ok();
            return;
        }
        let mut bindings = bindings.to_vec();
        // A buffer must not be bound for reading and writing at once: read from a copy.
        let written: Vec<usize> = bindings.iter().zip(kern.writes).filter(|(_, &w)| w).map(|(b, _)| b.0).collect();
        for (i, &w) in kern.writes.iter().enumerate() {
            if !w && bindings[i].1.is_none() && written.contains(&bindings[i].0) {
                bindings[i].0 = self.scratch_copy(bindings[i].0);
            }
        }
        self.pipeline(kern);
        let key = (kern.module, kern.entry, bindings.clone());
        if !self.bind_groups.contains_key(&key) {
            let (bgl, _) = &self.layouts[kern.writes];
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &self.ring,
                    offset: 0,
                    size: std::num::NonZeroU64::new(SLOT as u64),
                }),
            }];
            for (i, &(b, range)) in bindings.iter().enumerate() {
                let resource = match range {
                    None => self.buffer(b).as_entire_binding(),
                    Some((offset, size)) => wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: self.buffer(b),
                        offset,
                        size: std::num::NonZeroU64::new(size),
                    }),
                };
                entries.push(wgpu::BindGroupEntry { binding: i as u32 + 1, resource });
            }
            let bg = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: bgl,
                entries: &entries,
            });
            self.bind_groups.insert(key.clone(), bg);
        }
        let offset = self.uniforms.len() as u32;
        let mut slot = words(uniform);
        slot.resize(SLOT, 0);
        self.uniforms.extend_from_slice(&slot);
        let encoder = self
            .encoder
            .get_or_insert_with(|| self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None }));
        {
            let mut pass =
                encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None });
            pass.set_pipeline(&self.pipelines[&(kern.module, kern.entry)]);
            pass.set_bind_group(0, &self.bind_groups[&key], &[offset]);
            pass.dispatch_workgroups(grid[0], grid[1], grid[2]);
        }
        self.counters.dispatches += 1;
    }

    /// Whether buffer `b` can be bound whole.
    fn fits_binding(&self, b: usize) -> bool {
        self.buffer(b).size() <= self.limits.max_storage_buffer_binding_size
    }

    /// The byte range to bind for `bytes` bytes from byte `start` of buffer `b`: the offset
    /// rounded down to the adapter's alignment. Returns the binding and how many bytes into it
    /// `start` lies.
    fn sub_range(&self, b: usize, start: u64, bytes: u64) -> (Binding, u64) {
        let align = self.limits.min_storage_buffer_offset_alignment as u64;
        let base = start / align * align;
        let size = (start - base + bytes).next_multiple_of(4).min(self.buffer(b).size() - base).max(4);
        ((b, Some((base, size))), start - base)
    }

    /// Elements per chunk of a 1-D launch (`elem_bytes` each) so that a chunk and its alignment
    /// slack fit one binding; a multiple of 1024.
    fn chunk_elems(&self, elem_bytes: u64) -> usize {
        let slack = self.limits.min_storage_buffer_offset_alignment as u64 + 4;
        ((self.limits.max_storage_buffer_binding_size - slack) / elem_bytes) as usize / 1024 * 1024
    }

    /// A 1-D kernel over `n` elements whose operands are all read at `offset + i`: one dispatch
    /// when every buffer binds whole, else one per chunk of elements, each operand bound as the
    /// sub-range its chunk touches and its offset word rebased. `uniform[n_word]` holds the
    /// element count; each operand says where its offset word is (None: a placeholder or small
    /// buffer, bound whole). An invocation handles `per_invocation` elements.
    fn launch_1d(
        &mut self,
        kern: Kernel,
        mut uniform: Vec<u32>,
        n_word: usize,
        operands: &[Operand],
        n: usize,
        per_invocation: usize,
    ) {
        if operands.iter().all(|o| self.fits_binding(o.buf)) {
            let bufs: Vec<usize> = operands.iter().map(|o| o.buf).collect();
            let grid = self.grid(n.div_ceil(per_invocation));
            return self.dispatch(kern, &uniform, &bufs, grid);
        }
        // Sub-ranges of one buffer bound for reading and for writing conflict in one dispatch.
        let written: Vec<usize> = operands.iter().zip(kern.writes).filter(|(_, &w)| w).map(|(o, _)| o.buf).collect();
        if operands.iter().zip(kern.writes).any(|(o, &w)| !w && o.offset_word.is_some() && written.contains(&o.buf)) {
            let msg = format!(
                "{}: an in-place operation on a buffer past max_storage_buffer_binding_size ({} MiB) is not supported; write to another buffer",
                kern.entry,
                self.limits.max_storage_buffer_binding_size >> 20
            );
            self.errors.lock().map(|mut v| v.push(msg)).ok();
            return;
        }
        let widest = operands.iter().filter(|o| o.offset_word.is_some()).map(|o| o.elem_bytes).max().unwrap_or(4);
        let chunk = self.chunk_elems(widest).max(per_invocation);
        for c0 in (0..n).step_by(chunk) {
            let len = chunk.min(n - c0);
            uniform[n_word] = u(len);
            let mut bindings = Vec::with_capacity(operands.len());
            for o in operands {
                match o.offset_word {
                    None => bindings.push((o.buf, None)),
                    Some(w) => {
                        let eb = o.elem_bytes;
                        let (binding, into) = self.sub_range(o.buf, (o.offset + c0) as u64 * eb, len as u64 * eb);
                        uniform[w] = (into / eb) as u32;
                        bindings.push(binding);
                    }
                }
            }
            let grid = self.grid(len.div_ceil(per_invocation));
            self.dispatch_ranged(kern, &uniform, &bindings, grid);
        }
    }

    /// A copy of a whole buffer in a scratch buffer of the same size (recorded in order).
    fn scratch_copy(&mut self, src: usize) -> usize {
        let size = self.buffer(src).size();
        let dst = match self.scratch.get(&size) {
            Some(&d) => d,
            None => match self.new_buffer(size, "a scratch copy") {
                Ok(d) => {
                    self.scratch.insert(size, d);
                    d
                }
                Err(e) => {
                    self.errors.lock().map(|mut v| v.push(e.to_string())).ok();
                    return src;
                }
            },
        };
        let encoder = self
            .encoder
            .get_or_insert_with(|| self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None }));
        encoder.copy_buffer_to_buffer(
            self.bufs[src].as_ref().expect("live"),
            0,
            self.bufs[dst].as_ref().expect("live"),
            0,
            size,
        );
        dst
    }

    /// A 1-D grid of 256-wide workgroups covering n, folded into 2-D past the per-dimension
    /// limit.
    fn grid(&self, n: usize) -> [u32; 3] {
        let groups = n.div_ceil(WG as usize) as u64;
        let max = self.limits.max_compute_workgroups_per_dimension as u64;
        if groups <= max {
            [groups as u32, 1, 1]
        } else {
            let x = max;
            [x as u32, groups.div_ceil(x) as u32, 1]
        }
    }

    /// One launch of an optimizer kernel's entry `entry` (`step_f32` or `step_bf16`, which
    /// handles `per_invocation` elements per invocation), split into chunks past one binding.
    fn optim_launch(
        &mut self,
        step: &OptimStep,
        entry: &'static str,
        params: View,
        grads: View,
        state: &[View],
        per_invocation: usize,
    ) {
        let module = match step {
            OptimStep::Sgd(_) => "optim_sgd",
            OptimStep::Adagrad(_) => "optim_adagrad",
            OptimStep::Rmsprop(_) => "optim_rmsprop",
            OptimStep::Adam(_) => "optim_adam",
            OptimStep::LectureMomentum(_) => "optim_lecture_momentum",
        };
        debug_assert_eq!(module, format!("optim_{}", step.kernel().name));
        // Binding S0, S1, S2 holds the slot the kernel names there, or a placeholder.
        let mut slots = self.dummy_write.map(|d| (d, 0));
        let mut used = 0u32;
        for (b, pos) in step.binding_positions().into_iter().enumerate() {
            if let Some(v) = pos.and_then(|i| state.get(i)) {
                slots[b] = (v.buf, u(v.offset));
                used |= 1 << b;
            }
        }
        // The arena header, then the kernel's own parameter struct.
        let mut uni = vec![u(params.len), u(params.offset), u(grads.offset), 0, 0, 0, used, 0];
        uni.extend_from_slice(bytemuck::cast_slice(step.param_bytes()));
        let elem_bytes = if entry == STEP_ENTRIES[1] { 2 } else { 4 };
        let mut operands = vec![Operand::at(params, 1), Operand::at(grads, 2)];
        for (k, &(buf, offset)) in slots.iter().enumerate() {
            operands.push(if used & 1 << k != 0 {
                uni[3 + k] = offset;
                Operand { buf, offset: offset as usize, elem_bytes, offset_word: Some(3 + k) }
            } else {
                Operand::whole(buf)
            });
        }
        self.launch_1d(k(module, entry, OPT), uni, 0, &operands, params.len, per_invocation);
    }

    #[allow(clippy::too_many_arguments)]
    fn elementwise(
        &mut self,
        kern: Kernel,
        n: usize,
        cols: usize,
        op: u32,
        act: u32,
        x: Option<View>,
        z: Option<View>,
        out: View,
        param: f32,
    ) {
        let uni = elementwise_uniform(n, cols, op, act, x, z, out, param);
        let bufs = [x.map_or(self.dummy_read, |v| v.buf), z.map_or(self.dummy_read, |v| v.buf), out.buf];
        let grid = self.grid(n);
        self.dispatch(kern, &uni, &bufs, grid);
    }

    /// [`GpuBackend::elementwise`] for a kernel that reads every operand at `offset + i`, so
    /// that it splits into chunks past one binding (see [`GpuBackend::launch_1d`]).
    #[allow(clippy::too_many_arguments)]
    fn elementwise_1d(
        &mut self,
        kern: Kernel,
        op: u32,
        act: u32,
        x: Option<View>,
        z: Option<View>,
        out: View,
        param: f32,
    ) {
        let uni = elementwise_uniform(out.len, 1, op, act, x, z, out, param);
        let operand =
            |v: Option<View>, word: usize| v.map_or(Operand::whole(self.dummy_read), |v| Operand::at(v, word));
        let operands = [operand(x, 4), operand(z, 5), Operand::at(out, 6)];
        self.launch_1d(kern, uni, 0, &operands, out.len, 1);
    }
}

impl Backend for GpuBackend {
    fn describe(&self) -> String {
        format!(
            "gpu: {} ({:?}, {:?}{})",
            self.info.name,
            self.info.backend,
            self.info.device_type,
            if self.is_software() { ", software rendering: for correctness, not speed" } else { "" }
        )
    }

    fn is_gpu(&self) -> bool {
        true
    }

    fn alloc(&mut self, len: usize) -> Result<usize> {
        self.new_buffer(len as u64 * 4, &format!("a tensor of {len} values"))
    }

    fn alloc_bytes(&mut self, data: &[u8]) -> Result<usize> {
        let size = (data.len() as u64).max(4).next_multiple_of(4);
        let id = self.new_buffer(size, &format!("{} bytes of data", data.len()))?;
        let mut padded = data.to_vec();
        padded.resize(size as usize, 0);
        self.queue.write_buffer(self.buffer(id), 0, &padded);
        Ok(id)
    }

    fn free(&mut self, buf: usize) {
        if self.encoder.is_some() {
            let _ = self.flush();
        }
        self.bind_groups.retain(|k, _| !k.2.iter().any(|b| b.0 == buf));
        self.bufs[buf] = None;
    }

    fn write(&mut self, dst: View, data: &[f32]) -> Result<()> {
        if data.len() != dst.len {
            bail!("write of {} values into a view of {}", data.len(), dst.len);
        }
        // Recorded work must see the old contents: submit it first.
        self.flush()?;
        self.queue.write_buffer(self.buffer(dst.buf), dst.offset as u64 * 4, bytemuck::cast_slice(data));
        Ok(())
    }

    fn read_async(&mut self, src: View) -> Pending<Vec<f32>> {
        let bytes = (src.len as u64 * 4).max(4);
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let encoder = self
            .encoder
            .get_or_insert_with(|| self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None }));
        if src.len > 0 {
            encoder.copy_buffer_to_buffer(
                self.bufs[src.buf].as_ref().expect("live"),
                src.offset as u64 * 4,
                &staging,
                0,
                bytes,
            );
        }
        if let Err(e) = self.flush() {
            return Pending::ready(Err(e));
        }
        self.counters.bytes_read_back += src.len as u64 * 4;
        let len = src.len;
        map_and_read(&self.device, &self.errors, staging, "readback", move |b| {
            bytemuck::cast_slice::<u8, f32>(b)[..len].to_vec()
        })
    }

    fn fill(&mut self, dst: View, value: f32) {
        self.elementwise_1d(K_FILL, 0, 0, None, None, dst, value);
    }

    fn copy(&mut self, src: View, dst: View) {
        let encoder = self
            .encoder
            .get_or_insert_with(|| self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None }));
        encoder.copy_buffer_to_buffer(
            self.bufs[src.buf].as_ref().expect("live"),
            src.offset as u64 * 4,
            self.bufs[dst.buf].as_ref().expect("live"),
            dst.offset as u64 * 4,
            src.len as u64 * 4,
        );
    }

    fn matmul(&mut self, form: Form, d: Dims, a: View, b: View, out: View, epi: &Epilogue) {
        let (bias_b, bias_o) = epi.bias.map_or((self.dummy_read, 0), |v| (v.buf, v.offset));
        let (y_b, y_o) = epi.act_grad.map_or((self.dummy_read, 0), |(_, v)| (v.buf, v.offset));
        // The column sums of a TN product are written in the same pass, bound as the range
        // they write when they share the output's buffer (a gradient arena): WebGPU forbids
        // two writable bindings of one buffer whose ranges overlap. If even those ranges
        // overlap, a separate pass sums them.
        let mut bindings: Vec<Binding> = vec![(a.buf, None), (b.buf, None), (bias_b, None), (y_b, None)];
        let (mut out_o, mut cs_o) = (u(out.offset), 0);
        let mut fused_colsum = false;
        match epi.a_colsum {
            Some(cs) if form == Form::TN && cs.buf != out.buf => {
                bindings.extend([(out.buf, None), (cs.buf, None)]);
                (cs_o, fused_colsum) = (u(cs.offset), true);
            }
            Some(cs) if form == Form::TN => {
                let (ob, o_into) = self.sub_range(out.buf, out.offset as u64 * 4, (d.m * d.n) as u64 * 4);
                let (cb, c_into) = self.sub_range(cs.buf, cs.offset as u64 * 4, d.m as u64 * 4);
                let (o, c) = (ob.1.unwrap_or_default(), cb.1.unwrap_or_default());
                if o.0 + o.1 <= c.0 || c.0 + c.1 <= o.0 {
                    bindings.extend([ob, cb]);
                    (out_o, cs_o, fused_colsum) = (u(o_into as usize / 4), u(c_into as usize / 4), true);
                } else {
                    bindings.extend([(out.buf, None), (self.dummy_write[0], None)]);
                }
            }
            _ => bindings.extend([(out.buf, None), (self.dummy_write[0], None)]),
        }
        let uni = [
            u(d.m),
            u(d.k),
            u(d.n),
            form.code(),
            u(a.offset),
            u(b.offset),
            out_o,
            u(bias_o),
            u(y_o),
            cs_o,
            epi.bias.is_some() as u32,
            epi.act.unwrap_or(Act::Identity).code(),
            epi.act_grad.map_or(0, |(act, _)| act.code() + 1),
            fused_colsum as u32,
            0,
            0,
        ];
        let grid = [u(d.n.div_ceil(64)), u(d.m.div_ceil(64)), 1];
        // vec4 loads when every operand's contiguous dimension and offset allow them.
        let (a_run, b_run) = match form {
            Form::NN => (d.k, d.n),
            Form::NT => (d.k, d.k),
            Form::TN => (d.m, d.n),
        };
        let aligned = [a_run, b_run, a.offset, b.offset].iter().all(|x| x % 4 == 0);
        let kern = if aligned { K_MATMUL_VEC4 } else { K_MATMUL };
        self.dispatch_ranged(kern, &uni, &bindings, grid);
        if let (Some(cs), false) = (epi.a_colsum, fused_colsum) {
            self.sum_axis(a, cs, d.m, Axis::Rows, 1.0);
        }
    }

    fn bias_act(&mut self, x: View, bias: Option<View>, out: View, cols: usize, act: Act) {
        self.elementwise(K_BIAS_ACT, out.len, cols, 0, act.code(), Some(x), bias, out, 0.0);
    }

    fn act_backward(&mut self, act: Act, y: View, dy: View, dx: View) {
        self.elementwise(K_ACT_BACKWARD, dx.len, 1, 0, act.code(), Some(y), Some(dy), dx, 0.0);
    }

    fn sum_axis(&mut self, x: View, out: View, cols: usize, axis: Axis, scale: f32) {
        let cols = cols.max(1);
        let uni = [u(x.len), u(cols), u(x.offset), u(out.offset), scale.to_bits(), 0, 0, 0];
        let (kern, n) = match axis {
            Axis::Rows => (K_COL_SUM, cols),
            Axis::Cols => (K_ROW_SUM, x.len / cols),
        };
        let grid = self.grid(n);
        self.dispatch(kern, &uni, &[x.buf, out.buf], grid);
    }

    fn binary(&mut self, op: BinaryOp, a: View, b: View, out: View, bcast: Bcast) {
        let layouts = bcast.a.code() | bcast.b.code() << 8;
        if bcast == Bcast::NONE {
            return self.elementwise_1d(K_BINARY, op as u32, layouts, Some(a), Some(b), out, 0.0);
        }
        self.elementwise(K_BINARY, out.len, bcast.cols, op as u32, layouts, Some(a), Some(b), out, 0.0);
    }

    fn unary(&mut self, op: UnaryOp, a: View, out: View) {
        let (code, param) = op.code();
        self.elementwise_1d(K_UNARY, code, 0, Some(a), None, out, param);
    }

    fn sum(&mut self, a: View, out: View, scale: f32) {
        let groups = a.len.div_ceil(WG as usize).clamp(1, 256);
        let uni = [u(a.len), 1, u(a.offset), 0, 0, 0, 0, 0];
        self.dispatch(K_SUM_PARTIAL, &uni, &[a.buf, self.partials], [u(groups), 1, 1]);
        let uni = [u(groups), 1, 0, u(out.offset), scale.to_bits(), 0, 0, 0];
        self.dispatch(K_SUM, &uni, &[self.partials, out.buf], [1, 1, 1]);
    }

    fn expand(&mut self, src: View, layout: Layout, out: View, cols: usize, scale: f32) {
        self.elementwise(K_EXPAND, out.len, cols, layout.code(), 0, Some(src), None, out, scale);
    }

    fn softmax_ce(
        &mut self,
        logits: View,
        labels: View,
        cols: usize,
        loss: Option<View>,
        dlogits: Option<View>,
        metrics: Option<View>,
    ) {
        let rows = logits.len / cols;
        let pick = |v: Option<View>, dummy: usize| v.map_or((dummy, 0), |v| (v.buf, v.offset));
        let (lb, lo) = pick(loss, self.dummy_write[0]);
        let (db, dof) = pick(dlogits, self.dummy_write[1]);
        let (mb, mo) = pick(metrics, self.dummy_write[2]);
        let flags = loss.is_some() as u32 | (dlogits.is_some() as u32) << 1 | (metrics.is_some() as u32) << 2;
        let uni = [u(rows), u(cols), u(logits.offset), u(labels.offset), u(lo), u(dof), u(mo), flags];
        self.dispatch(K_SOFTMAX_CE, &uni, &[logits.buf, labels.buf, lb, db, mb], [1, 1, 1]);
    }

    fn find_nonfinite(&mut self, src: View, flag: View, tag: f32) {
        self.elementwise(K_FIND_NONFINITE, src.len, 1, 0, 0, Some(src), None, flag, tag);
    }

    fn gather(&mut self, g: &Gather) {
        let images = g.images.id;
        let size = self.buffer(images).size();
        let limit = self.limits.max_storage_buffer_binding_size;
        let row = g.row_len.max(1) as u64;
        // Images that fit one binding are bound whole, in all four places. Larger ones as
        // chunks of `chunk_rows` rows, a multiple of the offset alignment so that each chunk
        // starts aligned; a chunk past the data binds the first one again (never read).
        let (chunk_rows, chunks) = if size <= limit {
            (u32::MAX as u64, [(images, None); GATHER_CHUNKS])
        } else {
            let align = self.limits.min_storage_buffer_offset_alignment as u64;
            let chunk_rows = limit / row / align * align;
            let bytes = chunk_rows * row;
            if chunk_rows == 0 || GATHER_CHUNKS as u64 * bytes < size {
                let msg = format!(
                    "gather: {size} bytes of images in rows of {row} do not fit {GATHER_CHUNKS} bindings of {} MiB on {}; use a smaller dataset or Device::cpu",
                    limit >> 20,
                    self.info.name
                );
                self.errors.lock().map(|mut v| v.push(msg)).ok();
                return;
            }
            let chunk = |k: usize| {
                let start = if k as u64 * bytes < size { k as u64 * bytes } else { 0 };
                (images, Some((start, bytes.min(size - start))))
            };
            (chunk_rows, std::array::from_fn(chunk))
        };
        let mut bindings: Vec<Binding> = vec![chunks[0]];
        bindings.extend([(g.labels.id, None), (g.indices.id, None), (g.x.buf, None), (g.y.buf, None)]);
        bindings.extend(&chunks[1..]);
        let uni = [
            u(g.count),
            u(g.row_len),
            u(g.start),
            u(g.x.offset),
            u(g.y.offset),
            g.scale.to_bits(),
            chunk_rows as u32,
            0,
        ];
        let grid = self.grid(g.count * g.row_len);
        self.dispatch_ranged(K_GATHER, &uni, &bindings, grid);
    }

    fn optim_step(&mut self, step: &OptimStep, params: View, grads: View, state: &[View]) {
        self.optim_launch(step, STEP_ENTRIES[0], params, grads, state, 1);
    }

    fn optim_step_bf16(&mut self, step: &OptimStep, params: View, grads: View, state: &[View]) {
        self.optim_launch(step, STEP_ENTRIES[1], params, grads, state, 2);
    }

    fn adam_step_8bit(&mut self, h: &AdamParams, params: View, grads: View, s: &Blockwise8) {
        debug_assert!([s.m_codes, s.v_codes, s.absmax, s.small, s.table].iter().all(|v| v.offset == 0));
        let header = |rows: usize, p_off: u32, g_off: u32, code_off: u32, row0: usize| {
            let mut uni = vec![u(rows), p_off, g_off, u(s.quantized_blocks), u(s.small_len), code_off, u(row0), 0];
            uni.extend_from_slice(bytemuck::cast_slice(bytemuck::bytes_of(h)));
            uni
        };
        let whole = |b: usize| (b, None);
        let small = [whole(s.absmax.buf), whole(s.small.buf), whole(s.table.buf)];
        let big = [params.buf, grads.buf, s.m_codes.buf, s.v_codes.buf];
        if big.iter().all(|&b| self.fits_binding(b)) {
            let uni = header(s.rows.len(), u(params.offset), u(grads.offset), 0, 0);
            let grid = self.grid(s.rows.len() * WG as usize);
            let mut bindings: Vec<Binding> = big.iter().map(|&b| whole(b)).collect();
            bindings.extend(small);
            return self.dispatch_ranged(K_ADAM8, &uni, &bindings, grid);
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
            let (mb, m_into) = self.sub_range(s.m_codes.buf, first as u64, n);
            let (vb, v_into) = self.sub_range(s.v_codes.buf, first as u64, n);
            debug_assert_eq!(m_into, v_into, "both code buffers have the same layout");
            let rebase = |into_elems: u64, base: usize| (into_elems as u32).wrapping_sub(base as u32);
            let uni =
                header(e - r, rebase(p_into / 4, first), rebase(g_into / 4, first), rebase(m_into / 4, first / 4), r);
            let grid = self.grid((e - r) * WG as usize);
            let mut bindings = vec![pb, gb, mb, vb];
            bindings.extend(small);
            self.dispatch_ranged(K_ADAM8, &uni, &bindings, grid);
            r = e;
        }
    }

    fn finish(&mut self) -> Pending<()> {
        if let Err(e) = self.flush() {
            return Pending::ready(Err(e));
        }
        let (done, fire) = callback(&self.device);
        self.queue.on_submitted_work_done(move || fire(()));
        let (device, errors) = (self.device.clone(), self.errors.clone());
        Pending::new(async move {
            done.await?;
            check_errors(&device, &errors)
        })
    }

    fn flush(&mut self) -> Result<()> {
        if let Some(encoder) = self.encoder.take() {
            if !self.uniforms.is_empty() {
                self.queue.write_buffer(&self.ring, 0, &self.uniforms);
                self.uniforms.clear();
            }
            self.queue.submit([encoder.finish()]);
            self.counters.submits += 1;
        }
        self.check()
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
        let Some(t) = &self.timer else { return false };
        let encoder = self
            .encoder
            .get_or_insert_with(|| self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None }));
        encoder.write_timestamp(&t.set, 0);
        true
    }

    fn timer_stop(&mut self) {
        let Some(t) = &self.timer else { return };
        let encoder = self
            .encoder
            .get_or_insert_with(|| self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None }));
        encoder.write_timestamp(&t.set, 1);
        encoder.resolve_query_set(&t.set, 0..2, &t.resolve, 0);
        encoder.copy_buffer_to_buffer(&t.resolve, 0, &t.readback, 0, 16);
    }

    fn timer_read(&mut self) -> Result<Option<f64>> {
        if self.timer.is_none() {
            return Ok(None);
        }
        self.flush()?;
        let Some(t) = &self.timer else { return Ok(None) };
        let ticks = wait(map_and_read(&self.device, &self.errors, t.readback.clone(), "timer readback", |b| {
            let v = bytemuck::cast_slice::<u8, u64>(b);
            [v[0], v[1]]
        }))?;
        let period_ns = self.queue.get_timestamp_period() as f64;
        Ok(Some(ticks[1].saturating_sub(ticks[0]) as f64 * period_ns * 1e-9))
    }
}
