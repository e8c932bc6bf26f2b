//! Helpers shared by the integration tests.
#![allow(dead_code)]

use descent::backend::Device;

/// The GPU device the tests run on. CI installs Mesa's lavapipe (`mesa-vulkan-drivers`); a
/// missing adapter is a failure, not a skip, so a broken install cannot pass silently.
/// `DESCENT_EXPECT_BACKEND` (e.g. `vulkan`) makes the test check which backend it got, since
/// wgpu falls back to GL quietly when Vulkan is missing.
pub fn gpu() -> Device {
    std::env::set_var("MESA_SHADER_CACHE_DISABLE", "true");
    let dev = Device::gpu().unwrap_or_else(|e| panic!("no GPU adapter: {e:#} (install mesa-vulkan-drivers)"));
    if let Ok(want) = std::env::var("DESCENT_EXPECT_BACKEND") {
        let got = dev.describe().to_lowercase();
        assert!(got.contains(&want.to_lowercase()), "expected a {want} adapter, got {got}");
    }
    dev
}

/// The largest binding [`small_binding_gpu`] allows: 1 MiB, a quarter-million floats.
pub const SMALL_BINDING: u64 = 1 << 20;

/// A GPU opened with a small forced `max_storage_buffer_binding_size` ([`SMALL_BINDING`]), so
/// that modest sizes take the launches split into chunks past one binding.
pub fn small_binding_gpu() -> Device {
    drop(gpu()); // the same adapter checks as every GPU test
    let g = descent::backend::gpu::GpuBackend::open_with_limits(false, |l| {
        l.max_storage_buffer_binding_size = SMALL_BINDING
    })
    .expect("GPU");
    let dev = Device::from_backend(Box::new(g));
    assert_eq!(dev.capacity().max_binding_bytes, SMALL_BINDING);
    dev
}

/// A fresh, empty folder for `name` in the system's temporary directory, unique to this test
/// binary and process.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("descent-{}-{}-{name}", env!("CARGO_CRATE_NAME"), std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("a temporary folder");
    d
}

/// Define a test once per device: `test_device!(name, body)` makes `name::cpu` and `name::gpu`,
/// each calling `body(&mut Device)`, so a bug that only one backend has cannot hide. The test
/// file needs `#[macro_use] mod common;`.
#[allow(unused_macros)]
macro_rules! test_device {
    ($name:ident, $body:ident) => {
        mod $name {
            #[test]
            fn cpu() {
                super::$body(&mut descent::backend::Device::cpu())
            }
            #[test]
            fn gpu() {
                super::$body(&mut crate::common::gpu())
            }
        }
    };
}
