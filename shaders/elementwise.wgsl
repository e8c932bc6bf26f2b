// Elementwise kernels over n elements: bias + activation, activation backward, binary ops
// (either operand broadcasting a row, column or scalar) and unary ops, fill, expand, and the
// search for a non-finite value. X and Z are read, OUT is written; offsets are in elements.

struct ElementwiseParams {
    n: u32, cols: u32, op: u32, act: u32,
    x_off: u32, z_off: u32, out_off: u32, has_z: u32,
    param: f32, pad0: u32, pad1: u32, pad2: u32,
}

@group(0) @binding(0) var<uniform> P: ElementwiseParams;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> Z: array<f32>;
@group(0) @binding(3) var<storage, read_write> OUT: array<f32>;

// out = act(x + bias[i % cols]); Z holds the bias when has_z.
@compute @workgroup_size(256)
fn bias_act(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= P.n) { return; }
    var v = X[P.x_off + i];
    if (P.has_z == 1u) { v += Z[P.z_off + i % P.cols]; }
    OUT[P.out_off + i] = act_apply(P.act, v);
}

// dx = dy ⊙ act'(y): X holds y, Z holds dy.
@compute @workgroup_size(256)
fn act_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= P.n) { return; }
    OUT[P.out_off + i] = Z[P.z_off + i] * act_grad(P.act, X[P.x_off + i]);
}

// Which element of an operand read in layout `mode` output element i reads, over rows of P.cols:
// 0 full (i), 1 row (i % cols), 2 column (i / cols), 3 scalar (0).
fn bcast_index(mode: u32, i: u32) -> u32 {
    switch mode {
        case 1u: { return i % P.cols; }
        case 2u: { return i / P.cols; }
        case 3u: { return 0u; }
        default: { return i; }
    }
}

// P.op: a BINARY_ code. P.act holds the operands' layouts: X's in bits 0-7, Z's in
// bits 8-15 (see bcast_index).
@compute @workgroup_size(256)
fn binary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= P.n) { return; }
    let a = X[P.x_off + bcast_index(P.act & 0xffu, i)];
    let b = Z[P.z_off + bcast_index(P.act >> 8u, i)];
    var r: f32;
    switch P.op {
        case BINARY_Add: { r = a + b; }
        case BINARY_Sub: { r = a - b; }
        case BINARY_Mul: { r = a * b; }
        case BINARY_Div: { r = a / b; }
        default: { r = nan_f32(); }
    }
    OUT[P.out_off + i] = r;
}

// x^p with WGSL's pow defined only for x >= 0: integral p takes the sign from x.
fn pow_signed(x: f32, p: f32) -> f32 {
    let m = pow(abs(x), p);
    if (x >= 0.0) { return m; }
    if (fract(p) != 0.0) {
        return nan_f32();
    }
    if (fract(p * 0.5) != 0.0) { return -m; }
    return m;
}

// sin(x + shift·π/2) to about an ulp on every GPU. WGSL promises only an absolute error of
// 2^-11 on [-π, π] for its builtins, and some implementations use all of it (SwiftShader's
// sin and cos were 1.9e-4 off in a browser). Cody–Waite reduction by π/2 in three parts, then
// Cephes' single-precision polynomials on [-π/4, π/4]; the quadrant picks sin or cos and sign.
fn sin_quadrant(x: f32, shift: i32) -> f32 {
    let q = round(x * 0.636619772);
    let r = ((x - q * 1.5703125) - q * 4.837512969970703e-4) - q * 7.549789954891882e-8;
    let z = r * r;
    let s = r + r * z * ((-1.9515295891e-4 * z + 8.3321608736e-3) * z - 1.6666654611e-1);
    let c = 1.0 - 0.5 * z + z * z * ((2.443315711809948e-5 * z - 1.388731625493765e-3) * z + 4.166664568298827e-2);
    let k = (i32(q) + shift) & 3;
    let v = select(s, c, (k & 1) == 1);
    return select(v, -v, (k & 2) == 2);
}

// P.op: a UNARY_ code; P.param is its scalar.
@compute @workgroup_size(256)
fn unary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= P.n) { return; }
    let a = X[P.x_off + i];
    var r: f32;
    switch P.op {
        case UNARY_Scale: { r = a * P.param; }
        case UNARY_AddScalar: { r = a + P.param; }
        case UNARY_Pow: { r = pow_signed(a, P.param); }
        case UNARY_Log: { r = log(a); }
        case UNARY_Exp: { r = exp(a); }
        case UNARY_Sin: { r = sin_quadrant(a, 0); }
        case UNARY_Cos: { r = sin_quadrant(a, 1); }
        // The sign bit cleared, so a NaN stays the NaN it was.
        case UNARY_Abs: { r = bitcast<f32>(bitcast<u32>(a) & 0x7fffffffu); }
        // Both comparisons are false for a NaN: 0, as torch.sign gives.
        case UNARY_Sign: { r = select(select(0.0, -1.0, a < 0.0), 1.0, a > 0.0); }
        case UNARY_Gelu: { r = 0.5 * a * (1.0 + erf_approx(a * 0.70710678)); }
        case UNARY_GeluTanh: { r = 0.5 * a * (1.0 + tanh(0.79788456 * (a + 0.044715 * a * a * a))); }
        case UNARY_Silu: { r = a / (1.0 + exp(-a)); }
        default: { r = nan_f32(); }
    }
    OUT[P.out_off + i] = r;
}

@compute @workgroup_size(256)
fn fill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= P.n) { return; }
    OUT[P.out_off + i] = P.param;
}

// out[i] = param · x[bcast_index(op, i)]: a row, column or scalar spread over rows of P.cols.
@compute @workgroup_size(256)
fn expand(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= P.n) { return; }
    OUT[P.out_off + i] = X[P.x_off + bcast_index(P.op, i)] * P.param;
}

// Record a non-finite element of X (NaN or ±∞: all exponent bits set): unless OUT[0] already
// holds a tag (>= 0), OUT[0] = the tag (param, the step) and OUT[1] = the element's index.
// Invocations racing within one dispatch write the same tag.
@compute @workgroup_size(256)
fn find_nonfinite(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= P.n) { return; }
    let bits = bitcast<u32>(X[P.x_off + i]);
    if ((bits & 0x7f800000u) == 0x7f800000u && OUT[P.out_off] < 0.0) {
        OUT[P.out_off] = P.param;
        OUT[P.out_off + 1u] = f32(i);
    }
}

// erf by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7; WGSL has no erf).
fn erf_approx(x: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.3275911 * abs(x));
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let e = 1.0 - poly * exp(-x * x);
    return select(e, -e, x < 0.0);
}

// OUT = Z ⊙ f'(X) for the activations whose derivative needs their input (UnaryOp::has_input_grad):
// X the input, Z the incoming gradient. P.op: a UNARY_ code.
@compute @workgroup_size(256)
fn unary_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= P.n) { return; }
    let a = X[P.x_off + i];
    var d: f32;
    switch P.op {
        case UNARY_Gelu: {
            // Φ(a) + a·φ(a).
            d = 0.5 * (1.0 + erf_approx(a * 0.70710678)) + a * 0.39894228 * exp(-0.5 * a * a);
        }
        case UNARY_GeluTanh: {
            let k = 0.79788456;
            let t = tanh(k * (a + 0.044715 * a * a * a));
            d = 0.5 * (1.0 + t) + 0.5 * a * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * a * a);
        }
        case UNARY_Silu: {
            let s = 1.0 / (1.0 + exp(-a));
            d = s * (1.0 + a * (1.0 - s));
        }
        default: { d = nan_f32(); }
    }
    OUT[P.out_off + i] = Z[P.z_off + i] * d;
}
