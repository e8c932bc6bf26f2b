// torch.optim.Adagrad. S0: sum.

struct AdagradParams {
    clr: f32,
    weight_decay: f32,
    eps: f32,
}

struct AdagradUniform { arena: Arena, h: AdagradParams }

@group(0) @binding(0) var<uniform> P: AdagradUniform;

@compute @workgroup_size(256)
fn adagrad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    let a = P.arena;
    let h = P.h;
    if (i >= a.n) { return; }
    let p = PARAM[a.p_off + i];
    let g = GRAD[a.g_off + i] + h.weight_decay * p;
    let s = S0[a.s0 + i] + g * g;
    S0[a.s0 + i] = s;
    PARAM[a.p_off + i] = p - h.clr * g / (sqrt(s) + h.eps);
}
