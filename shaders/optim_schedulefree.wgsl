// Schedule-Free AdamW (schedulefree 1.4.1's AdamWScheduleFree). The parameters hold y. S0: z;
// S1: exp_avg_sq. z starts as a copy of the parameters (optim_schedulefree_mode.wgsl's init
// pass, before the first step).

struct SchedulefreeParams {
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    ckp1: f32,
    bc2_sqrt: f32,
}

alias Hyper = SchedulefreeParams;

struct SchedulefreeUniform { arena: Arena, h: SchedulefreeParams }

@group(0) @binding(0) var<uniform> P: SchedulefreeUniform;

fn update(h: Hyper, y0: f32, g: f32, s: vec3<f32>) -> Update {
    let v = h.beta2 * s.y + (1.0 - h.beta2) * g * g;
    let u = g / (sqrt(v) / h.bc2_sqrt + h.eps) + h.weight_decay * y0;
    let y1 = y0 + h.ckp1 * (s.x - y0);
    let y = y1 + h.lr * (h.beta1 * (1.0 - h.ckp1) - 1.0) * u;
    let z = s.x - h.lr * u;
    return Update(y, vec3<f32>(z, v, 0.0));
}
