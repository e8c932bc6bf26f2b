// The matmul kernels' uniform and their epilogue's bindings (placed first in every matmul
// module: matmul.wgsl, matmul_large.wgsl). C (m×n) = op(A)·op(B) in three forms:
// form 0: A m×k, B k×n; form 1 (A·Bᵀ): B stored n×k; form 2 (Aᵀ·B): A stored k×m.

struct MatmulParams {
    m: u32, k: u32, n: u32, form: u32,
    a_off: u32, b_off: u32, out_off: u32, bias_off: u32,
    y_off: u32, colsum_off: u32, has_bias: u32, act: u32,
    grad_act: u32, has_colsum: u32, k_split: u32, pad1: u32,
}

@group(0) @binding(0) var<uniform> P: MatmulParams;
@group(0) @binding(3) var<storage, read> BIAS: array<f32>;
@group(0) @binding(4) var<storage, read> Y: array<f32>;
@group(0) @binding(5) var<storage, read_write> C: array<f32>;
@group(0) @binding(6) var<storage, read_write> COLSUM: array<f32>;


// Where this workgroup's operands and output start: P's offsets, moved to member z of a batched
// product (the grid's z counts members when k_split is 0; member z's A, B and C lie m·k, k·n
// and m·n elements after member z − 1's). Each kernel's main sets them before any load.
var<private> a_base: u32;
var<private> b_base: u32;
var<private> c_base: u32;

fn batch_bases(z: u32) {
    a_base = P.a_off + z * P.m * P.k;
    b_base = P.b_off + z * P.k * P.n;
    c_base = P.out_off + z * P.m * P.n;
}
