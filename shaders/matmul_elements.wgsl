// op(A) and op(B) element by element, zero outside the matrices: the scalar loads of
// matmul_load_scalar.wgsl and matmul_large.wgsl.

@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;

fn a_at(i: u32, p: u32) -> f32 {
    if (i >= P.m || p >= P.k) { return 0.0; }
    if (P.form == 2u) { return A[a_base + p * P.m + i]; }
    return A[a_base + i * P.k + p];
}

fn b_at(p: u32, j: u32) -> f32 {
    if (p >= P.k || j >= P.n) { return 0.0; }
    if (P.form == 1u) { return B[b_base + j * P.k + p]; }
    return B[b_base + p * P.n + j];
}
