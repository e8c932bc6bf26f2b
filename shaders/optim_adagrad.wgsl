// torch.optim.Adagrad. S0: sum.

struct AdagradParams {
    clr: f32,
    weight_decay: f32,
    eps: f32,
}

alias Hyper = AdagradParams;

struct AdagradUniform { arena: Arena, h: AdagradParams }

@group(0) @binding(0) var<uniform> P: AdagradUniform;

fn update(h: Hyper, p: f32, g0: f32, s: vec3<f32>) -> Update {
    let g = g0 + h.weight_decay * p;
    let sum = s.x + g * g;
    return Update(p - h.clr * g / (sqrt(sum) + h.eps), vec3<f32>(sum, 0.0, 0.0));
}
