// torch.optim.Rprop. S0: prev; S1: step_size (starts at lr, set when the state is made).

struct RpropParams {
    eta_minus: f32,
    eta_plus: f32,
    step_min: f32,
    step_max: f32,
}

alias Hyper = RpropParams;

struct RpropUniform { arena: Arena, h: RpropParams }

@group(0) @binding(0) var<uniform> P: RpropUniform;

fn update(h: Hyper, p: f32, g0: f32, s: vec3<f32>) -> Update {
    let d = g0 * s.x;
    var factor = 1.0;
    var g = g0;
    if (d > 0.0) { factor = h.eta_plus; } else if (d < 0.0) { factor = h.eta_minus; g = 0.0; }
    let size = clamp(s.y * factor, h.step_min, h.step_max);
    return Update(p - sign(g) * size, vec3<f32>(g, size, 0.0));
}
