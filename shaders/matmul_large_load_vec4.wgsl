// vec4 loads for matmul_large.wgsl: each operand's four values of a k-step in one load. Used
// only when every vec4 lies inside its operand: the contiguous dimension of each stored operand
// (A: k, or m in form 2; B: n, or k in form 1) and the operand's offset are multiples of 4, so a
// vec4 is wholly inside the matrix or wholly outside it (then zeros, as the scalar loads give).

@group(0) @binding(1) var<storage, read> A4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> B4: array<vec4<f32>>;

fn load_a(t: u32, row0: u32, k0: u32) -> vec4<f32> {
    if (P.form == 2u) {
        // A stored k×m: rows i … i + 3 at one p.
        let p = k0 + t / 32u;
        let i = row0 + (t % 32u) * 4u;
        if (p >= P.k || i >= P.m) { return vec4<f32>(0.0); }
        return A4[(a_base + p * P.m + i) / 4u];
    }
    // A stored m×k: p … p + 3 at one row i.
    let i = row0 + t / 2u;
    let p = k0 + (t % 2u) * 4u;
    if (i >= P.m || p >= P.k) { return vec4<f32>(0.0); }
    return A4[(a_base + i * P.k + p) / 4u];
}

fn load_b(t: u32, col0: u32, k0: u32) -> vec4<f32> {
    if (P.form == 1u) {
        // B stored n×k: p … p + 3 at one column j.
        let j = col0 + t / 2u;
        let p = k0 + (t % 2u) * 4u;
        if (j >= P.n || p >= P.k) { return vec4<f32>(0.0); }
        return B4[(b_base + j * P.k + p) / 4u];
    }
    // B stored k×n: columns j … j + 3 at one p.
    let p = k0 + t / 32u;
    let j = col0 + (t % 32u) * 4u;
    if (p >= P.k || j >= P.n) { return vec4<f32>(0.0); }
    return B4[(b_base + p * P.n + j) / 4u];
}
