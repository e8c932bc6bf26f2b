// AdEMAMix (bitsandbytes' semantics). S0: m1 (fast average); S1: m2 (slow average, not
// bias-corrected); S2: nu (second moment). alpha and beta3 arrive with their warm-ups applied.

struct AdemamixParams {
    lr: f32,
    beta1: f32,
    beta2: f32,
    beta3: f32,
    one_minus_beta3: f32,
    alpha: f32,
    eps: f32,
    weight_decay: f32,
    bc1: f32,
    bc2_sqrt: f32,
}

alias Hyper = AdemamixParams;

struct AdemamixUniform { arena: Arena, h: AdemamixParams }

@group(0) @binding(0) var<uniform> P: AdemamixUniform;

fn update(h: Hyper, p: f32, g: f32, s: vec3<f32>) -> Update {
    let m1 = h.beta1 * s.x + (1.0 - h.beta1) * g;
    let m2 = h.beta3 * s.y + h.one_minus_beta3 * g;
    let nu = h.beta2 * s.z + (1.0 - h.beta2) * g * g;
    let den = sqrt(nu) / h.bc2_sqrt + h.eps;
    let u = (m1 / h.bc1 + h.alpha * m2) / den + h.weight_decay * p;
    return Update(p - h.lr * u, vec3<f32>(m1, m2, nu));
}
