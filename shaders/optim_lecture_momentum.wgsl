// The lecture's momentum: v = m·v − lr·g; θ = θ + v. S0: momentum_buffer.

struct LectureMomentumParams {
    lr: f32,
    momentum: f32,
    weight_decay: f32,
}

struct LectureMomentumUniform { arena: Arena, h: LectureMomentumParams }

@group(0) @binding(0) var<uniform> P: LectureMomentumUniform;

@compute @workgroup_size(256)
fn lecture_momentum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    let a = P.arena;
    let h = P.h;
    if (i >= a.n) { return; }
    let p = PARAM[a.p_off + i];
    let v = h.momentum * S0[a.s0 + i] - h.lr * (GRAD[a.g_off + i] + h.weight_decay * p);
    S0[a.s0 + i] = v;
    PARAM[a.p_off + i] = p + v;
}
