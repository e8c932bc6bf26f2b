// The lecture's momentum: v = m·v − lr·g; θ = θ + v. S0: momentum_buffer.

struct LectureMomentumParams {
    lr: f32,
    momentum: f32,
    weight_decay: f32,
}

alias Hyper = LectureMomentumParams;

struct LectureMomentumUniform { arena: Arena, h: LectureMomentumParams }

@group(0) @binding(0) var<uniform> P: LectureMomentumUniform;

fn update(h: Hyper, p: f32, g: f32, s: vec3<f32>) -> Update {
    let v = h.momentum * s.x - h.lr * (g + h.weight_decay * p);
    return Update(p + v, vec3<f32>(v, 0.0, 0.0));
}
