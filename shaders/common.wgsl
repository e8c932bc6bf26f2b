// Shared by every kernel file (prepended when a module is built): activations, their
// derivatives taken from the output, and the flat index of an invocation in a 1-D or 2-D grid
// of 256-wide workgroups (2-D when more than 65,535 workgroups are needed).

// A quiet NaN made at run time (a constant expression that evaluates to NaN is a
// shader-creation error in WGSL: browsers' Tint rejects it). Every switch on an op code
// returns it for a code it lacks, so an op added in Rust without its WGSL case fails parity.
fn nan_f32() -> f32 {
    var nan_bits = 0x7fc00000u;
    return bitcast<f32>(nan_bits);
}

// The ACT_, BINARY_ and UNARY_ constants come from the op tables in src/backend/ops.rs.
fn act_apply(a: u32, z: f32) -> f32 {
    switch a {
        case ACT_Identity: { return z; }
        case ACT_Relu: { return max(z, 0.0); }
        case ACT_Sigmoid: { return 1.0 / (1.0 + exp(-z)); }
        case ACT_Tanh: { return tanh(z); }
        // PyTorch's default negative_slope (LEAKY_RELU_SLOPE in src/backend/ops.rs).
        case ACT_LeakyRelu: { return select(0.01 * z, z, z > 0.0); }
        default: { return nan_f32(); }
    }
}

fn act_grad(a: u32, y: f32) -> f32 {
    switch a {
        case ACT_Identity: { return 1.0; }
        case ACT_Relu: { return select(0.0, 1.0, y > 0.0); }
        case ACT_Sigmoid: { return y * (1.0 - y); }
        case ACT_Tanh: { return 1.0 - y * y; }
        case ACT_LeakyRelu: { return select(0.01, 1.0, y > 0.0); }
        default: { return nan_f32(); }
    }
}

// Whether x is a NaN, by its bits: drivers may fold `x != x` to false (lavapipe does).
fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

fn flat_index(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid.x;
}
