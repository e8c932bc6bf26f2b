// torch.optim.RAdam (RAdamW when decoupled). S0: exp_avg; S1: exp_avg_sq (updated on every
// step, rectified or not). Until rho_t > 5 the step is the unadapted momentum step.

struct RadamParams {
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    step_size: f32,
    adaptive_scale: f32,
    rectified: u32,
    decoupled: u32,
}

alias Hyper = RadamParams;

struct RadamUniform { arena: Arena, h: RadamParams }

@group(0) @binding(0) var<uniform> P: RadamUniform;

fn update(h: Hyper, p0: f32, g0: f32, s: vec3<f32>) -> Update {
    var p = p0;
    var g = g0;
    if (h.decoupled != 0u) { p = p * (1.0 - h.lr * h.weight_decay); } else { g = g + h.weight_decay * p; }
    let m = h.beta1 * s.x + (1.0 - h.beta1) * g;
    let v = h.beta2 * s.y + (1.0 - h.beta2) * g * g;
    var d = h.step_size * m;
    if (h.rectified != 0u) { d = d * h.adaptive_scale / (sqrt(v) + h.eps); }
    return Update(p - d, vec3<f32>(m, v, 0.0));
}
