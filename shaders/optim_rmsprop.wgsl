// torch.optim.RMSprop. S0: square_avg; S1: momentum_buffer (when momentum > 0); S2: grad_avg
// (when centered).

struct RmspropParams {
    lr: f32,
    alpha: f32,
    eps: f32,
    weight_decay: f32,
    momentum: f32,
    centered: u32,
}

alias Hyper = RmspropParams;

struct RmspropUniform { arena: Arena, h: RmspropParams }

@group(0) @binding(0) var<uniform> P: RmspropUniform;

fn update(h: Hyper, p: f32, g0: f32, s: vec3<f32>) -> Update {
    let g = g0 + h.weight_decay * p;
    var out = s;
    let v = h.alpha * s.x + (1.0 - h.alpha) * g * g;
    out.x = v;
    var avg = sqrt(v) + h.eps;
    if (h.centered != 0u) {
        let ga = h.alpha * s.z + (1.0 - h.alpha) * g;
        out.z = ga;
        avg = sqrt(v - ga * ga) + h.eps;
    }
    if (h.momentum > 0.0) {
        let b = h.momentum * s.y + g / avg;
        out.y = b;
        return Update(p - h.lr * b, out);
    }
    return Update(p - h.lr * g / avg, out);
}
