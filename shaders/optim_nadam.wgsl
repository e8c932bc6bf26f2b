// torch.optim.NAdam (NAdamW when decoupled). S0: exp_avg; S1: exp_avg_sq. The host computes
// the momentum schedule's two coefficients (grad_step, avg_step) from the step alone.

struct NadamParams {
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    grad_step: f32,
    avg_step: f32,
    bc2_sqrt: f32,
    decoupled: u32,
}

alias Hyper = NadamParams;

struct NadamUniform { arena: Arena, h: NadamParams }

@group(0) @binding(0) var<uniform> P: NadamUniform;

fn update(h: Hyper, p0: f32, g0: f32, s: vec3<f32>) -> Update {
    var p = p0;
    var g = g0;
    if (h.decoupled != 0u) { p = p * (1.0 - h.lr * h.weight_decay); } else { g = g + h.weight_decay * p; }
    let m = h.beta1 * s.x + (1.0 - h.beta1) * g;
    let v = h.beta2 * s.y + (1.0 - h.beta2) * g * g;
    let den = sqrt(v) / h.bc2_sqrt + h.eps;
    return Update(p - h.grad_step * g / den - h.avg_step * m / den, vec3<f32>(m, v, 0.0));
}
