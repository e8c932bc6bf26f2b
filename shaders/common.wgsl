// Shared by every kernel file (prepended when a module is built): activations, their
// derivatives taken from the output, and the flat index of an invocation in a 1-D or 2-D grid
// of 256-wide workgroups (2-D when more than 65,535 workgroups are needed).

fn act_apply(a: u32, z: f32) -> f32 {
    switch a {
        case 1u: { return max(z, 0.0); }
        case 2u: { return 1.0 / (1.0 + exp(-z)); }
        case 3u: { return tanh(z); }
        default: { return z; }
    }
}

fn act_grad(a: u32, y: f32) -> f32 {
    switch a {
        case 1u: { return select(0.0, 1.0, y > 0.0); }
        case 2u: { return y * (1.0 - y); }
        case 3u: { return 1.0 - y * y; }
        default: { return 1.0; }
    }
}

fn flat_index(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid.x;
}
