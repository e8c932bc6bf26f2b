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
