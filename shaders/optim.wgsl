// Shared by every optimizer kernel (prepended to shaders/optim_<kernel>.wgsl): the arena's
// bindings and the header of each kernel's uniform. One invocation per element reads p, g and
// the state, and writes p and the state. The kernel's scalars are its own struct (SgdParams,
// AdamParams, ...), mirrored field by field by the #[repr(C)] struct of the same name in
// src/backend/optim_kernel.rs; tests/kernel_mirror.rs checks the two agree. The rayon twins
// are in src/backend/cpu_optim.rs. State slots are S0, S1, S2 (one buffer each, so no binding
// exceeds the per-binding limit before the parameters do), bound in the order that
// OptimStep::kernel().bindings lists; a slot the settings do not keep is a placeholder.

struct Arena {
    n: u32, p_off: u32, g_off: u32, s0: u32,
    s1: u32, s2: u32, pad0: u32, pad1: u32,
}

@group(0) @binding(1) var<storage, read_write> PARAM: array<f32>;
@group(0) @binding(2) var<storage, read> GRAD: array<f32>;
@group(0) @binding(3) var<storage, read_write> S0: array<f32>;
@group(0) @binding(4) var<storage, read_write> S1: array<f32>;
@group(0) @binding(5) var<storage, read_write> S2: array<f32>;
