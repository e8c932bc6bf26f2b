// vec4 tile loads for matmul.wgsl: each invocation reads one vec4 of A and one of B. Used only
// when every vec4 lies inside its operand: the contiguous dimension of each stored operand
// (A: k, or m for form 2; B: n, or k for form 1) and the operand's offset are multiples of 4.
// Out-of-range vectors (past m, n or k) load zeros, as the scalar loads do.

@group(0) @binding(1) var<storage, read> A4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> B4: array<vec4<f32>>;

fn load_tiles(t: u32, row0: u32, col0: u32, k0: u32) {
    let zero = vec4<f32>(0.0);
    if (P.form == 2u) {
        // A stored k×m: four consecutive rows i of op(A) at one p.
        let p = t / 16u;
        let i = (t % 16u) * 4u;
        var v = zero;
        if (k0 + p < P.k && row0 + i < P.m) { v = A4[(a_base + (k0 + p) * P.m + row0 + i) / 4u]; }
        for (var c = 0u; c < 4u; c++) { As[p * TILE + i + c] = v[c]; }
    } else {
        // A stored m×k: four consecutive p at one row i.
        let i = t / 4u;
        let p = (t % 4u) * 4u;
        var v = zero;
        if (row0 + i < P.m && k0 + p < P.k) { v = A4[(a_base + (row0 + i) * P.k + k0 + p) / 4u]; }
        for (var c = 0u; c < 4u; c++) { As[(p + c) * TILE + i] = v[c]; }
    }
    if (P.form == 1u) {
        // B stored n×k: four consecutive q at one column j.
        let j = t / 4u;
        let q = (t % 4u) * 4u;
        var v = zero;
        if (col0 + j < P.n && k0 + q < P.k) { v = B4[(b_base + (col0 + j) * P.k + k0 + q) / 4u]; }
        for (var c = 0u; c < 4u; c++) { Bs[(q + c) * TILE + j] = v[c]; }
    } else {
        // B stored k×n: four consecutive columns j at one q.
        let q = t / 16u;
        let j = (t % 16u) * 4u;
        var v = zero;
        if (k0 + q < P.k && col0 + j < P.n) { v = B4[(b_base + (k0 + q) * P.n + col0 + j) / 4u]; }
        for (var c = 0u; c < 4u; c++) { Bs[q * TILE + j + c] = v[c]; }
    }
}
