//! GPU faults become clear errors, never panics: no adapter (with `--device auto` falling back
//! to the CPU), a refused device request, a buffer over the adapter's limits, a shader that
//! fails to compile or validate, and a device lost in the middle of a run.

mod common;

use descent::backend::gpu::GpuBackend;
use descent::backend::Device;

fn open() -> GpuBackend {
    drop(common::gpu()); // the same adapter checks as every GPU test
    GpuBackend::open(false).expect("GPU adapter")
}

#[test]
fn a_shader_that_fails_to_compile_or_validate_is_a_clear_error() {
    let g = open();
    let broken = [
        ("parse_error", "@compute @workgroup_size(64) fn main() { let x = ; }"),
        ("unknown_name", "@compute @workgroup_size(64) fn main() { let x: f32 = no_such_value; }"),
        ("type_error", "@compute @workgroup_size(64) fn main() { let x: u32 = 1.5; }"),
    ];
    for (name, source) in broken {
        let err = match g.compile_shader(name, source) {
            Ok(_) => panic!("shader {name} compiled"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains(&format!("GPU shader `{name}` failed to compile or validate")), "{err}");
        assert!(err.contains("Device::cpu"), "{err}");
        // wgpu's own diagnostic, not just its summary "Validation Error".
        assert!(err.lines().count() >= 3, "{err}");
    }
    // The real modules compile on the same device (they were validated when it opened).
    g.compile_shader("fine", "@compute @workgroup_size(64) fn main() {}").expect("a valid shader compiles");
}

#[test]
fn a_lost_device_is_a_clear_error_not_a_panic() {
    let mut g = open();
    g.simulate_device_loss();
    let mut dev = Device::from_backend(Box::new(g));
    let result = dev.upload(&[1.0, 2.0, 3.0]).and_then(|v| dev.read(v));
    let err = format!("{:#}", result.expect_err("reading from a destroyed device succeeded"));
    // The cause, not its consequences (every buffer of a lost device is invalid).
    assert!(err.starts_with("the GPU device was lost"), "{err}");
    assert!(!err.contains("is invalid"), "{err}");
    assert!(err.contains("Device::cpu"), "{err}");
}

#[test]
fn a_refused_device_request_is_a_clear_error() {
    drop(common::gpu());
    // Ask for more than any adapter has: the request fails inside wgpu.
    let err = match GpuBackend::open_with_limits(false, |l| l.max_bind_groups = u32::MAX) {
        Ok(_) => panic!("the adapter granted u32::MAX bind groups"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.starts_with("could not open a GPU device on "), "{err}");
    assert!(err.contains("Device::cpu"), "{err}");
    assert!(err.contains("max_bind_groups"), "{err}");
}

#[test]
fn a_buffer_over_the_adapters_limits_is_a_clear_error() {
    let mut dev = Device::from_backend(Box::new(open()));
    let err = format!("{:#}", dev.alloc(1 << 40).expect_err("a 4 TiB buffer was allocated"));
    assert!(err.contains("over this adapter's max_buffer_size"), "{err}");
    assert!(err.contains("Device::cpu"), "{err}");
}

/// With no adapter (wgpu told to look only for Metal, which Linux lacks), `--device gpu` is a
/// runtime error saying what to install, and `--device auto` trains on the CPU with a notice.
#[test]
#[cfg(target_os = "linux")]
fn no_adapter_is_a_clear_error_and_auto_falls_back_to_the_cpu() {
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_descent"))
            .args(args)
            .env("WGPU_BACKEND", "metal")
            .output()
            .expect("run descent")
    };
    let out = run(&["parity", "--device", "gpu"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no GPU adapter found") && stderr.contains("--device cpu"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let subset = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/fashion-mnist-subset");
    let out = run(&["train", "--device", "auto", "--epochs", "1", "--data-dir", subset]);
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{all}");
    assert!(all.contains("--device auto: using the CPU backend (no GPU adapter found"), "{all}");
    assert!(all.contains("device: cpu"), "{all}");
}
