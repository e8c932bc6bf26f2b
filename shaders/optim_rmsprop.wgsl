// torch.optim.RMSprop. S0: square_avg; S1: momentum_buffer (when momentum > 0); S2: grad_avg
// (when centered).

struct RmspropParams {
    lr: f32,
    alpha: f32,
    eps: f32,
    weight_decay: f32,
    momentum: f32,
    centered: u32,
}

struct RmspropUniform { arena: Arena, h: RmspropParams }

@group(0) @binding(0) var<uniform> P: RmspropUniform;

@compute @workgroup_size(256)
fn rmsprop(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    let a = P.arena;
    let h = P.h;
    if (i >= a.n) { return; }
    let p = PARAM[a.p_off + i];
    let g = GRAD[a.g_off + i] + h.weight_decay * p;
    let v = h.alpha * S0[a.s0 + i] + (1.0 - h.alpha) * g * g;
    S0[a.s0 + i] = v;
    var avg = sqrt(v) + h.eps;
    if (h.centered != 0u) {
        let ga = h.alpha * S2[a.s2 + i] + (1.0 - h.alpha) * g;
        S2[a.s2 + i] = ga;
        avg = sqrt(v - ga * ga) + h.eps;
    }
    if (h.momentum > 0.0) {
        let b = h.momentum * S1[a.s1 + i] + g / avg;
        S1[a.s1 + i] = b;
        PARAM[a.p_off + i] = p - h.lr * b;
    } else {
        PARAM[a.p_off + i] = p - h.lr * g / avg;
    }
}
