// torch.optim.ASGD. S0: ax. The host computes eta and mu as PyTorch does at the end of the
// previous step (from that step's learning rate).

struct AsgdParams {
    eta: f32,
    lambd: f32,
    mu: f32,
    weight_decay: f32,
    copy: u32,
}

alias Hyper = AsgdParams;

struct AsgdUniform { arena: Arena, h: AsgdParams }

@group(0) @binding(0) var<uniform> P: AsgdUniform;

fn update(h: Hyper, p0: f32, g0: f32, s: vec3<f32>) -> Update {
    let g = g0 + h.weight_decay * p0;
    let p = p0 * (1.0 - h.lambd * h.eta) - h.eta * g;
    var ax = p;
    if (h.copy == 0u) { ax = s.x + (p - s.x) * h.mu; }
    return Update(p, vec3<f32>(ax, 0.0, 0.0));
}
