// torch.optim.Adafactor over every tensor of a parameter arena: the layout and the table are in
// src/backend/factored.rs, the rayon twin in src/backend/cpu/adafactor.rs. Six dispatches a
// step, each over the table's units (one per matrix row, one per 1,024 elements of a vector),
// column chunks, tensors or matrices; every sum is a per-workgroup tree reduction or a loop in
// a fixed order, so results do not depend on scheduling, and nothing is read back:
//   af_stats        Σp² per unit; a row's mean of g² into R (lerp)
//   af_cols         a column's mean of g² into C (lerp)
//   af_tensor_stats Σp² per tensor (from the units' partials), the mean of R per matrix
//   af_usq          Σu² per unit, u = g / √max(V̂, eps1²), V̂ = R_i·C_j / max(mean R, eps1) or V
//   af_tensor_usq   Σu² per tensor
//   af_apply        p ← p·(1 − lr·wd) − α / max(1, RMS(u)/d) · u, α = max(eps2, RMS(p))·ρ;
//                   a vector's new V stored
//
// The stored statistics (binding 3) are read through `st(i)` and written through
// `st_set(i, x)`, defined by the state file appended to this one: adafactor_state_f32.wgsl
// (f32 values) or adafactor_state_bf16.wgsl (two bfloat16 values a word, rounded where they are
// stored). Each new statistic is computed in f32 from the stored one, and the rest of the step
// reads that f32 value: R and C from the work buffer's fresh area (written beside the state),
// V recomputed where it is read, lerp(V, g², β) (stored by af_apply, the last pass to read the
// old V). So both widths take the same step from the same widened state. Every pass writes
// only statistics it alone owns.

// The header (in the place of the elementwise kernels' arena): the table's counts, the
// parameter and gradient offsets. The table's sections follow each other: tensors (8 words
// each), units, column chunks and matrices (4 words each).
struct Arena {
    tensors: u32, units: u32, chunks: u32, matrices: u32,
    p_off: u32, g_off: u32, maximize: u32, pad0: u32,
}

struct AdafactorParams {
    beta2_t: f32,
    rho: f32,
    eps1: f32,
    eps2: f32,
    d: f32,
    decay: f32,
    pad0: u32,
    pad1: u32,
}

struct AdafactorUniform { arena: Arena, h: AdafactorParams }

@group(0) @binding(0) var<uniform> P: AdafactorUniform;
@group(0) @binding(1) var<storage, read_write> PARAM: array<f32>;
@group(0) @binding(2) var<storage, read> GRAD: array<f32>;
@group(0) @binding(4) var<storage, read_write> WORK: array<f32>;
@group(0) @binding(5) var<storage, read> TABLE: array<u32>;

const AF_WG: u32 = 64u;

var<workgroup> RED: array<vec2<f32>, 64>;

struct Tensor { first_unit: u32, units: u32, rows: u32, cols: u32, batch: u32, state: u32, first_matrix: u32, n: u32, fresh: u32 }
struct Unit { start: u32, len: u32, tensor: u32, state: u32 }

// Words per tensor in the table (TENSOR_WORDS in src/backend/factored.rs).
const TENSOR_WORDS: u32 = 9u;

fn tensor_at(t: u32) -> Tensor {
    let b = TENSOR_WORDS * t;
    return Tensor(TABLE[b], TABLE[b + 1u], TABLE[b + 2u], TABLE[b + 3u], TABLE[b + 4u], TABLE[b + 5u], TABLE[b + 6u], TABLE[b + 7u], TABLE[b + 8u]);
}

fn unit_off() -> u32 { return TENSOR_WORDS * P.arena.tensors; }
fn chunk_off() -> u32 { return unit_off() + 4u * P.arena.units; }
fn matrix_off() -> u32 { return chunk_off() + 4u * P.arena.chunks; }

fn unit_at(u: u32) -> Unit {
    let b = unit_off() + 4u * u;
    return Unit(TABLE[b], TABLE[b + 1u], TABLE[b + 2u], TABLE[b + 3u]);
}

// The gradient at arena index i, negated when maximizing.
fn grad(i: u32) -> f32 {
    let g = GRAD[P.arena.g_off + i];
    if (P.arena.maximize != 0u) { return -g; }
    return g;
}

// PyTorch's lerp: exact at w = 1.
fn lerp_t(a: f32, b: f32, w: f32) -> f32 {
    if (w < 0.5) { return a + w * (b - a); }
    return b - (b - a) * (1.0 - w);
}

// The work buffer: Σp² per unit, Σu² per unit, (Σp², Σu²) per tensor, the mean of R per matrix,
// then the fresh area (each factored tensor's new R and C in f32, laid out as in the state).
fn usq_at(u: u32) -> u32 { return P.arena.units + u; }
fn sums_at(t: u32) -> u32 { return 2u * P.arena.units + 2u * t; }
fn mean_at(m: u32) -> u32 { return 2u * P.arena.units + 2u * P.arena.tensors + m; }
fn fresh_at(f: u32) -> u32 { return mean_at(P.arena.matrices) + f; }

// Factored statistic i of tensor t, just computed as x: stored, and kept in f32 for the step.
fn fresh_set(t: Tensor, i: u32, x: f32) {
    st_set(i, x);
    WORK[fresh_at(t.fresh + i - t.state)] = x;
}

// Factored statistic i of tensor t as this step computed it.
fn fresh(t: Tensor, i: u32) -> f32 { return WORK[fresh_at(t.fresh + i - t.state)]; }

// A vector's new second moment at state index i: lerp(V, g², β).
fn new_v(i: u32, g: f32) -> f32 { return lerp_t(st(i), g * g, P.h.beta2_t); }

// The workgroup's sum of v (a tree over its 64 invocations).
fn reduce2(t: u32, v: vec2<f32>) -> vec2<f32> {
    RED[t] = v;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s = s >> 1u) {
        if (t < s) { RED[t] = RED[t] + RED[t + s]; }
        workgroupBarrier();
    }
    let r = RED[0];
    workgroupBarrier();
    return r;
}

// Element k of unit u's update, u = g / √max(V̂, eps1²), from its gradient g.
fn update_at(u: Unit, t: Tensor, k: u32, g: f32, mean_r: f32) -> f32 {
    var v = 0.0;
    if (t.cols > 0u) {
        let row = u.state - t.state;
        let c = t.state + t.batch * t.rows + (row / t.rows) * t.cols + k;
        v = fresh(t, u.state) * fresh(t, c) / max(mean_r, P.h.eps1);
    } else {
        v = new_v(u.state + k, g);
    }
    return g / sqrt(max(v, P.h.eps1 * P.h.eps1));
}

// The mean of R of the matrix unit u (a row) belongs to; 0 for a vector's chunk.
fn unit_mean_r(u: Unit, t: Tensor) -> f32 {
    if (t.cols == 0u) { return 0.0; }
    return WORK[mean_at(t.first_matrix + (u.state - t.state) / t.rows)];
}

@compute @workgroup_size(64)
fn af_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let b = wid.y * nwg.x + wid.x;
    if (b >= P.arena.units) { return; }
    let u = unit_at(b);
    let t = tensor_at(u.tensor);
    var acc = vec2<f32>(0.0);
    for (var k = lid.x; k < u.len; k = k + AF_WG) {
        let p = PARAM[P.arena.p_off + u.start + k];
        let g = grad(u.start + k);
        acc = acc + vec2<f32>(g * g, p * p);
    }
    let r = reduce2(lid.x, acc);
    if (lid.x == 0u) {
        WORK[b] = r.y;
        if (t.cols > 0u) { fresh_set(t, u.state, lerp_t(st(u.state), r.x / f32(t.cols), P.h.beta2_t)); }
    }
}

@compute @workgroup_size(64)
fn af_cols(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let b = wid.y * nwg.x + wid.x;
    if (b >= P.arena.chunks) { return; }
    let base = chunk_off() + 4u * b;
    let t = tensor_at(TABLE[base]);
    let m = TABLE[base + 1u];
    let j = TABLE[base + 2u] + lid.x;
    if (j >= t.cols) { return; }
    let start = unit_at(t.first_unit).start + m * t.rows * t.cols + j;
    var s = 0.0;
    for (var i = 0u; i < t.rows; i = i + 1u) {
        let g = grad(start + i * t.cols);
        s = s + g * g;
    }
    let c = t.state + t.batch * t.rows + m * t.cols + j;
    fresh_set(t, c, lerp_t(st(c), s / f32(t.rows), P.h.beta2_t));
}

// Tensor b's Σ of its units' partials at `first` (the Σp² or the Σu² region), into slot `k`
// (0: Σp², 1: Σu²) of its sums.
fn tensor_sum(b: u32, lid: u32, first: u32, k: u32) {
    let t = tensor_at(b);
    var acc = 0.0;
    for (var i = lid; i < t.units; i = i + AF_WG) { acc = acc + WORK[first + t.first_unit + i]; }
    let r = reduce2(lid, vec2<f32>(acc, 0.0));
    if (lid == 0u) { WORK[sums_at(b) + k] = r.x; }
}

@compute @workgroup_size(64)
fn af_tensor_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let b = wid.y * nwg.x + wid.x;
    if (b < P.arena.tensors) {
        tensor_sum(b, lid.x, 0u, 0u);
        return;
    }
    let m = b - P.arena.tensors;
    if (m >= P.arena.matrices) { return; }
    let base = matrix_off() + 4u * m;
    let rows = TABLE[base + 1u];
    let f0 = fresh_at(TABLE[base + 2u]);
    var acc = 0.0;
    for (var i = lid.x; i < rows; i = i + AF_WG) { acc = acc + WORK[f0 + i]; }
    let r = reduce2(lid.x, vec2<f32>(acc, 0.0));
    if (lid.x == 0u) { WORK[mean_at(m)] = r.x / f32(rows); }
}

@compute @workgroup_size(64)
fn af_usq(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let b = wid.y * nwg.x + wid.x;
    if (b >= P.arena.units) { return; }
    let u = unit_at(b);
    let t = tensor_at(u.tensor);
    let mean_r = unit_mean_r(u, t);
    var acc = 0.0;
    for (var k = lid.x; k < u.len; k = k + AF_WG) {
        let x = update_at(u, t, k, grad(u.start + k), mean_r);
        acc = acc + x * x;
    }
    let r = reduce2(lid.x, vec2<f32>(acc, 0.0));
    if (lid.x == 0u) { WORK[usq_at(b)] = r.x; }
}

@compute @workgroup_size(64)
fn af_tensor_usq(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let b = wid.y * nwg.x + wid.x;
    if (b >= P.arena.tensors) { return; }
    tensor_sum(b, lid.x, P.arena.units, 1u);
}

@compute @workgroup_size(64)
fn af_apply(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let b = wid.y * nwg.x + wid.x;
    if (b >= P.arena.units) { return; }
    let u = unit_at(b);
    let t = tensor_at(u.tensor);
    let mean_r = unit_mean_r(u, t);
    let root_n = sqrt(f32(t.n));
    let alpha = max(P.h.eps2, sqrt(WORK[sums_at(u.tensor)]) / root_n) * P.h.rho;
    let den = max(1.0, sqrt(WORK[sums_at(u.tensor) + 1u]) / (root_n * P.h.d));
    let step = alpha / den;
    for (var k = lid.x; k < u.len; k = k + AF_WG) {
        let i = P.arena.p_off + u.start + k;
        let g = grad(u.start + k);
        PARAM[i] = PARAM[i] * P.h.decay - step * update_at(u, t, k, g, mean_r);
        // The old V was read for the last time just above.
        if (t.cols == 0u) { st_set(u.state + k, new_v(u.state + k, g)); }
    }
}
