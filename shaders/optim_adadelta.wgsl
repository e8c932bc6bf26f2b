// torch.optim.Adadelta. S0: square_avg; S1: acc_delta (updated with the unscaled delta).

struct AdadeltaParams {
    lr: f32,
    rho: f32,
    eps: f32,
    weight_decay: f32,
}

alias Hyper = AdadeltaParams;

struct AdadeltaUniform { arena: Arena, h: AdadeltaParams }

@group(0) @binding(0) var<uniform> P: AdadeltaUniform;

fn update(h: Hyper, p: f32, g0: f32, s: vec3<f32>) -> Update {
    let g = g0 + h.weight_decay * p;
    let v = h.rho * s.x + (1.0 - h.rho) * g * g;
    let d = sqrt(s.y + h.eps) / sqrt(v + h.eps) * g;
    let a = h.rho * s.y + (1.0 - h.rho) * d * d;
    return Update(p - h.lr * d, vec3<f32>(v, a, 0.0));
}
