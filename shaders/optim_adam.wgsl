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

alias Hyper = AdamParams;

struct AdamUniform { arena: Arena, h: AdamParams }

@group(0) @binding(0) var<uniform> P: AdamUniform;

fn update(h: Hyper, p0: f32, g0: f32, s: vec3<f32>) -> Update {
    var p = p0;
    var g = g0;
    if (h.decoupled != 0u) { p = p * (1.0 - h.lr * h.weight_decay); } else { g = g + h.weight_decay * p; }
    let m = h.beta1 * s.x + (1.0 - h.beta1) * g;
    let v = h.beta2 * s.y + (1.0 - h.beta2) * g * g;
    var vh = v;
    if (h.amsgrad != 0u) { vh = max(s.z, v); }
    return Update(p - h.step_size * m / (sqrt(vh) / h.bc2_sqrt + h.eps), vec3<f32>(m, v, vh));
}
