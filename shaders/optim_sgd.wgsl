// torch.optim.SGD. S0: momentum_buffer (when momentum != 0).

struct SgdParams {
    lr: f32,
    momentum: f32,
    dampening: f32,
    weight_decay: f32,
    nesterov: u32,
    first_step: u32,
}

struct SgdUniform { arena: Arena, h: SgdParams }

@group(0) @binding(0) var<uniform> P: SgdUniform;

@compute @workgroup_size(256)
fn sgd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    let a = P.arena;
    let h = P.h;
    if (i >= a.n) { return; }
    let p = PARAM[a.p_off + i];
    let g = GRAD[a.g_off + i] + h.weight_decay * p;
    if (h.momentum == 0.0) {
        PARAM[a.p_off + i] = p - h.lr * g;
        return;
    }
    var b = g;
    if (h.first_step == 0u) { b = h.momentum * S0[a.s0 + i] + (1.0 - h.dampening) * g; }
    S0[a.s0 + i] = b;
    var d = b;
    if (h.nesterov != 0u) { d = g + h.momentum * b; }
    PARAM[a.p_off + i] = p - h.lr * d;
}
