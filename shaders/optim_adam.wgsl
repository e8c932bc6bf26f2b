// torch.optim.Adam and AdamW. S0: exp_avg; S1: exp_avg_sq; S2: max_exp_avg_sq (when amsgrad).

struct AdamParams {
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    step_size: f32,
    bc2_sqrt: f32,
    decoupled: u32,
    amsgrad: u32,
}

struct AdamUniform { arena: Arena, h: AdamParams }

@group(0) @binding(0) var<uniform> P: AdamUniform;

@compute @workgroup_size(256)
fn adam(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    let a = P.arena;
    let h = P.h;
    if (i >= a.n) { return; }
    var p = PARAM[a.p_off + i];
    var g = GRAD[a.g_off + i];
    if (h.decoupled != 0u) { p = p * (1.0 - h.lr * h.weight_decay); } else { g = g + h.weight_decay * p; }
    let m = h.beta1 * S0[a.s0 + i] + (1.0 - h.beta1) * g;
    let v = h.beta2 * S1[a.s1 + i] + (1.0 - h.beta2) * g * g;
    S0[a.s0 + i] = m;
    S1[a.s1 + i] = v;
    var vh = v;
    if (h.amsgrad != 0u) {
        vh = max(S2[a.s2 + i], v);
        S2[a.s2 + i] = vh;
    }
    PARAM[a.p_off + i] = p - h.step_size * m / (sqrt(vh) / h.bc2_sqrt + h.eps);
}
