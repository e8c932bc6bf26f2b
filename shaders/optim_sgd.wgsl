// torch.optim.SGD. S0: momentum_buffer (when momentum != 0).

struct SgdParams {
    lr: f32,
    momentum: f32,
    dampening: f32,
    weight_decay: f32,
    nesterov: u32,
    first_step: u32,
}

alias Hyper = SgdParams;

struct SgdUniform { arena: Arena, h: SgdParams }

@group(0) @binding(0) var<uniform> P: SgdUniform;

fn update(h: Hyper, p: f32, g0: f32, s: vec3<f32>) -> Update {
    let g = g0 + h.weight_decay * p;
    if (h.momentum == 0.0) { return Update(p - h.lr * g, s); }
    var b = g;
    if (h.first_step == 0u) { b = h.momentum * s.x + (1.0 - h.dampening) * g; }
    var d = b;
    if (h.nesterov != 0u) { d = g + h.momentum * b; }
    return Update(p - h.lr * d, vec3<f32>(b, 0.0, 0.0));
}
