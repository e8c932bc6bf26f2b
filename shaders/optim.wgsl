// Shared by every optimizer kernel (prepended to shaders/optim_<kernel>.wgsl): the arena's
// bindings, the header of each kernel's uniform, and the two entry points. Each kernel file
// defines only `update`, its formula for one element: (p, g, state) -> (p, state). The kernel's
// scalars are its own struct (SgdParams, AdamParams, ...), mirrored field by field by the
// #[repr(C)] struct of the same name in src/backend/optim_kernel.rs; tests/kernel_mirror.rs
// checks the two agree. The rayon twins are in src/backend/cpu_optim.rs.
//
// State slots are S0, S1, S2 (one buffer each, so no binding exceeds the per-binding limit
// before the parameters do), bound in the order OptimStep::kernel().bindings lists; `used` has
// bit k set when slot Sk is kept (a slot the settings do not keep is a placeholder, never
// read). The slots are 32-bit words: f32 values (`step_f32`, one element per invocation) or two
// bfloat16 values per word (`step_bf16`, one word per invocation: elements 2w and 2w + 1,
// computed in f32 and rounded to nearest-even on the way back). Offsets are in elements; a
// bf16 slot's offset is even.
//
// The `_checked` entries also do find_nonfinite's work (shaders/elementwise.wgsl) on the
// gradients they read: a NaN or ±inf is recorded in FLAG (`tag`, then the element's index in the
// whole step, `first` being this launch's first), unless a step already was. One pass reads
// each gradient once for both; the plain entries neither bind FLAG nor test anything.

struct Arena {
    n: u32, p_off: u32, g_off: u32, s0: u32,
    s1: u32, s2: u32, used: u32, maximize: u32,
    pad0: u32, flag_off: u32, tag: f32, first: u32,
}

// One element's result: the new parameter and its state slots (x: S0, y: S1, z: S2).
struct Update { p: f32, s: vec3<f32> }

@group(0) @binding(1) var<storage, read_write> PARAM: array<f32>;
@group(0) @binding(2) var<storage, read> GRAD: array<f32>;
@group(0) @binding(3) var<storage, read_write> S0: array<u32>;
@group(0) @binding(4) var<storage, read_write> S1: array<u32>;
@group(0) @binding(5) var<storage, read_write> S2: array<u32>;
@group(0) @binding(6) var<storage, read_write> FLAG: array<f32>;

fn slot_used(k: u32) -> bool { return (P.arena.used & (1u << k)) != 0u; }

// PyTorch's lerp(a, b, w) for real numbers: exact at w = 1.
fn lerp_t(a: f32, b: f32, w: f32) -> f32 {
    if (w < 0.5) { return a + w * (b - a); }
    return b - (b - a) * (1.0 - w);
}

// Element i's gradient, recorded in FLAG when it is not finite (see the header).
fn check_grad(i: u32) {
    let a = P.arena;
    let bits = bitcast<u32>(GRAD[a.g_off + i]);
    if ((bits & 0x7f800000u) == 0x7f800000u && FLAG[a.flag_off] < 0.0) {
        FLAG[a.flag_off] = a.tag;
        FLAG[a.flag_off + 1u] = f32(a.first + i);
    }
}

// The gradient at arena index j, negated when maximizing (PyTorch's `maximize`).
fn grad_at(j: u32) -> f32 {
    let g = GRAD[j];
    if (P.arena.maximize != 0u) { return -g; }
    return g;
}

// Element i of the arena, stepped with the hyperparameters h.
fn step_element(i: u32, h: Hyper) {
    let a = P.arena;
    var s = vec3<f32>(0.0);
    if (slot_used(0u)) { s.x = bitcast<f32>(S0[a.s0 + i]); }
    if (slot_used(1u)) { s.y = bitcast<f32>(S1[a.s1 + i]); }
    if (slot_used(2u)) { s.z = bitcast<f32>(S2[a.s2 + i]); }
    let u = update(h, PARAM[a.p_off + i], grad_at(a.g_off + i), s);
    PARAM[a.p_off + i] = u.p;
    if (slot_used(0u)) { S0[a.s0 + i] = bitcast<u32>(u.s.x); }
    if (slot_used(1u)) { S1[a.s1 + i] = bitcast<u32>(u.s.y); }
    if (slot_used(2u)) { S2[a.s2 + i] = bitcast<u32>(u.s.z); }
}

@compute @workgroup_size(256)
fn step_f32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= P.arena.n) { return; }
    step_element(i, P.h);
}

@compute @workgroup_size(256)
fn step_f32_checked(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= P.arena.n) { return; }
    check_grad(i);
    step_element(i, P.h);
}

// Parameter groups in one dispatch (`step_f32_groups`, `step_bf16_groups`). RUNS is
// [count, then per run: first element, one past the last, group], the runs sorted and apart, in
// elements from the arena header's offsets; GROUPS holds each group's struct. An element in no
// run (padding, a frozen tensor) is left as it is. Under bfloat16 every run starts at an even
// element, so a word's two elements are in one run, or the second is in none.
@group(0) @binding(7) var<storage, read> RUNS: array<u32>;
@group(0) @binding(8) var<storage, read> GROUPS: array<Hyper>;

const NO_RUN: u32 = 0xFFFFFFFFu;

// The run holding element i (a binary search), or NO_RUN.
fn run_of(i: u32) -> u32 {
    let count = RUNS[0];
    var lo = 0u;
    var hi = count;
    while (lo < hi) {
        let mid = (lo + hi) / 2u;
        if (RUNS[1u + 3u * mid + 1u] <= i) { lo = mid + 1u; } else { hi = mid; }
    }
    if (lo < count && RUNS[1u + 3u * lo] <= i) { return lo; }
    return NO_RUN;
}

@compute @workgroup_size(256)
fn step_f32_groups(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= P.arena.n) { return; }
    let r = run_of(i);
    if (r == NO_RUN) { return; }
    step_element(i, GROUPS[RUNS[1u + 3u * r + 2u]]);
}

// The low and high bfloat16 of a word, widened to f32 (exact).
fn bf16_lo(w: u32) -> f32 { return bitcast<f32>(w << 16u); }
fn bf16_hi(w: u32) -> f32 { return bitcast<f32>(w & 0xFFFF0000u); }

// f32 to bfloat16 bits, rounded to nearest, ties to even.
fn bf16_bits(x: f32) -> u32 {
    let b = bitcast<u32>(x);
    return (b + 0x7FFFu + ((b >> 16u) & 1u)) >> 16u;
}

// Slot k's word w, its two values updated (the high one only when `both`).
fn bf16_word(w: u32, lo: f32, hi: f32, both: bool) -> u32 {
    var out = bf16_bits(lo);
    if (both) { out = out | (bf16_bits(hi) << 16u); } else { out = out | (w & 0xFFFF0000u); }
    return out;
}

// Word w of the bfloat16 slots (elements 2w and 2w + 1, the second only when `both`),
// stepped with the hyperparameters h.
fn step_word(w: u32, h: Hyper, both: bool) {
    let a = P.arena;
    let i = 2u * w;
    let w0 = a.s0 / 2u + w;
    let w1 = a.s1 / 2u + w;
    let w2 = a.s2 / 2u + w;
    var x = vec3<u32>(0u);
    if (slot_used(0u)) { x.x = S0[w0]; }
    if (slot_used(1u)) { x.y = S1[w1]; }
    if (slot_used(2u)) { x.z = S2[w2]; }
    let lo = update(h, PARAM[a.p_off + i], grad_at(a.g_off + i), vec3<f32>(bf16_lo(x.x), bf16_lo(x.y), bf16_lo(x.z)));
    PARAM[a.p_off + i] = lo.p;
    var hi = Update(0.0, vec3<f32>(0.0));
    if (both) {
        hi = update(h, PARAM[a.p_off + i + 1u], grad_at(a.g_off + i + 1u), vec3<f32>(bf16_hi(x.x), bf16_hi(x.y), bf16_hi(x.z)));
        PARAM[a.p_off + i + 1u] = hi.p;
    }
    if (slot_used(0u)) { S0[w0] = bf16_word(x.x, lo.s.x, hi.s.x, both); }
    if (slot_used(1u)) { S1[w1] = bf16_word(x.y, lo.s.y, hi.s.y, both); }
    if (slot_used(2u)) { S2[w2] = bf16_word(x.z, lo.s.z, hi.s.z, both); }
}

@compute @workgroup_size(256)
fn step_bf16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let w = flat_index(wid, nwg, lid);
    let i = 2u * w;
    if (i >= P.arena.n) { return; }
    step_word(w, P.h, i + 1u < P.arena.n);
}

@compute @workgroup_size(256)
fn step_bf16_checked(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let w = flat_index(wid, nwg, lid);
    let i = 2u * w;
    if (i >= P.arena.n) { return; }
    let both = i + 1u < P.arena.n;
    check_grad(i);
    if (both) { check_grad(i + 1u); }
    step_word(w, P.h, both);
}

@compute @workgroup_size(256)
fn step_bf16_groups(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let w = flat_index(wid, nwg, lid);
    let i = 2u * w;
    if (i >= P.arena.n) { return; }
    let r = run_of(i);
    if (r == NO_RUN) { return; }
    step_word(w, GROUPS[RUNS[1u + 3u * r + 2u]], i + 1u < min(P.arena.n, RUNS[1u + 3u * r + 1u]));
}
