// Every optimizer as one fused kernel over the whole parameter arena: reads p, g and the
// state, writes p and the state, one invocation per element. The rayon twins are in
// src/backend/cpu_optim.rs; the layout of h (host-computed scalars, bias corrections
// included) is documented at optim::OptimStep. State slots are S0, S1, S2 (one buffer each,
// so no binding exceeds the per-binding limit before the parameters do).

struct Params {
    n: u32, p_off: u32, g_off: u32, s0: u32,
    s1: u32, s2: u32, pad0: u32, pad1: u32,
    h0: vec4<f32>, h1: vec4<f32>, h2: vec4<f32>,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> PARAM: array<f32>;
@group(0) @binding(2) var<storage, read> GRAD: array<f32>;
@group(0) @binding(3) var<storage, read_write> S0: array<f32>;
@group(0) @binding(4) var<storage, read_write> S1: array<f32>;
@group(0) @binding(5) var<storage, read_write> S2: array<f32>;

// h: lr, momentum, dampening, weight_decay | nesterov, first_step
@compute @workgroup_size(256)
fn sgd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= P.n) { return; }
    let lr = P.h0.x; let mu = P.h0.y; let damp = P.h0.z; let wd = P.h0.w;
    let p = PARAM[P.p_off + i];
    let g = GRAD[P.g_off + i] + wd * p;
    if (mu == 0.0) {
        PARAM[P.p_off + i] = p - lr * g;
        return;
    }
    var b = g;
    if (P.h1.y == 0.0) { b = mu * S0[P.s0 + i] + (1.0 - damp) * g; }
    S0[P.s0 + i] = b;
    var d = b;
    if (P.h1.x != 0.0) { d = g + mu * b; }
    PARAM[P.p_off + i] = p - lr * d;
}

// h: clr, weight_decay, eps
@compute @workgroup_size(256)
fn adagrad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= P.n) { return; }
    let p = PARAM[P.p_off + i];
    let g = GRAD[P.g_off + i] + P.h0.y * p;
    let s = S0[P.s0 + i] + g * g;
    S0[P.s0 + i] = s;
    PARAM[P.p_off + i] = p - P.h0.x * g / (sqrt(s) + P.h0.z);
}

// h: lr, alpha, eps, weight_decay | momentum, centered. Slots: square_avg, then
// momentum_buffer if momentum > 0, then grad_avg if centered.
@compute @workgroup_size(256)
fn rmsprop(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= P.n) { return; }
    let lr = P.h0.x; let alpha = P.h0.y; let eps = P.h0.z; let wd = P.h0.w;
    let mu = P.h1.x;
    let p = PARAM[P.p_off + i];
    let g = GRAD[P.g_off + i] + wd * p;
    let v = alpha * S0[P.s0 + i] + (1.0 - alpha) * g * g;
    S0[P.s0 + i] = v;
    var avg = sqrt(v) + eps;
    if (P.h1.y != 0.0) {
        // grad_avg is the second slot, or the third when momentum_buffer is present.
        var a = 0.0;
        if (mu > 0.0) {
            a = alpha * S2[P.s2 + i] + (1.0 - alpha) * g;
            S2[P.s2 + i] = a;
        } else {
            a = alpha * S1[P.s1 + i] + (1.0 - alpha) * g;
            S1[P.s1 + i] = a;
        }
        avg = sqrt(v - a * a) + eps;
    }
    if (mu > 0.0) {
        let b = mu * S1[P.s1 + i] + g / avg;
        S1[P.s1 + i] = b;
        PARAM[P.p_off + i] = p - lr * b;
    } else {
        PARAM[P.p_off + i] = p - lr * g / avg;
    }
}

// h: lr, beta1, beta2, eps | weight_decay, step_size, bc2_sqrt, decoupled | amsgrad.
// Slots: exp_avg, exp_avg_sq, max_exp_avg_sq if amsgrad.
@compute @workgroup_size(256)
fn adam(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= P.n) { return; }
    let lr = P.h0.x; let b1 = P.h0.y; let b2 = P.h0.z; let eps = P.h0.w;
    let wd = P.h1.x; let step_size = P.h1.y; let bc2_sqrt = P.h1.z;
    var p = PARAM[P.p_off + i];
    var g = GRAD[P.g_off + i];
    if (P.h1.w != 0.0) { p = p * (1.0 - lr * wd); } else { g = g + wd * p; }
    let m = b1 * S0[P.s0 + i] + (1.0 - b1) * g;
    let v = b2 * S1[P.s1 + i] + (1.0 - b2) * g * g;
    S0[P.s0 + i] = m;
    S1[P.s1 + i] = v;
    var vh = v;
    if (P.h2.x != 0.0) {
        vh = max(S2[P.s2 + i], v);
        S2[P.s2 + i] = vh;
    }
    PARAM[P.p_off + i] = p - step_size * m / (sqrt(vh) / bc2_sqrt + eps);
}

// h: lr, momentum, weight_decay. The lecture's v = m·v − lr·g; θ = θ + v.
@compute @workgroup_size(256)
fn lecture_momentum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= P.n) { return; }
    let p = PARAM[P.p_off + i];
    let v = P.h0.y * S0[P.s0 + i] - P.h0.x * (GRAD[P.g_off + i] + P.h0.z * p);
    S0[P.s0 + i] = v;
    PARAM[P.p_off + i] = p + v;
}
