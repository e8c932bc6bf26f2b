//! Opening the device: adapter choice (hardware first, Vulkan before GL), the device with its
//! error sinks, every module compiled up front, and `descent info`'s adapter list.

use super::future::{describe_error, LOST};
use super::kernels::{prelude, Module};
use super::timer::Timer;
use super::{GpuBackend, MatmulKernels, RING_SLOTS, SLOT};
use crate::backend::op_set::{Backend, Counters};
use crate::backend::pending::wait;
use crate::message::Setting;
use crate::said;
use anyhow::{bail, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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
pub fn describe_adapters() -> crate::message::Message {
    let list = adapters();
    if list.is_empty() {
        return "gpu adapters: none found (install a Vulkan driver; on a machine without a GPU, `apt-get install mesa-vulkan-drivers` gives the lavapipe software adapter)".into();
    }
    let mut s = crate::message::Message::from("gpu adapters (best first):\n");
    for a in list {
        let i = a.get_info();
        let l = a.limits();
        s = s.then(format!(
            "  {} | backend {:?} | type {:?} | driver {} {}",
            i.name, i.backend, i.device_type, i.driver, i.driver_info
        ));
        if !is_hardware(&i) {
            s = s.then(said![" (software or virtual: ", Setting::DeviceAuto, " prefers the CPU backend)"]);
        }
        s = s.then(format!(
            "\n    max_storage_buffer_binding_size {} MiB, max_buffer_size {} MiB, max_compute_workgroups_per_dimension {}, max_compute_invocations_per_workgroup {}, max_compute_workgroup_storage_size {} KiB, timestamp queries {}\n",
            l.max_storage_buffer_binding_size >> 20,
            l.max_buffer_size >> 20,
            l.max_compute_workgroups_per_dimension,
            l.max_compute_invocations_per_workgroup,
            l.max_compute_workgroup_storage_size >> 10,
            a.features().contains(wgpu::Features::TIMESTAMP_QUERY),
        ));
    }
    s
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
            bail!(said![
                "no GPU adapter found: install a Vulkan driver (for software rendering, `apt-get install mesa-vulkan-drivers`) or use ",
                Setting::DeviceCpu
            ]);
        };
        let info = adapter.get_info();
        if hardware_only && !is_hardware(&info) {
            bail!(said![
                format!(
                    "the only adapter is {} ({:?}), a software or virtual one, slower than the CPU backend; ",
                    info.name, info.device_type
                ),
                Setting::DeviceGpu,
                " uses it anyway"
            ]);
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
            .map_err(|e| {
                let cause = anyhow::Error::from(e);
                said![
                    format!("could not open a GPU device on {} (", info.name),
                    Setting::DeviceCpu,
                    format!(" runs without one): {cause:#}")
                ]
            })?;
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(describe_error(&e).into());
            }
        }));
        let lost = errors.clone();
        device.set_device_lost_callback(move |reason, msg| {
            if let Ok(mut v) = lost.lock() {
                v.push(format!("{LOST} ({reason:?}): {msg}").into());
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
            queued: Vec::new(),
            scratch: HashMap::new(),
            dummy_read: 0,
            dummy_write: [0; 4],
            partials: 0,
            partials_len: 256,
            errors,
            counters: Counters::default(),
            checks: ShaderChecks::Checked,
            matmul_kernels: MatmulKernels::Auto,
            split_parts: None,
        };
        g.checks = ShaderChecks::from_env()?;
        g.matmul_kernels = MatmulKernels::from_env()?;
        for &module in Module::ALL {
            let compiled = g.compile_module(module).await?;
            g.modules.insert(module, compiled);
        }
        g.dummy_read = g.alloc_buffer(4)?;
        for k in 0..4 {
            g.dummy_write[k] = g.alloc_buffer(4)?;
        }
        g.partials = g.alloc_buffer(256)?;
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
        self.compile_async(name, source, false).await
    }

    /// One of the backend's modules, compiled as [`GpuBackend::shader_checks`] says for it.
    async fn compile_module(&self, module: Module) -> Result<wgpu::ShaderModule> {
        let trusted = self.checks == ShaderChecks::Trusted && module.trusted_ok();
        self.compile_async(module.label(), module.source(), trusted).await
    }

    /// Compile `source` with wgpu's runtime checks, or (`trusted`) without bounds checks, loop
    /// bounding and division guards: only for modules whose indices the host proves in range
    /// ([`Module::trusted_ok`]).
    async fn compile_async(&self, name: &str, source: &str, trusted: bool) -> Result<wgpu::ShaderModule> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some(name),
            source: wgpu::ShaderSource::Wgsl(format!("{}{source}", prelude()).into()),
        };
        let module = if trusted {
            let checks = wgpu::ShaderRuntimeChecks {
                bounds_checks: false,
                force_loop_bounding: false,
                int_div_checks: false,
                ..wgpu::ShaderRuntimeChecks::checked()
            };
            // SAFETY: `Module::trusted_ok` lists the modules whose every index is guarded in the
            // WGSL against the uniform's sizes, whose loops have fixed or uniform trip counts and
            // whose divisors are nonzero constants; `Device::matmul` proves that each view holds
            // what those sizes address before the dispatch. `tests/trusted.rs` checks that both
            // compilations give the same bits.
            unsafe { self.device.create_shader_module_trusted(desc, checks) }
        } else {
            self.device.create_shader_module(desc)
        };
        if let Some(e) = scope.pop().await {
            bail!(said![
                format!(
                    "GPU shader `{name}` failed to compile or validate on {} ({:?}): {}\nThis is a bug in descent or in the driver; ",
                    self.info.name,
                    self.info.backend,
                    describe_error(&e)
                ),
                Setting::DeviceCpu,
                " runs everything on the CPU backend"
            ]);
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

    /// `describe()`: the adapter, its backend and type, and a warning for software rendering.
    pub(super) fn description(&self) -> String {
        format!(
            "gpu: {} ({:?}, {:?}{}){}{}",
            self.info.name,
            self.info.backend,
            self.info.device_type,
            if self.is_software() { ", software rendering: for correctness, not speed" } else { "" },
            if self.checks == ShaderChecks::Checked { " [checked matmul]" } else { "" },
            match self.matmul_kernels {
                MatmulKernels::Auto => "",
                MatmulKernels::Tiled => " [tiled matmul]",
                MatmulKernels::SplitK => " [split-k matmul]",
                MatmulKernels::Large => " [large-tile matmul]",
            }
        )
    }

    /// How the kernels are compiled: [`ShaderChecks::Trusted`] unless `DESCENT_GPU_SHADERS`
    /// or [`GpuBackend::set_shader_checks`] said otherwise.
    pub fn shader_checks(&self) -> ShaderChecks {
        self.checks
    }

    /// Recompile the modules [`Module::trusted_ok`] lists as `checks` says (the others stay
    /// checked); their pipelines are rebuilt at their next dispatch.
    pub fn set_shader_checks(&mut self, checks: ShaderChecks) -> Result<()> {
        if checks == self.checks {
            return Ok(());
        }
        self.checks = checks;
        for &module in Module::ALL.iter().filter(|m| m.trusted_ok()) {
            let compiled = wait(self.compile_module(module))?;
            self.modules.insert(module, compiled);
            self.pipelines.retain(|(m, _), _| *m != module);
        }
        Ok(())
    }
}

/// Whether the GPU kernels keep wgpu's runtime checks (the environment's `DESCENT_GPU_SHADERS`,
/// `trusted` or `checked`; trusted when unset). Trusted drops the bounds checks, the forced loop
/// bounds and the division guards naga adds, in the kernels whose indices the host proves in
/// range ([`Module::trusted_ok`]: the tiled matmul); both give the same bits
/// (`tests/trusted.rs`), and CI runs parity and the training tests in both. On lavapipe the
/// trusted matmul took 0.55–0.70× the checked one's time at three of four shapes (BENCHMARKS.md,
/// side by side); on a real GPU the gain is a prediction (issue 22's notes expect several times
/// at 2048³). In the browser wgpu
/// cannot turn WebGPU's own checks off, so both are the checked build there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShaderChecks {
    /// Every kernel with wgpu's runtime checks.
    Checked,
    /// The kernels the host proves in range without them.
    Trusted,
}

impl ShaderChecks {
    /// `DESCENT_GPU_SHADERS`: `trusted` (or unset) or `checked`; anything else is an error.
    pub fn from_env() -> Result<ShaderChecks> {
        match std::env::var("DESCENT_GPU_SHADERS").as_deref() {
            Err(_) | Ok("trusted") | Ok("") => Ok(ShaderChecks::Trusted),
            Ok("checked") => Ok(ShaderChecks::Checked),
            Ok(other) => bail!("DESCENT_GPU_SHADERS={other}: use checked or trusted"),
        }
    }
}
