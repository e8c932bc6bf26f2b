// torch.optim.Adamax. S0: exp_avg; S1: exp_inf = max(beta2·exp_inf, |g| + eps).

struct AdamaxParams {
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    clr: f32,
}

alias Hyper = AdamaxParams;

struct AdamaxUniform { arena: Arena, h: AdamaxParams }

@group(0) @binding(0) var<uniform> P: AdamaxUniform;

fn update(h: Hyper, p: f32, g0: f32, s: vec3<f32>) -> Update {
    let g = g0 + h.weight_decay * p;
    let m = h.beta1 * s.x + (1.0 - h.beta1) * g;
    let u = max(h.beta2 * s.y, abs(g) + h.eps);
    return Update(p - h.clr * m / u, vec3<f32>(m, u, 0.0));
}
