// Lion (Chen et al. 2023, as lion-pytorch). S0: exp_avg. sign(0) is 0, as torch's.

struct LionParams {
    lr: f32,
    beta1: f32,
    beta2: f32,
    weight_decay: f32,
}

alias Hyper = LionParams;

struct LionUniform { arena: Arena, h: LionParams }

@group(0) @binding(0) var<uniform> P: LionUniform;

fn update(h: Hyper, p0: f32, g: f32, s: vec3<f32>) -> Update {
    let p = p0 * (1.0 - h.lr * h.weight_decay);
    let c = h.beta1 * s.x + (1.0 - h.beta1) * g;
    let m = h.beta2 * s.x + (1.0 - h.beta2) * g;
    return Update(p - h.lr * sign(c), vec3<f32>(m, 0.0, 0.0));
}
