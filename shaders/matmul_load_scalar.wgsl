// Scalar tile loads for matmul.wgsl: any shape, any offset.

@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;

fn a_at(i: u32, p: u32) -> f32 {
    if (i >= P.m || p >= P.k) { return 0.0; }
    if (P.form == 2u) { return A[P.a_off + p * P.m + i]; }
    return A[P.a_off + i * P.k + p];
}

fn b_at(p: u32, j: u32) -> f32 {
    if (p >= P.k || j >= P.n) { return 0.0; }
    if (P.form == 1u) { return B[P.b_off + j * P.k + p]; }
    return B[P.b_off + p * P.n + j];
}

// Fill As (64×16 of op(A)) and Bs (16×64 of op(B)) for the k-slice starting at k0: four
// elements per invocation and operand; neighbouring invocations read neighbouring addresses.
fn load_tiles(t: u32, row0: u32, col0: u32, k0: u32) {
    for (var e = 0u; e < 4u; e++) {
        let idx = t + e * 256u;
        var i = idx / TK;
        var p = idx % TK;
        if (P.form == 2u) { p = idx / TILE; i = idx % TILE; }
        As[p * TILE + i] = a_at(row0 + i, k0 + p);
        var j = idx % TILE;
        var q = idx / TILE;
        if (P.form == 1u) { j = idx / TK; q = idx % TK; }
        Bs[q * TILE + j] = b_at(k0 + q, col0 + j);
    }
}
