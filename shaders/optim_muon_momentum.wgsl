// Muon's momentum (torch.optim.Muon's code): buf <- lerp(buf, g, 1 - momentum); the matrix to
// orthogonalize, lerp(g, buf, momentum) with Nesterov, else buf, is written in the place of the
// parameters (the launch binds a scratch matrix there). S0: momentum_buffer.

struct MuonMomentumParams {
    momentum: f32,
    nesterov: u32,
}

alias Hyper = MuonMomentumParams;

struct MuonMomentumUniform { arena: Arena, h: MuonMomentumParams }

@group(0) @binding(0) var<uniform> P: MuonMomentumUniform;

fn update(h: Hyper, p: f32, g: f32, s: vec3<f32>) -> Update {
    let b = lerp_t(s.x, g, 1.0 - h.momentum);
    var u = b;
    if (h.nesterov != 0u) { u = lerp_t(g, b, h.momentum); }
    return Update(u, vec3<f32>(b, 0.0, 0.0));
}
